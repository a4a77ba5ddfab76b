"""``VolumeShape``: a radiance field (and its occupancy grid) held by a :class:`~lumigrad.Scene`.

It plugs into the scene through the :class:`~lumigrad.scene.Shape` seam, group ``"volumes"``, so that
``scene.parameters()`` lists the field's tensors (``volumes.NAME.field.encoder.table``, ...) beside the
meshes', and the ``"volume"`` integrator (:class:`~lumigrad.integrators.VolumeIntegrator`) renders it::

    scene = lg.Scene()
    scene.add_shape("bottle", VolumeShape(NerfField(aabb)))
    out = lg.render(scene, camera, integrator="volume", aovs=("depth",))

A volume has no triangles: the rasterizer and the path tracer do not see it.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Optional

import torch
from torch import nn

from ..volume.occupancy import OccupancyGrid
from .params import OTHER
from .shape import Shape

__all__ = ["VolumeShape"]


class VolumeShape(Shape):
    """A radiance field as scene geometry.

    Args:
        field: a module with ``aabb`` (``[2, 3]`` or ``[6]``), ``density(points)`` and
            ``forward(points, directions) -> (sigma, rgb)`` (e.g. :class:`~lumigrad.volume.fields.NerfField`).
        occupancy: an :class:`~lumigrad.volume.OccupancyGrid` over the same box, used to skip empty space; or
            ``None``.

    Raises:
        TypeError: ``field`` is not an ``nn.Module`` with ``density``; ``occupancy`` not an OccupancyGrid.
        ValueError: ``field.aabb`` missing or not six numbers.

    **Differentiability:** the field's parameters are the shape's parameters (kind ``"other"``); renders
    through :func:`~lumigrad.volume.render_rays` are differentiable w.r.t. them.
    """

    group: ClassVar[str] = "volumes"
    kind: ClassVar[str] = "volume"

    def __init__(self, field: nn.Module, occupancy: Optional[OccupancyGrid] = None):
        if not isinstance(field, nn.Module) or not callable(getattr(field, "density", None)):
            raise TypeError(f"field must be an nn.Module with density(points) and forward(points, directions); got "
                            f"{type(field).__name__}")
        aabb = getattr(field, "aabb", None)
        if not isinstance(aabb, torch.Tensor) or aabb.numel() != 6:
            raise ValueError("field must have an aabb tensor ([2, 3] or [6]: the box the field lives in)")
        if occupancy is not None and not isinstance(occupancy, OccupancyGrid):
            raise TypeError(f"occupancy must be an OccupancyGrid or None; got {type(occupancy).__name__}")
        self.field = field
        self.occupancy = occupancy

    @property
    def aabb(self) -> torch.Tensor:
        """``[6]`` the field's box ``(x_min, y_min, z_min, x_max, y_max, z_max)``."""
        return self.field.aabb.reshape(6)

    def parameter_kinds(self) -> Dict[str, str]:
        return {f"field.{name}": OTHER for name, _ in self.field.named_parameters()}

    def __repr__(self) -> str:
        return f"VolumeShape(field={type(self.field).__name__}, occupancy={self.occupancy is not None})"
