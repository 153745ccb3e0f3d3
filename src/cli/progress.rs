//! Progress on stderr: a bar on a terminal; on a non-terminal stderr (cluster jobs, `nohup`,
//! `2> log`) one log line every `--log-interval` seconds with the same figures; nothing with
//! `-q`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::EngineArgs;

/// A bar counting bases (`total` known) or a spinner (unknown); see [`counter`].
pub fn bases_bar(total: Option<u64>, engine: &EngineArgs) -> ProgressBar {
    counter(total, "bases", engine)
}

/// A counter of `unit`s: on a terminal a bar (with total, percent, rate and ETA when `total`
/// is known) or a spinner; on a non-terminal stderr a hidden bar whose figures a thread logs
/// every `--log-interval` seconds until the bar is finished or dropped; with `--quiet`, hidden.
pub fn counter(total: Option<u64>, unit: &'static str, engine: &EngineArgs) -> ProgressBar {
    if engine.quiet {
        return ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
    }
    if !std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        spawn_logger(&bar, unit, Duration::from_secs_f64(engine.log_interval));
        return bar;
    }
    let template = match total {
        Some(_) => format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} ({{percent}}%, {{per_sec}}, ETA {{eta}})"
        ),
        None => format!("{{spinner}} [{{elapsed_precise}}] {{human_pos}} {unit} ({{per_sec}})"),
    };
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    match total {
        Some(total) => ProgressBar::new(total).with_style(style),
        None => ProgressBar::new_spinner().with_style(style),
    }
}

/// Logs `bar`'s figures every `every` on stderr while it lives and is not finished.
fn spawn_logger(bar: &ProgressBar, unit: &'static str, every: Duration) {
    let weak = bar.downgrade();
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("ssmgen-progress".into())
        .spawn(move || {
            let mut next = every;
            loop {
                std::thread::sleep(every.min(Duration::from_millis(100)));
                let Some(bar) = weak.upgrade() else {
                    return;
                };
                if bar.is_finished() {
                    return;
                }
                let elapsed = started.elapsed();
                if elapsed < next {
                    continue;
                }
                while next <= elapsed {
                    next += every;
                }
                eprintln!("{}", log_line(bar.position(), bar.length(), elapsed, unit));
            }
        });
    drop(spawned);
}

/// `h:mm:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One progress log line: done (of total, percent), rate, elapsed time and ETA.
pub fn log_line(done: u64, total: Option<u64>, elapsed: Duration, unit: &str) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = done as f64 / secs;
    let mut line = format!("ssmgen: progress: {}", grouped(done));
    if let Some(total) = total.filter(|&t| t > 0) {
        let eta = if rate > 0.0 {
            clock(Duration::from_secs_f64(
                (total.saturating_sub(done)) as f64 / rate,
            ))
        } else {
            "?".into()
        };
        line += &format!(
            "/{} {unit} ({:.1}%), {} {unit}/s, elapsed {}, ETA {eta}",
            grouped(total),
            100.0 * done as f64 / total as f64,
            grouped(rate as u64),
            clock(elapsed)
        );
    } else {
        line += &format!(
            " {unit}, {} {unit}/s, elapsed {}",
            grouped(rate as u64),
            clock(elapsed)
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_has_total_percent_rate_and_eta() {
        let line = log_line(
            2_500_000,
            Some(10_000_000),
            Duration::from_secs(10),
            "bases",
        );
        assert_eq!(
            line,
            "ssmgen: progress: 2,500,000/10,000,000 bases (25.0%), 250,000 bases/s, elapsed 0:00:10, ETA 0:00:30"
        );
        let line = log_line(1000, None, Duration::from_secs(2), "bases");
        assert_eq!(
            line,
            "ssmgen: progress: 1,000 bases, 500 bases/s, elapsed 0:00:02"
        );
    }
}
