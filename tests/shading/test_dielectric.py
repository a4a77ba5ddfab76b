"""Dielectric BSDFs tested as Mitsuba tests its plugins: exact Fresnel against the textbook formulas (normal
incidence, total internal reflection, Fresnel's sine / tangent laws, R + T = 1), chi-square of the rough
dielectric's ``sample`` against its ``pdf`` on both sides of the surface, white furnaces, generalised
reciprocity with the eta^2 factor, Snell's law of sampled refractions, gradients, bad input."""

import math

import pytest
import torch

from lumigrad.shading import (BSDF, RoughDielectricBSDF, SmoothDielectricBSDF, SurfaceSample, fresnel_dielectric)
from lumigrad.shading.dielectric import rough_dielectric_unchecked
from lumigrad.shading.warps import ggx_visible_normal, local_frame, to_local, to_world

from .chi2 import bsdf_sampler as _sampler, uniform_lobe_and_direction as _uniform
from .chi2 import DT, FRAME, GRID, NORMAL, assert_chi2, bsdf_chi2, chi2_sphere, frame_from_axis, integrate_sphere
from .chi2 import direction as _dir, gen as _gen





def _si(n, wo, roughness=0.5, ior=1.5, base=1.0):
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=torch.full((n, 1), float(base), dtype=DT),
                         roughness=torch.full((n, 1), float(roughness), dtype=DT), metallic=torch.zeros(n, 1, dtype=DT),
                         ior=ior)


def _eta_sides(eta, *dirs):
    """The IOR of the side each direction is on (exterior 1, interior eta)."""
    return [torch.where((d @ NORMAL)[..., None] < 0, torch.as_tensor(eta, dtype=DT), torch.ones((), dtype=DT))
            for d in dirs]


# ------------------------------------------------------------------------------------------------ Fresnel
def _fresnel_textbook(theta_i, n1, n2):
    """Fresnel's sine and tangent laws, R and the transmittance T from the amplitude coefficients."""
    s = n1 / n2 * math.sin(theta_i)
    if s >= 1:
        return 1.0, 0.0
    theta_t = math.asin(s)
    if theta_i == 0:
        r = ((n1 - n2) / (n1 + n2)) ** 2
        return r, 4 * n1 * n2 / (n1 + n2) ** 2
    rs = math.sin(theta_i - theta_t) ** 2 / math.sin(theta_i + theta_t) ** 2
    rp = math.tan(theta_i - theta_t) ** 2 / math.tan(theta_i + theta_t) ** 2
    ci, ct = math.cos(theta_i), math.cos(theta_t)
    ts = 2 * n1 * ci / (n1 * ci + n2 * ct)
    tp = 2 * n1 * ci / (n2 * ci + n1 * ct)
    t = n2 * ct / (n1 * ci) * 0.5 * (ts * ts + tp * tp)
    return 0.5 * (rs + rp), t


@pytest.mark.parametrize("eta", [1.5, 1.333, 2.4, 1 / 1.333])
def test_fresnel_at_normal_incidence_is_the_exact_formula(eta):
    f, cos_t, eta_it, eta_ti = fresnel_dielectric(torch.tensor([1.0, -1.0], dtype=DT), eta)
    expected = ((eta - 1) / (eta + 1)) ** 2
    torch.testing.assert_close(f, torch.full((2,), expected, dtype=DT), rtol=1e-14, atol=0)
    assert cos_t.tolist() == [-1.0, 1.0]
    torch.testing.assert_close(eta_it, torch.tensor([eta, 1 / eta], dtype=DT), rtol=1e-15, atol=0)
    torch.testing.assert_close(eta_it * eta_ti, torch.ones(2, dtype=DT), rtol=1e-15, atol=0)


@pytest.mark.parametrize("eta", [1.5, 2.4, 1 / 1.333])
def test_fresnel_matches_the_sine_and_tangent_laws_and_conserves_energy(eta):
    theta = torch.linspace(0, math.pi / 2 - 1e-3, 60, dtype=DT)
    for side in (1.0, -1.0):  # from the exterior (n1 = 1, n2 = eta) and from the interior
        n1, n2 = (1.0, eta) if side > 0 else (eta, 1.0)
        f, cos_t, _, eta_ti = fresnel_dielectric(side * torch.cos(theta), eta)
        ref = [_fresnel_textbook(float(t), n1, n2) for t in theta]
        torch.testing.assert_close(f, torch.tensor([r for r, _ in ref], dtype=DT), rtol=1e-10, atol=1e-13)
        # R + T = 1 at every angle, T from the amplitude transmission coefficients (an independent formula).
        torch.testing.assert_close(f + torch.tensor([t for _, t in ref], dtype=DT), torch.ones_like(f), rtol=0,
                                   atol=1e-12)
        # Snell: the transmitted cosine, on the other side.
        sin_t2 = (eta_ti * torch.sin(theta)) ** 2
        tir = sin_t2 >= 1
        torch.testing.assert_close(cos_t[~tir], -side * (1 - sin_t2[~tir]).sqrt(), rtol=1e-12, atol=1e-14)


