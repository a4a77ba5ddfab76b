"""OpenEXR (``.exr``) images: read single-part flat files, write scanline files (HDR environment maps, renders).

Format (OpenEXR 2.x, as written by the OpenEXR library, Blender, Nuke, Photoshop): the magic number
``20000630``, a version field (``2`` plus flag bits for tiled, long-name, deep and multi-part files), a header of
attributes (``name\\0 type\\0 int32 size, value``, ended by an empty name), an offset table with one ``uint64``
file position per chunk, then the chunks. A chunk is ``int32 y, int32 size`` and the (compressed) pixels of
one block of scanlines; inside a block each scanline holds every channel in turn, in alphabetical order of the
channel names, ``W`` little-endian values each. All numbers are little-endian.

Read:
    * single-part flat images; multi-part and deep files are refused;
    * compressions NONE, RLE, ZIPS (one scanline per chunk) and ZIP (16 scanlines per chunk) of scanline images
      are read here, with numpy. PIZ, PXR24, B44, B44A, DWAA, DWAB (and newer compressions) and tiled images go
      to the OpenEXR bindings when they are installed (``pip install 'lumigrad[exr]'``,
      :mod:`lumigrad.io.exr_openexr`); without them such a file raises an ``ImportError`` naming the extra.
      The header is parsed here either way, so channel selection and the pixel budget below apply to both;
    * pixel types HALF, FLOAT and UINT, all returned as float32 (UINT is exact up to 2^24);
    * channels with ``xSampling`` / ``ySampling`` other than 1 (luminance-chroma images) are refused;
    * the returned channels are ``R, G, B`` (then ``A`` when present) if the file has ``R``, ``G`` and ``B``;
      otherwise ``Y`` (then ``A`` when present) if it has ``Y``; otherwise every channel in alphabetical order.
      Other channels (depth, layers such as ``diffuse.R``) are dropped when ``R, G, B`` or ``Y`` exist;
    * the pixels of the *data window* are returned; where it is smaller than or offset from the display
      window, the display window is not used (no padding, no cropping);
    * NaN and Inf values are returned as stored (EXR can hold them): validate before use as radiance;
    * every other header attribute is parsed (name, type, size) but not interpreted.

Write: one scanline image, channels ``R, G, B`` (``A``) for 3 (4) channels and ``Y`` for one, HALF or FLOAT
pixels, compression ``"none"``, ``"rle"``, ``"zips"`` or ``"zip"``; data and display windows both
``(0, 0) - (W - 1, H - 1)``, increasing line order. HALF stores values up to 65504 (larger ones are refused)
and flushes magnitudes below about 6e-8 to zero.

Malformed files raise ``ValueError`` naming the file and what is wrong: wrong magic number, truncated header,
offset table or chunk, chunk offsets outside the file, chunks for the wrong scanlines, a decompressed size that
differs from the declared one. The declared size is checked on the header, before anything is allocated,
against lumigrad's pixel budget (:mod:`lumigrad.limits`; :class:`lumigrad.limits.BudgetError`) or an explicit
``max_pixels``.

Example (a round trip through a temporary file):

    >>> import os, tempfile, torch
    >>> image = torch.tensor([[[0.5, 1.0, 2.0], [4.0, 8.0, 6e4]]])  # [H=1, W=2, C=3]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_exr(os.path.join(tmp, "x.exr"), image)
    ...     read_exr(os.path.join(tmp, "x.exr")).tolist()
    [[[0.5, 1.0, 2.0], [4.0, 8.0, 60000.0]]]
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Literal, Optional

import numpy as np
import torch

from .._checks import check_tensor
from .exr_openexr import read_with_openexr
from .hdr import check_image_size

MAGIC = 20000630
_TILED, _LONG_NAMES, _DEEP, _MULTIPART = 0x200, 0x400, 0x800, 0x1000

_COMPRESSIONS = {0: "NONE", 1: "RLE", 2: "ZIPS", 3: "ZIP", 4: "PIZ", 5: "PXR24", 6: "B44", 7: "B44A",
                 8: "DWAA", 9: "DWAB", 10: "HTJ2K256", 11: "HTJ2K32", 12: "LJ2K", 13: "ZSTD"}  # OpenEXR 3.4
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16}  # the compressions this module reads and writes
_WRITE_COMPRESSION = {"none": 0, "rle": 1, "zips": 2, "zip": 3}

_PIXEL_TYPES = {0: ("UINT", np.dtype("<u4")), 1: ("HALF", np.dtype("<f2")), 2: ("FLOAT", np.dtype("<f4"))}
_WRITE_PIXEL_TYPE = {"half": 1, "float": 2}
_HALF_MAX = 65504.0

_MAX_CHUNK_BYTES = (1 << 31) - 1  # chunk sizes are int32 in the format


# --------------------------------------------------------------------------------------------------- reading


class _Reader:
    """Bounds-checked little-endian reads from the file's bytes; every overrun raises a 'truncated' error."""

    def __init__(self, data: bytes, path):
        self.data, self.path, self.pos = data, path, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated in the {what} (needs {n} bytes at offset {self.pos}, the file "
                             f"has {len(self.data)})")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def cstring(self, what: str, max_len: int) -> bytes:
        """Read a null-terminated string of at most ``max_len`` characters."""
        end = self.data.find(b"\0", self.pos, self.pos + max_len + 1)
        if end < 0:
            if len(self.data) <= self.pos + max_len:
                raise ValueError(f"{self.path}: truncated in the {what} (no terminating null byte)")
            raise ValueError(f"{self.path}: malformed {what}: a name longer than {max_len} characters")
        out = self.data[self.pos:end]
        self.pos = end + 1
        return out

    def int32(self, what: str) -> int:
        return struct.unpack("<i", self.take(4, what))[0]


