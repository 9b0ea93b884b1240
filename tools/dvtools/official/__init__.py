"""The official DVT models (T2T-ViT-12/14, DeiT-S) with the official state_dict names.

`build(arch)` gives a 3-stage cascade whose `state_dict()` keys equal the released checkpoints'
(docs/ARCHITECTURE.md, "The model's math"), so `load_checkpoint` can load them with strict=True.
"""
from .arch import ARCHS, OfficialDvt, build
from .checkpoint import CheckpointError, load_backbone, load_checkpoint, make_checkpoint

__all__ = ["ARCHS", "OfficialDvt", "build", "CheckpointError", "load_backbone", "load_checkpoint", "make_checkpoint"]
