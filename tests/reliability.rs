//! Hostile inputs, one test (or more) per class of issue 12: output paths, panics, silently wrong
//! results with a `.fai`, bad input that used to exit 0, tiny inputs that took gigabytes,
//! interrupts, and messages. Each names its class; `docs/reliability.md` lists them.
//!
//! `SSMGEN_TEST_BIN=/path/to/ssmgen cargo test --test reliability` runs them against another
//! build (that is how they were checked to fail on the main branch before the fixes).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

const MODEL: &str = "test-data/fixture-model";
const FIXTURE: &str = "test-data/fixture.fa";

fn bin() -> PathBuf {
    std::env::var_os("SSMGEN_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ssmgen")))
}

fn ssmgen(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn likelihood(args: &[&str]) -> Output {
    let mut all = vec!["likelihood", "-m", MODEL, "-q"];
    all.extend_from_slice(args);
    ssmgen(&all)
}

fn score(args: &[&str]) -> Output {
    let mut all = vec!["score-variants", "-m", MODEL, "-q"];
    all.extend_from_slice(args);
    ssmgen(&all)
}

/// Runs ssmgen with `args` under a 1 GiB address-space limit (`ulimit -v`): an input that
/// makes it allocate gigabytes fails to allocate and aborts instead of passing.
fn under_1gib(args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "ulimit -v 1048576; exec '{}' {}",
        bin().display(),
        quoted.join(" ")
    );
    Command::new("bash").args(["-c", &script]).output().unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files in `dir` whose names end in `.tmp` (ssmgen's temporary outputs).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

fn fixture_bases() -> String {
    fixture_sequence()
}

/// A copy of the fixture model in `dir` with `config.json` passed through `edit`.
fn model_copy(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir(&m).unwrap();
    let config = std::fs::read_to_string(Path::new(MODEL).join("config.json")).unwrap();
    std::fs::write(m.join("config.json"), edit(&config)).unwrap();
    std::fs::copy(
        Path::new(MODEL).join("model.safetensors"),
        m.join("model.safetensors"),
    )
    .unwrap();
    m
}

/// The decompressed bytes of `test-data/variants.bcf`.
fn bcf_bytes() -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open("test-data/variants.bcf").unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

// ---- class 1: output paths -------------------------------------------------------------

#[test]
fn class1_output_that_is_the_input_is_refused_before_work() {
    let dir = tmp();
    let fa = dir.path().join("in.fa");
    std::fs::copy(FIXTURE, &fa).unwrap();
    let before = std::fs::read(&fa).unwrap();
    let out = likelihood(&[s(&fa), "-o", s(&fa)]);
    assert_clean_error(&out, &["same file as the input"]);
    assert_eq!(std::fs::read(&fa).unwrap(), before, "input clobbered");
    // Through a symlink, and through the .fai.
    let link = dir.path().join("link.bedgraph");
    std::os::unix::fs::symlink(&fa, &link).unwrap();
    assert_clean_error(&likelihood(&[s(&fa), "-o", s(&link)]), &["same file"]);
    assert_eq!(std::fs::read(&fa).unwrap(), before, "input clobbered");
    let vcf = dir.path().join("v.vcf");
    std::fs::copy("test-data/variants.vcf", &vcf).unwrap();
    let vbefore = std::fs::read(&vcf).unwrap();
    assert_clean_error(
        &score(&["--ref", FIXTURE, "--vcf", s(&vcf), "-o", s(&vcf)]),
        &["same file"],
    );
    assert_eq!(std::fs::read(&vcf).unwrap(), vbefore, "VCF clobbered");
}

#[test]
fn class1_symlinked_output_is_followed_not_replaced() {
    let dir = tmp();
    let real = dir.path().join("real.bedgraph");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("out.bedgraph");
    std::os::unix::fs::symlink("real.bedgraph", &link).unwrap();
    ok_stdout(likelihood(&[FIXTURE, "-o", s(&link)]));
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the symlink was replaced");
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.starts_with("fixture\t1\t2\t"), "{}", &text[..40]);
    // A link to a device is written through, without a rename.
    let null_link = dir.path().join("null.bedgraph");
    std::os::unix::fs::symlink("/dev/null", &null_link).unwrap();
    ok_stdout(likelihood(&[FIXTURE, "-o", s(&null_link)]));
    assert!(
        std::fs::symlink_metadata(&null_link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn class1_fifo_output_is_written_in_place() {
    let dir = tmp();
    let fifo = dir.path().join("out.bedgraph");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let copy = dir.path().join("copy.txt");
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&copy).unwrap())
        .spawn()
        .unwrap();
    let out = likelihood(&[FIXTURE, "-o", s(&fifo)]);
    let still_fifo = {
        use std::os::unix::fs::FileTypeExt;
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    };
    if !still_fifo {
        let _ = reader.kill();
    }
    let _ = reader.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(still_fifo, "the FIFO was replaced by a regular file");
    let text = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(
        text,
        ok_stdout(likelihood(&[FIXTURE])),
        "the FIFO got the whole track"
    );
    // NPY (seekable) through a FIFO: staged elsewhere, then copied in.
    let copy2 = dir.path().join("copy2.npy");
    let mut reader = Command::new("cat")
        .arg(&fifo)
        .stdout(std::fs::File::create(&copy2).unwrap())
        .spawn()
        .unwrap();
    let out = ssmgen(&[
        "embed",
        "-m",
        MODEL,
        "-q",
        FIXTURE,
        "-f",
        "npy",
        "-o",
        s(&fifo),
    ]);
    let _ = reader.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&copy2).unwrap().starts_with(b"\x93NUMPY"));
}

