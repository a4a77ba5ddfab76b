"""A small Wavefront OBJ reader and writer: positions, texture coordinates and faces.

Polygons are fan-triangulated, negative (relative) indices are resolved, and OBJ's bottom-left texture
origin is converted once to lumigrad's top-left origin (``v -> 1 - v``, undone by ``write_obj``).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from .._checks import check_indices, check_tensor


class ObjError(ValueError):
    """Raised for a malformed OBJ file; the message names the file and line."""


def read_obj(path: str | os.PathLike, dtype=torch.float32):
    """Read ``path`` and return ``(verts [V, 3], faces [F, 3], uv [T, 2] or None, uv_faces [F, 3] or None)``.

    ``uv_faces`` index ``uv`` per face corner (OBJ keeps separate position and texture indices, so a texture
    seam needs no vertex splitting). Faces without texture indices make ``uv_faces`` None for the whole file.
    """
    verts, uvs, faces, uv_faces = [], [], [], []
    all_have_uv = True
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            tag = parts[0]
            try:
                if tag == "v":
                    verts.append([float(x) for x in parts[1:4]])
                    if len(verts[-1]) != 3:
                        raise ValueError("a vertex needs 3 coordinates")
                elif tag == "vt":
                    uvs.append([float(x) for x in parts[1:3]])
                    if len(uvs[-1]) != 2:
                        raise ValueError("a texture coordinate needs 2 values")
                elif tag == "f":
                    corners = [_parse_corner(c, len(verts), len(uvs)) for c in parts[1:]]
                    if len(corners) < 3:
                        raise ValueError("a face needs at least 3 corners")
                    for k in range(1, len(corners) - 1):
                        tri = (corners[0], corners[k], corners[k + 1])
                        faces.append([c[0] for c in tri])
                        if all(c[1] is not None for c in tri):
                            uv_faces.append([c[1] for c in tri])
                        else:
                            all_have_uv = False
            except (ValueError, IndexError) as exc:
                raise ObjError(f"{path}:{lineno}: {exc}: {line.strip()!r}") from None
    if not verts or not faces:
        raise ObjError(f"{path}: no vertices or faces found")
    v = torch.tensor(verts, dtype=dtype)
    f = torch.tensor(faces, dtype=torch.int64)
    uv: Optional[torch.Tensor] = None
    uvf: Optional[torch.Tensor] = None
    if uvs and all_have_uv:
        uv = torch.tensor(uvs, dtype=dtype)
        uv[:, 1] = 1.0 - uv[:, 1]
        uvf = torch.tensor(uv_faces, dtype=torch.int64)
    return v, f, uv, uvf


def _parse_corner(token: str, num_verts: int, num_uvs: int) -> Tuple[int, Optional[int]]:
    fields = token.split("/")
    vi = _resolve(int(fields[0]), num_verts, "vertex")
    ti = _resolve(int(fields[1]), num_uvs, "texture coordinate") if len(fields) > 1 and fields[1] else None
    return vi, ti


def _resolve(index: int, count: int, what: str) -> int:
    resolved = index - 1 if index > 0 else count + index
    if index == 0 or not 0 <= resolved < count:
        raise ValueError(f"{what} index {index} out of range (1..{count} defined so far)")
    return resolved


def write_obj(
    path: str | os.PathLike,
    verts: torch.Tensor,
    faces: torch.Tensor,
    *,
    uv: Optional[torch.Tensor] = None,
    uv_faces: Optional[torch.Tensor] = None,
    normals: Optional[torch.Tensor] = None,
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
    lines = ["# written by lumigrad\n"]
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
        lines += ["f " + " ".join(f"{a}/{b}{tail(a)}" for a, b in zip(fv, ft)) + "\n" for fv, ft in zip(f1, t1)]
    elif normals is not None:
        lines += ["f " + " ".join(f"{a}//{a}" for a in fv) + "\n" for fv in f1]
    else:
        lines += [f"f {a} {b} {c}\n" for a, b, c in f1]
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(lines))
