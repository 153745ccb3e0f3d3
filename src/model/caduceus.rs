//! Caduceus checkpoints (`CaduceusForMaskedLM`, `model_type: caduceus`) as published: the
//! bidirectional (BiMamba) and reverse-complement-equivariant (RCPS) masked DNA language models
//! of Schiff et al. (2024), and PlantCaduceus, which uses the same code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::weights::{Loader, MixerDims, read_mixer};
use super::{LayerWeights, WeightDtype};
use crate::error::{Error, Result};

/// The Caduceus tokenizer's ids: A=7, C=8, G=9, T=10, N=11.
pub const BASE_TOKENS: [(char, u32); 5] = [('A', 7), ('C', 8), ('G', 9), ('T', 10), ('N', 11)];
/// The `[MASK]` token.
pub const MASK_TOKEN: u32 = 3;

/// How the two directions of a BiMamba mixer are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiStrategy {
    /// `forward + reverse`.
    Add,
    /// `forward * reverse`, element by element.
    Multiply,
}

/// The hyperparameters of a Caduceus model.
#[derive(Clone, Debug, PartialEq)]
pub struct CaduceusConfig {
    /// Residual stream width per strand (`d_model`; RCPS models carry twice as many channels).
    pub d_model: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Vocabulary size after padding to `pad_vocab_size_multiple` (rows of the embedding).
    pub vocab_size: usize,
    /// Mixer inner width (`expand * d_model`).
    pub d_inner: usize,
    /// SSM state size per channel.
    pub d_state: usize,
    /// Conv width.
    pub d_conv: usize,
    /// Rank of the step-size projection.
    pub dt_rank: usize,
    /// Whether `in_proj`/`out_proj` carry biases.
    pub bias: bool,
    /// Whether the conv carries a bias.
    pub conv_bias: bool,
    /// RMSNorm epsilon.
    pub norm_epsilon: f32,
    /// Whether each mixer also runs over the flipped sequence.
    pub bidirectional: bool,
    /// How the two directions combine.
    pub strategy: BiStrategy,
    /// Whether the reverse mixer shares the forward one's `in_proj`/`out_proj`.
    pub weight_tie: bool,
    /// Reverse-complement parameter sharing (2 × `d_model` channels).
    pub rcps: bool,
    /// The released code's fused add-norm, whose RCPS blocks swap the two channel halves of
    /// the residual stream at every layer (its unfused path does not).
    pub fused_add_norm: bool,
    /// Token id → its complement's id, `vocab_size` entries.
    pub complement: Vec<u32>,
    /// Training context length, when the checkpoint says (`ssmgen.window_len` or a
    /// `seqlen-…k` model name); `None` otherwise.
    pub window_len: Option<usize>,
}

#[derive(Deserialize)]
struct RawSsmCfg {
    #[serde(default = "d_state")]
    d_state: usize,
    #[serde(default = "d_conv")]
    d_conv: usize,
    #[serde(default = "expand")]
    expand: usize,
    #[serde(default)]
    dt_rank: Option<serde_json::Value>,
    #[serde(default = "yes")]
    conv_bias: bool,
    #[serde(default)]
    bias: bool,
    #[serde(default)]
    layer: Option<String>,
}

impl Default for RawSsmCfg {
    fn default() -> Self {
        RawSsmCfg {
            d_state: d_state(),
            d_conv: d_conv(),
            expand: expand(),
            dt_rank: None,
            conv_bias: true,
            bias: false,
            layer: None,
        }
    }
}

#[derive(Deserialize)]
struct RawConfig {
    d_model: usize,
    n_layer: usize,
    vocab_size: usize,
    #[serde(default)]
    ssm_cfg: Option<RawSsmCfg>,
    #[serde(default = "yes")]
    rms_norm: bool,
    #[serde(default = "yes")]
    fused_add_norm: bool,
    #[serde(default = "pad_multiple")]
    pad_vocab_size_multiple: usize,
    #[serde(default = "eps")]
    norm_epsilon: f32,
    #[serde(default = "yes")]
    bidirectional: bool,
    #[serde(default)]
    bidirectional_strategy: Option<String>,
    #[serde(default = "yes")]
    bidirectional_weight_tie: bool,
    #[serde(default)]
    rcps: bool,
    #[serde(default)]
    complement_map: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    _name_or_path: Option<String>,
    #[serde(default)]
    ssmgen: Option<RawSsmgen>,
}

