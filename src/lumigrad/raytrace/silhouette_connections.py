"""Silhouettes seen beyond the first hit: the boundary term of the visibility of vertex ``x_k`` from ``x_{k-1}``
(``k >= 2``), by sampling the edges that are silhouettes as seen from the vertices of camera paths.

The path replay (:mod:`lumigrad.raytrace.transport`) differentiates vertex ``x_k`` for a FIXED ray from a
detached ``x_{k-1}``: its interior term lives in the space of directions ``w`` at ``x_{k-1}``. Where the surface
that ray hits jumps (an occluder's silhouette as seen from ``x_{k-1}``: the lamp blocking light bounced between
two walls) the integrand jumps, and moving the silhouette gives the boundary term

    sum over camera-path vertices x_{k-1}  of  int_{silhouettes} beta_{k-1} f_{k-1}(wo, w*) |n_{k-1} . w*|
        (L_minus - L_plus) (n_w . d w*/d theta) dl_w,    w*(theta) = normalize(e(theta) - x_{k-1})

with ``beta_{k-1}`` the image adjoint times the path throughput arriving at ``x_{k-1}``, ``e`` a point on an edge
that is a silhouette seen from ``x_{k-1}`` (a boundary edge, or one whose two faces face ``x_{k-1}``
differently), ``n_w`` the unit normal of the edge's great-circle arc on the sphere of directions (the normal of
the plane through ``x_{k-1}`` and the edge), ``dl_w = |d w*/dt| dt`` along the edge's arc length ``t``
(``|d w*/dt| = |u - (u . w*) w*| / |e - x_{k-1}|``, ``u`` the edge's unit direction; ``x_{k-1}`` is the vertex
offset off its surface, where the rays start: an edge a hair away is seen from there) and ``L`` the radiance
arriving at ``x_{k-1}`` from ``w* -+ eps n_w`` **without the emission of the surface it hits**: the path
tracer's remaining depth, traced by the caller's primal (the same random numbers on both sides: antithetic).
Emission seen directly from ``x_{k-1}`` is its direct light, whose visibility boundary is the shadow-edge term
(:mod:`lumigrad.raytrace.shadow_edge_connections`), so it is left out here not to count it twice.

Estimator: ``samples`` draws of a pool vertex (:func:`~lumigrad.raytrace.shadow_edge_connections.camera_path_vertices`,
with probability ``p_i`` proportional to ``sum_c |beta_i|``) and of a point uniform on the mesh's edges laid end
to end (total length ``T``); a draw whose edge is no silhouette from the vertex, whose point the vertex does not
see, or where ``f |cos|`` is 0 contributes nothing. Each kept draw adds
``detach(v . beta f |cos| (L_minus - L_plus) |d w*/dt| T / (p_i samples)) (n_w . w*(theta))`` to the surrogate,
``e(theta)`` following the edge's moving vertices and ``x_{k-1}`` detached, so it is differentiated w.r.t. the
occluders' vertices (unbiased: every silhouette point of every vertex has a positive density).

Scope and what is left out: the vertex ``x_{k-1}`` needs a lobe that is not a Dirac delta (an index-matched
pass-through evaluates to 0 and connects nothing); near-mirrors are clamped rough
(:mod:`lumigrad.shading.brdf`'s least roughness) and connect with a high variance. Scenes with participating media
get no term (the pool is empty there). The edge points are drawn by length in world space, not by the solid angle
they subtend from the vertex: unbiased, not efficient (far small occluders get few samples).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

from ..raster.topology import welded_positions
from ..shading.transmission import bsdf_for
from .intersect import offset_ray_origin_unchecked
from .shadow_edge_connections import PathVertices, draw_indices
from .shadow_edges import edge_table
from .transport import TraceScene, surface_at
from .volumetric import outward_face_normals

__all__ = ["EPS", "connected_silhouettes"]

#: Radians either side of a silhouette's arc on the sphere of directions at the vertex where the jump is evaluated.
EPS = 2e-4

#: Relative depth under which the point ``e`` counts as hidden from the vertex (something lies in front of it).
_VISIBLE_SLACK = 1e-4


def connected_silhouettes(ts: TraceScene, pools: Sequence[Tuple[PathVertices, int]], radiance: Callable,
                          generator: torch.Generator, samples: int, eps: float = EPS) -> Optional[torch.Tensor]:
    """The surrogate of the boundary term of silhouettes seen from camera-path vertices (module docstring): a
    scalar whose gradient w.r.t. ``ts.verts`` is the term, or None when no draw contributes.

    Args:
        ts: the traced scene (``verts`` with their graph).
        pools: ``(vertices, remaining_depth)`` pairs: pool vertices and the ``max_depth`` (in the path tracer's
            count, -1: no limit) of the radiance arriving at them.
        radiance: ``radiance(o [N, 3], d [N, 3], max_depth) -> [N, C]``, detached, the radiance along the rays
            without the emission of their first hit, the same random numbers for the same row on every call.
        generator: the draws of vertices and edge points.
        samples: the number of draws.
    """
    pools = [(p, depth) for p, depth in pools if len(p)]
    if not pools or samples <= 0:
        return None
    device, dtype = ts.verts.device, ts.verts.dtype
    with torch.no_grad():
        face = torch.cat([p.face for p, _ in pools])
        weights = torch.cat([p.weights for p, _ in pools])
        depth = torch.cat([torch.full((len(p),), d, dtype=torch.long, device=device) for p, d in pools])
        si_pool, _, ng_pool, _ = surface_at(ts, face, torch.cat([p.origins for p, _ in pools]),
                                            torch.cat([p.directions for p, _ in pools]))
        weight_of = weights.abs().sum(-1)
        total_weight = weight_of.sum()
        verts = ts.verts.detach()
        a, b, f1, f2, seam = edge_table(ts.verts, ts.faces)
        length = (verts[b] - verts[a]).norm(dim=-1)
        total_length = length.sum()
        if not bool(total_weight > 0) or not bool(total_length > 0):
            return None
        prob = weight_of / total_weight
        i = draw_indices(prob, samples, generator)
        edge = draw_indices(length, samples, generator)
        t = torch.rand(samples, generator=generator, device=device, dtype=dtype)
        x = si_pool.position[i]
        pa, pb = verts[a[edge]], verts[b[edge]]
        e = pa + t[:, None] * (pb - pa)
        # a silhouette from x: a boundary edge, or faces that face x differently
        side1 = (outward_face_normals(verts, ts.faces, f1[edge]) * (x - e)).sum(-1)
        side2 = (outward_face_normals(verts, ts.faces, f2[edge].clamp_min(0)) * (x - e)).sum(-1)
        silhouette = (f2[edge] < 0) | ((side1 > 0) != (side2 > 0))
        silhouette &= (side1 != 0) & ((f2[edge] < 0) | (side2 != 0))  # not in the plane of a face of the edge
        silhouette |= seam[edge] & (side1 != 0)  # a seam: the shading may jump there (one hidden: zero jump)
        to_e = e - x
        dist = to_e.norm(dim=-1)
        w = to_e / dist.clamp_min(1e-30)[:, None]
        si = si_pool.map(lambda z: z.index_select(0, i))
        value = weights[i] * bsdf_for(si).eval(si, w) * (si.normal * w).sum(-1, keepdim=True).abs()
        live = (silhouette & (dist > 0) & (value != 0).any(-1)).nonzero()[:, 0]
        if live.numel() == 0:
            return None
        i, edge, t, x, e, w, dist, value = (z[live] for z in (i, edge, t, x, e, w, dist, value))
        depth = depth[i]
        ng = ng_pool[i]
        # the rays' apex: the vertex offset off its surface (a silhouette a hair away, as the lamp's edge under a
        # ceiling, would otherwise be seen from a shifted point, both sides of the jump on one side of it)
        x = offset_ray_origin_unchecked(x, ng, w)
        to_e = e - x
        dist = to_e.norm(dim=-1)
        w = to_e / dist.clamp_min(1e-30)[:, None]
        # e must be the first thing the vertex sees in its direction
        hit, t_hit, _ = ts.bvh(verts).closest_hit(x, w)
        seen = (dist > 0) & ((hit < 0) | (t_hit.to(dtype) >= dist * (1 - _VISIBLE_SLACK)))
        live = seen.nonzero()[:, 0]
        if live.numel() == 0:
            return None
        i, edge, t, x, e, w, dist, value, depth = (z[live] for z in (i, edge, t, x, e, w, dist, value, depth))
        pa, pb = verts[a[edge]], verts[b[edge]]
        plane = torch.linalg.cross(pa - x, pb - x)
        n_w = plane / plane.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        u = (pb - pa) / length[edge][:, None]
        speed = (u - (u * w).sum(-1, keepdim=True) * w).norm(dim=-1) / dist
        jump = torch.zeros_like(value)
        for d in depth.unique().tolist():  # the two sides, by remaining depth
            rows = (depth == d).nonzero()[:, 0]
            sides = []
            for sign in (-1.0, 1.0):
                dd = w[rows] + sign * eps * n_w[rows]
                dd = dd / dd.norm(dim=-1, keepdim=True)
                sides.append(radiance(x[rows], dd, d).to(dtype))
            jump[rows] = sides[0] - sides[1]  # L_minus - L_plus
        weight = (value * jump).sum(-1) * speed * total_length / (prob[i] * samples)
        use = (weight != 0).nonzero()[:, 0]
    if use.numel() == 0:
        return None
    edge, t, x, weight, n_w = edge[use], t[use], x[use], weight[use], n_w[use]
    moving = welded_positions(ts.verts, ts.faces)  # (a seam's copies of a position share its gradient)
    e_moving = moving[a[edge]] + t[:, None] * (moving[b[edge]] - moving[a[edge]])
    w_moving = e_moving - x
    w_moving = w_moving / w_moving.norm(dim=-1, keepdim=True)
    return (weight * (n_w * w_moving).sum(-1)).sum()
