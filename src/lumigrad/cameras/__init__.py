"""Cameras: the ``Camera`` container and functional projection maths (OpenCV convention)."""

from .camera import Camera
from .distortion import check_monotonic, distort, undistort
from .projection import K_from_fov, look_at, pixel_rays, project_points, transform_points

__all__ = ["Camera", "check_monotonic", "distort", "undistort", "K_from_fov", "look_at", "pixel_rays", "project_points", "transform_points"]
