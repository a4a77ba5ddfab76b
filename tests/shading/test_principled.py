"""Mitsuba's principled BSDF (``Material.principled``, :mod:`lumigrad.shading.principled`): ``eval`` against
Mitsuba's own ``principled`` (when Mitsuba 3 is importable) and against recorded values of it, its closed forms
at chosen directions, reciprocity, black from behind, ``ior_from_specular``; the usual plugin tests (chi-square
of ``sample`` against ``pdf``, ``pdf`` mass, ``weight = eval cos / pdf``, the mean weight against the quadrature
albedo, gradcheck); per-point mixing with the glTF model, the plastic and the transmitting model (and
``bsdf_for``'s choice of wrappers); the material flag; and both renderers on a principled sphere."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material, MetallicRoughnessBSDF, SurfaceSample
from lumigrad.shading.brdf import ALPHA_MIN
from lumigrad.shading.plastic import PerPointPlasticBSDF, PlasticBSDF, plastic_table
from lumigrad.shading.principled import (PRINCIPLED_LOBES, PerPointPrincipledBSDF, PrincipledBSDF, ior_from_specular,
                                         principled_mask, specular_from_ior)
from lumigrad.shading.transmission import MetallicRoughnessTransmissionBSDF, bsdf_for

from ..conftest import mitsuba_scalar
from .chi2 import DT, FRAME, GRID, NORMAL, assert_chi2, bsdf_chi2, integrate_sphere
from .chi2 import direction as _dir, gen as _gen, uniform_lobe_and_direction as _uniform

Z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)


def _si(n, wo, base=(0.6, 0.3, 0.2), roughness=0.5, metallic=0.0, ior=1.5, normal=NORMAL, **kw):
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=normal.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=torch.as_tensor(base, dtype=DT).expand(n, -1),
                         roughness=torch.full((n, 1), float(roughness), dtype=DT),
                         metallic=torch.full((n, 1), float(metallic), dtype=DT), ior=ior, **kw)


def _hemisphere(count, seed, tilted=False):
    """``[count, 3]`` random directions above ``Z``, or above ``NORMAL`` if ``tilted`` (polar angle in [0.05,
    1.45]: clear of the pole and the horizon)."""
    g = _gen(seed)
    theta = torch.rand(count, generator=g, dtype=DT) * 1.4 + 0.05
    phi = torch.rand(count, generator=g, dtype=DT) * 2 * math.pi
    local = torch.stack([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()], -1)
    return local @ FRAME if tilted else local


def _near_mirror(wo, spread, seed):
    """Directions within about ``spread`` radians of ``wo``'s mirror image about ``Z`` (inside the specular
    peak), kept above the surface."""
    mirror = wo * torch.tensor([-1.0, -1.0, 1.0], dtype=DT)
    d = torch.nn.functional.normalize(mirror + spread * torch.randn(wo.shape, generator=_gen(seed), dtype=DT), dim=-1)
    return torch.where(d[:, 2:] > 0.02, d, mirror)


def _mitsuba_eval_cos(bsdf, mi, wo, wi):
    """Mitsuba's ``eval`` (``f cos(wi)``; its ``si.wi`` is our view direction ``wo``) row by row, in float64."""
    out = []
    for k in range(wo.shape[0]):
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(wo[k].tolist())
        si.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
        out.append([float(c) for c in bsdf.eval(mi.BSDFContext(), si, mi.Vector3f(wi[k].tolist()))])
    return torch.tensor(out, dtype=DT)


def _mitsuba_principled(mi, base, roughness, metallic, eta=None, specular=None):
    d = {"type": "principled", "base_color": {"type": "rgb", "value": list(base)}, "roughness": roughness}
    if eta is not None:
        d["eta"] = eta
    if specular is not None:
        d["specular"] = specular
    if metallic:
        d["metallic"] = metallic
    return mi.load_dict(d)


# ------------------------------------------------------------------------------------------ against Mitsuba
MITSUBA_CASES = {
    "dielectric-r0.5-ior1.5": ((0.6, 0.3, 0.2), 0.5, 0.0, 1.5),
    "metal-r0.3": ((0.9, 0.7, 0.5), 0.3, 1.0, 1.5),
    "part-metallic-r0.6-ior1.33": ((0.6, 0.3, 0.2), 0.6, 0.4, 1.33),
    "nearly-smooth-r0.05-ior2": ((0.2, 0.5, 0.8), 0.05, 0.0, 2.0),
    "rough-r0.95-part-metallic-ior2": ((0.2, 0.5, 0.8), 0.95, 0.7, 2.0),
    "below-alpha-floor-r0.02": ((0.6, 0.3, 0.2), 0.02, 0.5, 1.5),  # alpha = max(r^2, 1e-3), Mitsuba's floor too
}


@pytest.mark.parametrize("name", list(MITSUBA_CASES))
def test_eval_is_mitsubas_principled(name):
    """Mitsuba's ``principled.eval`` (cosine included) at 150 random pairs of directions, 50 of them inside the
    specular peak, and 0 where either direction is below the surface. Mitsuba's scalar variant computes in
    float32: the agreement measured is 2e-5 relative inside the sharpest peaks, 1e-6 elsewhere."""
    mi = mitsuba_scalar()
    base, roughness, metallic, eta = MITSUBA_CASES[name]
    bsdf = _mitsuba_principled(mi, base, roughness, metallic, eta=eta)
    seed = 10 + list(MITSUBA_CASES).index(name)
    wo = _hemisphere(150, seed)
    wi = torch.cat([_hemisphere(100, seed + 100), _near_mirror(wo[100:], max(roughness ** 2, 0.03), seed)])
    si = _si(150, wo, base, roughness, metallic, eta, normal=Z)
    ours = PrincipledBSDF().eval(si, wi) * wi[:, 2:]
    ref = _mitsuba_eval_cos(bsdf, mi, wo, wi)
    assert float(ref.min()) > 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-7)
    below = torch.tensor([1.0, 1.0, -1.0], dtype=DT)
    for wo_b, wi_b in ((wo[:20] * below, wi[:20]), (wo[:20], wi[:20] * below), (wo[:20] * below, wi[:20] * below)):
        assert bool((_mitsuba_eval_cos(bsdf, mi, wo_b, wi_b) == 0).all())
        assert bool((PrincipledBSDF().eval(_si(20, wo_b, base, roughness, metallic, eta, normal=Z), wi_b) == 0).all())


