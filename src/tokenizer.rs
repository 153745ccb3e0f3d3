//! Single-nucleotide tokens.
//!
//! Rules (documented in `docs/input.md`):
//! - `A C G T` map to the model's base tokens; lowercase (soft-masked) is the same base.
//! - `N` and the IUPAC ambiguity codes `R Y S W K M B D H V` (either case) map to the N token:
//!   they feed the model but are never scored.
//! - Anything else is an error that names the record and position.

use crate::model::MambaConfig;

/// Marks a byte that has no token.
const INVALID: u32 = u32::MAX;

/// Maps bases to token ids and back, and complements tokens.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    table: [u32; 256],
    /// Token ids of A, C, G, T, N.
    ids: [u32; 5],
}

impl Tokenizer {
    /// The tokenizer of a model (ids from its config).
    pub fn new(config: &MambaConfig) -> Self {
        let id = |b: char| config.tokens[&b];
        Self::from_ids([id('A'), id('C'), id('G'), id('T'), id('N')])
    }

    /// A tokenizer with these token ids for A, C, G, T and N.
    pub fn from_ids(ids: [u32; 5]) -> Self {
        let mut table = [INVALID; 256];
        for (i, base) in "ACGT".bytes().enumerate() {
            table[base as usize] = ids[i];
            table[base.to_ascii_lowercase() as usize] = ids[i];
        }
        for code in "NRYSWKMBDHV".bytes() {
            table[code as usize] = ids[4];
            table[code.to_ascii_lowercase() as usize] = ids[4];
        }
        Tokenizer { table, ids }
    }

    /// Appends the tokens of `bases` to `out`. On a byte with no token, returns its index in
    /// `bases` (tokens before it are appended).
    pub fn encode(&self, bases: &[u8], out: &mut Vec<u32>) -> Result<(), usize> {
        out.reserve(bases.len());
        for (i, &b) in bases.iter().enumerate() {
            let t = self.table[b as usize];
            if t == INVALID {
                return Err(i);
            }
            out.push(t);
        }
        Ok(())
    }

    /// The token of the complementary base (N stays N).
    pub fn complement(&self, token: u32) -> u32 {
        let [a, c, g, t, n] = self.ids;
        match token {
            x if x == a => t,
            x if x == t => a,
            x if x == c => g,
            x if x == g => c,
            _ => n,
        }
    }

    /// Reverses `tokens` in place and complements each: the reverse-complement strand.
    pub fn reverse_complement(&self, tokens: &mut [u32]) {
        tokens.reverse();
        for t in tokens.iter_mut() {
            *t = self.complement(*t);
        }
    }

    /// Whether a token is a definite base (A, C, G or T), i.e. one that gets a score.
    pub fn is_scored(&self, token: u32) -> bool {
        self.ids[..4].contains(&token)
    }

    /// The token id of `N`.
    pub fn n_token(&self) -> u32 {
        self.ids[4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::default_tokens;

    fn tok() -> Tokenizer {
        let mut config = crate::model::MambaConfig::from_json(
            r#"{"vocab_size":12,"hidden_size":8,"state_size":4,"num_hidden_layers":1}"#,
        )
        .unwrap();
        config.tokens = default_tokens();
        Tokenizer::new(&config)
    }

    #[test]
    fn maps_case_and_iupac() {
        let mut out = Vec::new();
        tok().encode(b"ACGTacgtNnRyKmBdHvSw", &mut out).unwrap();
        assert_eq!(&out[..8], &[7, 8, 9, 10, 7, 8, 9, 10]);
        assert!(out[8..].iter().all(|&t| t == 11));
    }

    #[test]
    fn reports_first_bad_byte() {
        let mut out = Vec::new();
        assert_eq!(tok().encode(b"ACX-", &mut out), Err(2));
        assert_eq!(tok().encode(b"AC-", &mut out), Err(2));
        assert_eq!(tok().encode(b"U", &mut out), Err(0));
    }

    #[test]
    fn reverse_complement_of_tokens() {
        let t = tok();
        let mut x = Vec::new();
        t.encode(b"AACGTN", &mut x).unwrap();
        t.reverse_complement(&mut x);
        let mut want = Vec::new();
        t.encode(b"NACGTT", &mut want).unwrap();
        assert_eq!(x, want);
        assert!(t.is_scored(7) && !t.is_scored(11));
    }
}
