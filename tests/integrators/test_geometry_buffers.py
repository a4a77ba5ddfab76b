"""``render_geometry``: depth is camera-frame z, normals are unit world normals, coverage equals render's
alpha, and the buffers' gradients agree with finite differences (silhouettes included)."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.geometry_buffers import render_geometry

F64 = torch.float64


def tilted_square(dtype=torch.float32):
    """A 2x2 square through the origin, tilted 30 degrees about the y axis, front face towards -z."""
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    a = math.radians(30)
    R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=dtype)
    return verts @ R.T, faces, R


def test_depth_and_normal_of_a_tilted_plane_are_exact():
    verts, faces, R = tilted_square(F64)
    scene = lg.Scene()
    scene.add_mesh("square", lg.SceneMesh(verts, faces, double_sided=True))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -4.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.6,
                            width=24, height=20)
    g = render_geometry(scene, cam, use_antialias=False)
    inside = g["mask"][..., 0] > 0
    assert inside.sum() > 100
    # Each pixel's ray x = t d from the eye meets the plane n . x = 0: the camera-frame z of that point.
    uv = lg.conventions.pixel_centers(20, 24, dtype=F64)
    origin, direction = cam.ray_origins_directions(uv)  # camera frame, z = 1 per unit of direction
    n_cam = cam.world_to_cam[:3, :3] @ (R @ torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    point_on_plane = cam.world_to_cam[:3, 3]  # the world origin in the camera frame
    t = ((point_on_plane - origin) @ n_cam) / (direction @ n_cam)
    z = origin[..., 2] + t * direction[..., 2]
    assert torch.allclose(g["depth"][..., 0][inside], z[inside], atol=1e-9)
    towards_camera = -(R @ torch.tensor([0.0, 0.0, 1.0], dtype=F64))  # double-sided: flipped to face the eye
    assert torch.allclose(g["normal"][inside], towards_camera.expand(int(inside.sum()), 3), atol=1e-9)
    assert float(g["depth"][~inside].abs().max()) == 0.0


def test_coverage_equals_render_alpha_and_batches():
    verts, faces = lg.geometry.icosphere(2)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces))
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.0, 0.0]]), torch.zeros(2, 3), width=32,
                             height=32)
    g = render_geometry(scene, cams)
    alpha = lg.render(scene, cams, background=0.0)[..., 3:]
    assert g["depth"].shape == (2, 32, 32, 1) and torch.allclose(g["mask"], alpha, atol=1e-6)
    centre = g["depth"][:, 16, 16, 0]
    assert torch.allclose(centre, torch.tensor([2.0, 2.0]), atol=0.02)  # the sphere's front is 2 from each eye


def test_depth_gradient_matches_finite_differences_at_silhouettes():
    verts, faces = lg.geometry.icosphere(1, dtype=F64)
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(16, 16, 5, generator=g, dtype=F64)
    cam = lg.Camera.look_at(torch.tensor([0.2, 0.1, -3.0], dtype=F64), torch.zeros(3, dtype=F64), width=16,
                            height=16, fov_y=0.9)

    def loss(offset):
        scene = lg.Scene()
        to_world = torch.eye(4, dtype=F64).index_put((torch.arange(3), torch.full((3,), 3)), offset)
        scene.add_mesh("ball", lg.SceneMesh(verts, faces, to_world=to_world))
        b = render_geometry(scene, cam)
        return (torch.cat([b["depth"], b["normal"], b["mask"]], -1) * weights).sum()

    offset = torch.tensor([0.05, -0.03, 0.1], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(offset), offset)
    eps = 1e-5
    fd = torch.stack([(loss(offset.detach() + eps * e) - loss(offset.detach() - eps * e)) / (2 * eps)
                      for e in torch.eye(3, dtype=F64)])
    assert torch.nn.functional.cosine_similarity(grad, fd, dim=0) > 0.99
    assert torch.allclose(grad, fd, rtol=0.05, atol=1e-3 * float(fd.abs().max()))


def test_distorted_cameras_resample_the_buffers_through_the_lens():
    # (Until integrators, render_geometry refused lens distortion; it now draws a pinhole cover and resamples
    # it through the lens like colour.) Each distorted pixel's ray meets the tilted plane at the exact depth.
    verts, faces, R = tilted_square(F64)
    scene = lg.Scene()
    scene.add_mesh("square", lg.SceneMesh(verts, faces, double_sided=True))
    base = lg.Camera.look_at(torch.tensor([0.0, 0.0, -4.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.6,
                             width=24, height=20)
    cam = lg.Camera(base.K, base.world_to_cam, 24, 20, distortion=torch.tensor([-0.15, 0.02, 0.0, 0.0, 0.0], dtype=F64))
    g = render_geometry(scene, cam, use_antialias=False)
    assert g["depth"].shape == (20, 24, 1) and g["normal"].shape == (20, 24, 3)
    inside = g["mask"][..., 0] > 1 - 1e-9  # away from the edges, where bilinear reads blend with the background
    assert inside.sum() > 100
    rays = cam.rays(lg.conventions.pixel_centers(20, 24, dtype=F64))  # undistorted camera-frame rays, z = 1
    n_cam = cam.world_to_cam[:3, :3] @ (R @ torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    z = (cam.world_to_cam[:3, 3] @ n_cam) / (rays @ n_cam)
    assert torch.allclose(g["depth"][..., 0][inside], z[inside], rtol=2e-4)
    towards_camera = -(R @ torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    assert torch.allclose(g["normal"][inside], towards_camera.expand(int(inside.sum()), 3), atol=1e-9)
    pinhole = render_geometry(scene, base, use_antialias=False)
    assert not torch.allclose(pinhole["depth"], g["depth"])  # the lens moved the picture