LOBE_CASES = {"spec_tint": (0.7, 0, 0, 0, 0, 0), "sheen": (0, 0.8, 0, 0, 0, 0), "sheen_tint": (0, 0.8, 0.6, 0, 0, 0),
              "clearcoat": (0, 0, 0, 1.0, 0.3, 0), "clearcoat_glossy": (0, 0, 0, 0.5, 1.0, 0),
              "flatness": (0, 0, 0, 0, 0, 0.9), "every_lobe": (0.3, 0.5, 0.5, 0.7, 0.9, 0.4)}
#: Where Mitsuba's float32 loses the sharp clearcoat's peak: ``1 + (alpha^2 - 1) cos^2`` cancels to a few ulps of
#: ``alpha^2`` near the peak (lumigrad takes ``1 - (n.h)^2`` from ``|n x h|^2``); compared outside it.
_SHARP_CLEARCOAT = {"clearcoat_glossy": 1e-2, "every_lobe": 2e-3}


@pytest.mark.parametrize("metallic, roughness", [(0.0, 0.5), (0.4, 0.3)])
@pytest.mark.parametrize("name", list(LOBE_CASES))
def test_the_other_lobes_are_mitsubas(name, metallic, roughness):
    """``spec_tint``, ``sheen``, ``sheen_tint``, ``clearcoat``, ``clearcoat_gloss`` and ``flatness``
    (``si.principled_lobes``) against Mitsuba's ``principled.eval`` at 150 random pairs of directions (measured:
    3e-6 relative at most, float32's)."""
    mi = mitsuba_scalar()
    lobes = LOBE_CASES[name]
    d = {"type": "principled", "base_color": {"type": "rgb", "value": [0.6, 0.3, 0.2]}, "roughness": roughness,
         "metallic": metallic}
    d.update({k: v for k, v in zip(PRINCIPLED_LOBES, lobes) if v})
    bsdf = mi.load_dict(d)
    seed = 200 + list(LOBE_CASES).index(name)
    wo = _hemisphere(150, seed)
    wi = torch.cat([_hemisphere(100, seed + 100), _near_mirror(wo[100:], max(roughness ** 2, 0.03), seed)])
    si = _si(150, wo, (0.6, 0.3, 0.2), roughness, metallic, normal=Z, principled_lobes=_lobes(*lobes).expand(150, 6))
    ours = PrincipledBSDF().eval(si, wi) * wi[:, 2:]
    ref = _mitsuba_eval_cos(bsdf, mi, wo, wi)
    plain = PrincipledBSDF().eval(si.replace(principled_lobes=None), wi) * wi[:, 2:]
    assert float(((ref - plain).abs() / ref).amax()) > 0.01, "the lobe changes nothing here: the case is blind"
    h = torch.nn.functional.normalize(wo + wi, dim=-1)
    keep = 1 - h[:, 2] ** 2 > _SHARP_CLEARCOAT.get(name, 0.0)
    assert float(keep.double().mean()) > 0.6
    torch.testing.assert_close(ours[keep], ref[keep], rtol=2e-5, atol=1e-7)


# Mitsuba 3.9.1's principled.eval / cos with every other lobe (spec_tint 0.3, sheen 0.5, sheen_tint 0.5, clearcoat
# 0.7, clearcoat_gloss 0.9, flatness 0.4; base colour (0.6, 0.3, 0.2), roughness 0.4, metallic 0.2, eta 1.5), recorded
# with _mitsuba_eval_cos, so that a run without Mitsuba checks them too.
_RECORDED_LOBES = [
    ((0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.2746694, 0.1510622, 0.1098598)),
    ((0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.7604808, 0.4497013, 0.346108)),
    ((0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.1660997, 0.0855833, 0.0587445)),
]


@pytest.mark.parametrize("wo, wi, expected", _RECORDED_LOBES)
def test_the_other_lobes_match_recorded_mitsuba_values(wo, wi, expected):
    wo = torch.nn.functional.normalize(torch.tensor(wo, dtype=DT), dim=0)
    wi = torch.nn.functional.normalize(torch.tensor(wi, dtype=DT), dim=0)
    si = _si(1, wo, (0.6, 0.3, 0.2), 0.4, 0.2, 1.5, normal=Z, principled_lobes=_lobes(0.3, 0.5, 0.5, 0.7, 0.9, 0.4))
    assert PrincipledBSDF().eval(si, wi[None])[0].tolist() == pytest.approx(list(expected), rel=1e-5)


