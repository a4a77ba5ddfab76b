"""Direct light from area lights parameterised by area: the points of a lamp that move with its vertices.

The direct light at a surface point ``x`` from an area light (a triangle mesh of radiance ``L_e``) is
``I(x) = int_lamp f(wi) L_e |n_x . wi| max(cos_y, 0) / d^2 V(x, y) dA(y)`` with ``wi = (y - x) / d``. Drawn by
area, a point ``y = v0 + b1 (v1 - v0) + b2 (v2 - v0)`` of triangle ``k`` (chosen with probability ``P_k``
proportional to its area, then uniformly on it) has density ``P_k / A_k``, so one sample estimates ``I`` by::

    f(wi) L_e |n_x . wi| max(cos_y, 0) V A_k / (P_k d^2)

For fixed random numbers (the choice ``k``, the barycentrics, and ``P_k`` taken as a constant) the point moves
with the lamp's vertices and the estimate is smooth in the lamp, the shading point and the BSDF wherever ``V``
is constant: its derivative is the interior term of ``dI/dtheta`` in the lamp's area parameterisation, the one
whose boundary term (the shadows' outlines moving) :mod:`lumigrad.raytrace.shadow_edges` samples. The lamp's
own outline is no discontinuity here (it moves with the samples), unlike for directions drawn by the BSDF.

:func:`area_next_event` is what the path tracer's adjoint pass differentiates for area lights (see
:mod:`lumigrad.raytrace.transport`); :func:`area_choice` and :func:`area_points` are shared with the
shadow-edge sampler.
"""

from __future__ import annotations

from typing import List

import torch

from ..shading.lights import MIN_LIGHT_DISTANCE
from .intersect import offset_ray_origin

__all__ = ["AREA_SEED_OFFSET", "area_choice", "area_light_indices", "area_next_event", "area_points", "area_seed"]


def area_light_indices(ts) -> List[int]:
    """Indices in ``ts.lights`` of the area lights: the lights whose triangles are parts of the scene
    (``ts.part_emitters``), so that BSDF samples can hit them."""
    return [j for j, light in enumerate(ts.lights) if any(light is e for e in ts.part_emitters)]


def area_choice(light, u: torch.Tensor):
    """A triangle of an area light chosen by area with ``u[:, 0]`` and barycentrics ``[N, 2]`` uniform on it
    (``b1 = u1 sqrt(r)``, ``b2 = (1 - u1) sqrt(r)`` with ``r`` = ``u0`` rescaled inside the choice). Detached:
    ``(triangle index [N], barycentrics [N, 2], the triangle's probability P_k = A_k / A [N])``."""
    with torch.no_grad():
        tri = light.verts.detach()[light.faces.long()].to(u.dtype)
        double_area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
        cdf = torch.cumsum(double_area, 0) / double_area.sum().clamp_min(1e-30)
        k = torch.searchsorted(cdf.contiguous(), u[:, 0].contiguous(), right=True).clamp(max=tri.shape[0] - 1)
        lo = torch.where(k > 0, cdf[(k - 1).clamp_min(0)], torch.zeros_like(u[:, 0]))
        r = ((u[:, 0] - lo) / (cdf[k] - lo).clamp_min(1e-30)).clamp(0, 1)
        su = r.sqrt()
        prob = double_area[k] / double_area.sum().clamp_min(1e-30)
        return k, torch.stack([u[:, 1] * su, (1 - u[:, 1]) * su], -1), prob


def area_points(light, tri_index: torch.Tensor, bary: torch.Tensor, prob: torch.Tensor):
    """The area light's points ``y [N, 3]`` on the triangles ``tri_index`` at fixed barycentrics ``bary``, their
    unit front normals ``[N, 3]`` and ``L_e A_k / P_k [N, C]`` (radiance over density), differentiable in the
    light's vertices and radiance; ``prob`` (the triangles' probabilities of :func:`area_choice`) is a constant,
    so the value is ``L_e A``."""
    dtype = bary.dtype
    faces = light.faces.long()
    tri = light.verts[faces[tri_index]].to(dtype)  # [N, 3, 3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    y = tri[:, 0] + bary[:, :1] * e1 + bary[:, 1:] * e2
    cross = torch.linalg.cross(e1, e2)
    double_area = cross.norm(dim=-1)
    n = cross / double_area.clamp_min(1e-30)[:, None]
    radiance = light.radiance.to(dtype)
    le = radiance[tri_index] if radiance.dim() == 2 else radiance.expand(tri_index.shape[0], radiance.shape[-1])
    return y, n, le * (0.5 * double_area / prob.clamp_min(1e-30))[:, None]


def area_next_event(ts, bvh, bsdf, si, ng: torch.Tensor, u: torch.Tensor, lights: List[int]) -> torch.Tensor:
    """One area-parameterised sample of the direct light of each area light ``ts.lights[j], j in lights`` at the
    surface points ``si`` (geometric normals ``ng``), without MIS: ``[N, 3]``, the sum over the lights.

    ``u [N, 2 * len(lights)]`` are the random numbers (two per light). Visibility is a shadow ray (constant);
    everything else is differentiable: the shading point, its BSDF, the lamp's vertices and radiance."""
    x = si.position
    out = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
    for i, j in enumerate(lights):
        light = ts.lights[j]
        y, n_y, le = area_points(light, *area_choice(light, u[:, 2 * i:2 * i + 2]))
        v = y - x
        d = torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(MIN_LIGHT_DISTANCE)
        wi = v / d
        cos_y = -(n_y * wi).sum(-1, keepdim=True)
        emit = cos_y.abs() if getattr(light, "two_sided", False) else cos_y.clamp_min(0.0)
        cos = (si.normal * wi).sum(-1, keepdim=True)
        with torch.no_grad():
            valid = ((ng * wi).sum(-1, keepdim=True) * cos > 0) & (emit > 0)
            origin = offset_ray_origin(x.detach(), ng.detach(), wi.detach())
            t_max = d[:, 0] * (1 - 1e-4)
            blocked = bvh.occluded(origin, wi.detach(), t_max)
            seen = valid & ~blocked[:, None]
        term = bsdf.eval(si, wi) * cos.abs() * le * emit / (d * d)
        out = out + torch.where(seen, term, torch.zeros_like(term))
    return out


#: Added to the path's seed for the area-parameterised samples of the adjoint pass (their own random numbers,
#: independent of the primal's light samples): the fractional part of the golden ratio times 2^64.
AREA_SEED_OFFSET = 0x9E3779B97F4A7C15


def area_seed(seed: int) -> int:
    """The seed of the area-parameterised light samples of a pass with path seed ``seed``."""
    return (int(seed) + AREA_SEED_OFFSET) % (2 ** 64)

