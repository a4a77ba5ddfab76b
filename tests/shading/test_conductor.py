"""Mitsuba's conductor (``Material.conductor_eta`` / ``conductor_k``, :mod:`lumigrad.shading.conductor`): the exact
Fresnel curve against complex arithmetic and Mitsuba's own ``fresnel_conductor``, the BSDF against Mitsuba's
``roughconductor`` (when Mitsuba 3 is importable, and recorded values otherwise), and the usual plugin tests
(chi-square of ``sample`` against ``pdf``, ``pdf`` mass, ``weight = eval cos / pdf``, gradcheck, per-point
mixing with the glTF model, the material's checks)."""

import math

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material, MetallicRoughnessBSDF, SurfaceSample, bsdf_for, fresnel_conductor
from lumigrad.shading.conductor import CONDUCTOR_VALUES, MIN_HEAD_ON, ConductorBSDF, PerPointConductorBSDF

from ..conftest import mitsuba_scalar
from .chi2 import DT, FRAME, NORMAL, assert_chi2, bsdf_chi2, integrate_sphere
from .chi2 import direction as _dir, uniform_lobe_and_direction as _uniform, upper_directions as _directions

#: Mitsuba's RGB eta and k of chromium and gold (``lumigrad.io.mitsuba_xml.CONDUCTOR_ETA_K``).
CR = ((4.36968, 2.91650, 1.65490), (5.20652, 4.23133, 3.75470))
AU = ((0.14303, 0.37527, 1.44204), (3.98302, 2.38558, 1.60340))


def _head_on(eta, k):
    eta, k = np.asarray(eta), np.asarray(k)
    return ((eta - 1) ** 2 + k ** 2) / ((eta + 1) ** 2 + k ** 2)


def _si(n, wo, metal=CR, tint=(0.9, 0.8, 0.7), roughness=0.5, beckmann=False, normal=NORMAL, **kw):
    """Conductor points; the base colour is ``tint`` times the reflectance head-on (as the Mitsuba reader writes
    Mitsuba's ``specular_reflectance``)."""
    eta, k = metal
    base = torch.as_tensor(np.asarray(tint) * _head_on(eta, k), dtype=DT)
    values = torch.tensor([*eta, *k, 1.0], dtype=DT)
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=normal.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=base.expand(n, 3), roughness=torch.full((n, 1), float(roughness), dtype=DT),
                         metallic=torch.ones(n, 1, dtype=DT), beckmann=torch.full((n, 1), float(beckmann), dtype=DT),
                         conductor=values.expand(n, CONDUCTOR_VALUES), **kw)


def _complex_fresnel(cos, eta, k):
    """The unpolarised reflectance from the complex Fresnel equations (numpy complex, float64)."""
    n = eta + 1j * k
    sin2 = 1 - cos * cos
    cos_t = np.sqrt(n * n - sin2) / n  # (n cos_t, Snell's law in complex form)
    r_s = (cos - n * cos_t) / (cos + n * cos_t)
    r_p = (n * cos - cos_t) / (n * cos + cos_t)
    return 0.5 * (np.abs(r_s) ** 2 + np.abs(r_p) ** 2)


@pytest.mark.parametrize("eta, k", [(4.37, 5.21), (0.143, 3.98), (1.44, 1.60), (1.5, 0.0), (0.2, 0.9), (2.0, 0.3)])
def test_fresnel_is_the_complex_fresnel_equations(eta, k):
    cos = np.linspace(0.0, 1.0, 101)
    ours = fresnel_conductor(torch.as_tensor(cos, dtype=DT), torch.tensor(eta, dtype=DT), torch.tensor(k, dtype=DT))
    np.testing.assert_allclose(ours.numpy(), _complex_fresnel(cos, eta, k), rtol=1e-10, atol=1e-12)
    assert float(ours[0]) == pytest.approx(1.0) and float(ours[-1]) == pytest.approx(_head_on(eta, k), rel=1e-12)


