"""Reading (and, for tests, writing) checkpoints in the official DVT format (spec §8).

The official file is a `torch.save` dict: `model_state_dict` (keys without a `module.` prefix),
`flops` (3 cumulative GFLOPs), `anytime_classification` (3 top-1 %), `dynamic_threshold`
([59, 3], last column -1e8) and `budgeted_batch_classification` ([flops(59), acc(59)]).
"""
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from .arch import ARCHS, OFFICIAL_NAMES, OfficialDvt


class CheckpointError(ValueError):
    """A checkpoint that is not an official DVT checkpoint of the requested architecture."""


@dataclass
class CheckpointMeta:
    """Everything in the checkpoint except the weights."""

    flops: Optional[List[float]] = None
    anytime_classification: Optional[List[float]] = None
    dynamic_threshold: Optional[List[List[float]]] = None  # rows p = 1..N
    budget_flops: Optional[List[float]] = None
    budget_acc: Optional[List[float]] = None
    extra_keys: List[str] = field(default_factory=list)


def _floats(v) -> List[float]:
    if isinstance(v, torch.Tensor):
        return [float(x) for x in v.reshape(-1).tolist()]
    return [float(x) for x in v]


def check_state_dict(model: OfficialDvt, sd, where: str):
    """Raise CheckpointError naming the first key that is missing, mis-shaped or unexpected."""
    expected = model.state_dict()
    name = OFFICIAL_NAMES[model.arch]
    for key, ref in expected.items():
        if key not in sd:
            raise CheckpointError(f"{where}: missing key '{key}' {tuple(ref.shape)} "
                                  f"(not a {name} checkpoint?)")
        got = sd[key]
        if not isinstance(got, torch.Tensor):
            raise CheckpointError(f"{where}: key '{key}' is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(f"{where}: key '{key}' has shape {tuple(got.shape)}, "
                                  f"{name} needs {tuple(ref.shape)}")
        if not got.is_floating_point():
            raise CheckpointError(f"{where}: key '{key}' has dtype {got.dtype}, not floating point")
    for key in sd:
        if key not in expected:
            raise CheckpointError(f"{where}: unexpected key '{key}' (not part of {name})")


def _read_state_dict(path: str):
    """The `model_state_dict` of a torch.save file (a `module.` prefix stripped), checked to be a dict."""
    try:
        ckpt = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 (pickle/zip errors of every kind end here)
        raise CheckpointError(f"{path}: cannot read as a torch.save file: {e}") from e
    if not isinstance(ckpt, dict) or "model_state_dict" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: no 'model_state_dict' (found {keys}); "
                              "expected an official DVT checkpoint (spec §8)")
    sd = ckpt["model_state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: 'model_state_dict' is a {type(sd).__name__}, not a dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return ckpt, sd


def load_backbone(path: str, arch: str):
    """For fine-tuning: an official-layout checkpoint with heads of any class count.

    Every key but the three heads' must match `arch` exactly (missing, unexpected or mis-shaped
    keys are a CheckpointError naming the first one); the heads must agree with each other.
    Returns (model with the checkpoint's heads, the checkpoint's class count, the whole dict).
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown arch '{arch}' (have: {', '.join(ARCHS)})")
    ckpt, sd = _read_state_dict(path)
    head = sd.get("less_less_token.head.weight")
    if not isinstance(head, torch.Tensor) or head.dim() != 2:
        raise CheckpointError(f"{path}: missing key 'less_less_token.head.weight' "
                              f"(not a {OFFICIAL_NAMES[arch]} checkpoint?)")
    classes = int(head.shape[0])
    model = OfficialDvt(arch, classes)
    check_state_dict(model, sd, path)
    model.load_state_dict(sd, strict=True)
    return model, classes, ckpt


def load_checkpoint(path: str, arch: str):
    """Load an official checkpoint into a fresh `OfficialDvt(arch)`; returns (model, meta).

    The state_dict is checked key by key first, so a foreign or malformed file gives one error
    naming the first offending key, then loaded with strict=True.
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown arch '{arch}' (have: {', '.join(ARCHS)})")
    # A DataParallel save would carry `module.`; _read_state_dict strips it when every key has it.
    ckpt, sd = _read_state_dict(path)
    model = OfficialDvt(arch)
    check_state_dict(model, sd, path)
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, _meta(ckpt, path)


def _meta(ckpt, path) -> CheckpointMeta:
    meta = CheckpointMeta(extra_keys=[k for k in ckpt if k != "model_state_dict"])
    if "flops" in ckpt:
        meta.flops = _floats(ckpt["flops"])
    if "anytime_classification" in ckpt:
        meta.anytime_classification = _floats(ckpt["anytime_classification"])
    if "dynamic_threshold" in ckpt:
        t = ckpt["dynamic_threshold"]
        t = t if isinstance(t, torch.Tensor) else torch.tensor(t)
        if t.dim() != 2 or t.shape[1] != 3:
            raise CheckpointError(f"{path}: key 'dynamic_threshold' has shape {tuple(t.shape)}, "
                                  "expected [N, 3]")
        meta.dynamic_threshold = [[float(x) for x in row] for row in t.tolist()]
    if "budgeted_batch_classification" in ckpt:
        b = ckpt["budgeted_batch_classification"]
        try:
            meta.budget_flops, meta.budget_acc = _floats(b[0]), _floats(b[1])
        except (TypeError, IndexError) as e:
            raise CheckpointError(f"{path}: key 'budgeted_batch_classification' is not "
                                  f"[flops_list, acc_list]: {e}") from e
    return meta


def make_checkpoint(model: OfficialDvt, path: str, thresholds, flops, anytime=None, budget=None):
    """Write `model` in the official checkpoint format (used by the tests)."""
    ckpt = {"model_state_dict": model.state_dict(), "flops": list(flops),
            "dynamic_threshold": torch.as_tensor(thresholds, dtype=torch.float32)}
    if anytime is not None:
        ckpt["anytime_classification"] = list(anytime)
    if budget is not None:
        ckpt["budgeted_batch_classification"] = [list(budget[0]), list(budget[1])]
    torch.save(ckpt, path)
