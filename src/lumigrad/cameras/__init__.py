"""Cameras: the ``Camera`` container and functional projection maths (OpenCV convention)."""

from .camera import Camera
from .projection import K_from_fov, look_at, pixel_rays, project_points, transform_points

__all__ = ["Camera", "K_from_fov", "look_at", "pixel_rays", "project_points", "transform_points"]
