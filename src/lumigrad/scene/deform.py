"""``deformed_scene(scene, deformation, t)``: a copy of a scene with one mesh's vertices moved by a deformation."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Optional

import torch

from ..geometry.deformation import deform_verts
from .scene import Scene

__all__ = ["deformed_scene"]


def deformed_scene(scene: Scene, deformation, t, *, mesh: Optional[str] = None) -> Scene:
    """The scene at time ``t`` with ``scene.meshes[mesh].verts`` replaced by ``verts + deformation.offsets(verts, t)``.

    Args:
        scene: the rest scene (left unchanged; the copy shares every other shape, light, camera and the film).
        deformation: anything with ``offsets(verts [V, 3], times [N]) -> [N, V, 3]``
            (:class:`lumigrad.geometry.BasisDeformation`, :class:`lumigrad.geometry.MLPDeformation`).
        t: one time, a float or a 0-d tensor (a tensor with grad makes the pose differentiable in time).
        mesh: the mesh to deform; ``None`` for the scene's only mesh.

    Returns:
        A new :class:`Scene`. The offsets act in the mesh's own frame (before ``to_world``).

    Raises:
        ValueError: ``mesh`` not in the scene (or ``None`` with several meshes); TypeError: ``scene`` not a Scene,
            ``t`` not one number.

    **Differentiability:** the deformed vertices carry gradients to the deformation's parameters and to the
    rest vertices; render the result with any integrator.
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    if mesh is None:
        if len(scene.meshes) != 1:
            raise ValueError(f"mesh=None needs a scene with exactly one mesh; this one has {list(scene.meshes)}")
        mesh = next(iter(scene.meshes))
    if mesh not in scene.meshes:
        raise ValueError(f"mesh {mesh!r} is not in the scene; its meshes are {list(scene.meshes)}")
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise TypeError(f"t must be one time (a float or a one-element tensor); got shape {tuple(t.shape)}")
        t = t.reshape(())
    elif isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"t must be one time (a float or a one-element tensor); got {type(t).__name__}")
    rest = scene.meshes[mesh]
    out = copy.copy(scene)
    out.meshes[mesh] = replace(rest, verts=deform_verts(rest.verts, deformation, t))
    return out
