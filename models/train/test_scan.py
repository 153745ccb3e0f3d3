#!/usr/bin/env python3
"""Checks the training scans against a float64 step-by-step reference, values and gradients.

    python3 models/train/test_scan.py                      # GPU: Triton kernels compiled
    TRITON_INTERPRET=1 python3 models/train/test_scan.py   # CPU: Triton's interpreter

Exits non-zero when any difference exceeds its bound.
"""
import sys

import torch


def reference_scan(u, dt, A, Bm, Cm):
    """The recurrence, one step at a time, in the inputs' dtype."""
    b, L, e = u.shape
    h = torch.zeros(b, e, A.shape[1], dtype=u.dtype, device=u.device)
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[..., None] * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1)


def inputs(b, L, e, n, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, L, e, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(b, L, e, generator=g) - 2)
    A = -torch.exp(torch.log(torch.arange(1, n + 1).float()).repeat(e, 1) + 0.3 * torch.randn(e, n, generator=g))
    Bm = torch.randn(b, L, n, generator=g)
    Cm = torch.randn(b, L, n, generator=g)
    return [x.to(device) for x in (u, dt, A, Bm, Cm)]


def check(name, scan, device, b=2, L=128, e=32, n=16, bound=2e-4):
    xs = inputs(b, L, e, n, device)
    ref_in = [x.double().detach().requires_grad_() for x in xs]
    ours_in = [x.detach().requires_grad_() for x in xs]
    ref = reference_scan(*ref_in)
    ours = scan(*ours_in)
    dy = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    (ref * dy).sum().backward()
    (ours * dy.float()).sum().backward()
    worst = 0.0
    for label, r, o in [("y", ref, ours)] + [(f"d{k}", ri.grad, oi.grad) for k, ri, oi in
                                              zip(["u", "dt", "A", "B", "C"], ref_in, ours_in)]:
        rel = ((o.double() - r).abs().max() / r.abs().max().clamp_min(1e-12)).item()
        worst = max(worst, rel)
        print(f"{name}: {label:3s} max |difference| / max |reference| = {rel:.2e}")
    return worst <= bound


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from scan_triton import selective_scan
    from train import chunked_scan
    ok = check("triton", selective_scan, device)
    ok &= check("chunked", chunked_scan, device)
    print("ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
