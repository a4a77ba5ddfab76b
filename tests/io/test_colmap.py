"""COLMAP sparse models: every camera model in text and binary, round trips, reprojection, clear errors.

Fixtures are written here by a small, independent transcription of COLMAP's file layout
(``scripts/python/read_write_model.py``) and projection (``src/colmap/camera/models.h``), not by the library.
"""

import math
import struct

import numpy as np
import pytest
import torch

from lumigrad import Camera
from lumigrad.conventions import quaternion_to_matrix
from lumigrad.io import read_colmap, write_colmap

DT = torch.float64
MODEL_IDS = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "RADIAL": 3, "OPENCV": 4, "OPENCV_FISHEYE": 5,
             "FULL_OPENCV": 6, "FOV": 7, "SIMPLE_RADIAL_FISHEYE": 8, "RADIAL_FISHEYE": 9, "THIN_PRISM_FISHEYE": 10}

# (model, params, expected lumigrad K entries (fx, fy, cx, cy), distortion model, coefficients or None)
MODELS = [
    ("SIMPLE_PINHOLE", [500.0, 320.5, 240.25], (500.0, 500.0, 320.5, 240.25), "opencv", None),
    ("PINHOLE", [500.0, 510.0, 320.5, 240.25], (500.0, 510.0, 320.5, 240.25), "opencv", None),
    ("SIMPLE_RADIAL", [500.0, 320.5, 240.25, 0.05], (500.0, 500.0, 320.5, 240.25), "opencv",
     [0.05, 0, 0, 0, 0]),
    ("RADIAL", [500.0, 320.5, 240.25, 0.05, -0.01], (500.0, 500.0, 320.5, 240.25), "opencv",
     [0.05, -0.01, 0, 0, 0]),
    ("OPENCV", [500.0, 510.0, 320.5, 240.25, 0.05, -0.01, 1e-3, -2e-3], (500.0, 510.0, 320.5, 240.25), "opencv",
     [0.05, -0.01, 1e-3, -2e-3, 0]),
    ("FULL_OPENCV", [500.0, 510.0, 320.5, 240.25, 0.05, -0.01, 1e-3, -2e-3, 4e-3, 0, 0, 0],
     (500.0, 510.0, 320.5, 240.25), "opencv", [0.05, -0.01, 1e-3, -2e-3, 4e-3]),
    ("OPENCV_FISHEYE", [300.0, 301.0, 320.5, 240.25, 0.02, -0.01, 3e-3, -1e-3], (300.0, 301.0, 320.5, 240.25),
     "fisheye", [0.02, -0.01, 3e-3, -1e-3]),
    ("SIMPLE_RADIAL_FISHEYE", [300.0, 320.5, 240.25, 0.02], (300.0, 300.0, 320.5, 240.25), "fisheye",
     [0.02, 0, 0, 0]),
    ("RADIAL_FISHEYE", [300.0, 320.5, 240.25, 0.02, -0.01], (300.0, 300.0, 320.5, 240.25), "fisheye",
     [0.02, -0.01, 0, 0]),
]


# ------------------------------------------------------------------------------------ independent fixtures
def qvec2rotmat(q):
    """COLMAP's ``qvec2rotmat`` (Hamilton, w first, world-to-camera)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
        [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
        [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y]])


def colmap_project(model, params, X_cam):
    """COLMAP's CamToImg for the supported models, written out from models.h (numpy, [N, 3] -> [N, 2])."""
    u, v = X_cam[:, 0] / X_cam[:, 2], X_cam[:, 1] / X_cam[:, 2]
    single = model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE")
    f1, f2 = (params[0], params[0]) if single else (params[0], params[1])
    c1, c2 = (params[1], params[2]) if single else (params[2], params[3])
    e = params[3:] if single else params[4:]
    r2 = u * u + v * v
    du = dv = 0.0 * u
    if model in ("SIMPLE_RADIAL", "RADIAL"):
        radial = e[0] * r2 + (e[1] * r2 * r2 if model == "RADIAL" else 0)
        du, dv = u * radial, v * radial
    elif model in ("OPENCV", "FULL_OPENCV"):
        k1, k2, p1, p2 = e[:4]
        if model == "OPENCV":
            radial = k1 * r2 + k2 * r2 * r2
        else:
            k3, k4, k5, k6 = e[4:]
            radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3) - 1
        du = u * radial + 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
        dv = v * radial + 2 * p2 * u * v + p1 * (r2 + 2 * v * v)
    elif "FISHEYE" in model:
        k = (list(e) + [0, 0, 0, 0])[:4]
        r = np.sqrt(r2)
        th = np.arctan(r)
        thd = th * (1 + k[0] * th ** 2 + k[1] * th ** 4 + k[2] * th ** 6 + k[3] * th ** 8)
        du, dv = u * thd / r - u, v * thd / r - v
    return np.stack([f1 * (u + du) + c1, f2 * (v + dv) + c2], -1)


