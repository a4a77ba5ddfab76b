"""The ray queries kernels call on a :class:`.bvh.TriangleBVH`: Warp's ``wp.Mesh`` or lumigrad's own BVH.

A :class:`.bvh.TriangleBVH` holds one of the two (it picks by triangle count, see ``OWN_BVH_MAX_FACES`` there);
a kernel receives both handles and ``use_own`` and calls :func:`closest_hit_any_bvh` / :func:`any_hit_any_bvh`,
which branch once per query (the same way for every ray of a launch). ``use_own``: 0 Warp's, 1 the own tree
(:mod:`.bvh_traverse`), :data:`USE_LANES` all triangles of a tiny mesh as SIMD lanes (:mod:`.bvh_native`, CPU
only), which hand the rare rays they cannot answer exactly as the tree would (a tie, an edge function exactly
0) to the tree. Same conventions as :mod:`.bvh_traverse`.
"""

from __future__ import annotations

import warp as wp

from .bvh_native import FALLBACK, any_hit_lanes, closest_hit_lanes
from .bvh_traverse import FlatBVH, any_hit_wp, closest_hit_wp

wp.set_module_options({"enable_backward": False})

#: ``use_own`` for the SIMD lanes (with the own tree behind them).
USE_LANES = 2


@wp.func
def closest_hit_any_bvh(mesh: wp.uint64, own: FlatBVH, use_own: int, o: wp.vec3, d: wp.vec3, t_max: float):
    """Closest hit at ``0 <= t < t_max``: ``(face, t, u, v)``, ``face = -1`` and ``t = inf`` on a miss
    (``d`` non-zero and ``t_max > 0``, as the callers check)."""
    if use_own == USE_LANES:
        h = closest_hit_lanes(own.lanes, own.num_faces, o, d, t_max)
        k = int(h[3])  # the triangle in leaf order
        if k >= 0:
            return own.face[k], h[0], h[1], h[2]
        if k != FALLBACK:
            return int(-1), float(wp.inf), float(0.0), float(0.0)
    if use_own != 0:
        return closest_hit_wp(own, o, d, t_max)
    q = wp.mesh_query_ray(mesh, o, d, t_max)
    if q.result:
        return q.face, q.t, q.u, q.v
    return int(-1), float(wp.inf), float(0.0), float(0.0)


@wp.func
def any_hit_any_bvh(mesh: wp.uint64, own: FlatBVH, use_own: int, o: wp.vec3, d: wp.vec3, t_max: float):
    """Whether ``o + t d`` hits a triangle at ``0 <= t < t_max``."""
    if use_own == USE_LANES:
        hit = any_hit_lanes(own.lanes, own.num_faces, o, d, t_max)
        if hit != FALLBACK:
            return hit != 0
    if use_own != 0:
        return any_hit_wp(own, o, d, t_max)
    return wp.mesh_query_ray_anyhit(mesh, o, d, t_max)