#[derive(Deserialize, Default)]
struct RawSsmgen {
    #[serde(default)]
    window_len: Option<usize>,
}

fn d_state() -> usize {
    16
}
fn d_conv() -> usize {
    4
}
fn expand() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn pad_multiple() -> usize {
    8
}
fn eps() -> f32 {
    1e-5
}

/// Largest sizes accepted from a config, so a corrupt file cannot ask for absurd allocations.
const MAX_WIDTH: usize = 1 << 16;
const MAX_LAYERS: usize = 1024;
const MAX_VOCAB: usize = 1 << 20;

impl CaduceusConfig {
    /// Parses the JSON text of a Caduceus `config.json`; the error is a message without path.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let layout: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        if let Some(layer_cfg) = layout.get("layer_cfg") {
            let version = layer_cfg
                .pointer("/mamba_cfg/version")
                .and_then(|v| v.as_str())
                .unwrap_or("v2");
            return Err(format!(
                "config.json: the nested layer_cfg layout (PlantCAD2's Caduceus, mamba_cfg \
                 version {version:?}) is not supported yet: only the original Caduceus layout \
                 with Mamba-1 mixers (docs/models.md)"
            ));
        }
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        let ssm = raw.ssm_cfg.unwrap_or_default();
        if let Some(layer) = ssm.layer.as_deref().filter(|l| *l != "Mamba1") {
            return Err(format!(
                "config.json: ssm_cfg.layer {layer:?} is not supported (Mamba1 mixers only)"
            ));
        }
        if !raw.rms_norm {
            return Err("config.json: rms_norm = false (LayerNorm) is not supported".into());
        }
        let strategy = match raw.bidirectional_strategy.as_deref() {
            None | Some("add") => BiStrategy::Add,
            Some("ew_multiply") => BiStrategy::Multiply,
            Some(other) => {
                return Err(format!(
                    "config.json: bidirectional_strategy {other:?} is not one of add, ew_multiply"
                ));
            }
        };
        let sizes = [
            ("d_model", raw.d_model, MAX_WIDTH),
            ("n_layer", raw.n_layer, MAX_LAYERS),
            ("vocab_size", raw.vocab_size, MAX_VOCAB),
            ("ssm_cfg.d_state", ssm.d_state, 256),
            ("ssm_cfg.d_conv", ssm.d_conv, 16),
            ("ssm_cfg.expand", ssm.expand, 16),
            ("pad_vocab_size_multiple", raw.pad_vocab_size_multiple, 1024),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return Err(format!(
                    "config.json: {name} = {value} is outside 1..={max}"
                ));
            }
        }
        let dt_rank = match ssm.dt_rank {
            None => raw.d_model.div_ceil(16),
            Some(serde_json::Value::String(s)) if s == "auto" => raw.d_model.div_ceil(16),
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(r) if r > 0 && r as usize <= MAX_WIDTH => r as usize,
                _ => {
                    return Err(format!(
                        "config.json: ssm_cfg.dt_rank {n} is not a usable rank"
                    ));
                }
            },
            Some(other) => {
                return Err(format!(
                    "config.json: ssm_cfg.dt_rank must be an integer or \"auto\", found {other}"
                ));
            }
        };
        let vocab_size = raw.vocab_size.next_multiple_of(raw.pad_vocab_size_multiple);
        let complement = complement_from_map(raw.complement_map.as_ref(), vocab_size)?;
        if raw.rcps && raw.complement_map.is_none() {
            return Err("config.json: rcps = true needs a complement_map".into());
        }
        let window_len = raw
            .ssmgen
            .and_then(|s| s.window_len)
            .or_else(|| raw._name_or_path.as_deref().and_then(window_from_name));
        let config = CaduceusConfig {
            d_model: raw.d_model,
            n_layer: raw.n_layer,
            vocab_size,
            d_inner: ssm.expand * raw.d_model,
            d_state: ssm.d_state,
            d_conv: ssm.d_conv,
            dt_rank,
            bias: ssm.bias,
            conv_bias: ssm.conv_bias,
            norm_epsilon: raw.norm_epsilon,
            bidirectional: raw.bidirectional,
            strategy,
            weight_tie: raw.bidirectional_weight_tie,
            rcps: raw.rcps,
            fused_add_norm: raw.fused_add_norm,
            complement,
            window_len,
        };
        for (base, id) in BASE_TOKENS {
            if id as usize >= config.vocab_size {
                return Err(format!(
                    "config.json: vocab_size {} has no room for the Caduceus token {id} of {base}",
                    config.vocab_size
                ));
            }
        }
        Ok(config)
    }

    /// Channels of the residual stream: `2 * d_model` for RCPS models.
    pub fn stream_width(&self) -> usize {
        if self.rcps {
            2 * self.d_model
        } else {
            self.d_model
        }
    }

    fn mixer_dims(&self) -> MixerDims {
        MixerDims {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            dt_rank: self.dt_rank,
            use_bias: self.bias,
            use_conv_bias: self.conv_bias,
        }
    }
}