def write_fixture(folder, cameras, images, points, binary):
    """cameras: {id: (model, w, h, params)}; images: [(id, qvec, tvec, cam_id, name, xys [N,2], ids [N])];
    points: [(id, xyz, rgb, error, track [(image_id, idx)])]."""
    folder.mkdir(parents=True, exist_ok=True)
    if binary:
        with open(folder / "cameras.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(cameras)))
            for cid, (model, w, h, params) in cameras.items():
                fh.write(struct.pack("<iiQQ", cid, MODEL_IDS[model], w, h) + struct.pack(f"<{len(params)}d", *params))
        with open(folder / "images.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(images)))
            for iid, q, t, cid, name, xys, ids in images:
                fh.write(struct.pack("<idddddddi", iid, *q, *t, cid) + name.encode() + b"\x00")
                fh.write(struct.pack("<Q", len(ids)))
                for (x, y), pid in zip(xys, ids):
                    fh.write(struct.pack("<ddq", x, y, pid))
        with open(folder / "points3D.bin", "wb") as fh:
            fh.write(struct.pack("<Q", len(points)))
            for pid, xyz, rgb, err, track in points:
                fh.write(struct.pack("<QdddBBBd", pid, *xyz, *rgb, err) + struct.pack("<Q", len(track)))
                for a, b in track:
                    fh.write(struct.pack("<ii", a, b))
        return
    lines = ["# Camera list with one line of data per camera:"]
    lines += [" ".join(map(str, [cid, model, w, h, *map(repr, params)])) for cid, (model, w, h, params) in
              cameras.items()]
    (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list with two lines of data per image:"]
    for iid, q, t, cid, name, xys, ids in images:
        lines.append(" ".join(map(str, [iid, *map(repr, q), *map(repr, t), cid, name])))
        lines.append(" ".join(f"{x!r} {y!r} {pid}" for (x, y), pid in zip(xys, ids)))
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    lines = ["# 3D point list with one line of data per point:"]
    lines += [" ".join(map(str, [pid, *map(repr, xyz), *rgb, err] + [f"{a} {b}" for a, b in track]))
              for pid, xyz, rgb, err, track in points]
    (folder / "points3D.txt").write_text("\n".join(lines) + "\n")


def scene(model, params, seed=0, n_points=12, width=640, height=480):
    """Two images of random points with exact COLMAP keypoints (plus one keypoint without a 3D point)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, size=(n_points, 3))
    cameras, images, tracks = {3: (model, width, height, list(params))}, [], {i: [] for i in range(n_points)}
    for iid in (7, 2):  # ids out of order on purpose: the reader sorts by image id
        q = rng.normal(size=4) * np.array([4.0, 0.3, 0.3, 0.3])
        q = (q / np.linalg.norm(q)).tolist()
        t = [0.1 * iid, -0.2, 6.0]
        Xc = xyz @ qvec2rotmat(q).T + np.array(t)
        xys = colmap_project(model, params, Xc)
        ids = list(range(100, 100 + n_points))
        for k in range(n_points):
            tracks[k].append((iid, k))
        xys = np.concatenate([xys, [[10.5, 20.5]]]).tolist()
        images.append((iid, q, t, 3, f"img_{iid:02d}.jpg", xys, ids + [-1]))
    points = [(100 + k, xyz[k].tolist(), [k, 2 * k, 255], 0.5, tracks[k]) for k in range(n_points)]
    return cameras, images, points, xyz


def random_cameras(seed, distortion=None, model="opencv", n=3):
    g = torch.Generator().manual_seed(seed)
    cams = {}
    for i in range(n):
        R = quaternion_to_matrix(torch.randn(4, generator=g, dtype=DT))
        t = torch.randn(3, generator=g, dtype=DT)
        w2c = torch.eye(4, dtype=DT)
        w2c[:3, :3], w2c[:3, 3] = R, t
        fx, fy = 400 + 100 * torch.rand(2, generator=g, dtype=DT)
        cx, cy = 320 + torch.randn(2, generator=g, dtype=DT)
        K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=DT)
        d = None if distortion is None else torch.tensor(distortion, dtype=DT) * (1 + 0.1 * i)
        cams[f"dir/frame {i}.png"] = Camera(K, w2c, 640 + i, 480, distortion=d, distortion_model=model)
    return cams


def same_camera(a: Camera, b: Camera, tol=1e-12):
    assert (a.width, a.height) == (b.width, b.height)
    torch.testing.assert_close(a.K, b.K, rtol=0, atol=tol)
    torch.testing.assert_close(a.world_to_cam, b.world_to_cam, rtol=0, atol=tol)
    zeros = lambda c: torch.zeros(5 if c.distortion_model == "opencv" else 4, dtype=DT)  # noqa: E731
    da = a.distortion if a.distortion is not None else zeros(a)
    db = b.distortion if b.distortion is not None else zeros(b)
    if bool(da.any()) or bool(db.any()):
        assert a.distortion_model == b.distortion_model
    torch.testing.assert_close(da, db, rtol=0, atol=tol)


# ----------------------------------------------------------------------------------------------- reading
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("model,params,kvals,dmodel,coeffs", MODELS, ids=[m[0] for m in MODELS])
def test_every_model_reads_and_reprojects_its_keypoints(tmp_path, binary, model, params, kvals, dmodel, coeffs):
    cams, imgs, pts, xyz = scene(model, params)
    write_fixture(tmp_path, cams, imgs, pts, binary)
    rec = read_colmap(tmp_path)
    assert list(rec.cameras) == ["img_02.jpg", "img_07.jpg"]  # sorted by image id
    assert rec.camera_models["img_02.jpg"] == model
    torch.testing.assert_close(rec.points, torch.from_numpy(xyz), rtol=0, atol=0)
    assert rec.point_ids.tolist() == list(range(100, 112))
    torch.testing.assert_close(rec.colors[3], torch.tensor([3, 6, 255], dtype=DT) / 255)
    for name, cam in rec.cameras.items():
        fx, fy, cx, cy = kvals
        torch.testing.assert_close(cam.K, torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=DT))
        assert (cam.width, cam.height) == (640, 480) and cam.dtype == DT
        if coeffs is None:
            assert cam.distortion is None
        else:
            assert cam.distortion_model == dmodel
            torch.testing.assert_close(cam.distortion, torch.tensor(coeffs, dtype=DT), rtol=0, atol=0)
        img = rec.images[name]
        assert img.point3D_ids[-1] == -1 and img.point_index[-1] == -1
        valid = img.point_index >= 0
        uv, z = cam.project(rec.points[img.point_index[valid]])
        assert (z > 0).all()
        torch.testing.assert_close(uv, img.xys[valid], rtol=0, atol=1e-9)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_identity_pose_puts_the_origin_in_front_at_the_principal_point(tmp_path, binary):
    cams = {1: ("PINHOLE", 64, 48, [100.0, 110.0, 31.5, 20.25])}
    # qvec (cos 45, 0, sin 45, 0): +90 degrees about y maps world +z to camera +x (Hamilton, world-to-camera).
    s = math.sqrt(0.5)
    imgs = [(1, [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0], 1, "a.png", [], []),
            (2, [s, 0.0, s, 0.0], [0.0, 0.0, 5.0], 1, "b.png", [], [])]
    write_fixture(tmp_path, cams, imgs, [], binary)
    rec = read_colmap(tmp_path)
    assert rec.points.shape == (0, 3) and rec.images["a.png"].xys.shape == (0, 2)
    uv, z = rec.cameras["a.png"].project(torch.zeros(1, 3, dtype=DT))
    torch.testing.assert_close(uv, torch.tensor([[31.5, 20.25]], dtype=DT))
    torch.testing.assert_close(z, torch.tensor([5.0], dtype=DT))
    uv, z = rec.cameras["b.png"].project(torch.tensor([[0.0, 0.0, 1.0]], dtype=DT))
    torch.testing.assert_close(uv, torch.tensor([[31.5 + 100.0 / 5, 20.25]], dtype=DT))
    torch.testing.assert_close(z, torch.tensor([5.0], dtype=DT))


# ----------------------------------------------------------------------------------------- round trips
WRITE_CASES = [
    ("PINHOLE", None, "opencv"),
    ("PINHOLE", [0.0, 0.0, 0.0, 0.0, 0.0], "opencv"),
    ("OPENCV", [0.05, -0.01, 1e-3, -2e-3, 0.0], "opencv"),
    ("FULL_OPENCV", [0.05, -0.01, 1e-3, -2e-3, 4e-3], "opencv"),
    ("OPENCV_FISHEYE", [0.02, -0.01, 3e-3, -1e-3], "fisheye"),
]


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("expected,coeffs,dmodel", WRITE_CASES, ids=["pinhole", "zero", "opencv", "full", "fisheye"])
def test_write_read_round_trip(tmp_path, binary, expected, coeffs, dmodel):
    cams = random_cameras(1, coeffs, dmodel)
    g = torch.Generator().manual_seed(2)
    points = torch.randn(5, 3, generator=g, dtype=DT)
    colors = torch.rand(5, 3, generator=g, dtype=DT)
    names = list(cams)
    kp = {names[0]: (torch.tensor([[1.25, 2.5], [3.0, 4.0], [5.5, 6.5]], dtype=DT), torch.tensor([4, -1, 0]))}
    write_colmap(tmp_path, cams, points, colors, binary=binary, keypoints=kp)
    assert (tmp_path / ("images.bin" if binary else "images.txt")).exists()
    rec = read_colmap(tmp_path)
    assert list(rec.cameras) == names
    for name in names:
        assert rec.camera_models[name] == expected
        same_camera(rec.cameras[name], cams[name])
    torch.testing.assert_close(rec.points, points, rtol=0, atol=0)
    assert float((rec.colors - colors).abs().max()) <= 0.5 / 255 + 1e-12
    img = rec.images[names[0]]
    torch.testing.assert_close(img.xys, kp[names[0]][0], rtol=0, atol=0)
    assert img.point_index.tolist() == [4, -1, 0] and img.point3D_ids.tolist() == [5, -1, 1]
    assert rec.images[names[1]].xys.shape == (0, 2)
    # Reading what was written and writing it again changes nothing.
    write_colmap(tmp_path / "again", rec.cameras, rec.points, binary=not binary)
    rec2 = read_colmap(tmp_path / "again")
    for name in names:
        same_camera(rec2.cameras[name], cams[name])


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("model,params,kvals,dmodel,coeffs", MODELS, ids=[m[0] for m in MODELS])
def test_every_read_model_survives_a_write_read_cycle(tmp_path, binary, model, params, kvals, dmodel, coeffs):
    cams, imgs, pts, _ = scene(model, params, n_points=3)
    write_fixture(tmp_path / "in", cams, imgs, pts, binary)
    rec = read_colmap(tmp_path / "in")
    write_colmap(tmp_path / "out", rec.cameras, rec.points, rec.colors, binary=binary)
    rec2 = read_colmap(tmp_path / "out")
    for name in rec.cameras:
        same_camera(rec2.cameras[name], rec.cameras[name])
    torch.testing.assert_close(rec2.colors, rec.colors, rtol=0, atol=0)


def test_binary_files_are_preferred_when_both_formats_exist(tmp_path):
    cams = random_cameras(3)
    write_colmap(tmp_path, cams, binary=False)
    moved = random_cameras(4)
    write_colmap(tmp_path, moved, binary=True)
    rec = read_colmap(tmp_path)
    for name in cams:
        same_camera(rec.cameras[name], moved[name])


# ---------------------------------------------------------------------------------------------- errors
def _text_model(tmp_path, cameras_txt=None, images_txt=None, points_txt=None):
    write_fixture(tmp_path, {1: ("PINHOLE", 64, 48, [50.0, 50.0, 32.0, 24.0])},
                  [(1, [1.0, 0, 0, 0], [0, 0, 5.0], 1, "a.png", [[1.0, 2.0]], [1])],
                  [(1, [0.0, 0.0, 0.0], [1, 2, 3], 0.1, [(1, 0)])], binary=False)
    for name, text in (("cameras.txt", cameras_txt), ("images.txt", images_txt), ("points3D.txt", points_txt)):
        if text is not None:
            (tmp_path / name).write_text(text)
    return tmp_path


def test_malformed_lines_name_the_file_and_line(tmp_path):
    _text_model(tmp_path / "a", cameras_txt="# header\n\n1 PINHOLE 64 forty-eight 50 50 32 24\n")
    with pytest.raises(ValueError, match=r"cameras\.txt:3: malformed camera line"):
        read_colmap(tmp_path / "a")
    _text_model(tmp_path / "b", cameras_txt="1 PINHOLE 64 48 50 50 32\n")
    with pytest.raises(ValueError, match=r"cameras\.txt:1: camera model PINHOLE takes 4 parameters; got 3"):
        read_colmap(tmp_path / "b")
    _text_model(tmp_path / "c", images_txt="# c\n1 1 0 0 0 0 0 5 1 a.png\n1.0 2.0\n")
    with pytest.raises(ValueError, match=r"images\.txt:3: expected keypoints as 'X Y POINT3D_ID' triples"):
        read_colmap(tmp_path / "c")
    _text_model(tmp_path / "d", images_txt="1 1 0 0 0 0 5 1 a.png\n\n")
    with pytest.raises(ValueError, match=r"images\.txt:1: expected 'IMAGE_ID QW"):
        read_colmap(tmp_path / "d")
    _text_model(tmp_path / "e", points_txt="1 0 0 0 1 2 3 0.1 1\n")
    with pytest.raises(ValueError, match=r"points3D\.txt:1: expected 'POINT3D_ID"):
        read_colmap(tmp_path / "e")


def test_unsupported_models_name_the_model_and_file(tmp_path):
    _text_model(tmp_path / "a", cameras_txt="1 FOV 64 48 50 50 32 24 0.9\n")
    with pytest.raises(ValueError, match=r"cameras\.txt:1: camera model FOV is not supported"):
        read_colmap(tmp_path / "a")
    _text_model(tmp_path / "b", cameras_txt="1 FULL_OPENCV 64 48 50 50 32 24 0.1 0 0 0 0 0.2 0 0\n")
    with pytest.raises(ValueError, match=r"cameras\.txt:1: camera model FULL_OPENCV has rational coefficients"):
        read_colmap(tmp_path / "b")
    _text_model(tmp_path / "c", cameras_txt="1 MY_LENS 64 48 50\n")
    with pytest.raises(ValueError, match=r"unknown camera model 'MY_LENS'"):
        read_colmap(tmp_path / "c")
    cams = {1: ("THIN_PRISM_FISHEYE", 64, 48, [50.0, 50, 32, 24] + [0.0] * 8)}
    write_fixture(tmp_path / "d", cams, [(1, [1.0, 0, 0, 0], [0, 0, 5.0], 1, "a.png", [], [])], [], binary=True)
    with pytest.raises(ValueError, match=r"cameras\.bin.*THIN_PRISM_FISHEYE is not supported"):
        read_colmap(tmp_path / "d")
    # A camera no image uses is ignored, as COLMAP does.
    _text_model(tmp_path / "e", cameras_txt="1 PINHOLE 64 48 50 50 32 24\n2 FOV 64 48 50 50 32 24 0.9\n")
    assert list(read_colmap(tmp_path / "e").cameras) == ["a.png"]


def test_missing_files_and_dangling_ids(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_colmap(tmp_path / "nowhere")
    _text_model(tmp_path / "a")
    (tmp_path / "a" / "points3D.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"needs cameras, images and points3D.*found \['cameras.txt', "
                                                r"'images.txt'\]"):
        read_colmap(tmp_path / "a")
    _text_model(tmp_path / "b", images_txt="1 1 0 0 0 0 0 5 9 a.png\n\n")
    with pytest.raises(ValueError, match=r"images\.txt:1: image 'a.png' uses camera_id 9, which cameras.txt does "
                                         r"not define"):
        read_colmap(tmp_path / "b")
    _text_model(tmp_path / "c", images_txt="1 1 0 0 0 0 0 5 1 a.png\n1.0 2.0 77\n")
    with pytest.raises(ValueError, match=r"refers to point3D id 77, which points3D.txt does not define"):
        read_colmap(tmp_path / "c")


def test_truncated_binary_file(tmp_path):
    write_colmap(tmp_path, random_cameras(5), binary=True)
    data = (tmp_path / "images.bin").read_bytes()
    (tmp_path / "images.bin").write_bytes(data[:-30])
    with pytest.raises(ValueError, match=r"images\.bin: file ends inside"):
        read_colmap(tmp_path)


def test_write_refuses_what_colmap_cannot_store(tmp_path):
    cam = next(iter(random_cameras(6).values()))
    skewed = Camera(cam.K.clone(), cam.world_to_cam, cam.width, cam.height)
    skewed.K[0, 1] = 0.5
    with pytest.raises(ValueError, match=r"cameras\['s'\] has skew"):
        write_colmap(tmp_path, {"s": skewed})
    batched = Camera(cam.K.expand(2, 3, 3), cam.world_to_cam, cam.width, cam.height)
    with pytest.raises(ValueError, match=r"cameras\['b'\] must be a single \(unbatched\) Camera"):
        write_colmap(tmp_path, {"b": batched})
    if hasattr(Camera, "orthographic"):  # orthographic cameras are new in Camera
        ortho = Camera.orthographic(2.0, 8, 8, torch.eye(4, dtype=DT))
        with pytest.raises(ValueError, match=r"cameras\['o'\] is orthographic"):
            write_colmap(tmp_path, {"o": ortho})
    with pytest.raises(ValueError, match=r"point index outside \[-1, 2\)"):
        write_colmap(tmp_path, {"c": cam}, torch.zeros(2, 3, dtype=DT),
                     keypoints={"c": (torch.zeros(1, 2, dtype=DT), torch.tensor([2]))})
