"""Ray tracing of triangle meshes: BVH queries (ids) with a differentiable replay of each hit in PyTorch."""

from .intersect import (RayHit, intersect_faces, intersect_faces_unchecked, intersect_reference, offset_ray_origin,
                        offset_ray_origin_unchecked, trace_closest, trace_closest_unchecked, trace_occluded,
                        trace_occluded_unchecked)

__all__ = ["RayHit", "intersect_faces", "intersect_faces_unchecked", "intersect_reference", "offset_ray_origin",
           "offset_ray_origin_unchecked", "trace_closest", "trace_closest_unchecked", "trace_occluded",
           "trace_occluded_unchecked"]
