"""Beckmann materials in the renderers: the path tracer renders them with its PyTorch transport (the fused kernel
is GGX's and says so), per part beside GGX parts, with gradients; the raster shades them through the per-light
BSDF (its fused light kernel is GGX's). The BSDF itself: ``tests/shading/test_beckmann.py``; against Mitsuba:
``tests/integrators/test_path_vs_mitsuba.py``."""

import math

import torch

import lumigrad as lg
from lumigrad.integrators.fused_paths import fused_unsupported, use_fused
from lumigrad.integrators.path import _trace_scene
from lumigrad.raytrace.transport import _materials
from lumigrad.shading import Material

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _scene(microfacet="beckmann", roughness=0.5):
    scene = lg.Scene()
    floor = torch.tensor([[-2.0, 0, -2], [-2, 0, 2], [2, 0, 2], [2, 0, -2]])
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(base_color_factor=torch.tensor([0.7, 0.6, 0.5, 1.0]),
                                                               metallic_factor=0.0, roughness_factor=0.6)))
    v, f = lg.geometry.icosphere(2)
    metal = Material(base_color_factor=torch.tensor([0.9, 0.7, 0.5, 1.0]), metallic_factor=1.0,
                     roughness_factor=torch.tensor(roughness), microfacet=microfacet)
    scene.add_mesh("ball", lg.SceneMesh(0.5 * v + torch.tensor([0.0, 0.5, 0.0]), f, metal))
    scene.add_light("bulb", lg.PointLight(torch.tensor([1.0, 2.0, -1.0]), torch.tensor(6.0)))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([-0.3, -1.0, 0.4]), torch.tensor(0.5)))
    return scene


CAMERA = dict(eye=[0.0, 1.2, -2.5], target=[0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)


def test_the_path_tracer_renders_beckmann_parts_with_pytorch_and_says_why():
    scene = _scene()
    ts = _trace_scene(scene)
    assert "part 1's material has the 'beckmann' microfacet distribution" in fused_unsupported(ts)
    assert not use_fused(ts)
    values = _materials(ts, torch.tensor([0, 1, 0, 1]), torch.zeros(4, 2))
    assert values["beckmann"][:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]  # per part: the floor GGX, the ball Beckmann
    assert "beckmann" not in _materials(_trace_scene(_scene("ggx")), torch.tensor([0, 1]), torch.zeros(2, 2))


def test_a_beckmann_ball_renders_unlike_a_ggx_one_and_has_roughness_gradients():
    cam = lg.Camera.look_at(**CAMERA)
    images = {}
    for microfacet in ("beckmann", "ggx"):
        scene = _scene(microfacet)
        rough = scene.meshes["ball"].material.roughness_factor.requires_grad_(True)
        out = lg.render(scene, cam, integrator="path", spp=64, max_depth=3, seed=1)
        out.rgb.sum().backward()
        assert torch.isfinite(out.rgb).all() and torch.isfinite(rough.grad) and float(rough.grad) != 0
        images[microfacet] = out.rgb.detach()
    assert float((images["beckmann"] - images["ggx"]).abs().mean()) > 0.01 * float(images["ggx"].mean())


def test_the_raster_shades_beckmann_through_the_per_light_bsdf():
    cam = lg.Camera.look_at(**CAMERA)
    scene = _scene()
    rough = scene.meshes["ball"].material.roughness_factor.requires_grad_(True)
    images, grads = [], []
    for fused in (True, False):
        out = lg.render(scene, cam, fused_lights=fused)
        (g,) = torch.autograd.grad(out.rgb.sum(), rough)
        images.append(out.rgb.detach())
        grads.append(g)
    torch.testing.assert_close(images[0], images[1])
    torch.testing.assert_close(grads[0], grads[1])
    with torch.no_grad():
        ggx = lg.render(_scene("ggx"), cam).rgb
    assert float((images[0] - ggx).abs().max()) > 0.02 * float(ggx.max())
    assert math.isfinite(float(grads[0])) and float(grads[0]) != 0


# ------------------------------------------------------------------------------------------------ plastic
def _plastic_scene():
    scene = _scene("ggx")
    scene.meshes["ball"].material = Material(base_color_factor=torch.tensor([0.6, 0.3, 0.2, 1.0]), metallic_factor=0.0,
                                             roughness_factor=torch.tensor(0.45), ior=1.49, plastic=True,
                                             microfacet="beckmann")
    return scene


def test_plastic_parts_render_with_pytorch_in_both_renderers_with_gradients():
    """Mitsuba's plastic (``Material.plastic``): the fused path kernel names the part and the PyTorch transport
    renders it (a table on plastic points, zeros on the floor's); the raster shades it through the per-light BSDF
    (its fused kernel is the glTF model's): both passes agree, and the roughness gets a gradient through the
    interface's tables."""
    scene = _plastic_scene()
    ts = _trace_scene(scene)
    assert "part 1's material is Mitsuba's plastic" in fused_unsupported(ts)
    values = _materials(ts, torch.tensor([0, 1]), torch.zeros(2, 2))
    assert values["plastic"][:, -1].tolist() == [0.0, 1.0]
    cam = lg.Camera.look_at(**CAMERA)
    rough = scene.meshes["ball"].material.roughness_factor.requires_grad_(True)
    out = lg.render(scene, cam, integrator="path", spp=32, max_depth=3, seed=2)
    (g,) = torch.autograd.grad(out.rgb.sum(), rough)
    assert torch.isfinite(out.rgb).all() and math.isfinite(float(g)) and float(g) != 0
    images, grads = [], []
    for fused in (True, False):
        out = lg.render(scene, cam, fused_lights=fused)
        (g,) = torch.autograd.grad(out.rgb.sum(), rough)
        images.append(out.rgb.detach())
        grads.append(g)
    torch.testing.assert_close(images[0], images[1])
    torch.testing.assert_close(grads[0], grads[1])
    with torch.no_grad():
        gltf = lg.render(_scene("ggx"), cam).rgb
    assert float((images[0] - gltf).abs().max()) > 0.02 * float(gltf.max())