def _parse_header(r: _Reader) -> dict:
    """Check magic and version; return ``{attribute name: (type name, value bytes)}`` for every attribute."""
    path = r.path
    magic = struct.pack("<I", MAGIC)
    if len(r.data) < 4 and magic.startswith(r.data):
        raise ValueError(f"{path}: truncated in the magic number (the file has {len(r.data)} bytes)")
    if r.data[:4] != magic:
        raise ValueError(f"{path}: not an OpenEXR file (it must start with the magic number 20000630, bytes "
                         "76 2f 31 01)")
    r.pos = 4
    version = struct.unpack("<I", r.take(4, "version field"))[0]
    if version & 0xFF != 2:
        raise ValueError(f"{path}: unsupported OpenEXR file version {version & 0xFF}; only version 2 is read")
    if version & _MULTIPART:
        raise ValueError(f"{path}: multi-part OpenEXR files are not supported; save a single-part scanline image")
    if version & _DEEP:
        raise ValueError(f"{path}: deep (non-image) OpenEXR data is not supported; save a flat scanline image")
    if version & ~(0xFF | _LONG_NAMES | _TILED | _DEEP | _MULTIPART):
        raise ValueError(f"{path}: unknown flags {version & ~0xFF:#x} in the version field")
    max_name = 255 if version & _LONG_NAMES else 31
    attributes = {}
    while True:
        name = r.cstring("header", max_name)
        if not name:
            return attributes
        type_name = r.cstring(f"header (type of attribute {name.decode(errors='replace')!r})", max_name)
        size = r.int32(f"header (size of attribute {name.decode(errors='replace')!r})")
        if size < 0:
            raise ValueError(f"{path}: malformed header: attribute {name.decode(errors='replace')!r} has negative "
                             f"size {size}")
        value = r.take(size, f"header (value of attribute {name.decode(errors='replace')!r})")
        attributes[name.decode(errors="replace")] = (type_name.decode(errors="replace"), value)


def _attribute(attributes: dict, name: str, type_name: str, size: int | None, path) -> bytes:
    """Return the value bytes of a required attribute after checking its type and size."""
    if name not in attributes:
        raise ValueError(f"{path}: malformed header: the required attribute {name!r} is missing")
    found_type, value = attributes[name]
    if found_type != type_name or (size is not None and len(value) != size):
        raise ValueError(f"{path}: malformed header: attribute {name!r} is {found_type!r} of {len(value)} bytes; "
                         f"expected {type_name!r}" + (f" of {size} bytes" if size is not None else ""))
    return value


