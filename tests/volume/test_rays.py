"""World rays from cameras (perspective, orthographic, distorted, batched) and ray / box clipping."""

from __future__ import annotations

import pytest
import torch

import lumigrad as lg
from lumigrad.conventions import pixel_centers
from lumigrad.volume import camera_rays, ray_aabb

from ..conftest import camera_at


def cameras():
    persp = camera_at((0.5, 0.8, -3.0), size=(12, 9))
    dist = lg.Camera(persp.K, persp.world_to_cam, 12, 9,
                     distortion=torch.tensor([0.05, -0.02, 0.001, 0.002, 0.0], dtype=torch.float64))
    ortho = lg.Camera(torch.tensor([[4.0, 0.0, 6.0], [0.0, 4.0, 4.5], [0.0, 0.0, 1.0]], dtype=torch.float64),
                      persp.world_to_cam, 12, 9, projection="orthographic")
    return {"perspective": persp, "distorted": dist, "orthographic": ortho}


@pytest.mark.parametrize("kind", ["perspective", "distorted", "orthographic"])
def test_rays_project_back_to_their_pixel_centres(kind):
    cam = cameras()[kind]
    rays = camera_rays(cam)
    assert rays.origins.shape == (9, 12, 3) and rays.directions.shape == (9, 12, 3)
    torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(9, 12, dtype=torch.float64))
    points = (rays.origins + 2.5 * rays.directions).reshape(-1, 3)
    uv, depth = cam.project(points)
    torch.testing.assert_close(uv, pixel_centers(9, 12, dtype=torch.float64).reshape(-1, 2), rtol=1e-7, atol=1e-7)
    assert bool((depth > 0).all())
    if kind == "orthographic":  # parallel rays along the camera's forward axis
        forward = cam.world_to_cam[2, :3]
        torch.testing.assert_close(rays.directions, forward.expand(9, 12, 3))


def test_pixel_subsets_of_a_batched_camera_match_all_pixels():
    a, b = camera_at((0.0, 0.0, -3.0), size=(6, 4)), camera_at((2.0, 1.0, -2.0), size=(6, 4))
    cam = lg.Camera(torch.stack([a.K, b.K]), torch.stack([a.world_to_cam, b.world_to_cam]), 6, 4)
    full = camera_rays(cam)
    pixels = torch.tensor([0, 5, 23, 24, 30, 47, 13])
    sub = camera_rays(cam, pixels)
    torch.testing.assert_close(sub.origins, full.origins.reshape(-1, 3)[pixels])
    torch.testing.assert_close(sub.directions, full.directions.reshape(-1, 3)[pixels])
    grid = lg.Camera(cam.K.reshape(1, 2, 3, 3), cam.world_to_cam.reshape(1, 2, 4, 4), 6, 4)  # batch (1, 2)
    assert camera_rays(grid).origins.shape == (1, 2, 4, 6, 3)
    torch.testing.assert_close(camera_rays(grid, pixels).directions, sub.directions)
    none = camera_rays(cam, torch.zeros(0, dtype=torch.int64))
    assert none.origins.shape == (0, 3) and none.directions.shape == (0, 3)


def test_rays_are_differentiable_in_the_pose():
    cam0 = camera_at((0.3, 0.2, -2.0), size=(5, 4))
    w2c = cam0.world_to_cam.clone().requires_grad_()

    def through(w):
        rays = camera_rays(lg.Camera(cam0.K, w, 5, 4), torch.tensor([0, 7, 19]))
        return rays.origins, rays.directions

    assert torch.autograd.gradcheck(through, (w2c,))
    # a batch of views: pixels of both, out of order
    other = camera_at((1.0, 0.5, -2.5), size=(5, 4)).world_to_cam
    batch = torch.stack([cam0.world_to_cam, other]).clone().requires_grad_()
    K = torch.stack([cam0.K, cam0.K])

    def through_batch(w):
        rays = camera_rays(lg.Camera(K, w, 5, 4), torch.tensor([27, 3, 20, 7, 39]))
        return rays.origins, rays.directions

    assert torch.autograd.gradcheck(through_batch, (batch,))


