"""KHR_materials_specular's specular weight: the dielectric coat ``(1 - s F) c / pi + s F DV`` of the glTF BSDF.

A float64 reference written here from the extension's text, the Lambertian limit (``s = 0``, no metal) exactly,
``s = 1`` bit for bit the core glTF model, sampling that follows its density (chi-square), gradients
(gradcheck) and the checks of bad values; the material, G-buffer and raster plumbing of ``specular_factor``.
"""

import math

import pytest
import torch

from lumigrad.shading import (Material, MetallicRoughnessBSDF, SurfaceSample, metallic_roughness,
                              metallic_roughness_pdf, metallic_roughness_sample, sample_material)
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.material import has_specular_weight
from lumigrad.shading.lights import PunctualLights

from .chi2 import DT, FRAME, GRID, NORMAL, assert_chi2, chi2_sphere, integrate_sphere
from .chi2 import direction as _view, gen as _gen


def _directions(n, seed):
    g = _gen(seed)
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DT), dim=-1)
    wo = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DT), dim=-1)
    wi[:, 2] = wi[:, 2].abs() + 0.05
    wo[:, 2] = wo[:, 2].abs() + 0.05
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    return z.expand(n, 3), torch.nn.functional.normalize(wi, dim=-1), torch.nn.functional.normalize(wo, dim=-1)


def _reference(n, wi, wo, c, r, m, s, ior=1.5):
    """The extension's fresnel_mix over glTF's specular_brdf and diffuse_brdf, mixed with the metal (float64)."""
    h = torch.nn.functional.normalize(wi + wo, dim=-1)
    nl, nv = (n * wi).sum(-1, keepdim=True), (n * wo).sum(-1, keepdim=True)
    nh, vh = (n * h).sum(-1, keepdim=True), (wo * h).sum(-1, keepdim=True)
    a2 = max(r * r, 1e-3) ** 2
    d = a2 / (math.pi * (nh * nh * (a2 - 1) + 1) ** 2)
    v = 0.5 / (nl * torch.sqrt(nv * nv * (1 - a2) + a2) + nv * torch.sqrt(nl * nl * (1 - a2) + a2))
    f0 = ((ior - 1) / (ior + 1)) ** 2
    fr = f0 + (1 - f0) * (1 - vh.abs()) ** 5
    dielectric = (1 - s * fr) * c / math.pi + s * fr * d * v
    metal = (c + (1 - c) * (1 - vh.abs()) ** 5) * d * v
    return (1 - m) * dielectric + m * metal


@pytest.mark.parametrize("s, m, r", [(0.0, 0.0, 1.0), (0.3, 0.0, 0.5), (0.7, 0.4, 0.3), (1.0, 0.2, 0.8)])
def test_eval_is_the_extensions_fresnel_mix(s, m, r):
    n, wi, wo = _directions(64, 1)
    c = torch.rand(64, 3, generator=_gen(2), dtype=DT)
    got = metallic_roughness(n, wi, wo, c, r, m, specular=s)
    torch.testing.assert_close(got, _reference(n, wi, wo, c, r, m, s), rtol=1e-12, atol=1e-12)


def test_no_coat_and_no_metal_is_lambert_exactly():
    n, wi, wo = _directions(256, 3)
    c = torch.rand(256, 3, generator=_gen(4), dtype=DT)
    for dtype in (torch.float64, torch.float32):
        args = [t.to(dtype) for t in (n, wi, wo, c)]
        assert torch.equal(metallic_roughness(*args, 1.0, 0.0, specular=0.0), args[3] / math.pi)
        rtol = 1e-15 if dtype == torch.float64 else 5e-7  # (the directions are normalised again: rounding)
        pdf = metallic_roughness_pdf(*args, 1.0, 0.0, specular=0.0)
        torch.testing.assert_close(pdf, (args[0] * args[1]).sum(-1, keepdim=True) / math.pi, rtol=rtol, atol=0)
        u = torch.rand(256, 3, generator=_gen(5), dtype=dtype)
        s = metallic_roughness_sample(args[0], args[2], args[3], 1.0, 0.0, u[:, :1], u[:, 1:], specular=0.0)
        cos = (args[0] * s.wi).sum(-1, keepdim=True)
        torch.testing.assert_close(s.pdf, cos / math.pi, rtol=rtol, atol=0)  # cosine sampling only
        torch.testing.assert_close(s.weight, args[3].expand_as(s.weight), rtol=rtol, atol=0)  # weight = albedo


