"""A generic DVT cascade stage with feature and relationship reuse (docs/ARCHITECTURE.md, "The model's math").

Parameter names follow the official code (`feature_resuse_mlp`, `relation_reuse_conv`, ...), so
the official backbones can reuse these blocks. Every stage returns
`(logits, feat_out, attn_out)`:
- feat_out: final-block output before the final LayerNorm, cls included, (B, 1+N, D);
- attn_out: pre-softmax scaled attention logits (reused term already added) of every layer,
  layer-major, (B, L*H, 1+N, 1+N).
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from .resample import axis_tensor, resample_features, resample_relation

FEATURE_REUSE_DIM = 48
FEATURE_REUSE_HIDDEN = 128


def softmax_last(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, written out (ReduceMax, Sub, Exp, ReduceSum, Div).

    Same math as `softmax(-1)`; exported this way because tract's Softmax kernel falls off its
    fast path for rows whose length is not a multiple of 4 (197 tokens: 35 ms per layer vs
    well under 1 ms for the decomposed form, measured with examples/profile_stage.rs).
    """
    if not _exporting():
        # Same math, fused kernel: the decomposed form's backward is ~20% of a training step.
        return torch.softmax(x, dim=-1)
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def _exporting() -> bool:
    """True while torch.onnx traces the graph: only then is the export-friendly form needed."""
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2."""

    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention that exposes its pre-softmax logits and accepts a reused addend."""

    def __init__(self, dim: int, heads: int, tokens: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.tokens = tokens
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, reuse: Optional[torch.Tensor] = None):
        n, h, hd = self.tokens, self.heads, self.head_dim
        qkv = self.qkv(x).reshape(-1, n, 3, h, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if reuse is not None:
            logits = logits + reuse
        attn = softmax_last(logits)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(-1, n, h * hd)
        return self.proj(out), logits


class Block(nn.Module):
    """Pre-norm transformer block; with feature reuse, upstream features join the MLP input."""

    def __init__(self, dim, heads, tokens, mlp_hidden, qkv_bias, ln_eps, reuse: Optional["ReuseGeometry"]):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = Attention(dim, heads, tokens, qkv_bias)
        self.reuse = reuse
        extra = FEATURE_REUSE_DIM if reuse is not None else 0
        self.norm2 = nn.LayerNorm(dim + extra, eps=ln_eps)
        self.mlp = Mlp(dim + extra, mlp_hidden, dim)
        if reuse is not None:
            # (sic) the official module name is misspelt; kept so that checkpoints load.
            self.feature_resuse_mlp = nn.Sequential(
                nn.LayerNorm(dim, eps=ln_eps),
                Mlp(dim, FEATURE_REUSE_HIDDEN, FEATURE_REUSE_DIM),
            )

    def forward(self, x, feat_up=None, rel=None, grid_matrix=None):
        y, logits = self.attn(self.norm1(x), rel)
        x = x + y
        if self.reuse is not None:
            f = self.feature_resuse_mlp(feat_up)
            f = resample_features(f, grid_matrix, self.reuse.s_in, self.reuse.s_out)
            x = x + self.mlp(self.norm2(torch.cat([x, f], dim=2)))
        else:
            x = x + self.mlp(self.norm2(x))
        return x, logits


@dataclass(frozen=True)
class ReuseGeometry:
    """Upstream and downstream square token grids of a reuse link."""

    s_in: int
    s_out: int


class PatchTokenizer(nn.Module):
    """Non-overlapping conv patch embedding: (B, C, H, W) -> (B, N, D)."""

    def __init__(self, in_chans: int, dim: int, patch: int, padding: int = 0):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch, padding=padding)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ConvStemTokenizer(nn.Module):
    """Two 3x3 convolutions (BatchNorm, GELU) at full resolution, then the patch convolution.

    A plain patch embedding sees each patch alone, and a small ViT trained from scratch needs
    many epochs to learn local structure from attention alone. Early convolutions give every
    token the context around its patch (Xiao et al., "Early Convolutions Help Transformers See
    Better", NeurIPS 2021), as T2T-ViT's overlapping soft split does for DVT's own backbone.
    The stem runs at the image's resolution, so it costs the same on every grid: keep it narrow.
    """

    def __init__(self, in_chans: int, dim: int, patch: int, channels: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels), nn.GELU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), nn.BatchNorm2d(channels), nn.GELU())
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(self.stem(x)).flatten(2).transpose(1, 2)


class DvtStage(nn.Module):
    """One cascade stage: tokenizer, cls + positions, blocks, final norm and head.

    `upstream_grid` is None for the first stage (no reuse inputs); otherwise the stage takes
    `feat_in` and `attn_in` from the previous stage and applies both reuses.
    """

    def __init__(self, tokenizer: nn.Module, grid: int, dim: int, depth: int, heads: int,
                 mlp_hidden: int, num_classes: int, qkv_bias: bool = True, ln_eps: float = 1e-5,
                 upstream_grid: Optional[int] = None, learned_pos: bool = True,
                 tokenizer_name: str = "tokenizer"):
        super().__init__()
        # The official checkpoints call it `tokens_to_token` (T2T) or `patch_embed` (DeiT).
        self.tokenizer_name = tokenizer_name
        self.grid, self.dim, self.depth, self.heads = grid, dim, depth, heads
        self.upstream_grid = upstream_grid
        tokens = grid * grid + 1
        reuse = ReuseGeometry(upstream_grid, grid) if upstream_grid else None
        setattr(self, tokenizer_name, tokenizer)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim), requires_grad=learned_pos)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if learned_pos:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            [Block(dim, heads, tokens, mlp_hidden, qkv_bias, ln_eps, reuse) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=ln_eps)
        self.head = nn.Linear(dim, num_classes)
        if reuse is not None:
            lh = depth * heads
            self.relation_reuse_conv = nn.Sequential(
                nn.Conv2d(lh, 3 * lh, kernel_size=1), nn.GELU(), nn.Conv2d(3 * lh, lh, kernel_size=1))
            # Constant resampling matrix: a buffer, not a parameter, and not in the state_dict.
            self.register_buffer("grid_matrix", axis_tensor(upstream_grid, grid), persistent=False)
        self.apply(_init_weights)

    @property
    def reuses(self) -> bool:
        return self.upstream_grid is not None

    def forward(self, image, feat_in=None, attn_in=None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # getattr default: stages pickled before `tokenizer_name` existed still run.
        x = getattr(self, getattr(self, "tokenizer_name", "tokenizer"))(image)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        rels: List[Optional[torch.Tensor]] = [None] * self.depth
        if self.reuses:
            r = self.relation_reuse_conv(attn_in)
            r = resample_relation(r, self.grid_matrix, self.upstream_grid, self.grid)
            rels = list(torch.chunk(r, self.depth, dim=1))
        logits_per_layer = []
        for blk, rel in zip(self.blocks, rels):
            x, attn_logits = blk(x, feat_in, rel, getattr(self, "grid_matrix", None))
            logits_per_layer.append(attn_logits)
        feat_out = x
        attn_out = torch.cat(logits_per_layer, dim=1)
        logits = self.head(self.norm(x)[:, 0])
        return logits, feat_out, attn_out


def _init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class DvtCascade(nn.Module):
    """The stages in order; `forward` runs all of them (training and reference outputs)."""

    def __init__(self, stages: List[DvtStage]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, image):
        outs = []
        feat, attn = None, None
        for stage in self.stages:
            logits, feat, attn = stage(image, feat, attn) if stage.reuses else stage(image)
            outs.append((logits, feat, attn))
        return outs
