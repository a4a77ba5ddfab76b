"""Volume rendering: camera rays clipped to a box, packed ray samples (stratified, importance), compositing;
fields (dense grids, hash grids, encodings, MLPs, a NeRF field) and the occupancy grid that skips empty space."""

from . import fields
from .composite import VolumeRender, accumulate, composite, composite_ref, normals_from_density_gradient, render_weights
from .occupancy import OccupancyGrid
from .shape import VolumeShape
from .packing import ray_offsets, segment_exclusive_cumsum
from .rays import Rays, camera_rays, ray_aabb
from .regularizers import depth_loss, distortion_loss, opacity_entropy
from .render import RayRender, default_step_size, render_rays
from .sampling import RaySamples, cull_terminated, importance_samples, keep_occupied, stratified_samples

__all__ = ["VolumeRender", "accumulate", "composite", "composite_ref", "normals_from_density_gradient",
           "render_weights", "ray_offsets", "segment_exclusive_cumsum", "Rays", "camera_rays", "ray_aabb",
           "RaySamples", "cull_terminated", "importance_samples", "keep_occupied", "stratified_samples",
           "OccupancyGrid", "RayRender", "depth_loss", "distortion_loss", "opacity_entropy", "VolumeShape", "default_step_size", "fields", "render_rays"]
