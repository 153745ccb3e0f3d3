//! State-cached variant scores equal the naive computation: the full REF and ALT sequences
//! scored from the chromosome start, on both strands.

use std::path::Path;

use ssmgen::backend::Backend;
use ssmgen::backend::cpu::{CpuBackend, CpuState};
use ssmgen::input::SequenceFile;
use ssmgen::model::MambaConfig;
use ssmgen::model::Model;
use ssmgen::runner::ScoreStream;
use ssmgen::tokenizer::Tokenizer;
use ssmgen::variants::engine::EngineOptions;
use ssmgen::variants::{VariantFile, score_all};

mod common;

const WINDOW: usize = 40;

/// Per-base scores of a whole sequence from its start.
fn whole(backend: &CpuBackend, tok: &Tokenizer, seq: &str) -> Vec<f32> {
    let mut tokens = Vec::new();
    tok.encode(seq.as_bytes(), &mut tokens).unwrap();
    let mut s = ScoreStream::new(backend, tok, None).unwrap();
    let mut out = Vec::new();
    s.push(&tokens, &mut out).unwrap();
    out
}

/// The CPU backend announcing a checkpoint stride, as a GPU does, so that the engine's replay
/// from the checkpoint before each variant is checked here too.
struct Strided(CpuBackend, usize);

impl Backend for Strided {
    type State = CpuState;
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn config(&self) -> &MambaConfig {
        self.0.config()
    }
    fn new_state(&self) -> ssmgen::Result<CpuState> {
        self.0.new_state()
    }
    fn forward(&self, s: &mut CpuState, t: &[u32], logp: &mut Vec<f32>) -> ssmgen::Result<()> {
        self.0.forward(s, t, logp)
    }
    fn forward_hidden(
        &self,
        s: &mut CpuState,
        t: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> ssmgen::Result<()> {
        self.0.forward_hidden(s, t, layer, hidden)
    }
    fn checkpoint_stride(&self) -> usize {
        self.1
    }
}

fn sum(s: &[f32]) -> f64 {
    s.iter().filter(|v| !v.is_nan()).map(|&v| v as f64).sum()
}

/// (llr, delta_ll) of ALT at 0-based `p` replacing `r` bases, on the strand given by `flip`.
fn naive(
    backend: &CpuBackend,
    tok: &Tokenizer,
    seq: &str,
    p: usize,
    reference: &str,
    alt: &str,
    flip: bool,
) -> (Option<f64>, f64) {
    let alt_seq = format!("{}{}{}", &seq[..p], alt, &seq[p + reference.len()..]);
    let (ref_seq, alt_seq) = if flip {
        (common::revcomp(seq), common::revcomp(&alt_seq))
    } else {
        (seq.to_string(), alt_seq)
    };
    let q = if flip {
        seq.len() - p - reference.len()
    } else {
        p
    };
    let rs = whole(backend, tok, &ref_seq);
    let as_ = whole(backend, tok, &alt_seq);
    let r_end = (q + reference.len() + WINDOW).min(rs.len());
    let a_end = (q + alt.len() + WINDOW).min(as_.len());
    let llr = (!rs[q].is_nan() && !as_[q].is_nan()).then(|| as_[q] as f64 - rs[q] as f64);
    (llr, sum(&as_[q..a_end]) - sum(&rs[q..r_end]))
}

#[test]
fn cached_scores_equal_full_sequence_scores_on_both_strands() {
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let backend = CpuBackend::new(&model);
    let tok = Tokenizer::new(&model.config);
    let seq = common::fixture_sequence().to_ascii_uppercase();
    let base = |p: usize| &seq[p..p + 1];
    let other = |p: usize| if base(p) == "A" { "C" } else { "A" };
    // (1-based pos, ref, alt): SNVs (first base, middle, near the end, two ALTs at one site),
    // a deletion and an insertion with their anchor base, and a multi-base substitution.
    let mut cases: Vec<(usize, String, String)> = vec![
        (1, base(0).into(), other(0).into()),
        (250, base(249).into(), other(249).into()),
        (250, base(249).into(), "G".into()),
        (1500, base(1499).into(), other(1499).into()),
        (2990, base(2989).into(), other(2989).into()),
        (1001, seq[1000..1004].into(), base(1000).into()),
        (2200, base(2199).into(), format!("{}TTAG", base(2199))),
        (1800, seq[1799..1802].into(), "GCA".into()),
    ];
    cases.retain(|(p, r, _)| !seq[p - 1..p - 1 + r.len()].contains('N'));
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("v.tsv");
    let mut text = String::from("chrom\tpos\tref\talt\n");
    for (p, r, a) in &cases {
        text.push_str(&format!("fixture\t{p}\t{r}\t{a}\n"));
    }
    std::fs::write(&table, text).unwrap();
    let file = VariantFile::read(&table).unwrap();
    let score = |backend: &Strided, opts: &EngineOptions| {
        let mut reference = SequenceFile::open(Path::new("test-data/fixture.fa"), false).unwrap();
        score_all(
            backend,
            &mut reference,
            &file,
            &Default::default(),
            opts,
            &|_| {},
        )
        .unwrap()
    };
    let opts = EngineOptions {
        window: WINDOW,
        context: None,
        stripe_len: 333,
        bos: None,
    };
    // Stride 1 snapshots at every variant; 7 and 64 replay from the checkpoint before it.
    for stride in [1, 7, 64] {
        let strided = Strided(CpuBackend::new(&model), stride);
        let results = score(&strided, &opts);
        for ((p, r, a), res) in cases.iter().zip(&results) {
            assert_eq!(res.skip, None, "{p} {r}>{a}");
            for (flip, got) in [(false, res.fwd.unwrap()), (true, res.rev.unwrap())] {
                let (llr, dll) = naive(&backend, &tok, &seq, p - 1, r, a, flip);
                assert!(
                    (got.delta_ll - dll).abs() <= 1e-5,
                    "stride {stride}, {p} {r}>{a} flip={flip}: {} vs {dll}",
                    got.delta_ll
                );
                match (got.llr, llr) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 1e-5,
                        "stride {stride}, {p} {r}>{a} flip={flip}: llr {x} vs {y}"
                    ),
                    (x, y) => assert_eq!(x, y, "{p} {r}>{a} flip={flip}: llr presence"),
                }
            }
        }
        assert_eq!(
            results[0].fwd.unwrap().llr,
            None,
            "the first base has no upstream without BOS"
        );
        // The windowed mode with a context longer than the sequence is the same computation.
        let windowed = score(
            &strided,
            &EngineOptions {
                context: Some(10_000),
                ..opts
            },
        );
        for (a, b) in results.iter().zip(&windowed) {
            assert!((a.delta_ll().unwrap() - b.delta_ll().unwrap()).abs() <= 1e-5);
        }
    }
}

