"""COLMAP sparse models (``cameras``, ``images``, ``points3D`` in ``.txt`` or ``.bin``), read and written.

COLMAP's conventions (``doc/format.rst``, ``doc/database.rst``, ``src/colmap/camera/models.h``):

* ``images``: ``qvec = (qw, qx, qy, qz)`` (Hamilton, scalar first) and ``tvec`` map **world to camera**,
  ``x_cam = R(qvec) x_world + tvec``, in a camera frame with x right, y down, z forward: lumigrad's own
  convention, so ``world_to_cam = compose_world_to_cam(quaternion_to_matrix(qvec), tvec)`` with no flips.
* Pixels: "the upper left image corner has coordinate (0, 0) and the center of the upper left most pixel has
  coordinate (0.5, 0.5)" (``doc/database.rst``), the same as lumigrad, so ``cx``, ``cy`` and the stored
  keypoints carry over unchanged.
* Camera models project ``(u, v) = (x / z, y / z)``, add the model's distortion ``(du, dv)`` and apply
  ``fx, fy, cx, cy``; the distortion formulas equal lumigrad's (``cameras/distortion.py``):

  ===================== ================================== ===============================================
  COLMAP model          parameters                         lumigrad ``Camera``
  ===================== ================================== ===============================================
  SIMPLE_PINHOLE        f, cx, cy                          no distortion
  PINHOLE               fx, fy, cx, cy                     no distortion
  SIMPLE_RADIAL         f, cx, cy, k                       ``"opencv"`` (k, 0, 0, 0, 0)
  RADIAL                f, cx, cy, k1, k2                  ``"opencv"`` (k1, k2, 0, 0, 0)
  OPENCV                fx, fy, cx, cy, k1, k2, p1, p2     ``"opencv"`` (k1, k2, p1, p2, 0)
  FULL_OPENCV           ... p1, p2, k3, k4, k5, k6         ``"opencv"`` (k1, k2, p1, p2, k3) if k4..k6 = 0
  OPENCV_FISHEYE        fx, fy, cx, cy, k1, k2, k3, k4     ``"fisheye"`` (k1, k2, k3, k4)
  SIMPLE_RADIAL_FISHEYE f, cx, cy, k                       ``"fisheye"`` (k, 0, 0, 0)
  RADIAL_FISHEYE        f, cx, cy, k1, k2                  ``"fisheye"`` (k1, k2, 0, 0)
  ===================== ================================== ===============================================

  (FULL_OPENCV's radial term is the rational ``(1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 +
  k6 r^6)``.) FOV, THIN_PRISM_FISHEYE and the other models raise ``ValueError``.
* Binary files are little-endian (``scripts/python/read_write_model.py``): ``cameras.bin`` = uint64 count,
  then per camera int32 id, int32 model id, uint64 width, uint64 height, float64 params; ``images.bin`` =
  uint64 count, then per image int32 id, 4 float64 qvec, 3 float64 tvec, int32 camera id, the name
  NUL-terminated, uint64 keypoint count and per keypoint 2 float64 (x, y) and int64 point3D id (-1: none);
  ``points3D.bin`` = uint64 count, then per point uint64 id, 3 float64 xyz, 3 uint8 rgb, float64 error,
  uint64 track length and per track element int32 image id, int32 keypoint index.

Hostile models: every error is one ``ValueError`` naming the file and the line (text) or the record
(binary), and quoting no text from it; a zero or non-finite quaternion, non-finite poses, intrinsics or
points, and an image whose camera or point does not exist are refused. Image names must be relative paths
that stay inside the image folder they are later resolved in (no absolute path, no ``../`` escape) unless
``trust_paths=True``; the model files themselves must be regular files inside the model folder.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..cameras.camera import Camera
from ._export_checks import exportable_K
from ..conventions import compose_world_to_cam, matrix_to_quaternion, quaternion_to_matrix
from ._paths import check_regular_file, check_relative_name, confined_path, keyword_text, short_text

__all__ = ["ColmapImage", "ColmapReconstruction", "read_colmap", "write_colmap"]

# name -> (model id, number of params); ids as in COLMAP's camera/models.h.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3), "PINHOLE": (1, 4), "SIMPLE_RADIAL": (2, 4), "RADIAL": (3, 5), "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8), "FULL_OPENCV": (6, 12), "FOV": (7, 5), "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5), "THIN_PRISM_FISHEYE": (10, 12), "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),
}
_MODEL_NAMES = {mid: name for name, (mid, _) in CAMERA_MODELS.items()}
_SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV", "OPENCV_FISHEYE",
              "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE")
_FILES = ("cameras", "images", "points3D")


@dataclass
class ColmapImage:
    """One registered image of a COLMAP model: its ids and its keypoints.

    ``xys [N, 2]`` are keypoint positions in pixels (lumigrad's = COLMAP's convention); ``point3D_ids [N]``
    (int64) are COLMAP's point ids, -1 for keypoints without a 3D point; ``point_index [N]`` (int64) indexes
    the same points in :attr:`ColmapReconstruction.points`, -1 for none.
    """

    image_id: int
    camera_id: int
    name: str
    xys: torch.Tensor
    point3D_ids: torch.Tensor
    point_index: torch.Tensor


@dataclass
class ColmapReconstruction:
    cameras: Dict[str, Camera]  # per image name, in image-id order: K, world_to_cam, distortion
    images: Dict[str, ColmapImage]  # per image name, same order: ids and keypoints
    points: torch.Tensor  # [P, 3] world coordinates, in point-id order
    colors: torch.Tensor  # [P, 3] in [0, 1]
    point_ids: torch.Tensor  # [P] int64 COLMAP point3D ids
    errors: torch.Tensor  # [P] mean reprojection error in pixels, as COLMAP stored it
    camera_models: Dict[str, str] = field(default_factory=dict)  # per image name, the COLMAP model name


# --------------------------------------------------------------------------------------------- reading
@dataclass
class _RawCamera:
    model: str
    width: int
    height: int
    params: List[float]
    where: str  # "cameras.txt:12" or "cameras.bin (camera 3)", for error messages


@dataclass
class _RawImage:
    image_id: int
    qvec: List[float]
    tvec: List[float]
    camera_id: int
    name: str
    xys: np.ndarray  # [N, 2] float64
    point3D_ids: np.ndarray  # [N] int64
    where: str


def read_colmap(path: str | os.PathLike, dtype=torch.float64, near: float = 1e-3,
                far: float = 1e6, *, trust_paths: bool = False) -> ColmapReconstruction:
    """Read a COLMAP sparse model folder (binary ``*.bin`` preferred when complete, else ``*.txt``).

    Args:
        path: the folder holding ``cameras``, ``images`` and ``points3D`` (e.g. ``sparse/0``).
        dtype: floating dtype of every returned tensor.
        near, far: depth range given to every ``Camera`` (COLMAP stores none).
        trust_paths: accept image names that are absolute or climb out of their folder with ``../`` (only
            for models you trust; by default they are refused).

    Returns:
        a :class:`ColmapReconstruction`: ``cameras`` (one unbatched ``Camera`` per image name: ``K [3, 3]``,
        ``world_to_cam [4, 4]``, ``distortion [5]`` / ``[4]`` or None), ``images`` (keypoints), ``points
        [P, 3]``, ``colors [P, 3]`` in [0, 1], ``point_ids [P]``, ``errors [P]``.

    Raises:
        FileNotFoundError: the folder lacks a complete set of text or binary files.
        ValueError: a malformed file (the message names the file and line, or the binary record), a camera
            model lumigrad cannot represent exactly, a zero or non-finite quaternion, or an id that refers to
            nothing.
        ConfinementError: (a ``ValueError``) an absolute or escaping image name, or a model file that is not
            a regular file inside the folder.

    Example:
        >>> import tempfile
        >>> cam = Camera(torch.tensor([[100., 0, 32], [0, 100, 24], [0, 0, 1]], dtype=torch.float64),
        ...              torch.eye(4, dtype=torch.float64), width=64, height=48)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     write_colmap(d, {"a.png": cam})
        ...     rec = read_colmap(d)
        >>> rec.camera_models["a.png"], rec.cameras["a.png"].K[0]
        ('PINHOLE', tensor([100.,   0.,  32.], dtype=torch.float64))
    """
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"COLMAP model folder {folder!r} does not exist")
    binary = all(os.path.isfile(os.path.join(folder, f + ".bin")) for f in _FILES)
    text = all(os.path.isfile(os.path.join(folder, f + ".txt")) for f in _FILES)
    if not (binary or text):
        present = sorted(f for f in os.listdir(folder) if f.split(".")[0] in _FILES)
        raise FileNotFoundError(f"{folder}: a COLMAP model needs cameras, images and points3D, all .txt or all "
                                f".bin; found {present or 'none of them'}")
    ext = ".bin" if binary else ".txt"
    files = {}
    for f in _FILES:
        file = confined_path(folder, f + ext, source=folder, what="COLMAP model file", trusted=trust_paths)
        check_regular_file(file, source=folder, what="COLMAP model file")
        files[f] = os.path.join(folder, f + ext)  # named in messages as the user wrote the folder
    if binary:
        cams = _read_cameras_bin(files["cameras"])
        imgs = _read_images_bin(files["images"])
        pids, xyz, rgb, err = _read_points_bin(files["points3D"])
    else:
        cams = _read_cameras_txt(files["cameras"])
        imgs = _read_images_txt(files["images"])
        pids, xyz, rgb, err = _read_points_txt(files["points3D"])

    row_of = {int(p): i for i, p in enumerate(pids)}
    cameras, images, models = {}, {}, {}
    for img in sorted(imgs, key=lambda im: im.image_id):
        check_relative_name(img.name, source=img.where, what="image name", trusted=trust_paths)
        if img.camera_id not in cams:
            raise ValueError(f"{img.where}: image {short_text(img.name)} uses camera_id {img.camera_id}, which "
                             f"{os.path.basename(files['cameras'])} does not define")
        if img.name in cameras:
            raise ValueError(f"{img.where}: image name {short_text(img.name)} appears twice")
        raw = cams[img.camera_id]
        K, coeffs, model = _intrinsics(raw, dtype)
        _check_pose(img)
        R = quaternion_to_matrix(torch.tensor(img.qvec, dtype=torch.float64)).to(dtype)
        w2c = compose_world_to_cam(R, torch.tensor(img.tvec, dtype=dtype))
        try:
            cameras[img.name] = Camera(K=K, world_to_cam=w2c, width=raw.width, height=raw.height, near=near,
                                       far=far, distortion=coeffs, distortion_model=model)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{img.where}: image {short_text(img.name)} with camera {raw.where}: {exc}") from None
        models[img.name] = raw.model
        index = np.full(img.point3D_ids.shape, -1, dtype=np.int64)
        for k, pid in enumerate(img.point3D_ids.tolist()):
            if pid == -1:
                continue
            if pid not in row_of:
                raise ValueError(f"{img.where}: keypoint {k} of image {short_text(img.name)} refers to point3D id {pid}, "
                                 f"which {os.path.basename(files['points3D'])} does not define")
            index[k] = row_of[pid]
        images[img.name] = ColmapImage(img.image_id, img.camera_id, img.name,
                                       torch.from_numpy(img.xys).to(dtype).reshape(-1, 2),
                                       torch.from_numpy(img.point3D_ids).reshape(-1),
                                       torch.from_numpy(index))
    return ColmapReconstruction(
        cameras=cameras, images=images,
        points=torch.from_numpy(xyz).to(dtype).reshape(-1, 3),
        colors=(torch.from_numpy(rgb).to(dtype) / 255.0).reshape(-1, 3),
        point_ids=torch.from_numpy(pids).reshape(-1), errors=torch.from_numpy(err).to(dtype).reshape(-1),
        camera_models=models)


def _check_pose(img: _RawImage) -> None:
    """Refuse a zero or non-finite quaternion (it would silently become the identity) and a non-finite tvec."""
    q = [float(v) for v in img.qvec]
    if not all(math.isfinite(v) for v in q + [float(v) for v in img.tvec]):
        raise ValueError(f"{img.where}: image {short_text(img.name)} has a non-finite qvec or tvec")
    norm = math.sqrt(sum(v * v for v in q))
    if not norm > 1e-12:
        raise ValueError(f"{img.where}: image {short_text(img.name)} has a zero quaternion (qw qx qy qz = 0); a "
                         "rotation needs a non-zero qvec")


def _intrinsics(raw: _RawCamera, dtype) -> Tuple[torch.Tensor, Optional[torch.Tensor], str]:
    """Map one COLMAP camera to ``(K [3, 3], distortion or None, distortion_model)``."""
    m, p = raw.model, [float(v) for v in raw.params]
    if not all(math.isfinite(v) for v in p):
        raise ValueError(f"{raw.where}: camera parameters must be finite")
    if not (raw.width >= 1 and raw.height >= 1):
        raise ValueError(f"{raw.where}: camera width and height must be at least 1; got {raw.width}x{raw.height}")
    if m not in _SUPPORTED:
        raise ValueError(f"{raw.where}: camera model {m} is not supported (lumigrad represents "
                         f"{', '.join(_SUPPORTED)}); undistort the images with COLMAP's image_undistorter first")
    if m in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    if m == "FULL_OPENCV" and any(v != 0.0 for v in extra[5:]):
        raise ValueError(f"{raw.where}: camera model FULL_OPENCV has rational coefficients k4, k5, k6 = "
                         f"{extra[5:]}; lumigrad's 'opencv' distortion has no denominator, so only k4 = k5 = k6 = 0 "
                         "is supported")
    coeffs, model = None, "opencv"
    if m in ("SIMPLE_RADIAL", "RADIAL"):
        coeffs = (extra + [0.0] * 5)[:5]
    elif m in ("OPENCV", "FULL_OPENCV"):
        coeffs = (extra[:5] + [0.0])[:5]
    elif m in ("OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        coeffs, model = (extra + [0.0] * 4)[:4], "fisheye"
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{raw.where}: focal lengths must be positive; got fx={fx}, fy={fy}")
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)
    return K, None if coeffs is None else torch.tensor(coeffs, dtype=dtype), model


def _data_lines(path: str):
    """Yield ``(line number, stripped line)`` for every line of a text file (comments included)."""
    with open(path, "rb") as fh:
        data = fh.read()
    for lineno, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{lineno}: not UTF-8 text; not a COLMAP text file") from None
        yield lineno, line.strip()


def _records(path: str):
    """Yield ``(where, fields)`` for every non-empty, non-comment line (``where`` is ``path:line``)."""
    for lineno, line in _data_lines(path):
        if line and not line.startswith("#"):
            yield f"{path}:{lineno}", line.split()


def _int(token: str, where: str, what: str, field: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{where}: malformed {what}: {field} is not an integer") from None


def _float(token: str, where: str, what: str, field: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise ValueError(f"{where}: malformed {what}: {field} is not a number") from None


def _finite(values: List[float], where: str, what: str) -> List[float]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: {what} must be finite")
    return values


def _read_cameras_txt(path: str) -> Dict[int, _RawCamera]:
    cams: Dict[int, _RawCamera] = {}
    for where, parts in _records(path):
        if len(parts) < 4:
            raise ValueError(f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'; got {len(parts)} fields")
        what = "camera line"
        cam_id, model = _int(parts[0], where, what, "CAMERA_ID"), parts[1]
        if model not in CAMERA_MODELS:
            shown = keyword_text(model)
            raise ValueError(f"{where}: unknown camera model{' ' + shown if shown else ''} (COLMAP models: "
                             f"{', '.join(CAMERA_MODELS)})")
        width, height = _int(parts[2], where, what, "WIDTH"), _int(parts[3], where, what, "HEIGHT")
        params = [_float(v, where, what, f"parameter {k}") for k, v in enumerate(parts[4:], 1)]
        if len(params) != CAMERA_MODELS[model][1]:
            raise ValueError(f"{where}: camera model {model} takes {CAMERA_MODELS[model][1]} parameters; "
                             f"got {len(params)}")
        if cam_id in cams:
            raise ValueError(f"{where}: camera_id {cam_id} is defined twice")
        cams[cam_id] = _RawCamera(model, width, height, params, where)
    return cams


def _read_images_txt(path: str) -> List[_RawImage]:
    images: List[_RawImage] = []
    lines = iter(_data_lines(path))
    for lineno, line in lines:
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        parts = line.split()
        if len(parts) < 10:
            raise ValueError(f"{where}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'; got {len(parts)} "
                             "fields")
        what = "image line"
        image_id = _int(parts[0], where, what, "IMAGE_ID")
        q = [_float(v, where, what, f) for v, f in zip(parts[1:5], ("QW", "QX", "QY", "QZ"))]
        t = [_float(v, where, what, f) for v, f in zip(parts[5:8], ("TX", "TY", "TZ"))]
        cam_id = _int(parts[8], where, what, "CAMERA_ID")
        # The keypoint line follows the image line and may be empty (an image without keypoints).
        nxt = next(lines, None)
        pts = [] if nxt is None else nxt[1].split()
        pwhere = where if nxt is None else f"{path}:{nxt[0]}"
        if len(pts) % 3:
            raise ValueError(f"{pwhere}: expected keypoints as 'X Y POINT3D_ID' triples; got {len(pts)} values")
        kwhat = "keypoint line"
        xys = np.array([_float(v, pwhere, kwhat, f"value {i + 1}") for i, v in enumerate(pts) if i % 3 != 2],
                       dtype=np.float64)
        ids = np.array([_int(v, pwhere, kwhat, f"value {3 * i + 3}") for i, v in enumerate(pts[2::3])],
                       dtype=np.int64) if pts else np.zeros(0, dtype=np.int64)
        _finite(xys.tolist(), pwhere, "keypoint positions")
        # Joined as COLMAP splits: a name with spaces keeps single spaces.
        images.append(_RawImage(image_id, q, t, cam_id, " ".join(parts[9:]), xys.reshape(-1, 2), ids, where))
    return images


def _read_points_txt(path: str):
    ids, xyz, rgb, err = [], [], [], []
    for where, parts in _records(path):
        if len(parts) < 8 or (len(parts) - 8) % 2:
            raise ValueError(f"{where}: expected 'POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...'; "
                             f"got {len(parts)} fields")
        what = "point line"
        pid = _int(parts[0], where, what, "POINT3D_ID")
        p = _finite([_float(v, where, what, f) for v, f in zip(parts[1:4], "XYZ")], where, "X Y Z")
        c = [_int(v, where, what, f) for v, f in zip(parts[4:7], "RGB")]
        if not all(0 <= v <= 255 for v in c):
            raise ValueError(f"{where}: R G B must lie in [0, 255]; got {c}")
        e = _float(parts[7], where, what, "ERROR")
        ids.append(pid)
        xyz.append(p)
        rgb.append(c)
        err.append(e)
    return _points_arrays(ids, xyz, rgb, err, path)


def _points_arrays(ids, xyz, rgb, err, path):
    try:
        ids = np.asarray(ids, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"{path}: a point3D id does not fit in 64 bits") from None
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if len(ids) != len(set(ids.tolist())):
        raise ValueError(f"{path}: a point3D id is defined twice")
    return (ids, np.asarray(xyz, dtype=np.float64).reshape(-1, 3)[order],
            np.asarray(rgb, dtype=np.float64).reshape(-1, 3)[order], np.asarray(err, dtype=np.float64)[order])


class _Reader:
    """Little-endian cursor over a whole binary file, with errors that name the file and the record."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as fh:
            self.buf = fh.read()
        self.pos = 0

    def take(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buf):
            raise ValueError(f"{self.path}: file ends inside {what} (byte {self.pos} of {len(self.buf)}); "
                             "truncated or not a COLMAP binary file")
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return out

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            raise ValueError(f"{self.path}: file ends inside {what} (byte {self.pos} of {len(self.buf)}); "
                             "truncated or not a COLMAP binary file")
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += size
        return out

    def name(self, what: str) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise ValueError(f"{self.path}: {what} has no terminating NUL byte; truncated file")
        try:
            out = self.buf[self.pos:end].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self.path}: {what} is not UTF-8 text; not a COLMAP binary file") from None
        self.pos = end + 1
        return out

    def done(self):
        if self.pos != len(self.buf):
            raise ValueError(f"{self.path}: {len(self.buf) - self.pos} unexpected bytes after the last record")


