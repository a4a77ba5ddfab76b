"""``render_geometry(scene, camera)``: depth, normal and coverage buffers of a scene, without shading.

The raster integrator's ``depth``, ``normal`` and ``mask`` AOVs (:mod:`lumigrad.integrators.raster`), for
depth- and normal-supervised fitting (RGB-D sensors, monocular depth / normal priors) and multi-view
consistency losses. Public as ``lumigrad.render_geometry``; ``lumigrad.scene.render_geometry`` is its old,
deprecated name (:mod:`lumigrad.integrators.deprecated`).
"""

from __future__ import annotations

from typing import Dict, Union

import torch

from ..cameras.camera import Camera
from ..scene.scene import Scene
from .dispatch import resolve_camera
from .raster import GEOMETRY_AOVS, RasterIntegrator

__all__ = ["render_geometry"]


def render_geometry(scene: Scene, camera: Union[Camera, str, None] = None, *,
                    use_antialias: bool = True) -> Dict[str, torch.Tensor]:
    """Render ``scene``'s depth, normals and coverage as seen by ``camera``, without shading.

    The raster integrator's ``depth``, ``normal`` and ``mask`` AOVs
    (``lumigrad.render(scene, camera, aovs=("depth", "normal", "mask"), use_antialias=...).aovs`` without the
    cost of shading), for depth- and normal-supervised fitting (RGB-D sensors, monocular depth / normal
    priors) and multi-view consistency losses. With ``use_antialias`` the buffers go through
    :func:`lumigrad.antialias` like colour does: silhouette pixels blend foreground with the zero background
    by coverage, which is what gives gradients at visibility edges (compare targets rendered the same way, or
    weight the loss by ``mask``). Cameras with lens distortion draw a pinhole cover resampled through the lens.

    Args:
        scene: the :class:`Scene` (its lights, materials and film play no part).
        camera: a :class:`Camera` (any batch shape), a camera name, or ``None`` for the only camera.
        use_antialias: blend silhouettes by coverage (gradients w.r.t. geometry and camera at edges).

    Returns:
        ``{"depth": [..., H, W, 1], "normal": [..., H, W, 3], "mask": [..., H, W, 1]}``: camera-frame z, unit
        world normals and coverage in [0, 1].

    Raises:
        ValueError: the scene has no mesh, a camera name the scene does not have, or geometry the raster ops
            refuse.

    **Differentiability:** w.r.t. mesh vertices and transforms, shading normals and the camera's ``K``,
    ``world_to_cam`` and distortion (depth through the camera-frame positions and the barycentrics).
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    camera = resolve_camera(scene, camera)
    if not scene.meshes:
        raise ValueError("scene has no mesh to draw")
    return RasterIntegrator(use_antialias=use_antialias).render_aovs(scene, camera, GEOMETRY_AOVS)
