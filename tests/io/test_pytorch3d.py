"""PyTorch3D PerspectiveCameras (NDC and screen space) against PyTorch3D's own maths, transcribed here.

PyTorch3D has no wheels for this environment, so ``p3d_transform_points_screen`` transcribes
``pytorch3d/renderer/cameras.py`` (``PerspectiveCameras.get_projection_transform``,
``get_ndc_camera_transform`` and ``get_ndc_to_screen_transform``) step by step.
"""

import pytest
import torch

from lumigrad import Camera
from lumigrad.conventions import quaternion_to_matrix
from lumigrad.io import camera_from_pytorch3d, camera_to_pytorch3d

DT = torch.float64


def p3d_transform_points_screen(X, R, T, focal, principal, image_size, in_ndc):
    """``PerspectiveCameras(...).transform_points_screen(X)[..., :2]`` for one camera, written out."""
    H, W = image_size
    s = min(H, W) / 2.0
    Xv = X @ R + T  # world -> view, row vectors
    # projection K = [[fx, 0, px, 0], [0, fy, py, 0], [0, 0, 0, 1], [0, 0, 1, 0]], then divide by Z
    x = focal[0] * Xv[:, 0] / Xv[:, 2] + principal[0]
    y = focal[1] * Xv[:, 1] / Xv[:, 2] + principal[1]
    if not in_ndc:
        # get_ndc_camera_transform: principal-point fix (-2 p), then the inverse of the un-flipped NDC->screen
        # map x_screen = s x_ndc - W / 2.
        x, y = x - 2 * principal[0], y - 2 * principal[1]
        x, y = (x + W / 2.0) / s, (y + H / 2.0) / s
    # transform_points_screen: NDC -> screen with the xy flip: x_screen = -(s x_ndc - W / 2).
    return torch.stack([W / 2.0 - s * x, H / 2.0 - s * y], -1), Xv[:, 2]


def random_pose(seed):
    g = torch.Generator().manual_seed(seed)
    R = quaternion_to_matrix(torch.randn(4, generator=g, dtype=DT))
    T = torch.tensor([0.1, -0.2, 4.0], dtype=DT) + 0.1 * torch.randn(3, generator=g, dtype=DT)
    return R, T, g


def points_in_front(R, T, g, n=20):
    Xv = torch.randn(n, 3, generator=g, dtype=DT)
    Xv[:, 2] = 2 + Xv[:, 2].abs()
    return (Xv - T) @ R.T  # R is orthonormal: X_world = (X_view - T) R^T


@pytest.mark.parametrize("H,W", [(48, 64), (64, 48), (50, 50)])
@pytest.mark.parametrize("in_ndc", [True, False], ids=["ndc", "screen"])
def test_projection_matches_pytorch3d(H, W, in_ndc):
    R, T, g = random_pose(H + W)
    if in_ndc:
        focal, principal = torch.tensor([1.7, 1.9], dtype=DT), torch.tensor([0.1, -0.2], dtype=DT)
    else:
        focal, principal = torch.tensor([60.0, 65.0], dtype=DT), torch.tensor([W / 2 + 3.5, H / 2 - 2.25], dtype=DT)
    X = points_in_front(R, T, g)
    cam = camera_from_pytorch3d(R, T, focal, principal, (H, W), in_ndc=in_ndc)
    assert (cam.width, cam.height) == (W, H) and cam.dtype == DT
    uv, z = cam.project(X)
    uv_ref, z_ref = p3d_transform_points_screen(X, R, T, focal, principal, (H, W), in_ndc)
    torch.testing.assert_close(uv, uv_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-12)
    # And back: the exported parameters reproduce the inputs.
    p = camera_to_pytorch3d(cam, in_ndc=in_ndc)
    for key, ref in (("R", R), ("T", T), ("focal_length", focal), ("principal_point", principal)):
        torch.testing.assert_close(p[key], ref, rtol=0, atol=1e-12)
    assert p["image_size"].tolist() == [H, W] and p["in_ndc"] is in_ndc


def test_hand_derived_cases():
    # PyTorch3D's default camera (R = I, T = (0, 0, 3)), focal 1 NDC, 64 x 64: world +x is *left* of centre,
    # world +y is above it: x_ndc = 1 / 3 -> u = 32 - 32 / 3.
    cam = camera_from_pytorch3d(torch.eye(3, dtype=DT), torch.tensor([0.0, 0, 3], dtype=DT), 1.0,
                                torch.zeros(2, dtype=DT), (64, 64))
    uv, z = cam.project(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]], dtype=DT))
    torch.testing.assert_close(uv, torch.tensor([[32 - 32 / 3, 32], [32, 32 - 32 / 3], [32, 32]], dtype=DT))
    torch.testing.assert_close(z, torch.full((3,), 3.0, dtype=DT))
    # Screen space: the principal point (pixels, x right, y down) is where the optical axis lands.
    cam = camera_from_pytorch3d(torch.eye(3, dtype=DT), torch.tensor([0.0, 0, 3], dtype=DT), 100.0,
                                torch.tensor([40.0, 20.0], dtype=DT), (48, 80), in_ndc=False)
    torch.testing.assert_close(cam.K, torch.tensor([[100.0, 0, 40], [0, 100, 20], [0, 0, 1]], dtype=DT))
    uv, _ = cam.project(torch.tensor([[0.0, 0, 1], [0.3, 0, 0]], dtype=DT))
    torch.testing.assert_close(uv, torch.tensor([[40.0, 20.0], [30.0, 20.0]], dtype=DT))


