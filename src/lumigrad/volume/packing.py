"""The packed sample layout shared by the volume ops: flat samples ``[S]`` plus sorted ``ray_indices [S]``.

Samples of ray ``r`` are the contiguous run ``[offsets[r], offsets[r] + counts[r])`` of the flat arrays, in
increasing ``t`` (as nerfacc packs them). This module derives offsets and counts from ray indices, computes
segment (per-ray) sums, and validates a packed layout at the public boundary.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

from .._checks import check_tensor

__all__ = ["ray_offsets", "segment_exclusive_cumsum", "check_packed"]


def ray_offsets(ray_indices: torch.Tensor, num_rays: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return ``(offsets [R], counts [R])`` (int64) of sorted ``ray_indices [S]``: ray ``r`` owns samples
    ``[offsets[r], offsets[r] + counts[r])``. Rays without samples have ``count 0``.

    Example: ``ray_indices = [0, 0, 2]``, ``num_rays = 3`` -> ``offsets = [0, 2, 2]``, ``counts = [2, 0, 1]``.

    **Differentiability:** none (integer outputs).
    """
    counts = torch.bincount(ray_indices, minlength=num_rays) if ray_indices.numel() else \
        torch.zeros(num_rays, dtype=torch.int64, device=ray_indices.device)
    offsets = torch.cumsum(counts, 0) - counts
    return offsets, counts


def segment_exclusive_cumsum(x: torch.Tensor, ray_indices: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Per-ray exclusive cumulative sum of packed ``x [S]``: ``out_i = sum of x_j over earlier samples j of i's ray``.

    Computed as a global cumulative sum minus its value where the ray starts (exact in float64 for the sizes
    the tests use; precision falls with the magnitude of the global sum).

    Example: ``x = [1, 2, 3]``, ``ray_indices = [0, 0, 1]`` -> ``[0, 1, 0]``.

    **Differentiability:** linear in ``x``.
    """
    if x.numel() == 0:
        return x.clone()
    inclusive = torch.cumsum(x, 0)
    exclusive = inclusive - x
    return exclusive - exclusive.index_select(0, offsets.index_select(0, ray_indices))


def check_packed(ray_indices, num_rays, t_starts=None, t_ends=None, *, names=("t_starts", "t_ends"),
                 extra=()) -> None:
    """Validate a packed layout: ``ray_indices [S]`` integer, sorted, in ``[0, num_rays)``; if given, intervals
    ``t_starts / t_ends [S]`` finite, ``t_ends >= t_starts`` and, within a ray, sorted and non-overlapping
    (``t_starts[i + 1] >= t_ends[i]``). ``extra`` is a sequence of ``(name, tensor, non_negative)`` per-sample
    float tensors checked to be finite (and ``>= 0``) in the same pass. Raises ``TypeError`` / ``ValueError``
    naming the argument.

    All conditions are reduced to a handful of scalars read back at once (one host sync on CUDA).
    """
    if isinstance(num_rays, bool) or not isinstance(num_rays, int) or num_rays < 0:
        raise ValueError(f"num_rays must be a non-negative int; got {num_rays!r}")
    check_tensor(ray_indices, "ray_indices", trailing=(None,), max_dims=1, floating=False)
    if ray_indices.dtype == torch.uint8:
        raise TypeError("ray_indices must be int32 or int64; got torch.uint8")
    S = ray_indices.shape[0]
    dev = ray_indices.device
    floats = []
    if t_starts is not None:
        floats += [(names[0], t_starts, False), (names[1], t_ends, False)]
    floats += list(extra)
    for name, t, _ in floats:
        check_tensor(t, name, trailing=(None,), min_dims=1, floating=True, device=dev)
        if t.shape[0] != S:
            raise ValueError(f"{name} must have one entry per sample ([S] = [{S}], like ray_indices); "
                             f"got {tuple(t.shape)}")
    if S == 0:
        return
    stats = [ray_indices[0].double(), ray_indices[-1].double()]
    step = ray_indices[1:] - ray_indices[:-1] if S > 1 else None
    if step is not None:
        stats.append(step.min().double())
    for _, t, _ in floats:
        if t.numel() == 0:  # e.g. values [S, 0]
            stats += [torch.zeros((), dtype=torch.float64, device=dev)] * 2
            continue
        lo, hi = torch.aminmax(t.detach())
        stats += [lo.double(), hi.double()]
    if t_starts is not None:
        stats.append((t_ends.detach() - t_starts.detach()).min().double())
        if step is not None:
            gap = t_starts.detach()[1:] - t_ends.detach()[:-1]
            stats.append(torch.where(step == 0, gap, torch.zeros_like(gap)).min().double())
    values = torch.stack(stats).tolist()  # one read-back
    first, last = values[0], values[1]
    k = 2
    if step is not None:
        if values[k] < 0:
            raise ValueError("ray_indices must be sorted (non-decreasing): the samples of each ray must be "
                             "contiguous in the packed arrays")
        k += 1
    if first < 0 or last >= num_rays:
        raise ValueError(f"ray_indices must lie in [0, num_rays) = [0, {num_rays}); got values in "
                         f"[{int(first)}, {int(last)}]")
    for name, _, non_negative in floats:
        lo, hi = values[k], values[k + 1]
        k += 2
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or Inf values")
        if non_negative and lo < 0:
            hint = " (map the field's raw output through softplus, ReLU or exp)" if name == "sigmas" else ""
            raise ValueError(f"{name} must be non-negative; got a minimum of {lo:.4g}{hint}")
    if t_starts is None:
        return
    start_name, end_name = names
    if values[k] < 0:
        raise ValueError(f"{end_name} must be >= {start_name} for every sample (intervals [t_start, t_end])")
    if step is not None and values[k + 1] < 0:
        raise ValueError(f"the intervals [{start_name}, {end_name}] of each ray must be sorted and must not "
                         "overlap: t_starts[i + 1] >= t_ends[i] within a ray")
