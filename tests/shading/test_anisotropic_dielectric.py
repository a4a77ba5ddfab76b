"""The rough dielectric's anisotropic lobe (``Material.roughness_aspect`` on a transmitting material: Mitsuba's
``roughdielectric`` with ``alpha_u`` / ``alpha_v``): reflection and refraction from both sides against Mitsuba 3
(when importable) and recorded values, in a tangent frame that is not the normal's default one; sampling against
the density (chi-square on the whole sphere), the density's mass and the weights; gradcheck in every input, the
aspect and the tangent included; aspect 1 is the isotropic lobe bit for bit; the glTF transmission model's
transmitting fraction takes the same lobe."""

import math

import pytest
import torch
from lumigrad.shading import Material, RoughDielectricBSDF, SurfaceSample, bsdf_for, sample_material
from lumigrad.shading.anisotropy import tangent_frame

from ..conftest import mitsuba_scalar
from .chi2 import DT, FRAME, NORMAL, assert_chi2, assert_pdf_mass_and_weights, bsdf_chi2
from .chi2 import direction as _dir, gen as _gen, uniform_lobe_and_direction as _uniform

#: A tangent neither along the default frame's axes nor orthogonal to NORMAL (the frame makes it so).
TANGENT = torch.tensor([1.0, 0.4, 0.3, 1.0], dtype=DT)


def _frame():
    s, t = tangent_frame(NORMAL, TANGENT)
    return torch.stack([s, t, NORMAL])  # rows: world -> local


def _si(n, wo, aspect, roughness=0.5, ior=1.5, beckmann=False, tangent=TANGENT, transmission=None, base=1.0):
    extra = {} if transmission is None else {"transmission": torch.full((n, 1), float(transmission), dtype=DT)}
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=torch.full((n, 3), float(base), dtype=DT),
                         roughness=torch.full((n, 1), float(roughness), dtype=DT), metallic=torch.zeros(n, 1, dtype=DT),
                         beckmann=torch.full((n, 1), float(beckmann), dtype=DT), ior=ior,
                         log_aspect=torch.full((n, 1), math.log(aspect), dtype=DT), tangent=tangent.expand(n, 4),
                         **extra)