def test_an_ior_of_one_drops_the_whole_specular_lobe_as_mitsuba():
    """``specular`` 0 (``eta`` 1): the dielectric reflects nothing and Mitsuba drops the whole specular lobe, the
    metal's and the tint's with it (its ``F_dielectric > 0`` mask); what remains is the diffuse lobe."""
    mi = mitsuba_scalar()
    for metallic, lobes in ((1.0, None), (0.5, _lobes(spec_tint=0.6, sheen=0.3))):
        d = {"type": "principled", "base_color": {"type": "rgb", "value": [0.6, 0.3, 0.2]}, "roughness": 0.4,
             "metallic": metallic, "specular": 0.0}
        if lobes is not None:
            d.update({"spec_tint": 0.6, "sheen": 0.3})
        bsdf = mi.load_dict(d)
        wo, wi = _hemisphere(60, 40), _hemisphere(60, 41)
        si = _si(60, wo, (0.6, 0.3, 0.2), 0.4, metallic, ior=1.0, normal=Z,
                 **({} if lobes is None else {"principled_lobes": lobes.expand(60, 6)}))
        ours = PrincipledBSDF().eval(si, wi) * wi[:, 2:]
        torch.testing.assert_close(ours, _mitsuba_eval_cos(bsdf, mi, wo, wi), rtol=2e-5, atol=1e-7)
    assert float(PrincipledBSDF().eval(_si(60, wo, (0.6, 0.3, 0.2), 0.4, 1.0, ior=1.0, normal=Z), wi).abs().max()) == 0


def test_the_clearcoats_sample_has_finite_gradients_at_its_pole_and_horizon():
    """GTR1's sample at ``u = 0`` and ``u = 1`` (its normal at the pole or the horizon, where the roots' slopes are
    infinite) gives finite gradients in ``clearcoat_gloss``, also through the rows that drew the main lobe."""
    lobes = _lobes(clearcoat=1.0, clearcoat_gloss=1.0).expand(4, 6).clone().requires_grad_(True)
    si = _si(4, _dir(0.5), principled_lobes=lobes)
    u1 = torch.tensor([[0.1], [0.1], [0.9], [0.9]], dtype=DT)
    u2 = torch.tensor([[0.3, 0.0], [0.3, 1.0], [0.3, 0.0], [0.3, 3e-3]], dtype=DT)
    s = PrincipledBSDF().sample(si, u1, u2)
    (g,) = torch.autograd.grad((s.weight.sum() + s.wi.sum()), lobes)
    assert bool(torch.isfinite(g).all())


@pytest.mark.parametrize("specular", [0.1, 0.5, 0.9])
def test_ior_from_specular_is_mitsubas_reading_of_specular(specular):
    """A Mitsuba principled given by ``specular`` (no ``eta``) is ours at ``ior_from_specular(specular)``."""
    mi = mitsuba_scalar()
    bsdf = _mitsuba_principled(mi, (0.6, 0.3, 0.2), 0.4, 0.2, specular=specular)
    wo, wi = _hemisphere(60, 30), _hemisphere(60, 31)
    ours = PrincipledBSDF().eval(_si(60, wo, roughness=0.4, metallic=0.2, ior=ior_from_specular(specular), normal=Z),
                                 wi) * wi[:, 2:]
    torch.testing.assert_close(ours, _mitsuba_eval_cos(bsdf, mi, wo, wi), rtol=1e-4, atol=1e-7)


# Mitsuba 3.9.1's principled.eval / cos, recorded with _mitsuba_eval_cos above, so that a run without Mitsuba still
# checks the model against it.
_RECORDED = [
    ((0.6, 0.3, 0.2), 0.5, 0.0, 1.5, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.2204449, 0.1249515, 0.09312035)),
    ((0.6, 0.3, 0.2), 0.5, 0.0, 1.5, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.307224, 0.2118113, 0.1800071)),
    ((0.6, 0.3, 0.2), 0.5, 0.0, 1.5, (0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.2009679, 0.1054373, 0.07359379)),
    ((0.9, 0.7, 0.5), 0.3, 1.0, 1.5, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.5137788, 0.3996059, 0.2854329)),
    ((0.9, 0.7, 0.5), 0.3, 1.0, 1.5, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (3.549828, 2.765114, 1.980401)),
    ((0.9, 0.7, 0.5), 0.3, 1.0, 1.5, (0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.04700908, 0.03656551, 0.02612195)),
    ((0.2, 0.5, 0.8), 0.7, 0.4, 1.33, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.0678315, 0.1637124, 0.2595934)),
    ((0.2, 0.5, 0.8), 0.7, 0.4, 1.33, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.1012819, 0.2335298, 0.3657776)),
    ((0.2, 0.5, 0.8), 0.7, 0.4, 1.33, (0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.06240265, 0.1507408, 0.239079)),
]


@pytest.mark.parametrize("base, roughness, metallic, eta, wo, wi, expected", _RECORDED)
def test_eval_matches_recorded_mitsuba_values(base, roughness, metallic, eta, wo, wi, expected):
    wo = torch.nn.functional.normalize(torch.tensor(wo, dtype=DT), dim=0)
    wi = torch.nn.functional.normalize(torch.tensor(wi, dtype=DT), dim=0)
    ours = PrincipledBSDF().eval(_si(1, wo, base, roughness, metallic, eta, normal=Z), wi[None])
    assert ours[0].tolist() == pytest.approx(list(expected), rel=1e-5)


# ----------------------------------------------------------------------------------------------- closed forms
def _ggx_g1(mu, alpha):
    return 2 * mu / (mu + math.sqrt(alpha ** 2 + (1 - alpha ** 2) * mu * mu))


@pytest.mark.parametrize("metallic", [0.0, 0.35, 1.0])
@pytest.mark.parametrize("roughness, eta", [(0.4, 1.5), (0.8, 1.33), (0.25, 2.0)])
def test_normal_view_and_light_give_f0_and_burleys_diffuse(roughness, eta, metallic):
    """View and light along the normal: ``h = n``, every Schlick weight is 0, so ``f = F / (4 pi alpha^2) + (1 -
    m) c / pi`` with ``F = (1 - m) ((eta - 1) / (eta + 1))^2 + m c`` (no retro-reflection, no ``1 - F``)."""
    c = (0.6, 0.3, 0.2)
    alpha = roughness ** 2
    f0 = ((eta - 1) / (eta + 1)) ** 2
    expected = [((1 - metallic) * f0 + metallic * ck) / (4 * math.pi * alpha * alpha) + (1 - metallic) * ck / math.pi
                for ck in c]
    f = PrincipledBSDF().eval(_si(1, NORMAL, c, roughness, metallic, eta), NORMAL[None])
    assert f[0].tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("metallic", [0.0, 0.35, 1.0])
