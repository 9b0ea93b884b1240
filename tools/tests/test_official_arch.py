"""Official DVT architectures: state_dict keys/shapes/counts (docs/ARCHITECTURE.md, "The model's math")
and the export rewrites (Unfold as Gather, Performer einsums as MatMul) against the originals."""
import math

import pytest
import torch
from torch import nn

from dvtools.official import build
from dvtools.official.arch import PREFIXES
from dvtools.official.t2t import PerformerCore, SoftSplit

SPEC = {  # tensors, elements (M), per-stage elements (M) — spec §7 / §8.1
    "t2t_vit_12": (650, 22.46, (6.99, 7.74, 7.73)),
    "t2t_vit_14": (740, 67.88, (21.57, 23.16, 23.15)),
    "deit_small": (608, 70.44, (22.88, 23.92, 23.64)),
}


@pytest.fixture(scope="module", params=sorted(SPEC))
def model(request):
    torch.manual_seed(0)
    return build(request.param)


def test_counts_match_spec(model):
    sd = model.state_dict()
    tensors, total, per_stage = SPEC[model.arch]
    assert len(sd) == tensors
    assert sum(v.numel() for v in sd.values()) / 1e6 == pytest.approx(total, abs=0.005)
    for prefix, want in zip(PREFIXES, per_stage):
        got = sum(v.numel() for k, v in sd.items() if k.startswith(prefix + "."))
        assert got / 1e6 == pytest.approx(want, abs=0.005), prefix
    assert all(k.split(".")[0] in PREFIXES for k in sd)


def _t2t_keys(d, depth, heads, hidden):
    """The spec §8.1 T2T key list with shapes, written out independently of the model code."""
    keys = {}
    lh = depth * heads
    for s, (p, tokens, dim0) in enumerate(zip(PREFIXES, (50, 101, 197), (588, 363, 147))):
        keys[f"{p}.cls_token"] = (1, 1, d)
        keys[f"{p}.pos_embed"] = (1, tokens, d)
        for a, din in (("attention1", dim0), ("attention2", 576)):
            t = f"{p}.tokens_to_token.{a}"
            keys.update({f"{t}.w": (32, 64), f"{t}.kqv.weight": (192, din), f"{t}.kqv.bias": (192,),
                         f"{t}.proj.weight": (64, 64), f"{t}.proj.bias": (64,),
                         f"{t}.norm1.weight": (din,), f"{t}.norm1.bias": (din,),
                         f"{t}.norm2.weight": (64,), f"{t}.norm2.bias": (64,),
                         f"{t}.mlp.0.weight": (64, 64), f"{t}.mlp.0.bias": (64,),
                         f"{t}.mlp.2.weight": (64, 64), f"{t}.mlp.2.bias": (64,)})
        keys[f"{p}.tokens_to_token.project.weight"] = (d, 576)
        keys[f"{p}.tokens_to_token.project.bias"] = (d,)
        wide = d + 48 if s else d
        for i in range(depth):
            b = f"{p}.blocks.{i}"
            keys.update({f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,), f"{b}.attn.qkv.weight": (3 * d, d),
                         f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,),
                         f"{b}.norm2.weight": (wide,), f"{b}.norm2.bias": (wide,),
                         f"{b}.mlp.fc1.weight": (hidden, wide), f"{b}.mlp.fc1.bias": (hidden,),
                         f"{b}.mlp.fc2.weight": (d, hidden), f"{b}.mlp.fc2.bias": (d,)})
            if s:
                f = f"{b}.feature_resuse_mlp"
                keys.update({f"{f}.0.weight": (d,), f"{f}.0.bias": (d,), f"{f}.1.fc1.weight": (128, d),
                             f"{f}.1.fc1.bias": (128,), f"{f}.1.fc2.weight": (48, 128), f"{f}.1.fc2.bias": (48,)})
        keys[f"{p}.norm.weight"] = (d,)
        keys[f"{p}.norm.bias"] = (d,)
        if s:
            keys.update({f"{p}.relation_reuse_conv.0.weight": (3 * lh, lh, 1, 1), f"{p}.relation_reuse_conv.0.bias": (3 * lh,),
                         f"{p}.relation_reuse_conv.2.weight": (lh, 3 * lh, 1, 1), f"{p}.relation_reuse_conv.2.bias": (lh,)})
        keys[f"{p}.head.weight"] = (1000, d)
        keys[f"{p}.head.bias"] = (1000,)
    return keys


