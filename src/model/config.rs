//! `config.json` in the Hugging Face `MambaForCausalLM` and `Mamba2ForCausalLM` layouts, plus
//! ssmgen's own keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The architecture hyperparameters of a causal Mamba language model (Mamba-1, or Mamba-2
/// when [`MambaConfig::mamba2`] is set).
#[derive(Clone, Debug, PartialEq)]
pub struct MambaConfig {
    /// Token vocabulary size (rows of the embedding and LM head).
    pub vocab_size: usize,
    /// Residual stream width (`d_model`).
    pub hidden_size: usize,
    /// Inner width of the mixer (`d_inner`, usually `expand * hidden_size`).
    pub intermediate_size: usize,
    /// SSM state size per channel (`d_state`).
    pub state_size: usize,
    /// Number of Mamba blocks.
    pub num_hidden_layers: usize,
    /// Depthwise convolution width (`d_conv`).
    pub conv_kernel: usize,
    /// Rank of the delta projection (`dt_rank`).
    pub time_step_rank: usize,
    /// RMSNorm epsilon.
    pub layer_norm_epsilon: f32,
    /// Whether `in_proj` and `out_proj` carry biases.
    pub use_bias: bool,
    /// Whether the depthwise convolution carries a bias.
    pub use_conv_bias: bool,
    /// Whether the LM head shares the embedding matrix when `lm_head.weight` is absent.
    pub tie_word_embeddings: bool,
    /// Token id used as BOS when [`MambaConfig::prepend_bos`] is set.
    pub bos_token_id: Option<u32>,
    /// ssmgen key: prepend a BOS token to every record so its first base is scored too.
    pub prepend_bos: bool,
    /// ssmgen key: base letter → token id (uppercase; `N` is the ambiguity token).
    pub tokens: BTreeMap<char, u32>,
    /// The Mamba-2 (SSD) settings of a `Mamba2ForCausalLM` (`model_type: "mamba2"`); `None`
    /// for Mamba-1. With Mamba-2, `intermediate_size` is `num_heads * head_dim`, `state_size`
    /// the state per head and channel, and `time_step_rank` is unused.
    pub mamba2: Option<Mamba2Settings>,
}

/// The hyperparameters only a Mamba-2 mixer has.
#[derive(Clone, Debug, PartialEq)]
pub struct Mamba2Settings {
    /// SSM heads (`nheads`); each has one scalar decay `A`, one `D` and one `dt`.
    pub num_heads: usize,
    /// Channels per head (`headdim`).
    pub head_dim: usize,
    /// Groups of heads sharing one `B` and one `C` (`ngroups`).
    pub n_groups: usize,
    /// The SSD chunk length of the reference implementation (results do not depend on it).
    pub chunk_size: usize,
    /// `dt` after softplus is clamped to `[lo, hi]` (`time_step_limit`; `(0, inf)`: no clamp).
    pub time_step_limit: (f32, f32),
    /// Channels over which the gated RMSNorm before `out_proj` takes its mean square:
    /// `intermediate_size / n_groups` (one norm per group of heads), as transformers 5's
    /// `MambaRMSNormGated` and mamba-ssm's `RMSNormGated` compute it (some earlier transformers
    /// releases took one norm over the whole width, which differs when `n_groups > 1`).
    pub norm_group_size: usize,
}

impl Mamba2Settings {
    /// Channels of the depthwise conv: x, then B and C of every group.
    pub fn conv_dim(&self, d_inner: usize, d_state: usize) -> usize {
        d_inner + 2 * self.n_groups * d_state
    }

    /// Width of `in_proj`'s output: `z` (`d_inner`), `xBC` ([`Mamba2Settings::conv_dim`]),
    /// `dt` (`num_heads`).
    pub fn in_proj_width(&self, d_inner: usize, d_state: usize) -> usize {
        d_inner + self.conv_dim(d_inner, d_state) + self.num_heads
    }
}

/// The HyenaDNA / Caduceus character tokenizer ids: A=7, C=8, G=9, T=10, N=11.
pub fn default_tokens() -> BTreeMap<char, u32> {
    BTreeMap::from([('A', 7), ('C', 8), ('G', 9), ('T', 10), ('N', 11)])
}