def _parse_channels(value: bytes, path) -> list:
    """Parse a ``chlist`` value into ``[(name, pixel type code)]`` in file (alphabetical) order."""
    channels = []
    pos = 0
    while True:
        end = value.find(b"\0", pos)
        if end < 0:
            raise ValueError(f"{path}: malformed 'channels' attribute (unterminated channel list)")
        if end == pos:  # the empty name ends the list
            break
        name = value[pos:end].decode(errors="replace")
        if end + 17 > len(value):
            raise ValueError(f"{path}: malformed 'channels' attribute (channel {name!r} is cut short)")
        pixel_type, _linear, x_sampling, y_sampling = struct.unpack("<iB3xii", value[end + 1:end + 17])
        if pixel_type not in _PIXEL_TYPES:
            raise ValueError(f"{path}: channel {name!r} has unknown pixel type {pixel_type} (expected 0 UINT, "
                             "1 HALF or 2 FLOAT)")
        if x_sampling != 1 or y_sampling != 1:
            raise ValueError(f"{path}: channel {name!r} is subsampled ({x_sampling}x{y_sampling}); subsampled "
                             "channels (luminance-chroma images) are not supported")
        channels.append((name, pixel_type))
        pos = end + 17
    if not channels:
        raise ValueError(f"{path}: the image has no channels")
    if len({name for name, _ in channels}) != len(channels):
        raise ValueError(f"{path}: malformed 'channels' attribute (a channel name appears twice)")
    return channels


def _select_channels(names: list) -> list:
    """The names to return, in output order (see the module docstring)."""
    if {"R", "G", "B"} <= set(names):
        return ["R", "G", "B"] + (["A"] if "A" in names else [])
    if "Y" in names:
        return ["Y"] + (["A"] if "A" in names else [])
    return sorted(names)


def _undo_predictor(raw: bytes) -> np.ndarray:
    """Invert the ZIP / RLE preprocessing: delta predictor, then the split into even and odd bytes."""
    t = np.frombuffer(raw, dtype=np.uint8).copy()
    if t.size > 1:
        t[1:] -= 128  # uint8 arithmetic wraps, as the format's byte arithmetic does
        np.cumsum(t, dtype=np.uint8, out=t)
    out = np.empty_like(t)
    half = (t.size + 1) // 2
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out


def _rle_decode(src: bytes, expected: int, path, y: int) -> bytes:
    """Decode OpenEXR run-length data: a byte ``c >= 0`` repeats the next byte ``c + 1`` times, ``c < 0``
    copies ``-c`` literal bytes."""
    out = bytearray()
    pos, n = 0, len(src)
    while pos < n:
        count = src[pos]
        if count < 128:  # run
            if pos + 1 >= n:
                raise ValueError(f"{path}: corrupt RLE data in the chunk at y={y} (a run is cut short)")
            out += src[pos + 1:pos + 2] * (count + 1)
            pos += 2
        else:  # literal bytes
            count = 256 - count
            if pos + 1 + count > n:
                raise ValueError(f"{path}: corrupt RLE data in the chunk at y={y} (literal bytes are cut short)")
            out += src[pos + 1:pos + 1 + count]
            pos += 1 + count
        if len(out) > expected:
            break
    if len(out) != expected:
        raise ValueError(f"{path}: the chunk at y={y} decompresses to {len(out)}{'+' if len(out) > expected else ''} "
                         f"bytes; expected {expected}")
    return bytes(out)


