"""Mitsuba's ``.serialized`` meshes: read and write.

Format (Mitsuba 0.4 - 3; little-endian): each mesh is ``uint16 0x041C`` (the format), ``uint16`` version (3 or
4), then a zlib stream holding ``uint32`` flags (``0x1`` vertex normals, ``0x2`` texture coordinates, ``0x8``
vertex colours, ``0x10`` face normals, ``0x1000`` single, ``0x2000`` double precision), in version 4 the
mesh's name (utf-8, null-terminated), ``uint64`` vertex and triangle counts, the positions ``[V, 3]``, then the
normals ``[V, 3]``, texture coordinates ``[V, 2]`` and colours ``[V, 3]`` that the flags announce, and the
triangles ``[F, 3]`` as ``uint32`` (``uint64`` where ``V`` exceeds ``2^32 - 1``). A file may hold several meshes
one after another; it ends with each mesh's byte offset (``uint64``, ``uint32`` in version 3) and the
``uint32`` number of meshes. Mitsuba's XML names one by ``shape_index``.

Conventions: the texture coordinates are Mitsuba's, whose origin is the image's top-left corner as lumigrad's
(``lumigrad.conventions``), so they are read and written as stored. Normals and colours are returned as
stored. Malformed files raise :class:`SerializedError` (a ``ValueError``) naming the file: a bad header or
version, an index outside the file's meshes, a corrupt or truncated stream, triangle indices out of range.
Counts are checked against the data as it inflates, so a file that claims more than it holds is refused
without allocating what it claims.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence  # noqa: F401  (Dict: the inherited fields' annotations)

import numpy as np
import torch

from .._checks import check_indices, check_tensor
from ..shading.material import Material  # noqa: F401  (the inherited fields' annotations, for the API reference)
from .mesh_data import MeshData

__all__ = ["SerializedError", "SerializedMesh", "read_serialized", "read_serialized_bytes", "serialized_mesh_count",
           "write_serialized", "write_serialized_shapes"]

FORMAT = 0x041C
VERSIONS = (3, 4)
HAS_NORMALS, HAS_TEXCOORDS, HAS_COLORS, FACE_NORMALS = 0x0001, 0x0002, 0x0008, 0x0010
SINGLE_PRECISION, DOUBLE_PRECISION = 0x1000, 0x2000
MAX_NAME_BYTES = 1 << 16
#: zlib's largest expansion (1032:1): a mesh claiming more than this times its compressed size is refused
MAX_RATIO = 1032
_INPUT_SLICE = 1 << 16


class SerializedError(ValueError):
    """A malformed Mitsuba ``.serialized`` file; the message names the file."""


@dataclass
class SerializedMesh(MeshData):
    """:class:`MeshData` with the mesh's ``name`` as stored (version 4; empty in version 3) and ``face_normals``,
    the file's flag asking for flat shading (Mitsuba 3 itself reads only the XML's ``face_normals``)."""

    name: str = ""
    face_normals: bool = False


class _Inflater:
    """Exactly ``n`` bytes at a time from the zlib stream of one mesh (``data``: its compressed bytes), inflating
    no more than asked for and feeding the stream bounded slices of its input. A mesh may not claim more than
    zlib's largest ratio (:data:`MAX_RATIO`) of its compressed size: a file's counts are checked against that
    before anything is allocated for them."""

    def __init__(self, data: memoryview, path):
        self.stream, self.data, self.pos, self.pending = zlib.decompressobj(), data, 0, b""
        self.buf, self.path, self.taken = bytearray(), path, 0
        self.limit = MAX_RATIO * len(data) + 1024

    def _inflate(self, want: int, what: str) -> None:
        """Inflate up to ``want`` more bytes into the buffer (at least one unless the stream or file ends)."""
        if self.stream.eof:
            raise SerializedError(f"{self.path}: truncated: the mesh's stream ends inside the {what}")
        data = self.pending
        if not data:
            data = self.data[self.pos:self.pos + _INPUT_SLICE].tobytes()
            self.pos += len(data)
        if not data:
            raise SerializedError(f"{self.path}: truncated: the file ends inside the {what}")
        try:
            chunk = self.stream.decompress(data, want)
        except zlib.error as e:
            raise SerializedError(f"{self.path}: corrupt compressed data in the {what} ({e})") from None
        self.pending = self.stream.unconsumed_tail
        self.buf += chunk

    def take(self, n: int, what: str) -> bytearray:
        if self.taken + n > self.limit:
            raise SerializedError(f"{self.path}: the {what} claim {n} bytes, more than the mesh's "
                                  f"{len(self.data)} compressed bytes can hold")
        self.taken += n
        while len(self.buf) < n:
            self._inflate(n - len(self.buf), what)
        if len(self.buf) == n:
            out, self.buf = self.buf, bytearray()
            return out
        out = self.buf[:n]
        del self.buf[:n]
        return out

    def name(self, limit: int) -> bytes:
        """The bytes before the next NUL (which is consumed), at most ``limit`` of them."""
        while (end := self.buf.find(b"\0")) < 0:
            if len(self.buf) > limit:
                raise SerializedError(f"{self.path}: the mesh name runs past {limit} bytes without its end")
            self._inflate(256, "name")
        if end > limit:
            raise SerializedError(f"{self.path}: the mesh name runs past {limit} bytes without its end")
        out = bytes(self.buf[:end])
        del self.buf[:end + 1]
        self.taken += end + 1
        return out

    def array(self, count: int, dtype: str, what: str) -> np.ndarray:
        return np.frombuffer(self.take(count * np.dtype(dtype).itemsize, what), dtype=dtype)


def _header(data: bytes, pos: int, path) -> int:
    """The version of the mesh header at ``pos``."""
    if len(data) < pos + 4:
        raise SerializedError(f"{path}: truncated: no mesh header at byte {pos}")
    magic, version = struct.unpack_from("<HH", data, pos)
    if magic != FORMAT:
        raise SerializedError(f"{path}: not a Mitsuba serialized mesh (format 0x{magic:04X} at byte {pos}; "
                              f"expected 0x{FORMAT:04X})")
    if version not in VERSIONS:
        raise SerializedError(f"{path}: unsupported serialized version {version} (lumigrad reads 3 and 4)")
    return version


def _offsets(data: bytes, version: int, path) -> List[int]:
    """Each mesh's byte offset, from the dictionary at the end of the file."""
    if len(data) < 8:
        raise SerializedError(f"{path}: truncated: no end-of-file dictionary")
    (count,) = struct.unpack_from("<I", data, len(data) - 4)
    size = 8 if version == 4 else 4
    if count == 0 or count * size + 4 > len(data):
        raise SerializedError(f"{path}: the end-of-file dictionary claims {count} meshes, more than the file holds")
    start = len(data) - 4 - count * size
    offsets = list(struct.unpack_from(f"<{count}{'Q' if size == 8 else 'I'}", data, start))
    for k, off in enumerate(offsets):
        if off >= start:
            raise SerializedError(f"{path}: mesh {k}'s offset {off} lies outside the file's meshes")
    return offsets


