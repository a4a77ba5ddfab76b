"""Minimal image reading / writing for the demo and tests (PNG / JPEG through Pillow)."""

from __future__ import annotations

import os

import numpy as np
import torch


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an 8-bit image as a float tensor ``[H, W, C]`` in [0, 1] (values as stored, no sRGB decode)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    return torch.from_numpy(arr.copy())


def write_image(path: str | os.PathLike, image: torch.Tensor) -> None:
    """Write ``image [H, W, C]`` (or ``[H, W]``) in [0, 1] as an 8-bit PNG / JPEG, clamping out-of-range values."""
    from PIL import Image

    arr = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    Image.fromarray(arr).save(path)
