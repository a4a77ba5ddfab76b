"""Packed ray samples: stratified and importance (hierarchical) sampling, empty-space and early-termination culling.

Samples of all rays live in flat arrays (:class:`RaySamples`: intervals ``[t_start, t_end]`` plus the ray of
each sample, sorted by ray then ``t``), so rays may have different numbers of samples and rays that miss the
scene have none, as in nerfacc. The usual pipeline::

    rays = camera_rays(camera, pixels)
    t_near, t_far, hit = ray_aabb(rays.origins, rays.directions, aabb)
    coarse = stratified_samples(t_near, t_far, hit=hit, num_samples=64, generator=g)
    coarse = keep_occupied(coarse, rays.origins, rays.directions, occupied)   # optional occupancy grid
    ... sigmas = field(coarse.positions(rays.origins, rays.directions)) ...
    fine = importance_samples(coarse, weights, num_samples=128, generator=g)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .._checks import check_number, check_positive_int, check_tensor
from .composite import render_weights
from .packing import check_packed, ray_offsets, segment_exclusive_cumsum

__all__ = ["RaySamples", "stratified_samples", "importance_samples", "keep_occupied", "cull_terminated"]


@dataclass
class RaySamples:
    """Packed samples of ``R`` rays.

    Attributes:
        t_starts, t_ends: ``[S]`` interval ends along the ray (ray parameter ``t``), sorted and non-overlapping
            within each ray.
        ray_indices: ``[S]`` int64, sorted: the ray of each sample.
        offsets, counts: ``[R]`` int64: ray ``r`` owns samples ``[offsets[r], offsets[r] + counts[r])``;
            ``counts`` is the number of samples per ray (0 for rays that missed the bounds or were culled).
    """

    t_starts: torch.Tensor
    t_ends: torch.Tensor
    ray_indices: torch.Tensor
    offsets: torch.Tensor
    counts: torch.Tensor

    @property
    def num_rays(self) -> int:
        return int(self.counts.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.t_starts.shape[0])

    def midpoints(self) -> torch.Tensor:
        """``[S]`` interval midpoints ``(t_start + t_end) / 2``."""
        return 0.5 * (self.t_starts + self.t_ends)

    def deltas(self) -> torch.Tensor:
        """``[S]`` interval lengths ``t_end - t_start``."""
        return self.t_ends - self.t_starts

    def positions(self, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """``[S, 3]`` world positions of the midpoints, ``origins[r] + t_mid directions[r]``, for rays
        ``origins / directions [R, 3]``. Differentiable in the rays and the intervals."""
        _check_rays(origins, directions, self.num_rays)
        o = origins.index_select(0, self.ray_indices)
        d = directions.index_select(0, self.ray_indices)
        return o + self.midpoints().to(o.dtype)[:, None] * d

    def select(self, keep: torch.Tensor) -> "RaySamples":
        """The samples where ``keep [S]`` (bool) is true, still packed (counts and offsets recomputed)."""
        index = keep.nonzero()[:, 0]
        ray_indices = self.ray_indices.index_select(0, index)
        offsets, counts = ray_offsets(ray_indices, self.num_rays)
        return RaySamples(self.t_starts.index_select(0, index), self.t_ends.index_select(0, index), ray_indices,
                          offsets, counts)


def _check_rays(origins, directions, num_rays: int) -> None:
    check_tensor(origins, "origins", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(directions, "directions", trailing=(None, 3), max_dims=2, floating=True, finite=True,
                 device=origins.device)
    if origins.shape[0] != num_rays or directions.shape[0] != num_rays:
        raise ValueError(f"origins and directions must have shape [R, 3] with R = {num_rays} (one per ray); got "
                         f"{tuple(origins.shape)} and {tuple(directions.shape)}")


def _pack(counts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ray_indices [S], local index k [S], offsets [R], counts [R])`` for per-ray sample counts."""
    counts = counts.long()
    offsets = torch.cumsum(counts, 0) - counts
    S = int(counts.sum())
    rays = torch.arange(counts.shape[0], device=counts.device)
    ray_indices = torch.repeat_interleave(rays, counts, output_size=S)
    local = torch.arange(S, device=counts.device) - offsets.index_select(0, ray_indices)
    return ray_indices, local, offsets, counts


