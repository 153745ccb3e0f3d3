//! CLI tests of output naming and indexing: an unknown extension is an error naming the known
//! ones; `-O` picks the format on stdout; `.gz` outputs are BGZF and `--write-index` writes a
//! `.csi`/`.tbi` that noodles reads back, a region query returning exactly the expected rows;
//! VCF outputs carry provenance and, from a table, `##contig` lines.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use noodles_core::Region;
use sha2::Digest;

mod common;
use common::{assert_clean_error, ok_stdout};

const GENOME: &str = "test-data/shards.fa";
const VCF: &str = "test-data/shards.vcf";

fn ssmgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssmgen"))
        .args(args)
        .args(["-q", "--device", "cpu", "-t", "2"])
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The decompressed text of a (BGZF) file, after checking that it is BGZF: every member has
/// the `BC` extra field and the file ends with the 28-byte empty EOF block.
fn bgzf_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x1f\x8b\x08\x04",
        "{}: no BGZF header",
        path.display()
    );
    assert_eq!(
        &bytes[12..14],
        b"BC",
        "{}: no BGZF extra field",
        path.display()
    );
    let eof: [u8; 28] = [
        0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 0x06, 0, 0x42, 0x43, 0x02, 0, 0x1b, 0, 0x03,
        0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert!(
        bytes.ends_with(&eof),
        "{}: no BGZF EOF block",
        path.display()
    );
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The lines a region query returns, through the index at `index` (`.csi` or `.tbi`).
fn query(data: &Path, index: &Path, region: &str) -> Vec<String> {
    let region: Region = region.parse().unwrap();
    let file = std::fs::File::open(data).unwrap();
    let lines: Vec<String> = if index.extension().unwrap() == "tbi" {
        let index = noodles_tabix::fs::read(index).unwrap();
        let mut reader = noodles_csi::io::IndexedReader::new(file, index);
        reader
            .query(&region)
            .unwrap()
            .map(|r| r.unwrap().as_ref().to_string())
            .collect()
    } else {
        let index = noodles_csi::fs::read(index).unwrap();
        let mut reader = noodles_csi::io::IndexedReader::new(file, index);
        reader
            .query(&region)
            .unwrap()
            .map(|r| r.unwrap().as_ref().to_string())
            .collect()
    };
    assert!(!lines.is_empty(), "query {region} returned nothing");
    lines
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", path.display()))
}

/// Data lines of `text` (after `skip` header lines, without `#` lines) on `chrom` whose 1-based
/// closed extent `[from, to]` (from `extent`) meets `[a, b]`.
fn expected(
    text: &str,
    skip: usize,
    chrom: &str,
    (a, b): (u64, u64),
    extent: Extent,
) -> Vec<String> {
    text.lines()
        .skip(skip)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (from, to) = extent(&f);
            f[0] == chrom && from <= b && to >= a
        })
        .map(str::to_string)
        .collect()
}

/// The 1-based closed extent of a row's fields.
type Extent = fn(&[&str]) -> (u64, u64);

fn bed_extent(f: &[&str]) -> (u64, u64) {
    (f[1].parse::<u64>().unwrap() + 1, f[2].parse().unwrap())
}

fn pos_ref_extent(f: &[&str]) -> (u64, u64) {
    let pos: u64 = f[1].parse().unwrap();
    (pos, pos + f[3].len() as u64 - 1)
}

fn pos_extent(f: &[&str]) -> (u64, u64) {
    let pos: u64 = f[1].parse().unwrap();
    (pos, pos)
}

#[test]
fn bedgraph_gz_is_bgzf_and_both_indexes_answer_region_queries() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ok_stdout(ssmgen(&["likelihood", GENOME, "-s", "both"]));
    for kind in ["csi", "tbi"] {
        let out = dir.path().join(format!("l.{kind}.bedgraph.gz"));
        let flag = format!("--write-index={kind}");
        ok_stdout(ssmgen(&[
            "likelihood",
            GENOME,
            "-s",
            "both",
            "-o",
            p(&out),
            &flag,
        ]));
        let text = bgzf_text(&out);
        assert_eq!(text, plain, "BGZF output differs from the plain one");
        let index = with_ext(&out, kind);
        for (chrom, a, b) in [("chrB", 10, 20), ("chrA", 1, 1), ("chrC", 250, 300)] {
            let got = query(&out, &index, &format!("{chrom}:{a}-{b}"));
            let want = expected(&text, 0, chrom, (a, b), bed_extent);
            assert_eq!(got, want, "{kind} {chrom}:{a}-{b}");
        }
        // The other index kind was not written.
        let other = if kind == "csi" { "tbi" } else { "csi" };
        assert!(!with_ext(&out, other).exists());
    }
}

