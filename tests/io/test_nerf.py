"""NeRF / instant-ngp / nerfstudio transforms.json: conventions, per-frame intrinsics, round trips, errors."""

import json
import math

import pytest
import torch

from lumigrad import Camera
from lumigrad.conventions import nerf_to_camera_params, opengl_c2w_to_world_to_cam, quaternion_to_matrix
from lumigrad.io import read_nerf_transforms, write_image, write_nerf_transforms

DT = torch.float64


def c2w_gl(seed):
    g = torch.Generator().manual_seed(seed)
    T = torch.eye(4, dtype=DT)
    T[:3, :3] = quaternion_to_matrix(torch.randn(4, generator=g, dtype=DT))
    T[:3, 3] = 3 * torch.randn(3, generator=g, dtype=DT)
    return T


def dump(path, meta):
    path.write_text(json.dumps(meta))
    return path


def same_camera(a: Camera, b: Camera, tol=1e-12):
    assert (a.width, a.height) == (b.width, b.height)
    torch.testing.assert_close(a.K, b.K, rtol=0, atol=tol)
    torch.testing.assert_close(a.world_to_cam, b.world_to_cam, rtol=0, atol=tol)
    assert (a.distortion is None) == (b.distortion is None)
    if a.distortion is not None:
        assert a.distortion_model == b.distortion_model
        torch.testing.assert_close(a.distortion, b.distortion, rtol=0, atol=tol)


def test_blender_scene_camera_angle_x_and_image_size_from_the_png(tmp_path):
    """NeRF-synthetic style: camera_angle_x only, file_path without extension, size read from the image."""
    (tmp_path / "train").mkdir()
    write_image(tmp_path / "train" / "r_0.png", torch.zeros(30, 40, 3))
    angle = 0.6911112070083618
    frames = [{"file_path": "./train/r_0", "rotation": 0.0, "transform_matrix": c2w_gl(s).tolist()} for s in (1, 2)]
    rec = read_nerf_transforms(dump(tmp_path / "transforms_train.json", {"camera_angle_x": angle,
                                                                          "frames": frames}))
    assert rec.file_paths == ["./train/r_0", "./train/r_0"]
    assert rec.image_paths[0] == tmp_path / "train" / "r_0.png"
    for frame, cam in zip(frames, rec.cameras):
        assert (cam.width, cam.height) == (40, 30) and cam.distortion is None and cam.dtype == DT
        K, w2c = nerf_to_camera_params(torch.tensor(frame["transform_matrix"], dtype=DT), angle, 40, 30)
        torch.testing.assert_close(cam.K, K, rtol=0, atol=0)
        torch.testing.assert_close(cam.world_to_cam, w2c, rtol=0, atol=0)


def test_gl_pose_semantics(tmp_path):
    """A point straight ahead of the GL camera (-z) lands at the principal point; GL +y (up) lands above it."""
    c2w = c2w_gl(3)
    meta = {"fl_x": 50.0, "fl_y": 55.0, "cx": 20.5, "cy": 14.0, "w": 40, "h": 30,
            "frames": [{"file_path": "a.png", "transform_matrix": c2w.tolist()}]}
    cam = read_nerf_transforms(dump(tmp_path / "t.json", meta)).cameras[0]
    cam_pts = torch.tensor([[0.0, 0, -2, 1], [0, 0.2, -2, 1], [0.2, 0, -2, 1]], dtype=DT)  # GL camera frame
    world = (cam_pts @ c2w.T)[:, :3]
    uv, z = cam.project(world)
    torch.testing.assert_close(uv[0], torch.tensor([20.5, 14.0], dtype=DT))
    torch.testing.assert_close(z, torch.full((3,), 2.0, dtype=DT))
    torch.testing.assert_close(uv[1], torch.tensor([20.5, 14.0 - 55.0 * 0.1], dtype=DT))  # up -> smaller row
    torch.testing.assert_close(uv[2], torch.tensor([20.5 + 50.0 * 0.1, 14.0], dtype=DT))  # right -> larger col


def test_nerfstudio_per_frame_intrinsics_override_the_top_level(tmp_path):
    meta = {"fl_x": 100.0, "fl_y": 101.0, "w": 64, "h": 48, "camera_model": "OPENCV", "k1": 0.1, "p2": 1e-3,
            "frames": [{"file_path": "images/a.png", "transform_matrix": c2w_gl(4).tolist()},
                       {"file_path": "images/b.png", "transform_matrix": c2w_gl(5).tolist()[:3],  # 3x4 is fine
                        "fl_x": 120.0, "cx": 30.0, "w": 62, "k1": 0.2}]}
    a, b = read_nerf_transforms(dump(tmp_path / "transforms.json", meta)).cameras
    torch.testing.assert_close(a.K, torch.tensor([[100.0, 0, 32], [0, 101, 24], [0, 0, 1]], dtype=DT))
    torch.testing.assert_close(b.K, torch.tensor([[120.0, 0, 30], [0, 101, 24], [0, 0, 1]], dtype=DT))
    assert (a.width, b.width) == (64, 62)
    assert a.distortion_model == "opencv"
    torch.testing.assert_close(a.distortion, torch.tensor([0.1, 0, 0, 1e-3, 0], dtype=DT))
    torch.testing.assert_close(b.distortion, torch.tensor([0.2, 0, 0, 1e-3, 0], dtype=DT))
    torch.testing.assert_close(b.world_to_cam, opengl_c2w_to_world_to_cam(c2w_gl(5)))