def test_total_internal_reflection_beyond_the_critical_angle():
    eta = 1.5
    critical = math.asin(1 / eta)
    theta = torch.tensor([critical + 1e-6, critical + 0.1, 1.2, math.pi / 2], dtype=DT)
    f, cos_t, _, _ = fresnel_dielectric(-torch.cos(theta), eta)  # from inside the glass
    assert f.tolist() == [1.0] * 4 and cos_t.abs().max() == 0
    f_below, cos_t_below, _, _ = fresnel_dielectric(-torch.cos(torch.tensor([critical - 1e-3], dtype=DT)), eta)
    assert 0.5 < float(f_below) < 1 and float(cos_t_below) > 0
    # From outside (or into a denser medium) there is no total reflection before grazing.
    assert float(fresnel_dielectric(torch.cos(torch.tensor([1.5], dtype=DT)), eta)[0]) < 1
    # An air bubble in water (eta < 1) totally reflects light arriving from the water, i.e. from the exterior.
    assert float(fresnel_dielectric(torch.tensor([0.3], dtype=DT), 1 / 1.333)[0]) == 1.0


# ------------------------------------------------------------------------------------------------ smooth
@pytest.mark.parametrize("eta", [1.5, 1 / 1.333])
def test_smooth_dielectric_furnace_and_snell(eta):
    """Reflectance + transmittance = 1 at every angle, both sides; the sampled refraction obeys Snell."""
    thetas = [0.0, 0.3, 0.7, 1.0, 1.3, 1.55, math.pi - 0.2, math.pi - 0.6, math.pi - 1.0, math.pi - 1.45]
    n = 20_000
    for theta in thetas:
        wo = _dir(theta)
        si = _si(n, wo, ior=eta)
        u1, u2 = _uniform(n, 1)
        imp = SmoothDielectricBSDF(mode="importance").sample(si, u1, u2)
        rad = SmoothDielectricBSDF().sample(si, u1, u2)
        assert bool(imp.is_delta.all()) and torch.equal(imp.wi, rad.wi)
        # Importance mode: every sample's weight is 1 (the interface neither creates nor absorbs energy).
        torch.testing.assert_close(imp.weight, torch.ones_like(imp.weight), rtol=0, atol=1e-15)
        cos_o = float(wo @ NORMAL)
        f, _, _, eta_ti = (float(x) for x in fresnel_dielectric(torch.tensor(cos_o, dtype=DT), eta))
        refl = ~rad.is_transmission[:, 0]
        frac = float(refl.double().mean())
        assert abs(frac - f) < 4 * math.sqrt(max(f * (1 - f), 1e-4) / n) + 1e-12, (theta, frac, f)
        # The discrete pdfs are F and 1 - F; their sum over the two lobes is 1.
        torch.testing.assert_close(rad.pdf[refl], torch.full_like(rad.pdf[refl], f))
        torch.testing.assert_close(rad.pdf[~refl], torch.full_like(rad.pdf[~refl], 1 - f))
        # Radiance mode scales refracted radiance by eta_ti^2: E[weight] = F + (1 - F) eta_ti^2.
        torch.testing.assert_close(rad.weight[~refl], torch.full_like(rad.weight[~refl], eta_ti ** 2))
        torch.testing.assert_close(rad.eta[~refl], torch.full_like(rad.eta[~refl], 1 / eta_ti))
        # Mirror: the angle of incidence equals the angle of reflection, on the same side.
        if bool(refl.any()):
            torch.testing.assert_close(rad.wi[refl] @ NORMAL, torch.full((int(refl.sum()),), cos_o, dtype=DT))
            torch.testing.assert_close(rad.wi[refl] + wo, 2 * cos_o * NORMAL.expand(int(refl.sum()), 3))
        if bool((~refl).any()):
            wi = rad.wi[~refl][0]
            n_o, n_i = (1.0, eta) if cos_o > 0 else (eta, 1.0)
            sin_o = float(torch.linalg.cross(wo, NORMAL).norm())
            sin_i = float(torch.linalg.cross(wi, NORMAL).norm())
            assert n_o * sin_o == pytest.approx(n_i * sin_i, abs=1e-12)  # Snell's law
            assert float(wi @ NORMAL) * cos_o < 0  # crosses the interface
            assert abs(float(torch.linalg.det(torch.stack([wo, wi, NORMAL])))) < 1e-12  # in the plane of incidence
            # The tangential parts point opposite ways (the ray goes on, bent).
            assert float((wi - (wi @ NORMAL) * NORMAL) @ (wo - cos_o * NORMAL)) <= 0


