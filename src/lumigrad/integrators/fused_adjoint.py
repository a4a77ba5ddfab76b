"""The path tracer's backward pass on the fused kernel, for material and light values.

Where every parameter that requires a gradient is a material or light *value* (a part's base colour, metallic,
roughness, index of refraction, specular weight or emission factor, its base colour, metallic-roughness and
emissive textures' texels; a point, spot or directional light's intensity or colour; an area light's
radiance; an environment map's texels and scale) and no principled part has its other lobes
(``Material.principled_lobes``: the replay's principled derivatives are the opaque base's), nothing moves: no
visibility changes, so the gradient has no boundary term, and every path vertex stays where the primal put it. Path
replay backpropagation then needs no
PyTorch graph at all: :func:`lumigrad.kernels.path_trace.replay_paths_tables` traces the backward pass's paths
in the fused kernel (the same code as their primal, so the same bits; on the CPU in one pass, each continuing
vertex held until its path's radiance is known) and sums, per part and light, the
derivatives of each vertex's emission, light samples and continuing BSDF sample, with sampling densities, MIS
weights and roulette held fixed (detached sampling, as Mitsuba's ``prb``: unbiased). The float64 sums are then
chained to the parameters by autograd through :func:`.fused_paths.value_tables` (clamps, ``intensity * color``,
an area light's radiance shared by its triangles and its emitter part) and, for a part of Mitsuba's plastic,
through its table (:func:`lumigrad.shading.plastic.material_plastic_table`: the derivatives in the table's
entries chain through its quadratures to the roughness and ior). Glass and thin sheets are carried through (the
paths refract and reflect as in the primal), but their own values have no derivatives here: a render whose
transmitting part's values require gradients takes the PyTorch replay.

:func:`fused_adjoint_unsupported` says why a render cannot use it (None: it can); the integrator then runs the
PyTorch replay (:func:`lumigrad.raytrace.sample_paths` with an adjoint), which differentiates everything
(geometry, camera, normal maps' texels and scale, media). ``PathIntegrator(fused_adjoint=False)`` forces the
PyTorch replay.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import torch

from ..cameras.camera import Camera
from ..kernels import path_kernels as pk
from ..kernels.bvh import bvh_for
from ..kernels.path_trace import PathTables, replay_paths_tables, trace_paths_tables
from ..raytrace.transport import MAX_BOUNCES, TraceScene
from ..scene.lights import AreaLight, DirectionalLight, EnvironmentLight, PointLight, SpotLight
from ..shading.material import has_principled_lobes
from ..shading.plastic import material_plastic_table
from .fused_paths import VALUE_FIELDS, kernel_transmission, table_textures, texture_rows, value_tables

__all__ = ["fused_adjoint_unsupported", "fused_value_gradients"]

#: A material's fields whose gradients the fused replay gives (factors, through ``clamp(factor * texture)``
#: where textured, and the textures' texels; not a normal map's texels or scale, which take the PyTorch replay).
_MATERIAL_VALUES = frozenset({"base_color_factor", "metallic_factor", "roughness_factor", "emissive_factor", "ior",
                              "specular_factor", "base_color_texture", "metallic_roughness_texture",
                              "emissive_texture",
                              # the path tracer reads no occlusion (zero gradients in both replays); glTF packs
                              # it with metallic-roughness, often the same tensor
                              "occlusion_texture", "occlusion_strength"})
#: A light's fields whose gradients the fused replay gives.
_LIGHT_VALUES = {PointLight: ("intensity", "color"), SpotLight: ("intensity", "color"),
                 DirectionalLight: ("irradiance", "color"), AreaLight: ("radiance",),
                 EnvironmentLight: ("texels", "scale")}


def _needs_grad(value) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


def _fields(obj):
    if dataclasses.is_dataclass(obj):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return list(vars(obj).items())


def fused_adjoint_unsupported(ts: TraceScene, camera: Camera) -> Optional[str]:
    """Why the fused replay cannot differentiate a render of ``ts`` by ``camera`` (a sentence), or None when it
    can: something other than a material or light value requires a gradient, or a principled part has its other
    lobes, or a part an anisotropic lobe. (The caller has already checked
    that the fused kernel renders ``ts``: :func:`.fused_paths.use_fused`.)"""
    for name, value in camera.parameters().items():
        if _needs_grad(value):
            return f"the camera's {name} requires a gradient"
    for name in ("verts", "normals", "uv", "tangents"):
        if _needs_grad(getattr(ts, name)):
            return f"the scene's {'vertices' if name == 'verts' else name} require gradients"
    for k, m in enumerate(ts.materials):
        if has_principled_lobes(m):
            return (f"part {k}'s material is Mitsuba's principled with its other lobes (principled_lobes: their "
                    "derivatives replay on PyTorch)")
        if getattr(m, "roughness_aspect", None) is not None:
            return (f"part {k}'s material has an anisotropic lobe (roughness_aspect: its derivatives replay on "
                    "PyTorch)")
        transmits = kernel_transmission(ts, m) != 0.0
        for name, value in _fields(m):
            if not _needs_grad(value):
                continue
            if transmits:  # its vertices only carry the paths through (the replay has no dielectric derivatives)
                return f"part {k}'s material transmits and its {name} requires a gradient"
            if name not in _MATERIAL_VALUES:
                return f"part {k}'s material {name} requires a gradient"
    for j, light in enumerate(ts.lights):
        allowed = _LIGHT_VALUES.get(type(light), ())
        for name, value in _fields(light):
            if _needs_grad(value) and name not in allowed:
                return f"light {j}'s {name} requires a gradient"
    return None


def fused_value_gradients(ts: TraceScene, tables: PathTables, origins: torch.Tensor, directions: torch.Tensor,
                          v_radiance: torch.Tensor, params: Sequence[torch.Tensor], *, max_depth: int, rr_depth: int,
                          seed: int, hide_emitters: bool = False) -> List[Optional[torch.Tensor]]:
    """``d sum(v_radiance * L) / d params`` (None where unused), ``L [R, 3]`` the radiance of the paths of rays
    ``origins, directions`` (:func:`.fused_paths.sample_paths_fused` with these settings and ``tables``,
    ``path_tables(ts)``), by the fused replay (see the module): one pass on the CPU, on CUDA the primal first
    (its ``L``) then the replay. ``ts`` and the camera must pass :func:`fused_adjoint_unsupported`.

    **Differentiability:** this is a backward pass (its result has no graph).
    """
    verts = ts.verts.detach().contiguous()
    bvh = bvh_for(verts, ts.faces)
    o, d = origins.detach().float().contiguous(), directions.detach().float().contiguous()
    settings = dict(depth_limit=MAX_BOUNCES if max_depth < 0 else max_depth, rr_depth=rr_depth, seed=seed,
                    hide_emitters=hide_emitters)
    radiance = (None if verts.device.type == "cpu"
                else trace_paths_tables(bvh, verts, tables, o, d, for_replay=True, **settings)[0])
    with torch.enable_grad():
        values = value_tables(ts)
    textures = table_textures(ts.materials)
    trained = [tex for tex in textures if tex.requires_grad]
    first, rows = 0, []  # the textures that want gradients get rows in the kernel's table, in texture order
    for tex in textures:
        rows.append(first if tex.requires_grad else -1)
        first += tex.shape[0] * tex.shape[1] if tex.requires_grad else 0
    texel_grad_rows = torch.tensor(rows or [-1], dtype=torch.int32, device=verts.device)
    g_part, g_light, g_tri, g_texels, g_env, _, g_plastic = replay_paths_tables(
        bvh, verts, tables, o, d, radiance, v_radiance, texel_grad_rows=texel_grad_rows,
        want_env=values["env_texels"].requires_grad, **settings)
    columns = dict(part_base=g_part[:, pk.GRAD_BASE:pk.GRAD_BASE + 3], part_metallic=g_part[:, pk.GRAD_METALLIC],
                   part_roughness=g_part[:, pk.GRAD_ROUGHNESS], part_ior=g_part[:, pk.GRAD_IOR],
                   part_specular=g_part[:, pk.GRAD_SPECULAR],
                   part_emission=g_part[:, pk.GRAD_EMISSION:pk.GRAD_EMISSION + 3], light_value=g_light, tri_le=g_tri,
                   env_texels=g_env)
    outputs = [values[name] for name in VALUE_FIELDS if values[name].requires_grad]
    grads = [columns[name].to(values[name].dtype) for name in VALUE_FIELDS if values[name].requires_grad]
    with torch.enable_grad():  # each trained texture's rows: a view of it, the kernel's rows in texture order
        outputs += [texture_rows(tex, verts.device) for tex in trained]
    if trained:
        grads += [g.to(torch.float32) for g in torch.split(g_texels, [tex.shape[0] * tex.shape[1] for tex in trained])]
    for k, m in enumerate(ts.materials):  # a plastic part's table (its quadratures) chains to its roughness and ior
        if g_plastic is not None and getattr(m, "plastic", False) and (
                m.roughness_factor.requires_grad or m.ior.requires_grad):
            with torch.enable_grad():
                table = material_plastic_table(m.roughness_factor, m.ior, m.microfacet == "beckmann")
            outputs.append(table)
            grads.append(g_plastic[k].to(table))
    params = list(params)
    if not outputs or not params:
        return [None] * len(params)
    # retain_graph: the scene's own graph (a factor built from a parameter once) serves every backward pass
    return list(torch.autograd.grad(outputs, params, grads, allow_unused=True, retain_graph=True))