#[test]
fn variant_outputs_are_indexed_for_vcf_tsv_and_bed() {
    let dir = tempfile::tempdir().unwrap();
    let vcf = dir.path().join("v.vcf.gz");
    let tsv = dir.path().join("v.tsv.gz");
    let bed = dir.path().join("v.bed.gz");
    ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-o",
        p(&vcf),
        "-o",
        p(&tsv),
        "-o",
        p(&bed),
        "--write-index",
    ]));
    let cases: [(&Path, usize, Extent); 3] = [
        (&vcf, 0, pos_ref_extent),
        (&tsv, 1, pos_extent),
        (&bed, 0, bed_extent),
    ];
    for (path, skip, extent) in cases {
        let text = bgzf_text(path);
        let index = with_ext(path, "csi");
        for (chrom, a, b) in [("chrB", 100, 300), ("chrA", 1, 7), ("chrC", 1, 300)] {
            let got = query(path, &index, &format!("{chrom}:{a}-{b}"));
            let want = expected(&text, skip, chrom, (a, b), extent);
            assert_eq!(got, want, "{} {chrom}:{a}-{b}", path.display());
        }
    }
}

#[test]
fn embed_tsv_gz_is_indexed_past_its_header_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.tsv.gz");
    ok_stdout(ssmgen(&[
        "embed",
        GENOME,
        "--window",
        "100",
        "--stride",
        "50",
        "-o",
        p(&out),
        "--write-index=tbi",
    ]));
    let text = bgzf_text(&out);
    assert!(text.starts_with("chrom\tstart\tend\tname\te0"));
    let index = with_ext(&out, "tbi");
    let got = query(&out, &index, "chrB:120-260");
    let want = expected(&text, 1, "chrB", (120, 260), bed_extent);
    assert_eq!(got, want);
    assert_eq!(got.len(), 5, "windows meeting 120-260: starts 50..250");
}

fn sha256_hex(path: &str) -> String {
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn vcf_outputs_carry_provenance_and_table_input_gets_contigs() {
    let dir = tempfile::tempdir().unwrap();
    // VCF input, builtin model: its header is kept (its own ##contig lines), provenance added.
    let out = ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-O",
        "vcf",
    ]));
    let header: Vec<&str> = out.lines().take_while(|l| l.starts_with('#')).collect();
    let version = format!("##source=ssmgen {}", env!("CARGO_PKG_VERSION"));
    assert!(header.contains(&version.as_str()), "{header:?}");
    let command = header
        .iter()
        .find(|l| l.starts_with("##ssmgenCommand="))
        .unwrap();
    assert!(
        command
            .contains("score-variants --ref test-data/shards.fa --vcf test-data/shards.vcf -O vcf")
    );
    let weights = sha256_hex("models/ssmgen-dna-small/model.safetensors");
    let config = sha256_hex("models/ssmgen-dna-small/config.json");
    let model = header
        .iter()
        .find(|l| l.starts_with("##ssmgenModel="))
        .unwrap();
    assert!(model.contains("ID=ssmgen-dna-small"), "{model}");
    assert!(
        model.contains(&format!("WeightsSHA256={weights}")),
        "{model}"
    );
    assert!(model.contains(&format!("ConfigSHA256={config}")), "{model}");
    assert_eq!(
        header.iter().filter(|l| l.starts_with("##contig")).count(),
        3
    );
    assert!(header.last().unwrap().starts_with("#CHROM"));

    // A table input and a model folder: ##contig from the .fai, the folder's hashes.
    let table = dir.path().join("t.tsv");
    std::fs::write(
        &table,
        "chrom\tpos\tref\talt\nchrB\t104\tA\tC\nchrC\t6\tA\tG\n",
    )
    .unwrap();
    let vcf = dir.path().join("t.vcf");
    let model_dir = "test-data/fixture-model";
    ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        p(&table),
        "--model",
        model_dir,
        "-o",
        p(&vcf),
    ]));
    let text = std::fs::read_to_string(&vcf).unwrap();
    let contigs: Vec<&str> = text.lines().filter(|l| l.starts_with("##contig")).collect();
    assert_eq!(
        contigs,
        [
            "##contig=<ID=chrA,length=1500>",
            "##contig=<ID=chrB,length=1200>",
            "##contig=<ID=chrC,length=300>"
        ]
    );
    let weights = sha256_hex(&format!("{model_dir}/model.safetensors"));
    assert!(text.contains(&format!("ID=fixture-model,Source=\"{model_dir}\"")));
    assert!(text.contains(&format!("WeightsSHA256={weights}")));
    // TSV output has no VCF header lines.
    let tsv = ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        p(&table),
    ]));
    assert!(tsv.starts_with("chrom\tpos\tid"));
}

