"""The path tracer's area-light sampling strategies (``PathIntegrator(light_sampling=...)``) estimate the same image:
per pixel, independent renders by area, by ``"auto"`` and by solid angle agree within their standard errors (a
chi-square of the per-pixel z-scores, and the image mean), on a small lamp in a box and on a large lamp close to
a glossy floor (where the emission BSDF samples find carries much of the light, so a density the MIS weight took
from another strategy than the light sample's would show)."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.fused_paths import sample_paths_fused
from lumigrad.integrators.path import _camera_rays, _trace_scene
from lumigrad.shading import Material

from .test_fused_paths import _cornell

F32 = torch.float32
SPP = 256
DEPTH = 3


def _glossy_lamp():
    """A glossy floor and a dark card under a 1 x 1 lamp 0.8 above the floor, seen from above."""
    quad = torch.tensor([[0, 2, 1], [0, 3, 2]])

    def square(half, y):
        return torch.tensor([[-half, y, -half], [half, y, -half], [half, y, half], [-half, y, half]])

    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(square(2.0, 0.0), quad, Material(
        base_color_factor=torch.tensor([0.6, 0.6, 0.6, 1.0]), metallic_factor=0.5, roughness_factor=0.3, ior=1.5)))
    scene.add_mesh("card", lg.SceneMesh(square(0.3, 0.4), quad, Material(
        base_color_factor=torch.tensor([0.2, 0.3, 0.6, 1.0]), roughness_factor=0.8, ior=1.5), double_sided=True))
    scene.add_light("lamp", lg.AreaLight(square(0.5, 0.8) + torch.tensor([0.3, 0.0, -0.3]),
                                         torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.full((3,), 3.0)))
    cam = lg.Camera.look_at([0.0, 2.5, 1.5], [0.0, 0.0, 0.0], fov_y=0.9, width=8, height=8)
    return scene, cam


def _pixels(scene, cam, light_sampling, seed):
    """Per pixel, the mean radiance (channel sum) of ``SPP`` paths and its squared standard error."""
    ts = _trace_scene(scene, light_sampling)
    o, d = _camera_rays(cam, SPP, seed, F32)
    L = sample_paths_fused(ts, o, d, max_depth=DEPTH, rr_depth=DEPTH, seed=seed, hide_emitters=True)
    L = L.double().sum(-1).reshape(-1, SPP)
    return L.mean(1), L.var(1) / SPP


@pytest.mark.parametrize("light_sampling", ["area", "auto"])
@pytest.mark.parametrize("make", [_cornell, _glossy_lamp], ids=["cornell", "glossy_lamp"])
def test_strategies_converge_to_the_same_image(make, light_sampling):
    scene, cam = make()
    mean_s, se2_s = _pixels(scene, cam, "solid_angle", seed=11)
    mean_a, se2_a = _pixels(scene, cam, light_sampling, seed=12)  # independent paths
    se2 = se2_s + se2_a
    lit = se2 > 0
    assert int(lit.sum()) > 40
    z = (mean_a - mean_s)[lit] / se2[lit].sqrt()
    # chi-square with k degrees of freedom, by Wilson and Hilferty's normal approximation of its cube root
    k = int(lit.sum())
    chi2 = float((z * z).sum())
    wh = ((chi2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    assert wh < 4.0, f"chi2 {chi2:.1f} for {k} pixels (Wilson-Hilferty z {wh:.2f})"
    # the image mean, the pixels' errors being independent
    diff = float((mean_a - mean_s).mean())
    assert abs(diff) < 4 * math.sqrt(float(se2.sum())) / mean_s.numel()


def test_the_setting_is_checked_and_reaches_the_render():
    with pytest.raises(ValueError, match="light_sampling must be one of"):
        lg.integrators.PathIntegrator(light_sampling="cosine")
    with pytest.raises(ValueError, match="light_sampling must be one of"):
        lg.render(*_cornell(), integrator="direct", light_sampling="uniform")
    # a setting like any other: a fit config's [render] table passes it through
    from lumigrad.integrators import integrator_settings
    assert "light_sampling" in integrator_settings("path") and "light_sampling" in integrator_settings("direct")
    scene, cam = _glossy_lamp()
    images = [lg.render(scene, cam, integrator="path", spp=2, seed=1, max_depth=2, light_sampling=s).rgb
              for s in ("solid_angle", "area")]
    assert not torch.equal(images[0], images[1])


@pytest.mark.parametrize("fused", [True, False])
def test_auto_samples_a_lamp_of_many_triangles_by_area_everywhere(fused):
    """A sphere lamp of 80 triangles (over ``AUTO_SOLID_ANGLE_MAX_FACES``) just above a floor: ``"auto"`` renders
    the image ``"area"`` does, bit for bit, on the fused kernel and on the PyTorch transport (choosing a triangle
    by solid angle costs a solid angle per triangle and sample: a lamp of 5,120 triangles rendered 17x slower);
    a quad lamp as near keeps the solid angle (another image); the emitters' twin makes the same choice."""
    from lumigrad.shading.emitters import AUTO_SOLID_ANGLE_MAX_FACES, area_light_pdf, area_light_sample_direct

    verts, faces = lg.geometry.icosphere(1)
    assert faces.shape[0] > AUTO_SOLID_ANGLE_MAX_FACES
    scene, cam = _glossy_lamp()
    del scene.lights["lamp"]
    scene.add_light("ball", lg.AreaLight(verts * 0.2 + torch.tensor([0.0, 0.5, 0.0]), faces, torch.full((3,), 3.0)))
    integrator = lambda s: lg.integrators.PathIntegrator(max_depth=2, light_sampling=s,  # noqa: E731
                                                         use_fused_kernel=fused)
    with torch.no_grad():
        auto, area, solid = (lg.render(scene, cam, integrator=integrator(s), spp=4, seed=3).rgb
                             for s in ("auto", "area", "solid_angle"))
    assert torch.equal(auto, area) and not torch.equal(auto, solid)
    scene, cam = _glossy_lamp()  # the quad lamp, 0.8 above the floor: within AUTO_AREA_DISTANCE radii
    with torch.no_grad():
        auto, area = (lg.render(scene, cam, integrator=integrator(s), spp=4, seed=3).rgb for s in ("auto", "area"))
    assert not torch.equal(auto, area)
    x = torch.tensor([[0.1, 0.2, 0.0], [0.0, 0.0, 0.1]])  # near the ball: by area all the same
    u = torch.tensor([[0.3, 0.6], [0.8, 0.1]])
    lamp = verts * 0.2 + torch.tensor([0.0, 0.5, 0.0])
    a = area_light_sample_direct(x, lamp, faces, torch.ones(3), u, method="auto")
    b = area_light_sample_direct(x, lamp, faces, torch.ones(3), u, method="area")
    assert torch.equal(a.wi, b.wi) and torch.equal(a.pdf, b.pdf)
    assert torch.equal(area_light_pdf(x, a.wi, lamp, faces, method="auto"),
                       area_light_pdf(x, a.wi, lamp, faces, method="area"))
