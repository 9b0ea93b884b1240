"""Per-stage export of a random-weight cascade: named I/O, shapes, parity with onnxruntime."""
import numpy as np
import onnx
import pytest
import torch

from dvtools.export import check_parity, export_stage
from dvtools.flops import count_gflops
from dvtools.fmnist_model import SmallVitConfig, make_cascade

CFG = SmallVitConfig(dim=32, depth=2, heads=2, mlp_hidden=64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    cascade = make_cascade(CFG).eval()
    out = tmp_path_factory.mktemp("bundle")
    stages = []
    for k, stage in enumerate(cascade.stages):
        feeds_next = k < 2
        path = str(out / f"stage{k + 1}.onnx")
        inputs, outputs = export_stage(stage, path, (1, 28, 28), 10, feeds_next)
        stages.append((stage, path, inputs, outputs, feeds_next))
    return stages


def test_io_names_and_shapes(exported):
    names = [([t.name for t in i], [t.name for t in o]) for _, _, i, o, _ in exported]
    assert names == [(["image"], ["logits", "feat_out", "attn_out"]),
                     (["image", "feat_in", "attn_in"], ["logits", "feat_out", "attn_out"]),
                     (["image", "feat_in", "attn_in"], ["logits"])]
    _, path, _, outputs, _ = exported[1]
    graph = onnx.load(path).graph
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert dims["attn_out"] == ["batch", 4, 50, 50]
    assert dims["feat_out"] == ["batch", 50, 32]
    assert onnx.load(path).opset_import[0].version == 17


def test_parity_with_onnxruntime(exported):
    for stage, path, inputs, _, feeds_next in exported:
        errs = check_parity(stage, path, inputs, feeds_next, batch=3)
        assert max(errs.values()) < 1e-4, (path, errs)


def test_dynamic_batch(exported):
    import onnxruntime as ort
    _, path, inputs, _, _ = exported[2]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for b in (1, 5):
        feeds = {t.name: np.zeros((b, *t.shape), np.float32) for t in inputs}
        assert sess.run(None, feeds)[0].shape == (b, 10)


def test_gflops_grow_with_tokens(exported):
    g = [count_gflops(p) for _, p, _, _, _ in exported]
    assert 0 < g[0] < g[1] < g[2]
    # stage 1, by hand: 2 blocks of qkv, attn, proj, mlp at 17 tokens + patch embed + head
    n, d, h = 17, 32, 64
    block = n * d * 3 * d + 2 * n * n * d + n * d * d + n * (d * h + h * d)
    expected = 2 * block + 16 * 49 * d + d * 10
    assert g[0] * 1e9 == pytest.approx(expected, rel=1e-9)
