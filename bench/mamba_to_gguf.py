#!/usr/bin/env python3
"""Converts a Hugging Face MambaForCausalLM checkpoint (f32 safetensors) to a GGUF file that
llama.cpp runs as architecture `mamba`, without torch.

Does what llama.cpp's own converter does for Mamba-1 (A = -exp(A_log), conv weight squeezed to
[d_inner, d_conv], a tied LM head left out), but writes a tokenizer of type "none" with
`vocab_size` raw ids: the DNA models have no text vocabulary, and callers feed token ids.

    python3 bench/mamba_to_gguf.py models/ssmgen-dna-small out.gguf [--gguf-py DIR]

`--gguf-py` points at llama.cpp's `gguf-py` folder (else the `gguf` package from PyPI).
"""

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    """Every tensor of an f32 safetensors file, as numpy arrays."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {meta['dtype']}, this converter takes F32 only")
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[base + start : base + end], dtype="<f4").reshape(meta["shape"]).copy()
    return out


def convert(model_dir, out_path, gguf):
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    if cfg.get("model_type") != "mamba":
        raise SystemExit(f"model_type {cfg.get('model_type')!r}: only Mamba-1 converts")
    t = read_safetensors(model_dir / "model.safetensors")
    d_model = cfg["hidden_size"]
    d_inner = cfg.get("intermediate_size", 2 * d_model)
    n_layer = cfg["num_hidden_layers"]
    vocab = cfg["vocab_size"]

    w = gguf.GGUFWriter(str(out_path), "mamba")
    w.add_name(model_dir.name)
    w.add_context_length(2**20)
    w.add_embedding_length(d_model)
    w.add_feed_forward_length(0)
    w.add_head_count(0)
    w.add_block_count(n_layer)
    w.add_ssm_conv_kernel(cfg.get("conv_kernel", 4))
    w.add_ssm_inner_size(d_inner)
    w.add_ssm_state_size(cfg.get("state_size", 16))
    w.add_ssm_time_step_rank(cfg["time_step_rank"])
    w.add_layer_norm_rms_eps(cfg.get("layer_norm_epsilon", 1e-5))
    w.add_ssm_dt_b_c_rms(False)
    w.add_file_type(0)  # all f32
    w.add_tokenizer_model("none")
    w.add_vocab_size(vocab)

    def put(name, arr):
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    p = "backbone."
    put("token_embd.weight", t[p + "embeddings.weight"])
    put("output_norm.weight", t[p + "norm_f.weight"])
    if "lm_head.weight" in t and not np.array_equal(t["lm_head.weight"], t[p + "embeddings.weight"]):
        put("output.weight", t["lm_head.weight"])
    for i in range(n_layer):
        lp = f"{p}layers.{i}."
        b = f"blk.{i}."
        put(b + "attn_norm.weight", t[lp + "norm.weight"])
        put(b + "ssm_in.weight", t[lp + "mixer.in_proj.weight"])
        put(b + "ssm_conv1d.weight", t[lp + "mixer.conv1d.weight"].squeeze(1))
        if lp + "mixer.conv1d.bias" in t:
            put(b + "ssm_conv1d.bias", t[lp + "mixer.conv1d.bias"])
        else:
            put(b + "ssm_conv1d.bias", np.zeros(d_inner, np.float32))
        put(b + "ssm_x.weight", t[lp + "mixer.x_proj.weight"])
        put(b + "ssm_dt.weight", t[lp + "mixer.dt_proj.weight"])
        put(b + "ssm_dt.bias", t[lp + "mixer.dt_proj.bias"])
        put(b + "ssm_a", -np.exp(t[lp + "mixer.A_log"]))
        put(b + "ssm_d", t[lp + "mixer.D"])
        put(b + "ssm_out.weight", t[lp + "mixer.out_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--gguf-py", help="llama.cpp's gguf-py folder (default: the installed gguf package)")
    a = ap.parse_args()
    if a.gguf_py:
        sys.path.insert(0, a.gguf_py)
    import gguf

    convert(a.model_dir, a.out, gguf)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
