"""``scene_from_mesh``: a :class:`lumigrad.Mesh` with per-face materials as a :class:`Scene`, one mesh per material."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, Optional

import torch

from ..mesh import Mesh
from ..shading.material import Material
from .scene import Scene, SceneMesh

__all__ = ["as_scene", "scene_from_mesh"]

_NAME_OK = re.compile(r"^[A-Za-z0-9_\-]+$")
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-]")


def scene_from_mesh(mesh: Mesh, name: str = "mesh", double_sided: bool = True) -> Scene:
    """Split ``mesh`` into one :class:`SceneMesh` per material and return them as a :class:`Scene`.

    Args:
        mesh: a :class:`lumigrad.Mesh`. With ``materials`` / ``face_materials`` (e.g. from an OBJ with an MTL
            library), each material that some face uses becomes one scene mesh; materials no face uses are
            skipped. Without materials, the whole mesh is one scene mesh with a default material: grey
            (``base_color_factor = (0.8, 0.8, 0.8, 1)``, metallic 0, roughness 1), or white with
            ``mesh.texture`` as its ``base_color_texture`` when the mesh has a texture.
        name: the scene mesh name (letters, digits, ``_``, ``-``); per-material meshes are named
            ``f"{name}_{material_name}"``, with characters that scene names do not allow (``.``, spaces ...)
            replaced by ``_`` and a ``_2``, ``_3`` ... suffix where two names would collide. (Scene names
            cannot contain ``.``: they are parts of dotted parameter names.)
        double_sided: the scene meshes' ``double_sided`` flag (OBJ has no such notion; the Cornell box's walls
            are single quads seen from inside, so the default is True).

    Returns:
        a :class:`Scene` with only ``meshes`` filled, in material order.

    Each scene mesh holds the faces of one material, re-indexed to the vertices (and texture coordinates)
    they use, in increasing order of the original index. ``mesh.texture``, when set, becomes the
    ``base_color_texture`` of materials that have none (values as stored, decoded as sRGB by
    :func:`lumigrad.shading.sample_material`, as for glTF). Materials are shared, not copied, so optimising
    ``scene["meshes.mesh_red.material.base_color_factor"]`` updates ``mesh.materials``.

    **Differentiability:** the scene meshes' ``verts`` / ``uv`` are gathered from ``mesh.verts`` / ``mesh.uv``
    by indexing, so gradients flow back to the mesh's tensors.

    Raises:
        TypeError: ``mesh`` is not a :class:`lumigrad.Mesh`.
        ValueError: ``name`` is not a valid scene name.

    Example: a Cornell box read with :func:`lumigrad.io.read_mesh` gives meshes ``mesh_leftWall``,
    ``mesh_rightWall``, ... whose face counts add up to the box's.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a lumigrad.Mesh; got {type(mesh).__name__}")
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise ValueError(f"name {name!r} must be non-empty and use only letters, digits, '_' and '-'")
    scene = Scene()
    if mesh.materials is None:
        dtype = mesh.verts.dtype
        if mesh.texture is not None:
            material = Material(base_color_factor=torch.ones(4, dtype=dtype),
                                metallic_factor=torch.tensor(0.0, dtype=dtype), base_color_texture=mesh.texture)
        else:
            material = _grey(dtype)
        scene.add_mesh(name, SceneMesh(mesh.verts, mesh.faces, material, uv=mesh.uv, uv_faces=mesh.uv_faces,
                                       double_sided=double_sided))
        return scene
    taken: Dict[str, int] = {}
    for k, (material, material_name) in enumerate(zip(mesh.materials, mesh.material_names)):
        mask = mesh.face_materials == k
        if not bool(mask.any()):
            continue
        used, faces = torch.unique(mesh.faces[mask], return_inverse=True)
        uv: Optional[torch.Tensor] = None
        uv_faces: Optional[torch.Tensor] = None
        if mesh.uv is not None:
            uv_used, uv_faces = torch.unique(mesh.uv_faces[mask], return_inverse=True)
            uv = mesh.uv[uv_used]
        if mesh.texture is not None and material.base_color_texture is None:
            material = replace(material, base_color_texture=mesh.texture)
        sub = SceneMesh(mesh.verts[used], faces, material, uv=uv, uv_faces=uv_faces, double_sided=double_sided)
        scene.add_mesh(_unique(f"{name}_{_NAME_BAD_CHARS.sub('_', material_name)}", taken), sub)
    return scene


def _grey(dtype: torch.dtype) -> Material:
    return Material(base_color_factor=torch.tensor([0.8, 0.8, 0.8, 1.0], dtype=dtype),
                    metallic_factor=torch.tensor(0.0, dtype=dtype), roughness_factor=torch.tensor(1.0, dtype=dtype))


def _unique(candidate: str, taken: Dict[str, int]) -> str:
    if candidate not in taken:
        taken[candidate] = 1
        return candidate
    while True:
        taken[candidate] += 1
        alt = f"{candidate}_{taken[candidate]}"
        if alt not in taken:
            taken[alt] = 1
            return alt


def as_scene(obj, source: str = "the input") -> Scene:
    """A :class:`Scene` from what :func:`lumigrad.io.load` returns for a scene or mesh file.

    A :class:`Scene` is returned as is; a :class:`Mesh` goes through :func:`scene_from_mesh`; a
    :class:`lumigrad.io.MeshData` (``verts``, ``faces``, optional ``uv`` / ``uv_faces``) becomes a :class:`Mesh` first.

    Raises:
        ValueError: ``obj`` is neither (``source`` names where it came from).
    """
    if isinstance(obj, Scene):
        return obj
    if isinstance(obj, Mesh):
        return scene_from_mesh(obj)
    if hasattr(obj, "verts") and hasattr(obj, "faces"):
        uv, uv_faces = getattr(obj, "uv", None), getattr(obj, "uv_faces", None)
        if uv is not None and uv_faces is None:
            uv_faces = obj.faces  # per-vertex coordinates
        return scene_from_mesh(Mesh(obj.verts.float(), obj.faces, None if uv is None else uv.float(),
                                    None if uv is None else uv_faces))
    raise ValueError(f"{source} holds no renderable scene or mesh (got {type(obj).__name__})")
