"""Sequences of frames to files: ``write_video`` (MP4 through imageio-ffmpeg, GIF through Pillow),
``write_strip`` (one PNG contact sheet of the frames) and ``write_frames`` (either, by the path's suffix). The one
code path for frame files: ``lumigrad.volume.write_turntable`` (deprecated) calls ``write_frames``.

Frames are converted to 8 bits the way :func:`lumigrad.io.write_image` writes PNGs: values clamped to [0, 1],
``round(255 v)``. Renders are display values when the scene's :class:`~lumigrad.Film` tone-maps and encodes
(``Film(tone=..., encode="srgb")``); for linear HDR frames pass ``tone`` / ``encode`` here instead.
"""

from __future__ import annotations

import os
from typing import Optional

import torch

from .._checks import check_choice, check_number, check_tensor
from ..shading.image_formation import srgb_encode, tonemap
from ..shading.image_layout import image_strip

__all__ = ["frames_to_uint8", "read_video", "write_frames", "write_strip", "write_video"]

_MISSING_VIDEO = ("writing {what} needs imageio and imageio-ffmpeg, which lumigrad does not require: "
                  "pip install lumigrad[video] (or write a .gif, which needs only Pillow)")


def frames_to_uint8(frames: torch.Tensor, *, tone: Optional[str] = None, encode: Optional[str] = None) -> torch.Tensor:
    """``[T, H, W, C]`` float frames (``C`` = 1 or 3; ``C = 4`` is composited over black) to ``uint8`` on the CPU.

    Args:
        frames: float tensor ``[T, H, W, C]``, ``T >= 1``.
        tone: ``None`` (values are display values already), ``"reinhard"`` or ``"aces"``
            (:func:`lumigrad.shading.tonemap`), applied first.
        encode: ``None`` or ``"srgb"`` (:func:`lumigrad.shading.srgb_encode`), applied after ``tone``.

    Returns:
        ``uint8 [T, H, W, 3]`` (grey frames repeated to RGB).

    Raises:
        TypeError: not a float tensor. ValueError: wrong shape, empty frames, NaN, unknown ``tone`` / ``encode``.

    **Differentiability:** none (detached).
    """
    check_tensor(frames, "frames", trailing=(None, None, None, None), max_dims=4, floating=True)
    if 0 in frames.shape:
        raise ValueError(f"frames must hold at least one non-empty frame [T, H, W, C]; got {tuple(frames.shape)}")
    if frames.shape[-1] not in (1, 3, 4):
        raise ValueError(f"frames must have 1, 3 or 4 channels [T, H, W, C]; got {tuple(frames.shape)}")
    check_choice(tone, "tone", (None, "reinhard", "aces"))
    check_choice(encode, "encode", (None, "srgb"))
    x = frames.detach().to("cpu", torch.float32)
    if bool(torch.isnan(x).any()):
        raise ValueError("frames contains NaN values")
    if x.shape[-1] == 4:
        x = x[..., :3] * x[..., 3:].clamp(0, 1)
    if x.shape[-1] == 1:
        x = x.expand(x.shape[:-1] + (3,))
    if tone is not None:
        x = tonemap(x, tone)
    if encode == "srgb":
        x = srgb_encode(x.clamp(0, 1))
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def write_video(path: str | os.PathLike, frames: torch.Tensor, fps: float = 12.0, *, tone: Optional[str] = None,
                encode: Optional[str] = None) -> None:
    """Write frames ``[T, H, W, C]`` as an MP4 or an animated GIF, by the path's suffix.

    * ``.mp4``: H.264 (``yuv420p``, playable everywhere) through imageio + imageio-ffmpeg, the optional extra
      ``pip install lumigrad[video]``; imported only here, an ``ImportError`` names the extra when missing.
      H.264 in yuv420p needs even sizes: an odd width or height is padded by repeating the last column / row.
    * ``.gif``: through Pillow (a lumigrad dependency, and what imageio itself uses for GIF); loops forever,
      frame time ``1 / fps`` rounded to 10 ms; one 256-colour palette per frame. Pillow merges identical
      consecutive frames into one longer frame.

    Args:
        path: ``.mp4`` or ``.gif`` (any case); the folder must exist.
        frames: float ``[T, H, W, C]`` (``C`` = 1, 3, or 4 composited over black), e.g. ``render_sequence(...).rgb``.
        fps: frames per second (> 0).
        tone, encode: see :func:`frames_to_uint8` (default: values are display values, clamped to [0, 1]).

    Raises:
        ValueError: an unknown suffix, bad frames or ``fps``; ImportError: ``.mp4`` without the video extra.

    **Differentiability:** none (the frames are detached and written).
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"path must end in .mp4 or .gif; got {os.fspath(path)!r} (use write_strip for a .png)")
    fps = check_number(fps, "fps", lo=0.0, lo_open=True)
    data = frames_to_uint8(frames, tone=tone, encode=encode)
    if suffix == ".mp4":
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 through)
        except ImportError:
            raise ImportError(_MISSING_VIDEO.format(what=repr(os.fspath(path)))) from None
        if data.shape[1] % 2:
            data = torch.cat([data, data[:, -1:]], 1)
        if data.shape[2] % 2:
            data = torch.cat([data, data[:, :, -1:]], 2)
        imageio.mimwrite(os.fspath(path), list(data.numpy()), fps=fps, macro_block_size=1, codec="libx264",
                         pixelformat="yuv420p")
        return
    from PIL import Image

    pictures = [Image.fromarray(frame) for frame in data.numpy()]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=max(10, round(100 / fps) * 10),
                     loop=0)


def read_video(path: str | os.PathLike) -> torch.Tensor:
    """Read an MP4 (needs the video extra) or GIF back as ``uint8 [T, H, W, 3]``."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            import numpy as np

            return torch.from_numpy(np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]))
    if suffix != ".mp4":
        raise ValueError(f"path must end in .mp4 or .gif; got {os.fspath(path)!r}")
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise ImportError(_MISSING_VIDEO.format(what=f"reading {os.fspath(path)!r}")) from None
    import numpy as np

    with imageio.get_reader(os.fspath(path)) as reader:
        return torch.from_numpy(np.stack([np.asarray(f)[..., :3] for f in reader]))


