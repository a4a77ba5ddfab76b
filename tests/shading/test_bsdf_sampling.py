"""BSDF eval / sample / pdf tested as Mitsuba tests its plugins: chi-square goodness-of-fit of ``sample``
against ``pdf``, ``pdf`` integrating to 1, white-furnace energy, reciprocity, ``weight = eval cos / pdf``,
``eval`` equal to the raster BRDF, and gradients by gradcheck."""

import math

import pytest
import torch

from lumigrad.shading import (BSDF, DiffuseBSDF, MetallicRoughnessBSDF, SurfaceSample, metallic_roughness,
                              metallic_roughness_pdf, metallic_roughness_sample)
from lumigrad.shading.deferred import shade_direct_unchecked
from lumigrad.shading.lights import directional_light
from lumigrad.shading.warps import cosine_hemisphere, ggx_visible_normal, local_frame

from .chi2 import bsdf_sampler as _sampler, uniform_lobe_and_direction as _uniform
from .chi2 import DT, FRAME, GRID, NORMAL, assert_chi2, chi2_sphere, frame_from_axis, integrate_sphere
from .chi2 import direction as _view, gen as _gen





def _si(n, wo, base=(0.8, 0.5, 0.3), roughness=0.5, metallic=0.0, ior=1.5, **kw):
    base = torch.as_tensor(base, dtype=DT).expand(n, -1) if torch.as_tensor(base).dim() else \
        torch.full((n, 1), float(base), dtype=DT)
    return SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo.expand(n, 3),
                         base_color=base, roughness=torch.full((n, 1), float(roughness), dtype=DT),
                         metallic=torch.full((n, 1), float(metallic), dtype=DT), ior=ior, **kw)


# ------------------------------------------------------------------------------------------------ chi-square
CHI2_CASES = {
    "dielectric-rough0.5-wo40": dict(roughness=0.5, metallic=0.0, theta=math.radians(40)),
    "metal-rough0.3-wo60": dict(roughness=0.3, metallic=1.0, theta=math.radians(60)),
    "mixed-rough0.8-wo80": dict(roughness=0.8, metallic=0.5, theta=math.radians(80)),
    "dielectric-rough0.2-wo0": dict(roughness=0.2, metallic=0.0, theta=0.0, base=(0.05, 0.05, 0.05)),
}


@pytest.mark.parametrize("name", list(CHI2_CASES))
def test_metallic_roughness_sample_follows_its_pdf(name):
    case = dict(CHI2_CASES[name])
    wo = _view(case.pop("theta"))
    bsdf = MetallicRoughnessBSDF()
    result = chi2_sphere(_sampler(bsdf, lambda n: _si(n, wo, **case), seed=1),
                         lambda d: bsdf.pdf(_si(d.shape[0], wo, **case), d)[:, 0], frame=GRID)
    assert_chi2(result, f"bsdf-{name}", tests=len(CHI2_CASES) + 1)


def test_diffuse_sample_follows_its_pdf():
    wo = _view(0.5)
    bsdf = DiffuseBSDF()
    result = chi2_sphere(_sampler(bsdf, lambda n: _si(n, wo), seed=2),
                         lambda d: bsdf.pdf(_si(d.shape[0], wo), d)[:, 0], frame=GRID)
    assert result.invalid == (0, pytest.approx(0.0, abs=2.0))
    assert_chi2(result, "bsdf-diffuse", tests=len(CHI2_CASES) + 1)


def test_chi2_rejects_a_wrong_pdf():
    # The test has power: the GGX sampler checked against a pdf with a 20 % wider lobe fails.
    wo = _view(math.radians(30))
    bsdf = MetallicRoughnessBSDF()
    result = chi2_sphere(_sampler(bsdf, lambda n: _si(n, wo, roughness=0.4, metallic=1.0), seed=3),
                         lambda d: bsdf.pdf(_si(d.shape[0], wo, roughness=0.4 * 1.1, metallic=1.0), d)[:, 0],
                         frame=GRID, samples=50_000)
    assert not result.passes(tests=len(CHI2_CASES) + 1)


