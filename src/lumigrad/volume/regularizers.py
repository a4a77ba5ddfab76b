"""Regularizers for fitting volumes from few views: distortion, opacity entropy, sparsity, depth supervision.

All are functional ops on the packed sample layout of :mod:`lumigrad.volume.packing` (or on per-ray renders)
and return per-element losses unless stated; the caller weights and averages them. Total variation of a grid
is :func:`lumigrad.volume.fields.grid_total_variation` (not repeated here).

* :func:`distortion_loss` (mip-NeRF 360): pulls each ray's weights into one compact interval; removes
  floaters and "fog" spread along the ray.
* :func:`opacity_entropy_loss`: binary entropy of the per-ray opacity; pushes every pixel to fully
  transparent or fully opaque.
* :func:`sparsity_loss`: L1 or Cauchy penalty on densities (or weights); empties space nothing asks to fill.
* :func:`depth_loss`: robust, masked supervision of rendered depth by a depth map with holes.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

import torch

from .._checks import check_choice, check_number, check_tensor
from .packing import check_packed, ray_offsets, segment_exclusive_cumsum

__all__ = ["distortion_loss", "distortion_loss_ref", "opacity_entropy_loss", "sparsity_loss", "depth_loss"]

RangeLike = Union[None, float, torch.Tensor]


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.device.type == "mps" else torch.float64


def _check_range(t_near: RangeLike, t_far: RangeLike, ray_indices, num_rays, like: torch.Tensor):
    """Validate the optional normalisation range; return per-sample ``(near [S], span [S])`` or ``None``."""
    if (t_near is None) != (t_far is None):
        raise ValueError("t_near and t_far must be given together (both None: raw t distances)")
    if t_near is None:
        return None
    per_sample = []
    for name, v in (("t_near", t_near), ("t_far", t_far)):
        if isinstance(v, torch.Tensor):
            check_tensor(v, name, trailing=(None,), min_dims=0, max_dims=1, floating=True, device=like.device)
            if v.dim() == 1 and v.shape[0] != num_rays:
                raise ValueError(f"{name} must be a number or have shape [num_rays] = [{num_rays}]; "
                                 f"got {tuple(v.shape)}")
            v = v.to(like.dtype)
            per_sample.append(v.index_select(0, ray_indices.long()) if v.dim() == 1 else v.expand(like.shape))
        else:
            per_sample.append(like.new_full(like.shape, check_number(v, name)))
    near, far = per_sample
    span = far - near
    if span.numel():
        finite = torch.isfinite(near.detach()).all() & torch.isfinite(span.detach()).all()
        lo, finite = torch.stack([span.detach().min(), finite.to(span.dtype)]).tolist()  # one read-back
        if finite < 1:
            raise ValueError("t_near and t_far must be finite for every ray that has samples")
        if lo <= 0:
            raise ValueError("t_far must exceed t_near for every ray that has samples (the normalised distance "
                             f"divides by t_far - t_near); got a smallest difference of {lo:.4g}")
    return near, span


def distortion_loss(weights: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                    ray_indices: torch.Tensor, num_rays: int, *, t_near: RangeLike = None,
                    t_far: RangeLike = None) -> torch.Tensor:
    """Compute mip-NeRF 360's distortion loss of each ray's weights, in O(samples).

    For a ray with samples ``i`` (intervals ``[s_i, e_i]``, midpoints ``m_i = (s_i + e_i) / 2``, weights
    ``w_i``) the loss is

        L = sum_{i, j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (e_i - s_i),

    the exact integral ``int int w(u) w(v) |u - v| du dv`` of the step function that spreads each ``w_i``
    uniformly over its interval. The first term pulls weight together; the second shrinks each interval's
    weight. It is smallest (0) for a ray with no weight and small for a ray whose weight sits in one short
    interval, so it removes floaters (weight far from the surface) and fog (weight spread along the ray).

    The double sum is evaluated with per-ray prefix sums over the packed layout (midpoints are sorted within a
    ray): ``sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_i - M_i)`` with ``W_i = sum_{j<i} w_j``,
    ``M_i = sum_{j<i} w_j m_j`` over the earlier samples of the same ray. The sums run in float64 (float32
    on MPS) so that the global prefix sum behind :func:`~lumigrad.volume.packing.segment_exclusive_cumsum`
    does not lose the per-ray differences; the result is cast back.

    **Distance normalisation.** With ``t_near`` and ``t_far`` the intervals are measured in the normalised
    distance ``u = (t - t_near) / (t_far - t_near)`` of each ray (``u`` in ``[0, 1]`` over the ray's range),
    as mip-NeRF 360 does (it normalises a contracted distance; this op uses the plain linear map, so use it on
    bounded scenes or pass already-contracted ``t``). Then the loss does not depend on the scene's scale or on
    how long each ray's range is, and one weight (mip-NeRF 360: 0.01) suits every scene. Without them the loss
    is in units of ``t`` and scales with the scene size.

    Args:
        weights: ``[S]`` float, non-negative compositing weights (:func:`~lumigrad.volume.render_weights`, or
            ``composite(..., return_weights=True).weights``).
        t_starts, t_ends: ``[S]`` float, sample intervals, sorted and non-overlapping within each ray.
        ray_indices: ``[S]`` int, sorted (non-decreasing): the ray of each sample.
        num_rays: ``R``; rays without samples get 0.
        t_near, t_far: optional range of each ray for the normalised distance: numbers (one range for all
            rays) or ``[R]`` float tensors (e.g. from :func:`~lumigrad.volume.ray_aabb`); ``t_far > t_near``
            is required for rays with samples. Both or neither.

    Returns:
        ``[R]`` per-ray loss in the dtype of ``weights`` (take the mean over rays for a scalar).

    Example: one ray, one sample of weight 1 on ``[0, 3]``: only the second term, ``1/3 * 1 * 3 = 1``. Two
    samples of weight 1/2 on ``[0, 1]`` and ``[2, 3]``: ``2 * 1/4 * 2 + 1/3 * (1/4 + 1/4) = 1 + 1/6``::

        >>> w, s, e = torch.tensor([0.5, 0.5]), torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0])
        >>> round(distortion_loss(w, s, e, torch.tensor([0, 0]), 1).item(), 4)
        1.1667

    **Differentiability:** differentiable w.r.t. ``weights`` (quadratic), ``t_starts`` and ``t_ends``
    (piecewise linear: ``|m_i - m_j|`` is smooth because midpoints are distinct within a ray unless intervals
    have zero length) and, when given as tensors, ``t_near`` and ``t_far``. Gradients reach the densities
    through the weights (the op does not see them).

    Raises:
        TypeError / ValueError: naming the argument, for NaN / Inf or negative ``weights``, mismatched lengths,
            unsorted ``ray_indices`` or indices outside ``[0, num_rays)``, ``t_ends < t_starts``, overlapping
            intervals, only one of ``t_near`` / ``t_far``, or ``t_far <= t_near`` on a ray with samples.
    """
    check_tensor(weights, "weights", trailing=(None,), max_dims=1, floating=True)
    check_tensor(ray_indices, "ray_indices", trailing=(None,), max_dims=1, floating=False, device=weights.device)
    check_packed(ray_indices, num_rays, t_starts, t_ends, extra=[("weights", weights, True)])
    dt = _accumulation_dtype(weights)
    w, s, e = (x.to(dt) for x in (weights, t_starts, t_ends))
    rng = _check_range(t_near, t_far, ray_indices, num_rays, w)
    if rng is not None:
        near, span = rng
        s, e = (s - near) / span, (e - near) / span
    return _distortion_unchecked(w, s, e, ray_indices.long(), num_rays).to(weights.dtype)


def _distortion_unchecked(w, s, e, ray_indices, num_rays):
    """:func:`distortion_loss` on already-normalised float64 intervals, without checks."""
    offsets, _ = ray_offsets(ray_indices, num_rays)
    m = 0.5 * (s + e)
    w_before = segment_exclusive_cumsum(w, ray_indices, offsets)
    wm_before = segment_exclusive_cumsum(w * m, ray_indices, offsets)
    per_sample = 2.0 * w * (m * w_before - wm_before) + (1.0 / 3.0) * w.square() * (e - s)
    return per_sample.new_zeros(num_rays).index_add(0, ray_indices, per_sample)


def distortion_loss_ref(weights: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                        ray_indices: torch.Tensor, num_rays: int, *, t_near: RangeLike = None,
                        t_far: RangeLike = None) -> torch.Tensor:
    """The O(n^2)-per-ray float64 twin of :func:`distortion_loss`: the double sum over all pairs, ray by ray.

    Same arguments and result; for tests (a Python loop over rays, no checks).

    **Differentiability:** ordinary autograd of the double sum.
    """
    dt = _accumulation_dtype(weights)
    w, s, e = (x.to(dt) for x in (weights, t_starts, t_ends))
    ray_indices = ray_indices.long()
    if t_near is not None:
        near = t_near if isinstance(t_near, torch.Tensor) else torch.tensor(float(t_near))
        far = t_far if isinstance(t_far, torch.Tensor) else torch.tensor(float(t_far))
        near, far = near.to(dt), far.to(dt)
        if near.dim() == 1:
            near, far = near[ray_indices], far[ray_indices]
        s, e = (s - near) / (far - near), (e - near) / (far - near)
    out = []
    for r in range(num_rays):
        sel = ray_indices == r
        wr, sr, er = w[sel], s[sel], e[sel]
        m = 0.5 * (sr + er)
        pair = (wr[:, None] * wr[None, :] * (m[:, None] - m[None, :]).abs()).sum()
        out.append(pair + (wr.square() * (er - sr)).sum() / 3.0)
    return (torch.stack(out) if out else w.new_zeros(0)).to(weights.dtype)


def opacity_entropy_loss(opacity: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Binary entropy (in bits) of each ray's accumulated opacity: pushes pixels to fully clear or fully opaque.

    ``H(a) = -(a log2 a + (1 - a) log2 (1 - a))`` with ``a`` clamped to ``[eps, 1 - eps]``; ``H`` is 1 at
    ``a = 1/2`` and about 0 at 0 and 1. Semi-transparent pixels are how a few-view fit hides floaters and
    fog; on scenes whose pixels are either background or solid object (objects on a transparent
    background) this term removes them. Do not use it where the true opacity is fractional (hair, smoke,
    anti-aliased edges are only mildly affected at pixel scale).

    Args:
        opacity: ``[...]`` float, per-ray opacity ``sum_i w_i`` (``composite(...).opacity``), in ``[0, 1]``;
            rounding of up to ``1e-3`` beyond either end is tolerated (clamped).
        eps: clamp margin in ``(0, 0.5)``; keeps the loss and its gradient finite at exactly 0 and 1.

    Returns:
        ``[...]`` per-ray entropy, dtype of ``opacity``.

    Example::

        >>> opacity_entropy_loss(torch.tensor([0.0, 0.5, 1.0])).tolist()[1]
        1.0

    **Differentiability:** ``dH/da = log2((1 - a) / a)``: it pushes ``a`` away from 1/2 towards the nearer
    end, with a slope bounded by ``log2(1 / eps)``. Outside ``[eps, 1 - eps]`` the clamp gives zero gradient
    (the value there is already ~0).

    Raises:
        TypeError / ValueError: for a non-float tensor, NaN / Inf, values outside ``[-1e-3, 1 + 1e-3]`` or
            ``eps`` outside ``(0, 0.5)``.
    """
    check_tensor(opacity, "opacity", floating=True, finite=True)
    eps = check_number(eps, "eps", lo=0.0, hi=0.5, lo_open=True, hi_open=True)
    if opacity.numel():
        lo, hi = torch.aminmax(opacity.detach())
        if float(lo) < -1e-3 or float(hi) > 1 + 1e-3:
            raise ValueError(f"opacity must lie in [0, 1]; got values in [{float(lo):.4g}, {float(hi):.4g}]")
    a = opacity.clamp(eps, 1 - eps)
    return -(a * torch.log2(a) + (1 - a) * torch.log2(1 - a))


