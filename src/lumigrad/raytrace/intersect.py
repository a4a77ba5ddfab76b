"""Ray-triangle hits: the BVH finds them (ids), PyTorch recomputes what is differentiated.

:func:`trace_closest` asks the BVH (:mod:`lumigrad.kernels.bvh`) for the nearest face along each ray and
recomputes the distance and barycentrics of that face by Möller–Trumbore in PyTorch
(:func:`intersect_faces`), so gradients reach the vertices, the ray origins and directions.
:func:`trace_occluded` answers shadow rays. :func:`intersect_reference` is a float64 brute-force twin for
tests. :func:`offset_ray_origin` moves a ray's start off the surface it leaves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple, Union

import torch

from .._checks import check_indices, check_tensor
from ..kernels.bvh import bvh_for

__all__ = ["RayHit", "intersect_faces", "intersect_reference", "offset_ray_origin", "trace_closest",
           "trace_occluded"]


@dataclass
class RayHit:
    """Hits of rays: ``face [R]`` int64 (-1 on a miss), ``t [R]`` (inf on a miss), ``bary [R, 3]`` weights of
    the face's corners 0, 1, 2 (zero on a miss)."""

    face: torch.Tensor
    t: torch.Tensor
    bary: torch.Tensor

    @property
    def hit(self) -> torch.Tensor:
        return self.face >= 0


def intersect_faces(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                    face: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(t [R], bary [R, 3])`` of each ray with the plane of its face ``face [R]`` (ids of rows of ``faces``;
    no inside test: the face is taken as hit), unchecked.

    Möller–Trumbore with edges ``e1 = v1 - v0``, ``e2 = v2 - v0``: ``t = (e2 . q) / det``, ``b1 = (s . p) / det``,
    ``b2 = (d . q) / det`` with ``p = d x e2``, ``s = o - v0``, ``q = s x e1``, ``det = e1 . p``; a ray parallel to
    the face (``det = 0``) gets ``t = inf`` and zero barycentrics with zero gradients.

    **Differentiability:** smooth in ``verts``, ``origins`` and ``directions`` wherever ``det != 0``.
    """
    v = verts[faces.index_select(0, face)]  # [R, 3, 3]
    v0 = v[:, 0]
    e1, e2 = v[:, 1] - v0, v[:, 2] - v0
    p = torch.linalg.cross(directions, e2)
    det = (e1 * p).sum(-1)
    ok = det != 0
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    s = origins - v0
    q = torch.linalg.cross(s, e1)
    b1 = (s * p).sum(-1) * inv
    b2 = (directions * q).sum(-1) * inv
    t = (e2 * q).sum(-1) * inv
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.where(ok, t, torch.full_like(t, math.inf)), torch.where(ok[:, None], bary, zero)


def trace_closest(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                  t_max: Union[float, torch.Tensor] = math.inf) -> RayHit:
    """The nearest hit of each ray ``origins + t directions`` (``0 < t < t_max``) with the triangles.

    Args:
        verts: ``[V, 3]`` float; faces: ``[F, 3]`` integer indices into ``verts``.
        origins, directions: ``[R, 3]`` float, on ``verts``' device; directions need not be unit (``t`` is in
            their units).
        t_max: a number or ``[R]``.

    **Differentiability:** ``t`` and ``bary`` w.r.t. ``verts``, ``origins`` and ``directions`` (recomputed from
    the hit faces); which face is hit is piecewise constant (no gradient).
    """
    _check_rays(verts, faces, origins, directions)
    face, _, _ = bvh_for(verts.detach(), faces).closest_hit(origins, directions, t_max)
    hit = face >= 0
    t, bary = intersect_faces(verts, faces, origins, directions, face.clamp_min(0))
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    return RayHit(face, torch.where(hit, t, torch.full_like(t, math.inf)), torch.where(hit[:, None], bary, zero))


def trace_occluded(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                   t_max: Union[float, torch.Tensor] = math.inf) -> torch.Tensor:
    """``[R]`` bool: whether any triangle lies on each ray with ``0 < t < t_max`` (not differentiable)."""
    _check_rays(verts, faces, origins, directions)
    return bvh_for(verts.detach(), faces).occluded(origins, directions, t_max)


def intersect_reference(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor,
                        directions: torch.Tensor) -> RayHit:
    """Brute-force float64 twin of :func:`trace_closest` (every ray against every face; for tests)."""
    v = verts.double()[faces.long()]  # [F, 3, 3]
    o, d = origins.double()[:, None], directions.double()[:, None]
    e1, e2 = v[None, :, 1] - v[None, :, 0], v[None, :, 2] - v[None, :, 0]
    R, F = o.shape[0], v.shape[0]
    p = torch.linalg.cross(d.expand(R, F, 3), e2.expand(R, F, 3))
    det = (e1 * p).sum(-1)
    inv = 1.0 / torch.where(det != 0, det, torch.ones_like(det))
    s = o - v[None, :, 0]
    q = torch.linalg.cross(s, e1.expand(R, F, 3))
    b1, b2, t = (s * p).sum(-1) * inv, (d * q).sum(-1) * inv, (e2 * q).sum(-1) * inv
    inside = (det != 0) & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t > 0)
    t = torch.where(inside, t, torch.full_like(t, math.inf))
    best, face = t.min(1)
    hit = torch.isfinite(best)
    rows = torch.arange(face.shape[0])
    bary = torch.stack([1 - b1 - b2, b1, b2], -1)[rows, face]
    return RayHit(torch.where(hit, face, -1), best, torch.where(hit[:, None], bary, torch.zeros_like(bary)))


def offset_ray_origin(p: torch.Tensor, n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``p`` moved off its surface (unit geometric normal ``n``) to the side ``d`` leaves towards, by an epsilon
    that grows with the coordinates' magnitude (float32 BVH queries lose relative precision ~1e-7), so a ray
    from ``p`` does not hit the surface it starts on."""
    side = torch.where((n * d).sum(-1, keepdim=True) >= 0, 1.0, -1.0).to(p.dtype)
    eps = 1e-4 * (1.0 + p.detach().abs().amax(-1, keepdim=True))
    return p + n * side * eps


def _check_rays(verts, faces, origins, directions) -> None:
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    check_indices(faces, "faces", verts.shape[0])
    check_tensor(origins, "origins", trailing=(3,), max_dims=2, floating=True, finite=True, device=verts.device)
    check_tensor(directions, "directions", trailing=(3,), max_dims=2, floating=True, finite=True,
                 device=verts.device)
    if origins.shape != directions.shape:
        raise ValueError(f"origins and directions must have the same shape [R, 3]; got {tuple(origins.shape)} and "
                         f"{tuple(directions.shape)}")