/// The complement map from `config.json`, read by key (its order in the file is not trusted:
/// transformers writes keys sorted as strings); ids it does not name map to themselves.
fn complement_from_map(
    map: Option<&BTreeMap<String, serde_json::Value>>,
    vocab: usize,
) -> std::result::Result<Vec<u32>, String> {
    let mut out: Vec<u32> = (0..vocab as u32).collect();
    for (key, value) in map.into_iter().flatten() {
        let from: usize = key
            .trim()
            .parse()
            .map_err(|_| format!("config.json: complement_map key {key:?} is not a token id"))?;
        let to = value
            .as_u64()
            .filter(|&t| (t as usize) < vocab)
            .ok_or_else(|| {
                format!(
                    "config.json: complement_map[{key:?}] = {value} is not a token id below {vocab}"
                )
            })?;
        if from >= vocab {
            return Err(format!(
                "config.json: complement_map key {key:?} is outside the vocabulary of {vocab}"
            ));
        }
        out[from] = to as u32;
    }
    Ok(out)
}

/// `131072` from a published model name such as `caduceus-ps_seqlen-131k_d_model-256_n_layer-16`.
fn window_from_name(name: &str) -> Option<usize> {
    let rest = &name[name.find("seqlen-")? + "seqlen-".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: usize = digits.parse().ok()?;
    match rest[digits.len()..].chars().next() {
        // "131k" is 131,072 and "1k" 1,024: a power of two written in thousands.
        Some('k') | Some('K') => {
            let approx = n.checked_mul(1000)?;
            let power = approx.checked_next_power_of_two()?;
            Some(if power - approx <= approx / 20 {
                power
            } else {
                approx
            })
        }
        _ => Some(n),
    }
}

/// One Caduceus block: its norm and its forward (and reverse) mixers.
#[derive(Clone, Debug)]
pub struct CaduceusBlock {
    /// RMSNorm scale, `[d_model]`.
    pub norm: Vec<f32>,
    /// The forward mixer (its `norm` field repeats the block's).
    pub fwd: LayerWeights,
    /// The reverse mixer of a bidirectional model.
    pub rev: Option<LayerWeights>,
}

/// All parameters of a `CaduceusForMaskedLM`, widened to f32.
#[derive(Clone, Debug)]
pub struct CaduceusWeights {
    /// Embedding table `[vocab, d_model]`.
    pub embeddings: Vec<f32>,
    /// The blocks, in order.
    pub blocks: Vec<CaduceusBlock>,
    /// Final RMSNorm scale.
    pub norm_f: Vec<f32>,
    /// LM head `[vocab, d_model]` (the embedding table when tied).
    pub lm_head: Vec<f32>,
    /// The dtype the checkpoint stored its projections in.
    pub dtype: WeightDtype,
}

/// A loaded Caduceus model.
#[derive(Clone, Debug)]
pub struct CaduceusModel {
    /// Hyperparameters.
    pub config: CaduceusConfig,
    /// Parameters.
    pub weights: std::sync::Arc<CaduceusWeights>,
    /// Where it came from, for messages.
    pub source: String,
}

impl CaduceusModel {
    /// Loads `dir/config.json` + `dir/model.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config = CaduceusConfig::from_json(&text).map_err(|m| Error::model(&config_path, m))?;
        let weights_path = dir.join("model.safetensors");
        let file = std::fs::File::open(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        // SAFETY: the map is read-only and dropped before this function returns; a concurrent
        // writer could only corrupt values, which the shape checks and safetensors header guard.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&weights_path, e))?;
        let weights = CaduceusWeights::from_bytes(&config, &map, &weights_path)?;
        Ok(CaduceusModel {
            config,
            weights: std::sync::Arc::new(weights),
            source: dir.display().to_string(),
        })
    }

    /// Number of parameters (tied tensors counted once).
    pub fn parameter_count(&self) -> usize {
        let c = &self.config;
        let w = &self.weights;
        let mixer = |m: &LayerWeights, with_proj: bool| {
            let proj = m.in_proj.len() + m.out_proj.len();
            m.conv_weight.len()
                + m.conv_bias.as_ref().map_or(0, Vec::len)
                + m.x_proj.len()
                + m.dt_proj.len()
                + m.dt_bias.len()
                + m.a_log.len()
                + m.d.len()
                + if with_proj { proj } else { 0 }
        };
        let blocks: usize = w
            .blocks
            .iter()
            .map(|b| {
                b.norm.len()
                    + mixer(&b.fwd, true)
                    + b.rev.as_ref().map_or(0, |r| mixer(r, !c.weight_tie))
            })
            .sum();
        let head = if w.lm_head == w.embeddings {
            0
        } else {
            w.lm_head.len()
        };
        w.embeddings.len() + blocks + w.norm_f.len() + head
    }
}

impl CaduceusWeights {
    /// Reads and checks every tensor against `config`; `origin` names the file in errors.
    pub fn from_bytes(config: &CaduceusConfig, bytes: &[u8], origin: &Path) -> Result<Self> {
        let l = Loader::new(bytes, origin)?;
        let (v, d) = (config.vocab_size, config.d_model);
        let bb = "caduceus.backbone";
        let emb_name = if config.rcps {
            format!("{bb}.embeddings.word_embeddings.embedding.weight")
        } else {
            format!("{bb}.embeddings.word_embeddings.weight")
        };
        let embeddings = l.get(&emb_name, &[v, d])?;
        // The RCPS modules also store the complement map as buffers: they must agree with the
        // config's map, read by key.
        for buffer in [
            format!("{bb}.embeddings.word_embeddings.complement_map"),
            "lm_head.complement_map".to_string(),
        ] {
            if config.rcps && l.has(&buffer) {
                let stored = l.get_int(&buffer, &[v])?;
                if stored
                    .iter()
                    .zip(&config.complement)
                    .any(|(&a, &b)| a != b as i64)
                {
                    return Err(l.err(format!(
                        "tensor '{buffer}' disagrees with config.json's complement_map"
                    )));
                }
            }
        }
        let mixer_prefix = if config.rcps {
            "mixer.submodule"
        } else {
            "mixer"
        };
        let dims = config.mixer_dims();
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("{bb}.layers.{i}");
            let norm = read_either(
                &l,
                &[
                    format!("{p}.norm.weight"),
                    format!("{p}.norm.submodule.weight"),
                ],
                d,
            )?;
            let fwd = read_mixer(
                &l,
                &format!("{p}.{mixer_prefix}.mamba_fwd"),
                norm.clone(),
                dims,
                None,
            )?;
            let rev = if config.bidirectional {
                let tied = config.weight_tie.then_some(&fwd);
                Some(read_mixer(
                    &l,
                    &format!("{p}.{mixer_prefix}.mamba_rev"),
                    norm.clone(),
                    dims,
                    tied,
                )?)
            } else {
                None
            };
            blocks.push(CaduceusBlock { norm, fwd, rev });
        }
        if l.has(&format!("{bb}.layers.{}.norm.weight", config.n_layer)) {
            return Err(l.err(format!(
                "checkpoint has more layers than n_layer = {}",
                config.n_layer
            )));
        }
        let norm_f = read_either(
            &l,
            &[
                format!("{bb}.norm_f.weight"),
                format!("{bb}.norm_f.submodule.weight"),
            ],
            d,
        )?;
        let head_name = if config.rcps {
            "lm_head.lm_head.weight"
        } else {
            "lm_head.weight"
        };
        let lm_head = if l.has(head_name) {
            l.get(head_name, &[v, d])?
        } else {
            // Caduceus ties the LM head to the embedding (always for RCPS; by default otherwise).
            embeddings.clone()
        };
        let dtype = l.dtype_of(&emb_name)?;
        Ok(CaduceusWeights {
            embeddings,
            blocks,
            norm_f,
            lm_head,
            dtype,
        })
    }
}

