"""Target photos of a fit decoded per step (``[data] stream = true``): what the fit reads of ``Problem.targets``
without holding every photo.

:class:`StreamedTargets` wraps a :class:`~lumigrad.io.PhotoStream` and answers the few things a fit asks of
its targets: their count and shape, dtype and device, and the images of some views (``targets[index]``,
``targets[:n, ..., :3]``), decoded (or taken from the stream's byte-bounded cache) and moved to the fit's
device. A step's views are then the only photos in memory beside the cache.
"""

from __future__ import annotations

import hashlib
from typing import List, Sequence, Tuple

import torch

from ..io.photo_stream import PhotoStream

__all__ = ["StreamedTargets"]


class StreamedTargets:
    """``[N, H, W, C]`` target images read from a :class:`~lumigrad.io.PhotoStream` view by view.

    Indexing takes the views first: an int, a slice, a list or an integer tensor of view indices, optionally
    followed (in a tuple) by indices of the image axes, e.g. ``targets[:4, ..., :3]``.
    """

    def __init__(self, stream: PhotoStream, device: torch.device = torch.device("cpu")):
        if not isinstance(stream, PhotoStream):
            raise TypeError(f"stream must be a lumigrad.io.PhotoStream; got {type(stream).__name__}")
        self.stream = stream
        self.device = torch.device(device)
        first = stream[0]  # fixes the stream's channels (alpha or not) before any step
        self.shape = torch.Size((len(stream),) + tuple(first.shape))
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device) -> "StreamedTargets":
        """The same stream delivering its views on ``device``."""
        moved = object.__new__(StreamedTargets)
        moved.stream, moved.shape, moved.dtype, moved.device = self.stream, self.shape, self.dtype, torch.device(device)
        return moved

    def views(self, index: Sequence[int]) -> torch.Tensor:
        """``[K, H, W, C]`` images of the views ``index``, on :attr:`device`."""
        return torch.stack([self.stream[int(i)] for i in index]).to(self.device)

    def __getitem__(self, key) -> torch.Tensor:
        rest: Tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if key is Ellipsis:
            key, rest = slice(None), (Ellipsis,) + rest
        if isinstance(key, int) and not isinstance(key, bool):
            image = self.views([range(len(self))[key]])[0]
        else:
            image = self.views(self._indices(key))
        return image[rest] if rest else image

    def digest(self) -> str:
        """SHA-256 of the photo files' bytes, names, scale and dtype: equal on two ranks that read the same data."""
        h = hashlib.sha256(f"{self.stream.scale} {self.dtype} {tuple(self.shape)}".encode())
        for name, path in zip(self.stream.names, self.stream.paths):
            h.update(name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        return h.hexdigest()

    def _indices(self, key) -> List[int]:
        n = len(self)
        if isinstance(key, slice):
            return list(range(n)[key])
        if isinstance(key, torch.Tensor):
            if key.dtype == torch.bool:
                return torch.nonzero(key.cpu()).flatten().tolist()
            key = key.cpu().tolist()
        index = list(key)
        if any(isinstance(i, bool) or not isinstance(i, int) or not -n <= i < n for i in index):
            raise IndexError(f"view indices must be integers in [{-n}, {n}); got {index[:8]}")
        return [i % n for i in index]
