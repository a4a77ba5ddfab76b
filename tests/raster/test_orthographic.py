"""Orthographic cameras through rasterize, interpolate and antialias.

Same bar as the perspective path: the kernels against the brute-force float64 twins (which treat the
orthographic camera in screen space, independently of the camera-frame ray forms the ops use), hand-checked
depths and barycentrics, gradcheck of the smooth outputs, finite differences through antialias and against
a 16x supersampled hard render, and a far-away long-focal perspective camera as a sanity limit.
"""

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras.projection import K_orthographic
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam
from lumigrad.raster.reference import antialias_ref, interpolate_ref, rasterize_ref

from ..conftest import camera_at, central_fd, cosine, save_failure_images, uv_sphere

DT = torch.float64


def ortho_camera(eye, target=(0.0, 0.0, 0.0), size=(32, 32), view_height=2.6, skew=0.0, **kw):
    """An unbatched orthographic look-at camera with world +y up (the image spans ``view_height`` units)."""
    w2c = camera_at(eye, target, size=size).world_to_cam
    K = K_orthographic(view_height, size[0], size[1], dtype=DT)
    K[0, 1] = skew
    return lg.Camera(K=K, world_to_cam=w2c, width=size[0], height=size[1], projection="orthographic", **kw)


def _two_overlapping_triangles():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],
                          [-0.5, -0.2, -0.5], [1.2, 0.0, -0.5], [0.2, 1.3, -0.5]], dtype=DT)
    return verts, torch.tensor([[0, 2, 1], [3, 5, 4]])


def _scene_occlusion(n_lat=4, n_lon=8):
    """A small sphere in front of a large quad: silhouettes against the background and against a surface."""
    sv, sf = uv_sphere(n_lat, n_lon, radius=0.6)
    quad = torch.tensor([[-1.5, -1.5, 1.0], [1.5, -1.5, 1.0], [1.5, 1.5, 1.0], [-1.5, 1.5, 1.0]], dtype=DT)
    n = sv.shape[0]
    return torch.cat([sv, quad]), torch.cat([sf, torch.tensor([[n, n + 2, n + 1], [n, n + 3, n + 2]])])


