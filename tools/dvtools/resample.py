"""Token-grid resampling used by both reuse paths, as constant matrices.

The official DVT code resamples a s_in x s_in token grid to s_out x s_out with a nearest
upsample to 2*s_in followed by adaptive average pooling. Both steps are linear and separable,
so per axis they collapse into one constant matrix A (s_out x s_in), and on a row-major
flattened grid the 2-D map is kron(A, A). Building A from plain Python numbers (outside any
tracing) keeps the exported graph free of Resize/AdaptivePool ops and of batch-dependent
constants (docs/ARCHITECTURE.md, "The model's math").
"""
from fractions import Fraction
from typing import List

import torch


def axis_matrix(s_in: int, s_out: int) -> List[List[float]]:
    """Per-axis matrix of nearest-upsample(s_in -> 2*s_in) then adaptive-avg-pool(-> s_out)."""
    up = 2 * s_in
    # PyTorch 'nearest': source index = floor(dst * in / out).
    src_of = [(u * s_in) // up for u in range(up)]
    rows = []
    for i in range(s_out):
        start = (i * up) // s_out
        end = -((-(i + 1) * up) // s_out)  # ceil
        row = [Fraction(0)] * s_in
        for u in range(start, end):
            row[src_of[u]] += Fraction(1, end - start)
        rows.append([float(v) for v in row])
    return rows


def axis_tensor(s_in: int, s_out: int) -> torch.Tensor:
    """`axis_matrix` as a float32 tensor."""
    return torch.tensor(axis_matrix(s_in, s_out), dtype=torch.float32)


def dense_token_matrix(s_in: int, s_out: int) -> torch.Tensor:
    """P = 1 (+) kron(A, A): maps (1 + s_in^2) tokens (cls first) to (1 + s_out^2) tokens."""
    a = axis_tensor(s_in, s_out)
    k = torch.kron(a, a)
    p = torch.zeros(1 + s_out * s_out, 1 + s_in * s_in)
    p[0, 0] = 1.0
    p[1:, 1:] = k
    return p


def resample_grid(x: torch.Tensor, a: torch.Tensor, k: int, s_in: int, s_out: int) -> torch.Tensor:
    """Resample the last axis of `x` (B, k, s_in*s_in), a row-major grid, to s_out*s_out.

    Computes kron(A, A) @ v as A @ V @ A^T, which costs s_in*s_out*(s_in+s_out) per map
    instead of s_in^2 * s_out^2 for the dense Kronecker matrix.
    """
    at = a.t()
    g = x.reshape(-1, k, s_in, s_in)
    # Constant on the right of both products, so each is one tall GEMM, not a batch of tiny ones.
    g = torch.matmul(g, at).transpose(2, 3)
    g = torch.matmul(g, at).transpose(2, 3)
    return g.reshape(-1, k, s_out * s_out)


def resample_features(f: torch.Tensor, a: torch.Tensor, s_in: int, s_out: int) -> torch.Tensor:
    """Feature reuse: (B, 1+s_in^2, C) -> (B, 1+s_out^2, C), cls dropped and replaced by zeros."""
    c = f.shape[-1]
    spatial = f[:, 1:, :].transpose(1, 2)  # (B, C, n)
    spatial = resample_grid(spatial, a, c, s_in, s_out).transpose(1, 2)  # (B, m, C)
    return torch.nn.functional.pad(spatial, (0, 0, 1, 0))  # zero cls row


_DENSE = {}


def _dense_cached(a: torch.Tensor, s_in: int, s_out: int) -> torch.Tensor:
    key = (s_in, s_out, a.device, a.dtype)
    if key not in _DENSE:
        _DENSE[key] = dense_token_matrix(s_in, s_out).to(device=a.device, dtype=a.dtype)
    return _DENSE[key]


def resample_relation(r: torch.Tensor, a: torch.Tensor, s_in: int, s_out: int) -> torch.Tensor:
    """Relationship reuse: (B, C, 1+n, 1+n) -> (B, C, 1+m, 1+m), i.e. P @ R @ P^T.

    The cls row and column are kept and resampled along the other axis only.
    """
    if not (torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()):
        # Same map as one dense P (1+m, 1+n) on each side: no transposed copies, ~3x faster
        # to train; the export keeps the separable form below (no (1+m)x(1+n) constant).
        p = _dense_cached(a, s_in, s_out)
        return torch.matmul(torch.matmul(p, r), p.t())
    c = r.shape[1]
    n, m = s_in * s_in, s_out * s_out

    def last_axis(t: torch.Tensor, rows: int) -> torch.Tensor:
        cls = t[:, :, :, :1]
        sp = t[:, :, :, 1:].reshape(-1, c * rows, n)
        sp = resample_grid(sp, a, c * rows, s_in, s_out).reshape(-1, c, rows, m)
        return torch.cat([cls, sp], dim=3)

    cols = last_axis(r, 1 + n)  # (B, C, 1+n, 1+m)
    rows = last_axis(cols.transpose(2, 3), 1 + m)  # (B, C, 1+m, 1+m), transposed
    return rows.transpose(2, 3)
