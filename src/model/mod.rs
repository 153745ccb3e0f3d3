//! The models ssmgen runs: causal Mamba-1 and Mamba-2 language models (config and weights) and
//! Caduceus masked models.

pub mod builtin;
pub mod caduceus;
pub mod config;
pub mod weights;

use std::path::Path;

pub use config::{Mamba2Settings, MambaConfig};
pub use weights::{LayerWeights, Mamba2LayerWeights, ModelWeights, WeightDtype};

use crate::error::{Error, Result};

/// A loaded model: hyperparameters plus host-side f32 weights.
#[derive(Clone, Debug)]
pub struct Model {
    /// Architecture and tokenizer settings.
    pub config: MambaConfig,
    /// Parameters, shared with the backends that run on the host (no second copy).
    pub weights: std::sync::Arc<ModelWeights>,
    /// Where the model came from, for messages (a directory, or `builtin:<name>`).
    pub source: String,
}

impl Model {
    /// Loads `dir/config.json` and `dir/model.safetensors` (memory-mapped).
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::model(
                dir,
                "not a directory holding config.json and model.safetensors",
            ));
        }
        let config = MambaConfig::from_file(&dir.join("config.json"))?;
        let weights_path = dir.join("model.safetensors");
        let file = std::fs::File::open(&weights_path).map_err(|e| Error::io(&weights_path, e))?;
        // SAFETY: the map is read-only and dropped before this function returns; a concurrent
        // writer could only corrupt values, which the shape checks and safetensors header guard.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&weights_path, e))?;
        let weights = ModelWeights::from_bytes(&config, &map, &weights_path)?;
        Ok(Model {
            config,
            weights: std::sync::Arc::new(weights),
            source: dir.display().to_string(),
        })
    }

    /// Builds a model from the bytes of its `config.json` and `model.safetensors` (e.g. a model
    /// compiled into the binary); `name` is how messages refer to it (`builtin:<name>`).
    pub fn from_bytes(name: &str, config_json: &str, safetensors: &[u8]) -> Result<Self> {
        let source = format!("builtin:{name}");
        let origin = Path::new(&source);
        let config = MambaConfig::from_json(config_json).map_err(|m| Error::model(origin, m))?;
        let weights = ModelWeights::from_bytes(&config, safetensors, origin)?;
        Ok(Model {
            config,
            weights: std::sync::Arc::new(weights),
            source,
        })
    }
}

/// A model of any architecture ssmgen runs.
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// A causal `MambaForCausalLM` or `Mamba2ForCausalLM`, run as one unbroken scan per record.
    Causal(Model),
    /// A Caduceus masked LM, run over windows.
    Caduceus(caduceus::CaduceusModel),
}

impl AnyModel {
    /// Loads a model folder, choosing the architecture from `config.json`'s `model_type`
    /// (`mamba`, or absent, and `mamba2` for causal Mamba; `caduceus`).
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::model(
                dir,
                "not a directory holding config.json and model.safetensors",
            ));
        }
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let kind: serde_json::Value = serde_json::from_str(&config::nonfinite_as_strings(&text))
            .map_err(|e| Error::model(&config_path, format!("config.json: {e}")))?;
        match kind.get("model_type").and_then(|v| v.as_str()) {
            None | Some("mamba") | Some("mamba2") => Ok(AnyModel::Causal(Model::load(dir)?)),
            Some("caduceus") => Ok(AnyModel::Caduceus(caduceus::CaduceusModel::load(dir)?)),
            Some(other) => Err(Error::model(
                &config_path,
                format!("model_type {other:?} is not supported (mamba, mamba2, caduceus)"),
            )),
        }
    }

    /// Where the model came from, for messages.
    pub fn source(&self) -> &str {
        match self {
            AnyModel::Causal(m) => &m.source,
            AnyModel::Caduceus(m) => &m.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bytes_gives_the_model_load_gives() {
        let dir = Path::new("test-data/fixture-model");
        let loaded = Model::load(dir).unwrap();
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let built = Model::from_bytes("fixture", &config, &weights).unwrap();
        assert_eq!(built.config, loaded.config);
        assert_eq!(built.weights.lm_head, loaded.weights.lm_head);
        assert_eq!(
            built.weights.layers[1].a_log,
            loaded.weights.layers[1].a_log
        );
        assert_eq!(built.source, "builtin:fixture");
        let err = Model::from_bytes("broken", &config, &weights[..100]).unwrap_err();
        assert!(err.to_string().contains("builtin:broken"), "{err}");
    }
}
