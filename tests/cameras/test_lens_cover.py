"""pinhole_cover: the undistorted camera that sees every ray of a distorted one; fold and width checks."""

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras import check_lens_folds, fold_radius

DT = torch.float64


def _camera(coeffs, model="opencv", width=80, height=60):
    K = torch.tensor([[60.0, 0.0, 40.0], [0.0, 62.0, 30.0], [0.0, 0.0, 1.0]], dtype=DT)
    return lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=DT), width=width, height=height,
                     distortion=torch.tensor(coeffs, dtype=DT), distortion_model=model)


@pytest.mark.parametrize("coeffs", [[-0.25, 0.08, 0.004, -0.003, 0.01], [0.15, 0.02, 0.0, 0.0, 0.0]])
@pytest.mark.parametrize("supersample", [1.0, 2.0])
def test_cover_contains_every_ray_of_the_image(coeffs, supersample):
    cam = _camera(coeffs)
    cover = lg.pinhole_cover(cam, supersample=supersample, margin=2)
    assert cover.distortion is None and torch.equal(cover.world_to_cam, cam.world_to_cam)
    torch.testing.assert_close(cover.K[0, 0], cam.K[0, 0] * supersample)
    torch.testing.assert_close(cover.K[1, 1], cam.K[1, 1] * supersample)
    # Rays through a dense grid of the distorted image (pixel edges included) land inside the cover,
    # at least ``margin`` pinhole pixels from its border, and the cover is not needlessly large.
    u, v = torch.meshgrid(torch.linspace(0, 80, 161, dtype=DT), torch.linspace(0, 60, 121, dtype=DT), indexing="xy")
    rays = cam.rays(torch.stack([u, v], -1))
    uv, _ = cover.project(rays)
    assert float(uv[..., 0].min()) >= 2 - 1e-9 and float(uv[..., 1].min()) >= 2 - 1e-9
    assert float(uv[..., 0].max()) <= cover.width - 2 + 1e-9
    assert float(uv[..., 1].max()) <= cover.height - 2 + 1e-9
    assert cover.width - float(uv[..., 0].max()) < 3.01 and cover.height - float(uv[..., 1].max()) < 3.01


def test_cover_intrinsics_track_the_camera_for_gradients():
    cam = _camera([-0.2, 0.0, 0.0, 0.0, 0.0])
    K = cam.K.clone().requires_grad_(True)
    cover = lg.pinhole_cover(lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=80, height=60,
                                       distortion=cam.distortion), supersample=2.0)
    (g,) = torch.autograd.grad(cover.K[0, 0] + cover.K[0, 2] + cover.K[1, 2], K)
    assert g[0, 0] == 2 and g[0, 2] == 2 and g[1, 2] == 2


def test_folding_distortion_is_refused_with_a_clear_message():
    # r (1 - 0.6 r^2) stops growing at r = 0.745, distorted radius 0.497: inside this image's corners.
    cam = _camera([-0.6, 0.0, 0.0, 0.0, 0.0])
    limit = fold_radius(cam.distortion, "opencv")
    assert abs(float(limit) - 0.4969) < 1e-3
    with pytest.raises(ValueError, match="distortion folds the image"):
        check_lens_folds(cam)
    with pytest.raises(ValueError, match="distortion folds the image"):
        lg.pinhole_cover(cam)
    # The same lens on a small central crop does not fold.
    check_lens_folds(lg.Camera(K=torch.tensor([[200.0, 0, 20], [0, 200, 15], [0, 0, 1]], dtype=DT),
                               world_to_cam=torch.eye(4, dtype=DT), width=40, height=30,
                               distortion=cam.distortion))
    assert float(fold_radius(torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0], dtype=DT), "opencv")) > 100


def test_too_wide_a_lens_for_one_pinhole_image_is_refused():
    def fisheye(f):
        return lg.Camera(K=torch.tensor([[f, 0, 40], [0, f, 30], [0, 0, 1]], dtype=DT),
                         world_to_cam=torch.eye(4, dtype=DT), width=80, height=60,
                         distortion=torch.zeros(4, dtype=DT), distortion_model="fisheye")

    # Corners 84 degrees off-axis: a pinhole cover would be many times the image size.
    with pytest.raises(ValueError, match="too wide"):
        lg.pinhole_cover(fisheye(34.0))
    # Corners beyond 90 degrees off-axis: no pinhole ray at all.
    with pytest.raises(ValueError, match="90 degrees"):
        lg.pinhole_cover(fisheye(14.0))
    assert lg.pinhole_cover(fisheye(34.0), max_scale=8.0).width > 300


def test_bad_arguments_name_themselves():
    cam = _camera([-0.1, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="supersample"):
        lg.pinhole_cover(cam, supersample=0)
    with pytest.raises(ValueError, match="margin"):
        lg.pinhole_cover(cam, margin=-1)
    with pytest.raises(TypeError, match="camera"):
        lg.pinhole_cover("camera")
    cover = lg.pinhole_cover(cam)
    with pytest.raises(ValueError, match="image"):
        lg.distort_image(torch.zeros(5, 5, 3, dtype=DT), cover, cam)
    with pytest.raises(ValueError, match="samples"):
        lg.distort_image(torch.zeros(cover.height, cover.width, 3, dtype=DT), cover, cam, samples=0)
    with pytest.raises(ValueError, match="pinhole"):
        lg.distort_image(torch.zeros(60, 80, 3, dtype=DT), cam, cam)
