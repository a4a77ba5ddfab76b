"""NeRF / instant-ngp / nerfstudio ``transforms.json``, read and written in lumigrad conventions.

The format (original NeRF's Blender scenes, instant-ngp's ``colmap2nerf.py``, nerfstudio's data parser):

* ``frames[i].transform_matrix``: the camera-to-world pose ``[4, 4]`` (or ``[3, 4]``) of an OpenGL camera
  (x right, y up, looking down -z); :func:`~lumigrad.conventions.opengl_c2w_to_world_to_cam` converts it.
* Intrinsics, at the top level or per frame (nerfstudio; a frame's keys override the top level's):
  ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` in pixels, or ``camera_angle_x`` (the full horizontal
  field of view in radians; optional ``camera_angle_y``), with the principal point at the image centre
  (:func:`~lumigrad.conventions.nerf_to_camera_params`). A missing focal length copies the other one.
* Pixel centres: nerfstudio and instant-ngp cast rays through ``pixel + 0.5`` and take ``cx, cy`` from
  COLMAP unchanged, so the values carry over to lumigrad as they are; ``camera_angle_x`` puts the principal
  point at ``(W/2, H/2)``, the exact image centre, as ``nerf_to_camera_params`` does. The original NeRF code
  casts rays through integer pixel indices; its renders are offset by half a pixel from ours and nothing
  here corrects that (``docs/conventions.md``).
* Distortion: ``camera_model`` ``"OPENCV"`` (the default) reads ``k1, k2, p1, p2, k3`` as lumigrad's
  ``"opencv"`` coefficients (a non-zero ``k4``, nerfstudio's ``r^8`` term, is refused);
  ``"OPENCV_FISHEYE"`` (or instant-ngp's ``"is_fisheye": true``) reads ``k1..k4`` as ``"fisheye"``.
  Files without any distortion key give cameras without distortion.
* Image files: ``file_path`` is resolved against the json's folder and must stay inside it (an absolute path,
  a ``../`` escape or a symbolic link pointing outside raises :class:`~lumigrad.io._paths.ConfinementError`,
  a ``ValueError``, unless ``trust_paths=True``); only regular files are opened. The json itself is parsed
  with a bound on its nesting depth, and every error is one ``ValueError`` naming the file and the frame.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ..cameras.camera import Camera
from ._export_checks import exportable_K
from ._paths import check_regular_file, confined_path, parse_json, short_text
from ..conventions import camera_params_to_nerf, nerf_to_camera_params, opengl_c2w_to_world_to_cam

__all__ = ["NerfTransforms", "read_nerf_transforms", "write_nerf_transforms"]

_INTRINSIC_KEYS = ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_PERSPECTIVE = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "PERSPECTIVE")


@dataclass
class NerfTransforms:
    cameras: List[Camera]  # one unbatched Camera per frame, in the file's frame order
    image_paths: List[Path]  # per frame: file_path resolved against the json's folder (".png" added if needed)
    file_paths: List[str]  # per frame: file_path exactly as written in the json


def read_nerf_transforms(path: str | os.PathLike, dtype=torch.float64, near: float = 1e-3,
                         far: float = 1e6, *, trust_paths: bool = False) -> NerfTransforms:
    """Read a NeRF-style ``transforms.json`` into lumigrad cameras.

    Image size comes from ``w`` / ``h``; without them the first frame's image is opened with Pillow (a
    ``file_path`` without an extension, as in the Blender scenes, tries ``.png``); if that fails too the
    reader asks for ``w`` and ``h``.

    Args:
        path: the json file.
        dtype: floating dtype of ``K``, ``world_to_cam`` and ``distortion``.
        near, far: depth range given to every ``Camera`` (the format stores none).
        trust_paths: accept ``file_path`` values that are absolute or lead outside the json's folder (only
            for files you trust; by default they are refused).

    Returns:
        a :class:`NerfTransforms` with parallel lists ``cameras`` (``K [3, 3]``, ``world_to_cam [4, 4]``,
        optional ``distortion [5]`` / ``[4]``), ``image_paths`` and ``file_paths``, in frame order.

    Raises:
        FileNotFoundError: no such json file.
        ValueError: malformed or too deeply nested json, malformed frames, missing intrinsics or image size,
            or an unsupported ``camera_model`` (the message names the file and the frame).
        ConfinementError: (a ``ValueError``) a ``file_path`` outside the json's folder, or an image that is not
            a regular file.

    Example:
        >>> import json, tempfile, os
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "transforms.json")
        ...     with open(p, "w") as fh:
        ...         json.dump({"camera_angle_x": 2 * math.atan(0.5), "w": 64, "h": 48, "frames": [
        ...             {"file_path": "./r_0", "transform_matrix": torch.eye(4).tolist()}]}, fh)
        ...     cams = read_nerf_transforms(p).cameras
        >>> [round(v, 9) for v in cams[0].K[0].tolist()]   # fx = 0.5 W / tan(angle_x / 2); cx = W / 2
        [64.0, 0.0, 32.0]
    """
    path = Path(path)
    with open(path, "rb") as fh:
        meta = parse_json(fh.read(), source=path)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'frames' list")
    if not meta["frames"]:
        raise ValueError(f"{path}: 'frames' is empty")
    top = {k: v for k, v in meta.items() if k != "frames"}
    cameras, image_paths, file_paths = [], [], []
    first_size = None
    for i, frame in enumerate(meta["frames"]):
        where = f"{path}: frames[{i}]"
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise ValueError(f"{where} needs 'file_path' and 'transform_matrix'")
        if not isinstance(frame["file_path"], str):
            raise ValueError(f"{where}: file_path must be a string; got {_kind(frame['file_path'])}")
        p = {**top, **frame}
        image = _resolve_image(path, i, frame["file_path"], trust_paths)
        try:
            c2w = torch.tensor(frame["transform_matrix"], dtype=dtype)
        except (TypeError, ValueError, RuntimeError, OverflowError, RecursionError):
            raise ValueError(f"{where}: transform_matrix is not a numeric matrix") from None
        if c2w.shape not in ((4, 4), (3, 4)) or not bool(torch.isfinite(c2w).all()):
            raise ValueError(f"{where}: transform_matrix must be a finite 4x4 or 3x4 matrix; got shape "
                             f"{tuple(c2w.shape)}")
        if c2w.shape[0] == 3:
            c2w = torch.cat([c2w, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=dtype)])
        if "w" in p and "h" in p:
            W, H = _pixels(p, "w", where), _pixels(p, "h", where)
        else:
            if first_size is None:
                first_size = _image_size(image, where)
            W = _pixels(p, "w", where) if "w" in p else first_size[0]
            H = _pixels(p, "h", where) if "h" in p else first_size[1]
        K, w2c = _intrinsics_and_pose(p, c2w, W, H, where)
        coeffs, model = _distortion(p, where, dtype)
        try:
            cameras.append(Camera(K=K, world_to_cam=w2c, width=W, height=H, near=near, far=far,
                                  distortion=coeffs, distortion_model=model))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        image_paths.append(image)
        file_paths.append(frame["file_path"])
    return NerfTransforms(cameras, image_paths, file_paths)


def _kind(value) -> str:
    """What a JSON value is, for messages that must not quote it."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _resolve_image(json_path: Path, index: int, file_path: str, trusted: bool) -> Path:
    """``json folder / file_path``, refused when it leads outside the folder (unless ``trusted``)."""
    folder, what = json_path.parent, f"frames[{index}].file_path"
    confined_path(folder, file_path, source=json_path, what=what, trusted=trusted)
    image = folder / file_path
    if not image.suffix and not image.exists():  # NeRF's Blender scenes write "./train/r_0" for r_0.png
        png = confined_path(folder, file_path + ".png", source=json_path, what=what, trusted=trusted)
        if png.exists():
            return image.with_name(image.name + ".png")
    return image