def test_fresnel_is_mitsubas():
    mi = mitsuba_scalar()
    for eta, k in list(zip(*CR)) + list(zip(*AU)):
        for cos in (0.02, 0.2, 0.5, 0.8, 1.0):
            ref = float(mi.fresnel_conductor(cos, mi.ScalarComplex2f(eta, k)))
            ours = float(fresnel_conductor(torch.tensor(cos, dtype=DT), torch.tensor(eta, dtype=DT),
                                           torch.tensor(k, dtype=DT)))
            assert ours == pytest.approx(ref, rel=2e-6), (eta, k, cos)


def test_fresnel_gradcheck_and_finite_slopes_where_its_roots_vanish():
    cos = torch.tensor([0.05, 0.3, 0.7, 0.99], dtype=DT, requires_grad=True)
    for eta, k in [(4.37, 5.21), (0.143, 3.98), (1.5, 0.0), (0.6, 0.0)]:
        e = torch.tensor(eta, dtype=DT, requires_grad=True)
        kk = torch.tensor(k, dtype=DT, requires_grad=True)
        if k == 0.0:  # (k's derivative at 0 is one-sided: check eta and cos alone)
            assert torch.autograd.gradcheck(lambda c, e_: fresnel_conductor(c, e_, kk.detach()), (cos, e))
        else:
            assert torch.autograd.gradcheck(fresnel_conductor, (cos, e, kk))
    # AlSb's red channel (eta = k = 0, a perfect mirror), eta < 1 at its critical angle, eta 1 and k 0 at grazing
    for eta, k, c in [(0.0, 0.0, 0.5), (0.6, 0.0, 0.8), (1.0, 0.0, 0.0)]:
        e = torch.tensor(eta, dtype=DT, requires_grad=True)
        kk = torch.tensor(k, dtype=DT, requires_grad=True)
        cc = torch.tensor(c, dtype=DT, requires_grad=True)
        f = fresnel_conductor(cc, e, kk)
        grads = torch.autograd.grad(f, (cc, e, kk))
        assert math.isfinite(float(f.detach())) and all(math.isfinite(float(g)) for g in grads), (eta, k, c, grads)



@pytest.mark.parametrize("distribution, alpha, metal", [("ggx", 0.2, CR), ("ggx", 0.6, AU), ("ggx", 0.05, AU),
                                                        ("beckmann", 0.2, AU), ("beckmann", 0.5, CR)])
def test_eval_is_mitsubas_roughconductor(distribution, alpha, metal):
    """Mitsuba's ``roughconductor.eval`` (with the cosine; ``specular_reflectance`` the tint) at random
    directions, to float32 precision."""
    mi = mitsuba_scalar()
    eta, k = metal
    bsdf = mi.load_dict({"type": "roughconductor", "distribution": distribution, "alpha": alpha,
                         "eta": {"type": "rgb", "value": list(eta)}, "k": {"type": "rgb", "value": list(k)},
                         "specular_reflectance": {"type": "rgb", "value": [0.9, 0.8, 0.7]}})
    wo, wi = _directions(100, 1)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    ours = ConductorBSDF().eval(_si(100, wo, metal=metal, roughness=math.sqrt(alpha),
                                    beckmann=distribution == "beckmann", normal=z), wi)
    for j in range(100):
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(wo[j].tolist())
        si.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
        ref = [float(c) / float(wi[j, 2]) for c in bsdf.eval(mi.BSDFContext(), si, mi.Vector3f(wi[j].tolist()))]
        assert ours[j].tolist() == pytest.approx(ref, rel=1e-4, abs=1e-7), j


# Mitsuba 3.9.1's roughconductor.eval / cos (specular_reflectance (0.9, 0.8, 0.7)), recorded with
# tests/shading/test_conductor.py's mitsuba_scalar() so that a run without Mitsuba still checks the model.
_RECORDED = [
    ("ggx", 0.3, CR, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.3846837, 0.3228081, 0.2989706)),
    ("ggx", 0.3, CR, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.9556008, 0.8030217, 0.7466678)),
    ("ggx", 0.3, AU, (0.96, 0.0, 0.28), (-0.9, 0.2, 0.3873), (1.4350764, 1.0896586, 0.5014122)),
    ("beckmann", 0.2, AU, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (1.0354718, 0.7636, 0.2704355)),
    ("beckmann", 0.2, AU, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (3.1099877, 2.2951846, 0.8560525)),
]