# ------------------------------------------------------------------------------------- pdf mass and energy
@pytest.mark.parametrize("roughness, metallic, theta", [(0.5, 0.0, 0.0), (0.3, 1.0, 1.2), (0.9, 0.3, 1.45)])
def test_pdf_integrates_to_one_minus_the_mass_sampled_below_the_horizon(roughness, metallic, theta):
    wo = _view(theta)
    bsdf = MetallicRoughnessBSDF()
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, roughness=roughness, metallic=metallic),
                                                     d)[:, 0], FRAME, 40, 80, 10).sum())
    n = 100_000
    s = bsdf.sample(_si(n, wo, roughness=roughness, metallic=metallic), *_uniform(n, 4))
    lost = float((s.pdf == 0).double().mean())
    sigma = math.sqrt(max(lost * (1 - lost), 1 / n) / n)
    assert mass <= 1 + 1e-4
    assert abs(mass + lost - 1) < 4 * sigma + 1e-4, (mass, lost)


def test_diffuse_and_lambertian_pdfs_integrate_to_one():
    wo = _view(0.3)
    mass_d = integrate_sphere(lambda d: DiffuseBSDF().pdf(_si(d.shape[0], wo), d)[:, 0], FRAME, 40, 80, 8).sum()
    # metallic 0, specular_f0 0, normal incidence: the mixture is pure cosine sampling (p_spec = 0).
    wo = NORMAL
    mass_m = integrate_sphere(lambda d: MetallicRoughnessBSDF().pdf(
        _si(d.shape[0], wo, specular_f0=torch.zeros(1, dtype=DT)), d)[:, 0], FRAME, 40, 80, 8).sum()
    assert float(mass_d) == pytest.approx(1.0, abs=1e-6)
    assert float(mass_m) == pytest.approx(1.0, abs=1e-6)


def _albedo(bsdf, si_fn, n=40_000, seed=5):
    """Directional albedo by sampling (mean weight, its standard error) and by quadrature of eval * cos."""
    s = bsdf.sample(si_fn(n), *_uniform(n, seed))
    w = s.weight.mean(-1)
    mc, err = float(w.mean()), float(w.std() / math.sqrt(n))

    def integrand(d):
        return (bsdf.eval(si_fn(d.shape[0]), d).mean(-1) * (d @ NORMAL).clamp_min(0))
    quad = float(integrate_sphere(integrand, FRAME, 60, 60, 8).sum())
    return mc, err, quad


@pytest.mark.parametrize("roughness, theta", [(0.2, 0.0), (0.5, 0.8), (1.0, 1.3)])
def test_white_furnace_metal_reflects_at_most_everything(roughness, theta):
    wo = _view(theta)
    mc, err, quad = _albedo(MetallicRoughnessBSDF(), lambda n: _si(n, wo, base=1.0, roughness=roughness, metallic=1.0))
    assert quad <= 1 + 1e-3 and mc <= 1 + 4 * err
    assert abs(mc - quad) < 4 * err + 2e-3, (mc, err, quad)  # the sample weights estimate the same integral
    if roughness <= 0.2:
        assert quad > 0.97  # a smooth metal loses little to single scattering


def test_white_furnace_dielectric_conserves_energy_near_normal_view():
    wo = _view(0.3)
    mc, err, quad = _albedo(MetallicRoughnessBSDF(), lambda n: _si(n, wo, base=1.0, roughness=0.5, metallic=0.0))
    assert 0.9 < quad <= 1.005  # documented: within 0.5 % up to ~35 degrees
    assert abs(mc - quad) < 4 * err + 2e-3


def test_white_furnace_diffuse_albedo_one_reflects_one():
    wo = _view(1.0)
    mc, err, quad = _albedo(DiffuseBSDF(), lambda n: _si(n, wo, base=1.0))
    assert mc == pytest.approx(1.0, abs=1e-12)  # every weight is exactly the albedo
    assert quad == pytest.approx(1.0, abs=2e-3)


