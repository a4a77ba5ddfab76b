"""Unidirectional path tracing with next-event estimation and multiple importance sampling, primal and adjoint.

One function, :func:`sample_paths`, runs both passes, as Mitsuba's ``prb_basic`` does: the primal pass
estimates the radiance of each camera ray; the adjoint pass replays the same paths with the same random
numbers and, vertex by vertex, back-propagates the radiance gradient through that vertex's terms only, so its
memory is that of one bounce (O(rays)), whatever the depth (path replay backpropagation, Vicini et al. 2021).

At each vertex ``k`` of a path with throughput ``beta_k`` (detached):

* emission ``Le`` seen by the previous BSDF sample, weighted against light sampling by the power heuristic
  (area lights, the environment); delta lights are never hit;
* next-event estimation of every light (one sample each): ``f(wi) |n.wi| L/pdf`` times the power-heuristic
  weight against BSDF sampling (1 for delta lights), with a shadow ray on the scene's BVH;
* a BSDF sample for the next ray; Russian roulette from ``rr_depth`` on.

The adjoint of a path with radiance ``L`` and adjoint ``v`` accumulates, per vertex,
``v . beta_k (dLe_k + dNEE_k)`` and ``v . L_rest,k d(w_k) / w_k`` with ``w_k = f cos / pdf`` the sampled
BSDF weight and ``L_rest,k`` the radiance the path gathers after vertex ``k`` (``L`` minus what the vertices
up to ``k`` added). Sampling is detached (the sampled directions and the MIS weights are constants), so the
estimate is unbiased for parameters that do not move visibility: materials, textures, emitters, the
environment. Hit points are recomputed from the vertex tensors at every vertex, so gradients w.r.t. geometry
and the camera carry the interior term of each vertex (its own shading, for fixed incoming ray); visibility
discontinuities (silhouettes, shadow edges) need edge sampling, not done here.

Everything is batched over rays in PyTorch; the BVH (:mod:`lumigrad.kernels.bvh`) answers closest-hit and
shadow queries with ids and barycentrics, and what is differentiated is recomputed from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

from ..kernels.bvh import bvh_for
from ..kernels.counter_rng import uniform_counter
from ..shading.transmission import bsdf_for
from ..shading.material import Material, sample_material_unchecked
from ..shading.surface import SurfaceSample
from .intersect import intersect_faces_unchecked, offset_ray_origin

__all__ = ["PathAdjoint", "TraceScene", "power_heuristic", "sample_paths", "surface_at"]

#: The largest number of bounces of a path with ``max_depth = -1`` (Russian roulette ends paths long before).
MAX_BOUNCES = 1024


@dataclass
class TraceScene:
    """The scene as the path tracer sees it: world-space triangles and what each part is made of.

    Attributes:
        verts: ``[V, 3]`` world positions (differentiable); ``faces``: ``[F, 3]`` int64.
        normals: ``[V, 3]`` world shading normals (not necessarily unit), or None for flat shading.
        uv: ``[T, 2]``; ``uv_faces``: ``[F, 3]``.
        face_part: ``[F]`` int64, the part of each face.
        materials: the :class:`Material` of each part; ``double_sided``: per part.
        part_emitters: per part, the light whose triangles the part is (an area light), for the MIS weight of
            its emission when a BSDF sample hits it; None for ordinary (possibly emissive) surfaces.
        lights: every light sampled by next-event estimation (objects with ``is_delta``,
            ``sample_direct(points, u)``, ``eval(points, wi)``, ``pdf(points, wi)``).
        environment: the light rays that leave the scene see (``eval``, ``pdf``), or None.
        transmissive: whether any material transmits (else hits use the opaque BSDF, without the
            transmission lobe's cost).
    """

    verts: torch.Tensor
    faces: torch.Tensor
    normals: Optional[torch.Tensor]
    uv: torch.Tensor
    uv_faces: torch.Tensor
    face_part: torch.Tensor
    materials: List[Material]
    double_sided: List[bool]
    part_emitters: List[object]
    lights: List[object]
    environment: Optional[object] = None
    transmissive: bool = False


def power_heuristic(pdf_a: torch.Tensor, pdf_b: torch.Tensor) -> torch.Tensor:
    """``pdf_a^2 / (pdf_a^2 + pdf_b^2)`` (Veach's power heuristic, beta = 2), 0 where both are 0."""
    a2, b2 = pdf_a * pdf_a, pdf_b * pdf_b
    total = a2 + b2
    return torch.where(total > 0, a2 / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))


class PathAdjoint:
    """The adjoint pass's state: the radiance still to come along each path, its adjoint, the parameters."""

    def __init__(self, v_radiance: torch.Tensor, radiance: torch.Tensor, params: Sequence[torch.Tensor]):
        self.v = v_radiance
        self.rest = radiance.clone()
        self.params = list(params)
        self.grads: List[Optional[torch.Tensor]] = [None] * len(self.params)

    def backprop(self, loss: torch.Tensor) -> None:
        """Accumulate ``d loss / d params`` (the graph of one vertex, freed after)."""
        if not loss.requires_grad:
            return
        # The scene tables (world vertices, normals) and the camera rays are built once per pass and shared
        # by every vertex: keep their graph; each vertex's own graph goes when its tensors do.
        grads = torch.autograd.grad(loss, self.params, allow_unused=True, retain_graph=True)
        for i, g in enumerate(grads):
            if g is not None:
                self.grads[i] = g if self.grads[i] is None else self.grads[i] + g


def sample_paths(ts: TraceScene, origins: torch.Tensor, directions: torch.Tensor, *, max_depth: int, rr_depth: int,
                 seed: int, hide_emitters: bool = False, adjoint: Optional[PathAdjoint] = None,
                 primary: Optional[Callable[[], tuple]] = None, hits: Optional[list] = None) -> torch.Tensor:
    """Radiance ``[R, C]`` arriving along each ray ``origins, directions [R, 3]`` (world space, unit directions).

    Args:
        ts: the :class:`TraceScene`.
        max_depth: longest path, in vertices (Mitsuba's meaning: 1 shows emitters only, 2 direct light, -1 no
            limit but Russian roulette and :data:`MAX_BOUNCES`).
        rr_depth: the depth from which Russian roulette may end paths.
        seed: the random numbers, a non-negative int below 2^64: ray ``r`` draws
            :func:`lumigrad.kernels.counter_rng.uniform_counter` ``(seed, r, depth, dim)`` (the same seed replays
            the same paths, and the fused kernel of :mod:`lumigrad.integrators.fused_paths` draws the same).
        hide_emitters: emitters seen directly by the rays are black (their light still reaches the scene).
        adjoint: run the adjoint pass (see the module docstring) instead of the primal one.
        primary: in the adjoint pass, a function returning ``(origins, directions)`` with their autograd graph
            (the camera's), so the first vertex's interior term reaches the camera.
        hits: a list that receives the ``[R]`` bool "the ray hit a surface" of the given rays (coverage).

    Returns:
        ``[R, C]`` radiance (the primal estimate; in the adjoint pass the same, and ``adjoint.grads`` filled).
    """
    device, dtype = ts.verts.device, ts.verts.dtype
    R = origins.shape[0]
    C = 3
    bvh = bvh_for(ts.verts.detach(), ts.faces)
    n_lights = len(ts.lights)
    dims = 4 + 2 * n_lights  # lobe, direction (2), roulette, then 2 per light
    radiance = torch.zeros(R, C, dtype=dtype, device=device)
    alive = torch.arange(R, device=device)
    beta = torch.ones(R, C, dtype=dtype, device=device)
    o, d = origins.detach(), directions.detach()
    prev_pdf = torch.zeros(R, 1, dtype=dtype, device=device)
    prev_x = o.clone()
    depth_limit = MAX_BOUNCES if max_depth < 0 else max_depth
    for depth in range(depth_limit):
        if alive.numel() == 0:
            break
        # counter-based: ray r's numbers at this depth, whatever else is drawn (the fused kernel's too)
        u = uniform_counter(int(seed), alive, depth, dims, dtype)
        with torch.no_grad():
            face, _, _ = bvh.closest_hit(o, d)
        hit = face >= 0
        if depth == 0 and hits is not None:
            hits.append(hit)
        b = beta.index_select(0, alive)
        contrib = torch.zeros(alive.numel(), C, dtype=dtype, device=device)
        # Rays that leave the scene see the environment.
        if ts.environment is not None and bool((~hit).any()):
            miss = (~hit).nonzero()[:, 0]
            contrib = contrib.index_add(0, miss, _escaped(ts, prev_x, o, d, miss, prev_pdf, depth, hide_emitters,
                                                          b, adjoint, alive))
        rows = hit.nonzero()[:, 0]
        if rows.numel() == 0:
            radiance.index_add_(0, alive, contrib)
            alive = alive[:0]
            continue
        with torch.enable_grad() if adjoint is not None else torch.no_grad():
            ro, rd = (primary() if depth == 0 and primary is not None and adjoint is not None else (o, d))
            ro, rd = ro.index_select(0, rows), rd.index_select(0, rows)
            si, emission, ng, emitter_rows = surface_at(ts, face.index_select(0, rows), ro, rd)
            bsdf = bsdf_for(si)  # with transmission (glass) when a material transmits
            bh = b.index_select(0, rows)
            # Emission seen by the previous bounce (MIS against light sampling for area lights).
            weight_e = _emission_weight(ts, emitter_rows, face.index_select(0, rows), prev_x.index_select(0, rows),
                                        rd.detach(), prev_pdf.index_select(0, rows), depth, dtype)
            if hide_emitters and depth == 0:
                weight_e = torch.zeros_like(weight_e)
            term = bh * emission * weight_e
            if depth + 1 < depth_limit:
                term = term + bh * _next_event(ts, bvh, bsdf, si, ng, u.index_select(0, rows)[:, 4:], dtype)
            if adjoint is not None:
                _backprop_terms(adjoint, alive.index_select(0, rows), term)
            contrib = contrib.index_add(0, rows, term.detach())
            if depth + 1 >= depth_limit:
                radiance.index_add_(0, alive, contrib)
                alive = alive[:0]
                continue
            # The next ray: a BSDF sample (its direction and pdf detached; its weight differentiated in the
            # adjoint pass through the ratio w / detach(w)).
            uh = u.index_select(0, rows)
            with torch.no_grad():
                bs = bsdf.sample(si.map(torch.Tensor.detach), uh[:, 0:1], uh[:, 1:3])
            wi, pdf = bs.wi.detach(), bs.pdf.detach()
            ok = (pdf > 0).all(-1) & (bs.weight.detach() > 0).any(-1)
            delta = bs.is_delta if bs.is_delta is not None else torch.zeros_like(pdf, dtype=torch.bool)
            if adjoint is not None:
                f = bsdf.eval(si, wi) * (si.normal * wi).sum(-1, keepdim=True).abs()
                w = f / torch.where(pdf > 0, pdf, torch.ones_like(pdf))
                ratio = w / torch.where(w.detach() != 0, w.detach(), torch.ones_like(w))
                ratio = torch.where(delta, torch.ones_like(ratio), ratio)  # a delta lobe: no gradient of its weight
                # radiance still to come: subtract what the vertices up to this one added
                _subtract(adjoint, alive.index_select(0, rows), term.detach())
                rest = adjoint.rest.index_select(0, alive.index_select(0, rows))
                v = adjoint.v.index_select(0, alive.index_select(0, rows))
                adjoint.backprop((v * rest * ratio * ok[:, None]).sum())
            x = si.position.detach()
        radiance.index_add_(0, alive, contrib)
        # Throughput and Russian roulette.
        new_beta = bh * bs.weight.detach()
        if depth + 1 >= rr_depth:
            q = new_beta.amax(-1).clamp(max=0.95)
            survive = uh[:, 3] < q
            new_beta = new_beta / torch.where(survive, q, torch.ones_like(q))[:, None]
            ok = ok & survive
        ok = ok & (new_beta > 0).any(-1)
        keep = rows[ok]
        nxt = alive.index_select(0, keep)
        beta.index_copy_(0, nxt, new_beta[ok])
        origin_next = offset_ray_origin(x[ok], ng.detach()[ok], wi[ok])
        prev_x = x[ok]
        prev_pdf = torch.where(delta, -torch.ones_like(pdf), pdf)[ok]  # -1: a delta sample (no MIS)
        o, d = origin_next, wi[ok]
        alive = nxt
    return radiance


def _subtract(adjoint: PathAdjoint, paths: torch.Tensor, amount: torch.Tensor) -> None:
    adjoint.rest.index_add_(0, paths, -amount)


def _backprop_terms(adjoint: PathAdjoint, paths: torch.Tensor, term: torch.Tensor) -> None:
    adjoint.backprop((adjoint.v.index_select(0, paths) * term).sum())


def _escaped(ts, prev_x, o, d, miss, prev_pdf, depth, hide_emitters, beta, adjoint, alive) -> torch.Tensor:
    """Environment radiance along the escaping rays ``miss`` (rows of the live set), MIS-weighted."""
    env = ts.environment
    x, wi = prev_x.index_select(0, miss), d.index_select(0, miss)
    with torch.enable_grad() if adjoint is not None else torch.no_grad():
        le = env.eval(x, wi)
        if depth == 0:
            w = torch.zeros_like(le[..., :1]) if hide_emitters else torch.ones_like(le[..., :1])
        else:
            w = _mis_after_bsdf(prev_pdf.index_select(0, miss), env.pdf(x, wi).detach())
        term = beta.index_select(0, miss) * le * w
        if adjoint is not None:
            _backprop_terms(adjoint, alive.index_select(0, miss), term)
            _subtract(adjoint, alive.index_select(0, miss), term.detach())
    return term.detach()


def surface_at(ts: TraceScene, face: torch.Tensor, o: torch.Tensor, d: torch.Tensor):
    """The surface at the hits ``face`` of rays ``o, d``: ``(SurfaceSample, emission [N, 3], geometric normal,
    emitter part index per row or -1)``; recomputed from the vertex tensors (differentiable)."""
    _, bary = intersect_faces_unchecked(ts.verts, ts.faces, o, d, face)
    corners = ts.faces.index_select(0, face)  # [N, 3]
    v = ts.verts[corners]  # [N, 3, 3]
    position = (bary[..., None] * v).sum(1)
    ng = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    ng = ng / torch.linalg.vector_norm(ng, dim=-1, keepdim=True).clamp_min(1e-30)
    if ts.normals is not None:
        n = (bary[..., None] * ts.normals[corners]).sum(1)
        n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True).clamp_min(1e-30)
    else:
        n = ng
    wo = -d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    uv = (bary[..., None] * ts.uv[ts.uv_faces.index_select(0, face)]).sum(1)
    part = ts.face_part.index_select(0, face)
    # Double-sided parts turn their normals towards the ray; single-sided ones are black from behind.
    double = torch.tensor(ts.double_sided, device=face.device).index_select(0, part)
    back = (ng * wo).sum(-1, keepdim=True) < 0
    flip = back & double[:, None]
    ng = torch.where(flip, -ng, ng)
    n = torch.where(flip, -n, n)
    values = _materials(ts, part, uv)
    front = ~(back & ~double[:, None])
    emission = values.pop("emission") * front
    si = SurfaceSample.from_material(position, n, wo, values, geometric_normal=ng)
    emitter_rows = torch.tensor([-1 if e is None else k for k, e in enumerate(ts.part_emitters)],
                                device=face.device).index_select(0, part)
    return si, emission, ng, emitter_rows


