"""``render(scene, camera)``: the raster path from a :class:`Scene` to an image.

``rasterize -> interpolate -> sample_material -> shade_direct + shade_environment + emission -> antialias
-> form_image``, with the scene's meshes merged into one draw. Shading runs on the covered pixels only
(compact rows, ordered by mesh so each material samples one contiguous block); every tensor of the scene
is differentiable, including visibility at silhouettes through :func:`lumigrad.antialias`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Union

import torch

from .._checks import check_tensor
from ..cameras.camera import Camera
from ..raster import interpolate, render_through_lens
from ..raster.antialias import antialias_prepared
from ..raster.rasterize import prepare_mesh, rasterize_prepared
from ..shading.deferred import shade_direct_unchecked, shade_environment_unchecked
from ..shading.envmap import envmap_lookup
from ..shading.image_formation import form_image
from ..shading.material import Material, sample_material
from ..shading.surface import SurfaceSample
from ..shading.tangents import perturb_normal, vertex_tangents_unchecked
from ..conventions import pixel_centers
from .lights import AreaLight, EnvironmentLight, SHLight
from .scene import Scene

__all__ = ["render"]

#: Colour channels of the radiance ``render`` shades (the alpha channel comes on top).
COLOR_CHANNELS = 3


def render(scene: Scene, camera: Union[Camera, str, None] = None, *,
           background: Union[Literal["environment"], torch.Tensor, float] = "environment",
           use_antialias: bool = True, lens_supersample: float = 1.0, lens_samples: int = 1) -> torch.Tensor:
    """Render ``scene`` seen by ``camera``: ``[..., H, W, C + 1]`` colour and coverage (alpha).

    Args:
        scene: the :class:`Scene`.
        camera: a :class:`lumigrad.Camera` (any batch shape: one image per view), the name of one of the
            scene's cameras, or ``None`` for the scene's only camera.
        background: ``"environment"`` shows the scene's visible :class:`EnvironmentLight` behind the
            geometry (black without one); or a finite colour: a float, a tensor ``[3]``, or an image
            broadcastable to ``[..., H, W, 3]`` (one colour per view, ``[..., 1, 1, 3]``, for a camera with
            lens distortion).
        use_antialias: blend silhouettes analytically (:func:`lumigrad.antialias`), which is what gives
            gradients w.r.t. geometry and camera at visibility edges.
        lens_supersample, lens_samples: for cameras with lens distortion, the pinhole cover's pixels per
            output pixel and the reads per pixel (:func:`lumigrad.render_through_lens`).

    Returns:
        Colour after the scene's :class:`Film` (linear HDR radiance by default), and coverage in [0, 1].

    Raises:
        ValueError: a camera name the scene does not have (the message lists its cameras), a NaN / Inf or
            wrongly shaped ``background``, a scene with nothing to draw, and whatever the raster ops refuse.
        TypeError: ``scene`` not a Scene, ``camera`` not a Camera / name / None, ``background`` of another type.
        lumigrad.limits.BudgetError: the image (views x H x W, times ``lens_supersample^2`` or
            ``lens_samples^2`` for a distorted camera) exceeds the pixel budget; checked before rendering.

    Shading: metallic-roughness BRDF under the scene's point, spot, directional and area lights (no shadows),
    plus environment lighting (SH diffuse, split-sum specular, scaled by occlusion), plus emission. Normal
    maps use the mesh's tangents (glTF ``TANGENT``) or tangents derived from ``uv``. Double-sided meshes
    flip the normal of faces seen from behind; when every mesh is single-sided, back faces are culled.
    Alpha of base colour is ignored (opaque).

    **Differentiability:** w.r.t. every tensor in ``scene.parameters()`` (geometry, transforms, uv, material
    factors and texels, light parameters, environment texels, film) and the camera's ``K``,
    ``world_to_cam`` and distortion.
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    camera = _pick_camera(scene, camera)
    _check_background(background, camera)
    if not isinstance(use_antialias, bool):
        raise TypeError(f"use_antialias must be a bool; got {type(use_antialias).__name__}")
    if not scene.meshes and not any(isinstance(l, AreaLight) for l in scene.lights.values()):
        raise ValueError("scene has nothing to draw: add a mesh (scene.add_mesh) or an area light")
    envs = [name for name, l in scene.lights.items() if isinstance(l, EnvironmentLight)]
    if len(envs) > 1:
        raise ValueError(f"a scene takes at most one EnvironmentLight; it has {', '.join(envs)}")
    geometry = _merge_geometry(scene)

    def draw(cam: Camera) -> torch.Tensor:
        return _render_pinhole(scene, geometry, cam, background, use_antialias)

    rgba = render_through_lens(draw, camera, supersample=lens_supersample, samples=lens_samples)
    film = scene.film
    rgb = form_image(rgba[..., :-1], exposure=film.exposure, white_balance=film.white_balance,
                     vignetting=film.vignetting, K=camera.K if film.vignetting is not None else None,
                     tone=film.tone, encode=film.encode, gamma=film.gamma)
    return torch.cat([rgb, rgba[..., -1:]], -1)


