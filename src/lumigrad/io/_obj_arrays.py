"""The OBJ reader's fast path: a whole file parsed with numpy, with no Python loop over vertices or faces.

:func:`parse_obj_arrays` reads the usual layout (``v`` / ``vt`` / ``vn`` / ``f`` statements at the start of
their lines, plain decimal numbers, one corner style in all faces: ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``)
and returns None for anything else, and for every malformed file: the line-by-line reader in ``obj.py`` then
reads it again and is the one that explains what is wrong, naming the line. Only the other statements
(``usemtl``, ``mtllib``, ``o``, ``g``, ``s``, ...) are visited one by one.

How: comments are cut; every byte of a line that is not a number is blanked (tags, ignored statements); the
rest is parsed by one ``np.fromstring``. Numbers per line (counted from the starts of whitespace-separated
pieces) give each line its slice of the values, and per-corner slash counts check the corner style.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

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


def parse_obj_arrays(data: bytes, with_materials: bool) -> Optional[ObjArrays]:
    """The geometry of the OBJ text ``data``, or None when the fast path does not apply (see the module doc)."""
    if b"#" in data:
        data = re.sub(rb"#[^\n\r]*", b"", data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:  # a lone CR ends a line for Python's text files
            return None
    if not data.endswith(b"\n"):
        data += b"\n"
    work = np.frombuffer(data + b"\n\n", np.uint8).copy()
    size = len(data)
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

    mtllibs: List[Tuple[str, int]] = []
    used: Dict[str, int] = {}
    usemtl_lines: List[int] = []
    usemtl_names: List[str] = []
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
            if parts[0] == "mtllib":
                mtllibs.append((name, k + 1))
            else:
                used.setdefault(name, k + 1)
                usemtl_lines.append(k)
                usemtl_names.append(name)

    # Blank what is not a number: whole ignored lines, and the tags of numeric lines.
    delta = np.zeros(size + 2, np.int8)
    blank_all = other | is_vn
    delta[starts[blank_all]] += 1
    delta[ends[blank_all]] -= 1
    tag_len = np.where(is_vt, 2, 1)
    tagged = is_v | is_vt | is_f
    delta[starts[tagged]] += 1
    delta[(starts + tag_len)[tagged]] -= 1
    work[np.cumsum(delta, dtype=np.int8).view(bool)] = _SPACE
    if not _NUMERIC[work].all():
        return None
    del delta

    # Bytes of face lines; slashes and '.eE' may appear there only.
    fdelta = np.zeros(size + 2, np.int8)
    fdelta[starts[is_f]] += 1
    fdelta[ends[is_f]] -= 1
    in_f = np.cumsum(fdelta, dtype=np.int8).view(bool)
    del fdelta
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
        del double
        key = (int(slashes[0]), int(doubles[0]))
        if key not in _CORNER_STYLES or (slashes != key[0]).any() or (doubles != key[1]).any():
            return None
        style = _CORNER_STYLES[key]
    del corner_starts, in_f
    work[slash] = _SPACE
    space |= slash
    del slash
    piece_start = ~space
    piece_start[1:] &= space[:-1]
    numbers_per_line = _per_line(piece_start, starts)
    del piece_start, space
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(work.tobytes(), dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    del work
    if values.size != int(numbers_per_line.sum()):
        return None
    first = np.cumsum(numbers_per_line) - numbers_per_line  # each line's first value

    v_count, vt_count = int(is_v.sum()), int(is_vt.sum())
    if not v_count or not is_f.any():
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
    take = np.repeat(first[f_rows], per_corner * corners)
    take += np.arange(take.size) - np.repeat(np.cumsum(per_corner * corners) - per_corner * corners,
                                             per_corner * corners)
    table = values[take].reshape(-1, per_corner)
    del take
    v_before = np.cumsum(is_v)[f_rows]
    vi = _resolve(table[:, 0], np.repeat(v_before, corners))
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