@pytest.mark.parametrize("roughness, eta, theta", [(0.4, 1.5, 1.1), (0.9, 1.33, 1.35), (0.6, 2.0, 0.7)])
def test_retro_reflection_closed_form(roughness, eta, theta, metallic):
    """Light from the view direction at polar angle ``theta`` (``mu = cos theta``): ``h = wo``, so ``wo.h = 1``,
    ``F = (1 - m) F0 + m c``, ``R = 2 r``, and with ``S = (1 - mu)^5``::

        f = F D(mu) G1(mu)^2 / (4 mu^2) + (1 - m) c / pi ((1 - S / 2)^2 + R (2 S + S^2 (R - 1)))

    with GGX's ``D(mu) = alpha^2 / (pi (mu^2 (alpha^2 - 1) + 1)^2)``: Burley's retro-reflection brightens the
    rough surface toward grazing angles."""
    c = (0.6, 0.3, 0.2)
    mu, alpha = math.cos(theta), roughness ** 2
    f0 = ((eta - 1) / (eta + 1)) ** 2
    d = alpha ** 2 / (math.pi * (mu * mu * (alpha ** 2 - 1) + 1) ** 2)
    spec = d * _ggx_g1(mu, alpha) ** 2 / (4 * mu * mu)
    s, r_retro = (1 - mu) ** 5, 2 * roughness
    lobes = (1 - s / 2) ** 2 + r_retro * (2 * s + s * s * (r_retro - 1))
    expected = [((1 - metallic) * f0 + metallic * ck) * spec + (1 - metallic) * ck / math.pi * lobes for ck in c]
    wo = _dir(theta, 2.1)
    f = PrincipledBSDF().eval(_si(1, wo, c, roughness, metallic, eta), wo[None])
    assert f[0].tolist() == pytest.approx(expected, rel=1e-10)
    if metallic == 0.0 and roughness == 0.9:  # the retro term is what brightens it: above the Lambertian c / pi
        assert lobes > 1.15 and float(f[0, 0]) > 1.15 * c[0] / math.pi


def test_ior_from_specular_and_back():
    assert ior_from_specular(0.5) == pytest.approx(1.5, rel=1e-15)
    assert specular_from_ior(1.5) == pytest.approx(0.5, rel=1e-15)
    for s in (0.0, 0.05, 0.3, 0.5, 0.8, 1.0):
        ior = ior_from_specular(s)
        assert ((ior - 1) / (ior + 1)) ** 2 == pytest.approx(0.08 * s, rel=1e-12, abs=1e-16)
        assert specular_from_ior(ior) == pytest.approx(s, rel=1e-12, abs=1e-16)
    for ior in (1.0, 1.33, 1.5, 2.4):
        assert ior_from_specular(specular_from_ior(ior)) == pytest.approx(ior, rel=1e-12)


# -------------------------------------------------------------------------------------- symmetry, the horizon
PARAMS = {"dielectric": dict(roughness=0.5), "metal": dict(base=(0.9, 0.7, 0.5), roughness=0.3, metallic=1.0),
          "part-metallic-ior1.33": dict(roughness=0.7, metallic=0.4, ior=1.33),
          "sharp-ior2": dict(base=(0.2, 0.5, 0.8), roughness=0.1, ior=2.0)}


