"""The path tracer's primal pass on the fused Warp kernel, where the scene allows it.

:func:`sample_paths_fused` is :func:`lumigrad.raytrace.sample_paths`'s primal pass (no adjoint) run by one
Warp kernel (:mod:`lumigrad.kernels.path_kernels`): one thread per ray, every bounce in registers, instead of
a wavefront of PyTorch ops. Both draw the same counter-based random numbers
(:mod:`lumigrad.kernels.counter_rng`), so for the same rays and seed they trace the same paths; the PyTorch
transport stays the reference (float64-capable) twin.

:func:`fused_unsupported` says why a scene cannot use the kernel (None: it can). The kernel supports float32
scenes whose materials bound no medium (glass, ``KHR_materials_transmission``, is in the kernel, and so is a
thin dielectric sheet: the fused replay carries them through, their own values' gradients replay on PyTorch;
Mitsuba's ``plastic`` /
``roughplastic``, ``principled`` and ``conductor`` are in both, the conductor's ``eta`` and ``k`` gradients replaying
on PyTorch, and so do scenes with a principled's other lobes, ``principled_lobes``), with constant factors and base
colour, metallic-roughness, emissive and normal textures (the occlusion texture is ignored by the path tracer either
way), lit by point, spot, directional, area lights and an environment map with three colour channels, and
that set no :class:`TraceScene` field beyond :data:`KNOWN_FIELDS` (a field added to the transport later,
participating media say, sends the scene to PyTorch until the kernel learns it). Anything else runs on
PyTorch: never a silent mismatch. ``LUMIGRAD_PATH_TRANSPORT=torch`` (environment) or
``PathIntegrator(use_fused_kernel=False)`` force PyTorch.

How close the twins are (``tests/integrators/test_fused_paths.py``, 4096 rays per scene and depth): per-ray
relative differences up to 9e-4 (99th percentile 3e-5: float32 rounding accumulated over the bounces, the
largest on the Cornell box's multi-bounce paths); one ray in 4096 of a draft of the textured scene, at
unlimited depth, branched differently (relative difference 0.25); the tests allow 1% of rays above 1e-4.
In the backward pass the kernel's radiance ``L`` of each path seeds the PyTorch replay (``L`` minus the terms
replayed so far is the radiance still to come), so a path that did branch differently would carry a wrong
remainder: a rare, small bias of the gradient, gone with ``use_fused_kernel=False``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

import torch

from ..kernels import path_kernels as pk
from ..kernels.bvh import bvh_for
from ..kernels.path_trace import MODEL_FLAGS, PathTables, trace_paths_tables
from ..raytrace.transport import MAX_BOUNCES, TraceScene
from ..scene.lights import AreaLight, DirectionalLight, EnvironmentLight, PointLight, SpotLight
from ..shading.emitters import (AUTO_AREA_DISTANCE, AUTO_SOLID_ANGLE_MAX_FACES, area_light_area_table,
                                area_light_bounds, envmap_sampling_table)
from ..shading.material import check_aspect_model, check_conductor_pair, clamped_log_aspect, has_principled_lobes
from ..shading.plastic import PLASTIC_TABLE, material_plastic_table

__all__ = ["KNOWN_FIELDS", "TRANSPORT_ENV", "fused_unsupported", "path_tables", "sample_paths_fused", "use_fused"]

#: Environment variable: ``"torch"`` forces the PyTorch transport; anything else (or unset) lets the integrator
#: use the fused kernel where :func:`fused_unsupported` allows it.
TRANSPORT_ENV = "LUMIGRAD_PATH_TRANSPORT"

_SPOT_MIN_COS_BAND = 1e-3  # as lumigrad.shading.lights
_SPOT_MIN_ANGLE_BAND = 1e-6  # as lumigrad.shading.lights


def use_fused(ts: TraceScene, requested: bool = True) -> bool:
    """Whether to run the primal on the fused kernel: ``requested``, not forced off by
    :data:`TRANSPORT_ENV`, and the scene supported (:func:`fused_unsupported`)."""
    if not requested or os.environ.get(TRANSPORT_ENV, "").strip().lower() == "torch":
        return False
    return fused_unsupported(ts) is None


#: The :class:`TraceScene` fields the kernel knows; a field added later (participating media, ...) that is set
#: makes :func:`fused_unsupported` refuse the scene until the kernel learns it.
KNOWN_FIELDS = frozenset({"verts", "faces", "normals", "uv", "uv_faces", "face_part", "materials", "double_sided",
                          "part_emitters", "lights", "environment", "transmissive", "light_sampling", "tangents"})


def fused_unsupported(ts: TraceScene) -> Optional[str]:
    """Why the fused kernel cannot render ``ts`` (a sentence), or None when it can."""
    for f in dataclasses.fields(ts):
        value = getattr(ts, f.name)
        unset = value is None or value is False or (isinstance(value, (list, tuple, dict)) and not value)
        if f.name not in KNOWN_FIELDS and not unset:
            return f"the scene sets {f.name!r}, which the kernel does not know"
    if ts.verts.dtype != torch.float32:
        return f"the scene is {ts.verts.dtype} (the kernel runs float32; PyTorch is the float64 twin)"
    if ts.verts.device.type not in ("cpu", "cuda"):
        return f"the kernel runs on CPU and CUDA, not {ts.verts.device}"
    if ts.faces.shape[0] == 0:
        return "the scene has no triangles"
    env = ts.environment
    if env is not None and (env.radiance.dim() != 3 or env.radiance.shape[-1] != 3):
        return "the environment map is not one [H, W, 3] map"
    for k, m in enumerate(ts.materials):
        if ts.transmissive and (getattr(m, "interior", None) is not None or getattr(m, "exterior", None) is not None):
            return f"part {k}'s material bounds a medium (media are not in the kernel)"
        if m.transmission_factor.numel() != 1:
            return f"part {k}'s transmission is not one number"
        if getattr(m, "plastic", False) and (
                m.metallic_roughness_texture is not None or m.roughness_factor.numel() != 1 or m.ior.numel() != 1):
            return (f"part {k}'s material is Mitsuba's plastic with a roughness texture or more than one roughness "
                    f"or ior (the kernel's plastic has one table a part)")
        for slot in TEXTURE_SLOTS:
            tex = getattr(m, slot)
            if tex is not None and (tex.dim() != 3 or tex.shape[-1] < 3):
                return f"part {k}'s {slot} is not one [H, W, >= 3] texture"
        if m.base_color_factor.numel() < 3 or m.emissive_factor.numel() != 3:
            return f"part {k}'s material is not RGB"
    for j, light in enumerate(ts.lights):
        if isinstance(light, EnvironmentLight):
            if light is not ts.environment:
                return f"light {j} is an environment map other than the scene's"
            continue
        if not isinstance(light, (PointLight, SpotLight, DirectionalLight, AreaLight)):
            return f"light {j} is a {type(light).__name__} (not in the kernel)"
        if isinstance(light, AreaLight):
            if light.radiance.shape[-1] != 3:
                return f"light {j} is not RGB"
        elif (light.color.shape[-1] != 3 or _light_value(light).numel() != 3
              or (not isinstance(light, DirectionalLight) and light.position.numel() != 3)):
            return f"light {j} is not one RGB light"
    for k, e in enumerate(ts.part_emitters):
        if e is not None and not any(e is l for l in ts.lights):
            return f"part {k}'s area light is not among the lights"
    return None


def _light_value(light) -> torch.Tensor:
    scale = light.irradiance if isinstance(light, DirectionalLight) else light.intensity
    return (scale[..., None] * light.color).reshape(-1)


def _factor(value: torch.Tensor, dev, clamp: bool) -> torch.Tensor:
    value = value.reshape(()).to(dev, torch.float32)
    return value.clamp(0, 1) if clamp else value


#: The :class:`PathTables` fields :func:`value_tables` gives with their graph (the fused replay's gradients;
#: textures' texels are chained texture by texture, :func:`table_textures`).
VALUE_FIELDS = ("part_base", "part_metallic", "part_roughness", "part_ior", "part_specular", "part_emission",
                "light_value", "tri_le", "env_texels")


def value_tables(ts: TraceScene) -> dict:
    """The material and light values of ``ts`` as the kernel's tables read them (float32, :data:`VALUE_FIELDS`),
    with their graph: :func:`path_tables` holds them detached, the fused replay chains its gradients through them.
    Factors clamped to [0, 1] as the transport's ``_materials`` (a textured part's factor unclamped: the kernel
    clamps factor * texture)."""
    dev, f32 = ts.verts.device, torch.float32

    def rows(values: List[torch.Tensor], width: int = 3) -> torch.Tensor:
        values = [r.to(dev, f32).reshape(width) for r in values] or [torch.zeros(width, device=dev)]
        return torch.stack(values).contiguous()

    mats = ts.materials
    zero3 = torch.zeros(3, device=dev)
    values, les = [], []
    for light in ts.lights:
        if isinstance(light, AreaLight):
            les.append(light.radiance.to(dev, f32).expand(light.faces.shape[0], 3))
        values.append(_light_value(light) if isinstance(light, (DirectionalLight, PointLight, SpotLight)) else zero3)
    return dict(
        part_base=rows([m.base_color_factor.reshape(-1)[:3] if m.base_color_texture is not None
                        else m.base_color_factor.reshape(-1)[:3].clamp(0, 1) for m in mats]),
        part_metallic=torch.stack([_factor(m.metallic_factor, dev, m.metallic_roughness_texture is None)
                                   for m in mats]).contiguous(),
        part_roughness=torch.stack([_factor(m.roughness_factor, dev, m.metallic_roughness_texture is None)
                                    for m in mats]).contiguous(),
        part_ior=torch.stack([m.ior.reshape(()).to(dev, f32) for m in mats]).contiguous(),
        part_specular=torch.stack([_factor(m.specular_factor, dev, True) for m in mats]).contiguous(),
        part_emission=rows([m.emissive_factor.reshape(-1) for m in mats]),
        light_value=rows(values), tri_le=torch.cat(les).contiguous() if les else torch.zeros(1, 3, device=dev),
        env_texels=(ts.environment.radiance.to(dev, f32).reshape(-1, 3).contiguous() if ts.environment is not None
                    else torch.zeros(1, 3, device=dev)))


#: The material slots the kernel reads textures from, in the order of their rows in the texel table.
TEXTURE_SLOTS = ("base_color_texture", "metallic_roughness_texture", "emissive_texture", "normal_texture")


def table_textures(mats) -> List[torch.Tensor]:
    """The textures of materials ``mats`` in the order of the kernel's texel table (part by part,
    :data:`TEXTURE_SLOTS` within a part): texture ``k`` is the kernel's texture ``k``."""
    return [tex for m in mats for slot in TEXTURE_SLOTS if (tex := getattr(m, slot)) is not None]


