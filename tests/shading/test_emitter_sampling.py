"""Emitter sample_direct / eval / pdf tested as Mitsuba tests its emitter plugins: chi-square goodness-of-fit
of ``sample_direct`` against ``pdf``, ``pdf`` integrating to 1, ``weight = eval / pdf``, unbiased irradiance
against Lambert's exact polygon formula, delta samples equal to the raster ones, and gradients by gradcheck."""

import math

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Emitter, polygon_irradiance
from lumigrad.shading.emitters import (area_light_eval, area_light_pdf, area_light_sample_direct, envmap_pdf,
                                       envmap_sample_direct)

from .chi2 import assert_chi2, chi2_sphere, frame_from_axis, integrate_sphere

DT = torch.float64
X = torch.tensor([0.1, -0.2, 0.0], dtype=DT)  # the shading point

# A V-shaped lamp of two quads (4 triangles) facing the shading point: large (about 1.6 sr), non-planar, and
# with no two triangles overlapping as seen from X.
V_VERTS = torch.tensor([[-1, -1, 1.2], [-1, 1, 1.2], [0, -1, 0.8], [0, 1, 0.8], [1, -1, 1.2], [1, 1, 1.2]], dtype=DT)
V_FACES = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
V_PANELS = [V_VERTS[[0, 1, 3, 2]], V_VERTS[[2, 3, 5, 4]]]  # the quads, counter-clockwise seen from X
V_RADIANCE = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [4.0, 0.5, 1.0], [4.0, 0.5, 1.0]], dtype=DT)
# The grid's pole on the horizon (+x): the lamp, around +z, lies where the bins are smallest and most regular.
GRID = frame_from_axis(torch.tensor([1.0, 0.0, 0.0], dtype=DT))
TESTS = 3  # chi-square tests in this file (Bonferroni)
# Axes of the equirectangular layout: cos theta = y and phi = atan2(x, -z), so that with bins uniform in theta
# the histogram's bins are whole halves of texels, where the pdf is smooth.
ENV_GRID = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=DT)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _u(n, seed):
    return torch.rand(n, 2, generator=_gen(seed), dtype=DT)


def _env():
    """An 8 x 16 map with a bright patch, a dimmer sky and a black band of 3 rows: bilinear filtering lights
    its outer rows, never its middle one (row 5), which must never be sampled."""
    g = _gen(3)
    env = 0.2 + torch.rand(8, 16, 3, generator=g, dtype=DT)
    env[1:3, 3:6] *= 20.0
    env[4:7] = 0.0
    return env


# ------------------------------------------------------------------------------------------------ chi-square
@pytest.mark.parametrize("method", ["solid_angle", "area"])
def test_area_light_sample_follows_its_pdf(method):
    def sample(n):
        s = area_light_sample_direct(X.expand(n, 3), V_VERTS, V_FACES, V_RADIANCE, _u(n, 1), method=method)
        return s.wi, s.pdf[:, 0] > 0

    def pdf(d):
        return area_light_pdf(X.expand(d.shape[0], 3), d, V_VERTS, V_FACES, method=method)[:, 0]
    assert_chi2(chi2_sphere(sample, pdf, frame=GRID, quad=8, refine=40), f"area-light-{method}", tests=TESTS)


def test_environment_sample_follows_its_pdf():
    env = _env()

    def sample(n):
        s = envmap_sample_direct(env, X, _u(n, 2))
        return s.wi, s.pdf[:, 0] > 0
    result = chi2_sphere(sample, lambda d: envmap_pdf(env, X, d)[:, 0], frame=ENV_GRID, n_cos=16, n_phi=32, quad=6,
                         theta_bins=True)
    assert result.invalid[0] == 0
    assert_chi2(result, "environment", tests=TESTS)


def test_environment_samples_wherever_the_map_is_lit_and_nowhere_else():
    env = _env()
    s = envmap_sample_direct(env, X, _u(50_000, 4))
    row = (torch.acos(s.wi[:, 1].clamp(-1, 1)) / math.pi * 8).long()
    assert not bool((row == 5).any())
    assert float(envmap_pdf(env, X, s.wi).min()) > 0
    # Support: every direction with radiance (bilinear lookup, which leaks into rows 4 and 6) has a density.
    d = torch.nn.functional.normalize(torch.randn(20_000, 3, generator=_gen(11), dtype=DT), dim=-1)
    lit = lg.shading.envmap_lookup(env, d).amax(-1) > 0
    assert bool((envmap_pdf(env, X, d)[lit] > 0).all())