def _colors(num, seed=0):
    return torch.rand(num, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _shade(verts, faces, cam, colors):
    frags = lg.rasterize(verts, faces, cam)
    return lg.antialias(lg.interpolate(colors, frags, faces), frags, verts, faces, cam)


def _compare_ids(kernel, ref, name, max_mismatch=0):
    bad = kernel.face_ids != ref.face_ids
    if int(bad.sum()) > max_mismatch:
        save_failure_images(name, kernel=kernel.face_ids.double(), ref=ref.face_ids.double(), diff=bad.double())
    assert int(bad.sum()) <= max_mismatch, f"{int(bad.sum())} pixels differ from the reference"


# ------------------------------------------------------------------------------------- rasterize vs twin
@pytest.mark.parametrize("eye, skew", [((0.3, 0.4, -3.0), 0.0), ((2.5, -1.0, 1.5), 0.8), ((0.0, 3.0, 0.01), -0.5)])
def test_matches_reference_sphere(eye, skew):
    verts, faces = uv_sphere(10, 16)
    cam = ortho_camera(eye, size=(40, 30), skew=skew)
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    ref = rasterize_ref(verts, faces, cam)
    _compare_ids(frags, ref, f"ortho_sphere_{eye}", max_mismatch=1)
    same = (frags.face_ids == ref.face_ids) & ref.mask
    assert int(same.sum()) > 200
    torch.testing.assert_close(frags.bary[same], ref.bary[same], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(frags.depth[same], ref.depth[same], rtol=1e-9, atol=1e-9)
    # Orthographic barycentrics are affine in the pixel position: their derivatives are constant per face.
    d = frags.bary_derivs[same]
    ids = frags.face_ids[same]
    for f in ids.unique()[:5].tolist():
        rows = d[ids == f]
        torch.testing.assert_close(rows, rows[:1].expand_as(rows), rtol=0, atol=1e-12)


def test_back_face_culling():
    verts, faces = uv_sphere(8, 12)
    cam = ortho_camera((0.2, 0.1, -3.0), size=(24, 24), skew=0.3)
    for cull in ("back", "front"):
        frags = lg.rasterize(verts, faces, cam, cull=cull)
        _compare_ids(frags, rasterize_ref(verts, faces, cam, cull=cull), f"ortho_cull_{cull}", max_mismatch=1)
    # A closed convex mesh seen orthographically shows only front faces.
    assert torch.equal(lg.rasterize(verts, faces, cam, cull="back").face_ids, lg.rasterize(verts, faces, cam).face_ids)


def test_near_plane_clips_in_camera_space():
    # A ramp y = z / 2 from z = -2 (behind the camera's origin) to z = 6. An orthographic camera would see all
    # of it, but near > 0 still clips z < near: only the rows with y >= near / 2 are drawn.
    verts = torch.tensor([[-1.0, -1.0, -2.0], [1.0, -1.0, -2.0], [1.0, 3.0, 6.0], [-1.0, 3.0, 6.0]], dtype=DT)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    K = torch.tensor([[8.0, 0, 16.0], [0, 8.0, 16.0], [0, 0, 1]], dtype=DT)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=32, height=32, near=0.1,
                    projection="orthographic")
    frags = lg.rasterize(verts, faces, cam)
    _compare_ids(frags, rasterize_ref(verts, faces, cam), "ortho_clip_ramp")
    # u in [8, 24] -> columns 8..23; y = (v - 16) / 8 >= 0.05 -> rows 16..31 (row 16 has centre v = 16.5).
    expect = torch.zeros(32, 32, dtype=torch.bool)
    expect[16:, 8:24] = True
    assert torch.equal(frags.mask, expect)
    # depth = 2 y = (v - 16) / 4, exactly affine in v.
    v = torch.arange(32, dtype=DT)[:, None].expand(32, 32) + 0.5
    torch.testing.assert_close(frags.depth[..., 0][expect], ((v - 16) / 4)[expect], rtol=0, atol=1e-12)
    # Moving the camera back by 3 units shows the whole ramp.
    w2c = torch.eye(4, dtype=DT)
    w2c[2, 3] = 3.0
    back = lg.rasterize(verts, faces, lg.Camera(K=K, world_to_cam=w2c, width=32, height=32, near=0.1,
                                                projection="orthographic"))
    assert back.mask[8:, 8:24].all() and int(back.mask.sum()) == 24 * 16


@pytest.mark.parametrize("seed", range(3))
def test_random_triangles_crossing_near_plane(seed):
    g = torch.Generator().manual_seed(seed)
    verts = torch.rand(30, 3, generator=g, dtype=DT) * torch.tensor([4.0, 4.0, 3.0]) - torch.tensor([2.0, 2.0, 0.5])
    faces = torch.randint(0, 30, (12, 3), generator=g)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    K = torch.tensor([[6.0, 0.3, 14], [0, 5.5, 12], [0, 0, 1]], dtype=DT)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=28, height=24, near=0.3,
                    projection="orthographic")
    frags = lg.rasterize(verts, faces, cam)
    ref = rasterize_ref(verts, faces, cam)
    _compare_ids(frags, ref, f"ortho_clip_random_{seed}", max_mismatch=2)
    same = (frags.face_ids == ref.face_ids) & ref.mask
    torch.testing.assert_close(frags.depth[same], ref.depth[same], rtol=1e-9, atol=1e-9)
    assert float(frags.depth[frags.mask].min()) >= 0.3 - 1e-9


