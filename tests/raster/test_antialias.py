"""antialias: kernel vs the loop twin, and visibility gradients vs finite differences.

Two kinds of finite-difference check:
* through ``antialias`` itself (its output is continuous in the geometry, so central differences with a
  small step measure exactly the derivative that backward must give);
* against a heavily supersampled hard render (no antialias at all), which is what the analytic blend
  approximates: this checks that the visibility gradient points where the true coverage gradient does.
"""

import pytest
import torch

import lumigrad as lg
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam
from lumigrad.kernels import antialias_kernels
from lumigrad.raster.reference import antialias_ref, rasterize_ref

from ..conftest import camera_at, central_fd, cosine, save_failure_images, uv_sphere


def _shade(verts, faces, cam, colors, aa=True):
    frags = lg.rasterize(verts, faces, cam)
    img = lg.interpolate(colors, frags, faces)
    return lg.antialias(img, frags, verts, faces, cam) if aa else img


def _scene_occlusion(dtype=torch.float64):
    """A small sphere in front of a large quad: silhouettes against the background and against a surface."""
    sv, sf = uv_sphere(6, 10, radius=0.6, dtype=dtype)
    quad = torch.tensor([[-1.5, -1.5, 1.0], [1.5, -1.5, 1.0], [1.5, 1.5, 1.0], [-1.5, 1.5, 1.0]], dtype=dtype)
    verts = torch.cat([sv, quad])
    n = sv.shape[0]
    faces = torch.cat([sf, torch.tensor([[n, n + 2, n + 1], [n, n + 3, n + 2]])])
    return verts, faces


def _colors(num, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(num, 3, generator=g, dtype=dtype)


@pytest.mark.parametrize("scene", ["sphere", "occlusion"])
def test_matches_loop_twin_forward_and_backward(scene):
    if scene == "sphere":
        verts, faces = uv_sphere(6, 10)
        cam = camera_at((0.4, 0.3, -3.0), size=(20, 16))
    else:
        verts, faces = _scene_occlusion()
        cam = camera_at((0.3, 0.2, -3.5), size=(20, 16), fov_y=1.0)
    colors = _colors(verts.shape[0])
    v = verts.clone().requires_grad_(True)
    frags = lg.rasterize(v, faces, cam)
    img = lg.interpolate(colors, frags, faces)
    out = lg.antialias(img, frags, v, faces, cam)

    v_ref = verts.clone().requires_grad_(True)
    frags_ref = rasterize_ref(v_ref, faces, cam)
    assert torch.equal(frags.face_ids, frags_ref.face_ids)
    img_ref = lg.raster.reference.interpolate_ref(colors, frags_ref, faces)
    out_ref = antialias_ref(img_ref, frags_ref, v_ref, faces, cam)
    changed = (out - img).abs().sum(-1) > 1e-12
    assert changed.sum() > 10, "the scene must have silhouette pixels"
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)

    cot = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * cot).sum(), v)
    (g_ref,) = torch.autograd.grad((out_ref * cot).sum(), v_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_hand_checked_vertical_edge():
    # A large quad whose left edge is at u = 3.75 in a 8x4 image: column 3 (centre 3.5) is outside,
    # column 4 (centre 4.5) is inside; t from the covered centre = 0.75 > 0.5, so column 3 takes 0.25
    # of the covered colour.
    K = torch.tensor([[4.0, 0, 4.0], [0, 4.0, 2.0], [0, 0, 1]], dtype=torch.float64)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=torch.float64), width=8, height=4)
    x0 = (3.75 - 4.0) / 4.0
    verts = torch.tensor([[x0, -5, 1.0], [5, -5, 1.0], [5, 5, 1.0], [x0, 5, 1.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 3, 2], [0, 2, 1]])
    frags = lg.rasterize(verts, faces, cam)
    white = torch.ones(4, 1, dtype=torch.float64)
    img = lg.interpolate(white, frags, faces)
    out = lg.antialias(img, frags, verts, faces, cam)
    torch.testing.assert_close(out[:, 3, 0], torch.full((4,), 0.25, dtype=torch.float64))
    torch.testing.assert_close(out[:, 4, 0], torch.ones(4, dtype=torch.float64))
    assert out[:, :3].abs().sum() == 0


def test_interior_edges_are_not_blended():
    # Two front-facing triangles sharing an edge, different constant colours: no silhouette in between.
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    cam = camera_at((0.05, 0.02, -1.2), size=(16, 16), fov_y=1.0)  # the quad fills the view
    frags = lg.rasterize(verts, faces, cam)
    assert frags.mask.all()
    img = torch.where(frags.face_ids[..., None] == 0, 1.0, 0.0).double()
    out = lg.antialias(img, frags, verts, faces, cam)
    assert torch.equal(out, img)