// ---- class 2: panics ---------------------------------------------------------------------

#[test]
fn class2_huge_pos_with_multibase_ref_is_an_error_not_a_panic() {
    let dir = tmp();
    let vcf = dir.path().join("v.vcf");
    std::fs::write(
        &vcf,
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n\
         fixture\t18446744073709551615\t.\tAC\tA\t.\t.\t.\n",
    )
    .unwrap();
    assert_clean_error(
        &score(&["--ref", FIXTURE, "--vcf", s(&vcf)]),
        &["line 3", "POS"],
    );
    // Just under the limit: not an error, skipped as past the end.
    std::fs::write(
        &vcf,
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n\
         fixture\t1099511627776\t.\tAC\tA\t.\t.\t.\n",
    )
    .unwrap();
    let out = score(&["--ref", FIXTURE, "--vcf", s(&vcf)]);
    assert!(ok_stdout(out).contains("past_contig_end"));
}

#[test]
fn class2_bcf_with_non_utf8_id_is_an_error_not_a_panic() {
    let mut bytes = bcf_bytes();
    // The first ID, "rs1", is the typed string 0x37 'r' 's' '1'.
    let at = bytes
        .windows(4)
        .position(|w| w == b"\x37rs1")
        .expect("rs1 in the BCF");
    bytes[at + 1] = 0xff;
    let dir = tmp();
    let bcf = dir.path().join("bad.bcf");
    std::fs::write(&bcf, &bytes).unwrap();
    let out = score(&["--ref", FIXTURE, "--vcf", s(&bcf)]);
    assert_clean_error(&out, &["bad.bcf", "record 1"]);
}

#[test]
fn class2_huge_model_sizes_are_refused_before_allocation() {
    let dir = tmp();
    for (key, value) in [
        (
            "\"num_hidden_layers\": 2",
            "\"num_hidden_layers\": 18446744073709551615",
        ),
        (
            "\"hidden_size\": 64",
            "\"hidden_size\": 4611686018427387904",
        ),
        (
            "\"intermediate_size\": 128",
            "\"intermediate_size\": 4611686018427387904",
        ),
    ] {
        let sub = dir.path().join(key.len().to_string() + value);
        std::fs::create_dir_all(&sub).unwrap();
        let m = model_copy(&sub, |c| c.replace(key, value));
        let out = ssmgen(&["likelihood", "-q", "-m", s(&m), FIXTURE]);
        assert_clean_error(&out, &["config.json", "the most ssmgen accepts"]);
    }
}