# ------------------------------------------------------------------------------------------ by hand
def test_plane_depth_is_affine_in_u():
    # The plane z = 2 + 0.5 x seen by an orthographic camera at the origin: depth = 2 + 0.5 x with
    # y = (v - cy) / fy and x = (u - cx - s y) / fx at every pixel centre.
    fx, fy, s, cx, cy = 4.0, 5.0, 0.5, 8.1, 7.9
    K = torch.tensor([[fx, s, cx], [0, fy, cy], [0, 0, 1]], dtype=DT)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=16, height=16, projection="orthographic")
    xy = torch.tensor([[-3.0, -3.0], [3.0, -3.0], [3.0, 3.0], [-3.0, 3.0]], dtype=DT)
    verts = torch.cat([xy, 2 + 0.5 * xy[:, :1]], -1)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    frags = lg.rasterize(verts, faces, cam)
    assert frags.mask.all()
    v, u = torch.meshgrid(torch.arange(16, dtype=DT) + 0.5, torch.arange(16, dtype=DT) + 0.5, indexing="ij")
    y = (v - cy) / fy
    x = (u - cx - s * y) / fx
    torch.testing.assert_close(frags.depth[..., 0], 2 + 0.5 * x, rtol=0, atol=1e-12)
    # One column to the right is 0.5 / fx deeper, everywhere.
    steps = frags.depth[:, 1:, 0] - frags.depth[:, :-1, 0]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5 / fx), rtol=0, atol=1e-12)


def test_bary_and_bary_derivs_by_hand():
    # Corners (-1, -1), (1, -1), (-1, 1) in the camera's xy-plane: b1 = (x + 1) / 2, b2 = (y + 1) / 2.
    fx, fy, s, cx, cy = 10.0, 8.0, 1.5, 12.3, 9.7
    K = torch.tensor([[fx, s, cx], [0, fy, cy], [0, 0, 1]], dtype=DT)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=24, height=20, projection="orthographic")
    z = torch.tensor([2.0, 3.0, 2.5], dtype=DT)
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]], dtype=DT)
    verts[:, 2] = z
    frags = lg.rasterize(verts, torch.tensor([[0, 1, 2]]), cam, return_bary_derivs=True)
    m = frags.mask
    assert int(m.sum()) > 40
    v, u = torch.meshgrid(torch.arange(20, dtype=DT) + 0.5, torch.arange(24, dtype=DT) + 0.5, indexing="ij")
    y = (v - cy) / fy
    x = (u - cx - s * y) / fx
    b1, b2 = (x + 1) / 2, (y + 1) / 2
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)
    torch.testing.assert_close(frags.bary[m], bary[m], rtol=0, atol=1e-12)
    torch.testing.assert_close(frags.depth[..., 0][m], (bary * z).sum(-1)[m], rtol=0, atol=1e-12)
    inside = (bary > 0).all(-1)
    assert torch.equal(m, inside)
    # d b1 / d(u, v) = (1 / fx, -s / (fx fy)) / 2 and d b2 / d(u, v) = (0, 1 / fy) / 2.
    d1 = torch.tensor([1 / fx, -s / (fx * fy)], dtype=DT) / 2
    d2 = torch.tensor([0.0, 1 / fy], dtype=DT) / 2
    derivs = torch.stack([-(d1 + d2), d1, d2])
    torch.testing.assert_close(frags.bary_derivs[m], derivs.expand(int(m.sum()), 3, 2), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------- gradients
def test_gradcheck_bary_depth_wrt_verts_and_camera():
    verts, faces = _two_overlapping_triangles()
    cam = ortho_camera((0.2, 0.1, -3.0), size=(7, 6), view_height=2.4, skew=0.2)
    K0, w2c0 = cam.K.clone(), cam.world_to_cam.clone()

    def fn(v, K, w2c):
        c = lg.Camera(K=K, world_to_cam=w2c, width=7, height=6, projection="orthographic")
        f = lg.rasterize(v, faces, c, return_bary_derivs=True)
        return f.bary, f.depth, f.bary_derivs

    ids = lg.rasterize(verts, faces, cam).face_ids
    assert (ids == 0).sum() > 5 and (ids == 1).sum() > 5
    torch.autograd.gradcheck(fn, (verts.clone().requires_grad_(), K0.requires_grad_(), w2c0.requires_grad_()),
                             eps=1e-7, atol=1e-6)


def test_interpolate_derivatives_match_principal_point_shift():
    # Shifting cx by +h moves the orthographic image right by h: d attr / du = - d attr / d cx.
    verts, faces = uv_sphere(6, 10)
    cam = ortho_camera((0.4, 0.3, -3.0), size=(16, 16), skew=0.4)
    attrs = _colors(verts.shape[0], seed=8)

    def render(K, derivs=False):
        c = lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=16, height=16, projection="orthographic")
        frags = lg.rasterize(verts, faces, c, return_bary_derivs=derivs)
        return frags, lg.interpolate(attrs, frags, faces, return_derivatives=derivs)

    frags, (_, d_attr) = render(cam.K, True)
    h = 1e-6
    K = cam.K.clone()
    K[0, 2] += h
    f_up, up = render(K.clone())
    K[0, 2] -= 2 * h
    f_down, down = render(K)
    same = (f_up.face_ids == f_down.face_ids) & (f_up.face_ids == frags.face_ids) & frags.mask
    torch.testing.assert_close(d_attr[..., 0][same], (-(up - down) / (2 * h))[same], rtol=1e-5, atol=1e-5)