def _pairs(count, seed, ior=1.5, spread=0.15):
    """Local unit ``(wo, wi)`` on both sides, a third of ``wo`` inside: the first third of ``wi`` anywhere on the
    sphere, the second near ``wo``'s mirror direction, the last near its refraction about the normal (the peaks)."""
    g = _gen(seed)
    wo = torch.nn.functional.normalize(torch.randn(count, 3, generator=g, dtype=DT), dim=-1)
    steep = torch.nn.functional.normalize(torch.tensor([0.2, 0.1, 0.97], dtype=DT), dim=0)
    wo = torch.where(wo[:, 2:].abs() < 0.05, steep, wo)
    wi = torch.nn.functional.normalize(torch.randn(count, 3, generator=g, dtype=DT), dim=-1)
    mirror = wo * torch.tensor([-1.0, -1.0, 1.0], dtype=DT)
    eta = torch.where(wo[:, 2:] > 0, torch.tensor(1 / ior, dtype=DT), torch.tensor(ior, dtype=DT))  # eta_ti
    cos_t2 = 1 - eta * eta * (1 - wo[:, 2:] ** 2)
    refracted = torch.cat([-eta * wo[:, :2], -torch.sign(wo[:, 2:]) * cos_t2.clamp_min(0).sqrt()], -1)
    refracted = torch.where(cos_t2 > 0, refracted, mirror)
    near = torch.cat([mirror[count // 3:2 * count // 3], refracted[2 * count // 3:]])
    near = torch.nn.functional.normalize(near + spread * torch.randn(near.shape, generator=g, dtype=DT), dim=-1)
    wi = torch.cat([wi[:count // 3], near])
    return wo, torch.where(wi[:, 2:].abs() < 0.02, -wo, wi)


def _mitsuba_eval_pdf(mi, bsdf, wo_local, wi_local):
    """Mitsuba's ``eval`` (``f |cos|``, radiance) and ``pdf`` of local directions (its frame the identity: ``s =
    x``), each ``[n, 1]``."""
    out = []
    for k in range(wo_local.shape[0]):
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(wo_local[k].tolist())
        si.sh_frame = mi.Frame3f(mi.Vector3f(1, 0, 0), mi.Vector3f(0, 1, 0), mi.Vector3f(0, 0, 1))
        wi = mi.Vector3f(wi_local[k].tolist())
        out.append([float(bsdf.eval(mi.BSDFContext(), si, wi)[0]), float(bsdf.pdf(mi.BSDFContext(), si, wi))])
    out = torch.tensor(out, dtype=DT)
    return out[:, :1], out[:, 1:]


@pytest.mark.parametrize("distribution, alpha_u, alpha_v, ior", [("ggx", 0.05, 0.3, 1.5), ("ggx", 0.4, 0.1, 1.33),
                                                                 ("beckmann", 0.1, 0.35, 1.5),
                                                                 ("beckmann", 0.3, 0.06, 1 / 1.33)])
def test_rough_dielectric_is_mitsubas_anisotropic_roughdielectric(distribution, alpha_u, alpha_v, ior):
    """Mitsuba's ``roughdielectric`` with ``alpha_u != alpha_v`` at 300 random pairs of directions on both sides
    (reflections and refractions, from outside and inside), its ``s`` axis our tangent: float32's agreement, and
    with GGX the same density (Mitsuba's visible normals; its Beckmann's are visible normals too, ours by ``D
    (n.h)``)."""
    mi = mitsuba_scalar()
    bsdf = mi.load_dict({"type": "roughdielectric", "distribution": distribution, "alpha_u": alpha_u,
                         "alpha_v": alpha_v, "int_ior": ior, "ext_ior": 1.0})
    wo_l, wi_l = _pairs(300, 3, ior)
    frame = _frame()
    si = _si(300, wo_l @ frame, math.sqrt(alpha_v / alpha_u), roughness=(alpha_u * alpha_v) ** 0.25, ior=ior,
             beckmann=distribution == "beckmann")
    ours = RoughDielectricBSDF().eval(si, wi_l @ frame)[:, :1] * wi_l[:, 2:].abs()
    ref, ref_pdf = _mitsuba_eval_pdf(mi, bsdf, wo_l, wi_l)
    crossing = (wo_l[:, 2] * wi_l[:, 2] < 0)  # (refractions and reflections, many inside their peaks)
    for kind in (crossing, ~crossing):
        assert float((ref[kind] > 1e-3).double().mean()) > 0.15
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)  # (2e-5 measured)
    if distribution == "ggx":
        torch.testing.assert_close(RoughDielectricBSDF().pdf(si, wi_l @ frame), ref_pdf, rtol=1e-4, atol=1e-6)


# Mitsuba 3.9.1's roughdielectric.eval (radiance; local directions, s = x), recorded with the set-up of
# test_rough_dielectric_is_mitsubas_anisotropic_roughdielectric, so a run without Mitsuba still checks the model:
# (distribution, alpha_u, alpha_v, ior, wo, wi, f |cos|).
_RECORDED = [
    ("ggx", 0.05, 0.3, 1.5, (0.3, 0.1, 0.9487), (-0.3, -0.2, 0.9327), 0.2124589682),  # a reflection
    ("ggx", 0.05, 0.3, 1.5, (0.3, 0.1, 0.9487), (-0.15, -0.1, -0.98), 0.8419726491),  # a refraction in
    ("beckmann", 0.3, 0.06, 1.5, (0.5, -0.3, -0.8124), (-0.7, 0.45, 0.55), 49.48143768),  # out, near the peak
    ("beckmann", 0.3, 0.06, 1.5, (0.5, -0.3, -0.8124), (-0.45, 0.3, -0.84), 0.4225695729),  # a reflection inside
]


@pytest.mark.parametrize("distribution, alpha_u, alpha_v, ior, wo, wi, expected", _RECORDED)
def test_rough_dielectric_matches_recorded_mitsuba_values(distribution, alpha_u, alpha_v, ior, wo, wi, expected):
    frame = _frame()
    wo = torch.nn.functional.normalize(torch.tensor(wo, dtype=DT), dim=0)
    wi = torch.nn.functional.normalize(torch.tensor(wi, dtype=DT), dim=0)
    si = _si(1, wo @ frame, math.sqrt(alpha_v / alpha_u), roughness=(alpha_u * alpha_v) ** 0.25, ior=ior,
             beckmann=distribution == "beckmann")
    got = float(RoughDielectricBSDF().eval(si, (wi @ frame)[None])[0, 0]) * abs(float(wi[2]))
    assert got == pytest.approx(expected, rel=3e-5)


CASES = {"ggx-out": dict(aspect=2.5, roughness=0.5, theta=0.5),
         "ggx-out-grazing": dict(aspect=0.4, roughness=0.6, theta=1.2),
         "ggx-in": dict(aspect=3.0, roughness=0.45, theta=math.pi - 0.4),
         "beckmann-out": dict(aspect=1.8, roughness=0.45, theta=0.8, beckmann=True),
         "beckmann-in-bubble": dict(aspect=0.5, roughness=0.5, theta=math.pi - 0.6, beckmann=True, ior=1 / 1.33),
         "transmission-model": dict(aspect=2.0, roughness=0.5, theta=0.7, transmission=0.6, base=0.8)}


def _case(name):
    case = dict(CASES[name])
    wo = _dir(case.pop("theta"))
    bsdf = bsdf_for(_si(1, wo, **case)) if "transmission" in case else RoughDielectricBSDF()
    return bsdf, (lambda n: _si(n, wo, **case))


@pytest.mark.parametrize("name", list(CASES))
def test_sample_follows_pdf(name):
    bsdf, make = _case(name)
    result = bsdf_chi2(bsdf, make, 140 + list(CASES).index(name))
    assert_chi2(result, f"anisotropic-dielectric-{name}", tests=len(CASES))
    s = bsdf.sample(make(20_000), *_uniform(20_000, 12))  # both hemispheres: reflection and refraction exercised
    assert 0 < float(s.is_transmission[s.pdf[:, 0] > 0].double().mean()) < 1


@pytest.mark.parametrize("name", list(CASES))
def test_pdf_mass_and_weights(name):
    assert_pdf_mass_and_weights(*_case(name))


def test_aspect_one_is_the_isotropic_lobe_bit_for_bit_and_a_quarter_turn_inverts_the_aspect():
    wo_l, wi_l = _pairs(64, 5)
    frame = _frame()
    wo, wi = wo_l @ frame, wi_l @ frame
    u1, u2 = _uniform(64, 6)
    for bk in (False, True):
        for transmission in (None, 0.7):  # the rough dielectric, and the glTF model's transmitting fraction
            a = _si(64, wo, 1.0, beckmann=bk, transmission=transmission)
            b = SurfaceSample(**{**a.tensors(), "log_aspect": None, "tangent": None, "ior": a.ior})
            bsdf = RoughDielectricBSDF() if transmission is None else bsdf_for(a)
            assert torch.equal(bsdf.eval(a, wi), bsdf.eval(b, wi)) and torch.equal(bsdf.pdf(a, wi), bsdf.pdf(b, wi))
            sa, sb = bsdf.sample(a, u1, u2), bsdf.sample(b, u1, u2)
            assert torch.equal(sa.wi, sb.wi) and torch.equal(sa.weight, sb.weight) and torch.equal(sa.pdf, sb.pdf)
        # the tangent turned a quarter turn about the normal swaps the widths: aspect a is then aspect 1 / a
        s, t = tangent_frame(NORMAL, TANGENT)
        turned = torch.cat([t, torch.ones(1, dtype=DT)])
        f_a = RoughDielectricBSDF().eval(_si(64, wo, 2.5, beckmann=bk), wi)
        f_b = RoughDielectricBSDF().eval(_si(64, wo, 1 / 2.5, beckmann=bk, tangent=turned), wi)
        torch.testing.assert_close(f_a, f_b, rtol=1e-10, atol=1e-12)


def test_gradcheck_in_every_input():
    wo = _dir(0.6).expand(4, 3)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.5, 0.1, 0.8], [-0.3, -0.2, 0.9], [0.2, 0.4, -0.7],
                                                     [-0.1, 0.3, -0.9]], dtype=DT) @ FRAME, dim=-1)
    wi.requires_grad_(True)
    rough = torch.tensor(0.5, dtype=DT, requires_grad=True)
    log_aspect = torch.tensor(0.6, dtype=DT, requires_grad=True)
    tangent = TANGENT.clone().requires_grad_(True)
    ior = torch.tensor(1.4, dtype=DT, requires_grad=True)

    def f(wi, rough, log_aspect, tangent, ior, beckmann, transmission):
        si = SurfaceSample(position=torch.zeros(4, 3, dtype=DT), normal=NORMAL.expand(4, 3), wo=wo,
                           base_color=torch.full((4, 3), 0.9, dtype=DT), roughness=rough.expand(4, 1),
                           metallic=torch.zeros(4, 1, dtype=DT), ior=ior.expand(4, 1),
                           beckmann=torch.full((4, 1), float(beckmann), dtype=DT),
                           log_aspect=log_aspect.expand(4, 1), tangent=tangent.expand(4, 4),
                           transmission=None if transmission is None else torch.full((4, 1), transmission, dtype=DT))
        bsdf = RoughDielectricBSDF() if transmission is None else bsdf_for(si)
        return bsdf.eval(si, wi), bsdf.pdf(si, wi)

    for beckmann, transmission in ((False, None), (True, None), (False, 0.6)):
        assert torch.autograd.gradcheck(lambda *a: f(*a, beckmann, transmission),
                                        (wi, rough, log_aspect, tangent, ior))


def test_a_transmitting_material_takes_an_aspect_and_an_opaque_or_plastic_one_does_not():
    glass = Material(transmission_factor=1.0, metallic_factor=0.0, roughness_factor=0.4, roughness_aspect=2.0)
    values = sample_material(glass, shape=(2,))
    assert values["log_aspect"].reshape(-1).tolist() == pytest.approx([math.log(2.0)] * 2)
    Material(transmission_factor=0.3, roughness_aspect=0.5)  # the transmitting fraction's interface
    for model in (dict(plastic=True), dict(thin_dielectric=True)):  # (a thin sheet's lobes are deltas)
        with pytest.raises(ValueError, match="roughness_aspect"):
            Material(transmission_factor=0.5, roughness_aspect=2.0, **model)
    glass.transmission_factor = torch.tensor(0.0)  # (moved off the model after it was made: refused when shaded)
    with pytest.raises(ValueError, match="roughness_aspect"):
        sample_material(glass, shape=(1,))
