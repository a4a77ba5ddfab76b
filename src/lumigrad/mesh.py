"""``Mesh``: a thin container of vertex positions, faces, texture coordinates and a texture.

It reads no files: :func:`lumigrad.io.read_mesh` reads an OBJ (with its MTL materials) into one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import List, Optional

import torch

from ._checks import check_indices, check_tensor
from .shading.material import Material


@dataclass
class Mesh:
    """A triangle mesh with optional texture coordinates and texture.

    Attributes:
        verts: ``[V, 3]`` float positions.
        faces: ``[F, 3]`` int64 vertex indices, counter-clockwise front faces.
        uv: ``[T, 2]`` texture coordinates (top-left origin, see ``lumigrad.conventions``) or None.
        uv_faces: ``[F, 3]`` indices into ``uv`` per face corner, or None.
        texture: ``[Ht, Wt, C]`` float texture in [0, 1] (linear values as stored), or None.
        materials: a list of :class:`lumigrad.shading.Material` (e.g. from an OBJ's MTL library), or None.
        face_materials: ``[F]`` int64 index into ``materials`` per face; given exactly when ``materials`` is.
        material_names: one name per material (default ``material_0``, ``material_1`` ...), or None without
            materials; names are unique.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    uv: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    texture: Optional[torch.Tensor] = None
    materials: Optional[List[Material]] = None
    face_materials: Optional[torch.Tensor] = None
    material_names: Optional[List[str]] = None

    def __post_init__(self):
        check_tensor(self.verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
        check_tensor(self.faces, "faces", trailing=(None, 3), max_dims=2, floating=False)
        check_indices(self.faces, "faces", self.verts.shape[0])
        if (self.uv is None) != (self.uv_faces is None):
            raise ValueError("uv and uv_faces must be given together")
        if self.uv is not None:
            check_tensor(self.uv, "uv", trailing=(None, 2), max_dims=2, floating=True, finite=True)
            check_tensor(self.uv_faces, "uv_faces", trailing=(self.faces.shape[0], 3), max_dims=2, floating=False)
            check_indices(self.uv_faces, "uv_faces", self.uv.shape[0])
        self._check_materials()

    def _check_materials(self) -> None:
        if self.materials is None:
            if self.face_materials is not None or self.material_names is not None:
                raise ValueError("face_materials / material_names were given without materials")
            return
        if self.face_materials is None:
            raise ValueError("materials were given without face_materials ([F] int64 index per face)")
        self.materials = list(self.materials)
        if not self.materials:
            raise ValueError("materials is empty; use None for a mesh without materials")
        for k, m in enumerate(self.materials):
            if not isinstance(m, Material):
                raise TypeError(f"materials[{k}] must be a lumigrad.shading.Material; got {type(m).__name__}")
        check_tensor(self.face_materials, "face_materials", trailing=(self.faces.shape[0],), max_dims=1,
                     floating=False)
        if self.face_materials.dtype != torch.int64:
            raise TypeError(f"face_materials must be int64; got {self.face_materials.dtype}")
        check_indices(self.face_materials, "face_materials", len(self.materials))
        if self.material_names is None:
            self.material_names = [f"material_{k}" for k in range(len(self.materials))]
        self.material_names = list(self.material_names)
        if len(self.material_names) != len(self.materials):
            raise ValueError(f"material_names has {len(self.material_names)} names for {len(self.materials)} "
                             "materials")
        if not all(isinstance(n, str) and n for n in self.material_names) or \
                len(set(self.material_names)) != len(self.material_names):
            raise ValueError(f"material_names must be unique non-empty strings; got {self.material_names}")

    def vertex_normals(self, verts: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Area-weighted unit vertex normals ``[..., V, 3]`` (differentiable; zero-area faces add nothing)."""
        return vertex_normals(self.verts if verts is None else verts, self.faces)

    def to(self, device=None, dtype=None) -> "Mesh":
        def mv(t, is_float=True):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype) if is_float else t.to(device=device)

        materials = None
        if self.materials is not None:
            materials = [replace(m, **{f.name: mv(getattr(m, f.name), getattr(m, f.name).is_floating_point())
                                       for f in fields(m) if isinstance(getattr(m, f.name), torch.Tensor)})
                         for m in self.materials]
        return Mesh(mv(self.verts), mv(self.faces, False), mv(self.uv), mv(self.uv_faces, False), mv(self.texture),
                    materials, mv(self.face_materials, False), self.material_names)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[..., V, 3]`` of ``verts [..., V, 3]`` and ``faces [F, 3]``.

    **Differentiability:** smooth in ``verts`` wherever a vertex's summed normal is non-zero; isolated vertices
    get a zero normal and zero gradient.
    """
    v0, v1, v2 = (verts[..., faces[:, k], :] for k in range(3))
    face_n = torch.linalg.cross(v1 - v0, v2 - v0)  # length = 2 x area
    n = torch.zeros_like(verts)
    for k in range(3):
        n = n.index_add(-2, faces[:, k], face_n)
    norm = n.norm(dim=-1, keepdim=True)
    return n / torch.where(norm > 0, norm, torch.ones_like(norm))
