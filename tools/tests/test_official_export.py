"""End to end: official architectures (random weights) -> tools/export.py -> bundle -> the Rust
CPU backend (`dvt check-bundle`) reproduces PyTorch on every stage; official-format checkpoints
round-trip with their thresholds; FP16 graphs run and stay within their reported bounds;
malformed or foreign checkpoints fail with one error naming the offending key.

Each architecture is exported once per session at small batch (the machine has 2 cores).
"""
import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import onnx
import pytest
import torch

TOOLS = os.path.join(os.path.dirname(__file__), "..")
REPO = os.path.join(TOOLS, "..")
sys.path.insert(0, TOOLS)

import export as export_cli  # noqa: E402  (tools/export.py)
from dvtools import fp16  # noqa: E402
from dvtools.official import CheckpointError, build, load_checkpoint, make_checkpoint  # noqa: E402

# fvcore counting (docs/ARCHITECTURE.md, "The model's math"), per-stage GFLOPs.
SPEC_GFLOPS = {"t2t_vit_12": (0.4725, 0.9900, 2.0351), "t2t_vit_14": (1.2065, 2.6343, 5.4868),
               "deit_small": (1.1453, 2.5110, 5.1875)}


def dvt_binary() -> str:
    """The built `dvt` (tools/test.sh builds it before pytest and sets DVT_BIN)."""
    candidates = [os.environ.get("DVT_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    candidates += [os.path.join(target, p, "dvt") for p in ("debug", "release")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("dvt binary not found: run `cargo build --bin dvt` or set DVT_BIN")


def check_bundle(path: str, engine: str = "auto"):
    res = subprocess.run([dvt_binary(), "check-bundle", path, "--json", "--engine", engine],
                         capture_output=True, text=True)
    report = json.loads(res.stdout) if res.stdout.strip() else None
    return res.returncode, report, res.stderr


def thresholds_table(n=59, seed=3):
    g = np.random.default_rng(seed)
    t = np.sort(g.uniform(0.2, 0.99, size=(n, 2)), axis=0)[::-1].copy()
    return np.concatenate([t, np.full((n, 1), -1e8)], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def t2t12_ckpt(tmp_path_factory):
    torch.manual_seed(11)
    model = build("t2t_vit_12")
    path = str(tmp_path_factory.mktemp("ckpt") / "t2t12.pth.tar")
    table = thresholds_table()
    budget = (list(np.linspace(0.6, 2.8, 59)), list(np.linspace(71.0, 79.5, 59)))
    make_checkpoint(model, path, table, flops=[0.47, 1.46, 3.50], anytime=[70.1, 76.0, 79.9], budget=budget)
    return model, path, table, budget


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, t2t12_ckpt):
    """arch -> bundle dir; T2T-12 from an official-format checkpoint with --fp16, others random."""
    root = tmp_path_factory.mktemp("official")
    out = {}
    _, ckpt, _, _ = t2t12_ckpt
    out["t2t_vit_12"] = str(root / "t2t12")
    assert export_cli.main(["--arch", "t2t_vit_12", "--checkpoint", ckpt, "--out", out["t2t_vit_12"],
                            "--fp16", "--reference-images", "2"]) == 0
    for arch in ("t2t_vit_14", "deit_small"):
        out[arch] = str(root / arch)
        assert export_cli.main(["--arch", arch, "--random-init", "--out", out[arch],
                                "--reference-images", "1", "--seed", "5"]) == 0
    return out


def manifest(path):
    with open(os.path.join(path, "manifest.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("engine", ["tract", "ort"])
@pytest.mark.parametrize("arch", sorted(SPEC_GFLOPS))
def test_rust_cpu_matches_pytorch_on_every_stage(bundles, arch, engine):
    if engine == "ort" and not (os.environ.get("ORT_DYLIB_PATH") or os.environ.get("DVT_REQUIRE_ORT")):
        pytest.skip("ONNX Runtime engine: set ORT_DYLIB_PATH (tools/test.sh does)")
    rc, report, err = check_bundle(bundles[arch], engine)
    assert rc == 0, err
    assert report["passed"]
    assert ("onnxruntime" if engine == "ort" else "tract") in report["backend"], report["backend"]
    rows = {(r["stage"], r["output"]): r for r in report["rows"]}
    assert set(rows) == {("stage1", "logits"), ("stage1", "feat_out"), ("stage1", "attn_out"),
                         ("stage2", "logits"), ("stage2", "feat_out"), ("stage2", "attn_out"),
                         ("stage3", "logits")}
    assert all(r["rel_err"] < 1e-4 for r in rows.values()), rows


@pytest.mark.parametrize("arch", sorted(SPEC_GFLOPS))
def test_graphs_are_export_clean_and_batch_dynamic(bundles, arch):
    m = manifest(bundles[arch])
    for s in m["stages"]:
        g = onnx.load(os.path.join(bundles[arch], s["onnx"])).graph
        ops = {n.op_type for n in g.node}
        assert not ops & {"Einsum", "Resize", "AveragePool", "GlobalAveragePool", "Col2Im"}, ops
        assert g.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert s["inputs"][0]["shape"] == ["batch", 3, 224, 224]


@pytest.mark.parametrize("arch", sorted(SPEC_GFLOPS))
def test_stage_gflops_reproduce_spec_table(bundles, arch):
    stages = manifest(bundles[arch])["stages"]
    for s, want in zip(stages, SPEC_GFLOPS[arch]):
        assert s["gflops"] == pytest.approx(want, rel=0.01), (s["name"], s["gflops"], want)
    assert stages[2]["cumulative_gflops"] == pytest.approx(sum(SPEC_GFLOPS[arch]), rel=0.01)


def test_checkpoint_thresholds_round_trip_into_the_manifest(bundles, t2t12_ckpt):
    model, _, table, budget = t2t12_ckpt
    m = manifest(bundles["t2t_vit_12"])
    points = m["operating_points"]
    assert len(points) == 59
    for p, (pt, row) in enumerate(zip(points, table), start=1):
        assert pt["name"] == f"checkpoint-p{p:02d}" and pt["source"] == "checkpoint"
        assert pt["thresholds"] == pytest.approx(row[:2].tolist(), abs=1e-7)  # -1e8 column dropped
        q = p / 20
        assert pt["exit_fractions"] == pytest.approx([q / (q + q * q + q ** 3), q * q / (q + q * q + q ** 3),
                                                      q ** 3 / (q + q * q + q ** 3)])
        assert pt["expected_gflops"] == pytest.approx(budget[0][p - 1])
        assert pt["accuracy"] == pytest.approx(budget[1][p - 1] / 100)
    assert [s["test_accuracy"] for s in m["stages"]] == pytest.approx([0.701, 0.76, 0.799])
    # the weights are the checkpoint's: the stored reference logits are this model's outputs
    from dvtools.official.exporter import reference_inputs
    _, image = reference_inputs(2, 0)
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(image))[2][0].numpy()
    ref = fp16._read_reference(bundles["t2t_vit_12"])
    np.testing.assert_allclose(ref["stage3.logits"], want, rtol=1e-5, atol=1e-6)


def test_fp16_bundle_runs_within_its_reported_bounds(bundles):
    root = os.path.join(bundles["t2t_vit_12"], "fp16")
    with open(os.path.join(root, "fp16_report.json")) as f:
        report = json.load(f)
    assert [s["name"] for s in report["stages"]] == ["stage1", "stage2", "stage3"]
    for s in report["stages"]:
        # weights really are FP16 (FP32 left: LayerNorms, the Performer's w, the classifier head)
        assert s["fp16_weights"] > 20 * s["fp32_weights"]
        assert 0 < s["max_abs_logits"] < 0.05 and s["top1_agreement"] >= 0.5
    # onnxruntime ran them during export; the Rust CPU backend (tract) runs them too, within
    # the bounds stored from that report
    rc, check, err = check_bundle(root)
    assert rc == 0, err
    with open(os.path.join(root, "reference.json")) as f:
        bounds = json.load(f)["tolerance"]
    for r in check["rows"]:
        assert r["tolerance"] == pytest.approx(bounds[f"{r['stage']}.{r['output']}"], rel=1e-6)
        assert r["rel_err"] < r["tolerance"]


def test_fp16_graph_keeps_the_sensitive_parts_fp32(bundles):
    g = onnx.load(os.path.join(bundles["t2t_vit_12"], "fp16", "stage2.onnx")).graph
    inits = {i.name: i.data_type for i in g.initializer}
    half, full = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    for n in g.node:
        if n.op_type == "LayerNormalization":
            assert inits[n.input[1]] == full, n.name
        if n.op_type == "MatMul" and n.input[1] in inits and "/core/" not in n.name:
            assert inits[n.input[1]] == half, n.name
    w = [k for k, v in inits.items() if v == full and any(
        n.op_type == "MatMul" and "/core/" in n.name and k in n.input for n in g.node)]
    assert w, "the Performer's w stays FP32"
    assert all(o.type.tensor_type.elem_type == full for o in list(g.input) + list(g.output))


def test_fp16_fmnist_on_real_images(tmp_path):
    """The shipped Fashion-MNIST bundle in FP16, measured on real test images."""
    src = os.path.join(REPO, "engines", "fmnist-dvt")
    if not os.path.exists(os.path.join(src, "manifest.toml")):
        pytest.fail("engines/fmnist-dvt is missing")
    images = fp16._fmnist_images(300)
    report = fp16.write_fp16_bundle(src, str(tmp_path / "fp16"), images=images)
    assert report["images"] == 300
    for s in report["stages"]:
        assert s["top1_agreement"] >= 0.99, s
        assert s["rel_logits"] < 1e-2, s
    rc, check, err = check_bundle(str(tmp_path / "fp16"))
    assert rc == 0 and check["passed"], err


def load_checkpoint_from(state_dict, arch):
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        torch.save({"model_state_dict": state_dict}, os.path.join(d, "c.pth"))
        return load_checkpoint(os.path.join(d, "c.pth"), arch)


@pytest.fixture(scope="module")
def good_state_dict(t2t12_ckpt):
    return torch.load(t2t12_ckpt[1], map_location="cpu")


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["model_state_dict"].pop("less_token.blocks.3.feature_resuse_mlp.1.fc1.weight"),
     "missing key 'less_token.blocks.3.feature_resuse_mlp.1.fc1.weight'"),
    (lambda c: c["model_state_dict"].__setitem__("normal_token.head.weight", torch.zeros(10, 256)),
     "key 'normal_token.head.weight' has shape (10, 256)"),
    (lambda c: c["model_state_dict"].__setitem__("less_token.extra.bias", torch.zeros(3)),
     "unexpected key 'less_token.extra.bias'"),
    (lambda c: c.pop("model_state_dict"), "no 'model_state_dict'"),
    (lambda c: c.__setitem__("dynamic_threshold", torch.zeros(59, 2)), "'dynamic_threshold' has shape (59, 2)"),
])
def test_bad_checkpoints_name_the_first_offending_key(tmp_path, good_state_dict, mutate, needle, capsys):
    ckpt = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good_state_dict.items()}
    mutate(ckpt)
    path = str(tmp_path / "bad.pth")
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, "t2t_vit_12")
    assert needle in str(e.value)
    # the CLI prints the same single line and exits 2, writing nothing
    assert export_cli.main(["--arch", "t2t_vit_12", "--checkpoint", path, "--out", str(tmp_path / "b")]) == 2
    assert needle in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "b")