def test_smooth_dielectric_eval_and_pdf_are_zero_and_it_is_a_bsdf():
    a, b = _random_dirs(8, 2)
    si = SurfaceSample(position=torch.zeros(8, 3, dtype=DT), normal=NORMAL.expand(8, 3), wo=a,
                       base_color=torch.ones(8, 3, dtype=DT), roughness=torch.zeros(8, 1, dtype=DT),
                       metallic=torch.zeros(8, 1, dtype=DT))
    bsdf = SmoothDielectricBSDF()
    assert isinstance(bsdf, BSDF) and isinstance(RoughDielectricBSDF(), BSDF)
    assert bsdf.eval(si, b).shape == (8, 3) and bool((bsdf.eval(si, b) == 0).all())
    assert bsdf.pdf(si, b).shape == (8, 1) and bool((bsdf.pdf(si, b) == 0).all())
    assert bsdf.sample(si, *_uniform(8, 3)).weight.shape == (8, 3)


def test_smooth_dielectric_weight_carries_the_fresnel_gradient():
    # Mitsuba's detached lobe choice: weight = 1, gradient d F / F for a reflection.
    eta = torch.tensor([[1.5]], dtype=DT, requires_grad=True)
    wo = _dir(0.9)[None]
    si = SurfaceSample(position=torch.zeros(1, 3, dtype=DT), normal=NORMAL[None], wo=wo,
                       base_color=torch.ones(1, 1, dtype=DT), roughness=torch.zeros(1, 1, dtype=DT),
                       metallic=torch.zeros(1, 1, dtype=DT), ior=eta)
    s = SmoothDielectricBSDF().sample(si, torch.zeros(1, 1, dtype=DT), torch.zeros(1, 2, dtype=DT))
    assert not bool(s.is_transmission) and float(s.weight.detach()) == 1.0
    (g,) = torch.autograd.grad(s.weight.sum(), eta)
    cos = torch.tensor(math.cos(0.9), dtype=DT)
    eta_fd = torch.tensor(1.5, dtype=DT)
    h = 1e-6
    dfde = (fresnel_dielectric(cos, eta_fd + h)[0] - fresnel_dielectric(cos, eta_fd - h)[0]) / (2 * h)
    assert float(g) == pytest.approx(float(dfde / fresnel_dielectric(cos, eta_fd)[0]), rel=1e-6)


# ------------------------------------------------------------------------------------------------ rough: chi2
CHI2_CASES = {
    "out-r0.3-eta1.5-wo30": dict(roughness=0.3, ior=1.5, theta=math.radians(30)),
    "out-r0.6-eta1.33-wo70": dict(roughness=0.6, ior=1.33, theta=math.radians(70)),
    "out-r0.2-eta2.4-wo0": dict(roughness=0.2, ior=2.4, theta=0.0),
    "out-r0.5-bubble-wo50": dict(roughness=0.5, ior=1 / 1.33, theta=math.radians(50)),
    "in-r0.4-eta1.5-wo25": dict(roughness=0.4, ior=1.5, theta=math.pi - math.radians(25)),
    "in-r0.7-eta1.5-wo60-tir": dict(roughness=0.7, ior=1.5, theta=math.pi - math.radians(60)),
    "in-r0.3-bubble-wo10": dict(roughness=0.3, ior=1 / 1.33, theta=math.pi - math.radians(10)),
}


