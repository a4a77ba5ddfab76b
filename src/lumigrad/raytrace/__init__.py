"""Ray tracing: BVH queries whose hits are recomputed differentiably, and Monte Carlo light transport.

:mod:`~lumigrad.raytrace.intersect` (closest hits and shadow rays on Warp's BVH, Möller–Trumbore in PyTorch)
and :mod:`~lumigrad.raytrace.transport` (path tracing with next-event estimation, MIS and path replay
backpropagation; homogeneous media inside transmitting meshes by :mod:`~lumigrad.raytrace.volumetric`), used by
the ``"path"`` and ``"direct"`` integrators.
"""

from .intersect import (RayHit, intersect_faces, intersect_faces_unchecked, intersect_reference, offset_ray_origin,
                        offset_ray_origin_unchecked, trace_closest, trace_closest_unchecked, trace_occluded,
                        trace_occluded_unchecked)
from .transport import PathAdjoint, TraceScene, power_heuristic, sample_paths

__all__ = ["PathAdjoint", "RayHit", "TraceScene", "intersect_faces", "intersect_faces_unchecked",
           "intersect_reference", "offset_ray_origin", "offset_ray_origin_unchecked", "power_heuristic",
           "sample_paths", "trace_closest", "trace_closest_unchecked", "trace_occluded", "trace_occluded_unchecked"]
