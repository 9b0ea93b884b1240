"""tools/train.py end to end on small real data: image folders -> trained cascade -> bundle that
the Rust runtime checks (`dvt check-bundle --data`), calibrates and evaluates (`dvt eval --data`).

- smoke: 300 Fashion-MNIST images as PNG folders of 3 classes (+1 unreadable file), 1 epoch of
  the small arch on the CPU: the loss falls within the epoch, the bundle passes, eval runs on the
  held-out images the bundle recorded;
- fine-tune: a random-weight T2T-ViT-12 checkpoint in the official layout (1000-class heads),
  real ImageNet JPEGs in train/ + val/ folders of 2 classes: backbone loaded strictly, heads
  replaced, bundle passes check-bundle including the JPEG pre-processing;
- clear refusals: empty class folder, single class, mismatched --init.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image

TOOLS = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, TOOLS)

import train  # noqa: E402  (tools/train.py)
from dvtools import fmnist_data, images  # noqa: E402
from dvtools.official import build  # noqa: E402
from test_image_preprocess import PHOTOS  # noqa: E402
from test_official_export import dvt_binary  # noqa: E402

FM_CLASSES = {0: "tshirt", 1: "trouser", 7: "sneaker"}
FMNIST_BUNDLE = os.path.join(TOOLS, "..", "engines", "fmnist-dvt")


def dvt(*args):
    return subprocess.run([dvt_binary(), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def fm_folder(tmp_path_factory):
    """100 Fashion-MNIST training images per class as PNG, and one corrupt PNG that the seeded
    split holds out (so the trainer and `dvt eval` both meet it)."""
    root = tmp_path_factory.mktemp("fm3")
    x, y = fmnist_data.load("train")
    count = {k: 0 for k in FM_CLASSES}
    for img, label in zip(x, y):
        label = int(label)
        if label in FM_CLASSES and count[label] < 100:
            d = root / FM_CLASSES[label]
            d.mkdir(exist_ok=True)
            Image.fromarray(img).save(d / f"{count[label]:03d}.png")
            count[label] += 1
    for i in range(100):
        bad = root / "sneaker" / f"zz_broken{i}.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        c = images.ClassFolder("sneaker", sorted(p.name for p in (root / "sneaker").iterdir()))
        if bad.name in images.held_out(c, 0, 20):
            break
        bad.unlink()
    (root / "README.txt").write_text("not a class folder")
    return root


@pytest.fixture(scope="module")
def smoke(fm_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "fm3"
    rc = train.main(["--data", str(fm_folder), "--out", str(out), "--epochs", "1", "--batch", "16",
                     "--threads", "1", "--dvt", dvt_binary(), "--reference-images", "6"])
    assert rc == 0
    with open(out / "train" / "train_report.json") as f:
        return out, json.load(f)


def test_smoke_training_loss_falls_and_unreadable_image_is_skipped(smoke):
    out, report = smoke
    epoch = report["history"][0]
    assert epoch["loss_last"] < epoch["loss_first"], epoch
    assert [os.path.basename(p) for p in report["skipped"]] and "broken" in report["skipped"][0]
    assert report["seconds"]["train"] < 120, report["seconds"]


def test_smoke_bundle_records_classes_preprocessing_split_and_calibration(smoke):
    out, report = smoke
    with open(out / "manifest.toml", "rb") as f:
        m = tomllib.load(f)
    assert m["model"]["classes"] == ["sneaker", "trouser", "tshirt"]
    assert m["model"]["holdout"] == {"seed": 0, "percent": 20}
    inp = m["model"]["input"]
    assert (inp["height"], inp["channels"], inp["resize"], inp["interpolation"]) == (28, 1, 28, "bicubic")
    assert len(m["operating_points"]) > 0 and "timed_on" in m["model"]  # dvt calibrate ran
    assert os.path.exists(out / "model.pt")


def test_check_bundle_reproduces_the_trainers_pixels_from_the_files(smoke, fm_folder):
    out, _ = smoke
    res = dvt("check-bundle", str(out), "--data", str(fm_folder), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["passed"] and r["inputs"]["files"] == 6
    assert r["inputs"]["exact"] == 6 and r["inputs"]["max_pixel_diff"] == 0  # PNG: bit for bit
    assert r["inputs"]["top1_agreement"] == 1.0


def test_dvt_eval_runs_on_the_held_out_images(smoke, fm_folder):
    out, report = smoke
    with open(out / "manifest.toml", "rb") as f:
        point = tomllib.load(f)["operating_points"][0]["name"]
    res = dvt("eval", "--bundle", str(out), "--data", str(fm_folder), "--point", point, "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    # The held-out share of the 301 files, less the corrupt one (named and counted on stderr).
    assert r["images"] == report["val_images"] == 59
    assert "could not be read and were skipped" in res.stderr and "zz_broken" in res.stderr
    assert r["accuracy"] > 0.5  # three classes: chance is 1/3
    assert sum(r["exit_fractions"]) == pytest.approx(1.0)


def test_fine_tune_from_the_bundles_own_checkpoint_and_mismatched_init(smoke, fm_folder, tmp_path, capsys):
    out, _ = smoke
    again = tmp_path / "again"
    rc = train.main(["--data", str(fm_folder), "--out", str(again), "--epochs", "1", "--batch", "32",
                     "--threads", "1", "--init", str(out / "model.pt"), "--no-calibrate",
                     "--dvt", dvt_binary()])
    assert rc == 0
    assert "all weights loaded; heads kept (same classes)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is a fmnist-small model .* but --arch is t2t_vit_12"):
        train.main(["--data", str(fm_folder), "--out", str(tmp_path / "x"), "--arch", "t2t_vit_12",
                    "--init", str(out / "model.pt")])


def test_refusals_are_clear(tmp_path, fm_folder):
    def folder(name, classes):
        root = tmp_path / name
        for c, n in classes.items():
            (root / c).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (28, 28), 10 * i).save(root / c / f"{i}.png")
        return root
    empty = folder("empty", {"a": 3, "b": 0})
    with pytest.raises(SystemExit, match="class folder 'b' has no JPEG or PNG images"):
        train.main(["--data", str(empty), "--out", str(tmp_path / "o1")])
    res = dvt("eval", "--bundle", FMNIST_BUNDLE, "--data", str(empty), "--thresholds", "0.5,0.5")
    assert res.returncode == 1 and "class folder 'b' has no JPEG or PNG images" in res.stderr, res.stderr
    single = folder("single", {"only": 5})
    with pytest.raises(SystemExit, match="only one class .'only'.: a classifier needs at least two"):
        train.main(["--data", str(single), "--out", str(tmp_path / "o2")])
    # The shipped Fashion-MNIST bundle: a folder named after none of its classes is refused.
    unknown = folder("unknown", {"T-shirt/top".replace("/", "_"): 2, "Trouser": 2})
    res = dvt("eval", "--bundle", FMNIST_BUNDLE, "--data", str(unknown), "--thresholds", "0.5,0.5")
    assert res.returncode == 1 and "class folder 'T-shirt_top' is not one of the bundle's 10 classes" in res.stderr


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory):
    """A random-weight T2T-ViT-12 in the official checkpoint layout (1000-class heads)."""
    torch.manual_seed(3)
    path = str(tmp_path_factory.mktemp("ckpt") / "t2t12_random.pth.tar")
    model = build("t2t_vit_12")
    torch.save({"model_state_dict": model.state_dict(), "flops": [0.47, 1.46, 3.5]}, path)
    return path, model.state_dict()


def test_fine_tune_an_official_layout_checkpoint_on_jpeg_folders(official_ckpt, tmp_path, capsys):
    path, sd = official_ckpt
    jpgs = sorted(glob.glob(os.path.join(PHOTOS, "imagenet_*.jpg")))
    assert len(jpgs) == 20, PHOTOS
    root = tmp_path / "photos"
    for split, sl in (("train", slice(0, 3)), ("val", slice(3, 5))):
        for c, base in (("dog", 0), ("boat", 10)):
            (root / split / c).mkdir(parents=True)
            for p in jpgs[base:base + 5][sl]:
                shutil.copy(p, root / split / c / os.path.basename(p))
    out = tmp_path / "t2t"
    rc = train.main(["--data", str(root), "--out", str(out), "--arch", "t2t_vit_12", "--init", path,
                     "--epochs", "1", "--batch", "3", "--threads", "1", "--no-augment", "--no-calibrate",
                     "--reference-images", "2", "--dvt", dvt_binary()])
    log = capsys.readouterr().out
    assert rc == 0, log
    assert "backbone and reuse tensors loaded strictly; the 3 heads (1000 classes) replaced" in log, log
    tuned = torch.load(out / "model.pt", weights_only=False)
    assert tuned["model_state_dict"]["normal_token.head.weight"].shape == (2, 256)
    # One epoch moved the weights, but from the checkpoint's, not from a fresh draw.
    key = "less_less_token.blocks.0.attn.qkv.weight"
    delta = (tuned["model_state_dict"][key] - sd[key]).abs().max()
    assert 0 < delta < 0.05, delta
    res = dvt("check-bundle", str(out), "--data", str(root), "--json")
    r = json.loads(res.stdout)
    assert res.returncode == 0 and r["passed"], res.stderr
    # JPEG: two decoders (zune-jpeg vs libjpeg-turbo), bounded by check_bundle's tolerance.
    assert r["inputs"]["files"] == 2 and r["inputs"]["max_pixel_diff"] <= 6, r["inputs"]
    with open(out / "manifest.toml", "rb") as f:
        m = tomllib.load(f)
    assert m["model"]["classes"] == ["boat", "dog"] and "holdout" not in m["model"]
    assert (m["model"]["input"]["resize"], m["model"]["input"]["interpolation"]) == (256, "bicubic")
    # `dvt eval` on the val/ folder of this layout.
    res = dvt("eval", "--bundle", str(out), "--data", str(root), "--thresholds", "0.9,0.9", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["images"] == 4, res.stderr
    # A T2T-12 checkpoint is not a DeiT-S one: refused naming the first differing key.
    with pytest.raises(SystemExit, match="key 'less_less_token.cls_token' has shape .1, 1, 256."):
        train.main(["--data", str(root), "--out", str(tmp_path / "deit"), "--arch", "deit_small", "--init", path])
    assert np.isfinite(tuned["history"][0]["loss"])


def test_a_stopped_run_resumes_from_its_checkpoint(smoke, fm_folder, tmp_path, capsys):
    """The smoke run's per-epoch checkpoint: the same command without --resume refuses to start
    over it, with --resume it continues (here: nothing left to train) and rewrites the bundle."""
    out, _ = smoke
    args = ["--data", str(fm_folder), "--out", str(tmp_path / "resumed"), "--work", str(out / "train"),
            "--epochs", "1", "--batch", "16", "--threads", "1", "--reference-images", "6", "--no-calibrate",
            "--dvt", dvt_binary()]
    with pytest.raises(SystemExit, match="exists: pass --resume"):
        train.main(args)
    assert train.main(args + ["--resume"]) == 0
    assert "resuming after epoch 1/1" in capsys.readouterr().out
    a = torch.load(out / "model.pt", weights_only=False)["model_state_dict"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=False)["model_state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
