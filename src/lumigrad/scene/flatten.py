"""One flattening of a scene into world-space triangles, for the rasterizer, a BVH and the metrics.

``flatten(scene)`` asks every shape for its triangles (:meth:`lumigrad.scene.Shape.triangles`; shapes that
are not made of triangles give none) and merges them into one table: world positions, faces offset into
them, texture coordinates, and which shape and material each face comes from. With ``emitters=True`` area
lights of uniform radiance join as emissive triangles (black, rough, emitting their radiance from their front
faces, or both sides when ``two_sided``), which is how :func:`lumigrad.render` draws them.

Example: two meshes of 4 and 3 vertices with 2 and 1 faces give ``verts [7, 3]``, ``faces [3, 3]`` with the
second mesh's indices offset by 4, and ``face_part = [0, 0, 1]``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import List, Optional

import torch

from ..shading.material import Material
from ..shading.tangents import corner_tangents, frame_tangents
from .lights import AreaLight
from .scene import SceneMesh
from .shape import ShapeTriangles

__all__ = ["FlatPart", "Triangles", "flatten"]


@dataclass
class FlatPart:
    """One shape's block of a :class:`Triangles` table.

    Attributes:
        name: ``"meshes.cow"`` or ``"lights.panel"``: the collection and name of the shape or emitter.
        source: the shape (or area light) itself.
        material: the material of its faces; ``material_id`` its index in ``Triangles.materials``.
        double_sided: whether its back faces are shaded.
        verts, faces, uv, uv_faces, normals, tangents: its own tables (faces index its own vertices; a shape
            without texture coordinates gets one zero ``uv`` that every corner uses).
        first_vert, first_uv, first_face: where its rows start in the merged tables.
    """

    name: str
    source: object
    material: Material
    material_id: int
    double_sided: bool
    verts: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    normals: Optional[torch.Tensor]
    tangents: Optional[torch.Tensor]
    first_vert: int
    first_uv: int
    first_face: int


@dataclass
class Triangles:
    """A scene's triangles in world space (what :func:`flatten` returns).

    Attributes:
        verts: ``[V, 3]`` world positions of every part, one after the other.
        faces: ``[F, 3]`` indices into ``verts``.
        uv: ``[T, 2]`` texture coordinates; ``uv_faces``: ``[F, 3]`` indices into ``uv``.
        normals: ``[V, 3]`` world shading normals (not unit length), or ``None`` unless asked for.
        parts: the :class:`FlatPart` of each shape, in scene order.
        materials: the distinct materials of the parts (by identity), in order of first use.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    normals: Optional[torch.Tensor]
    parts: List[FlatPart]
    materials: List[Material] = field(default_factory=list)

    @property
    def face_part(self) -> torch.Tensor:
        """``[F]`` int64: the index in ``parts`` of the shape each face comes from."""
        counts = torch.tensor([p.faces.shape[0] for p in self.parts], dtype=torch.long, device=self.faces.device)
        return torch.repeat_interleave(torch.arange(len(self.parts), device=self.faces.device), counts)

    def shading_tangents(self) -> Optional[torch.Tensor]:
        """``[F, 3, 4]`` world tangents per face corner: for normal mapping (the shape's own tangents, else derived
        from its uv: :func:`lumigrad.shading.vertex_tangents`) and for anisotropic lobes
        (``Material.roughness_aspect``; the shape's own tangents, else Mitsuba's frame of each triangle:
        :func:`lumigrad.shading.tangents.frame_tangents`); zeros on the other parts. ``None`` when no part needs
        them. Needs ``normals`` (``flatten(..., normals=True)``) where a part has a normal map.
        **Differentiability:** in the vertices, normals and texture coordinates."""
        mapped = [p.material.normal_texture is not None for p in self.parts]
        anisotropic = [getattr(p.material, "roughness_aspect", None) is not None for p in self.parts]
        if not any(mapped) and not any(anisotropic):
            return None
        if any(mapped) and self.normals is None:
            raise ValueError("shading_tangents needs the shading normals: flatten(scene, normals=True)")
        out = []
        for p, normal_map, aspect in zip(self.parts, mapped, anisotropic):
            if normal_map:
                out.append(corner_tangents(p.verts, p.faces, p.uv, p.uv_faces, p.normals, p.tangents))
            elif aspect:
                out.append(p.tangents[p.faces] if p.tangents is not None
                           else frame_tangents(p.verts, p.faces, p.uv, p.uv_faces))
            else:
                out.append(p.verts.new_zeros(p.faces.shape[0], 3, 4))
        return torch.cat(out)

    @property
    def face_material(self) -> torch.Tensor:
        """``[F]`` int64: the index in ``materials`` of each face's material."""
        ids = torch.tensor([p.material_id for p in self.parts], dtype=torch.long, device=self.faces.device)
        return ids[self.face_part] if self.parts else self.face_part

    @property
    def part_names(self) -> List[str]:
        return [p.name for p in self.parts]


