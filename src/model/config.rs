//! `config.json` in the Hugging Face `MambaForCausalLM` layout, plus ssmgen's own keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The architecture hyperparameters of a Mamba-1 language model.
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
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
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
        let tokens = match keys.tokens {
            None => default_tokens(),
            Some(map) => {
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
                out
            }
        };
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
        let per_layer = d + 2 * e * d + e * k + (r + 2 * n) * e + e * r + e + e * n + e + d * e;
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
        self.intermediate_size * (self.conv_kernel - 1) + self.intermediate_size * self.state_size
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

    #[test]
    fn ssmgen_keys_turn_on_bos() {
        let text = HF.replace(
            "\"bos_token_id\":0",
            "\"bos_token_id\":2,\"ssmgen\":{\"prepend_bos\":true}",
        );
        assert!(MambaConfig::from_json(&text).unwrap().prepend_bos);
    }
}
