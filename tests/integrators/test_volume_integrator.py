"""The "volume" integrator: a VolumeShape in a Scene rendered through lg.render, against render_rays and an
analytic ball; AOVs, batching, chunking, settings and bad input."""

import math

import pytest
import torch
from torch import nn

import lumigrad as lg
from lumigrad.scene import VolumeShape
from lumigrad.volume import camera_rays, render_rays
from lumigrad.volume.fields import NerfField


class Ball(nn.Module):
    """Density ``sigma`` inside a ball of radius ``r`` at the origin, constant colour; a learnable scale."""

    def __init__(self, sigma=30.0, r=0.5, colour=(0.9, 0.4, 0.1)):
        super().__init__()
        self.register_buffer("aabb", torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        self.r = r
        self.colour = torch.tensor(colour)

    def density(self, p):
        return torch.where(p.norm(dim=-1) < self.r, self.log_sigma.exp(), torch.zeros(()))

    def forward(self, p, d):
        return self.density(p), self.colour.to(p.dtype).expand(p.shape[:-1] + (3,))


def ball_scene(**kw):
    scene = lg.Scene()
    scene.add_shape("ball", VolumeShape(Ball(**kw)))
    return scene


def camera(width=24, height=20, eye=(0.0, 0.3, -3.0)):
    return lg.Camera.look_at(list(eye), [0.0, 0.0, 0.0], width=width, height=height, fov_y=0.6)


def test_registered_and_listed():
    assert "volume" in lg.integrators.integrator_names()
    assert isinstance(lg.integrators.get_integrator("volume"), lg.integrators.VolumeIntegrator)


def test_ball_opacity_matches_the_analytic_chord_and_depth_is_camera_z():
    """An opaque-ish ball: opacity 1 - exp(-sigma chord) per pixel within one step of density; the depth AOV is
    camera-frame z of the first surface for an opaque ball."""
    scene = ball_scene(sigma=4.0)
    cam = camera()
    out = lg.render(scene, cam, integrator="volume", aovs=("depth", "mask"), steps_per_diagonal=1024,
                    early_stop_eps=0.0)
    rays = camera_rays(cam)
    o, d = rays.origins, rays.directions
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 0.25)
    chord = 2 * disc.clamp_min(0).sqrt()
    exact = 1 - torch.exp(-4.0 * chord)
    step = 2 * math.sqrt(3) / 1024
    assert float((out.alpha[..., 0] - exact).abs().max().detach()) <= 4.0 * step * 2 + 1e-4
    torch.testing.assert_close(out["mask"], out.alpha)
    # nearly opaque ball: depth ~ z of the front surface
    opaque = ball_scene(sigma=2000.0)
    out = lg.render(opaque, cam, integrator="volume", aovs=("depth",), steps_per_diagonal=2048)
    hit = disc > 0.01
    front = -b - disc.clamp_min(0).sqrt()
    points = o + front[..., None] * d
    z = (points @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3])[..., 2]
    err = (out["depth"][..., 0] - z)[hit].abs().max()
    assert float(err.detach()) < 4 * 2 * math.sqrt(3) / 2048
    assert bool((out["depth"][~(disc > 0)] == 0).all())


def test_background_colour_and_film():
    scene = ball_scene()
    cam = camera()
    out = lg.render(scene, cam, integrator="volume", background=[0.0, 0.0, 1.0])
    corner = out.rgb[0, 0]
    torch.testing.assert_close(corner, torch.tensor([0.0, 0.0, 1.0]))
    scene.film = lg.Film(exposure=torch.tensor(1.0))
    brighter = lg.render(scene, cam, integrator="volume", background=[0.0, 0.0, 1.0])
    torch.testing.assert_close(brighter.rgb, 2 * out.rgb, rtol=1e-5, atol=1e-6)


def test_batched_cameras_and_chunks_give_the_same_image():
    scene = ball_scene()
    eyes = torch.tensor([[0.0, 0.3, -3.0], [3.0, 0.0, 0.0]])
    cams = lg.Camera.look_at(eyes, torch.zeros(2, 3), width=16, height=12, fov_y=0.6)
    whole = lg.render(scene, cams, integrator="volume", aovs=("depth",))
    small = lg.render(scene, cams, integrator="volume", aovs=("depth",), chunk=37)
    assert whole.rgb.shape == (2, 12, 16, 3)
    torch.testing.assert_close(small.rgb, whole.rgb)
    torch.testing.assert_close(small["depth"], whole["depth"])
    one = lg.render(scene, cams[1], integrator="volume")
    torch.testing.assert_close(one.rgb, whole.rgb[1])


