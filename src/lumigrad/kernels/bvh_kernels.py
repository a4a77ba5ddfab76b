"""Queries on a :class:`.bvh.TriangleBVH`: a ray's closest hit and any hit; a point's nearest triangle.

Each kernel handles rays ``offset + wp.tid()`` of one range (the :func:`._runtime.launch_split` calling
convention). They produce ids and float32 distances only; whatever is differentiated is recomputed in PyTorch
from the face ids (``lumigrad.raytrace.intersect_faces``). The BVH is either Warp's ``wp.Mesh`` (``mesh``) or
lumigrad's own (``own``, when ``use_own``): :mod:`.ray_queries`.

Both answer with Woop et al.'s (2013) watertight ray-triangle test: a hit ``start + t * dir`` with ``t`` in
multiples of ``dir``'s length, ``0 <= t < max_t``, and barycentrics ``(u, v)`` such that the hit point is
``u * p0 + v * p1 + (1 - u - v) * p2``: ``u`` and ``v`` are the weights of corners 0 and 1. Both faces of a
triangle are hit (no culling); zero-area triangles never are; surfaces a :class:`.cutouts.Cutouts` table cuts out
are passed through. A zero direction is a miss here (Warp's test
would divide by zero), and so is a non-positive or NaN ``t_max``.
"""

from __future__ import annotations

import warp as wp

from .bvh_traverse import FlatBVH
from .cutouts import Cutouts, closest_visible_hit_wp, visible_any_hit_wp
from .ray_queries import any_hit_any_bvh, closest_hit_any_bvh

wp.set_module_options({"enable_backward": False})  # ids only: no adjoints needed, compiles faster


@wp.kernel
def closest_hit(offset: int, end: int, mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts,
                origins: wp.array(dtype=wp.vec3), directions: wp.array(dtype=wp.vec3),
                t_max: wp.array(dtype=wp.float32), t_max_step: int,
                out_face: wp.array(dtype=wp.int64), out_t: wp.array(dtype=wp.float32),
                out_bary: wp.array(dtype=wp.vec3)):
    """Closest hit of each ray: face id (-1 on a miss), ``t`` (inf on a miss) and the weights of corners 0, 1, 2."""
    i = offset + wp.tid()
    d = directions[i]
    limit = t_max[i * t_max_step]
    out_face[i] = wp.int64(-1)
    out_t[i] = wp.inf
    out_bary[i] = wp.vec3(0.0, 0.0, 0.0)
    if wp.dot(d, d) > 0.0 and limit > 0.0:
        face = int(-1)
        t = float(wp.inf)
        u = float(0.0)
        v = float(0.0)
        if cut.on != 0:  # (the table is passed on only where it is on)
            face, t, u, v = closest_visible_hit_wp(mesh, own, use_own, cut, origins[i], d, limit)
        else:
            face, t, u, v = closest_hit_any_bvh(mesh, own, use_own, origins[i], d, limit)
        if face >= 0:
            out_face[i] = wp.int64(face)
            out_t[i] = t
            out_bary[i] = wp.vec3(u, v, 1.0 - u - v)


@wp.kernel
def any_hit(offset: int, end: int, mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts,
            origins: wp.array(dtype=wp.vec3), directions: wp.array(dtype=wp.vec3),
            t_max: wp.array(dtype=wp.float32), t_max_step: int, out_hit: wp.array(dtype=wp.bool)):
    """Whether each ray hits any face at ``0 <= t < t_max`` (stops at the first one found)."""
    i = offset + wp.tid()
    d = directions[i]
    limit = t_max[i * t_max_step]
    hit = False
    if wp.dot(d, d) > 0.0 and limit > 0.0:
        if cut.on != 0:
            hit = visible_any_hit_wp(mesh, own, use_own, cut, origins[i], d, limit)
        else:
            hit = any_hit_any_bvh(mesh, own, use_own, origins[i], d, limit)
    out_hit[i] = hit


@wp.kernel
def nearest_face(offset: int, end: int, mesh: wp.uint64, points: wp.array(dtype=wp.vec3), max_dist: float,
                 out_face: wp.array(dtype=wp.int64)):
    """The nearest triangle of each point within ``max_dist`` (Warp's ``wp.Mesh`` only), -1 where none is."""
    i = offset + wp.tid()
    q = wp.mesh_query_point_no_sign(mesh, points[i], max_dist)
    if q.result:
        out_face[i] = wp.int64(q.face)
    else:
        out_face[i] = wp.int64(-1)
