//! Progress on a non-terminal stderr: one log line every `--log-interval` seconds with the
//! count, total, percent, rate and ETA; none with `-q`.

use std::process::Command;
use std::time::Instant;

mod common;

/// A 100 kb indexed FASTA (random bases), long enough for several 1 s intervals on the CPU.
fn long_fasta(dir: &std::path::Path) -> std::path::PathBuf {
    let mut state = 7u64;
    let seq: String = (0..100_000)
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

#[test]
fn non_terminal_stderr_gets_a_progress_line_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let fa = long_fasta(dir.path());
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
        .args(["--log-interval", "1", "-o", "/dev/null"])
        .output()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ssmgen: progress: "))
        .collect();
    // One a second: at least 2 when the run took 3 s or more, never more than one a second.
    assert!(
        lines.len() as f64 <= elapsed + 1.0,
        "{} lines in {elapsed:.1} s: {err}",
        lines.len()
    );
    if elapsed >= 3.0 {
        assert!(
            lines.len() as f64 >= (elapsed - 2.0).floor().max(2.0),
            "{} lines in {elapsed:.1} s: {err}",
            lines.len()
        );
    }
    let mut last = 0u64;
    for line in &lines {
        // "ssmgen: progress: 12,345/100,000 bases (12.3%), 4,567 bases/s, elapsed 0:00:03, ETA 0:00:19"
        let counts = line["ssmgen: progress: ".len()..]
            .split(' ')
            .next()
            .unwrap();
        let (done, total) = counts.split_once('/').expect("total known from the .fai");
        let done: u64 = done.replace(',', "").parse().unwrap();
        assert_eq!(total, "100,000");
        assert!(done >= last && done <= 100_000, "{line}");
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