def texture_rows(tex: torch.Tensor, dev) -> torch.Tensor:
    """A texture's first three channels as the kernel's texel rows ``[H W, 3]`` float32."""
    return tex[..., :3].to(dev, torch.float32).reshape(-1, 3)


def plastic_rows(mats, dev) -> torch.Tensor:
    """The kernel's ``part_plastic`` ``[P PLASTIC_TABLE]`` float32: part ``p``'s plastic table
    (:func:`lumigrad.shading.plastic.material_plastic_table`, the transport's) in row ``p``, zeros for the other
    parts; ``[1]`` when no part is plastic."""
    if not any(getattr(m, "plastic", False) for m in mats):
        return torch.zeros(1, device=dev)
    with torch.no_grad():  # (kept per tensor version: built once while the material does not change)
        rows = [material_plastic_table(m.roughness_factor, m.ior, m.microfacet == "beckmann")
                if getattr(m, "plastic", False) else torch.zeros(PLASTIC_TABLE) for m in mats]
    return torch.cat([r.to(dev, torch.float32).reshape(-1) for r in rows]).contiguous()


def conductor_rows(mats, dev) -> Optional[torch.Tensor]:
    """The kernel's ``part_conductor`` ``[2 P, 3]`` float32: part ``p``'s ``conductor_eta`` in row ``2 p`` and
    ``conductor_k`` in row ``2 p + 1``; for a principled part with other lobes (``principled_lobes``, clamped to
    [0, 1] as the transport's), its ``(spec_tint, sheen, sheen_tint)`` and ``(clearcoat, clearcoat_gloss,
    flatness)`` there instead (:mod:`lumigrad.kernels.principled_kernels`); zeros for the other parts; None when no
    part is either. Where a part has an anisotropic lobe (``roughness_aspect``), ``P`` rows more: part ``p``'s
    ``(log aspect, 0, 0)`` in row ``2 P + p``, clamped as the transport's (``sample_material``)."""
    for m in mats:
        check_conductor_pair(m)
        check_aspect_model(m)  # (an aspect on a material of no anisotropic model: refused, as the twin)
    anisotropic = any(getattr(m, "roughness_aspect", None) is not None for m in mats)
    if not anisotropic and not any(getattr(m, "conductor_eta", None) is not None or has_principled_lobes(m)
                                   for m in mats):
        return None
    zero = torch.zeros(3, device=dev)

    def pair(m):
        if getattr(m, "conductor_eta", None) is not None:
            return m.conductor_eta, m.conductor_k
        if has_principled_lobes(m):
            lobes = m.principled_lobes.detach().clamp(0.0, 1.0).reshape(6)
            return lobes[:3], lobes[3:]
        return zero, zero

    rows = [v for m in mats for v in pair(m)]
    if anisotropic:
        rows += [torch.stack([log_aspect_of(m), torch.zeros(()), torch.zeros(())]) for m in mats]
    return torch.stack([r.detach().to(dev, torch.float32).reshape(3) for r in rows]).contiguous()