# ------------------------------------------------------------------------------------------------ pdf mass
@pytest.mark.parametrize("method", ["solid_angle", "area"])
def test_area_light_pdf_integrates_to_one(method):
    # Over the lamp's surface, where the integrand pdf(wi(y)) |cos_y| / d^2 is smooth (centroid rule, S = 1024).
    pts = lg.shading.area_light_samples(V_VERTS, V_FACES, samples_per_face=1024)
    v = pts.points - X
    d2 = (v * v).sum(-1)
    wi = v / d2.sqrt()[:, None]
    cos_y = -(pts.normals * wi).sum(-1)
    pdf = area_light_pdf(X.expand_as(wi), wi, V_VERTS, V_FACES, method=method)[:, 0]
    assert float((pdf * cos_y.abs() * pts.areas / d2).sum()) == pytest.approx(1.0, abs=2e-4)


def test_environment_pdf_integrates_to_one():
    # Over (u, v), texel by texel (Gauss-Legendre inside each texel, where the pdf is smooth).
    env = _env()
    H, W = env.shape[:2]
    x, w = (torch.tensor(a, dtype=DT) for a in np.polynomial.legendre.leggauss(4))
    v = ((torch.arange(H, dtype=DT)[:, None] + (x + 1) / 2) / H).reshape(-1)
    u = ((torch.arange(W, dtype=DT)[:, None] + (x + 1) / 2) / W).reshape(-1)
    wv = (w / 2 / H).repeat(H)
    wu = (w / 2 / W).repeat(W)
    theta, phi = (math.pi * v[:, None]).expand(v.shape[0], u.shape[0]), (2 * math.pi * u[None, :]).expand(
        v.shape[0], u.shape[0])
    d = torch.stack([torch.sin(phi) * torch.sin(theta), torch.cos(theta), -torch.cos(phi) * torch.sin(theta)], -1)
    jac = 2 * math.pi ** 2 * torch.sin(theta)
    total = (envmap_pdf(env, X, d)[..., 0] * jac * wv[:, None] * wu[None, :]).sum()
    assert float(total) == pytest.approx(1.0, abs=1e-10)


# ----------------------------------------------------------------------------- consistency and unbiasedness
@pytest.mark.parametrize("method", ["solid_angle", "area"])
def test_area_light_weight_is_eval_over_pdf(method):
    n = 4000
    light = lg.AreaLight(V_VERTS, V_FACES, V_RADIANCE)
    s = light.sample_direct(X.expand(n, 3), _u(n, 5), method=method)
    assert s.wi.shape == (n, 3) and s.distance.shape == (n,) and s.weight.shape == (n, 3) and s.pdf.shape == (n, 1)
    assert not s.is_delta and not light.is_delta
    torch.testing.assert_close(s.pdf, light.pdf(X, s.wi, method=method), rtol=1e-9, atol=0)
    torch.testing.assert_close(s.weight, light.eval(X, s.wi) / s.pdf, rtol=1e-9, atol=0)
    # The sampled point is at the returned distance on the lamp.
    hit = X + s.distance[:, None] * s.wi
    torch.testing.assert_close(light.pdf(X, hit - X, method=method), s.pdf, rtol=1e-9, atol=0)


@pytest.mark.parametrize("method", ["solid_angle", "area"])
def test_area_light_irradiance_is_unbiased(method):
    # E[weight max(n . wi, 0)] is the irradiance at X, which Lambert's formula gives exactly, panel by panel.
    normal = torch.tensor([0.2, 0.1, 1.0], dtype=DT)
    normal = normal / normal.norm()
    exact = sum(polygon_irradiance(X, normal, p, torch.tensor([1.0], dtype=DT)) for p in V_PANELS)
    radiance = torch.ones(1, dtype=DT)
    n = 40_000
    s = area_light_sample_direct(X.expand(n, 3), V_VERTS, V_FACES, radiance, _u(n, 6), method=method)
    e = s.weight[:, 0] * (s.wi @ normal).clamp_min(0)
    assert abs(float(e.mean()) - float(exact)) < 4 * float(e.std()) / math.sqrt(n)
    if method == "solid_angle":  # sampling the solid angle is the better strategy this close to a large lamp
        s_area = area_light_sample_direct(X.expand(n, 3), V_VERTS, V_FACES, radiance, _u(n, 6), method="area")
        assert float(e.std()) < 0.5 * float((s_area.weight[:, 0] * (s_area.wi @ normal).clamp_min(0)).std())