@pytest.mark.parametrize("name", list(CHI2_CASES))
def test_rough_dielectric_sample_follows_its_pdf(name):
    case = dict(CHI2_CASES[name])
    wo = _dir(case.pop("theta"))
    bsdf = RoughDielectricBSDF()
    seed = 100 + list(CHI2_CASES).index(name)  # independent numbers per case: the p-values are independent
    result = bsdf_chi2(bsdf, lambda n: _si(n, wo, **case), seed)
    print(f"{name}: p = {result.p_value:.4f}, chi2 = {result.statistic:.1f}, dof = {result.dof}, "
          f"invalid {result.invalid[0]} vs {result.invalid[1]:.1f}")
    assert_chi2(result, f"rough-dielectric-{name}", tests=len(CHI2_CASES) + 1)
    # Both hemispheres receive samples: reflection and transmission are both exercised.
    s = bsdf.sample(_si(20_000, wo, **case), *_uniform(20_000, 12))
    ok = s.pdf[:, 0] > 0
    assert 0 < float(s.is_transmission[ok].double().mean()) < 1


def test_chi2_rejects_a_wrong_eta():
    # The test has power: a sampler for eta 1.5 checked against the pdf for eta 1.6 fails.
    wo = _dir(math.radians(40))
    bsdf = RoughDielectricBSDF()
    result = chi2_sphere(_sampler(bsdf, lambda n: _si(n, wo, roughness=0.4, ior=1.5), seed=13),
                         lambda d: bsdf.pdf(_si(d.shape[0], wo, roughness=0.4, ior=1.6), d)[:, 0], frame=GRID,
                         samples=50_000, n_cos=30, n_phi=60, quad=12)
    assert not result.passes(tests=len(CHI2_CASES) + 1)


@pytest.mark.parametrize("roughness, ior, theta", [(0.5, 1.5, 0.4), (0.3, 1.5, math.pi - 0.3), (0.8, 1 / 1.33, 1.2)])
def test_rough_pdf_integrates_to_one_minus_the_invalid_samples(roughness, ior, theta):
    wo = _dir(theta)
    bsdf = RoughDielectricBSDF()
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, roughness, ior), d)[:, 0], FRAME, 60,
                                  80, 12).sum())
    n = 100_000
    s = bsdf.sample(_si(n, wo, roughness, ior), *_uniform(n, 14))
    lost = float((s.pdf == 0).double().mean())
    sigma = math.sqrt(max(lost * (1 - lost), 1 / n) / n)
    assert mass <= 1 + 1e-3
    assert abs(mass + lost - 1) < 4 * sigma + 2e-3, (mass, lost)


# ------------------------------------------------------------------------------------------------ rough: energy
def _energy(bsdf, si_fn, n=100_000, seed=15, quadrature=True):
    s = bsdf.sample(si_fn(n), *_uniform(n, seed))
    w = s.weight.mean(-1)
    mc, err = float(w.mean()), float(w.std() / math.sqrt(n))
    quad = None
    if quadrature:
        def integrand(d):
            return bsdf.eval(si_fn(d.shape[0]), d).mean(-1) * (d @ NORMAL).abs()
        quad = float(integrate_sphere(integrand, FRAME, 80, 80, 12).sum())
    return mc, err, quad


@pytest.mark.parametrize("roughness, ior, theta", [
    (0.3, 1.5, 0.5), (0.6, 1.5, 1.2), (1.0, 1.5, 0.2), (0.5, 1.5, math.pi - 0.3), (0.5, 1.5, math.pi - 1.0),
    (0.5, 1 / 1.33, 0.6)])
def test_rough_dielectric_white_furnace_loses_but_never_gains_energy(roughness, ior, theta):
    wo = _dir(theta)
    mc, err, quad = _energy(RoughDielectricBSDF(mode="importance"), lambda n: _si(n, wo, roughness, ior))
    print(f"rough {roughness} eta {ior:.3f} theta {theta:.2f}: E = {mc:.4f} +- {err:.4f} (quadrature {quad:.4f})")
    assert mc <= 1 + 4 * err and quad <= 1 + 2e-3
    assert abs(mc - quad) < 4 * err + 3e-3, (mc, err, quad)  # the sample weights estimate the same integral
    assert mc > 0.75


