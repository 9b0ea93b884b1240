"""The T2T-ViT tokens-to-token module, written for export (docs/ARCHITECTURE.md, "The model's math").

- `Token_performer`'s random feature matrix `w` is a stored, non-trainable parameter: it is
  loaded from the checkpoint and never regenerated (a fresh draw would change the model).
- The four einsums of the official Performer are plain batched MatMuls here.
- `nn.Unfold` is replaced by `SoftSplit`: Pad, then one Gather with a constant index table,
  which exports as Pad/Reshape/Gather/Reshape (no im2col Range/Gather chains, no extra FLOPs).
"""
import math
from typing import List

import numpy as np
import torch
from torch import nn

TOKEN_DIM = 64
KERNEL_RATIO = 0.5
PERFORMER_EPS = 1e-8

# (kernel, stride, padding) of soft_split0 per stage grid (spec §1.3); split1/2 are always 3/2/1.
SPLIT0 = {7: (14, 8, 3), 10: (11, 6, 5), 14: (7, 4, 2)}


def unfold_index(size: int, kernel: int, stride: int, padding: int) -> List[List[int]]:
    """Index table of nn.Unfold on a padded, flattened square map.

    Row = kernel offset (ki * kernel + kj), column = output position (row-major); values index
    the flattened (size + 2 * padding)^2 padded map.
    """
    padded = size + 2 * padding
    out = (padded - kernel) // stride + 1
    rows = []
    for ki in range(kernel):
        for kj in range(kernel):
            rows.append([(oi * stride + ki) * padded + (oj * stride + kj)
                         for oi in range(out) for oj in range(out)])
    return rows


class SoftSplit(nn.Module):
    """nn.Unfold(kernel, stride, padding) followed by transpose(1, 2), on a square input.

    (B, C, size, size) -> (B, L, C * kernel^2) with nn.Unfold's channel order (c, ki, kj).
    """

    def __init__(self, channels: int, size: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.channels, self.padding, self.kernel = channels, padding, kernel
        self.padded = size + 2 * padding
        self.out = (self.padded - kernel) // stride + 1
        # Built from plain Python ints (outside tracing), a constant, not part of the state_dict.
        idx = torch.tensor(unfold_index(size, kernel, stride, padding), dtype=torch.int64)
        self.register_buffer("index", idx.t().contiguous(), persistent=False)  # (L, k*k)

    def forward(self, x):
        p = self.padding
        x = nn.functional.pad(x, (p, p, p, p))
        x = x.reshape(-1, self.channels, self.padded * self.padded)
        x = x[:, :, self.index]  # (B, C, L, k*k)
        x = x.permute(0, 2, 1, 3)  # (B, L, C, k*k)
        return x.reshape(-1, self.out * self.out, self.channels * self.kernel * self.kernel)


class _PerformerMlp(nn.Sequential):
    """Linear -> GELU -> Linear (keys mlp.0 / mlp.2, as in the official Sequential)."""

    def __init__(self, emb: int):
        super().__init__(nn.Linear(emb, emb), nn.GELU(), nn.Linear(emb, emb))


class PerformerCore(nn.Module):
    """The Performer's exp features and normaliser: the part the FP16 export keeps in FP32.

    A separate (parameter-free) module so that its ONNX nodes carry a `/core/` scope name.
    """

    def forward(self, k, q, v, w):
        m = w.shape[0]
        kp, qp = self._prm_exp(k, w, m), self._prm_exp(q, w, m)  # (B, T, m)
        d = torch.matmul(qp, kp.sum(dim=1).unsqueeze(-1))  # (B, T, 1)
        kptv = torch.matmul(v.transpose(1, 2), kp)  # (B, emb, m)
        y = torch.matmul(qp, kptv.transpose(1, 2))  # (B, T, emb)
        return y / (d + PERFORMER_EPS)

    @staticmethod
    def _prm_exp(x, w, m):
        # Positive random features: exp(w.x - |x|^2 / 2) / sqrt(m).
        xd = (x * x).sum(dim=-1, keepdim=True) / 2
        wtx = torch.matmul(x, w.t())
        return torch.exp(wtx - xd) / math.sqrt(m)


class Token_performer(nn.Module):  # noqa: N801 (official class name, kept for recognisability)
    """Single-head Performer layer of the T2T module; `v` is the skip connection."""

    def __init__(self, dim: int, in_dim: int = TOKEN_DIM, kernel_ratio: float = KERNEL_RATIO):
        super().__init__()
        self.emb = in_dim
        self.kqv = nn.Linear(dim, 3 * in_dim)
        self.proj = nn.Linear(in_dim, in_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(in_dim)
        self.mlp = _PerformerMlp(in_dim)
        self.core = PerformerCore()
        m = int(in_dim * kernel_ratio)
        # Drawn once at construction like the official code; a checkpoint overwrites it.
        w = nn.init.orthogonal_(torch.empty(m, in_dim)) * math.sqrt(m)
        self.w = nn.Parameter(w, requires_grad=False)

    def forward(self, x):
        x = self.norm1(x)
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)  # official split order: k, q, v
        y = v + self.proj(self.core(k, q, v, self.w))
        return y + self.mlp(self.norm2(y))


class T2TModule(nn.Module):
    """Tokens-to-token: soft split, Performer, soft split, Performer, soft split, project."""

    def __init__(self, grid: int, embed_dim: int, img_size: int = 224, in_chans: int = 3,
                 token_dim: int = TOKEN_DIM):
        super().__init__()
        k0, s0, p0 = SPLIT0[grid]
        self.soft_split0 = SoftSplit(in_chans, img_size, k0, s0, p0)
        g1 = self.soft_split0.out
        self.soft_split1 = SoftSplit(token_dim, g1, 3, 2, 1)
        g2 = self.soft_split1.out
        self.soft_split2 = SoftSplit(token_dim, g2, 3, 2, 1)
        if self.soft_split2.out != grid:
            raise ValueError(f"T2T split geometry gives {self.soft_split2.out}x{self.soft_split2.out}, not {grid}")
        self.grids = (g1, g2)
        self.token_dim = token_dim
        self.attention1 = Token_performer(in_chans * k0 * k0, token_dim)
        self.attention2 = Token_performer(token_dim * 9, token_dim)
        self.project = nn.Linear(token_dim * 9, embed_dim)

    def forward(self, x):
        x = self.attention1(self.soft_split0(x))
        x = x.transpose(1, 2).reshape(-1, self.token_dim, self.grids[0], self.grids[0])
        x = self.attention2(self.soft_split1(x))
        x = x.transpose(1, 2).reshape(-1, self.token_dim, self.grids[1], self.grids[1])
        return self.project(self.soft_split2(x))


def sinusoid_table(n_position: int, d_hid: int) -> torch.Tensor:
    """T2T-ViT's fixed positional table, (1, n_position, d_hid)."""
    pos = np.arange(n_position)[:, None].astype(np.float64)
    j = np.arange(d_hid)[None, :]
    angle = pos / np.power(10000, 2 * (j // 2) / d_hid)
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.tensor(table, dtype=torch.float32).unsqueeze(0)