def sparsity_loss(values: torch.Tensor, *, kind: Literal["l1", "cauchy"] = "cauchy",
                  scale: float = 1.0) -> torch.Tensor:
    """Sparsity penalty on densities (or weights): empties space that no view needs filled.

    ``"l1"``: ``|x|``, a constant pull to 0 (for densities sampled along rays with ``delta``-weighted
    means it approximates the integrated density). ``"cauchy"``: ``log(1 + (x / scale)^2)`` (SNeRG, Plenoxels:
    ``scale^2 = 0.5``), which pulls small values to 0 strongly and saturates for large ones, so solid surfaces
    are not thinned; ``scale`` is where it turns from quadratic to logarithmic.

    Use it on the densities of random points or of the ray samples (``sigmas``), or on compositing weights.
    Weight it low (1e-4 .. 1e-2 of a mean-squared photometric loss): too much erodes thin structure.

    Args:
        values: ``[...]`` float, finite (e.g. ``sigmas [S]``).
        kind: ``"l1"`` or ``"cauchy"``.
        scale: ``> 0``, the Cauchy scale in the units of ``values`` (ignored by ``"l1"``).

    Returns:
        ``[...]`` per-element penalty, dtype of ``values`` (take the mean).

    Example::

        >>> sparsity_loss(torch.tensor([0.0, 1.0]), kind="cauchy").tolist()  # [0, log 2]
        [0.0, 0.6931471824645996]

    **Differentiability:** ``"cauchy"`` is smooth (``2 x / (scale^2 + x^2)``); ``"l1"`` has gradient
    ``sign(x)``, 0 at 0.
    """
    check_tensor(values, "values", floating=True, finite=True)
    check_choice(kind, "kind", ("l1", "cauchy"))
    scale = check_number(scale, "scale", lo=0.0, lo_open=True)
    if kind == "l1":
        return values.abs()
    return torch.log1p((values / scale).square())