def log_aspect_of(m) -> torch.Tensor:
    """``[]`` the log of ``m``'s lobe aspect as renderers take it (``sample_material``'s clamp), 0 where isotropic."""
    if getattr(m, "roughness_aspect", None) is None:
        return torch.zeros(())
    return clamped_log_aspect(m.roughness_aspect.detach().reshape(())).float().cpu()


def _spot_cone(light: SpotLight):
    """``(edge, scale, kind)`` of a spot light's cone in the path kernel's light table (float32, as the kernel)."""
    f32 = torch.float32
    inner, outer = light.inner_angle.detach().to("cpu", f32), light.outer_angle.detach().to("cpu", f32)
    if light.falloff == "linear":
        return float(outer), float(1.0 / (outer - inner).clamp_min(_SPOT_MIN_ANGLE_BAND)), pk.LIGHT_SPOT_LINEAR
    co = torch.cos(outer)
    return float(co), float(1.0 / (torch.cos(inner) - co).clamp_min(_SPOT_MIN_COS_BAND)), pk.LIGHT_SPOT


def kernel_transmission(ts: TraceScene, material) -> float:
    """The transmission the kernel reads for ``material`` (one number: :func:`fused_unsupported` refuses others);
    0 where nothing in ``ts`` transmits, and for a plastic, principled or conductor part, whose transmission is not
    read (the transport's rule)."""
    if (not ts.transmissive or getattr(material, "plastic", False) or getattr(material, "principled", False)
            or getattr(material, "conductor_eta", None) is not None):
        return 0.0
    return float(material.transmission_factor.detach().reshape(()))