def _image_size(image: Path, where: str):
    try:
        check_regular_file(image, source=where, what="image")
    except FileNotFoundError:
        raise ValueError(f"{where}: the json gives no image size and {image} does not exist; add 'w' and 'h' "
                         "(pixels) to the json or to each frame") from None
    from PIL import Image

    try:
        with Image.open(image) as im:
            return im.size  # (W, H)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{where}: cannot read {image} to find the image size ({type(exc).__name__}); add 'w' "
                         "and 'h' to the json") from None


def _number(p: dict, key: str, where: str) -> float:
    value = p[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: {key} must be a number; got {_kind(value)}")
    try:
        v = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{where}: {key} must be a number; got a string that is not one") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {key} must be finite; got {v}")
    return v


def _pixels(p: dict, key: str, where: str) -> int:
    v = _number(p, key, where)
    if v < 1 or v != int(v):
        raise ValueError(f"{where}: {key} must be a positive whole number of pixels; got {v}")
    return int(v)


def _intrinsics_and_pose(p: dict, c2w: torch.Tensor, W: int, H: int, where: str):
    if "fl_x" in p or "fl_y" in p:
        fx = _number(p, "fl_x" if "fl_x" in p else "fl_y", where)
        fy = _number(p, "fl_y" if "fl_y" in p else "fl_x", where)
        cx = _number(p, "cx", where) if "cx" in p else 0.5 * W
        cy = _number(p, "cy", where) if "cy" in p else 0.5 * H
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=c2w.dtype)
        return K, opengl_c2w_to_world_to_cam(c2w)
    if "camera_angle_x" not in p and "camera_angle_y" not in p:
        raise ValueError(f"{where}: no focal length: give 'fl_x' / 'fl_y' (pixels) or 'camera_angle_x' (radians)")
    if "camera_angle_x" in p:
        K, w2c = nerf_to_camera_params(c2w, _number(p, "camera_angle_x", where), W, H)
    else:  # only the vertical field of view: square pixels, as instant-ngp does
        fy = 0.5 * H / math.tan(0.5 * _number(p, "camera_angle_y", where))
        K, w2c = nerf_to_camera_params(c2w, 2 * math.atan(0.5 * W / fy), W, H)
    if "camera_angle_y" in p:
        K[1, 1] = 0.5 * H / math.tan(0.5 * _number(p, "camera_angle_y", where))
    if "cx" in p:
        K[0, 2] = _number(p, "cx", where)
    if "cy" in p:
        K[1, 2] = _number(p, "cy", where)
    return K, w2c