def depth_loss(depth: torch.Tensor, target_depth: torch.Tensor, opacity: Optional[torch.Tensor] = None,
               mask: Optional[torch.Tensor] = None, *, kind: Literal["huber", "l1", "l2"] = "huber",
               delta: float = 0.1, reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
    """Supervise rendered depth with a (possibly incomplete) depth map: a robust, masked per-ray loss.

    **Unknown depth.** A target that is ``NaN``, infinite or ``<= 0`` (in practice ``0`` or ``NaN``) marks a ray
    without depth (sensor holes, background pixels), as in :func:`lumigrad.losses.depth_loss`; such rays, and
    those with ``mask`` false, contribute nothing and get no gradient.

    This is the per-ray counterpart of :func:`lumigrad.losses.depth_loss`, which compares camera-``z`` depth
    *images* (L1 / L2 / log, optionally scale-invariant); this one takes packed rays' distances along the ray,
    adds the robust Huber form and the opacity weighting that volume renders need.

    Per valid ray ``r`` with residual ``x = depth_r - target_r``: ``"l2"``: ``x^2``; ``"l1"``: ``|x|``;
    ``"huber"``: ``x^2 / (2 delta)`` for ``|x| < delta``, else ``|x| - delta / 2`` (L1 beyond ``delta``, so
    wrong depths in the map and a ray's early, fully wrong guesses do not dominate). With ``opacity`` each ray
    is weighted by its (detached) opacity, so rays the model renders nearly transparent, whose normalised
    depth is ill-defined, count little, and the loss cannot be lowered by making rays transparent.

    Args:
        depth: ``[R]`` or ``[R, 1]`` float, rendered expected depth (``composite(...).depth``).
        target_depth: same shape, the depth per ray, NaN / Inf / ``<= 0`` where unknown; in ``t`` units
            (distance along unit rays, not camera z: divide a camera-z depth by ``directions . forward``).
        opacity: optional, same shape, float in ``[0, 1]``: per-ray weights (detached).
        mask: optional, same shape, bool: rays to use.
        kind: ``"huber"``, ``"l1"`` or ``"l2"``.
        delta: ``> 0``, the Huber threshold, in units of depth.
        reduction: ``"mean"``: the (opacity-weighted) mean over valid rays, a scalar, 0 when no ray is valid;
            ``"none"``: ``[R]`` / ``[R, 1]`` per-ray losses (0 on invalid rays, unweighted by ``opacity``).

    Returns:
        scalar, or per-ray losses; dtype of ``depth``.

    Example: residuals ``0.05`` and ``1`` with ``delta = 0.1`` and a third ray unknown (``NaN``) -> mean of
    ``0.0125`` and ``0.95``::

        >>> d = torch.tensor([1.05, 3.0, 2.0]); t = torch.tensor([1.0, 2.0, float("nan")])
        >>> round(depth_loss(d, t).item(), 5)
        0.48125

    **Differentiability:** w.r.t. ``depth`` only (``target_depth``, ``opacity`` and ``mask`` get none); Huber
    and L2 are smooth, L1 has ``sign`` gradient (0 at 0). Unknown targets are replaced before the residual, so
    NaN never reaches the gradient.

    Raises:
        TypeError / ValueError: for mismatched shapes or devices, NaN / Inf ``depth``, ``opacity`` outside
            ``[0, 1]``, a non-bool ``mask``, or bad ``kind`` / ``delta`` / ``reduction``.
    """
    check_tensor(depth, "depth", min_dims=1, max_dims=2, floating=True, finite=True)
    if depth.dim() == 2 and depth.shape[1] != 1:
        raise ValueError(f"depth must have shape [R] or [R, 1]; got {tuple(depth.shape)}")
    check_tensor(target_depth, "target_depth", floating=True, device=depth.device)
    if target_depth.shape != depth.shape:
        raise ValueError(f"target_depth must have the shape of depth {tuple(depth.shape)}; "
                         f"got {tuple(target_depth.shape)}")
    check_choice(kind, "kind", ("huber", "l1", "l2"))
    check_choice(reduction, "reduction", ("mean", "none"))
    delta = check_number(delta, "delta", lo=0.0, lo_open=True)
    target = target_depth.detach().to(depth.dtype)
    valid = torch.isfinite(target) & (target > 0)
    if mask is not None:
        check_tensor(mask, "mask", device=depth.device)
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor; got {mask.dtype}")
        if mask.shape != depth.shape:
            raise ValueError(f"mask must have the shape of depth {tuple(depth.shape)}; got {tuple(mask.shape)}")
        valid = valid & mask
    weight = torch.ones_like(depth)
    if opacity is not None:
        check_tensor(opacity, "opacity", floating=True, finite=True, device=depth.device)
        if opacity.shape != depth.shape:
            raise ValueError(f"opacity must have the shape of depth {tuple(depth.shape)}; "
                             f"got {tuple(opacity.shape)}")
        if opacity.numel() and (float(opacity.detach().min()) < -1e-3 or float(opacity.detach().max()) > 1 + 1e-3):
            raise ValueError("opacity must lie in [0, 1]")
        weight = opacity.detach().to(depth.dtype).clamp(0, 1)
    x = depth - torch.where(valid, target, depth.detach())  # unknown targets never enter the residual
    if kind == "l2":
        per_ray = x.square()
    elif kind == "l1":
        per_ray = x.abs()
    else:
        ax = x.abs()
        per_ray = torch.where(ax < delta, 0.5 * x.square() / delta, ax - 0.5 * delta)
    per_ray = torch.where(valid, per_ray, torch.zeros_like(per_ray))
    if reduction == "none":
        return per_ray
    w = torch.where(valid, weight, torch.zeros_like(weight))
    return (w * per_ray).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)