def flatten(scene, *, emitters: bool = False, normals: bool = False) -> Triangles:
    """Merge ``scene``'s triangle shapes (and, with ``emitters``, its uniform area lights) in world space.

    Args:
        scene: a :class:`lumigrad.Scene`.
        emitters: include area lights of uniform radiance ``[C]`` as emissive parts (after the shapes).
        normals: compute world shading normals (and world tangents of shapes that have them).

    Returns:
        a :class:`Triangles`; empty tables when nothing is made of triangles.

    **Differentiability:** every table is computed from the shapes' tensors by differentiable operations
    (transforms, concatenation), so gradients reach vertices, transforms, normals and texture coordinates.
    """
    pieces = []
    for group, members in scene.shapes.items():
        for name, shape in members.items():
            tri = shape.triangles(normals)
            if tri is not None:
                pieces.append((f"{group}.{name}", shape, tri))
    if emitters:
        for name, light in scene.lights.items():
            if isinstance(light, AreaLight) and light.radiance.dim() == 1:  # drawn as an emitter, front faces
                pieces.append((f"lights.{name}", light, _emitter_triangles(light, normals)))
    parts: List[FlatPart] = []
    materials: List[Material] = []
    verts, faces, uv, uv_faces, vertex_normals = [], [], [], [], []
    v0 = t0 = f0 = 0
    for name, source, tri in pieces:
        tuv, tuv_faces = tri.uv, tri.uv_faces
        if tuv is None:  # one dummy texture coordinate for the whole shape
            tuv, tuv_faces = tri.verts.new_zeros(1, 2), torch.zeros_like(tri.faces)
        material_id = next((k for k, m in enumerate(materials) if m is tri.material), len(materials))
        if material_id == len(materials):
            materials.append(tri.material)
        parts.append(FlatPart(name, source, tri.material, material_id, bool(tri.double_sided), tri.verts, tri.faces,
                              tuv, tuv_faces, tri.normals, tri.tangents, v0, t0, f0))
        verts.append(tri.verts)
        faces.append((tri.faces, v0))
        uv.append(tuv)
        uv_faces.append((tuv_faces, t0))
        vertex_normals.append(tri.normals)
        v0, t0, f0 = v0 + tri.verts.shape[0], t0 + tuv.shape[0], f0 + tri.faces.shape[0]
    if not parts:
        return Triangles(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 2),
                         torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3) if normals else None, [], [])
    return Triangles(_cat(verts), _merged_indices(faces), _cat(uv), _merged_indices(uv_faces),
                     _cat(vertex_normals) if normals else None, parts, materials)


def _cat(tables: List[torch.Tensor]) -> torch.Tensor:
    return tables[0] if len(tables) == 1 else torch.cat(tables)


#: Merged index tables by the identity of their parts: ``key -> (weak references to the parts, their versions,
#: the merged table)``.
_MERGED: dict = {}


def _merged_indices(tables: List[tuple]) -> torch.Tensor:
    """One index table from ``[(table, offset), ...]``, each table's indices shifted by its offset.

    The same unchanged tables give the same tensor from call to call (one part: the part's own table), so the
    caches keyed by a table's identity (index checks, the edge adjacency of antialiasing) hold from frame to
    frame. A part changed in place (its version moved) or replaced gives a new merged table.
    """
    if len(tables) == 1 and tables[0][1] == 0:
        return tables[0][0]
    key = tuple((id(t), offset) for t, offset in tables)
    versions = tuple(t._version if not t.is_inference() else None for t, _ in tables)
    hit = _MERGED.get(key)
    if hit is not None and all(r() is t for r, (t, _) in zip(hit[0], tables)) and hit[1] == versions \
            and None not in versions:
        return hit[2]
    merged = torch.cat([t + offset if offset else t for t, offset in tables])
    if None not in versions:
        if len(_MERGED) >= 32:  # drop the entries of freed tables, then the oldest
            for stale in [k for k, e in _MERGED.items() if any(r() is None for r in e[0])]:
                del _MERGED[stale]
            while len(_MERGED) >= 32:
                del _MERGED[next(iter(_MERGED))]
        _MERGED[key] = (tuple(weakref.ref(t) for t, _ in tables), versions, merged)
    return merged


def _emitter_triangles(light: AreaLight, normals: bool) -> ShapeTriangles:
    black = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=light.radiance.dtype, device=light.radiance.device)
    material = Material(base_color_factor=black, metallic_factor=0.0, roughness_factor=1.0,
                        emissive_factor=light.radiance)
    return SceneMesh(light.verts, light.faces, material, double_sided=light.two_sided).triangles(normals)