@pytest.mark.parametrize("distribution, alpha, metal, wo, wi, expected", _RECORDED)
def test_eval_matches_recorded_mitsuba_values(distribution, alpha, metal, wo, wi, expected):
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    wo = torch.nn.functional.normalize(torch.tensor(wo, dtype=DT), dim=0)
    wi = torch.nn.functional.normalize(torch.tensor(wi, dtype=DT), dim=0)
    ours = ConductorBSDF().eval(_si(1, wo, metal=metal, roughness=math.sqrt(alpha),
                                    beckmann=distribution == "beckmann", normal=z), wi[None])
    assert ours[0].tolist() == pytest.approx(list(expected), rel=1e-4)


def test_the_curve_differs_from_schlicks_where_real_metals_do():
    """At grazing angles chromium is darker than glTF's Schlick curve from the same head-on reflectance (about a
    quarter at 75 degrees: the model is not the glTF metal renamed); head-on they agree."""
    for theta, lo, hi in [(0.0, -1e-9, 1e-9), (math.radians(75), 0.15, 0.4)]:
        wo = _dir(theta)  # (theta from NORMAL)
        mirror = 2 * (wo @ NORMAL) * NORMAL - wo
        si = _si(1, wo, tint=(1.0, 1.0, 1.0), roughness=0.0)
        curve = ConductorBSDF().fresnel(si, torch.tensor([[math.cos(theta)]], dtype=DT))
        schlick = si.base_color + (1 - si.base_color) * (1 - math.cos(theta)) ** 5
        gap = float(((schlick - curve) / curve).amax())
        assert lo <= gap <= hi, (theta, gap)
        assert bool((ConductorBSDF().eval(si, mirror[None]) > 0).all())


CASES = {"cr-r0.3-wo30": dict(roughness=0.3, theta=math.radians(30)),
         "au-r0.7-wo75": dict(roughness=0.7, theta=math.radians(75), metal=AU),
         "beckmann-r0.4-wo60": dict(roughness=0.4, theta=math.radians(60), beckmann=True),
         "mirror-r0.2-wo10": dict(roughness=0.2, theta=math.radians(10), metal=((0.0,) * 3, (1.0,) * 3),
                                  tint=(1.0, 1.0, 1.0))}


def _case(name):
    case = dict(CASES[name])
    wo = _dir(case.pop("theta"))
    return wo, case


@pytest.mark.parametrize("name", list(CASES))
def test_sample_follows_pdf(name):
    wo, case = _case(name)
    bsdf = ConductorBSDF()
    seed = 80 + list(CASES).index(name)
    result = bsdf_chi2(bsdf, lambda n: _si(n, wo, **case), seed)
    assert_chi2(result, f"conductor-{name}", tests=len(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_pdf_mass_weights_and_energy(name):
    wo, case = _case(name)
    bsdf = ConductorBSDF()
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, **case), d)[:, 0], FRAME, 60, 80, 12).sum())
    n = 50_000
    s = bsdf.sample(_si(n, wo, **case), *_uniform(n, 5))
    lost = float((s.pdf == 0).double().mean())
    assert mass <= 1 + 1e-3 and abs(mass + lost - 1) < 4 * math.sqrt(max(lost * (1 - lost), 1 / n) / n) + 2e-3
    ok = s.pdf[:, 0] > 0
    si = _si(n, wo, **case)
    torch.testing.assert_close(s.weight[ok], (bsdf.eval(si, s.wi) * (s.wi @ NORMAL)[:, None] / s.pdf)[ok])
    quad = float(integrate_sphere(lambda d: bsdf.eval(_si(d.shape[0], wo, **case), d).amax(-1) *
                                  (d @ NORMAL).clamp_min(0), FRAME, 80, 80, 12).sum())
    w = s.weight.amax(-1)
    assert abs(float(w.mean()) - quad) < 4 * float(w.std()) / math.sqrt(n) + 3e-3
    assert quad <= 1.0 + 2e-3  # a perfect mirror's rough lobe reflects at most what arrives