@pytest.mark.parametrize("name", list(PARAMS))
def test_eval_is_reciprocal(name):
    n = 200
    wo, wi = _hemisphere(n, 40, tilted=True), _hemisphere(n, 41, tilted=True)
    forward = PrincipledBSDF().eval(_si(n, wo, **PARAMS[name]), wi)
    backward = PrincipledBSDF().eval(_si(n, wi, **PARAMS[name]), wo)
    assert bool((forward > 0).all())
    torch.testing.assert_close(forward, backward, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", list(PARAMS))
def test_black_below_the_surface_with_zero_gradients(name):
    """Either direction below the surface (or both: no back side, Mitsuba's principled without ``twosided``):
    ``eval`` and ``pdf`` exactly 0, and finite zero gradients."""
    n = 60
    wo, wi = _hemisphere(n, 42, tilted=True), _hemisphere(n, 43, tilted=True)
    below_wo, below_wi = wo - 2 * (wo @ NORMAL)[:, None] * NORMAL, wi - 2 * (wi @ NORMAL)[:, None] * NORMAL  # mirrored
    assert bool(((below_wo @ NORMAL) < 0).all()) and bool(((below_wi @ NORMAL) < 0).all())
    for view, light in ((below_wo, wi), (wo, below_wi), (below_wo, below_wi)):
        si = _si(n, view, **PARAMS[name])
        base = si.base_color.clone().requires_grad_(True)
        rough = si.roughness.clone().requires_grad_(True)
        si = si.replace(base_color=base, roughness=rough)
        f, pdf = PrincipledBSDF().eval(si, light), PrincipledBSDF().pdf(si, light)
        assert bool((f == 0).all()) and bool((pdf == 0).all())
        grads = torch.autograd.grad(f.sum() + pdf.sum(), (base, rough), allow_unused=True)
        for g in grads:
            assert g is None or bool((g == 0).all())


# ------------------------------------------------------------------------------------------------- sampling
def _lobes(spec_tint=0.0, sheen=0.0, sheen_tint=0.0, clearcoat=0.0, clearcoat_gloss=0.0, flatness=0.0):
    return torch.tensor([[spec_tint, sheen, sheen_tint, clearcoat, clearcoat_gloss, flatness]], dtype=DT)


CASES = {"dielectric-r0.5-wo30": dict(roughness=0.5, theta=math.radians(30)),
         "metal-r0.3-wo60": dict(base=(0.9, 0.7, 0.5), roughness=0.3, metallic=1.0, theta=math.radians(60)),
         "part-metallic-r0.2-wo75-ior1.33": dict(roughness=0.2, metallic=0.4, ior=1.33, theta=math.radians(75)),
         "white-r0.9-wo10-ior2": dict(base=(1.0, 1.0, 1.0), roughness=0.9, ior=2.0, theta=math.radians(10)),
         "clearcoat-glossy-r0.6-wo40": dict(roughness=0.6, theta=math.radians(40),
                                            principled_lobes=_lobes(clearcoat=1.0, clearcoat_gloss=0.9)),
         "every-lobe-r0.4-wo70": dict(roughness=0.4, metallic=0.2, theta=math.radians(70),
                                      principled_lobes=_lobes(0.5, 0.8, 0.5, 0.6, 0.3, 0.7))}


def _case(name):
    case = dict(CASES[name])
    wo = _dir(case.pop("theta"))
    return wo, case


@pytest.mark.parametrize("name", list(CASES))
def test_sample_follows_pdf(name):
    wo, case = _case(name)
    bsdf = PrincipledBSDF()
    seed = 70 + list(CASES).index(name)
    result = bsdf_chi2(bsdf, lambda n: _si(n, wo, **case), seed)
    assert_chi2(result, f"principled-{name}", tests=len(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_samples_pdf_mass_weights_and_albedo(name):
    """``sample`` gives unit directions, above the surface wherever its pdf is positive (a specular reflection
    below the horizon is lost: pdf and weight 0), with ``pdf = pdf(si, wi)`` and ``weight = eval cos / pdf``;
    the pdf's integral over the sphere plus the lost fraction is 1; the mean weight is the quadrature albedo."""
    wo, case = _case(name)
    bsdf = PrincipledBSDF()
    n = 50_000
    si = _si(n, wo, **case)
    s = bsdf.sample(si, *_uniform(n, 80 + list(CASES).index(name)))
    torch.testing.assert_close(s.wi.norm(dim=-1), torch.ones(n, dtype=DT), rtol=0.0, atol=1e-12)
    ok = s.pdf[:, 0] > 0
    cos = s.wi @ NORMAL
    assert bool((cos[ok] > 0).all()) and bool((cos[~ok] <= 0).all()) and bool((s.weight[~ok] == 0).all())
    torch.testing.assert_close(s.pdf, bsdf.pdf(si, s.wi), rtol=0.0, atol=0.0)
    torch.testing.assert_close(s.weight[ok], (bsdf.eval(si, s.wi) * cos[:, None] / s.pdf)[ok])
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, **case), d)[:, 0], GRID, 30, 60, 8).sum())
    lost = float((~ok).double().mean())
    assert mass <= 1 + 1e-3 and abs(mass + lost - 1) < 4 * math.sqrt(max(lost * (1 - lost), 1 / n) / n) + 1e-3
    albedo = float(integrate_sphere(lambda d: bsdf.eval(_si(d.shape[0], wo, **case), d).mean(-1) *
                                    (d @ NORMAL).clamp_min(0), GRID, 30, 60, 8).sum())
    w = s.weight.mean(-1)
    assert abs(float(w.mean()) - albedo) < 4 * float(w.std()) / math.sqrt(n) + 1e-3


def test_the_lobe_choice_follows_the_specular_and_diffuse_weights():
    """A metal and a black dielectric never draw the cosine lobe (the lobe number ``u1`` does not matter); seen
    from the normal, ``pdf`` is ``p D(h) / 4 + (1 - p) cos / pi`` with ``n.h = cos(theta / 2)`` and ``p = s / (s +
    d)``: ``s = (1 - m) F0 + m mean(c)``, ``d = (1 - m) mean(c)``."""
    n = 2_000
    wo = _dir(0.4)
    _, u2 = _uniform(n, 90)
    for base, metallic in (((0.9, 0.7, 0.5), 1.0), ((0.0, 0.0, 0.0), 0.0)):
        si = _si(n, wo, base, 0.3, metallic)
        low = PrincipledBSDF().sample(si, torch.full((n, 1), 0.001, dtype=DT), u2)
        high = PrincipledBSDF().sample(si, torch.full((n, 1), 0.999, dtype=DT), u2)
        torch.testing.assert_close(low.wi, high.wi, rtol=0.0, atol=0.0)
    theta = torch.linspace(0.05, 1.5, 30, dtype=DT)
    wi = torch.stack([theta.sin(), torch.zeros_like(theta), theta.cos()], -1) @ FRAME
    for base, roughness, metallic, eta in (((1.0, 1.0, 1.0), 0.3, 0.0, 1.5), ((0.6, 0.3, 0.2), 0.5, 0.4, 1.33),
                                           ((0.9, 0.7, 0.5), 0.4, 1.0, 1.5)):
        f0, mean_c, alpha = ((eta - 1) / (eta + 1)) ** 2, sum(base) / 3, roughness ** 2
        s, d = (1 - metallic) * f0 + metallic * mean_c, (1 - metallic) * mean_c
        p = s / (s + d)
        cos_h = (theta / 2).cos()
        ggx = alpha ** 2 / (math.pi * (cos_h ** 2 * (alpha ** 2 - 1) + 1) ** 2)
        expected = p * ggx / 4 + (1 - p) * theta.cos() / math.pi
        pdf = PrincipledBSDF().pdf(_si(30, NORMAL, base, roughness, metallic, eta), wi)[:, 0]
        torch.testing.assert_close(pdf, expected, rtol=1e-10, atol=0.0)


