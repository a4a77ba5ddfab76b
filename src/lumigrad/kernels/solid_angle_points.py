"""Where solid-angle sampling of an area light lands on it, as a Warp kernel (float32).

The twin of :func:`lumigrad.shading.emitters.area_light_solid_angle_points_unchecked` (the PyTorch reference,
float64 in the tests): for shading points ``x`` and numbers ``u``, the fused path kernel's own solid-angle
sampler (:func:`lumigrad.kernels.path_kernels.area_sample_triangle_wp`) gives the light's solid angle ``Omega``,
the triangle it picked by its share (as the reference picks it) and the direction ``wi`` drawn in it with the
rescaled number; the point ``y = x + distance wi`` on that triangle's plane is written as its barycentrics,
with its density per unit area ``|cos_y| / (d^2 Omega)``. The replay of the
path tracer's adjoint pass (:func:`lumigrad.raytrace.area_next_event.area_next_event`) draws these points once
per surface vertex, which in PyTorch cost more than differentiating the light term itself.

**Differentiability:** none (sampling decisions, held constant by the caller).
"""

from __future__ import annotations

import torch
import warp as wp

from ._runtime import as_warp, ensure_init, launch_split
from .path_kernels import area_sample_triangle_wp
from .path_trace import MIN_RAYS_PER_THREAD

__all__ = ["solid_angle_points"]


@wp.kernel
def _solid_angle_points(offset: int, end: int, x: wp.array(dtype=wp.vec3), u: wp.array(dtype=wp.vec2),
                        tv0: wp.array(dtype=wp.vec3), tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3),
                        tle: wp.array(dtype=wp.vec3), count: int, two_sided: int, tri: wp.array(dtype=wp.int32),
                        bary: wp.array(dtype=wp.vec2), density: wp.array(dtype=float)):
    i = offset + wp.tid()
    if i >= end:
        return
    p = x[i]
    u0 = u[i][0]
    tri[i] = 0
    bary[i] = wp.vec2(0.0, 0.0)
    density[i] = 0.0
    # the sampler's draw over the whole light: its solid angle Omega and the triangle k it picked by its share (as
    # the reference picks it: searchsorted right on the cdf of the triangles' solid angles)
    wi, distance, weight, pdf, total, k = area_sample_triangle_wp(p, 0, count, two_sided, tv0, tv1, tv2, tle, u0,
                                                                  u[i][1])
    if k < 0 or not wp.isfinite(distance):
        return
    e1 = tv1[k] - tv0[k]
    e2 = tv2[k] - tv0[k]
    n = wp.cross(e1, e2)
    nn = wp.max(wp.dot(n, n), 1.0e-30)
    r = p + distance * wi - tv0[k]
    tri[i] = k
    bary[i] = wp.vec2(wp.dot(wp.cross(r, e2), n) / nn, wp.dot(wp.cross(e1, r), n) / nn)
    density[i] = wp.abs(wp.dot(n, wi)) / (wp.sqrt(nn) * distance * distance * total)


@torch.no_grad()
def solid_angle_points(ref_points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, u: torch.Tensor,
                       two_sided: bool = False):
    """``(triangle [P] long, barycentrics [P, 2], density per unit area [P])`` in ``ref_points``' dtype (computed
    in float32), as :func:`lumigrad.shading.emitters.area_light_solid_angle_points_unchecked` gives them, for
    shading points ``ref_points [P, 3]``, the light's ``verts [V, 3]`` / ``faces [F, 3]`` and numbers
    ``u [P, 2]``; density 0 (triangle 0, barycentrics 0) where no emitting side is seen. Unchecked."""
    P, device = ref_points.shape[0], ref_points.device
    tri = torch.zeros(P, dtype=torch.int32, device=device)
    bary = torch.zeros(P, 2, dtype=torch.float32, device=device)
    density = torch.zeros(P, dtype=torch.float32, device=device)
    if P > 0:
        ensure_init()
        corners = verts.detach().to(torch.float32)[faces.long()]  # [F, 3, 3]
        tv = [corners[:, j].contiguous() for j in range(3)]
        tle = torch.ones_like(tv[0])
        f32 = lambda t: t.detach().to(torch.float32).contiguous()  # noqa: E731
        launch_split(_solid_angle_points, P,
                     [as_warp(f32(ref_points), wp.vec3), as_warp(f32(u), wp.vec2),
                      *(as_warp(t, wp.vec3) for t in tv), as_warp(tle, wp.vec3), int(faces.shape[0]),
                      int(bool(two_sided)), as_warp(tri), as_warp(bary, wp.vec2), as_warp(density)],
                     device, min_chunk=MIN_RAYS_PER_THREAD)
    dtype = ref_points.dtype
    return tri.long(), bary.to(dtype), density.to(dtype)
