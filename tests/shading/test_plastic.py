"""Mitsuba's plastic (``Material.plastic``, :mod:`lumigrad.shading.plastic`): the BSDF against Mitsuba's own
``roughplastic`` and ``plastic`` (when Mitsuba 3 is importable), its tables, and the usual plugin tests
(chi-square of ``sample`` against ``pdf``, ``pdf`` mass, ``weight = eval cos / pdf``, gradcheck, per-point
mixing with the glTF model)."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import MetallicRoughnessBSDF, SurfaceSample
from lumigrad.shading.plastic import (PLASTIC_TABLE, TABLE_SIZE, PerPointPlasticBSDF, PlasticBSDF, _albedo,
                                      material_plastic_table, plastic_table)

from ..conftest import mitsuba_scalar
from .chi2 import DT, FRAME, NORMAL, assert_chi2, bsdf_chi2, integrate_sphere
from .chi2 import direction as _dir, gen as _gen, uniform_lobe_and_direction as _uniform
from .chi2 import upper_directions as _directions


def _si(n, wo, base=(0.6, 0.3, 0.2), roughness=0.4, ior=1.49, beckmann=False, normal=NORMAL, table=None, **kw):
    rough = torch.tensor(float(roughness), dtype=DT)
    table = plastic_table(rough, torch.tensor(float(ior), dtype=DT), beckmann) if table is None else table
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=normal.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=torch.as_tensor(base, dtype=DT).expand(n, -1),
                         roughness=torch.full((n, 1), float(roughness), dtype=DT),
                         metallic=torch.zeros(n, 1, dtype=DT), ior=ior,
                         beckmann=torch.full((n, 1), float(beckmann), dtype=DT), plastic=table.expand(n, -1), **kw)


def _mitsuba():
    return mitsuba_scalar()



@pytest.mark.parametrize("distribution, alpha, eta, tolerance", [
    ("ggx", 0.2, 1.49, 2e-3), ("ggx", 0.6, 1.33, 2e-3), ("ggx", 0.05, 1.5, 2e-3),
    ("beckmann", 0.2, 1.49, 1e-2), ("beckmann", 0.6, 1.33, 1e-2)])
def test_eval_is_mitsubas_roughplastic(distribution, alpha, eta, tolerance):
    """Mitsuba's ``roughplastic.eval`` (with the cosine) at random directions: the specular lobe to float
    precision, the diffuse one to the albedo quadratures' agreement (GGX: Mitsuba's own grid, 0.06 %; Beckmann:
    ``D cos`` sampling against Mitsuba's visible normals, 0.6 %)."""
    mi = _mitsuba()
    bsdf = mi.load_dict({"type": "roughplastic", "distribution": distribution, "alpha": alpha, "int_ior": eta,
                         "ext_ior": 1.0, "diffuse_reflectance": {"type": "rgb", "value": [0.6, 0.3, 0.2]}})
    wo, wi = _directions(100, 1)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    ours = PlasticBSDF().eval(_si(100, wo, roughness=math.sqrt(alpha), ior=eta,
                                  beckmann=distribution == "beckmann", normal=z), wi)
    for k in range(100):
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(wo[k].tolist())
        si.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
        ref = [float(c) / float(wi[k, 2]) for c in bsdf.eval(mi.BSDFContext(), si, mi.Vector3f(wi[k].tolist()))]
        assert ours[k].tolist() == pytest.approx(ref, rel=tolerance, abs=1e-6), k


def test_smooth_plastic_is_mitsubas_plastic_away_from_the_mirror():
    """Roughness 0 stands in for Mitsuba's smooth ``plastic``: ``t = 1 - F`` and the exact internal reflectance;
    away from the mirror direction (where the sharp lobe is 0) ``eval`` is Mitsuba's diffuse part."""
    mi = _mitsuba()
    bsdf = mi.load_dict({"type": "plastic", "int_ior": 1.49, "ext_ior": 1.0,
                         "diffuse_reflectance": {"type": "rgb", "value": [0.6, 0.3, 0.2]}})
    wo, wi = _directions(60, 2)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    ours = PlasticBSDF().eval(_si(60, wo, roughness=0.0, ior=1.49, normal=z), wi)
    mirror = 2 * wo[:, 2:] * z - wo
    for k in range(60):
        if float((wi[k] * mirror[k]).sum()) > 0.99:
            continue
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(wo[k].tolist())
        si.sh_frame = mi.Frame3f(mi.Vector3f(0, 0, 1))
        ref = [float(c) / float(wi[k, 2]) for c in bsdf.eval(mi.BSDFContext(), si, mi.Vector3f(wi[k].tolist()))]
        assert ours[k].tolist() == pytest.approx(ref, rel=2e-3), k


