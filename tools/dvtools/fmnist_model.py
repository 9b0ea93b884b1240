"""The small DVT that ships as the embedded default: Fashion-MNIST, 28x28x1, 10 classes.

Token grids 4x4, 7x7, 14x14 come from conv patch sizes 7, 4 and 2 on the same image, each
after its own narrow convolutional stem when `stem_channels` > 0 (model.ConvStemTokenizer).
"""
from dataclasses import dataclass, asdict

from .model import ConvStemTokenizer, DvtCascade, DvtStage, PatchTokenizer

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
GRIDS = (4, 7, 14)


@dataclass(frozen=True)
class SmallVitConfig:
    """Backbone shared by every stage (and by the static baselines)."""

    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_hidden: int = 128
    stem_channels: int = 0  # 0: plain patch embedding; else the conv stem's width

    def to_dict(self):
        return asdict(self)


def patch_for(grid: int) -> int:
    assert 28 % grid == 0, grid
    return 28 // grid


def make_tokenizer(cfg: SmallVitConfig, grid: int):
    """The stage's image -> tokens step for `grid` x `grid` tokens."""
    if cfg.stem_channels:
        return ConvStemTokenizer(1, cfg.dim, patch_for(grid), cfg.stem_channels)
    return PatchTokenizer(1, cfg.dim, patch_for(grid))


def make_stage(cfg: SmallVitConfig, grid: int, upstream_grid=None, num_classes: int = len(CLASSES)) -> DvtStage:
    return DvtStage(make_tokenizer(cfg, grid), grid, cfg.dim, cfg.depth, cfg.heads,
                    cfg.mlp_hidden, num_classes, qkv_bias=True, ln_eps=1e-5, upstream_grid=upstream_grid)


def make_cascade(cfg: SmallVitConfig, grids=GRIDS, num_classes: int = len(CLASSES)) -> DvtCascade:
    stages = [make_stage(cfg, g, grids[i - 1] if i > 0 else None, num_classes) for i, g in enumerate(grids)]
    return DvtCascade(stages)


def make_static(cfg: SmallVitConfig, grid: int) -> DvtStage:
    """A plain ViT on one grid, no reuse: what a user would deploy without DVT."""
    return make_stage(cfg, grid, None)
