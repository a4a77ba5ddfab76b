"""Launch the fused path-tracing kernel (:mod:`.path_kernels`) on flat scene tables.

:class:`PathTables` holds the scene as the kernel reads it (float32 / int32 tensors, one row per part, light
or light triangle); :func:`trace_paths_tables` runs one thread per ray, split over the CPU cores
(:func:`._runtime.launch_split`) or as one CUDA launch on PyTorch's current stream. Building the tables from a
:class:`lumigrad.raytrace.TraceScene`, and deciding whether the kernel supports a scene, is
:mod:`lumigrad.raytrace.fused`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import warp as wp

from . import path_kernels as pk
from ._runtime import as_warp, launch_partitioned, launch_split
from .bvh import TriangleBVH
from .counter_rng import split_seed
from .cutouts import CutoutTables
from .plastic_kernels import PLASTIC_TABLE
from ..threads import long_launch_threads

__all__ = ["MODEL_FLAGS", "PathTables", "lean_materials", "replay_paths_tables", "trace_paths_tables"]

#: CPU ranges of a replay (:func:`replay_paths_tables`), each with its own gradient tables, shared by the threads.
REPLAY_RANGES = min(16, 4 * (os.cpu_count() or 1))
#: Per-range texel gradient tables (the textures that want gradients and the environment map: float64, 3
#: channels a texel) are kept under this many bytes in all by running fewer ranges (and so fewer threads; one
#: range holds one table whatever its size).
TEXEL_TABLES_BYTES = 256 << 20
#: Rays per CPU thread below which a launch is not split.
MIN_RAYS_PER_THREAD = 64
#: Rays from which a launch takes every CPU, busy or not (a path costs microseconds: 16384 of them, tens of
#: milliseconds, well beyond what a helper thread loses waiting for a core).
LONG_LAUNCH_RAYS = 16384
#: The bits of ``PathTables.part_flags`` that only the kernel's ``every_material`` variants read (all but bit 0,
#: double-sided).
MODEL_FLAGS = 0b1111111110


@dataclass
class PathTables:
    """The scene in the fused kernel's layout (all contiguous, on one device; float32 and int32).

    Attributes:
        faces: ``[3 F]`` corner indices; ``normals``: ``[V, 3]`` (``[1, 3]`` zeros when ``has_normals`` is 0).
        face_part: ``[F]``; ``part_base`` ``[P, 3]``, ``part_metallic``, ``part_roughness``, ``part_ior``,
            ``part_specular`` (``KHR_materials_specular``'s weight, clamped to [0, 1]) ``[P]``,
            ``part_transmission`` ``[P]`` (``KHR_materials_transmission``'s fraction; 0: opaque), ``part_emission``
            ``[P, 3]``, ``part_flags`` ``[P]`` (bit 0: double-sided, bit 1: Beckmann's microfacets, else GGX's,
            bit 2: Mitsuba's plastic, its table row ``p`` of ``part_plastic`` ``[P PLASTIC_TABLE]``:
            :func:`lumigrad.shading.plastic.plastic_table`; ``[1]`` when no part is plastic; bit 3: the
            transmitting fraction is a thin sheet, ``Material.thin_dielectric``; bit 4: Mitsuba's principled,
            ``Material.principled``; bit 5: Mitsuba's normal map, ``Material.mitsuba_normal_map``; bit 6: Mitsuba's
            conductor, its ``eta`` and ``k`` rows ``2 p`` and ``2 p + 1`` of ``part_conductor`` ``[2 P, 3]``,
            ``[1, 3]`` when no part is a conductor; bit 7: ``Material.delta_specular``, delta lights see no
            specular lobe; bit 8: a principled part with other lobes, ``Material.principled_lobes``, in its rows of
            ``part_conductor``; bit 9: an anisotropic lobe, ``Material.roughness_aspect``, its log aspect in row
            ``2 P + p`` of ``part_conductor`` (then ``[3 P, 3]``) and its tangent in ``tangents``; ``part_conductor`` is
            ``[1, 3]`` when no part is a conductor, has lobes or an aspect),
            ``part_emitter`` ``[P]`` (the index of the part's area light in the light table, -1: none).
        uvs: ``[T, 2]`` texture coordinates; ``uv_faces``: ``[3 F]`` their corner indices; ``part_texture``
            ``[P]``: the part's base colour texture (-1: none; ``part_base`` is then its factor, unclamped);
            ``part_mr_texture``, ``part_emissive_texture`` ``[P]``: likewise (``part_metallic`` and
            ``part_roughness`` unclamped where a metallic-roughness texture scales them);
            ``tex_offset``, ``tex_width``, ``tex_height``, ``tex_wrap`` ``[K]`` (0 repeat, 1 clamp, 2 mirror):
            texture ``k``'s rows ``tex_offset[k] + i W + j`` of ``texels`` ``[sum H W, 3]`` (its first three
            channels as stored: sRGB-encoded for base colour and emission, linear for metallic-roughness and
            normal maps).
        part_normal_texture ``[P]``: the part's normal map (-1: none; read only when ``has_tangents`` is 1),
            ``part_normal_scale`` ``[P]`` its scale; ``tangents`` ``[3 F, 4]``: world tangents (xyz, handedness)
            per face corner (``[1, 4]`` zeros when ``has_tangents`` is 0; zeros on faces without a map).
        light_type: ``[L]`` (:data:`.path_kernels.LIGHT_POINT` ...); ``light_pos``, ``light_dir`` ``[L, 3]``
            (a spot's unit axis; for a directional light the unit direction *towards* it);
            ``light_value`` ``[L, 3]`` (intensity or irradiance times colour); ``light_cone_edge``,
            ``light_cone_scale`` ``[L]`` (a spot's cone: glTF's, ``LIGHT_SPOT``, ``cos(outer)`` and
            ``1 / max(cos(inner) - cos(outer), 1e-3)``; the linear one, ``LIGHT_SPOT_LINEAR``, ``outer`` and
            ``1 / max(outer - inner, 1e-6)``);
            ``light_range`` ``[L]`` (<= 0: none); ``light_start``, ``light_count``, ``light_two_sided``
            ``[L]``: an area light's triangles in ``tri_*``; ``light_area`` ``[L]``: an area light's total area
            when next-event estimation may sample it by area, 0 when always by solid angle; it does at points
            whose squared distance from ``light_centre`` ``[L, 3]`` exceeds ``light_far2`` ``[L]``.
        tri_v0, tri_v1, tri_v2, tri_le: ``[T, 3]`` corners and radiance of every area-light triangle;
        tri_cdf: ``[T]`` each light's cumulative area fractions over its triangles (its last entry 1).
        env_on: 1 when an environment map lights the scene (then also light ``LIGHT_ENVIRONMENT`` in the table);
            ``env_h``, ``env_w``: its size; ``env_texels`` ``[H W, 3]`` its radiance; ``env_pmf``,
            ``env_cond_cdf`` ``[H W]`` and ``env_row_cdf`` ``[H]``: its sampling table.
        lean: whether :func:`lean_materials` holds, known when the tables were built (no device read at each
            launch); None: read from the tables at each launch.
        cutouts: the scene's alpha (:class:`.cutouts.CutoutTables`: ``"MASK"`` and ``"BLEND"`` surfaces, which
            every ray, shadow rays included, passes where they are not there); None: every surface is opaque.
    """

    faces: torch.Tensor
    normals: torch.Tensor
    has_normals: int
    face_part: torch.Tensor
    part_base: torch.Tensor
    part_metallic: torch.Tensor
    part_roughness: torch.Tensor
    part_ior: torch.Tensor
    part_specular: torch.Tensor
    part_transmission: torch.Tensor
    part_emission: torch.Tensor
    part_flags: torch.Tensor
    part_plastic: torch.Tensor
    part_emitter: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    part_texture: torch.Tensor
    part_mr_texture: torch.Tensor
    part_emissive_texture: torch.Tensor
    tex_offset: torch.Tensor
    tex_width: torch.Tensor
    tex_height: torch.Tensor
    tex_wrap: torch.Tensor
    texels: torch.Tensor
    part_normal_texture: torch.Tensor
    part_normal_scale: torch.Tensor
    tangents: torch.Tensor
    has_tangents: int
    light_type: torch.Tensor
    light_pos: torch.Tensor
    light_dir: torch.Tensor
    light_value: torch.Tensor
    light_cone_edge: torch.Tensor
    light_cone_scale: torch.Tensor
    light_range: torch.Tensor
    light_start: torch.Tensor
    light_count: torch.Tensor
    light_two_sided: torch.Tensor
    light_area: torch.Tensor
    light_centre: torch.Tensor
    light_far2: torch.Tensor
    tri_v0: torch.Tensor
    tri_v1: torch.Tensor
    tri_v2: torch.Tensor
    tri_le: torch.Tensor
    tri_cdf: torch.Tensor
    env_on: int
    env_h: int
    env_w: int
    env_texels: torch.Tensor
    env_pmf: torch.Tensor
    env_row_cdf: torch.Tensor
    env_cond_cdf: torch.Tensor
    lean: Optional[bool] = None
    cutouts: Optional[CutoutTables] = None
    part_conductor: Optional[torch.Tensor] = None


def _kernel_inputs(bvh: TriangleBVH, verts: torch.Tensor, t: PathTables, origins: torch.Tensor,
                   directions: torch.Tensor, depth_limit: int, rr_depth: int, seed: int, hide_emitters: bool,
                   radiance: torch.Tensor, hit: torch.Tensor) -> list:
    """:func:`.path_kernels.trace_paths`' inputs after ``(offset, end)``, up to its outputs ``radiance, hit``."""
    lo, hi = split_seed(seed)
    v3 = wp.vec3
    if t.cutouts is not None:
        t.cutouts.reseed(seed)
    return [*bvh.query_handles(t.cutouts), as_warp(verts.contiguous(), v3), as_warp(t.faces), as_warp(t.normals, v3),
            t.has_normals,
            as_warp(t.face_part), as_warp(t.part_base, v3), as_warp(t.part_metallic), as_warp(t.part_roughness),
            as_warp(t.part_ior), as_warp(t.part_specular), as_warp(t.part_transmission),
            as_warp(t.part_emission, v3), as_warp(t.part_flags), as_warp(t.part_plastic),
            as_warp(t.part_conductor if t.part_conductor is not None else torch.zeros(1, 3, device=verts.device), v3),
            as_warp(t.part_emitter),
            as_warp(t.uvs, wp.vec2), as_warp(t.uv_faces), as_warp(t.part_texture),
            as_warp(t.part_mr_texture), as_warp(t.part_emissive_texture), as_warp(t.tex_offset),
            as_warp(t.tex_width), as_warp(t.tex_height), as_warp(t.tex_wrap), as_warp(t.texels, v3),
            as_warp(t.part_normal_texture), as_warp(t.part_normal_scale), as_warp(t.tangents, wp.vec4),
            int(t.has_tangents),
            int(t.light_type.shape[0]), as_warp(t.light_type), as_warp(t.light_pos, v3), as_warp(t.light_dir, v3),
            as_warp(t.light_value, v3), as_warp(t.light_cone_edge), as_warp(t.light_cone_scale),
            as_warp(t.light_range), as_warp(t.light_start), as_warp(t.light_count), as_warp(t.light_two_sided),
            as_warp(t.light_area), as_warp(t.light_centre, v3), as_warp(t.light_far2),
            as_warp(t.tri_v0, v3), as_warp(t.tri_v1, v3), as_warp(t.tri_v2, v3), as_warp(t.tri_le, v3),
            as_warp(t.tri_cdf),
            int(t.env_on), int(t.env_h), int(t.env_w), as_warp(t.env_texels, v3), as_warp(t.env_pmf),
            as_warp(t.env_row_cdf), as_warp(t.env_cond_cdf),
            as_warp(origins.contiguous(), v3), as_warp(directions.contiguous(), v3), wp.uint32(lo), wp.uint32(hi),
            int(depth_limit), int(rr_depth), int(bool(hide_emitters)), as_warp(radiance, v3), as_warp(hit)]


def lean_materials(t: PathTables) -> bool:
    """Whether every part of ``t`` is an opaque GGX glTF material without a normal map (no transmission, no
    Beckmann, plastic, thin-sheet, principled, conductor or Mitsuba normal map flag) and no alpha: the path kernel's
    lean variants then trace it (:data:`.path_kernels.TRACE_PATHS`)."""
    if (bool((t.part_transmission != 0).any()) or bool(((t.part_flags & MODEL_FLAGS) != 0).any())
            or t.cutouts is not None):
        return False
    return not (t.has_tangents and bool((t.part_normal_texture >= 0).any()))


def _kernel(t: PathTables, adjoint: bool):
    lean = t.lean if t.lean is not None else lean_materials(t)
    return pk.TRACE_PATHS[(adjoint, not lean)]


def _no_adjoint(device: torch.device) -> list:
    """The adjoint inputs of a primal launch (``adjoint`` 0; one-element placeholders)."""
    one3 = torch.zeros(1, 3, dtype=torch.float32, device=device)
    g = as_warp(torch.zeros(1, 1, dtype=torch.float64, device=device))
    none = as_warp(torch.full((1,), -1, dtype=torch.int32, device=device))
    return [0, as_warp(one3, wp.vec3), as_warp(one3, wp.vec3), g, g, g, g, none, g, 0, g, _no_held(device)]


def _no_held(device: torch.device):
    return as_warp(torch.zeros(1, 1, dtype=torch.float32, device=device))


def _workers(R: int):
    # seconds of work per launch at image sizes: both cores, even beside busy processes (see long_launch_threads)
    return long_launch_threads() if R >= LONG_LAUNCH_RAYS else None


def trace_paths_tables(bvh: TriangleBVH, verts: torch.Tensor, tables: PathTables, origins: torch.Tensor,
                       directions: torch.Tensor, *, depth_limit: int, rr_depth: int, seed: int,
                       hide_emitters: bool, for_replay: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Radiance ``[R, 3]`` float32 and "the ray hit a surface" ``[R]`` bool of rays ``origins, directions``.

    Args:
        bvh: the BVH of the scene's triangles (:func:`lumigrad.kernels.bvh.bvh_for`), with at least one face.
        verts: ``[V, 3]`` float32 vertices (the BVH's); tables: :class:`PathTables` on the same device.
        origins, directions: ``[R, 3]`` float32 rays (unit directions); row ``r`` draws its random numbers as
            ray ``r`` (:mod:`.counter_rng`).
        depth_limit: vertices per path (>= 1); rr_depth: first depth of Russian roulette; seed: the RNG seed;
        hide_emitters: emitters seen by the camera rays are black.
        for_replay: the radiance a replay (:func:`replay_paths_tables`, two passes) will retrace: computed by the
            replay's own compiled kernel (its adjoint off), so that the replay gathers the same bits whatever the
            compiler makes of the two variants (CUDA's contractions are not per expression).

    **Differentiability:** none (a primal estimate; gradients come from the replay: :func:`replay_paths_tables`
    or the PyTorch transport's).
    """
    device = verts.device
    R = origins.shape[0]
    radiance = torch.zeros(R, 3, dtype=torch.float32, device=device)
    hit = torch.zeros(R, dtype=torch.bool, device=device)
    if R == 0 or not bvh.has_faces:
        return radiance, hit
    inputs = _kernel_inputs(bvh, verts, tables, origins, directions, depth_limit, rr_depth, seed, hide_emitters,
                            radiance, hit) + _no_adjoint(device)
    launch_split(_kernel(tables, for_replay), R, inputs, device, min_chunk=MIN_RAYS_PER_THREAD, workers=_workers(R))
    return radiance, hit


def replay_paths_tables(bvh: TriangleBVH, verts: torch.Tensor, tables: PathTables, origins: torch.Tensor,
                        directions: torch.Tensor, radiance: Optional[torch.Tensor], v_radiance: torch.Tensor, *,
                        depth_limit: int, rr_depth: int, seed: int, hide_emitters: bool,
                        texel_grad_rows: Optional[torch.Tensor] = None,
                        want_env: bool = False) -> Tuple[torch.Tensor, ...]:
    """Path replay backpropagation of the material and light values on the fused kernel.

    The paths of :func:`trace_paths_tables` (same arguments) traced again with the adjoint ``v_radiance [R, 3]``
    of their radiance (:func:`.path_kernels.trace_paths` in its adjoint modes). ``radiance``: that radiance
    ``[R, 3]``, from :func:`trace_paths_tables` (two passes: ``adjoint`` 1), or None on the CPU (one pass: each
    CPU range holds its paths' continuing vertices until their radiance is known, ``adjoint`` 2).

    Returns:
        ``(g_part [P, PART_GRADS], g_light [L, 3], g_tri [T, 3], g_texels, g_env, replayed [R, 3], g_plastic)``:
        float64
        sums of the derivatives of ``sum(v_radiance * radiance)`` in the tables' ``part_*`` columns (``GRAD_*``
        of :mod:`.path_adjoint_kernels`; a textured part's are its factors'), ``light_value``, ``tri_le``, the
        texels of the textures that want them (``texel_grad_rows [K]`` int32: texture ``k``'s first row in
        ``g_texels``, -1 for none; rows in texture order, ``[rows, 3]``), with ``want_env`` ``env_texels``
        (``[H W, 3]``; None where not wanted), the radiance the replay gathered (the primal's: the same
        code), and where a part is Mitsuba's plastic the derivatives in its table's entries, ``[P, PLASTIC_TABLE]``
        (row ``p`` part ``p``'s; None without plastic parts), for autograd to chain through the tables.

    The BSDF derivatives are the glTF model's (GGX or Beckmann), Mitsuba's principled (its opaque base's: a part
    with other lobes, part flag 256, retraces its paths exactly but its derivatives lack the lobes' terms, so
    :func:`lumigrad.integrators.fused_adjoint.fused_adjoint_unsupported` sends such scenes to the PyTorch replay), its
    conductor (base colour and roughness; its ``eta`` and ``k`` are held) and its plastic (its ``part_*`` columns
    with its table held, the table's own in ``g_plastic``). A transmitting part's vertices
    (glass, thin sheets) carry the paths through and add nothing to its own columns (zero: the caller must not
    want them; its emission's do add); the lights they see are differentiated as anywhere.

    **Differentiability:** none (this is the adjoint; :mod:`lumigrad.integrators.fused_adjoint` chains it).
    """
    device = verts.device
    if radiance is None and device.type != "cpu":
        raise ValueError("replay_paths_tables: radiance=None (one pass) runs on the CPU only; give the primal's")
    if radiance is None and getattr(wp.config, "enable_cpu_blocks", False):
        # one pass holds a path's vertices in its range's scratch rows: only while a CPU launch runs its items one
        # after another on one thread (not with Warp's CPU blocks): two passes then
        radiance = trace_paths_tables(bvh, verts, tables, origins, directions, depth_limit=depth_limit,
                                      rr_depth=rr_depth, seed=seed, hide_emitters=hide_emitters, for_replay=True)[0]
    R = origins.shape[0]
    t = tables
    P, L, T = t.part_base.shape[0], t.light_value.shape[0], t.tri_le.shape[0]
    replayed = torch.zeros(R, 3, dtype=torch.float32, device=device)
    hit = torch.zeros(R, dtype=torch.bool, device=device)
    # a fixed count of CPU ranges (not the threads free now): the float64 sums add in the same order every run
    parts = 1 if device.type == "cuda" or R < 2 * MIN_RAYS_PER_THREAD else REPLAY_RANGES
    if texel_grad_rows is None:
        texel_grad_rows = torch.full((t.tex_offset.shape[0],), -1, dtype=torch.int32, device=device)
    wanted = texel_grad_rows >= 0
    rows = int((t.tex_width.long() * t.tex_height.long())[wanted].sum()) if bool(wanted.any()) else 0
    texel_bytes = (rows + (t.env_texels.shape[0] if want_env else 0)) * 3 * 8
    if texel_bytes * parts > TEXEL_TABLES_BYTES:  # fewer ranges (and threads) rather than gigabytes of tables
        parts = max(1, min(parts, TEXEL_TABLES_BYTES // texel_bytes))
    g_part = torch.zeros(parts, P, pk.PART_GRADS, dtype=torch.float64, device=device)
    g_light = torch.zeros(parts, L, 3, dtype=torch.float64, device=device)
    g_tri = torch.zeros(parts, T, 3, dtype=torch.float64, device=device)
    g_tex = torch.zeros(parts, max(rows, 1), 3, dtype=torch.float64, device=device)
    grad_rows = as_warp(texel_grad_rows.to(device, torch.int32).contiguous())
    g_env = torch.zeros(parts, t.env_texels.shape[0] if want_env else 1, 3, dtype=torch.float64, device=device)
    plastic = t.part_plastic.numel() > 1  # (a [P PLASTIC_TABLE] table: some part is plastic)
    g_plastic = torch.zeros(parts, P if plastic else 1, PLASTIC_TABLE if plastic else 1, dtype=torch.float64,
                            device=device)
    if R and bvh.has_faces:
        inputs = _kernel_inputs(bvh, verts, t, origins, directions, depth_limit, rr_depth, seed, hide_emitters,
                                replayed, hit)
        v = as_warp(v_radiance.float().contiguous(), wp.vec3)
        if radiance is None:
            mode, total = 2, as_warp(torch.zeros(1, 3, device=device), wp.vec3)
            held = torch.zeros(parts, max(depth_limit, 1), pk.HELD_FIELDS, dtype=torch.float32, device=device)
        else:
            mode, total, held = 1, as_warp(radiance.float().contiguous(), wp.vec3), None
        launch_partitioned(_kernel(t, True), R,
                           lambda k: inputs + [mode, total, v, as_warp(g_part[k]), as_warp(g_light[k]),
                                               as_warp(g_tri[k]), as_warp(g_tex[k]), grad_rows,
                                               as_warp(g_env[k]), int(bool(want_env)), as_warp(g_plastic[k]),
                                               _no_held(device) if held is None else as_warp(held[k])],
                           parts, device)
    return (g_part.sum(0), g_light.sum(0), g_tri.sum(0), g_tex.sum(0)[:rows] if rows else None,
            g_env.sum(0) if want_env else None, replayed, g_plastic.sum(0) if plastic else None)
