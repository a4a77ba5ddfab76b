"""Multi-view consistency: reprojection vs analytic geometry, ~0 loss on exact synthetic views, growth under a
pose error, occluded / outside pixels excluded, gradcheck in depth and pose, bad input."""

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.cameras import Camera
from lumigrad.cameras.projection import look_at
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam, invert_rigid, pixel_centers
from lumigrad.losses import multiview_consistency_loss, reproject, warp_to_view

DT = torch.float64
EYES = ((0.4, -0.3, -3.0), (-0.5, 0.2, -3.2), (0.1, 0.5, -2.8))


def _cameras(eyes=EYES, size=32, w2c=None):
    if w2c is None:
        eye = torch.tensor(eyes, dtype=DT)
        w2c = look_at(eye, torch.zeros_like(eye), torch.tensor([0.0, 1.0, 0.0], dtype=DT).expand_as(eye))
    return Camera.from_fov(0.8, size, size, w2c)


def _scene(cams, sphere=None):
    """Analytic z-depth ``[N, H, W]`` and world points of the plane z = 0 (and an optional sphere in front)."""
    K, w2c = cams.flat()
    uv = pixel_centers(cams.height, cams.width, dtype=DT)
    d_cam = torch.stack([(uv[..., 0] - K[:, None, None, 0, 2]) / K[:, None, None, 0, 0],
                         (uv[..., 1] - K[:, None, None, 1, 2]) / K[:, None, None, 1, 1],
                         torch.ones(K.shape[0], cams.height, cams.width, dtype=DT)], -1)
    c2w = invert_rigid(w2c)
    d = torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], d_cam)  # world direction with camera z = 1
    C = c2w[:, None, None, :3, 3]
    depth = -C[..., 2] / d[..., 2]
    if sphere is not None:
        centre, r = torch.tensor(sphere[0], dtype=DT), sphere[1]
        oc = C - centre
        a, b, c = (d * d).sum(-1), 2 * (d * oc).sum(-1), (oc * oc).sum(-1) - r * r
        disc = b * b - 4 * a * c
        s = (-b - torch.sqrt(disc.clamp_min(0))) / (2 * a)
        depth = torch.where((disc > 0) & (s > 0) & (s < depth), s, depth)
    return depth, C + depth[..., None] * d


def _colour(X):
    x, y, z = X.unbind(-1)
    return torch.stack([0.5 + 0.3 * torch.sin(2 * x + y + 3 * z), 0.5 + 0.3 * torch.cos(1.5 * y - x),
                        0.5 + 0.2 * torch.sin(x * y + 2 * z)], -1)


def test_reproject_matches_analytic_projection():
    cams = _cameras()
    depth, X = _scene(cams)
    uv, z = reproject(depth[0], cams[0], cams[1])
    uv_ref, z_ref = cams[1].project(X[0].reshape(-1, 3))
    torch.testing.assert_close(uv, uv_ref.reshape(uv.shape))
    torch.testing.assert_close(z, z_ref.reshape(z.shape))
    # batched cameras and a round trip back to the source pixels
    uv_b, z_b = reproject(depth, cams, cams[torch.tensor([1, 2, 0])])
    torch.testing.assert_close(uv_b[0], uv)
    back, _ = reproject(depth[1], cams[1], cams[1])
    torch.testing.assert_close(back, pixel_centers(32, 32, dtype=DT))


def test_reproject_orthographic_camera():
    w2c = compose_world_to_cam(axis_angle_to_matrix(torch.tensor([0.0, 0.3, 0.0], dtype=DT)),
                               torch.tensor([0.0, 0.0, 4.0], dtype=DT))
    ortho = Camera.orthographic(2.0, 8, 6, w2c)
    persp = Camera.from_fov(0.8, 10, 10, w2c)
    depth = 3 + torch.rand(6, 8, dtype=DT)
    uv, z = reproject(depth, ortho, persp)
    o, d = ortho.ray_origins_directions(pixel_centers(6, 8, dtype=DT))
    X = ((o + depth[..., None] * d) - w2c[:3, 3]) @ w2c[:3, :3]
    uv_ref, z_ref = persp.project(X.reshape(-1, 3))
    torch.testing.assert_close(uv, uv_ref.reshape(6, 8, 2))
    torch.testing.assert_close(z, z_ref.reshape(6, 8))


