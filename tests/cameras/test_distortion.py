"""Lens distortion: against an independent float64 NumPy model, gradcheck, Newton inverse, fold detection."""

import math

import numpy as np
import pytest
import torch

from lumigrad.cameras.distortion import check_monotonic, distort, undistort

DT = torch.float64


def opencv_numpy(x, y, k1, k2, p1, p2, k3):
    """OpenCV's projectPoints distortion, written from its documentation."""
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def fisheye_numpy(x, y, k1, k2, k3, k4):
    """OpenCV's fisheye (Kannala-Brandt) model, written from its documentation."""
    r = np.hypot(x, y)
    theta = np.arctan(r)
    theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
    scale = np.where(r > 0, theta_d / np.where(r > 0, r, 1), 1.0)
    return x * scale, y * scale


OPENCV = [-0.28, 0.07, 0.001, -0.0015, -0.01]
FISHEYE = [0.05, -0.01, 0.003, -0.0005]


def _points(n=200, scale=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 2, generator=g, dtype=DT) * 2 - 1) * scale


@pytest.mark.parametrize("model,coeffs,ref", [("opencv", OPENCV, opencv_numpy), ("fisheye", FISHEYE, fisheye_numpy)])
def test_matches_independent_model(model, coeffs, ref):
    p = _points()
    out = distort(p, torch.tensor(coeffs, dtype=DT), model)
    x, y = ref(p[:, 0].numpy(), p[:, 1].numpy(), *coeffs)
    np.testing.assert_allclose(out.numpy(), np.stack([x, y], -1), rtol=1e-13, atol=1e-14)


def test_docstring_example_and_centre():
    out = distort(torch.tensor([0.5, 0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0]))
    assert math.isclose(float(out[0]), 0.5125, rel_tol=1e-6)
    centre = distort(torch.zeros(2, dtype=DT), torch.tensor(FISHEYE, dtype=DT), "fisheye")
    assert torch.equal(centre, torch.zeros(2, dtype=DT))


def test_straight_line_bends_as_the_model_predicts():
    # A straight 3D line projects to a straight line without distortion; with barrel distortion (k1 < 0) its
    # points move towards the centre by the model's factor, so the middle bends inwards.
    t = torch.linspace(-1, 1, 21, dtype=DT)
    line = torch.stack([t * 0.7, torch.full_like(t, 0.5)], -1)
    bent = distort(line, torch.tensor([-0.2, 0, 0, 0, 0], dtype=DT))
    r2 = (line ** 2).sum(-1)
    torch.testing.assert_close(bent[:, 1], 0.5 * (1 - 0.2 * r2))
    assert float(bent[10, 1]) > float(bent[0, 1])  # the ends are pulled in more than the middle


@pytest.mark.parametrize("model,coeffs", [("opencv", OPENCV), ("fisheye", FISHEYE)])
def test_gradcheck_distort(model, coeffs):
    p = _points(6, seed=1).requires_grad_()
    c = torch.tensor(coeffs, dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: distort(a, b, model), (p, c))


def test_fisheye_gradient_finite_at_centre():
    p = torch.zeros(1, 2, dtype=DT, requires_grad=True)
    c = torch.tensor(FISHEYE, dtype=DT, requires_grad=True)
    distort(p, c, "fisheye").sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(c.grad).all()
    torch.testing.assert_close(p.grad, torch.ones(1, 2, dtype=DT))


@pytest.mark.parametrize("model,coeffs", [("opencv", OPENCV), ("fisheye", FISHEYE)])
def test_undistort_inverts_and_has_implicit_gradients(model, coeffs):
    c = torch.tensor(coeffs, dtype=DT)
    p = _points(50, seed=2)
    q = distort(p, c, model)
    torch.testing.assert_close(undistort(q, c, model), p, rtol=1e-10, atol=1e-12)
    q_small = q[:5].clone().requires_grad_()
    c_var = c.clone().requires_grad_()
    torch.autograd.gradcheck(lambda a, b: undistort(a, b, model), (q_small, c_var))


