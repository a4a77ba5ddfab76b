"""Datasets: a folder of photos with their cameras, read from any camera format lumigrad knows.

``read_dataset(path)`` returns an :class:`ImageDataset`: the images stacked ``[N, H, W, C]``, one batched
:class:`~lumigrad.Camera` with a view per image, and the image names. The cameras come from:

- a NeRF ``transforms.json`` (or a folder holding one): images at each frame's ``file_path``;
- a COLMAP project folder (``sparse/0``, ``sparse`` or the model folder itself) with the photos in
  ``images/`` beside it (or ``image_dir``);
- an OpenSfM ``reconstruction.json`` with the photos in ``images/`` beside it;
- a glTF / GLB file whose cameras name the photos: camera ``"front"`` looks for ``front.png`` / ``.jpg`` in
  ``image_dir`` (default: the file's folder); glTF stores no image size, so the photo's size is the
  camera's (its aspect ratio must match the camera's).

Every image must have its camera's size. ``scale`` resizes images and cameras together (area averaging for
a reduction; ``K``'s first two rows times ``scale``, which is exact for lumigrad's corner-origin pixel
coordinates); an image whose size disagrees with its camera is refused with both sizes in the message,
since a silently stretched image would bias every recovered parameter.

Photos (and depth maps) are looked up only inside their folder: a name from the camera file (a NeRF
``file_path``, a COLMAP / OpenSfM image name, a glTF camera name) that is absolute, climbs out with ``../`` or
is a symbolic link pointing outside raises :class:`~lumigrad.io._paths.ConfinementError` (a ``ValueError``),
unless ``trust_paths=True``; only regular files are opened.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..cameras.camera import Camera
from ._paths import check_regular_file, confined_path

__all__ = ["ImageDataset", "read_dataset", "read_depth_maps", "stack_cameras"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr")


@dataclass
class ImageDataset:
    """Photos and the cameras that took them.

    Attributes:
        images: ``[N, H, W, C]`` float images (8-bit formats in [0, 1], as stored: no sRGB decode); an alpha
            channel, when the files have one, is the object mask.
        camera: a :class:`Camera` batched over the ``N`` views, of size ``W x H``.
        names: the image names (file names for COLMAP / OpenSfM, ``file_path`` for NeRF, camera names for glTF).
        paths: the photo files.
        source_size: ``(width, height)`` of the photos as stored, before ``scale``.
    """

    images: torch.Tensor
    camera: Camera
    names: List[str]
    paths: List[Path]
    source_size: Tuple[int, int]

    def __len__(self) -> int:
        return self.images.shape[0]


def read_dataset(path: str | os.PathLike, *, image_dir: Optional[str | os.PathLike] = None, scale: float = 1.0,
                 views: Optional[Sequence[int]] = None, dtype: torch.dtype = torch.float32,
                 trust_paths: bool = False, lazy: bool = False, cache_bytes: int = 1 << 30):
    """Read photos and their cameras; see the module docstring for the layouts understood.

    Args:
        path: ``transforms.json``, a COLMAP project or model folder, an OpenSfM ``reconstruction.json`` or
            a glTF / GLB file with cameras.
        image_dir: where the photos are, when not where the format says.
        scale: resize factor applied to images and cameras alike (e.g. ``0.25`` for quarter-size photos).
        views: indices of the views to keep (default: all).
        dtype: floating dtype of images and cameras.
        trust_paths: accept photo names (and the camera file's own references) that are absolute or lead
            outside their folder; only for datasets you trust.
        lazy: return a :class:`~lumigrad.io.photo_stream.PhotoStream` that keeps the photo paths and the
            cameras and decodes a photo when a view is asked for (``docs/datasets.md``), instead of decoding
            every photo now.
        cache_bytes: with ``lazy``, the most bytes of decoded photos the stream keeps (least recently used
            ones are dropped first).

    Returns:
        an :class:`ImageDataset`, or with ``lazy=True`` a :class:`~lumigrad.io.photo_stream.PhotoStream`.

    Raises:
        FileNotFoundError: ``path`` or a photo is missing.
        ValueError: no cameras, photos of different sizes, a photo whose size is not its camera's, a
            corrupt photo, a bad ``scale`` or ``views``.
        ConfinementError: (a ``ValueError``) a photo name outside its folder, or a photo that is not a
            regular file.
    """
    path = Path(path)
    entries = checked_entries(path, image_dir, scale, views, trust_paths)
    if lazy:
        from .photo_stream import PhotoStream

        return PhotoStream(path, entries, scale=scale, dtype=dtype, cache_bytes=cache_bytes)
    from .registry import load

    images, cameras, names, paths = [], [], [], []
    for name, cam, image_path in entries:
        image = load(image_path)
        check_photo_size(path, name, cam, image_path, image.shape[1], image.shape[0])
        images.append(image)
        cameras.append(cam.to(dtype=dtype))
        names.append(name)
        paths.append(image_path)
    channels = {im.shape[-1] for im in images}
    if len(channels) > 1:
        images = [with_alpha(im) for im in images]
    stacked = torch.stack(images).to(dtype)
    camera = stack_cameras(cameras)
    source_size = (camera.width, camera.height)
    if scale != 1.0:
        stacked, camera = rescale_views(stacked, camera, scale)
    return ImageDataset(stacked, camera, names, paths, source_size)


def checked_entries(path: Path, image_dir, scale, views, trust_paths: bool):
    """``[(name, unbatched Camera, photo path)]`` of the chosen views, the photos checked to be regular image
    files inside their folder and the cameras to share one size; nothing is decoded."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file or folder")
    if not (isinstance(scale, (int, float)) and 0 < scale <= 16):
        raise ValueError(f"scale must be a number in (0, 16]; got {scale!r}")
    entries = _camera_entries(path, None if image_dir is None else Path(image_dir), trust_paths)
    if not entries:
        raise ValueError(f"{path}: the dataset has no cameras")
    if views is not None:
        bad = [v for v in views if not (isinstance(v, int) and -len(entries) <= v < len(entries))]
        if bad or not views:
            raise ValueError(f"views must be a non-empty list of indices below {len(entries)}; got {list(views)}")
        entries = [entries[v] for v in views]
    for name, cam, image_path in entries:
        try:
            check_regular_file(image_path, source=path, what=f"the photo of view {name!r}")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: the photo of view {name!r} is missing: {image_path}") from None
        if image_path.suffix.lower() not in _IMAGE_SUFFIXES:  # never a mesh or a json read as a photo
            raise ValueError(f"{path}: the photo of view {name!r} is {image_path.name}, not an image file "
                             f"({', '.join(_IMAGE_SUFFIXES)})")
    sizes = {(cam.width, cam.height) for _, cam, _ in entries}
    if len(sizes) > 1:
        raise ValueError(f"{path}: the views have different image sizes {sorted(sizes)}; lumigrad batches views "
                         "of one size: pick views of one size with views=")
    return entries


