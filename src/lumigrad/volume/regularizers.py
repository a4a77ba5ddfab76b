"""Regularisers of volume renders on packed samples: the distortion loss, opacity entropy, depth supervision.

They answer the failure modes of fitting a field to few or inconsistent views:

* **floaters** (semi-transparent blobs in front of the cameras that explain one view's pixels and spoil the
  others): :func:`distortion_loss` (mip-NeRF 360) pulls each ray's weight into one compact interval;
  :func:`opacity_entropy` pushes each ray's opacity to 0 or 1, so that there is no half-transparent haze;
* **wrong geometry with right colours**: :func:`depth_loss` supervises the expected depth where a depth map
  (a sensor, a structure-from-motion point) is known;
* **noise in grids**: total variation, :func:`lumigrad.volume.fields.grid_total_variation`.

Each returns a per-ray (or per-pixel) tensor; take its mean and weight it (``[loss] distortion`` and
``opacity_entropy`` of a volume fit).
"""

from __future__ import annotations

from typing import Optional

import torch

from .._checks import check_number, check_tensor
from .packing import check_packed, ray_offsets, segment_exclusive_cumsum

__all__ = ["depth_loss", "distortion_loss", "distortion_loss_ref", "opacity_entropy"]


def distortion_loss(weights: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor,
                    num_rays: int, *, t_near: Optional[torch.Tensor] = None,
                    t_far: Optional[torch.Tensor] = None) -> torch.Tensor:
    """mip-NeRF 360's distortion loss of each ray, in O(samples).

    ``L = sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (e_i - s_i)`` over the samples of a ray, with ``m_i`` the
    interval midpoints. The first term is small when the weight sits in one place along the ray, the second when
    the intervals holding it are short. The double sum is evaluated with per-ray prefix sums of ``w`` and ``w m``
    (samples of a ray are sorted by ``t``): ``sum_ij w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_i - (wm)_i)`` with
    ``W_i``, ``(wm)_i`` the sums over the samples in front of ``i``.

    Distances are measured in ray units ``t`` by default. With ``t_near`` / ``t_far`` (``[R]``) they are normalised
    per ray to ``s = (t - t_near) / (t_far - t_near)`` in ``[0, 1]``: the loss then has no units and one weight
    suits scenes of any size (mip-NeRF 360 normalises too, in its contracted space).

    Args:
        weights: ``[S]`` compositing weights (``composite(..., return_weights=True).weights``).
        t_starts, t_ends: ``[S]`` the sample intervals, sorted and non-overlapping within each ray.
        ray_indices: ``[S]`` int, sorted; num_rays: ``R``.
        t_near, t_far: optional ``[R]`` ranges for the normalisation (``t_far > t_near`` where a ray has samples).

    Returns:
        ``[R]`` the loss of each ray (0 for rays without samples).

    **Differentiability:** differentiable in ``weights`` (the usual use: gradients reach the densities through
    them) and in the intervals (and ``t_near`` / ``t_far``).
    """
    check_tensor(weights, "weights", trailing=(None,), max_dims=1, floating=True, finite=True)
    check_packed(ray_indices, num_rays, t_starts, t_ends)
    if weights.shape != t_starts.shape:
        raise ValueError(f"weights must have one value per sample {tuple(t_starts.shape)}; got {tuple(weights.shape)}")
    s, e = t_starts.to(weights.dtype), t_ends.to(weights.dtype)
    if (t_near is None) != (t_far is None):
        raise ValueError("give both t_near and t_far (the per-ray ranges that normalise distances) or neither")
    if t_near is not None:
        for name, t in (("t_near", t_near), ("t_far", t_far)):
            check_tensor(t, name, trailing=(num_rays,), max_dims=1, floating=True, finite=True,
                         device=weights.device)
        near = t_near.to(weights.dtype).index_select(0, ray_indices)
        span = (t_far - t_near).to(weights.dtype).index_select(0, ray_indices)
        if span.numel() and bool((span <= 0).any()):
            raise ValueError("t_far must exceed t_near on every ray with samples")
        s, e = (s - near) / span, (e - near) / span
    offsets, _ = ray_offsets(ray_indices, num_rays)
    mid = 0.5 * (s + e)
    w_before = segment_exclusive_cumsum(weights, ray_indices, offsets)
    wm_before = segment_exclusive_cumsum(weights * mid, ray_indices, offsets)
    per_sample = 2 * weights * (mid * w_before - wm_before) + weights * weights * (e - s) / 3
    return torch.zeros(num_rays, dtype=weights.dtype, device=weights.device).index_add(0, ray_indices, per_sample)