def _fd_check(loss_fn, x, eps, name, min_cos=0.99):
    x = x.clone().requires_grad_(True)
    loss = loss_fn(x)
    (g,) = torch.autograd.grad(loss, x)
    fd = central_fd(lambda y: loss_fn(y), x.detach().clone(), eps)
    cos = cosine(g, fd)
    big = fd.abs() > 0.2 * fd.abs().max()
    sign_ok = bool((torch.sign(g[big]) == torch.sign(fd[big])).all())
    if cos < min_cos or not sign_ok:
        print(name, "grad", g.reshape(-1)[:12], "fd", fd.reshape(-1)[:12])
    assert cos >= min_cos, f"{name}: cosine(grad, FD) = {cos:.4f}"
    assert sign_ok, f"{name}: sign disagreement on large components"
    return cos


@pytest.mark.parametrize("scene", ["sphere", "occlusion"])
def test_vertex_gradient_matches_fd_through_antialias(scene):
    if scene == "sphere":
        verts, faces = uv_sphere(6, 10)
        cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    else:
        verts, faces = _scene_occlusion()
        cam = camera_at((0.3, 0.2, -3.5), size=(24, 20), fov_y=1.0)
    colors = _colors(verts.shape[0], seed=1)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _fd_check(lambda v: (weights * _shade(v, faces, cam, colors)).sum(), verts, 1e-6, f"verts/{scene}")


def test_silhouette_only_gradient_matches_fd():
    # Constant colour: the image changes only through coverage, so every gradient is a visibility gradient.
    verts, faces = uv_sphere(6, 10)
    cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    white = torch.ones(verts.shape[0], 1, dtype=torch.float64)
    weights = torch.rand(20, 24, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _fd_check(lambda v: (weights * _shade(v, faces, cam, white)).sum(), verts, 1e-6, "silhouette")


def _posed_camera(params, size=(24, 20)):
    """Camera from 6 pose parameters (axis-angle, translation) applied to a base look-at pose."""
    base = camera_at((0.4, 0.3, -3.0), size=size)
    R = axis_angle_to_matrix(params[:3]) @ base.world_to_cam[:3, :3]
    t = base.world_to_cam[:3, 3] + params[3:]
    return lg.Camera(K=base.K, world_to_cam=compose_world_to_cam(R, t), width=size[0], height=size[1])


@pytest.mark.parametrize("scene", ["sphere", "occlusion"])
def test_camera_pose_gradient_matches_fd(scene):
    verts, faces = uv_sphere(6, 10) if scene == "sphere" else _scene_occlusion()
    colors = _colors(verts.shape[0], seed=4)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def loss(p):
        cam = _posed_camera(p)
        return (weights * _shade(verts, faces, cam, colors)).sum()

    p0 = torch.tensor([0.01, -0.02, 0.015, 0.03, -0.02, 0.05], dtype=torch.float64)
    _fd_check(loss, p0, 1e-6, f"pose/{scene}")


def _supersampled_coverage_loss(verts, faces, cam, weights, factor):
    """Loss of a hard render at ``factor`` x resolution box-filtered down: the reference AA targets."""
    K = cam.K.clone()
    K[:2] *= factor
    big = lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=cam.width * factor, height=cam.height * factor)
    mask = lg.rasterize(verts, faces, big).mask.double()
    small = mask.reshape(cam.height, factor, cam.width, factor).mean((1, 3))
    return (weights * small).sum()


