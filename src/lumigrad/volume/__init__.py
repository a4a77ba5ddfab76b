"""Volume rendering: camera rays clipped to a box, packed ray samples (stratified, importance), compositing;
fields (dense grids, hash grids, encodings, MLPs, a NeRF field) and the occupancy grid that skips empty space;
exports of a fitted volume (an iso-surface mesh, turntable cameras, a GIF / contact sheet of the views)."""

from . import fields
from .export import default_surface_level, density_to_mesh
from .composite import VolumeRender, accumulate, composite, composite_ref, normals_from_density_gradient, render_weights
from .occupancy import OccupancyGrid
from .packing import ray_offsets, segment_exclusive_cumsum
from .rays import Rays, camera_rays, ray_aabb
from .sampling import RaySamples, cull_terminated, importance_samples, keep_occupied, stratified_samples
from .turntable import image_strip, turntable_cameras, write_turntable

__all__ = ["VolumeRender", "accumulate", "composite", "composite_ref", "normals_from_density_gradient",
           "render_weights", "ray_offsets", "segment_exclusive_cumsum", "Rays", "camera_rays", "ray_aabb",
           "RaySamples", "cull_terminated", "importance_samples", "keep_occupied", "stratified_samples",
           "OccupancyGrid", "fields", "default_surface_level", "density_to_mesh",
           "image_strip", "turntable_cameras", "write_turntable"]
