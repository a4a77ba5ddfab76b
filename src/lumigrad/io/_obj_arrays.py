"""The OBJ reader's fast path: a whole file parsed with numpy, with no Python loop over vertices or faces.

:func:`parse_obj_arrays` reads the usual layout (``v`` / ``vt`` / ``vn`` / ``f`` statements at the start of
their lines, plain decimal numbers, one corner style in all faces: ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``)
and returns None for anything else, and for every malformed file: the line-by-line reader in ``obj.py`` then
reads it again and is the one that explains what is wrong, naming the line. Only the other statements
(``usemtl``, ``mtllib``, ``o``, ``g``, ``s``, ...) are visited one by one.

How, per chunk of whole lines (:data:`CHUNK_BYTES`, read from the file as it goes, so the byte-level work
arrays stay small): comments are cut; every byte of a line that is not a number is blanked (tags, ignored
statements); per-corner slash counts check the corner style; then ``np.fromstring`` parses the numbers of
``v`` / ``vt`` lines as floats and those of ``f`` lines as integers (ten times faster). Numbers per line
(counted from the starts of whitespace-separated pieces) give each line its slice of the values.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Dict, List, Optional, Tuple, Union

import numpy as np

from ._polygons import fan_triangulate

__all__ = ["ObjArrays", "parse_obj_arrays"]

_SPACE, _TAB, _NL, _SLASH = 32, 9, 10, 47
#: Bytes a numeric line may hold once its tag is blanked (digits, sign, point, exponent, slash, whitespace).
_NUMERIC = np.zeros(256, bool)
_NUMERIC[[ord(c) for c in "0123456789+-.eE/ \t\n"]] = True
_NOT_INTEGER = np.zeros(256, bool)
_NOT_INTEGER[[ord(c) for c in ".eE"]] = True
#: (slashes, double slashes) per corner -> (numbers per corner, has a texture index)
_CORNER_STYLES = {(0, 0): (1, False), (1, 0): (2, True), (2, 1): (2, False), (2, 0): (3, True)}


@dataclass
class ObjArrays:
    """An OBJ file's geometry as arrays, in file order (what ``obj.py`` turns into tensors).

    ``verts [V, 3]`` / ``colors [V, 3]`` (or None) / ``uv [T, 2]`` (already flipped, ``1 - v``) float64;
    ``faces [F, 3]`` / ``uv_faces [F, 3]`` (or None) int64, 0-based; ``material_keys`` the ``usemtl`` names
    in force (None: before any ``usemtl``) and ``face_material [F]`` int64 indices into them;
    ``mtllibs`` ``[(name, line)]`` and ``used`` ``{usemtl name: first line}``; ``v_lines`` / ``vt_lines``
    the line of each ``v`` / ``vt`` (for messages about values that overflow a dtype).
    """

    verts: np.ndarray
    colors: Optional[np.ndarray]
    uv: Optional[np.ndarray]
    faces: np.ndarray
    uv_faces: Optional[np.ndarray]
    material_keys: List[Optional[str]]
    face_material: np.ndarray
    mtllibs: List[Tuple[str, int]]
    used: Dict[str, int]
    v_lines: np.ndarray
    vt_lines: np.ndarray


#: Bytes scanned at once: the byte-level work arrays (a few bytes per byte of text) stay this small.
CHUNK_BYTES = 1 << 20


@dataclass
class _Lines:
    """One chunk of lines, scanned: per line its kind and counts, and the numbers it holds."""

    is_v: np.ndarray
    is_vt: np.ndarray
    is_f: np.ndarray
    numbers: np.ndarray  # numbers per line
    corners: np.ndarray  # whitespace-separated pieces per line before '/' splits them (corners of a face)
    values: np.ndarray   # float64, every number of the chunk's v / vt lines in order
    indices: np.ndarray  # int64, every number of the chunk's f lines in order
    style: Optional[Tuple[int, int]]  # (slashes, double slashes) of every corner; None without faces
    statements: List[Tuple[str, str, int]]  # (mtllib | usemtl, name, 0-based line)


def parse_obj_arrays(source: Union[bytes, BinaryIO], with_materials: bool) -> Optional[ObjArrays]:
    """The geometry of the OBJ text ``source`` (bytes, or a binary file read from its position in chunks of
    whole lines), or None when the fast path does not apply (see the module doc)."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    chunks: List[_Lines] = []
    line0, rest = 0, b""
    while True:
        block = stream.read(CHUNK_BYTES)
        text = rest + block
        if not text:
            break
        cut = text.rfind(b"\n") + 1 if block else len(text)
        if cut == 0:  # no line end in this block: read on
            rest = text
            continue
        text, rest = text[:cut], text[cut:]
        scanned = _scan(text, line0, with_materials)
        del text
        if scanned is None:
            return None
        chunks.append(scanned)
        line0 += scanned.is_v.size
    styles = {c.style for c in chunks if c.style is not None}
    if len(styles) != 1:
        return None
    style = _CORNER_STYLES[styles.pop()]
    cat = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
    is_v, is_vt, is_f = cat("is_v"), cat("is_vt"), cat("is_f")
    numbers_per_line, corners_per_line = cat("numbers"), cat("corners")
    chunks_statements = [st for c in chunks for st in c.statements]
    values = np.concatenate([c.values for c in chunks])
    for c in chunks:
        c.values = None
    indices = np.concatenate([c.indices for c in chunks])
    del chunks
    mtllibs = [(name, k + 1) for kind, name, k in chunks_statements if kind == "mtllib"]
    used: Dict[str, int] = {}
    usemtl_lines: List[int] = []
    usemtl_names: List[str] = []
    for kind, name, k in chunks_statements:
        if kind == "usemtl":
            used.setdefault(name, k + 1)
            usemtl_lines.append(k)
            usemtl_names.append(name)
    in_values = np.where(is_f, 0, numbers_per_line)
    first = np.cumsum(in_values) - in_values  # each v / vt line's first value
    in_indices = np.where(is_f, numbers_per_line, 0)
    first_index = np.cumsum(in_indices) - in_indices  # each f line's first index
    del in_values, in_indices

    v_count, vt_count = int(is_v.sum()), int(is_vt.sum())
    if not v_count:
        return None
    n_v = numbers_per_line[is_v]
    if (n_v < 3).any():
        return None
    verts = values[first[is_v][:, None] + np.arange(3)]
    colors = None
    if bool((n_v == 6).all()):
        colors = values[first[is_v][:, None] + np.arange(3, 6)]
        if not np.isfinite(colors).all():
            return None
    if not np.isfinite(verts).all():
        return None
    uv = None
    if vt_count:
        if (numbers_per_line[is_vt] < 2).any():
            return None
        uv = values[first[is_vt][:, None] + np.arange(2)]
        if not np.isfinite(uv).all():
            return None
        uv[:, 1] = 1.0 - uv[:, 1]

    # Faces: every corner holds `per_corner` numbers; indices resolve against the counts defined so far.
    per_corner, has_uv = style
    f_rows = np.flatnonzero(is_f)
    corners = corners_per_line[f_rows]
    if (corners < 3).any() or (numbers_per_line[f_rows] != per_corner * corners).any():
        return None
    if indices.size != int(per_corner * corners.sum()):
        return None
    table = indices.reshape(-1, per_corner)  # f lines hold nothing but their corners, in order
    del values
    vi = _resolve(table[:, 0], np.repeat(np.cumsum(is_v)[f_rows], corners))
    if vi is None:
        return None
    faces = fan_triangulate(corners, vi)
    uv_faces = None
    if has_uv:
        ti = _resolve(table[:, 1], np.repeat(np.cumsum(is_vt)[f_rows], corners))
        if ti is None:
            return None
        if uv is not None:
            uv_faces = fan_triangulate(corners, ti)
    # usemtl in force at each face line: the last one above it.
    keys: List[Optional[str]] = [None] + usemtl_names
    current = np.searchsorted(np.asarray(usemtl_lines, np.int64), f_rows, side="right")
    face_material = np.repeat(current, corners - 2)
    return ObjArrays(verts, colors, uv, faces, uv_faces, keys, face_material, mtllibs, used,
                     np.flatnonzero(is_v) + 1, np.flatnonzero(is_vt) + 1)


