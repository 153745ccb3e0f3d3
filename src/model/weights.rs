//! Tensors of a `MambaForCausalLM` or `Mamba2ForCausalLM` checkpoint, read from safetensors and
//! checked against the config.

use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::config::MambaConfig;
use crate::error::{Error, Result};

/// The storage dtype of the checkpoint's floating-point tensors (computation may differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDtype {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::BF16 => "bf16",
        })
    }
}

/// One Mamba block's parameters, row-major, widened to f32.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm scale, `[d_model]`.
    pub norm: Vec<f32>,
    /// `in_proj.weight`, `[2 * d_inner, d_model]`.
    pub in_proj: Vec<f32>,
    /// `in_proj.bias`, `[2 * d_inner]`, when `use_bias`.
    pub in_proj_bias: Option<Vec<f32>>,
    /// `conv1d.weight` squeezed to `[d_inner, d_conv]`.
    pub conv_weight: Vec<f32>,
    /// `conv1d.bias`, `[d_inner]`, when `use_conv_bias`.
    pub conv_bias: Option<Vec<f32>>,
    /// `x_proj.weight`, `[dt_rank + 2 * d_state, d_inner]`.
    pub x_proj: Vec<f32>,
    /// `dt_proj.weight`, `[d_inner, dt_rank]`.
    pub dt_proj: Vec<f32>,
    /// `dt_proj.bias`, `[d_inner]`.
    pub dt_bias: Vec<f32>,
    /// `A_log`, `[d_inner, d_state]` (always kept f32).
    pub a_log: Vec<f32>,
    /// `D`, `[d_inner]`.
    pub d: Vec<f32>,
    /// `out_proj.weight`, `[d_model, d_inner]`.
    pub out_proj: Vec<f32>,
    /// `out_proj.bias`, `[d_model]`, when `use_bias`.
    pub out_proj_bias: Option<Vec<f32>>,
}

/// One Mamba-2 block's parameters (transformers' `Mamba2Block`), row-major, widened to f32.
#[derive(Clone, Debug)]
pub struct Mamba2LayerWeights {
    /// The block's RMSNorm scale, `[d_model]`.
    pub norm: Vec<f32>,
    /// `in_proj.weight`, `[d_inner + conv_dim + num_heads, d_model]`: rows for z, xBC, dt.
    pub in_proj: Vec<f32>,
    /// `in_proj.bias`, when `use_bias`.
    pub in_proj_bias: Option<Vec<f32>>,
    /// `conv1d.weight` squeezed to `[conv_dim, d_conv]`.
    pub conv_weight: Vec<f32>,
    /// `conv1d.bias`, `[conv_dim]`, when `use_conv_bias`.
    pub conv_bias: Option<Vec<f32>>,
    /// `dt_bias`, `[num_heads]`.
    pub dt_bias: Vec<f32>,
    /// `A_log`, `[num_heads]` (always kept f32).
    pub a_log: Vec<f32>,
    /// `D`, `[num_heads]`.
    pub d: Vec<f32>,
    /// The gated RMSNorm's scale (`norm.weight`), `[d_inner]`.
    pub gated_norm: Vec<f32>,
    /// `out_proj.weight`, `[d_model, d_inner]`.
    pub out_proj: Vec<f32>,
    /// `out_proj.bias`, `[d_model]`, when `use_bias`.
    pub out_proj_bias: Option<Vec<f32>>,
}

impl Mamba2LayerWeights {
    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.norm.len()
            + self.in_proj.len()
            + self.in_proj_bias.as_ref().map_or(0, Vec::len)
            + self.conv_weight.len()
            + self.conv_bias.as_ref().map_or(0, Vec::len)
            + self.dt_bias.len()
            + self.a_log.len()
            + self.d.len()
            + self.gated_norm.len()
            + self.out_proj.len()
            + self.out_proj_bias.as_ref().map_or(0, Vec::len)
    }
}