# ------------------------------------------------------------------------------------------------- gradients
def test_gradcheck_eval_and_pdf():
    """Both differentiable in the base colour, roughness, metallic, ior, the normal and both directions
    (unnormalised: ``eval`` normalises them), at directions away from the pole, the horizon and the mirror."""
    normal = (NORMAL + torch.tensor([0.05, 0.02, -0.03], dtype=DT)).expand(3, 3).clone().requires_grad_(True)
    wo = torch.tensor([[0.5, 0.2, 0.9], [-0.3, 0.6, 0.8], [0.1, -0.7, 0.6]], dtype=DT, requires_grad=True)
    wi = torch.tensor([[-0.4, 0.1, 0.85], [0.5, -0.2, 0.7], [-0.2, 0.35, 0.9]], dtype=DT, requires_grad=True)
    base = torch.tensor([[0.6, 0.3, 0.2], [0.2, 0.5, 0.8], [0.9, 0.7, 0.5]], dtype=DT, requires_grad=True)
    rough = torch.tensor([[0.5], [0.3], [0.8]], dtype=DT, requires_grad=True)
    metal = torch.tensor([[0.0], [0.4], [0.9]], dtype=DT, requires_grad=True)
    ior = torch.tensor([[1.5], [1.33], [2.0]], dtype=DT, requires_grad=True)
    assert bool((rough ** 2 > ALPHA_MIN).all())

    def fn(n, view, light, b, r, m, e):
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=n, wo=view, base_color=b, roughness=r,
                           metallic=m, ior=e)
        return PrincipledBSDF().eval(si, light), PrincipledBSDF().pdf(si, light)

    f, pdf = fn(normal, wo, wi, base, rough, metal, ior)
    assert bool((f > 0).all()) and bool((pdf > 0).all())
    assert torch.autograd.gradcheck(fn, (normal, wo, wi, base, rough, metal, ior))
    lobes = torch.tensor([[0.3, 0.5, 0.5, 0.7, 0.6, 0.4], [0.0, 0.2, 0.9, 0.3, 0.1, 0.8],
                          [0.6, 0.0, 0.0, 0.9, 0.95, 0.0]], dtype=DT, requires_grad=True)

    def with_lobes(b, r, m, e, lo):
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=normal.detach(), wo=wo.detach(), base_color=b,
                           roughness=r, metallic=m, ior=e, principled_lobes=lo)
        return PrincipledBSDF().eval(si, wi.detach()), PrincipledBSDF().pdf(si, wi.detach())

    assert torch.autograd.gradcheck(with_lobes, (base, rough, metal, ior, lobes))


# ---------------------------------------------------------------------------------------- per-point models
def _mixed(n, **kw):
    """``n`` points at one view, every other one principled (a batch mixing materials)."""
    si = _si(n, _dir(0.8), roughness=0.4, metallic=0.3, **kw)
    mask = (torch.arange(n) % 2 == 0)[:, None]
    return si.replace(principled=mask.to(DT)), mask[:, 0]


def test_per_point_mixing_keeps_each_points_own_bsdf():
    n = 64
    si, mask = _mixed(n)
    wi = _hemisphere(n, 50, tilted=True)
    bsdf = PerPointPrincipledBSDF(MetallicRoughnessBSDF())
    assert principled_mask(si)[:, 0].tolist() == mask.tolist() and principled_mask(si.replace(principled=None)) is None
    for method in ("eval", "pdf"):
        out = getattr(bsdf, method)(si, wi)
        torch.testing.assert_close(out[mask], getattr(PrincipledBSDF(), method)(si, wi)[mask], rtol=0.0, atol=0.0)
        torch.testing.assert_close(out[~mask], getattr(MetallicRoughnessBSDF(), method)(si, wi)[~mask], rtol=0.0,
                                   atol=0.0)
    assert not torch.allclose(PrincipledBSDF().eval(si, wi), MetallicRoughnessBSDF().eval(si, wi), rtol=1e-2)
    s = bsdf.sample(si, *_uniform(n, 51))
    a, b = PrincipledBSDF().sample(si, *_uniform(n, 51)), MetallicRoughnessBSDF().sample(si, *_uniform(n, 51))
    for field in ("wi", "weight", "pdf"):
        torch.testing.assert_close(getattr(s, field)[mask], getattr(a, field)[mask], rtol=0.0, atol=0.0)
        torch.testing.assert_close(getattr(s, field)[~mask], getattr(b, field)[~mask], rtol=0.0, atol=0.0)


def test_degenerate_normals_and_directions_stay_finite_next_to_principled_points():
    """A zero or NaN normal on a glTF point beside principled points (the per-point BSDF evaluates both models
    everywhere): no crash, finite values on the principled points."""
    n = 6
    si = _si(n, _dir(0.5))
    normal = si.normal.clone()
    normal[0] = 0.0
    normal[1] = float("nan")
    mixed = si.replace(normal=normal, principled=(torch.arange(n)[:, None] >= 2).to(DT))
    bsdf = PerPointPrincipledBSDF(MetallicRoughnessBSDF())
    wi = _hemisphere(n, 55, tilted=True)
    assert bool(torch.isfinite(bsdf.eval(mixed, wi)[2:]).all()) and bool(torch.isfinite(bsdf.pdf(mixed, wi)[2:]).all())
    s = bsdf.sample(mixed, *_uniform(n, 56))
    assert bool(torch.isfinite(s.weight[2:]).all()) and bool((s.pdf[2:] > 0).all())


