//! What produced an output: ssmgen's version, the command line, and the model with a hash of
//! its files, written as VCF header lines (as bcftools records its commands).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A model's name and the SHA-256 of its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFingerprint {
    /// The model's name: the folder's name, or the built-in model's.
    pub name: String,
    /// Where it was loaded from (a folder, or `builtin:<name>`).
    pub source: String,
    /// SHA-256 of `config.json`, hex.
    pub config_sha256: String,
    /// SHA-256 of `model.safetensors`, hex (what `sha256sum model.safetensors` prints).
    pub weights_sha256: String,
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

impl ModelFingerprint {
    /// The fingerprint of a model folder (`config.json` + `model.safetensors`).
    pub fn of_dir(dir: &Path) -> Result<Self> {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(ModelFingerprint {
            name,
            source: dir.display().to_string(),
            config_sha256: hash_file(&dir.join("config.json"))?,
            weights_sha256: hash_file(&dir.join("model.safetensors"))?,
        })
    }

    /// The fingerprint of a model given by its bytes (the built-in one).
    pub fn of_bytes(name: &str, config_json: &[u8], safetensors: &[u8]) -> Self {
        ModelFingerprint {
            name: name.to_string(),
            source: format!("builtin:{name}"),
            config_sha256: hex(&Sha256::digest(config_json)),
            weights_sha256: hex(&Sha256::digest(safetensors)),
        }
    }
}

/// Makes `text` safe inside a VCF header line: no line breaks or tabs.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The provenance lines of a VCF header: `##source=ssmgen <version>`,
/// `##ssmgenCommand=<argv joined by spaces>` and
/// `##ssmgenModel=<ID=name,Source="…",ConfigSHA256=…,WeightsSHA256=…>`.
pub fn vcf_header_lines(argv: &[String], model: &ModelFingerprint) -> Vec<String> {
    vec![
        format!("##source=ssmgen {}", env!("CARGO_PKG_VERSION")),
        format!("##ssmgenCommand={}", one_line(&argv.join(" "))),
        format!(
            "##ssmgenModel=<ID={},Source=\"{}\",ConfigSHA256={},WeightsSHA256={}>",
            one_line(&model.name).replace([',', '>', '<', '"'], "_"),
            one_line(&model.source).replace('"', "'"),
            model.config_sha256,
            model.weights_sha256
        ),
    ]
}

/// The provenance as key/value pairs, for the metadata of binary outputs (safetensors
/// `__metadata__`, the `.json` beside an NPY file, Parquet's key-value metadata):
/// `ssmgen_version`, `ssmgen_command`, `ssmgen_model`, `ssmgen_model_source`,
/// `ssmgen_model_config_sha256`, `ssmgen_model_weights_sha256`.
pub fn metadata(argv: &[String], model: &ModelFingerprint) -> Vec<(String, String)> {
    [
        ("ssmgen_version", env!("CARGO_PKG_VERSION").to_string()),
        ("ssmgen_command", one_line(&argv.join(" "))),
        ("ssmgen_model", model.name.clone()),
        ("ssmgen_model_source", model.source.clone()),
        ("ssmgen_model_config_sha256", model.config_sha256.clone()),
        ("ssmgen_model_weights_sha256", model.weights_sha256.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `##contig=<ID=name,length=n>` lines from a FASTA index (`.fai`) beside `fasta`, if any.
pub fn contig_lines(fasta: &Path) -> Result<Vec<String>> {
    let fai = std::path::PathBuf::from(format!("{}.fai", fasta.display()));
    let text = match std::fs::read_to_string(&fai) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&fai, e)),
    };
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        let (Some(name), Some(length)) = (f.next(), f.next()) else {
            return Err(Error::format(
                &fai,
                format!("line {}: not a .fai line", i + 1),
            ));
        };
        let length: u64 = length
            .parse()
            .map_err(|_| Error::format(&fai, format!("line {}: bad length '{length}'", i + 1)))?;
        lines.push(format!("##contig=<ID={},length={length}>", one_line(name)));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_name_version_command_and_hashes() {
        let m = ModelFingerprint::of_bytes("m", b"{}", b"abc");
        let lines = vcf_header_lines(&["ssmgen".into(), "score-variants".into()], &m);
        assert_eq!(
            lines[0],
            format!("##source=ssmgen {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(lines[1], "##ssmgenCommand=ssmgen score-variants");
        // sha256("abc")
        assert!(lines[2].contains(
            "WeightsSHA256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ));
    }
}
