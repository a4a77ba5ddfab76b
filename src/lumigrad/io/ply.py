"""Stanford PLY meshes: read (ascii, binary little- and big-endian) and write.

Format (Greg Turk's PLY, as written by MeshLab, Blender, Open3D, trimesh and 3D scanners): a text header
``ply`` / ``format ascii|binary_little_endian|binary_big_endian 1.0`` / ``element NAME COUNT`` followed by its
``property TYPE NAME`` or ``property list COUNT_TYPE ITEM_TYPE NAME`` lines / ``end_header``, then every
element's rows in header order. Scalar types: ``char uchar short ushort int uint float double`` and their
aliases ``int8 uint8 int16 uint16 int32 uint32 float32 float64``.

What is read: the ``vertex`` element's ``x y z`` (required), ``nx ny nz``, colours ``red green blue [alpha]``
(or ``diffuse_red ...``), texture coordinates ``s t`` / ``u v`` / ``texture_u texture_v`` / ``texture_s
texture_t``, every other vertex property in ``extra``; the ``face`` element's ``vertex_indices`` (or
``vertex_index``) list, polygons fan-triangulated. Other face properties and other elements (``edge``,
``material``, ...) are parsed for their size, so binary offsets stay right, and then dropped.

Conventions converted here, once: texture coordinates follow OpenGL's bottom-left origin in PLY files (as in
OBJ), so ``v -> 1 - v`` on read and on write (lumigrad's origin is top-left, see ``lumigrad.conventions``);
the flip is computed in float64 and round-trips exactly for multiples of the storage type's epsilon
in [0, 1]. Integer colours are divided by their type's maximum (``uchar / 255``),
float colours are kept as they are.

Malformed files raise :class:`PlyError` (a ``ValueError``) naming the file: bad magic, unknown format or type,
truncated data, face indices out of range, two properties of one element with the same name, and declared
element counts that the file is too small to hold (checked on the header, before anything is allocated). NaN
and Inf coordinates are read as stored, not refused; validate with ``lumigrad.Mesh`` (which requires finite
vertices) if that matters.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np
import torch

from .._checks import check_indices, check_tensor
from ._ply_rows import ascii_rows, binary_rows
from ._polygons import fan_triangulate
from .mesh_data import MeshData

MAX_HEADER_BYTES = 1 << 20

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_UV_NAMES = (("s", "t"), ("u", "v"), ("texture_u", "texture_v"), ("texture_s", "texture_t"))
_COLOR_NAMES = (("red", "green", "blue", "alpha"), ("diffuse_red", "diffuse_green", "diffuse_blue", "diffuse_alpha"))


class PlyError(ValueError):
    """Raised for a malformed PLY file; the message names the file."""


#: The PLY reader's name for :class:`~lumigrad.io.MeshData`, the record every mesh reader returns (PLY fills
#: ``verts``, ``faces`` (``[0, 3]`` for a point cloud), ``normals``, ``vertex_colors`` (``[V, 3]`` or ``[V, 4]``,
#: integer types divided by their maximum, floats as stored), per-vertex ``uv`` with ``uv_faces = faces``, and
#: ``extra``: other vertex properties by name, ``[V]`` tensors, floats in the requested dtype, integers int64).
PlyMesh = MeshData


@dataclass
class _Prop:
    name: str
    dtype: str  # numpy type code without byte order, e.g. "f4"
    count_dtype: Optional[str] = None  # set for list properties


@dataclass
class _Element:
    name: str
    count: int
    props: List[_Prop]


# ------------------------------------------------------------------------------------------------ header
def _parse_header(data: bytes, path) -> Tuple[Optional[str], List[_Element], int]:
    """Return ``(byte order or None for ascii, elements, offset of the body)``."""
    if not (data.startswith(b"ply\n") or data.startswith(b"ply\r\n")):
        raise PlyError(f"{path}: not a PLY file (it must start with a 'ply' line)")
    end = data.find(b"\nend_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise PlyError(f"{path}: truncated or malformed header (no 'end_header' line)")
    body = data.find(b"\n", end + 1)
    body = len(data) if body < 0 else body + 1
    if data[end + 1:body].strip() != b"end_header":
        raise PlyError(f"{path}: malformed 'end_header' line {data[end + 1:body]!r}")
    order, seen_format = None, False
    elements: List[_Element] = []
    for lineno, raw in enumerate(data[:end].split(b"\n")[1:], 2):
        line = raw.decode("ascii", errors="replace").strip()
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        where = f"{path}: header line {lineno} {line!r}"
        if parts[0] == "format":
            if len(parts) != 3 or parts[1] not in _FORMATS:
                raise PlyError(f"{where}: unknown format; expected ascii, binary_little_endian or "
                               "binary_big_endian")
            order, seen_format = _FORMATS[parts[1]], True
        elif parts[0] == "element":
            if len(parts) != 3:
                raise PlyError(f"{where}: expected 'element NAME COUNT'")
            try:
                count = int(parts[2])
            except ValueError:
                raise PlyError(f"{where}: element count is not an integer") from None
            if count < 0:
                raise PlyError(f"{where}: negative element count")
            elements.append(_Element(parts[1], count, []))
        elif parts[0] == "property":
            if not elements:
                raise PlyError(f"{where}: property before any element")
            if parts[-1] in {p.name for p in elements[-1].props}:  # values are keyed by name: one column each
                raise PlyError(f"{where}: element {elements[-1].name!r} already has a property {parts[-1]!r}")
            if len(parts) == 3:
                elements[-1].props.append(_Prop(parts[2], _type(parts[1], where)))
            elif len(parts) == 5 and parts[1] == "list":
                count_t = _type(parts[2], where)
                if count_t[0] == "f":
                    raise PlyError(f"{where}: a list count must have an integer type")
                elements[-1].props.append(_Prop(parts[4], _type(parts[3], where), count_t))
            else:
                raise PlyError(f"{where}: expected 'property TYPE NAME' or 'property list COUNT_TYPE TYPE NAME'")
        else:
            raise PlyError(f"{where}: unknown header keyword {parts[0]!r}")
    if not seen_format:
        raise PlyError(f"{path}: the header has no 'format' line")
    # Every row takes at least some bytes: refuse counts the file cannot hold, before allocating anything.
    need = 0
    for el in elements:
        if el.count and not el.props:
            raise PlyError(f"{path}: element {el.name!r} declares {el.count} rows but no properties")
        if order is None:
            row = 2 * len(el.props)  # one token of >= 1 character and one separator per property
        else:
            row = sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in el.props)
        need += el.count * row
    available = len(data) - body + (1 if order is None else 0)  # ascii: the last token may lack a newline
    if need > available:
        raise PlyError(f"{path}: the header declares {', '.join(f'{e.count} {e.name}' for e in elements)} rows, "
                       f"which need at least {need} bytes, but only {len(data) - body} follow the header "
                       "(truncated or corrupt file)")
    return order, elements, body


def _type(name: str, where: str) -> str:
    if name not in _TYPES:
        raise PlyError(f"{where}: unknown type {name!r}; expected one of {', '.join(_TYPES)}")
    return _TYPES[name]


# -------------------------------------------------------------------------------------------------- body
# An element's parsed values: scalars -> np.ndarray [N]; lists -> (counts [N] int64, flat items [sum counts]).
def _read_binary(data: bytes, pos: int, el: _Element, order: str, path):
    n = el.count
    if n == 0:
        return _empty(el), pos
    lists = [p for p in el.props if p.count_dtype]
    # Fast path: every list in this element has the length it has in the first row (triangle or quad meshes).
    first, _ = _binary_rows(data, pos, el, order, path, 1)
    lengths = [int(first[p.name][0][0]) for p in lists]
    fields = []
    for k, p in enumerate(el.props):
        if p.count_dtype is None:
            fields.append((f"s{k}", order + p.dtype))
        else:
            fields.append((f"c{k}", order + p.count_dtype))
            m = lengths[lists.index(p)]
            if m:
                fields.append((f"l{k}", order + p.dtype, (m,)))
    row = np.dtype(fields)
    if pos + n * row.itemsize <= len(data):
        arr = np.frombuffer(data, row, n, pos)
        uniform = all((arr[f"c{k}"] == lengths[lists.index(p)]).all()
                      for k, p in enumerate(el.props) if p.count_dtype)
        if uniform:
            out = {}
            for k, p in enumerate(el.props):
                if p.count_dtype is None:
                    out[p.name] = arr[f"s{k}"].astype(p.dtype)
                else:
                    m = lengths[lists.index(p)]
                    items = arr[f"l{k}"].astype(p.dtype).reshape(-1) if m else np.zeros(0, p.dtype)
                    out[p.name] = (np.full(n, m, np.int64), items)
            return out, pos + n * row.itemsize
    elif not lists:
        raise PlyError(f"{path}: truncated in element {el.name!r} (needs {n * row.itemsize} bytes at offset {pos}, "
                       f"the file has {len(data)})")
    parsed = binary_rows(data, pos, el.props, order, n)  # lists of varying lengths, without a loop over rows
    return parsed if parsed is not None else _binary_rows(data, pos, el, order, path, n)


def _binary_rows(data: bytes, pos: int, el: _Element, order: str, path, n: int):
    """Row-by-row binary parse of ``n`` rows (variable-length lists); return ``(values, new position)``."""
    scalars = {p.name: [] for p in el.props if p.count_dtype is None}
    counts = {p.name: [] for p in el.props if p.count_dtype}
    items = {p.name: [] for p in el.props if p.count_dtype}
    size = len(data)
    for i in range(n):
        for p in el.props:
            if p.count_dtype is None:
                fmt = order + _STRUCT[p.dtype]
                if pos + struct.calcsize(fmt) > size:
                    raise PlyError(f"{path}: truncated in element {el.name!r} row {i} (property {p.name!r})")
                scalars[p.name].append(struct.unpack_from(fmt, data, pos)[0])
                pos += struct.calcsize(fmt)
            else:
                cfmt = order + _STRUCT[p.count_dtype]
                if pos + struct.calcsize(cfmt) > size:
                    raise PlyError(f"{path}: truncated in element {el.name!r} row {i} (list {p.name!r})")
                m = struct.unpack_from(cfmt, data, pos)[0]
                pos += struct.calcsize(cfmt)
                if m < 0:
                    raise PlyError(f"{path}: element {el.name!r} row {i}: negative list length {m}")
                isize = np.dtype(p.dtype).itemsize
                if pos + m * isize > size:
                    raise PlyError(f"{path}: truncated in element {el.name!r} row {i} (list {p.name!r} of {m})")
                counts[p.name].append(m)
                items[p.name].append(np.frombuffer(data, order + p.dtype, m, pos))
                pos += m * isize
    out = {}
    for p in el.props:
        if p.count_dtype is None:
            out[p.name] = np.array(scalars[p.name], dtype=p.dtype)
        else:
            flat = np.concatenate(items[p.name]).astype(p.dtype) if items[p.name] else np.zeros(0, p.dtype)
            out[p.name] = (np.array(counts[p.name], dtype=np.int64), flat)
    return out, pos


def _read_ascii(tokens: list, pos: int, el: _Element, path):
    n = el.count
    if n == 0:
        return _empty(el), pos
    lists = [p for p in el.props if p.count_dtype]
    if not lists:
        width = len(el.props)
        if pos + n * width > len(tokens):
            raise PlyError(f"{path}: truncated in element {el.name!r} (needs {n * width} values, "
                           f"{len(tokens) - pos} left)")
        table = _numbers(tokens[pos:pos + n * width], path, el).reshape(n, width)
        return {p.name: _cast(table[:, k], p.dtype, path, el) for k, p in enumerate(el.props)}, pos + n * width
    # Fast path: every row has the first row's list lengths.
    first, _ = _ascii_rows(tokens, pos, el, path, 1)
    lengths = [int(first[p.name][0][0]) for p in lists]
    width = len(el.props) - len(lists) + sum(1 + m for m in lengths)
    if pos + n * width <= len(tokens):
        try:
            table = np.array(tokens[pos:pos + n * width]).astype(np.float64).reshape(n, width)
        except ValueError:
            table = None
        if table is not None:
            cols, col = {}, 0
            for p in el.props:
                cols[p.name] = col
                col += 1 + (lengths[lists.index(p)] if p.count_dtype else 0)
            if all((table[:, cols[p.name]] == lengths[lists.index(p)]).all() for p in lists):
                out = {}
                for p in el.props:
                    c = cols[p.name]
                    if p.count_dtype is None:
                        out[p.name] = _cast(table[:, c], p.dtype, path, el)
                    else:
                        m = lengths[lists.index(p)]
                        out[p.name] = (np.full(n, m, np.int64),
                                       _cast(table[:, c + 1:c + 1 + m].reshape(-1), p.dtype, path, el))
                return out, pos + n * width
    try:
        values = np.array(tokens[pos:]).astype(np.float64)
    except ValueError:
        values = None
    parsed = None if values is None else ascii_rows(values, el.props, n)
    if parsed is None:
        return _ascii_rows(tokens, pos, el, path, n)  # names the row that does not parse
    raw, used = parsed
    out = {p.name: _cast(raw[p.name], p.dtype, path, el) if p.count_dtype is None else
           (raw[p.name][0], _cast(raw[p.name][1], p.dtype, path, el)) for p in el.props}
    return out, pos + used


def _ascii_rows(tokens: list, pos: int, el: _Element, path, n: int):
    scalars = {p.name: [] for p in el.props if p.count_dtype is None}
    counts = {p.name: [] for p in el.props if p.count_dtype}
    items = {p.name: [] for p in el.props if p.count_dtype}
    size = len(tokens)
    for i in range(n):
        for p in el.props:
            if pos >= size:
                raise PlyError(f"{path}: truncated in element {el.name!r} row {i} (property {p.name!r})")
            if p.count_dtype is None:
                scalars[p.name].append(tokens[pos])
                pos += 1
                continue
            try:
                m = int(tokens[pos])
            except ValueError:
                raise PlyError(f"{path}: element {el.name!r} row {i}: list length {tokens[pos]!r} is not an "
                               "integer") from None
            if m < 0 or pos + 1 + m > size:
                raise PlyError(f"{path}: element {el.name!r} row {i}: list {p.name!r} of {m} values is negative "
                               "or truncated")
            counts[p.name].append(m)
            items[p.name].extend(tokens[pos + 1:pos + 1 + m])
            pos += 1 + m
    out = {}
    for p in el.props:
        if p.count_dtype is None:
            out[p.name] = _cast(_numbers(scalars[p.name], path, el), p.dtype, path, el)
        else:
            out[p.name] = (np.array(counts[p.name], dtype=np.int64),
                           _cast(_numbers(items[p.name], path, el), p.dtype, path, el))
    return out, pos


def _numbers(tokens: list, path, el: _Element) -> np.ndarray:
    if not tokens:
        return np.zeros(0, np.float64)
    try:
        return np.array(tokens).astype(np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise PlyError(f"{path}: element {el.name!r}: {bad!r} is not a number") from None


def _is_number(token) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _cast(values: np.ndarray, code: str, path, el: _Element) -> np.ndarray:
    if code[0] == "f":
        return values.astype(code)
    info = np.iinfo(code)
    finite = values[np.isfinite(values)]
    if finite.size != values.size or (finite != np.round(finite)).any() or \
            (values.size and (values.min() < info.min or values.max() > info.max)):
        raise PlyError(f"{path}: element {el.name!r} holds a value that is not a {code} integer")
    return values.astype(code)


def _empty(el: _Element):
    return {p.name: np.zeros(0, p.dtype) if p.count_dtype is None else (np.zeros(0, np.int64), np.zeros(0, p.dtype))
            for p in el.props}


# ------------------------------------------------------------------------------------------------ public
def read_ply(path: str | os.PathLike, dtype=torch.float32) -> PlyMesh:
    """Read the mesh (or point cloud) in ``path``; see the module docstring for what is read.

    Args:
        path: a ``.ply`` file, ascii or binary (either byte order).
        dtype: floating dtype of the returned positions, normals, colours, uv and float extras.

    Returns:
        A :class:`PlyMesh`. For example the ascii file ``ply / format ascii 1.0 / element vertex 4 / property float
        x / property float y / property float z / element face 1 / property list uchar int vertex_indices /
        end_header / 0 0 0 / 1 0 0 / 1 1 0 / 0 1 0 / 4 0 1 2 3`` gives ``faces = [[0, 1, 2], [0, 2, 3]]``.

    Raises:
        PlyError: malformed, truncated or inconsistent files (the message names ``path``).
    """
    with open(path, "rb") as fh:
        data = fh.read()
    order, elements, pos = _parse_header(data, path)
    tokens = data[pos:].split() if order is None else None
    values: Dict[str, dict] = {}
    cursor = 0 if order is None else pos
    for el in elements:
        if order is None:
            parsed, cursor = _read_ascii(tokens, cursor, el, path)
        else:
            parsed, cursor = _read_binary(data, cursor, el, order, path)
        values.setdefault(el.name, parsed)
    with np.errstate(invalid="ignore"):  # NaN (signalling NaN too) is read as stored, without a warning
        return _assemble(values, elements, path, dtype)


def _assemble(values: Dict[str, dict], elements: List[_Element], path, dtype) -> PlyMesh:
    if "vertex" not in values:
        raise PlyError(f"{path}: no 'vertex' element")
    vprops = next(e for e in elements if e.name == "vertex").props
    if any(p.count_dtype for p in vprops if p.name in ("x", "y", "z")) or \
            not all(n in values["vertex"] for n in ("x", "y", "z")):
        raise PlyError(f"{path}: the vertex element needs scalar properties x, y and z")
    vert = {p.name: values["vertex"][p.name] for p in vprops if p.count_dtype is None}
    used = set()

    def take(names) -> Optional[torch.Tensor]:
        if not all(n in vert for n in names):
            return None
        used.update(names)
        return torch.from_numpy(np.stack([vert[n].astype(np.float64) for n in names], -1)).to(dtype)

    verts = take(("x", "y", "z"))
    num_verts = verts.shape[0]
    normals = take(("nx", "ny", "nz"))
    colors = None
    for names in _COLOR_NAMES:
        if all(n in vert for n in names[:3]):
            names = names if names[3] in vert else names[:3]
            cols = []
            for n in names:
                v = vert[n].astype(np.float64)
                cols.append(v if vert[n].dtype.kind == "f" else v / np.iinfo(vert[n].dtype).max)
            used.update(names)
            colors = torch.from_numpy(np.stack(cols, -1)).to(dtype)
            break
    uv = None
    for names in _UV_NAMES:
        if all(n in vert for n in names):
            st = np.stack([vert[n].astype(np.float64) for n in names], -1)
            st[:, 1] = 1.0 - st[:, 1]
            used.update(names)
            uv = torch.from_numpy(st).to(dtype)
            break
    extra = {}
    for name, v in vert.items():
        if name not in used:
            extra[name] = torch.from_numpy(v.astype(np.float64)).to(dtype) if v.dtype.kind == "f" else \
                torch.from_numpy(v.astype(np.int64))
    faces = torch.zeros(0, 3, dtype=torch.int64)
    if "face" in values:
        key = next((k for k in ("vertex_indices", "vertex_index") if isinstance(values["face"].get(k), tuple)), None)
        face_el = next(e for e in elements if e.name == "face")
        if key is None and face_el.count:
            raise PlyError(f"{path}: the face element has no 'vertex_indices' (or 'vertex_index') list property")
        if key is not None:
            faces = _fan(*values["face"][key], path, num_verts)
    return MeshData(verts, faces, uv=uv, uv_faces=None if uv is None else faces, vertex_colors=colors,
                    normals=normals, extra=extra)


def _fan(counts: np.ndarray, flat: np.ndarray, path, num_verts: int) -> torch.Tensor:
    """Fan-triangulate polygons given as ``counts [N]`` and concatenated corner indices ``flat``."""
    if counts.size and counts.min() < 3:
        row = int(np.argmax(counts < 3))
        raise PlyError(f"{path}: face {row} has {int(counts[row])} corners; a face needs at least 3")
    if flat.size:
        ok = (flat >= 0) & (flat < num_verts)  # NaN fails both
        if flat.dtype.kind == "f":  # a float list type: the indices must still be whole numbers
            ok &= flat == np.floor(np.where(ok, flat, 0))
        if not ok.all():
            bad = flat[~ok]
            bad = float(bad[0]) if flat.dtype.kind == "f" else int(bad.min()) if (bad < 0).any() else int(bad.max())
            raise PlyError(f"{path}: face vertex index {bad} is out of range [0, {num_verts})"
                           + (" or not a whole number" if flat.dtype.kind == "f" else ""))
    return torch.from_numpy(fan_triangulate(counts, flat.astype(np.int64)).astype(np.int64))


def write_ply(
    path: str | os.PathLike,
    verts: torch.Tensor,
    faces: Optional[torch.Tensor] = None,
    *,
    normals: Optional[torch.Tensor] = None,
    colors: Optional[torch.Tensor] = None,
    uv: Optional[torch.Tensor] = None,
    binary: bool = True,
    byte_order: Literal["little", "big"] = "little",
) -> None:
    """Write a triangle mesh (or, with ``faces=None``, a point cloud) as PLY.

    Args:
        path: destination file.
        verts: ``[V, 3]`` float positions; float64 is stored as ``double``, other floats as ``float``.
        faces: ``[F, 3]`` integer vertex indices in ``[0, V)``, stored as ``list uchar int vertex_indices``.
        normals: ``[V, 3]`` float normals (``nx ny nz``).
        colors: ``[V, 3 or 4]`` vertex colours: ``uint8`` is stored as ``uchar`` (read back as ``/ 255``),
            floats as ``float``/``double`` as they are, so either round-trips exactly.
        uv: ``[V, 2]`` float texture coordinates, top-left origin; stored as ``s t`` with ``t = 1 - v``.
        binary: binary (default) or ascii.
        byte_order: ``"little"`` or ``"big"`` for binary files.

    NaN and Inf values are written as they are.
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True)
    num_verts = verts.shape[0]
    if byte_order not in ("little", "big"):
        raise ValueError(f"byte_order must be 'little' or 'big'; got {byte_order!r}")
    fmt_name = "ascii" if not binary else f"binary_{byte_order}_endian"
    order = ">" if binary and byte_order == "big" else "<"
    columns: List[Tuple[str, str, np.ndarray]] = []  # (name, numpy code, values [V])

    def add(names, t, label, width):
        check_tensor(t, label, trailing=(num_verts, width), max_dims=2)
        if t.dtype == torch.uint8:
            code = "u1"
        elif t.is_floating_point():
            code = "f8" if t.dtype == torch.float64 else "f4"
        else:
            raise TypeError(f"{label} must be a floating tensor{' or uint8' if label == 'colors' else ''}; "
                            f"got {t.dtype}")
        if code == "u1" and label != "colors":
            raise TypeError(f"{label} must be a floating tensor; got {t.dtype}")
        arr = t.detach().cpu().numpy()
        if label == "uv":
            arr = arr.astype(np.float64)
            arr[:, 1] = 1.0 - arr[:, 1]
        for k, name in enumerate(names):
            columns.append((name, code, arr[:, k].astype(code)))

    add(("x", "y", "z"), verts, "verts", 3)
    if normals is not None:
        add(("nx", "ny", "nz"), normals, "normals", 3)
    if colors is not None:
        if colors.dim() != 2 or colors.shape[-1] not in (3, 4):
            raise ValueError(f"colors must have shape [V, 3] or [V, 4]; got {tuple(colors.shape)}")
        add(("red", "green", "blue", "alpha")[:colors.shape[1]], colors, "colors", colors.shape[1])
    if uv is not None:
        add(("s", "t"), uv, "uv", 2)
    face_arr = None
    if faces is not None:
        check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False)
        check_indices(faces, "faces", num_verts)
        if num_verts > np.iinfo(np.int32).max:
            raise ValueError(f"verts has {num_verts} rows; PLY int indices hold at most 2^31 - 1")
        face_arr = faces.detach().cpu().numpy().astype(np.int32)
    names = {"u1": "uchar", "f4": "float", "f8": "double"}
    header = ["ply", f"format {fmt_name} 1.0", "comment written by lumigrad", f"element vertex {num_verts}"]
    header += [f"property {names[code]} {name}" for name, code, _ in columns]
    if face_arr is not None:
        header += [f"element face {face_arr.shape[0]}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            table = np.empty(num_verts, dtype=[(f"c{k}", order + code) for k, (_, code, _) in enumerate(columns)])
            for k, (_, _, v) in enumerate(columns):
                table[f"c{k}"] = v
            fh.write(table.tobytes())
            if face_arr is not None:
                rows = np.empty(face_arr.shape[0], dtype=[("n", "u1"), ("i", order + "i4", (3,))])
                rows["n"] = 3
                rows["i"] = face_arr
                fh.write(rows.tobytes())
        else:
            fmts = {"u1": "{:d}", "f4": "{!r}", "f8": "{!r}"}
            row_fmt = " ".join(fmts[code] for _, code, _ in columns) + "\n"
            cols = [v.tolist() for _, _, v in columns]  # float32 -> exact float64 -> repr: reads back exactly
            lines = [row_fmt.format(*row) for row in zip(*cols)] if cols else []
            fh.write("".join(lines).encode("ascii"))
            if face_arr is not None:
                fh.write("".join(f"3 {a} {b} {c}\n" for a, b, c in face_arr.tolist()).encode("ascii"))