def test_depth_peeling_layers():
    verts, faces = _two_overlapping_triangles()
    cam = ortho_camera((0.0, 0.0, -3.0), size=(24, 24))
    layers = lg.depth_peel(verts, faces, cam, 3)
    both = (layers[0].face_ids == 1) & (layers[1].face_ids == 0)
    assert both.any()
    assert (layers[1].depth[both] > layers[0].depth[both]).all()
    assert not layers[2].mask.any()
    sv, sf = uv_sphere(8, 12)
    sl = lg.depth_peel(sv, sf, ortho_camera((0.3, 0.2, -3.0), size=(24, 24)), 3)
    assert torch.equal(sl[0].mask, sl[1].mask) and not sl[2].mask.any()
    assert (sl[1].depth[sl[1].mask] > sl[0].depth[sl[0].mask]).all()


# ----------------------------------------------------------------------------------------- antialias
def test_antialias_matches_loop_twin_forward_and_backward():
    verts, faces = _scene_occlusion(6, 10)
    cam = ortho_camera((0.3, 0.2, -3.5), size=(20, 16), view_height=3.4, skew=0.3)
    colors = _colors(verts.shape[0])
    v = verts.clone().requires_grad_(True)
    frags = lg.rasterize(v, faces, cam)
    img = lg.interpolate(colors, frags, faces)
    out = lg.antialias(img, frags, v, faces, cam)

    v_ref = verts.clone().requires_grad_(True)
    frags_ref = rasterize_ref(v_ref, faces, cam)
    assert torch.equal(frags.face_ids, frags_ref.face_ids)
    out_ref = antialias_ref(interpolate_ref(colors, frags_ref, faces), frags_ref, v_ref, faces, cam)
    changed = (out - img).abs().sum(-1) > 1e-12
    assert changed.sum() > 10, "the scene must have silhouette pixels"
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=DT)
    (g,) = torch.autograd.grad((out * cot).sum(), v)
    (g_ref,) = torch.autograd.grad((out_ref * cot).sum(), v_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_hand_checked_vertical_edge():
    # Left edge of a large quad at x0 with fx = 4, cx = 4: u = 4 x0 + 4 = 3.75. Column 3 (centre 3.5) is
    # outside, column 4 inside; t = 0.75 from the covered centre, so column 3 takes 0.25 of the colour.
    K = torch.tensor([[4.0, 0, 4.0], [0, 4.0, 2.0], [0, 0, 1]], dtype=DT)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=8, height=4, projection="orthographic")
    x0 = (3.75 - 4.0) / 4.0
    verts = torch.tensor([[x0, -5, 1.0], [5, -5, 3.0], [5, 5, 2.0], [x0, 5, 1.5]], dtype=DT)
    faces = torch.tensor([[0, 3, 2], [0, 2, 1]])
    frags = lg.rasterize(verts, faces, cam)
    out = lg.antialias(lg.interpolate(torch.ones(4, 1, dtype=DT), frags, faces), frags, verts, faces, cam)
    torch.testing.assert_close(out[:, 3, 0], torch.full((4,), 0.25, dtype=DT))
    torch.testing.assert_close(out[:, 4:, 0], torch.ones(4, 4, dtype=DT))
    assert out[:, :3].abs().sum() == 0


