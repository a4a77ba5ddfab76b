"""Depth and normal losses: hand values, invalid pixels, masks, scale invariance, safe angles, gradcheck."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.losses import depth_loss, normal_loss

DT = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _depth_ref(p, t, w, kind, scale_invariant):
    """Loop reference over images of ``[B, H, W]`` maps (float64)."""
    num = den = 0.0
    for b in range(p.shape[0]):
        pix = [(float(p[b, i, j]), float(t[b, i, j]), float(w[b, i, j])) for i in range(p.shape[1])
               for j in range(p.shape[2])]
        pix = [(a, c, m) for a, c, m in pix if math.isfinite(c) and c > 0 and m > 0]
        s, shift = 1.0, 0.0
        if scale_invariant and pix:
            if kind == "log_l1":
                shift = sum(m * (math.log(c) - math.log(a)) for a, c, m in pix) / sum(m for _, _, m in pix)
            else:
                s = sum(m * a * c for a, c, m in pix) / sum(m * a * a for a, c, m in pix)
        for a, c, m in pix:
            if kind == "l1":
                e = abs(s * a - c)
            elif kind == "l2":
                e = (s * a - c) ** 2
            else:
                e = abs(math.log(a) + shift - math.log(c))
            num += m * e
            den += m
    return num / den if den else 0.0


@pytest.mark.parametrize("kind", ["l1", "l2", "log_l1"])
@pytest.mark.parametrize("scale_invariant", [False, True])
def test_depth_matches_loop_reference(kind, scale_invariant):
    p = _rand(3, 5, 6) + 0.5
    t = _rand(3, 5, 6, seed=1) * 2 + 0.2
    t[0, 0, 0], t[1, 2, 3], t[2, 4, 5], t[2, 0, 1] = 0.0, -1.0, float("nan"), float("inf")
    w = _rand(3, 5, 6, seed=2)
    got = depth_loss(p, t, mask=w, kind=kind, scale_invariant=scale_invariant)
    torch.testing.assert_close(got, torch.tensor(_depth_ref(p, t, w, kind, scale_invariant), dtype=DT))
    # [..., H, W, 1] maps and a [..., H, W, 1] mask give the same value
    got1 = depth_loss(p[..., None], t[..., None], mask=w[..., None], kind=kind, scale_invariant=scale_invariant)
    torch.testing.assert_close(got1, got)


def test_depth_scale_invariant_ignores_global_scale():
    t = _rand(2, 4, 4) + 1
    for kind in ("l1", "l2", "log_l1"):
        assert float(depth_loss(3.7 * t, t, kind=kind, scale_invariant=True)) < 1e-12
        assert float(depth_loss(3.7 * t, t, kind=kind)) > 0.1
    # a different scale per image is fitted per image
    p = t * torch.tensor([0.5, 2.0], dtype=DT)[:, None, None]
    assert float(depth_loss(p, t, scale_invariant=True)) < 1e-12


def test_depth_invalid_and_empty_give_zero_not_nan():
    p = (_rand(4, 4) + 1).requires_grad_()
    t = torch.full((4, 4), float("nan"), dtype=DT)
    t[0] = 0.0
    for kind in ("l1", "l2", "log_l1"):
        for si in (False, True):
            loss = depth_loss(p, t, kind=kind, scale_invariant=si)
            assert float(loss.detach()) == 0.0
            (g,) = torch.autograd.grad(loss, p)
            assert torch.isfinite(g).all() and float(g.abs().max()) == 0.0
    t_ok = _rand(4, 4, seed=3) + 1
    assert float(depth_loss(p.detach(), t_ok, mask=torch.zeros(4, 4, dtype=torch.bool))) == 0.0


def test_depth_nan_target_gives_finite_gradient():
    p = (_rand(2, 3, 3) + 1).requires_grad_()
    t = _rand(2, 3, 3, seed=1) + 1
    t[0, 1, 1] = float("nan")
    depth_loss(p, t, kind="log_l1", scale_invariant=True).backward()
    assert torch.isfinite(p.grad).all() and float(p.grad[0, 1, 1]) == 0.0


def test_depth_gradcheck():
    t = _rand(2, 3, 4, seed=1) + 0.5
    t[0, 0, 0] = 0.0
    w = _rand(2, 3, 4, seed=2)
    for kind in ("l2", "log_l1", "l1"):
        p = (_rand(2, 3, 4) + 0.7).requires_grad_()
        assert gradcheck(lambda x: depth_loss(x, t, mask=w, kind=kind, scale_invariant=True), (p,))
        assert gradcheck(lambda x: depth_loss(x, t, kind=kind), (p,))


def test_depth_bad_input():
    p = _rand(4, 4) + 1
    with pytest.raises(ValueError, match="kind"):
        depth_loss(p, p, kind="l3")
    with pytest.raises(ValueError, match="same shape"):
        depth_loss(p, _rand(4, 5))
    with pytest.raises(ValueError, match="pred contains NaN"):
        depth_loss(torch.full((4, 4), float("nan"), dtype=DT), p)
    with pytest.raises(ValueError, match="mask"):
        depth_loss(p, p, mask=torch.ones(3, 4, dtype=DT))
    with pytest.raises(ValueError, match="non-negative"):
        depth_loss(p, p, mask=-torch.ones(4, 4, dtype=DT))
    with pytest.raises(TypeError, match="pred"):
        depth_loss(p.long(), p)
    with pytest.raises(TypeError, match="scale_invariant"):
        depth_loss(p, p, scale_invariant=1)


def test_depth_float32_dtype_follows_pred():
    p = torch.rand(2, 4, 4) + 1
    out = depth_loss(p, p.half().float() * 1.01)
    assert out.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------- normals


def test_normal_hand_values():
    z = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=DT)
    x = torch.tensor([[[3.0, 0.0, 0.0]]], dtype=DT)
    torch.testing.assert_close(normal_loss(x, z), torch.tensor(1.0, dtype=DT))
    torch.testing.assert_close(normal_loss(x, z, kind="angle"), torch.tensor(math.pi / 2, dtype=DT))
    torch.testing.assert_close(normal_loss(-z, 5 * z, kind="angle"), torch.tensor(math.pi, dtype=DT))
    torch.testing.assert_close(normal_loss(-z, z), torch.tensor(2.0, dtype=DT))
    # a tiny angle is accurate (acos would lose it)
    a = 1e-7
    n = torch.tensor([[[math.sin(a), 0.0, math.cos(a)]]], dtype=DT)
    torch.testing.assert_close(normal_loss(n, z, kind="angle"), torch.tensor(a, dtype=DT), rtol=1e-6, atol=0)


def test_normal_matches_reference_with_invalid_and_mask():
    p, t = _randn(2, 4, 5, 3), _randn(2, 4, 5, 3, seed=1)
    t[0, 0, 0] = 0.0
    t[1, 2, 2, 1] = float("nan")
    w = _rand(2, 4, 5, seed=2)
    a = p / p.norm(dim=-1, keepdim=True)
    b = t / t.norm(dim=-1, keepdim=True)
    valid = torch.isfinite(t).all(-1) & (t.norm(dim=-1) > 0)
    cos = (a * b).sum(-1).clamp(-1, 1)
    for kind, err in (("cosine", 1 - cos), ("angle", torch.acos(cos))):
        ref = (torch.where(valid, err, 0) * w).sum() / (w * valid).sum()
        torch.testing.assert_close(normal_loss(p, t, mask=w, kind=kind), ref)


def test_normal_gradient_finite_at_zero_angle_and_zero_length():
    n = _randn(3, 3, 3).requires_grad_()
    for kind in ("cosine", "angle"):
        (g,) = torch.autograd.grad(normal_loss(n, n.detach() * 2, kind=kind), n)
        assert torch.isfinite(g).all() and float(g.abs().max()) < 1e-6
        (g,) = torch.autograd.grad(normal_loss(n, -n.detach(), kind=kind), n)
        assert torch.isfinite(g).all()
    zero = torch.zeros(1, 2, 3, dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(normal_loss(zero, _randn(1, 2, 3), kind="angle"), zero)
    assert torch.isfinite(g).all()
    # an all-invalid target gives 0, not NaN
    assert float(normal_loss(n.detach(), torch.zeros(3, 3, 3, dtype=DT))) == 0.0


def test_normal_gradcheck():
    p = _randn(2, 2, 3, 3).requires_grad_()
    t = _randn(2, 2, 3, 3, seed=1).requires_grad_()
    w = _rand(2, 3, 1, seed=2)
    for kind in ("cosine", "angle"):
        assert gradcheck(lambda a, b: normal_loss(a, b, mask=w, kind=kind), (p, t))


def test_normal_bad_input():
    n = _randn(2, 2, 3)
    with pytest.raises(ValueError, match="pred must have shape"):
        normal_loss(_randn(2, 2, 4), n)
    with pytest.raises(ValueError, match="same shape"):
        normal_loss(n, _randn(1, 2, 2, 3))
    with pytest.raises(ValueError, match="kind"):
        normal_loss(n, n, kind="dot")
    with pytest.raises(TypeError, match="mask"):
        normal_loss(n, n, mask=[1.0])
