"""The resumable trainer (dvtools.training): a stopped and resumed run is the same run, a
checkpoint of another recipe is refused, and augmentation keeps shapes and the identity crop."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from dvtools.fmnist_model import SmallVitConfig, make_cascade  # noqa: E402
from dvtools.training import Recipe, augment, cascade_logits, fit  # noqa: E402

CFG = SmallVitConfig(dim=16, depth=1, heads=1, mlp_hidden=16)


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(192, 1, 28, 28, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()  # learnable: the sign of the mean pixel
    return x, y


def model():
    torch.manual_seed(3)
    return make_cascade(CFG)


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path, monkeypatch):
    x, y = data()
    r = Recipe(epochs=2, batch=32, lr=3e-3)
    quiet = dict(log=lambda s: None)
    full = fit(model(), "m", x, y, r, str(tmp_path / "a"), cascade_logits, -0.8, False, **quiet)
    # The same run killed after its first epoch's checkpoint (the second epoch's validation
    # raises), then resumed.
    import dvtools.training as t

    class Killed(Exception):
        pass

    calls = []

    def validate_then_die(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise Killed()
        return [0.0]

    work = str(tmp_path / "b")
    monkeypatch.setattr(t, "exit_accuracies", validate_then_die)
    with pytest.raises(Killed):
        fit(model(), "m", x, y, r, work, cascade_logits, -0.8, False, x[:8], y[:8], **quiet)
    monkeypatch.undo()
    resumed = fit(model(), "m", x, y, r, work, cascade_logits, -0.8, True, **quiet)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert full.training_history[-1]["loss"] < full.training_history[0]["loss"]


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    x, y = data()
    fit(model(), "m", x, y, Recipe(epochs=1, batch=32), str(tmp_path), cascade_logits, -0.8, False,
        log=lambda s: None)
    with pytest.raises(SystemExit, match="another recipe"):
        fit(model(), "m", x, y, Recipe(epochs=2, batch=32), str(tmp_path), cascade_logits, -0.8, True,
            log=lambda s: None)
    with pytest.raises(SystemExit, match="--resume"):
        fit(model(), "m", x, y, Recipe(epochs=1, batch=32), str(tmp_path), cascade_logits, -0.8, False,
            log=lambda s: None)


def test_augment_keeps_shapes_and_without_it_is_the_identity():
    x, _ = data()
    g = torch.Generator().manual_seed(0)
    out = augment(x[:16], Recipe(crop_padding=2, hflip=True), g, -0.8)
    assert out.shape == x[:16].shape and not torch.equal(out, x[:16])
    same = augment(x[:16], Recipe(crop_padding=0, hflip=False), g, -0.8)
    assert torch.equal(same, x[:16])


def test_bf16_autocast_trains_float32_weights_close_to_the_float32_run(tmp_path):
    """bfloat16 autocast changes the forward's arithmetic, not what is trained: the weights stay
    float32, the loss falls, and the result stays near the float32 run of the same recipe."""
    x, y = data()
    quiet = dict(log=lambda s: None)
    runs = {}
    for precision in ("fp32", "bf16"):
        r = Recipe(epochs=2, batch=32, lr=3e-3, precision=precision)
        runs[precision] = fit(model(), "m", x, y, r, str(tmp_path / precision), cascade_logits, -0.8,
                              False, **quiet)
    bf16 = runs["bf16"]
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert bf16.training_history[-1]["loss"] < bf16.training_history[0]["loss"]
    a, b = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in runs.values())
    assert not torch.equal(a, b)  # the autocast did run
    assert (a - b).norm() / a.norm() < 0.05
    with pytest.raises(SystemExit, match="precision"):
        fit(model(), "m", x, y, Recipe(epochs=1, batch=32, precision="fp8"), str(tmp_path / "x"),
            cascade_logits, -0.8, False, **quiet)
