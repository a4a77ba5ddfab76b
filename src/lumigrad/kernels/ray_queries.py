"""The ray queries kernels call on a :class:`.bvh.TriangleBVH`: Warp's ``wp.Mesh`` or lumigrad's own BVH.

A :class:`.bvh.TriangleBVH` holds one of the two (it picks by triangle count, see ``OWN_BVH_MAX_FACES`` there);
a kernel receives both handles and ``use_own`` and calls :func:`closest_hit_any_bvh` / :func:`any_hit_any_bvh`,
which branch once per query (the same way for every ray of a launch). Same conventions as
:mod:`.bvh_traverse`.
"""

from __future__ import annotations

import warp as wp

from .bvh_traverse import FlatBVH, any_hit_wp, closest_hit_wp

wp.set_module_options({"enable_backward": False})


@wp.func
def closest_hit_any_bvh(mesh: wp.uint64, own: FlatBVH, use_own: int, o: wp.vec3, d: wp.vec3, t_max: float):
    """Closest hit at ``0 <= t < t_max``: ``(face, t, u, v)``, ``face = -1`` and ``t = inf`` on a miss
    (``d`` non-zero and ``t_max > 0``, as the callers check)."""
    if use_own != 0:
        return closest_hit_wp(own, o, d, t_max)
    q = wp.mesh_query_ray(mesh, o, d, t_max)
    if q.result:
        return q.face, q.t, q.u, q.v
    return int(-1), float(wp.inf), float(0.0), float(0.0)


@wp.func
def any_hit_any_bvh(mesh: wp.uint64, own: FlatBVH, use_own: int, o: wp.vec3, d: wp.vec3, t_max: float):
    """Whether ``o + t d`` hits a triangle at ``0 <= t < t_max``."""
    if use_own != 0:
        return any_hit_wp(own, o, d, t_max)
    return wp.mesh_query_ray_anyhit(mesh, o, d, t_max)