@pytest.mark.parametrize("theta", [0.0, 0.8, 1.3, math.pi - 0.2, math.pi - 0.9])
def test_rough_dielectric_at_low_roughness_conserves_energy_and_tends_to_the_smooth_one(theta):
    wo = _dir(theta)
    eta = 1.5
    imp, err, _ = _energy(RoughDielectricBSDF(mode="importance"), lambda n: _si(n, wo, 0.1, eta), quadrature=False)
    rad, err_r, _ = _energy(RoughDielectricBSDF(), lambda n: _si(n, wo, 0.1, eta), quadrature=False)
    cos_o = float(wo @ NORMAL)
    f, _, _, eta_ti = (float(x) for x in fresnel_dielectric(torch.tensor(cos_o, dtype=DT), eta))
    print(f"roughness 0.1, theta {theta:.2f}: E = {imp:.5f} +- {err:.5f}; radiance {rad:.5f}, smooth "
          f"{f + (1 - f) * eta_ti ** 2:.5f}")
    assert imp <= 1 + 4 * err and imp > 0.98
    assert rad == pytest.approx(f + (1 - f) * eta_ti ** 2, abs=4 * err_r + 0.02)


# ------------------------------------------------------------------------------------------------ rough: consistency
def _random_dirs(n, seed, both_sides=True):
    g = _gen(seed)
    local = torch.randn(2, n, 3, generator=g, dtype=DT)
    local = local / local.norm(dim=-1, keepdim=True)
    if not both_sides:
        local[..., 2] = local[..., 2].abs()
    return local[0] @ FRAME, local[1] @ FRAME


def test_rough_eval_is_reciprocal_with_the_eta_squared_factor():
    n = 1000
    a, b = _random_dirs(n, 16)
    g = _gen(17)
    rough = 0.1 + 0.9 * torch.rand(n, 1, generator=g, dtype=DT)
    eta = torch.where(torch.rand(n, 1, generator=g, dtype=DT) < 0.5, 1.5, 1 / 1.33).to(DT)

    def si(wo):
        return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo,
                             base_color=torch.ones(n, 1, dtype=DT), roughness=rough,
                             metallic=torch.zeros(n, 1, dtype=DT), ior=eta)
    rad, imp = RoughDielectricBSDF(), RoughDielectricBSDF(mode="importance")
    f_ab, f_ba = rad.eval(si(a), b), rad.eval(si(b), a)
    eta_a = torch.where((a @ NORMAL)[:, None] < 0, eta, torch.ones_like(eta))
    eta_b = torch.where((b @ NORMAL)[:, None] < 0, eta, torch.ones_like(eta))
    crosses = ((a @ NORMAL) * (b @ NORMAL) < 0)[:, None]
    assert int((crosses & (f_ab > 0)).sum()) > 50 and int((~crosses & (f_ab > 0)).sum()) > 50
    torch.testing.assert_close(f_ab / eta_a ** 2, f_ba / eta_b ** 2, rtol=1e-10, atol=0)
    # Importance transport is the adjoint of radiance transport.
    torch.testing.assert_close(imp.eval(si(a), b), f_ba, rtol=1e-10, atol=0)
    # Reflection alone is symmetric.
    torch.testing.assert_close(f_ab[~crosses], f_ba[~crosses], rtol=1e-10, atol=0)


@pytest.mark.parametrize("mode", ["radiance", "importance"])
def test_rough_sample_weight_is_eval_cos_over_pdf(mode):
    n = 3000
    g = _gen(18)
    wo = _random_dirs(n, 19)[0]
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo,
                       base_color=torch.rand(n, 3, generator=g, dtype=DT),
                       roughness=0.05 + 0.95 * torch.rand(n, 1, generator=g, dtype=DT),
                       metallic=torch.zeros(n, 1, dtype=DT), ior=1 + torch.rand(n, 1, generator=g, dtype=DT))
    bsdf = RoughDielectricBSDF(mode=mode)
    s = bsdf.sample(si, *_uniform(n, 20))
    assert s.wi.shape == (n, 3) and s.weight.shape == (n, 3) and s.pdf.shape == (n, 1)
    torch.testing.assert_close(s.wi.norm(dim=-1), torch.ones(n, dtype=DT))
    ok = s.pdf[:, 0] > 0
    assert float(ok.double().mean()) > 0.9
    torch.testing.assert_close(s.pdf[ok], bsdf.pdf(si, s.wi)[ok], rtol=1e-8, atol=0)
    expected = bsdf.eval(si, s.wi) * (s.wi @ NORMAL).abs()[:, None] / s.pdf
    torch.testing.assert_close(s.weight[ok], expected[ok], rtol=1e-8, atol=0)
    assert bool((s.weight[~ok] == 0).all()) and bool(torch.isfinite(s.weight).all())
    crosses = ((s.wi @ NORMAL) * (wo @ NORMAL) < 0)[:, None]
    assert torch.equal(s.is_transmission[ok], crosses[ok]) and not bool(s.is_delta.any())
    eta_wi = torch.where((s.wi @ NORMAL)[:, None] < 0, si.ior, torch.ones_like(si.ior))
    eta_wo = torch.where((wo @ NORMAL)[:, None] < 0, si.ior, torch.ones_like(si.ior))
    torch.testing.assert_close(s.eta[ok], (eta_wi / eta_wo)[ok])