def test_principled_points_beside_glass_keep_its_delta_and_transmission_flags():
    """Around the transmitting model: glass points keep their delta lobes, crossings, ``eta`` and delta
    coefficient; principled points are never delta or transmitting and have no delta coefficient."""
    n = 400
    si, principled = _mixed(n, transmission=torch.ones(n, 1, dtype=DT), thin=torch.ones(n, 1, dtype=DT))
    si = si.replace(roughness=torch.zeros(n, 1, dtype=DT), metallic=torch.zeros(n, 1, dtype=DT))
    bsdf = PerPointPrincipledBSDF(MetallicRoughnessTransmissionBSDF())
    s = bsdf.sample(si, *_uniform(n, 52))
    glass = ~principled
    assert not bool(s.is_delta[principled].any()) and not bool(s.is_transmission[principled].any())
    assert bool((s.eta[principled] == 1).all())
    assert bool(s.is_delta[glass].all()) and 0 < int(s.is_transmission[glass].sum()) < int(glass.sum())
    coef = bsdf.delta_coefficient(si, s.wi)
    assert bool((coef[principled] == 0).all())
    torch.testing.assert_close(coef[glass], MetallicRoughnessTransmissionBSDF().delta_coefficient(si, s.wi)[glass])
    assert bool((coef[glass] > 0).any())
    assert bool((PerPointPrincipledBSDF(MetallicRoughnessBSDF()).delta_coefficient(si, s.wi) == 0).all())


def test_bsdf_for_wraps_principled_outermost_and_each_point_gets_its_model():
    """``bsdf_for``: the glTF model alone without the flag; with ``si.principled`` the per-point principled around
    it; with a plastic table too, principled outside the plastic wrapper, and a batch of principled, plastic and
    glTF points gives each point its own model."""
    n = 90
    kind = torch.arange(n) % 3  # 0: principled, 1: plastic, 2: glTF
    wo = _dir(0.7)
    table = plastic_table(torch.tensor(0.4, dtype=DT), torch.tensor(1.5, dtype=DT))
    plain = _si(n, wo, roughness=0.4, metallic=0.0)
    si = plain.replace(principled=(kind == 0).to(DT)[:, None],
                       plastic=torch.where((kind == 1)[:, None], table, torch.zeros_like(table)).expand(n, -1))
    assert type(bsdf_for(plain)) is MetallicRoughnessBSDF
    only = bsdf_for(plain.replace(principled=torch.zeros(n, 1, dtype=DT)))
    assert isinstance(only, PerPointPrincipledBSDF) and type(only.other) is MetallicRoughnessBSDF
    glass = bsdf_for(plain.replace(principled=torch.ones(n, 1, dtype=DT), transmission=torch.ones(n, 1, dtype=DT)))
    assert isinstance(glass, PerPointPrincipledBSDF) and type(glass.other) is MetallicRoughnessTransmissionBSDF
    bsdf = bsdf_for(si)
    assert isinstance(bsdf, PerPointPrincipledBSDF) and isinstance(bsdf.other, PerPointPlasticBSDF)
    assert type(bsdf.other.other) is MetallicRoughnessBSDF
    wi = _hemisphere(n, 53, tilted=True)
    tabled = si.replace(plastic=table.expand(n, -1))  # each model's own view of every point
    expected = {0: PrincipledBSDF().eval(si, wi), 1: PlasticBSDF().eval(tabled, wi),
                2: MetallicRoughnessBSDF().eval(si, wi)}
    out, pdf = bsdf.eval(si, wi), bsdf.pdf(si, wi)
    expected_pdf = {0: PrincipledBSDF().pdf(si, wi), 1: PlasticBSDF().pdf(tabled, wi),
                    2: MetallicRoughnessBSDF().pdf(si, wi)}
    for k in range(3):
        rows = kind == k
        torch.testing.assert_close(out[rows], expected[k][rows], rtol=0.0, atol=0.0)
        torch.testing.assert_close(pdf[rows], expected_pdf[k][rows], rtol=0.0, atol=0.0)
    u = _uniform(n, 54)
    drawn = bsdf.sample(si, *u)
    own = {0: PrincipledBSDF().sample(si, *u), 1: PlasticBSDF().sample(tabled, *u),
           2: MetallicRoughnessBSDF().sample(si, *u)}
    for k in range(3):
        rows = kind == k
        for field in ("wi", "weight", "pdf"):
            torch.testing.assert_close(getattr(drawn, field)[rows], getattr(own[k], field)[rows], rtol=0.0, atol=0.0)
    for a in range(3):  # the three models differ here, so the comparisons above tell them apart
        for b in range(a + 1, 3):
            assert not torch.allclose(expected[a], expected[b], rtol=1e-2)


# ------------------------------------------------------------------------------------------------ materials
def test_a_principled_material_gives_its_other_lobes_and_checks_them():
    lobes = torch.tensor([0.3, 0.6, 0.5, 0.8, 0.6, 0.4])
    values = lg.shading.sample_material(Material(principled=True, principled_lobes=lobes), shape=(2, 3))
    assert values["principled_lobes"].shape == (2, 3, 6)
    torch.testing.assert_close(values["principled_lobes"][1, 2], lobes)
    assert "principled_lobes" in Material(principled=True, principled_lobes=lobes).parameters()
    assert "principled_lobes" not in lg.shading.sample_material(Material(principled_lobes=lobes), shape=(1,))
    si = SurfaceSample.from_material(torch.zeros(2, 3, 3), NORMAL.float().expand(2, 3, 3),
                                     NORMAL.float().expand(2, 3, 3), values)
    assert si.principled_lobes is not None
    with pytest.raises(ValueError, match=r"principled_lobes must be 6 values in \[0, 1\]"):
        Material(principled=True, principled_lobes=torch.tensor([0.3, 0.6, 0.5, 1.2, 0.6, 0.4]))
    with pytest.raises(ValueError, match="principled_lobes"):
        Material(principled=True, principled_lobes=torch.ones(5))
    with pytest.raises(ValueError, match="principled_lobes"):
        Material(principled=True, principled_lobes=torch.tensor([float("nan")] * 6))