def serialized_mesh_count(path: str | os.PathLike) -> int:
    """How many meshes the ``.serialized`` file ``path`` holds (its end-of-file dictionary)."""
    data = Path(path).read_bytes()
    return len(_offsets(data, _header(data, 0, path), path))


def read_serialized(path: str | os.PathLike, shape_index: int = 0, dtype=torch.float32) -> SerializedMesh:
    """Mesh ``shape_index`` of the Mitsuba ``.serialized`` file ``path`` (see the module docstring).

    Args:
        path: the file.
        shape_index: which mesh (0 the first; Mitsuba's XML property of that name).
        dtype: floating dtype of the returned positions, normals, texture coordinates and colours.

    Returns:
        A :class:`SerializedMesh`: ``verts``, ``faces``, and where stored ``normals``, ``uv`` (with ``uv_faces =
        faces``), ``vertex_colors``; ``name``.

    Raises:
        SerializedError: malformed or truncated files, a ``shape_index`` the file does not hold.
    """
    if isinstance(shape_index, bool) or not isinstance(shape_index, (int, np.integer)) or shape_index < 0:
        raise ValueError(f"shape_index must be an integer >= 0; got {shape_index!r}")
    return read_serialized_bytes(Path(path).read_bytes(), shape_index, dtype=dtype, path=path)