/// All parameters of a `MambaForCausalLM` or `Mamba2ForCausalLM`, widened to f32 on the host.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    /// `backbone.embeddings.weight`, `[vocab, d_model]`.
    pub embeddings: Vec<f32>,
    /// The Mamba-1 blocks, in order (empty for a Mamba-2 model).
    pub layers: Vec<LayerWeights>,
    /// The Mamba-2 blocks, in order (empty for a Mamba-1 model).
    pub mamba2_layers: Vec<Mamba2LayerWeights>,
    /// `backbone.norm_f.weight`, `[d_model]`.
    pub norm_f: Vec<f32>,
    /// `lm_head.weight` (or the tied embeddings), `[vocab, d_model]`.
    pub lm_head: Vec<f32>,
    /// The dtype the checkpoint stored its projection weights in.
    pub dtype: WeightDtype,
}

/// Reads named tensors out of a safetensors file, checking shapes, naming the file in errors.
pub(crate) struct Loader<'a> {
    tensors: SafeTensors<'a>,
    origin: PathBuf,
}

impl<'a> Loader<'a> {
    /// Parses the safetensors header of `bytes`; `origin` names the file in errors.
    pub(crate) fn new(bytes: &'a [u8], origin: &Path) -> Result<Self> {
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::model(origin, format!("not a valid safetensors file: {e}")))?;
        Ok(Loader {
            tensors,
            origin: origin.to_path_buf(),
        })
    }

    /// An error about this file.
    pub(crate) fn err(&self, message: String) -> Error {
        Error::model(&self.origin, message)
    }

    /// Whether tensor `name` is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// Tensor `name`, checked to have exactly `shape`.
    fn view(&self, name: &str, shape: &[usize]) -> Result<safetensors::tensor::TensorView<'_>> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        if view.shape() != shape {
            return Err(self.err(format!(
                "tensor '{name}' has shape {:?}, the config implies {:?}",
                view.shape(),
                shape
            )));
        }
        Ok(view)
    }

    /// Reads an integer tensor `name` of exactly `shape` (I64 or I32) as i64 values.
    pub(crate) fn get_int(&self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        let view = self.view(name, shape)?;
        let bytes = view.data();
        match view.dtype() {
            Dtype::I64 => Ok(bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()),
            Dtype::I32 => Ok(bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64)
                .collect()),
            other => Err(self.err(format!(
                "tensor '{name}' has dtype {other:?}; expected I64 or I32"
            ))),
        }
    }

    /// Reads tensor `name`, checks it has exactly `shape`, and widens it to f32.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.view(name, shape)?;
        let bytes = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(self.err(format!(
                    "tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 are supported"
                )));
            }
        };
        check_finite(&values).map_err(|i| {
            self.err(format!(
                "tensor '{name}' holds {} at element {i}; every weight must be a finite number",
                values[i]
            ))
        })?;
        Ok(values)
    }

    /// Reads an optional tensor (a bias) that must be present exactly when `wanted`.
    pub(crate) fn get_opt(
        &self,
        name: &str,
        shape: &[usize],
        wanted: bool,
    ) -> Result<Option<Vec<f32>>> {
        if wanted {
            self.get(name, shape).map(Some)
        } else if self.has(name) {
            Err(self.err(format!(
                "tensor '{name}' is present but the config says there is no such bias"
            )))
        } else {
            Ok(None)
        }
    }

    /// The storage dtype of tensor `name`.
    pub(crate) fn dtype_of(&self, name: &str) -> Result<WeightDtype> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        match view.dtype() {
            Dtype::F32 => Ok(WeightDtype::F32),
            Dtype::F16 => Ok(WeightDtype::F16),
            Dtype::BF16 => Ok(WeightDtype::BF16),
            other => Err(self.err(format!("tensor '{name}' has unsupported dtype {other:?}"))),
        }
    }
}

/// Sizes of one Mamba-1 mixer, to check its tensors against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MixerDims {
    pub d_model: usize,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub dt_rank: usize,
    pub use_bias: bool,
    pub use_conv_bias: bool,
}

