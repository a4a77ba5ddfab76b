"""Shadow edges beyond the first hit: the boundary term of direct light's visibility at camera-path vertices
``k >= 2``, by connecting shadow-edge samples to the vertices of camera paths.

:mod:`lumigrad.raytrace.shadow_edges` gives the boundary term of the shadows the camera sees on the first
surface each camera ray hits: the camera is the "connection" that sees the receiver ``x*`` beyond an
occluder's silhouette edge. A shadow seen in a glossy reflection, or one that changes the light a surface
bounces onward, lies at a later vertex ``x_k`` of a path, and the path replay
(:mod:`lumigrad.raytrace.transport`) differentiates that vertex for a FIXED incoming ray (its origin
``x_{k-1}`` and direction detached): its interior term lives in the space of directions ``w`` at ``x_{k-1}``.
The matching boundary term, for the direct light at ``x_k``, is an integral over the shadow curves in that
space (the directions from ``x_{k-1}`` whose ray ends on a shadow's outline):

    sum over camera-path vertices x_{k-1}  of  beta_{k-1} int_light dA(y) int_{C_y} (g_minus - g_plus)
        (n_w . d w*/d theta) dl_w

    g(w) = f_{k-1}(wo, w) |n_{k-1} . w|  f_x(-w, y) |n_x . w_y| G(x, y) L_e(y) V(x, y) / pdf(y),  x = x_k(w)

with ``beta_{k-1}`` the path's throughput (and adjoint) arriving at ``x_{k-1}``, ``w*(theta) = normalize(x*(theta)
- x_{k-1})`` (``x_{k-1}`` detached), ``n_w`` the unit normal of the curve on the sphere of directions and
``dl_w = |d w*/dt| dt`` along the edge parameter ``t``. The light side of a sample (``y``, the edge point ``e``,
the receiver ``x*``; :func:`~lumigrad.raytrace.shadow_edges.sample_shadow_edge_sources`) does not depend on
``x_{k-1}``, so each is connected to vertices drawn from a **pool**: the vertices ``x_1 ... x_{D-2}`` (``D`` the
longest path in vertices) of one camera path per pixel with a non-zero image adjoint, traced here by BSDF sampling
(their own random numbers: an independent estimate of the paths' part of the integral, unbiased). Each sample
draws :data:`CANDIDATES` pool vertices with probability ``p_i`` proportional to ``sum_c |v . beta_i|`` (``v`` the
pixel's adjoint) and keeps :data:`CONNECTIONS` of them by resampled importance sampling on
``p_hat_i = sum_c |v . beta_i f_{k-1} |cos||`` towards its ``x*`` (weights ``r_i = p_hat_i / p_i``; a kept vertex
counts ``1 / p_hat_i * sum_j r_j / (CANDIDATES * CONNECTIONS)``): the sum over the pool is estimated without bias,
as ``p_hat`` is positive wherever a vertex contributes.

A connection ``(sample, x_{k-1})`` is evaluated as :func:`~lumigrad.raytrace.shadow_edges.shadow_edge_jumps`
evaluates the camera's: rays from ``x_{k-1}`` through ``w* -+ eps n_w`` (:data:`EPS` radians), the direct light
from the sample's own ``y`` at their first hits with a shadow ray each
(:func:`~lumigrad.raytrace.shadow_edges.direct_light_jumps`); the jump is 0 unless the ray through ``w*`` first
hits ``x*`` and both sides hit at its depth. The surrogate
``sum detach(v . beta_i f_{k-1} |cos| (g_minus - g_plus) c_i w_s) (n_w . w*(theta))`` with ``c_i`` the
resampling factor above and ``w_s = |d w*/dt| / (length_edge * pdf_length * pdf(y) * samples(y))`` is
differentiated; ``d w*/dt`` is the forward-mode derivative of the detached chain (float64).

Scope and what is left out: the connecting vertex needs a lobe that is not a Dirac delta; the path tracer's
only one, an index-matched transmitting boundary's straight pass-through (``ior`` 1), evaluates to 0 and so
connects nothing (a shadow seen through it gets no boundary term); smooth surfaces are clamped to a least
roughness (``ALPHA_MIN``), so a near-mirror connects, with a high variance. Scenes where a path can be in
a participating medium (a transmitting material's ``interior`` or ``exterior``, or the scene's medium ``ts.medium``
around everything: :func:`~lumigrad.raytrace.volumetric.traced_media`) get no term beyond the first hit: the
pool is empty (it traces no free flights, and its connections would carry no ``Tr``). Only the direct light's visibility at ``x_k`` is covered here: a silhouette seen by a BSDF-sampled ray from
``x_{k-1}`` (the "primary visibility" of later vertices) is :mod:`lumigrad.raytrace.silhouette_connections`'s
(opt-in). The variance is high
where the connecting BSDF is narrow (a rough mirror connects few pool vertices to a given shadow point): this
first version is unbiased, not efficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..cameras.pixel_filter import PixelFilter, sample_in_pixels
from ..shading.transmission import bsdf_for
from .intersect import offset_ray_origin_unchecked
from .shadow_edges import (ShadowEdgeSources, direct_light_jumps, receiver_chain, receiver_points,
                           select_samples)
from .transport import MAX_BOUNCES, TraceScene, surface_at
from .volumetric import traced_media

__all__ = ["CANDIDATES", "CONNECTIONS", "EPS", "PathVertices", "camera_path_vertices", "connected_shadow_edges",
           "draw_indices"]

#: Pool vertices each shadow-edge sample is connected to.
CONNECTIONS = 4

#: Pool vertices drawn per shadow-edge sample (by the luminance of their weights), among which the
#: :data:`CONNECTIONS` are resampled by their BSDF towards the sample's receiver.
CANDIDATES = 32

#: Shadow-edge samples connected at once (each draws :data:`CANDIDATES` pool vertices: memory stays bounded).
CHUNK_SAMPLES = 4096

#: Radians either side of a shadow curve, on the sphere of directions at the connecting vertex, where the jump
#: is evaluated (about the angle 5e-3 pixels of the camera's term subtend in a 24-pixel, 0.8-radian view).
EPS = 2e-4


@dataclass
class PathVertices:
    """The pool: surface vertices ``x_1 ... x_{D-2}`` of camera paths (detached).

    Attributes:
        face: ``[P]`` int64, the triangle each vertex lies on.
        origins, directions: ``[P, 3]``, the ray that found it (recomputes the vertex with :func:`surface_at`).
        weights: ``[P, C]``, the pixel's image adjoint times the path's throughput arriving at the vertex (BSDF
            weights ``f |cos| / pdf`` and Russian roulette's ``1 / q`` of the earlier vertices).
    """

    face: torch.Tensor
    origins: torch.Tensor
    directions: torch.Tensor
    weights: torch.Tensor

    def __len__(self) -> int:
        return self.face.shape[0]


def camera_path_vertices(ts: TraceScene, rays_through: Callable, v_image: torch.Tensor, max_depth: int,
                         rr_depth: int, generator: torch.Generator,
                         pixel_filter: Optional[PixelFilter] = None) -> PathVertices:
    """One camera path per pixel whose adjoint ``v_image [H, W, C]`` is not zero, traced by BSDF sampling
    (``generator``'s numbers), and its vertices that can connect to a shadow edge at the next vertex: ``x_1`` to
    ``x_{max_depth - 2}`` (``max_depth`` in vertices as the path tracer counts them; -1: until Russian roulette,
    from ``rr_depth`` on, ends the path). ``rays_through(uv [N, 2])`` gives the camera's world rays; the ray
    leaves from a point drawn by the film's ``pixel_filter`` (None: the box, uniform in the pixel), its filter
    weight multiplying the pixel's adjoint. Detached."""
    device, dtype = ts.verts.device, ts.verts.dtype
    C = v_image.shape[-1]
    last = (MAX_BOUNCES if max_depth < 0 else max_depth) - 2  # the deepest vertex that connects
    empty = PathVertices(torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, 3, dtype=dtype, device=device),
                         torch.zeros(0, 3, dtype=dtype, device=device), torch.zeros(0, C, dtype=dtype, device=device))
    with torch.no_grad():
        pixel = (v_image != 0).any(-1).nonzero()
        if last < 1 or pixel.shape[0] == 0 or traced_media(ts.materials, ts.medium, ts.transmissive) is not None:
            return empty
        u = torch.rand(pixel.shape[0], 2, generator=generator, device=device, dtype=dtype)
        pixel_filter = pixel_filter or PixelFilter()
        uv, weight = sample_in_pixels(pixel_filter, pixel[:, 0], pixel[:, 1], v_image.shape[0], v_image.shape[1], u)
        o, d = rays_through(uv)
        o, d = o.detach().to(dtype), d.detach().to(dtype)
        v = v_image[pixel[:, 0], pixel[:, 1]].to(dtype)
        if not pixel_filter.is_box:
            v = v * weight[:, None]
        beta = torch.ones_like(v)
        bvh = ts.bvh()
        parts = []
        for depth in range(1, last + 1):
            face, _, _ = bvh.closest_hit(o, d)
            rows = (face >= 0).nonzero()[:, 0]
            if rows.numel() == 0:
                break
            face, o, d, v, beta = face[rows], o[rows], d[rows], v[rows], beta[rows]
            parts.append((face, o, d, v * beta))
            if depth == last:
                break
            si, _, ng, _ = surface_at(ts, face, o, d)
            u = torch.rand(rows.shape[0], 4, generator=generator, device=device, dtype=dtype)
            bs = bsdf_for(si).sample(si, u[:, 0:1], u[:, 1:3])
            beta = beta * bs.weight
            ok = (bs.pdf > 0).all(-1) & (bs.weight > 0).any(-1)
            if depth >= rr_depth:  # Russian roulette, as the path tracer's
                q = beta.amax(-1).clamp(max=0.95)
                survive = u[:, 3] < q
                beta = beta / torch.where(survive, q, torch.ones_like(q))[:, None]
                ok &= survive
            keep = ok.nonzero()[:, 0]
            if keep.numel() == 0:
                break
            o = offset_ray_origin_unchecked(si.position[keep], ng[keep], bs.wi[keep])
            d, v, beta = bs.wi[keep], v[keep], beta[keep]
        if not parts:
            return empty
        return PathVertices(*(torch.cat(z) for z in zip(*parts)))


def connected_shadow_edges(ts: TraceScene, sources: ShadowEdgeSources, pool: PathVertices,
                           generator: torch.Generator, connections: int = CONNECTIONS, candidates: int = CANDIDATES,
                           eps: float = EPS) -> Optional[torch.Tensor]:
    """The surrogate of the boundary term beyond the first hit (module docstring): a scalar whose gradient is
    the term (w.r.t. the occluders' and receivers' vertices and the lights, through ``x*``), or None when no
    connection contributes. ``sources``: the shadow-edge samples' light side; ``pool``: the vertices they connect
    to; ``generator``: the choice of vertices."""
    weight_of = pool.weights.abs().sum(-1)
    total = weight_of.sum()
    if len(pool) == 0 or len(sources) == 0 or not bool(total > 0):
        return None
    with torch.no_grad():
        si_pool, _, ng_pool, _ = surface_at(ts, pool.face, pool.origins, pool.directions)
        prob = weight_of / total
    out = []
    for piece in sources.pieces:
        n = piece["edge"].shape[0]
        for start in range(0, n, CHUNK_SAMPLES):  # bounded memory: CANDIDATES rows per sample
            rows = torch.arange(start, min(n, start + CHUNK_SAMPLES), device=prob.device)
            term = _connect(ts, sources, select_samples(piece, rows), si_pool, ng_pool, pool.weights, prob, generator,
                            connections, candidates, eps)
            if term is not None:
                out.append(term)
    return torch.stack(out).sum() if out else None


def _connect(ts, sources, piece, si_pool, ng_pool, weights, prob, generator, connections, candidates, eps):
    """The surrogate of the connections of one light's samples ``piece`` (or None)."""
    dtype, f64 = ts.verts.dtype, torch.float64
    with torch.no_grad():
        s, i, gather = _choose_vertices(piece["x_star"], si_pool, weights, prob, candidates, connections, generator)
        if s.numel() == 0:
            return None
        x_prev = si_pool.position.index_select(0, i)
        ng = ng_pool.index_select(0, i)
        # d w*/dt along the detached chain (float64), the curve's normal on the sphere of directions
        samples = select_samples(piece, s)  # (repeated as they connect)
        chain = receiver_chain(ts, sources, samples)
        x64 = x_prev.to(f64)

        def direction(tt):
            r = chain(tt) - x64
            return r / r.norm(dim=-1, keepdim=True)

        w64, dw = torch.func.jvp(direction, (samples["t"].to(f64),),
                                 (torch.ones(s.shape[0], dtype=f64, device=s.device),))
        speed = dw.norm(dim=-1)
        normal = torch.linalg.cross(w64, dw)
        normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        good = (torch.isfinite(speed) & (speed > 1e-12)).nonzero()[:, 0]
        if good.numel() == 0:
            return None
        samples, x_prev, gather, ng = select_samples(samples, good), x_prev[good], gather[good], ng[good]
        speed, normal, w64 = speed[good], normal[good], w64[good]
        # the jump, as the camera's: both sides from x_{k-1}, the centre ray must find x*
        rays = []
        for side in (0.0, -1.0, 1.0):
            dd = w64 + side * eps * normal
            dd = (dd / dd.norm(dim=-1, keepdim=True)).to(dtype)
            rays.append((offset_ray_origin_unchecked(x_prev, ng, dd), dd))
        _, y, n_y, le = receiver_points(ts, sources, samples)
        edge = samples["edge"]
        fields = _LightRows(torch.full_like(edge, piece["light"]), y.detach(), n_y.detach(), le.detach())
        jump = direct_light_jumps(ts, fields, samples["x_star"], rays[0], rays[1:])
        verts = ts.verts.detach()
        length = (verts[sources.b[edge]] - verts[sources.a[edge]]).norm(dim=-1)
        inv_pdf = speed.to(dtype) / length * samples["inv"]
        weight = (gather * jump).sum(-1) * inv_pdf
        use = (weight != 0).nonzero()[:, 0]
    if use.numel() == 0:
        return None
    x_diff = receiver_points(ts, sources, select_samples(samples, use))[0]
    w_diff = x_diff - x_prev[use]
    w_diff = w_diff / w_diff.norm(dim=-1, keepdim=True)
    return (weight[use] * (normal[use].to(dtype) * w_diff).sum(-1)).sum()


def draw_indices(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``[count]`` int64 indices drawn with replacement with probability proportional to ``weights [M]`` (>= 0, not
    all 0), by the inverse of the cumulative distribution: ``torch.multinomial`` refuses more than 2^24
    categories, and a pool of 2k x 2k pixels times a few depths has more."""
    cdf = weights.cumsum(0)
    u = torch.rand(count, dtype=cdf.dtype, device=cdf.device, generator=generator) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_max(weights.shape[0] - 1)


def _choose_vertices(x_star, si_pool, weights, prob, candidates, connections, generator):
    """Resampled importance sampling of the pool vertices each sample connects to: ``candidates`` drawn with
    ``prob``, ``connections`` of them kept with probability proportional to ``r_j = p_hat_j / prob_j``,
    ``p_hat = sum_c |weights . f |cos||`` towards ``x*`` (visibility and the jump unknown). Returns the rows
    ``(s, i)`` of the connections (sample, vertex) and each one's factor ``weights_i f_i |cos_i| / p_hat_i
    * sum_j r_j / (candidates * connections)`` ``[N, C]``: its contribution is that times the jump, and the sum
    over connections estimates the sum over the pool without bias (p_hat is positive wherever a vertex
    contributes)."""
    n = x_star.shape[0]
    s = torch.arange(n, device=prob.device).repeat_interleave(candidates)
    i = draw_indices(prob, n * candidates, generator)
    si = si_pool.map(lambda z: z.index_select(0, i))
    to_x = x_star.index_select(0, s) - si.position
    dist = to_x.norm(dim=-1, keepdim=True)
    w = to_x / dist.clamp_min(1e-30)
    f = bsdf_for(si).eval(si, w) * (si.normal * w).sum(-1, keepdim=True).abs() * (dist > 0)
    value = weights.index_select(0, i) * f  # [n * candidates, C]
    p_hat = value.abs().sum(-1)
    r = (p_hat / prob.index_select(0, i)).reshape(n, candidates)
    total = r.sum(-1)
    rows = (total > 0).nonzero()[:, 0]
    if rows.numel() == 0:
        return s[:0], i[:0], value[:0]
    pick = torch.multinomial(r[rows], connections, replacement=True, generator=generator)  # [rows, connections]
    flat = (rows[:, None] * candidates + pick).reshape(-1)
    scale = (total[rows] / (candidates * connections)).repeat_interleave(connections)
    factor = value.index_select(0, flat) / p_hat.index_select(0, flat)[:, None] * scale[:, None]
    return s.index_select(0, flat), i.index_select(0, flat), factor


@dataclass
class _LightRows:
    """Each connection's light sample, as :func:`direct_light_jumps` reads it."""

    lights: torch.Tensor
    light_points: torch.Tensor
    light_normals: torch.Tensor
    light_radiance: torch.Tensor


#: The entries of a piece of :class:`ShadowEdgeSources` with one row per sample (the others: per light sample).