def test_area_light_back_and_misses():
    behind = torch.tensor([0.0, 0.0, 3.0], dtype=DT)  # behind the lamp: its one-sided faces turn away
    s = area_light_sample_direct(behind.expand(8, 3), V_VERTS, V_FACES, V_RADIANCE, _u(8, 7))
    assert bool((s.pdf == 0).all()) and bool((s.weight == 0).all()) and bool(torch.isfinite(s.wi).all())
    s = area_light_sample_direct(behind.expand(8, 3), V_VERTS, V_FACES, V_RADIANCE, _u(8, 7), method="area")
    assert bool((s.weight == 0).all()) and bool((s.pdf > 0).all())  # area sampling still picks points, unlit
    two = area_light_sample_direct(behind.expand(8, 3), V_VERTS, V_FACES, V_RADIANCE, _u(8, 7), two_sided=True)
    assert bool((two.pdf > 0).all()) and bool((two.weight > 0).all())
    away = torch.tensor([[0.0, 0.0, -1.0]], dtype=DT)
    assert float(area_light_eval(X, away, V_VERTS, V_FACES, V_RADIANCE).abs().sum()) == 0
    assert float(area_light_pdf(X, away, V_VERTS, V_FACES).abs().sum()) == 0


def test_environment_weight_is_eval_over_pdf_and_unbiased():
    env = _env()
    light = lg.EnvironmentLight(env, scale=1.5)
    n = 40_000
    s = light.sample_direct(X, _u(n, 8))
    assert s.wi.shape == (n, 3) and bool(torch.isinf(s.distance).all()) and not s.is_delta
    # Equal but for the rare sample on a texel's edge, which rounding may put in the neighbouring texel.
    same = torch.isclose(s.pdf, light.pdf(X, s.wi), rtol=1e-9, atol=0)
    assert float(same.double().mean()) > 0.999
    torch.testing.assert_close(s.weight, light.eval(X, s.wi) / s.pdf, rtol=1e-9, atol=0)
    # E[weight] is the integral of the radiance over the sphere.
    exact = integrate_sphere(lambda d: light.eval(X, d)[:, 1], frame_from_axis(torch.tensor([0.0, 1.0, 0.0], dtype=DT)),
                             64, 64, 8).sum()
    w = s.weight[:, 1]
    assert abs(float(w.mean()) - float(exact)) < 4 * float(w.std()) / math.sqrt(n)


def test_delta_lights_return_their_raster_samples():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.2]], dtype=DT)
    lights = [lg.PointLight(torch.tensor([0.0, 2.0, 0.0], dtype=DT), 3.0, (1.0, 0.5, 0.2)),
              lg.SpotLight(torch.tensor([0.0, 2.0, 0.0], dtype=DT), torch.tensor([0.0, -1.0, 0.1], dtype=DT), 5.0,
                           inner_angle=0.1, outer_angle=0.5),
              lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.0], dtype=DT), 2.0)]
    for light in lights:
        assert isinstance(light, Emitter) and light.is_delta
        s = light.sample_direct(x, _u(2, 9))
        raster = light.samples(x)[0]
        assert torch.equal(s.wi, raster.wi) and torch.equal(s.weight, raster.L)
        assert torch.equal(s.distance, raster.distance.expand(2)) and s.is_delta
        torch.testing.assert_close(s.pdf, torch.ones(2, 1, dtype=DT))
        assert torch.equal(light.eval(x, s.wi), torch.zeros(2, 3, dtype=DT))
        assert torch.equal(light.pdf(x, s.wi), torch.zeros(2, 1, dtype=DT))
    assert isinstance(lg.AreaLight(V_VERTS, V_FACES), Emitter) and isinstance(lg.EnvironmentLight(_env()), Emitter)
    assert not isinstance(lg.SHLight(torch.ones(1, 3)), Emitter)


# ------------------------------------------------------------------------------------------------ gradients
def test_gradcheck_area_light_pdf_eval_and_sample():
    verts = V_VERTS.clone().requires_grad_(True)
    radiance = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    x = torch.tensor([[0.1, -0.2, 0.0], [-0.3, 0.1, 0.1]], dtype=DT, requires_grad=True)
    wi = torch.tensor([[0.1, 0.2, 1.0], [0.5, -0.3, 1.0]], dtype=DT)
    u = torch.tensor([[0.3, 0.6], [0.8, 0.1]], dtype=DT)
    for method in ("solid_angle", "area"):
        assert torch.autograd.gradcheck(
            lambda v, p: area_light_pdf(p, wi, v, V_FACES, method=method), (verts, x))
        assert torch.autograd.gradcheck(
            lambda v, p, r: area_light_sample_direct(p, v, V_FACES, r, u, method=method)[:4], (verts, x, radiance))
    assert torch.autograd.gradcheck(lambda r: area_light_eval(x.detach(), wi, V_VERTS, V_FACES, r), (radiance,))
    # The sampled direction moves with the lamp (a reparameterisation).
    s = area_light_sample_direct(x, verts, V_FACES, radiance, u)
    (g,) = torch.autograd.grad(s.wi.sum(), verts)
    assert float(g.abs().sum()) > 1e-3


