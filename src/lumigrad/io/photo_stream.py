"""``PhotoStream``: a photo capture whose photos are decoded when a view is asked for, not all up front.

``read_dataset(path, lazy=True)`` returns one. It holds the cameras (one batched :class:`~lumigrad.Camera`,
already at ``scale``), the photo paths and names, and a cache of decoded photos bounded in bytes
(least recently used photos are dropped first). ``stream[k]`` is view ``k``'s image ``[H, W, C]``;
``stream.views(indices)`` returns ``(images [K, H, W, C], camera[indices])`` for one optimisation step.
A view's image is exactly what the eager reader puts at its index: the same decode, dtype conversion and
resize (area averaging to shrink, bilinear to grow), done per photo.

Checked up front, without decoding: every photo is a regular image file inside its folder, and (from the
file's header, for the formats Pillow opens) has its camera's size. Checked when a photo is decoded: its
size (EXR / HDR) and its channels: the stream's channel count is that of the first view; a later photo
without alpha gains an opaque one when the first has alpha, and a photo with alpha in a stream whose first
view has none is refused with a ``ValueError`` naming it (the eager reader adds alpha to every view then;
read such a capture eagerly, or give every photo an alpha channel).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import List, Sequence, Tuple

import torch

from ..cameras.camera import Camera
from .dataset import ImageDataset, check_photo_size, rescale_views, stack_cameras, with_alpha

__all__ = ["PhotoStream"]


class PhotoStream:
    """Cameras and photo paths of a capture; photos decoded per view, through an LRU cache bounded in bytes.

    Attributes:
        camera: a :class:`Camera` batched over the ``N`` views, at the scaled size.
        names: the image names, as :class:`~lumigrad.io.dataset.ImageDataset` gives them.
        paths: the photo files.
        source_size: ``(width, height)`` of the photos as stored, before ``scale``.
        cache_bytes: the most bytes of decoded (scaled) images kept; 0 keeps none.
    """

    def __init__(self, source: Path, entries, *, scale: float = 1.0, dtype: torch.dtype = torch.float32,
                 cache_bytes: int = 1 << 30):
        if not (isinstance(cache_bytes, int) and cache_bytes >= 0):
            raise ValueError(f"cache_bytes must be an integer >= 0; got {cache_bytes!r}")
        self.source = Path(source)
        self.names: List[str] = [name for name, _, _ in entries]
        self.paths: List[Path] = [p for _, _, p in entries]
        self._cameras = [cam for _, cam, _ in entries]
        for name, cam, image_path in entries:
            size = _header_size(image_path)
            if size is not None:
                check_photo_size(self.source, name, cam, image_path, *size)
        camera = stack_cameras([cam.to(dtype=dtype) for cam in self._cameras])
        self.source_size: Tuple[int, int] = (camera.width, camera.height)
        self.scale = scale
        self.dtype = dtype
        self.cache_bytes = cache_bytes
        self._cache: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self._cached_bytes = 0
        self._channels = None
        self.camera = camera if scale == 1.0 else camera.resized(round(camera.width * scale),
                                                                 round(camera.height * scale))
        if scale != 1.0 and (self.camera.width < 1 or self.camera.height < 1):
            raise ValueError(f"scale={scale} shrinks {camera.width}x{camera.height} images below one pixel")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded images held now (at most :attr:`cache_bytes`)."""
        return self._cached_bytes

    def __getitem__(self, index: int) -> torch.Tensor:
        """View ``index``'s image ``[H, W, C]`` (``dtype``, at the scaled size), decoded unless cached."""
        n = len(self)
        if not (isinstance(index, int) and -n <= index < n):
            raise IndexError(f"view index must be an integer in [{-n}, {n}); got {index!r}")
        index %= n
        image = self._cache.get(index)
        if image is not None:
            self._cache.move_to_end(index)
            return image
        image = self._decode(index)
        self._remember(index, image)
        return image

    def views(self, indices: Sequence[int] | torch.Tensor) -> Tuple[torch.Tensor, Camera]:
        """``(images [K, H, W, C], camera[indices])`` of the views ``indices`` (a list or an integer tensor)."""
        index = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        if not index:
            raise ValueError("indices must name at least one view")
        images = torch.stack([self[i] for i in index])
        return images, self.camera[torch.tensor([i % len(self) for i in index], dtype=torch.long)]

    def load_all(self) -> ImageDataset:
        """Every view decoded into an :class:`~lumigrad.io.dataset.ImageDataset` (what ``lazy=False`` reads)."""
        images, _ = self.views(range(len(self)))
        return ImageDataset(images, self.camera, list(self.names), list(self.paths), self.source_size)

    # ------------------------------------------------------------------------------------------- internal
    def _decode(self, index: int) -> torch.Tensor:
        from .registry import load

        name, cam, image_path = self.names[index], self._cameras[index], self.paths[index]
        image = load(image_path)
        check_photo_size(self.source, name, cam, image_path, image.shape[1], image.shape[0])
        if self._channels is None:
            self._channels = image.shape[-1]
        if image.shape[-1] != self._channels:
            if self._channels != 4:
                raise ValueError(f"{image_path} has {image.shape[-1]} channels but the stream's first view has "
                                 f"{self._channels}; read this dataset with lazy=False, or give every photo the "
                                 "same channels")
            image = with_alpha(image)
        image = image.to(self.dtype)
        if self.scale != 1.0:
            image = rescale_views(image[None], self._cameras[index], self.scale)[0][0]
        return image

    def _remember(self, index: int, image: torch.Tensor) -> None:
        size = image.numel() * image.element_size()
        if size > self.cache_bytes:
            return
        while self._cache and self._cached_bytes + size > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.numel() * old.element_size()
        self._cache[index] = image
        self._cached_bytes += size


def _header_size(path: Path):
    """``(width, height)`` from the header of a photo Pillow opens, or None (EXR, HDR: checked on decode)."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, ValueError, SyntaxError):
        return None  # the decode reports it, as the eager reader does
