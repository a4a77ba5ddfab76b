"""OpenSfM ``reconstruction.json`` reader: cameras, shots and points converted to lumigrad conventions once.

OpenSfM (``doc/source/geometry.rst``): shot ``rotation`` (axis-angle) and ``translation`` map world to camera
(``x_cam = R x + t``) in an X right, Y down, Z forward camera frame, the same as lumigrad's. Perspective
cameras project to *normalized image coordinates* ``f d (x/z, y/z)`` with ``d = 1 + k1 r^2 + k2 r^4``, where
the normalized frame has its origin at the image centre and the larger image side spans 1. In lumigrad
pixels (centres at +0.5) that is ``u = W/2 + s x_n``, ``v = H/2 + s y_n`` with ``s = max(W, H)``.

Every field that is read is checked, and a file that is not what it should be raises one ``ValueError`` naming
the file and the key path at fault, e.g.
``reconstruction.json: [0].shots['img1'].rotation must be a list of 3 finite numbers; got 'abc'``:

* the file: UTF-8 JSON read by :func:`lumigrad.io._paths.parse_json` (nesting beyond its depth limit is a
  ``ValueError``, never a ``RecursionError``; NaN, Infinity and numbers that overflow to them are refused where
  numbers are read), a non-empty list of reconstructions, ``index`` inside it;
* a reconstruction: an object with ``cameras``, ``shots`` and ``points`` objects and an optional
  ``reference_lla`` (``latitude`` in [-90, 90], ``longitude`` in [-180, 180], ``altitude``; default 0, 0, 0);
* a camera used by a shot: ``projection_type`` ``"perspective"`` (the default; OpenSfM's other models,
  ``brown``, ``fisheye``, ``spherical`` ..., and unknown names are refused), positive integer ``width`` and
  ``height``, a positive ``focal``, optional finite ``k1``, ``k2``;
* a shot: ``camera`` naming a key of ``cameras``, ``rotation`` and ``translation`` as 3 finite numbers;
* a point: ``coordinates`` (3 finite numbers) and ``color`` (3 numbers in [0, 255]).

Keys that are not listed (GPS data, rigs, biases, ...) are not read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, Tuple

import torch

from ..cameras.camera import Camera
from ..conventions import axis_angle_to_matrix, compose_world_to_cam
from ._paths import is_json_number as _is_number, parse_json

__all__ = ["OpenSfmReconstruction", "lla_to_topocentric", "read_opensfm"]

# OpenSfM's camera models (opensfm/pygeometry); only "perspective" is read, the others are named when refused.
_OTHER_PROJECTIONS = ("brown", "fisheye", "fisheye_opencv", "fisheye62", "fisheye624", "radial", "simple_radial",
                      "dual", "spherical", "equirectangular")


@dataclass
class OpenSfmReconstruction:
    shots: Dict[str, Camera]  # per image: K, world_to_cam and radial distortion (model "opencv": k1, k2)
    points: torch.Tensor  # [P, 3] world (topocentric) coordinates
    colors: torch.Tensor  # [P, 3] in [0, 1]
    reference_lla: Tuple[float, float, float]  # latitude, longitude (degrees), altitude (m) of the origin


def read_opensfm(path: str | os.PathLike, index: int = 0, dtype=torch.float64) -> OpenSfmReconstruction:
    """Read reconstruction ``index`` of an OpenSfM ``reconstruction.json`` (perspective cameras).

    Args:
        path: the ``reconstruction.json`` file (a JSON list of reconstructions).
        index: which reconstruction of the list.
        dtype: ``torch.float32`` or ``torch.float64``, the dtype of every returned tensor.

    Returns:
        An :class:`OpenSfmReconstruction`: a :class:`Camera` per shot, the points ``[P, 3]`` and their colours
        ``[P, 3]`` in [0, 1] (points in the order of their sorted ids), and the reference latitude, longitude
        and altitude.

    Raises:
        FileNotFoundError: no file is there.
        TypeError: ``index`` is not an integer or ``dtype`` not a floating dtype.
        ValueError: the file is not a valid reconstruction (the message names the file and the key path).
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int; got {type(index).__name__}")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
    return _Reader(path, dtype).read(index)


