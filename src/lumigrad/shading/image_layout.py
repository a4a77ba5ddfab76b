"""``image_strip``: tile a stack of images ``[N, H, W, C]`` into one contact sheet (frames of a sequence, views of a
turntable). Shared by :mod:`lumigrad.volume` (turntables) and :mod:`lumigrad.io` (sequence strips)."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .._checks import check_positive_int, check_tensor

__all__ = ["image_strip"]


def image_strip(images: torch.Tensor, columns: Optional[int] = None) -> torch.Tensor:
    """Tile images ``[N, H, W, C]`` row by row into one contact sheet ``[rows * H, columns * W, C]``.

    Image ``k`` lands at row ``k // columns``, column ``k % columns``; cells after the last image are zeros.

    Args:
        images: ``[N, H, W, C]``, any dtype and device, ``N >= 1``.
        columns: images per row; default ``ceil(sqrt(N))`` (a nearly square sheet); ``columns = N`` gives a
            single row. Capped at ``N``.

    Returns:
        ``[rows * H, columns * W, C]`` with ``rows = ceil(N / columns)``, same dtype and device.

    Example: 5 images of ``2 x 3`` pixels with ``columns=2`` give a ``6 x 6`` sheet (3 rows, the last half empty).

    **Differentiability:** a rearrangement: gradients flow back to ``images`` unchanged (zero for the padding).
    """
    check_tensor(images, "images", trailing=(None, None, None, None), max_dims=4)
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError(f"images must hold at least one image; got shape {tuple(images.shape)}")
    columns = math.ceil(math.sqrt(n)) if columns is None else check_positive_int(columns, "columns")
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    pad = rows * columns - n
    if pad:
        images = torch.cat([images, images.new_zeros(pad, h, w, c)])
    return images.reshape(rows, columns, h, w, c).permute(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)