/// The first of `names` that is present, with shape `[len]`.
fn read_either(l: &Loader<'_>, names: &[String], len: usize) -> Result<Vec<f32>> {
    match names.iter().find(|n| l.has(n)) {
        Some(name) => l.get(name, &[len]),
        None => Err(l.err(format!("tensor '{}' is missing", names[0]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_configs_and_weights() {
        for (dir, rcps) in [
            ("test-data/caduceus-ps", true),
            ("test-data/caduceus-ps-lean", true),
            ("test-data/caduceus-ph", false),
            ("test-data/caduceus-ph-mul-lean", false),
        ] {
            let m = CaduceusModel::load(Path::new(dir)).unwrap();
            assert_eq!(m.config.rcps, rcps, "{dir}");
            assert_eq!(m.config.vocab_size, 16);
            assert_eq!(m.config.complement[7], 10);
            assert_eq!(m.config.complement[10], 7);
            assert_eq!(m.config.complement[3], 3);
            assert_eq!(m.weights.blocks.len(), 3);
        }
        let full = CaduceusModel::load(Path::new("test-data/caduceus-ps")).unwrap();
        let lean = CaduceusModel::load(Path::new("test-data/caduceus-ps-lean")).unwrap();
        let (f, l) = (&full.weights.blocks[1], &lean.weights.blocks[1]);
        assert_eq!(
            f.rev.as_ref().unwrap().in_proj,
            l.rev.as_ref().unwrap().in_proj
        );
        assert_eq!(full.weights.lm_head, lean.weights.lm_head);
    }

    #[test]
    fn complement_map_is_read_by_key_in_any_order() {
        let text = r#"{"d_model": 8, "n_layer": 1, "vocab_size": 12, "rcps": true,
            "complement_map": {"10": 7, "9": 8, "8": 9, "7": 10, "0": 0}}"#;
        let c = CaduceusConfig::from_json(text).unwrap();
        assert_eq!(&c.complement[7..12], &[10, 9, 8, 7, 11]);
        assert_eq!(c.vocab_size, 16, "padded to a multiple of 8");
        let bad = text.replace("\"9\": 8", "\"9\": 99");
        assert!(
            CaduceusConfig::from_json(&bad)
                .unwrap_err()
                .contains("complement_map")
        );
    }

    #[test]
    fn window_length_comes_from_a_published_name() {
        assert_eq!(
            window_from_name("kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16"),
            Some(131_072)
        );
        assert_eq!(window_from_name("plantcaduceus_l20"), None);
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let base = r#"{"d_model": 8, "n_layer": 1, "vocab_size": 12"#;
        let mamba2 = format!(r#"{base}, "ssm_cfg": {{"layer": "Mamba2"}}}}"#);
        assert!(
            CaduceusConfig::from_json(&mamba2)
                .unwrap_err()
                .contains("Mamba1")
        );
        let plantcad2 = format!(
            r#"{base}, "layer_cfg": {{"mode": "mamba-only", "mamba_cfg": {{"version": "v2"}}}}}}"#
        );
        let err = CaduceusConfig::from_json(&plantcad2).unwrap_err();
        assert!(err.contains("PlantCAD2") && err.contains("\"v2\""), "{err}");
        let huge = r#"{"d_model": 8, "n_layer": 99999999, "vocab_size": 12}"#;
        assert!(
            CaduceusConfig::from_json(huge)
                .unwrap_err()
                .contains("n_layer")
        );
        let strat = format!(r#"{base}, "bidirectional_strategy": "concat"}}"#);
        assert!(
            CaduceusConfig::from_json(&strat)
                .unwrap_err()
                .contains("concat")
        );
    }
}
