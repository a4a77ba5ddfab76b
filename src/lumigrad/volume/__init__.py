"""Volume rendering: camera rays clipped to a box, packed ray samples (stratified, importance), compositing;
regularizers (distortion, opacity entropy, sparsity, depth); fields (dense grids, hash grids, encodings, MLPs, a
NeRF field) and the occupancy grid that skips empty space; one renderer of rays through a field (render_rays);
exports of a fitted volume (an iso-surface mesh, turntable cameras, a contact sheet of the views; files of them are
written by ``lumigrad.io.write_frames``)."""

from . import fields
from .export import default_surface_level, density_to_mesh
from .composite import VolumeRender, accumulate, composite, composite_ref, normals_from_density_gradient, render_weights
from .occupancy import OccupancyGrid
from .packing import ray_offsets, segment_exclusive_cumsum
from .regularizers import depth_loss, distortion_loss, distortion_loss_ref, opacity_entropy_loss, sparsity_loss
from .rays import Rays, camera_rays, ray_aabb
from .render import RayRender, default_step_size, render_rays, render_rays_chunked
from .sampling import RaySamples, cull_terminated, importance_samples, keep_occupied, stratified_samples
from .turntable import image_strip, turntable_cameras

__all__ = ["VolumeRender", "accumulate", "composite", "composite_ref", "normals_from_density_gradient",
           "render_weights", "ray_offsets", "segment_exclusive_cumsum", "Rays", "camera_rays", "ray_aabb",
           "RaySamples", "cull_terminated", "importance_samples", "keep_occupied", "stratified_samples",
           "OccupancyGrid", "RayRender", "default_step_size", "default_surface_level", "density_to_mesh",
           "depth_loss", "distortion_loss", "distortion_loss_ref", "fields", "image_strip", "opacity_entropy_loss",
           "render_rays", "render_rays_chunked", "sparsity_loss", "turntable_cameras"]