def test_a_principled_material_marks_its_points_and_refuses_plastic():
    values = lg.shading.sample_material(Material(principled=True, metallic_factor=0.2, roughness_factor=0.5),
                                        shape=(2, 3))
    assert values["principled"].shape == (2, 3, 1) and bool((values["principled"] == 1).all())
    assert "principled" not in lg.shading.sample_material(Material(metallic_factor=0.2), shape=(2, 3))
    si = SurfaceSample.from_material(torch.zeros(2, 3, 3), NORMAL.float().expand(2, 3, 3),
                                     NORMAL.float().expand(2, 3, 3), values)
    assert isinstance(bsdf_for(si), PerPointPrincipledBSDF) and bool(principled_mask(si).all())
    with pytest.raises(ValueError, match="one model"):
        Material(principled=True, plastic=True)
    for first, second in (("plastic", "principled"), ("principled", "plastic")):
        m = Material()
        setattr(m, first, True)
        with pytest.raises(ValueError, match=f"one model: setting {second} while {first} is set"):
            setattr(m, second, True)
        setattr(m, first, False)  # (one model at a time: switching is unsetting the other first)
        setattr(m, second, True)
        assert getattr(m, second) and not getattr(m, first)
    with pytest.raises(TypeError, match="principled must be a bool"):
        Material(principled=1)
    m = Material()
    with pytest.raises(TypeError, match="principled must be a bool"):
        m.principled = "yes"
    assert m.principled is False


# --------------------------------------------------------------------------------------------------- renderers
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
CAMERA = dict(eye=[0.0, 1.2, -2.5], target=[0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)


def _sphere_scene(principled):
    scene = lg.Scene()
    floor = torch.tensor([[-2.0, 0, -2], [-2, 0, 2], [2, 0, 2], [2, 0, -2]])
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(base_color_factor=torch.tensor([0.7, 0.6, 0.5, 1.0]),
                                                               metallic_factor=0.0, roughness_factor=0.6)))
    v, f = lg.geometry.icosphere(2)
    ball = Material(base_color_factor=torch.tensor([0.6, 0.3, 0.2, 1.0]), metallic_factor=0.3,
                    roughness_factor=torch.tensor(0.8), principled=principled)
    scene.add_mesh("ball", lg.SceneMesh(0.5 * v + torch.tensor([0.0, 0.5, 0.0]), f, ball))
    scene.add_light("bulb", lg.PointLight(torch.tensor([1.0, 2.0, -1.0]), torch.tensor(6.0)))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([-0.3, -1.0, 0.4]), torch.tensor(0.5)))
    return scene


def _params(scene):
    m = scene.meshes["ball"].material
    return m.base_color_factor.requires_grad_(True), m.roughness_factor.requires_grad_(True)


def test_the_path_tracer_renders_a_principled_sphere_with_gradients():
    """The PyTorch transport: with three vertices (the sphere's own samples drawn) a finite image and finite
    nonzero gradients of the base colour and the roughness; with direct light only (delta lights, one seed: no
    noise between the two) the sphere differs from the glTF one and the floor in front of it does not."""
    cam = lg.Camera.look_at(**CAMERA)
    direct = {}
    for principled in (True, False):
        scene = _sphere_scene(principled)
        base, rough = _params(scene)
        out = lg.render(scene, cam, integrator=lg.integrators.PathIntegrator(use_fused_kernel=False, max_depth=3),
                        spp=16, seed=1)
        g_base, g_rough = torch.autograd.grad(out.rgb.sum(), (base, rough))
        assert torch.isfinite(out.rgb).all() and float(out.rgb.detach().max()) > 0
        assert bool(torch.isfinite(g_base).all()) and bool((g_base[:3] != 0).all())
        assert math.isfinite(float(g_rough)) and float(g_rough) != 0
        with torch.no_grad():
            direct[principled] = lg.render(scene, cam, integrator=lg.integrators.PathIntegrator(
                use_fused_kernel=False, max_depth=2), spp=4, seed=1).rgb
    floor = slice(12, None)  # the bottom rows see only the floor
    assert float(direct[False][floor].min()) > 0 and torch.equal(direct[True][floor], direct[False][floor])
    assert float((direct[True] - direct[False]).abs().max()) > 0.02 * float(direct[False].max())


def test_the_raster_shades_principled_through_the_per_light_bsdf_either_way():
    """The raster's fused light kernel is the glTF model's: asked for or not, a principled sphere goes through
    the per-light BSDF, so both passes give the same image and gradients, and the image is not the glTF one."""
    cam = lg.Camera.look_at(**CAMERA)
    scene = _sphere_scene(True)
    params = _params(scene)
    images, grads = [], []
    for fused in (True, False):
        out = lg.render(scene, cam, fused_lights=fused)
        images.append(out.rgb.detach())
        grads.append(torch.autograd.grad(out.rgb.sum(), params))
    torch.testing.assert_close(images[0], images[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    g_base, g_rough = grads[0]
    assert bool(torch.isfinite(g_base).all()) and bool((g_base[:3] != 0).all())
    assert math.isfinite(float(g_rough)) and float(g_rough) != 0
    assert torch.isfinite(images[0]).all()
    with torch.no_grad():
        gltf = lg.render(_sphere_scene(False), cam).rgb
    assert float((images[0] - gltf).abs().max()) > 0.02 * float(gltf.max())
