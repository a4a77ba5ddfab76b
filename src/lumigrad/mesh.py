"""``Mesh``: a thin container of vertex positions, faces, texture coordinates and a texture."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from ._checks import check_indices, check_tensor


@dataclass
class Mesh:
    """A triangle mesh with optional texture coordinates and texture.

    Attributes:
        verts: ``[V, 3]`` float positions.
        faces: ``[F, 3]`` int64 vertex indices, counter-clockwise front faces.
        uv: ``[T, 2]`` texture coordinates (top-left origin, see ``lumigrad.conventions``) or None.
        uv_faces: ``[F, 3]`` indices into ``uv`` per face corner, or None.
        texture: ``[Ht, Wt, C]`` float texture in [0, 1] (linear values as stored), or None.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    uv: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    texture: Optional[torch.Tensor] = None

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

    @classmethod
    def from_obj(cls, path: str | os.PathLike, texture_path: str | os.PathLike | None = None) -> "Mesh":
        """Load an OBJ file (and optionally an image as its texture)."""
        from .io.obj import read_obj

        verts, faces, uv, uv_faces = read_obj(path)
        texture = None
        if texture_path is not None:
            from .io.image import read_image

            texture = read_image(texture_path)
        return cls(verts, faces, uv, uv_faces, texture)

    def vertex_normals(self, verts: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Area-weighted unit vertex normals ``[..., V, 3]`` (differentiable; zero-area faces add nothing)."""
        return vertex_normals(self.verts if verts is None else verts, self.faces)

    def to(self, device=None, dtype=None) -> "Mesh":
        def mv(t, is_float=True):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype) if is_float else t.to(device=device)

        return Mesh(mv(self.verts), mv(self.faces, False), mv(self.uv), mv(self.uv_faces, False), mv(self.texture))


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