def test_ndc_and_screen_parameters_follow_pytorch3d_documented_relation():
    # fx_ndc = fx_screen * 2 / s and px_ndc = -(px_screen - W / 2) * 2 / s with s = min(W, H).
    W, H = 120, 90
    K = torch.tensor([[100.0, 0, 70.5], [0, 104.0, 40.25], [0, 0, 1]], dtype=DT)
    cam = Camera(K, torch.eye(4, dtype=DT), W, H)
    ndc, scr = camera_to_pytorch3d(cam, in_ndc=True), camera_to_pytorch3d(cam, in_ndc=False)
    s = min(W, H)
    torch.testing.assert_close(ndc["focal_length"], scr["focal_length"] * 2 / s)
    torch.testing.assert_close(ndc["principal_point"],
                               -(scr["principal_point"] - torch.tensor([W / 2, H / 2], dtype=DT)) * 2 / s)


@pytest.mark.parametrize("in_ndc", [True, False], ids=["ndc", "screen"])
def test_batched_round_trip_and_focal_shapes(in_ndc):
    g = torch.Generator().manual_seed(3)
    B = (2, 3)
    R = quaternion_to_matrix(torch.randn(B + (4,), generator=g, dtype=DT))
    t = torch.randn(B + (3,), generator=g, dtype=DT)
    w2c = torch.eye(4, dtype=DT).repeat(B + (1, 1))
    w2c[..., :3, :3], w2c[..., :3, 3] = R, t
    K = torch.tensor([[100.0, 0, 30.5], [0, 90.0, 20.5], [0, 0, 1]], dtype=DT).repeat(B + (1, 1))
    K[..., 0, 0] += torch.rand(B, generator=g, dtype=DT)
    cam = Camera(K, w2c, 60, 40)
    p = camera_to_pytorch3d(cam, in_ndc=in_ndc)
    assert p["R"].shape == B + (3, 3) and p["focal_length"].shape == B + (2,) and p["image_size"].shape == B + (2,)
    back = camera_from_pytorch3d(p["R"], p["T"], p["focal_length"], p["principal_point"], p["image_size"],
                                 in_ndc=in_ndc)
    torch.testing.assert_close(back.K, K, rtol=0, atol=1e-12)
    torch.testing.assert_close(back.world_to_cam, w2c, rtol=0, atol=1e-12)
    # Per-camera scalar focal lengths [*B] and [*B, 1] mean square pixels.
    f = p["focal_length"][..., 0]
    for focal in (f, f[..., None]):
        c = camera_from_pytorch3d(p["R"], p["T"], focal, p["principal_point"], (40, 60), in_ndc=in_ndc)
        torch.testing.assert_close(c.K[..., 1, 1], c.K[..., 0, 0])


def test_gradients_reach_the_pytorch3d_parameters():
    R, T, g = random_pose(11)
    X = points_in_front(R, T, g, n=4)
    focal = torch.tensor([1.5, 1.6], dtype=DT, requires_grad=True)
    principal = torch.tensor([0.05, -0.1], dtype=DT, requires_grad=True)
    T = T.clone().requires_grad_(True)

    def pixels(focal, principal, T):
        return camera_from_pytorch3d(R, T, focal, principal, (30, 40)).project(X)[0]

    assert torch.autograd.gradcheck(pixels, (focal, principal, T))


def test_errors():
    K = torch.tensor([[50.0, 0.5, 4], [0, 50, 4], [0, 0, 1]], dtype=DT)
    with pytest.raises(ValueError, match="skew"):
        camera_to_pytorch3d(Camera(K, torch.eye(4, dtype=DT), 8, 8))
    K[0, 1] = 0
    cam = Camera(K, torch.eye(4, dtype=DT), 8, 8, distortion=torch.tensor([0.1, 0, 0, 0, 0], dtype=DT))
    with pytest.raises(ValueError, match="'opencv' lens distortion"):
        camera_to_pytorch3d(cam)
    if hasattr(Camera, "orthographic"):  # orthographic cameras are new in Camera
        with pytest.raises(ValueError, match="camera is orthographic"):
            camera_to_pytorch3d(Camera.orthographic(2.0, 8, 8, torch.eye(4, dtype=DT)))
    R, T = torch.eye(3, dtype=DT).expand(2, 3, 3), torch.zeros(2, 3, dtype=DT)
    with pytest.raises(ValueError, match=r"image_size must be \(H, W\) or rows of one \(H, W\)"):
        camera_from_pytorch3d(R, T, 1.0, torch.zeros(2, 2, dtype=DT), torch.tensor([[8, 8], [8, 9]]))
    with pytest.raises(ValueError, match=r"focal_length must be a number or have shape"):
        camera_from_pytorch3d(R, T, torch.ones(2, 3, dtype=DT), torch.zeros(2, 2, dtype=DT), (8, 8))
    with pytest.raises(ValueError, match=r"R must have shape"):
        camera_from_pytorch3d(torch.eye(4, dtype=DT), T, 1.0, torch.zeros(2, dtype=DT), (8, 8))