def test_the_table_loses_what_masking_loses_and_is_differentiable():
    rough, ior = torch.tensor(0.7, dtype=DT, requires_grad=True), torch.tensor(1.5, dtype=DT, requires_grad=True)
    table = plastic_table(rough, ior)
    assert table.shape == (PLASTIC_TABLE,) and float(table[-1].detach()) == 1.0
    t, r_int = table[:TABLE_SIZE], table[TABLE_SIZE]
    mu = (torch.arange(TABLE_SIZE, dtype=DT) / (TABLE_SIZE - 1)).clamp_min(1e-6)
    reflected = _albedo(mu, rough.detach() ** 2, ior.detach(), False)
    assert bool((t >= 0).all()) and bool((t <= 1 - reflected + 1e-9).all())  # masking loses light: t <= 1 - R
    loss = 1 - reflected - t
    assert float(loss[1]) > 3 * float(loss[-1]) > 0  # mostly at grazing angles
    assert 0 < float(r_int) < 1
    (g_rough, g_ior) = torch.autograd.grad(t.sum() + r_int, (rough, ior))
    assert math.isfinite(float(g_rough)) and float(g_rough) < 0 and math.isfinite(float(g_ior))
    smooth = plastic_table(torch.tensor(0.0, dtype=DT), torch.tensor(1.5, dtype=DT))
    from lumigrad.shading.dielectric import fresnel_dielectric
    torch.testing.assert_close(smooth[:TABLE_SIZE], 1 - fresnel_dielectric(mu, 1.5)[0])


def test_tables_are_kept_per_tensor_version():
    rough, ior = torch.tensor(0.3), torch.tensor(1.5)
    a = material_plastic_table(rough, ior, False)
    assert material_plastic_table(rough, ior, False) is a
    rough.fill_(0.5)  # an in-place change: a new version, a new table
    b = material_plastic_table(rough, ior, False)
    assert b is not a and not torch.equal(a, b)


CASES = {"r0.3-wo30": dict(roughness=0.3, theta=math.radians(30)),
         "r0.7-wo75": dict(roughness=0.7, theta=math.radians(75)),
         "beckmann-r0.4-wo60": dict(roughness=0.4, theta=math.radians(60), beckmann=True),
         "white-r0.2-wo10": dict(roughness=0.2, theta=math.radians(10), base=(1.0, 1.0, 1.0))}


def _case(name):
    case = dict(CASES[name])
    wo = _dir(case.pop("theta"))
    return wo, case


@pytest.mark.parametrize("name", list(CASES))
def test_sample_follows_pdf(name):
    wo, case = _case(name)
    bsdf = PlasticBSDF()
    seed = 60 + list(CASES).index(name)
    result = bsdf_chi2(bsdf, lambda n: _si(n, wo, **case), seed)
    assert_chi2(result, f"plastic-{name}", tests=len(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_pdf_mass_weights_and_energy(name):
    wo, case = _case(name)
    bsdf = PlasticBSDF()
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, **case), d)[:, 0], FRAME, 60, 80, 12).sum())
    n = 50_000
    s = bsdf.sample(_si(n, wo, **case), *_uniform(n, 5))
    lost = float((s.pdf == 0).double().mean())
    assert mass <= 1 + 1e-3 and abs(mass + lost - 1) < 4 * math.sqrt(max(lost * (1 - lost), 1 / n) / n) + 2e-3
    ok = s.pdf[:, 0] > 0
    si = _si(n, wo, **case)
    torch.testing.assert_close(s.weight[ok], (bsdf.eval(si, s.wi) * (s.wi @ NORMAL)[:, None] / s.pdf)[ok])
    quad = float(integrate_sphere(lambda d: bsdf.eval(_si(d.shape[0], wo, **case), d).mean(-1) *
                                  (d @ NORMAL).clamp_min(0), FRAME, 80, 80, 12).sum())
    w = s.weight.mean(-1)
    assert abs(float(w.mean()) - quad) < 4 * float(w.std()) / math.sqrt(n) + 3e-3
    assert quad <= 1.0 + 2e-3  # a white plastic reflects at most what arrives


def test_gradcheck_eval_and_pdf_through_the_table():
    wo = _dir(0.7).expand(3, 3)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.5, 0.1, 0.8], [-0.3, -0.2, 0.9], [0.2, 0.4, 0.7]], dtype=DT)
                                       @ torch.linalg.inv(torch.eye(3, dtype=DT)), dim=-1)
    wi = torch.where((wi @ NORMAL)[:, None] > 0, wi, -wi).requires_grad_(True)
    base = torch.tensor([[0.6, 0.3, 0.2]] * 3, dtype=DT, requires_grad=True)
    rough = torch.tensor(0.5, dtype=DT, requires_grad=True)
    ior = torch.tensor(1.4, dtype=DT, requires_grad=True)
    import lumigrad.shading.plastic as P
    old, P.QUADRATURE = P.QUADRATURE, 12  # (a smaller grid for the checks' many evaluations)

    def fn(b, r, e, w):
        table = plastic_table(r, e, True)
        si = SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=NORMAL.expand(3, 3), wo=wo, base_color=b,
                           roughness=r.expand(3, 1), metallic=torch.zeros(3, 1, dtype=DT), ior=e.expand(3, 1),
                           beckmann=torch.ones(3, 1, dtype=DT), plastic=table.expand(3, -1))
        return PlasticBSDF().eval(si, w), PlasticBSDF().pdf(si, w)
    try:
        assert torch.autograd.gradcheck(fn, (base, rough, ior, wi))
    finally:
        P.QUADRATURE = old