/// More variants than the engine copies checkpoints for in one stripe (256): the pass is cut
/// into shorter stripes, and every variant still gets the score it gets when scored alone.
#[test]
fn many_variants_score_as_they_do_in_small_groups() {
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let seq = common::fixture_sequence().to_ascii_uppercase();
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..seq.len())
        .step_by(9)
        .filter(|&p| &seq[p..p + 1] != "N")
        .map(|p| {
            let alt = if &seq[p..p + 1] == "A" { "G" } else { "A" };
            format!("fixture\t{}\t{}\t{alt}\n", p + 1, &seq[p..p + 1])
        })
        .collect();
    assert!(rows.len() > 300);
    let score = |rows: &[String], name: &str| {
        let table = dir.path().join(name);
        std::fs::write(&table, format!("chrom\tpos\tref\talt\n{}", rows.concat())).unwrap();
        let file = VariantFile::read(&table).unwrap();
        let mut reference = SequenceFile::open(Path::new("test-data/fixture.fa"), false).unwrap();
        let opts = EngineOptions {
            window: 16,
            context: None,
            stripe_len: 100_000,
            bos: None,
        };
        let backend = CpuBackend::new(&model);
        score_all(
            &backend,
            &mut reference,
            &file,
            &Default::default(),
            &opts,
            &|_| {},
        )
        .unwrap()
    };
    let all = score(&rows, "all.tsv");
    let mut grouped = Vec::new();
    for (i, group) in rows.chunks(100).enumerate() {
        grouped.extend(score(group, &format!("g{i}.tsv")));
    }
    assert_eq!(all.len(), grouped.len());
    for (a, b) in all.iter().zip(&grouped) {
        assert_eq!(a.fwd, b.fwd);
        assert_eq!(a.rev, b.rev);
    }
}

