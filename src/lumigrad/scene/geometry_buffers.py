"""``render_geometry(scene, camera)``: depth, normal and coverage buffers of a scene, for depth- and normal-
supervised fitting (RGB-D sensors, monocular depth / normal priors) and multi-view consistency losses.

The same merged geometry and rasterization as :func:`lumigrad.render`; no shading. ``depth`` is the
camera-frame ``z`` (what :func:`lumigrad.losses.depth_loss` and the multi-view losses expect), ``normal`` the
unit world-space shading normal (flipped towards the camera on double-sided meshes), both zero on the
background. With ``use_antialias`` the buffers go through :func:`lumigrad.antialias` like colour does:
silhouette pixels blend foreground with the zero background by coverage, which is what gives gradients at
visibility edges (compare targets rendered the same way, or weight the loss by ``mask``).
"""

from __future__ import annotations

from typing import Dict, Union

import torch

from ..cameras.camera import Camera
from ..raster import interpolate
from ..raster.antialias import antialias_prepared
from ..raster.rasterize import prepare_mesh, rasterize_prepared
from .render import _merge_geometry, _pick_camera
from .scene import Scene

__all__ = ["render_geometry"]


def render_geometry(scene: Scene, camera: Union[Camera, str, None] = None, *,
                    use_antialias: bool = True) -> Dict[str, torch.Tensor]:
    """Render ``scene``'s depth, normals and coverage as seen by ``camera``.

    Args:
        scene: the :class:`Scene` (its lights, materials and film play no part).
        camera: a :class:`Camera` (any batch shape), a camera name, or ``None`` for the only camera.
        use_antialias: blend silhouettes by coverage (gradients w.r.t. geometry and camera at edges).

    Returns:
        ``{"depth": [..., H, W, 1], "normal": [..., H, W, 3], "mask": [..., H, W, 1]}``: camera-frame z, unit
        world normals and coverage in [0, 1].

    Raises:
        ValueError: the camera has lens distortion (not supported here yet), the scene has no mesh, a camera
            name the scene does not have, or geometry the raster ops refuse.

    **Differentiability:** w.r.t. mesh vertices and transforms, shading normals and the camera's ``K`` and
    ``world_to_cam`` (depth through the camera-frame positions and the barycentrics).
    """
    camera = _pick_camera(scene, camera)
    if camera.distortion is not None:
        raise ValueError("render_geometry does not support lens distortion yet; give a pinhole camera")
    if not scene.meshes:
        raise ValueError("scene has no mesh to draw")
    geo = _merge_geometry(scene)
    mesh = prepare_mesh(geo.verts, geo.faces, camera, op="render_geometry")  # validated once
    frags = rasterize_prepared(mesh, "back" if geo.all_single_sided else "none")
    _, w2c = camera.flat()
    cam_z = (geo.verts @ w2c[:, 2, :3].transpose(0, 1) + w2c[:, 2, 3]).transpose(0, 1)[..., None]  # [N, V, 1]
    cam_z = cam_z.reshape(camera.batch_shape + cam_z.shape[-2:])
    depth = interpolate(cam_z, frags, geo.faces)
    normal = interpolate(geo.normals, frags, geo.faces)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if not geo.all_single_sided:  # double-sided: normals face the camera
        forward = w2c[:, 2, :3].reshape(camera.batch_shape + (1, 1, 3))  # the viewing axis in world space
        if camera.projection == "orthographic":
            to_eye = -forward
        else:
            eye = -(w2c[:, :3, :3].transpose(-1, -2) @ w2c[:, :3, 3:])[..., 0].reshape(forward.shape)
            to_eye = eye - interpolate(geo.verts, frags, geo.faces)
        normal = torch.where((to_eye * normal).sum(-1, keepdim=True) < 0, -normal, normal)
    mask = frags.mask[..., None].to(depth.dtype)
    buffers = torch.cat([depth * mask, normal * mask, mask], -1)
    if use_antialias:
        buffers = antialias_prepared(buffers, frags, mesh, geo.faces)
    return {"depth": buffers[..., :1], "normal": buffers[..., 1:4], "mask": buffers[..., 4:]}
