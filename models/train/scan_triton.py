"""The selective scan for training, as two Triton kernels (forward and backward) behind a
torch.autograd.Function.

    h[t] = exp(dt[t] * A) * h[t - 1] + dt[t] * u[t] * B[t],  h[-1] = 0
    y[t] = sum_n h[t, :, n] * C[t, n]

Shapes: u, dt, y: [b, L, e]; A: [e, n]; B, C: [b, L, n]; all float32.

Each program owns one sequence and a block of `BLOCK_E` channels, and walks the sequence in
time order with its [BLOCK_E, n] state in registers (the same algorithm as the transformers
slow path, without Python in the loop). Parallelism comes from batch x channel blocks, so the
training batch should give a few hundred programs (e.g. 32 sequences x 16 blocks).

The forward pass stores every state h[t] (b * L * e * n floats: 2 GiB for 32 x 4096 x 256 x 16)
so the backward pass, which walks time in reverse, reads h[t - 1] instead of recomputing it:

    dh  = dh_next * exp(dt[t+1] A) + dy[t] C[t]         (dh_next: gradient carried from t + 1)
    dC[t] = sum_e h[t] dy[t]          dB[t] = sum_e dh dt[t] u[t]
    du[t] = sum_n dh dt[t] B[t]       ddt[t] = sum_n dh (u[t] B[t] + A exp(dt[t] A) h[t-1])
    dA   += dh dt[t] exp(dt[t] A) h[t-1]

The sums over channels for dB and dC are written per channel block and summed in torch; dA is
written per sequence and summed in torch.
"""
import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _scan_fwd(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, y_ptr, h_ptr, L, E,
              N: tl.constexpr, BLOCK_E: tl.constexpr):
    seq = tl.program_id(0)
    eb = tl.program_id(1)
    e = eb * BLOCK_E + tl.arange(0, BLOCK_E)
    n = tl.arange(0, N)
    a2 = tl.load(a_ptr + e[:, None] * N + n[None, :]) * 1.4426950408889634  # A * log2(e)
    h = tl.zeros((BLOCK_E, N), dtype=tl.float32)
    row = seq * L * E + e                                # u/dt/y offsets at t = 0
    bc = seq * L * N + n                                 # B/C offsets at t = 0
    hs = (seq * L * E + e[:, None]) * N + n[None, :]     # h offsets at t = 0
    # Loads for step t + 1 are issued before step t's arithmetic, to hide their latency.
    u = tl.load(u_ptr + row)
    dt = tl.load(dt_ptr + row)
    bt = tl.load(b_ptr + bc)
    ct = tl.load(c_ptr + bc)
    for t in range(0, L):
        more = (tl.zeros((BLOCK_E,), dtype=tl.int32) + t + 1) < L
        more_n = (tl.zeros((N,), dtype=tl.int32) + t + 1) < L
        u_next = tl.load(u_ptr + row + (t + 1) * E, mask=more, other=0.0)
        dt_next = tl.load(dt_ptr + row + (t + 1) * E, mask=more, other=0.0)
        b_next = tl.load(b_ptr + bc + (t + 1) * N, mask=more_n, other=0.0)
        c_next = tl.load(c_ptr + bc + (t + 1) * N, mask=more_n, other=0.0)
        h = tl.exp2(dt[:, None] * a2) * h + (dt * u)[:, None] * bt[None, :]
        tl.store(y_ptr + row + t * E, tl.sum(h * ct[None, :], axis=1))
        tl.store(h_ptr + hs + t * E * N, h)
        u, dt, bt, ct = u_next, dt_next, b_next, c_next