def test_exact_views_give_near_zero_and_pose_error_grows():
    cams = _cameras()
    depth, X = _scene(cams)
    images = _colour(X)
    exact = float(multiview_consistency_loss(images, depth, cams))
    assert exact < 2e-3
    # the warped image matches the target where valid, and most pixels are valid
    w = warp_to_view(images[1], depth[1], cams[1], depth[0], cams[0])
    assert float(w.valid.double().mean()) > 0.8
    assert float((w.image - images[0]).abs()[w.valid].max()) < 0.02
    # perturb one camera's pose (the images and depths stay as rendered from the true poses)
    prev = None
    for angle in (0.01, 0.02, 0.04):
        R = axis_angle_to_matrix(torch.tensor([0.0, angle, 0.0], dtype=DT))
        w2c = cams.world_to_cam.clone()
        w2c[1] = compose_world_to_cam(R, torch.zeros(3, dtype=DT)) @ w2c[1]
        bad = float(multiview_consistency_loss(images, depth, Camera(cams.K, w2c, 32, 32), occlusion_tolerance=1.0))
        assert bad > 5 * exact and (prev is None or bad > prev)
        prev = bad
    assert float(multiview_consistency_loss(images, depth, cams, kind="l2", depth_weight=1.0)) < 2e-3


def test_occluded_pixels_are_excluded():
    cams = _cameras(eyes=((0.9, 0.0, -3.0), (-0.9, 0.0, -3.0)))
    depth, X = _scene(cams, sphere=((0.0, 0.0, -0.8), 0.35))
    images = _colour(X)
    images = images + 0.6 * (depth < 2.6)[..., None].to(DT)  # the sphere is much brighter than the plane
    w = warp_to_view(images[1], depth[1], cams[1], depth[0], cams[0])
    # analytic visibility: view 0's point is visible from camera 1 iff camera 1's depth there is its own depth
    uv, z = reproject(depth[0], cams[0], cams[1])
    pix = uv.floor().long().clamp(0, 31)
    d1 = depth[1][pix[..., 1], pix[..., 0]]
    occluded = z > d1 * 1.05
    assert int(occluded.sum()) > 30  # the sphere hides part of the plane from camera 1
    assert int((occluded & w.valid).sum()) == 0
    good = float(multiview_consistency_loss(images, depth, cams))
    leaky = float(multiview_consistency_loss(images, depth, cams, occlusion_tolerance=1e9))
    assert good < 5e-3 and leaky > 10 * good, (good, leaky)


def test_outside_pixels_are_excluded():
    cams = _cameras(eyes=((0.0, 0.0, -3.0), (1.5, 0.0, -3.0)))
    K, w2c = cams.flat()
    # camera 1 looks along +z from x = 1.5 (not at the origin): the left part of view 0 lies outside it
    w2c = w2c.clone()
    w2c[1] = compose_world_to_cam(torch.eye(3, dtype=DT), torch.tensor([-1.5, 0.0, 3.0], dtype=DT))
    cams = Camera(K, w2c, 32, 32)
    depth, X = _scene(cams)
    images = _colour(X)
    uv, _ = reproject(depth[0], cams[0], cams[1])
    outside = (uv[..., 0] < 0) | (uv[..., 0] > 32) | (uv[..., 1] < 0) | (uv[..., 1] > 32)
    assert 50 < int(outside.sum()) < 32 * 32 - 50
    w = warp_to_view(images[1], depth[1], cams[1], depth[0], cams[0])
    assert int((outside & w.valid).sum()) == 0 and int(w.valid.sum()) > 200
    # background (depth 0) in the target view is never valid either
    depth_bg = depth.clone()
    depth_bg[0, :, :5] = 0
    assert not warp_to_view(images[1], depth[1], cams[1], depth_bg[0], cams[0]).valid[:, :5].any()
    assert float(multiview_consistency_loss(images, depth, cams)) < 2e-3


def test_empty_valid_set_gives_zero():
    cams = _cameras()
    depth, X = _scene(cams)
    d = torch.zeros_like(depth).requires_grad_()
    loss = multiview_consistency_loss(_colour(X), d, cams)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.isfinite(d.grad).all()