def _read_cameras_bin(path: str) -> Dict[int, _RawCamera]:
    r = _Reader(path)
    (count,) = r.take("Q", "the camera count")
    cams: Dict[int, _RawCamera] = {}
    for i in range(count):
        cam_id, model_id, width, height = r.take("iiQQ", f"camera record {i}")
        where = f"{path} (camera record {i}, camera_id {cam_id})"
        if model_id not in _MODEL_NAMES:
            raise ValueError(f"{where}: unknown camera model id {model_id}")
        model = _MODEL_NAMES[model_id]
        params = list(r.take("d" * CAMERA_MODELS[model][1], f"the parameters of camera record {i}"))
        if cam_id in cams:
            raise ValueError(f"{where}: camera_id {cam_id} is defined twice")
        cams[cam_id] = _RawCamera(model, int(width), int(height), params, where)
    r.done()
    return cams


_KEYPOINT = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])


def _read_images_bin(path: str) -> List[_RawImage]:
    r = _Reader(path)
    (count,) = r.take("Q", "the image count")
    images = []
    for i in range(count):
        vals = r.take("i7di", f"image record {i}")
        name = r.name(f"the name of image record {i}")
        where = f"{path} (image record {i}, image_id {vals[0]})"
        (n,) = r.take("Q", f"the keypoint count of image record {i}")
        kp = r.array(_KEYPOINT, n, f"the keypoints of image record {i}")
        xys = np.stack([kp["x"], kp["y"]], -1).astype(np.float64).reshape(-1, 2)
        if not np.isfinite(xys).all():
            raise ValueError(f"{where}: keypoint positions must be finite")
        images.append(_RawImage(vals[0], list(vals[1:5]), list(vals[5:8]), vals[8], name, xys,
                                kp["id"].astype(np.int64), where))
    r.done()
    return images