def test_per_point_mixing_keeps_each_points_own_bsdf():
    n = 64
    wo = _dir(0.8)
    si = _si(n, wo)
    mask = (torch.arange(n) % 2 == 0)[:, None]
    mixed = si.replace(plastic=torch.where(mask, si.plastic, torch.zeros_like(si.plastic)))
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=_gen(4), dtype=DT), dim=-1)
    bsdf = PerPointPlasticBSDF(MetallicRoughnessBSDF())
    out = bsdf.eval(mixed, wi)
    torch.testing.assert_close(out[mask[:, 0]], PlasticBSDF().eval(si, wi)[mask[:, 0]])
    torch.testing.assert_close(out[~mask[:, 0]], MetallicRoughnessBSDF().eval(si, wi)[~mask[:, 0]])
    s = bsdf.sample(mixed, *_uniform(n, 6))
    a, b = PlasticBSDF().sample(si, *_uniform(n, 6)), MetallicRoughnessBSDF().sample(si, *_uniform(n, 6))
    torch.testing.assert_close(s.wi[mask[:, 0]], a.wi[mask[:, 0]])
    torch.testing.assert_close(s.wi[~mask[:, 0]], b.wi[~mask[:, 0]])
    assert isinstance(lg.shading.bsdf_for(mixed), PerPointPlasticBSDF)


def test_a_plastic_material_gives_its_table_and_refuses_a_roughness_texture():
    m = lg.shading.Material(plastic=True, metallic_factor=0.0, roughness_factor=0.5, ior=1.49)
    values = lg.shading.sample_material(m, shape=(2, 3))
    assert values["plastic"].shape == (2, 3, PLASTIC_TABLE) and bool((values["plastic"][..., -1] == 1).all())
    with pytest.raises(ValueError, match="roughness must be a factor"):
        lg.shading.sample_material(lg.shading.Material(plastic=True, metallic_roughness_texture=torch.rand(4, 4, 3)),
                                   uv=torch.rand(2, 3, 2))
    with pytest.raises(TypeError, match="plastic must be a bool"):
        lg.shading.Material(plastic="yes")


# Mitsuba 3.9.1's roughplastic.eval / cos (diffuse_reflectance (0.6, 0.3, 0.2), ext_ior 1), recorded with
# tests/shading/test_plastic.py's _mitsuba() so that a run without Mitsuba still checks the model.
_RECORDED = [
    ("ggx", 0.3, 1.49, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.1557779, 0.0900276, 0.0681108)),
    ("ggx", 0.3, 1.49, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.208624, 0.1470088, 0.1264704)),
    ("ggx", 0.3, 1.49, (0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.1380256, 0.0744568, 0.0532671)),
    ("beckmann", 0.2, 1.5, (0.3, 0.1, 0.9487), (-0.4, 0.2, 0.8944), (0.2259261, 0.1369538, 0.1072963)),
    ("beckmann", 0.2, 1.5, (0.8, 0.0, 0.6), (-0.7, 0.1, 0.7071), (0.3700177, 0.2847746, 0.2563603)),
    ("beckmann", 0.2, 1.5, (0.1, 0.6, 0.7937), (0.5, -0.5, 0.7071), (0.178208, 0.0908226, 0.0616941)),
]


@pytest.mark.parametrize("distribution, alpha, eta, wo, wi, expected", _RECORDED)
def test_eval_matches_recorded_mitsuba_values(distribution, alpha, eta, wo, wi, expected):
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    wo = torch.nn.functional.normalize(torch.tensor(wo, dtype=DT), dim=0)
    wi = torch.nn.functional.normalize(torch.tensor(wi, dtype=DT), dim=0)
    ours = PlasticBSDF().eval(_si(1, wo, roughness=math.sqrt(alpha), ior=eta, beckmann=distribution == "beckmann",
                                  normal=z), wi[None])
    assert ours[0].tolist() == pytest.approx(list(expected), rel=5e-3)