def _scan(data: bytes, line0: int, with_materials: bool) -> Optional[_Lines]:
    """Scan whole lines ``data`` (line ``line0`` first, 0-based); None when the fast path does not apply."""
    if b"#" in data:
        data = re.sub(rb"#[^\n\r]*", b"", data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:  # a lone CR ends a line for Python's text files
            return None
    if not data.endswith(b"\n"):
        data += b"\n"
    size = len(data)
    work = np.empty(size + 2, np.uint8)
    work[:size] = np.frombuffer(data, np.uint8)
    work[size:] = _NL
    ends = np.flatnonzero(work[:size] == _NL)
    starts = np.concatenate([[0], ends[:-1] + 1])
    c0, c1, c2 = work[starts], work[starts + 1], work[starts + 2]
    gap1 = (c1 == _SPACE) | (c1 == _TAB)
    gap2 = (c2 == _SPACE) | (c2 == _TAB)
    is_v = (c0 == ord("v")) & gap1
    is_vt = (c0 == ord("v")) & (c1 == ord("t")) & gap2
    is_vn = (c0 == ord("v")) & (c1 == ord("n")) & gap2
    is_f = (c0 == ord("f")) & gap1
    other = ~(is_v | is_vt | is_vn | is_f) & (starts != ends)

    statements: List[Tuple[str, str, int]] = []
    for k in np.flatnonzero(other).tolist():  # statements other than v / vt / vn / f: few in a mesh file
        parts = data[starts[k]:ends[k]].decode("utf-8", errors="replace").split()
        if not parts:
            continue
        if parts[0] in ("v", "vt", "f"):  # indented, or a tag without values: the line reader explains
            return None
        if with_materials and parts[0] in ("mtllib", "usemtl"):
            name = " ".join(parts[1:])
            if not name:
                return None
            statements.append((parts[0], name, line0 + k))
    del data

    # Blank what is not a number: whole ignored lines, and the tags of numeric lines.
    lengths = np.diff(np.append(starts, size + 2))  # bytes of each line with its end (the last: and the padding)
    if (other | is_vn).any():
        work[np.repeat(other | is_vn, lengths)] = _SPACE
    work[starts[is_v | is_vt | is_f]] = _SPACE
    work[starts[is_vt] + 1] = _SPACE
    if not _NUMERIC[work].all():
        return None

    # Slashes and '.eE' may appear on face lines only.
    in_f = np.repeat(is_f, lengths)
    slash = work == _SLASH
    if (slash & ~in_f).any() or (_NOT_INTEGER[work] & in_f).any():
        return None
    space = (work == _SPACE) | (work == _TAB) | (work == _NL)
    piece_start = ~space
    piece_start[1:] &= space[:-1]
    corner_starts = np.flatnonzero(piece_start & in_f)  # before '/' is blanked: one piece per corner
    corners_per_line = _per_line(piece_start, starts)
    style = None
    if corner_starts.size:
        slashes = np.add.reduceat(slash.view(np.uint8), corner_starts, dtype=np.int64)
        double = np.zeros_like(slash)
        double[:-1] = slash[:-1] & slash[1:]
        doubles = np.add.reduceat(double.view(np.uint8), corner_starts, dtype=np.int64)
        style = (int(slashes[0]), int(doubles[0]))
        if style not in _CORNER_STYLES or (slashes != style[0]).any() or (doubles != style[1]).any():
            return None
    del corner_starts
    work[slash] = _SPACE
    space |= slash
    del slash
    piece_start = ~space
    piece_start[1:] &= space[:-1]
    numbers_per_line = _per_line(piece_start, starts)
    del piece_start, space
    # Indices are parsed as integers (ten times faster than as floats; overflow saturates: out of range).
    face_text = work.copy()
    face_text[~in_f] = _SPACE
    work[in_f] = _SPACE
    del in_f
    values = _numbers(work, np.float64, int(numbers_per_line[~is_f].sum()))
    indices = _numbers(face_text, np.int64, int(numbers_per_line[is_f].sum()))
    if values is None or indices is None:
        return None
    return _Lines(is_v, is_vt, is_f, numbers_per_line, corners_per_line, values, indices, style, statements)


def _numbers(text: np.ndarray, dtype, count: int) -> Optional[np.ndarray]:
    """The ``count`` whitespace-separated numbers of ``text`` (bytes as uint8), or None when they are not that."""
    if not count:  # (numpy refuses text with no number at all)
        return np.zeros(0, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = np.fromstring(text.tobytes(), dtype=dtype, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    return out if out.size == count else None


def _per_line(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """How many of ``flags`` (bool per byte) fall on each line (lines start at ``starts``)."""
    return np.add.reduceat(flags.view(np.uint8), starts, dtype=np.int64)


def _resolve(index: np.ndarray, count: np.ndarray) -> Optional[np.ndarray]:
    """0-based indices of OBJ's 1-based / negative ``index`` (count: how many were defined so far); None when one
    is 0 or out of range."""
    resolved = np.where(index > 0, index - 1, count + index)
    if ((index == 0) | (resolved < 0) | (resolved >= count)).any():
        return None
    return resolved.astype(np.int64)
