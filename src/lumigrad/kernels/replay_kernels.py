"""What the path replay recomputes but does not differentiate, on Warp (the fused kernel's arithmetic).

In the adjoint pass of :func:`lumigrad.raytrace.transport.sample_paths`, area lights' direct light is
differentiated by area (:mod:`lumigrad.raytrace.area_next_event`), but the radiance still to come along each
path is the primal's radiance minus what the primal gathered so far, so the replay must also recompute the
primal's own (solid-angle or area sampled, MIS-weighted, shadow-tested) area-light term at every surface
vertex: a value, never differentiated; and it draws each vertex's BSDF sample (the next ray, its density and
weight: detached too). :class:`ReplayKernels` computes both at the replay's vertices with the functions of
:mod:`.path_kernels` (so the same float32 bits as the fused primal that gave the path its radiance), one thread
per vertex, instead of the PyTorch twins (``transport._next_event`` under ``no_grad``, ``bsdf.sample``), which
stay the reference (float64-capable). A vertex's rows are packed for Warp once (:meth:`ReplayKernels.vertices`)
and read by both launches.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import warp as wp

from . import path_kernels as pk
from ._runtime import as_warp, launch_split
from .bvh import TriangleBVH
from .bvh_traverse import FlatBVH
from .cutouts import Cutouts
from .counter_rng import ray_key_wp, split_seed, uniform_counter_wp
from .path_trace import MIN_RAYS_PER_THREAD, PathTables
from .conductor_kernels import CONDUCTOR_VALUES
from .plastic_kernels import PLASTIC_TABLE

__all__ = ["ReplayKernels", "ReplayVertices"]

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _bsdf_sample(offset: int, end: int, paths: wp.array(dtype=wp.int32), depth: int, seed_lo: wp.uint32,
                 seed_hi: wp.uint32, normal: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
                 base: wp.array(dtype=wp.vec3), roughness: wp.array(dtype=float), metallic: wp.array(dtype=float),
                 ior: wp.array(dtype=float), specular: wp.array(dtype=float), beckmann: wp.array(dtype=wp.int32),
                 plastic_row: wp.array(dtype=wp.int32), plastic: wp.array(dtype=float),
                 principled: wp.array(dtype=wp.int32), conductor_row: wp.array(dtype=wp.int32),
                 conductor: wp.array(dtype=wp.vec3), out_wi: wp.array(dtype=wp.vec3),
                 out_weight: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    """Row ``offset + tid``: the BSDF sample of path ``paths[i]`` at ``depth`` (dimensions 0 the lobe, 1 and 2
    the direction), its weight and density, as the fused kernel draws them (GGX, or Beckmann where
    ``beckmann[i]``; Mitsuba's plastic where ``plastic_row[i] >= 0``, its table that row of ``plastic``; Mitsuba's
    principled where ``principled[i]``; Mitsuba's conductor where ``conductor_row[i] >= 0``, its ``eta`` and ``k``
    rows ``2 conductor_row[i]`` and the next of ``conductor``)."""
    i = offset + wp.tid()
    key = ray_key_wp(seed_lo, seed_hi, wp.uint32(paths[i]))
    u_lobe = uniform_counter_wp(key, depth, 0)
    u0 = uniform_counter_wp(key, depth, 1)
    u1 = uniform_counter_wp(key, depth, 2)
    wi = wp.vec3()
    weight = wp.vec3()
    pdf = float(0.0)
    row = plastic_row[i]
    if row >= 0:  # (-1.0: the sample computes its lobe probability)
        wi, weight, pdf = pk.plastic_sample_wp(plastic, row, pk.unit_wp(normal[i]), pk.unit_wp(wo[i]), -1.0, base[i],
                                               roughness[i], ior[i], beckmann[i], u_lobe, u0, u1)
    elif conductor_row[i] >= 0:
        wi, weight, pdf = pk.conductor_sample_wp(conductor, conductor_row[i], pk.unit_wp(normal[i]), pk.unit_wp(wo[i]),
                                                 base[i], roughness[i], beckmann[i], wp.vec3(0.0, 0.0, 0.0), 0.0,
                                                 u0, u1)  # (isotropic: anisotropic lobes replay on PyTorch)
    elif principled[i] != 0:
        wi, weight, pdf = pk.principled_sample_wp(pk.unit_wp(normal[i]), pk.unit_wp(wo[i]), -1.0, base[i],
                                                  roughness[i], metallic[i], ior[i], conductor, 1,
                                                  wp.vec3(0.0, 0.0, 0.0), 0.0, u_lobe, u0,
                                                  u1)  # (the opaque base: lobes replay on PyTorch)
    else:
        wi, weight, pdf = pk.bsdf_sample_wp(normal[i], wo[i], base[i], roughness[i], metallic[i], ior[i], specular[i],
                                            beckmann[i], u_lobe, u0, u1)
    out_wi[i] = wi
    out_weight[i] = weight
    out_pdf[i] = pdf


@wp.kernel
def _area_nee(offset: int, end: int, mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts,
              lights: wp.array(dtype=wp.int32), num_lights: int,
              light_start: wp.array(dtype=wp.int32), light_count: wp.array(dtype=wp.int32),
              light_two_sided: wp.array(dtype=wp.int32), light_area: wp.array(dtype=float),
              light_centre: wp.array(dtype=wp.vec3), light_far2: wp.array(dtype=float),
              tri_v0: wp.array(dtype=wp.vec3), tri_v1: wp.array(dtype=wp.vec3), tri_v2: wp.array(dtype=wp.vec3),
              tri_le: wp.array(dtype=wp.vec3), tri_cdf: wp.array(dtype=float),
              paths: wp.array(dtype=wp.int32), depth: int, seed_lo: wp.uint32, seed_hi: wp.uint32,
              position: wp.array(dtype=wp.vec3), normal: wp.array(dtype=wp.vec3), geo_normal: wp.array(dtype=wp.vec3),
              wo: wp.array(dtype=wp.vec3), base: wp.array(dtype=wp.vec3), roughness: wp.array(dtype=float),
              metallic: wp.array(dtype=float), ior: wp.array(dtype=float), specular: wp.array(dtype=float),
              beckmann: wp.array(dtype=wp.int32), plastic_row: wp.array(dtype=wp.int32),
              plastic: wp.array(dtype=float), principled: wp.array(dtype=wp.int32),
              conductor_row: wp.array(dtype=wp.int32), conductor: wp.array(dtype=wp.vec3),
              out: wp.array(dtype=wp.vec3)):
    """Row ``offset + tid``: the sum over ``lights`` of one MIS-weighted, shadow-tested light sample (no throughput),
    with path ``paths[i]``'s random numbers at ``depth`` (dimensions ``4 + 2 j, 5 + 2 j`` of light ``j``)."""
    i = offset + wp.tid()
    key = ray_key_wp(seed_lo, seed_hi, wp.uint32(paths[i]))
    x = position[i]
    n = normal[i]
    ng = geo_normal[i]
    ng = ng * (1.0 / wp.max(wp.length(ng), 1.0e-30))  # (offset_origin_wp takes a unit normal)
    n_u = pk.unit_wp(n)  # the unit vectors light_sample_term_wp expects
    wo_u = pk.unit_wp(wo[i])
    nee = wp.vec3(0.0, 0.0, 0.0)
    for k in range(num_lights):
        j = lights[k]
        wi, dist, lw, lpdf, omega, row, g = pk.area_light_sample_triangle_wp(
            x, j, light_start, light_count, light_two_sided, light_area, light_centre, light_far2, tri_v0, tri_v1,
            tri_v2, tri_le, tri_cdf, uniform_counter_wp(key, depth, 4 + 2 * j), uniform_counter_wp(key, depth, 5 + 2 * j))
        term = wp.vec3(0.0, 0.0, 0.0)
        if cut.on != 0:  # (the table is passed on only where it is on)
            term = pk.light_sample_term_wp(mesh, own, use_own, cut, x, n, ng, n_u, wo_u, -1.0, base[i], roughness[i],
                                           metallic[i], ior[i], specular[i], 0.0, beckmann[i], plastic,
                                           plastic_row[i], principled[i], conductor, conductor_row[i], wi, dist, lw,
                                           lpdf, False)
        else:
            term = pk.light_sample_term_opaque_wp(mesh, own, use_own, x, n, ng, n_u, wo_u, -1.0, base[i],
                                                  roughness[i], metallic[i], ior[i], specular[i], 0.0, beckmann[i],
                                                  plastic, plastic_row[i], principled[i], conductor, conductor_row[i],
                                                  wi, dist, lw, lpdf, False)
        nee = nee + term
    out[i] = nee