# ----------------------------------------------------------------------------- reciprocity and consistency
def _random_pairs(n, seed):
    g = _gen(seed)
    local = torch.randn(2, n, 3, generator=g, dtype=DT)
    local[..., 2] = local[..., 2].abs() + 0.05
    local = local / local.norm(dim=-1, keepdim=True)
    return local[0] @ FRAME, local[1] @ FRAME


def test_eval_is_reciprocal():
    a, b = _random_pairs(64, 6)
    g = _gen(7)
    base = torch.rand(64, 3, generator=g, dtype=DT)
    rough = torch.rand(64, 1, generator=g, dtype=DT)
    metal = torch.rand(64, 1, generator=g, dtype=DT)

    def si(wo):
        return SurfaceSample(position=torch.zeros(64, 3, dtype=DT), normal=NORMAL.expand(64, 3), wo=wo,
                             base_color=base, roughness=rough, metallic=metal, ior=1.7)
    for bsdf in (MetallicRoughnessBSDF(), DiffuseBSDF()):
        torch.testing.assert_close(bsdf.eval(si(a), b), bsdf.eval(si(b), a), rtol=1e-12, atol=0)


@pytest.mark.parametrize("bsdf", [MetallicRoughnessBSDF(), DiffuseBSDF()], ids=["metallic-roughness", "diffuse"])
def test_sample_weight_is_eval_cos_over_pdf(bsdf):
    n = 2000
    g = _gen(8)
    wo = _random_pairs(n, 9)[0]
    si = SurfaceSample(position=torch.zeros(n, 3, dtype=DT), normal=NORMAL.expand(n, 3), wo=wo,
                       base_color=torch.rand(n, 3, generator=g, dtype=DT),
                       roughness=0.05 + 0.95 * torch.rand(n, 1, generator=g, dtype=DT),
                       metallic=torch.rand(n, 1, generator=g, dtype=DT))
    s = bsdf.sample(si, *_uniform(n, 10))
    assert s.wi.shape == (n, 3) and s.weight.shape == (n, 3) and s.pdf.shape == (n, 1)
    torch.testing.assert_close(s.wi.norm(dim=-1), torch.ones(n, dtype=DT))
    torch.testing.assert_close(s.pdf, bsdf.pdf(si, s.wi), rtol=1e-10, atol=0)
    ok = s.pdf[:, 0] > 0
    expected = bsdf.eval(si, s.wi) * (s.wi @ NORMAL).clamp_min(0)[:, None] / s.pdf
    torch.testing.assert_close(s.weight[ok], expected[ok], rtol=1e-10, atol=0)
    assert bool((s.weight[~ok] == 0).all()) and bool(torch.isfinite(s.weight).all())


def test_eval_is_the_raster_brdf_bit_for_bit():
    a, b = _random_pairs(50, 11)
    g = _gen(12)
    base, rough, metal = (torch.rand(50, c, generator=g, dtype=DT) for c in (3, 1, 1))
    ior = 1 + torch.rand(50, 1, generator=g, dtype=DT)
    si = SurfaceSample(position=torch.zeros(50, 3, dtype=DT), normal=NORMAL.expand(50, 3) * 1.3, wo=a * 2.0,
                       base_color=base, roughness=rough, metallic=metal, ior=ior)
    assert torch.equal(MetallicRoughnessBSDF().eval(si, b),
                       metallic_roughness(NORMAL * 1.3, b, a * 2.0, base, rough, metal, ior=ior))
    # The functional sampling ops agree with the methods (they are what the methods call).
    torch.testing.assert_close(metallic_roughness_pdf(NORMAL, b, a, base, rough, metal, ior=ior),
                               MetallicRoughnessBSDF().pdf(si, b), rtol=1e-12, atol=0)
    u1, u2 = _uniform(50, 13)
    s = metallic_roughness_sample(NORMAL, a, base, rough, metal, u1, u2, ior=ior)
    torch.testing.assert_close(s.wi, MetallicRoughnessBSDF().sample(si, u1, u2).wi, rtol=1e-12, atol=1e-15)