/// A disk that fills while bigWig is written (simulated with `ulimit -f`, SIGXFSZ ignored so
/// the write fails with EFBIG): bigtools panics inside; the user sees one clean error.
#[test]
fn class2_bigwig_on_a_full_disk_is_an_error_not_a_panic() {
    let dir = tmp();
    let fa = dir.path().join("in.fa");
    std::fs::copy(FIXTURE, &fa).unwrap();
    index_fasta(&fa);
    let bw = dir.path().join("out.bw");
    // Whether bigtools panics or returns an error depends on which of its threads sees the
    // failure first: try several times.
    for limit in [1, 2, 4, 1, 2, 4] {
        let script = format!(
            "trap '' XFSZ; ulimit -f {limit}; exec '{}' likelihood -m {MODEL} -q '{}' -o '{}'",
            bin().display(),
            s(&fa),
            s(&bw)
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert_clean_error(&out, &["out.bw"]);
        assert!(!bw.exists());
        assert!(temp_files(dir.path()).is_empty(), "temp file left behind");
    }
}

// ---- class 3: silently wrong results with a .fai --------------------------------------------

#[test]
fn class3_duplicate_record_names_are_an_error_in_every_mode() {
    let dir = tmp();
    let fa = dir.path().join("dup.fa");
    let seq = fixture_bases();
    write_fasta(&fa, &[("a", &seq[..500]), ("a", &seq[500..1000])], 60, "\n");
    // Streamed.
    assert_clean_error(&likelihood(&[s(&fa)]), &["'a'", "unique"]);
    // Indexed.
    index_fasta(&fa);
    assert_clean_error(&likelihood(&[s(&fa)]), &["'a'", "unique"]);
    assert_clean_error(&likelihood(&[s(&fa), "-r", "a:1-10"]), &["'a'", "unique"]);
}

#[test]
fn class3_fai_for_another_line_width_is_an_error() {
    let dir = tmp();
    let fa = dir.path().join("w.fa");
    let seq = fixture_bases();
    write_fasta(&fa, &[("x", &seq)], 60, "\n");
    index_fasta(&fa);
    // Rewrap the FASTA at 50 bases per line, keep the old .fai.
    write_fasta(&fa, &[("x", &seq)], 50, "\n");
    let out = likelihood(&[s(&fa), "-r", "x:1001-1200"]);
    assert_clean_error(&out, &["re-index", "samtools faidx"]);
}

#[test]
fn class3_fai_shorter_than_the_record_is_an_error() {
    let dir = tmp();
    let fa = dir.path().join("short.fa");
    let seq = fixture_bases();
    write_fasta(&fa, &[("x", &seq), ("y", &seq[..300])], 60, "\n");
    let fai = index_fasta(&fa);
    let text = std::fs::read_to_string(&fai).unwrap();
    std::fs::write(&fai, text.replacen("\t3000\t", "\t2000\t", 1)).unwrap();
    assert_clean_error(&likelihood(&[s(&fa)]), &["'x'", "re-index"]);
    assert_clean_error(&likelihood(&[s(&fa), "-r", "x:1-10"]), &["'x'", "re-index"]);
}

#[test]
fn class3_empty_or_foreign_fai_is_an_error() {
    let dir = tmp();
    let fa = dir.path().join("e.fa");
    std::fs::copy(FIXTURE, &fa).unwrap();
    let fai = index_fasta(&fa);
    std::fs::write(&fai, "").unwrap();
    assert_clean_error(&likelihood(&[s(&fa)]), &["lists no records", "re-index"]);
    // A .fai made for another file: offsets and names do not match.
    let other = dir.path().join("o.fa");
    write_fasta(&other, &[("fixture", &fixture_bases()[..2000])], 80, "\n");
    let other_fai = index_fasta(&other);
    std::fs::copy(&other_fai, &fai).unwrap();
    assert_clean_error(&likelihood(&[s(&fa)]), &["re-index"]);
}

#[test]
fn class3_bgzip_with_stale_fai_is_an_error() {
    let dir = tmp();
    let plain = dir.path().join("p.fa");
    let seq = fixture_bases();
    write_fasta(&plain, &[("x", &seq)], 60, "\n");
    let gz = dir.path().join("p.fa.gz");
    bgzip_with_index(&plain, &gz);
    // Index of the 60-wide file, data rewrapped at 70.
    let plain70 = dir.path().join("p70.fa");
    write_fasta(&plain70, &[("x", &seq)], 70, "\n");
    let fai = std::fs::read(format!("{}.fai", s(&gz))).unwrap();
    bgzip_with_index(&plain70, &gz);
    std::fs::write(format!("{}.fai", s(&gz)), fai).unwrap();
    assert_clean_error(&likelihood(&[s(&gz), "-r", "x:2001-2100"]), &["re-index"]);
}

// ---- class 4: bad input that exited 0 ------------------------------------------------------

#[test]
fn class4_non_finite_weights_are_an_error() {
    let dir = tmp();
    let m = model_copy(dir.path(), |c| c.to_string());
    let path = m.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header["backbone.layers.1.mixer.out_proj.weight"];
    assert_eq!(t["dtype"], "F32");
    let at = 8 + n + t["data_offsets"][0].as_u64().unwrap() as usize + 4 * 7;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert_clean_error(
        &ssmgen(&["likelihood", "-q", "-m", s(&m), FIXTURE]),
        &["out_proj.weight", "NaN", "element 7"],
    );
}

#[test]
fn class4_empty_and_header_only_and_bare_cr_fasta_are_errors() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, "").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["x.fa", "empty"]);
    std::fs::write(&f, "\n\n").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["x.fa", "empty"]);
    std::fs::write(&f, ">only\n").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["x.fa", "no bases"]);
    std::fs::write(&f, ">a\rACGTACGTAC\rGGTACCA\r>b\rACGT\r").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["x.fa", "carriage return"]);
    // stdin too.
    let mut child = Command::new(bin())
        .args(["likelihood", "-m", MODEL, "-q", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    assert_clean_error(&child.wait_with_output().unwrap(), &["<stdin>", "empty"]);
}

#[test]
fn class4_some_empty_records_warn_with_a_count_and_strict_fails() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">a\nACGTACGTAC\n>empty\n>b\nGGTACCA\n").unwrap();
    let out = likelihood(&[s(&f)]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("1 of 3 record(s) have no bases"), "{err}");
    assert_clean_error(&likelihood(&[s(&f), "--strict"]), &["1 of 3", "--strict"]);
}

