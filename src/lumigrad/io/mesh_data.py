"""``MeshData``: the one record the mesh readers return (OBJ, PLY), field for field what the files say.

A field means the same thing whichever reader filled it, so code that takes what a reader gives
(``lumigrad.io.load``, :func:`lumigrad.scene.from_mesh.as_scene`, ``save``) needs no per-format branches:

* ``verts [V, 3]`` positions and ``faces [F, 3]`` int64 vertex indices (polygons fan-triangulated);
* ``uv [T, 2]`` texture coordinates, top-left origin (lumigrad's convention, converted on read), with
  ``uv_faces [F, 3]`` int64 indices into ``uv`` per face corner; a format with per-vertex coordinates (PLY)
  gives ``uv_faces = faces``;
* ``normals [V, 3]`` per-vertex normals as stored (PLY ``nx ny nz``), or None;
* ``vertex_colors [V, 3 or 4]`` colours as stored (no colour-space conversion; PLY integers divided by
  their maximum), or None;
* ``materials`` / ``material_names`` / ``face_materials [F]`` int64: materials and the material of each
  face (OBJ + MTL), or None;
* ``extra``: other per-vertex properties by name (PLY), ``[V]`` tensors;
* ``sources``: other files that were read (an OBJ's MTL libraries).

glTF primitives are read straight into :class:`lumigrad.scene.SceneMesh` (with the same ``verts``,
``faces``, ``uv``, ``normals`` meanings), because glTF also gives each one a transform and a material.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..shading.material import Material

__all__ = ["MeshData"]


@dataclass
class MeshData:
    """What a mesh file holds; see the module docstring for each field's meaning."""

    verts: torch.Tensor
    faces: torch.Tensor
    uv: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    vertex_colors: Optional[torch.Tensor] = None
    materials: Optional[List[Material]] = None
    material_names: Optional[List[str]] = None
    face_materials: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None
    extra: Dict[str, torch.Tensor] = field(default_factory=dict)
    sources: List[Path] = field(default_factory=list)

    @property
    def colors(self) -> Optional[torch.Tensor]:
        """Deprecated name (``PlyMesh.colors``) of :attr:`vertex_colors`."""
        warnings.warn("MeshData.colors (PlyMesh.colors) is deprecated; use .vertex_colors", FutureWarning,
                      stacklevel=2)
        return self.vertex_colors

    @property
    def mtllibs(self) -> List[Path]:
        """The MTL libraries an OBJ named (``ObjData.mtllibs``): :attr:`sources`."""
        return self.sources
