"""Torch-facing launch of the filter importance sampling kernel (:mod:`.filter_sampling_kernels`)."""

from __future__ import annotations

import math
from typing import Tuple

import torch

from . import filter_sampling_kernels as fk
from ._runtime import ensure_init, launch_split

#: ``PixelFilter.kind`` -> the kernel's filter code.
KIND_CODES = {"tent": fk.TENT, "gaussian": fk.GAUSSIAN, "mitchell": fk.CUBIC, "catmullrom": fk.CUBIC,
              "lanczos": fk.LANCZOS}


@torch.no_grad()
def sample_filter_positions(u: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, ranges_x: torch.Tensor,
                            ranges_y: torch.Tensor, knots: torch.Tensor, width: torch.Tensor, ends: torch.Tensor,
                            kind: str, radius: float, stddev: float, b: float, c: float,
                            lobes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(uv [N, 2], weight [N])`` float64 of uniform ``u [N, 2]`` for pixels ``rows, cols [N]``; the tables as
    ``lumigrad.cameras.pixel_filter`` builds them (``ranges_*``: ``[size, 5]`` rows ``(lo, span, span / Z, a,
    b)``; ``knots``, ``ends`` ``[K + 1]``, ``width`` ``[K]``), all on ``u``'s device."""
    ensure_init()
    N = u.shape[0]
    dev = u.device
    uv = torch.empty(N, 2, dtype=torch.float64, device=dev)
    weight = torch.empty(N, dtype=torch.float64, device=dev)
    if N == 0:
        return uv, weight
    alpha = -1.0 / (2.0 * stddev * stddev)
    f64 = lambda t: t.to(dev, torch.float64).contiguous()  # noqa: E731
    launch_split(fk.sample_filter, N,
                 [f64(u), rows.to(dev, torch.int32).contiguous(), cols.to(dev, torch.int32).contiguous(),
                  f64(ranges_x), f64(ranges_y), f64(knots), f64(width), f64(ends), int(width.shape[0]),
                  KIND_CODES[kind], float(radius), alpha, math.exp(alpha * radius * radius), float(b), float(c),
                  float(lobes), uv, weight], dev, min_chunk=16384)
    return uv, weight