def check_photo_size(path: Path, name: str, cam: Camera, image_path: Path, w: int, h: int) -> None:
    """Refuse a ``w x h`` photo whose camera has another size (naming both)."""
    if (w, h) != (cam.width, cam.height):
        raise ValueError(f"{image_path} is {w}x{h} pixels but its camera ({name!r} in {path.name}) is "
                         f"{cam.width}x{cam.height}: the photos must be the size the cameras were calibrated "
                         f"at (use scale= to resize both together)")


def read_depth_maps(dataset: ImageDataset, folder: str | os.PathLike, depth_scale: float = 1.0, *,
                    trust_paths: bool = False) -> torch.Tensor:
    """Depth maps of a dataset's views, ``[N, H, W, 1]`` camera-frame z at the dataset's (scaled) size.

    View ``k``'s map is ``folder / <photo stem>`` with suffix ``.npy`` (2-D array), ``.exr`` (first channel)
    or ``.png`` (16-bit, as RGB-D sensors store millimetres: pass ``depth_scale=0.001``), multiplied by
    ``depth_scale``. Values ``<= 0`` or non-finite mark pixels without a measurement (losses skip them). A
    map must have the photo's size as stored; it is resized with the photos by nearest neighbour, so depths
    of different surfaces are never averaged. A map that is a symbolic link pointing outside ``folder`` is
    refused (``ConfinementError``) unless ``trust_paths=True``; only regular files are read.

    Raises:
        FileNotFoundError: a view has no depth map.
        ValueError: a map of the wrong size or an unreadable one, a bad ``depth_scale``.
    """
    folder = Path(folder)
    if not (isinstance(depth_scale, (int, float)) and math.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth_scale must be a finite number > 0; got {depth_scale!r}")
    maps = []
    for photo in dataset.paths:
        found = None
        for suffix in (".npy", ".exr", ".png"):
            candidate = folder / f"{photo.stem}{suffix}"
            if candidate.exists():
                confined_path(folder, candidate.name, source=folder, what="depth map", trusted=trust_paths)
                check_regular_file(candidate, source=folder, what="depth map")
                found = candidate
                break
        if found is None:
            raise FileNotFoundError(f"no depth map for {photo.name} in {folder} (looked for {photo.stem}.npy, .exr, "
                                    ".png)")
        depth = _read_depth_map(found, dataset.source_size)
        maps.append(depth * depth_scale)
    depth = torch.stack(maps)[:, None]
    depth = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))
    size = (dataset.camera.height, dataset.camera.width)
    if depth.shape[-2:] != size:
        depth = torch.nn.functional.interpolate(depth, size=size, mode="nearest-exact")
    return depth[:, 0, ..., None].to(dataset.images.dtype)