def test_weight_one_is_the_core_gltf_model_bit_for_bit():
    n, wi, wo = _directions(128, 6)
    c = torch.rand(128, 3, generator=_gen(7), dtype=DT)
    one = torch.ones(128, 1, dtype=DT)
    assert torch.equal(metallic_roughness(n, wi, wo, c, 0.4, 0.3, specular=one),
                       metallic_roughness(n, wi, wo, c, 0.4, 0.3))
    assert torch.equal(metallic_roughness_pdf(n, wi, wo, c, 0.4, 0.3, specular=one),
                       metallic_roughness_pdf(n, wi, wo, c, 0.4, 0.3))
    u = torch.rand(128, 3, generator=_gen(8), dtype=DT)
    a = metallic_roughness_sample(n, wo, c, 0.4, 0.3, u[:, :1], u[:, 1:], specular=one)
    b = metallic_roughness_sample(n, wo, c, 0.4, 0.3, u[:, :1], u[:, 1:])
    assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3]))


def _si(k, wo, specular, roughness=0.4, metallic=0.0):
    return SurfaceSample(position=torch.zeros(k, 3, dtype=DT), normal=NORMAL.expand(k, 3), wo=wo.expand(k, 3),
                         base_color=torch.tensor([[0.8, 0.5, 0.3]], dtype=DT).expand(k, 3),
                         roughness=torch.full((k, 1), roughness, dtype=DT),
                         metallic=torch.full((k, 1), metallic, dtype=DT),
                         specular=torch.full((k, 1), specular, dtype=DT))


@pytest.mark.parametrize("specular, metallic", [(0.3, 0.0), (0.6, 0.5)])
def test_sample_follows_its_pdf_and_the_pdf_is_a_density(specular, metallic):
    wo = _view(math.radians(50))
    bsdf = MetallicRoughnessBSDF()

    def sample(k):
        u = torch.rand(k, 3, generator=_gen(9), dtype=DT)
        s = bsdf.sample(_si(k, wo, specular, metallic=metallic), u[:, :1], u[:, 1:])
        return s.wi, s.pdf[:, 0] > 0
    result = chi2_sphere(sample, lambda d: bsdf.pdf(_si(d.shape[0], wo, specular, metallic=metallic), d)[:, 0],
                         frame=GRID)
    assert_chi2(result, f"bsdf-specular-{specular}-{metallic}", tests=2)
    mass = float(integrate_sphere(lambda d: bsdf.pdf(_si(d.shape[0], wo, specular, metallic=metallic), d)[:, 0],
                                  FRAME, 40, 80, 10).sum())
    assert 0.9 < mass <= 1 + 1e-4


def test_gradcheck_eval_pdf_and_sample_weight_in_the_specular_weight():
    n, wi, wo = _directions(3, 10)
    c = torch.tensor([[0.8, 0.5, 0.3], [0.2, 0.9, 0.4], [0.6, 0.6, 0.6]], dtype=DT, requires_grad=True)
    s = torch.tensor([[0.05], [0.4], [0.95]], dtype=DT, requires_grad=True)
    m = torch.tensor([[0.02], [0.3], [0.1]], dtype=DT, requires_grad=True)
    u1 = torch.tensor([[0.9], [0.95], [0.99]], dtype=DT)  # the diffuse lobe, far from the lobe boundary
    u2 = torch.tensor([[0.3, 0.2], [0.7, 0.9], [0.5, 0.4]], dtype=DT)

    def fn(c, s, m):
        f = metallic_roughness(n, wi, wo, c, 0.5, m, specular=s)
        pdf = metallic_roughness_pdf(n, wi, wo, c, 0.5, m, specular=s)
        sample = metallic_roughness_sample(n, wo, c, 0.5, m, u1, u2, specular=s)
        return f, pdf, sample.weight, sample.pdf
    assert torch.autograd.gradcheck(fn, (c, s, m))
    # the weight matters: d f / d s = (DV - c / pi) (1 - m) F, non-zero
    (g,) = torch.autograd.grad(fn(c, s, m)[0].sum(), s)
    assert float(g.abs().min()) > 1e-4