def test_gradcheck_environment_eval_and_weight():
    texels = (0.5 + torch.rand(3, 6, 2, generator=_gen(10), dtype=DT)).requires_grad_(True)
    scale = torch.tensor(1.3, dtype=DT, requires_grad=True)
    wi = torch.tensor([[0.2, 0.9, 0.1], [-0.5, -0.2, 0.6]], dtype=DT)
    u = torch.tensor([[0.2, 0.3], [0.7, 0.9]], dtype=DT)

    def fn(t, s):
        light = lg.EnvironmentLight(t, scale=s)
        return light.eval(X, wi), light.pdf(X, wi)
    assert torch.autograd.gradcheck(fn, (texels, scale))
    # Detached sampling: the weight's gradient is the radiance's, over the (constant) pdf.
    light = lg.EnvironmentLight(texels, scale=scale)
    s = light.sample_direct(X, u)
    assert not s.pdf.requires_grad and not s.wi.requires_grad
    g = torch.autograd.grad(s.weight.sum(), (texels, scale))
    g_ref = torch.autograd.grad((light.eval(X, s.wi) / s.pdf).sum(), (texels, scale))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_gradcheck_delta_lights():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.2]], dtype=DT)
    position = torch.tensor([0.1, 2.0, 0.0], dtype=DT, requires_grad=True)
    direction = torch.tensor([0.1, -1.0, 0.1], dtype=DT, requires_grad=True)
    intensity = torch.tensor(3.0, dtype=DT, requires_grad=True)
    outer = torch.tensor(0.6, dtype=DT, requires_grad=True)

    def fn(p, d, i, o):
        point = lg.PointLight(p, i).sample_direct(x)
        spot = lg.SpotLight(p, d, i, inner_angle=0.1, outer_angle=o).sample_direct(x)
        sun = lg.DirectionalLight(d, i).sample_direct(x)
        return point.wi, point.weight, spot.weight, sun.wi, sun.weight
    assert torch.autograd.gradcheck(fn, (position, direction, intensity, outer))


# ------------------------------------------------------------------------------------------------ bad input
def test_emitter_sampling_refuses_bad_input():
    with pytest.raises(ValueError, match="u must lie in"):
        area_light_sample_direct(X, V_VERTS, V_FACES, V_RADIANCE, torch.tensor([0.5, 1.5], dtype=DT))
    with pytest.raises(ValueError, match="method must be one of"):
        area_light_pdf(X, X, V_VERTS, V_FACES, method="cosine")
    with pytest.raises(ValueError, match="wi must have non-zero length"):
        area_light_eval(X, torch.zeros(3, dtype=DT), V_VERTS, V_FACES, V_RADIANCE)
    with pytest.raises(ValueError, match="radiance must have shape"):
        area_light_sample_direct(X, V_VERTS, V_FACES, torch.ones(3, 3, dtype=DT), _u(1, 0))
    with pytest.raises(ValueError, match="u has batch dims"):
        area_light_sample_direct(X.expand(3, 3), V_VERTS, V_FACES, V_RADIANCE, _u(2, 0))
    with pytest.raises(ValueError, match="u must have shape"):
        envmap_sample_direct(_env(), X, torch.zeros(4, 3, dtype=DT))
    with pytest.raises(ValueError, match="wi must have shape"):
        lg.PointLight([0.0, 1.0, 0.0]).eval(torch.zeros(2, 3), torch.zeros(2, 2))