def _pick_camera(scene: Scene, camera) -> Camera:
    if isinstance(camera, Camera):
        return camera
    if camera is None:
        if len(scene.cameras) != 1:
            raise ValueError(f"camera=None needs a scene with exactly one camera; this one has "
                             f"{list(scene.cameras)}: pass a Camera or one of these names")
        return next(iter(scene.cameras.values()))
    if isinstance(camera, str):
        if camera not in scene.cameras:
            have = ", ".join(repr(name) for name in scene.cameras) or "none"
            raise ValueError(f"camera {camera[:80]!r} is not in the scene; its cameras are: {have}")
        return scene.cameras[camera]
    raise TypeError(f"camera must be a Camera, a camera name or None; got {type(camera).__name__}")


@dataclass
class _Part:
    material: Material
    double_sided: bool
    first_face: int


@dataclass
class _Geometry:
    """The scene's meshes merged in world space: one vertex, uv, normal and tangent table, faces offset."""

    verts: torch.Tensor
    faces: torch.Tensor
    uv: torch.Tensor
    uv_faces: torch.Tensor
    normals: torch.Tensor
    tangents: Optional[torch.Tensor]  # [3F, 4] per corner, or None when no material has a normal map
    parts: List[_Part]
    any_texture: bool
    all_single_sided: bool


def _merge_geometry(scene: Scene) -> _Geometry:
    flat = scene.flatten(emitters=True, normals=True)
    need_tangents = any(p.material.normal_texture is not None for p in flat.parts)
    tangents = [_corner_tangents(p) for p in flat.parts] if need_tangents else []
    parts = [_Part(p.material, p.double_sided, p.first_face) for p in flat.parts]
    any_texture = any(p.material.has_textures() for p in parts)
    return _Geometry(flat.verts, flat.faces, flat.uv, flat.uv_faces, flat.normals,
                     torch.cat(tangents).reshape(-1, 4) if need_tangents else None, parts, any_texture,
                     all(not p.double_sided for p in parts))


def _corner_tangents(part) -> torch.Tensor:
    """``[F, 3, 4]`` world tangents per face corner of a flattened part (zeros for parts without a normal map)."""
    F = part.faces.shape[0]
    if part.material.normal_texture is None:
        return part.verts.new_zeros(F, 3, 4)
    if part.tangents is not None:
        return part.tangents[part.faces]
    return vertex_tangents_unchecked(part.verts, part.faces, part.uv, part.uv_faces, part.normals[part.faces])


