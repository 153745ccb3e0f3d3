"""Helpers shared by the bench scripts: locating the binary, synthetic FASTA, running ssmgen."""
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary():
    """$SSMGEN, else .device-carry/ssmgen (the carried build), else target/release/ssmgen."""
    for path in (os.environ.get("SSMGEN"), os.path.join(ROOT, ".device-carry", "ssmgen"),
                 os.path.join(ROOT, "target", "release", "ssmgen")):
        if path and os.path.exists(path):
            return path
    sys.exit("no ssmgen binary: run `cargo build --release` (or set SSMGEN)")


def write_fasta(path, n_bases, seed=7, name="synthetic"):
    """A random ACGT record of n_bases, 60 bases per line, with a .fai."""
    table = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)
    rng = random.Random(seed)
    with open(path, "wb") as f:
        header = f">{name}\n".encode()
        f.write(header)
        left = n_bases
        while left:
            n = min(left, 60 * 200_000)
            raw = rng.randbytes(n).translate(table)
            f.write(b"".join(raw[i : i + 60] + b"\n" for i in range(0, n, 60)))
            left -= n
    with open(path + ".fai", "w") as fai:
        fai.write(f"{name}\t{n_bases}\t{len(header)}\t60\t61\n")


def likelihood_csv_column(args, column="logp_fwd"):
    """Runs `ssmgen likelihood -f csv ARGS` and returns one column as floats (None = empty)."""
    out = subprocess.run([binary(), "likelihood", "-q", "-f", "csv"] + args,
                         check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    idx = lines[0].split(",").index(column)
    return [float(x) if x else None for x in (l.split(",")[idx] for l in lines[1:])]


TOKENS = {"A": 7, "C": 8, "G": 9, "T": 10}
"""Token ids of the bases (HyenaDNA/Caduceus); N and every other letter are 11."""


def fasta_tokens(path):
    """Token ids of the bases of a one-record FASTA file."""
    seq = "".join(l.strip() for l in open(path) if not l.startswith(">"))
    return [TOKENS.get(c.upper(), 11) for c in seq]


def transformers_logp(model, tokens, device="cpu"):
    """transformers' own MambaForCausalLM (its torch path) in float64 on `tokens`: the log-
    probability of each base given the ones before it, None for the first base and for N."""
    import torch
    from transformers import MambaForCausalLM
    m = MambaForCausalLM.from_pretrained(model, dtype=torch.float64).to(device).eval()
    ids = torch.tensor(tokens, device=device)[None]
    with torch.no_grad():
        logp = torch.log_softmax(m(input_ids=ids, use_cache=False).logits[0].double(), -1)
    observed = logp[:-1].gather(1, ids[0, 1:, None])[:, 0].tolist()
    return [None] + [v if t != 11 else None for v, t in zip(observed, tokens[1:])]


def max_mean_abs(a, b):
    diffs = [abs(x - y) for x, y in zip(a, b) if x is not None and y is not None]
    assert len(a) == len(b), (len(a), len(b))
    assert all((x is None) == (y is None) for x, y in zip(a, b)), "scored positions differ"
    return max(diffs), sum(diffs) / len(diffs)


def run_measured(cmd, echo=None):
    """Runs `cmd` with stdout discarded; returns (wall seconds, peak RSS in MiB). Exits on failure.
    Stderr lines containing `echo` (e.g. "profile:") are printed."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    if echo:
        for line in err.splitlines():
            if echo in line:
                print(line, flush=True)
    return time.time() - start, usage.ru_maxrss / 1024  # KiB -> MiB on Linux
