"""The raster integrator: a :class:`Scene` drawn by the hard rasterizer and deferred shading.

``rasterize -> interpolate -> sample_material -> shade_direct + shade_environment + emission -> antialias
-> form_image``, with the scene's meshes merged into one draw. Shading runs on the covered pixels only
(compact rows, ordered by mesh so each material samples one contiguous block); every tensor of the scene
is differentiable, including visibility at silhouettes through :func:`lumigrad.antialias`. The same
rasterization gives the geometry buffers (depth, normal, position, uv, albedo, mask, face_id), and cameras
with lens distortion draw a pinhole cover that is resampled through the lens
(:func:`lumigrad.render_through_lens`), colour and buffers alike.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint

from .._checks import DeferredChecks, check_number, check_positive_int, check_tensor
from ..cameras.camera import Camera
from ..raster import distort_image, distort_index_image, render_through_lens
from ..raster.interpolate import interpolate_unchecked
from ..raster.antialias import blend_crossings, silhouette_crossings
from ..raster.rasterize import peel_prepared, prepare_mesh, rasterize_prepared
from ..kernels.bvh import bvh_for
from ..raytrace.intersect import offset_ray_origin
from ..kernels.cutouts import CutoutTables
from ..raytrace.cutouts import VisibleBVH, cutout_tables
from ..scene.lights import AreaLight, DirectionalLight, EnvironmentLight, PointLight, SHLight, SpotLight
from ..scene.scene import Scene
from ..shading.deferred import shade_direct_unchecked, shade_environment_unchecked, shade_punctual_unchecked
from ..shading.lights import PunctualLights
from ..shading.envmap import envmap_lookup_unchecked
from ..shading.image_formation import form_image_unchecked
from ..shading.material import (Material, align_model_values, has_specular_weight, model_values_of,
                                sample_material_unchecked)
from ..shading.surface import SurfaceSample
from ..shading.transmission import is_gltf_ggx
from ..shading.normal_shadowing import flip_invalid_normal
from ..shading.tangents import perturb_normal
from ..conventions import pixel_centers
from .base import AOV_CHANNELS, Integrator, RenderOutput, register_integrator
from .frame_checks import check_index_tables, check_something_to_draw, frame_checks

__all__ = ["GEOMETRY_AOVS", "RasterIntegrator"]

#: Colour channels of the radiance the raster integrator shades (the alpha channel comes on top).
COLOR_CHANNELS = 3

#: The buffers of :func:`lumigrad.render_geometry`.
GEOMETRY_AOVS = ("depth", "normal", "mask")


@register_integrator("raster")
class RasterIntegrator(Integrator):
    """The hard rasterizer with deferred shading and analytic antialiasing (``integrator="raster"``).

    Settings (keyword arguments, also the keys of a fit config's ``[render]`` table):
        background: ``"environment"`` shows the scene's visible :class:`EnvironmentLight` behind the
            geometry (black without one); or a finite colour: a float, a tensor ``[3]``, or an image
            broadcastable to ``[..., H, W, 3]`` (one colour per view, ``[..., 1, 1, 3]``, for a camera with
            lens distortion).
        use_antialias: blend silhouettes analytically (:func:`lumigrad.antialias`), which is what gives
            gradients w.r.t. geometry and camera at visibility edges.
        use_aov_antialias: the same for the AOVs (``None``: as ``use_antialias``); ``False`` gives hard
            buffers, as a depth sensor sees them. ``face_id`` is never blended.
        lens_supersample, lens_samples: for cameras with lens distortion, the pinhole cover's pixels per
            output pixel and the reads per pixel (:func:`lumigrad.render_through_lens`); AOVs are resampled
            through the lens like colour (bilinearly; ``face_id`` takes the nearest cover pixel).
        shadows: cast shadows of point, spot, directional and area lights with shadow rays on the scene's BVH
            (a hybrid: rasterized visibility from the camera, ray-traced visibility to the lights; the
            environment is not shadowed). Shadow edges give no gradient (the mask is piecewise constant).
        max_layers: how many depth-peeled layers a pixel composites when a material's ``alpha_mode`` is
            ``"MASK"`` or ``"BLEND"`` (default 4); unused by opaque scenes. See "Transparency" below.
        checkpoint_shading: gradient checkpointing of direct lighting (``torch.utils.checkpoint``, one light
            at a time): each light's samples at the shaded pixels (direction, radiance, shadow rays) and its
            reflection are recomputed in the backward pass instead of being kept, so the memory of shading no
            longer grows with the number of lights; the gradients are the same. Costs a second evaluation of
            every light's samples. (Without it only each light's BRDF is recomputed, see
            :func:`lumigrad.shading.shade_direct`, and the samples of all lights are kept.)
        fused_lights: shade the point, spot and directional lights of an unshadowed render in one fused
            kernel pass (:func:`lumigrad.shading.shade_punctual`): memory O(pixels) whatever their number,
            same values and gradients. ``False`` forces the PyTorch reference (one sample per light). Area
            lights, and every light when ``shadows`` is set, always take the reference.

    ``render`` takes ``spp=1`` only (one deterministic sample per pixel centre; ``seed`` is ignored).

    Shading: metallic-roughness BRDF under the scene's point, spot, directional and area lights (no shadows),
    plus environment lighting (SH diffuse, split-sum specular, scaled by occlusion), plus emission. Normal
    maps use the mesh's tangents (glTF ``TANGENT``) or tangents derived from ``uv``. Double-sided meshes
    flip the normal of faces seen from behind; when every mesh is single-sided, back faces are culled.
    Area lights are drawn as emitters (their front faces). A scene with nothing but an environment light renders
    the background alone (the sky where it is visible, else the ``background`` colour), alpha 0.

    Transparency (glTF ``alphaMode``; alpha ``a`` is ``base_color_factor.a`` times the base colour texture's
    alpha): with every material ``"OPAQUE"`` alpha is ignored and the nearest surface is shaded, as always.
    Otherwise each pixel's surfaces are depth-peeled nearest first, at most ``max_layers`` of them, and each
    layer is shaded and composited front to back over the background:
    ``C = sum_k a_k c_k prod_{j<k} (1 - a_j) + prod_k (1 - a_k) * background``, alpha ``1 - prod_k (1 - a_k)``,
    with ``a_k = 1`` on ``"OPAQUE"`` surfaces (they end the pixel), ``a_k = [a >= alpha_cutoff]`` on
    ``"MASK"`` surfaces (discarded fragments show what lies behind) and ``a_k = clamp(a, 0, 1)`` on ``"BLEND"``
    surfaces. The layers come from depth order, so the result does not depend on the order of meshes or
    faces. Surfaces beyond the ``max_layers``-th are not drawn (the background shows there). Gradients flow to
    alpha and colour of ``"BLEND"`` surfaces, and to geometry through shading; the ``"MASK"`` cutoff is a step
    with no gradient w.r.t. alpha (colour and geometry of kept fragments still get theirs). Antialiasing blends
    the silhouettes of the nearest layer's triangles (masked or blended ones included); edges of the cutoff
    inside a triangle and silhouettes seen through a blended surface stay hard (no visibility gradient there).
    AOVs describe the nearest layer, whatever its alpha; shadow rays treat every surface as opaque.

    AOVs (:data:`lumigrad.integrators.AOV_DOCS`): ``normal`` is the vertex normal (no normal map), flipped
    to face the camera on every mesh when any mesh is double-sided; ``albedo`` the base colour clamped to
    [0, 1]; ``face_id`` indexes the meshes' triangles in ``scene.meshes`` order, then the drawn area lights.

    **Differentiability:** colour w.r.t. every tensor in ``scene.parameters()`` (geometry, transforms, uv,
    material factors and texels, light parameters, environment texels, film) and the camera's ``K``,
    ``world_to_cam`` and distortion; AOVs w.r.t. what they are made of (``depth`` through the camera-frame
    positions and the barycentrics, ``albedo`` through the material); with antialiasing, visibility
    gradients at silhouettes for both.

    Raises (from ``render``):
        ValueError: ``spp`` other than 1, a NaN / Inf or wrongly shaped ``background``, a scene with
            nothing to draw (no mesh, area light or environment light) or with more than one environment light,
            and whatever the raster ops refuse.
        lumigrad.limits.BudgetError: the image (views x H x W, times ``lens_supersample^2`` or
            ``lens_samples^2`` for a distorted camera) exceeds the pixel budget; checked before rendering.

    Example:
        >>> import lumigrad as lg
        >>> scene = lg.Scene()
        >>> _ = scene.add_mesh("tri", lg.SceneMesh(torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]]),
        ...                                    torch.tensor([[0, 2, 1]]), double_sided=True))
        >>> cam = lg.Camera.look_at([0., 0., -3.], [0., 0., 0.], width=8, height=8)
        >>> out = lg.render(scene, cam, aovs=("depth",), use_antialias=False)
        >>> float(out.aovs["depth"][4, 4, 0]), float(out.alpha[0, 0, 0])
        (3.0, 0.0)
    """

    aov_names = ("depth", "normal", "position", "uv", "albedo", "mask", "face_id")

    def __init__(self, *, background: Union[Literal["environment"], torch.Tensor, float] = "environment",
                 use_antialias: bool = True, use_aov_antialias: Optional[bool] = None,
                 lens_supersample: float = 1.0, lens_samples: int = 1, shadows: bool = False,
                 max_layers: int = 4, checkpoint_shading: bool = False, fused_lights: bool = True):
        _check_background(background, None)
        if not isinstance(fused_lights, bool):
            raise TypeError(f"fused_lights must be a bool; got {type(fused_lights).__name__}")
        self.fused_lights = fused_lights
        self.max_layers = check_positive_int(max_layers, "max_layers")
        if not isinstance(checkpoint_shading, bool):
            raise TypeError(f"checkpoint_shading must be a bool; got {type(checkpoint_shading).__name__}")
        self.checkpoint_shading = checkpoint_shading
        if not isinstance(shadows, bool):
            raise TypeError(f"shadows must be a bool; got {type(shadows).__name__}")
        self.shadows = shadows
        if not isinstance(use_antialias, bool):
            raise TypeError(f"use_antialias must be a bool; got {type(use_antialias).__name__}")
        if use_aov_antialias is not None and not isinstance(use_aov_antialias, bool):
            raise TypeError(f"use_aov_antialias must be a bool or None; got {type(use_aov_antialias).__name__}")
        check_number(lens_supersample, "lens_supersample", lo=0.0, lo_open=True)
        check_positive_int(lens_samples, "lens_samples")
        self.background = background
        self.use_antialias = use_antialias
        self.use_aov_antialias = use_antialias if use_aov_antialias is None else use_aov_antialias
        self.lens_supersample = lens_supersample
        self.lens_samples = lens_samples

    def render(self, scene: Scene, camera: Camera, *, aovs: Sequence[str] = (), spp: int = 1,
               seed: int = 0) -> RenderOutput:
        """Render colour, alpha and ``aovs`` (see the class); arguments as :meth:`Integrator.render`."""
        if spp != 1:
            raise ValueError(f"the raster integrator takes one sample per pixel centre: spp must be 1; got {spp} "
                             "(supersample with a larger camera and area-average the image)")
        check_something_to_draw(scene)
        envs = [name for name, l in scene.lights.items() if isinstance(l, EnvironmentLight)]
        if len(envs) > 1:
            raise ValueError(f"a scene takes at most one EnvironmentLight; it has {', '.join(envs)}")
        checks = frame_checks(scene, camera)
        _check_background(self.background, camera, checks)
        if _sky_only(scene):
            rgba, buffers = _sky(scene, camera, self.background, tuple(aovs))
        else:
            rgba, buffers = self._draw(scene, camera, tuple(aovs), True, checks)
        checks.flush()  # read by the rasterizer already; this only guards a path that drew nothing
        film = scene.film
        rgb = form_image_unchecked(rgba[..., :-1], exposure=film.exposure, white_balance=film.white_balance,
                                   vignetting=film.vignetting, K=camera.K if film.vignetting is not None else None,
                                   tone=film.tone, encode=film.encode, gamma=film.gamma)
        return RenderOutput(rgb, rgba[..., -1:], buffers)

    def render_aovs(self, scene: Scene, camera: Camera, aovs: Sequence[str]) -> Dict[str, torch.Tensor]:
        """Only the buffers ``aovs`` (names from :attr:`aov_names`), without shading: the same rasterization
        and the same values as ``render(..., aovs=aovs).aovs``, at the cost of the geometry alone."""
        unknown = [a for a in aovs if a not in self.aov_names]
        if unknown:
            raise ValueError(f"the raster integrator has no AOV {unknown[0]!r:.80}; it has: "
                             f"{', '.join(self.aov_names)}")
        check_something_to_draw(scene)
        if _sky_only(scene):
            return _sky(scene, camera, 0.0, tuple(aovs))[1]
        checks = frame_checks(scene, camera)
        buffers = self._draw(scene, camera, tuple(aovs), False, checks)[1]
        checks.flush()
        return buffers

    def _draw(self, scene: Scene, camera: Camera, aovs: Tuple[str, ...], color: bool,
              checks: DeferredChecks) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """``(rgba before the film or None, {aov: buffer})``, through the lens when the camera has one;
        ``checks`` (the frame's value checks) are read with the first rasterization's own transfer."""
        geometry = _merge_geometry(scene)
        floats = [a for a in AOV_CHANNELS if a in aovs]
        want_ids = "face_id" in aovs
        if camera.distortion is None:
            rgba, buffers, face_ids = _render_pinhole(scene, geometry, camera, self, floats, want_ids, color, checks)
        else:
            if not color and not floats:  # face_id alone: the lens resampling still needs an image
                floats = ["mask"]
            drawn: Dict[str, object] = {}

            def draw(cam: Camera) -> torch.Tensor:
                rgba, buffers, face_ids = _render_pinhole(scene, geometry, cam, self, floats, want_ids, color, checks)
                drawn.update(camera=cam, buffers=buffers, face_ids=face_ids)
                return rgba if color else torch.cat([buffers[a] for a in floats], -1)

            image = render_through_lens(draw, camera, supersample=self.lens_supersample, samples=self.lens_samples)
            pinhole, rgba = drawn["camera"], image if color else None
            if color and floats:  # colour went alone, as without AOVs; the buffers follow on the same cover
                stack = torch.cat([drawn["buffers"][a] for a in floats], -1)
                image = distort_image(stack, pinhole, camera, samples=self.lens_samples)
            buffers = dict(zip(floats, image.split([AOV_CHANNELS[a] for a in floats], -1))) if floats else {}
            face_ids = distort_index_image(drawn["face_ids"], pinhole, camera) if want_ids else None
        if want_ids:
            buffers["face_id"] = face_ids
        return rgba, {name: buffers[name] for name in aovs}  # in the order asked for


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
    # what shadow rays pass: the surfaces "MASK" cuts out (a "BLEND" surface casts its full shadow: one random
    # choice per pixel would be noise, its expected 1 - a needs a transmittance the BVH queries do not sum)
    shadow_cutouts: Optional[CutoutTables]


def _merge_geometry(scene: Scene) -> _Geometry:
    check_index_tables(scene)
    flat = scene.flatten(emitters=True, normals=True)
    tangents = flat.shading_tangents()
    parts = [_Part(p.material, p.double_sided, p.first_face) for p in flat.parts]
    any_texture = any(p.material.has_textures() for p in parts)
    return _Geometry(flat.verts, flat.faces, flat.uv, flat.uv_faces, flat.normals,
                     tangents.reshape(-1, 4) if tangents is not None else None, parts, any_texture,
                     all(not p.double_sided for p in parts),
                     cutout_tables(flat.verts, flat.faces, flat.uv, flat.uv_faces, flat.face_part,
                                   [p.material for p in flat.parts], blend=False)
                     if any(p.material.alpha_mode == "MASK" for p in flat.parts) else None)  # (face_part syncs)


def _render_pinhole(scene: Scene, geo: _Geometry, camera: Camera, settings: RasterIntegrator, floats: List[str],
                    want_ids: bool, color: bool, checks: DeferredChecks):
    """One pinhole draw: ``(rgba or None, {name: buffer} for the float AOVs, face_ids or None)``."""
    # Validated once here (value checks ride with the visibility kernel's read); the raster cores then draw,
    # interpolate and antialias without checking again. The merged face table is built from checked tables.
    mesh = prepare_mesh(geo.verts, geo.faces, camera, op="render" if color else "render_geometry", checks=checks,
                        faces_checked=True)
    need_material = color or "albedo" in floats
    frags = rasterize_prepared(mesh, "back" if geo.all_single_sided else "none", geo.any_texture and need_material)
    use_antialias = color and settings.use_antialias
    use_aov_antialias = bool(floats) and settings.use_aov_antialias
    crossings = silhouette_crossings(frags, mesh, geo.faces) if use_antialias or use_aov_antialias else None
    rgba = albedo = None
    if color and any(p.material.alpha_mode != "OPAQUE" for p in geo.parts):
        rgba, albedo = _shade_layers(scene, geo, camera, mesh, frags, settings, "albedo" in floats)
    elif need_material:
        rgba, albedo = _shade_pinhole(scene, geo, camera, frags, settings.background, color, "albedo" in floats,
                                       settings.shadows, settings.checkpoint_shading, settings.fused_lights)
    if use_antialias:
        rgba = blend_crossings(rgba, crossings)
    buffers = _aovs(geo, camera, frags, floats, albedo)
    if use_aov_antialias:
        stack = blend_crossings(torch.cat([buffers[a] for a in floats], -1), crossings)
        buffers = dict(zip(floats, stack.split([AOV_CHANNELS[a] for a in floats], -1)))
    return rgba, buffers, frags.face_ids if want_ids else None


def _shade_pinhole(scene: Scene, geo: _Geometry, camera: Camera, frags, background, color: bool,
                   want_albedo: bool, shadows: bool = False, checkpoint: bool = False, fused_lights: bool = True
                   ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Shade the covered pixels: ``([..., H, W, 4]`` radiance over the background and coverage, not
    antialiased, or None without ``color``; ``[..., H, W, 3]`` base colour or None without ``want_albedo``).
    With ``checkpoint`` each light's samples and reflection are recomputed in the backward pass."""
    radiance, _, _, albedo = _shade_layer(scene, geo, camera, frags, color, want_albedo, shadows,
                                          checkpoint=checkpoint, fused_lights=fused_lights)
    if not color:
        return None, albedo
    cover = frags.mask[..., None].to(radiance.dtype)
    rgb = radiance + (1 - cover) * _background(scene, camera, background, radiance)
    return torch.cat([rgb, cover], -1), albedo


def _shade_layers(scene: Scene, geo: _Geometry, camera: Camera, mesh, first, settings: RasterIntegrator,
                  want_albedo: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Shade and composite up to ``settings.max_layers`` depth-peeled layers front to back (see the class's
    "Transparency"): ``([..., H, W, 4]`` radiance over the background and alpha, not antialiased; the first
    layer's base colour or None). ``first`` is the first layer; a pixel stops peeling once a surface of
    constant alpha 1 (opaque, or a kept masked fragment) covers it, or when nothing lies behind."""
    cull = "back" if geo.all_single_sided else "none"
    peeled = layer = first
    radiance, alpha, solid, albedo = _shade_layer(scene, geo, camera, layer, True, want_albedo, settings.shadows,
                                                  with_alpha=True, checkpoint=settings.checkpoint_shading,
                                                  fused_lights=settings.fused_lights)
    rgb = alpha * radiance
    transmittance = 1 - alpha
    open_ = ~solid  # pixels that may still see something behind
    for _ in range(1, settings.max_layers):
        if not bool(open_.reshape(-1).index_select(0, layer.covered).any()):
            break  # every pixel this layer covers ends here, and nothing lies behind the others
        peeled = peel_prepared(mesh, peeled, cull, geo.any_texture)
        layer = peeled.restrict(open_.reshape(-1).index_select(0, peeled.covered))
        if layer.covered.numel() == 0:
            break
        radiance, alpha, solid, _ = _shade_layer(scene, geo, camera, layer, True, False, settings.shadows,
                                                 with_alpha=True, checkpoint=settings.checkpoint_shading,
                                                  fused_lights=settings.fused_lights)
        rgb = rgb + transmittance * alpha * radiance
        transmittance = transmittance * (1 - alpha)
        open_ = open_ & ~solid
    rgb = rgb + transmittance * _background(scene, camera, settings.background, rgb)
    return torch.cat([rgb, 1 - transmittance], -1), albedo


def _shade_layer(scene: Scene, geo: _Geometry, camera: Camera, frags, color: bool, want_albedo: bool,
                 shadows: bool = False, with_alpha: bool = False, checkpoint: bool = False,
                 fused_lights: bool = True):
    """Shade the covered pixels of one layer: ``(radiance [..., H, W, 3]`` (zero elsewhere) or None without
    ``color``, alpha ``[..., H, W, 1]`` and solid ``[..., H, W, 1]`` bool (see :func:`_layer_alpha`) or None
    without ``with_alpha``, base colour ``[..., H, W, 3]`` or None without ``want_albedo``)."""
    shape = frags.face_ids.shape  # [..., H, W]
    # The covered pixels (the fragments' compact rows, ascending) grouped by mesh; a stable sort keeps pixel
    # order within a mesh. The per-mesh counts are shading's one host read.
    pixel = frags.covered
    if len(geo.parts) == 1:
        counts = [pixel.shape[0]]
    else:
        face = frags.face_ids.reshape(-1).long().index_select(0, pixel)
        # (A copy from pageable memory with non_blocking does not wait for the GPU; bincount would, for its size.)
        starts = torch.tensor([p.first_face for p in geo.parts]).to(face.device, non_blocking=True)
        part_of = torch.bucketize(face, starts, right=True) - 1
        counts = part_of.new_zeros(len(geo.parts)).scatter_add_(0, part_of, torch.ones_like(part_of)).tolist()
        pixel = pixel.index_select(0, torch.argsort(part_of, stable=True))

    def take(dense: torch.Tensor) -> torch.Tensor:  # [..., H, W, *rest] -> [P, *rest]
        rest = dense.shape[len(shape):]
        return dense.expand(shape + rest).reshape((-1,) + rest).index_select(0, pixel)

    def scatter(compact: torch.Tensor) -> torch.Tensor:  # [P, C] -> [..., H, W, C], zero elsewhere
        flat = compact.new_zeros(shape.numel(), compact.shape[-1]).index_copy(0, pixel, compact)
        return flat.reshape(shape + compact.shape[-1:])

    position = take(interpolate_unchecked(geo.verts, frags, geo.faces))
    if geo.any_texture:
        uv, duv = interpolate_unchecked(geo.uv, frags, geo.uv_faces, return_derivatives=True)
        uv, duv = take(uv), take(duv)
    else:
        uv = duv = None
    material = _sample_parts(geo, uv, duv, counts, position)
    albedo = scatter(material["base_color"]) if want_albedo else None
    if not color:
        return None, None, None, albedo
    normal = take(interpolate_unchecked(geo.normals, frags, geo.faces))
    eye = _eye(camera, position, pixel, shape)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    facing = ((eye - position) * normal).sum(-1, keepdim=True)
    flip = torch.cat([torch.full((c, 1), p.double_sided, device=normal.device) for p, c in zip(geo.parts, counts)])
    normal = torch.where(flip & (facing < 0), -normal, normal)
    unmapped = tangent = None
    if ("normal_tangent" in material or "log_aspect" in material) and geo.tangents is not None:
        corner = torch.arange(geo.faces.numel(), device=geo.faces.device).reshape(-1, 3)
        tangent = take(interpolate_unchecked(geo.tangents, frags, corner))
    if "normal_tangent" in material:
        if "shadowing" in material:  # Mitsuba's normal map on a double-sided part's back: the front's bitangent
            mirror = flip & (facing < 0) & (material["shadowing"] > 0.5)
            tangent = torch.cat([tangent[..., :3], torch.where(mirror, -tangent[..., 3:], tangent[..., 3:])], -1)
        mapped = perturb_normal(normal, tangent, material["normal_tangent"])
        if "shadowing" in material:  # Mitsuba's normal maps: one facing away from the viewer is mirrored
            mapped = torch.where(material["shadowing"] > 0.5, flip_invalid_normal(normal, mapped, eye - position),
                                 mapped)
        has_map = material["normal_tangent"].abs().sum(-1, keepdim=True) > 0
        unmapped = normal
        normal = torch.where(has_map & (tangent[..., :3].abs().sum(-1, keepdim=True) > 0), mapped, normal)
    radiance = material["emission"] + _shade(scene, position, normal, eye, material,
                                             (geo.verts, geo.faces, geo.shadow_cutouts) if shadows else None,
                                             checkpoint, fused_lights,
                                             unmapped, tangent if "log_aspect" in material else None)
    alpha = solid = None
    if with_alpha:
        alpha, solid = _layer_alpha(geo, material["alpha"], counts)
        alpha, solid = scatter(alpha), scatter(solid)
    return scatter(radiance), alpha, solid, albedo


def _layer_alpha(geo: _Geometry, alpha: torch.Tensor, counts) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each covered pixel's compositing alpha ``[P, 1]`` by its mesh's ``alpha_mode`` (1 opaque, the cutoff
    test for a mask, ``clamp(alpha, 0, 1)`` to blend) and whether it is solid (alpha 1 that carries no
    gradient, so that nothing behind it needs shading)."""
    out, solid = [], []
    for part, block in zip(geo.parts, alpha.split(counts)):
        mode = part.material.alpha_mode
        if mode == "BLEND":
            out.append(block.clamp(0, 1))
            solid.append(torch.zeros_like(block, dtype=torch.bool))
            continue
        keep = block >= part.material.alpha_cutoff if mode == "MASK" else torch.ones_like(block, dtype=torch.bool)
        out.append(keep.to(block.dtype))
        solid.append(keep)
    return torch.cat(out), torch.cat(solid)


def _aovs(geo: _Geometry, camera: Camera, frags, floats: List[str], albedo) -> Dict[str, torch.Tensor]:
    """The dense float AOVs ``floats``, zero on the background, not antialiased."""
    if not floats:
        return {}
    out: Dict[str, torch.Tensor] = {}
    mask = frags.mask[..., None]
    _, w2c = camera.flat()
    if "depth" in floats:
        cam_z = (geo.verts @ w2c[:, 2, :3].transpose(0, 1) + w2c[:, 2, 3]).transpose(0, 1)[..., None]  # [N, V, 1]
        cam_z = cam_z.reshape(camera.batch_shape + cam_z.shape[-2:])
        depth = interpolate_unchecked(cam_z, frags, geo.faces)
        mask = mask.to(depth.dtype)
        out["depth"] = depth * mask
    else:
        mask = mask.to(geo.verts.dtype)
    position = interpolate_unchecked(geo.verts, frags, geo.faces) if "position" in floats or (
        "normal" in floats and not geo.all_single_sided and camera.projection != "orthographic") else None
    if "normal" in floats:
        normal = interpolate_unchecked(geo.normals, frags, geo.faces)
        normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        if not geo.all_single_sided:  # double-sided: normals face the camera
            forward = w2c[:, 2, :3].reshape(camera.batch_shape + (1, 1, 3))  # the viewing axis in world space
            if camera.projection == "orthographic":
                to_eye = -forward
            else:
                eye = -(w2c[:, :3, :3].transpose(-1, -2) @ w2c[:, :3, 3:])[..., 0].reshape(forward.shape)
                to_eye = eye - position
            normal = torch.where((to_eye * normal).sum(-1, keepdim=True) < 0, -normal, normal)
        out["normal"] = normal * mask
    if "position" in floats:
        out["position"] = position * mask
    if "uv" in floats:
        out["uv"] = interpolate_unchecked(geo.uv, frags, geo.uv_faces) * mask
    if "albedo" in floats:
        out["albedo"] = albedo
    if "mask" in floats:
        out["mask"] = mask
    common = functools.reduce(torch.promote_types, [b.dtype for b in out.values()])
    return {name: b.to(common) for name, b in out.items()}  # one dtype, as when they travel together


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
    # the models' values of the parts seen (a thin sheet's is the path tracer's: the raster shades it opaque)
    wanted = model_values_of(p.material for p, c in zip(geo.parts, counts) if c) - {"thin"}
    # the core glTF BSDF everywhere: no specular weight (shade_punctual's fused kernels without it)
    weighted = any(has_specular_weight(p.material) for p in geo.parts)
    for part, count in zip(geo.parts, counts):
        if count == 0:
            continue
        sl = slice(start, start + count)
        start += count
        if uv is not None:
            m = sample_material_unchecked(part.material, uv[None, sl], uv_derivs=duv[None, sl])
        else:
            m = sample_material_unchecked(part.material, shape=(1, count))
        m = {k: v[0] for k, v in m.items()}
        m["ior"] = part.material.ior.reshape(1, 1).expand(count, 1)
        if not weighted:
            m.pop("specular", None)
        if has_normal_map and "normal_tangent" not in m:
            m["normal_tangent"] = position.new_zeros(count, 3)
        align_model_values(m, wanted, count, position)
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


def _shade(scene: Scene, position, normal, eye, material, occluders=None, checkpoint: bool = False,
           fused_lights: bool = True, unmapped=None, tangent=None) -> torch.Tensor:
    out = torch.zeros_like(material["base_color"])
    if position.shape[0] == 0:
        return out
    surface = SurfaceSample.from_material(position, normal, eye - position, material, unmapped_normal=unmapped,
                                          tangent=tangent)
    emitters = [light for light in scene.lights.values() if hasattr(light, "samples")]
    if fused_lights and occluders is None and is_gltf_ggx(surface):  # (the kernel's model: glTF's, GGX lobes)
        punctual, emitters = _punctual(emitters)
        if punctual is not None:  # all of them in one fused pass, O(pixels) memory: no checkpoint needed
            out = out + shade_punctual_unchecked(surface, punctual, use_checkpoint=False)
    if checkpoint and emitters and torch.is_grad_enabled():
        # One light at a time, its samples (directions, radiance, shadow rays) recomputed in the backward pass:
        # what is kept is each light's [P, C] term, whatever the number of lights.
        for light in emitters:
            out = out + torch.utils.checkpoint.checkpoint(_direct, [light], surface, position, normal, occluders,
                                                          False, use_reentrant=False)
    elif emitters:
        out = out + _direct(emitters, surface, position, normal, occluders)
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


def _punctual_pair(light):
    """What :meth:`PunctualLights.of` takes for a point, spot or directional light with no batch dims whose
    ``samples`` are its class's own (``("points" | "spots" | "directionals", entry)``), else None."""
    kinds = [(cls, name) for cls, name in ((PointLight, "points"), (SpotLight, "spots"),
                                          (DirectionalLight, "directionals")) if isinstance(light, cls)]
    if not kinds or "samples" in vars(light) or type(light).samples is not kinds[0][0].samples:
        return None  # another light, or one whose samples were replaced (a subclass, a test's wrapper), keeps them
    kind = kinds[0][1]
    if kind == "points":
        entry = (light.position, light.intensity[..., None] * light.color, light.range)
    elif kind == "spots":
        entry = (light.position, light.direction, light.intensity[..., None] * light.color, light.inner_angle,
                 light.outer_angle, light.range)
        if light.direction.dim() != 1 or light.inner_angle.dim() or light.outer_angle.dim() or \
                light.falloff != "gltf":  # the packed cone is glTF's; a linear one keeps its samples
            return None
    else:
        entry = (light.direction, light.irradiance[..., None] * light.color)
    return (kind, entry) if entry[0].dim() == 1 and entry[1 if kind != "spots" else 2].dim() == 1 else None


def _punctual(lights):
    """The lights of ``lights`` that :func:`_punctual_pair` takes, packed, and the others."""
    pairs = [(light, _punctual_pair(light)) for light in lights]
    groups = {"points": [], "spots": [], "directionals": []}
    for _, pair in pairs:
        if pair is not None:
            groups[pair[0]].append(pair[1])
    rest = [light for light, pair in pairs if pair is None]
    packed = PunctualLights.of(**groups) if any(groups.values()) else None
    return packed, rest


def _direct(lights, surface: SurfaceSample, position, normal, occluders, use_checkpoint: bool = True
            ) -> torch.Tensor:
    """Radiance ``[P, C]`` reflected from the delta and area lights ``lights`` (shadowed with ``occluders``);
    ``use_checkpoint`` as :func:`~lumigrad.shading.deferred.shade_direct_unchecked`'s."""
    samples = [s for light in lights for s in light.samples(position)]
    if occluders is not None and samples:
        samples = _shadowed(samples, position, normal, *occluders)
    if not samples:
        return torch.zeros_like(surface.base_color)
    return shade_direct_unchecked(surface, samples, use_checkpoint=use_checkpoint)


def _shadowed(samples, position, normal, verts, faces, cutouts=None):
    """The light samples with ``L`` zeroed where a shadow ray from the shading point towards the light hits
    the scene before the light (BVH queries, passing the surfaces ``cutouts`` cuts out; the mask carries no
    gradient)."""
    bvh = VisibleBVH(bvh_for(verts.detach(), faces), cutouts)
    n = normal.detach()
    out = []
    for s in samples:
        wi = s.wi.detach().expand(position.shape)
        distance = s.distance.detach().expand(position.shape[:-1])
        t_max = torch.where(torch.isfinite(distance), distance * (1 - 1e-4), torch.full_like(distance, math.inf))
        blocked = bvh.occluded(offset_ray_origin(position.detach(), n, wi), wi, t_max)
        out.append(s._replace(L=s.L * (~blocked)[..., None].to(s.L.dtype)))
    return out


def _check_background(background, camera: Optional[Camera], checks: Optional[DeferredChecks] = None) -> None:
    """``render``'s ``background``: ``"environment"``, a finite number, or a finite tensor broadcastable to the
    image ``[..., H, W, 3]`` (constant per view, ``[..., 1, 1, 3]``, for a camera with lens distortion).
    Without a camera (the integrator's settings), only what needs none: the type, the number's finiteness."""
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
    if camera is None:
        return
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
    if checks is None:
        check_tensor(background, "background", finite=True)
    else:
        checks.require_finite({"background": background})


def _sky_only(scene: Scene) -> bool:
    """Nothing but the sky: no mesh, no area light (an environment light, ``check_something_to_draw``)."""
    return not scene.meshes and not any(isinstance(l, AreaLight) for l in scene.lights.values())


def _sky(scene: Scene, camera: Camera, background, aovs: Tuple[str, ...]):
    """``(rgba [..., H, W, 4] before the film, {aov: buffer})`` of a scene with nothing but the sky: every pixel
    the background (the visible environment's radiance along the pixel centre's ray, through the camera's
    distortion, or the given colour), alpha 0, and the empty buffers a draw gives where no surface is (zero floats,
    ``face_id`` -1), in the environment map's dtype and device. **Differentiability:** in the map's texels, the
    camera's ``K``, ``world_to_cam`` and distortion (and ``background``)."""
    env = next(l for l in scene.lights.values() if isinstance(l, EnvironmentLight))
    like = env.radiance
    shape = tuple(camera.batch_shape) + (camera.height, camera.width)
    rgb = torch.broadcast_to(_background(scene, camera, background, like.new_zeros(())), shape + (3,))
    rgba = torch.cat([rgb, like.new_zeros(shape + (1,))], -1)
    buffers = {a: (torch.full(shape, -1, dtype=torch.int32, device=like.device) if a == "face_id" else
                   like.new_zeros(shape + (AOV_CHANNELS[a],))) for a in aovs}
    return rgba, buffers


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
        return envmap_lookup_unchecked(envs[0].radiance, d_world)
    return torch.as_tensor(background, dtype=like.dtype, device=like.device)
