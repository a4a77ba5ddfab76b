"""Deferred shading: direct lights and environment lighting against hand-computed and brute-force values."""

import math

import pytest
import torch

from lumigrad.shading.brdf import metallic_roughness
from lumigrad.shading.deferred import shade_direct, shade_environment
from lumigrad.shading.envmap import prefilter_ggx, split_sum_lut
from lumigrad.shading.lights import point_light
from lumigrad.shading.sh import equirect_directions, sh_project_equirect

DT = torch.float64


def _gbuffer(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    position = torch.randn(n, 3, generator=g, dtype=DT) * 0.3
    normal = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=DT) * 0.3 + torch.tensor(
        [0.0, 0.0, -1.0], dtype=DT), dim=-1)
    material = {"base_color": torch.rand(n, 3, generator=g, dtype=DT),
                "roughness": torch.rand(n, 1, generator=g, dtype=DT) * 0.8 + 0.1,
                "metallic": torch.rand(n, 1, generator=g, dtype=DT)}
    return position, normal, material


def test_direct_lighting_by_hand_and_gradients_reach_the_light():
    position, normal, material = _gbuffer()
    cam = torch.tensor([0.0, 0.0, -3.0], dtype=DT)
    light_pos = torch.tensor([0.5, 1.0, -2.0], dtype=DT, requires_grad=True)
    intensity = torch.tensor([2.0, 1.5, 1.0], dtype=DT, requires_grad=True)
    out = shade_direct(position, normal, cam, material, [point_light(position, light_pos, intensity)])
    to_light = light_pos.detach() - position
    d2 = (to_light**2).sum(-1, keepdim=True)
    wi = to_light / d2.sqrt()
    f = metallic_roughness(normal, wi, cam - position, material["base_color"], material["roughness"],
                           material["metallic"])
    expected = f * intensity.detach() / d2 * (normal * wi).sum(-1, keepdim=True).clamp_min(0)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert float(light_pos.grad.abs().sum()) > 0 and float(intensity.grad.abs().sum()) > 0
    torch.autograd.gradcheck(lambda p, i: shade_direct(position, normal, cam, material, [point_light(position, p, i)]),
                             (light_pos, intensity))


def test_constant_environment_gives_albedo_and_split_sum_terms():
    # Uniform radiance 1: diffuse reflects (1 - m)(1 - F0) c, specular F0 A + B (the furnace of the model).
    position, normal, material = _gbuffer()
    cam = torch.tensor([0.0, 0.0, -3.0], dtype=DT)
    white = torch.ones(16, 32, 3, dtype=DT)
    sh = sh_project_equirect(white, 2)
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    pre = prefilter_ggx(white, levels, size=(8, 16))
    out = shade_environment(position, normal, cam, material, sh_coeffs=sh, prefiltered=pre,
                            prefiltered_roughness=levels)
    c, m = material["base_color"], material["metallic"]
    wo = torch.nn.functional.normalize(cam - position, dim=-1)
    ab = split_sum_lut((normal * wo).sum(-1).clamp(1e-4, 1), material["roughness"][..., 0])
    f0 = (1 - m) * 0.04 + m * c
    expected = (1 - m) * 0.96 * c + f0 * ab[..., :1] + ab[..., 1:]
    # (the SH projection of the 16 x 32 map is exact to about 1e-3)
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-3)
    assert float(out.max()) <= 1.0 + 1e-6


