"""Rendering through a lens: a pinhole cover render resampled through the distortion map.

* geometry: rendered surface points reproject, through an independent NumPy model of OpenCV's
  ``projectPoints`` distortion, onto the pixel centres that show them; a straight 3D edge comes out curved
  exactly where that model puts it;
* gradients: gradcheck of the resampling op, and finite differences of an antialiased image loss w.r.t.
  fx, fy, cx, cy, k1, k2, p1, p2 and the 6 pose parameters against 8x8-supersampled hard renders.
"""

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam

from ..cameras.test_distortion import fisheye_numpy, opencv_numpy
from ..conftest import cosine, save_failure_images, uv_sphere

DT = torch.float64
OPENCV = [-0.25, 0.08, 0.004, -0.003, 0.01]
FISHEYE = [0.08, -0.02, 0.004, -0.001]


def _lens_camera(coeffs, model="opencv", size=(80, 60), K=((60.0, 0.0, 40.0), (0.0, 62.0, 30.0))):
    Kt = torch.tensor([list(K[0]), list(K[1]), [0.0, 0.0, 1.0]], dtype=DT)
    return lg.Camera(K=Kt, world_to_cam=torch.eye(4, dtype=DT), width=size[0], height=size[1],
                     distortion=torch.tensor(coeffs, dtype=DT), distortion_model=model)


def _tilted_plane():
    """A large quad on the plane z = 2 + 0.3 x, covering the whole view."""
    verts = torch.tensor([[-6, -6, 0.2], [6, -6, 3.8], [6, 6, 3.8], [-6, 6, 0.2]], dtype=DT)
    return verts, torch.tensor([[0, 2, 1], [0, 3, 2]])


def _project_numpy(points, cam, model):
    """Pixel positions of camera-frame points with the independent NumPy models and ``cam``'s K."""
    x, y = points[:, 0] / points[:, 2], points[:, 1] / points[:, 2]
    coeffs = cam.distortion.tolist()
    xd, yd = opencv_numpy(x, y, *coeffs) if model == "opencv" else fisheye_numpy(x, y, *coeffs)
    K = cam.K.numpy()
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], -1)


@pytest.mark.parametrize("model,coeffs", [("opencv", OPENCV), ("fisheye", FISHEYE)])
def test_rendered_points_reproject_to_their_pixels(model, coeffs):
    cam = _lens_camera(coeffs, model)
    verts, faces = _tilted_plane()
    position = lg.render_through_lens(lambda c: lg.interpolate(verts, lg.rasterize(verts, faces, c), faces), cam)
    uv = _project_numpy(position.reshape(-1, 3).numpy(), cam, model)
    v, u = np.meshgrid(np.arange(60) + 0.5, np.arange(80) + 0.5, indexing="ij")
    err = np.hypot(uv[:, 0] - u.ravel(), uv[:, 1] - v.ravel())
    # Bilinear reads of a projectively varying attribute: well below a hundredth of a pixel.
    assert err.max() < 0.01, f"max reprojection error {err.max():.4f} px"
    # The distortion is large: an undistorted render would be far off near the corners.
    pinhole = lg.Camera(K=cam.K, world_to_cam=cam.world_to_cam, width=80, height=60)
    flat = lg.interpolate(verts, lg.rasterize(verts, faces, pinhole), faces).reshape(-1, 3).numpy()
    assert np.hypot(*(_project_numpy(flat, cam, model) - np.stack([u.ravel(), v.ravel()], -1)).T).max() > 1.5


def test_straight_edge_bends_as_the_model_predicts():
    # A quad whose left edge is the 3D line x = 0.55 z (vertical in space): in the distorted image its
    # per-row covered width must follow the curve the NumPy model draws, to a small fraction of a pixel.
    cam = _lens_camera(OPENCV)
    verts = torch.tensor([[1.1, -5, 2], [8, -5, 2], [8, 5, 2], [1.1, 5, 2]], dtype=DT)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])

    def draw(c):
        frags = lg.rasterize(verts, faces, c)
        return lg.antialias(frags.mask[..., None].to(DT), frags, verts, faces, c)

    coverage = lg.render_through_lens(draw, cam, supersample=2.0, samples=2)[..., 0]
    # The model's curve: sample the 3D line densely, project, and read u at each row's centre.
    y = np.linspace(-3, 3, 20001)
    curve = _project_numpy(np.stack([np.full_like(y, 1.1), y, np.full_like(y, 2.0)], -1), cam, "opencv")
    order = np.argsort(curve[:, 1])
    rows = np.arange(60) + 0.5
    edge_u = np.interp(rows, curve[order, 1], curve[order, 0])
    width = coverage.sum(-1).numpy()
    assert np.ptp(edge_u) > 1.5, "the test line must visibly bend"
    err = np.abs((80 - edge_u) - width)
    if err.max() >= 0.05:
        save_failure_images("lens_straight_edge", coverage=coverage)
    assert err.max() < 0.05, f"edge position error {err.max():.3f} px"


