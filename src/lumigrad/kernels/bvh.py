"""Ray queries on a bounding volume hierarchy of triangles: Warp's ``wp.Mesh`` (built once, refitted when only
the vertices move), closest hit and shadow (occlusion) queries.

The kernels return ids and distances only; what is differentiated (hit distance, barycentrics, positions) is
recomputed in PyTorch from the vertex tensors (:func:`lumigrad.raytrace.intersect.intersect_faces`). CPU
launches are split across threads (:func:`lumigrad.kernels._runtime.launch_split`).
"""

from __future__ import annotations

import math
import weakref
from typing import Tuple, Union

import torch
import warp as wp

from ._runtime import as_warp, ensure_init, launch_split

__all__ = ["TriangleBVH", "bvh_for"]

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _closest(offset: int, end: int, mesh: wp.uint64, origins: wp.array(dtype=wp.vec3),
             directions: wp.array(dtype=wp.vec3), t_max: wp.array(dtype=wp.float32),
             face: wp.array(dtype=wp.int32), t: wp.array(dtype=wp.float32), bary: wp.array(dtype=wp.vec3)):
    i = offset + wp.tid()
    hit = wp.mesh_query_ray(mesh, origins[i], directions[i], t_max[i])
    face[i] = -1
    t[i] = wp.inf
    bary[i] = wp.vec3(0.0, 0.0, 0.0)
    if hit.result:
        face[i] = hit.face
        t[i] = hit.t
        # Warp's (u, v): the hit is u p0 + v p1 + (1 - u - v) p2 for the face's corners p0, p1, p2.
        bary[i] = wp.vec3(hit.u, hit.v, 1.0 - hit.u - hit.v)


@wp.kernel
def _occluded(offset: int, end: int, mesh: wp.uint64, origins: wp.array(dtype=wp.vec3),
              directions: wp.array(dtype=wp.vec3), t_max: wp.array(dtype=wp.float32),
              blocked: wp.array(dtype=wp.int32)):
    i = offset + wp.tid()
    hit = wp.mesh_query_ray(mesh, origins[i], directions[i], t_max[i])
    blocked[i] = 0
    if hit.result:
        blocked[i] = 1


class TriangleBVH:
    """A BVH over the triangles ``faces [F, 3]`` of ``verts [V, 3]`` on their device (float32 inside).

    Distances ``t`` are in units of the given directions (``origin + t * direction``); unit directions give
    world distances. No face is culled: rays hit both sides.
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor):
        ensure_init()
        self.device = verts.device
        self.num_faces = faces.shape[0]
        self._points = verts.detach().to(torch.float32).contiguous().clone()
        self._indices = faces.detach().to(torch.int32).reshape(-1).contiguous()
        self._mesh = wp.Mesh(points=as_warp(self._points, wp.vec3), indices=as_warp(self._indices),
                             support_winding_number=False)

    def refit(self, verts: torch.Tensor) -> None:
        """Move the vertices (same count and topology) and refit the hierarchy's boxes."""
        self._points.copy_(verts.detach().to(torch.float32))
        self._mesh.refit()

    def closest_hit(self, origins: torch.Tensor, directions: torch.Tensor,
                    t_max: Union[float, torch.Tensor] = math.inf) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(face [R] int64, -1 on a miss; t [R] float32, inf on a miss; bary [R, 3] float32)`` of the nearest
        hit of each ray ``origins + t directions`` with ``0 < t < t_max``."""
        o, d, tm = self._rays(origins, directions, t_max)
        R = o.shape[0]
        face = torch.empty(R, dtype=torch.int32, device=self.device)
        t = torch.empty(R, dtype=torch.float32, device=self.device)
        bary = torch.empty(R, 3, dtype=torch.float32, device=self.device)
        launch_split(_closest, R, [self._mesh.id, as_warp(o, wp.vec3), as_warp(d, wp.vec3), as_warp(tm),
                                   as_warp(face), as_warp(t), as_warp(bary, wp.vec3)], self.device, min_chunk=256)
        return face.long(), t, bary

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor,
                 t_max: Union[float, torch.Tensor] = math.inf) -> torch.Tensor:
        """``[R]`` bool: whether anything lies on each ray with ``0 < t < t_max`` (shadow rays)."""
        o, d, tm = self._rays(origins, directions, t_max)
        blocked = torch.empty(o.shape[0], dtype=torch.int32, device=self.device)
        launch_split(_occluded, o.shape[0], [self._mesh.id, as_warp(o, wp.vec3), as_warp(d, wp.vec3), as_warp(tm),
                                             as_warp(blocked)], self.device, min_chunk=256)
        return blocked.bool()

    def _rays(self, origins, directions, t_max):
        o = origins.detach().to(torch.float32).contiguous()
        d = directions.detach().to(torch.float32).contiguous()
        if isinstance(t_max, torch.Tensor):
            tm = t_max.detach().to(torch.float32).reshape(-1).expand(o.shape[0]).contiguous()
        else:
            tm = torch.full((o.shape[0],), float(t_max), dtype=torch.float32, device=self.device)
        tm = torch.where(torch.isfinite(tm), tm, torch.full_like(tm, 3.0e38))
        return o, d, tm


#: BVHs by the identity of their face table: ``id(faces) -> (weakref(faces), version, device, V, bvh)``.
_CACHE: dict = {}
_CAPACITY = 8


def bvh_for(verts: torch.Tensor, faces: torch.Tensor) -> TriangleBVH:
    """The BVH of ``faces`` over ``verts``: built once per face table (identity and version) and device,
    refitted to ``verts`` on every later call (the vertices of a fit move; the topology does not)."""
    key = id(faces)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is faces and hit[1] == faces._version and hit[2] == verts.device \
            and hit[3] == verts.shape[0]:
        hit[4].refit(verts)
        return hit[4]
    bvh = TriangleBVH(verts, faces)
    if len(_CACHE) >= _CAPACITY:  # drop the entries of freed tables, then the oldest
        for stale in [k for k, e in _CACHE.items() if e[0]() is None]:
            del _CACHE[stale]
        while len(_CACHE) >= _CAPACITY:
            del _CACHE[next(iter(_CACHE))]
    _CACHE[key] = (weakref.ref(faces), faces._version, verts.device, verts.shape[0], bvh)
    return bvh
