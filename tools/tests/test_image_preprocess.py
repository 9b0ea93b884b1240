"""The Rust pre-processing (src/data/image.rs, shared by `dvt eval --data` and dvtd's frames)
against torchvision's evaluation transform on real photos of odd sizes.

Photos: the 20 ImageNet JPEGs that foolbox's PyPI wheel ships (setup.sh installs the wheel's
files, no dependencies, into .venv/foolbox-data), and crops of them at odd sizes saved as PNG.
PNG decoding is lossless on both sides, so there the Rust output must equal torchvision's
bit for bit: u8 crop and normalised tensor, bicubic and bilinear, RGB and grey. JPEG files also
go through two different decoders (the `image` crate's zune-jpeg vs PIL's libjpeg-turbo), whose
IDCT and chroma upsampling round differently: that difference is measured and bounded, and the
resampling itself is checked exactly on PIL's decoded pixels.
"""
import glob
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

TOOLS = os.path.join(os.path.dirname(__file__), "..")
REPO = os.path.abspath(os.path.join(TOOLS, ".."))
PHOTOS = os.environ.get("DVT_TEST_PHOTOS", os.path.join(REPO, ".venv", "foolbox-data", "foolbox", "data"))

import torchvision.transforms as transforms  # noqa: E402  (Debian's python3-torchvision, setup.sh)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FILTERS = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR}
# (left, top, width, height) crops of the 1024x683 photo and of a 512x512 one: odd sizes, both
# orientations, down- and upscaling, crop offsets with .5 (round half to even).
CROPS = [(0, 0, 1024, 683), (3, 5, 1001, 677), (100, 0, 511, 683), (0, 0, 683, 1024 - 341),
         (17, 9, 97, 131), (0, 0, 300, 451), (1, 2, 259, 257), (40, 40, 331, 225)]