def test_gradcheck_resampling_wrt_image_coefficients_and_intrinsics():
    K = torch.tensor([[4.0, 0.0, 2.6], [0.0, 4.2, 1.9], [0.0, 0.0, 1.0]], dtype=DT, requires_grad=True)
    coeffs = torch.tensor(OPENCV, dtype=DT, requires_grad=True)
    eye = torch.eye(4, dtype=DT)
    with torch.no_grad():
        cover = lg.pinhole_cover(lg.Camera(K=K, world_to_cam=eye, width=5, height=4, distortion=coeffs))
    shift = (cover.K - K).detach()  # the cover's constant principal-point shift, held fixed under FD

    def warp(image, coeffs, K):
        cam = lg.Camera(K=K, world_to_cam=eye, width=5, height=4, distortion=coeffs)
        pinhole = lg.Camera(K=K + shift, world_to_cam=eye, width=cover.width, height=cover.height)
        return lg.distort_image(image, pinhole, cam, samples=2)

    image = torch.rand(cover.height, cover.width, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    torch.autograd.gradcheck(warp, (image.requires_grad_(True), coeffs, K))


def test_without_distortion_it_is_the_plain_render():
    verts, faces = uv_sphere(6, 10)
    cam = lg.Camera.look_at(torch.tensor([0.3, 0.2, -3.0], dtype=DT), torch.zeros(3, dtype=DT),
                            torch.tensor([0.0, 1.0, 0.0], dtype=DT), width=24, height=20)
    draw = lambda c: lg.rasterize(verts, faces, c).mask[..., None].to(DT)  # noqa: E731
    assert torch.equal(lg.render_through_lens(draw, cam), draw(cam))
    # A pinhole cover of an undistorted camera, resampled back, reproduces the image up to bilinear blur.
    colors = torch.rand(verts.shape[0], 3, dtype=DT, generator=torch.Generator().manual_seed(1))
    shade = lambda c: lg.interpolate(colors, lg.rasterize(verts, faces, c), faces)  # noqa: E731
    pinhole = lg.pinhole_cover(cam, margin=3)
    assert (pinhole.width, pinhole.height) == (30, 26)
    torch.testing.assert_close(lg.distort_image(shade(pinhole), pinhole, cam), shade(cam))


def test_batched_cameras_match_single_cameras():
    verts, faces = _tilted_plane()
    K = torch.tensor([[30.0, 0.0, 20.0], [0.0, 30.0, 15.0], [0.0, 0.0, 1.0]], dtype=DT)
    coeffs = torch.tensor([[-0.2, 0.05, 0.0, 0.0, 0.0], [0.1, 0.0, 0.002, 0.001, 0.0]], dtype=DT)
    cams = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=40, height=30, distortion=coeffs)
    draw = lambda c: lg.interpolate(verts, lg.rasterize(verts, faces, c), faces)  # noqa: E731
    batched = lg.render_through_lens(draw, cams)
    assert batched.shape == (2, 30, 40, 3)
    for k in range(2):
        single = lg.render_through_lens(draw, cams[k])
        # Each view reads its own cover; the shared, larger cover only moves the principal point.
        torch.testing.assert_close(batched[k], single, atol=1e-9, rtol=1e-9)


