"""Resumable training of a DVT cascade or a static ViT: the recipe, the exit loss, the loop.

The objective is the paper's (DVT, NeurIPS 2021, §3.3): every exit is trained at once, the loss
summed over the exits. Optionally the earlier exits are also distilled from the last one (a soft
target with weight `distill`), which lifts their accuracy at a given confidence and so lets more
images leave early. No label smoothing: it caps softmax confidence below the high thresholds
the exit rule reads.

A checkpoint is written after every epoch (atomically); `resume=True` picks up from the last
one. Each epoch's batch order and augmentation draw from a generator seeded by (seed, epoch), so
a resumed run is the same run as an uninterrupted one.

The data may stay on the CPU as raw pixels (u8 image folders: a quarter of the float size) with
`prepare` turning each augmented batch into the model's input on the training device.
"""
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

try:  # progress bars with ETA; a plain line per epoch without tqdm
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights (stored in each checkpoint and checked on resume)."""

    epochs: int = 10
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    crop_padding: int = 2  # random crop of the padded image (0 = off)
    hflip: bool = True
    distill: float = 0.5  # weight of the last exit's soft target on the earlier exits (0 = off)
    seed: int = 0
    # "bf16": forward passes under bfloat16 autocast (weights, optimiser and loss stay float32):
    # on a CPU with AVX512-BF16 a cascade step takes a quarter of the float32 time.
    precision: str = "fp32"

    def to_dict(self):
        return dataclasses.asdict(self)


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def augment(x: torch.Tensor, recipe: Recipe, g: torch.Generator, background: float) -> torch.Tensor:
    """Per-image random crop with `crop_padding` (pad value = the normalised black pixel) and flip."""
    b, _, h, w = x.shape
    p = recipe.crop_padding
    if p > 0:
        padded = F.pad(x, (p, p, p, p), value=background)
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g)
        rows = (oy[:, None] + torch.arange(h)[None, :])  # (B, H)
        cols = (ox[:, None] + torch.arange(w)[None, :])  # (B, W)
        padded = padded.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w + 2 * p))
        x = padded.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))
    if recipe.hflip:
        flip = torch.rand(b, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def exit_loss(exit_logits: List[torch.Tensor], y: torch.Tensor, distill: float) -> torch.Tensor:
    """Sum over exits of cross-entropy; earlier exits mix in KL to the (detached) last exit."""
    last = exit_logits[-1]
    loss = F.cross_entropy(last, y)
    if len(exit_logits) > 1 and distill > 0:
        target = F.softmax(last.detach(), dim=1)
    for logits in exit_logits[:-1]:
        ce = F.cross_entropy(logits, y)
        if distill > 0:
            kl = F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")
            loss = loss + (1 - distill) * ce + distill * kl
        else:
            loss = loss + ce
    return loss


def bf16_is_fast(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 matrix products natively (CUDA with bf16, or a CPU with
    AVX512-BF16 or AMX); elsewhere bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(choice: str, device: torch.device) -> str:
    """`--precision auto|bf16|fp32` -> "bf16" or "fp32" (auto: bf16 where it is native)."""
    if choice == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return choice


def default_device() -> torch.device:
    """CUDA when PyTorch has a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def exit_accuracies(model, x, y, logits_of: Callable, batch: int = 500,
                    prepare: Optional[Callable] = None) -> List[float]:
    """Top-1 accuracy of every exit of `model` on (x, y) (on the model's device; `prepare`:
    raw batch -> model input)."""
    model.eval()
    dev = _device_of(model)
    correct = None
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(dev)
        logits = logits_of(model(prepare(xb) if prepare else xb))
        c = [int((lg.argmax(1).cpu() == y[i:i + batch]).sum()) for lg in logits]
        correct = c if correct is None else [a + b for a, b in zip(correct, c)]
    return [c / len(x) for c in correct]


def cascade_logits(out):
    """Exit logits of a `DvtCascade` output (a list of (logits, feat, attn))."""
    return [o[0] for o in out]


def stage_logits(out):
    """Exit logits of a single `DvtStage` output ((logits, feat, attn))."""
    return [out[0]]