def preprocess_binary() -> str:
    """The built example (tools/test.sh builds it and sets DVT_PREPROCESS_BIN)."""
    candidates = [os.environ.get("DVT_PREPROCESS_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    candidates += [os.path.join(target, "debug", "examples", "preprocess")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("preprocess example not built: run `cargo build --example preprocess`")


@pytest.fixture(scope="module")
def photos():
    jpgs = sorted(glob.glob(os.path.join(PHOTOS, "imagenet_*.jpg")))
    if len(jpgs) < 20:
        pytest.fail(f"no foolbox photos in {PHOTOS}: run tools/setup.sh (or set DVT_TEST_PHOTOS)")
    return jpgs


@pytest.fixture(scope="module")
def odd_pngs(photos, tmp_path_factory):
    """Real-photo crops at odd sizes as lossless PNG (RGB), plus grey, RGBA and palette ones."""
    out = tmp_path_factory.mktemp("odd")
    big = [p for p in photos if Image.open(p).size == (1024, 683)][0]
    square = photos[3]
    paths = []
    for i, (l, t, w, h) in enumerate(CROPS):
        src = Image.open(big if w > 512 or h > 512 else square).convert("RGB")
        if w > src.size[0] or h > src.size[1]:  # the portrait crop: rotate the landscape photo
            src = src.transpose(Image.Transpose.ROTATE_90)
        im = src.crop((l, t, l + w, t + h))
        assert im.size == (w, h)
        p = str(out / f"crop{i}_{w}x{h}.png")
        im.save(p)
        paths.append(p)
    src = Image.open(photos[7]).convert("RGB").crop((5, 11, 5 + 389, 11 + 301))
    src.convert("L").save(str(out / "grey_389x301.png"))
    rgba = src.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(src.size))
    rgba.save(str(out / "rgba_389x301.png"))
    src.quantize(64).save(str(out / "palette_389x301.png"))
    paths += [str(out / n) for n in ("grey_389x301.png", "rgba_389x301.png", "palette_389x301.png")]
    return paths


def run_rust(files, spec, out_dir):
    res = subprocess.run([preprocess_binary(), spec, str(out_dir), *files], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = {}
    for f in files:
        name = os.path.basename(f)
        got[f] = {ext: open(os.path.join(out_dir, f"{name}.{ext}"), "rb").read()
                  for ext in ("u8", "f32", "fmode") if os.path.exists(os.path.join(out_dir, f"{name}.{ext}"))}
    return got


def torchvision_eval(path, resize, crop, filt, grey=False):
    """The official DVT / DeiT evaluation transform: ImageFolder loader, Resize, CenterCrop."""
    with open(path, "rb") as f:
        img = Image.open(f).convert("L" if grey else "RGB")
    geometry = transforms.Compose([transforms.Resize(resize, interpolation=FILTERS[filt]),
                                   transforms.CenterCrop(crop)])
    cropped = geometry(img)
    mean, std = ((0.5,), (0.5,)) if grey else (IMAGENET_MEAN, IMAGENET_STD)
    tensor = transforms.Normalize(mean, std)(transforms.ToTensor()(cropped))
    return np.asarray(cropped, dtype=np.uint8), tensor.numpy()


@pytest.mark.parametrize("filt", ["bicubic", "bilinear"])
def test_png_photos_of_odd_sizes_match_torchvision_bit_for_bit(odd_pngs, tmp_path, filt):
    got = run_rust(odd_pngs, f"256,224,224,3,{filt}", tmp_path)
    for f in odd_pngs:
        want_u8, want_x = torchvision_eval(f, 256, 224, filt)
        u8 = np.frombuffer(got[f]["u8"], np.uint8).reshape(224, 224, 3)
        diff = np.abs(u8.astype(int) - want_u8.astype(int))
        assert diff.max() == 0, f"{os.path.basename(f)}: {int((diff > 0).sum())} pixels differ, max {diff.max()}"
        x = np.frombuffer(got[f]["f32"], "<f4").reshape(3, 224, 224)
        assert np.array_equal(x, want_x), f"{f}: normalised tensor max diff {np.abs(x - want_x).max()}"


def test_grey_model_input_matches_torchvision_and_pil_float_mode(odd_pngs, tmp_path):
    """A 28x28 grey model (Resize(32) + CenterCrop(28) + convert("L")); mode "F" = f32 frames."""
    got = run_rust(odd_pngs, "32,28,28,1,bicubic", tmp_path)
    for f in odd_pngs:
        want_u8, want_x = torchvision_eval(f, 32, 28, "bicubic", grey=True)
        u8 = np.frombuffer(got[f]["u8"], np.uint8).reshape(28, 28)
        assert np.array_equal(u8, want_u8), f"{f}: max diff {np.abs(u8.astype(int) - want_u8).max()}"
        assert np.array_equal(np.frombuffer(got[f]["f32"], "<f4").reshape(1, 28, 28), want_x)
        grey = Image.open(f).convert("L")
        w, h = grey.size
        size = (32, int(32 * h / w)) if w <= h else (int(32 * w / h), 32)
        fmode = np.asarray(Image.fromarray(np.asarray(grey, np.float32), mode="F")
                           .resize(size, Image.Resampling.BICUBIC), np.float32)
        ours = np.frombuffer(got[f]["fmode"], "<f4").reshape(fmode.shape)
        assert np.array_equal(ours, fmode), f"{f}: mode F max diff {np.abs(ours - fmode).max()}"


def test_jpeg_resampling_exact_on_pil_pixels_and_decoder_difference_bounded(photos, tmp_path):
    """Resampling: PIL's decoded pixels (as PNG) must give torchvision's crop exactly. End to
    end from the JPEG file, the two decoders differ by a few levels before resizing; after the
    antialiased resize that must stay small (max and mean bounded, reported)."""
    decoded = []
    for p in photos:
        q = str(tmp_path / (os.path.basename(p) + ".png"))
        Image.open(p).convert("RGB").save(q)
        decoded.append(q)
    got_png = run_rust(decoded, "256,224,224,3,bicubic", tmp_path / "png")
    got_jpg = run_rust(photos, "256,224,224,3,bicubic", tmp_path / "jpg")
    worst, means = 0, []
    for p, q in zip(photos, decoded):
        want_u8, _ = torchvision_eval(p, 256, 224, "bicubic")
        exact = np.frombuffer(got_png[q]["u8"], np.uint8).reshape(224, 224, 3)
        assert np.array_equal(exact, want_u8), f"{p}: resampling differs on identical pixels"
        e2e = np.frombuffer(got_jpg[p]["u8"], np.uint8).reshape(224, 224, 3).astype(int)
        d = np.abs(e2e - want_u8.astype(int))
        worst, means = max(worst, int(d.max())), means + [float(d.mean())]
    print(f"JPEG end to end vs torchvision: max |diff| {worst} levels, mean {np.mean(means):.3f} levels")
    assert worst <= 6 and np.mean(means) < 0.5, (worst, np.mean(means))


def test_the_old_rounding_bugs_are_gone(photos, tmp_path):
    """1024x683: torchvision makes it 383x256 (int), crop offset round(79.5) = 80; the Rust
    output equals torchvision's crop, which a 384-wide resize or a floor offset would not."""
    big = [p for p in photos if Image.open(p).size == (1024, 683)][0]
    q = str(tmp_path / "big.png")
    img = Image.open(big).convert("RGB")
    img.save(q)
    got = np.frombuffer(run_rust([q], "256,224,224,3,bicubic", tmp_path / "o")[q]["u8"], np.uint8)
    resized = img.resize((383, 256), Image.Resampling.BICUBIC)
    right = np.asarray(resized.crop((80, 16, 304, 240))).reshape(-1)
    wrong_round = np.asarray(img.resize((384, 256), Image.Resampling.BICUBIC).crop((80, 16, 304, 240))).reshape(-1)
    wrong_floor = np.asarray(resized.crop((79, 16, 303, 240))).reshape(-1)
    assert np.array_equal(got, right)
    assert not np.array_equal(got, wrong_round) and not np.array_equal(got, wrong_floor)


def test_daemon_and_folder_defaults_stay_torch_compatible():
    """Sanity of the reference itself: ToTensor divides by 255 in float32 as the Rust side does."""
    x = transforms.ToTensor()(Image.new("L", (1, 1), 77))
    assert x.dtype == torch.float32 and float(x) == np.float32(77) / np.float32(255)