/// `config.json` as written by transformers, with the keys ssmgen reads.
#[derive(Deserialize, Serialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    #[serde(default)]
    intermediate_size: Option<usize>,
    #[serde(default = "default_expand")]
    expand: usize,
    state_size: usize,
    num_hidden_layers: usize,
    #[serde(default = "default_conv_kernel")]
    conv_kernel: usize,
    #[serde(default)]
    time_step_rank: Option<serde_json::Value>,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f32,
    #[serde(default)]
    use_bias: bool,
    #[serde(default = "default_true")]
    use_conv_bias: bool,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    #[serde(default)]
    bos_token_id: Option<u32>,
    #[serde(default)]
    ssmgen: Option<SsmgenKeys>,
}

/// The `"ssmgen"` object inside `config.json`.
#[derive(Deserialize, Serialize, Default)]
struct SsmgenKeys {
    #[serde(default)]
    prepend_bos: bool,
    #[serde(default)]
    tokens: Option<BTreeMap<String, u32>>,
}

/// Just the `model_type` key.
#[derive(Deserialize)]
struct ModelType {
    #[serde(default)]
    model_type: Option<String>,
}

/// `config.json` of a transformers `Mamba2ForCausalLM`, with the keys ssmgen reads (defaults as
/// transformers' `Mamba2Config`).
#[derive(Deserialize)]
struct RawMamba2Config {
    vocab_size: usize,
    hidden_size: usize,
    num_heads: usize,
    head_dim: usize,
    state_size: usize,
    num_hidden_layers: usize,
    #[serde(default = "default_expand_f")]
    expand: f64,
    #[serde(default = "default_conv_kernel")]
    conv_kernel: usize,
    #[serde(default = "default_n_groups")]
    n_groups: usize,
    #[serde(default = "default_chunk_size")]
    chunk_size: usize,
    #[serde(default)]
    time_step_limit: Option<Vec<serde_json::Value>>,
    #[serde(default = "default_true")]
    rms_norm: bool,
    #[serde(default)]
    norm_before_gate: bool,
    #[serde(default = "default_silu")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f32,
    #[serde(default)]
    use_bias: bool,
    #[serde(default = "default_true")]
    use_conv_bias: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    bos_token_id: Option<u32>,
    #[serde(default)]
    ssmgen: Option<SsmgenKeys>,
}

fn default_expand_f() -> f64 {
    2.0
}
fn default_n_groups() -> usize {
    8
}
fn default_chunk_size() -> usize {
    256
}
fn default_silu() -> String {
    "silu".into()
}

/// `text` with the bare `Infinity`, `-Infinity` and `NaN` that Python's `json` writes (e.g.
/// `Mamba2Config`'s `time_step_limit: [0.0, Infinity]`) turned into strings, so that a strict
/// JSON parser reads them; strings in `text` are left alone.
pub(crate) fn nonfinite_as_strings(text: &str) -> std::borrow::Cow<'_, str> {
    if !(text.contains("Infinity") || text.contains("NaN")) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            out.push('"');
            out.push_str(word);
            out.push('"');
            rest = &rest[word.len()..];
            continue;
        }
        in_string = c == '"';
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// A number of `time_step_limit`: a JSON number, Python's bare `Infinity` (read as a string by
/// [`nonfinite_as_strings`]), or transformers 5's `{"__float__": "Infinity"}`.
fn limit_value(v: &serde_json::Value) -> std::result::Result<f32, String> {
    let word = |s: &str| match s {
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    let x = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => word(s),
        serde_json::Value::Object(o) => match o.get("__float__") {
            Some(serde_json::Value::String(s)) => word(s),
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        },
        _ => None,
    };
    match x {
        Some(x) if !x.is_nan() => Ok(x as f32),
        _ => Err(format!(
            "config.json: time_step_limit holds {v}; expected two numbers"
        )),
    }
}