#[test]
fn stdout_format_comes_from_output_type_and_format_stays_an_alias() {
    let csv = ok_stdout(ssmgen(&["likelihood", GENOME, "-o", "-", "-O", "csv"]));
    assert!(csv.starts_with("chrom,pos,base,logp_fwd,logp_rev,logp\n"));
    let alias = ok_stdout(ssmgen(&["likelihood", GENOME, "-f", "csv"]));
    assert_eq!(alias, csv);
    let long = ok_stdout(ssmgen(&["likelihood", GENOME, "--output-type", "csv"]));
    assert_eq!(long, csv);
    let bedgraph = ok_stdout(ssmgen(&["likelihood", GENOME]));
    assert!(bedgraph.starts_with("chrA\t1\t2\t"), "{}", &bedgraph[..40]);

    let tsv = ok_stdout(ssmgen(&["embed", GENOME, "-o", "-", "-O", "tsv"]));
    assert!(tsv.starts_with("chrom\tstart\tend\tname\te0\t"));
    let csv = ok_stdout(ssmgen(&["embed", GENOME, "--format", "csv"]));
    assert!(csv.starts_with("chrom,start,end,name,e0,"));

    let vcf = ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-o",
        "-",
        "-O",
        "vcf",
    ]));
    assert!(vcf.starts_with("##fileformat=VCFv4.2\n"));
    let bed = ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-O",
        "bed",
    ]));
    assert!(bed.starts_with("chrA\t6\t7\t"), "{}", &bed[..30]);
    // -O also overrides a file's extension.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores.txt");
    ok_stdout(ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        VCF,
        "-o",
        p(&out),
        "-O",
        "csv",
    ]));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("chrom,pos,id,")
    );
}

#[test]
fn unknown_extensions_are_errors_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str, &[&str]); 5] = [
        (
            &["embed", GENOME],
            "x.h5",
            &[".csv", ".tsv", ".npy", ".safetensors", ".parquet"],
        ),
        (
            &["likelihood", GENOME],
            "x.tsv",
            &[".bedgraph", ".bg", ".csv", ".bw", ".bigwig", ".parquet"],
        ),
        (&["likelihood", GENOME], "x.tsv.gz", &[".bedgraph", ".csv"]),
        (
            &["score-variants", "--ref", GENOME, "--vcf", VCF],
            "x.feather",
            &[".tsv", ".csv", ".bed", ".vcf", ".parquet"],
        ),
        (
            &["embed", GENOME],
            "x.npy.gz",
            &["compresses text formats only"],
        ),
    ];
    for (args, name, known) in cases {
        let out = dir.path().join(name);
        let mut all = args.to_vec();
        all.extend(["-o", p(&out)]);
        let result = ssmgen(&all);
        let mut needles = vec![name];
        needles.extend(known);
        assert_clean_error(&result, &needles);
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    // With -O the name is the user's choice.
    let out = dir.path().join("x.scores");
    ok_stdout(ssmgen(&[
        "likelihood",
        GENOME,
        "-o",
        p(&out),
        "-O",
        "bedgraph",
    ]));
    assert!(out.exists());
}