def test_rough_sampled_refraction_obeys_snell_about_its_microfacet():
    n = 500
    wo = _random_dirs(n, 21)[0]
    eta = 1.5
    u1 = torch.full((n, 1), 0.999, dtype=DT)  # refract unless totally reflected
    u2 = torch.rand(n, 2, generator=_gen(22), dtype=DT)
    rough = torch.full((n, 1), 0.5, dtype=DT)
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo,
                       base_color=torch.ones(n, 1, dtype=DT), roughness=rough, metallic=torch.zeros(n, 1, dtype=DT),
                       ior=eta)
    s = RoughDielectricBSDF().sample(si, u1, u2)
    # The microfacet the sampler drew: the same warp with the same u2, from wo flipped to the normal's side.
    nn = NORMAL.expand(n, 3)
    t, b = local_frame(nn)
    wo_l = to_local(wo, t, b, nn)
    side = torch.where(wo_l[:, 2:] >= 0, 1.0, -1.0).to(DT)
    h = to_world(ggx_visible_normal(wo_l * side, rough ** 2, u2), t, b, nn)
    refr = s.is_transmission[:, 0]
    assert int(refr.sum()) > 300
    wi, wo_r, h = s.wi[refr], wo[refr], h[refr]
    eta_o = torch.where((wo_r @ NORMAL) < 0, eta, 1.0).to(DT)
    eta_i = torch.where((wi @ NORMAL) < 0, eta, 1.0).to(DT)
    sin_o = torch.linalg.cross(wo_r, h).norm(dim=-1)
    sin_i = torch.linalg.cross(wi, h).norm(dim=-1)
    torch.testing.assert_close(eta_o * sin_o, eta_i * sin_i, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.linalg.det(torch.stack([wo_r, wi, h], -2)), torch.zeros(len(wi), dtype=DT),
                               rtol=0, atol=1e-12)
    assert bool((((wi * h).sum(-1)) * ((wo_r * h).sum(-1)) < 0).all())  # through the microfacet


def test_rough_eval_is_zero_for_geometry_it_cannot_produce():
    # A "refraction" that keeps going the same way along the surface: wi sees the microfacet from the front
    # while below the surface, so no microfacet can refract wo into it.
    wo, wi = _dir(0.5), _dir(2.0)
    si = _si(1, wo, ior=1.5)
    assert float(RoughDielectricBSDF().eval(si, wi[None]).abs().max()) == 0
    assert float(RoughDielectricBSDF().pdf(si, wi[None]).abs().max()) == 0
    assert float(RoughDielectricBSDF().eval(si, _dir(2.6, 0.7 + math.pi)[None]).min()) > 0  # bent the other way: fine
    f = rough_dielectric_unchecked(NORMAL, -wo, wo, 0.3, 1.0)  # eta 1: degenerate refraction half vector
    assert bool(torch.isfinite(f).all())


# ------------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("theta_o, theta_i", [(0.5, 2.6), (0.5, 0.9), (2.7, 0.4), (2.8, 2.3)],
                         ids=["out-transmit", "out-reflect", "in-transmit", "in-reflect"])
def test_gradcheck_rough_eval_and_pdf_in_roughness_ior_and_wi(theta_o, theta_i):
    wo = _dir(theta_o)[None].expand(2, 3)
    phi = 0.7 + math.pi  # about the mirror / refraction azimuth of wo
    wi = torch.stack([_dir(theta_i, phi + 0.3), _dir(theta_i + 0.05, phi - 0.5)]).requires_grad_(True)
    rough = torch.tensor([[0.4], [0.6]], dtype=DT, requires_grad=True)
    ior = torch.tensor([[1.5], [1.4]], dtype=DT, requires_grad=True)

    def fn(rough, ior, wi):
        si = SurfaceSample(position=torch.zeros(2, 3, dtype=DT), normal=NORMAL.expand(2, 3), wo=wo,
                           base_color=torch.ones(2, 1, dtype=DT), roughness=rough,
                           metallic=torch.zeros(2, 1, dtype=DT), ior=ior)
        bsdf = RoughDielectricBSDF()
        return bsdf.eval(si, wi), bsdf.pdf(si, wi)
    f, pdf = fn(rough, ior, wi)
    assert bool((f > 0).all()) and bool((pdf > 0).all())
    assert torch.autograd.gradcheck(fn, (rough, ior, wi))


