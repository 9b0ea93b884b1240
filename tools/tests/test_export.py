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


def test_conv_stem_exports_with_its_batchnorm_statistics(tmp_path):
    """The conv stem's BatchNorm must export with its running statistics (eval mode) and the
    export must leave the stage in eval mode: a stage put back in training mode would use batch
    statistics in the parity check and in the reference outputs, and update its running ones."""
    cfg = SmallVitConfig(dim=32, depth=1, heads=2, mlp_hidden=64, stem_channels=8)
    torch.manual_seed(0)
    cascade = make_cascade(cfg)
    cascade.train()
    with torch.no_grad():
        for _ in range(3):  # move the running statistics away from their (0, 1) start
            cascade(torch.randn(32, 1, 28, 28) * 2 + 1)
    cascade.eval()
    stage = cascade.stages[0]
    bn = stage.tokenizer.stem[1]
    before = bn.running_mean.clone()
    assert before.abs().max() > 0.1
    path = str(tmp_path / "stage1.onnx")
    inputs, _ = export_stage(stage, path, (1, 28, 28), 10, feeds_next=True)
    assert not stage.training and not bn.training
    errs = check_parity(stage, path, inputs, True, batch=3)
    assert max(errs.values()) < 1e-4, errs
    assert torch.equal(bn.running_mean, before)
    # BatchNorm is folded into the convolutions: no op that TensorRT or tract must treat apart.
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(path).graph.node}
    # FLOPs by hand: the stem's two 3x3 convs at 28x28, the 7x7 patch conv, one block, head.
    n, d, h, c = 17, 32, 64, 8
    stem = 28 * 28 * c * 9 + 28 * 28 * c * c * 9 + 16 * d * c * 49
    block = n * d * 3 * d + 2 * n * n * d + n * d * d + n * (d * h + h * d)
    assert count_gflops(path) * 1e9 == pytest.approx(stem + block + d * 10, rel=1e-9)
