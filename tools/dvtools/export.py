"""Per-stage ONNX export with named reuse I/O (opset 17, dynamic batch axis).

Stage k reads `image` (+ `feat_in`, `attn_in` when it reuses) and writes `logits`
(+ `feat_out`, `attn_out` when a later stage reuses it). Shapes: docs/ARCHITECTURE.md, "The model's math".
"""
import io
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import onnx
import torch
from torch import nn

OPSET = 17


@dataclass
class TensorSpec:
    """A named stage input or output; `shape[0]` is the dynamic batch axis."""

    name: str
    shape: Tuple[int, ...]  # without the batch axis
    dtype: str = "f32"

    def to_manifest(self):
        return {"name": self.name, "shape": ["batch", *self.shape], "dtype": self.dtype}


class _StageForExport(nn.Module):
    def __init__(self, stage, feeds_next: bool):
        super().__init__()
        self.stage, self.feeds_next = stage, feeds_next

    def forward(self, *inputs):
        logits, feat, attn = self.stage(*inputs)
        return (logits, feat, attn) if self.feeds_next else logits


def stage_io(stage, image_shape, num_classes, feeds_next: bool):
    """Input and output specs of one stage."""
    tokens = stage.grid * stage.grid + 1
    lh = stage.depth * stage.heads
    inputs = [TensorSpec("image", tuple(image_shape))]
    if stage.reuses:
        up = stage.upstream_grid * stage.upstream_grid + 1
        inputs += [TensorSpec("feat_in", (up, stage.dim)), TensorSpec("attn_in", (lh, up, up))]
    outputs = [TensorSpec("logits", (num_classes,))]
    if feeds_next:
        outputs += [TensorSpec("feat_out", (tokens, stage.dim)), TensorSpec("attn_out", (lh, tokens, tokens))]
    return inputs, outputs


def export_stage(stage, path, image_shape, num_classes, feeds_next: bool, example_batch: int = 2):
    """Export one stage to `path`; returns (inputs, outputs) specs."""
    stage.eval()
    inputs, outputs = stage_io(stage, image_shape, num_classes, feeds_next)
    g = torch.Generator().manual_seed(1234)
    example = tuple(torch.randn(example_batch, *t.shape, generator=g) for t in inputs)
    # In eval mode itself: torch.onnx.export restores the wrapper's mode afterwards, and a wrapper
    # left in training mode would put the stage back in it (BatchNorm on batch statistics).
    wrapper = _StageForExport(stage, feeds_next).eval()
    names_in = [t.name for t in inputs]
    names_out = [t.name for t in outputs]
    with torch.no_grad():
        torch.onnx.export(wrapper, example, path, opset_version=OPSET, input_names=names_in,
                          output_names=names_out,
                          dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
                          do_constant_folding=True)
    _stamp_shapes(path, inputs, outputs)
    return inputs, outputs


def _stamp_shapes(path, inputs, outputs):
    """Write the declared shapes into the graph's I/O.

    The TorchScript exporter leaves symbolic names on output axes it cannot infer statically
    (e.g. "Addfeat_out_dim_1"); the runtime checks manifest shapes against the file, so every
    non-batch axis is made concrete here. `check_parity` then confirms them by running the graph.
    """
    model = onnx.load(path)
    specs = {t.name: t for t in inputs + outputs}
    for vi in list(model.graph.input) + list(model.graph.output):
        spec = specs.get(vi.name)
        if spec is None:
            continue
        shape = vi.type.tensor_type.shape
        del shape.dim[:]
        batch = shape.dim.add()
        batch.dim_param = "batch"
        for n in spec.shape:
            shape.dim.add().dim_value = n
    onnx.checker.check_model(model)
    onnx.save(model, path)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (max-norm relative error)."""
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def check_parity(stage, path, inputs, feeds_next, batch=3, seed=7) -> Dict[str, float]:
    """Run the ONNX file in onnxruntime on fresh random inputs; relative error per output."""
    import onnxruntime as ort
    g = torch.Generator().manual_seed(seed)
    feeds = {t.name: torch.randn(batch, *t.shape, generator=g) for t in inputs}
    with torch.no_grad():
        ref = _StageForExport(stage, feeds_next).eval()(*feeds.values())
    ref = ref if isinstance(ref, tuple) else (ref,)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: v.numpy() for k, v in feeds.items()})
    names = [o.name for o in sess.get_outputs()]
    for n, g_, r in zip(names, got, ref):
        if tuple(g_.shape) != tuple(r.shape):
            raise RuntimeError(f"{path}: output {n} has shape {g_.shape}, PyTorch gives {tuple(r.shape)}")
    return {n: rel_error(g_, r.numpy()) for n, g_, r in zip(names, got, ref)}
