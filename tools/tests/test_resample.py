"""The constant resampling matrices equal the official nearest-upsample + adaptive-pool ops."""
import pytest
import torch
import torch.nn.functional as F

from dvtools.resample import (axis_matrix, axis_tensor, dense_token_matrix, resample_features,
                              resample_relation)

PAIRS = [(4, 7), (7, 14), (7, 10), (10, 14)]


def official_grid(x, s_in, s_out):
    """The official ops on (B, C, s_in, s_in): nearest to 2*s_in, adaptive average pool to s_out."""
    up = F.interpolate(x, size=(2 * s_in, 2 * s_in), mode="nearest")
    return F.adaptive_avg_pool2d(up, (s_out, s_out))


@pytest.mark.parametrize("s_in,s_out", PAIRS)
def test_axis_matrix_rows_are_averages(s_in, s_out):
    a = axis_matrix(s_in, s_out)
    assert len(a) == s_out and all(len(r) == s_in for r in a)
    for row in a:
        assert sum(row) == pytest.approx(1.0)


def test_spec_values_7_to_10():
    a = axis_tensor(7, 10)
    assert a[2, 1] == pytest.approx(2 / 3) and a[2, 2] == pytest.approx(1 / 3)
    assert a[7, 4] == pytest.approx(1 / 3) and a[7, 5] == pytest.approx(2 / 3)


@pytest.mark.parametrize("s_in,s_out", PAIRS)
def test_features_match_official_ops(s_in, s_out):
    g = torch.Generator().manual_seed(s_in * 100 + s_out)
    f = torch.randn(2, 1 + s_in * s_in, 48, generator=g)
    ours = resample_features(f, axis_tensor(s_in, s_out), s_in, s_out)
    grid = f[:, 1:, :].transpose(1, 2).reshape(2, 48, s_in, s_in)
    ref = official_grid(grid, s_in, s_out).flatten(2).transpose(1, 2)
    ref = torch.cat([torch.zeros(2, 1, 48), ref], dim=1)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("s_in,s_out", PAIRS)
def test_dense_matrix_is_one_plus_kron(s_in, s_out):
    g = torch.Generator().manual_seed(1)
    v = torch.randn(5, s_in * s_in, generator=g)
    p = dense_token_matrix(s_in, s_out)
    ref = official_grid(v.reshape(5, 1, s_in, s_in), s_in, s_out).reshape(5, -1)
    assert torch.allclose(v @ p[1:, 1:].t(), ref, atol=1e-6)
    assert p[0, 0] == 1 and p[0, 1:].abs().sum() == 0 and p[1:, 0].abs().sum() == 0


@pytest.mark.parametrize("s_in,s_out", PAIRS)
def test_relation_matches_official_two_step(s_in, s_out):
    """P R P^T equals the official column-then-row resampling with cls row/column kept."""
    g = torch.Generator().manual_seed(2)
    b, c, n = 2, 6, 1 + s_in * s_in
    r = torch.randn(b, c, n, n, generator=g)
    ours = resample_relation(r, axis_tensor(s_in, s_out), s_in, s_out)
    # official step A (columns), then step B (rows), as in spec §3.4
    cols = r[:, :, :, 1:].reshape(b * c * n, 1, s_in, s_in)
    cols = official_grid(cols, s_in, s_out).reshape(b, c, n, s_out * s_out)
    r1 = torch.cat([r[:, :, :, :1], cols], dim=3).transpose(2, 3)
    m = s_out * s_out + 1
    rows = r1[:, :, :, 1:].reshape(b * c * m, 1, s_in, s_in)
    rows = official_grid(rows, s_in, s_out).reshape(b, c, m, s_out * s_out)
    ref = torch.cat([r1[:, :, :, :1], rows], dim=3).transpose(2, 3)
    assert torch.allclose(ours, ref, atol=1e-5)
    p = dense_token_matrix(s_in, s_out)
    assert torch.allclose(ours, p @ r @ p.t(), atol=1e-5)
