"""Silhouette losses: hand values, empty masks, clamping at 0 / 1, batch mean, gradcheck, bad input."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.losses import silhouette_bce_loss, silhouette_iou_loss

DT = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_iou_hand_values():
    p = torch.tensor([[1.0, 1.0]], dtype=DT)
    t = torch.tensor([[1.0, 0.0]], dtype=DT)
    torch.testing.assert_close(silhouette_iou_loss(p, t, eps=0), torch.tensor(0.5, dtype=DT))
    torch.testing.assert_close(silhouette_iou_loss(p, p), torch.tensor(0.0, dtype=DT))
    # soft: I = 0.5 * 1, U = 0.5 + 1 - 0.5 = 1
    torch.testing.assert_close(silhouette_iou_loss(torch.full((1, 1), 0.5, dtype=DT), torch.ones(1, 1, dtype=DT),
                                                   eps=0), torch.tensor(0.5, dtype=DT))
    # disjoint masks: loss ~1; two empty masks: 0
    d = silhouette_iou_loss(torch.tensor([[1.0, 0]], dtype=DT), torch.tensor([[0.0, 1]], dtype=DT))
    assert 1 - 1e-5 < float(d) < 1
    assert float(silhouette_iou_loss(torch.zeros(3, 4, dtype=DT), torch.zeros(3, 4, dtype=DT))) == 0.0


def test_iou_mean_over_batch_and_broadcast():
    p = _rand(2, 3, 5, 6)
    t = (_rand(5, 6, seed=1) > 0.5).double()
    per = torch.stack([silhouette_iou_loss(p[i, j], t) for i in range(2) for j in range(3)])
    torch.testing.assert_close(silhouette_iou_loss(p, t), per.mean())
    inter = (p[0, 0] * t).sum()
    union = (p[0, 0] + t - p[0, 0] * t).sum()
    torch.testing.assert_close(per[0], 1 - (inter + 1e-6) / (union + 1e-6))


def test_bce_hand_values_and_clamp_at_zero_and_one():
    half = torch.full((4, 4), 0.5, dtype=DT)
    torch.testing.assert_close(silhouette_bce_loss(half, _rand(4, 4)), torch.tensor(math.log(2), dtype=DT))
    p = torch.tensor([[0.0, 1.0, 0.0, 1.0]], dtype=DT, requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 1.0, 0.0]], dtype=DT)
    loss = silhouette_bce_loss(p, t, eps=1e-6)
    torch.testing.assert_close(loss, torch.tensor(-2 * math.log(1e-6) / 4, dtype=DT), rtol=1e-6, atol=0)
    loss.backward()
    assert torch.isfinite(p.grad).all()
    # float32 and half: 1 - eps must not round to 1 (log(0))
    for dt in (torch.float32, torch.float16):
        ll = silhouette_bce_loss(p.detach().to(dt), t.to(dt))
        assert ll.dtype == dt and torch.isfinite(ll)


def test_bce_matches_torch_inside_the_clamp():
    p, t = _rand(3, 7, 5, seed=2) * 0.98 + 0.01, _rand(3, 7, 5, seed=3)
    torch.testing.assert_close(silhouette_bce_loss(p, t), torch.nn.functional.binary_cross_entropy(p, t))


def test_gradcheck():
    p = (_rand(2, 4, 5, seed=4) * 0.9 + 0.05).requires_grad_()
    t = _rand(2, 4, 5, seed=5).requires_grad_()
    assert gradcheck(silhouette_iou_loss, (p, t))
    assert gradcheck(lambda a, b: silhouette_iou_loss(a, b, eps=0.0), (p, t))
    assert gradcheck(silhouette_bce_loss, (p, t))


def test_bad_input():
    p = _rand(4, 4)
    with pytest.raises(ValueError, match=r"pred must have shape \[\.\.\., \?, \?\]"):
        silhouette_iou_loss(p[0], p[0])
    with pytest.raises(TypeError, match="target must have a floating dtype"):
        silhouette_iou_loss(p, (p > 0.5).long())
    with pytest.raises(ValueError, match="pred has batch dims .* and target"):
        silhouette_bce_loss(p, _rand(5, 4))
    with pytest.raises(ValueError, match="pred contains NaN"):
        silhouette_iou_loss(p * math.nan, p)
    with pytest.raises(ValueError, match="eps"):
        silhouette_iou_loss(p, p, eps=-1.0)
    with pytest.raises(ValueError, match="eps"):
        silhouette_bce_loss(p, p, eps=0.5)
    with pytest.raises(TypeError, match="pred must be a torch.Tensor"):
        silhouette_bce_loss([[0.5]], p)