def path_tables(ts: TraceScene) -> PathTables:
    """The kernel's tables of ``ts`` (detached float32 / int32 copies; see :class:`PathTables`)."""
    dev, f32, i32 = ts.verts.device, torch.float32, torch.int32

    def vec(rows: List[torch.Tensor], width: int = 3) -> torch.Tensor:
        rows = [r.detach().to(dev, f32).reshape(width) for r in rows] or [torch.zeros(width, device=dev)]
        return torch.stack(rows).contiguous()

    def col(values, dtype) -> torch.Tensor:
        return torch.tensor(list(values) or [0], dtype=dtype, device=dev)

    mats = ts.materials
    offsets, widths, heights, wraps, rows = [], [], [], [], 0
    slots = {slot: [] for slot in TEXTURE_SLOTS}  # (the order of table_textures)
    textures = table_textures(mats)
    for m in mats:
        for slot, index in slots.items():
            tex = getattr(m, slot)
            if tex is None:
                index.append(-1)
                continue
            index.append(len(offsets))
            H, W = tex.shape[:2]
            offsets.append(rows)
            rows += H * W
            widths.append(W)
            heights.append(H)
            wraps.append({"repeat": 0, "clamp": 1, "mirror": 2}[m.wrap])
    with torch.no_grad():
        values = value_tables(ts)
    emitter = [-1 if e is None else next(j for j, l in enumerate(ts.lights) if l is e) for e in ts.part_emitters]

    types, pos, dirs, cone_edge, cone_scale, rng, start, count, two = ([] for _ in range(9))
    areas, centres, far2 = [], [], []  # area lights sampled by area (where): see PathTables
    v0s, v1s, v2s, cdfs = [], [], [], []
    zero3 = torch.zeros(3, device=dev)
    for light in ts.lights:
        s, c_out, sc, r, st, n, ts2, area, centre, far = zero3, 0.0, 0.0, 0.0, 0, 0, 0, 0.0, zero3, -1.0
        p = zero3
        if isinstance(light, EnvironmentLight):
            kind = pk.LIGHT_ENVIRONMENT
        elif isinstance(light, AreaLight):
            kind = pk.LIGHT_AREA
            tri = light.verts.detach().to(dev, f32)[light.faces]
            st, n, ts2 = len(v0s), tri.shape[0], int(light.two_sided)
            v0s += list(tri[:, 0])
            v1s += list(tri[:, 1])
            v2s += list(tri[:, 2])
            cdf, total = area_light_area_table(light.verts.to(dev, f32), light.faces)
            cdfs.append(cdf)
            area = 0.0 if ts.light_sampling == "solid_angle" else float(total)  # 0: always by solid angle
            if ts.light_sampling == "auto" and n <= AUTO_SOLID_ANGLE_MAX_FACES:  # by area beyond AUTO_AREA_DISTANCE
                centre, radius = area_light_bounds(light.verts.to(dev, f32), light.faces)  # radii (emitters' _far)
                far = float((AUTO_AREA_DISTANCE * radius) ** 2)  # (more triangles: by area everywhere, far -1)
        elif isinstance(light, DirectionalLight):
            kind = pk.LIGHT_DIRECTIONAL
            d = light.direction.detach().to(dev, f32)
            s = -(d / torch.linalg.vector_norm(d, dim=-1, keepdim=True))
        else:
            kind = pk.LIGHT_POINT
            p = light.position.detach().reshape(3)
            r = 0.0 if light.range is None else float(light.range)
            if isinstance(light, SpotLight):
                d = light.direction.detach().to(dev, f32)
                s = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
                c_out, sc, kind = _spot_cone(light)
        types.append(int(kind))
        pos.append(p)
        dirs.append(s)
        cone_edge.append(c_out)
        cone_scale.append(sc)
        rng.append(r)
        start.append(st)
        count.append(n)
        two.append(ts2)
        areas.append(area)
        centres.append(centre)
        far2.append(far)
    normals = ts.normals if ts.normals is not None else torch.zeros(1, 3, device=dev)
    if ts.environment is not None:
        env_map = ts.environment.radiance.detach().to(dev, f32)
        H, W = env_map.shape[:2]
        pmf, row_cdf, cond_cdf = envmap_sampling_table(env_map)
        env = dict(env_on=1, env_h=H, env_w=W,
                   env_pmf=pmf.reshape(-1).contiguous(), env_row_cdf=row_cdf.contiguous(),
                   env_cond_cdf=cond_cdf.reshape(-1).contiguous())
    else:
        zero = torch.zeros(1, device=dev)
        env = dict(env_on=0, env_h=1, env_w=1, env_pmf=zero, env_row_cdf=zero, env_cond_cdf=zero)
    transmission = [kernel_transmission(ts, m) for m in mats]
    flags = [int(d) | (2 if getattr(m, "microfacet", "ggx") == "beckmann" else 0)
             | (4 if getattr(m, "plastic", False) else 0)
             | (8 if ts.transmissive and getattr(m, "thin_dielectric", False) else 0)
             | (16 if getattr(m, "principled", False) else 0)
             | (32 if getattr(m, "mitsuba_normal_map", False) and m.normal_texture is not None else 0)
             | (64 if getattr(m, "conductor_eta", None) is not None else 0)
             | (128 if getattr(m, "delta_specular", False) else 0)
             | (256 if has_principled_lobes(m) else 0)
             | (512 if getattr(m, "roughness_aspect", None) is not None else 0)
             for d, m in zip(ts.double_sided, ts.materials)]
    normal_maps = ts.tangents is not None and any(k >= 0 for k in slots["normal_texture"])
    return PathTables(
        faces=ts.faces.detach().to(dev, i32).reshape(-1).contiguous(),
        normals=normals.detach().to(dev, f32).contiguous(), has_normals=int(ts.normals is not None),
        face_part=ts.face_part.detach().to(dev, i32).contiguous(),
        **values,
        part_transmission=col(transmission, f32), part_flags=col(flags, i32), part_plastic=plastic_rows(mats, dev),
        part_emitter=col(emitter, i32),
        uvs=ts.uv.detach().to(dev, f32).reshape(-1, 2).contiguous() if ts.uv.numel() else torch.zeros(1, 2, device=dev),
        uv_faces=ts.uv_faces.detach().to(dev, i32).reshape(-1).contiguous(),
        part_texture=col(slots["base_color_texture"], i32),
        part_mr_texture=col(slots["metallic_roughness_texture"], i32),
        part_emissive_texture=col(slots["emissive_texture"], i32),
        part_normal_texture=col(slots["normal_texture"], i32),
        part_normal_scale=col([float(m.normal_scale.detach().reshape(())) if m.normal_texture is not None else 1.0
                               for m in mats], f32),
        tangents=(ts.tangents.detach().to(dev, f32).reshape(-1, 4).contiguous() if ts.tangents is not None
                  else torch.zeros(1, 4, device=dev)),
        has_tangents=int(ts.tangents is not None),
        tex_offset=col(offsets, i32), tex_width=col(widths, i32), tex_height=col(heights, i32),
        tex_wrap=col(wraps, i32),
        texels=torch.cat([texture_rows(tex.detach(), dev) for tex in textures]).contiguous() if textures
        else torch.zeros(1, 3, device=dev),
        light_type=col(types, i32), light_pos=vec(pos), light_dir=vec(dirs),
        light_cone_edge=col(cone_edge, f32), light_cone_scale=col(cone_scale, f32), light_range=col(rng, f32),
        light_start=col(start, i32), light_count=col(count, i32), light_two_sided=col(two, i32),
        light_area=col(areas, f32), light_centre=vec(centres), light_far2=col(far2, f32),
        tri_v0=vec(v0s), tri_v1=vec(v1s), tri_v2=vec(v2s),
        tri_cdf=torch.cat(cdfs).contiguous() if cdfs else torch.zeros(1, device=dev), **env,
        lean=(not normal_maps and not any(t != 0.0 for t in transmission) and not any(f & MODEL_FLAGS for f in flags)
              and ts.cutouts is None),
        cutouts=ts.cutouts, part_conductor=conductor_rows(mats, dev))