@pytest.mark.parametrize("value", [1.5, -0.25, float("nan")])
def test_bad_specular_weights_are_refused_naming_the_argument(value):
    z = torch.tensor([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="specular"):
        metallic_roughness(z, z, z, torch.ones(3), 0.5, 0.0, specular=torch.tensor([value]))
    with pytest.raises(ValueError, match="specular_factor"):
        Material(specular_factor=value)


def test_material_lists_samples_and_defaults_the_specular_factor():
    m = Material(metallic_factor=0.0, specular_factor=0.25)
    assert "specular_factor" in m.parameters() and float(m.specular_factor) == 0.25
    assert float(Material().specular_factor) == 1.0  # the core glTF coat
    values = sample_material(m, shape=(2, 3))
    assert values["specular"].shape == (2, 3, 1) and bool((values["specular"] == 0.25).all())


def test_raster_point_lights_shade_a_weighted_coat_as_the_reference():
    """The fused point-light kernel takes the specular weight: a weight other than 1 shades as the PyTorch
    reference (to float64 rounding; ``test_punctual_specular.py`` checks every kernel form and the gradients)."""
    k = 32
    n, _, wo = _directions(k, 11)
    c = torch.rand(k, 3, generator=_gen(12), dtype=DT)
    t = lambda *v: torch.tensor(v, dtype=DT)  # noqa: E731
    lights = PunctualLights.of(points=[(t(0.3, 0.2, 2.0), t(2.0, 2.0, 2.0)), (t(-1.0, 0.5, 1.5), t(1.0, 0.5, 0.2))])
    for value in (0.0, 0.6):
        si = SurfaceSample(position=torch.zeros(k, 3, dtype=DT), normal=n, wo=wo, base_color=c,
                           roughness=torch.full((k, 1), 0.5, dtype=DT), metallic=torch.zeros(k, 1, dtype=DT),
                           specular=torch.full((k, 1), value, dtype=DT))
        fused = shade_punctual_unchecked(si, lights)
        reference = shade_punctual_unchecked(si, lights, use_fused=False)
        assert float((fused - reference).abs().max()) <= 1e-12 * float(reference.abs().max())
        coreless = shade_punctual_unchecked(si.replace(specular=None), lights, use_fused=False)
        assert not torch.allclose(fused, coreless)  # the weight is applied


def test_has_specular_weight_reads_the_factor_once_per_version():
    m = Material(metallic_factor=0.0)
    assert not has_specular_weight(m)
    with torch.no_grad():
        m.specular_factor.fill_(0.5)  # an in-place change bumps the version: read again
    assert has_specular_weight(m)
    m.specular_factor = torch.tensor(1.0, requires_grad=True)  # a weight to differentiate
    assert has_specular_weight(m)


def test_the_raster_integrator_shades_and_differentiates_the_specular_weight():
    import lumigrad as lg
    verts, faces = lg.geometry.icosphere(2)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=24, height=24, fov_y=0.6)

    def render(material):
        scene = lg.Scene()
        scene.add_mesh("ball", lg.SceneMesh(verts, faces, material))
        scene.add_light("key", lg.PointLight(torch.tensor([1.0, 1.5, -2.0]), 6.0))
        return lg.render(scene, cam).rgb

    base = dict(base_color_factor=torch.tensor([0.6, 0.5, 0.4, 1.0]), metallic_factor=0.0, roughness_factor=0.3)
    core, lambert = render(Material(**base)), render(Material(**base, specular_factor=0.0))
    assert float((core - lambert).abs().max()) > 1e-2  # the highlight is gone
    weight = torch.tensor(0.5, requires_grad=True)
    image = render(Material(**base, specular_factor=weight))
    (g,) = torch.autograd.grad(image.sum(), weight)
    assert float(g) > 0  # more coat, a brighter highlight than the diffuse it takes away
    torch.testing.assert_close(image.detach(), 0.5 * (core + lambert), rtol=1e-5, atol=1e-6)  # linear in s


def test_environment_shading_weights_the_coats_fresnel():
    """SH diffuse light: ``(1 - metallic)(1 - s f0) c / pi E``, so the weight 0 takes back the coat's 4 %."""
    from lumigrad.shading.deferred import shade_environment_unchecked

    k = 8
    n, _, wo = _directions(k, 13)
    sh = torch.zeros(9, 3, dtype=DT)
    sh[0] = 1.0  # a uniform sky
    si = SurfaceSample(position=torch.zeros(k, 3, dtype=DT), normal=n, wo=wo,
                       base_color=torch.rand(k, 3, generator=_gen(14), dtype=DT),
                       roughness=torch.full((k, 1), 0.5, dtype=DT), metallic=torch.zeros(k, 1, dtype=DT))
    core = shade_environment_unchecked(si, sh_coeffs=sh)
    bare = shade_environment_unchecked(si.replace(specular=torch.zeros(k, 1, dtype=DT)), sh_coeffs=sh)
    torch.testing.assert_close(bare * (1 - 0.04), core, rtol=1e-12, atol=0)
    assert torch.equal(shade_environment_unchecked(si.replace(specular=torch.ones(k, 1, dtype=DT)), sh_coeffs=sh),
                       core)