def distortion_loss_ref(weights, t_starts, t_ends, ray_indices, num_rays: int) -> torch.Tensor:
    """:func:`distortion_loss` by the O(n^2) double sum per ray, in float64 (the test's reference)."""
    out = torch.zeros(num_rays, dtype=torch.float64)
    w, s, e = weights.double(), t_starts.double(), t_ends.double()
    for r in range(num_rays):
        sel = ray_indices == r
        if not bool(sel.any()):
            continue
        wr, m = w[sel], 0.5 * (s[sel] + e[sel])
        out[r] = (wr[:, None] * wr[None, :] * (m[:, None] - m[None, :]).abs()).sum() + (wr * wr * (e[sel] - s[sel])).sum() / 3
    return out


def opacity_entropy(opacity: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Binary entropy of each ray's opacity, ``-(a log a + (1 - a) log(1 - a))``, with ``a`` clamped to
    ``[eps, 1 - eps]`` (finite and with a finite gradient at 0 and 1).

    Args:
        opacity: ``[...]`` or ``[..., 1]`` accumulated opacity in ``[0, 1]``.
        eps: the clamp, in ``(0, 0.5)``.

    Returns:
        the entropy per ray, the shape of ``opacity``; 0 at ``a in {0, 1}`` up to the clamp, ``ln 2`` at ``0.5``.

    **Differentiability:** smooth inside the clamp; zero gradient outside it.
    """
    check_tensor(opacity, "opacity", floating=True, finite=True)
    eps = check_number(eps, "eps", lo=0.0, hi=0.5, lo_open=True, hi_open=True)
    a = opacity.clamp(eps, 1 - eps)
    return -(a * a.log() + (1 - a) * (1 - a).log())


def depth_loss(depth: torch.Tensor, target: torch.Tensor, *, opacity: Optional[torch.Tensor] = None,
               delta: float = 0.0) -> torch.Tensor:
    """Depth supervision per ray: squared (or, with ``delta > 0``, Huber) error of the rendered expected depth.

    Args:
        depth: ``[R]`` or ``[R, 1]`` rendered depth (``composite(...).depth``, the weights normalised by opacity).
        target: the same shape: the known depth; ``NaN`` or ``<= 0`` marks a ray whose depth is unknown (no
            sensor return, no point), which contributes 0.
        opacity: optional, the rays' opacity: the error is weighted by it, so that a ray that renders nothing
            is not dragged to the target depth through a vanishing weight sum (the colour loss decides coverage).
        delta: Huber threshold (0: squared error).

    Returns:
        the loss per ray, the shape of ``depth``.

    **Differentiability:** differentiable in ``depth`` (and ``opacity``); the target is data.
    """
    check_tensor(depth, "depth", floating=True, finite=True)
    check_tensor(target, "target", floating=True, device=depth.device)
    if target.shape != depth.shape:
        raise ValueError(f"target must have the shape of depth {tuple(depth.shape)}; got {tuple(target.shape)}")
    delta = check_number(delta, "delta", lo=0.0)
    known = torch.isfinite(target) & (target > 0)
    diff = torch.where(known, depth - torch.where(known, target, torch.zeros_like(target)), torch.zeros_like(depth))
    err = torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=delta) \
        if delta > 0 else diff * diff
    if opacity is not None:
        check_tensor(opacity, "opacity", floating=True, finite=True, device=depth.device)
        if opacity.shape != depth.shape:
            raise ValueError(f"opacity must have the shape of depth {tuple(depth.shape)}; got {tuple(opacity.shape)}")
        err = err * opacity
    return err