def test_camera_angle_y_and_single_focal(tmp_path):
    meta = {"camera_angle_x": 1.0, "camera_angle_y": 0.8, "w": 64, "h": 48,
            "frames": [{"file_path": "a.png", "transform_matrix": c2w_gl(6).tolist()},
                       {"file_path": "b.png", "transform_matrix": c2w_gl(7).tolist(), "fl_y": 70.0}]}
    a, b = read_nerf_transforms(dump(tmp_path / "t.json", meta)).cameras
    assert abs(float(a.K[0, 0]) - 32 / math.tan(0.5)) < 1e-12
    assert abs(float(a.K[1, 1]) - 24 / math.tan(0.4)) < 1e-12
    assert float(b.K[0, 0]) == 70.0 and float(b.K[1, 1]) == 70.0  # fl_x missing -> copies fl_y


def test_fisheye_models(tmp_path):
    frames = [{"file_path": "a.png", "transform_matrix": c2w_gl(8).tolist()}]
    base = {"fl_x": 80.0, "w": 64, "h": 48, "k1": 0.01, "k2": 0.02, "k3": 0.03, "k4": 0.04, "frames": frames}
    for extra in ({"camera_model": "OPENCV_FISHEYE"}, {"is_fisheye": True}):
        cam = read_nerf_transforms(dump(tmp_path / "t.json", {**base, **extra})).cameras[0]
        assert cam.distortion_model == "fisheye"
        torch.testing.assert_close(cam.distortion, torch.tensor([0.01, 0.02, 0.03, 0.04], dtype=DT))


@pytest.mark.parametrize("case", ["pinhole", "opencv", "fisheye", "mixed"])
def test_write_read_round_trip(tmp_path, case):
    g = torch.Generator().manual_seed(9)
    cams, paths = [], []
    for i in range(3):
        K = torch.tensor([[90.0 + i, 0, 31.7], [0, 91.0, 24.2 - i], [0, 0, 1]], dtype=DT)
        if case != "mixed":
            K = torch.tensor([[90.0, 0, 31.7], [0, 91.0, 24.2], [0, 0, 1]], dtype=DT)
        d, model = None, "opencv"
        if case == "opencv" or (case == "mixed" and i == 1):
            d = 0.01 * torch.randn(5, generator=g, dtype=DT)
        if case == "fisheye" or (case == "mixed" and i == 2):
            d, model = 0.01 * torch.randn(4, generator=g, dtype=DT), "fisheye"
        w2c = opengl_c2w_to_world_to_cam(c2w_gl(10 + i))
        cams.append(Camera(K, w2c, 64 + (i if case == "mixed" else 0), 48, distortion=d, distortion_model=model))
        paths.append(tmp_path / "images" / f"{i:03d}.png")
    out = tmp_path / "transforms.json"
    write_nerf_transforms(out, cams, paths)
    meta = json.loads(out.read_text())
    assert meta["frames"][0]["file_path"] == "images/000.png"
    if case != "mixed":
        assert meta["w"] == 64 and "w" not in meta["frames"][0]  # shared intrinsics live at the top level
    rec = read_nerf_transforms(out)
    assert rec.image_paths == paths
    for a, b in zip(rec.cameras, cams):
        same_camera(a, b)


def test_errors(tmp_path):
    frame = {"file_path": "missing/img", "transform_matrix": c2w_gl(1).tolist()}
    with pytest.raises(FileNotFoundError):
        read_nerf_transforms(tmp_path / "none.json")
    with pytest.raises(ValueError, match=r"frames\[0\]: the json gives no image size and .*missing/img does not "
                                         r"exist; add 'w' and 'h'"):
        read_nerf_transforms(dump(tmp_path / "a.json", {"camera_angle_x": 0.7, "frames": [frame]}))
    with pytest.raises(ValueError, match=r"camera_model 'EQUIRECTANGULAR' is not supported"):
        read_nerf_transforms(dump(tmp_path / "b.json", {"fl_x": 50, "w": 8, "h": 8,
                                                        "camera_model": "EQUIRECTANGULAR", "frames": [frame]}))
    with pytest.raises(ValueError, match=r"k4 = 0.1 .* has no counterpart"):
        read_nerf_transforms(dump(tmp_path / "c.json", {"fl_x": 50, "w": 8, "h": 8, "k4": 0.1, "frames": [frame]}))
    with pytest.raises(ValueError, match=r"frames\[0\]: transform_matrix must be a finite 4x4 or 3x4"):
        read_nerf_transforms(dump(tmp_path / "d.json", {"fl_x": 50, "w": 8, "h": 8, "frames": [
            {"file_path": "x", "transform_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}]}))
    with pytest.raises(ValueError, match=r"no focal length"):
        read_nerf_transforms(dump(tmp_path / "e.json", {"w": 8, "h": 8, "frames": [frame]}))
    with pytest.raises(ValueError, match=r"frames\[0\] needs 'file_path' and 'transform_matrix'"):
        read_nerf_transforms(dump(tmp_path / "f.json", {"fl_x": 50, "frames": [{"file_path": "x"}]}))
    (tmp_path / "g.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"g\.json: not valid JSON"):
        read_nerf_transforms(tmp_path / "g.json")
    cam = Camera(torch.tensor([[50.0, 1.0, 4], [0, 50, 4], [0, 0, 1]], dtype=DT), torch.eye(4, dtype=DT), 8, 8)
    with pytest.raises(ValueError, match=r"cameras\[0\] has skew"):
        write_nerf_transforms(tmp_path / "h.json", [cam], ["a.png"])
    if hasattr(Camera, "orthographic"):  # orthographic cameras are new in Camera
        with pytest.raises(ValueError, match=r"cameras\[0\] is orthographic"):
            write_nerf_transforms(tmp_path / "h.json", [Camera.orthographic(2.0, 8, 8, torch.eye(4, dtype=DT))],
                                  ["a.png"])
    with pytest.raises(ValueError, match="same length"):
        write_nerf_transforms(tmp_path / "h.json", [cam], [])