/// Reads the Mamba-1 mixer whose tensors are named `{m}.in_proj.weight`, `{m}.A_log`, ...;
/// `norm` is its block's norm scale. When `tied` is given, `in_proj` and `out_proj` (with
/// their biases) may be absent from the file and are taken from it (weight-tied checkpoints).
pub(crate) fn read_mixer(
    l: &Loader<'_>,
    m: &str,
    norm: Vec<f32>,
    dims: MixerDims,
    tied: Option<&LayerWeights>,
) -> Result<LayerWeights> {
    let MixerDims {
        d_model: d,
        d_inner: e,
        d_state: n,
        d_conv: k,
        dt_rank: r,
        use_bias,
        use_conv_bias,
    } = dims;
    let in_name = format!("{m}.in_proj.weight");
    let out_name = format!("{m}.out_proj.weight");
    let (in_proj, in_proj_bias, out_proj, out_proj_bias) = match tied {
        Some(t) if !l.has(&in_name) && !l.has(&out_name) => (
            t.in_proj.clone(),
            t.in_proj_bias.clone(),
            t.out_proj.clone(),
            t.out_proj_bias.clone(),
        ),
        _ => (
            l.get(&in_name, &[2 * e, d])?,
            l.get_opt(&format!("{m}.in_proj.bias"), &[2 * e], use_bias)?,
            l.get(&out_name, &[d, e])?,
            l.get_opt(&format!("{m}.out_proj.bias"), &[d], use_bias)?,
        ),
    };
    Ok(LayerWeights {
        norm,
        in_proj,
        in_proj_bias,
        conv_weight: l.get(&format!("{m}.conv1d.weight"), &[e, 1, k])?,
        conv_bias: l.get_opt(&format!("{m}.conv1d.bias"), &[e], use_conv_bias)?,
        x_proj: l.get(&format!("{m}.x_proj.weight"), &[r + 2 * n, e])?,
        dt_proj: l.get(&format!("{m}.dt_proj.weight"), &[e, r])?,
        dt_bias: l.get(&format!("{m}.dt_proj.bias"), &[e])?,
        a_log: l.get(&format!("{m}.A_log"), &[e, n])?,
        d: l.get(&format!("{m}.D"), &[e])?,
        out_proj,
        out_proj_bias,
    })
}

/// Reads the Mamba-2 mixer whose tensors are named `{m}.in_proj.weight`, `{m}.A_log`, ...
/// (transformers' `Mamba2Mixer`); `norm` is its block's norm scale.
pub(crate) fn read_mamba2_mixer(
    l: &Loader<'_>,
    m: &str,
    norm: Vec<f32>,
    config: &MambaConfig,
    m2: &super::config::Mamba2Settings,
) -> Result<Mamba2LayerWeights> {
    let (d, e, n, k, h) = (
        config.hidden_size,
        config.intermediate_size,
        config.state_size,
        config.conv_kernel,
        m2.num_heads,
    );
    let conv_dim = m2.conv_dim(e, n);
    let in_w = m2.in_proj_width(e, n);
    let (use_bias, use_conv_bias) = (config.use_bias, config.use_conv_bias);
    Ok(Mamba2LayerWeights {
        norm,
        in_proj: l.get(&format!("{m}.in_proj.weight"), &[in_w, d])?,
        in_proj_bias: l.get_opt(&format!("{m}.in_proj.bias"), &[in_w], use_bias)?,
        conv_weight: l.get(&format!("{m}.conv1d.weight"), &[conv_dim, 1, k])?,
        conv_bias: l.get_opt(&format!("{m}.conv1d.bias"), &[conv_dim], use_conv_bias)?,
        dt_bias: l.get(&format!("{m}.dt_bias"), &[h])?,
        a_log: l.get(&format!("{m}.A_log"), &[h])?,
        d: l.get(&format!("{m}.D"), &[h])?,
        gated_norm: l.get(&format!("{m}.norm.weight"), &[e])?,
        out_proj: l.get(&format!("{m}.out_proj.weight"), &[d, e])?,
        out_proj_bias: l.get_opt(&format!("{m}.out_proj.bias"), &[d], use_bias)?,
    })
}