class Checkpoints:
    """`WORK/NAME.ckpt` (resumable state, after each epoch) and `WORK/NAME.pt` (final weights)."""

    def __init__(self, work: str, name: str):
        self.ckpt = os.path.join(work, f"{name}.ckpt")
        self.final = os.path.join(work, f"{name}.pt")
        os.makedirs(work, exist_ok=True)

    def save(self, state: dict):
        tmp = self.ckpt + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.ckpt)  # a kill mid-save leaves the previous checkpoint intact

    def load(self) -> Optional[dict]:
        if not os.path.exists(self.ckpt):
            return None
        return torch.load(self.ckpt, weights_only=False, map_location="cpu")


def fit(model, name: str, x, y, recipe: Recipe, work: str, logits_of: Callable, background: float,
        resume: bool, x_val=None, y_val=None, log=print, device=None, prepare: Optional[Callable] = None,
        val_batch: int = 500):
    """Train `model` by `recipe` (resuming from WORK/NAME.ckpt when asked) on `device` (default:
    the GPU when there is one); returns the model in eval mode, on the CPU.

    `x` (N, C, H, W) stays where it is; each batch is augmented there, moved to the device and,
    with `prepare`, turned into the model's input (e.g. u8 pixels -> normalised floats). Each
    epoch's log entry has the mean loss and the mean of its first and last tenth of steps
    (`loss_first`, `loss_last`: whether one epoch made progress).
    """
    if recipe.precision not in ("fp32", "bf16"):
        raise SystemExit(f"[{name}] precision {recipe.precision!r}: expected fp32 or bf16")
    ck = Checkpoints(work, name)
    dev = torch.device(device) if device is not None else default_device()
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = len(x) // recipe.batch
    if steps_per_epoch == 0:
        raise SystemExit(f"[{name}] {len(x)} training images is less than one batch of {recipe.batch}")
    total = recipe.epochs * steps_per_epoch
    warmup = max(1, int(recipe.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, total, warmup))
    start_epoch, history = 0, []
    state = ck.load()
    if state is not None:
        if not resume:
            raise SystemExit(f"{ck.ckpt} exists: pass --resume to continue it, or delete it to start over")
        if state["recipe"] != recipe.to_dict():
            raise SystemExit(f"{ck.ckpt} was made with another recipe {state['recipe']}; delete it or match it")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])  # moves the moments to the parameters' device
        sched.load_state_dict(state["sched"])
        start_epoch, history = state["epoch"], state["history"]
        log(f"[{name}] resuming after epoch {start_epoch}/{recipe.epochs}")
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        g = torch.Generator().manual_seed(recipe.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        t0, losses = time.time(), []
        bar = tqdm(total=steps_per_epoch, desc=f"{name} epoch {epoch + 1}/{recipe.epochs}",
                   unit="step", mininterval=5.0, dynamic_ncols=True) if tqdm else None
        for i in range(steps_per_epoch):
            idx = perm[i * recipe.batch:(i + 1) * recipe.batch]
            # Augmentation draws on the CPU generator, so a run is the same on any device.
            xb = augment(x[idx], recipe, g, background).to(dev, non_blocking=True)
            xb = prepare(xb) if prepare else xb
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=recipe.precision == "bf16"):
                out = model(xb)
            logits = [lg.float() for lg in logits_of(out)]
            loss = exit_loss(logits, y[idx].to(dev), recipe.distill)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if bar:
                bar.update(1)
                if i % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        if bar:
            bar.close()
        tenth = max(1, len(losses) // 10)
        entry = {"epoch": epoch + 1, "loss": sum(losses) / len(losses),
                 "loss_first": sum(losses[:tenth]) / tenth, "loss_last": sum(losses[-tenth:]) / tenth,
                 "seconds": time.time() - t0}
        if x_val is not None:
            entry["val_accuracy"] = exit_accuracies(model, x_val, y_val, logits_of, batch=val_batch,
                                                    prepare=prepare)
            model.train()
        history.append(entry)
        log(f"[{name}] {json.dumps(entry)}")
        ck.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                 "epoch": epoch + 1, "recipe": recipe.to_dict(), "history": history})
    model.cpu()
    torch.save(model.state_dict(), ck.final)
    model.eval()
    model.training_history = history
    return model
