"""Beckmann microfacets (``Material.microfacet = "beckmann"``, Mitsuba's default for its rough BSDFs): the
distribution and Smith's ``Lambda`` against their closed forms (and Mitsuba's own when it is importable), the
glTF BSDF and the rough dielectric with ``si.beckmann`` tested as Mitsuba tests its plugins (chi-square of
``sample`` against ``pdf``, ``pdf`` mass, white furnace, ``weight = eval cos / pdf``, gradcheck), and GGX's bits
kept where the mask is unset or 0."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import MetallicRoughnessBSDF, SurfaceSample
from lumigrad.shading.brdf import beckmann_d, beckmann_lambda
from lumigrad.shading.dielectric import RoughDielectricBSDF
from lumigrad.shading.transmission import MetallicRoughnessTransmissionBSDF
from lumigrad.shading.warps import beckmann_normal

from .chi2 import uniform_lobe_and_direction as _uniform
from ..conftest import mitsuba_scalar
from .chi2 import DT, FRAME, NORMAL, assert_chi2, bsdf_chi2, chi2_sphere, integrate_sphere
from .chi2 import direction as _dir, gen as _gen


def _si(n, wo, base=(0.8, 0.5, 0.3), roughness=0.5, metallic=0.0, ior=1.5, beckmann=1.0, **kw):
    base = torch.as_tensor(base, dtype=DT).expand(n, -1) if torch.as_tensor(base).dim() else \
        torch.full((n, 1), float(base), dtype=DT)
    mask = None if beckmann is None else torch.full((n, 1), float(beckmann), dtype=DT)
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=base, roughness=torch.full((n, 1), float(roughness), dtype=DT),
                         metallic=torch.full((n, 1), float(metallic), dtype=DT), ior=ior, beckmann=mask, **kw)


# ------------------------------------------------------------------------------------------ the terms
@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5, 1.0])
def test_the_distribution_is_normalised_and_is_beckmanns(alpha):
    theta = torch.linspace(0.0, math.pi / 2, 200_001, dtype=DT)
    d = beckmann_d(torch.sin(theta) ** 2, torch.tensor(alpha * alpha, dtype=DT))
    assert float(torch.trapezoid(d * torch.cos(theta) * torch.sin(theta) * 2 * math.pi, theta)) == \
        pytest.approx(1.0, abs=1e-7)
    t = torch.tensor([0.1, 0.4, 0.9], dtype=DT)
    closed = torch.exp(-torch.tan(t) ** 2 / alpha ** 2) / (math.pi * alpha ** 2 * torch.cos(t) ** 4)
    torch.testing.assert_close(beckmann_d(torch.sin(t) ** 2, torch.tensor(alpha * alpha, dtype=DT)), closed)


def test_lambda_is_walters_fit_of_the_exact_smith_term():
    """Within the rational fit's accuracy of ``Lambda = (erf(a) - 1) / 2 + exp(-a^2) / (2 a sqrt(pi))``, 0 for
    ``a >= 1.6``, finite gradients at the normal and at grazing angles."""
    cos = torch.linspace(0.02, 0.999, 200, dtype=DT)
    for alpha in (0.1, 0.4, 1.0):
        a = cos / (alpha * (1 - cos * cos).sqrt())
        exact = (torch.erf(a) - 1) / 2 + torch.exp(-a * a) / (2 * a * math.sqrt(math.pi))
        g_fit = 1 / (1 + beckmann_lambda(cos, torch.tensor(alpha, dtype=DT)))
        assert float((g_fit - 1 / (1 + exact)).abs().max()) < 4e-3  # the fit's own error: 0.0031 at a = 1.6
        assert bool((beckmann_lambda(cos, torch.tensor(alpha, dtype=DT))[a >= 1.6] == 0).all())
    ends = torch.tensor([1e-6, 1.0], dtype=DT, requires_grad=True)
    beckmann_lambda(ends, torch.tensor(0.3, dtype=DT)).sum().backward()
    assert torch.isfinite(ends.grad).all()


def _exact_lambda(cos, alpha):
    a = cos / (alpha * (1 - cos * cos).sqrt())
    return (torch.erf(a) - 1) / 2 + torch.exp(-a * a) / (2 * a * math.sqrt(math.pi))


def test_a_white_beckmann_metal_is_d_g2_over_4_cos_cos():
    """The specular lobe: ``D G2 / (4 n.l n.v)`` with the height-correlated ``G2 = 1 / (1 + Lambda(l) +
    Lambda(v))`` of the exact Smith term (to the fit's accuracy), ``F = 1`` for a white metal."""
    alpha = 0.35
    g = torch.Generator().manual_seed(2)
    theta = torch.rand(64, 2, generator=g, dtype=DT) * 1.45 + 0.05
    phi = torch.rand(64, 1, generator=g, dtype=DT) * 2 * math.pi
    wo = torch.stack([theta[:, 0].sin(), torch.zeros(64, dtype=DT), theta[:, 0].cos()], -1)
    wi = torch.cat([theta[:, 1:].sin() * phi.cos(), theta[:, 1:].sin() * phi.sin(), theta[:, 1:].cos()], -1)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    si = SurfaceSample(position=torch.zeros(64, 3, dtype=DT), normal=z.expand(64, 3), wo=wo,
                       base_color=torch.ones(64, 1, dtype=DT), roughness=torch.full((64, 1), math.sqrt(alpha), dtype=DT),
                       metallic=torch.ones(64, 1, dtype=DT), beckmann=torch.ones(64, 1, dtype=DT))
    ours = MetallicRoughnessBSDF().eval(si, wi)[:, 0]
    h = torch.nn.functional.normalize(wi + wo, dim=-1)
    cl, cv = wi[:, 2], wo[:, 2]
    g2 = 1 / (1 + _exact_lambda(cl, alpha) + _exact_lambda(cv, alpha))
    expected = beckmann_d(1 - h[:, 2] ** 2, torch.tensor(alpha ** 2, dtype=DT)) * g2 / (4 * cl * cv)
    torch.testing.assert_close(ours, expected, rtol=1e-2, atol=1e-6)


def test_the_terms_match_mitsubas_microfacet_distribution():
    mi = mitsuba_scalar()
    g = torch.Generator().manual_seed(0)
    for alpha in (0.1, 0.3, 0.7):
        dist = mi.MicrofacetDistribution(mi.MicrofacetType.Beckmann, alpha)
        for theta_m, theta_v in (torch.rand(6, 2, generator=g, dtype=DT) * torch.tensor([1.2, 1.5], dtype=DT)).tolist():
            m = [math.sin(theta_m), 0.0, math.cos(theta_m)]
            ours = float(beckmann_d(torch.tensor(math.sin(theta_m) ** 2, dtype=DT), torch.tensor(alpha ** 2, dtype=DT)))
            assert ours == pytest.approx(dist.eval(mi.Vector3f(m)), rel=1e-4, abs=1e-6)
            v = mi.Vector3f(math.sin(theta_v), 0.0, math.cos(theta_v))
            g1 = 1 / (1 + float(beckmann_lambda(torch.tensor(math.cos(theta_v), dtype=DT), torch.tensor(alpha, dtype=DT))))
            assert g1 == pytest.approx(dist.smith_g1(v, mi.Vector3f(0, 0, 1)), rel=1e-4, abs=1e-6)


def test_beckmann_normals_follow_d_cos():
    def sample(n):
        h = beckmann_normal(torch.tensor([0.4], dtype=DT), torch.rand(n, 2, generator=_gen(3), dtype=DT))
        return h, torch.ones(n, dtype=torch.bool)
    result = chi2_sphere(sample, lambda d: torch.where(d[:, 2] > 0, beckmann_d(1 - d[:, 2].clamp(-1, 1) ** 2,
                                                                                torch.tensor(0.16, dtype=DT))
                                                       * d[:, 2].clamp_min(0), torch.zeros_like(d[:, 2])))
    assert_chi2(result, "beckmann-normal")


# ------------------------------------------------------------------------------------------ the BSDFs
BSDF_CASES = {
    "metal-r0.3-wo60": (MetallicRoughnessBSDF, dict(roughness=0.3, metallic=1.0, theta=math.radians(60))),
    "mixed-r0.8-wo80": (MetallicRoughnessBSDF, dict(roughness=0.8, metallic=0.5, theta=math.radians(80))),
    "plastic-r0.4-wo20": (MetallicRoughnessBSDF, dict(roughness=0.4, metallic=0.0, theta=math.radians(20))),
    "glass-out-r0.4-wo35": (RoughDielectricBSDF, dict(roughness=0.4, ior=1.5, theta=math.radians(35))),
    "glass-in-r0.5-wo30": (RoughDielectricBSDF, dict(roughness=0.5, ior=1.5, theta=math.pi - math.radians(30))),
    # rough and grazing: Beckmann normals facing away from wo must not refract (visible normals never do)
    "glass-out-r1.0-wo80": (RoughDielectricBSDF, dict(roughness=1.0, ior=1.5, theta=math.radians(80))),
    "glass-in-r1.0-wo60": (RoughDielectricBSDF, dict(roughness=1.0, ior=1.5, theta=math.pi - math.radians(60))),
    "transmission-r0.5-wo50": (MetallicRoughnessTransmissionBSDF,
                               dict(roughness=0.5, ior=1.5, theta=math.radians(50),
                                    transmission=torch.full((1, 1), 0.6, dtype=DT))),
}


def _case(name, n):
    cls, case = BSDF_CASES[name]
    case = dict(case)
    wo = _dir(case.pop("theta"))
    if "transmission" in case:
        case["transmission"] = case["transmission"].expand(n, 1)
    return cls(), wo, case


@pytest.mark.parametrize("name", list(BSDF_CASES))
def test_sample_follows_pdf(name):
    bsdf, wo, case = _case(name, 200_000)
    seed = 40 + list(BSDF_CASES).index(name)
    make = lambda n: _si(n, wo, **{k: (v[:1].expand(n, 1) if torch.is_tensor(v) else v) for k, v in case.items()})  # noqa: E731
    result = bsdf_chi2(bsdf, make, seed)
    assert_chi2(result, f"beckmann-{name}", tests=len(BSDF_CASES))


@pytest.mark.parametrize("name", list(BSDF_CASES))
def test_pdf_mass_and_weights_estimate_the_same_integral(name):
    """``pdf`` integrates to one minus the invalid samples; the mean weight equals the quadrature of
    ``eval |cos|`` (never above 1 for the reflecting BSDF: no energy gained)."""
    bsdf, wo, case = _case(name, 1)
    make = lambda n: _si(n, wo, **{k: (v[:1].expand(n, 1) if torch.is_tensor(v) else v) for k, v in case.items()})  # noqa: E731
    mass = float(integrate_sphere(lambda d: bsdf.pdf(make(d.shape[0]), d)[:, 0], FRAME, 60, 80, 12).sum())
    n = 100_000
    s = bsdf.sample(make(n), *_uniform(n, 7))
    lost = float((s.pdf == 0).double().mean())
    assert mass <= 1 + 1e-3 and abs(mass + lost - 1) < 4 * math.sqrt(max(lost * (1 - lost), 1 / n) / n) + 2e-3
    w = s.weight.mean(-1)
    mc, err = float(w.mean()), float(w.std() / math.sqrt(n))
    quad = float(integrate_sphere(lambda d: bsdf.eval(make(d.shape[0]), d).mean(-1) * (d @ NORMAL).abs(), FRAME,
                                  80, 80, 12).sum())
    assert abs(mc - quad) < 4 * err + 3e-3, (mc, err, quad)
    if isinstance(bsdf, MetallicRoughnessBSDF):  # (radiance-mode glass scales what it refracts by eta^2)
        assert quad <= 1 + 2e-3


def test_sample_weight_is_eval_cos_over_pdf_and_pdf_is_pdf():
    for name in BSDF_CASES:
        bsdf, wo, case = _case(name, 512)
        si = _si(512, wo, **case)
        s = bsdf.sample(si, *_uniform(512, 9))
        ok = s.pdf[:, 0] > 0
        assert int(ok.sum()) > 100, name
        f = bsdf.eval(si, s.wi)
        torch.testing.assert_close(s.weight[ok], (f * (s.wi @ NORMAL).abs()[:, None] / s.pdf)[ok])
        torch.testing.assert_close(s.pdf[ok], bsdf.pdf(si, s.wi)[ok])


def test_beckmann_differs_from_ggx_and_an_unset_or_zero_mask_is_ggx_bit_for_bit():
    wo = _dir(0.7)
    wi = torch.nn.functional.normalize(torch.randn(64, 3, generator=_gen(5), dtype=DT), dim=-1)
    wi = torch.cat([wi[:, :2], wi[:, 2:].abs()], -1)
    for bsdf, case in ((MetallicRoughnessBSDF(), dict(roughness=0.5, metallic=0.7)),
                       (RoughDielectricBSDF(), dict(roughness=0.5))):
        ggx = bsdf.eval(_si(64, wo, beckmann=None, **case), wi)
        assert torch.equal(bsdf.eval(_si(64, wo, beckmann=0.0, **case), wi), ggx)
        assert torch.equal(bsdf.pdf(_si(64, wo, beckmann=0.0, **case), wi), bsdf.pdf(_si(64, wo, beckmann=None,
                                                                                           **case), wi))
        beck = bsdf.eval(_si(64, wo, **case), wi)
        assert float((beck - ggx).abs().max()) > 0.05 * float(ggx.abs().max())


def test_gradcheck_eval_pdf_and_the_reparameterised_sample():
    wo = _dir(0.6).expand(3, 3)
    rough = torch.tensor([[0.3], [0.5], [0.8]], dtype=DT, requires_grad=True)
    base = torch.tensor([[0.9, 0.6, 0.3]] * 3, dtype=DT, requires_grad=True)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.5, 0.1, 0.8], [-0.3, -0.2, 0.9], [0.2, 0.4, 0.7]],
                                                    dtype=DT), dim=-1).requires_grad_(True)
    mask = torch.ones(3, 1, dtype=DT)

    def si(r, b):
        return SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=NORMAL.expand(3, 3), wo=wo, base_color=b,
                             roughness=r, metallic=torch.full((3, 1), 0.6, dtype=DT), beckmann=mask)
    bsdf = MetallicRoughnessBSDF()
    assert torch.autograd.gradcheck(lambda r, b, w: (bsdf.eval(si(r, b), w), bsdf.pdf(si(r, b), w)), (rough, base, wi))
    glass = RoughDielectricBSDF()
    below = wi * torch.tensor([1.0, 1.0, -1.0], dtype=DT)
    assert torch.autograd.gradcheck(lambda r, w: (glass.eval(si(r, base), w), glass.pdf(si(r, base), w)),
                                    (rough, below))
    u1, u2 = torch.full((3, 1), 0.01, dtype=DT), torch.tensor([[0.3, 0.2], [0.6, 0.9], [0.5, 0.4]], dtype=DT)
    assert torch.autograd.gradcheck(lambda r: bsdf.sample(si(r, base), u1, u2)[:3], (rough,))