#[test]
fn class4_empty_bed_is_an_error_not_the_whole_genome() {
    let dir = tmp();
    let fa = dir.path().join("in.fa");
    std::fs::copy(FIXTURE, &fa).unwrap();
    index_fasta(&fa);
    let bed = dir.path().join("r.bed");
    std::fs::write(&bed, "").unwrap();
    assert_clean_error(
        &likelihood(&[s(&fa), "--regions", s(&bed)]),
        &["r.bed", "no intervals"],
    );
    std::fs::write(&bed, "track name=x\n# nothing\n").unwrap();
    assert_clean_error(
        &likelihood(&[s(&fa), "--regions", s(&bed)]),
        &["no intervals"],
    );
}

#[test]
fn class4_empty_ref_and_no_matching_contigs_are_errors() {
    let dir = tmp();
    let empty = dir.path().join("empty.fa");
    std::fs::write(&empty, "").unwrap();
    assert_clean_error(
        &score(&["--ref", s(&empty), "--vcf", "test-data/variants.vcf"]),
        &["empty.fa", "empty"],
    );
    let vcf = dir.path().join("v.vcf");
    std::fs::write(
        &vcf,
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n\
         chrZ\t10\t.\tA\tC\t.\t.\t.\n",
    )
    .unwrap();
    assert_clean_error(
        &score(&["--ref", FIXTURE, "--vcf", s(&vcf)]),
        &[
            "none of the 1 variant",
            "'chrZ'",
            "'fixture'",
            "--chrom-alias",
        ],
    );
}