def _zip_decode(src: bytes, expected: int, path, y: int) -> bytes:
    """Inflate a zlib stream, refusing one that is corrupt or that does not hold exactly ``expected`` bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(src, expected + 1)  # at most one byte more than needed: no zip bombs
    except zlib.error as exc:
        raise ValueError(f"{path}: corrupt zlib data in the chunk at y={y} ({exc})") from None
    if len(out) != expected or not inflater.eof:
        more = "+" if len(out) > expected else ""
        raise ValueError(f"{path}: the chunk at y={y} decompresses to {len(out)}{more} bytes"
                         f"{'' if inflater.eof else ' (incomplete zlib stream)'}; expected {expected}")
    return out


def read_exr(path: str | os.PathLike, *, max_pixels: Optional[int] = None) -> torch.Tensor:
    """Read a single-part OpenEXR image as linear float32 ``[H, W, C]`` (row 0 at the top).

    Args:
        path: the ``.exr`` file.
        max_pixels: largest ``H * W`` accepted (every 4 returned channels beyond the first 4 count once more);
            None (the default) uses lumigrad's pixel budget (:func:`lumigrad.limits.pixel_budget`). Larger
            declared data windows are refused before allocation.

    Returns:
        The data window's pixels, ``[H, W, C]``, float32, values as stored (NaN / Inf kept). ``C`` is 3 for
        ``R, G, B``, 4 with ``A``, 1 for a luminance ``Y`` image; other files give every channel in alphabetical
        order (see the module docstring).

    Raises:
        lumigrad.limits.BudgetError: the data window holds more pixels than allowed (checked on the header).
        ImportError: the file needs the OpenEXR bindings (PIZ, PXR24, B44, B44A, DWAA, DWAB compression, or a
            tiled image) and they are not installed; the message names the ``exr`` extra.
        ValueError: for files that are not OpenEXR, multi-part / deep files, truncated or corrupt files.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    r = _Reader(data, path)
    attributes = _parse_header(r)
    tiled = bool(struct.unpack_from("<i", data, 4)[0] & _TILED) or "tiles" in attributes
    if "type" in attributes:
        kind = attributes["type"][1].rstrip(b"\0")
        if kind not in (b"scanlineimage", b"tiledimage"):
            raise ValueError(f"{path}: OpenEXR part type {kind.decode(errors='replace')!r} is not supported; only "
                             "flat images ('scanlineimage', 'tiledimage') are read")
        tiled = tiled or kind == b"tiledimage"

    code = _attribute(attributes, "compression", "compression", 1, path)[0]
    if code not in _COMPRESSIONS:
        raise ValueError(f"{path}: compression code {code} is not supported (OpenEXR 3.4 knows codes 0 to "
                         f"{max(_COMPRESSIONS)})")
    needs = None  # what the numpy reader below cannot do, for the OpenEXR backend
    if tiled:
        needs = "a tiled image"
    elif code not in _LINES_PER_CHUNK:
        needs = f"{_COMPRESSIONS[code]} compression"
    channels = _parse_channels(_attribute(attributes, "channels", "chlist", None, path), path)
    x_min, y_min, x_max, y_max = struct.unpack("<4i", _attribute(attributes, "dataWindow", "box2i", 16, path))
    _attribute(attributes, "displayWindow", "box2i", 16, path)  # required, but the data window is what is read
    line_order = _attribute(attributes, "lineOrder", "lineOrder", 1, path)[0]
    if line_order > 2:
        raise ValueError(f"{path}: malformed header: unknown lineOrder {line_order}")

    width, height = x_max - x_min + 1, y_max - y_min + 1
    if width <= 0 or height <= 0:
        raise ValueError(f"{path}: dataWindow ({x_min}, {y_min}) - ({x_max}, {y_max}) is empty")
    wanted = _select_channels([name for name, _ in channels])
    check_image_size(path, width, height, max_pixels, len(wanted))
    if needs is not None:
        image = read_with_openexr(path, wanted, needs)
        if image.shape[:2] != (height, width):
            raise ValueError(f"{path}: OpenEXR returned {image.shape[1]} x {image.shape[0]} pixels; the header's "
                             f"dataWindow is {width} x {height}")
        return torch.from_numpy(image)

    lines = _LINES_PER_CHUNK[code]
    row_bytes = width * sum(_PIXEL_TYPES[t][1].itemsize for _, t in channels)
    if row_bytes * lines > _MAX_CHUNK_BYTES:
        raise ValueError(f"{path}: a chunk of {lines} scanlines would hold {row_bytes * lines} bytes, more than an "
                         "OpenEXR chunk can")
    offsets_at = {}  # channel name -> (byte offset inside a scanline, numpy dtype)
    at = 0
    for name, pixel_type in channels:
        dtype = _PIXEL_TYPES[pixel_type][1]
        offsets_at[name] = (at, dtype)
        at += width * dtype.itemsize

    n_chunks = -(-height // lines)
    table = np.frombuffer(r.take(8 * n_chunks, "offset table"), dtype="<u8")
    table_end = r.pos
    image = np.empty((height, width, len(wanted)), dtype=np.float32)  # allocated once the offset table is read
    for index in range(n_chunks):
        offset = int(table[index])
        if offset < table_end:
            raise ValueError(f"{path}: bad offset {offset} for chunk {index} (it points into the header or offset "
                             "table)")
        if offset + 8 > len(data):
            raise ValueError(f"{path}: truncated: chunk {index} at offset {offset} lies past the end of the file "
                             f"({len(data)} bytes)")
        y, size = struct.unpack_from("<ii", data, offset)
        first = y_min + index * lines
        if y != first:
            raise ValueError(f"{path}: chunk {index} at offset {offset} holds scanline y={y}; expected y={first} "
                             "(bad offset table or corrupt chunk)")
        n_lines = min(lines, y_max - first + 1)
        expected = n_lines * row_bytes
        if size < 0 or size > expected:
            raise ValueError(f"{path}: chunk at y={y} declares {size} bytes of pixel data; expected at most "
                             f"{expected}")
        if offset + 8 + size > len(data):
            raise ValueError(f"{path}: truncated in the chunk at y={y} (it needs {size} bytes at offset "
                             f"{offset + 8}, the file has {len(data)})")
        packed = data[offset + 8:offset + 8 + size]
        if size == expected:  # stored raw (also what writers do when compression does not pay)
            raw = packed
        elif code == 0:
            raise ValueError(f"{path}: uncompressed chunk at y={y} holds {size} bytes; expected {expected}")
        elif code == 1:
            raw = _undo_predictor(_rle_decode(packed, expected, path, y)).tobytes()
        else:
            raw = _undo_predictor(_zip_decode(packed, expected, path, y)).tobytes()
        block = np.frombuffer(raw, dtype=np.uint8).reshape(n_lines, row_bytes)
        row0 = first - y_min
        for c, name in enumerate(wanted):
            start, dtype = offsets_at[name]
            values = block[:, start:start + width * dtype.itemsize].copy().view(dtype)
            image[row0:row0 + n_lines, :, c] = values
    return torch.from_numpy(image)


# --------------------------------------------------------------------------------------------------- writing


def _apply_predictor(raw: bytes) -> bytes:
    """The ZIP / RLE preprocessing: even bytes then odd bytes, then a byte-wise delta (+128) predictor."""
    src = np.frombuffer(raw, dtype=np.uint8)
    t = np.concatenate([src[0::2], src[1::2]])
    if t.size > 1:
        t[1:] = t[1:] - t[:-1] + 128  # computed from the unmodified t on the right; uint8 wraps
    return t.tobytes()


def _rle_encode(raw: bytes) -> bytes:
    """Run-length encode: runs of 3 to 128 equal bytes as ``(len - 1, byte)``, the rest as literal groups of up
    to 127 bytes ``(-len, bytes...)``."""
    src = np.frombuffer(raw, dtype=np.uint8)
    if src.size == 0:
        return b""
    starts = np.flatnonzero(np.concatenate([[True], src[1:] != src[:-1]]))
    lengths = np.diff(np.append(starts, src.size))
    out = bytearray()
    literal_from = 0  # start of the pending literal bytes

    def flush_literals(end: int) -> None:
        for k in range(literal_from, end, 127):
            chunk = raw[k:min(k + 127, end)]
            out.append(256 - len(chunk))
            out.extend(chunk)

    for start, length in zip(starts[lengths >= 3].tolist(), lengths[lengths >= 3].tolist()):
        flush_literals(start)
        for k in range(0, length, 128):
            n = min(128, length - k)
            if n >= 3:
                out.append(n - 1)
                out.append(raw[start])
            else:  # a tail of 1 or 2 bytes: short literal
                out.append(256 - n)
                out.extend(raw[start + k:start + k + n])
        literal_from = start + length
    flush_literals(src.size)
    return bytes(out)


def _attr(name: str, type_name: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(
    path: str | os.PathLike,
    image: torch.Tensor,
    *,
    compression: Literal["none", "rle", "zips", "zip"] = "zip",
    pixel_type: Literal["half", "float"] = "half",
) -> None:
    """Write linear values ``[H, W, C]`` as a single-part scanline OpenEXR file.

    Args:
        path: the ``.exr`` file to create (overwritten if it exists).
        image: ``[H, W, C]``, floating dtype, any device, row 0 at the top; ``C = 3`` is stored as channels
            ``R, G, B``, ``C = 4`` as ``R, G, B, A`` and ``C = 1`` as luminance ``Y``. Values must be finite.
        compression: ``"zip"`` (16 scanlines per chunk, the usual choice), ``"zips"`` (one scanline per chunk),
            ``"rle"`` or ``"none"``.
        pixel_type: ``"half"`` (16-bit float, up to 65504, about 3 significant digits) or ``"float"`` (32-bit).

    Raises:
        TypeError: if ``image`` is not a floating tensor.
        ValueError: for a wrong shape, an empty image, NaN / Inf values, values beyond the half range when
            ``pixel_type="half"``, or an unknown ``compression`` / ``pixel_type``.
    """
    check_tensor(image, "image", trailing=(None, None, None), max_dims=3, floating=True, finite=True)
    height, width, n_channels = image.shape
    if n_channels not in (1, 3, 4):
        raise ValueError(f"image must have shape [H, W, C] with C in (1, 3, 4); got {tuple(image.shape)}")
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty; got {tuple(image.shape)}")
    if compression not in _WRITE_COMPRESSION:
        raise ValueError(f"compression must be one of {sorted(_WRITE_COMPRESSION)}; got {compression!r}")
    if pixel_type not in _WRITE_PIXEL_TYPE:
        raise ValueError(f"pixel_type must be 'half' or 'float'; got {pixel_type!r}")
    code, type_code = _WRITE_COMPRESSION[compression], _WRITE_PIXEL_TYPE[pixel_type]
    dtype = _PIXEL_TYPES[type_code][1]
    peak = float(image.detach().abs().max())
    limit = _HALF_MAX if type_code == 1 else float(np.finfo(np.float32).max)
    if peak > limit:
        hint = "; use pixel_type='float'" if type_code == 1 else ""
        raise ValueError(f"image has values up to {peak:g}, beyond the {pixel_type} range ({limit:g}){hint}")
    values = image.detach().cpu().to(torch.float32).numpy()
    names = {1: ["Y"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}[n_channels]
    order = sorted(range(n_channels), key=lambda c: names[c])  # channels are stored alphabetically
    # [H, C, W] in storage order: each scanline is all of one channel, then the next.
    planes = np.ascontiguousarray(values[:, :, order].transpose(0, 2, 1)).astype(dtype)

    chlist = b"".join(names[c].encode() + b"\0" + struct.pack("<iB3xii", type_code, 0, 1, 1) for c in order) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = struct.pack("<II", MAGIC, 2) + b"".join([
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", bytes([code])),
        _attr("dataWindow", "box2i", window),
        _attr("displayWindow", "box2i", window),
        _attr("lineOrder", "lineOrder", b"\0"),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"

    lines = _LINES_PER_CHUNK[code]
    n_chunks = -(-height // lines)
    chunks = []
    for index in range(n_chunks):
        raw = planes[index * lines:(index + 1) * lines].tobytes()
        if code == 1:
            packed = _rle_encode(_apply_predictor(raw))
        elif code in (2, 3):
            packed = zlib.compress(_apply_predictor(raw), 6)
        else:
            packed = raw
        if len(packed) >= len(raw):  # compression did not pay: store raw, as the OpenEXR library does
            packed = raw
        chunks.append(struct.pack("<ii", index * lines, len(packed)) + packed)
    offset = len(header) + 8 * n_chunks
    table = []
    for chunk in chunks:
        table.append(offset)
        offset += len(chunk)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(np.asarray(table, dtype="<u8").tobytes())
        fh.writelines(chunks)