def test_equals_render_rays_and_gradients_reach_the_field_and_camera():
    torch.manual_seed(0)
    field = NerfField([-1, -1, -1, 1, 1, 1], num_levels=4, log2_table_size=10, max_resolution=32, precision="fp32")
    scene = lg.Scene()
    scene.add_shape("nerf", VolumeShape(field))
    assert "volumes.nerf.field.encoder.table" in scene.parameters()
    cam = camera(12, 10)
    out = lg.render(scene, cam, integrator="volume")
    rays = camera_rays(cam)
    ref = render_rays(field, rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3))
    torch.testing.assert_close(out.rgb.reshape(-1, 3), ref.rgb)
    w2c = cam.world_to_cam.clone().requires_grad_()
    cam2 = lg.Camera(cam.K, w2c, cam.width, cam.height)
    lg.render(scene, cam2, integrator="volume").rgb.sum().backward()
    assert field.encoder.table.grad is not None and field.density_net.net[0].weight.grad.abs().sum() > 0
    assert w2c.grad is not None and bool(torch.isfinite(w2c.grad).all()) and float(w2c.grad.abs().sum()) > 0


def test_gradient_of_density_matches_finite_differences():
    """d(sum of pixels)/d log_sigma of the ball, autograd vs central differences (float64, fixed samples)."""
    scene = ball_scene(sigma=3.0)
    field = scene.shapes["volumes"]["ball"].field.double()
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.3, -3.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                            width=8, height=8, fov_y=0.6)

    def loss():
        return lg.render(scene, cam, integrator="volume", background=[0.2, 0.2, 0.2], early_stop_eps=0.0).rgb.sum()

    loss().backward()
    g = float(field.log_sigma.grad)
    h = 1e-5
    with torch.no_grad():
        field.log_sigma += h
        up = float(loss())
        field.log_sigma -= 2 * h
        down = float(loss())
        field.log_sigma += h
    assert g == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_spp_averages_jittered_renders_reproducibly():
    scene = ball_scene(sigma=5.0)
    cam = camera(12, 10)
    a = lg.render(scene, cam, integrator="volume", spp=4, seed=3, steps_per_diagonal=64)
    b = lg.render(scene, cam, integrator="volume", spp=4, seed=3, steps_per_diagonal=64)
    c = lg.render(scene, cam, integrator="volume", spp=4, seed=4, steps_per_diagonal=64)
    torch.testing.assert_close(a.rgb, b.rgb, rtol=0, atol=0)
    assert not torch.equal(a.rgb, c.rgb)


def test_bad_input():
    cam = camera()
    with pytest.raises(ValueError, match="exactly one VolumeShape"):
        lg.render(lg.Scene(), cam, integrator="volume")
    two = ball_scene()
    two.add_shape("other", VolumeShape(Ball()))
    with pytest.raises(ValueError, match="exactly one VolumeShape"):
        lg.render(two, cam, integrator="volume")
    with pytest.raises(ValueError, match="background"):
        lg.render(ball_scene(), cam, integrator="volume", background=[0.0, 1.0])
    with pytest.raises(ValueError, match="step_size"):
        lg.render(ball_scene(), cam, integrator="volume", step_size=-1.0)
    with pytest.raises(TypeError, match="field"):
        VolumeShape(torch.zeros(3))

    class NaNField(Ball):
        def forward(self, p, d):
            s, c = super().forward(p, d)
            return s * float("nan"), c

    scene = lg.Scene()
    scene.add_shape("bad", VolumeShape(NaNField()))
    with pytest.raises(ValueError, match="NaN"):
        lg.render(scene, cam, integrator="volume", early_stop_eps=0.0)

    class Negative(Ball):
        def density(self, p):
            return -super().density(p) - 1

    scene = lg.Scene()
    scene.add_shape("neg", VolumeShape(Negative()))
    with pytest.raises(ValueError, match="negative"):
        lg.render(scene, cam, integrator="volume")


def test_empty_and_opaque_volumes_and_rays_missing_the_box():
    cam = lg.Camera.look_at([0.0, 5.0, -3.0], [0.0, 5.0, 0.0], width=8, height=8, fov_y=0.3)  # misses the box
    out = lg.render(ball_scene(), cam, integrator="volume", background=[0.5, 0.5, 0.5], aovs=("depth",))
    assert bool((out.alpha == 0).all()) and bool((out["depth"] == 0).all())
    torch.testing.assert_close(out.rgb, torch.full_like(out.rgb, 0.5))
    empty = ball_scene(sigma=1e-30)
    out = lg.render(empty, camera(), integrator="volume")
    assert float(out.alpha.max()) < 1e-20 and bool(torch.isfinite(out.rgb).all())
    opaque = ball_scene(sigma=1e30, r=10.0)  # the whole box, infinitely dense
    out = lg.render(opaque, camera(), integrator="volume")
    assert bool(torch.isfinite(out.rgb).all())
    inside = out.alpha[..., 0] > 0
    torch.testing.assert_close(out.alpha[inside], torch.ones_like(out.alpha[inside]))
