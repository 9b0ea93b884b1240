"""DeiT-small tokenizers of the three DVT stages (docs/ARCHITECTURE.md, "The model's math").

Stage 1: patch 32 (7x7); stage 2: patch 23 with padding 3 (10x10, the official code hard-codes
this padding for any patch size other than 16/32); stage 3: patch 16 (14x14).
"""
from ..model import PatchTokenizer

# grid -> (patch, padding)
PATCHES = {7: (32, 0), 10: (23, 3), 14: (16, 0)}


def patch_embed(grid: int, dim: int, img_size: int = 224, in_chans: int = 3) -> PatchTokenizer:
    """The `patch_embed` module of the stage with this grid (state_dict key `patch_embed.proj`)."""
    patch, padding = PATCHES[grid]
    got = (img_size + 2 * padding - patch) // patch + 1
    if got != grid:
        raise ValueError(f"patch {patch} padding {padding} gives a {got}x{got} grid, not {grid}")
    return PatchTokenizer(in_chans, dim, patch, padding)