def _materials(ts: TraceScene, part: torch.Tensor, uv: torch.Tensor) -> dict:
    """Material values ``{name: [N, c]}`` of each row's part, sampled at ``uv`` (bilinear)."""
    out: dict = {}
    order, pieces = [], []
    for k in part.unique().tolist():
        rows = (part == k).nonzero()[:, 0]
        m = sample_material_unchecked(ts.materials[k], uv.index_select(0, rows)[None])
        m = {key: val[0].expand(rows.numel(), val.shape[-1]) for key, val in m.items() if key != "normal_tangent"}
        m["ior"] = ts.materials[k].ior.reshape(1, 1).expand(rows.numel(), 1)
        order.append(rows)
        pieces.append(m)
    rows = torch.cat(order)
    for key in pieces[0]:
        stacked = torch.cat([p[key] for p in pieces])
        out[key] = torch.zeros_like(stacked).index_copy(0, rows, stacked)
    for key in ("base_color", "metallic", "roughness"):
        out[key] = out[key].clamp(0, 1)
    if not ts.transmissive:
        out.pop("transmission", None)  # nothing transmits: the opaque model (the same values, faster)
    return out


def _emission_weight(ts, emitter_rows, face, prev_x, d, prev_pdf, depth, dtype) -> torch.Tensor:
    """MIS weight ``[N, 1]`` of the emission a BSDF sample found: 1 for camera rays and ordinary emissive
    surfaces, the power heuristic against the light's own sampling for area lights."""
    w = torch.ones(face.shape[0], 1, dtype=dtype, device=face.device)
    if depth == 0:
        return w
    for k, light in enumerate(ts.part_emitters):
        if light is None:
            continue
        rows = (emitter_rows == k).nonzero()[:, 0]
        if rows.numel() == 0:
            continue
        with torch.no_grad():
            pdf_light = light.pdf(prev_x.index_select(0, rows), d.index_select(0, rows))
        w = w.index_copy(0, rows, _mis_after_bsdf(prev_pdf.index_select(0, rows), pdf_light))
    return w