def test_foreign_architecture_is_refused(t2t12_ckpt):
    # a T2T-12 checkpoint is not a DeiT-S one: the first key that differs is named
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(t2t12_ckpt[1], "deit_small")
    assert "key 'less_less_token.cls_token' has shape (1, 1, 256), DVT_Deit_small needs (1, 1, 384)" in str(e.value)
    with pytest.raises(CheckpointError, match="missing key 'less_less_token.tokens_to_token.attention1.w'"):
        ckpt = torch.load(t2t12_ckpt[1], map_location="cpu")
        sd = {k: v for k, v in ckpt["model_state_dict"].items() if "tokens_to_token" not in k}
        load_checkpoint_from(sd, "t2t_vit_12")


def test_module_prefix_from_data_parallel_is_accepted(tmp_path, good_state_dict):
    ckpt = dict(good_state_dict)
    ckpt["model_state_dict"] = {"module." + k: v for k, v in good_state_dict["model_state_dict"].items()}
    torch.save(ckpt, tmp_path / "dp.pth")
    model, meta = load_checkpoint(str(tmp_path / "dp.pth"), "t2t_vit_12")
    assert len(meta.dynamic_threshold) == 59
    ref = good_state_dict["model_state_dict"]["normal_token.head.weight"]
    assert torch.equal(model.normal_token.head.weight, ref)