def stack_cameras(cameras: Sequence[Camera]) -> Camera:
    """One :class:`Camera` batched over unbatched cameras of one size, projection and distortion model (thin
    lenses: all or none, each view keeping its aperture and focus)."""
    first = cameras[0]
    for k, c in enumerate(cameras):
        if (c.width, c.height, c.projection, c.distortion_model) != (first.width, first.height, first.projection,
                                                                      first.distortion_model):
            raise ValueError(f"cameras[{k}] differs from cameras[0] in size, projection or distortion model")
        if (c.distortion is None) != (first.distortion is None):
            raise ValueError(f"cameras[{k}] and cameras[0] disagree on having lens distortion")
        if c.thin_lens != first.thin_lens:
            raise ValueError(f"cameras[{k}] and cameras[0] disagree on having a thin lens")
    dist = None if first.distortion is None else torch.stack([c.distortion for c in cameras])
    lens = {}
    if first.thin_lens:
        lens = {name: torch.stack([getattr(c, name) for c in cameras]) for name in ("aperture_radius", "focus_distance")}
    return Camera(torch.stack([c.K for c in cameras]), torch.stack([c.world_to_cam for c in cameras]), first.width,
                  first.height, min(c.near for c in cameras), max(c.far for c in cameras), dist,
                  first.distortion_model, projection=first.projection, **lens)


def rescale_views(images: torch.Tensor, camera: Camera, scale: float):
    """``images [N, H, W, C]`` and ``camera`` resized by ``scale`` (area averaging to shrink, bilinear to grow)."""
    w, h = round(camera.width * scale), round(camera.height * scale)
    if w < 1 or h < 1:
        raise ValueError(f"scale={scale} shrinks {camera.width}x{camera.height} images below one pixel")
    mode = "area" if scale < 1 else "bilinear"
    resized = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2), size=(h, w), mode=mode)
    return resized.permute(0, 2, 3, 1).contiguous(), camera.resized(w, h)


def with_alpha(image: torch.Tensor) -> torch.Tensor:
    if image.shape[-1] == 4:
        return image
    return torch.cat([image[..., :3], torch.ones_like(image[..., :1])], -1)


def _photo(folder: Path, name: str, source: Path, view: str, trusted: bool) -> Path:
    """``folder / name`` for the photo of ``view``, refused when ``name`` leads outside ``folder``."""
    confined_path(folder, name, source=source, what=f"the photo of view {view!r}", trusted=trusted)
    return folder / name


def _camera_entries(path: Path, image_dir: Optional[Path], trust_paths: bool = False):
    """``[(name, unbatched Camera, image path)]`` in the format's view order."""
    if path.is_dir():
        if (path / "transforms.json").is_file():
            confined_path(path, "transforms.json", source=path, what="transforms.json", trusted=trust_paths)
            return _camera_entries(path / "transforms.json", image_dir, trust_paths)
        return _colmap_entries(path, image_dir, trust_paths)
    suffix = path.suffix.lower()
    if suffix in (".gltf", ".glb"):
        return _gltf_entries(path, image_dir, trust_paths)
    if suffix == ".json":
        from .registry import load

        rec = load(path, trust_paths=trust_paths)
        if hasattr(rec, "image_paths"):  # NeRF: file_path is confined to the json's folder by the reader
            if image_dir is None:
                return list(zip(rec.file_paths, rec.cameras, rec.image_paths))
            return [(fp, cam, _photo(image_dir, Path(ip).name, path, fp, trust_paths))
                    for fp, cam, ip in zip(rec.file_paths, rec.cameras, rec.image_paths)]
        folder = image_dir or path.parent / "images"  # OpenSfM
        return [(name, cam, _photo(folder, name, path, name, trust_paths)) for name, cam in sorted(rec.shots.items())]
    raise ValueError(f"{path}: not a dataset; give a transforms.json, an OpenSfM reconstruction.json, a glTF file "
                     "with cameras or a COLMAP project folder")


