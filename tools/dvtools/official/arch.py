"""Backbone configurations and the `build(arch)` factory (docs/ARCHITECTURE.md, "The model's math")."""
from dataclasses import asdict, dataclass
from typing import Dict, List

import torch
from torch import nn

from ..model import DvtStage
from . import deit, t2t

GRIDS = (7, 10, 14)
# State_dict prefixes of the three stages, in cascade order (spec §1.1).
PREFIXES = ("less_less_token", "less_token", "normal_token")
NUM_CLASSES = 1000
IMAGE_SHAPE = (3, 224, 224)
# ImageNet evaluation normalisation (inference.py): Resize(256) + CenterCrop(224) + mean/std.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """One official backbone; identical for the three stages of a model."""

    family: str  # "t2t" or "deit"
    dim: int
    depth: int
    heads: int
    mlp_ratio: float
    qkv_bias: bool
    ln_eps: float

    @property
    def mlp_hidden(self) -> int:
        return int(self.dim * self.mlp_ratio)

    def to_dict(self) -> Dict:
        return {**asdict(self), "mlp_hidden": self.mlp_hidden, "feature_reuse_dim": 48,
                "feature_reuse_hidden": 128}


ARCHS: Dict[str, Backbone] = {
    "t2t_vit_12": Backbone("t2t", 256, 12, 4, 2.0, False, 1e-5),
    "t2t_vit_14": Backbone("t2t", 384, 14, 6, 3.0, False, 1e-5),
    "deit_small": Backbone("deit", 384, 12, 6, 4.0, True, 1e-6),
}

# The official registered model names, for messages and the manifest.
OFFICIAL_NAMES = {"t2t_vit_12": "DVT_T2t_vit_12", "t2t_vit_14": "DVT_T2t_vit_14",
                  "deit_small": "DVT_Deit_small"}


def make_stage(cfg: Backbone, grid: int, upstream_grid=None, num_classes: int = NUM_CLASSES) -> DvtStage:
    """One stage with the official parameter names."""
    if cfg.family == "t2t":
        tokenizer, name = t2t.T2TModule(grid, cfg.dim), "tokens_to_token"
    else:
        tokenizer, name = deit.patch_embed(grid, cfg.dim), "patch_embed"
    stage = DvtStage(tokenizer, grid, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_hidden, num_classes,
                     qkv_bias=cfg.qkv_bias, ln_eps=cfg.ln_eps, upstream_grid=upstream_grid,
                     learned_pos=cfg.family == "deit", tokenizer_name=name)
    if cfg.family == "t2t":
        with torch.no_grad():
            stage.pos_embed.copy_(t2t.sinusoid_table(grid * grid + 1, cfg.dim))
    return stage


class OfficialDvt(nn.Module):
    """The three stages under the official attribute names (= state_dict prefixes)."""

    def __init__(self, arch: str, num_classes: int = NUM_CLASSES):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch '{arch}' (have: {', '.join(ARCHS)})")
        self.arch = arch
        self.cfg = ARCHS[arch]
        self.num_classes = num_classes
        for i, (prefix, grid) in enumerate(zip(PREFIXES, GRIDS)):
            setattr(self, prefix, make_stage(self.cfg, grid, GRIDS[i - 1] if i else None, num_classes))

    @property
    def stages(self) -> List[DvtStage]:
        """Stages in cascade order (what `bundle_writer.export_cascade` walks)."""
        return [getattr(self, p) for p in PREFIXES]

    def forward(self, image):
        outs, feat, attn = [], None, None
        for stage in self.stages:
            logits, feat, attn = stage(image, feat, attn) if stage.reuses else stage(image)
            outs.append((logits, feat, attn))
        return outs


def build(arch: str, num_classes: int = NUM_CLASSES) -> OfficialDvt:
    """A randomly initialised official DVT cascade, in eval mode."""
    return OfficialDvt(arch, num_classes).eval()
