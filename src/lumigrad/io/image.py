"""Image reading and writing through Pillow (PNG, JPEG and the other formats Pillow opens), depth kept.

Reading (:func:`read_image`, and :func:`decode_image` for bytes, which the glTF reader uses for textures):

* the size is checked on the header, before any pixel is decoded: ``width x height`` must fit the pixel budget
  of :mod:`lumigrad.limits` (2^26 by default; ``LUMIGRAD_MAX_PIXELS`` or :func:`lumigrad.limits.set_pixel_budget`
  raise it), else :class:`lumigrad.limits.BudgetError` (a ``ValueError``) names the file. A 164 KB PNG that
  declares 13000 x 13000 pixels is refused in milliseconds instead of taking 5 GB. Pillow's own
  decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) also gives a one-line ``BudgetError``;
* values are returned as stored, as float32 in [0, 1] (no sRGB or gamma decode): 8-bit channels divided by
  255, **16-bit channels divided by 65535** (16-bit grey, grey + alpha, RGB and RGBA PNGs keep their 16 bits;
  Pillow cuts 16-bit colour PNGs to 8 bits when it converts them, so those are decoded with Pillow's PNG
  decoder twice, once for the high and once for the low byte of every sample);
* channels: ``[H, W, 3]`` for grey and colour images, ``[H, W, 4]`` when the image has alpha (RGBA, grey +
  alpha, palette images, and grey / RGB images with a ``tRNS`` transparent colour);
* Pillow's 32-bit integer mode ``I`` is read as 16-bit data (values must lie in [0, 65535]); 32-bit float
  images (mode ``F``) are returned as stored. Any other mode, or a 16-bit image that Pillow cannot hand over
  without cutting it to 8 bits (16-bit colour TIFF, for example), is refused with a ``ValueError`` rather than
  truncated.

Writing (:func:`write_image`): ``[H, W]`` or ``[H, W, C]`` with ``C`` in 1 to 4 (grey, grey + alpha, RGB, RGBA),
values clamped to [0, 1] and rounded to 8 bits (``bit_depth=16`` writes a 16-bit PNG). JPEG has no alpha
channel, so writing 2 or 4 channels to a JPEG is refused instead of dropping the alpha.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO, Callable, Literal, Optional

import numpy as np
import torch

from .._checks import check_tensor
from ..limits import BudgetError, check_pixel_samples
from ..shading.image_formation import display_encode

__all__ = ["decode_image", "preview", "read_image", "write_image"]

# Pillow modes with 8 bits per channel, converted to RGB (or RGBA when they carry alpha).
_EIGHT_BIT = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "La", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_WITH_ALPHA = {"RGBA", "LA", "PA", "La", "RGBa", "P"}
_SIXTEEN_BIT_GREY = {"I;16", "I;16B", "I;16L", "I;16N"}
# Pillow's raw modes for 16-bit colour PNGs -> (raw mode giving the high bytes, the low bytes, channels).
# ``*;16B`` unpacks byte 0 of each big-endian sample (its high byte), ``*;16L`` byte 1 (its low byte). Grey +
# alpha is unpacked as plain 8-bit RGBA, whose four bytes are L high, L low, A high, A low.
_SIXTEEN_BIT_PNG = {"RGB;16B": ("RGB;16B", "RGB;16L", 3), "RGBA;16B": ("RGBA;16B", "RGBA;16L", 4),
                    "LA;16B": ("RGBA", None, 2)}
# What Pillow raises while parsing or decoding a malformed file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
                  zlib.error, OverflowError)


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float32 tensor ``[H, W, C]`` in [0, 1], values as stored (no sRGB decode).

    8-bit images are divided by 255 and 16-bit ones by 65535 (their depth is kept); ``C`` is 3, or 4 for
    images with alpha. See the module docstring for the modes read.

    Args:
        path: a PNG, JPEG or other file Pillow opens.

    Returns:
        ``[H, W, C]``, float32, row 0 at the top.

    Raises:
        FileNotFoundError: no file is there.
        lumigrad.limits.BudgetError: the header declares more pixels than the pixel budget (checked before
            decoding).
        ValueError: not an image, a truncated or corrupt one, or a mode that cannot be read without loss.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    with open(path, "rb") as fh:
        return torch.from_numpy(decode_image(fh, str(path)))


def decode_image(source: BinaryIO | bytes, name: str, *,
                 reserve: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Decode an image held in ``source`` (bytes or a seekable binary file) as float32 ``[H, W, C]`` in [0, 1].

    Args:
        source: the encoded image.
        name: how errors name the image, e.g. ``"model.gltf: images[2]"`` or a file path.
        reserve: called as ``reserve(width, height)`` once the header is read and before any pixel is decoded,
            e.g. to check a budget shared by several images; it raises to refuse the image.

    Raises:
        lumigrad.limits.BudgetError: more pixels than the pixel budget (checked on the header).
        ValueError: anything else that prevents a lossless decode.
    """
    import io

    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    start = fp.tell()
    im = _open(fp, name)
    with im:
        width, height = im.size
        check_pixel_samples(width * height, f"{name}: image is {width}x{height} pixels")
        if reserve is not None:
            reserve(width, height)
        if width == 0 or height == 0:
            raise _Refused(f"{name}: image is empty ({width}x{height} pixels)")
        mode = im.mode
        rawmode = _rawmode(im)
        try:
            if im.format == "PNG" and rawmode in _SIXTEEN_BIT_PNG:
                return _sixteen_bit_png(fp, start, name, rawmode)
            if mode in _EIGHT_BIT:
                if _cuts_sixteen_bits(rawmode):
                    raise _Refused(f"{name}: {im.format} image with 16 bits per channel (Pillow raw mode "
                                   f"{rawmode}) cannot be read without cutting it to 8 bits; save it as a PNG")
                alpha = mode in _WITH_ALPHA or "transparency" in im.info
                arr = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0
                return np.ascontiguousarray(arr)
            if mode in _SIXTEEN_BIT_GREY or mode == "I":
                grey = np.asarray(im, dtype=np.float64 if mode == "I" else np.float32)
                if mode == "I" and grey.size and (grey.min() < 0 or grey.max() > 65535):
                    raise _Refused(f"{name}: 32-bit integer image with values in [{grey.min():.0f}, "
                                   f"{grey.max():.0f}]; only 16-bit data (0 to 65535) is read")
                key = im.info.get("transparency")
                return _grey(grey.astype(np.float32), 65535.0, None if isinstance(key, bytes) else key)
            if mode == "F":
                return _grey(np.asarray(im, dtype=np.float32), 1.0, None)
        except (BudgetError, _Refused):
            raise
        except _DECODE_ERRORS as exc:
            raise ValueError(f"{name}: not a readable image ({type(exc).__name__}: {_one_line(exc)})") from None
        raise _Refused(f"{name}: Pillow image mode {mode!r} ({im.format}) is not read; lumigrad reads 8-bit and "
                       "16-bit grey, grey + alpha, RGB and RGBA images")