def sample_paths_fused(ts: TraceScene, origins: torch.Tensor, directions: torch.Tensor, *, max_depth: int,
                       rr_depth: int, seed: int, hide_emitters: bool = False,
                       hits: Optional[list] = None, tables: Optional[PathTables] = None) -> torch.Tensor:
    """:func:`lumigrad.raytrace.sample_paths`'s primal pass on the fused kernel: radiance ``[R, 3]`` float32.

    Same arguments (no ``adjoint``: the kernel has no gradients); ``ts`` must be supported
    (:func:`fused_unsupported` returns None, else ``ValueError`` with its reason). ``tables``: ``path_tables(ts)``
    where the caller already holds them (None: built here). Row ``r`` of the rays draws the random numbers of
    ray ``r``, as in ``sample_paths``, so both trace the same paths.

    **Differentiability:** none: the result is detached. Gradients come from ``sample_paths``' adjoint replay.
    """
    reason = fused_unsupported(ts)
    if reason is not None:
        raise ValueError(f"ts cannot use the fused path kernel: {reason}")
    verts = ts.verts.detach()
    bvh = bvh_for(verts, ts.faces)
    depth_limit = MAX_BOUNCES if max_depth < 0 else max_depth
    tables = tables if tables is not None else path_tables(ts)
    radiance, hit = trace_paths_tables(bvh, verts.contiguous(), tables, origins.detach().float(),
                                       directions.detach().float(), depth_limit=depth_limit, rr_depth=rr_depth,
                                       seed=seed, hide_emitters=hide_emitters)
    if hits is not None:
        hits.append(hit)
    return radiance