def test_degenerate_normals_and_directions_stay_finite_next_to_plastic_points():
    """A zero or NaN normal on a glTF point beside plastic points (the per-point BSDF evaluates both models
    everywhere): no crash, finite values on the plastic points."""
    n = 6
    si = _si(n, _dir(0.5))
    normal = si.normal.clone()
    normal[0] = 0.0
    normal[1] = float("nan")
    mixed = si.replace(normal=normal, plastic=torch.where(torch.arange(n)[:, None] >= 2, si.plastic,
                                                          torch.zeros_like(si.plastic)))
    bsdf = PerPointPlasticBSDF(MetallicRoughnessBSDF())
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=_gen(8), dtype=DT), dim=-1)
    out = bsdf.eval(mixed, wi)
    assert torch.isfinite(out[2:]).all()
    s = bsdf.sample(mixed, *_uniform(n, 9))
    assert torch.isfinite(s.weight[2:]).all()


def test_a_smooth_plastic_at_a_high_ior_stays_physical():
    """Beyond the diffuse-Fresnel fit's range (it passes 1 at ior 3.9) the internal reflectance is integrated: a
    white smooth plastic reflects at most what arrives, positive everywhere."""
    for ior in (2.5, 3.9, 5.0):
        table = plastic_table(torch.tensor(0.0, dtype=DT), torch.tensor(ior, dtype=DT))
        assert 0 < float(table[TABLE_SIZE]) < 1
        wo = _dir(0.4)
        mc = PlasticBSDF().sample(_si(20_000, wo, base=(1.0, 1.0, 1.0), roughness=0.0, ior=ior, table=table),
                                  *_uniform(20_000, 10)).weight.mean()
        assert 0 < float(mc) <= 1.0 + 0.02, ior


def test_materials_made_under_inference_mode_give_tables():
    with torch.inference_mode():
        m = lg.shading.Material(plastic=True, metallic_factor=0.0, roughness_factor=0.3)
        assert lg.shading.sample_material(m, shape=(1, 2))["plastic"].shape == (1, 2, PLASTIC_TABLE)


def test_plastic_points_beside_glass_keep_its_delta_and_transmission_flags():
    """The per-point BSDF around the transmitting model: glass points keep their delta lobes, crossings and
    ``eta``; plastic points are never delta or transmitting."""
    from lumigrad.shading.transmission import MetallicRoughnessTransmissionBSDF
    n = 400
    si = _si(n, _dir(0.6), roughness=0.0, transmission=torch.ones(n, 1, dtype=DT), thin=torch.ones(n, 1, dtype=DT))
    plastic = (torch.arange(n) % 2 == 0)[:, None]
    mixed = si.replace(plastic=torch.where(plastic, si.plastic, torch.zeros_like(si.plastic)))
    s = PerPointPlasticBSDF(MetallicRoughnessTransmissionBSDF()).sample(mixed, *_uniform(n, 11))
    assert not bool(s.is_delta[plastic].any()) and not bool(s.is_transmission[plastic].any())
    assert bool((s.eta[plastic] == 1).all())
    glass = ~plastic[:, 0]
    assert bool(s.is_delta[glass].all()) and 0 < int(s.is_transmission[glass].sum()) < int(glass.sum())


def test_one_view_and_light_direction_broadcast_over_the_points():
    """``wo`` and ``wi`` of one row against ``[N]`` normals (an orthographic view under a directional light):
    ``eval`` and ``pdf`` broadcast to ``[N]`` rows, each equal to the row evaluated alone."""
    N = 4
    table = plastic_table(torch.tensor(0.3, dtype=DT), torch.tensor(1.5, dtype=DT))
    n = torch.nn.functional.normalize(torch.rand(N, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
                                      + torch.tensor([0.0, 0.0, 3.0], dtype=DT), dim=-1)
    wo = torch.nn.functional.normalize(torch.tensor([[0.2, 0.1, 1.0]], dtype=DT), dim=-1)
    wi = torch.nn.functional.normalize(torch.tensor([[-0.3, 0.2, 1.0]], dtype=DT), dim=-1)

    def point(normal, view):
        rows = normal.shape[0]
        return SurfaceSample(position=torch.zeros(rows, 3, dtype=DT), normal=normal, wo=view,
                             base_color=torch.full((rows, 3), 0.5, dtype=DT),
                             roughness=torch.full((rows, 1), 0.3, dtype=DT), metallic=torch.zeros(rows, 1, dtype=DT),
                             ior=1.5, plastic=table.expand(rows, -1))
    bsdf = PlasticBSDF()
    f, pdf = bsdf.eval(point(n, wo), wi), bsdf.pdf(point(n, wo), wi)
    assert f.shape == (N, 3) and pdf.shape == (N, 1)
    for k in range(N):
        assert torch.allclose(f[k], bsdf.eval(point(n[k:k + 1], wo), wi)[0])
        assert torch.allclose(pdf[k], bsdf.pdf(point(n[k:k + 1], wo), wi)[0])
