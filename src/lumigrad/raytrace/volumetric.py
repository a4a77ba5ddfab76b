"""The medium step of volumetric path tracing: free flights, scattering vertices and boundary crossings.

:func:`lumigrad.raytrace.transport.sample_paths` calls these for paths inside a homogeneous medium
(:class:`lumigrad.shading.HomogeneousMedium`: the ``interior`` or ``exterior`` of a transmitting material, or the
scene's medium around everything). Each path carries the index of the medium it is in, in the scene's
:class:`MediaTable` (``-1``: vacuum). At each vertex of such a path:

* :func:`free_flight` draws a distance ``t`` by spectral MIS before the surface the ray hits at ``t_max``; a
  scattering event (``t < t_max``) multiplies the throughput by ``sigma_s Tr(t) / pdf(t)``, reaching the
  surface by ``Tr(t_max) / P(t >= t_max)``;
* at an event, :func:`scatter_vertex` estimates the lights by next-event estimation with the phase function
  (``p(wo, wi) Tr(dist) L / pdf_light``, power heuristic against phase sampling; the shadow ray is blocked by
  any surface, so the boundary of the medium blocks it: lights are reached through a dielectric boundary only
  by phase-sampled paths that refract out, as Mitsuba's ``volpath`` does with a ``dielectric`` boundary),
  then samples the Henyey-Greenstein phase function for the next direction (weight 1);
* :meth:`ShadowMedia.leaving` says which medium a ray is in after a surface (:class:`MediaTable`, Mitsuba's
  rule): refracting through a transmitting surface into the mesh (against its outward, counter-clockwise face
  normal) enters the part's ``interior`` (vacuum if it has none); refracting out of it enters the part's
  ``exterior``, or where it has none the scene's medium (``Scene.medium``; vacuum without one); a reflection
  stays where it was, and so does a crossing of a part whose material tags no medium at all. The tags are
  trusted, as Mitsuba trusts them: a path leaving a marble tagged ``exterior = water`` is in water even if it
  came to the marble through air (nested media: tag each inner boundary's exterior with the medium around it).
* Camera rays start in the scene's medium (:attr:`MediaTable.start`). It is unbounded, so its shadow rays to a
  light at infinity (directional, the environment) cross an infinite length (``Tr = 0`` where ``sigma_t > 0``),
  and so do the rays that escape (the free flight's surface weight ``Tr(inf)``).
* :class:`ShadowMedia` attenuates the shadow rays of next-event estimation from a *surface* vertex inside a
  medium (an opaque object in a fog-filled dielectric, a lamp inside too) by ``Tr`` of the medium the shadow ray
  leaves into (the vertex's, or across a transmitting boundary, :meth:`ShadowMedia.leaving`), over the light's
  distance; as at scattering vertices, any surface on the way blocks.

Gradients (path replay, the adjoint pass): the sampled distance and direction are detached and the sampling
densities constants, so ``d(weight) / weight`` (``weight / detach(weight)``) of the free-flight weight and of
the phase weight carries the gradient w.r.t. ``sigma_a``, ``sigma_s`` and ``g`` (the score-function form of
the same estimator, unbiased); the next-event term is differentiated directly (``Tr`` of the shadow segment,
the phase function).

The shadow rays' ``Tr`` is differentiated in its length too (the segment from a surface vertex to the light
sample lies in one medium, so moving the vertex or the light changes ``Tr`` in closed form).

Limits: the tags are trusted, never checked against the geometry; one scene medium for every camera; scattering
positions and the distance to the boundary are detached (no geometry gradient through the flights: the
boundary's motion would also need the Leibniz term of the free-flight integral's moving end; a scattering
vertex's shadow ray gets its length's gradient through the light's position only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch

from ..shading.henyey_greenstein import hg_eval, hg_sample
from ..shading.medium import HomogeneousMedium, homogeneous_transmittance, sample_homogeneous_distance
from .mis import power_heuristic, sample_light

__all__ = ["FreeFlight", "MediaTable", "ShadowMedia", "free_flight", "media_of", "media_table",
           "outward_face_normals", "scatter_vertex", "shadow_transmittance", "traced_media"]


@dataclass
class FreeFlight:
    """The free flights of the rays that are in a medium (rows of the live set).

    Attributes:
        rows: ``[M]`` int64, the live rows in a medium.
        scattered: ``[M]`` bool, a scattering event before the surface.
        t: ``[M, 1]`` detached distances (the event, or the surface's ``t_max``).
        weight: ``[M, C]`` detached throughput factor (``sigma_s Tr / pdf`` or ``Tr / P``).
        ratio: ``[M, C]`` ``weight / detach(weight)`` with its graph in the medium's parameters (adjoint), or
            None.
        medium: ``[M]`` int64 the medium index of each row.
    """

    rows: torch.Tensor
    scattered: torch.Tensor
    t: torch.Tensor
    weight: torch.Tensor
    ratio: Optional[torch.Tensor]
    medium: torch.Tensor


def media_of(materials: List[object]) -> List[Optional[HomogeneousMedium]]:
    """Per part, the interior medium of its material (None: vacuum)."""
    return [getattr(m, "interior", None) for m in materials]


@dataclass
class MediaTable:
    """The media of a scene as paths index them (:func:`media_table`).

    Attributes:
        media: per medium index, the medium (None: a part without an interior, never entered). Index ``k < P``
            is part ``k``'s interior (as :func:`media_of`), then come the exteriors and the scene's medium that
            are none of those (by identity).
        interior: ``[P]`` int64, per part, the index a path refracting into it enters (-1: vacuum).
        exterior: ``[P]`` int64, the index a path refracting out of it enters: its material's ``exterior``, else
            the scene's medium, else -1.
        boundary: ``[P]`` bool, the part's material tags a medium (``interior`` or ``exterior``): only such
            parts change a crossing path's medium.
        start: the index of the scene's medium (camera rays start in it; unbounded), -1 without one.
    """

    media: List[Optional[HomogeneousMedium]]
    interior: torch.Tensor
    exterior: torch.Tensor
    boundary: torch.Tensor
    start: int = -1

    @property
    def any(self) -> bool:
        """Whether any index holds a medium."""
        return any(m is not None for m in self.media)


def media_table(materials: List[object], medium: Optional[HomogeneousMedium], device=None) -> MediaTable:
    """The :class:`MediaTable` of parts made of ``materials`` in a scene whose medium is ``medium`` (or None).

    Example: part 0 a glass of water (``interior = water``), part 1 a marble in it (``interior = stone``,
    ``exterior = water``), no scene medium: ``media = [water, stone]``, ``interior = [0, 1]``,
    ``exterior = [-1, 0]``: leaving the marble enters the water, leaving the glass vacuum."""
    media = media_of(materials)
    P = len(media)

    def index_of(m: Optional[HomogeneousMedium]) -> int:
        if m is None:
            return -1
        for k, known in enumerate(media):
            if known is m:
                return k
        media.append(m)
        return len(media) - 1

    start = index_of(medium)
    interior = [-1 if media[k] is None else k for k in range(P)]
    exterior = [start if getattr(m, "exterior", None) is None else index_of(m.exterior) for m in materials]
    boundary = [media[k] is not None or getattr(m, "exterior", None) is not None for k, m in enumerate(materials)]
    as_long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
    return MediaTable(media, as_long(interior), as_long(exterior),
                      torch.tensor(boundary, dtype=torch.bool, device=device), start)


def traced_media(materials: List[object], medium: Optional[HomogeneousMedium], transmissive: bool,
                 device=None) -> Optional[MediaTable]:
    """The :func:`media_table` of a scene where a path can be in a medium (``transmissive``: some material
    transmits, so interiors and exteriors are entered; or a scene ``medium``, where camera rays start), else
    None (a vacuum scene: no path is ever in a medium)."""
    if not transmissive and medium is None:
        return None
    table = media_table(materials, medium, device)
    return table if table.any else None


def _coefficients(medium: HomogeneousMedium, dtype: torch.dtype, C: int):
    sigma_a = medium.sigma_a.to(dtype).expand(C)
    sigma_s = medium.sigma_s.to(dtype).expand(C)
    g = medium.g.to(dtype) if isinstance(medium.g, torch.Tensor) else medium.g
    return sigma_a, sigma_s, sigma_a + sigma_s, g


def free_flight(media: List[Optional[HomogeneousMedium]], medium: torch.Tensor, t_max: torch.Tensor,
                u: torch.Tensor, *, C: int, differentiable: bool) -> FreeFlight:
    """Draw the free flights of the live rays whose ``medium [N]`` index is ``>= 0``.

    Args:
        media: per part, its interior medium.
        medium: ``[N]`` int64 the medium each live ray is in (-1: vacuum).
        t_max: ``[N]`` distance to the surface each ray hits (inf on a miss).
        u: ``[N, 1]`` uniform numbers (channel and distance, :func:`sample_homogeneous_distance`).
        C: colour channels; ``differentiable``: build ``ratio`` (the adjoint pass).

    Returns:
        :class:`FreeFlight`.

    **Differentiability:** ``ratio`` is ``w / detach(w)`` with ``w = sigma_s Tr(t) / detach(pdf)`` at an event,
    ``Tr(t_max) / detach(P)`` at the surface, at the detached ``t`` and ``t_max``: its gradient is the score
    ``d log w`` in ``sigma_a`` and ``sigma_s`` (``(1 / sigma_s - t) dsigma_s - t dsigma_a`` at an event,
    ``-t_max dsigma_t`` at the surface). ``t``, ``weight``, ``scattered`` carry no graph.
    """
    rows = (medium >= 0).nonzero()[:, 0]
    dtype = t_max.dtype
    M = rows.numel()
    scattered = torch.zeros(M, dtype=torch.bool, device=medium.device)
    t = torch.zeros(M, 1, dtype=dtype, device=medium.device)
    weight = torch.zeros(M, C, dtype=dtype, device=medium.device)
    ratio = torch.ones(M, C, dtype=dtype, device=medium.device) if differentiable else None
    med = medium.index_select(0, rows)
    for k in med.unique().tolist():
        sub = (med == k).nonzero()[:, 0]
        with torch.enable_grad() if differentiable else torch.no_grad():
            sigma_a, sigma_s, sigma_t, _ = _coefficients(media[k], dtype, C)
        tm = t_max.index_select(0, rows.index_select(0, sub))[:, None]
        with torch.no_grad():
            ds = sample_homogeneous_distance(sigma_t.detach(), sigma_s.detach(), u.index_select(0, rows)
                                             .index_select(0, sub), t_max=tm)
        ev = ds.t < tm
        scattered = scattered.index_copy(0, sub, ev[:, 0])
        t = t.index_copy(0, sub, ds.t)
        weight = weight.index_copy(0, sub, ds.weight)
        if differentiable:
            with torch.enable_grad():  # the adjoint runs in autograd's backward, where grad mode is off
                tr = homogeneous_transmittance(sigma_t, ds.t)
                w = torch.where(ev, sigma_s * tr, tr) / torch.where(ds.pdf > 0, ds.pdf, torch.ones_like(ds.pdf))
                r = w / torch.where(w.detach() != 0, w.detach(), torch.ones_like(w))
                ratio = ratio.index_copy(0, sub, torch.where(ds.pdf > 0, r, torch.ones_like(r)))
    return FreeFlight(rows, scattered, t, weight, ratio, med)


def scatter_vertex(media: List[Optional[HomogeneousMedium]], lights: List[object], bvh, medium: torch.Tensor,
                   x: torch.Tensor, wo: torch.Tensor, u_phase: torch.Tensor, u_lights: torch.Tensor, *,
                   C: int, nee: bool, differentiable: bool, methods: List[Optional[str]], unbounded: int = -1):
    """The scattering vertices at ``x [S, 3]`` (detached) of rays arriving from ``wo`` (towards the viewer).

    Args:
        media: per part, its interior medium; ``medium``: ``[S]`` int64 each vertex's medium.
        lights: the lights sampled by next-event estimation; ``bvh``: the scene's BVH (shadow rays).
        u_phase: ``[S, 2]`` phase-sampling numbers; ``u_lights``: ``[S, 2 * len(lights)]``.
        nee: estimate the lights (False at the last vertex a path may have).
        methods: per light, the ``method`` of its ``sample_direct`` (None: its one way), the strategy whose
            density weighs the emission found after the phase sample (required: a mismatch biases the image).
        differentiable: keep the graph of the next-event term and build the phase weight's ratio.
        unbounded: the index of the unbounded medium (the scene's, :attr:`MediaTable.start`), whose shadow rays
            to lights at infinity cross an infinite length; -1: none.

    Returns:
        ``(nee [S, C]`` (to multiply by the throughput), ``wi [S, 3]`` detached, ``pdf [S, 1]`` detached phase
        density of ``wi``, ``ratio [S, 1]`` phase weight ``p / detach(p)`` (graph in ``g``; ones when not
        differentiable)).

    **Differentiability:** the next-event term in ``g`` (the phase function at the light's direction) and in
    ``sigma_a``, ``sigma_s`` (the shadow segment's ``Tr``), and in the lights' parameters as at surfaces; the
    phase ratio's gradient is ``d log p_g(wo, wi)`` at the detached ``wi``. ``x``, ``wo`` are constants.
    """
    S, dtype, device = x.shape[0], x.dtype, x.device
    out = torch.zeros(S, C, dtype=dtype, device=device)
    wi = torch.zeros(S, 3, dtype=dtype, device=device)
    pdf = torch.zeros(S, 1, dtype=dtype, device=device)
    ratio = torch.ones(S, 1, dtype=dtype, device=device)
    for k in medium.unique().tolist():
        sub = (medium == k).nonzero()[:, 0]
        _, _, sigma_t, g = _coefficients(media[k], dtype, C)
        xs, wos = x.index_select(0, sub), wo.index_select(0, sub)
        if nee:
            out = out.index_copy(0, sub, _phase_nee(lights, methods, bvh, sigma_t, g, xs,
                                                    wos, u_lights.index_select(0, sub), C, k == unbounded))
        with torch.no_grad():
            ps = hg_sample(wos, g.detach() if isinstance(g, torch.Tensor) else g, u_phase.index_select(0, sub))
        wi = wi.index_copy(0, sub, ps.wi)
        pdf = pdf.index_copy(0, sub, ps.pdf)
        if differentiable:
            p = hg_eval(wos, ps.wi, g)
            ratio = ratio.index_copy(0, sub, p / torch.where(p.detach() > 0, p.detach(), torch.ones_like(p)))
    return out, wi, pdf, ratio


def _phase_nee(lights, methods, bvh, sigma_t, g, x, wo, u, C, unbounded: bool) -> torch.Tensor:
    """Next-event estimation of every light from medium points ``x``: ``p Tr L / pdf`` with the power
    heuristic against phase sampling (1 for delta lights); any surface on the way blocks (``unbounded``: the
    scene's medium, see :func:`_shadow_length`)."""
    out = torch.zeros(x.shape[0], C, dtype=x.dtype, device=x.device)
    for j, light in enumerate(lights):
        ds = sample_light(light, x, u[:, 2 * j:2 * j + 2], methods[j])
        wi = ds.wi
        with torch.no_grad():
            dist = ds.distance.detach()
            t_max = torch.where(torch.isfinite(dist), dist * (1 - 1e-4), torch.full_like(dist, math.inf))
            blocked = bvh.occluded(x.detach(), wi.detach(), t_max)
        p = hg_eval(wo, wi, g)
        tr = homogeneous_transmittance(sigma_t, _shadow_length(ds.distance.reshape(-1, 1), unbounded))
        if ds.is_delta:
            w = torch.ones_like(p)
        else:
            with torch.no_grad():
                w = power_heuristic(ds.pdf, p.detach())
        term = p * tr * ds.weight * w
        valid = (ds.pdf > 0) & ~blocked[:, None]
        out = out + torch.where(valid, term, torch.zeros_like(term))
    return out


def outward_face_normals(verts: torch.Tensor, faces: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` detached (unnormalised) normals of faces ``face`` by their counter-clockwise winding: the
    outside of a closed mesh, whatever the shading side."""
    v = verts.detach()[faces.index_select(0, face)]
    return torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def _crossing(medium: torch.Tensor, table: MediaTable, part: torch.Tensor, n_out: torch.Tensor, wo: torch.Tensor,
              wi: torch.Tensor) -> torch.Tensor:
    side_i = (n_out * wi).sum(-1)
    side_o = (n_out * wo).sum(-1)
    boundary = table.boundary.index_select(0, part)
    entering = (side_i < 0) & (side_o > 0) & boundary
    leaving = (side_i > 0) & (side_o < 0) & boundary
    return torch.where(entering, table.interior.index_select(0, part),
                       torch.where(leaving, table.exterior.index_select(0, part), medium))


def _shadow_length(distance: torch.Tensor, unbounded: bool = False) -> torch.Tensor:
    """The length of shadow rays for their ``Tr`` (differentiable: the segment lies in one medium, any surface on
    the way blocks it, so ``Tr`` is a closed form of the distance between the moving vertex and light sample):
    ``+inf`` (a light at infinity) counts 0 in a
    bounded medium (its boundary blocks the ray anyway) and stays ``+inf`` in the ``unbounded`` one (the scene's:
    ``Tr = 0`` where ``sigma_t > 0``), and the magnitude of a negative one: a light sample's distance along a
    direction almost in the lamp's plane (the point nearly in that plane) can come out with the wrong sign from
    the ray-plane division, and ``exp(+sigma_t |t|)`` was a firefly (``inf`` seen at 512 spp in a lit ball)."""
    finite = torch.isfinite(distance.detach())
    far = torch.full_like(distance, math.inf) if unbounded else torch.zeros_like(distance)
    return torch.where(finite, torch.where(finite, distance, torch.zeros_like(distance)).abs(), far)


def shadow_transmittance(media: List[Optional[HomogeneousMedium]], medium: torch.Tensor, distance: torch.Tensor,
                         C: int, unbounded: int = -1) -> torch.Tensor:
    """``Tr [N, C]`` of shadow rays in the media ``medium [N]`` (-1: vacuum, ``Tr = 1``) over ``distance [N, 1]``
    (``+inf``, a directional light or the environment: ``Tr = 1``, the medium's boundary blocks the
    ray anyway, except in the medium of index ``unbounded``, the scene's: ``exp(-sigma_t inf)``).

    **Differentiability:** in each medium's ``sigma_a`` and ``sigma_s`` (``d Tr / d sigma_t = -t Tr``; 0 over an
    infinite length) and in ``distance`` (``d Tr / d t = -sigma_t Tr``)."""
    dist = _shadow_length(distance)
    tr = torch.ones(medium.shape[0], C, dtype=dist.dtype, device=dist.device)
    for k, m in enumerate(media):  # (each medium over all rows, chosen by mask: no host sync)
        if m is None:
            continue
        _, _, sigma_t, _ = _coefficients(m, dist.dtype, C)
        length = _shadow_length(distance, unbounded=True) if k == unbounded else dist
        tr = torch.where((medium == k)[:, None], homogeneous_transmittance(sigma_t, length), tr)
    return tr


@dataclass
class ShadowMedia:
    """What the shadow rays of next-event estimation from surface vertices need to know of the media: the
    :class:`MediaTable`, and per vertex the medium its incoming ray is in, its part, the outward normal of its
    face (:func:`outward_face_normals`) and the direction towards the viewer ``wo`` (detached)."""

    table: MediaTable
    medium: torch.Tensor
    part: torch.Tensor
    n_out: torch.Tensor
    wo: torch.Tensor

    def leaving(self, wi: torch.Tensor) -> torch.Tensor:
        """The medium ``[N]`` of rays leaving the vertices along ``wi`` (arriving from ``wo``): a refraction into
        the mesh (``n_out . wi < 0 < n_out . wo``) enters the part's interior (or vacuum if it has none), a
        refraction out of it the part's exterior (the scene's medium if it has none), a reflection, or a
        crossing of a part that tags no medium, keeps the vertex's medium (:class:`MediaTable`)."""
        return _crossing(self.medium, self.table, self.part, self.n_out, self.wo, wi)

    def transmittance(self, wi: torch.Tensor, distance: torch.Tensor, C: int) -> torch.Tensor:
        """``Tr [N, C]`` along the shadow rays ``wi [N, 3]`` of length ``distance [N, 1]``: in the medium the ray
        leaves the surface into (:meth:`leaving`: the vertex's on its side, the part's interior or exterior
        across a transmitting boundary)."""
        return shadow_transmittance(self.table.media, self.leaving(wi.detach()), distance, C, self.table.start)
