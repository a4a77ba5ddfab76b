"""``Shape``: what a scene holds geometry through, one kind per group of the scene.

Triangle meshes (:class:`lumigrad.SceneMesh`, group ``"meshes"``) are the one kind today; Gaussian clouds and
neural fields plug in later the same way: a class with a ``group`` (the scene collection and the first
part of its parameter names), a ``kind`` (what :class:`~lumigrad.scene.ParamInfo` calls its owner), its own
``parameters()`` and the kind of each, and, for shapes made of triangles, ``triangles()`` in world space
(what :meth:`lumigrad.Scene.flatten` merges for the rasterizer, a BVH and the metrics)::

    @dataclass
    class Disk(Shape):
        group: ClassVar[str] = "disks"
        kind: ClassVar[str] = "disk"
        centre: torch.Tensor
        radius: torch.Tensor

        def parameter_kinds(self):
            return {"centre": "other", "radius": "other"}

    scene.add_shape("lid", Disk(torch.zeros(3), torch.tensor(0.5)))   # "disks.lid.radius" is a parameter

A parameter's local name is its attribute path on the shape (``"material.roughness_factor"`` is
``shape.material.roughness_factor``): the scene reads and writes it there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional

import torch

__all__ = ["Shape", "ShapeTriangles"]


@dataclass
class ShapeTriangles:
    """One shape's triangles in world space (what :meth:`Shape.triangles` returns).

    Attributes:
        verts: ``[V, 3]`` world positions; ``faces``: ``[F, 3]`` indices into them (counter-clockwise front).
        uv: ``[T, 2]`` texture coordinates and ``uv_faces [F, 3]`` indices into them, or both ``None``.
        normals: ``[V, 3]`` world shading normals (not unit length), or ``None`` when not asked for.
        tangents: ``[V, 4]`` world glTF tangents (xyz, handedness w), or ``None``.
        material: the :class:`lumigrad.shading.Material` of every face.
        double_sided: whether back faces are shaded (with the flipped normal).
    """

    verts: torch.Tensor
    faces: torch.Tensor
    material: object
    uv: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None
    tangents: Optional[torch.Tensor] = None
    double_sided: bool = False


class Shape(ABC):
    """The interface every kind of scene geometry implements (see the module docstring)."""

    #: The scene collection holding shapes of this class, and the first part of their parameter names.
    group: ClassVar[str]
    #: What :attr:`lumigrad.scene.ParamInfo.owner_kind` says for its parameters.
    kind: ClassVar[str]

    @abstractmethod
    def parameter_kinds(self) -> Dict[str, str]:
        """``{local name: kind}`` for every parameter the shape has now (kinds from
        :data:`lumigrad.scene.params.PARAM_KINDS`); a local name is the attribute path of the tensor."""

    def parameters(self) -> Dict[str, torch.Tensor]:
        """Every tensor parameter under its local name (floating tensors only: no indices)."""
        out = {}
        for name in self.parameter_kinds():
            value = self
            for part in name.split("."):
                value = getattr(value, part)
            if isinstance(value, torch.Tensor):
                out[name] = value
        return out

    def triangles(self, normals: bool = False) -> Optional[ShapeTriangles]:
        """The shape as world-space triangles (``normals``: with shading normals and tangents), or ``None``
        for a shape that is not made of triangles."""
        return None
