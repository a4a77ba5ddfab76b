import pytest
import torch
from torch.autograd import gradcheck

import lumigrad as lg
from lumigrad.fluid import DensityGridField, render_density
from lumigrad.scene.volume_shape import VolumeShape

BOX = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def _camera(size=8, dtype=torch.float64):
    cam = lg.Camera.look_at((0.5, 0.6, 2.0), (0.5, 0.5, 0.5), width=size, height=size, fov_y=0.7)
    return cam.to(dtype=dtype) if hasattr(cam, "to") else cam


def test_a_uniform_slab_has_the_beer_lambert_opacity():
    """Density 1 everywhere, sigma_scale 2: the centre ray crosses ~1 unit of the box: alpha = 1 - exp(-2 L)."""
    cam = lg.Camera.look_at((0.5, 0.5, 3.0), (0.5, 0.5, 0.5), width=9, height=9, fov_y=0.3)
    rgb, alpha = render_density(torch.ones(4, 4, 4), cam, BOX, sigma_scale=2.0, color=(0.5, 0.25, 1.0),
                                steps_per_diagonal=400)
    expect = 1 - torch.exp(torch.tensor(-2.0))
    assert abs(float(alpha[4, 4, 0]) - float(expect)) < 2e-3
    torch.testing.assert_close(rgb[4, 4], alpha[4, 4, 0] * torch.tensor([0.5, 0.25, 1.0]), rtol=1e-5, atol=1e-6)


def test_render_gradcheck_wrt_density():
    """Finite differences of the image w.r.t. the simulated density (fixed samples: the render is smooth)."""
    g = torch.Generator().manual_seed(0)
    rho = torch.rand(3, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    cam = _camera(5)

    def image(rho):
        return render_density(rho, cam, torch.tensor(BOX, dtype=torch.float64), sigma_scale=3.0,
                              steps_per_diagonal=24)[0]

    assert gradcheck(image, (rho,), eps=1e-6, atol=1e-6)


def test_the_scene_route_renders_the_same_pixels():
    rho = torch.rand(6, 6, 6, generator=torch.Generator().manual_seed(1))
    cam = lg.Camera.look_at((0.5, 0.6, 2.0), (0.5, 0.5, 0.5), width=12, height=12, fov_y=0.7)
    rgb, alpha = render_density(rho, cam, BOX, sigma_scale=4.0, steps_per_diagonal=64)
    scene = lg.Scene()
    scene.add_shape("smoke", VolumeShape(DensityGridField(rho, BOX, sigma_scale=4.0)))
    field = scene.shapes["volumes"]["smoke"].field
    out = lg.render(scene, cam, integrator="volume", steps_per_diagonal=64, early_stop_eps=0.0)
    torch.testing.assert_close(out.alpha, alpha, rtol=1e-5, atol=1e-6)
    assert field.values is rho


def test_bad_arguments_name_themselves():
    cam = _camera(4, torch.float32)
    with pytest.raises(ValueError, match="density must have shape"):
        render_density(torch.ones(4, 4), cam, BOX)
    with pytest.raises(ValueError, match="density must be >= 0"):
        render_density(-torch.ones(4, 4, 4), cam, BOX)
    with pytest.raises(ValueError, match="aabb"):
        render_density(torch.ones(4, 4, 4), cam, [0, 0, 0, 1, 1, 0])
    with pytest.raises(TypeError, match="camera"):
        render_density(torch.ones(4, 4, 4), "cam", BOX)