def test_batched_coefficients_broadcast_per_camera():
    coeffs = torch.tensor([OPENCV, [0.1, 0.0, 0.0, 0.0, 0.0]], dtype=DT)[:, None]  # [2 cameras, 1, 5]
    p = _points(7, seed=3).expand(2, 7, 2)
    out = distort(p, coeffs)
    for k in range(2):
        torch.testing.assert_close(out[k], distort(p[k], coeffs[k, 0]))


def test_fold_detection():
    check_monotonic(torch.tensor(OPENCV, dtype=DT), "opencv", max_radius=0.9)
    with pytest.raises(ValueError, match="fold"):
        check_monotonic(torch.tensor([-0.6, 0.0, 0.0, 0.0, 0.0], dtype=DT), "opencv", max_radius=1.2)
    with pytest.raises(ValueError, match="fold|converge"):
        undistort(torch.tensor([[1.0, 0.0]], dtype=DT), torch.tensor([-0.6, 0.0, 0.0, 0.0, 0.0], dtype=DT))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="coeffs"):
        distort(torch.zeros(3, 2), torch.zeros(4), "opencv")
    with pytest.raises(ValueError, match="model"):
        distort(torch.zeros(3, 2), torch.zeros(5), "kannala")
    with pytest.raises(ValueError, match="xy"):
        distort(torch.zeros(3, 3), torch.zeros(5))


# ------------------------------------------------------------------------------------ camera integration
import lumigrad as lg  # noqa: E402


def _distorted_camera(coeffs, model="opencv"):
    K = torch.tensor([[300.0, 0.0, 160.0], [0.0, 310.0, 120.0], [0.0, 0.0, 1.0]], dtype=DT)
    w2c = torch.eye(4, dtype=DT)
    return lg.Camera(K=K, world_to_cam=w2c, width=320, height=240, distortion=torch.tensor(coeffs, dtype=DT),
                     distortion_model=model)


@pytest.mark.parametrize("model,coeffs", [("opencv", OPENCV), ("fisheye", FISHEYE)])
def test_camera_project_and_rays_are_inverse(model, coeffs):
    cam = _distorted_camera(coeffs, model)
    g = torch.Generator().manual_seed(4)
    uv = torch.rand(40, 2, generator=g, dtype=DT) * torch.tensor([320.0, 240.0], dtype=DT)
    rays = cam.rays(uv)
    assert torch.allclose(rays[:, 2], torch.ones(40, dtype=DT))
    back, depth = cam.project(rays * 2.5)  # any point along the ray projects to the same pixel
    torch.testing.assert_close(back, uv, rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(depth, torch.full((40,), 2.5, dtype=DT))


def test_camera_projection_matches_opencv_model():
    cam = _distorted_camera(OPENCV)
    pts = torch.tensor([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.0]], dtype=DT)
    uv, _ = cam.project(pts)
    x, y = opencv_numpy(pts[:, 0].numpy() / pts[:, 2].numpy(), pts[:, 1].numpy() / pts[:, 2].numpy(), *OPENCV)
    np.testing.assert_allclose(uv.numpy(), np.stack([300 * x + 160, 310 * y + 120], -1), rtol=1e-12)


def test_rays_gradcheck_wrt_distortion_and_K():
    def rays(coeffs, K):
        cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=32, height=24, distortion=coeffs)
        return cam.rays(torch.tensor([[3.5, 4.5], [20.5, 10.5], [30.5, 22.5]], dtype=DT))

    K = torch.tensor([[30.0, 0.0, 16.0], [0.0, 31.0, 12.0], [0.0, 0.0, 1.0]], dtype=DT, requires_grad=True)
    c = torch.tensor(OPENCV, dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(rays, (c, K))


def test_rasterize_refuses_distorted_cameras_and_indexing_keeps_distortion():
    cam = _distorted_camera(OPENCV)
    verts = torch.tensor([[-1.0, -1.0, 3.0], [1.0, -1.0, 3.0], [0.0, 1.0, 3.0]], dtype=DT)
    with pytest.raises(ValueError, match="distortion"):
        lg.rasterize(verts, torch.tensor([[0, 1, 2]]), cam)
    assert cam.to(dtype=torch.float32).distortion.dtype == torch.float32
    with pytest.raises(ValueError, match="distortion"):
        lg.Camera(K=cam.K, world_to_cam=cam.world_to_cam, width=8, height=8, distortion=torch.zeros(4, dtype=DT))
