"""The thin lens: depth of field, and the pinhole camera each point of the aperture is.

A thin-lens camera (Mitsuba's ``thinlens`` sensor, pbrt's ``perspective`` with a lens radius) sees pixel ``uv``
along every ray from a point ``L = (l_x, l_y, 0)`` of its aperture, a disk of radius ``aperture_radius`` about the
camera centre in the camera's ``z = 0`` plane, through the point ``P = f (n, 1)`` where the pinhole ray of ``uv``
(normalized coordinates ``n``) meets the focal plane ``z = f`` (``focus_distance``, camera-frame depth). Points
on the focal plane are sharp; others blur into disks (circles of confusion) of diameter
``2 aperture_radius |z - f| / z`` in normalized units at depth ``z``.

For one aperture point the camera is a pinhole: centred at ``L``, with the principal point moved by
``K[:2, :2] L_xy / f``, it maps every point of the ray ``(uv, L)`` to ``uv``
(:func:`pinhole_through`). Renderers that sample the aperture draw their visibility boundary terms from such
pinhole views (the image is their mean over the aperture), so silhouettes and shadow edges give gradients of
every camera parameter, ``aperture_radius`` and ``focus_distance`` included.

The aperture is sampled by Shirley and Chiu's concentric map of the unit square onto the disk
(:func:`disk_points`), which keeps strata together, as Mitsuba's and pbrt's thin lenses do.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["disk_points", "lens_rays", "pinhole_through"]


def disk_points(u: torch.Tensor) -> torch.Tensor:
    """Points ``[..., 2]`` of the unit disk from uniform samples ``u [..., 2]`` of the unit square (Shirley and
    Chiu's concentric map: uniform in area, continuous, strata kept together).

    >>> disk_points(torch.tensor([[0.5, 0.5], [1.0, 0.5], [0.5, 0.0]])).round(decimals=6) + 0.0  # (+0.0: no -0.)
    tensor([[ 0.,  0.],
            [ 1.,  0.],
            [ 0., -1.]])
    """
    a = 2 * u[..., 0] - 1
    b = 2 * u[..., 1] - 1
    first = a.abs() > b.abs()  # the wedge of the x axis (|a| > |b|) or of the y axis
    r = torch.where(first, a, b)
    safe_a = torch.where(a == 0, torch.ones_like(a), a)
    safe_b = torch.where(b == 0, torch.ones_like(b), b)
    phi = torch.where(first, (math.pi / 4) * (b / safe_a), (math.pi / 2) - (math.pi / 4) * (a / safe_b))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1)


def lens_rays(directions: torch.Tensor, lens: torch.Tensor, aperture_radius: torch.Tensor,
              focus_distance: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame thin-lens rays ``(origins [..., 3], directions [..., 3])``.

    Args:
        directions: the pinhole rays ``(n, 1) [..., 3]`` of the pixels (``z = 1``).
        lens: uniform samples ``[..., 2]`` of the unit square, one per ray (mapped onto the aperture by
            :func:`disk_points`).
        aperture_radius, focus_distance: broadcasting with the rays' leading dims (``[...]``).

    The origin is the aperture point ``L = (aperture_radius disk(lens), 0)``, the direction
    ``(n - L_xy / f, 1)``: ``origin + z * direction`` is the point at depth ``z`` the ray passes, ``f (n, 1)`` at
    the focal plane for every ``L``. Differentiable in all four inputs.
    """
    L = aperture_radius[..., None] * disk_points(lens)
    xy = directions[..., :2] - L / focus_distance[..., None]
    origins = torch.cat([L, torch.zeros_like(L[..., :1])], -1)
    return origins, torch.cat([xy, directions[..., 2:]], -1)


def pinhole_through(K: torch.Tensor, world_to_cam: torch.Tensor, lens_point: torch.Tensor,
                    focus_distance: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The pinhole camera ``(K' [..., 3, 3], world_to_cam' [..., 4, 4])`` of the aperture point ``lens_point``
    (``[..., 2]``, camera-frame ``(l_x, l_y)`` in world units) of a thin lens focused at ``focus_distance``.

    Centred at ``L``: ``world_to_cam' = T(-L) world_to_cam`` (the same rotation); ``K' = K M`` with
    ``M = [[1, 0, l_x / f], [0, 1, l_y / f], [0, 0, 1]]``, so that a point ``L + z (n - L / f, 1)`` of the thin
    lens's ray through pixel ``K (n, 1)`` projects to that same pixel. Differentiable in all inputs.
    """
    shift = lens_point / focus_distance[..., None]  # [..., 2]
    zero, one = torch.zeros_like(shift[..., 0]), torch.ones_like(shift[..., 0])
    M = torch.stack([torch.stack([one, zero, shift[..., 0]], -1), torch.stack([zero, one, shift[..., 1]], -1),
                     torch.stack([zero, zero, one], -1)], -2)
    offset = torch.cat([lens_point, torch.zeros_like(lens_point[..., :1])], -1)  # [..., 3]
    batch = torch.broadcast_shapes(world_to_cam.shape[:-2], offset.shape[:-1])
    top = torch.cat([world_to_cam[..., :3, :3].expand(batch + (3, 3)),
                     (world_to_cam[..., :3, 3:] - offset[..., None]).expand(batch + (3, 1))], -1)
    return K @ M, torch.cat([top, world_to_cam[..., 3:, :].expand(batch + (1, 4))], -2)