@pytest.mark.parametrize("arch,d,depth,heads,hidden", [("t2t_vit_12", 256, 12, 4, 512),
                                                       ("t2t_vit_14", 384, 14, 6, 1152)])
def test_t2t_keys_and_shapes_match_spec(arch, d, depth, heads, hidden):
    sd = build(arch).state_dict()
    want = _t2t_keys(d, depth, heads, hidden)
    assert {k: tuple(v.shape) for k, v in sd.items()} == want


def test_deit_specific_keys():
    sd = build("deit_small").state_dict()
    for p, k in zip(PREFIXES, (32, 23, 16)):
        assert tuple(sd[f"{p}.patch_embed.proj.weight"].shape) == (384, 3, k, k)
        assert tuple(sd[f"{p}.blocks.0.attn.qkv.bias"].shape) == (1152,)
        assert tuple(sd[f"{p}.blocks.0.mlp.fc1.weight"].shape) == (1536, 384 + (48 if k != 32 else 0))
    assert tuple(sd["normal_token.relation_reuse_conv.0.weight"].shape) == (216, 72, 1, 1)
    stage = build("deit_small").less_token
    assert stage.norm.eps == 1e-6 and stage.blocks[0].feature_resuse_mlp[0].eps == 1e-6


def test_performer_w_is_a_stored_frozen_parameter():
    m = build("t2t_vit_12")
    w = m.less_less_token.tokens_to_token.attention1.w
    assert not w.requires_grad
    assert "less_less_token.tokens_to_token.attention1.w" in m.state_dict()
    # orthogonal rows scaled by sqrt(32): W W^T = 32 I
    assert torch.allclose(w @ w.t(), 32 * torch.eye(32), atol=1e-3)


@pytest.mark.parametrize("size,k,s,p,c", [(224, 14, 8, 3, 3), (224, 11, 6, 5, 3), (224, 7, 4, 2, 3),
                                          (28, 3, 2, 1, 64), (19, 3, 2, 1, 64)])
def test_soft_split_equals_unfold(size, k, s, p, c):
    x = torch.randn(2, c, size, size)
    want = nn.Unfold(kernel_size=k, stride=s, padding=p)(x).transpose(1, 2)
    got = SoftSplit(c, size, k, s, p)(x)
    assert torch.equal(got, want)


def test_performer_core_equals_official_einsums():
    torch.manual_seed(1)
    k, q, v = (torch.randn(2, 30, 64) * 0.3 for _ in range(3))
    w = nn.init.orthogonal_(torch.empty(32, 64)) * math.sqrt(32)

    def prm_exp(x):  # the official formulation (spec §10.5)
        xd = (x * x).sum(dim=-1, keepdim=True).repeat(1, 1, 32) / 2
        return torch.exp(torch.einsum("bti,mi->btm", x, w) - xd) / math.sqrt(32)

    kp, qp = prm_exp(k), prm_exp(q)
    d = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(dim=2)
    kptv = torch.einsum("bin,bim->bnm", v, kp)
    want = torch.einsum("bti,bni->btn", qp, kptv) / (d.repeat(1, 1, 64) + 1e-8)
    got = PerformerCore()(k, q, v, w)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stage_outputs_have_spec_shapes():
    m = build("t2t_vit_12")
    with torch.no_grad():
        outs = m(torch.randn(1, 3, 224, 224))
    assert [tuple(t.shape) for t in outs[0]] == [(1, 1000), (1, 50, 256), (1, 48, 50, 50)]
    assert [tuple(t.shape) for t in outs[1][1:]] == [(1, 101, 256), (1, 48, 101, 101)]