#[test]
fn class4_chr_prefix_difference_is_matched_and_said_once() {
    let dir = tmp();
    let vcf = dir.path().join("v.vcf");
    let text = std::fs::read_to_string("test-data/variants.vcf")
        .unwrap()
        .replace("\nfixture\t", "\nchrfixture\t");
    std::fs::write(&vcf, text).unwrap();
    let renamed = score(&["--ref", FIXTURE, "--vcf", s(&vcf)]);
    let plain = score(&["--ref", FIXTURE, "--vcf", "test-data/variants.vcf"]);
    let err = stderr(&renamed);
    assert_eq!(err.matches("adding or dropping 'chr'").count(), 1, "{err}");
    let a = ok_stdout(renamed).replace("chrfixture", "fixture");
    assert_eq!(a, ok_stdout(plain));
    // Unknown contigs are a warning with a count; --strict makes them an error.
    std::fs::write(
        &vcf,
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n\
         fixture\t100\t.\tT\tA\t.\t.\t.\nchrUn\t10\t.\tA\tC\t.\t.\t.\n",
    )
    .unwrap();
    let out = score(&["--ref", FIXTURE, "--vcf", s(&vcf)]);
    assert!(stderr(&out).contains("1 variant(s) not scored: unknown_contig"));
    assert!(out.status.success());
    let out = score(&["--ref", FIXTURE, "--vcf", s(&vcf), "--strict"]);
    assert_clean_error(&out, &["chrUn", "unknown_contig", "--strict"]);
}

// ---- class 5: tiny inputs that took gigabytes ---------------------------------------------

#[test]
fn class5_bcf_record_length_is_bounded() {
    let bytes = bcf_bytes();
    let text_len = u32::from_le_bytes(bytes[5..9].try_into().unwrap()) as usize;
    let first = 9 + text_len;
    let mut bad = bytes[..first + 40].to_vec();
    bad[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let dir = tmp();
    let bcf = dir.path().join("big.bcf");
    std::fs::write(&bcf, &bad).unwrap();
    let out = under_1gib(&[
        "score-variants",
        "-q",
        "-m",
        MODEL,
        "--ref",
        FIXTURE,
        "--vcf",
        s(&bcf),
    ]);
    assert_clean_error(&out, &["big.bcf", "record 1"]);
}

#[test]
fn class5_allele_length_is_bounded() {
    let dir = tmp();
    let vcf = dir.path().join("v.vcf");
    let alt = "A".repeat(1_000_000);
    std::fs::write(
        &vcf,
        format!(
            "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n\
             fixture\t100\t.\tT\t{alt}\t.\t.\t.\n"
        ),
    )
    .unwrap();
    let out = under_1gib(&[
        "score-variants",
        "-q",
        "-m",
        MODEL,
        "--ref",
        FIXTURE,
        "--vcf",
        s(&vcf),
    ]);
    assert_clean_error(&out, &["line 3", "ALT allele of 1000000 bases", "10000"]);
}

#[test]
fn class5_record_name_length_is_bounded() {
    let dir = tmp();
    let f = dir.path().join("n.fa");
    let name = "n".repeat(20_000_000);
    std::fs::write(&f, format!(">{name}\nACGTACGT\n")).unwrap();
    let out = under_1gib(&["likelihood", "-q", "-m", MODEL, s(&f)]);
    assert_clean_error(&out, &["n.fa", "record 1", "longer than"]);
    let fq = dir.path().join("n.fq");
    std::fs::write(&fq, format!("@{}\nACGT\n+\nIIII\n", &name[..5000])).unwrap();
    assert_clean_error(&likelihood(&[s(&fq)]), &["n.fq", "record 1", "4096"]);
}

// ---- class 6: interrupts -------------------------------------------------------------------

/// A FASTA big enough that scoring it takes a while.
fn long_fasta(dir: &Path) -> PathBuf {
    let f = dir.join("long.fa");
    let seq = fixture_bases().to_ascii_uppercase().replace('N', "A");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&f).unwrap());
    writeln!(w, ">long").unwrap();
    for _ in 0..3000 {
        w.write_all(seq.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }
    drop(w);
    f
}

#[test]
fn class6_signals_remove_the_temporary_file() {
    let dir = tmp();
    let fa = long_fasta(dir.path());
    for signal in ["INT", "TERM", "HUP"] {
        let out = dir.path().join(format!("out-{signal}.csv"));
        let mut child = Command::new(bin())
            .args([
                "likelihood",
                "-m",
                MODEL,
                "-q",
                "-t",
                "1",
                s(&fa),
                "-o",
                s(&out),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while temp_files(dir.path()).is_empty() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!temp_files(dir.path()).is_empty(), "no temp file appeared");
        std::thread::sleep(Duration::from_millis(200));
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "SIG{signal}: run finished before the signal"
        );
        assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "SIG{signal}");
        assert!(!out.exists());
    }
}