@triton.jit
def _scan_bwd(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, h_ptr, dy_ptr,
              du_ptr, ddt_ptr, db_ptr, dc_ptr, da_ptr, L, E,
              N: tl.constexpr, BLOCK_E: tl.constexpr):
    seq = tl.program_id(0)
    eb = tl.program_id(1)
    blocks = tl.num_programs(1)
    e = eb * BLOCK_E + tl.arange(0, BLOCK_E)
    n = tl.arange(0, N)
    a = tl.load(a_ptr + e[:, None] * N + n[None, :])
    a2 = a * 1.4426950408889634
    dh = tl.zeros((BLOCK_E, N), dtype=tl.float32)
    da = tl.zeros((BLOCK_E, N), dtype=tl.float32)
    row = seq * L * E + e
    bc = seq * L * N + n
    part = (seq * blocks + eb) * L * N + n               # dB/dC partials at t = 0
    hs = (seq * L * E + e[:, None]) * N + n[None, :]
    # Walks t = L-1 .. 0; h[t - 1] loaded at step t is step t - 1's h, so it is carried over,
    # and the next step's inputs are loaded before this step's arithmetic.
    t = L - 1
    u = tl.load(u_ptr + row + t * E)
    dt = tl.load(dt_ptr + row + t * E)
    g = tl.load(dy_ptr + row + t * E)
    bt = tl.load(b_ptr + bc + t * N)
    ct = tl.load(c_ptr + bc + t * N)
    h = tl.load(h_ptr + hs + t * E * N)
    for i in range(0, L):
        t = L - 1 - i
        more = (tl.zeros((BLOCK_E,), dtype=tl.int32) + t) > 0
        more_n = (tl.zeros((N,), dtype=tl.int32) + t) > 0
        more_h = (tl.zeros((BLOCK_E, N), dtype=tl.int32) + t) > 0
        h_prev = tl.load(h_ptr + hs + (t - 1) * E * N, mask=more_h, other=0.0)
        u_next = tl.load(u_ptr + row + (t - 1) * E, mask=more, other=0.0)
        dt_next = tl.load(dt_ptr + row + (t - 1) * E, mask=more, other=0.0)
        g_next = tl.load(dy_ptr + row + (t - 1) * E, mask=more, other=0.0)
        b_next = tl.load(b_ptr + bc + (t - 1) * N, mask=more_n, other=0.0)
        c_next = tl.load(c_ptr + bc + (t - 1) * N, mask=more_n, other=0.0)
        dh = dh + g[:, None] * ct[None, :]
        tl.store(dc_ptr + part + t * N, tl.sum(h * g[:, None], axis=0))
        tl.store(db_ptr + part + t * N, tl.sum(dh * (dt * u)[:, None], axis=0))
        decay = tl.exp2(dt[:, None] * a2)
        tl.store(du_ptr + row + t * E, tl.sum(dh * bt[None, :], axis=1) * dt)
        back = dh * decay * h_prev                       # d/d(dt A) of the decay term
        tl.store(ddt_ptr + row + t * E, tl.sum(dh * u[:, None] * bt[None, :] + back * a, axis=1))
        da += back * dt[:, None]
        dh = dh * decay
        h, u, dt, g, bt, ct = h_prev, u_next, dt_next, g_next, b_next, c_next
    tl.store(da_ptr + (seq * E + e[:, None]) * N + n[None, :], da)


def _block_e(e):
    for block in (16, 8, 4, 2, 1):
        if e % block == 0:
            return block
    return 1


class SelectiveScan(torch.autograd.Function):
    """y = scan(u, dt, A, B, C) with gradients for all five inputs."""

    @staticmethod
    def forward(ctx, u, dt, A, Bm, Cm):
        u, dt, A, Bm, Cm = (x.float().contiguous() for x in (u, dt, A, Bm, Cm))
        b, L, e = u.shape
        n = A.shape[1]
        block = _block_e(e)
        y = torch.empty_like(u)
        h = torch.empty((b, L, e, n), device=u.device, dtype=torch.float32)
        if h.numel() >= 2**31:
            raise ValueError("batch x length x d_inner x d_state must stay below 2**31 (int32 offsets)")
        _scan_fwd[(b, e // block)](u, dt, A, Bm, Cm, y, h, L, e, N=n, BLOCK_E=block, num_warps=1)
        ctx.save_for_backward(u, dt, A, Bm, Cm, h)
        return y

    @staticmethod
    def backward(ctx, dy):
        u, dt, A, Bm, Cm, h = ctx.saved_tensors
        b, L, e = u.shape
        n = A.shape[1]
        block = _block_e(e)
        blocks = e // block
        dy = dy.float().contiguous()
        du = torch.empty_like(u)
        ddt = torch.empty_like(dt)
        db = torch.empty((b, blocks, L, n), device=u.device, dtype=torch.float32)
        dc = torch.empty_like(db)
        da = torch.empty((b, e, n), device=u.device, dtype=torch.float32)
        _scan_bwd[(b, blocks)](u, dt, A, Bm, Cm, h, dy, du, ddt, db, dc, da, L, e,
                               N=n, BLOCK_E=block, num_warps=1)
        return du, ddt, da.sum(0), db.sum(1), dc.sum(1)


def selective_scan(u, dt, A, Bm, Cm):
    """The scan above, differentiable; u, dt: [b, L, e]; A: [e, n]; Bm, Cm: [b, L, n]."""
    return SelectiveScan.apply(u, dt, A, Bm, Cm)