class _Refused(ValueError):
    """An image refused with a complete message (naming it), passed through unchanged."""


def _cuts_sixteen_bits(rawmode) -> bool:
    """True when Pillow would unpack 16-bit samples (raw mode ``RGB;16B``, ``LA;16L`` ...) into 8-bit ones."""
    if not isinstance(rawmode, str) or ";" not in rawmode:
        return False
    bands, _, layout = rawmode.partition(";")
    return bands in ("L", "LA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr") and layout.startswith("16")


def _open(fp: BinaryIO, name: str):
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():  # lumigrad's budget, checked next, decides; Pillow's warning is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise BudgetError(f"{name}: {_one_line(exc)} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS: raise it "
                          "as well as lumigrad's budget for a genuine image)") from None
    except _DECODE_ERRORS as exc:
        raise ValueError(f"{name}: not a readable image ({type(exc).__name__}: {_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _rawmode(im):
    """The raw mode of the image's first tile (how the file's bytes are unpacked), or None."""
    tile = getattr(im, "tile", None) or []
    if not tile:
        return None
    args = tile[0][3] if len(tile[0]) > 3 else None
    if isinstance(args, tuple):
        args = args[0] if args else None
    return args if isinstance(args, str) else None


def _retiled(im, rawmode: str):
    """Replace the raw mode of every tile of the (not yet loaded) image ``im``."""
    tiles = []
    for t in im.tile:
        args = t[3]
        args = (rawmode,) + tuple(args[1:]) if isinstance(args, tuple) else rawmode
        tiles.append(t._replace(args=args) if hasattr(t, "_replace") else (t[0], t[1], t[2], args))
    im.tile = tiles


def _sixteen_bit_png(fp: BinaryIO, start: int, name: str, rawmode: str) -> np.ndarray:
    """Decode a 16-bit colour PNG losslessly: Pillow unfilters it, one pass per byte of each sample."""
    high_mode, low_mode, channels = _SIXTEEN_BIT_PNG[rawmode]
    passes, key = [], None
    for raw in (high_mode, low_mode):
        if raw is None:
            continue
        fp.seek(start)
        with _open(fp, name) as im:
            if _rawmode(im) != rawmode:
                raise _Refused(f"{name}: 16-bit PNG changed between two reads")
            key = im.info.get("transparency")
            try:
                _retiled(im, raw)
                im.load()
            except ValueError as exc:
                if "raw mode" not in str(exc):
                    raise
                # this Pillow has no such raw mode: refuse rather than truncate
                raise _Refused(f"{name}: this Pillow cannot hand over 16-bit PNG samples ({exc}); lumigrad "
                               "refuses to cut them to 8 bits: save the image with 8 bits") from None
            passes.append(np.asarray(im, dtype=np.uint16))
    if low_mode is None:  # grey + alpha as four bytes: L high, L low, A high, A low
        b = passes[0]
        grey = (b[..., 0] << 8 | b[..., 1]).astype(np.float32)
        alpha = (b[..., 2] << 8 | b[..., 3]).astype(np.float32)
        return np.ascontiguousarray(np.stack([grey, grey, grey, alpha], -1) / np.float32(65535.0))
    values = (passes[0][..., :channels] << 8) | passes[1][..., :channels]
    out = values.astype(np.float32) / np.float32(65535.0)
    if channels == 3 and isinstance(key, tuple) and len(key) == 3:  # tRNS: one 16-bit colour is transparent
        alpha = np.where((values == np.asarray(key, dtype=np.uint16)).all(-1), 0.0, 1.0).astype(np.float32)
        out = np.concatenate([out, alpha[..., None]], -1)
    return np.ascontiguousarray(out)


def _grey(values: np.ndarray, scale: float, key) -> np.ndarray:
    """Grey ``[H, W]`` -> ``[H, W, 3]`` divided by ``scale``, ``[H, W, 4]`` when ``key`` is a transparent value."""
    out = values / np.float32(scale)
    channels = [out, out, out]
    if isinstance(key, int) and not isinstance(key, bool):
        channels.append(np.where(values == key, 0.0, 1.0).astype(np.float32))
    return np.ascontiguousarray(np.stack(channels, -1))


# ---------------------------------------------------------------------------------------------------- writing


def write_image(path: str | os.PathLike, image: torch.Tensor, *, bit_depth: Literal[8, 16] = 8) -> None:
    """Write ``image`` in [0, 1] as a PNG / JPEG (or another format Pillow writes, by the suffix).

    Args:
        path: the file; its suffix picks the format.
        image: ``[H, W]`` or ``[H, W, C]`` with ``C`` = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), any
            real dtype and device; values are clamped to [0, 1] and rounded to ``bit_depth`` bits.
        bit_depth: 8, or 16 for a 16-bit PNG (``round(v * 65535)``, read back exactly by :func:`read_image`).

    Raises:
        TypeError: ``image`` is not a tensor.
        ValueError: a wrong shape, an empty image, NaN values, alpha for a JPEG, 16 bits for anything but PNG.
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor; got {type(image).__name__}")
    if image.dim() == 2:
        image = image[..., None]
    if image.dim() != 3 or not 1 <= image.shape[-1] <= 4:
        raise ValueError(f"image must have shape [H, W] or [H, W, C] with C in 1..4; got {tuple(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must not be empty; got {tuple(image.shape)}")
    if image.dtype.is_complex or image.dtype == torch.bool:
        raise TypeError(f"image must have a real dtype; got {image.dtype}")
    values = image.detach().to("cpu", torch.float64)
    if torch.isnan(values).any():
        raise ValueError("image contains NaN values")
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    channels = image.shape[-1]
    if suffix in ("jpg", "jpeg") and channels in (2, 4):
        raise ValueError(f"{path}: JPEG has no alpha channel and image has {channels} channels; write a PNG, or "
                         "pass image[..., :3] (image[..., :1] for grey) to drop the alpha on purpose")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16; got {bit_depth!r}")
    if bit_depth == 16:
        if suffix != "png":
            raise ValueError(f"{path}: bit_depth=16 is written as PNG only")
        samples = values.clamp(0, 1).mul(65535).round().numpy().astype(">u2")
        with open(path, "wb") as fh:
            fh.write(_png16(samples))
        return
    from PIL import Image

    arr = _eight_bits(values)
    Image.fromarray(arr[..., 0] if channels == 1 else arr).save(path)  # L, LA, RGB or RGBA by the shape


def _eight_bits(values: torch.Tensor) -> np.ndarray:
    """Values clamped to [0, 1] and rounded to 8 bits (in float64, so every writer rounds alike)."""
    return values.detach().to("cpu", torch.float64).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


def preview(image: torch.Tensor, path: Optional[str | os.PathLike] = None) -> np.ndarray:
    """The default look of a linear HDR image: ``uint8 [H, W, C]`` for display, written to ``path`` if given.

    The look is :func:`lumigrad.shading.image_formation.display_encode` (ACES filmic tone mapping, then the sRGB
    encoding), the one ``lumigrad render`` uses for PNG / JPEG and ``lumigrad fit`` for the images it writes, so
    the three agree byte for byte. Keep the linear values (the tensor itself, :func:`lumigrad.io.write_exr` or
    ``lumigrad render -o x.exr``) when you need radiance rather than a picture.

    Args:
        image: linear ``[H, W, C]`` with ``C`` in 1..4 (a 4th channel, alpha, is kept as it is), any floating dtype
            and device; a render's ``out.rgb`` for example.
        path: optional PNG / JPEG file (:func:`write_image`; its folder must exist).

    Returns:
        ``numpy.uint8 [H, W, C]`` (``plt.imshow`` / ``PIL.Image.fromarray`` take it as it is).

    Raises:
        TypeError: ``image`` is not a floating tensor. ValueError: a wrong shape or NaN values.

    Example:
        >>> int(preview(torch.zeros(2, 2, 3)).max())
        0
    """
    check_tensor(image, "image", trailing=(None, None, None), max_dims=3, floating=True)
    if not 1 <= image.shape[-1] <= 4:
        raise ValueError(f"image must have shape [H, W, C] with C in 1..4; got {tuple(image.shape)}")
    if bool(torch.isnan(image).any()):
        raise ValueError("image contains NaN values")
    shown = image.detach()
    if shown.shape[-1] in (2, 4):  # alpha is coverage, not radiance: it is not tone mapped
        shown = torch.cat([display_encode(shown[..., :-1]), shown[..., -1:]], dim=-1)
    else:
        shown = display_encode(shown)
    if path is not None:
        write_image(path, shown)
    return _eight_bits(shown)


def _png16(samples: np.ndarray) -> bytes:
    """A 16-bit PNG (colour type grey, grey + alpha, RGB or RGBA by the channel count) of big-endian samples."""
    height, width, channels = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = samples.reshape(height, width * channels).view(np.uint8).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], 1).tobytes()  # filter 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