#[test]
fn class6_error_paths_remove_the_temporary_file() {
    let dir = tmp();
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">a\nACGTACGT\n>b\nACGTXACGT\n").unwrap();
    let out = dir.path().join("out.npy");
    let r = ssmgen(&["embed", "-m", MODEL, "-q", s(&f), "-o", s(&out)]);
    assert_clean_error(&r, &["'b'", "position 5"]);
    assert!(temp_files(dir.path()).is_empty());
    assert!(!out.exists());
}

/// Two runs writing the same NPY: whichever finishes last wins, but its matrix always comes
/// with its own `.rows.bed` (the pair is committed under one lock).
#[test]
fn class6_concurrent_runs_never_mix_a_matrix_and_its_sidecar() {
    let dir = tmp();
    let seq = fixture_bases();
    let a = dir.path().join("a.fa");
    let b = dir.path().join("b.fa");
    write_fasta(&a, &[("a1", &seq[..100]), ("a2", &seq[100..200])], 60, "\n");
    write_fasta(
        &b,
        &[
            ("b1", &seq[..50]),
            ("b2", &seq[50..90]),
            ("b3", &seq[90..140]),
        ],
        60,
        "\n",
    );
    let out = dir.path().join("e.npy");
    // The race is between two renames: try it many times.
    for _ in 0..200 {
        let spawn = |input: &Path| {
            Command::new(bin())
                .args([
                    "embed",
                    "-m",
                    MODEL,
                    "-q",
                    "-t",
                    "1",
                    s(input),
                    "-o",
                    s(&out),
                ])
                .spawn()
                .unwrap()
        };
        let (mut x, mut y) = (spawn(&a), spawn(&b));
        assert!(x.wait().unwrap().success() && y.wait().unwrap().success());
        let npy = std::fs::read(&out).unwrap();
        let header = String::from_utf8_lossy(&npy[10..118]).into_owned();
        let rows = std::fs::read_to_string(format!("{}.rows.bed", s(&out))).unwrap();
        let names: Vec<&str> = rows
            .lines()
            .map(|l| l.split('\t').nth(3).unwrap())
            .collect();
        let n = names.len();
        assert!(
            header.contains(&format!("'shape': ({n}, 64)")),
            "{header} vs {names:?}"
        );
    }
}

// ---- class 7: messages -------------------------------------------------------------------

#[test]
fn class7_control_characters_keep_errors_on_one_line() {
    let dir = tmp();
    let fa = dir.path().join("in.fa");
    std::fs::copy(FIXTURE, &fa).unwrap();
    index_fasta(&fa);
    let out = likelihood(&[s(&fa), "-r", "chr\n1\x1b[31m:1-5"]);
    assert_clean_error(&out, &["chr\\n1\\u{1b}[31m"]);
    let f = dir.path().join("x.fa");
    std::fs::write(&f, ">a\x07b\nACGTZ\n").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["a\\u{7}b", "position 5"]);
}