def read_serialized_bytes(data: bytes, shape_index: int = 0, dtype=torch.float32, path="<bytes>") -> SerializedMesh:
    """:func:`read_serialized` of a file's ``data`` already in memory (``path`` names it in errors): a reader of
    several meshes of one file reads it once."""
    view = memoryview(data)
    version = _header(data, 0, path)
    offset, end = 0, len(data)
    if shape_index > 0 or serialized_has_dictionary(data, version):
        offsets = _offsets(data, version, path)
        if shape_index >= len(offsets):
            raise SerializedError(f"{path}: shape_index {shape_index} is out of range (the file holds "
                                  f"{len(offsets)} meshes: 0 to {len(offsets) - 1})")
        offset = offsets[shape_index]
        later = [o for o in offsets if o > offset]
        end = min(later) if later else len(data) - 4 - len(offsets) * (8 if version == 4 else 4)
        version = _header(data, offset, path)
    z = _Inflater(view[offset + 4:end], path)
    (flags,) = struct.unpack("<I", z.take(4, "flags"))
    name = z.name(MAX_NAME_BYTES) if version == 4 else b""
    num_verts, num_faces = struct.unpack("<QQ", z.take(16, "counts"))
    real = "<f8" if flags & DOUBLE_PRECISION else "<f4"
    verts = z.array(num_verts * 3, real, "positions").reshape(-1, 3)
    normals = z.array(num_verts * 3, real, "normals").reshape(-1, 3) if flags & HAS_NORMALS else None
    uv = z.array(num_verts * 2, real, "texture coordinates").reshape(-1, 2) if flags & HAS_TEXCOORDS else None
    colors = z.array(num_verts * 3, real, "colours").reshape(-1, 3) if flags & HAS_COLORS else None
    index = "<u8" if num_verts > 0xFFFFFFFF else "<u4"
    faces = z.array(num_faces * 3, index, "triangles").reshape(-1, 3)
    if faces.size and int(faces.max()) >= num_verts:
        raise SerializedError(f"{path}: triangle index {int(faces.max())} is out of range for {num_verts} "
                              "vertices")
    t = lambda a: None if a is None else torch.from_numpy(a).to(dtype)  # noqa: E731
    faces_t = torch.from_numpy(faces.astype(np.int64))
    return SerializedMesh(verts=t(verts), faces=faces_t, uv=t(uv), uv_faces=None if uv is None else faces_t,
                          normals=t(normals), vertex_colors=t(colors),
                          name=name.decode("utf-8", errors="replace"), face_normals=bool(flags & FACE_NORMALS))


def serialized_has_dictionary(data: bytes, version: int) -> bool:
    """Whether ``data`` ends with a plausible end-of-file dictionary (Mitsuba's writers always add one; a
    hand-made single mesh may lack it)."""
    if len(data) < 12:
        return False
    (count,) = struct.unpack_from("<I", data, len(data) - 4)
    size = 8 if version == 4 else 4
    if count == 0 or count * size + 4 > len(data):
        return False
    (first,) = struct.unpack_from("<Q" if size == 8 else "<I", data, len(data) - 4 - count * size)
    return first == 0


