"""Packed ray sampling: stratified intervals, importance (hierarchical) sampling, occupancy and termination culling."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.volume import (RaySamples, composite, cull_terminated, importance_samples, keep_occupied,
                             ray_offsets, render_weights, stratified_samples)
from lumigrad.volume.packing import check_packed


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_packed(samples: RaySamples) -> None:
    check_packed(samples.ray_indices, samples.num_rays, samples.t_starts, samples.t_ends)
    offsets, counts = ray_offsets(samples.ray_indices, samples.num_rays)
    assert torch.equal(offsets, samples.offsets) and torch.equal(counts, samples.counts)


def test_stratified_without_jitter_is_the_worked_example():
    s = stratified_samples(torch.tensor([1.0]), torch.tensor([3.0]), num_samples=4, jitter=False)
    torch.testing.assert_close(s.t_starts, torch.tensor([1.0, 1.5, 2.0, 2.5]))
    torch.testing.assert_close(s.t_ends, torch.tensor([1.5, 2.0, 2.5, 3.0]))
    assert s.counts.tolist() == [4] and s.ray_indices.tolist() == [0] * 4


def test_stratified_covers_each_range_contiguously_and_skips_misses():
    near = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.0], dtype=torch.float64)
    far = torch.tensor([2.5, 2.0, 4.0, 1.0, 1.0], dtype=torch.float64)   # ray 1 empty, ray 3 reversed
    hit = torch.tensor([True, True, True, True, False])                # ray 4 missed the box
    s = stratified_samples(near, far, hit=hit, num_samples=16, generator=gen(0))
    assert s.counts.tolist() == [16, 0, 16, 0, 0]
    assert_packed(s)
    same = s.ray_indices[1:] == s.ray_indices[:-1]
    assert torch.equal(s.t_starts[1:][same], s.t_ends[:-1][same])  # contiguous: shared edges, bit for bit
    first, last = s.offsets[[0, 2]], s.offsets[[0, 2]] + 15
    torch.testing.assert_close(s.t_starts[first], near[[0, 2]])
    torch.testing.assert_close(s.t_ends[last], far[[0, 2]])
    assert bool((s.deltas() > 0).all())
    # each jittered interior edge stays within half an interval of its even position
    k = torch.arange(s.num_samples) - s.offsets[s.ray_indices] + 1
    L = (far - near)[s.ray_indices]
    even = near[s.ray_indices] + k * L / 16
    assert bool(((s.t_ends - even).abs() <= 0.5 * L / 16 + 1e-12).all())


def test_stratified_jitter_is_uniform_within_its_stratum():
    s = stratified_samples(torch.zeros(4000), torch.ones(4000), num_samples=2, generator=gen(1))
    middle = s.t_ends[0::2]  # the one interior edge of each ray, uniform on [0.25, 0.75)
    assert float(middle.min()) >= 0.25 and float(middle.max()) < 0.75
    assert abs(float(middle.mean()) - 0.5) < 4 * 0.5 / math.sqrt(12 * 4000)
    assert abs(float(middle.var()) - 0.25 / 12) < 0.003


def test_stratified_step_size_sets_the_count_per_ray():
    near = torch.tensor([0.0, 0.0, 1.0])
    far = torch.tensor([1.0, 0.25, 1.05])
    s = stratified_samples(near, far, step_size=0.1, jitter=False)
    assert s.counts.tolist() == [10, 3, 1]
    assert bool((s.deltas() <= 0.1 + 1e-6).all())
    capped = stratified_samples(near, far, step_size=1e-4, max_samples_per_ray=64, jitter=False)
    assert capped.counts.tolist() == [64, 64, 64]


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_samples=0), "num_samples must be a positive int"),
    (dict(step_size=-0.1), "step_size"),
    (dict(step_size=float("nan")), "step_size"),
    (dict(), "exactly one of num_samples"),
    (dict(num_samples=4, step_size=0.1), "exactly one of num_samples"),
    (dict(num_samples=4, hit=torch.ones(3)), "hit must be a bool tensor"),
    (dict(num_samples=4, occupied=lambda p: p[:, 0] > 0), "occupied needs the rays"),
])
def test_stratified_bad_input_names_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        stratified_samples(torch.zeros(3), torch.ones(3), **kwargs)


def test_stratified_refuses_nan_ranges():
    with pytest.raises(ValueError, match="t_near contains NaN"):
        stratified_samples(torch.tensor([float("nan")]), torch.ones(1), num_samples=4)
    with pytest.raises(ValueError, match="t_far must have the shape"):
        stratified_samples(torch.zeros(2), torch.ones(3), num_samples=4)


def test_importance_worked_example_puts_every_edge_in_the_weighted_interval():
    coarse = stratified_samples(torch.tensor([0.0]), torch.tensor([2.0]), num_samples=2, jitter=False)
    fine = importance_samples(coarse, torch.tensor([0.0, 1.0]), 5, jitter=False, padding=0.0)
    edges = torch.cat([fine.t_starts, fine.t_ends[-1:]])
    torch.testing.assert_close(edges, 1 + (torch.arange(6) + 0.5) / 6)
    assert_packed(fine)


def test_importance_sampling_concentrates_samples_where_the_weights_are():
    """Edges follow the piecewise-constant pdf of the weights: per ray, the number of edges in each coarse
    interval is within 2 of (n + 1) p_i (stratified u), and over many rays their density matches p."""
    R, n_coarse, n_fine = 500, 32, 64
    near, far = torch.full((R,), 2.0, dtype=torch.float64), torch.full((R,), 6.0, dtype=torch.float64)
    coarse = stratified_samples(near, far, num_samples=n_coarse, generator=gen(2))
    # a surface-like density: opaque bump around t = 3 + ray / R (different per ray)
    centre = 3.0 + torch.arange(R, dtype=torch.float64)[coarse.ray_indices] / R
    sigmas = 40.0 * torch.exp(-((coarse.midpoints() - centre) / 0.15) ** 2)
    weights, _ = render_weights(sigmas, coarse.t_starts, coarse.t_ends, coarse.ray_indices, R)
    padding = 1e-3
    fine = importance_samples(coarse, weights, n_fine, generator=gen(3), padding=padding)
    assert fine.counts.tolist() == [n_fine] * R
    assert_packed(fine)
    edges = torch.cat([fine.t_starts.reshape(R, n_fine), fine.t_ends.reshape(R, n_fine)[:, -1:]], 1)  # [R, n+1]
    lo, hi = coarse.t_starts.reshape(R, n_coarse), coarse.t_ends.reshape(R, n_coarse)
    inside = (edges[:, :, None] >= lo[:, None, :]) & (edges[:, :, None] < hi[:, None, :])
    counts = inside.sum(1).double()  # [R, n_coarse] edges per coarse interval
    p = weights.reshape(R, n_coarse) + padding
    p = p / p.sum(1, keepdim=True)
    assert float((counts - (n_fine + 1) * p).abs().max()) <= 2.0
    # statistically: the fraction of all edges in the top-weighted interval of each ray matches its probability
    top = p.argmax(1)
    frac = counts[torch.arange(R), top].sum() / ((n_fine + 1) * R)
    expected = p[torch.arange(R), top].mean()
    assert abs(float(frac - expected)) < 0.01
    assert float(expected) > 0.2  # the check means something: a quarter of the samples in 1 of 32 intervals
    # and the fine samples resolve the surface better: midpoints near the bump
    mids = fine.midpoints().reshape(R, n_fine)
    near_bump = ((mids - (3.0 + torch.arange(R, dtype=torch.float64)[:, None] / R)).abs() < 0.3).double().mean()
    assert float(near_bump) > 0.6


def test_importance_keeps_edges_inside_occupied_intervals_and_skips_empty_rays():
    near, far = torch.zeros(3, dtype=torch.float64), torch.full((3,), 4.0, dtype=torch.float64)
    coarse = stratified_samples(near, far, num_samples=8, jitter=False, hit=torch.tensor([True, False, True]))
    origins = torch.zeros(3, 3, dtype=torch.float64)
    directions = torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=torch.float64)
    # keep only samples with midpoints in [1, 2) or [3, 4): a gap in between
    occupied = lambda p: ((p[:, 2] >= 1) & (p[:, 2] < 2)) | (p[:, 2] >= 3)  # noqa: E731
    kept = keep_occupied(coarse, origins, directions, occupied)
    assert kept.counts.tolist() == [4, 0, 4]
    fine = importance_samples(kept, torch.rand(kept.num_samples, dtype=torch.float64, generator=gen(4)), 32,
                              generator=gen(5))
    assert fine.counts.tolist() == [32, 0, 32]
    edges = torch.cat([fine.t_starts, fine.t_ends])
    in_kept = ((edges[:, None] >= kept.t_starts[None]) & (edges[:, None] <= kept.t_ends[None])).any(1)
    assert bool(in_kept.all())


def test_importance_bad_input_names_the_argument():
    coarse = stratified_samples(torch.zeros(2), torch.ones(2), num_samples=4, jitter=False)
    with pytest.raises(ValueError, match="weights must have one entry per coarse sample"):
        importance_samples(coarse, torch.ones(7), 8)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        importance_samples(coarse, -torch.ones(8), 8)
    with pytest.raises(ValueError, match="weights contains NaN"):
        importance_samples(coarse, torch.full((8,), float("nan")), 8)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        importance_samples(coarse, torch.ones(8), 0)
    with pytest.raises(TypeError, match="coarse must be RaySamples"):
        importance_samples((coarse.t_starts, coarse.t_ends), torch.ones(8), 8)


def test_occupancy_culling_changes_nothing_where_the_field_is_empty():
    """A ball of constant density seen along rays through it: skipping the samples outside the ball (an
    occupancy predicate) renders the same image as evaluating every sample, with fewer samples."""
    R = 64
    gen_ = gen(6)
    origins = torch.cat([torch.rand(R, 2, generator=gen_, dtype=torch.float64) - 0.5,
                         torch.full((R, 1), -3.0, dtype=torch.float64)], 1)
    directions = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64).expand(R, 3).contiguous()
    near, far = torch.full((R,), 1.0, dtype=torch.float64), torch.full((R,), 5.0, dtype=torch.float64)
    all_samples = stratified_samples(near, far, num_samples=128, generator=gen(7))
    inside = lambda p: p.norm(dim=-1) < 1.0  # noqa: E731
    culled = stratified_samples(near, far, num_samples=128, generator=gen(7), origins=origins,
                                directions=directions, occupied=inside)
    assert culled.num_samples < 0.6 * all_samples.num_samples

    def render(s: RaySamples):
        sig = torch.where(inside(s.positions(origins, directions)), 3.0, 0.0).to(torch.float64)
        return composite(sig, torch.ones(s.num_samples, 1, dtype=torch.float64), s.t_starts, s.t_ends,
                         s.ray_indices, R)

    a, b = render(all_samples), render(culled)
    torch.testing.assert_close(a.opacity, b.opacity, rtol=1e-12, atol=1e-12)
    # and both approximate the analytic chord 1 - exp(-3 * 2 sqrt(1 - r^2)) to within one interval's density
    r2 = (origins[:, :2] ** 2).sum(-1)
    exact = 1 - torch.exp(-3.0 * 2 * torch.sqrt(1 - r2))
    assert float((a.opacity[:, 0] - exact).abs().max()) < 3.0 * 4.0 / 128 * 1.5


def test_keep_occupied_refuses_a_bad_predicate():
    s = stratified_samples(torch.zeros(2), torch.ones(2), num_samples=4)
    o, d = torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 1.0]] * 2)
    with pytest.raises(ValueError, match="occupied must return a bool tensor of shape"):
        keep_occupied(s, o, d, lambda p: torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="occupied must be a callable"):
        keep_occupied(s, o, d, "grid")
    with pytest.raises(ValueError, match="origins and directions must have shape"):
        keep_occupied(s, o[:1], d[:1], lambda p: p[:, 0] >= 0)


def test_cull_terminated_keeps_what_the_image_needs():
    near, far = torch.zeros(8, dtype=torch.float64), torch.full((8,), 2.0, dtype=torch.float64)
    s = stratified_samples(near, far, num_samples=64, generator=gen(8))
    sigmas = torch.full((s.num_samples,), 10.0, dtype=torch.float64)
    kept, keep = cull_terminated(s, sigmas, 1e-4)
    assert kept.num_samples < s.num_samples // 2
    full = composite(sigmas, torch.ones(s.num_samples, 1, dtype=torch.float64), s.t_starts, s.t_ends,
                     s.ray_indices, 8)
    part = composite(sigmas[keep], torch.ones(kept.num_samples, 1, dtype=torch.float64), kept.t_starts, kept.t_ends,
                     kept.ray_indices, 8)
    assert float((full.rgb - part.rgb).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="early_stop_eps"):
        cull_terminated(s, sigmas, 0.0)


@pytest.mark.parametrize("occupancy", [False, True])
def test_importance_with_coarse_subdivides_the_coarse_intervals(occupancy):
    """With include_coarse the result cuts the coarse intervals at every coarse and fine edge: same union of
    intervals (total length per ray), every fine edge a boundary, and a density that is constant on each
    coarse interval composites to exactly the coarse image."""
    R = 40
    near = torch.rand(R, dtype=torch.float64, generator=gen(30))
    far = near + 1 + torch.rand(R, dtype=torch.float64, generator=gen(31))
    coarse = stratified_samples(near, far, num_samples=12, generator=gen(32), hit=torch.arange(R) % 7 != 3)
    if occupancy:  # gaps between the coarse intervals
        coarse = coarse.select(torch.rand(coarse.num_samples, generator=gen(33)) < 0.6)
    sigmas = torch.rand(coarse.num_samples, dtype=torch.float64, generator=gen(34)) * 4
    weights, _ = render_weights(sigmas, coarse.t_starts, coarse.t_ends, coarse.ray_indices, R)
    fine = importance_samples(coarse, weights, 16, generator=gen(35))
    merged = importance_samples(coarse, weights, 16, generator=gen(35), include_coarse=True)
    assert_packed(merged)
    length = lambda s: torch.zeros(R, dtype=torch.float64).index_add(0, s.ray_indices, s.deltas())  # noqa: E731
    torch.testing.assert_close(length(merged), length(coarse), rtol=1e-12, atol=1e-12)
    bounds = torch.cat([merged.t_starts, merged.t_ends])
    bound_rays = torch.cat([merged.ray_indices, merged.ray_indices])
    for t, r in zip(torch.cat([fine.t_starts, fine.t_ends]).tolist(), torch.cat([fine.ray_indices] * 2).tolist()):
        assert bool(((bounds == t) & (bound_rays == r)).any())
    # each merged interval lies inside one coarse interval: give it that interval's density
    mids, mr = merged.midpoints(), merged.ray_indices
    owner = ((mids[:, None] > coarse.t_starts[None]) & (mids[:, None] < coarse.t_ends[None])
             & (mr[:, None] == coarse.ray_indices[None]))
    assert owner.sum(1).tolist() == [1] * merged.num_samples
    sig_merged = sigmas[owner.double().argmax(1)]
    a = composite(sigmas, torch.ones(coarse.num_samples, 1, dtype=torch.float64), coarse.t_starts, coarse.t_ends,
                  coarse.ray_indices, R)
    b = composite(sig_merged, torch.ones(merged.num_samples, 1, dtype=torch.float64), merged.t_starts,
                  merged.t_ends, merged.ray_indices, R)
    torch.testing.assert_close(b.opacity, a.opacity, rtol=1e-12, atol=1e-12)


def test_no_rays_and_no_samples_flow_through():
    """Zero rays, or rays that all missed: empty samples all the way, the background in the image."""
    for R in (0, 3):
        near, far = torch.zeros(R), torch.ones(R)
        coarse = stratified_samples(near, far, num_samples=4, hit=torch.zeros(R, dtype=torch.bool))
        assert coarse.num_samples == 0 and coarse.counts.tolist() == [0] * R
        for include in (False, True):
            fine = importance_samples(coarse, torch.zeros(0), 8, include_coarse=include)
            assert fine.num_samples == 0 and fine.counts.tolist() == [0] * R
        sig = torch.zeros(0, requires_grad=True)
        out = composite(sig, torch.zeros(0, 3), coarse.t_starts, coarse.t_ends, coarse.ray_indices, R,
                        background=torch.ones(3))
        torch.testing.assert_close(out.rgb, torch.ones(R, 3))
        (g,) = torch.autograd.grad(out.rgb.sum(), [sig], allow_unused=True)
        assert g is None or g.shape == (0,)