def test_silhouette_gradient_agrees_with_supersampled_coverage():
    # Translate the whole sphere in x, y, z: the gradient of the antialiased coverage w.r.t. the translation
    # must agree with finite differences of a 16x16-supersampled hard render (the true box-filtered coverage).
    verts, faces = uv_sphere(8, 14)
    cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    white = torch.ones(verts.shape[0], 1, dtype=torch.float64)
    weights = torch.rand(20, 24, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def ours(shift):
        return (weights * _shade(verts + shift, faces, cam, white)[..., 0]).sum()

    shift = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(ours(shift), shift)
    eps = 0.01  # a fifth of a pixel at this distance
    fd = torch.zeros(3, dtype=torch.float64)
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = eps
        fd[k] = (_supersampled_coverage_loss(verts + e, faces, cam, weights, 16)
                 - _supersampled_coverage_loss(verts - e, faces, cam, weights, 16)) / (2 * eps)
    cos = cosine(g, fd)
    assert cos >= 0.95, f"cosine {cos:.4f}: ours {g.tolist()} vs supersampled FD {fd.tolist()}"
    big = fd.abs() > 0.2 * fd.abs().max()
    assert (torch.sign(g[big]) == torch.sign(fd[big])).all(), (g, fd)
    assert abs(float(g.norm() / fd.norm()) - 1) < 0.1, (g, fd)  # the right magnitude, not only direction


def test_per_vertex_silhouette_gradient_agrees_with_supersampled_coverage():
    verts, faces = uv_sphere(6, 10)
    cam = camera_at((0.4, 0.3, -3.0), size=(24, 20))
    white = torch.ones(verts.shape[0], 1, dtype=torch.float64)
    weights = torch.rand(20, 24, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    v = verts.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((weights * _shade(v, faces, cam, white)[..., 0]).sum(), v)
    moving = g.abs().sum(-1) > 0.05 * float(g.abs().sum(-1).max())
    idx = moving.nonzero()[:, 0][:8]
    fd = torch.zeros(idx.numel(), 3, dtype=torch.float64)
    eps = 0.01
    for r, i in enumerate(idx.tolist()):
        for k in range(3):
            up, down = verts.clone(), verts.clone()
            up[i, k] += eps
            down[i, k] -= eps
            fd[r, k] = (_supersampled_coverage_loss(up, faces, cam, weights, 16)
                        - _supersampled_coverage_loss(down, faces, cam, weights, 16)) / (2 * eps)
    cos = cosine(g[idx], fd)
    if cos < 0.95:
        save_failure_images("aa_supersampled", ours=_shade(verts, faces, cam, white)[..., 0])
    assert cos >= 0.95, f"cosine {cos:.4f}"


@pytest.mark.parametrize("per_thread", [1, 16])
@pytest.mark.parametrize("width, height", [(16, 12), (21, 13)])
def test_batched_views_match_single_views(width, height, per_thread, monkeypatch):
    """21 x 13: the edge kernel's runs of 16 pixels (per CPU thread; CUDA's 1 checked here too) start mid-row
    and mid-view; the quad's corner is in the top-left corner of each view, so its silhouettes cross the first
    row, where a run that began in the previous view continues."""
    monkeypatch.setattr(antialias_kernels, "CPU_PIXELS_PER_THREAD", per_thread)
    verts, faces = _scene_occlusion()
    eyes = torch.tensor([[0.3, 0.2, -3.5], [0.2, 0.1, -3.2], [0.35, 0.3, -3.4]], dtype=torch.float64)
    target = torch.tensor([-0.5, -0.5, 0.0], dtype=torch.float64).expand(3, 3)
    cams = lg.Camera.look_at(eyes, target, torch.tensor([0.0, 1.0, 0.0]).double(),
                             fov_y=1.0, width=width, height=height)
    colors = _colors(verts.shape[0])
    batched = _shade(verts, faces, cams, colors)
    assert not torch.equal(batched, _shade(verts, faces, cams, colors, aa=False))
    for k in range(3):
        torch.testing.assert_close(batched[k], _shade(verts, faces, cams[k], colors))


def test_spot_float32_runs_and_gradients_are_finite(spot):
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=64, height=64)
    v = spot.verts.clone().requires_grad_(True)
    frags = lg.rasterize(v, spot.faces, cam)
    uv = lg.interpolate(spot.uv, frags, spot.uv_faces)
    img = lg.texture(spot.texture, uv)
    out = lg.antialias(img, frags, v, spot.faces, cam)
    out.mean().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_blend_matches_its_reference_values_and_gradients(dtype, tol):
    # The explicit backward of blend_crossings against autograd through blend_crossings_reference: pixels
    # shared by several crossings, t at 0, 1/2 (both reaches at their clamp bound) and 1.
    from lumigrad.raster.antialias import blend_crossings, blend_crossings_reference

    g = torch.Generator().manual_seed(3)
    color = torch.rand(2, 5, 4, 3, generator=g, dtype=torch.float64).to(dtype)
    p_in = torch.tensor([0, 3, 3, 7, 12, 20, 31, 39, 5])
    p_out = torch.tensor([1, 4, 11, 8, 13, 28, 30, 38, 5 + 4])
    t = torch.tensor([0.0, 0.2, 0.5, 0.7, 1.0, 0.45, 0.93, 0.5, 0.61], dtype=torch.float64)
    cot = torch.randn(color.shape, generator=g, dtype=torch.float64).to(dtype)
    results = []
    for blend in (blend_crossings, blend_crossings_reference):
        c = color.clone().requires_grad_(True)
        tt = t.clone().requires_grad_(True)
        out = blend(c, (p_in, p_out, tt))
        out.backward(cot)
        results.append((out.detach(), c.grad, tt.grad))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    assert not torch.equal(results[0][0], color), "the crossings must change the image"
    assert results[0][2].abs().sum() > 0


def test_blend_gradcheck():
    from lumigrad.raster.antialias import blend_crossings

    g = torch.Generator().manual_seed(4)
    color = torch.rand(3, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    p_in, p_out = torch.tensor([0, 5, 5, 9]), torch.tensor([1, 6, 9, 10])
    t = torch.tensor([0.1, 0.8, 0.35, 0.66], dtype=torch.float64, requires_grad=True)  # off the kink at 1/2
    assert torch.autograd.gradcheck(lambda c, tt: blend_crossings(c, (p_in, p_out, tt)), (color, t))


def test_pooled_output_can_be_modified_in_place_under_autograd():
    """At 300 x 300 x 3 the blended image (over a MiB) comes from the CPU buffer pool: an in-place change of it
    must give the gradient of the same change made out of place."""
    verts, faces = uv_sphere(8, 12)
    cam = camera_at((0.4, 0.3, -3.0), size=(300, 300))
    colors = _colors(verts.shape[0], dtype=torch.float32)
    grads = []
    for in_place in (True, False):
        v = verts.float().clone().requires_grad_(True)
        frags = lg.rasterize(v, faces, cam)
        out = lg.antialias(lg.interpolate(colors, frags, faces), frags, v, faces, cam)
        out = out.mul_(2.0) if in_place else out * 2.0
        (out * torch.linspace(0, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append(v.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