#[test]
fn class7_write_errors_name_the_output_path() {
    let dir = tmp();
    let csv = dir.path().join("big.csv");
    let script = format!(
        "trap '' XFSZ; ulimit -f 8; exec '{}' likelihood -m {MODEL} -q {FIXTURE} -o '{}'",
        bin().display(),
        s(&csv)
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_clean_error(&out, &["big.csv"]);
    let err = stderr(&out);
    assert!(!err.contains("<csv output>"), "{err}");
    let emb = dir.path().join("big.tsv");
    let script = format!(
        "trap '' XFSZ; ulimit -f 8; exec '{}' embed -m {MODEL} -q {FIXTURE} --per-base -o '{}'",
        bin().display(),
        s(&emb)
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_clean_error(&out, &["big.tsv"]);
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn class7_plain_gzip_advice_says_recompress_with_bgzip() {
    let dir = tmp();
    let gz = dir.path().join("in.fa.gz");
    gzip(Path::new(FIXTURE), &gz);
    let out = likelihood(&[s(&gz), "-r", "fixture:1-10"]);
    assert_clean_error(&out, &["recompress with bgzip"]);
    let err = stderr(&out);
    assert!(
        !err.contains(&format!("samtools faidx {}", s(&gz))),
        "advises samtools faidx on plain gzip: {err}"
    );
}

// ---- classes found while looking (not in the issue's list) ---------------------------------

#[test]
fn new_fastq_damage_is_an_error_naming_the_record() {
    let dir = tmp();
    let f = dir.path().join("r.fq");
    for (text, needle) in [
        ("@r1\nACGT\n+\nIII\n", "4 bases but 3 quality scores"),
        ("@r1\nACGT\n+\n", "ends before the quality line"),
        ("@r1\nAC\nGT\n+\nIIII\n", "multi-line FASTQ"),
        ("@ok\nAC\n+\nII\nr2\nAC\n+\nII\n", "record 2"),
    ] {
        std::fs::write(&f, text).unwrap();
        assert_clean_error(&likelihood(&[s(&f)]), &["r.fq", needle]);
    }
}

/// `--window` near usize::MAX overflowed the end of the REF continuation (a panic on main).
#[test]
fn new_huge_window_is_not_a_panic() {
    let out = score(&[
        "--ref",
        FIXTURE,
        "--vcf",
        "test-data/variants.vcf",
        "--window",
        "18446744073709551615",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn new_crlf_indexed_fasta_gives_the_same_scores_as_lf() {
    let dir = tmp();
    let seq = fixture_bases();
    let lf = dir.path().join("lf.fa");
    let crlf = dir.path().join("crlf.fa");
    write_fasta(&lf, &[("x", &seq)], 60, "\n");
    write_fasta(&crlf, &[("x", &seq)], 60, "\r\n");
    index_fasta(&lf);
    index_fasta(&crlf);
    for args in [vec![], vec!["-r", "x:1001-1300"], vec!["-s", "both"]] {
        let mut a = vec![s(&lf)];
        a.extend(&args);
        let mut b = vec![s(&crlf)];
        b.extend(&args);
        assert_eq!(
            ok_stdout(likelihood(&a)),
            ok_stdout(likelihood(&b)),
            "{args:?}"
        );
    }
}

#[test]
fn new_non_utf8_record_name_is_an_error() {
    let dir = tmp();
    let f = dir.path().join("u.fa");
    std::fs::write(&f, b">a\xff\xfeb\nACGTACGT\n").unwrap();
    assert_clean_error(&likelihood(&[s(&f)]), &["u.fa", "record 1", "not UTF-8"]);
}

#[test]
fn new_output_that_is_a_directory_is_a_clean_error() {
    let dir = tmp();
    let out = likelihood(&[FIXTURE, "-o", s(dir.path())]);
    assert_clean_error(&out, &["is a directory"]);
}

#[test]
fn new_variants_from_stdin() {
    let run = |args: &[&str]| {
        let mut child = Command::new(bin())
            .args(["score-variants", "-m", MODEL, "-q"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let vcf = std::fs::read("test-data/variants.vcf").unwrap();
        let _ = child.stdin.take().unwrap().write_all(&vcf);
        child.wait_with_output().unwrap()
    };
    let piped = ok_stdout(run(&["--ref", FIXTURE, "--vcf", "-"]));
    let from_file = ok_stdout(score(&[
        "--ref",
        FIXTURE,
        "--vcf",
        "test-data/variants.vcf",
    ]));
    assert_eq!(piped, from_file);
    assert_clean_error(
        &run(&["--ref", "-", "--vcf", "-"]),
        &["cannot both read stdin"],
    );
}

/// A BCF record claiming 2^24 samples when the header names none made the decoder loop over
/// them (0.4 s for 567 bytes, found by the fuzzer): the count must match the header.
#[test]
fn new_bcf_sample_count_must_match_the_header() {
    let mut bytes = bcf_bytes();
    let text_len = u32::from_le_bytes(bytes[5..9].try_into().unwrap()) as usize;
    let site = 9 + text_len + 8;
    bytes[site + 20..site + 23].copy_from_slice(&[0, 0, 0xc4]);
    let dir = tmp();
    let bcf = dir.path().join("s.bcf");
    std::fs::write(&bcf, &bytes).unwrap();
    assert_clean_error(
        &score(&["--ref", FIXTURE, "--vcf", s(&bcf)]),
        &["s.bcf", "record 1", "samples, but the header names 0"],
    );
}
