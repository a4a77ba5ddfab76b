"""OpenSfM ``reconstruction.json`` reader: cameras, shots and points converted to lumigrad conventions once.

OpenSfM (``doc/source/geometry.rst``): shot ``rotation`` (axis-angle) and ``translation`` map world to camera
(``x_cam = R x + t``) in an X right, Y down, Z forward camera frame, the same as lumigrad's. Perspective
cameras project to *normalized image coordinates* ``f d (x/z, y/z)`` with ``d = 1 + k1 r^2 + k2 r^4``, where
the normalized frame has its origin at the image centre and the larger image side spans 1. In lumigrad
pixels (centres at +0.5) that is ``u = W/2 + s x_n``, ``v = H/2 + s y_n`` with ``s = max(W, H)``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Dict, Tuple

import torch

from ..cameras.camera import Camera
from ..conventions import axis_angle_to_matrix, compose_world_to_cam


@dataclass
class OpenSfmReconstruction:
    shots: Dict[str, Camera]  # per image: K, world_to_cam and radial distortion (model "opencv": k1, k2)
    points: torch.Tensor  # [P, 3] world (topocentric) coordinates
    colors: torch.Tensor  # [P, 3] in [0, 1]
    reference_lla: Tuple[float, float, float]  # latitude, longitude (degrees), altitude (m) of the origin


def read_opensfm(path: str | os.PathLike, index: int = 0, dtype=torch.float64) -> OpenSfmReconstruction:
    """Read reconstruction ``index`` of an OpenSfM ``reconstruction.json`` (perspective cameras)."""
    with open(path, "r", encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of reconstructions")
    rec = data[index]
    shots = {}
    for name, shot in rec["shots"].items():
        cam = rec["cameras"][shot["camera"]]
        if cam.get("projection_type", "perspective") != "perspective":
            raise ValueError(f"{path}: camera {shot['camera']!r} has projection_type "
                             f"{cam['projection_type']!r}; only 'perspective' is supported")
        W, H = int(cam["width"]), int(cam["height"])
        f = float(cam["focal"]) * max(W, H)
        K = torch.tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]], dtype=dtype)
        R = axis_angle_to_matrix(torch.tensor(shot["rotation"], dtype=dtype))
        w2c = compose_world_to_cam(R, torch.tensor(shot["translation"], dtype=dtype))
        coeffs = torch.tensor([cam.get("k1", 0.0), cam.get("k2", 0.0), 0.0, 0.0, 0.0], dtype=dtype)
        shots[name] = Camera(K=K, world_to_cam=w2c, width=W, height=H, near=1e-3, far=1e6, distortion=coeffs)
    ids = sorted(rec["points"])
    points = torch.tensor([rec["points"][i]["coordinates"] for i in ids], dtype=dtype).reshape(-1, 3)
    colors = torch.tensor([rec["points"][i]["color"] for i in ids], dtype=dtype).reshape(-1, 3) / 255.0
    lla = rec.get("reference_lla", {"latitude": 0.0, "longitude": 0.0, "altitude": 0.0})
    return OpenSfmReconstruction(shots, points, colors, (lla["latitude"], lla["longitude"], lla["altitude"]))


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
