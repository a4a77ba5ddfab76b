"""Volume rendering: camera rays clipped to a box, packed ray samples (stratified, importance), compositing;
regularizers (distortion, opacity entropy, sparsity, depth); fields (dense grids, hash grids, encodings,
MLPs, a NeRF field) and the occupancy grid that skips empty space."""

from . import fields
from .composite import VolumeRender, accumulate, composite, composite_ref, normals_from_density_gradient, render_weights
from .occupancy import OccupancyGrid
from .packing import ray_offsets, segment_exclusive_cumsum
from .regularizers import depth_loss, distortion_loss, distortion_loss_ref, opacity_entropy_loss, sparsity_loss
from .rays import Rays, camera_rays, ray_aabb
from .sampling import RaySamples, cull_terminated, importance_samples, keep_occupied, stratified_samples

__all__ = ["VolumeRender", "accumulate", "composite", "composite_ref", "normals_from_density_gradient",
           "render_weights", "ray_offsets", "segment_exclusive_cumsum", "Rays", "camera_rays", "ray_aabb",
           "RaySamples", "cull_terminated", "importance_samples", "keep_occupied", "stratified_samples",
           "OccupancyGrid", "fields", "distortion_loss", "distortion_loss_ref",
           "opacity_entropy_loss", "sparsity_loss", "depth_loss"]