def test_split_sum_specular_approximates_the_brute_force_integral():
    # A smooth environment (bright +y sky, dark ground): the split sum against brute-force integration of the
    # GGX lobe over the map's texels, for a metal. The split sum assumes n = v = r when pre-filtering: measured
    # errors here are 1.2% (roughness 0.05), 0.04% (0.3), 6.5% (0.6) and 22% (0.9, a wide lobe around a tilted
    # normal under a bright sky), the method's known limit, so rough surfaces are checked elsewhere.
    H, W = 32, 64
    dirs, area = equirect_directions(H, W, dtype=DT)
    env = (0.2 + dirs[..., 1:2].clamp_min(0) * 2).expand(H, W, 3).contiguous()
    levels = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    pre = prefilter_ggx(env, levels, size=(H, W))
    normal = torch.nn.functional.normalize(torch.tensor([[0.3, 0.6, -0.74]], dtype=DT), dim=-1)
    position = torch.zeros(1, 3, dtype=DT)
    cam = torch.tensor([0.0, 0.3, -3.0], dtype=DT)
    for rough in (0.05, 0.3, 0.6):
        material = {"base_color": torch.ones(1, 3, dtype=DT), "roughness": torch.tensor([[rough]], dtype=DT),
                    "metallic": torch.ones(1, 1, dtype=DT)}
        ours = shade_environment(position, normal, cam, material, prefiltered=pre, prefiltered_roughness=levels)
        wi = dirs.reshape(-1, 3)
        f = metallic_roughness(normal.expand_as(wi), wi, (cam - position).expand_as(wi), material["base_color"],
                               rough, 1.0)
        ref = (f * env.reshape(-1, 3) * (wi * normal).sum(-1, keepdim=True).clamp_min(0)
               * area.reshape(-1, 1)).sum(0)
        assert float(ours[0, 0]) == pytest.approx(float(ref[0]), rel=0.08), rough


def test_environment_gradients_reach_sh_and_texels():
    position, normal, material = _gbuffer(3)
    cam = torch.tensor([0.0, 0.0, -3.0], dtype=DT)
    sh = torch.randn(9, 3, dtype=DT, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    base = material["base_color"].clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda s, b: shade_environment(position, normal, cam, dict(material, base_color=b),
                                                            sh_coeffs=s), (sh, base))
    env = torch.rand(8, 16, 3, dtype=DT, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    out = shade_environment(position, normal, cam, material, prefiltered=prefilter_ggx(env, [0.0, 1.0], size=(8, 16)),
                            prefiltered_roughness=[0.0, 1.0])
    (g,) = torch.autograd.grad(out.sum(), env)
    assert float(g.abs().sum()) > 0


def test_bad_input():
    position, normal, material = _gbuffer(2)
    cam = torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match="lights"):
        shade_direct(position, normal, cam, material, [])
    with pytest.raises(ValueError, match="prefiltered_roughness"):
        shade_environment(position, normal, cam, material, prefiltered=torch.ones(2, 4, 8, 3, dtype=DT),
                          prefiltered_roughness=[0.5])
    assert math.isfinite(float(shade_environment(position, normal, cam, material).sum()))


def test_direct_lighting_without_its_per_light_checkpoint_is_the_same():
    from lumigrad.shading.deferred import shade_direct_unchecked
    from lumigrad.shading.surface import SurfaceSample

    position, normal, material = _gbuffer()
    cam = torch.tensor([0.0, 0.0, -3.0], dtype=DT)
    material = {k: v.requires_grad_(True) for k, v in material.items()}
    lights = [torch.tensor([0.5, 1.0, -2.0], dtype=DT, requires_grad=True),
              torch.tensor([-1.0, 0.2, -2.5], dtype=DT, requires_grad=True)]
    results = []
    for use_checkpoint in (True, False):
        surface = SurfaceSample.from_material(position, normal, cam - position, material)
        samples = [point_light(position, p, torch.ones(3, dtype=DT)) for p in lights]
        out = shade_direct_unchecked(surface, samples, use_checkpoint=use_checkpoint)
        grads = torch.autograd.grad(out.square().sum(), lights + [material["base_color"]])
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    for a, b in zip(results[0][1], results[1][1]):
        assert float(a.abs().sum()) > 0
        torch.testing.assert_close(b, a, rtol=1e-13, atol=1e-15)


def test_packed_lights_know_on_the_host_whether_all_are_points():
    """``PunctualLights.of`` records whether every light is a point or spot light (the kernels' choice reads no
    device flag); a hand-built value that contradicts ``is_point`` is refused by ``validate``."""
    from lumigrad.shading.lights import PunctualLights
    point = (torch.tensor([0.0, 2.0, 0.0]), torch.tensor([4.0]))
    sun = (torch.tensor([0.0, -1.0, 0.0]), torch.tensor([3.0]))
    assert PunctualLights.of(points=[point]).points_only is True
    assert PunctualLights.of(points=[point], directionals=[sun]).points_only is False
    wrong = PunctualLights.of(points=[point], directionals=[sun])._replace(points_only=True)
    with pytest.raises(ValueError, match="lights.points_only"):
        wrong.validate()
