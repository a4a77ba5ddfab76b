"""Shadow-edge sampling (secondary visibility): the boundary term of direct light's derivative where shadows move.

The direct light a pixel sees is ``I = int_pixel int_light h(x(q), y) V(x(q), y) dA(y) dq``: ``q`` runs over
the pixel (pixel units, area 1), ``x(q)`` is the surface the camera ray through ``q`` hits first, ``y`` a point
of the light and ``V`` the visibility between them. The light is parameterised so that a sample moves with it:
an area light by area, ``y = v0 + b1 (v1 - v0) + b2 (v2 - v0)`` on a triangle chosen by area with fixed
barycentrics (``pdf(y) = 1 / A``); a point or spot light is its position (one "sample", ``h`` its intensity
over ``d^2``); a directional light a fixed direction ``D`` (rays ``y -> e`` become ``e - s D``); an environment
light by direction ``w`` (its own importance sampling, ``h`` its radiance ``L(w) / pdf(w)``): each sampled
direction is a directional light.

For a fixed ``y``, ``V(x(q), y)`` jumps along curves of the image plane: the shadows, cast from ``y`` onto
the first-hit surfaces, of the occluders' silhouette edges as seen from ``y`` (an edge between a face turned
towards ``y`` and one turned away, or a boundary edge). Moving a parameter ``theta`` moves those curves, so

    d I / d theta (boundary) = int_light dA(y) int_{shadow curves C_y} (f_minus - f_plus) (n . d q*/d theta) dl

with ``q*`` a point of the curve, ``n`` its image-plane normal and ``f_minus`` / ``f_plus`` the integrand
``h V`` just behind / ahead of it along ``n``. A point of the curve is the image of an edge point
``e(t) = a + t (b - a)``: the ray from ``y`` through ``e`` goes on to the receiver ``x*`` (the closest surface
beyond the edge), which projects to ``q*``; ``dl = |d q*/dt| dt``. The estimator (redner's secondary edge
sampling, Li et al. 2018, specialised to the first camera hit):

1. draw light samples ``y`` (area lights: :data:`AREA_LIGHT_SAMPLES` stratified points by area; environment
   lights: :data:`ENVIRONMENT_LIGHT_SAMPLES` directions by the map's luminance, Latin-hypercube stratified);
2. for each, find the occluders' silhouette edges seen from ``y`` and draw points on them, stratified by world
   length (``pdf = 1 / total length`` per unit length);
3. trace ``y -> e`` (the sample is dropped if it is blocked: that edge casts no shadow there) and on past ``e``
   to the receiver ``x*`` (dropped on a miss);
4. project ``x*`` to ``q*`` (dropped outside the image or behind the near plane; a sample whose camera ray
   through ``q*`` first hits something other than ``x*``, a hidden receiver, gets a zero jump in step 5);
5. the caller evaluates ``f`` at ``q* -+ eps n`` with camera rays and shadow rays towards that same ``y``
   (:func:`shadow_edge_jumps`: the jump, with the light's full integrand, no MIS); both sides must see the
   receiver, or the jump is zero: where a shadow curve runs along a silhouette of the view (a light at the
   eye hides each shadow right behind its occluder) the jump is primary visibility's, counted by
   :mod:`lumigrad.raytrace.edges`;
6. the surrogate ``sum_s detach(v(q*) . (f_minus - f_plus) w_s) (n_s . q*_s(theta))`` with
   ``w_s = |d q*/dt| / (length_edge * pdf_length * pdf(y) * samples(y))`` differentiated, where ``q*(theta)``
   is recomputed from the edge's vertices, the light sample, the receiver triangle (a ray-plane intersection)
   and the camera, so gradients reach occluders, lights, receivers and the camera pose.

``d q*/dt`` is the forward-mode derivative of that same chain (``torch.func.jvp``, float64, detached).

Scope: this module's connection is the camera: shadows seen directly, on the first surface each camera ray
hits. Steps 1-3 do not depend on who sees the receiver (:func:`sample_shadow_edge_sources`), so the same samples
are also connected to the vertices of camera paths, for the shadows seen beyond the first hit (in a glossy
reflection, or changing the light a surface bounces onward): :mod:`lumigrad.raytrace.shadow_edge_connections`,
which evaluates its jumps with :func:`direct_light_jumps` as step 5 does (delta lobes and scenes with media are
left out there).

Media: in a scene where a path can be in a participating medium (the scene's ``Scene.medium`` around the
camera, a transmitting material's ``interior`` or ``exterior``; :func:`~lumigrad.raytrace.volumetric.traced_media`)
step 5's integrand is the primal's next-event one: times ``Tr`` of the camera ray (in the scene's medium) up to
the receiver and ``Tr`` of the shadow ray on to ``y`` (:class:`~lumigrad.raytrace.volumetric.ShadowMedia`; a
light at infinity through the scene's unbounded medium: ``Tr = 0``, no jump). In a pure absorber
(``sigma_s = 0``) that is the whole integrand, and this term the whole visibility derivative of a surface's
shadow. With scattering (``sigma_s > 0``) the light scattered in the medium has shadow boundaries of its own (in
the volume, along the camera rays): that term is left out. A receiver inside a bounded medium (a fog-filled
glass) is hidden behind its boundary, the camera's first hit, so it gets no jump. An environment's directions are fixed (it is at
infinity): the boundary term moves with occluders, receivers and the camera, the map's own gradient is the
interior term's. For area lights the boundary term uses the full integrand of the area parameterisation, and
so does the interior term: the path tracer's adjoint pass differentiates area lights' direct light by
next-event samples at full weight whose points move with the lamp at fixed barycentrics
(:mod:`lumigrad.raytrace.area_next_event`, whose ``area_choice`` / ``area_points`` this module uses), not the
primal's solid-angle samples and BSDF hits, so both terms belong to one parameterisation of the lamp (``tests/raytrace/test_shadow_edges.py``: a lamp of 0.69 sr
against central differences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

from ..cameras.projection import project_points, transform_points
from .edges import lens_map
from ..raster.topology import WeldedEdges, welded_edges, welded_positions
from ..shading.delta_specular import without_dirac_lobes
from ..shading.transmission import bsdf_for
from .area_next_event import area_choice, area_points
from .intersect import offset_ray_origin_unchecked
from .transport import TraceScene, surface_at
from .volumetric import ShadowMedia, outward_face_normals, shadow_transmittance, traced_media

__all__ = ["AREA_LIGHT_SAMPLES", "ENVIRONMENT_LIGHT_SAMPLES", "ShadowEdgeSamples", "ShadowEdgeSources",
           "direct_light_jumps", "edge_table", "receiver_chain", "receiver_points", "sample_shadow_edge_sources", "select_samples",
           "sample_shadow_edges", "shadow_edge_jumps", "shadow_edges_seen_by"]

#: Points drawn on each area light per view (each with its own silhouette and share of the edge samples).
AREA_LIGHT_SAMPLES = 8

#: Directions drawn from an environment light per view (each a directional light with its own silhouette).
ENVIRONMENT_LIGHT_SAMPLES = 64


@dataclass
class ShadowEdgeSamples:
    """Points on the shadow curves of one view (see the module docstring).

    Attributes:
        points: ``[S, 2]`` pixel coordinates ``q*`` (differentiable w.r.t. the occluders' and receivers'
            vertices, the lights and the camera).
        normals: ``[S, 2]`` unit image-plane normals of the curves (detached).
        inv_pdf: ``[S]`` the reciprocal density of the samples per unit curve length in pixels, light sampling
            included (detached).
        receivers: ``[S, 3]`` the receiver points ``x*`` (detached).
        lights: ``[S]`` int64, the index of each sample's light in ``ts.lights``.
        light_points: ``[S, 3]`` the light sample ``y`` (area lights; the position of point and spot lights;
            the unit direction ``w`` towards an environment; unused for directional lights), detached.
        light_normals: ``[S, 3]`` the area light's unit front normal at ``y`` (zeros for other lights).
        light_radiance: ``[S, C]`` the area light's radiance at ``y`` times its area, ``L_e / pdf(y)``; an
            environment's ``L(w) / pdf(w)`` (zeros for other lights).
    """

    points: torch.Tensor
    normals: torch.Tensor
    inv_pdf: torch.Tensor
    receivers: torch.Tensor
    lights: torch.Tensor
    light_points: torch.Tensor
    light_normals: torch.Tensor
    light_radiance: torch.Tensor

    def __len__(self) -> int:
        return self.points.shape[0]


@dataclass
class ShadowEdgeSources:
    """The light side of shadow-edge samples (steps 1-3 of the module docstring), shared by every connection
    that sees them: the camera (:func:`shadow_edges_seen_by`) and the vertices of camera paths
    (:mod:`lumigrad.raytrace.shadow_edge_connections`).

    Attributes:
        a, b: ``[E]`` int64, the end vertices of every edge of the scene (``edge`` indexes them).
        pieces: one dict per light that casts shadow edges, its samples' detached tensors: ``light`` (index in
            ``ts.lights``), ``kind`` (:func:`light_kind`), ``edge`` ``[N]``, ``t`` ``[N]`` (along the edge),
            ``row`` ``[N]`` (the light sample), ``inv`` ``[N]`` (the reciprocal density per unit world length of
            the edge, light sampling included), ``face`` ``[N]`` and ``x_star`` ``[N, 3]`` (the receiver), ``d``
            ``[N, 3]`` (the direction ``y -> e``), and the light samples (``y``, ``n_y``, ``le``, ``D``, ``tri``,
            ``bary``, ``prob`` as the kind has them, indexed by ``row``).
    """

    a: torch.Tensor
    b: torch.Tensor
    pieces: List[dict]

    def __len__(self) -> int:
        return sum(int(p["edge"].numel()) for p in self.pieces)


def light_kind(light) -> Optional[str]:
    """How a light casts sharp-edged shadows: ``"point"`` (point and spot lights), ``"directional"``,
    ``"area"`` (emissive triangles), ``"environment"`` (a map at infinity, sampled by direction), or None
    (other lights: no shadow edges sampled)."""
    if getattr(light, "is_delta", False):
        if hasattr(light, "position"):
            return "point"
        if hasattr(light, "direction"):
            return "directional"
        return None
    if hasattr(light, "verts") and hasattr(light, "faces") and hasattr(light, "radiance"):
        return "area"
    if hasattr(light, "texels") and hasattr(light, "sample_direct"):
        return "environment"
    return None


def sample_shadow_edges(ts: TraceScene, K: torch.Tensor, world_to_cam: torch.Tensor, near: float, width: int,
                        height: int, num_samples: int, generator: torch.Generator, *, orthographic: bool = False,
                        area_light_samples: int = AREA_LIGHT_SAMPLES,
                        environment_samples: int = ENVIRONMENT_LIGHT_SAMPLES,
                        distortion: Optional[torch.Tensor] = None, distortion_model: str = "opencv"
                        ) -> ShadowEdgeSamples:
    """Points on the shadow curves that the lights of ``ts`` cast onto the surfaces seen by one camera.

    Args:
        ts: the scene (world triangles, lights).
        K: ``[3, 3]`` intrinsics; world_to_cam: ``[4, 4]`` (one view; differentiable).
        near: the camera's near plane (receivers closer are dropped).
        width, height: the image size in pixels.
        num_samples: edge points to draw in all, split evenly between the lights that cast shadow edges and,
            for area lights, between their ``area_light_samples`` light points (environment lights: their
            ``environment_samples`` directions).
        generator: the random numbers (light points and edge points).
        orthographic: the camera projects orthographically.

    Returns:
        :class:`ShadowEdgeSamples`, the samples that survived steps 1-4 of the module docstring (the hidden
        receiver test is :func:`shadow_edge_jumps`'). Unchecked (the integrator validated the scene). The same as
        :func:`shadow_edges_seen_by` of :func:`sample_shadow_edge_sources`.

    **Differentiability:** ``points`` carries the graph of ``ts.verts``, the lights' positions, directions
    and vertices, ``K`` and ``world_to_cam``; everything else is detached.
    """
    sources = sample_shadow_edge_sources(ts, num_samples, generator, area_light_samples=area_light_samples,
                                         environment_samples=environment_samples)
    return shadow_edges_seen_by(ts, sources, K, world_to_cam, near, width, height, orthographic=orthographic,
                                distortion=distortion, distortion_model=distortion_model)


def sample_shadow_edge_sources(ts: TraceScene, num_samples: int, generator: torch.Generator, *,
                               area_light_samples: int = AREA_LIGHT_SAMPLES,
                               environment_samples: int = ENVIRONMENT_LIGHT_SAMPLES) -> ShadowEdgeSources:
    """Steps 1-3 of the module docstring, which do not depend on who sees the shadow: light samples ``y``, edge
    points ``e`` on the silhouettes seen from them and the receivers ``x*`` beyond (arguments as
    :func:`sample_shadow_edges`). Detached; :func:`receiver_points` gives ``x*`` with its graph."""
    device, dtype = ts.verts.device, ts.verts.dtype
    casters = [(j, light, light_kind(light)) for j, light in enumerate(ts.lights)]
    casters = [c for c in casters if c[2] is not None]
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if not casters or num_samples <= 0 or ts.faces.shape[0] == 0:
        return ShadowEdgeSources(empty, empty, [])
    per_light = max(1, num_samples // len(casters))
    verts = ts.verts.detach()
    with torch.no_grad():
        a, b, own, other, _ = edge_table(ts.verts, ts.faces)
        f = ts.faces.long()
        corner0 = verts[f[:, 0]]
        face_normal = torch.linalg.cross(verts[f[:, 1]] - corner0, verts[f[:, 2]] - corner0)
        edge_length = (verts[b] - verts[a]).norm(dim=-1)
        scale = float((verts.amax(0) - verts.amin(0)).norm()) or 1.0
        bvh = ts.bvh(verts)
    pieces: List[dict] = []
    for j, light, kind in casters:
        with torch.no_grad():
            light_faces = _faces_of(ts, light)
            usable = ~(light_faces[own] | (light_faces[other.clamp_min(0)] & (other >= 0)))
            if kind == "area":
                J = max(1, min(area_light_samples, per_light))
                u = torch.rand(J, 2, generator=generator, device=device, dtype=dtype)
                u[:, 0] = (torch.arange(J, device=device, dtype=dtype) + u[:, 0]) / J  # stratified
                tri_index, bary, prob = area_choice(light, u)
                y, n_y, le_over_pdf = area_points(light, tri_index, bary, prob)
                y, n_y, le_over_pdf = y.detach(), n_y.detach(), le_over_pdf.detach()
            elif kind == "point":
                J = 1
                y = light.position.detach().reshape(1, 3).to(dtype)
            elif kind == "environment":
                J = max(1, min(environment_samples, per_light))
                D, le_over_pdf = _environment_directions(light, J, generator, dtype)
            else:
                J = 1
                D = light.direction.detach().reshape(1, 3).to(dtype)
                D = D / D.norm(dim=-1, keepdim=True)
            n_each = max(1, per_light // J)
            jitter = torch.rand(J, n_each, generator=generator, device=device, dtype=dtype)
            source = y if kind in ("area", "point") else D
            edge, t, row, inv = _silhouette_points(kind, source, jitter, corner0, face_normal, own, other, usable,
                                                   edge_length)
            piece = dict(edge=edge, t=t, row=row, inv=inv / J, light=j, kind=kind, J=J)
            if kind == "area":
                piece.update(tri=tri_index, bary=bary, prob=prob, y=y, n_y=n_y, le=le_over_pdf)
            elif kind == "point":
                piece.update(y=y)
            elif kind == "environment":
                piece.update(D=D, le=le_over_pdf)
            else:
                piece.update(D=D)
        pieces.append(piece)
    traced = [_receivers(ts, piece, ts.lights[piece["light"]], a, b, bvh, scale) for piece in pieces]
    return ShadowEdgeSources(a, b, [p for p in traced if p is not None])


def shadow_edges_seen_by(ts: TraceScene, sources: ShadowEdgeSources, K: torch.Tensor, world_to_cam: torch.Tensor,
                         near: float, width: int, height: int, *, orthographic: bool = False,
                         distortion: Optional[torch.Tensor] = None, distortion_model: str = "opencv"
                         ) -> ShadowEdgeSamples:
    """Step 4 of the module docstring for one camera: the ``sources`` whose receivers it sees in its image, as
    points on the image's shadow curves (arguments and result as :func:`sample_shadow_edges`)."""
    device, dtype = ts.verts.device, ts.verts.dtype
    lens = None if distortion is None or orthographic else (distortion.to(dtype), distortion_model)
    out = [_project_piece(ts, sources, piece, K, world_to_cam, near, width, height, orthographic, lens)
           for piece in sources.pieces]
    out = [o for o in out if o is not None and len(o)]
    if not out:
        return _empty(device, dtype)
    return ShadowEdgeSamples(*(torch.cat([getattr(o, name) for o in out]) for name in
                               ("points", "normals", "inv_pdf", "receivers", "lights", "light_points",
                                "light_normals", "light_radiance")))


def shadow_edge_jumps(ts: TraceScene, samples: ShadowEdgeSamples, rays_through: Callable, eps: float = 5e-3
                      ) -> torch.Tensor:
    """``f(q* - eps n) - f(q* + eps n)`` ``[S, C]`` for each sample: the direct light from the sample's own light
    point (divided by its density), with visibility, at the first hit of the camera rays on either side of the
    shadow curve (``eps`` pixels away); 0 where the camera's first hit through ``q*`` is not the receiver ``x*``
    (a hidden receiver: its shadow is not seen) or where a side's first hit is not at the receiver's depth (the
    shadow curve runs along a silhouette of the view). ``rays_through(uv [S, 2])`` gives the camera's world rays
    ``(o, d)``. Detached."""
    with torch.no_grad():
        q, n = samples.points.detach(), samples.normals
        centre = rays_through(q)
        sides = [rays_through(q + side * eps * n) for side in (-1.0, 1.0)]
        return direct_light_jumps(ts, samples, samples.receivers, centre, sides)


def direct_light_jumps(ts: TraceScene, lights, receivers: torch.Tensor, centre, sides) -> torch.Tensor:
    """``f(side 0) - f(side 1)`` ``[S, C]``: the direct light from each sample's own light point (``lights``: an
    object with the ``lights``, ``light_points``, ``light_normals`` and ``light_radiance`` of
    :class:`ShadowEdgeSamples`, one row per sample) reaching the first hits of the rays ``sides`` (two ``(o, d)``
    pairs of ``[S, 3]``, either side of a shadow curve), 0 where the ray ``centre`` ``(o, d)`` does not first
    hit the receiver ``receivers [S, 3]`` or a side's first hit is not at the receiver's depth. The rays start
    where the camera is, in the scene's medium (``ts.medium``): in a scene with media the value of a side carries
    ``Tr`` of its ray up to the hit and of the shadow ray on to ``y`` (:func:`_direct_from_samples`). Detached."""
    with torch.no_grad():
        bvh = ts.bvh()
        o, d = centre
        o, d = o.detach(), d.detach()
        _, t_cam, _ = bvh.closest_hit(o, d)
        seen = o + t_cam.to(o.dtype).nan_to_num(0.0, posinf=1e30)[:, None] * d
        reach = (receivers - o).norm(dim=-1)
        visible = (seen - receivers).norm(dim=-1) <= 1e-3 * reach.clamp_min(1e-6)
        values = []
        for o, d in sides:
            value, t_side = _direct_from_samples(ts, bvh, lights, o.detach(), d.detach())
            values.append(value)
            # Both sides must see the receiver: where the shadow curve runs along a silhouette of the view (a
            # light at the eye hides every shadow right behind its occluder), the jump is primary visibility's,
            # which :mod:`lumigrad.raytrace.edges` counts; here it would count twice.
            depth = ((receivers - o) * d).sum(-1)
            visible &= (t_side.to(depth.dtype) - depth).abs() <= 2e-3 * depth.abs().clamp_min(1e-6)
        return (values[0] - values[1]) * visible[:, None]


# ------------------------------------------------------------------------------------------------ internals
#: Most elements of one ``[light samples, edges]`` block of the silhouette search: the light samples (64
#: directions of an environment, 8 points of an area light) are taken a few rows at a time, so memory stays
#: bounded on meshes of millions of faces (the result does not depend on it: each row is searched alone).
SILHOUETTE_CHUNK_ELEMENTS = 1 << 22


def _facing(kind: str, source: torch.Tensor, corner0: torch.Tensor, face_normal: torch.Tensor) -> torch.Tensor:
    """``[J, F]`` bool: face ``f``'s front faces the light sample ``j`` (a point ``y`` for area and point lights,
    a direction of travel ``D`` for directional and environment lights)."""
    if kind == "environment":
        return (-source) @ face_normal.T > 0  # without a [J, F, 3] temporary
    if kind in ("area", "point"):
        return ((source[:, None, :] - corner0[None]) * face_normal[None]).sum(-1) > 0
    return ((-source[:, None, :]) * face_normal[None]).sum(-1) > 0


def _silhouette_points(kind, source, jitter, corner0, face_normal, own, other, usable, edge_length):
    """Stratified points on the silhouette edges seen from each light sample ``source [J, 3]``: ``jitter
    [J, n]`` places the ``n`` points of each row along the row's silhouette (its edges laid end to end).

    Returns ``(edge, t, row, inv_length_pdf)`` of the points that landed on an edge (``t`` along it, ``row`` the
    light sample, ``inv_length_pdf`` the row's silhouette length over ``n``), rows in order. The rows are
    searched a block of :data:`SILHOUETTE_CHUNK_ELEMENTS` entries at a time."""
    J, n_each = jitter.shape
    E = edge_length.shape[0]
    rows_per_block = max(1, SILHOUETTE_CHUNK_ELEMENTS // max(E, 1))
    out = []
    for r0 in range(0, J, rows_per_block):
        r1 = min(J, r0 + rows_per_block)
        facing = _facing(kind, source[r0:r1], corner0, face_normal)
        silhouette = (other < 0) | (facing[:, own] != facing[:, other.clamp_min(0)])  # [rows, E]
        lengths = torch.where(silhouette & usable[None], edge_length[None], torch.zeros_like(edge_length[None]))
        del facing, silhouette
        cumulative = torch.cumsum(lengths, -1)
        total = cumulative[:, -1]  # [rows]
        at = (torch.arange(n_each, device=jitter.device, dtype=jitter.dtype)[None] + jitter[r0:r1]) * (
            total[:, None] / n_each)
        pick = torch.searchsorted(cumulative, at.contiguous(), right=True).clamp(max=E - 1)
        length = lengths.gather(1, pick)
        start = cumulative.gather(1, pick) - length
        t = ((at - start) / length.clamp_min(1e-30)).clamp(0, 1)
        sel = (total[:, None] > 0) & (length > 0)
        row = torch.arange(r0, r1, device=jitter.device)[:, None].expand(r1 - r0, n_each)
        inv = (total / n_each)[:, None].expand(r1 - r0, n_each)  # per unit world length
        out.append((pick[sel], t[sel], row[sel], inv[sel]))
    return tuple(torch.cat(parts) for parts in zip(*out))


def _empty(device, dtype) -> ShadowEdgeSamples:
    z2 = torch.zeros(0, 2, dtype=dtype, device=device)
    z3 = torch.zeros(0, 3, dtype=dtype, device=device)
    return ShadowEdgeSamples(z2, z2, torch.zeros(0, dtype=dtype, device=device), z3,
                             torch.zeros(0, dtype=torch.long, device=device), z3, z3, z3)


def edge_table(verts: torch.Tensor, faces: torch.Tensor) -> WeldedEdges:
    """Every edge once, by position (a seam of split vertices is one edge between its two faces, an edge of
    three or more faces is listed once: :func:`~lumigrad.raster.topology.welded_edges`): ``(a, b, own face,
    face across or -1, seam)`` ``[E]`` (a shared edge listed from its lower face). Pass the scene's own
    ``verts`` tensor (not a detached copy): the table is remembered per tensor."""
    return welded_edges(verts, faces)


def _faces_of(ts: TraceScene, light) -> torch.Tensor:
    """``[F]`` bool: the faces that are the light's own triangles (they cast no shadow of it)."""
    parts = [k for k, e in enumerate(ts.part_emitters) if e is light]
    mask = torch.zeros(ts.faces.shape[0], dtype=torch.bool, device=ts.faces.device)
    for k in parts:
        mask |= ts.face_part == k
    return mask


def _environment_directions(light, J: int, generator: torch.Generator, dtype):
    """``J`` directions of light travel ``D = -w [J, 3]`` from an environment light's own importance sampling
    (Latin-hypercube stratified: one sample per stratum of each of the two numbers it inverts) and its
    ``L(w) / pdf(w) [J, C]``, detached (zero where the map is black)."""
    device = light.texels.device
    u = torch.rand(J, 2, generator=generator, device=device, dtype=dtype)
    strata = torch.arange(J, device=device, dtype=dtype)
    permuted = torch.randperm(J, generator=generator, device=device).to(dtype)
    u = torch.stack([(strata + u[:, 0]) / J, (permuted + u[:, 1]) / J], -1).clamp(0, 1)
    ds = light.sample_direct(torch.zeros(J, 3, dtype=dtype, device=device), u)
    weight = torch.where(ds.pdf > 0, ds.weight, torch.zeros_like(ds.weight)).detach().to(dtype)
    return -ds.wi.detach().to(dtype), weight.expand(J, 3)  # a grey map's one channel as RGB


def _receiver_point(origin, direction, plane_point, plane_normal):
    """The point where the line ``origin + s direction`` meets the plane (ray-plane intersection)."""
    s = ((plane_point - origin) * plane_normal).sum(-1, keepdim=True) / (direction * plane_normal).sum(-1, keepdim=True)
    return origin + s * direction


def _pixels_of(x, K, world_to_cam, orthographic):
    return project_points(transform_points(x, world_to_cam), K,
                          projection="orthographic" if orthographic else "perspective")


def _receivers(ts, piece, light, a, b, bvh, scale) -> Optional[dict]:
    """Step 3 of the module docstring for one light's edge points: ``piece`` with ``face`` (the receiver's
    triangle), ``x_star`` and ``d`` (the direction ``y -> e``) added, restricted to the points whose edge is lit
    and that reach a receiver (None if none does)."""
    dtype = ts.verts.dtype
    kind = piece["kind"]
    edge, t, row = piece["edge"], piece["t"], piece["row"]
    if edge.numel() == 0:
        return None
    verts = ts.verts.detach()
    off = 1e-4 * scale
    with torch.no_grad():
        va, vb = verts[a[edge]], verts[b[edge]]
        e = va + t[:, None] * (vb - va)
        if kind in ("directional", "environment"):
            d = piece["D"][row]
            blocked = bvh.occluded(e - off * d, -d, math.inf)
        else:
            y = piece["y"][row]
            to_e = e - y
            dist = to_e.norm(dim=-1)
            d = to_e / dist.clamp_min(1e-30)[:, None]
            blocked = bvh.occluded(y + off * d, d, (dist - 2 * off).clamp_min(0).to(torch.float32))
            if kind == "area" and not getattr(light, "two_sided", False):  # emits from its front only
                blocked |= (piece["n_y"][row] * d).sum(-1) <= 0
        face, t_hit, _ = bvh.closest_hit(e + off * d, d)
        x_star = e + off * d + t_hit.to(dtype).nan_to_num(0.0, posinf=0.0)[:, None] * d
        idx = ((~blocked) & (face >= 0)).nonzero()[:, 0]
        if idx.numel() == 0:
            return None
    return dict(piece, edge=edge[idx], t=t[idx], row=row[idx], inv=piece["inv"][idx], face=face[idx],
                x_star=x_star[idx], d=d[idx])


def receiver_chain(ts: TraceScene, sources: ShadowEdgeSources, piece: dict) -> Callable:
    """``x*(t)``: the receiver point ``[N, 3]`` of each edge point of ``piece`` (one entry of
    ``sources.pieces``) as a function of its parameter ``t [N]`` along its edge, float64 and detached (for the
    forward-mode derivative ``d x* / d t``)."""
    f64 = torch.float64
    verts = ts.verts.detach()
    edge, face = piece["edge"], piece["face"]
    va, vb = verts[sources.a[edge]].to(f64), verts[sources.b[edge]].to(f64)
    tri = verts[ts.faces.long()[face]].to(f64)
    p0, pn = tri[:, 0], torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    distant = piece["kind"] in ("directional", "environment")
    y64 = None if distant else piece["y"][piece["row"]].to(f64)
    D64 = piece["d"].to(f64) if distant else None

    def chain(tt):
        ee = va + tt[:, None] * (vb - va)
        if D64 is not None:
            return _receiver_point(ee, D64, p0, pn)
        return _receiver_point(y64, ee - y64, p0, pn)

    return chain


def receiver_points(ts: TraceScene, sources: ShadowEdgeSources, piece: dict):
    """The receivers ``x* [N, 3]`` of ``piece``'s edge points with their graph (the edge's vertices, the light
    sample, the receiver's triangle: a ray-plane intersection), and what the jump needs of each sample's light:
    ``(x*, light_points, light_normals, light_radiance)`` as in :class:`ShadowEdgeSamples` (detached)."""
    dtype, device = ts.verts.dtype, ts.verts.device
    kind, edge, row, face = piece["kind"], piece["edge"], piece["row"], piece["face"]
    light = ts.lights[piece["light"]]
    moving = welded_positions(ts.verts, ts.faces)  # (a seam's copies of a position share its gradient)
    va, vb = moving[sources.a[edge]], moving[sources.b[edge]]
    e = va + piece["t"][:, None] * (vb - va)
    tri = ts.verts[ts.faces.long()[face]]
    p0, pn = tri[:, 0], torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    zeros3 = torch.zeros(edge.shape[0], 3, dtype=dtype, device=device)
    C = 3
    if kind == "directional":
        D = light.direction.to(dtype).reshape(1, 3).expand(edge.shape[0], 3)
        x = _receiver_point(e, D, p0, pn)
        y_out, n_out, le_out = zeros3, zeros3, torch.zeros(edge.shape[0], C, dtype=dtype, device=device)
    elif kind == "environment":  # fixed directions: the environment is at infinity
        D = piece["D"][row]
        x = _receiver_point(e, D, p0, pn)
        y_out, n_out, le_out = -D, zeros3, piece["le"][row]
    elif kind == "point":
        y = light.position.to(dtype).reshape(1, 3).expand(edge.shape[0], 3)
        x = _receiver_point(y, e - y, p0, pn)
        y_out, n_out, le_out = y.detach(), zeros3, torch.zeros(edge.shape[0], C, dtype=dtype, device=device)
    else:
        y_all, _, _ = area_points(light, piece["tri"], piece["bary"], piece["prob"])
        y = y_all[row]
        x = _receiver_point(y, e - y, p0, pn)
        y_out, n_out, le_out = piece["y"][row], piece["n_y"][row], piece["le"][row]
    return x, y_out, n_out, le_out.to(dtype)


#: The per-sample entries of a light's piece of samples (the others are per light: ``light``, ``tri``, ...).
_PER_SAMPLE = ("edge", "t", "row", "inv", "face", "x_star", "d")


def select_samples(piece: dict, rows: torch.Tensor) -> dict:
    """``piece`` (one light's samples, as :func:`sample_shadow_edge_sources` holds them) at the samples ``rows``
    (which may repeat)."""
    return {k: (v.index_select(0, rows) if k in _PER_SAMPLE else v) for k, v in piece.items()}


def _project_piece(ts, sources, piece, K, world_to_cam, near, width, height, orthographic, lens=None):
    """Step 4 of the module docstring for one light's receivers, then the differentiable ``q*``."""
    device, dtype = ts.verts.device, ts.verts.dtype
    verts = ts.verts.detach()
    with torch.no_grad():
        cam = transform_points(piece["x_star"], world_to_cam.detach())
        q = project_points(cam, K.detach(), projection="orthographic" if orthographic else "perspective")
        keep = torch.ones_like(piece["face"], dtype=torch.bool)
        if lens is not None:  # in the image as the lens draws it
            q, _, _, unfolded = lens_map(q, torch.ones_like(q), K.detach(), lens[0].detach(), lens[1])
            keep &= unfolded
        keep &= (cam[:, 2] > near) & (q[:, 0] >= 0) & (q[:, 0] < width) & (q[:, 1] >= 0) & (q[:, 1] < height)
        idx = keep.nonzero()[:, 0]
        if idx.numel() == 0:
            return None
        sub = select_samples(piece, idx)
        t = sub["t"]
        # d q* / d t by forward mode along the detached chain (float64)
        K64, w2c64 = K.detach().to(torch.float64), world_to_cam.detach().to(torch.float64)
        chain = receiver_chain(ts, sources, sub)
        _, dq = torch.func.jvp(lambda tt: _pixels_of(chain(tt), K64, w2c64, orthographic), (t.to(torch.float64),),
                               (torch.ones_like(t, dtype=torch.float64),))
        speed = dq.norm(dim=-1)
        good = torch.isfinite(speed) & (speed > 1e-12)
        idx2 = good.nonzero()[:, 0]
        if idx2.numel() == 0:
            return None
        sub = select_samples(sub, idx2)
        edge, x_star, dq, speed = sub["edge"], sub["x_star"], dq[idx2], speed[idx2]
        normal = (torch.stack([-dq[:, 1], dq[:, 0]], -1) / speed[:, None]).to(dtype)
        length = (verts[sources.b[edge]] - verts[sources.a[edge]]).norm(dim=-1)
    # inverse density per unit image length: |dq/dt| / (edge length * density per unit world length)
    with torch.no_grad():
        inv_pdf = speed.to(dtype) / length * sub["inv"]
    # the differentiable q*(theta)
    x, y_out, n_out, le_out = receiver_points(ts, sources, sub)
    q_diff = _pixels_of(x, K, world_to_cam, orthographic)
    lights = torch.full((edge.shape[0],), piece["light"], dtype=torch.long, device=device)
    if lens is not None:  # the shadow curve as the lens draws it (see lumigrad.raytrace.edges)
        q_diff, normal, stretch, _ = lens_map(q_diff, torch.stack([normal[:, 1], -normal[:, 0]], -1), K, lens[0],
                                              lens[1])
        inv_pdf = inv_pdf * stretch
    return ShadowEdgeSamples(q_diff, normal, inv_pdf, x_star, lights, y_out, n_out, le_out)


def _direct_from_samples(ts: TraceScene, bvh, samples, o: torch.Tensor, d: torch.Tensor
                         ):
    """``([S, C], [S])``: the direct light from each sample's light point reaching the camera rays ``o, d`` off
    their first hit (BSDF, cosine, the light's ``h / pdf``, a shadow ray; 0 where the rays miss), and the
    distance ``t`` of that hit along the rays (inf on a miss).

    In a scene with media (:func:`~lumigrad.raytrace.volumetric.traced_media`) the rays start in the scene's
    medium (the camera's) and the value is the primal's next-event integrand there: times ``Tr`` of the camera
    ray over ``t`` and ``Tr`` of the shadow ray in the medium it leaves into
    (:class:`~lumigrad.raytrace.volumetric.ShadowMedia`: the scene's, or across a transmitting first hit the
    part's interior), over the light's distance (infinite for a light at infinity: 0 in the scene's medium).
    For a pure absorber (``sigma_s = 0``) that is the whole integrand, so the jump is exact; with scattering the
    in-scattered light has shadow boundaries of its own (in the volume), which no term here samples."""
    dtype = ts.verts.dtype
    S = o.shape[0]
    out = torch.zeros(S, 3, dtype=dtype, device=o.device)
    face, t_hit, _ = bvh.closest_hit(o, d)
    rows = (face >= 0).nonzero()[:, 0]
    if rows.numel() == 0:
        return out, t_hit
    si, _, ng, _ = surface_at(ts, face[rows], o[rows], d[rows])
    bsdf = bsdf_for(si)
    x = si.position
    light_of = samples.lights[rows]
    wi = torch.zeros_like(x)
    weight = torch.zeros(rows.shape[0], 3, dtype=dtype, device=o.device)
    dist = torch.full((rows.shape[0],), math.inf, dtype=dtype, device=o.device)
    for j in light_of.unique().tolist():
        light = ts.lights[j]
        sel = (light_of == j).nonzero()[:, 0]
        kind = light_kind(light)
        if kind == "area":
            y = samples.light_points[rows[sel]]
            v = y - x[sel]
            dd = v.norm(dim=-1).clamp_min(1e-12)
            w = v / dd[:, None]
            cos_y = -(samples.light_normals[rows[sel]] * w).sum(-1)
            emit = cos_y.abs() if getattr(light, "two_sided", False) else cos_y.clamp_min(0)
            wt = samples.light_radiance[rows[sel]] * (emit / (dd * dd))[:, None]
            ds_wi, ds_w, ds_d = w, wt, dd
        elif kind == "environment":
            ds_wi, ds_w = samples.light_points[rows[sel]], samples.light_radiance[rows[sel]]
            ds_d = torch.full((sel.shape[0],), math.inf, dtype=dtype, device=o.device)
        else:
            ds = light.sample_direct(x[sel])
            ds_wi, ds_w, ds_d = ds.wi, ds.weight * (ds.pdf > 0), ds.distance.reshape(-1)
        wi = wi.index_copy(0, sel, ds_wi.to(dtype))
        weight = weight.index_copy(0, sel, ds_w.to(dtype).expand(sel.shape[0], 3))
        dist = dist.index_copy(0, sel, ds_d.to(dtype).expand(sel.shape[0]))
    cos = (si.normal * wi).sum(-1, keepdim=True)
    valid = ((ng * wi).sum(-1, keepdim=True) * cos > 0)[:, 0]
    origin = offset_ray_origin_unchecked(x, ng, wi)
    t_max = torch.where(torch.isfinite(dist), dist * (1 - 1e-4), torch.full_like(dist, math.inf))
    blocked = bvh.occluded(origin, wi, t_max.to(torch.float32))
    f = bsdf.eval(si, wi)
    if si.delta_specular is not None:  # (delta lights' rows: Material.delta_specular's lobes never meet them)
        delta = torch.tensor([bool(getattr(light, "is_delta", False)) for light in ts.lights], device=o.device)
        f = torch.where(delta[light_of][:, None], without_dirac_lobes(f, si, wi), f)
    value = f * cos.abs() * weight
    value = torch.where((valid & ~blocked)[:, None], value, torch.zeros_like(value))
    table = traced_media(ts.materials, ts.medium, ts.transmissive, o.device)
    if table is not None:
        value = value * _transmittances(ts, table, face[rows], d[rows], t_hit[rows], wi, dist)
    return out.index_copy(0, rows, value), t_hit


def _transmittances(ts: TraceScene, table, face, d, t_hit, wi, dist) -> torch.Tensor:
    """``[N, C]`` ``Tr`` of the camera rays ``d`` (in the scene's medium) up to their hits on ``face`` at
    ``t_hit``, times ``Tr`` of the shadow rays ``wi`` from there over ``dist`` (detached, as the primal's)."""
    C = 3
    medium = torch.full((face.shape[0],), table.start, dtype=torch.long, device=face.device)
    camera = shadow_transmittance(table.media, medium, t_hit.to(wi.dtype)[:, None], C, table.start)
    shadow = ShadowMedia(table, medium, ts.face_part.index_select(0, face),
                         outward_face_normals(ts.verts, ts.faces, face), -d)
    return (camera * shadow.transmittance(wi, dist[:, None], C)).detach()