#[test]
fn write_index_is_refused_where_no_index_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("l.bedgraph");
    let cases: [(Vec<&str>, &[&str]); 5] = [
        (vec!["likelihood", GENOME, "--write-index"], &["stdout"]),
        (
            vec!["likelihood", GENOME, "-o", "/dev/null", "--write-index"],
            &["device"],
        ),
        (
            vec!["likelihood", GENOME, "-o", p(&plain), "--write-index"],
            &[".gz"],
        ),
        (
            vec!["likelihood", GENOME, "-o", "x.csv.gz", "--write-index"],
            &["bedGraph output"],
        ),
        (
            vec![
                "score-variants",
                "--ref",
                GENOME,
                "--vcf",
                VCF,
                "-o",
                "x.csv.gz",
                "--write-index",
            ],
            &["not CSV"],
        ),
    ];
    for (args, needles) in cases {
        assert_clean_error(&ssmgen(&args), needles);
    }
    assert!(!plain.exists());
    assert!(!Path::new("x.csv.gz").exists());
}

#[test]
fn an_unindexable_output_leaves_neither_file_nor_index() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.bedgraph.gz");
    // Variants on chrA, chrB, then chrA again, taken with --allow-unsorted (rows follow the
    // input's order): interleaved chromosomes cannot be indexed.
    let inputs = tempfile::tempdir().unwrap();
    let vcf = inputs.path().join("interleaved.vcf");
    let text = std::fs::read_to_string(VCF).unwrap();
    let header: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let interleaved = [header, vec![body[0], body[19], body[1]]]
        .concat()
        .join("\n")
        + "\n";
    std::fs::write(&vcf, interleaved).unwrap();
    let tsv = dir.path().join("v.tsv.gz");
    let result = ssmgen(&[
        "score-variants",
        "--ref",
        GENOME,
        "--vcf",
        p(&vcf),
        "--allow-unsorted",
        "-o",
        p(&tsv),
        "--write-index",
    ]);
    assert_clean_error(&result, &["v.tsv.gz", "chrA", "not sorted"]);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "files left behind"
    );
    // Regions given interleaved are sorted first, so their output is indexed; an index from an
    // earlier run is replaced with the file.
    ok_stdout(ssmgen(&[
        "likelihood",
        GENOME,
        "-r",
        "chrA:1-50",
        "-r",
        "chrB:1-50",
        "-r",
        "chrA:100-150",
        "-o",
        p(&out),
        "--write-index",
    ]));
    let got = query(&out, &with_ext(&out, "csi"), "chrB:40-60");
    assert_eq!(got.len(), 11, "{got:?}");
}

/// A 40 kb record, so rows fall on both sides of the first 16 kb bin boundary of the index.
#[test]
fn index_bins_place_rows_at_the_16kb_boundary_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 12345u64;
    let seq: String = (0..40_000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ACGT"[(state >> 62) as usize] as char
        })
        .collect();
    let fa = dir.path().join("long.fa");
    common::write_fasta(&fa, &[("chrX", &seq)], 60, "\n");
    common::index_fasta(&fa);
    for kind in ["csi", "tbi"] {
        let out = dir.path().join(format!("l.{kind}.bedgraph.gz"));
        let flag = format!("--write-index={kind}");
        ok_stdout(ssmgen(&[
            "likelihood",
            p(&fa),
            "-r",
            "chrX:16000-17000",
            "-o",
            p(&out),
            &flag,
        ]));
        let index = with_ext(&out, kind);
        // 1-based 16384 is the last base of bin 0 at the finest level, 16385 the first of bin 1.
        for (a, b, first) in [
            (16384, 16384, "16383"),
            (16385, 16385, "16384"),
            (16380, 16390, "16379"),
        ] {
            let got = query(&out, &index, &format!("chrX:{a}-{b}"));
            assert_eq!(got.len() as u64, b - a + 1, "{kind} {a}-{b}: {got:?}");
            assert_eq!(got[0].split('\t').nth(1), Some(first), "{kind} {a}-{b}");
        }
    }
}
