"""``orbit_cameras(dist, elev, azim)``: cameras on a sphere around a point, as PyTorch3D's
``look_at_view_transform`` places them, returned as one (batched) lumigrad :class:`Camera`."""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from .._checks import check_number
from .camera import Camera

__all__ = ["orbit_cameras"]

Angles = Union[float, Sequence[float], torch.Tensor]


def orbit_cameras(dist: Angles = 1.0, elev: Angles = 0.0, azim: Angles = 0.0, *, degrees: bool = True,
                  at: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 1.0, 0.0), fov_y: float = 0.8,
                  width: int = 256, height: int = 256, dtype: torch.dtype = torch.float32) -> Camera:
    """Cameras at distance ``dist`` from ``at``, ``elev`` above the x-z plane and ``azim`` about +y from +z, looking
    at ``at`` (PyTorch3D's ``look_at_view_transform`` placement: ``eye = at + dist * (cos e sin a, sin e,
    cos e cos a)``), in lumigrad's OpenCV camera convention.

    Args:
        dist, elev, azim: numbers or 1-D sequences / tensors, broadcast together; one camera per entry.
        degrees: ``elev`` / ``azim`` in degrees (PyTorch3D's default) or radians.
        at, up: the point looked at and the world direction shown upwards.
        fov_y: vertical field of view in **radians** (as everywhere in lumigrad); width, height: pixels.

    Returns:
        a :class:`Camera` with batch shape ``[N]`` (``[]`` when all three are numbers).

    **Differentiability:** the poses are differentiable w.r.t. tensor ``dist``, ``elev`` and ``azim``.

    Raises:
        ValueError: a non-finite or non-positive ``dist``, shapes that do not broadcast, an eye on the ``up``
            axis (looking straight up or down along ``up``: pass another ``up``).
    """
    scalar = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (dist, elev, azim))
    d, e, a = (torch.as_tensor(x, dtype=dtype) for x in (dist, elev, azim))
    try:
        d, e, a = torch.broadcast_tensors(d.reshape(-1), e.reshape(-1), a.reshape(-1))
    except RuntimeError:
        raise ValueError(f"dist, elev and azim must broadcast together; got shapes {tuple(d.shape)}, "
                         f"{tuple(e.shape)}, {tuple(a.shape)}") from None
    if not bool(torch.isfinite(d).all() & (d > 0).all()):
        raise ValueError(f"dist must be finite and > 0; got {d.tolist()}")
    for name, x in (("elev", e), ("azim", a)):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite; got {x.tolist()}")
    if degrees:
        e, a = e * (math.pi / 180.0), a * (math.pi / 180.0)
    check_number(fov_y, "fov_y")
    target = torch.as_tensor(at, dtype=dtype).expand(d.shape[0], 3)
    direction = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1)
    eye = target + d[:, None] * direction
    up_t = torch.as_tensor(up, dtype=dtype)
    view = torch.nn.functional.normalize(target - eye, dim=-1)
    if bool((torch.linalg.cross(view, up_t.expand_as(view)).norm(dim=-1) < 1e-6).any()):
        raise ValueError("an eye lies on the up axis through `at` (elev = +-90 degrees with up = +y): the view "
                         "direction is parallel to up; pass another up")
    camera = Camera.look_at(eye, target, up_t, fov_y=fov_y, width=width, height=height)
    return camera[0] if scalar else camera
