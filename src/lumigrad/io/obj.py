"""A small Wavefront OBJ reader and writer: positions, texture coordinates, faces, and MTL materials.

Polygons are fan-triangulated, negative (relative) indices are resolved, and OBJ's bottom-left texture
origin is converted once to lumigrad's top-left origin (``v -> 1 - v``, undone by ``write_obj``).
:func:`read_obj` returns the geometry alone; :func:`read_obj_with_materials` also reads ``mtllib`` /
``usemtl`` (per-face material indices, materials through :mod:`lumigrad.io.mtl`) and ``v x y z r g b`` vertex
colours. ``o`` / ``g`` / ``s`` / ``vn`` / ``l`` / ``p`` statements are ignored; ``#`` starts a comment anywhere
on a line. NaN / Inf numbers, and numbers that overflow the requested dtype, raise :class:`ObjError`.

Files named inside the OBJ (``mtllib``) and the MTL (textures) are read only from inside the OBJ's (MTL's)
folder, and only when they are regular files (:mod:`lumigrad.io._paths`): an absolute path, a ``../`` escape
or a symbolic link pointing outside raises an ``ObjError`` that is also a
:class:`~lumigrad.io._paths.ConfinementError`, unless the caller passes ``trust_paths=True`` for files it
trusts. Errors and warnings name the file, the line and the statement's keyword; they never quote the line
(only names of materials and files, cut to 80 characters, and numbers that were read as numbers), so reading
a file that is not an OBJ / MTL does not print its content.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._checks import check_indices, check_tensor
from ..mesh import Mesh
from ..shading.material import Material
from ._obj_arrays import ObjArrays, parse_obj_arrays
from ._paths import ConfinementError, check_regular_file, confined_path, short_text
from .errors import ObjError
from .image import read_image
from .mesh_data import MeshData
from .mtl import read_mtl, write_mtl


#: The OBJ reader's name for :class:`~lumigrad.io.MeshData`, the record every mesh reader returns.
ObjData = MeshData


def read_obj(path: str | os.PathLike, dtype=torch.float32, *, trust_paths: bool = False):
    """Read ``path`` and return ``(verts [V, 3], faces [F, 3], uv [T, 2] or None, uv_faces [F, 3] or None)``.

    ``uv_faces`` index ``uv`` per face corner (OBJ keeps separate position and texture indices, so a texture
    seam needs no vertex splitting). Faces without texture indices make ``uv_faces`` None for the whole file.
    ``mtllib`` / ``usemtl`` are ignored here (see :func:`read_obj_with_materials`), so no other file is read;
    ``trust_paths`` is accepted for symmetry with the other readers and has no effect.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ObjError: a malformed line (bad number, NaN or Inf, index out of range), or no faces; the message
            names the file and line.
    """
    d = _parse(path, dtype, with_materials=False, trust_paths=trust_paths)
    return d.verts, d.faces, d.uv, d.uv_faces


def read_obj_with_materials(path: str | os.PathLike, dtype=torch.float32, *, trust_paths: bool = False) -> ObjData:
    """Read ``path`` with its ``mtllib`` material libraries, ``usemtl`` face materials and vertex colours.

    Geometry is read exactly as by :func:`read_obj`; materials are read with :func:`lumigrad.io.read_mtl`
    (library paths relative to the OBJ file's folder). ``o`` / ``g`` / ``s`` groups are ignored.

    Args:
        path: the ``.obj`` file.
        dtype: floating dtype of positions, texture coordinates, colours and materials.
        trust_paths: also follow ``mtllib`` and texture names that are absolute or lead outside the OBJ's
            (MTL's) folder. Leave False for files from elsewhere: a hostile OBJ could otherwise read any
            image or text file the process can read.

    Returns:
        a :class:`~lumigrad.io.MeshData` (``sources``: the MTL files that were read).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ObjError: as :func:`read_obj`; also a ``mtllib`` file that does not exist, or a ``usemtl`` name that no
            library defines (both name the OBJ file and line; use :func:`read_obj` to ignore materials).
            A ``mtllib`` outside the OBJ's folder (or not a regular file) raises an ``ObjError`` that is also
            a :class:`~lumigrad.io._paths.ConfinementError`.
        MtlError: (an ``ObjError``) a malformed MTL file or a missing texture, naming the MTL file and line.
    """
    return _parse(path, dtype, with_materials=True, trust_paths=trust_paths)


def read_mesh(path: str | os.PathLike, texture_path: str | os.PathLike | None = None, *, materials: bool = True,
              trust_paths: bool = False) -> Mesh:
    """Read an OBJ file, its MTL materials, and optionally an image as its texture, into a :class:`lumigrad.Mesh`.

    (This was ``Mesh.from_obj``, which still works with a ``FutureWarning``: the mesh, like every layer below
    ``io``, does not read files.)

    Args:
        path: the ``.obj`` file.
        texture_path: an image read as ``texture`` (values as stored), or None.
        materials: read ``mtllib`` / ``usemtl`` into ``materials``, ``material_names`` and
            ``face_materials`` (see :func:`read_obj_with_materials`); False ignores them.
        trust_paths: let ``mtllib`` and ``map_*`` names leave the OBJ's folder (absolute or ``../``
            paths); by default they are confined to it (see :mod:`lumigrad.io.registry`).

    Raises:
        ObjError: a malformed OBJ or MTL file, a missing MTL file or texture, an undefined
            ``usemtl`` material (pass ``materials=False`` to load the geometry alone).
    """
    if materials:
        d = read_obj_with_materials(path, trust_paths=trust_paths)
    else:
        d = ObjData(*read_obj(path))
    texture = None if texture_path is None else read_image(texture_path)
    return Mesh(d.verts, d.faces, d.uv, d.uv_faces, texture, d.materials, d.face_materials, d.material_names)


class _LineError(ValueError):
    """A malformed statement; the message is written by this module and quotes nothing from the line."""


def _parse(path, dtype, with_materials: bool, trust_paths: bool = False) -> ObjData:
    with open(path, "rb") as fh:
        arrays = parse_obj_arrays(fh, with_materials)  # numpy, no loop over lines; None: read line by line
        if arrays is None:
            fh.seek(0)
            arrays = _parse_lines(io.TextIOWrapper(fh, encoding="utf-8", errors="replace"), path, with_materials)
    v = _to_finite(arrays.verts, dtype, path, arrays.v_lines, "vertex")
    f = torch.from_numpy(np.ascontiguousarray(arrays.faces, dtype=np.int64))
    uv: Optional[torch.Tensor] = None
    uvf: Optional[torch.Tensor] = None
    if arrays.uv is not None and arrays.uv_faces is not None:
        uv = _to_finite(arrays.uv, dtype, path, arrays.vt_lines, "texture coordinate")  # flipped in float64
        uvf = torch.from_numpy(np.ascontiguousarray(arrays.uv_faces, dtype=np.int64))
    data = ObjData(v, f, uv, uvf)
    if not with_materials:
        return data
    if arrays.colors is not None:
        data.vertex_colors = _to_finite(arrays.colors, dtype, path, arrays.v_lines, "vertex colour")
    _attach_materials(data, Path(path), arrays, dtype, trust_paths)
    return data


def _parse_lines(lines: Iterable[str], path, with_materials: bool) -> ObjArrays:
    """The line-by-line reader: slower, and the one whose messages name the line of a malformed statement."""
    verts, colors, uvs, faces, uv_faces, face_mat = [], [], [], [], [], []
    v_lines: List[int] = []  # line of each v / vt, to name it when its value overflows dtype
    vt_lines: List[int] = []
    all_have_uv = True
    all_have_color = True
    mtllibs: List[Tuple[str, int]] = []
    used: Dict[str, int] = {}  # usemtl name -> first line
    current: Optional[str] = None
    for lineno, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        tag = parts[0]
        try:
            if tag == "v":
                verts.append(_floats(parts[1:4], 3, "a vertex needs 3 coordinates"))
                v_lines.append(lineno)
                if len(parts) == 7:
                    colors.append(_floats(parts[4:7], 3, "a vertex colour needs 3 values", first=4))
                else:
                    all_have_color = False
            elif tag == "vt":
                uvs.append(_floats(parts[1:3], 2, "a texture coordinate needs 2 values"))
                vt_lines.append(lineno)
            elif tag == "f":
                corners = [_parse_corner(c, k, len(verts), len(uvs)) for k, c in enumerate(parts[1:], 1)]
                if len(corners) < 3:
                    raise _LineError("a face needs at least 3 corners")
                for k in range(1, len(corners) - 1):
                    tri = (corners[0], corners[k], corners[k + 1])
                    faces.append([c[0] for c in tri])
                    face_mat.append(current)
                    if all(c[1] is not None for c in tri):
                        uv_faces.append([c[1] for c in tri])
                    else:
                        all_have_uv = False
            elif tag == "mtllib" and with_materials:
                name = " ".join(parts[1:])
                if not name:
                    raise _LineError("mtllib needs a file name")
                mtllibs.append((name, lineno))
            elif tag == "usemtl" and with_materials:
                current = " ".join(parts[1:])
                if not current:
                    raise _LineError("usemtl needs a material name")
                used.setdefault(current, lineno)
        except (ValueError, IndexError, OverflowError) as exc:
            # Only this module's own messages are shown: the line itself is never quoted.
            reason = str(exc) if isinstance(exc, _LineError) else "malformed statement"
            raise ObjError(f"{path}:{lineno}: {tag}: {reason}") from None
    if not verts or not faces:
        raise ObjError(f"{path}: no vertices or faces found")
    keys: List[Optional[str]] = list(dict.fromkeys(face_mat))
    slot = {key: k for k, key in enumerate(keys)}
    uv = None
    if uvs and all_have_uv:
        uv = np.array(uvs, dtype=np.float64)
        uv[:, 1] = 1.0 - uv[:, 1]  # flipped in float64, then rounded once to dtype
    return ObjArrays(np.array(verts, dtype=np.float64), np.array(colors) if colors and all_have_color else None,
                     uv, np.array(faces, dtype=np.int64), np.array(uv_faces, dtype=np.int64) if uv is not None else None,
                     keys, np.array([slot[m] for m in face_mat], dtype=np.int64), mtllibs, used,
                     np.array(v_lines), np.array(vt_lines))


def _floats(tokens: List[str], count: int, message: str, first: int = 1) -> List[float]:
    if len(tokens) != count:
        raise _LineError(message)
    values = []
    for k, token in enumerate(tokens, first):
        try:
            values.append(float(token))
        except ValueError:
            raise _LineError(f"value {k} is not a number") from None
    if not all(math.isfinite(x) for x in values):
        raise _LineError("NaN or Inf value")
    return values


def _to_finite(rows: np.ndarray, dtype, path, lines: np.ndarray, what: str) -> torch.Tensor:
    """``rows`` (float64) as a ``dtype`` tensor; values that overflow ``dtype`` (1e300 in float32) raise ObjError."""
    t = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float64)).to(dtype)
    bad = ~torch.isfinite(t).all(-1)
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise ObjError(f"{path}:{lines[k]}: {what} overflows {dtype}")
    return t


def _is_file(p: Path) -> bool:
    """``p.is_file()``, False (not an exception) for names the OS rejects (too long, NUL bytes ...)."""
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


class _ObjPathError(ObjError, ConfinementError):
    """An OBJ names a file outside its folder, or one that is not a regular file."""


def _library_files(path: Path, name: str, lineno: int, trust_paths: bool) -> List[Tuple[str, Path]]:
    """The files of one ``mtllib`` statement: the whole name when it is one file (names may hold spaces),
    else its words (``mtllib a.mtl b.mtl``); each confined to the OBJ's folder."""
    where = f"{path}:{lineno}"
    try:
        whole = confined_path(path.parent, name.replace("\\", "/"), source=where, what="mtllib",
                              trusted=trust_paths, base=_ObjPathError)
        if _is_file(whole):
            return [(name, whole)]
    except ConfinementError:
        if len(name.split()) == 1:
            raise
    return [(file, confined_path(path.parent, file.replace("\\", "/"), source=where, what="mtllib",
                                 trusted=trust_paths, base=_ObjPathError)) for file in name.split()]


def _attach_materials(data: ObjData, path: Path, arrays: ObjArrays, dtype, trust_paths: bool = False) -> None:
    mtllibs, used = arrays.mtllibs, arrays.used
    library: Dict[str, Material] = {}
    for name, lineno in mtllibs:
        for file, p in _library_files(path, name, lineno, trust_paths):
            try:
                check_regular_file(p, source=f"{path}:{lineno}", what="mtllib", base=_ObjPathError)
            except FileNotFoundError:
                raise ObjError(f"{path}:{lineno}: material library {short_text(file)} not found (looked for {p}); "
                               "read_obj reads the geometry without materials") from None
            library.update(read_mtl(p, dtype=dtype, trust_paths=trust_paths))
            data.sources.append(p)
    if not used:
        return
    for name, lineno in used.items():
        if name not in library:
            where = ", ".join(str(p) for p in data.sources) or "no mtllib"
            raise ObjError(f"{path}:{lineno}: usemtl {short_text(name)} names a material that is not defined "
                           f"({where}); read_obj reads the geometry without materials")
    names = list(library)
    default = None
    keys = arrays.material_keys
    present = np.zeros(len(keys), bool)
    present[arrays.face_material] = True
    if any(key is None and present[k] for k, key in enumerate(keys)):
        default = "default"
        while default in library:
            default += "_"
        names.append(default)
        library[default] = Material(base_color_factor=torch.tensor([0.8, 0.8, 0.8, 1.0], dtype=dtype),
                                    metallic_factor=torch.tensor(0.0, dtype=dtype))
    index = {n: i for i, n in enumerate(names)}
    data.materials = [library[n] for n in names]
    data.material_names = names
    lookup = np.array([index[default if key is None else key] if present[k] else 0 for k, key in enumerate(keys)],
                      dtype=np.int64)
    data.face_materials = torch.from_numpy(lookup[arrays.face_material])


def _parse_corner(token: str, k: int, num_verts: int, num_uvs: int) -> Tuple[int, Optional[int]]:
    fields = token.split("/")
    vi = _resolve(_index(fields[0], k, "vertex"), num_verts, "vertex")
    ti = None
    if len(fields) > 1 and fields[1]:
        ti = _resolve(_index(fields[1], k, "texture coordinate"), num_uvs, "texture coordinate")
    return vi, ti


def _index(token: str, k: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise _LineError(f"corner {k}: the {what} index is not an integer") from None


def _resolve(index: int, count: int, what: str) -> int:
    resolved = index - 1 if index > 0 else count + index
    if index == 0 or not 0 <= resolved < count:
        raise _LineError(f"{what} index {short_text(index, 24)} out of range (1..{count} defined so far)")
    return resolved


def write_obj(
    path: str | os.PathLike,
    verts: torch.Tensor,
    faces: torch.Tensor,
    *,
    uv: Optional[torch.Tensor] = None,
    uv_faces: Optional[torch.Tensor] = None,
    normals: Optional[torch.Tensor] = None,
    materials: Union[Dict[str, Material], Sequence[Material], None] = None,
    material_names: Optional[Sequence[str]] = None,
    face_materials: Optional[torch.Tensor] = None,
) -> None:
    """Write a triangle mesh as OBJ text that :func:`read_obj` reads back to the same tensors.

    Args:
        path: destination file.
        verts: ``[V, 3]`` float positions (written with enough digits to read back exactly in their dtype).
        faces: ``[F, 3]`` integer vertex indices in ``[0, V)``, written 1-based.
        uv: ``[T, 2]`` float texture coordinates, top-left origin; written as ``vt u 1-v`` (computed in float64).
            The flip reads back exactly for coordinates ``read_obj`` produced and for multiples of the dtype's
            epsilon in [0, 1]; other values (say 1e-9 in float32) may move by up to half an ulp of 1.
        uv_faces: ``[F, 3]`` indices into ``uv`` per face corner; may be omitted when ``uv`` has one row per
            vertex (then ``faces`` index it). Corners are written ``v/vt``.
        normals: ``[V, 3]`` per-vertex normals, written as ``vn`` with corners ``v/vt/vn`` or ``v//vn``
            (``read_obj`` ignores them).
        materials: ``{name: Material}``, or a list of Material named by ``material_names`` (default
            ``material_0``, ``material_1`` ...). They are written with :func:`lumigrad.io.write_mtl` to
            ``path`` with suffix ``.mtl`` (textures as ``{stem}_{index}_{slot}.png`` beside it), referenced by
            ``mtllib``; every material is written, used or not, so :func:`read_obj_with_materials` reads back the
            same list and indices.
        material_names: names of a list of ``materials``.
        face_materials: ``[F]`` integer index into ``materials`` per face; faces are written in their order,
            with ``usemtl`` wherever the material changes. Default: all faces use material 0.

    Example: one triangle with ``uv = [[0, 0], [1, 0], [0, 1]]`` writes ``vt 0 1``, ``vt 1 1``, ``vt 0 0`` and
    ``f 1/1 2/2 3/3``. NaN and Inf values are written as ``nan`` / ``inf`` as they are.
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False)
    num_verts = verts.shape[0]
    check_indices(faces, "faces", num_verts)
    if uv_faces is not None and uv is None:
        raise ValueError("uv_faces was given without uv")
    if uv is not None:
        check_tensor(uv, "uv", trailing=(None, 2), max_dims=2, floating=True)
        if uv_faces is None:
            if uv.shape[0] != num_verts:
                raise ValueError(f"uv without uv_faces must have one row per vertex ({num_verts}); got "
                                 f"{tuple(uv.shape)}")
            uv_faces = faces
        check_tensor(uv_faces, "uv_faces", trailing=(faces.shape[0], 3), max_dims=2, floating=False)
        check_indices(uv_faces, "uv_faces", uv.shape[0])
    if normals is not None:
        check_tensor(normals, "normals", trailing=(num_verts, 3), max_dims=2, floating=True)
    library = _material_dict(materials, material_names, face_materials, faces.shape[0])
    lines = ["# written by lumigrad\n"]
    mtl_path = Path(path).with_suffix(".mtl")
    if library is not None:
        lines.append(f"mtllib {mtl_path.name}\n")
    # Python's repr of a float64 reads back exactly, and a float32 value is exact in float64.
    lines += [f"v {x!r} {y!r} {z!r}\n" for x, y, z in verts.detach().cpu().double().tolist()]
    if uv is not None:
        uv64 = uv.detach().cpu().double()
        lines += [f"vt {u!r} {1.0 - v!r}\n" for u, v in uv64.tolist()]
    if normals is not None:
        lines += [f"vn {x!r} {y!r} {z!r}\n" for x, y, z in normals.detach().cpu().double().tolist()]
    f1 = (faces.detach().cpu().long() + 1).tolist()
    if uv is not None:
        t1 = (uv_faces.detach().cpu().long() + 1).tolist()
        tail = (lambda a: f"/{a}") if normals is not None else (lambda a: "")
        face_lines = ["f " + " ".join(f"{a}/{b}{tail(a)}" for a, b in zip(fv, ft)) + "\n" for fv, ft in zip(f1, t1)]
    elif normals is not None:
        face_lines = ["f " + " ".join(f"{a}//{a}" for a in fv) + "\n" for fv in f1]
    else:
        face_lines = [f"f {a} {b} {c}\n" for a, b, c in f1]
    if library is None:
        lines += face_lines
    else:
        names = list(library)
        ids = [0] * len(face_lines) if face_materials is None else face_materials.detach().cpu().long().tolist()
        previous = None
        for line, k in zip(face_lines, ids):
            if k != previous:
                lines.append(f"usemtl {names[k]}\n")
                previous = k
            lines.append(line)
        write_mtl(mtl_path, library, texture_prefix=f"{mtl_path.stem}_")
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(lines))


def _material_dict(materials, material_names, face_materials, num_faces: int) -> Optional[Dict[str, Material]]:
    """Validate write_obj's material arguments and return ``{name: Material}`` (None without materials)."""
    if materials is None:
        if material_names is not None or face_materials is not None:
            raise ValueError("material_names / face_materials were given without materials")
        return None
    if isinstance(materials, dict):
        if material_names is not None:
            raise ValueError("material_names must not be given with a dict of materials (its keys are the names)")
        library = dict(materials)
    else:
        materials = list(materials)
        names = [f"material_{i}" for i in range(len(materials))] if material_names is None else list(material_names)
        if len(names) != len(materials):
            raise ValueError(f"material_names has {len(names)} names for {len(materials)} materials")
        if len(set(names)) != len(names):
            raise ValueError(f"material_names must be unique; got {names}")
        library = dict(zip(names, materials))
    if not library:
        raise ValueError("materials is empty; pass None to write no materials")
    for name, m in library.items():
        if not isinstance(m, Material):
            raise TypeError(f"materials[{name!r}] must be a lumigrad.shading.Material; got {type(m).__name__}")
    if face_materials is not None:
        check_tensor(face_materials, "face_materials", trailing=(num_faces,), max_dims=1, floating=False)
        check_indices(face_materials, "face_materials", len(library))
    return library
