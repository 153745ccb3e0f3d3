//! The default model, compiled into the binary so every command runs with no `--model`.
//!
//! `models/ssmgen-dna-small`: a causal Mamba-1 DNA model (d_model 128, 6 layers, d_state 16)
//! trained by `models/train/train.py` on four *Klebsiella pneumoniae* genomes and phage lambda;
//! its model card is `models/README.md`.

use super::Model;
use crate::Result;

/// Name of the built-in model; messages call it `builtin:<name>`.
pub const NAME: &str = "ssmgen-dna-small";

const CONFIG: &str = include_str!("../../models/ssmgen-dna-small/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../models/ssmgen-dna-small/model.safetensors");

/// The built-in model's provenance: its name and the SHA-256 of its files.
pub fn fingerprint() -> crate::provenance::ModelFingerprint {
    crate::provenance::ModelFingerprint::of_bytes(NAME, CONFIG.as_bytes(), WEIGHTS)
}

/// Loads the built-in model.
pub fn load() -> Result<Model> {
    Model::from_bytes(NAME, CONFIG, WEIGHTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn builtin_is_the_shipped_model_folder() {
        let builtin = load().unwrap();
        let folder = Model::load(Path::new("models/ssmgen-dna-small")).unwrap();
        assert_eq!(builtin.config, folder.config);
        assert_eq!(builtin.weights.lm_head, folder.weights.lm_head);
        for (a, b) in builtin.weights.layers.iter().zip(&folder.weights.layers) {
            assert_eq!(a.a_log, b.a_log);
        }
        assert_eq!(builtin.source, "builtin:ssmgen-dna-small");
        assert_eq!(builtin.config.num_hidden_layers, 6);
        assert!(!builtin.config.prepend_bos);
    }
}