/// The `ssmgen.tokens` map (letters → ids), or the default tokens.
fn parse_tokens(
    map: Option<BTreeMap<String, u32>>,
) -> std::result::Result<BTreeMap<char, u32>, String> {
    let Some(map) = map else {
        return Ok(default_tokens());
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let mut chars = k.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                out.insert(c.to_ascii_uppercase(), v);
            }
            _ => {
                return Err(format!(
                    "config.json: ssmgen.tokens key {k:?} is not one letter"
                ));
            }
        }
    }
    Ok(out)
}

fn default_expand() -> usize {
    2
}
fn default_conv_kernel() -> usize {
    4
}
fn default_eps() -> f32 {
    1e-5
}
fn default_true() -> bool {
    true
}

impl MambaConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|message| Error::model(path, message))
    }

    /// Parses the JSON text of a config; the error is a message without the path.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let text = nonfinite_as_strings(text);
        let kind: ModelType =
            serde_json::from_str(&text).map_err(|e| format!("config.json: {e}"))?;
        match kind.model_type.as_deref() {
            None | Some("mamba") => {}
            Some("mamba2") => return Self::from_mamba2_json(&text),
            Some(other) => {
                return Err(format!(
                    "config.json: model_type {other:?} is not a causal Mamba model (mamba, mamba2)"
                ));
            }
        }
        let raw: RawConfig =
            serde_json::from_str(&text).map_err(|e| format!("config.json: {e}"))?;
        let intermediate_size = match raw.intermediate_size {
            Some(n) => n,
            None => raw
                .expand
                .checked_mul(raw.hidden_size)
                .ok_or("config.json: expand * hidden_size overflows")?,
        };
        let time_step_rank = match raw.time_step_rank {
            None => raw.hidden_size.div_ceil(16),
            Some(serde_json::Value::String(s)) if s == "auto" => raw.hidden_size.div_ceil(16),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .ok_or("config.json: time_step_rank must be a positive integer or \"auto\"")?
                as usize,
            Some(other) => {
                return Err(format!(
                    "config.json: time_step_rank must be an integer or \"auto\", found {other}"
                ));
            }
        };
        let keys = raw.ssmgen.unwrap_or_default();
        let tokens = parse_tokens(keys.tokens)?;
        let config = MambaConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size,
            state_size: raw.state_size,
            num_hidden_layers: raw.num_hidden_layers,
            conv_kernel: raw.conv_kernel,
            time_step_rank,
            layer_norm_epsilon: raw.layer_norm_epsilon,
            use_bias: raw.use_bias,
            use_conv_bias: raw.use_conv_bias,
            tie_word_embeddings: raw.tie_word_embeddings,
            bos_token_id: raw.bos_token_id,
            prepend_bos: keys.prepend_bos,
            tokens,
            mamba2: None,
        };
        config.validate()?;
        config.check_size_bounds()?;
        Ok(config)
    }

    /// Parses a transformers `Mamba2ForCausalLM` config (`model_type: "mamba2"`).
    fn from_mamba2_json(text: &str) -> std::result::Result<Self, String> {
        let raw: RawMamba2Config =
            serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        if !raw.rms_norm {
            return Err(
                "config.json: rms_norm false is not supported (transformers' Mamba2 \
                 always applies its gated RMSNorm, mamba-ssm's does not)"
                    .into(),
            );
        }
        if raw.norm_before_gate {
            return Err(
                "config.json: norm_before_gate true is not supported (transformers' \
                 Mamba2 gates before it normalises)"
                    .into(),
            );
        }
        if !matches!(raw.hidden_act.as_str(), "silu" | "swish") {
            return Err(format!(
                "config.json: hidden_act {:?} is not supported (silu)",
                raw.hidden_act
            ));
        }
        let inner = raw.expand * raw.hidden_size as f64;
        if !(inner.is_finite() && inner >= 0.0 && inner < (1u64 << 40) as f64) {
            return Err("config.json: expand * hidden_size is not a usable width".into());
        }
        // transformers: intermediate_size = int(expand * hidden_size).
        let intermediate_size = inner as usize;
        let time_step_limit = match &raw.time_step_limit {
            None => (0.0, f32::INFINITY),
            Some(v) if v.len() == 2 => (limit_value(&v[0])?, limit_value(&v[1])?),
            Some(v) => {
                return Err(format!(
                    "config.json: time_step_limit has {} values; expected two",
                    v.len()
                ));
            }
        };
        if time_step_limit.0 > time_step_limit.1 {
            return Err(format!(
                "config.json: time_step_limit {time_step_limit:?} is not an interval"
            ));
        }
        let keys = raw.ssmgen.unwrap_or_default();
        let tokens = parse_tokens(keys.tokens)?;
        for (name, value) in [
            ("num_heads", raw.num_heads),
            ("head_dim", raw.head_dim),
            ("n_groups", raw.n_groups),
            ("chunk_size", raw.chunk_size),
        ] {
            if value == 0 {
                return Err(format!("config.json: {name} must be positive"));
            }
            if value > 1 << 16 {
                return Err(format!(
                    "config.json: {name} = {value} is larger than 65536, the most ssmgen accepts"
                ));
            }
        }
        if raw.num_heads as u64 * raw.head_dim as u64 != intermediate_size as u64 {
            return Err(format!(
                "config.json: num_heads * head_dim = {} * {} must equal expand * hidden_size = {}",
                raw.num_heads, raw.head_dim, intermediate_size
            ));
        }
        if !raw.num_heads.is_multiple_of(raw.n_groups) {
            return Err(format!(
                "config.json: num_heads {} is not a multiple of n_groups {}",
                raw.num_heads, raw.n_groups
            ));
        }
        // transformers (5.x) and mamba-ssm normalise per group of heads.
        let norm_group_size = intermediate_size / raw.n_groups;
        let config = MambaConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size,
            state_size: raw.state_size,
            num_hidden_layers: raw.num_hidden_layers,
            conv_kernel: raw.conv_kernel,
            time_step_rank: 1,
            layer_norm_epsilon: raw.layer_norm_epsilon,
            use_bias: raw.use_bias,
            use_conv_bias: raw.use_conv_bias,
            tie_word_embeddings: raw.tie_word_embeddings,
            bos_token_id: raw.bos_token_id,
            prepend_bos: keys.prepend_bos,
            tokens,
            mamba2: Some(Mamba2Settings {
                num_heads: raw.num_heads,
                head_dim: raw.head_dim,
                n_groups: raw.n_groups,
                chunk_size: raw.chunk_size,
                time_step_limit,
                norm_group_size,
            }),
        };
        config.validate()?;
        config.check_size_bounds()?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("state_size", self.state_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("conv_kernel", self.conv_kernel),
            ("time_step_rank", self.time_step_rank),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("config.json: {name} must be positive"));
            }
        }
        if self.conv_kernel > 16 {
            return Err(format!(
                "config.json: conv_kernel {} is larger than 16, the most ssmgen supports",
                self.conv_kernel
            ));
        }
        for base in ['A', 'C', 'G', 'T', 'N'] {
            match self.tokens.get(&base) {
                None => return Err(format!("config.json: no token id for base {base}")),
                Some(&id) if id as usize >= self.vocab_size => {
                    return Err(format!(
                        "config.json: token id {id} for base {base} is outside vocab_size {}",
                        self.vocab_size
                    ));
                }
                Some(_) => {}
            }
        }
        if self.prepend_bos {
            match self.bos_token_id {
                Some(id) if (id as usize) < self.vocab_size => {}
                _ => return Err(
                    "config.json: ssmgen.prepend_bos needs a bos_token_id inside the vocabulary"
                        .into(),
                ),
            }
        }
        Ok(())
    }

    /// Bounds every size read from `config.json` before anything is allocated or indexed with
    /// it: each dimension has a ceiling far above any published model, and the parameter count
    /// they imply (computed without overflow) must stay below 2^36 floats.
    pub fn check_size_bounds(&self) -> std::result::Result<(), String> {
        let limits = [
            ("vocab_size", self.vocab_size, 1 << 20),
            ("hidden_size", self.hidden_size, 1 << 16),
            ("intermediate_size", self.intermediate_size, 1 << 18),
            ("state_size", self.state_size, 1 << 12),
            ("num_hidden_layers", self.num_hidden_layers, 1 << 12),
            ("time_step_rank", self.time_step_rank, 1 << 16),
        ];
        for (name, value, limit) in limits {
            if value > limit {
                return Err(format!(
                    "config.json: {name} = {value} is larger than {limit}, the most ssmgen accepts"
                ));
            }
        }
        if !(self.layer_norm_epsilon.is_finite() && self.layer_norm_epsilon >= 0.0) {
            return Err(format!(
                "config.json: layer_norm_epsilon {} must be a finite number >= 0",
                self.layer_norm_epsilon
            ));
        }
        let (v, d, e, n, r, k) = (
            self.vocab_size as u128,
            self.hidden_size as u128,
            self.intermediate_size as u128,
            self.state_size as u128,
            self.time_step_rank as u128,
            self.conv_kernel as u128,
        );
        // All factors are bounded above, so u128 arithmetic cannot overflow.
        let per_layer = match &self.mamba2 {
            None => d + 2 * e * d + e * k + (r + 2 * n) * e + e * r + e + e * n + e + d * e,
            Some(m) => {
                let (g, h) = (m.n_groups as u128, m.num_heads as u128);
                let conv_dim = e + 2 * g * n;
                d + d * (e + conv_dim + h) + conv_dim * (k + 1) + 3 * h + e + d * e
            }
        };
        let total = 2 * v * d + d + per_layer * self.num_hidden_layers as u128;
        if total > 1 << 36 {
            return Err(format!(
                "config.json: the sizes imply {total} parameters, more than 2^36, the most ssmgen accepts"
            ));
        }
        Ok(())
    }

    /// Width of the `x_proj` output: `dt_rank + 2 * d_state`.
    pub fn x_proj_width(&self) -> usize {
        self.time_step_rank + 2 * self.state_size
    }

    /// Floats of carried state per layer: conv state plus SSM state.
    pub fn state_floats_per_layer(&self) -> usize {
        self.conv_state_floats_per_layer() + self.intermediate_size * self.state_size
    }

    /// Floats of carried conv state per layer: the last `conv_kernel - 1` conv inputs.
    pub fn conv_state_floats_per_layer(&self) -> usize {
        let channels = match &self.mamba2 {
            None => self.intermediate_size,
            Some(m) => m.conv_dim(self.intermediate_size, self.state_size),
        };
        channels * (self.conv_kernel - 1)
    }

    /// Width of `in_proj`'s output: `2 * d_inner` (x, z) for Mamba-1, z + xBC + dt for Mamba-2.
    pub fn in_proj_width(&self) -> usize {
        match &self.mamba2 {
            None => 2 * self.intermediate_size,
            Some(m) => m.in_proj_width(self.intermediate_size, self.state_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HF: &str = r#"{"architectures":["MambaForCausalLM"],"vocab_size":12,"hidden_size":64,
        "state_size":16,"num_hidden_layers":2,"expand":2,"conv_kernel":4,"time_step_rank":"auto",
        "layer_norm_epsilon":1e-5,"use_bias":false,"use_conv_bias":true,"bos_token_id":0}"#;

    #[test]
    fn reads_hf_config_and_derives_sizes() {
        let c = MambaConfig::from_json(HF).unwrap();
        assert_eq!(c.intermediate_size, 128);
        assert_eq!(c.time_step_rank, 4);
        assert_eq!(c.x_proj_width(), 36);
        assert!(!c.prepend_bos, "bos_token_id alone must not turn on BOS");
        assert_eq!(c.tokens[&'A'], 7);
        assert_eq!(c.state_floats_per_layer(), 128 * 3 + 128 * 16);
    }

    #[test]
    fn rejects_token_outside_vocab() {
        let text = HF.replace("\"vocab_size\":12", "\"vocab_size\":10");
        let err = MambaConfig::from_json(&text).unwrap_err();
        assert!(err.contains("outside vocab_size"), "{err}");
    }

    #[test]
    fn huge_sizes_are_refused_before_allocation() {
        for (key, huge) in [
            (
                "\"num_hidden_layers\":2",
                "\"num_hidden_layers\":18446744073709551615",
            ),
            ("\"hidden_size\":64", "\"hidden_size\":9223372036854775807"),
            (
                "\"state_size\":16,\"num_hidden_layers\":2",
                "\"state_size\":4096,\"intermediate_size\":262144,\"num_hidden_layers\":4096",
            ),
        ] {
            let err = MambaConfig::from_json(&HF.replace(key, huge)).unwrap_err();
            assert!(err.contains("the most ssmgen accepts"), "{err}");
        }
    }

    const MAMBA2: &str = r#"{"model_type":"mamba2","vocab_size":12,"hidden_size":64,
        "num_heads":8,"head_dim":16,"state_size":24,"n_groups":2,"num_hidden_layers":2,
        "expand":2,"conv_kernel":4,"chunk_size":64,"time_step_limit":[0.0,Infinity]}"#;

    #[test]
    fn reads_mamba2_config_with_pythons_infinity() {
        let c = MambaConfig::from_json(MAMBA2).unwrap();
        let m = c.mamba2.as_ref().unwrap();
        assert_eq!((c.intermediate_size, m.num_heads, m.n_groups), (128, 8, 2));
        assert_eq!(m.time_step_limit, (0.0, f32::INFINITY));
        assert_eq!(m.norm_group_size, 64);
        assert_eq!(m.conv_dim(128, 24), 128 + 2 * 2 * 24);
        assert_eq!(c.in_proj_width(), 128 + 224 + 8);
        assert_eq!(c.state_floats_per_layer(), 224 * 3 + 128 * 24);
        assert!(
            !c.tie_word_embeddings,
            "Mamba2Config does not tie by default"
        );
        // transformers 5 writes infinity as {"__float__": "Infinity"}.
        let t5 = MAMBA2.replace("Infinity]", "{\"__float__\": \"Infinity\"}]");
        assert_eq!(MambaConfig::from_json(&t5).unwrap(), c);
        // A string value "Infinity" stays a string.
        let named = MAMBA2.replace("\"mamba2\",", "\"mamba2\",\"name\":\"NaN Infinity\",");
        assert_eq!(MambaConfig::from_json(&named).unwrap(), c);
        let clamped = MAMBA2.replace("[0.0,Infinity]", "[0.001,0.1]");
        let m = MambaConfig::from_json(&clamped).unwrap().mamba2.unwrap();
        assert_eq!(m.time_step_limit, (0.001, 0.1));
    }

    #[test]
    fn refuses_inconsistent_mamba2_configs() {
        for (from, to, needle) in [
            ("\"num_heads\":8", "\"num_heads\":6", "num_heads * head_dim"),
            (
                "\"n_groups\":2",
                "\"n_groups\":3",
                "not a multiple of n_groups",
            ),
            ("[0.0,Infinity]", "[0.1,0.01]", "not an interval"),
            ("[0.0,Infinity]", "[0.0]", "expected two"),
            (
                "\"chunk_size\":64",
                "\"chunk_size\":64,\"norm_before_gate\":true",
                "norm_before_gate",
            ),
            (
                "\"chunk_size\":64",
                "\"chunk_size\":64,\"rms_norm\":false",
                "rms_norm",
            ),
            (
                "\"head_dim\":16",
                "\"head_dim\":0",
                "head_dim must be positive",
            ),
        ] {
            let err = MambaConfig::from_json(&MAMBA2.replace(from, to)).unwrap_err();
            assert!(err.contains(needle), "{to}: {err}");
        }
        let other = MAMBA2.replace("\"mamba2\"", "\"jamba\"");
        assert!(
            MambaConfig::from_json(&other)
                .unwrap_err()
                .contains("jamba")
        );
    }

    #[test]
    fn ssmgen_keys_turn_on_bos() {
        let text = HF.replace(
            "\"bos_token_id\":0",
            "\"bos_token_id\":2,\"ssmgen\":{\"prepend_bos\":true}",
        );
        assert!(MambaConfig::from_json(&text).unwrap().prepend_bos);
    }
}
