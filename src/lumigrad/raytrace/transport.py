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

Area lights in the adjoint pass: the primal's estimate of their direct light (light samples and BSDF
samples that hit the lamp, MIS-weighted) mixes two parameterisations of the lamp, and a BSDF-sampled direction
sees the lamp's outline as a discontinuity that nothing samples. So the adjoint pass differentiates, at each
surface vertex, one sample of each area light in the lamp's **area parameterisation** at full weight instead
(:func:`lumigrad.raytrace.area_next_event.area_next_event`: drawn by solid angle, then held at its barycentrics
with its density per unit area constant, so the point moves with the lamp; random numbers of their own,
:func:`~lumigrad.raytrace.area_next_event.area_seed`), the parameterisation of the shadow-edge boundary term
too; the area-light emission a surface vertex's BSDF sample finds at the next vertex is left out
of the derivative terms and of the radiance still to come that the vertex's BSDF-weight ratio multiplies (else
the BSDF's own parameters would be counted twice), so that ratio waits one vertex
(:meth:`PathAdjoint.defer_ratio`). Primal values (the returned radiance, ``L_rest``) are unchanged. Emission found
after a delta lobe or a medium's phase sample keeps the primal's treatment.

Participating media (:mod:`lumigrad.raytrace.volumetric`): a path inside a medium (a material's ``interior`` or
``exterior``, or the scene's, where camera rays start: ``TraceScene.medium``) first draws a free flight before the
surface its ray hits; a scattering event is a vertex of its own (next-event estimation with the phase function, then
a phase sample for the next ray), and reaching the surface multiplies the throughput by the flight's weight before
the surface vertex as above; a surface vertex's light samples are attenuated by the ``Tr`` of the medium their
shadow ray leaves into (:class:`~lumigrad.raytrace.volumetric.ShadowMedia`). Refracting into or out of a
transmitting mesh changes the path's medium (:class:`~lumigrad.raytrace.volumetric.MediaTable`). In the adjoint pass
the free-flight weight (before the vertex's terms, which it multiplies) and the phase weight are differentiated
through ``w / detach(w)`` as the BSDF's; the scattering vertex's next-event term directly, as the surface vertices'
shadow rays' ``Tr``.

Random numbers: ``dims`` per path and vertex: the lobe, the direction (2), Russian roulette, 2 per light and,
in scenes with media only, the free flight's (a scattering vertex reuses the direction's for the phase sample
and the lights' for its next-event estimation).

Everything is batched over rays in PyTorch; the BVH (:mod:`lumigrad.kernels.bvh`) answers closest-hit and
shadow queries with ids and barycentrics, and what is differentiated is recomputed from them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence

import torch

from ..kernels.bvh import bvh_for
from ..kernels.counter_rng import uniform_counter
from ..shading.delta_specular import eval_toward_delta_light
from ..shading.transmission import bsdf_for
from ..shading.material import Material, align_model_values, model_values_of, sample_material_unchecked
from ..shading.surface import SurfaceSample
from ..shading.normal_shadowing import flip_invalid_normal
from ..shading.tangents import perturb_normal_unchecked
from .cutouts import VisibleBVH, cutout_tables
from .area_next_event import area_light_indices, area_next_event, area_seed
from .intersect import intersect_faces_unchecked, offset_ray_origin
from .mis import power_heuristic, sample_light
from .volumetric import MediaTable, ShadowMedia, free_flight, media_table, outward_face_normals, scatter_vertex

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
        tangents: ``[F, 3, 4]`` world tangents per face corner for normal maps and anisotropic lobes (zeros on
            faces without either), or None when no material has one (``Triangles.shading_tangents``).
        light_sampling: how next-event estimation samples area lights, and so the density that weighs the
            emission BSDF samples find on them: ``"solid_angle"``, ``"area"`` or ``"auto"``
            (:data:`lumigrad.shading.emitters.AREA_SAMPLING`).
        medium: the scene's :class:`~lumigrad.shading.HomogeneousMedium` (``Scene.medium``: camera rays start in
            it, paths leaving a mesh without an ``exterior`` enter it), or None (vacuum).

    The materials' ``alpha_mode`` says which surfaces rays pass (:attr:`cutouts`, :meth:`bvh`).
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
    tangents: Optional[torch.Tensor] = None
    light_sampling: str = "solid_angle"
    medium: Optional[object] = None

    @functools.cached_property
    def cutouts(self):
        """The materials' alpha as the ray queries read it (:func:`.cutouts.cutout_tables`, built once), or None
        when every surface is opaque.

        Raises:
            ValueError: a part alpha cuts also bounds a medium (a ray through its holes would neither enter nor
                leave the medium, where the path tracer's media take closed boundaries)."""
        for m in self.materials:
            if m.alpha_mode != "OPAQUE" and (m.interior is not None or m.exterior is not None):
                raise ValueError(f"a material with alpha_mode {m.alpha_mode!r} bounds a medium (its interior / "
                                 "exterior): the path tracer's media need closed, opaque boundaries; make it 'OPAQUE'")
        return cutout_tables(self.verts, self.faces, self.uv, self.uv_faces, self.face_part, self.materials)

    def bvh(self, verts: Optional[torch.Tensor] = None) -> VisibleBVH:
        """The BVH of the triangles (over ``verts``, default the detached ``verts``) whose queries pass the
        surfaces the materials' alpha cuts out."""
        return VisibleBVH(bvh_for(self.verts.detach() if verts is None else verts, self.faces), self.cutouts)


class PathAdjoint:
    """The adjoint pass's state: the radiance still to come along each path, its adjoint, the parameters."""

    def __init__(self, v_radiance: torch.Tensor, radiance: torch.Tensor, params: Sequence[torch.Tensor]):
        self.v = v_radiance
        self.rest = radiance.clone()
        self.params = list(params)
        self.grads: List[Optional[torch.Tensor]] = [None] * len(self.params)
        # Scenes with area lights: the BSDF-weight ratio of a surface vertex waits for the next vertex, which
        # says what area-light emission the sample found (``found``), left out of the radiance still to come.
        self.found = torch.zeros_like(self.rest)
        self.awaiting = torch.zeros(self.rest.shape[0], dtype=torch.bool, device=self.rest.device)
        self._pending: Optional[tuple] = None

    def paths(self, start: int, end: int) -> "PathAdjoint":
        """The adjoint pass of the paths ``start:end`` alone (for :func:`sample_paths` with ``path_offset=start``):
        views of this one's per-path state, its parameters, and its gradients (accumulated into the same list)."""
        if self._pending is not None:
            raise ValueError("PathAdjoint.paths: a BSDF-weight ratio is still held; flush_ratio() first")
        part = PathAdjoint.__new__(PathAdjoint)
        part.v, part.rest = self.v[start:end], self.rest[start:end]
        part.found, part.awaiting = self.found[start:end], self.awaiting[start:end]
        part.params, part.grads, part._pending = self.params, self.grads, None
        return part

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

    def defer_ratio(self, paths: torch.Tensor, ratio: torch.Tensor) -> None:
        """Hold the BSDF-weight ratio ``ratio [n, C]`` of the surface vertex just replayed on ``paths`` (its graph
        too) with the radiance still to come after it, until :meth:`flush_ratio`."""
        self.flush_ratio()
        self._pending = (paths, ratio, self.rest.index_select(0, paths))
        self.awaiting.index_fill_(0, paths, True)

    def fold_ratio(self, paths: torch.Tensor, ratio: torch.Tensor) -> None:
        """Back-propagate the ratio ``[n, C]`` (or ``[n, 1]``) of a weight that multiplies all the radiance still to
        come on ``paths`` (a free flight's), like :func:`_backprop_ratio`; on the paths whose BSDF-weight ratio
        is held (:meth:`defer_ratio`), whose radiance still to come is the same, it is multiplied into the held
        one instead (both are 1 in value, so the product's gradient is their sum), so that it too leaves out the
        area-light emission the sample finds: area-parameterised next-event estimation differentiates that
        light, the medium's transmittance on the way included."""
        if self._pending is None:
            _backprop_ratio(self, paths, ratio)
            return
        held_paths, held_ratio, rest = self._pending
        where = torch.full((self.rest.shape[0],), -1, dtype=torch.long, device=paths.device)
        where[held_paths] = torch.arange(held_paths.numel(), device=paths.device)
        at = where.index_select(0, paths)
        held = at >= 0
        with torch.enable_grad():  # (the pass runs under no_grad: indexing the ratio must keep its graph)
            folded = ratio[held].expand(-1, held_ratio.shape[1])
            factor = torch.ones_like(held_ratio).index_copy(0, at[held], folded)
            self._pending = (held_paths, held_ratio * factor, rest)
            if not bool(held.all()):
                _backprop_ratio(self, paths[~held], ratio[~held])

    def flush_ratio(self) -> None:
        """Back-propagate the held ratio times the radiance still to come less the area-light emission its
        sample found (what area-parameterised next-event estimation differentiates instead)."""
        if self._pending is None:
            return
        paths, ratio, rest = self._pending
        self._pending = None
        rest = rest - self.found.index_select(0, paths)
        self.found.index_fill_(0, paths, 0.0)
        self.awaiting.index_fill_(0, paths, False)
        with torch.enable_grad():
            self.backprop((self.v.index_select(0, paths) * rest * ratio).sum())


def sample_paths(ts: TraceScene, origins: torch.Tensor, directions: torch.Tensor, *, max_depth: int, rr_depth: int,
                 seed: int, hide_emitters: bool = False, adjoint: Optional[PathAdjoint] = None,
                 primary: Optional[Callable[[], tuple]] = None, hits: Optional[list] = None,
                 kernels: Optional[object] = None, path_offset: int = 0) -> torch.Tensor:
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
        kernels: in the adjoint pass, faster twins of what the replay recomputes without differentiating it
            (a :class:`lumigrad.kernels.replay_kernels.ReplayKernels`, for float32 scenes the fused kernel
            supports): the primal next-event term of the area lights differentiated by area (the value
            subtracted from the radiance still to come) and the BSDF samples. None: PyTorch (the reference).
        path_offset: the index of the first ray among the paths the random numbers are drawn for: ray ``r`` draws
            those of path ``path_offset + r`` (so that a replay of the rays ``a:b`` of a batch, one slice at a time,
            draws what the primal of the whole batch drew; ``adjoint`` is then :meth:`PathAdjoint.paths` ``(a, b)``).

    Returns:
        ``[R, C]`` radiance (the primal estimate; in the adjoint pass the same, and ``adjoint.grads`` filled).
    """
    if kernels is not None and adjoint is None:
        raise ValueError("kernels: only for the adjoint pass (give adjoint too, or kernels=None)")
    device, dtype = ts.verts.device, ts.verts.dtype
    R = origins.shape[0]
    C = 3
    bvh = ts.bvh()
    if ts.cutouts is not None:  # (blend choices: this seed's, as the fused kernel's with it)
        ts.cutouts.reseed(seed)
    n_lights = len(ts.lights)
    table = media_table(ts.materials, ts.medium, device) if ts.transmissive or ts.medium is not None else None
    has_media = table is not None and table.any
    media = table.media if has_media else []
    # lobe, direction (2), roulette, then 2 per light; with media, last, the free flight's number (a scattering
    # vertex reuses the direction's two for the phase function and the lights' for its next-event estimation)
    dims = 4 + 2 * n_lights + (1 if has_media else 0)
    # The adjoint pass differentiates area lights' direct light by area (module docstring).
    by_area = area_light_indices(ts) if adjoint is not None else []
    others = [j for j in range(n_lights) if j not in by_area]
    # [parts + 1]: which parts are those lights' emitters; the last for "no emitter"
    found_parts = torch.tensor([any(e is not None and e is ts.lights[j] for j in by_area) for e in ts.part_emitters]
                               + [False], device=device) if by_area else None
    run = _Run(ts, bvh, table, has_media, light_methods(ts), adjoint, kernels, primary, hide_emitters, seed,
               path_offset, by_area, others, found_parts)
    radiance = torch.zeros(R, C, dtype=dtype, device=device)
    alive = torch.arange(R, device=device)
    beta = torch.ones(R, C, dtype=dtype, device=device)
    # the medium a path is in (an index of table.media; -1: vacuum): camera rays start in the scene's
    medium = torch.full((R,), table.start if has_media else -1, dtype=torch.long, device=device)
    o, d = origins.detach(), directions.detach()
    prev_pdf = torch.zeros(R, 1, dtype=dtype, device=device)
    prev_x = o.clone()
    depth_limit = MAX_BOUNCES if max_depth < 0 else max_depth
    for depth in range(depth_limit):
        if alive.numel() == 0:
            break
        # counter-based: ray r's numbers at this depth, whatever else is drawn (the fused kernel's too)
        keys = alive + path_offset if path_offset else alive
        u = uniform_counter(int(seed), keys, depth, dims, dtype)
        u_area = uniform_counter(area_seed(seed), keys, depth, 2 * len(by_area), dtype) if by_area else None
        del keys
        with torch.no_grad():
            face, t_hit, _ = bvh.closest_hit(o, d)
        hit = face >= 0
        if depth == 0 and hits is not None:
            hits.append(hit)
        b = beta.index_select(0, alive)
        med = medium.index_select(0, alive)
        last = depth + 1 >= depth_limit
        contrib = torch.zeros(alive.numel(), C, dtype=dtype, device=device)
        # Paths in a medium: a free flight before the surface (its weight joins the throughput).
        scatter = torch.zeros_like(hit)
        if has_media and bool((med >= 0).any()):
            ff = free_flight(media, med, t_hit.to(dtype), u[:, -1:], C=C, differentiable=adjoint is not None)
            b = b.index_copy(0, ff.rows, b.index_select(0, ff.rows) * ff.weight)
            scatter = scatter.index_fill(0, ff.rows[ff.scattered], True)
            if adjoint is not None:  # the weight multiplies all the path gathers from here on
                adjoint.fold_ratio(alive.index_select(0, ff.rows), ff.ratio)
        # Rays that leave the scene see the environment.
        if ts.environment is not None and bool((~hit & ~scatter).any()):
            miss = (~hit & ~scatter).nonzero()[:, 0]
            camera_rays = primary if depth == 0 and adjoint is not None else None
            contrib = contrib.index_add(0, miss, _escaped(ts, prev_x, o, d, miss, prev_pdf, depth, hide_emitters,
                                                          b, adjoint, alive, camera_rays))
        rows = (hit & ~scatter).nonzero()[:, 0]
        nexts = []  # per kind of vertex, the paths that go on (see _Next)
        deferred = None  # (paths, ratio) of this depth's surface vertices when area lights are differentiated by area
        if rows.numel() > 0:
            contrib, going_on, deferred = _surface_vertices(
                run, depth, last, rows, alive, o, d, face, u, u_area, b, med, prev_x, prev_pdf, contrib)
            if going_on is not None:
                nexts.append(going_on)
        srows = scatter.nonzero()[:, 0]
        if srows.numel() > 0:
            going_on, contrib = _scatter(run, alive, srows, o, d, ff, b, med, u, last, contrib)
            if going_on is not None:
                nexts.append(going_on)
        radiance.index_add_(0, alive, contrib)
        if by_area:
            adjoint.flush_ratio()  # the previous depth's, now that this depth's hits are known
            if deferred is not None:
                adjoint.defer_ratio(*deferred)
        if last or not nexts:
            alive = alive[:0]
            continue
        # Throughput and Russian roulette.
        nx = _Next(*(torch.cat(parts) for parts in zip(*nexts))) if len(nexts) > 1 else nexts[0]
        new_beta, ok = nx.beta, nx.ok
        if depth + 1 >= rr_depth:
            q = new_beta.amax(-1).clamp(max=0.95)
            survive = nx.u_rr < q
            new_beta = new_beta / torch.where(survive, q, torch.ones_like(q))[:, None]
            ok = ok & survive
        ok = ok & (new_beta > 0).any(-1)
        nxt = alive.index_select(0, nx.rows[ok])
        beta.index_copy_(0, nxt, new_beta[ok])
        medium.index_copy_(0, nxt, nx.medium[ok])
        prev_x = nx.x[ok]
        prev_pdf = nx.pdf[ok]  # -1: a delta sample (no MIS)
        o, d = nx.origin[ok], nx.wi[ok]
        alive = nxt
    if by_area:
        adjoint.flush_ratio()
    return radiance


class _Run(NamedTuple):
    """What a :func:`sample_paths` call fixes for all its vertices: its arguments, the scene's BVH, the media
    (:func:`~lumigrad.raytrace.volumetric.media_table`, or None; ``has_media``: any medium), each light's sampling
    method (:func:`light_methods`), the area lights differentiated by area (``by_area``, adjoint pass), the other
    lights, and which parts are ``by_area``'s emitters (``found_parts``)."""

    ts: TraceScene
    bvh: object
    table: Optional[MediaTable]
    has_media: bool
    methods: List[Optional[str]]
    adjoint: Optional[PathAdjoint]
    kernels: Optional[object]
    primary: Optional[Callable[[], tuple]]
    hide_emitters: bool
    seed: int
    path_offset: int
    by_area: List[int]
    others: List[int]
    found_parts: Optional[torch.Tensor]


def _surface_vertices(run: _Run, depth, last, rows, alive, o, d, face, u, u_area, b, med, prev_x, prev_pdf, contrib):
    """The surface vertices ``rows`` (rows of the live set) at ``depth``: emission, next-event terms (added to
    ``contrib``), in the adjoint pass their derivative terms, and, unless ``last``, the BSDF-sampled paths that go
    on. Returns ``(the new contrib, _Next or None, the deferred (paths, ratio) or None)``.

    A function of its own so that the vertex's autograd graph (the surface, the BSDF, the lights' terms: about
    1 KiB a path) goes when it returns, not when the next depth overwrites these names: otherwise two depths'
    graphs are alive at once (only the deferred ratio's part must wait, see :meth:`PathAdjoint.defer_ratio`)."""
    ts, bvh, adjoint, kernels, by_area = run.ts, run.bvh, run.adjoint, run.kernels, run.by_area
    dtype, C = b.dtype, b.shape[-1]
    going_on = deferred = None
    with torch.enable_grad() if adjoint is not None else torch.no_grad():
        ro, rd = (run.primary() if depth == 0 and run.primary is not None and adjoint is not None else (o, d))
        ro, rd = ro.index_select(0, rows), rd.index_select(0, rows)
        si, emission, ng, emitter_rows = surface_at(ts, face.index_select(0, rows), ro, rd)
        bsdf = bsdf_for(si)  # with transmission (glass) when a material transmits
        si_d = si.map(torch.Tensor.detach)
        paths = alive.index_select(0, rows)
        bh = b.index_select(0, rows)
        # Shadow rays through a medium (a vertex inside one, or a light behind a transmitting boundary): Tr.
        shadow = None
        if run.has_media:
            fr = face.index_select(0, rows)
            shadow = ShadowMedia(run.table, med.index_select(0, rows), ts.face_part.index_select(0, fr),
                                 outward_face_normals(ts.verts, ts.faces, fr), -rd.detach())
        # Emission seen by the previous bounce (MIS against light sampling for area lights).
        weight_e = _emission_weight(ts, emitter_rows, face.index_select(0, rows),
                                    prev_x.index_select(0, rows), rd.detach(), prev_pdf.index_select(0, rows),
                                    depth, dtype)
        if run.hide_emitters and depth == 0:
            weight_e = torch.zeros_like(weight_e)
        term = bh * emission * weight_e
        term_grad = term
        if by_area:  # area-light emission found by the previous surface vertex's BSDF sample
            no_emitter = torch.full_like(emitter_rows, len(ts.part_emitters))
            found = (run.found_parts.index_select(0, torch.where(emitter_rows >= 0, emitter_rows, no_emitter))
                     & adjoint.awaiting.index_select(0, paths)
                     & (prev_pdf.index_select(0, rows)[:, 0] > 0))[:, None]
            term_grad = torch.where(found, torch.zeros_like(term), term)
            adjoint.found.index_add_(0, paths, torch.where(found, term, torch.zeros_like(term)).detach())
        at = None  # the replay kernels' rows of these vertices, packed once for both their launches
        if not last:
            if kernels is not None:  # (the fused kernel, and so its twins, run no scene with media)
                at = kernels.vertices(paths + run.path_offset, depth, run.seed, si_d, ng.detach() if by_area else None)
            uh4 = u.index_select(0, rows)[:, 4:]
            if by_area:
                nee = _next_event(ts, bvh, bsdf, si, ng, uh4, dtype, run.others, shadow, run.methods)
                with torch.no_grad():
                    if kernels is None:
                        nee_area = _next_event(ts, bvh, bsdf, si, ng, uh4, dtype, by_area, shadow, run.methods)
                    else:
                        nee_area = kernels.area_next_event(bvh, by_area, at).to(dtype)
                ua = u_area.index_select(0, rows)
                area = area_next_event(ts, bvh, bsdf, si, ng, ua, by_area, shadow)
                term = term + bh * (nee + nee_area)
                term_grad = term_grad + bh * (nee + area)
            else:
                term = term + bh * _next_event(ts, bvh, bsdf, si, ng, uh4, dtype, None, shadow, run.methods)
                term_grad = term
        if adjoint is not None:
            _backprop_terms(adjoint, paths, term_grad)
        contrib = contrib.index_add(0, rows, term.detach())
        if not last:
            # The next ray: a BSDF sample (its direction and pdf detached; its weight differentiated in
            # the adjoint pass through the ratio w / detach(w)).
            uh = u.index_select(0, rows)
            with torch.no_grad():
                if kernels is None:
                    bs = bsdf.sample(si_d, uh[:, 0:1], uh[:, 1:3])
                    wi, pdf, bs_weight, delta = bs.wi, bs.pdf, bs.weight, bs.is_delta
                    positive = (pdf > 0).all(-1)
                else:  # the fused primal's sample (an opaque BSDF: no delta lobe), its density (MIS, the next
                    # vertex's prev_pdf) and its stop where that density is not positive
                    wi, bs_weight, pdf = kernels.bsdf_sample(at)
                    positive = pdf > 0
                    wi, bs_weight, pdf, delta = wi.to(dtype), bs_weight.to(dtype), pdf[:, None].to(dtype), None
            wi, pdf, bs_weight = wi.detach(), pdf.detach(), bs_weight.detach()
            ok = positive & (bs_weight > 0).any(-1)
            if si_d.unmapped_normal is not None:  # where a normal map bent the normal, a sample leaves on the side
                # both the mapped and the unmapped normal say (Mitsuba's normalmap rule): not through the surface
                ok = ok & (((si_d.unmapped_normal * wi).sum(-1) * (si_d.normal * wi).sum(-1)) > 0)
            delta = delta if delta is not None else torch.zeros_like(pdf, dtype=torch.bool)
            if adjoint is not None:
                f = bsdf.eval(si, wi) * (si.normal * wi).sum(-1, keepdim=True).abs()
                w = f / torch.where(pdf > 0, pdf, torch.ones_like(pdf))
                ratio = w / torch.where(w.detach() != 0, w.detach(), torch.ones_like(w))
                if hasattr(bsdf, "delta_coefficient"):  # a delta lobe's weight c / detach(c): its coefficient's
                    c = bsdf.delta_coefficient(si, wi)
                    known = c.detach() != 0
                    ratio_d = torch.where(known, c / torch.where(known, c.detach(), torch.ones_like(c)),
                                          torch.ones_like(c))
                    ratio = torch.where(delta, ratio_d, ratio)
                else:
                    ratio = torch.where(delta, torch.ones_like(ratio), ratio)  # (no delta coefficient: no gradient)
                # radiance still to come: subtract what the vertices up to this one added
                _subtract(adjoint, paths, term.detach())
                if by_area:  # once the next vertex tells what area-light emission the sample finds
                    deferred = (paths, ratio * ok[:, None])
                else:
                    _backprop_ratio(adjoint, paths, ratio * ok[:, None])
            x = si.position.detach()
    if not last:
        new_med = med.index_select(0, rows) if shadow is None else shadow.leaving(wi)
        going_on = _Next(rows, bh * bs_weight, ok, x, offset_ray_origin(x, ng.detach(), wi), wi,
                         torch.where(delta, -torch.ones_like(pdf), pdf), uh[:, 3], new_med)
    return contrib, going_on, deferred


class _Next(NamedTuple):
    """The paths that go on from one kind of vertex (surface or medium), rows of the live set: throughput
    before roulette, whether the sample is usable, the vertex, the next ray's origin and direction, its density
    (-1: delta), the roulette number, the medium the ray is in."""

    rows: torch.Tensor
    beta: torch.Tensor
    ok: torch.Tensor
    x: torch.Tensor
    origin: torch.Tensor
    wi: torch.Tensor
    pdf: torch.Tensor
    u_rr: torch.Tensor
    medium: torch.Tensor


def _scatter(run: _Run, alive, srows, o, d, ff, b, med, u, last, contrib):
    """The scattering vertices ``srows`` (rows of the live set) of paths in a medium: their next-event terms
    (added to ``contrib``) and, unless ``last``, the phase-sampled paths that go on. Returns ``(_Next or None,
    the new contrib)``."""
    adjoint, C = run.adjoint, b.shape[-1]
    pos = ff.rows.new_full((b.shape[0],), -1).index_copy(0, ff.rows, torch.arange(ff.rows.numel(),
                                                                                   device=ff.rows.device))
    t = ff.t.index_select(0, pos.index_select(0, srows))
    x = o.index_select(0, srows) + t * d.index_select(0, srows)
    wo = -d.index_select(0, srows)
    us = u.index_select(0, srows)
    paths = alive.index_select(0, srows)
    with torch.enable_grad() if adjoint is not None else torch.no_grad():
        nee, wi, pdf, ratio = scatter_vertex(run.table.media, run.ts.lights, run.bvh, med.index_select(0, srows), x,
                                             wo, us[:, 1:3], us[:, 4:4 + 2 * len(run.ts.lights)], C=C, nee=not last,
                                             differentiable=adjoint is not None, methods=run.methods,
                                             unbounded=run.table.start)
        bs = b.index_select(0, srows)
        term = bs * nee
        if adjoint is not None:
            _backprop_terms(adjoint, paths, term)
            _subtract(adjoint, paths, term.detach())
            if not last:
                _backprop_ratio(adjoint, paths, ratio)
    contrib = contrib.index_add(0, srows, term.detach())
    if last:
        return None, contrib
    return _Next(srows, bs, (pdf > 0)[:, 0], x, x, wi, pdf, us[:, 3], med.index_select(0, srows)), contrib


def _backprop_ratio(adjoint: PathAdjoint, paths: torch.Tensor, ratio: torch.Tensor) -> None:
    """Back-propagate ``v . L_rest * ratio`` of the paths ``paths``: the gradient of a sampled weight
    ``w`` that multiplies all the radiance still to come, through ``ratio = w / detach(w)``."""
    rest = adjoint.rest.index_select(0, paths)
    v = adjoint.v.index_select(0, paths)
    with torch.enable_grad():
        adjoint.backprop((v * rest * ratio).sum())


def _subtract(adjoint: PathAdjoint, paths: torch.Tensor, amount: torch.Tensor) -> None:
    adjoint.rest.index_add_(0, paths, -amount)


def _backprop_terms(adjoint: PathAdjoint, paths: torch.Tensor, term: torch.Tensor) -> None:
    adjoint.backprop((adjoint.v.index_select(0, paths) * term).sum())


def _escaped(ts, prev_x, o, d, miss, prev_pdf, depth, hide_emitters, beta, adjoint, alive,
             camera_rays: Optional[Callable[[], tuple]] = None) -> torch.Tensor:
    """Environment radiance along the escaping rays ``miss`` (rows of the live set), MIS-weighted. Camera rays
    that escape (``camera_rays``, the adjoint pass's differentiable primary rays) look the environment up along
    their differentiable directions: the camera's pose, intrinsics and lens then get the gradient of the
    background they see."""
    env = ts.environment
    x, wi = prev_x.index_select(0, miss), d.index_select(0, miss)
    with torch.enable_grad() if adjoint is not None else torch.no_grad():
        if camera_rays is not None:
            wi = camera_rays()[1].index_select(0, miss)
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
    double = torch.tensor(ts.double_sided, dtype=torch.bool, device=face.device).index_select(0, part)
    back = (ng * wo).sum(-1, keepdim=True) < 0
    flip = back & double[:, None]
    ng = torch.where(flip, -ng, ng)
    n = torch.where(flip, -n, n)
    if ts.normals is not None:
        n = _facing_shading_normal(n, ng, wo)
    values = _materials(ts, part, uv)
    normal_tangent = values.pop("normal_tangent", None)
    anisotropic = "log_aspect" in values
    tangent = None
    if ts.tangents is not None and (normal_tangent is not None or anisotropic):
        tangent = (bary[..., None] * ts.tangents.index_select(0, face)).sum(1)
    if normal_tangent is not None and tangent is not None:  # normal maps
        if "shadowing" in values:  # Mitsuba's normal map on a double-sided part's back: its frame's bitangent is the
            # front's (Mitsuba's twosided mirrors the directions, not the frame), so the handedness turns with n
            mirror = flip & (values["shadowing"] > 0.5)
            tangent = torch.cat([tangent[:, :3], torch.where(mirror, -tangent[:, 3:], tangent[:, 3:])], -1)
        mapped = perturb_normal_unchecked(n, tangent, normal_tangent)
        if "shadowing" in values:  # Mitsuba's normal maps: one facing away from the viewer is mirrored about n
            mapped = torch.where(values["shadowing"] > 0.5, flip_invalid_normal(n, mapped, wo), mapped)
        has_map = (normal_tangent.abs().sum(-1, keepdim=True) > 0) & (tangent[:, :3].abs().sum(-1, keepdim=True) > 0)
        unmapped = n
        n = torch.where(has_map, mapped, n)
    else:
        unmapped = None
    front = ~(back & ~double[:, None])
    emission = values.pop("emission") * front
    si = SurfaceSample.from_material(position, n, wo, values, geometric_normal=ng, unmapped_normal=unmapped,
                                     tangent=tangent if anisotropic else None)
    emitter_rows = torch.tensor([-1 if e is None else k for k, e in enumerate(ts.part_emitters)],
                                device=face.device).index_select(0, part)
    return si, emission, ng, emitter_rows


#: The least ``n . wo`` of a bent shading normal (see :func:`_facing_shading_normal`).
SHADING_NORMAL_MIN_COS = 1e-2


def _facing_shading_normal(n: torch.Tensor, ng: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """Bend interpolated shading normals ``n [N, 3]`` (unit) towards the viewer ``wo`` where the surface faces it
    (``ng . wo > 0``) but ``n . wo`` is below :data:`SHADING_NORMAL_MIN_COS`:
    ``n' = normalize(n + max(0, c - n . wo) wo)``, so that ``n' . wo > 0``.

    Along a smooth-shaded mesh's silhouette the interpolated normal turns away from the camera in a sliver of
    the front faces (about 0.01 pixel wide), where every BSDF is 0: a black rim. Its outer edge is the
    silhouette, sampled by edge sampling, which would then measure the jump against the rim's black instead of
    the surface's shading; its inner edge (``n . wo = 0``) would be a discontinuity that nothing samples. The
    bend is continuous in ``n . wo``, so neither discontinuity exists. Normals with ``n . wo >= c`` and hits on
    the back of the geometry (inside glass) are unchanged."""
    cos_o = (n * wo).sum(-1, keepdim=True)
    front = (ng * wo).sum(-1, keepdim=True) > 0
    lift = torch.where(front, (SHADING_NORMAL_MIN_COS - cos_o).clamp_min(0), torch.zeros_like(cos_o))
    bent = n + lift * wo
    return bent / torch.linalg.vector_norm(bent, dim=-1, keepdim=True).clamp_min(1e-30)


def _materials(ts: TraceScene, part: torch.Tensor, uv: torch.Tensor) -> dict:
    """Material values ``{name: [N, c]}`` of each row's part, sampled at ``uv`` (bilinear), with
    ``normal_tangent`` (zeros where a part has no normal map) when the scene has normal maps."""
    out: dict = {}
    order, pieces = [], []
    wanted = model_values_of(ts.materials) - (set() if ts.transmissive else {"thin"})
    maps = ts.tangents is not None and any(m.normal_texture is not None for m in ts.materials)
    for k in part.unique().tolist():
        rows = (part == k).nonzero()[:, 0]
        m = sample_material_unchecked(ts.materials[k], uv.index_select(0, rows)[None])
        m = {key: val[0].expand(rows.numel(), val.shape[-1]) for key, val in m.items()}
        if maps and "normal_tangent" not in m:
            m["normal_tangent"] = uv.new_zeros(rows.numel(), 3)  # no map on this part
        elif not maps:
            m.pop("normal_tangent", None)
        m["ior"] = ts.materials[k].ior.reshape(1, 1).expand(rows.numel(), 1)
        align_model_values(m, wanted, rows.numel(), uv)
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
        with torch.no_grad():  # the density of the strategy next-event estimation samples the light with
            pdf_light = light.pdf(prev_x.index_select(0, rows), d.index_select(0, rows), method=ts.light_sampling)
        w = w.index_copy(0, rows, _mis_after_bsdf(prev_pdf.index_select(0, rows), pdf_light))
    return w


def light_methods(ts: TraceScene) -> List[Optional[str]]:
    """Per light of ``ts.lights``, the ``method`` its next-event samples take: ``ts.light_sampling`` for area
    lights (the density :func:`_emission_weight` weighs their BSDF-found emission with), None for the lights
    sampled their one way (delta lights, the environment)."""
    return [None if light.is_delta or light is ts.environment else ts.light_sampling for light in ts.lights]


def _mis_after_bsdf(prev_pdf: torch.Tensor, pdf_light: torch.Tensor) -> torch.Tensor:
    """MIS weight of emission found by a BSDF sample of density ``prev_pdf`` (-1: a delta lobe, weight 1)."""
    return torch.where(prev_pdf < 0, torch.ones_like(prev_pdf), power_heuristic(prev_pdf, pdf_light))


def _next_event(ts, bvh, bsdf, si: SurfaceSample, ng: torch.Tensor, u: torch.Tensor, dtype,
                lights: Optional[Sequence[int]], shadow: Optional[ShadowMedia],
                methods: List[Optional[str]]) -> torch.Tensor:
    """Next-event estimation of every light at ``si`` (or of the lights ``lights``, indices in ``ts.lights``):
    ``[N, 3]`` (one sample per light, MIS-weighted), each shadow ray attenuated by the medium it crosses where
    ``shadow`` (scenes with media) says; ``methods``: :func:`light_methods` of ``ts`` (once per pass)."""
    out = torch.zeros(si.position.shape[0], 3, dtype=dtype, device=si.position.device)
    x = si.position
    si_d = si.map(torch.Tensor.detach)  # (the MIS weights' BSDF densities)
    for j in range(len(ts.lights)) if lights is None else lights:
        ds = sample_light(ts.lights[j], x, u[:, 2 * j:2 * j + 2], methods[j])
        wi = ds.wi
        cos = (si.normal * wi).sum(-1, keepdim=True)
        # the light on the side the shading normal says (either side for glass: the BSDF is 0 where it must be)
        valid = (ds.pdf > 0) & ((ng * wi).sum(-1, keepdim=True).detach() * cos.detach() > 0)
        with torch.no_grad():
            origin = offset_ray_origin(x.detach(), ng.detach(), wi.detach())
            dist = ds.distance.detach()
            t_max = torch.where(torch.isfinite(dist), dist * (1 - 1e-4), torch.full_like(dist, math.inf))
            blocked = bvh.occluded(origin, wi.detach(), t_max)
        if ds.is_delta:  # (a Dirac specular lobe never meets a delta light: Material.delta_specular)
            f = eval_toward_delta_light(bsdf, si, wi)
            w = torch.ones_like(cos)
        else:
            f = bsdf.eval(si, wi)
            with torch.no_grad():
                w = power_heuristic(ds.pdf, bsdf.pdf(si_d, wi.detach()))
        term = f * cos.abs() * ds.weight * w
        if shadow is not None:
            term = term * shadow.transmittance(wi, ds.distance.reshape(-1, 1), term.shape[-1])
        out = out + torch.where(valid & ~blocked[:, None], term, torch.zeros_like(term))
    return out