def stratified_samples(t_near: torch.Tensor, t_far: torch.Tensor, *, num_samples: Optional[int] = None,
                       step_size: Optional[float] = None, hit: Optional[torch.Tensor] = None, jitter: bool = True,
                       generator: Optional[torch.Generator] = None, max_samples_per_ray: int = 1024,
                       origins: Optional[torch.Tensor] = None, directions: Optional[torch.Tensor] = None,
                       occupied: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> RaySamples:
    """Cut each ray's range ``[t_near, t_far]`` into contiguous intervals, uniformly with jitter (stratified).

    Ray ``r`` gets ``n_r`` intervals: ``num_samples``, or ``ceil((t_far - t_near) / step_size)`` (at least 1,
    at most ``max_samples_per_ray``, so the step is at most ``step_size`` up to that cap). Interval edges are
    ``t_near + (k + u_k) L / n_r`` for ``k = 1 .. n_r - 1`` with ``u_k`` uniform in ``[-1/2, 1/2)`` (``0``
    without ``jitter``); the first and last edges are ``t_near`` and ``t_far``. Rays with ``hit`` false or
    ``t_far <= t_near`` get no samples.

    Args:
        t_near, t_far: ``[R]`` float, the range of each ray (e.g. from :func:`~lumigrad.volume.rays.ray_aabb`).
        num_samples: intervals per ray (``> 0``); exactly one of ``num_samples`` and ``step_size``.
        step_size: largest interval length (``> 0``).
        hit: ``[R]`` bool, rays to sample (others get none); ``None``: all rays with ``t_far > t_near``.
        jitter: randomise the interior edges (training); ``False`` for evenly spaced intervals (rendering).
        generator: random generator for the jitter (reproducible runs).
        max_samples_per_ray: cap on ``n_r`` in step-size mode.
        origins, directions: ``[R, 3]`` rays; needed only with ``occupied``.
        occupied: optional predicate (e.g. an occupancy grid): given midpoint positions ``[S, 3]`` it returns a
            bool ``[S]``; samples in empty space are dropped before any field is evaluated (:func:`keep_occupied`).

    Returns:
        :class:`RaySamples`.

    Example: ``t_near = [1.]``, ``t_far = [3.]``, ``num_samples = 4``, ``jitter = False`` -> intervals
    ``[1, 1.5], [1.5, 2], [2, 2.5], [2.5, 3]``.

    **Differentiability:** the intervals are differentiable in ``t_near`` and ``t_far`` (the jitter is fixed);
    sample counts are integers.
    """
    check_tensor(t_near, "t_near", trailing=(None,), max_dims=1, floating=True, finite=True)
    check_tensor(t_far, "t_far", trailing=(None,), max_dims=1, floating=True, finite=True, device=t_near.device)
    R = t_near.shape[0]
    if t_far.shape != t_near.shape:
        raise ValueError(f"t_far must have the shape of t_near {tuple(t_near.shape)}; got {tuple(t_far.shape)}")
    if (num_samples is None) == (step_size is None):
        raise ValueError("give exactly one of num_samples (intervals per ray) and step_size (interval length)")
    dev = t_near.device
    valid = t_far > t_near
    if hit is not None:
        check_tensor(hit, "hit", trailing=(None,), max_dims=1, device=dev)
        if hit.dtype != torch.bool or hit.shape != t_near.shape:
            raise ValueError(f"hit must be a bool tensor of shape {tuple(t_near.shape)}; got {hit.dtype} "
                             f"{tuple(hit.shape)}")
        valid = valid & hit
    length = torch.where(valid, t_far - t_near, torch.zeros_like(t_near))
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError(f"num_samples must be a positive int (samples per ray); got {num_samples!r}")
        counts = torch.where(valid, num_samples, 0)
    else:
        step = check_number(step_size, "step_size", lo=0.0, lo_open=True)
        check_positive_int(max_samples_per_ray, "max_samples_per_ray")
        n = torch.ceil(length.detach() / step).clamp(1, max_samples_per_ray)
        counts = torch.where(valid, n, 0)
    ray_indices, local, offsets, counts = _pack(counts)
    n = counts.index_select(0, ray_indices).to(t_near.dtype)
    upper = local.to(t_near.dtype) + 1
    if jitter:
        u = torch.rand(upper.shape, generator=generator, device=dev, dtype=t_near.dtype) - 0.5
        upper = torch.where(upper < n, upper + u, upper)
    frac_hi = upper / n
    frac_lo = torch.cat([frac_hi.new_zeros(1), frac_hi[:-1]]) if frac_hi.numel() else frac_hi
    frac_lo = torch.where(local == 0, torch.zeros_like(frac_lo), frac_lo)
    start = t_near.index_select(0, ray_indices)
    span = length.index_select(0, ray_indices)
    samples = RaySamples(start + frac_lo * span, start + frac_hi * span, ray_indices, offsets, counts)
    if occupied is not None:
        if origins is None or directions is None:
            raise ValueError("occupied needs the rays: pass origins and directions [R, 3] as well")
        samples = keep_occupied(samples, origins, directions, occupied)
    return samples


def keep_occupied(samples: RaySamples, origins: torch.Tensor, directions: torch.Tensor,
                  occupied: Callable[[torch.Tensor], torch.Tensor]) -> RaySamples:
    """Drop the samples whose midpoints lie in empty space.

    Args:
        samples: :class:`RaySamples` of ``R`` rays.
        origins, directions: ``[R, 3]`` the rays.
        occupied: callable taking midpoint positions ``[S, 3]`` (evaluated without gradients) and returning a
            bool ``[S]`` that is true where a sample must be kept (an occupancy grid's lookup, a bounding shape).

    Returns:
        The kept samples as :class:`RaySamples` (gaps between kept intervals are empty space).

    **Differentiability:** the kept intervals carry the gradients of ``samples``; the choice is discrete.
    """
    if not callable(occupied):
        raise TypeError(f"occupied must be a callable (positions [S, 3] -> bool [S]); got {type(occupied).__name__}")
    with torch.no_grad():
        keep = occupied(samples.positions(origins.detach(), directions.detach()))
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != (samples.num_samples,):
        got = f"{keep.dtype} {tuple(keep.shape)}" if isinstance(keep, torch.Tensor) else type(keep).__name__
        raise ValueError(f"occupied must return a bool tensor of shape [{samples.num_samples}] (one per sample); "
                         f"got {got}")
    return samples.select(keep)


def cull_terminated(samples: RaySamples, sigmas: torch.Tensor, early_stop_eps: float = 1e-4
                    ) -> Tuple[RaySamples, torch.Tensor]:
    """Drop the samples behind which the ray is (nearly) opaque: those with transmittance ``T_i < early_stop_eps``.

    Use it between a cheap density pass (without gradients) and the colour pass, as instant-ngp does; the
    kept samples composite to the same image up to ``early_stop_eps`` (the weight the dropped samples had).

    Args:
        samples: :class:`RaySamples`.
        sigmas: ``[S]`` densities of ``samples``.
        early_stop_eps: transmittance threshold in ``(0, 1)``.

    Returns:
        ``(kept RaySamples, keep [S] bool)``; index per-sample tensors with ``keep`` to match.

    **Differentiability:** none (a selection); evaluate the field again on the kept samples for gradients.
    """
    eps = check_number(early_stop_eps, "early_stop_eps", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    with torch.no_grad():
        _, trans = render_weights(sigmas.detach(), samples.t_starts.detach(), samples.t_ends.detach(),
                                  samples.ray_indices, samples.num_rays)
    keep = trans >= eps
    return samples.select(keep), keep


def importance_samples(coarse: RaySamples, weights: torch.Tensor, num_samples: int, *, jitter: bool = True,
                       generator: Optional[torch.Generator] = None, padding: float = 1e-5,
                       include_coarse: bool = False) -> RaySamples:
    """Draw ``num_samples`` intervals per ray where the coarse weights are (hierarchical / NeRF "fine" sampling).

    Per ray the coarse intervals get probabilities ``p_i = (w_i + padding) / sum_j (w_j + padding)``, piecewise
    uniform inside each interval. ``num_samples + 1`` edges are placed at the inverse CDF of stratified
    ``u_k = (k + xi_k) / (num_samples + 1)`` (``xi_k`` uniform in ``[0, 1)``, or ``1/2`` without ``jitter``),
    searched on the packed layout with one global ``searchsorted`` over ``ray + CDF``; consecutive edges are
    the new intervals. Rays with no coarse samples get none.

    Args:
        coarse: :class:`RaySamples` of the coarse pass.
        weights: ``[S]`` non-negative compositing weights of the coarse samples (:func:`render_weights`).
        num_samples: intervals per ray (``> 0``).
        jitter: stratified random ``u`` (training) or evenly spaced (rendering).
        generator: random generator for the jitter.
        padding: added to every weight (``>= 0``) so that no interval has zero probability; where a ray's
            weights and padding are all 0 its intervals are taken as equally likely.
        include_coarse: also cut at the coarse edges and keep only what lies inside coarse intervals (NeRF's
            fine pass on the union of coarse and fine samples): the result then subdivides exactly the coarse
            intervals, at every coarse and fine edge.

    Returns:
        :class:`RaySamples` with ``num_samples`` intervals on every ray that had coarse samples (with
        ``include_coarse``: up to ``num_samples + 2 * coarse count`` intervals, zero-length ones dropped).

    Example: two coarse intervals ``[0, 1], [1, 2]`` with weights ``[0, 1]``, ``padding = 0``,
    ``jitter = False``: every edge lands in ``[1, 2]``, at ``1 + (k + 1/2) / (num_samples + 1)``.

    **Differentiability:** none: the new intervals are detached from ``weights`` and ``coarse`` (as in NeRF).
    """
    if not isinstance(coarse, RaySamples):
        raise TypeError(f"coarse must be RaySamples; got {type(coarse).__name__}")
    check_tensor(weights, "weights", trailing=(None,), max_dims=1, floating=True, finite=True,
                 device=coarse.t_starts.device)
    S, R = coarse.num_samples, coarse.num_rays
    if weights.shape[0] != S:
        raise ValueError(f"weights must have one entry per coarse sample ([S] = [{S}]); got {tuple(weights.shape)}")
    if S and bool((weights < 0).any()):
        raise ValueError("weights must be non-negative")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int (samples per ray); got {num_samples!r}")
    padding = check_number(padding, "padding", lo=0.0)
    check_packed(coarse.ray_indices, R, coarse.t_starts, coarse.t_ends)
    dev, dt = weights.device, coarse.t_starts.dtype
    with torch.no_grad():
        ri = coarse.ray_indices
        pdf = weights.detach().double() + padding
        total = pdf.new_zeros(R).index_add(0, ri, pdf)
        count = coarse.counts.double().clamp_min(1)
        p = torch.where(total[ri] > 0, pdf / total[ri].clamp_min(1e-300), 1.0 / count[ri])
        cdf_lo = segment_exclusive_cumsum(p, ri, coarse.offsets)
        keys = ri.double() + cdf_lo  # increasing over the packed layout: ray r's keys lie in [r, r + 1)
        rays = (coarse.counts > 0).nonzero()[:, 0]
        m = num_samples + 1
        k = torch.arange(m, device=dev, dtype=torch.float64)
        xi = torch.rand(rays.shape[0], m, generator=generator, device=dev, dtype=torch.float64) if jitter else 0.5
        u = (k + xi) / m  # [Rh, m] in (0, 1), increasing along the row
        query = rays.double()[:, None] + u
        idx = torch.searchsorted(keys, query.reshape(-1), right=True).reshape(query.shape) - 1
        first = coarse.offsets[rays][:, None]
        idx = torch.minimum(torch.maximum(idx, first), first + coarse.counts[rays][:, None] - 1)
        frac = ((u - cdf_lo[idx]) / p[idx].clamp_min(1e-300)).clamp(0.0, 1.0)
        t0, t1 = coarse.t_starts.double()[idx], coarse.t_ends.double()[idx]
        edges = torch.cummax(t0 + frac * (t1 - t0), dim=1).values.to(dt)  # cummax: exactly sorted after rounding
        if include_coarse:
            return _merge_edges(coarse, edges, rays)
        counts = torch.zeros(R, dtype=torch.int64, device=dev).index_fill(0, rays, num_samples)
        ray_indices, _, offsets, counts = _pack(counts)
        return RaySamples(edges[:, :-1].reshape(-1), edges[:, 1:].reshape(-1), ray_indices, offsets, counts)


def _merge_edges(coarse: RaySamples, edges: torch.Tensor, rays: torch.Tensor) -> RaySamples:
    """Cut the coarse intervals at the extra ``edges [Rh, m]`` of rays ``rays [Rh]``: every coarse start / end
    and extra edge of a ray, sorted by ``(ray, t)``; an interval between consecutive edges is kept where it
    has positive length and lies inside a coarse interval. Coarse starts count +1 and ends -1, so the running
    sum after an edge says whether the ray is inside a coarse interval there (each ray's markers sum to 0,
    so one global cumulative sum serves every ray; at equal ``t`` ends sort before extra edges before starts)."""
    S, m = coarse.num_samples, edges.shape[1]
    ri = coarse.ray_indices
    t = torch.cat([coarse.t_starts, coarse.t_ends, edges.reshape(-1)])
    ray = torch.cat([ri, ri, rays.repeat_interleave(m)])
    marker = torch.cat([torch.ones(S, dtype=torch.int64, device=t.device),
                        -torch.ones(S, dtype=torch.int64, device=t.device),
                        torch.zeros(edges.numel(), dtype=torch.int64, device=t.device)])
    order = torch.sort(marker, stable=True).indices  # lexicographic (ray, t, marker) by stable sorts
    order = order[torch.sort(t[order], stable=True).indices]
    order = order[torch.sort(ray[order], stable=True).indices]
    t, ray, marker = t[order], ray[order], marker[order]
    inside = torch.cumsum(marker, 0) > 0
    keep = (ray[1:] == ray[:-1]) & inside[:-1] & (t[1:] > t[:-1])
    index = keep.nonzero()[:, 0]
    ray_indices = ray.index_select(0, index)
    offsets, counts = ray_offsets(ray_indices, coarse.num_rays)
    return RaySamples(t.index_select(0, index), t.index_select(0, index + 1), ray_indices, offsets, counts)
