//! Progress on a non-terminal stderr: one log line every `--log-interval` seconds with the
//! count, total, percent, rate and ETA; none with `-q`. The input is sized so the run takes over
//! 2.5 s on the machine at hand, so the periodic lines must appear.

use std::process::Command;
use std::time::Instant;

mod common;

/// An indexed FASTA of `length` random bases (record `chrL`).
fn long_fasta(dir: &std::path::Path, length: usize) -> std::path::PathBuf {
    let mut state = 7u64;
    let seq: String = (0..length)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ACGT"[(state >> 62) as usize] as char
        })
        .collect();
    let fa = dir.join("long.fa");
    common::write_fasta(&fa, &[("chrL", &seq)], 60, "\n");
    common::index_fasta(&fa);
    fa
}

/// Runs `likelihood` with the fixture model, stderr a pipe (not a terminal) and a 1 s
/// interval; returns the stderr text and the run's wall time.
fn run_logged(fa: &std::path::Path) -> (String, f64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args([
            "likelihood",
            fa.to_str().unwrap(),
            "--device",
            "cpu",
            "-t",
            "2",
        ])
        .args(["-m", "test-data/fixture-model"])
        .args(["--log-interval", "1", "-o", "/dev/null"])
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success());
    (String::from_utf8_lossy(&out.stderr).into_owned(), elapsed)
}

#[test]
fn non_terminal_stderr_gets_a_progress_line_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    // An input long enough for the run to take over 2.5 s on this machine: start at 200 kb and
    // grow it from the measured rate until it does.
    let mut length = 200_000usize;
    let (err, elapsed) = loop {
        let fa = long_fasta(dir.path(), length);
        let (err, elapsed) = run_logged(&fa);
        if elapsed >= 2.5 || length >= 50_000_000 {
            break (err, elapsed);
        }
        length = (length as f64 * (4.0 / elapsed.max(0.05))).min(50e6) as usize;
    };
    assert!(elapsed >= 2.5, "even {length} bases ran in {elapsed:.1} s");
    let total = format!("/{}", itoa_like(length as u64));
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ssmgen: progress: "))
        .collect();
    eprintln!(
        "{length} bases in {elapsed:.1} s: {} progress lines",
        lines.len()
    );
    // One a second: the periodic lines appear (at least 2 once the run took 3.5 s), and never
    // more than one a second.
    assert!(
        !lines.is_empty(),
        "no progress line in {elapsed:.1} s: {err}"
    );
    if elapsed >= 3.5 {
        assert!(
            lines.len() as f64 >= (elapsed - 2.0).floor().max(2.0),
            "{} lines in {elapsed:.1} s: {err}",
            lines.len()
        );
    }
    assert!(
        lines.len() as f64 <= elapsed + 1.0,
        "{} lines in {elapsed:.1} s: {err}",
        lines.len()
    );
    let mut last = 0u64;
    for line in &lines {
        // "ssmgen: progress: 12,345/100,000 bases (12.3%), 4,567 bases/s, elapsed 0:00:03, ETA 0:00:19"
        let counts = line["ssmgen: progress: ".len()..]
            .split(' ')
            .next()
            .unwrap();
        let (done, line_total) = counts.split_once('/').expect("total known from the .fai");
        let done: u64 = done.replace(',', "").parse().unwrap();
        assert_eq!(format!("/{line_total}"), total, "{line}");
        assert!(done >= last && done <= length as u64, "{line}");
        last = done;
        for part in ["bases (", "%), ", " bases/s, elapsed 0:00:", ", ETA "] {
            assert!(line.contains(part), "{line} lacks {part:?}");
        }
    }

    // -q silences them; the default interval (30 s) prints none in a short run.
    for extra in [&["-q", "--log-interval", "1"][..], &[][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ssmgen"))
            .args([
                "likelihood",
                "test-data/shards.fa",
                "--device",
                "cpu",
                "-o",
                "/dev/null",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("progress"), "{err}");
    }
}

/// `n` with thousands separators, as the progress lines print counts (`1,234,567`).
fn itoa_like(n: u64) -> String {
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