def _mis_after_bsdf(prev_pdf: torch.Tensor, pdf_light: torch.Tensor) -> torch.Tensor:
    """MIS weight of emission found by a BSDF sample of density ``prev_pdf`` (-1: a delta lobe, weight 1)."""
    return torch.where(prev_pdf < 0, torch.ones_like(prev_pdf), power_heuristic(prev_pdf, pdf_light))


def _next_event(ts, bvh, bsdf, si: SurfaceSample, ng: torch.Tensor, u: torch.Tensor, dtype) -> torch.Tensor:
    """Next-event estimation of every light at ``si``: ``[N, 3]`` (one sample per light, MIS-weighted)."""
    out = torch.zeros(si.position.shape[0], 3, dtype=dtype, device=si.position.device)
    x = si.position
    for j, light in enumerate(ts.lights):
        ds = light.sample_direct(x, u[:, 2 * j:2 * j + 2])
        wi = ds.wi
        cos = (si.normal * wi).sum(-1, keepdim=True)
        # the light on the side the shading normal says (either side for glass: the BSDF is 0 where it must be)
        valid = (ds.pdf > 0) & ((ng * wi).sum(-1, keepdim=True).detach() * cos.detach() > 0)
        with torch.no_grad():
            origin = offset_ray_origin(x.detach(), ng.detach(), wi.detach())
            dist = ds.distance.detach()
            t_max = torch.where(torch.isfinite(dist), dist * (1 - 1e-4), torch.full_like(dist, math.inf))
            blocked = bvh.occluded(origin, wi.detach(), t_max)
        f = bsdf.eval(si, wi)
        if ds.is_delta:
            w = torch.ones_like(cos)
        else:
            with torch.no_grad():
                w = power_heuristic(ds.pdf, bsdf.pdf(si.map(torch.Tensor.detach), wi.detach()))
        term = f * cos.abs() * ds.weight * w
        out = out + torch.where(valid & ~blocked[:, None], term, torch.zeros_like(term))
    return out
