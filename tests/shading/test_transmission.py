"""The glTF transmission mixture (``KHR_materials_transmission``): bit-identical to the opaque model at
transmission 0, the rough dielectric at transmission 1, linear in between; chi-square of its sampler, the
sample weights, gradients, and the material / SurfaceSample plumbing (the rasterizer still shades opaque)."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import (MetallicRoughnessBSDF, MetallicRoughnessTransmissionBSDF, RoughDielectricBSDF,
                              SurfaceSample, bsdf_for, sample_material)
from lumigrad.shading.dielectric import fresnel_dielectric
from lumigrad.shading.material import Material

from .chi2 import DT, FRAME, GRID, NORMAL, assert_chi2, chi2_sphere, frame_from_axis
from .chi2 import direction as _dir, gen as _gen





def _random_si(n, seed, transmission, dtype=DT, both_sides=False):
    g = _gen(seed)
    wo = torch.randn(n, 3, generator=g, dtype=dtype)
    if not both_sides:
        wo = wo * torch.where((wo @ NORMAL.to(dtype)) < 0, -1.0, 1.0).to(dtype)[:, None]
    return SurfaceSample(position=torch.zeros(n, 3, dtype=dtype), normal=NORMAL.to(dtype).expand(n, 3) * 1.3,
                         wo=wo * 2.0, base_color=torch.rand(n, 3, generator=g, dtype=dtype),
                         roughness=torch.rand(n, 1, generator=g, dtype=dtype),
                         metallic=torch.rand(n, 1, generator=g, dtype=dtype),
                         ior=1 + torch.rand(n, 1, generator=g, dtype=dtype), transmission=transmission)


def _uniform(n, seed, dtype=DT):
    u = torch.rand(n, 3, generator=_gen(seed), dtype=dtype)
    return u[:, :1], u[:, 1:]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_transmission_zero_is_the_opaque_model_bit_for_bit(dtype):
    n = 3000
    si = _random_si(n, 1, torch.zeros(n, 1, dtype=dtype), dtype, both_sides=True)
    opaque = si.replace(transmission=None)
    wi = torch.randn(n, 3, generator=_gen(2), dtype=dtype)
    mix, ref = MetallicRoughnessTransmissionBSDF(), MetallicRoughnessBSDF()
    assert torch.equal(mix.eval(si, wi), ref.eval(opaque, wi))
    assert torch.equal(mix.pdf(si, wi), ref.pdf(opaque, wi))
    u1, u2 = _uniform(n, 3, dtype)
    a, b = mix.sample(si, u1, u2), ref.sample(opaque, u1, u2)
    assert torch.equal(a.wi, b.wi) and torch.equal(a.weight, b.weight) and torch.equal(a.pdf, b.pdf)
    assert not bool(a.is_transmission.any()) and not bool(a.is_delta.any()) and bool((a.eta == 1).all())
    assert isinstance(bsdf_for(opaque), MetallicRoughnessBSDF) and bsdf_for(si) is not None


def test_full_transmission_of_a_white_dielectric_is_the_rough_dielectric():
    n = 2000
    g = _gen(4)
    wo = torch.randn(n, 3, generator=g, dtype=DT)  # both sides
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo,
                       base_color=torch.ones(n, 3, dtype=DT), roughness=0.1 + 0.9 * torch.rand(n, 1, generator=g,
                                                                                              dtype=DT),
                       metallic=torch.zeros(n, 1, dtype=DT), ior=1.2 + torch.rand(n, 1, generator=g, dtype=DT),
                       transmission=torch.ones(n, 1, dtype=DT))
    wi = torch.randn(n, 3, generator=_gen(5), dtype=DT)
    mix, glass = MetallicRoughnessTransmissionBSDF(), RoughDielectricBSDF()
    torch.testing.assert_close(mix.eval(si, wi), glass.eval(si, wi), rtol=1e-12, atol=0)
    torch.testing.assert_close(mix.pdf(si, wi), glass.pdf(si, wi), rtol=1e-12, atol=0)
    u1, u2 = _uniform(n, 6)
    a, b = mix.sample(si, u1, u2), glass.sample(si, u1, u2)
    torch.testing.assert_close(a.wi, b.wi, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-10, atol=0)
    assert torch.equal(a.is_transmission, b.is_transmission)
    torch.testing.assert_close(a.eta, b.eta)


def test_eval_is_linear_in_transmission_and_tints_only_the_refraction():
    n = 1000
    si0 = _random_si(n, 7, torch.zeros(n, 1, dtype=DT), both_sides=True)
    t = torch.rand(n, 1, generator=_gen(8), dtype=DT)
    wi = torch.randn(n, 3, generator=_gen(9), dtype=DT)
    mix = MetallicRoughnessTransmissionBSDF()
    f0, f1 = mix.eval(si0, wi), mix.eval(si0.replace(transmission=torch.ones(n, 1, dtype=DT)), wi)
    torch.testing.assert_close(mix.eval(si0.replace(transmission=t), wi), f0 + t * (f1 - f0), rtol=1e-10, atol=1e-13)
    # The refracted part is tinted by base_color, the reflected one is not.
    white = si0.replace(transmission=torch.ones(n, 1, dtype=DT), base_color=torch.ones(n, 3, dtype=DT),
                        metallic=torch.zeros(n, 1, dtype=DT))
    tinted = white.replace(base_color=si0.base_color)
    crosses = ((wi @ NORMAL) * (si0.wo @ NORMAL) < 0)[:, None]
    torch.testing.assert_close(mix.eval(tinted, wi), torch.where(crosses, si0.base_color, 1.0) * mix.eval(white, wi))


CHI2_CASES = {
    "T0.5-m0.2-r0.5-out": dict(transmission=0.5, metallic=0.2, roughness=0.5, theta=math.radians(35)),
    "T1-r0.4-in": dict(transmission=1.0, metallic=0.0, roughness=0.4, theta=math.pi - math.radians(30)),
    "T0.7-r0.3-grazing": dict(transmission=0.7, metallic=0.0, roughness=0.3, theta=math.radians(75)),
}


def _si_case(n, wo, transmission, metallic, roughness):
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=torch.tensor([0.9, 0.5, 0.2], dtype=DT).expand(n, 3),
                         roughness=torch.full((n, 1), roughness, dtype=DT),
                         metallic=torch.full((n, 1), metallic, dtype=DT), ior=1.5,
                         transmission=torch.full((n, 1), transmission, dtype=DT))


@pytest.mark.parametrize("name", list(CHI2_CASES))
def test_mixture_sample_follows_its_pdf(name):
    case = dict(CHI2_CASES[name])
    wo = _dir(case.pop("theta"))
    bsdf = MetallicRoughnessTransmissionBSDF()

    def sample(n):
        s = bsdf.sample(_si_case(n, wo, **case), *_uniform(n, 200 + list(CHI2_CASES).index(name)))
        return s.wi, s.pdf[:, 0] > 0
    result = chi2_sphere(sample, lambda d: bsdf.pdf(_si_case(d.shape[0], wo, **case), d)[:, 0], frame=GRID,
                         n_cos=24, n_phi=48, quad=10)
    print(f"{name}: p = {result.p_value:.4f}, chi2 = {result.statistic:.1f}, dof = {result.dof}")
    assert_chi2(result, f"transmission-{name}", tests=len(CHI2_CASES))


def test_mixture_sample_weight_is_eval_cos_over_pdf():
    n = 3000
    si = _random_si(n, 10, torch.rand(n, 1, generator=_gen(11), dtype=DT), both_sides=True)
    bsdf = MetallicRoughnessTransmissionBSDF()
    s = bsdf.sample(si, *_uniform(n, 12))
    ok = s.pdf[:, 0] > 0
    assert float(ok.double().mean()) > 0.5 and int(s.is_transmission.sum()) > 300
    torch.testing.assert_close(s.pdf[ok], bsdf.pdf(si, s.wi)[ok], rtol=1e-8, atol=0)
    n_unit = NORMAL
    expected = bsdf.eval(si, s.wi) * (s.wi @ n_unit).abs()[:, None] / s.pdf
    torch.testing.assert_close(s.weight[ok], expected[ok], rtol=1e-8, atol=0)
    assert bool((s.weight[~ok] == 0).all()) and bool(torch.isfinite(s.weight).all())


def test_white_glass_furnace_through_the_mixture():
    n = 100_000
    wo = _dir(0.6)
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                       base_color=torch.ones(n, 1, dtype=DT), roughness=torch.full((n, 1), 0.2, dtype=DT),
                       metallic=torch.zeros(n, 1, dtype=DT), transmission=torch.ones(n, 1, dtype=DT))
    w = MetallicRoughnessTransmissionBSDF(mode="importance").sample(si, *_uniform(n, 13)).weight[:, 0]
    mean, err = float(w.mean()), float(w.std()) / math.sqrt(n)
    print(f"white glass, roughness 0.2, 34 degrees: E = {mean:.5f} +- {err:.5f}")
    assert mean <= 1 + 4 * err and mean > 0.99


def test_gradcheck_eval_and_pdf_in_transmission_roughness_ior_also_at_zero():
    wo = torch.stack([_dir(0.5), _dir(0.8), _dir(2.7)])
    phi = 0.7 + math.pi
    wi = torch.stack([_dir(2.7, phi + 0.2), _dir(0.9, phi - 0.3), _dir(0.4, phi + 0.1)])
    base = torch.tensor([[0.8, 0.5, 0.3]] * 3, dtype=DT)
    metal = torch.full((3, 1), 0.3, dtype=DT)

    def fn(t, rough, ior):
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=NORMAL.expand(3, 3), wo=wo,
                           base_color=base, roughness=rough, metallic=metal, ior=ior, transmission=t)
        bsdf = MetallicRoughnessTransmissionBSDF()
        return bsdf.eval(si, wi), bsdf.pdf(si, wi)
    rough = torch.tensor([[0.4], [0.5], [0.6]], dtype=DT, requires_grad=True)
    ior = torch.tensor([[1.5], [1.4], [1.6]], dtype=DT, requires_grad=True)
    for t in (torch.tensor([[0.3], [0.6], [0.9]], dtype=DT), torch.zeros(3, 1, dtype=DT)):
        t = t.requires_grad_(True)
        assert torch.autograd.gradcheck(fn, (t, rough, ior))
    # At T = 0 the refraction still has a gradient with respect to T (optimising T up from 0 works).
    t0 = torch.zeros(3, 1, dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(fn(t0, rough, ior)[0][0].sum(), t0)
    assert float(g[0]) > 0  # wo outside, wi inside: more transmission, more light through


# ------------------------------------------------------------------------------------------------ plumbing
def test_material_transmission_reaches_the_surface_sample():
    m = Material(transmission_factor=torch.tensor(0.25, dtype=DT), base_color_factor=torch.ones(4, dtype=DT))
    out = sample_material(m, shape=(2, 3))
    assert out["transmission"].shape == (2, 3, 1) and bool((out["transmission"] == 0.25).all())
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(2, 3, 3)
    si = SurfaceSample.from_material(torch.zeros(2, 3, 3, dtype=DT), z, z, out)
    assert si.transmission is out["transmission"] and isinstance(bsdf_for(si), MetallicRoughnessTransmissionBSDF)
    with pytest.raises(ValueError, match="transmission must be in"):
        si.replace(transmission=torch.full((2, 3, 1), 1.5, dtype=DT)).validate()
    with pytest.raises(ValueError, match="transmission must have shape"):
        si.replace(transmission=torch.zeros(2, 3, 2, dtype=DT))
    with pytest.raises(ValueError, match="mode"):
        MetallicRoughnessTransmissionBSDF(mode="both")
    with pytest.raises(TypeError, match="si must be a SurfaceSample"):
        bsdf_for({"transmission": 1})


def test_the_rasterizer_shades_transmissive_materials_as_opaque():
    def render(t):
        scene = lg.Scene()
        verts, faces = lg.geometry.icosphere(1, dtype=DT)
        scene.add_mesh("ball", lg.SceneMesh(0.7 * verts, faces, Material(
            base_color_factor=torch.tensor([0.9, 0.1, 0.1, 1.0], dtype=DT), metallic_factor=torch.tensor(0.2, dtype=DT),
            roughness_factor=torch.tensor(0.4, dtype=DT), transmission_factor=t)))
        scene.add_light("key", lg.PointLight(torch.tensor([1.0, 2.0, -3.0], dtype=DT), 10.0))
        cam = lg.Camera.look_at(torch.tensor([0.5, 0.4, -3.5], dtype=DT), torch.zeros(3, dtype=DT), fov_y=0.9,
                                width=24, height=20)
        return lg.render(scene, cam).rgba
    t = torch.tensor(0.7, dtype=DT, requires_grad=True)
    image = render(t)
    assert torch.equal(image, render(torch.tensor(0.0, dtype=DT)))
    assert image.grad_fn is None  # transmission_factor is not in the image's graph


# ------------------------------------------------------------------------------------------- thin sheets
def test_thin_sheet_reflectance_sums_the_inner_reflections():
    """``R' = R + T^2 R / (1 - R^2)``: at normal incidence on glass (``R = 0.04``) 0.0769..., beyond the critical
    angle of light from inside 1, and the series it sums, term by term."""
    from lumigrad.shading.transmission import thin_sheet_reflectance
    cos = torch.tensor([1.0, 0.5, 0.1], dtype=DT)
    r = fresnel_dielectric(cos, 1.5)[0]
    series = r + sum((1 - r) ** 2 * r ** (2 * k + 1) for k in range(60))
    torch.testing.assert_close(thin_sheet_reflectance(cos, 1.5), series)
    assert float(thin_sheet_reflectance(torch.tensor([1.0], dtype=DT), 1.5)) == pytest.approx(0.04 + 0.96 ** 2 * 0.04 /
                                                                                                (1 - 0.04 ** 2))
    assert float(thin_sheet_reflectance(torch.tensor([-0.2], dtype=DT), 1 / 1.5)) == 1.0  # from inside, past TIR


@pytest.mark.parametrize("theta", [0.3, 1.2, math.pi - 0.5])
def test_a_thin_sheet_reflects_or_passes_straight_through(theta):
    """A white-tinted sheet (``T = 1``, ``metallic = 0``): every sample is a delta, the mirror with probability
    ``R'`` (weight 1) or ``-wo`` (weight ``base_color``, no ``eta^2``, ``eta = 1``); ``eval`` and ``pdf`` are 0
    (deltas), and the mean weight is ``R' + (1 - R') base_color``."""
    from lumigrad.shading.transmission import thin_sheet_reflectance
    n = 20_000
    wo = _dir(theta)
    base = torch.tensor([0.6, 0.9, 0.7], dtype=DT)
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                       base_color=base.expand(n, 3), roughness=torch.full((n, 1), 0.4, dtype=DT),
                       metallic=torch.zeros(n, 1, dtype=DT), ior=1.5, transmission=torch.ones(n, 1, dtype=DT),
                       thin=torch.ones(n, 1, dtype=DT))
    s = MetallicRoughnessTransmissionBSDF().sample(si, *_uniform(n, 9))
    cos_o = float(wo @ NORMAL)
    mirror = 2 * cos_o * NORMAL - wo
    reflected = (s.wi - mirror).norm(dim=-1) < 1e-9
    through = (s.wi + wo).norm(dim=-1) < 1e-9
    assert bool((reflected | through).all()) and bool(s.is_delta.all())
    r = float(thin_sheet_reflectance(torch.tensor([cos_o], dtype=DT), 1.5))
    assert float(reflected.double().mean()) == pytest.approx(r, abs=4 * math.sqrt(r * (1 - r) / n) + 1e-9)
    torch.testing.assert_close(s.weight[reflected], torch.ones_like(s.weight[reflected]))
    torch.testing.assert_close(s.weight[through], base.expand(int(through.sum()), 3))
    torch.testing.assert_close(s.pdf[reflected], torch.full_like(s.pdf[reflected], r))
    assert bool(s.is_transmission[through].all()) and not bool(s.is_transmission[reflected].any())
    assert bool((s.eta == 1).all())
    wi = torch.randn(n, 3, generator=_gen(10), dtype=DT)
    assert float(MetallicRoughnessTransmissionBSDF().eval(si, wi).abs().max()) == 0.0
    assert float(MetallicRoughnessTransmissionBSDF().pdf(si, wi).abs().max()) == 0.0


def test_a_thin_flag_of_zero_is_the_solid_boundary_bit_for_bit():
    n = 500
    si = _random_si(n, 11, torch.rand(n, 1, generator=_gen(12), dtype=DT), both_sides=True)
    flagged = si.replace(thin=torch.zeros(n, 1, dtype=DT))
    bsdf = MetallicRoughnessTransmissionBSDF()
    wi = torch.randn(n, 3, generator=_gen(13), dtype=DT)
    assert torch.equal(bsdf.eval(si, wi), bsdf.eval(flagged, wi)) and torch.equal(bsdf.pdf(si, wi), bsdf.pdf(flagged, wi))
    a, b = bsdf.sample(si, *_uniform(n, 14)), bsdf.sample(flagged, *_uniform(n, 14))
    assert torch.equal(a.wi, b.wi) and torch.equal(a.weight, b.weight) and torch.equal(a.pdf, b.pdf)
    with pytest.raises(TypeError, match="thin_dielectric must be a bool"):
        Material(thin_dielectric=1)


def test_a_sheets_delta_coefficients_are_its_sample_weights_and_differentiable():
    """``delta_coefficient`` at a sheet's sampled directions is ``weight * pdf`` (the lobe's coefficient), 0 at
    other directions, and its ior derivative is ``R'``'s (central differences)."""
    from lumigrad.shading.transmission import thin_sheet_reflectance
    n = 400
    wo = _dir(0.9)
    ior = torch.tensor(1.5, dtype=DT, requires_grad=True)
    base = torch.tensor([0.6, 0.9, 0.7], dtype=DT)
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                       base_color=base.expand(n, 3), roughness=torch.full((n, 1), 0.3, dtype=DT),
                       metallic=torch.zeros(n, 1, dtype=DT), ior=ior.expand(n, 1),
                       transmission=torch.full((n, 1), 0.7, dtype=DT), thin=torch.ones(n, 1, dtype=DT))
    bsdf = MetallicRoughnessTransmissionBSDF()
    with torch.no_grad():
        s = bsdf.sample(si, *_uniform(n, 21))
    coef = bsdf.delta_coefficient(si, s.wi)
    delta = s.is_delta[:, 0]
    assert 0 < int(delta.sum()) < n  # (T = 0.7: some samples take the opaque lobes)
    torch.testing.assert_close(coef[delta].detach(), (s.weight * s.pdf)[delta])
    assert float(bsdf.delta_coefficient(si, torch.nn.functional.normalize(s.wi + 0.1, dim=-1)).abs().max()) == 0.0
    cos = float(wo @ NORMAL)
    reflected = delta & ((s.wi - (2 * cos * NORMAL - wo)).norm(dim=-1) < 1e-9)
    (g,) = torch.autograd.grad(coef[reflected].sum(), ior)
    h = 1e-6
    dr = (thin_sheet_reflectance(torch.tensor([cos], dtype=DT), 1.5 + h) -
          thin_sheet_reflectance(torch.tensor([cos], dtype=DT), 1.5 - h)) / (2 * h)
    assert float(g) == pytest.approx(float(dr) * 0.7 * 3 * int(reflected.sum()), rel=1e-5)
