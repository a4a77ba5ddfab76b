"""Camera: construction and validation, look_at semantics, projection / ray round trips, batching, gradients."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras import projection as pj

from ..conftest import camera_at, central_fd, uv_sphere

DT = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _K(fx=20.0, fy=22.0, cx=16.0, cy=12.0, s=0.0):
    return torch.tensor([[fx, s, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=DT)


def _random_rotation(n, seed):
    q = torch.randn(n, 4, generator=_gen(seed), dtype=DT)
    return lg.conventions.quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def _random_w2c(n, seed):
    R = _random_rotation(n, seed)
    t = torch.randn(n, 3, generator=_gen(seed + 100), dtype=DT)
    return lg.conventions.compose_world_to_cam(R, t)


# --------------------------------------------------------------------------------------------- construction
def test_construction_keeps_fields():
    cam = lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=DT), width=32, height=24, near=0.5, far=20.0)
    assert cam.batch_shape == () and len(cam) == 1
    assert (cam.width, cam.height, cam.near, cam.far) == (32, 24, 0.5, 20.0)
    assert cam.dtype == DT and cam.device == torch.device("cpu")
    assert "width=32" in repr(cam)


def test_3x4_world_to_cam_is_accepted_and_completed():
    w2c = _random_w2c(3, seed=1)
    cam34 = lg.Camera(K=_K(), world_to_cam=w2c[:, :3, :], width=32, height=24)
    cam44 = lg.Camera(K=_K(), world_to_cam=w2c, width=32, height=24)
    assert cam34.world_to_cam.shape == (3, 4, 4)
    torch.testing.assert_close(cam34.world_to_cam, w2c, rtol=0, atol=0)
    pts = torch.randn(3, 5, 3, generator=_gen(2), dtype=DT)
    for a, b in zip(cam34.project(pts), cam44.project(pts)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("K, w2c, match", [
    (torch.eye(3, 4, dtype=DT), torch.eye(4, dtype=DT), r"K must have shape \[\.\.\., 3, 3\]"),
    (torch.eye(3, dtype=DT)[:2], torch.eye(4, dtype=DT), "K must have shape"),
    (torch.ones(3, dtype=DT), torch.eye(4, dtype=DT), "K must have shape"),
    (_K(), torch.eye(4, 3, dtype=DT), "world_to_cam must have shape"),
    (_K(), torch.eye(2, 4, dtype=DT), r"world_to_cam must have shape \[\.\.\., 4, 4\] or \[\.\.\., 3, 4\]"),
    (_K(), torch.eye(5, 4, dtype=DT), "world_to_cam must have shape"),
    (_K(), torch.ones(4, dtype=DT), "world_to_cam must have shape"),
])
def test_bad_shapes_raise(K, w2c, match):
    with pytest.raises(ValueError, match=match):
        lg.Camera(K=K, world_to_cam=w2c, width=8, height=8)


@pytest.mark.parametrize("fx, fy", [(0.0, 10.0), (10.0, 0.0), (-5.0, 10.0), (10.0, -1e-9)])
def test_non_positive_focal_raises(fx, fy):
    with pytest.raises(ValueError, match="positive focal"):
        lg.Camera(K=_K(fx=fx, fy=fy), world_to_cam=torch.eye(4, dtype=DT), width=8, height=8)


def test_non_positive_focal_in_one_view_of_a_batch_raises():
    K = torch.stack([_K(), _K(fy=-3.0)])
    with pytest.raises(ValueError, match="positive focal"):
        lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=8, height=8)


@pytest.mark.parametrize("near, far", [(1.0, 1.0), (2.0, 1.0), (0.0, 1.0), (-0.1, 1.0), (float("nan"), 1.0)])
def test_bad_clip_range_raises(near, far):
    with pytest.raises(ValueError, match="near and far"):
        lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=DT), width=8, height=8, near=near, far=far)


@pytest.mark.parametrize("width, height, exc, match", [
    (0, 8, ValueError, "width"), (8, -1, ValueError, "height"), (8.0, 8, TypeError, "width"),
    (8, True, TypeError, "height"), ("8", 8, TypeError, "width"),
])
def test_bad_image_size_raises(width, height, exc, match):
    with pytest.raises(exc, match=match):
        lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=DT), width=width, height=height)


def test_bad_dtypes_and_values_raise():
    with pytest.raises(TypeError, match="K"):
        lg.Camera(K=torch.eye(3, dtype=torch.int64), world_to_cam=torch.eye(4, dtype=DT), width=8, height=8)
    with pytest.raises(TypeError, match="world_to_cam"):
        lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=torch.int32), width=8, height=8)
    with pytest.raises(TypeError, match="K"):
        lg.Camera(K=_K().tolist(), world_to_cam=torch.eye(4, dtype=DT), width=8, height=8)
    bad = _K()
    bad[0, 2] = float("nan")
    with pytest.raises(ValueError, match="K"):
        lg.Camera(K=bad, world_to_cam=torch.eye(4, dtype=DT), width=8, height=8)
    w2c = torch.eye(4, dtype=DT)
    w2c[1, 3] = float("inf")
    with pytest.raises(ValueError, match="world_to_cam"):
        lg.Camera(K=_K(), world_to_cam=w2c, width=8, height=8)


# ------------------------------------------------------------------------------------------------- look_at
def test_look_at_target_at_centre_up_is_up_right_is_right():
    g = _gen(3)
    eyes = torch.randn(6, 3, generator=g, dtype=DT) * 3
    targets = torch.randn(6, 3, generator=g, dtype=DT) * 0.5
    up = torch.tensor([0.0, 1.0, 0.0], dtype=DT)
    cams = lg.Camera.look_at(eyes, targets, up, fov_y=0.8, width=40, height=30)
    assert cams.batch_shape == (6,)
    uv, z = cams.project(targets[:, None])
    torch.testing.assert_close(uv[:, 0], torch.tensor([20.0, 15.0], dtype=DT).expand(6, 2), rtol=0, atol=1e-12)
    torch.testing.assert_close(z[:, 0], (targets - eyes).norm(dim=-1), rtol=1e-14, atol=1e-14)
    # The eye is the camera centre.
    torch.testing.assert_close(cams.transform(eyes[:, None])[:, 0], torch.zeros(6, 3, dtype=DT), rtol=0, atol=1e-14)
    # A point above the target appears higher up (smaller row), one to the viewer's right in a larger column.
    forward = (targets - eyes) / (targets - eyes).norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, up.expand(6, 3))
    right = right / right.norm(dim=-1, keepdim=True)
    above, _ = cams.project((targets + 0.1 * up)[:, None])
    to_right, _ = cams.project((targets + 0.1 * right)[:, None])
    assert (above[:, 0, 1] < 15.0 - 1e-3).all()
    torch.testing.assert_close(to_right[:, 0, 1], torch.full((6,), 15.0, dtype=DT), rtol=0, atol=1e-12)
    assert (to_right[:, 0, 0] > 20.0 + 1e-3).all()
    # The rotation is proper and orthonormal.
    R = cams.world_to_cam[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=DT).expand(6, 3, 3), rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(6, dtype=DT), rtol=0, atol=1e-14)


def test_look_at_canonical_pose():
    # Eye at z = -3 looking at the origin with world +y up, by hand: forward (camera z) = world +z, camera y (down)
    # = world -y, camera x (right) = y x z = (-y) x z = world -x; t = -R eye = (0, 0, 3).
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.0], dtype=DT), torch.zeros(3, dtype=DT),
                            torch.tensor([0.0, 1.0, 0.0], dtype=DT), width=8, height=8)
    expect = torch.tensor([[-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 1.0, 3.0], [0, 0, 0, 1.0]], dtype=DT)
    torch.testing.assert_close(cam.world_to_cam, expect, rtol=0, atol=1e-15)


def test_look_at_accepts_lists_and_explicit_K_and_clip_range():
    K = _K().float()
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], K=K, width=32, height=24, near=0.5, far=9.0)
    assert torch.equal(cam.K, K) and (cam.near, cam.far) == (0.5, 9.0)
    assert cam.world_to_cam.dtype == torch.float32  # lists take the default dtype
    uv, z = cam.project(torch.zeros(1, 3))
    torch.testing.assert_close(uv[0], torch.tensor([16.0, 12.0]), rtol=0, atol=1e-5)
    assert abs(float(z[0]) - 3.0) < 1e-6


def test_mixed_dtype_K_and_world_to_cam_are_rejected_or_unified():
    try:
        cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], K=_K(), width=32, height=24)
    except (TypeError, ValueError) as exc:
        assert "world_to_cam" in str(exc) or "K" in str(exc)
        return
    assert cam.world_to_cam.dtype == cam.dtype
    cam.project(torch.zeros(1, 3, dtype=cam.dtype))


def test_look_at_up_parallel_raises():
    with pytest.raises(ValueError, match="up"):
        lg.Camera.look_at(torch.tensor([0.0, 3.0, 0.0], dtype=DT), torch.zeros(3, dtype=DT),
                          torch.tensor([0.0, 1.0, 0.0], dtype=DT))


def test_from_fov_focal_formula():
    fov_y, W, H = 0.7, 40, 30
    cam = lg.Camera.from_fov(fov_y, W, H, torch.eye(4, dtype=DT))
    f = H / 2 / math.tan(fov_y / 2)
    torch.testing.assert_close(cam.K, torch.tensor([[f, 0, 20.0], [0, f, 15.0], [0, 0, 1]], dtype=DT), rtol=1e-15,
                               atol=0)
    # Points at half the vertical field of view above / below the axis land on the top / bottom image edge.
    a = fov_y / 2
    pts = torch.tensor([[0.0, -math.sin(a), math.cos(a)], [0.0, math.sin(a), math.cos(a)]], dtype=DT) * 2.5
    uv, _ = cam.project(pts)
    torch.testing.assert_close(uv, torch.tensor([[20.0, 0.0], [20.0, 30.0]], dtype=DT), rtol=0, atol=1e-12)
    assert cam.K.dtype == DT


# ------------------------------------------------------------------------------------- projection and rays
def test_project_and_rays_round_trip():
    K = torch.stack([_K(), _K(fx=31.0, fy=29.0, cx=15.2, cy=13.7, s=1.5)])
    w2c = _random_w2c(2, seed=4)
    cams = lg.Camera(K=K, world_to_cam=w2c, width=32, height=24)
    pc = torch.randn(2, 7, 3, generator=_gen(5), dtype=DT)
    pc[..., 2] = pc[..., 2].abs() + 0.5
    world = (pc - w2c[:, None, :3, 3]) @ w2c[:, :3, :3]  # inverse rigid transform, written out
    torch.testing.assert_close(cams.transform(world), pc, rtol=0, atol=1e-13)
    uv, z = cams.project(world)
    torch.testing.assert_close(z, pc[..., 2], rtol=0, atol=1e-13)
    rays = cams.rays(uv)
    assert rays.shape == (2, 7, 3)
    torch.testing.assert_close(rays * z[..., None], pc, rtol=0, atol=1e-12)
    # Rays through extra sample dims.
    grid = torch.rand(2, 3, 4, 2, generator=_gen(6), dtype=DT) * 20
    r = cams.rays(grid)
    back = pj.project_points(r.reshape(2, 12, 3), K).reshape(2, 3, 4, 2)
    torch.testing.assert_close(back, grid, rtol=0, atol=1e-12)


def test_project_by_hand():
    K = torch.tensor([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]], dtype=DT)
    pts = torch.tensor([[0.0, 0.0, 5.0], [1.0, -0.5, 2.0]], dtype=DT)
    torch.testing.assert_close(pj.project_points(pts, K), torch.tensor([[32.0, 24.0], [82.0, -1.0]], dtype=DT),
                               rtol=0, atol=1e-13)


def test_pixel_centres_and_rays_at_pixels():
    K = _K(s=0.7)
    H, W = 3, 4
    idx = torch.arange(2 * H * W)
    K2 = torch.stack([K, _K(fx=9.0)])
    rays = pj.rays_at_pixels(K2, idx, H, W)
    centres = lg.conventions.pixel_centers(H, W, dtype=DT).reshape(-1, 2)
    torch.testing.assert_close(pj.project_points(rays[: H * W], K), centres, rtol=0, atol=1e-13)
    torch.testing.assert_close(pj.project_points(rays[H * W:], K2[1]), centres, rtol=0, atol=1e-13)


# ------------------------------------------------------------------------------------------------ batching
def test_batched_cameras_broadcast_and_index():
    K = torch.stack([_K(), _K(fx=30.0), _K(cx=10.0)])  # [3, 3, 3]
    w2c = _random_w2c(1, seed=7)[0]  # shared [4, 4]
    cams = lg.Camera(K=K, world_to_cam=w2c, width=32, height=24)
    assert cams.batch_shape == (3,) and len(cams) == 3
    Kf, wf = cams.flat()
    assert Kf.shape == (3, 3, 3) and wf.shape == (3, 4, 4)
    pts = torch.randn(3, 5, 3, generator=_gen(8), dtype=DT)
    uv, z = cams.project(pts)
    for k in range(3):
        one = cams[k]
        assert one.batch_shape == () and torch.equal(one.K, K[k]) and torch.equal(one.world_to_cam, w2c)
        u1, z1 = one.project(pts[k])
        torch.testing.assert_close(u1, uv[k], rtol=0, atol=1e-13)
        torch.testing.assert_close(z1, z[k], rtol=0, atol=1e-13)
    sub = cams[1:]
    assert sub.batch_shape == (2,) and torch.equal(sub.K, K[1:])
    grid = lg.Camera(K=K[:2, None].expand(2, 2, 3, 3), world_to_cam=_random_w2c(2, seed=9)[None], width=8, height=8)
    assert grid.batch_shape == (2, 2) and len(grid) == 4
    assert grid[1, 0].batch_shape == () and grid[:, 1].batch_shape == (2,)
    c32 = cams.to(dtype=torch.float32)
    assert c32.dtype == torch.float32 and c32.world_to_cam.dtype == torch.float32 and c32.batch_shape == (3,)


# ----------------------------------------------------------------------------------------------- gradients
def test_gradients_reach_K_and_world_to_cam_through_rasterize():
    verts, faces = uv_sphere(6, 10)
    base = camera_at((0.4, 0.3, -3.0), size=(12, 10))
    K = base.K.clone().requires_grad_()
    w2c = base.world_to_cam.clone().requires_grad_()
    weights = torch.randn(10, 12, 3, generator=_gen(10), dtype=DT)

    def loss(K_, w2c_):
        frags = lg.rasterize(verts, faces, lg.Camera(K=K_, world_to_cam=w2c_, width=12, height=10))
        return (frags.bary * weights).sum() + frags.depth.sum()

    gK, gw = torch.autograd.grad(loss(K, w2c), (K, w2c))
    assert torch.isfinite(gK).all() and torch.isfinite(gw).all()
    assert gK[:2].abs().sum() > 0 and gw[:3].abs().sum() > 0
    # The bottom rows are constants of the parameterisation: zero gradient; fx, fy, cx, cy, skew all matter.
    assert (gK[2] == 0).all() and (gK[[0, 0, 0, 1, 1], [0, 1, 2, 1, 2]] != 0).all()
    # Finite differences agree (visibility does not change for these tiny steps).
    with torch.no_grad():
        fdK = central_fd(lambda k: loss(k, w2c.detach()), K.detach().clone(), 1e-6)
        fdw = central_fd(lambda w: loss(K.detach(), w), w2c.detach().clone(), 1e-7)
    torch.testing.assert_close(gK, fdK, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw[:3], fdw[:3], rtol=1e-5, atol=1e-5)


def test_gradcheck_projection_functions():
    g = _gen(11)
    pts = torch.randn(2, 4, 3, generator=g, dtype=DT)
    pts[..., 2] = pts[..., 2].abs() + 1.0
    w2c = _random_w2c(2, seed=12)
    K = torch.stack([_K(s=0.4), _K(fx=15.0)])
    uv = torch.rand(2, 4, 2, generator=g, dtype=DT) * 20
    for fn, args in [
        (pj.transform_points, (pts, w2c)),
        (pj.project_points, (pts, K)),
        (pj.pixel_rays, (K[:, None], uv)),
        (lambda k: pj.rays_at_pixels(k, torch.tensor([0, 5, 13, 23]), 3, 4), (K,)),
        (lambda e, t: pj.look_at(e, t, torch.tensor([0.0, 1.0, 0.0], dtype=DT)),
         (torch.randn(3, 3, generator=g, dtype=DT) * 3, torch.randn(3, 3, generator=g, dtype=DT) * 0.1)),
    ]:
        args = tuple(a.clone().requires_grad_() for a in args)
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_non_orthonormal_rotation_warns_singular_reflection_and_negative_focal_raise():
    import warnings

    K = torch.tensor([[10.0, 0.0, 5.0], [0.0, 10.0, 5.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    skewed = torch.eye(4, dtype=torch.float64)
    skewed[0, 1] = 0.2
    with pytest.warns(UserWarning, match="not orthonormal"):
        lg.Camera(K=K, world_to_cam=skewed, width=10, height=10)
    mirrored = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="reflection"):
        lg.Camera(K=K, world_to_cam=mirrored, width=10, height=10)
    singular = torch.eye(4, dtype=torch.float64)
    singular[2, 2] = 0.0  # a projection onto the xy-plane, not a rotation
    with pytest.raises(ValueError, match="singular"):
        lg.Camera(K=K, world_to_cam=singular, width=10, height=10)
    with pytest.raises(ValueError, match="positive focal"):
        lg.Camera(K=K * torch.tensor([[-1.0], [1.0], [1.0]], dtype=torch.float64), world_to_cam=torch.eye(4).double(),
                  width=10, height=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=torch.float64), width=10, height=10)


# ------------------------------------------------------------------------------------------- orthographic
def _ortho(K=None, w2c=None, **kw):
    return lg.Camera(K=_K(fx=10.0, fy=8.0, s=0.5) if K is None else K,
                     world_to_cam=torch.eye(4, dtype=DT) if w2c is None else w2c, width=32, height=24,
                     projection="orthographic", **kw)


def test_orthographic_project_by_hand_ignores_depth():
    # u = fx x + s y + cx, v = fy y + cy with fx = 10, fy = 8, s = 0.5, cx = 16, cy = 12.
    cam = _ortho()
    pts = torch.tensor([[1.0, -0.5, 7.0], [1.0, -0.5, 0.2], [0.0, 0.0, 3.0]], dtype=DT)
    uv, z = cam.project(pts)
    torch.testing.assert_close(uv, torch.tensor([[25.75, 8.0], [25.75, 8.0], [16.0, 12.0]], dtype=DT), rtol=0,
                               atol=1e-13)
    torch.testing.assert_close(z, pts[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(pj.project_points(pts, cam.K, projection="orthographic"), uv, rtol=0, atol=0)
    assert cam.projection == "orthographic" and lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=DT), width=8,
                                                          height=8).projection == "perspective"


def test_projection_is_validated_and_orthographic_refuses_distortion():
    with pytest.raises(ValueError, match="projection must be one of"):
        lg.Camera(K=_K(), world_to_cam=torch.eye(4, dtype=DT), width=8, height=8, projection="fisheye")
    with pytest.raises(ValueError, match="orthographic camera cannot have lens distortion"):
        _ortho(distortion=torch.zeros(5, dtype=DT))
    with pytest.raises(ValueError, match="projection must be one of"):
        pj.project_points(torch.ones(1, 3, dtype=DT), _K(), projection="ortho")


def test_orthographic_rays_refuse_and_origins_directions_round_trip():
    K = torch.stack([_K(fx=10.0, fy=8.0, s=0.5), _K(fx=31.0, fy=29.0, cx=15.2, cy=13.7, s=-1.5)])
    w2c = _random_w2c(2, seed=21)
    cams = lg.Camera(K=K, world_to_cam=w2c, width=32, height=24, projection="orthographic")
    with pytest.raises(ValueError, match="ray_origins_directions"):
        cams.rays(torch.zeros(2, 3, 2, dtype=DT))
    pc = torch.randn(2, 7, 3, generator=_gen(22), dtype=DT)
    world = (pc - w2c[:, None, :3, 3]) @ w2c[:, :3, :3]
    uv, z = cams.project(world)
    o, d = cams.ray_origins_directions(uv)
    assert o.shape == d.shape == (2, 7, 3)
    torch.testing.assert_close(d, torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(2, 7, 3), rtol=0, atol=0)
    torch.testing.assert_close(o[..., 2], torch.zeros(2, 7, dtype=DT), rtol=0, atol=0)
    torch.testing.assert_close(o + z[..., None] * d, pc, rtol=0, atol=1e-12)  # every depth, including z < 0
    # Extra sample dims.
    grid = torch.rand(2, 3, 4, 2, generator=_gen(23), dtype=DT) * 20
    og, _ = cams.ray_origins_directions(grid)
    back = pj.project_points_orthographic(og.reshape(2, 12, 3), K).reshape(2, 3, 4, 2)
    torch.testing.assert_close(back, grid, rtol=0, atol=1e-12)


def test_perspective_ray_origins_directions_are_rays_from_the_centre():
    cams = lg.Camera(K=torch.stack([_K(), _K(s=0.7)]), world_to_cam=_random_w2c(2, seed=24), width=32, height=24)
    uv = torch.rand(2, 5, 2, generator=_gen(25), dtype=DT) * 20
    o, d = cams.ray_origins_directions(uv)
    assert (o == 0).all()
    torch.testing.assert_close(d, cams.rays(uv), rtol=0, atol=0)


def test_orthographic_constructor_and_projection_survives_to_getitem_repr():
    w2c = _random_w2c(3, seed=26)
    cams = lg.Camera.orthographic(2.0, 40, 30, w2c, near=0.5)
    torch.testing.assert_close(cams.K, torch.tensor([[15.0, 0, 20.0], [0, 15.0, 15.0], [0, 0, 1]], dtype=DT),
                               rtol=0, atol=0)
    assert cams.batch_shape == (3,) and cams.near == 0.5 and "projection='orthographic'" in repr(cams)
    # The image spans view_height = 2 units vertically: y = +-1 lands on the bottom / top edge.
    edge, _ = cams[0].project(torch.tensor([[0.0, -1.0, 1.0], [0.0, 1.0, 5.0]], dtype=DT) @ w2c[0, :3, :3]
                              - w2c[0, :3, 3] @ w2c[0, :3, :3])
    torch.testing.assert_close(edge, torch.tensor([[20.0, 0.0], [20.0, 30.0]], dtype=DT), rtol=0, atol=1e-12)
    for cam in (cams[1], cams[1:], cams.to(dtype=torch.float32)):
        assert cam.projection == "orthographic"
    with pytest.raises(ValueError, match="needs K"):
        lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], projection="orthographic")
    K = pj.K_orthographic(2.0, 32, 24, dtype=torch.float32)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], K=K, width=32, height=24, projection="orthographic")
    assert cam.projection == "orthographic"
    with pytest.raises(ValueError, match="view_height"):
        pj.K_orthographic(0.0, 32, 24)


def test_gradcheck_orthographic_functions():
    g = _gen(27)
    pts = torch.randn(2, 4, 3, generator=g, dtype=DT)
    K = torch.stack([_K(s=0.4), _K(fx=15.0)])
    uv = torch.rand(2, 4, 2, generator=g, dtype=DT) * 20
    for fn, args in [
        (pj.project_points_orthographic, (pts, K)),
        (lambda k, x: pj.pixel_ray_origins_directions(k, x, "orthographic"), (K[:, None], uv)),
        (pj.lift_orthographic, (pts,)),
    ]:
        args = tuple(a.clone().requires_grad_() for a in args)
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-8, rtol=1e-6)
    # Cross products of lifted points are 2D edge functions: for the ray starting at (x, y, 0), d = (x, y, 1),
    # d . (a' x b') = (b - a) x (r - a) in the xy-plane: zero on the line through a and b, whatever the depths.
    a, b = pts[0, 0], pts[0, 1]
    c = torch.linalg.cross(pj.lift_orthographic(a), pj.lift_orthographic(b))
    q = a + 0.7 * (b - a) + torch.tensor([0.0, 0.0, 5.0], dtype=DT)
    assert abs(float(c @ pj.lift_orthographic(q))) < 1e-12
    r = torch.tensor([0.3, -0.2], dtype=DT)
    e = b - a
    torch.testing.assert_close(c @ torch.cat([r, r.new_ones(1)]), e[0] * (r[1] - a[1]) - e[1] * (r[0] - a[0]),
                               rtol=0, atol=1e-13)


def test_crop_moves_the_principal_point_and_keeps_the_rays():
    """A crop's pixel sees the ray of the full image's pixel it covers, lens distortion included."""
    cam = lg.Camera.look_at(torch.tensor([0.3, 0.2, -3.5], dtype=DT), torch.zeros(3, dtype=DT), fov_y=0.8,
                            width=37, height=29, distortion=torch.tensor([-0.1, 0.02, 0.001, -0.002, 0.0], dtype=DT))
    tile = cam.crop(5, 7, 10, 6)
    assert (tile.width, tile.height) == (10, 6)
    assert torch.equal(tile.K[:2, 2], cam.K[:2, 2] - torch.tensor([5.0, 7.0], dtype=DT))
    uv = torch.tensor([[0.5, 0.5], [9.5, 5.5]], dtype=DT)
    torch.testing.assert_close(tile.rays(uv), cam.rays(uv + torch.tensor([5.0, 7.0], dtype=DT)))


def test_crop_refuses_windows_outside_the_image():
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=37, height=29)
    with pytest.raises(ValueError, match="inside the 37x29 image"):
        cam.crop(30, 0, 8, 4)
    with pytest.raises(ValueError, match="inside"):
        cam.crop(-1, 0, 4, 4)
    with pytest.raises(TypeError, match="x0 must be an int"):
        cam.crop(1.0, 0, 4, 4)
    with pytest.raises(ValueError, match="width"):
        cam.crop(0, 0, 0, 4)


def test_crop_is_differentiable_in_K():
    w2c = lg.Camera.look_at([0.2, 0.1, -3.0], [0.0, 0.0, 0.0], width=16, height=12).world_to_cam.to(DT)
    points = torch.tensor([[0.1, -0.2, 0.3], [-0.4, 0.2, 0.0]], dtype=DT)

    def project(K):
        return lg.Camera(K, w2c, 16, 12).crop(3, 2, 8, 6).project(points)[0]

    assert torch.autograd.gradcheck(project, (_K().requires_grad_(True),))