def _render_pinhole(scene: Scene, geo: _Geometry, camera: Camera, background, use_antialias: bool) -> torch.Tensor:
    # Validated once here; the raster cores then draw and antialias without checking again.
    mesh = prepare_mesh(geo.verts, geo.faces, camera, op="render")
    frags = rasterize_prepared(mesh, "back" if geo.all_single_sided else "none", geo.any_texture)
    shape = frags.face_ids.shape  # [..., H, W]
    flat_mask = frags.face_ids.reshape(-1) >= 0
    # Covered pixels grouped by mesh (stable sort keeps pixel order within a mesh).
    face = frags.face_ids.reshape(-1).long()[flat_mask]
    starts = torch.tensor([p.first_face for p in geo.parts], device=face.device)
    part_of = torch.bucketize(face, starts, right=True) - 1
    order = torch.argsort(part_of, stable=True)
    pixel = flat_mask.nonzero()[:, 0][order]
    counts = torch.bincount(part_of, minlength=len(geo.parts)).tolist()

    def take(dense: torch.Tensor) -> torch.Tensor:  # [..., H, W, *rest] -> [P, *rest]
        rest = dense.shape[len(shape):]
        return dense.expand(shape + rest).reshape((-1,) + rest).index_select(0, pixel)

    position = take(interpolate(geo.verts, frags, geo.faces))
    normal = take(interpolate(geo.normals, frags, geo.faces))
    if geo.any_texture:
        uv, duv = interpolate(geo.uv, frags, geo.uv_faces, return_derivatives=True)
        uv, duv = take(uv), take(duv)
    else:
        uv = duv = None
    eye = _eye(camera, position, pixel, shape)
    material = _sample_parts(geo, uv, duv, counts, position)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    facing = ((eye - position) * normal).sum(-1, keepdim=True)
    flip = torch.cat([torch.full((c, 1), p.double_sided, device=normal.device) for p, c in zip(geo.parts, counts)])
    normal = torch.where(flip & (facing < 0), -normal, normal)
    if "normal_tangent" in material:
        corner = torch.arange(geo.faces.numel(), device=geo.faces.device).reshape(-1, 3)
        tangent = take(interpolate(geo.tangents, frags, corner))
        mapped = perturb_normal(normal, tangent, material["normal_tangent"])
        has_map = material["normal_tangent"].abs().sum(-1, keepdim=True) > 0
        normal = torch.where(has_map & (tangent[..., :3].abs().sum(-1, keepdim=True) > 0), mapped, normal)
    radiance = material["emission"] + _shade(scene, position, normal, eye, material)
    flat = radiance.new_zeros(shape.numel(), radiance.shape[-1]).index_copy(0, pixel, radiance)
    rgb = flat.reshape(shape + radiance.shape[-1:])
    cover = frags.mask[..., None].to(rgb.dtype)
    rgb = rgb + (1 - cover) * _background(scene, camera, background, rgb)
    rgba = torch.cat([rgb, cover], -1)
    return antialias_prepared(rgba, frags, mesh, geo.faces) if use_antialias else rgba


def _eye(camera: Camera, position: torch.Tensor, pixel: torch.Tensor, shape) -> torch.Tensor:
    """``[P, 3]`` the point each covered pixel is seen from (its camera centre; for orthographic cameras a
    point one unit back along the viewing axis)."""
    w2c = camera.world_to_cam.expand(camera.batch_shape + (4, 4)).reshape(-1, 4, 4)
    R, t = w2c[:, :3, :3], w2c[:, :3, 3]
    view = pixel // (shape[-1] * shape[-2])
    if camera.projection == "orthographic":
        return position - R[view, 2, :]
    centre = -(R.transpose(-1, -2) @ t[..., None])[..., 0]
    return centre[view]


def _sample_parts(geo: _Geometry, uv, duv, counts, position) -> Dict[str, torch.Tensor]:
    """Per-pixel material inputs ``[P, c]``, each mesh's material sampled on its block of pixels."""
    blocks: Dict[str, list] = {}
    start = 0
    has_normal_map = any(p.material.normal_texture is not None for p in geo.parts)
    for part, count in zip(geo.parts, counts):
        if count == 0:
            continue
        sl = slice(start, start + count)
        start += count
        if uv is not None:
            m = sample_material(part.material, uv[None, sl], uv_derivs=duv[None, sl])
        else:
            m = sample_material(part.material, shape=(1, count))
        m = {k: v[0] for k, v in m.items()}
        m["ior"] = part.material.ior.reshape(1, 1).expand(count, 1)
        if has_normal_map and "normal_tangent" not in m:
            m["normal_tangent"] = position.new_zeros(count, 3)
        for k, v in m.items():
            blocks.setdefault(k, []).append(v.expand(count, v.shape[-1]))
    if not blocks:  # nothing covered
        z1, z3 = position.new_zeros(0, 1), position.new_zeros(0, 3)
        return {"base_color": z3, "alpha": z1, "metallic": z1, "roughness": z1, "occlusion": z1, "emission": z3,
                "ior": z1}
    out = {k: torch.cat(v) for k, v in blocks.items()}
    # Filtering can leave textures a few ULPs outside [0, 1] and an optimiser can overshoot a factor: the
    # BRDF's inputs are clamped to their valid range (gradients stop outside it).
    for key in ("base_color", "metallic", "roughness"):
        out[key] = out[key].clamp(0, 1)
    return out