def test_deferred_shading_reflects_through_the_bsdf_it_is_given():
    # The raster seam: shade_direct_unchecked calls bsdf.eval per light sample (default metallic-roughness).
    n = 16
    wo, wi = _random_pairs(n, 14)
    si = _si(n, wo, roughness=0.6, metallic=0.2)
    light = directional_light(si.position, -wi, torch.tensor([2.0, 1.0, 0.5], dtype=DT))
    cos = (wi @ NORMAL)[:, None]
    torch.testing.assert_close(shade_direct_unchecked(si, [light]),
                               MetallicRoughnessBSDF().eval(si, wi) * light.L * cos, rtol=1e-12, atol=0)
    torch.testing.assert_close(shade_direct_unchecked(si, [light], bsdf=DiffuseBSDF()),
                               si.base_color / math.pi * light.L * cos, rtol=1e-12, atol=0)
    assert isinstance(MetallicRoughnessBSDF(), BSDF) and isinstance(DiffuseBSDF(), BSDF)


def test_warps_basic_properties():
    u = torch.rand(1000, 2, generator=_gen(15), dtype=DT)
    d = cosine_hemisphere(u)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(1000, dtype=DT))
    assert bool((d[:, 2] > 0).all())
    n = torch.nn.functional.normalize(torch.randn(1000, 3, generator=_gen(16), dtype=DT), dim=-1)
    t, b = local_frame(n)
    torch.testing.assert_close(torch.linalg.cross(t, b, dim=-1), n)
    torch.testing.assert_close((t * n).sum(-1), torch.zeros(1000, dtype=DT), atol=1e-12, rtol=0)
    wo = torch.nn.functional.normalize(torch.tensor([0.5, 0.1, 0.6], dtype=DT), dim=0).expand(1000, 3)
    h = ggx_visible_normal(wo, torch.tensor([0.3], dtype=DT), u)
    assert bool(((h * wo).sum(-1) >= 0).all()) and bool((h[:, 2] >= 0).all())


# ------------------------------------------------------------------------------------------------ gradients
def _tiny(requires=("base_color", "roughness", "metallic")):
    g = _gen(17)
    vals = dict(base_color=0.2 + 0.6 * torch.rand(3, 3, generator=g, dtype=DT),
                roughness=0.3 + 0.5 * torch.rand(3, 1, generator=g, dtype=DT),
                metallic=0.2 + 0.6 * torch.rand(3, 1, generator=g, dtype=DT))
    for k in requires:
        vals[k].requires_grad_(True)
    wo, wi = _random_pairs(3, 18)
    return vals, wo, wi


def _make(vals, wo):
    return SurfaceSample(position=torch.zeros(3, 3, dtype=DT), normal=NORMAL.expand(3, 3), wo=wo, **vals)


def test_gradcheck_eval_and_pdf():
    vals, wo, wi = _tiny()
    bsdf = MetallicRoughnessBSDF()

    def fn(base, rough, metal):
        si = _make(dict(base_color=base, roughness=rough, metallic=metal), wo)
        return bsdf.eval(si, wi), bsdf.pdf(si, wi)
    assert torch.autograd.gradcheck(fn, (vals["base_color"], vals["roughness"], vals["metallic"]))