def test_gradcheck_rough_sample_reparameterised_in_roughness_and_ior():
    wo = torch.stack([_dir(0.6), _dir(2.6)])
    u1 = torch.tensor([[0.99], [0.99]], dtype=DT)
    u2 = torch.tensor([[0.3, 0.2], [0.7, 0.9]], dtype=DT)

    def fn(rough, ior):
        si = SurfaceSample(position=torch.zeros(2, 3, dtype=DT), normal=NORMAL.expand(2, 3), wo=wo,
                           base_color=torch.ones(2, 1, dtype=DT), roughness=rough,
                           metallic=torch.zeros(2, 1, dtype=DT), ior=ior)
        s = RoughDielectricBSDF().sample(si, u1, u2)
        return s.wi, s.weight, s.pdf
    rough = torch.tensor([[0.4], [0.5]], dtype=DT, requires_grad=True)
    ior = torch.tensor([[1.5], [1.3]], dtype=DT, requires_grad=True)
    wi, _, pdf = fn(rough, ior)
    assert bool((pdf > 0).all())
    assert torch.autograd.gradcheck(fn, (rough, ior))


def test_gradcheck_fresnel():
    cos = torch.tensor([0.9, 0.3, -0.95, -0.8], dtype=DT, requires_grad=True)
    eta = torch.tensor([1.5, 1.33, 1.5, 2.0], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, e: fresnel_dielectric(c, e)[:2], (cos, eta))


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_raises_naming_the_argument():
    with pytest.raises(ValueError, match="eta must be > 0"):
        fresnel_dielectric(torch.tensor([0.5]), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="eta must be a finite number in \\(0"):
        fresnel_dielectric(torch.tensor([0.5]), 0.0)
    with pytest.raises(ValueError, match="eta must be"):
        fresnel_dielectric(torch.tensor([0.5]), math.nan)
    with pytest.raises(ValueError, match="eta contains NaN"):
        fresnel_dielectric(torch.tensor([0.5]), torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="cos_i contains NaN"):
        fresnel_dielectric(torch.tensor([math.nan]), 1.5)
    with pytest.raises(ValueError, match="cos_i must lie in"):
        fresnel_dielectric(torch.tensor([1.5]), 1.5)
    with pytest.raises(TypeError, match="cos_i must be a torch.Tensor"):
        fresnel_dielectric(0.5, 1.5)
    with pytest.raises(ValueError, match="eta must be"):
        SmoothDielectricBSDF(eta=-1.5)
    with pytest.raises(ValueError, match="eta must be"):
        RoughDielectricBSDF(eta=math.inf)
    with pytest.raises(ValueError, match="eta must differ from 1"):
        RoughDielectricBSDF(eta=1.0)
    with pytest.raises(ValueError, match="mode"):
        RoughDielectricBSDF(mode="photons")
    with pytest.raises(ValueError, match="ior must be > 0"):
        _si(1, _dir(0.3), ior=torch.tensor([[-1.5]], dtype=DT)).validate()
    with pytest.raises(ValueError, match="ior contains NaN"):
        _si(1, _dir(0.3), ior=torch.tensor([[math.nan]], dtype=DT)).validate()
    si = _si(1, _dir(0.3))
    with pytest.raises(TypeError, match="si must be a SurfaceSample"):
        RoughDielectricBSDF().eval({"normal": NORMAL}, NORMAL[None])
    with pytest.raises(ValueError, match="u2 must have shape"):
        SmoothDielectricBSDF().sample(si, torch.zeros(1, 1, dtype=DT), torch.zeros(1, 3, dtype=DT))
    # An explicit eta overrides si.ior.
    a = RoughDielectricBSDF(eta=1.33).eval(si, _dir(2.5)[None])
    b = RoughDielectricBSDF().eval(_si(1, _dir(0.3), ior=1.33), _dir(2.5)[None])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