/// A backend with a checkpoint stride (as a GPU) batches continuations across stripes and
/// variants, several from one snapshot, sorted by length: every variant still gets, bit for
/// bit, the score it gets from a checkpoint at the variant itself (the CPU, stride 1), with
/// stripes short enough that a batch holds continuations of several stripes, and long.
#[test]
fn strided_batches_across_stripes_give_the_unstrided_scores() {
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let seq = common::fixture_sequence().to_ascii_uppercase();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("chrom\tpos\tref\talt\n");
    let mut n = 0;
    for p in (2..seq.len() - 4).step_by(3) {
        let r = &seq[p..p + 1];
        if seq[p..p + 3].contains('N') {
            continue;
        }
        let alt = if r == "A" { "G" } else { "A" };
        // SNVs, with a deletion and an insertion now and then (continuations of other lengths).
        let row = match p % 7 {
            0 => format!("fixture\t{}\t{}\t{r}\n", p + 1, &seq[p..p + 3]),
            1 => format!("fixture\t{}\t{r}\t{r}TG\n", p + 1),
            _ => format!("fixture\t{}\t{r}\t{alt}\n", p + 1),
        };
        text.push_str(&row);
        n += 1;
    }
    assert!(n > 600, "more continuations than one batch");
    let table = dir.path().join("dense.tsv");
    std::fs::write(&table, text).unwrap();
    let file = VariantFile::read(&table).unwrap();
    let score = |backend: &Strided, stripe_len: usize| {
        let mut reference = SequenceFile::open(Path::new("test-data/fixture.fa"), false).unwrap();
        let opts = EngineOptions {
            window: 40,
            context: None,
            stripe_len,
            bos: None,
        };
        score_all(
            backend,
            &mut reference,
            &file,
            &Default::default(),
            &opts,
            &|_| {},
        )
        .unwrap()
    };
    let plain = score(&Strided(CpuBackend::new(&model), 1), 100_000);
    for (stride, stripe_len) in [(64, 640), (64, 100_000), (7, 700)] {
        let strided = score(&Strided(CpuBackend::new(&model), stride), stripe_len);
        assert_eq!(plain.len(), strided.len());
        for (a, b) in plain.iter().zip(&strided) {
            assert!(a.fwd.is_some() && a.rev.is_some());
            assert_eq!(a.fwd, b.fwd, "stride {stride}, stripe {stripe_len}");
            assert_eq!(a.rev, b.rev, "stride {stride}, stripe {stripe_len}");
        }
    }
}

/// A backend whose continuations fail: the error comes back from the scoring call, with
/// batches of continuations pending, instead of a hang or a panic.
struct FailingContinuations(CpuBackend);

impl Backend for FailingContinuations {
    type State = CpuState;
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn config(&self) -> &MambaConfig {
        self.0.config()
    }
    fn new_state(&self) -> ssmgen::Result<CpuState> {
        self.0.new_state()
    }
    fn forward(&self, s: &mut CpuState, t: &[u32], logp: &mut Vec<f32>) -> ssmgen::Result<()> {
        self.0.forward(s, t, logp)
    }
    fn forward_hidden(
        &self,
        s: &mut CpuState,
        t: &[u32],
        layer: Option<usize>,
        hidden: &mut Vec<f32>,
    ) -> ssmgen::Result<()> {
        self.0.forward_hidden(s, t, layer, hidden)
    }
    fn forward_continuations(
        &self,
        _starts: &[&CpuState],
        _tokens: &[u32],
        _observed: &mut Vec<f32>,
    ) -> ssmgen::Result<()> {
        Err(ssmgen::Error::Backend("continuations refused".into()))
    }
}

#[test]
fn a_failing_continuation_batch_is_reported() {
    let model = Model::load(Path::new("test-data/fixture-model")).unwrap();
    let backend = FailingContinuations(CpuBackend::new(&model));
    let tok = Tokenizer::new(&model.config);
    let seq = common::fixture_sequence().to_ascii_uppercase();
    let mut tokens = Vec::new();
    tok.encode(seq.as_bytes(), &mut tokens).unwrap();
    // Enough variants for several batches, so that batches are in flight when one fails.
    let variants: Vec<_> = (10..tokens.len() - 10)
        .step_by(3)
        .map(|pos| ssmgen::variants::engine::StrandVariant {
            pos,
            ref_len: 1,
            alt: vec![if tokens[pos] == 7 { 8 } else { 7 }],
        })
        .collect();
    let opts = EngineOptions {
        window: 8,
        context: None,
        stripe_len: 256,
        bos: None,
    };
    let err = ssmgen::variants::engine::score_strand(&backend, &tok, &tokens, &variants, &opts)
        .expect_err("the continuations fail");
    assert!(err.to_string().contains("continuations refused"), "{err}");
}
