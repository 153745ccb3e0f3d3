//! A boundary around third-party decoders and encoders whose panics must not reach the user:
//! [`catch`] runs a closure and turns a panic into an error message, and while any such call is
//! in progress the panic hook records the message instead of printing it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Guarded calls in progress (on any thread).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// The message of the last panic seen while a guarded call was in progress.
static LAST: Mutex<Option<String>> = Mutex::new(None);
static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) > 0 {
                let message = panic_text(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                // The first panic is the cause; later ones are its echoes in other threads.
                LAST.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| format!("{message}{at}"));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`; a panic inside it (or in a thread it waits on) becomes `Err(message)`, and no
/// panic text reaches stderr meanwhile.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    LAST.lock().unwrap_or_else(|p| p.into_inner()).take();
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(f));
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        LAST.lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| panic_text(payload.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error() {
        let r: Result<(), String> = super::catch(|| panic!("boom {}", 1));
        assert!(r.unwrap_err().contains("boom 1"));
        assert_eq!(super::catch(|| 5), Ok(5));
    }
}