def _read_points_bin(path: str):
    r = _Reader(path)
    (count,) = r.take("Q", "the point count")
    ids, xyz, rgb, err = [], [], [], []
    for i in range(count):
        vals = r.take("Q3d3BdQ", f"point record {i}")
        r.array("<i4", 2 * vals[8], f"the track of point record {i}")  # (image id, keypoint index) pairs
        _finite(list(vals[1:4]), f"{path} (point record {i}, point3D_id {vals[0]})", "X Y Z")
        ids.append(vals[0])
        xyz.append(vals[1:4])
        rgb.append(vals[4:7])
        err.append(vals[7])
    r.done()
    return _points_arrays(ids, xyz, rgb, err, path)


# --------------------------------------------------------------------------------------------- writing
def _colmap_camera(name: str, cam: Camera) -> Tuple[str, List[float]]:
    """The smallest COLMAP model that represents ``cam`` exactly, and its parameters."""
    K = exportable_K(cam, f"cameras[{name!r}]", "COLMAP")
    fx, fy, cx, cy = (float(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    coeffs = None if cam.distortion is None else [float(v) for v in cam.distortion.detach().cpu().double()]
    if coeffs is None or not any(coeffs):
        return "PINHOLE", [fx, fy, cx, cy]
    if cam.distortion_model == "fisheye":
        return "OPENCV_FISHEYE", [fx, fy, cx, cy] + coeffs
    if coeffs[4] == 0.0:
        return "OPENCV", [fx, fy, cx, cy] + coeffs[:4]
    return "FULL_OPENCV", [fx, fy, cx, cy] + coeffs + [0.0, 0.0, 0.0]


def write_colmap(path: str | os.PathLike, cameras: Mapping[str, Camera], points: Optional[torch.Tensor] = None,
                 colors: Optional[torch.Tensor] = None, binary: bool = False,
                 keypoints: Optional[Mapping[str, Tuple[torch.Tensor, torch.Tensor]]] = None) -> None:
    """Write a COLMAP sparse model (``cameras``, ``images``, ``points3D``) into the folder ``path``.

    Each image gets its own COLMAP camera (``camera_id = image_id``, both 1, 2, ... in ``cameras``' order),
    of the smallest model that represents it exactly: PINHOLE (no or zero distortion), OPENCV (``"opencv"``
    with ``k3 = 0``), FULL_OPENCV (``k3 != 0``, with ``k4 = k5 = k6 = 0``) or OPENCV_FISHEYE. Floats are
    written with 17 significant digits, so text and binary models round-trip float64 exactly.

    Args:
        path: output folder (created if missing).
        cameras: image name -> unbatched ``Camera`` without skew.
        points: optional ``[P, 3]`` world points, written with ids 1..P.
        colors: optional ``[P, 3]`` colours in [0, 1] (default mid grey).
        binary: write ``*.bin`` instead of ``*.txt``.
        keypoints: optional image name -> ``(xys [N, 2] pixels, point_index [N] int)`` where
            ``point_index`` indexes ``points`` (-1: no point); the points' tracks are derived from it.

    Raises:
        ValueError: a batched or skewed camera, or mismatched shapes / out-of-range point indices.
    """
    folder = os.fspath(path)
    os.makedirs(folder, exist_ok=True)
    P = 0 if points is None else int(points.shape[0])
    if points is not None and (points.dim() != 2 or points.shape[-1] != 3):
        raise ValueError(f"points must have shape [P, 3]; got {tuple(points.shape)}")
    if colors is not None and tuple(colors.shape) != (P, 3):
        raise ValueError(f"colors must have shape [P, 3] = {(P, 3)}; got {tuple(colors.shape)}")
    xyz = np.zeros((0, 3)) if points is None else points.detach().cpu().double().numpy()
    rgb = (np.full((P, 3), 128, dtype=np.int64) if colors is None else
           np.clip(np.round(colors.detach().cpu().double().numpy() * 255), 0, 255).astype(np.int64))
    keypoints = dict(keypoints or {})
    unknown = sorted(set(keypoints) - set(cameras))
    if unknown:
        raise ValueError(f"keypoints names images not in cameras: {unknown}")

    rows = []  # (image id, name, model, cam, qvec, tvec, xys [N, 2], point ids [N])
    tracks: List[List[Tuple[int, int]]] = [[] for _ in range(P)]
    for image_id, (name, cam) in enumerate(cameras.items(), 1):
        if "\x00" in name or "\n" in name:
            raise ValueError(f"image name {name!r} contains a NUL or newline character")
        model, params = _colmap_camera(name, cam)
        w2c = cam.world_to_cam.detach().cpu().double()
        qvec = [float(v) for v in matrix_to_quaternion(w2c[:3, :3])]
        tvec = [float(v) for v in w2c[:3, 3]]
        xys, pids = np.zeros((0, 2)), np.zeros((0,), dtype=np.int64)
        if name in keypoints:
            kx, ki = keypoints[name]
            xys = kx.detach().cpu().double().numpy().reshape(-1, 2)
            idx = ki.detach().cpu().numpy().astype(np.int64).reshape(-1)
            if idx.shape[0] != xys.shape[0]:
                raise ValueError(f"keypoints[{name!r}]: {xys.shape[0]} positions but {idx.shape[0]} point indices")
            if idx.size and (idx.min() < -1 or idx.max() >= P):
                raise ValueError(f"keypoints[{name!r}] holds point index outside [-1, {P}); points has {P} rows")
            pids = np.where(idx >= 0, idx + 1, -1)
            for k, i in enumerate(idx.tolist()):
                if i >= 0:
                    tracks[i].append((image_id, k))
        rows.append((image_id, name, model, params, cam, qvec, tvec, xys, pids))

    if binary:
        _write_bin(folder, rows, xyz, rgb, tracks)
    else:
        _write_txt(folder, rows, xyz, rgb, tracks)


def _f(v: float) -> str:
    return repr(float(v))


def _write_txt(folder, rows, xyz, rgb, tracks):
    with open(os.path.join(folder, "cameras.txt"), "w", encoding="utf-8") as fh:
        fh.write("# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
                 f"# Number of cameras: {len(rows)}\n")
        for image_id, _, model, params, cam, *_ in rows:
            fh.write(" ".join([str(image_id), model, str(cam.width), str(cam.height)] + [_f(p) for p in params])
                     + "\n")
    with open(os.path.join(folder, "images.txt"), "w", encoding="utf-8") as fh:
        fh.write("# Image list with two lines of data per image:\n"
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
                 f"# Number of images: {len(rows)}\n")
        for image_id, name, _, _, _, qvec, tvec, xys, pids in rows:
            fh.write(" ".join([str(image_id)] + [_f(v) for v in qvec + tvec] + [str(image_id), name]) + "\n")
            fh.write(" ".join(f"{_f(x)} {_f(y)} {int(i)}" for (x, y), i in zip(xys.tolist(), pids.tolist())) + "\n")
    with open(os.path.join(folder, "points3D.txt"), "w", encoding="utf-8") as fh:
        fh.write("# 3D point list with one line of data per point:\n"
                 "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                 f"# Number of points: {len(xyz)}\n")
        for i, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist())):
            track = [f"{a} {b}" for a, b in tracks[i]]
            fh.write(" ".join([str(i + 1)] + [_f(v) for v in p] + [str(v) for v in c] + ["0.0"] + track) + "\n")


def _write_bin(folder, rows, xyz, rgb, tracks):
    with open(os.path.join(folder, "cameras.bin"), "wb") as fh:
        fh.write(struct.pack("<Q", len(rows)))
        for image_id, _, model, params, cam, *_ in rows:
            fh.write(struct.pack("<iiQQ", image_id, CAMERA_MODELS[model][0], cam.width, cam.height))
            fh.write(struct.pack("<" + "d" * len(params), *params))
    with open(os.path.join(folder, "images.bin"), "wb") as fh:
        fh.write(struct.pack("<Q", len(rows)))
        for image_id, name, _, _, _, qvec, tvec, xys, pids in rows:
            fh.write(struct.pack("<i7di", image_id, *qvec, *tvec, image_id))
            fh.write(name.encode("utf-8") + b"\x00")
            fh.write(struct.pack("<Q", len(pids)))
            kp = np.zeros(len(pids), dtype=_KEYPOINT)
            kp["x"], kp["y"], kp["id"] = xys[:, 0], xys[:, 1], pids
            fh.write(kp.tobytes())
    with open(os.path.join(folder, "points3D.bin"), "wb") as fh:
        fh.write(struct.pack("<Q", len(xyz)))
        for i, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist())):
            fh.write(struct.pack("<Q3d3BdQ", i + 1, *p, *c, 0.0, len(tracks[i])))
            fh.write(np.asarray(tracks[i], dtype="<i4").reshape(-1).tobytes())
