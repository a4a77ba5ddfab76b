"""Cameras: the ``Camera`` container and functional projection maths (OpenCV convention)."""

from .camera import Camera
from .distortion import check_monotonic, distort, fold_radius, undistort
from .lens_cover import check_lens_folds, pinhole_cover
from .projection import (K_from_fov, K_orthographic, look_at, pixel_ray_origins_directions, pixel_rays,
                         project_points, project_points_orthographic, transform_points)

__all__ = ["Camera", "check_lens_folds", "check_monotonic", "distort", "fold_radius", "pinhole_cover", "undistort", "K_from_fov", "K_orthographic", "look_at", "pixel_ray_origins_directions", "pixel_rays", "project_points", "project_points_orthographic", "transform_points"]
from .trajectory import (PoseTrajectory, SplineTrajectory, cumulative_bspline_weights, pose_to_world_to_cam,
                         so3_bspline, spline_poses)

__all__ += ["PoseTrajectory", "SplineTrajectory", "cumulative_bspline_weights", "pose_to_world_to_cam",
            "so3_bspline", "spline_poses"]
from .orbit import orbit_cameras

__all__ += ["orbit_cameras"]
from .pixel_filter import FILTERS as PIXEL_FILTERS, PixelFilter

__all__ += ["PIXEL_FILTERS", "PixelFilter"]