# ------------------------------------------------------------------ gradients vs supersampled renders
W, H = 32, 24
NAMES = ["fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "rx", "ry", "rz", "tx", "ty", "tz"]
# Steps that move the image by about a third of a pixel: several of the 8x8 sub-samples per pixel.
STEPS = [0.4, 0.4, 0.4, 0.4, 0.03, 0.03, 0.006, 0.006, 0.01, 0.01, 0.02, 0.015, 0.015, 0.03]


def _scene():
    """A sphere with random vertex colours in front of a dark quad: silhouettes against a surface."""
    sv, sf = uv_sphere(6, 10, radius=0.7)
    quad = torch.tensor([[-2.5, -2.5, 1.2], [2.5, -2.5, 1.2], [2.5, 2.5, 1.2], [-2.5, 2.5, 1.2]], dtype=DT)
    n = sv.shape[0]
    faces = torch.cat([sf, torch.tensor([[n, n + 2, n + 1], [n, n + 3, n + 2]])])
    colors = torch.rand(n + 4, 3, generator=torch.Generator().manual_seed(0), dtype=DT) * 0.8 + 0.2
    colors[n:] = torch.tensor([0.1, 0.3, 0.2], dtype=DT)
    return torch.cat([sv, quad]), faces, colors


def _camera(params, base):
    """Distorted camera from ``params [14]``: fx, fy, cx, cy, k1, k2, p1, p2, axis-angle and translation
    increments applied to ``base``'s pose."""
    zero = params[0] * 0
    K = torch.stack([torch.stack([params[0], zero, params[2]]), torch.stack([zero, params[1], params[3]]),
                     torch.stack([zero, zero, zero + 1])])
    R = axis_angle_to_matrix(params[8:11]) @ base.world_to_cam[:3, :3]
    t = base.world_to_cam[:3, 3] + params[11:14]
    return lg.Camera(K=K, world_to_cam=compose_world_to_cam(R, t), width=W, height=H,
                     distortion=torch.cat([params[4:8], zero[None]]))


def test_every_camera_parameter_gradient_agrees_with_supersampled_renders():
    verts, faces, colors = _scene()
    base = lg.Camera.look_at(torch.tensor([0.3, 0.2, -3.0], dtype=DT), torch.zeros(3, dtype=DT),
                             torch.tensor([0.0, 1.0, 0.0], dtype=DT), fov_y=1.0, width=W, height=H)
    f = float(base.K[0, 0])
    p0 = torch.tensor([f, 1.02 * f, W / 2 + 0.7, H / 2 - 0.4, -0.18, 0.04, 0.003, -0.002,
                       0.01, -0.02, 0.015, 0.03, -0.02, 0.05], dtype=DT)

    def antialiased(c):
        frags = lg.rasterize(verts, faces, c)
        return lg.antialias(lg.interpolate(colors, frags, faces), frags, verts, faces, c)

    def hard(c):
        return lg.interpolate(colors, lg.rasterize(verts, faces, c), faces)

    # Losses: random weights on each block of a 3 x 4 grid, so that every loss sees a few local edges.
    gen = torch.Generator().manual_seed(1)
    weights = torch.zeros(12, H, W, 3, dtype=DT)
    for k in range(12):
        i, j = divmod(k, 4)
        weights[k, i * 8:(i + 1) * 8, j * 8:(j + 1) * 8] = torch.rand(8, 8, 3, generator=gen, dtype=DT)

    ours = torch.zeros(14, 12, dtype=DT)
    for k in range(12):
        p = p0.clone().requires_grad_(True)
        image = lg.render_through_lens(antialiased, _camera(p, base))
        (ours[:, k],) = torch.autograd.grad((weights[k] * image).sum(), p)
    fd = torch.zeros(14, 12, dtype=DT)
    with torch.no_grad():
        for i, step in enumerate(STEPS):
            e = torch.zeros(14, dtype=DT)
            e[i] = step
            up = lg.render_through_lens(hard, _camera(p0 + e, base), supersample=8, samples=8)
            down = lg.render_through_lens(hard, _camera(p0 - e, base), supersample=8, samples=8)
            fd[i] = (weights * (up - down)).sum((1, 2, 3)) / (2 * step)
    report = {name: round(cosine(ours[i], fd[i]), 4) for i, name in enumerate(NAMES)}
    for i, name in enumerate(NAMES):
        assert cosine(ours[i], fd[i]) >= 0.95, f"{name}: cosines {report}"
        ratio = float(ours[i].norm() / fd[i].norm())
        assert 0.8 < ratio < 1.25, f"{name}: gradient norm ratio {ratio:.3f} (cosines {report})"