def _mesh_bytes(mesh: MeshData, name: str, version: int, path) -> bytes:
    encoded = name.encode("utf-8")
    if b"\0" in encoded or len(encoded) > MAX_NAME_BYTES:
        raise ValueError(f"{path}: a serialized mesh's name must hold no NUL and at most {MAX_NAME_BYTES} bytes; "
                         f"got {len(encoded)} bytes")
    verts = mesh.verts.detach().cpu()
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True)
    faces = check_tensor(mesh.faces, "faces", trailing=(None, 3), max_dims=2, floating=False)
    check_indices(faces, "faces", verts.shape[0])
    double = verts.dtype == torch.float64
    real = "<f8" if double else "<f4"
    flags = DOUBLE_PRECISION if double else SINGLE_PRECISION
    blocks = [verts]
    for attr, bit, width in (("normals", HAS_NORMALS, 3), ("uv", HAS_TEXCOORDS, 2), ("vertex_colors", HAS_COLORS, 3)):
        value = getattr(mesh, attr, None)
        if value is None:
            continue
        if attr == "uv" and mesh.uv_faces is not None and not torch.equal(mesh.uv_faces, faces):
            raise ValueError(f"{path}: a serialized mesh keeps one texture coordinate per vertex (uv_faces must "
                             "equal faces)")
        check_tensor(value, attr, trailing=(verts.shape[0], width), max_dims=2, floating=True)
        flags |= bit
        blocks.append(value.detach().cpu())
    if getattr(mesh, "face_normals", False):
        flags |= FACE_NORMALS
    body = struct.pack("<I", flags)
    if version == 4:
        body += encoded + b"\0"
    body += struct.pack("<QQ", verts.shape[0], faces.shape[0])
    body += b"".join(b.numpy().astype(real).tobytes() for b in blocks)
    body += faces.detach().cpu().numpy().astype("<u8" if verts.shape[0] > 0xFFFFFFFF else "<u4").tobytes()
    return struct.pack("<HH", FORMAT, version) + zlib.compress(body)


def write_serialized_shapes(path: str | os.PathLike, meshes: Sequence[MeshData], *, version: int = 4) -> None:
    """Write ``meshes`` (each a :class:`MeshData` / :class:`SerializedMesh`: ``verts``, ``faces``, optional
    ``normals``, per-vertex ``uv``, ``vertex_colors``, ``name``) as one ``.serialized`` file, mesh ``k`` at
    ``shape_index`` ``k``. float64 positions are stored in double precision, others in single."""
    if version not in VERSIONS:
        raise ValueError(f"version must be 3 or 4; got {version!r}")
    if len(meshes) == 0:
        raise ValueError("meshes is empty: a serialized file holds at least one mesh")
    parts, offsets, at = [], [], 0
    for mesh in meshes:
        blob = _mesh_bytes(mesh, getattr(mesh, "name", "") or "", version, path)
        offsets.append(at)
        parts.append(blob)
        at += len(blob)
    table = struct.pack(f"<{len(offsets)}{'Q' if version == 4 else 'I'}", *offsets)
    Path(path).write_bytes(b"".join(parts) + table + struct.pack("<I", len(offsets)))


def write_serialized(path: str | os.PathLike, verts: torch.Tensor, faces: torch.Tensor, *,
                     normals: Optional[torch.Tensor] = None, uv: Optional[torch.Tensor] = None,
                     colors: Optional[torch.Tensor] = None, name: str = "", version: int = 4) -> None:
    """Write one mesh as a ``.serialized`` file (:func:`write_serialized_shapes` writes several): ``verts [V, 3]``,
    ``faces [F, 3]``, optional per-vertex ``normals [V, 3]``, ``uv [V, 2]`` (top-left origin, Mitsuba's and
    lumigrad's), ``colors [V, 3]``."""
    write_serialized_shapes(path, [SerializedMesh(verts=verts, faces=faces, normals=normals, uv=uv,
                                                  vertex_colors=colors, name=name)], version=version)
