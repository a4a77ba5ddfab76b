"""Counter-based random numbers: the PyTorch and Warp sides give the same bits, and the numbers look uniform
and independent across rays, depths and dimensions."""

import pytest
import torch
import warp as wp

from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.kernels.counter_rng import (ray_key_wp, split_seed, uniform_counter, uniform_counter_ref,
                                          uniform_counter_wp)


@wp.kernel
def _draw(lo: wp.uint32, hi: wp.uint32, depth: int, dims: int, out: wp.array2d(dtype=wp.float32)):
    i = wp.tid()
    key = ray_key_wp(lo, hi, wp.uint32(i))
    for j in range(dims):
        out[i, j] = uniform_counter_wp(key, depth, j)


@pytest.mark.parametrize("seed", [0, 1, 123456789, 2 ** 40 + 17, 2 ** 62 - 3])
def test_warp_and_pytorch_draw_the_same_bits(seed):
    ensure_init()
    R, dims, depth = 3000, 6, 5
    out = torch.zeros(R, dims)
    lo, hi = split_seed(seed)
    wp.launch(_draw, dim=R, inputs=[wp.uint32(lo), wp.uint32(hi), depth, dims, as_warp(out)], device="cpu")
    ref = uniform_counter_ref(seed, torch.arange(R), depth, dims, torch.float32)
    assert torch.equal(out, ref)
    # the batch the transport draws (a Warp kernel on any subset of rays) is the same, and float64 holds the
    # same values (multiples of 2^-24)
    rays = torch.randperm(R)[: R // 2]
    assert torch.equal(uniform_counter(seed, rays, depth, dims, torch.float32), ref[rays])
    assert torch.equal(uniform_counter_ref(seed, torch.arange(R), depth, dims, torch.float64), ref.double())
    assert torch.equal(uniform_counter(seed, torch.arange(R), depth, dims, torch.float64), ref.double())


def test_numbers_are_uniform_and_independent():
    u = uniform_counter(42, torch.arange(200000), 3, 4, torch.float64)
    assert float(u.min()) >= 0 and float(u.max()) < 1
    counts = torch.histc(u[:, 0], bins=20, min=0, max=1)
    expected = u.shape[0] / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # 19 degrees of freedom: p ~ 1e-3
    other_depth = uniform_counter(42, torch.arange(200000), 4, 4, torch.float64)
    other_seed = uniform_counter(43, torch.arange(200000), 3, 4, torch.float64)
    for a, b in [(u[:, 0], u[:, 1]), (u[:, 0], other_depth[:, 0]), (u[:, 0], other_seed[:, 0]),
                 (u[:-1, 0], u[1:, 0])]:
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        assert abs(corr) < 0.01  # 200000 samples: standard error 0.0022


def test_a_ray_draws_its_numbers_whatever_else_is_drawn():
    rays = torch.tensor([5, 17, 99])
    assert torch.equal(uniform_counter_ref(9, rays, 2, 3, torch.float32),
                       uniform_counter_ref(9, torch.arange(100), 2, 3, torch.float32)[rays])


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 1.5, True])
def test_bad_seeds_are_refused(seed):
    for draw in (uniform_counter, uniform_counter_ref):
        with pytest.raises(ValueError, match="seed"):
            draw(seed, torch.arange(3), 0, 2, torch.float32)
