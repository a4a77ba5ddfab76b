"""A small Wavefront OBJ reader: positions, texture coordinates and faces (the IO issue adds the rest).

Polygons are fan-triangulated, negative (relative) indices are resolved, and OBJ's bottom-left texture
origin is converted once to lumigrad's top-left origin (``v -> 1 - v``).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch


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