def _colmap_entries(folder: Path, image_dir: Optional[Path], trust_paths: bool = False):
    from .colmap import read_colmap

    candidates = [folder / "sparse" / "0", folder / "sparse", folder]
    model = next((c for c in candidates if (c / "cameras.txt").is_file() or (c / "cameras.bin").is_file()), None)
    if model is None:
        raise FileNotFoundError(f"{folder}: no transforms.json and no COLMAP model (looked for cameras.txt / "
                                f".bin in {', '.join(str(c) for c in candidates)})")
    rec = read_colmap(model, trust_paths=trust_paths)
    if image_dir is None:
        # images/ beside the model: in the project folder, or up to two levels above a model folder given
        # directly (project/sparse/0 -> project/images); never further up the file system.
        near = [folder, *[d for d in (model.parent, model.parent.parent) if d != model]]
        image_dir = next((d / "images" for d in dict.fromkeys(near) if (d / "images").is_dir()), folder / "images")
    source = model / ("images.bin" if (model / "images.bin").is_file() else "images.txt")
    return [(name, cam, _photo(image_dir, name, source, name, trust_paths)) for name, cam in rec.cameras.items()]


def _gltf_entries(path: Path, image_dir: Optional[Path], trust_paths: bool = False):
    from .gltf import read_gltf

    scene = read_gltf(path, trust_paths=trust_paths)
    folder = image_dir or path.parent
    out = []
    for name, cam in scene.cameras.items():
        found = _find_image(folder, name, path, trust_paths)
        if found is None:
            out.append((name, cam, _photo(folder, f"{name}.png", path, name, trust_paths)))
            continue
        # glTF stores a field of view and an aspect ratio, not a size: the photo gives the size.
        from PIL import Image

        check_regular_file(found, source=path, what=f"the photo of camera {name!r}")
        try:
            with Image.open(found) as im:
                w, h = im.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{found}: not a readable image ({exc})") from None
        if abs(w / h - cam.width / cam.height) > 0.01 * cam.width / cam.height:
            raise ValueError(f"{found} is {w}x{h} pixels (aspect {w / h:.4f}) but camera {name!r} of {path.name} "
                             f"has aspect ratio {cam.width / cam.height:.4f}")
        out.append((name, cam.resized(w, h), found))
    return out


def _find_image(folder: Path, stem: str, source: Path, trust_paths: bool) -> Optional[Path]:
    for suffix in _IMAGE_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.exists():
            return _photo(folder, f"{stem}{suffix}", source, stem, trust_paths)
    return None


def _read_depth_map(found: Path, size: Tuple[int, int]) -> torch.Tensor:
    """One depth map ``[H, W]`` float32; its size (as ``(W, H)``) is checked against the photo's from the file's
    header, before the values are read, so a small file that would decode to a huge array is refused."""

    def check_shape(shape) -> None:
        if len(shape) != 2 or (shape[1], shape[0]) != size:
            raise ValueError(f"{found} has shape {tuple(shape)} but its photo is {size[0]}x{size[1]}: a depth map "
                             "is one value per photo pixel")

    try:
        if found.suffix == ".npy":
            array = np.load(found, allow_pickle=False, mmap_mode="r")
            check_shape(array.shape)
            return torch.from_numpy(np.array(array, dtype=np.float32))
        if found.suffix == ".exr":
            from .exr import read_exr

            depth = read_exr(found)[..., 0]  # read_exr checks the pixel budget before decoding
        else:
            from PIL import Image

            with Image.open(found) as im:
                check_shape((im.size[1], im.size[0]))
                depth = torch.from_numpy(np.asarray(im, dtype=np.float32).copy())
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(found)):
            raise
        raise ValueError(f"{found}: not a readable depth map ({exc})") from None
    check_shape(tuple(depth.shape))
    return depth