def test_camera_rays_bad_input():
    cam = camera_at((0.0, 0.0, -3.0), size=(6, 4))
    with pytest.raises(ValueError, match=r"pixels must be flat indices in \[0, 24\)"):
        camera_rays(cam, torch.tensor([24]))
    with pytest.raises(TypeError, match="pixels must have an integer dtype"):
        camera_rays(cam, torch.tensor([1.0]))
    with pytest.raises(TypeError, match="camera must be a lumigrad Camera"):
        camera_rays("cam")


def test_ray_aabb_worked_example_and_special_cases():
    box = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    o = torch.tensor([[0.0, 0.0, -2.0],    # through the centre
                      [0.0, 0.0, 0.0],     # starts inside
                      [0.0, 2.0, -2.0],    # parallel to z, outside the y slab: misses
                      [0.0, 0.0, 3.0],     # box behind the ray
                      [1.0, 0.5, -2.0]])   # grazing the x = 1 face (inside the closed slab)
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    t_near, t_far, hit = ray_aabb(o, d, box)
    assert hit.tolist() == [True, True, False, False, True]
    torch.testing.assert_close(t_near, torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5]))
    torch.testing.assert_close(t_far, torch.tensor([3.0, 1.0, 0.0, 0.0, 1.5]))
    t_near, _, hit = ray_aabb(o, d, box, near=1.5)
    assert hit.tolist() == [True, False, False, False, False] and float(t_near[0]) == 1.5


def test_ray_aabb_agrees_with_point_membership():
    g = torch.Generator().manual_seed(0)
    o = torch.rand(2000, 3, generator=g, dtype=torch.float64) * 6 - 3
    d = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    d[::7, 0] = 0.0  # axis-parallel components
    box = torch.tensor([-1.0, -0.5, -2.0, 1.5, 0.5, 1.0], dtype=torch.float64)
    t_near, t_far, hit = ray_aabb(o, d, box)
    s = torch.linspace(0.0, 1.0, 33, dtype=torch.float64)[1:-1]
    inside = lambda p: ((p >= box[:3]) & (p <= box[3:])).all(-1)  # noqa: E731
    t = t_near[hit, None] + s * (t_far - t_near)[hit, None]
    assert bool(inside(o[hit, None] + t[..., None] * d[hit, None]).all())
    # points along missed rays (t >= 0) are never inside
    ts = torch.linspace(0.0, 12.0, 400, dtype=torch.float64)
    assert not bool(inside(o[~hit, None] + ts[:, None] * d[~hit, None]).any())
    # just outside [t_near, t_far] of a hit ray is outside the box (unless the ray starts inside)
    starts_outside = hit & ~inside(o)
    before = o + (t_near - 1e-6)[:, None] * d
    after = o + (t_far + 1e-6)[:, None] * d
    assert not bool(inside(before[starts_outside]).any()) and not bool(inside(after[hit]).any())


def test_ray_aabb_bad_input():
    o, d = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="aabb must be"):
        ray_aabb(o, d, torch.tensor([1.0, 0, 0, -1, 1, 1]))
    with pytest.raises(ValueError, match="directions must have the shape of origins"):
        ray_aabb(o, torch.ones(3, 3), torch.tensor([-1.0, -1, -1, 1, 1, 1]))
    with pytest.raises(ValueError, match="origins contains NaN"):
        ray_aabb(torch.full((2, 3), float("nan")), d, torch.tensor([-1.0, -1, -1, 1, 1, 1]))
    with pytest.raises(ValueError, match="near"):
        ray_aabb(o, d, torch.tensor([-1.0, -1, -1, 1, 1, 1]), near=-1.0)