class ReplayVertices(NamedTuple):
    """One replay vertex's rows packed for the kernels once (:meth:`ReplayKernels.vertices`), for both of its
    launches: ``N`` rows, the path and random-number inputs, the position and geometric normal (``None`` when
    packed without ``ng``: :meth:`ReplayKernels.bsdf_sample` reads neither), the shading normal, the material's
    inputs."""

    N: int
    device: torch.device
    path_inputs: list
    position: object
    normal: object
    geo_normal: object
    material: list


class ReplayKernels:
    """The replay's detached recomputations on the fused kernel's tables (a float32 scene it supports).

    **Differentiability:** none (values and sampling decisions the replay holds constant).
    """

    def __init__(self, tables: PathTables):
        # only the light tables the area next-event term reads, wrapped once (not the scene's faces or textures)
        t, v3 = tables, wp.vec3
        self._light_inputs = [as_warp(t.light_start), as_warp(t.light_count), as_warp(t.light_two_sided),
                              as_warp(t.light_area), as_warp(t.light_centre, v3), as_warp(t.light_far2),
                              as_warp(t.tri_v0, v3), as_warp(t.tri_v1, v3), as_warp(t.tri_v2, v3),
                              as_warp(t.tri_le, v3), as_warp(t.tri_cdf)]
        self._device = t.light_start.device
        self._cutouts = t.cutouts  # (the scene's alpha: shadow rays pass cut-out surfaces)
        self._lights = {}  # the lights' index arrays, by tuple (one host-to-device copy each)

    def _light_indices(self, lights: Sequence[int]):
        key = tuple(int(j) for j in lights)
        if key not in self._lights:
            self._lights[key] = as_warp(torch.tensor(key, dtype=torch.int32, device=self._device))
        return self._lights[key]

    @staticmethod
    def vertices(paths: torch.Tensor, depth: int, seed: int, si, ng: Optional[torch.Tensor] = None) -> ReplayVertices:
        """The surface vertices ``si`` (a detached float32 :class:`lumigrad.shading.surface.SurfaceSample` of
        ``N`` rows; geometric normals ``ng [N, 3]``, needed by :meth:`area_next_event` only) of paths
        ``paths [N]`` at ``depth``, drawing :func:`lumigrad.kernels.counter_rng.uniform_counter` ``(seed, path,
        depth, ...)`` as the fused kernel does, packed once for :meth:`area_next_event` and :meth:`bsdf_sample`."""
        N = paths.shape[0]
        if si.principled_lobes is not None:  # (the kernels' principled here is the opaque base)
            raise ValueError("ReplayKernels: a principled part's other lobes (principled_lobes) replay on PyTorch")
        if si.log_aspect is not None:  # (the kernels' lobes are isotropic)
            raise ValueError("ReplayKernels: anisotropic lobes (log_aspect) replay on PyTorch")
        if N == 0:
            return ReplayVertices(0, si.position.device, [], None, None, None, [])
        v3 = wp.vec3
        # the position and geometric normal only for area_next_event (bsdf_sample reads neither)
        position = None if ng is None else as_warp(_rows(si.position, N, 3), v3)
        return ReplayVertices(N, si.position.device, _path_inputs(paths, depth, seed), position,
                              as_warp(_rows(si.normal, N, 3), v3),
                              None if ng is None else as_warp(_rows(ng, N, 3), v3), _material_inputs(si, N))

    def area_next_event(self, bvh: TriangleBVH, lights: Sequence[int], at: ReplayVertices) -> torch.Tensor:
        """The primal next-event term ``[N, 3]`` float32 (throughput not applied) of the area lights ``lights``
        (indices into the tables' lights) at the vertices ``at`` (:meth:`vertices`, with their geometric
        normals), ``bvh`` the scene's, with the random numbers ``4 + 2 j, 5 + 2 j`` of light ``j``, as the fused
        kernel and ``transport._next_event`` draw them."""
        out = torch.zeros(at.N, 3, dtype=torch.float32, device=at.device)
        if at.N == 0 or not lights:
            return out
        if at.geo_normal is None:
            raise ValueError("at: vertices packed without their geometric normals (give ng to vertices())")
        inputs = [*bvh.query_handles(self._cutouts), self._light_indices(lights), len(lights), *self._light_inputs,
                  *at.path_inputs, at.position, at.normal, at.geo_normal, *at.material, as_warp(out, wp.vec3)]
        launch_split(_area_nee, at.N, inputs, out.device, min_chunk=MIN_RAYS_PER_THREAD)
        return out

    def bsdf_sample(self, at: ReplayVertices) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(wi [N, 3], weight [N, 3], pdf [N])`` float32: the BSDF sample at the vertices ``at``
        (:meth:`vertices`), drawing ``uniform_counter(seed, path, depth, 0 ... 2)``, as the fused primal draws
        it (its density too, which gave the primal's MIS weights); the twin of ``bsdf.sample`` of
        :class:`lumigrad.shading.bsdf.MetallicRoughnessBSDF` to float32 rounding
        (``tests/kernels/test_path_kernels.py``)."""
        wi = torch.zeros(at.N, 3, dtype=torch.float32, device=at.device)
        weight = torch.zeros(at.N, 3, dtype=torch.float32, device=at.device)
        pdf = torch.zeros(at.N, dtype=torch.float32, device=at.device)
        if at.N > 0:
            inputs = [*at.path_inputs, at.normal, *at.material, as_warp(wi, wp.vec3), as_warp(weight, wp.vec3),
                      as_warp(pdf)]
            launch_split(_bsdf_sample, at.N, inputs, at.device, min_chunk=MIN_RAYS_PER_THREAD)
        return wi, weight, pdf


def _rows(x: torch.Tensor, n: int, width: int) -> torch.Tensor:
    return x.detach().to(torch.float32).expand(n, width).contiguous()


def _path_inputs(paths: torch.Tensor, depth: int, seed: int) -> list:
    lo, hi = split_seed(seed)
    return [as_warp(paths.to(torch.int32).contiguous()), int(depth), wp.uint32(lo), wp.uint32(hi)]


def _material_inputs(si, n: int) -> list:
    """``wo, base, roughness, metallic, ior, specular, beckmann, plastic_row, plastic, principled, conductor_row,
    conductor`` of ``si``'s rows,
    as the kernels take them (``specular`` 1, the core glTF coat, where ``si`` has none; ``beckmann`` 1 where
    ``si.beckmann`` marks a point, 0 where it is unset; ``plastic_row`` the row's own index where ``si.plastic``
    marks it plastic, -1 elsewhere, and ``plastic`` those tables, ``[N PLASTIC_TABLE]``, or one float without
    plastic; ``principled`` 1 where ``si.principled`` marks a point; ``conductor_row`` the row's own index where
    ``si.conductor`` marks a conductor, -1 elsewhere, and ``conductor`` its ``eta`` and ``k`` rows, ``[2 N, 3]``, or
    one row without conductors)."""
    dev = si.position.device
    specular = si.specular if si.specular is not None else torch.ones(1, 1, device=dev)
    beckmann = (torch.zeros(n, dtype=torch.int32, device=dev) if si.beckmann is None
                else (si.beckmann.detach() > 0.5).to(torch.int32).expand(n, 1).reshape(n).contiguous())
    principled = (torch.zeros(n, dtype=torch.int32, device=dev) if si.principled is None
                  else (si.principled.detach() > 0.5).to(torch.int32).expand(n, 1).reshape(n).contiguous())
    if si.plastic is None:
        rows, tables = torch.full((n,), -1, dtype=torch.int32, device=dev), torch.zeros(1, device=dev)
    else:  # (the table's last column flags a plastic point)
        marked = (si.plastic.detach()[..., PLASTIC_TABLE - 1] > 0.5).expand(n).reshape(n)
        rows = torch.where(marked, torch.arange(n, dtype=torch.int32, device=dev), -1).to(torch.int32)
        tables = _rows(si.plastic, n, int(PLASTIC_TABLE)).reshape(-1)
    if si.conductor is None:
        c_rows, c_table = torch.full((n,), -1, dtype=torch.int32, device=dev), torch.zeros(1, 3, device=dev)
    else:  # (the last column flags a conductor point)
        marked = (si.conductor.detach()[..., CONDUCTOR_VALUES - 1] > 0.5).expand(n).reshape(n)
        c_rows = torch.where(marked, torch.arange(n, dtype=torch.int32, device=dev), -1).to(torch.int32)
        c_table = _rows(si.conductor, n, CONDUCTOR_VALUES)[:, :6].reshape(2 * n, 3)
    return [as_warp(_rows(si.wo, n, 3), wp.vec3), as_warp(_rows(si.base_color, n, 3), wp.vec3),
            as_warp(_rows(si.roughness, n, 1).reshape(n)), as_warp(_rows(si.metallic, n, 1).reshape(n)),
            as_warp(_rows(si.ior, n, 1).reshape(n)), as_warp(_rows(specular, n, 1).reshape(n)), as_warp(beckmann),
            as_warp(rows.contiguous()), as_warp(tables.contiguous()), as_warp(principled),
            as_warp(c_rows.contiguous()), as_warp(c_table.contiguous(), wp.vec3)]