def _fd_check(loss_fn, x, eps, name, min_cos=0.99):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(x), x)
    fd = central_fd(loss_fn, x.detach().clone(), eps)
    cos = cosine(g, fd)
    big = fd.abs() > 0.2 * fd.abs().max()
    assert cos >= min_cos, f"{name}: cosine(grad, FD) = {cos:.4f}"
    assert bool((torch.sign(g[big]) == torch.sign(fd[big])).all()), f"{name}: sign disagreement"
    assert abs(float(g.norm() / fd.norm()) - 1) < 0.05, f"{name}: |grad| / |FD| = {float(g.norm() / fd.norm())}"


@pytest.mark.parametrize("scene", ["sphere_silhouette", "occlusion"])
def test_vertex_gradient_matches_fd_through_antialias(scene):
    if scene == "occlusion":  # colours and coverage; silhouettes against the background and the quad
        verts, faces = _scene_occlusion()
        cam = ortho_camera((0.3, 0.2, -3.5), size=(24, 20), view_height=3.4)
        colors = _colors(verts.shape[0], seed=1)
    else:  # constant colour: every gradient is a visibility gradient
        verts, faces = uv_sphere(4, 8)
        cam = ortho_camera((0.4, 0.3, -3.0), size=(24, 20), skew=0.5)
        colors = torch.ones(verts.shape[0], 3, dtype=DT)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    _fd_check(lambda v: (weights * _shade(v, faces, cam, colors)).sum(), verts, 1e-6, f"ortho verts/{scene}")


def _posed_camera(params, size=(24, 20)):
    """Orthographic camera from 6 pose parameters (axis-angle, translation) applied to a base look-at pose."""
    base = ortho_camera((0.4, 0.3, -3.0), size=size, skew=0.2)
    R = axis_angle_to_matrix(params[:3]) @ base.world_to_cam[:3, :3]
    t = base.world_to_cam[:3, 3] + params[3:]
    return lg.Camera(K=base.K, world_to_cam=compose_world_to_cam(R, t), width=size[0], height=size[1],
                     projection="orthographic")


@pytest.mark.parametrize("scene", ["sphere", "occlusion"])
def test_camera_pose_gradient_matches_fd(scene):
    verts, faces = uv_sphere(6, 10) if scene == "sphere" else _scene_occlusion()
    colors = _colors(verts.shape[0], seed=4)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(5), dtype=DT)

    def loss(p):
        return (weights * _shade(verts, faces, _posed_camera(p), colors)).sum()

    p0 = torch.tensor([0.01, -0.02, 0.015, 0.03, -0.02, 0.05], dtype=DT)
    _fd_check(loss, p0, 1e-6, f"ortho pose/{scene}")


def _supersampled_coverage_loss(verts, faces, cam, weights, factor):
    """Loss of a hard render at ``factor`` x resolution box-filtered down: what the analytic blend targets."""
    K = cam.K.clone()
    K[:2] *= factor
    big = lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=cam.width * factor, height=cam.height * factor,
                    projection="orthographic")
    mask = lg.rasterize(verts, faces, big).mask.double()
    small = mask.reshape(cam.height, factor, cam.width, factor).mean((1, 3))
    return (weights * small).sum()


