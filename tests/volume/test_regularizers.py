"""Volume regularisers: the O(n) distortion loss against the O(n^2) double sum, gradcheck, normalisation;
opacity entropy and depth supervision on hand cases and at their extremes."""

import math

import pytest
import torch

from lumigrad.volume.regularizers import depth_loss, distortion_loss, distortion_loss_ref, opacity_entropy


def packed(counts, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    R = len(counts)
    near = torch.rand(R, generator=gen, dtype=dtype)
    far = near + 1 + torch.rand(R, generator=gen, dtype=dtype)
    starts, ends, rays = [], [], []
    for r, n in enumerate(counts):
        edges = torch.sort(torch.rand(2 * n, generator=gen, dtype=dtype)).values * (far[r] - near[r]) + near[r]
        starts.append(edges[0::2])
        ends.append(edges[1::2])
        rays += [r] * n
    w = torch.rand(sum(counts), generator=gen, dtype=dtype) / 4
    return w, torch.cat(starts), torch.cat(ends), torch.tensor(rays, dtype=torch.long), R, near, far


def test_matches_the_double_sum_including_empty_and_single_sample_rays():
    w, s, e, rays, R, _, _ = packed([5, 0, 1, 17, 3])
    fast = distortion_loss(w, s, e, rays, R)
    torch.testing.assert_close(fast, distortion_loss_ref(w, s, e, rays, R), rtol=1e-12, atol=1e-14)
    assert float(fast[1]) == 0.0
    torch.testing.assert_close(fast[2], (w[5] ** 2 * (e[5] - s[5]) / 3))


def test_gradcheck_and_normalised_distances():
    w, s, e, rays, R, near, far = packed([4, 2, 6], seed=3)
    inputs = (w.clone().requires_grad_(), s.clone().requires_grad_(), e.clone().requires_grad_())
    assert torch.autograd.gradcheck(lambda a, b, c: distortion_loss(a, b, c, rays, R), inputs)
    normalised = distortion_loss(w, s, e, rays, R, t_near=near, t_far=far)
    span = (far - near).index_select(0, rays)
    lo = near.index_select(0, rays)
    expect = distortion_loss_ref(w, (s - lo) / span, (e - lo) / span, rays, R)
    torch.testing.assert_close(normalised, expect, rtol=1e-12, atol=1e-14)
    # scaling the scene leaves the normalised loss unchanged and scales the plain one
    torch.testing.assert_close(distortion_loss(w, 3 * s, 3 * e, rays, R, t_near=3 * near, t_far=3 * far), normalised)
    torch.testing.assert_close(distortion_loss(w, 3 * s, 3 * e, rays, R), 3 * distortion_loss(w, s, e, rays, R))


def test_compact_weight_costs_less_than_spread_weight():
    s = torch.linspace(0, 0.9, 10, dtype=torch.float64)
    e = s + 0.1
    rays = torch.zeros(10, dtype=torch.long)
    compact = torch.zeros(10, dtype=torch.float64)
    compact[4] = 1.0
    spread = torch.full((10,), 0.1, dtype=torch.float64)
    assert float(distortion_loss(compact, s, e, rays, 1)) < float(distortion_loss(spread, s, e, rays, 1))


def test_bad_input_names_the_argument():
    w, s, e, rays, R, near, far = packed([3, 2])
    with pytest.raises(ValueError, match="weights"):
        distortion_loss(w[:-1], s, e, rays, R)
    with pytest.raises(ValueError, match="t_near"):
        distortion_loss(w, s, e, rays, R, t_near=near)
    with pytest.raises(ValueError, match="t_far must exceed"):
        distortion_loss(w, s, e, rays, R, t_near=near, t_far=near)
    with pytest.raises(ValueError, match="NaN"):
        distortion_loss(w * float("nan"), s, e, rays, R)


def test_opacity_entropy_values_and_extremes():
    a = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    h = opacity_entropy(a)
    assert float(h[1].detach()) == pytest.approx(math.log(2))
    at_clamp = -(1e-4 * math.log(1e-4) + (1 - 1e-4) * math.log(1 - 1e-4))  # 1.02e-3: the value at the clamp
    assert float(h[0].detach()) == pytest.approx(at_clamp) and float(h[2].detach()) == pytest.approx(at_clamp)
    h.sum().backward()
    assert bool(torch.isfinite(a.grad).all())
    x = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(opacity_entropy, (x,))
    with pytest.raises(ValueError, match="eps"):
        opacity_entropy(a, eps=0.7)


def test_depth_loss_masks_unknown_depth_and_weights_by_opacity():
    depth = torch.tensor([[1.0], [2.0], [3.0], [4.0]], requires_grad=True)
    target = torch.tensor([[1.5], [float("nan")], [0.0], [3.0]])
    loss = depth_loss(depth, target)
    torch.testing.assert_close(loss, torch.tensor([[0.25], [0.0], [0.0], [1.0]]))
    loss.sum().backward()
    torch.testing.assert_close(depth.grad, torch.tensor([[-1.0], [0.0], [0.0], [2.0]]))
    weighted = depth_loss(depth.detach(), target, opacity=torch.tensor([[0.5], [1.0], [1.0], [0.0]]))
    torch.testing.assert_close(weighted, torch.tensor([[0.125], [0.0], [0.0], [0.0]]))
    huber = depth_loss(depth.detach(), target, delta=0.1)
    assert float(huber[3]) == pytest.approx(0.1 * (1.0 - 0.05))
    with pytest.raises(ValueError, match="target"):
        depth_loss(depth, target[:2])
