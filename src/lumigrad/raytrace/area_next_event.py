"""Direct light from area lights parameterised by area: the points of a lamp that move with its vertices.

The direct light at a surface point ``x`` from an area light (a triangle mesh of radiance ``L_e``) is
``I(x) = int_lamp f(wi) L_e |n_x . wi| max(cos_y, 0) / d^2 V(x, y) dA(y)`` with ``wi = (y - x) / d``. A point
``y = v0 + b1 (v1 - v0) + b2 (v2 - v0)`` of triangle ``k`` drawn with density ``p_A(y)`` per unit area
estimates ``I`` by ``f L_e |n_x . wi| max(cos_y, 0) V / (p_A d^2)``; writing ``P_k = p_A(y) A_k`` (for points
chosen by area, ``P_k = A_k / A`` is the triangle's probability) this is::

    f(wi) L_e |n_x . wi| max(cos_y, 0) V A_k / (P_k d^2)

For fixed random numbers (the triangle ``k``, the barycentrics, and ``P_k`` taken as a constant) the point moves
with the lamp's vertices (the triangle's area ``A_k`` scales the measure) and the estimate is smooth in the
lamp, the shading point and the BSDF wherever ``V`` is constant: its derivative is the interior term of
``dI/dtheta`` in the lamp's area parameterisation, the one whose boundary term (the shadows' outlines moving)
:mod:`lumigrad.raytrace.shadow_edges` samples. The lamp's own outline is no discontinuity here (it moves with
the samples), unlike for directions drawn by the BSDF.

:func:`area_next_event` is what the path tracer's adjoint pass differentiates for area lights (see
:mod:`lumigrad.raytrace.transport`): points drawn by solid angle, the light's own sampler (lower variance than
by area for lamps near the surface), held at their barycentrics. :func:`area_choice` and :func:`area_points`
(points drawn by area) are shared with the shadow-edge sampler.
"""

from __future__ import annotations

from typing import List

import torch

from ..kernels.solid_angle_points import solid_angle_points
from ..shading.emitters import area_light_solid_angle_points_unchecked
from ..shading.lights import MIN_LIGHT_DISTANCE
from .intersect import offset_ray_origin

__all__ = ["AREA_SEED_OFFSET", "area_choice", "area_light_indices", "area_light_term", "area_next_event", "area_points",
           "area_seed"]


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
        double_area = _cross(tri).norm(dim=-1)
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


def _cross(tri: torch.Tensor) -> torch.Tensor:
    """``[N, 3]``: the cross product of triangles ``tri [N, 3, 3]``'s edges from the first corner (its norm is
    twice the area)."""
    return torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def area_next_event(ts, bvh, bsdf, si, ng: torch.Tensor, u: torch.Tensor, lights: List[int],
                    shadow=None) -> torch.Tensor:
    """One sample of the direct light of each area light ``ts.lights[j], j in lights`` at the surface points
    ``si`` (geometric normals ``ng``), without MIS, in the lamp's area parameterisation: ``[N, 3]``, the sum over
    the lights.

    The point is drawn by solid angle (the light's own sampler,
    :func:`lumigrad.shading.emitters.area_light_solid_angle_points_unchecked`: ``u [N, 2 * len(lights)]``, two
    numbers per light) and then held at its barycentrics with its density per unit area as a constant
    (``P_k = density A_k``), so it moves with the lamp; the value is that of solid-angle sampling at full
    weight. See :func:`area_light_term` (``shadow``: media the shadow rays cross, or None). Float32 points are
    drawn by the Warp twin of the sampler (:func:`lumigrad.kernels.solid_angle_points.solid_angle_points`, the
    fused path kernel's arithmetic), others by the PyTorch reference."""
    x = si.position.detach()
    out = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
    draw = solid_angle_points if x.dtype == torch.float32 else area_light_solid_angle_points_unchecked
    for i, j in enumerate(lights):
        light = ts.lights[j]
        k, bary, density = draw(x, light.verts, light.faces, u[:, 2 * i:2 * i + 2],
                                two_sided=getattr(light, "two_sided", False))
        with torch.no_grad():
            tri = light.verts.detach()[light.faces.long()[k]].to(x.dtype)
            prob = density * 0.5 * _cross(tri).norm(dim=-1)  # the density per unit area times A_k
        out = out + area_light_term(bvh, bsdf, si, ng, light, k, bary, prob, shadow)
    return out


def area_light_term(bvh, bsdf, si, ng: torch.Tensor, light, tri_index: torch.Tensor, bary: torch.Tensor,
                    prob: torch.Tensor, shadow=None) -> torch.Tensor:
    """``[N, 3]``: ``f(wi) L_e |n_x . wi| max(cos_y, 0) V A_k / (P_k d^2)`` for the lamp points of
    :func:`area_points` (triangles ``tri_index``, barycentrics ``bary``, constants ``prob``; 0 where ``prob`` is 0)
    seen from the surface points ``si``. Visibility is a shadow ray (constant); everything else is
    differentiable: the shading point, its BSDF, the lamp's vertices and radiance. ``shadow`` (scenes with media:
    a :class:`lumigrad.raytrace.volumetric.ShadowMedia`) multiplies the shadow ray's transmittance, differentiable
    in the media's coefficients (the distance held)."""
    x = si.position
    usable = prob > 0
    y, n_y, le = area_points(light, tri_index, bary, torch.where(usable, prob, torch.ones_like(prob)))
    v = y - x
    d = torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(MIN_LIGHT_DISTANCE)
    wi = v / d
    cos_y = -(n_y * wi).sum(-1, keepdim=True)
    emit = cos_y.abs() if getattr(light, "two_sided", False) else cos_y.clamp_min(0.0)
    cos = (si.normal * wi).sum(-1, keepdim=True)
    with torch.no_grad():
        valid = ((ng * wi).sum(-1, keepdim=True) * cos > 0) & (emit > 0) & usable[:, None]
        origin = offset_ray_origin(x.detach(), ng.detach(), wi.detach())
        blocked = bvh.occluded(origin, wi.detach(), d[:, 0] * (1 - 1e-4))
        seen = valid & ~blocked[:, None]
    term = bsdf.eval(si, wi) * cos.abs() * le * emit / (d * d)
    if shadow is not None:
        term = term * shadow.transmittance(wi.detach(), d, term.shape[-1])
    return torch.where(seen, term, torch.zeros_like(term))


#: Added to the path's seed for the area-parameterised samples of the adjoint pass (their own random numbers,
#: independent of the primal's light samples): the fractional part of the golden ratio times 2^64.
AREA_SEED_OFFSET = 0x9E3779B97F4A7C15


def area_seed(seed: int) -> int:
    """The seed of the area-parameterised light samples of a pass with path seed ``seed``."""
    return (int(seed) + AREA_SEED_OFFSET) % (2 ** 64)