def test_gradcheck_sample_reparameterised_in_roughness():
    vals, wo, _ = _tiny(requires=("roughness",))
    u2 = torch.tensor([[0.3, 0.2], [0.7, 0.9], [0.5, 0.4]], dtype=DT)
    u1 = torch.full((3, 1), 0.01, dtype=DT)  # the specular lobe, far from the lobe boundary (p_spec > 0.01)

    def fn(rough):
        s = MetallicRoughnessBSDF().sample(_make(dict(vals, roughness=rough), wo), u1, u2)
        return s.wi, s.weight, s.pdf
    wi, _, pdf = fn(vals["roughness"])
    assert bool((pdf > 0).all())
    assert torch.autograd.gradcheck(fn, (vals["roughness"],))
    # The direction really moves with roughness (a reparameterisation, not a detached sample).
    (g,) = torch.autograd.grad(wi.sum(), vals["roughness"])
    assert float(g.abs().min()) > 1e-3


# ------------------------------------------------------------------------------------------------ bad input
def test_surface_sample_checks_structure_and_values():
    z = torch.tensor([[0.0, 0.0, 1.0]], dtype=DT)
    ok = dict(position=torch.zeros(1, 3, dtype=DT), normal=z, wo=z, base_color=torch.full((1, 3), 0.5, dtype=DT),
              roughness=torch.full((1, 1), 0.5, dtype=DT), metallic=torch.zeros(1, 1, dtype=DT))
    with pytest.raises(ValueError, match="roughness must have shape"):
        SurfaceSample(**dict(ok, roughness=torch.zeros(1, 2, dtype=DT)))
    with pytest.raises(ValueError, match="metallic"):
        SurfaceSample(**dict(ok, position=torch.zeros(2, 3, dtype=DT), metallic=torch.zeros(4, 1, dtype=DT)))
    with pytest.raises(TypeError, match="base_color must be a torch.Tensor"):
        SurfaceSample(**dict(ok, base_color=[0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="roughness must be in"):
        SurfaceSample(**dict(ok, roughness=torch.full((1, 1), 1.5, dtype=DT))).validate()
    with pytest.raises(ValueError, match="wo must have non-zero length"):
        SurfaceSample(**dict(ok, wo=torch.zeros(1, 3, dtype=DT))).validate()
    with pytest.raises(ValueError, match="normal contains NaN"):
        SurfaceSample(**dict(ok, normal=torch.full((1, 3), math.nan, dtype=DT))).validate()
    si = SurfaceSample(**ok).validate()
    assert si.map(lambda t: t.expand(4, t.shape[-1])).batch_shape == (4,)
    assert si.replace(wo=-z).wo[0, 2] == -1
    with pytest.raises(TypeError, match="si must be a SurfaceSample"):
        MetallicRoughnessBSDF().eval({"base_color": z}, z)
    with pytest.raises(ValueError, match="u2 must have shape"):
        MetallicRoughnessBSDF().sample(si, torch.zeros(1, 1, dtype=DT), torch.zeros(1, 3, dtype=DT))
    with pytest.raises(ValueError, match="u1 must lie in"):
        metallic_roughness_sample(z, z, 0.5, 0.5, 0.0, torch.full((1, 1), 1.5, dtype=DT), torch.zeros(1, 2, dtype=DT))
    with pytest.raises(ValueError, match="roughness must be in"):
        metallic_roughness_pdf(z, z, z, 0.5, 2.0, 0.0)


def test_surface_sample_from_material_dict():
    z = torch.tensor([[0.0, 0.0, 1.0]], dtype=DT)
    material = {"base_color": torch.full((1, 3), 0.5, dtype=DT), "roughness": torch.ones(1, 1, dtype=DT),
                "metallic": torch.zeros(1, 1, dtype=DT), "occlusion": torch.ones(1, 1, dtype=DT),
                "normal_tangent": torch.zeros(1, 3, dtype=DT), "ior": 1.4}
    si = SurfaceSample.from_material(torch.zeros(1, 3, dtype=DT), z, z, material)
    assert si.ior == 1.4 and si.occlusion is material["occlusion"] and si.emission is None
    with pytest.raises(ValueError, match="material has no 'metallic'"):
        SurfaceSample.from_material(torch.zeros(1, 3, dtype=DT), z, z, {"base_color": z, "roughness": z[:, :1]})