def test_gradcheck_eval_and_pdf():
    wo = _dir(0.7).expand(3, 3)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.5, 0.1, 0.8], [-0.3, -0.2, 0.9], [0.2, 0.4, 0.7]],
                                                    dtype=DT), dim=-1).requires_grad_(True)
    base = torch.tensor([[0.6, 0.5, 0.4]] * 3, dtype=DT, requires_grad=True)
    rough = torch.tensor(0.5, dtype=DT, requires_grad=True)
    values = torch.tensor([*CR[0], *CR[1], 1.0], dtype=DT).expand(3, 7).clone().requires_grad_(True)

    def f(wi, base, rough, values, beckmann):
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=NORMAL.expand(3, 3), wo=wo,
                           base_color=base, roughness=rough.expand(3, 1), metallic=torch.ones(3, 1, dtype=DT),
                           beckmann=torch.full((3, 1), float(beckmann), dtype=DT), conductor=values)
        bsdf = ConductorBSDF()
        return bsdf.eval(si, wi), bsdf.pdf(si, wi)

    for beckmann in (False, True):
        assert torch.autograd.gradcheck(lambda *a: f(*a, beckmann), (wi, base, rough, values))


def test_per_point_mixing_keeps_each_points_own_bsdf():
    wo = _dir(0.4)
    si = _si(4, wo)
    mixed = si.replace(conductor=si.conductor * torch.tensor([[1.0], [0.0], [1.0], [0.0]], dtype=DT),
                       metallic=torch.tensor([[1.0], [0.3], [1.0], [0.3]], dtype=DT))
    bsdf = bsdf_for(mixed)
    assert isinstance(bsdf, PerPointConductorBSDF)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.3, 0.1, 0.9]], dtype=DT), dim=-1).expand(4, 3)
    got = bsdf.eval(mixed, wi)
    torch.testing.assert_close(got[0::2], ConductorBSDF().eval(si, wi)[0::2])
    torch.testing.assert_close(got[1::2], MetallicRoughnessBSDF().eval(mixed, wi)[1::2])
    s = bsdf.sample(mixed, torch.full((4, 1), 0.3, dtype=DT), torch.full((4, 2), 0.6, dtype=DT))
    assert bool(torch.isfinite(s.weight).all()) and bool((s.pdf > 0).all())


def test_a_conductor_material_gives_its_values_and_is_checked():
    m = Material(base_color_factor=torch.tensor([0.5, 0.4, 0.3, 1.0]), roughness_factor=0.3,
                 conductor_eta=torch.tensor(CR[0]), conductor_k=torch.tensor(CR[1]))
    values = lg.shading.sample_material(m, shape=(2, 3))
    assert values["conductor"].shape == (2, 3, CONDUCTOR_VALUES)
    torch.testing.assert_close(values["conductor"][1, 2], torch.tensor([*CR[0], *CR[1], 1.0]))
    assert {"conductor_eta", "conductor_k"} <= set(m.parameters())
    assert "conductor" not in lg.shading.sample_material(Material(), shape=(1,))
    with pytest.raises(ValueError, match="set together"):
        Material(conductor_eta=torch.ones(3))
    with pytest.raises(ValueError, match=r"conductor_eta must have shape \[3\]|trailing"):
        Material(conductor_eta=torch.ones(2, 3), conductor_k=torch.ones(2, 3))
    with pytest.raises(ValueError, match=">= 0"):
        Material(conductor_eta=torch.tensor([1.0, -1.0, 1.0]), conductor_k=torch.ones(3))
    with pytest.raises(ValueError, match="below 0.0001 in some channel"):
        Material(conductor_eta=torch.ones(3), conductor_k=torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="below 0.0001 in some channel"):  # (float32 would be rounding there)
        Material(conductor_eta=torch.full((3,), 1.0002), conductor_k=torch.zeros(3))
    with pytest.raises(ValueError, match="NaN|finite"):
        Material(conductor_eta=torch.tensor([float("nan"), 1.0, 1.0]), conductor_k=torch.ones(3))
    with pytest.raises(ValueError, match="one model"):
        Material(plastic=True, conductor_eta=torch.ones(3) * 0.5, conductor_k=torch.ones(3))
    with pytest.raises(ValueError, match="one model"):
        m.principled = True


