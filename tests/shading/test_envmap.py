"""Environment maps: equirectangular lookups, GGX pre-filtering and the split-sum table."""

import math

import pytest
import torch

from lumigrad.shading.brdf import cook_torrance
from lumigrad.shading.envmap import direction_to_equirect, envmap_lookup, prefilter_ggx, split_sum_lut
from lumigrad.shading.sh import equirect_directions

DT = torch.float64


def test_lookup_reads_texel_centres_exactly_and_wraps_in_longitude():
    dirs, _ = equirect_directions(8, 16, dtype=DT)
    env = torch.rand(8, 16, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(envmap_lookup(env, dirs), env)
    torch.testing.assert_close(direction_to_equirect(dirs)[..., 1], (torch.arange(8, dtype=DT)[:, None] + 0.5)
                               .expand(8, 16) / 8)
    # Just either side of u = 0 (the -z direction) both reads blend the first and the last column.
    eps = 1e-6
    left = envmap_lookup(env, torch.tensor([[-eps, 0.0, -1.0]], dtype=DT))
    right = envmap_lookup(env, torch.tensor([[eps, 0.0, -1.0]], dtype=DT))
    torch.testing.assert_close(left, right, atol=1e-4, rtol=0)
    torch.testing.assert_close(right[0], 0.5 * (env[3, 0] + env[3, -1]) * 0.5 + 0.5 * (env[4, 0] + env[4, -1]) * 0.5,
                               atol=1e-4, rtol=0)


def test_lookup_gradcheck_and_finite_at_the_poles():
    env = torch.rand(4, 8, 2, dtype=DT, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    dirs = torch.tensor([[0.3, 0.5, -0.8], [-0.6, -0.2, 0.7]], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(envmap_lookup, (env, dirs))
    pole = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(envmap_lookup(env, pole).sum(), pole)
    assert bool(torch.isfinite(g).all())


def test_prefilter_keeps_constants_and_is_linear_in_the_texels():
    white = torch.ones(32, 64, 3, dtype=DT)
    maps = prefilter_ggx(white, [0.0, 0.2, 0.6, 1.0], size=(8, 16))
    torch.testing.assert_close(maps, torch.ones_like(maps))
    env = torch.rand(16, 32, 1, dtype=DT, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    maps = prefilter_ggx(env, [0.5], size=(8, 16))
    (g,) = torch.autograd.grad(maps.sum(), env)
    assert float(g.min()) > 0  # every texel above some output's horizon contributes
    # Rougher filters blur more: a single bright texel spreads further.
    spot = torch.zeros(16, 32, 1, dtype=DT)
    spot[5, 9] = 100.0
    smooth, rough = prefilter_ggx(spot, [0.2, 0.8], size=(16, 32))
    assert float((rough > 1e-3 * rough.max()).sum()) > float((smooth > 1e-3 * smooth.max()).sum())


def test_split_sum_table_matches_brute_force_integration():
    # Brute force: integral over the hemisphere of cook_torrance(f0) (n.l), for f0 = 0 and 1, on a fine grid.
    n = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    ct = (torch.arange(400, dtype=DT) + 0.5) / 400
    ph = (torch.arange(400, dtype=DT) + 0.5) / 400 * 2 * math.pi
    ct, ph = torch.meshgrid(ct, ph, indexing="ij")
    st = (1 - ct * ct).sqrt()
    wi = torch.stack([st * torch.cos(ph), st * torch.sin(ph), ct], -1)
    d_omega = (1 / 400) * (2 * math.pi / 400)
    for n_dot_v, rough in [(0.9, 0.5), (0.5, 0.7), (0.3, 1.0)]:
        wo = torch.tensor([math.sqrt(1 - n_dot_v**2), 0.0, n_dot_v], dtype=DT)
        ref = [float((cook_torrance(n, wi, wo, rough, f0) * ct[..., None]).sum() * d_omega) for f0 in (0.0, 1.0)]
        A, B = split_sum_lut(torch.tensor(n_dot_v, dtype=DT), torch.tensor(rough, dtype=DT)).tolist()
        assert B == pytest.approx(ref[0], rel=0.05, abs=2e-3), (n_dot_v, rough)
        assert A + B == pytest.approx(ref[1], rel=0.03), (n_dot_v, rough)


def test_split_sum_table_conserves_energy_and_is_differentiable():
    nv, r = torch.meshgrid(torch.linspace(0.02, 1, 25, dtype=DT), torch.linspace(0, 1, 25, dtype=DT), indexing="ij")
    ab = split_sum_lut(nv, r)
    assert float(ab.min()) >= 0 and float(ab.sum(-1).max()) <= 1.0 + 1e-3
    x = torch.tensor([0.4], dtype=DT, requires_grad=True)
    y = torch.tensor([0.37], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(split_sum_lut, (x, y))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="env"):
        envmap_lookup(torch.ones(4, 8), torch.ones(2, 3))
    with pytest.raises(ValueError, match="dirs"):
        envmap_lookup(torch.ones(4, 8, 3), torch.ones(2, 2))
    with pytest.raises(ValueError, match="env"):
        prefilter_ggx(torch.full((4, 8, 3), float("nan")), [0.5])