class _Reader:
    def __init__(self, path, dtype: torch.dtype):
        self.path, self.dtype = path, dtype

    def fail(self, where: str, expected: str, got) -> ValueError:
        return ValueError(f"{self.path}: {where} must be {expected}; got {_short(got)}")

    # ------------------------------------------------------------------------------------ typed fields
    def field(self, obj: dict, key: str, where: str):
        if key not in obj:
            raise ValueError(f"{self.path}: {where} has no {key!r}")
        return obj[key]

    def obj(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, "an object", value)
        return value

    def number(self, value, where: str, lo: float = -math.inf, hi: float = math.inf, what: str = "") -> float:
        if not _is_number(value) or not lo <= float(value) <= hi:
            raise self.fail(where, what or "a finite number", value)
        return float(value)

    def numbers(self, value, where: str, n: int, lo: float = -math.inf, hi: float = math.inf, what: str = ""):
        if not (isinstance(value, list) and len(value) == n and
                all(_is_number(v) and lo <= float(v) <= hi for v in value)):
            raise self.fail(where, what or f"a list of {n} finite numbers", value)
        return [float(v) for v in value]

    def size(self, value, where: str) -> int:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and math.isfinite(value) and value.is_integer())
        if not ok or value <= 0:
            raise self.fail(where, "a positive integer", value)
        return int(value)

    # ------------------------------------------------------------------------------------------ reading
    def load(self):
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: no such file") from None
        except OSError as e:
            raise ValueError(f"{self.path}: cannot be read ({e.strerror or e})") from None
        try:  # parse_json names the file for bad UTF-8 or JSON and refuses deep nesting before parsing
            return parse_json(raw, source=self.path)
        except ValueError as e:
            if str(e).startswith(f"{self.path}: "):
                raise
            # e.g. an integer literal with more digits than Python converts
            raise ValueError(f"{self.path}: not valid JSON ({str(e)[:200]})") from None

    def read(self, index: int) -> OpenSfmReconstruction:
        data = self.load()
        if not isinstance(data, list) or not data:
            raise ValueError(f"{self.path}: expected a non-empty list of reconstructions; got {_short(data)}")
        if not 0 <= index < len(data):
            raise ValueError(f"{self.path}: index {index} is out of range; the file holds {len(data)} "
                             f"reconstruction{'s' if len(data) != 1 else ''}")
        root = f"[{index}]"
        rec = self.obj(data[index], root)
        cameras = self.obj(self.field(rec, "cameras", root), f"{root}.cameras")
        shots_in = self.obj(self.field(rec, "shots", root), f"{root}.shots")
        points_in = self.obj(self.field(rec, "points", root), f"{root}.points")
        intrinsics: Dict[str, tuple] = {}
        shots = {}
        for name, shot in shots_in.items():
            where = f"{root}.shots[{_short(name)}]"
            shot = self.obj(shot, where)
            cam_name = self.field(shot, "camera", where)
            if not isinstance(cam_name, str):
                raise self.fail(f"{where}.camera", "a string naming a camera", cam_name)
            if cam_name not in cameras:
                raise ValueError(f"{self.path}: {where}.camera {_short(cam_name)} is not a key of {root}.cameras")
            if cam_name not in intrinsics:
                intrinsics[cam_name] = self.camera(cameras[cam_name], f"{root}.cameras[{_short(cam_name)}]")
            K, width, height, coeffs = intrinsics[cam_name]
            rotation = self.numbers(self.field(shot, "rotation", where), f"{where}.rotation", 3)
            translation = self.numbers(self.field(shot, "translation", where), f"{where}.translation", 3)
            R = axis_angle_to_matrix(torch.tensor(rotation, dtype=self.dtype))
            w2c = compose_world_to_cam(R, torch.tensor(translation, dtype=self.dtype))
            try:
                shots[name] = Camera(K=K.clone(), world_to_cam=w2c, width=width, height=height, near=1e-3, far=1e6,
                                     distortion=coeffs.clone())
            except (ValueError, TypeError) as e:
                raise ValueError(f"{self.path}: {where} does not make a camera ({e})") from None
        coordinates, colors = [], []
        for point_id in sorted(points_in):
            where = f"{root}.points[{_short(point_id)}]"
            point = self.obj(points_in[point_id], where)
            coordinates.append(self.numbers(self.field(point, "coordinates", where), f"{where}.coordinates", 3))
            colors.append(self.numbers(self.field(point, "color", where), f"{where}.color", 3, 0.0, 255.0,
                                       "a list of 3 numbers in [0, 255]"))
        points = torch.tensor(coordinates, dtype=self.dtype).reshape(-1, 3)
        colors_t = torch.tensor(colors, dtype=self.dtype).reshape(-1, 3) / 255.0
        return OpenSfmReconstruction(shots, points, colors_t, self.reference(rec, root))

    def camera(self, cam, where: str):
        """``(K, width, height, distortion coefficients)`` of a perspective camera, checked."""
        cam = self.obj(cam, where)
        projection = cam.get("projection_type", "perspective")
        if not isinstance(projection, str):
            raise self.fail(f"{where}.projection_type", "a string", projection)
        if projection != "perspective":
            known = "OpenSfM's" if projection in _OTHER_PROJECTIONS else "an unknown"
            raise ValueError(f"{self.path}: {where}.projection_type is {known} {_short(projection)}; only "
                             "'perspective' cameras are read")
        width = self.size(self.field(cam, "width", where), f"{where}.width")
        height = self.size(self.field(cam, "height", where), f"{where}.height")
        focal = self.number(self.field(cam, "focal", where), f"{where}.focal", what="a positive finite number")
        if focal <= 0:
            raise self.fail(f"{where}.focal", "a positive finite number", focal)
        k1 = self.number(cam.get("k1", 0.0), f"{where}.k1")
        k2 = self.number(cam.get("k2", 0.0), f"{where}.k2")
        f = focal * max(width, height)
        if not math.isfinite(f):
            raise ValueError(f"{self.path}: {where}: focal * max(width, height) = {f} is not finite")
        K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=self.dtype)
        coeffs = torch.tensor([k1, k2, 0.0, 0.0, 0.0], dtype=self.dtype)
        return K, width, height, coeffs

    def reference(self, rec: dict, root: str) -> Tuple[float, float, float]:
        if "reference_lla" not in rec:
            return (0.0, 0.0, 0.0)
        where = f"{root}.reference_lla"
        lla = self.obj(rec["reference_lla"], where)
        return (self.number(self.field(lla, "latitude", where), f"{where}.latitude", -90.0, 90.0,
                            "a number in [-90, 90]"),
                self.number(self.field(lla, "longitude", where), f"{where}.longitude", -180.0, 180.0,
                            "a number in [-180, 180]"),
                self.number(self.field(lla, "altitude", where), f"{where}.altitude"))


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def lla_to_topocentric(lat: float, lon: float, alt: float, reference: Tuple[float, float, float]):
    """WGS84 latitude / longitude (degrees) / altitude to east-north-up metres about ``reference``."""
    def ecef(la, lo, h):
        a, e2 = 6378137.0, 6.69437999014e-3
        la, lo = math.radians(la), math.radians(lo)
        n = a / math.sqrt(1 - e2 * math.sin(la) ** 2)
        return ((n + h) * math.cos(la) * math.cos(lo), (n + h) * math.cos(la) * math.sin(lo),
                (n * (1 - e2) + h) * math.sin(la))

    x, y, z = ecef(lat, lon, alt)
    x0, y0, z0 = ecef(*reference)
    dx, dy, dz = x - x0, y - y0, z - z0
    la0, lo0 = math.radians(reference[0]), math.radians(reference[1])
    east = -math.sin(lo0) * dx + math.cos(lo0) * dy
    north = -math.sin(la0) * math.cos(lo0) * dx - math.sin(la0) * math.sin(lo0) * dy + math.cos(la0) * dz
    up = math.cos(la0) * math.cos(lo0) * dx + math.cos(la0) * math.sin(lo0) * dy + math.sin(la0) * dz
    return east, north, up