# ------------------------------------------------------------------------------------------ materials
def test_gradients_stay_finite_at_degenerate_directions_with_a_mask():
    """Directions on the horizon and mirrored through the tangent plane (``sin2_h = 1``), with a Beckmann mask
    present (all True, all False): values and gradients finite, as without a mask."""
    dirs = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.6, 0.0, 0.8], [0.6, 0.0, -0.8], [0.0, 0.0, 1.0]]
    pairs = [(a, b) for a in dirs for b in dirs]
    wi = torch.tensor([a for a, _ in pairs], dtype=DT, requires_grad=True)
    wo = torch.tensor([b for _, b in pairs], dtype=DT)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(len(pairs), 3)
    for value in (None, 0.0, 1.0):
        rough = torch.full((len(pairs), 1), 0.5, dtype=DT, requires_grad=True)
        si = SurfaceSample(position=torch.zeros(len(pairs), 3, dtype=DT), normal=z, wo=wo,
                           base_color=torch.full((len(pairs), 3), 0.7, dtype=DT), roughness=rough,
                           metallic=torch.full((len(pairs), 1), 0.5, dtype=DT),
                           beckmann=None if value is None else torch.full((len(pairs), 1), value, dtype=DT))
        for bsdf in (MetallicRoughnessBSDF(), RoughDielectricBSDF()):
            out = bsdf.eval(si, wi).sum() + bsdf.pdf(si, wi).sum()
            g_wi, g_rough = torch.autograd.grad(out, (wi, rough))
            assert torch.isfinite(out) and torch.isfinite(g_wi).all() and torch.isfinite(g_rough).all(), (value, bsdf)


def test_material_microfacet_reaches_the_surface_samples():
    m = lg.shading.Material(microfacet="beckmann", roughness_factor=0.4)
    values = lg.shading.sample_material(m, shape=(2, 3))
    assert values["beckmann"].shape == (2, 3, 1) and bool((values["beckmann"] == 1).all())
    assert "beckmann" not in lg.shading.sample_material(lg.shading.Material(), shape=(2, 3))
    with pytest.raises(ValueError, match="microfacet"):
        lg.shading.Material(microfacet="phong")
    with pytest.raises(ValueError, match="microfacet must be one of 'ggx', 'beckmann'; got 'Beckmann'"):
        m.microfacet = "Beckmann"  # checked when set, not only when built
    assert m.microfacet == "beckmann"