def _distortion(p: dict, where: str, dtype):
    model = p.get("camera_model", "OPENCV_FISHEYE" if p.get("is_fisheye") else "OPENCV")
    if not isinstance(model, str):
        raise ValueError(f"{where}: camera_model must be a string; got {_kind(model)}")
    model = model.upper()
    k = {key: _number(p, key, where) if key in p else 0.0 for key in _DISTORTION_KEYS}
    if model == "OPENCV_FISHEYE":
        if k["p1"] or k["p2"]:
            raise ValueError(f"{where}: camera_model OPENCV_FISHEYE has no tangential terms; got p1={k['p1']}, "
                             f"p2={k['p2']}")
        return torch.tensor([k["k1"], k["k2"], k["k3"], k["k4"]], dtype=dtype), "fisheye"
    if model not in _PERSPECTIVE:
        raise ValueError(f"{where}: camera_model {short_text(model)} is not supported (OPENCV, OPENCV_FISHEYE, "
                         "PINHOLE)")
    if not any(key in p for key in _DISTORTION_KEYS):
        return None, "opencv"
    if k["k4"]:
        raise ValueError(f"{where}: k4 = {k['k4']} (nerfstudio's r^8 radial term) has no counterpart in "
                         "lumigrad's 'opencv' model (k1, k2, p1, p2, k3)")
    return torch.tensor([k["k1"], k["k2"], k["p1"], k["p2"], k["k3"]], dtype=dtype), "opencv"


def write_nerf_transforms(path: str | os.PathLike, cameras: Sequence[Camera],
                          image_paths: Sequence[str | os.PathLike]) -> None:
    """Write cameras as a nerfstudio-style ``transforms.json`` that :func:`read_nerf_transforms` reads back.

    Every frame gets ``fl_x, fl_y, cx, cy, w, h`` (and ``camera_angle_x`` for the original NeRF loaders);
    cameras with distortion add ``camera_model`` and ``k1, k2, p1, p2, k3`` (``"opencv"``) or ``k1..k4``
    (``"fisheye"``). Keys with one value across all frames go to the top level, the rest per frame.
    Floats are written with ``repr``, so values round-trip float64 exactly.

    Args:
        path: the json file to write (its folder must exist).
        cameras: unbatched cameras without skew, one per frame.
        image_paths: one per camera; written relative to the json's folder when possible. Images outside
            that folder are written as ``../`` (or absolute) paths, which :func:`read_nerf_transforms` reads
            back only with ``trust_paths=True``.

    Raises:
        ValueError: lengths differ, a camera is batched or has skew.
    """
    path = Path(path)
    if len(cameras) != len(image_paths):
        raise ValueError(f"cameras and image_paths must have the same length; got {len(cameras)} and "
                         f"{len(image_paths)}")
    per_frame: List[Dict] = []
    for i, cam in enumerate(cameras):
        K = exportable_K(cam, f"cameras[{i}]", "transforms.json")
        c2w, angle_x = camera_params_to_nerf(K, cam.world_to_cam.detach().cpu().double(), cam.width)
        d = {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
             "w": cam.width, "h": cam.height, "camera_angle_x": angle_x}
        if cam.distortion is not None:
            c = [float(v) for v in cam.distortion.detach().cpu().double()]
            if cam.distortion_model == "fisheye":
                d.update(camera_model="OPENCV_FISHEYE", k1=c[0], k2=c[1], k3=c[2], k4=c[3])
            else:
                d.update(camera_model="OPENCV", k1=c[0], k2=c[1], p1=c[2], p2=c[3], k3=c[4])
        try:
            rel = os.path.relpath(os.path.abspath(image_paths[i]), os.path.abspath(path.parent))
            file_path = Path(rel).as_posix()
        except ValueError:  # another drive on Windows
            file_path = Path(os.path.abspath(image_paths[i])).as_posix()
        per_frame.append((d, {"file_path": file_path, "transform_matrix": c2w.tolist()}))
    keys = sorted({k for d, _ in per_frame for k in d})
    shared = {k for k in keys if all(k in d for d, _ in per_frame) and
              len({json.dumps(d[k]) for d, _ in per_frame}) == 1}
    out = {k: per_frame[0][0][k] for k in keys if k in shared} if per_frame else {}
    out["frames"] = [{**frame, **{k: v for k, v in d.items() if k not in shared}} for d, frame in per_frame]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