def test_dvt_eval_runs_an_official_bundle_on_an_image_folder(tmp_path, bundles):
    """The user path: class folders of photos of any size straight into `dvt eval --data` (the
    bundle's Resize(256, bicubic) + CenterCrop(224) applied by the runtime)."""
    from PIL import Image
    g = np.random.default_rng(0)
    # Folders named after the bundle's classes (an ImageNet bundle exported without names).
    for c in ("imagenet-001", "imagenet-002"):
        os.makedirs(tmp_path / "val" / c)
        for i, (w, h) in enumerate([(300, 260), (180, 240)]):
            Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "val" / c / f"{i}.png")
    (tmp_path / "val" / "imagenet-002" / "notes.txt").write_text("not an image")
    res = subprocess.run([dvt_binary(), "eval", "--bundle", bundles["t2t_vit_12"], "--data", str(tmp_path / "val"),
                          "--point", "checkpoint-p30", "--threads", "2", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "1 file(s) that are not JPEG or PNG ignored" in res.stderr, res.stderr
    r = json.loads(res.stdout)
    assert r["images"] == 4
    assert 0.0 <= r["accuracy"] <= 1.0
    assert sum(r["exit_fractions"]) == pytest.approx(1.0)
    assert r["mean_gflops"] >= 0.47  # at least stage 1 of T2T-ViT-12 (spec §7: 0.473)
    with open(os.path.join(bundles["t2t_vit_12"], "manifest.toml"), "rb") as f:
        inp = tomllib.load(f)["model"]["input"]
    assert (inp["resize"], inp["interpolation"]) == (256, "bicubic")