# ---------------------------------------------------------------------------------------- BSDF x emitter
def test_mis_direct_lighting_agrees_with_the_raster_quadrature():
    # Next-event estimation weighted against BSDF sampling by the power heuristic (the docs' example): the
    # Monte Carlo estimate of the light reflected towards wo equals deferred shading with a fine quadrature.
    n = 8192
    normal = torch.tensor([0.0, 1.0, 0.0], dtype=DT)
    si = lg.shading.SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=normal.expand(n, 3),
                                  wo=torch.tensor([0.0, 1.0, 1.0], dtype=DT).expand(n, 3),
                                  base_color=torch.tensor([0.8, 0.6, 0.4], dtype=DT).expand(n, 3),
                                  roughness=torch.full((n, 1), 0.4, dtype=DT), metallic=torch.zeros(n, 1, dtype=DT))
    lamp = lg.AreaLight(torch.tensor([[-1, 2, -1], [1, 2, -1], [1, 2, 1], [-1, 2, 1]], dtype=DT),
                        torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.tensor([5.0, 5.0, 5.0], dtype=DT))
    bsdf = lg.shading.MetallicRoughnessBSDF()
    u = torch.rand(n, 5, generator=_gen(12), dtype=DT)
    ls = lamp.sample_direct(si.position, u[:, :2])
    mis = ls.pdf ** 2 / (ls.pdf ** 2 + bsdf.pdf(si, ls.wi) ** 2).clamp_min(1e-300)
    from_light = bsdf.eval(si, ls.wi) * (ls.wi @ normal).clamp_min(0)[:, None] * ls.weight * mis
    bs = bsdf.sample(si, u[:, 2:3], u[:, 3:])
    p_light = lamp.pdf(si.position, bs.wi)
    mis = bs.pdf ** 2 / (bs.pdf ** 2 + p_light ** 2).clamp_min(1e-300)
    from_bsdf = bs.weight * lamp.eval(si.position, bs.wi) * mis
    estimate = from_light + from_bsdf
    raster = lg.shading.shade_direct(si.position[:1], normal[None], si.wo[:1],
                                     {"base_color": si.base_color[:1], "roughness": si.roughness[:1],
                                      "metallic": si.metallic[:1]},
                                     lg.shading.area_light(si.position[:1], lamp.verts, lamp.faces, lamp.radiance,
                                                           samples_per_face=1024))[0]
    err = estimate.std(0) / math.sqrt(n)
    assert bool(((estimate.mean(0) - raster).abs() < 4 * err + 1e-3 * raster).all()), (estimate.mean(0), raster, err)


@pytest.mark.parametrize("method", ["solid_angle", "area", "auto"])
def test_many_points_and_faces_are_taken_in_pieces_with_the_same_values(monkeypatch, method):
    """The dense points x faces computations run in pieces of ``PAIRS_PER_PIECE`` pairs: the same samples,
    radiance, densities and gradients as in one piece (to the last bits), so a sphere lamp of 1,280
    triangles seen from a million shading points no longer exceeds the memory budget (it used to raise
    BudgetError: a scene with such a lamp and a medium could not render)."""
    from lumigrad.shading import emitters

    verts, faces = lg.geometry.icosphere(2, dtype=DT)
    verts = (verts * 0.3 + torch.tensor([0.0, 1.0, 0.0], dtype=DT)).requires_grad_(True)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 3, generator=g, dtype=DT) * 2 - 1
    u = torch.rand(50, 2, generator=g, dtype=DT)
    jitter = 0.1 * torch.randn(50, 3, generator=g, dtype=DT)
    wi = torch.nn.functional.normalize(torch.tensor([0.0, 1.0, 0.0], dtype=DT) - x + jitter, dim=-1)
    radiance = torch.tensor([1.0, 2.0, 3.0], dtype=DT, requires_grad=True)

    def run():
        s = area_light_sample_direct(x, verts, faces, radiance, u, method=method)
        e = area_light_eval(x, wi, verts, faces, radiance)
        p = area_light_pdf(x, wi, verts, faces, method=method)
        outs = (s.wi, s.distance, s.weight, s.pdf, e, p)
        grads = torch.autograd.grad(sum(o.sum() for o in (s.weight, s.pdf, e, p)), (verts, radiance))
        return outs, grads

    whole = run()
    monkeypatch.setattr(emitters, "PAIRS_PER_PIECE", 7 * faces.shape[0])  # pieces of 7 points
    pieces = run()
    for a, b in zip(whole[0] + whole[1], pieces[0] + pieces[1]):  # (PyTorch's reductions over the faces, and
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # the gradients' over the points, may part in
        # the last bits with the batch's size)
    monkeypatch.undo()
    many = torch.rand(20_000, 3, generator=g, dtype=torch.float32) * 2 - 1
    with lg.limits.pixel_budget_override(1 << 20):  # 20,000 points x 320 faces: over it, as a million x 1,280 is
        s = area_light_sample_direct(many, verts.detach().float(), faces, radiance.detach().float(),  # over 2^26
                                     torch.rand(20_000, 2, generator=g), method=method)
    assert s.pdf.shape == (20_000, 1) and bool(torch.isfinite(s.weight).all())