def write_strip(path: str | os.PathLike, frames: torch.Tensor, columns: Optional[int] = None, *,
                tone: Optional[str] = None, encode: Optional[str] = None) -> torch.Tensor:
    """Write frames ``[T, H, W, C]`` as one PNG contact sheet (:func:`lumigrad.shading.image_strip`).

    Args:
        path: a ``.png`` file. frames, tone, encode: as :func:`write_video`.
        columns: frames per row (default: all ``T`` in one row, a filmstrip).

    Returns:
        The written sheet, ``uint8 [rows * H, columns * W, 3]``.

    **Differentiability:** none.
    """
    if os.path.splitext(os.fspath(path))[1].lower() != ".png":
        raise ValueError(f"path must end in .png; got {os.fspath(path)!r}")
    data = frames_to_uint8(frames, tone=tone, encode=encode)
    sheet = image_strip(data, data.shape[0] if columns is None else columns)
    from PIL import Image

    Image.fromarray(sheet.numpy()).save(path)
    return sheet


def write_frames(path: str | os.PathLike, frames: torch.Tensor, fps: float = 12.0, *, columns: Optional[int] = None,
                 tone: Optional[str] = None, encode: Optional[str] = None) -> None:
    """Write frames ``[T, H, W, C]`` by the path's suffix: ``.gif`` / ``.mp4`` with :func:`write_video`, ``.png``
    (a contact sheet, ``columns`` per row, default one row) with :func:`write_strip`.

    Args:
        path: ``.gif``, ``.mp4`` or ``.png`` (any case). frames, fps, tone, encode: as :func:`write_video`.
        columns: frames per row of a ``.png`` sheet; ignored by animations.

    Raises:
        ValueError: an unknown suffix, bad frames or ``fps`` (also checked for a ``.png``, so one call is valid
        for any suffix); ImportError: ``.mp4`` without the video extra.

    **Differentiability:** none.
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in (".gif", ".mp4", ".png"):
        raise ValueError(f"path must end in .gif, .mp4 or .png; got {os.fspath(path)!r}")
    check_number(fps, "fps", lo=0.0, lo_open=True)
    if suffix == ".png":
        write_strip(path, frames, columns, tone=tone, encode=encode)
    else:
        write_video(path, frames, fps, tone=tone, encode=encode)