def test_a_conductor_set_after_construction_is_checked_when_set_and_when_rendered():
    """Each of ``conductor_eta`` and ``conductor_k`` is checked when it is set (a list becomes a tensor of the
    material's dtype; shape, finiteness, sign), and the pair when a renderer reads the material: one without the
    other is refused by name, not an AttributeError deep inside."""
    m = Material(base_color_factor=torch.tensor([0.5, 0.4, 0.3, 1.0], dtype=torch.float64))
    m.conductor_eta = [0.2, 0.9, 1.1]
    assert m.conductor_eta.dtype == torch.float64
    with pytest.raises(ValueError, match="set together"):
        lg.shading.sample_material(m, shape=(1,))
    with pytest.raises(ValueError, match="set together"):
        from lumigrad.integrators.fused_paths import conductor_rows
        conductor_rows([m], torch.device("cpu"))
    m.conductor_k = [3.9, 2.4, 2.1]
    assert lg.shading.sample_material(m, shape=(1,))["conductor"].shape == (1, CONDUCTOR_VALUES)
    for bad, match in (([1.0, 2.0], "trailing|shape"), ([-4.0, 3.0, 2.0], ">= 0"), ([float("inf")] * 3, "finite|Inf")):
        m2 = Material(conductor_eta=torch.tensor([1.0, 1.0, 1.0]), conductor_k=torch.ones(3))
        with pytest.raises(ValueError, match=match):
            m2.conductor_eta = bad
    m.conductor_eta = None  # (unsetting: then the pair is one-sided until k goes too)
    with pytest.raises(ValueError, match="set together"):
        lg.shading.sample_material(m, shape=(1,))


def test_the_rasters_environment_light_reads_a_conductor_as_a_pure_metal():
    """The raster's split-sum environment light is the glTF metal's (Schlick's curve from the base colour); for a
    conductor it takes metallic 1 whatever ``metallic_factor`` says (the conductor does not read it)."""
    v, f = lg.geometry.icosphere(2)
    cam = lg.Camera.look_at([0.0, 0.3, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=16, height=16)
    sky = torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(0)) + 0.2
    images = []
    for metallic in (0.0, 1.0):
        scene = lg.Scene()
        m = Material(base_color_factor=torch.tensor([0.6, 0.6, 0.6, 1.0]), metallic_factor=metallic,
                     roughness_factor=0.4, conductor_eta=torch.tensor(CR[0]), conductor_k=torch.tensor(CR[1]))
        scene.add_mesh("ball", lg.SceneMesh(v, f, m))
        scene.add_light("sky", lg.EnvironmentLight(sky))
        with torch.no_grad():
            images.append(lg.render(scene, cam).rgb)
    assert float(images[1].mean()) > 0.05
    torch.testing.assert_close(images[0], images[1])


def test_lists_of_ints_and_pairs_set_one_at_a_time_are_accepted():
    """Review findings: ``Material(conductor_eta=[0, 0, 1], conductor_k=[3, 3, 3])`` (ints) is a floating
    conductor, and a valid pair set one value at a time (as a fit assigns parameters) passes through a pair that
    would reflect nothing head-on without an error; the renderer divides by at least ``MIN_HEAD_ON`` there."""
    m = Material(conductor_eta=[0, 0, 1], conductor_k=[3, 3, 3])
    assert m.conductor_eta.is_floating_point() and m.conductor_k.is_floating_point()
    m = Material(conductor_eta=torch.tensor([1.5] * 3), conductor_k=torch.zeros(3))
    m.conductor_eta = torch.ones(3)  # (eta 1, k 0 for a moment)
    m.conductor_k = torch.full((3,), 3.0)
    m.conductor_k = torch.zeros(3)  # (and an optimiser may leave it there: finite, bounded by 1 / MIN_HEAD_ON)
    si = _si(4, _dir(0.5), metal=((1.0,) * 3, (0.0,) * 3), tint=(1.0, 1.0, 1.0))
    f = ConductorBSDF().eval(si.replace(base_color=torch.full((4, 3), 0.5, dtype=DT)),
                             torch.nn.functional.normalize(torch.tensor([[-0.3, 0.2, 0.9]], dtype=DT), dim=-1))
    assert bool(torch.isfinite(f).all()) and float(f.abs().max()) < 1.0 / MIN_HEAD_ON
