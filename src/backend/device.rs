//! Choosing the device a model runs on, and how long its stripes are there.

use crate::model::MambaConfig;

/// A device resolved against the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// The rayon CPU backend; with `auto`, why CUDA was not used.
    Cpu(Option<String>),
    /// The GPU with this ordinal.
    Cuda(usize),
}

impl Device {
    /// Resolves a device name: `cpu`, `cuda` (or `gpu`), `cuda:N`, or `auto` (CUDA when a
    /// usable GPU, driver, NVRTC and cuBLAS are present, else the CPU). Asking for CUDA where
    /// it cannot run is an error that says why (a message for the caller to prefix with where
    /// the name came from).
    pub fn resolve(name: &str) -> std::result::Result<Self, String> {
        use super::cuda::cuda_available;
        let text = name.trim().to_ascii_lowercase();
        let device = match text.as_str() {
            "cpu" => Device::Cpu(None),
            "auto" => match cuda_available() {
                Ok(_) => Device::Cuda(0),
                Err(why) => return Ok(Device::Cpu(Some(why))),
            },
            "cuda" | "gpu" => Device::Cuda(0),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::Cuda(n),
                _ => return Err("expected auto, cpu, cuda or cuda:N".into()),
            },
        };
        if let Device::Cuda(_) = device {
            cuda_available()?;
        }
        Ok(device)
    }
}

/// Stripe length of a causal model on the CPU with `threads` worker threads: as many tokens
/// as fit activation buffers of about 8 MiB, and 4 MiB more for every thread past two, between
/// 1,024 and 65,536. Small stripes keep the activations in the caches and below the
/// allocator's mmap threshold (65,536-token stripes spent a fifth of the time in page faults);
/// with many threads, longer stripes give every parallel step enough work to be worth waking
/// the threads (1,024-token stripes ran 16 threads at 3.6× one thread's speed). Results do not
/// depend on the stripe length.
pub fn cpu_stripe_len(config: &MambaConfig, threads: usize) -> usize {
    let budget = (8usize << 20) + (4usize << 20) * threads.saturating_sub(2);
    (budget / (4 * floats_per_token(config))).clamp(1024, 65536)
}

/// Stripe length of a causal model on a GPU with `free_bytes` free: activations take at most a
/// quarter of it, between 4,096 and 2,097,152 tokens, a multiple of 4,096 (so of the scan
/// chunk: results do not depend on the stripe length).
pub fn gpu_stripe_len(config: &MambaConfig, free_bytes: usize) -> usize {
    (free_bytes / 4 / (4 * floats_per_token(config))).clamp(4096, 1 << 21) / 4096 * 4096
}

/// f32 activation values per token of one stripe.
fn floats_per_token(config: &MambaConfig) -> usize {
    match &config.mamba2 {
        None => {
            3 * config.hidden_size
                + 6 * config.intermediate_size
                + config.x_proj_width()
                + config.vocab_size
        }
        // in_proj's output, the conv output, y, dt and the SSD chunk sums, plus the residual
        // stream and logits. (The SSD chunk states and C Bᵀ are held for one piece of the
        // stripe at a time, a fixed amount.)
        Some(m) => {
            3 * config.hidden_size
                + 2 * config.in_proj_width()
                + 2 * config.intermediate_size
                + 2 * m.num_heads
                + config.vocab_size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_bad_ones_say_what_is_expected() {
        assert_eq!(Device::resolve(" CPU ").unwrap(), Device::Cpu(None));
        let err = Device::resolve("tpu").unwrap_err();
        assert!(err.contains("expected auto, cpu, cuda or cuda:N"), "{err}");
        // Without a GPU, auto falls back to the CPU and says why.
        if super::super::cuda::cuda_available().is_err() {
            assert!(matches!(
                Device::resolve("auto").unwrap(),
                Device::Cpu(Some(_))
            ));
            assert!(Device::resolve("cuda:0").is_err());
        }
    }

    #[test]
    fn gpu_stripes_are_multiples_of_the_scan_chunk() {
        let config = crate::model::builtin::load().unwrap().config;
        for free in [0, 1 << 30, 80 << 30] {
            let s = gpu_stripe_len(&config, free);
            assert!(s.is_multiple_of(4096) && (4096..=1 << 21).contains(&s));
        }
        assert!((1024..=65536).contains(&cpu_stripe_len(&config, 1)));
        assert_eq!(cpu_stripe_len(&config, 1), cpu_stripe_len(&config, 2));
        assert!(cpu_stripe_len(&config, 16) >= 4 * cpu_stripe_len(&config, 2));
        assert!(cpu_stripe_len(&config, 4096) <= 65536);
    }
}