def test_silhouette_gradient_agrees_with_supersampled_coverage():
    # Move the sphere rigidly in the image plane (x, y translation in the camera frame, a roll about the
    # viewing axis) and scale it: the gradient of the antialiased coverage must agree with finite differences
    # of a 16x16-supersampled hard render (the true box-filtered coverage). The weights ramp across the image
    # so that translations change the loss by more than the noise of the supersampled estimate.
    verts, faces = uv_sphere(8, 14)
    cam = ortho_camera((0.4, 0.3, -3.0), size=(24, 20), skew=0.3)
    R_cam = cam.world_to_cam[:3, :3]
    white = torch.ones(verts.shape[0], 1, dtype=DT)
    v, u = torch.meshgrid(torch.arange(20, dtype=DT), torch.arange(24, dtype=DT), indexing="ij")
    weights = 1 + 0.08 * u - 0.05 * v + 0.3 * torch.rand(20, 24, generator=torch.Generator().manual_seed(6), dtype=DT)
    centre = torch.tensor([0.1, 0.1, 0.1], dtype=DT)

    def moved(p):  # p: (x, y, z) camera-frame translation (z along the rays), roll angle, relative scale
        R = axis_angle_to_matrix(R_cam[2] * p[3])
        return ((verts - centre) @ R.T) * (1 + p[4]) + centre + p[:3] @ R_cam

    def ours(p):
        return (weights * _shade(moved(p), faces, cam, white)[..., 0]).sum()

    p = torch.zeros(5, dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(ours(p), p)
    # Sliding along the (parallel) rays changes nothing in an orthographic image.
    assert abs(float(g[2])) < 1e-9 * float(g.norm())
    eps = 0.02  # about a sixth of a pixel (7.7 pixels per unit)
    fd = torch.zeros(5, dtype=DT)
    for k in (0, 1, 3, 4):
        e = torch.zeros(5, dtype=DT)
        e[k] = eps
        fd[k] = (_supersampled_coverage_loss(moved(e), faces, cam, weights, 16)
                 - _supersampled_coverage_loss(moved(-e), faces, cam, weights, 16)) / (2 * eps)
    for name, sel in (("all", [0, 1, 3, 4]), ("in-plane motion", [0, 1, 3])):
        cos = cosine(g[sel], fd[sel])
        assert cos >= 0.95, f"{name}: cosine {cos:.4f}: ours {g.tolist()} vs supersampled FD {fd.tolist()}"
    big = fd.abs() > 0.2 * fd.abs().max()
    assert (torch.sign(g[big]) == torch.sign(fd[big])).all(), (g, fd)
    assert abs(float(g.norm() / fd.norm()) - 1) < 0.1, (g, fd)  # the right magnitude, not only direction


# ----------------------------------------------------------------------------------------------- sanity
def test_far_long_focal_perspective_approximates_orthographic():
    # A pinhole 1e4 units away with focal length scaled to match at the target: its rays are parallel to
    # within ~1e-4 rad, so it sees what the orthographic camera sees (depths offset by the extra distance).
    verts, faces = _scene_occlusion(6, 10)
    ortho = ortho_camera((0.3, 0.2, -3.5), size=(24, 20), view_height=3.4, skew=0.2)
    D = 1e4
    w2c = ortho.world_to_cam.clone()
    dist = float(w2c[2, 3])  # the target's depth in the orthographic camera
    w2c[2, 3] += D
    K = ortho.K.clone()
    K[:2, :2] *= dist + D
    persp = lg.Camera(K=K, world_to_cam=w2c, width=24, height=20, far=1e5)
    fo, fp = lg.rasterize(verts, faces, ortho), lg.rasterize(verts, faces, persp)
    assert int((fo.face_ids != fp.face_ids).sum()) <= 1
    same = (fo.face_ids == fp.face_ids) & fo.mask
    torch.testing.assert_close(fp.depth[same] - D, fo.depth[same], rtol=0, atol=1e-3)
    torch.testing.assert_close(fp.bary[same], fo.bary[same], rtol=0, atol=1e-3)
    colors = _colors(verts.shape[0], seed=3)
    img_o, img_p = _shade(verts, faces, ortho, colors), _shade(verts, faces, persp, colors)
    near_same = (fo.face_ids == fp.face_ids).all()
    assert not near_same or float((img_o - img_p).abs().max()) < 1e-2


def test_batched_orthographic_views_match_single_views():
    verts, faces = _scene_occlusion()
    eyes = torch.tensor([[0.3, 0.2, -3.5], [-0.4, 0.1, -3.2]], dtype=DT)
    w2c = lg.Camera.look_at(eyes, torch.zeros(2, 3, dtype=DT), torch.tensor([0.0, 1.0, 0.0], dtype=DT),
                            width=16, height=12).world_to_cam
    cams = lg.Camera.orthographic(3.0, 16, 12, w2c)
    assert cams.projection == "orthographic" and cams[1].projection == "orthographic"
    colors = _colors(verts.shape[0])
    batched = _shade(verts, faces, cams, colors)
    for k in range(2):
        torch.testing.assert_close(batched[k], _shade(verts, faces, cams[k], colors))
