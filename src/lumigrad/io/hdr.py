"""Radiance RGBE (``.hdr``) images: read (flat and run-length encoded scanlines) and write.

Format (Greg Ward's Radiance, as written by Photoshop, Poly Haven and most HDR tools): a text header starting
with ``#?RADIANCE`` or ``#?RGBE``, ``FORMAT=32-bit_rle_rgbe`` (XYZE is refused), an empty line, the resolution
line ``-Y H +X W`` (rows top to bottom, columns left to right; other orientations are refused), then ``H``
scanlines of ``W`` pixels, each a shared-exponent RGBE quadruple: ``value = mantissa * 2^(e - 136)`` (``e = 0``
is black). New-style scanlines start with ``2 2 W_hi W_lo`` and hold the four channels one after another,
each run-length encoded (a count byte above 128 repeats the next byte ``count - 128`` times, otherwise
``count`` literal bytes follow).

Malformed files raise ``ValueError`` naming the file and what is wrong: a truncated file, runs that overflow a
scanline. The declared size is checked on the header, before anything is allocated, against the pixel budget
of :mod:`lumigrad.limits` (:class:`lumigrad.limits.BudgetError`, 2^26 pixels unless raised) or an explicit
``max_pixels``.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from ..limits import BudgetError, check_pixel_samples

MAX_PIXELS = 1 << 28  # kept for callers that passed it explicitly; the default is lumigrad's pixel budget


def check_image_size(path, width: int, height: int, max_pixels: Optional[int], channels: int = 3) -> None:
    """Refuse a declared ``width x height`` image over ``max_pixels`` or, when that is None, the pixel budget.

    Raises:
        lumigrad.limits.BudgetError: the image is too large (the message names ``path`` and the size).
    """
    groups = max(1, -(-channels // 4))  # every 4 channels beyond the first 4 count as one more layer
    what = f"{path}: declared size {width}x{height}" + (f" x {channels} channels" if groups > 1 else "")
    if max_pixels is None:
        check_pixel_samples(width * height * groups, what)
    elif width * height * groups > max_pixels:
        raise BudgetError(f"{what} exceeds max_pixels={max_pixels}; refusing to allocate it (pass a larger "
                          "max_pixels if the file is genuine)")


def _header(data: bytes, path) -> tuple:
    """Parse the header; return ``(height, width, offset of the pixel data)``."""
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise ValueError(f"{path}: not a Radiance .hdr file (it must start with '#?RADIANCE' or '#?RGBE')")
    end = data.find(b"\n\n")
    if end < 0 or end > 65536:
        raise ValueError(f"{path}: truncated or malformed header (no empty line ends it)")
    for line in data[:end].split(b"\n")[1:]:
        if line.startswith(b"FORMAT=") and line.strip() != b"FORMAT=32-bit_rle_rgbe":
            raise ValueError(f"{path}: unsupported {line.decode(errors='replace')!r}; only 32-bit_rle_rgbe is read")
    res_end = data.find(b"\n", end + 2)
    if res_end < 0:
        raise ValueError(f"{path}: truncated (no resolution line)")
    parts = data[end + 2:res_end].split()
    if len(parts) != 4 or parts[0] != b"-Y" or parts[2] != b"+X":
        raise ValueError(f"{path}: unsupported resolution line {data[end + 2:res_end]!r}; expected '-Y H +X W'")
    try:
        height, width = int(parts[1]), int(parts[3])
    except ValueError:
        raise ValueError(f"{path}: malformed resolution line {data[end + 2:res_end]!r}") from None
    return height, width, res_end + 1


def _decode_rle_channel(data: bytes, pos: int, out: np.ndarray, path, row: int) -> int:
    """Decode one run-length encoded channel of a scanline into ``out [W]``; return the new position."""
    width = out.shape[0]
    x = 0
    n = len(data)
    while x < width:
        if pos >= n:
            raise ValueError(f"{path}: truncated in scanline {row}")
        count = data[pos]
        pos += 1
        if count > 128:
            count -= 128
            if x + count > width or pos >= n:
                raise ValueError(f"{path}: bad run in scanline {row} (overflows the row or the file)")
            out[x:x + count] = data[pos]
            pos += 1
        else:
            if count == 0 or x + count > width or pos + count > n:
                raise ValueError(f"{path}: bad literal run in scanline {row} (empty, overflowing or truncated)")
            out[x:x + count] = np.frombuffer(data, np.uint8, count, pos)
            pos += count
        x += count
    return pos


def read_hdr(path: str | os.PathLike, *, max_pixels: Optional[int] = None) -> torch.Tensor:
    """Read a Radiance ``.hdr`` image as linear float32 radiance ``[H, W, 3]`` (row 0 at the top).

    Args:
        path: the ``.hdr`` file.
        max_pixels: largest ``H * W`` accepted; None (the default) uses lumigrad's pixel budget
            (:func:`lumigrad.limits.pixel_budget`). Checked on the header, before the pixels are allocated.

    Raises:
        lumigrad.limits.BudgetError: the header declares more pixels than allowed.
        ValueError: malformed or truncated files.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    height, width, pos = _header(data, path)
    if height <= 0 or width <= 0:
        raise ValueError(f"{path}: image size {width}x{height} is empty")
    check_image_size(path, width, height, max_pixels)
    rgbe = np.empty((height, width, 4), dtype=np.uint8)
    n = len(data)
    for row in range(height):
        new_style = 8 <= width < 32768 and pos + 4 <= n and data[pos] == 2 and data[pos + 1] == 2 \
            and data[pos + 2] < 128
        if new_style:
            if (data[pos + 2] << 8 | data[pos + 3]) != width:
                raise ValueError(f"{path}: scanline {row} declares width {data[pos + 2] << 8 | data[pos + 3]}, "
                                 f"not {width}")
            pos += 4
            for channel in range(4):
                pos = _decode_rle_channel(data, pos, rgbe[row, :, channel], path, row)
        else:  # flat scanline (old-style run-length encoding is not used by current writers)
            if pos + 4 * width > n:
                raise ValueError(f"{path}: truncated in scanline {row}")
            rgbe[row] = np.frombuffer(data, np.uint8, 4 * width, pos).reshape(width, 4)
            pos += 4 * width
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0).astype(np.float32)
    return torch.from_numpy(rgbe[..., :3].astype(np.float32) * scale[..., None])


def write_hdr(path: str | os.PathLike, image: torch.Tensor) -> None:
    """Write linear radiance ``[H, W, 3]`` (negative values clamp to 0) as a flat Radiance ``.hdr`` file."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be a tensor [H, W, 3]; got {getattr(image, 'shape', type(image))}")
    rgb = image.detach().cpu().double().clamp_min(0).numpy()
    if not np.isfinite(rgb).all():
        raise ValueError("image has NaN or Inf values")
    peak = rgb.max(-1)
    mantissa, exponent = np.frexp(peak)  # peak = mantissa * 2^exponent, mantissa in [0.5, 1)
    scale = np.where(peak > 1e-32, mantissa * 256.0 / np.where(peak > 1e-32, peak, 1.0), 0.0)
    rgbe = np.zeros(rgb.shape[:2] + (4,), dtype=np.uint8)
    rgbe[..., :3] = np.clip(np.floor(rgb * scale[..., None]), 0, 255).astype(np.uint8)
    rgbe[..., 3] = np.where(peak > 1e-32, exponent + 128, 0).astype(np.uint8)
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {rgb.shape[0]} +X {rgb.shape[1]}\n".encode()
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(rgbe.tobytes())