def _shade(scene: Scene, position, normal, eye, material) -> torch.Tensor:
    out = torch.zeros_like(material["base_color"])
    if position.shape[0] == 0:
        return out
    surface = SurfaceSample.from_material(position, normal, eye - position, material)
    samples = [s for light in scene.lights.values() if hasattr(light, "samples") for s in light.samples(position)]
    if samples:
        out = out + shade_direct_unchecked(surface, samples)
    envs = [l for l in scene.lights.values() if isinstance(l, EnvironmentLight)]
    sh = [l.coeffs for l in scene.lights.values() if isinstance(l, SHLight)] + [e.sh_coeffs() for e in envs]
    if sh:  # an environment light contributes its SH projection, so it is in ``sh`` too
        size = max(c.shape[0] for c in sh)
        sh_total = sum(torch.nn.functional.pad(c, (0, 0, 0, size - c.shape[0])) for c in sh)
        # Diffuse from the summed SH (SH lights and the environment's projection), glossy from the environment.
        out = out + shade_environment_unchecked(
            surface, sh_coeffs=sh_total,
            prefiltered=envs[0].prefiltered() if envs else None,
            prefiltered_roughness=list(envs[0].roughness_levels) if envs else None)
    return out


def _check_background(background, camera: Camera) -> None:
    """``render``'s ``background``: ``"environment"``, a finite number, or a finite tensor broadcastable to the
    image ``[..., H, W, 3]`` (constant per view, ``[..., 1, 1, 3]``, for a camera with lens distortion)."""
    if isinstance(background, str):
        if background != "environment":
            raise ValueError(f"background must be 'environment', a colour tensor or a float; got {background[:80]!r}")
        return
    if isinstance(background, bool) or not isinstance(background, (int, float, torch.Tensor)):
        raise TypeError(f"background must be 'environment', a float or a tensor; got {type(background).__name__}")
    if not isinstance(background, torch.Tensor):
        if not math.isfinite(background):
            raise ValueError(f"background must be a finite number; got {background}")
        return
    if background.dtype == torch.bool or background.is_complex():
        raise TypeError(f"background must be a real tensor; got {background.dtype}")
    image = tuple(camera.batch_shape) + (camera.height, camera.width, COLOR_CHANNELS)
    per_view = tuple(camera.batch_shape) + (1, 1, COLOR_CHANNELS)
    target = image if camera.distortion is None else per_view
    try:  # the background must broadcast *to* the image, never widen it
        fits = tuple(torch.broadcast_shapes(tuple(background.shape), target)) == target
    except RuntimeError:
        fits = False
    if not fits:
        lens = " (the camera has lens distortion, so one colour per view)" if camera.distortion is not None else ""
        raise ValueError(f"background must be a float or a tensor of shape [], [{COLOR_CHANNELS}], "
                         f"[H, W, {COLOR_CHANNELS}] or [..., H, W, {COLOR_CHANNELS}] broadcastable to the image "
                         f"{target}{lens}; got {tuple(background.shape)}")
    check_tensor(background, "background", finite=True)


def _background(scene: Scene, camera: Camera, background, like: torch.Tensor) -> torch.Tensor:
    if isinstance(background, str):
        if background != "environment":
            raise ValueError(f"background must be 'environment', a colour tensor or a float; got {background!r}")
        envs = [l for l in scene.lights.values() if isinstance(l, EnvironmentLight) and l.visible]
        if not envs:
            return torch.zeros((), dtype=like.dtype, device=like.device)
        uv = pixel_centers(camera.height, camera.width, device=like.device, dtype=like.dtype)
        uv = uv.expand(camera.batch_shape + uv.shape)
        _, d_cam = camera.ray_origins_directions(uv)
        R = camera.world_to_cam[..., :3, :3]
        d_world = (d_cam[..., None, :] @ R.reshape(R.shape[:-2] + (1, 1, 3, 3)))[..., 0, :]
        return envmap_lookup(envs[0].radiance, d_world)
    return torch.as_tensor(background, dtype=like.dtype, device=like.device)