def test_non_finite_background_depth_gives_finite_gradients():
    cams = _cameras()
    depth, X = _scene(cams)
    d = depth.clone()
    d[:, :4] = float("inf")
    d[:, -3:] = float("nan")
    d.requires_grad_()
    loss = multiview_consistency_loss(_colour(X), d, cams, depth_weight=1.0)
    assert 0 < float(loss.detach()) < 2e-3
    loss.backward()
    assert torch.isfinite(d.grad).all() and float(d.grad[:, :4].abs().max()) == 0.0


def test_gradcheck_depth_and_pose():
    cams = _cameras(eyes=EYES[:2], size=6)
    depth, _ = _scene(cams)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 6, 6, 3, generator=g, dtype=DT)
    d = (depth + 0.01 * torch.rand(depth.shape, generator=g, dtype=DT)).requires_grad_()
    for kind, dw in (("l1", 0.0), ("l2", 0.5)):
        assert gradcheck(lambda x: multiview_consistency_loss(images, x, cams, kind=kind, depth_weight=dw,
                                                              occlusion_tolerance=0.2), (d,))
    # camera translation (world_to_cam built from a parameter) and the images get gradients too
    t = cams.world_to_cam[:, :3, 3].clone().requires_grad_()
    R = cams.world_to_cam[:, :3, :3]
    img = images.clone().requires_grad_()
    assert gradcheck(lambda tt, im: multiview_consistency_loss(im, depth.detach(),
                                                               Camera(cams.K, compose_world_to_cam(R, tt), 6, 6),
                                                               occlusion_tolerance=0.2), (t, img),
                     fast_mode=True)


def test_pairs_subset():
    cams = _cameras()
    depth, X = _scene(cams)
    images = _colour(X)
    images[2] = 1 - images[2]  # view 2 disagrees with everyone
    assert float(multiview_consistency_loss(images, depth, cams, pairs=[(0, 1), (1, 0)])) < 2e-3
    assert float(multiview_consistency_loss(images, depth, cams, pairs=torch.tensor([[0, 2]]))) > 0.05


def test_bad_input():
    cams = _cameras()
    depth, X = _scene(cams)
    images = _colour(X)
    with pytest.raises(ValueError, match="depths must have shape"):
        multiview_consistency_loss(images, depth[:, :-1], cams)
    with pytest.raises(ValueError, match="cameras must have batch shape"):
        multiview_consistency_loss(images[:2], depth[:2], cams)
    with pytest.raises(TypeError, match="cameras must be"):
        multiview_consistency_loss(images, depth, "cams")
    with pytest.raises(ValueError, match="pairs holds view index 3"):
        multiview_consistency_loss(images, depth, cams, pairs=[(0, 3)])
    with pytest.raises(ValueError, match="pairs must hold"):
        multiview_consistency_loss(images, depth, cams, pairs=[0, 1])
    with pytest.raises(ValueError, match="kind"):
        multiview_consistency_loss(images, depth, cams, kind="huber")
    with pytest.raises(ValueError, match="occlusion_tolerance"):
        multiview_consistency_loss(images, depth, cams, occlusion_tolerance=-1)
    with pytest.raises(ValueError, match="at least 2 views"):
        multiview_consistency_loss(images[:1], depth[:1], cams[:1])
    with pytest.raises(ValueError, match="depth_src is 32 x 31"):
        reproject(depth[0, :, :31], cams[0], cams[1])
    with pytest.raises(ValueError, match="camera_dst must be a single camera"):
        reproject(depth[0], cams[0], cams)


def test_depth_maps_with_a_trailing_channel_give_the_same_results():
    """``rasterize(...).depth`` and ``render_geometry``'s depth are ``[..., H, W, 1]``: taken as they come."""
    cams = _cameras()
    depth, X = _scene(cams, sphere=((0.1, 0.0, -0.5), 0.4))
    images = _colour(X)
    channel = depth[..., None]
    assert torch.equal(multiview_consistency_loss(images, channel, cams, depth_weight=0.5),
                       multiview_consistency_loss(images, depth, cams, depth_weight=0.5))
    for a, b in zip(reproject(channel[0], cams[0], cams[1]), reproject(depth[0], cams[0], cams[1])):
        assert torch.equal(a, b)
    got = warp_to_view(images[1], channel[1], cams[1], channel[0], cams[0])
    want = warp_to_view(images[1], depth[1], cams[1], depth[0], cams[0])
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="depths must have shape"):  # a channel of 2 is not a depth map
        multiview_consistency_loss(images, torch.cat([channel, channel], -1), cams)