/// `Err(i)` for the first value that is NaN or infinite: such a weight makes every score NaN.
pub fn check_finite(values: &[f32]) -> std::result::Result<(), usize> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

impl ModelWeights {
    /// Parses safetensors `bytes` and checks every tensor against `config`.
    /// `origin` names the file in error messages.
    pub fn from_bytes(config: &MambaConfig, bytes: &[u8], origin: &Path) -> Result<Self> {
        let l = Loader::new(bytes, origin)?;
        let (v, d, e, n, k, r) = (
            config.vocab_size,
            config.hidden_size,
            config.intermediate_size,
            config.state_size,
            config.conv_kernel,
            config.time_step_rank,
        );
        let embeddings = l.get("backbone.embeddings.weight", &[v, d])?;
        let mut layers = Vec::new();
        let mut mamba2_layers = Vec::new();
        let dims = MixerDims {
            d_model: d,
            d_inner: e,
            d_state: n,
            d_conv: k,
            dt_rank: r,
            use_bias: config.use_bias,
            use_conv_bias: config.use_conv_bias,
        };
        for i in 0..config.num_hidden_layers {
            let p = format!("backbone.layers.{i}");
            let norm = l.get(&format!("{p}.norm.weight"), &[d])?;
            match &config.mamba2 {
                None => layers.push(read_mixer(&l, &format!("{p}.mixer"), norm, dims, None)?),
                Some(m2) => mamba2_layers.push(read_mamba2_mixer(
                    &l,
                    &format!("{p}.mixer"),
                    norm,
                    config,
                    m2,
                )?),
            }
        }
        if l.has(&format!(
            "backbone.layers.{}.norm.weight",
            config.num_hidden_layers
        )) {
            return Err(l.err(format!(
                "checkpoint has more layers than num_hidden_layers = {}",
                config.num_hidden_layers
            )));
        }
        let norm_f = l.get("backbone.norm_f.weight", &[d])?;
        let lm_head = if l.has("lm_head.weight") {
            l.get("lm_head.weight", &[v, d])?
        } else if config.tie_word_embeddings {
            embeddings.clone()
        } else {
            return Err(l.err(
                "tensor 'lm_head.weight' is missing and tie_word_embeddings is false".into(),
            ));
        };
        let dtype = l.dtype_of("backbone.layers.0.mixer.in_proj.weight")?;
        Ok(ModelWeights {
            embeddings,
            layers,
            mamba2_layers,
            norm_f,
            lm_head,
            dtype,
        })
    }

    /// Number of parameters (the LM head counted once when tied).
    pub fn parameter_count(&self, config: &MambaConfig) -> usize {
        let layer: usize = self
            .layers
            .iter()
            .map(|w| {
                w.norm.len()
                    + w.in_proj.len()
                    + w.in_proj_bias.as_ref().map_or(0, Vec::len)
                    + w.conv_weight.len()
                    + w.conv_bias.as_ref().map_or(0, Vec::len)
                    + w.x_proj.len()
                    + w.dt_proj.len()
                    + w.dt_bias.len()
                    + w.a_log.len()
                    + w.d.len()
                    + w.out_proj.len()
                    + w.out_proj_bias.as_ref().map_or(0, Vec::len)
            })
            .sum::<usize>()
            + self
                .mamba2_layers
                .iter()
                .map(Mamba2LayerWeights::parameter_count)
                .sum::<usize>();
        let head = if self.lm_head == self.embeddings && config.tie_word_embeddings {
            0
        } else {
            self.lm_head.len()
        };
        self.embeddings.len() + layer + self.norm_f.len() + head
    }
}
