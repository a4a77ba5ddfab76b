"""Volume regularizers: distortion loss against its O(n^2) float64 twin, gradcheck, hand cases, finiteness at the
extremes, masked depth supervision, bad input; and (slow) a tiny few-view fit where they remove floaters."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from lumigrad.volume import (composite, depth_loss, distortion_loss, distortion_loss_ref, opacity_entropy_loss,
                             sparsity_loss)
from lumigrad.volume.packing import ray_offsets

from .test_composite import packed_case

# empty rays, a 1-sample ray, long rays
COUNTS = [3, 0, 7, 1, 12, 0, 5, 40]


def weights_case(counts, dtype=torch.float64, seed=0):
    sigmas, _, starts, ends, ray_indices, R = packed_case(counts, dtype, seed=seed)
    out = composite(sigmas, sigmas.new_zeros(sigmas.shape[0], 0), starts, ends, ray_indices, R, return_weights=True)
    return out.weights.detach(), starts, ends, ray_indices, R


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distortion_matches_brute_force_twin(seed, normalise):
    w, s, e, ri, R = weights_case(COUNTS, seed=seed)
    kw = {}
    if normalise:  # each ray's range: a bit around its samples (empty rays: any range)
        offsets, counts = ray_offsets(ri, R)
        has = counts > 0
        first, last = offsets.clamp_max(len(s) - 1), (offsets + counts - 1).clamp_min(0)
        near = torch.where(has, s[first] - 0.1, torch.zeros(R, dtype=torch.float64))
        far = torch.where(has, e[last] + 0.2, torch.ones(R, dtype=torch.float64))
        kw = dict(t_near=near, t_far=far)
    fast = distortion_loss(w, s, e, ri, R, **kw)
    ref = distortion_loss_ref(w, s, e, ri, R, **kw)
    assert fast.shape == (R,) and fast.dtype == torch.float64
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-13)
    assert float(fast[1]) == 0.0 and float(fast[5]) == 0.0  # empty rays
    # the 1-sample ray has only the interval term: w^2 (e - s) / 3 (normalised: divided by its span)
    j = int((ri < 3).sum())  # its sample
    span = (kw["t_far"] - kw["t_near"])[3] if normalise else 1.0
    torch.testing.assert_close(fast[3], w[j] ** 2 * (e[j] - s[j]) / 3 / span)
    # gradients w.r.t. weights and intervals agree with the twin's (random cotangent)
    inputs = [x.clone().requires_grad_() for x in (w, s, e)]
    cot = torch.randn(R, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    g_fast = torch.autograd.grad(distortion_loss(*inputs, ri, R, **kw), inputs, cot)
    g_ref = torch.autograd.grad(distortion_loss_ref(*inputs, ri, R, **kw), inputs, cot)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_distortion_float32_large_offsets_stay_accurate():
    """Many rays before the one checked: the global prefix sum runs in float64, so float32 inputs keep
    float32 accuracy on every ray."""
    counts = [30] * 300
    w, s, e, ri, R = weights_case(counts, dtype=torch.float32, seed=3)
    fast = distortion_loss(w, s, e, ri, R)
    ref = distortion_loss_ref(w.double(), s.double(), e.double(), ri, R)
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast.double(), ref, rtol=2e-6, atol=1e-6)


def test_distortion_gradcheck():
    # intervals with gaps, so that gradcheck's perturbations keep them sorted and non-overlapping
    ri = torch.tensor([0, 0, 0, 2, 3, 3, 3, 3])
    R = 4
    edges = torch.cumsum(torch.rand(16, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.05, 0)
    s, e = edges[0::2], edges[1::2]
    w = torch.rand(8, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 0.3
    near = torch.full((R,), 0.0, dtype=torch.float64)
    far = e.max().detach().expand(R) + 0.5
    for kw in ({}, {"t_near": near, "t_far": far.clone()}):
        inputs = [x.clone().requires_grad_() for x in (w, s, e)]
        assert torch.autograd.gradcheck(lambda a, b, c: distortion_loss(a, b, c, ri, R, **kw), inputs)


def test_distortion_hand_cases_and_normalisation():
    ri = torch.tensor([0, 0])
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    s = torch.tensor([0.0, 2.0], dtype=torch.float64)
    e = torch.tensor([1.0, 3.0], dtype=torch.float64)
    assert float(distortion_loss(w, s, e, ri, 1)) == pytest.approx(1 + 1 / 6)
    # normalised by a range of length 6 the same ray gives 1/6 of it; a scaled scene gives the same value
    assert float(distortion_loss(w, s, e, ri, 1, t_near=0.0, t_far=6.0)) == pytest.approx((1 + 1 / 6) / 6)
    assert float(distortion_loss(w, 10 * s, 10 * e, ri, 1, t_near=0.0, t_far=60.0)) == pytest.approx((1 + 1 / 6) / 6)
    # compact beats spread: the same total weight in one short interval costs less
    compact = distortion_loss(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64),
                              torch.tensor([1.2], dtype=torch.float64), torch.tensor([0]), 1)
    assert float(compact) < float(distortion_loss(w, s, e, ri, 1))
    # no samples at all
    empty = torch.zeros(0, dtype=torch.float64)
    assert distortion_loss(empty, empty, empty, torch.zeros(0, dtype=torch.long), 3).tolist() == [0.0] * 3


def test_distortion_rejects_bad_input():
    w, s, e, ri, R = weights_case([2, 3])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        distortion_loss(-w, s, e, ri, R)
    with pytest.raises(ValueError, match="weights contains NaN"):
        distortion_loss(torch.full_like(w, float("nan")), s, e, ri, R)
    with pytest.raises(ValueError, match="weights must have one entry per sample"):
        distortion_loss(w[:-1], s, e, ri, R)
    with pytest.raises(ValueError, match="ray_indices must be sorted"):
        distortion_loss(w, s, e, ri.flip(0), R)
    with pytest.raises(ValueError, match="together"):
        distortion_loss(w, s, e, ri, R, t_near=0.0)
    with pytest.raises(ValueError, match="t_far must exceed t_near"):
        distortion_loss(w, s, e, ri, R, t_near=torch.tensor([0.0, 5.0], dtype=torch.float64),
                        t_far=torch.tensor([9.0, 5.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="t_near must be a number or have shape"):
        distortion_loss(w, s, e, ri, R, t_near=torch.zeros(3, dtype=torch.float64), t_far=9.0)
    with pytest.raises(ValueError, match="finite"):
        distortion_loss(w, s, e, ri, R, t_near=0.0, t_far=float("inf"))
    with pytest.raises(TypeError, match="weights must have a floating dtype"):
        distortion_loss(torch.ones(5, dtype=torch.long), s, e, ri, R)


def test_opacity_entropy_values_gradients_and_extremes():
    a = torch.tensor([0.0, 0.5, 1.0, 0.25, 1.0 + 1e-7], dtype=torch.float64, requires_grad=True)
    h = opacity_entropy_loss(a)
    expected_quarter = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert h[1].item() == pytest.approx(1.0)
    assert h[3].item() == pytest.approx(expected_quarter)
    assert 0 <= h[0].item() < 1e-4 and 0 <= h[2].item() < 1e-4 and 0 <= h[4].item() < 1e-4
    g, = torch.autograd.grad(h.sum(), a)
    assert bool(torch.isfinite(g).all())
    assert g[1].item() == pytest.approx(0.0, abs=1e-12)
    assert g[3].item() == pytest.approx(math.log2(3.0))  # dH/da = log2((1 - a) / a): pushes 0.25 down
    x = torch.tensor([0.1, 0.4, 0.7, 0.93], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(opacity_entropy_loss, (x,))
    # float32 at the ends: finite value and gradient
    a32 = torch.tensor([0.0, 1.0], requires_grad=True)
    h32 = opacity_entropy_loss(a32)
    assert bool(torch.isfinite(h32).all()) and bool(torch.isfinite(torch.autograd.grad(h32.sum(), a32)[0]).all())
    with pytest.raises(ValueError, match=r"opacity must lie in \[0, 1\]"):
        opacity_entropy_loss(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="opacity contains NaN"):
        opacity_entropy_loss(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="eps"):
        opacity_entropy_loss(torch.tensor([0.5]), eps=0.5)


def test_sparsity_values_gradients():
    x = torch.tensor([0.0, 0.5, 2.0, 30.0], dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(sparsity_loss(x, kind="l1"), x.detach())
    c = sparsity_loss(x, kind="cauchy", scale=0.5)
    torch.testing.assert_close(c, torch.log1p((x.detach() / 0.5) ** 2))
    assert c[0].item() == 0.0
    assert torch.autograd.gradcheck(lambda v: sparsity_loss(v, kind="cauchy", scale=0.7), (x,))
    g, = torch.autograd.grad(sparsity_loss(x, kind="l1").sum(), x)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0]
    # the Cauchy pull saturates: a solid density feels far less than a faint one in relative terms
    gc, = torch.autograd.grad(sparsity_loss(x, kind="cauchy").sum(), x)
    assert gc[3] < gc[1]
    with pytest.raises(ValueError, match="kind"):
        sparsity_loss(x, kind="l0")
    with pytest.raises(ValueError, match="scale"):
        sparsity_loss(x, scale=0.0)
    with pytest.raises(ValueError, match="values contains NaN"):
        sparsity_loss(torch.tensor([float("inf")]))


def test_depth_loss_masks_unknown_and_is_robust():
    d = torch.tensor([1.05, 3.0, 2.0, 5.0, 1.5], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 2.0, float("nan"), 0.0, 1.0], dtype=torch.float64)
    loss = depth_loss(d, t, delta=0.1)
    assert loss.item() == pytest.approx((0.05 ** 2 / 0.2 + (1.0 - 0.05) + (0.5 - 0.05)) / 3)
    g, = torch.autograd.grad(loss, d)
    assert bool(torch.isfinite(g).all())
    assert g[2].item() == 0.0 and g[3].item() == 0.0  # NaN / 0 targets: no gradient
    assert g[1].item() == pytest.approx(1 / 3)  # Huber is L1 beyond delta
    per_ray = depth_loss(d, t, kind="l2", reduction="none")
    torch.testing.assert_close(per_ray.detach(), torch.tensor([0.0025, 1.0, 0.0, 0.0, 0.25], dtype=torch.float64))
    assert depth_loss(d, t, kind="l1").item() == pytest.approx((0.05 + 1.0 + 0.5) / 3)
    # mask and opacity weights: the ray with opacity 0 drops out, and opacity gets no gradient
    mask = torch.tensor([True, True, True, True, False])
    op = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    weighted = depth_loss(d, t, op, mask, kind="l1")
    assert weighted.item() == pytest.approx(0.05)
    assert torch.autograd.grad(weighted, op, allow_unused=True)[0] is None
    # [R, 1] shapes, gradcheck of the smooth kinds, nothing known -> 0 without NaN
    d2 = d.detach()[:, None].clone().requires_grad_()
    t2 = t[:, None]
    for kind in ("huber", "l2"):
        assert torch.autograd.gradcheck(lambda x: depth_loss(x, t2, kind=kind, delta=0.3), (d2,))
    # negative and infinite targets are unknown too (as in lumigrad.losses.depth_loss)
    odd = torch.tensor([1.0, -1.0, float("inf"), float("-inf"), 1.0], dtype=torch.float64)
    assert depth_loss(d, odd, kind="l1").item() == pytest.approx((0.05 + 0.5) / 2)
    assert bool(torch.isfinite(torch.autograd.grad(depth_loss(d, odd), d)[0]).all())
    none = depth_loss(d, torch.full_like(t, float("nan")))
    assert none.item() == 0.0 and torch.autograd.grad(none, d)[0].abs().sum().item() == 0.0


def test_depth_loss_rejects_bad_input():
    d = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="target_depth must have the shape"):
        depth_loss(d, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="depth contains NaN"):
        depth_loss(torch.tensor([float("nan"), 1.0]), d)
    with pytest.raises(TypeError, match="mask must be a bool"):
        depth_loss(d, d, mask=torch.ones(2))
    with pytest.raises(ValueError, match="opacity must lie"):
        depth_loss(d, d, opacity=torch.tensor([0.5, 2.0]))
    with pytest.raises(ValueError, match="delta"):
        depth_loss(d, d, delta=-1.0)
    with pytest.raises(ValueError, match="kind"):
        depth_loss(d, d, kind="l3")
    with pytest.raises(ValueError, match=r"depth must have shape \[R\] or \[R, 1\]"):
        depth_loss(torch.ones(2, 3), torch.ones(2, 3))


def _benchmark_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "volume_regularizers.py"
    spec = importlib.util.spec_from_file_location("volume_regularizers_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_few_view_fit_has_fewer_floaters_with_regularizers():
    """A tiny case (a) of benchmarks/volume_regularizers.py: 4 views of a ball, 24^2 pixels, 24^3 grids, 80 Adam
    steps. Opacity entropy plus distortion leave much less density outside the ball than the plain fit with the
    same seed (benchmark, default size: 0.37 -> 0.02 with entropy alone)."""
    bench = _benchmark_module()
    cfg = bench.Config(size=24, density_res=24, colour_res=24, samples_per_ray=24, steps=80, seed=0)
    train = bench.make_views(bench.ring_cameras(cfg.train_azimuths, cfg.elevation, cfg.size))
    test = bench.make_views(bench.ring_cameras(cfg.test_azimuths, cfg.test_elevation, cfg.size))
    plain = bench.fit(cfg, train, test)
    regular = bench.fit(bench.replace(cfg, entropy=0.1, distortion=0.1), train, test)
    assert regular["floaters"] < 0.5 * plain["floaters"], (plain, regular)
    assert regular["held-out"] > plain["held-out"] - 0.5, (plain, regular)
