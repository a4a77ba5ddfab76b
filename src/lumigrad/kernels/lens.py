"""Torch-facing wrapper of the lens-undistortion kernel."""

from __future__ import annotations

from typing import Tuple

import torch

from . import lens_kernels as lk
from ._runtime import as_warp, ensure_init, launch_split

MODEL_CODES = {"opencv": 0, "fisheye": 1}


@torch.no_grad()
def undistort_newton(target: torch.Tensor, coeffs: torch.Tensor, model: str, iterations: int,
                     tol: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Solve ``distort(p) = target`` per point by Newton's method from ``p = target``, in float64.

    Args:
        target: ``[P, 2]`` distorted normalized coordinates; coeffs: ``[P, C]`` per-point coefficients.

    Returns:
        ``(p [P, 2] float64, status [P] int32)``: 0 converged, 1 singular Jacobian, 2 not converged.
    """
    ensure_init()
    t = target.detach().double().contiguous()
    c = coeffs.detach().double().contiguous()
    out = torch.empty_like(t)
    status = torch.empty(t.shape[0], dtype=torch.int32, device=t.device)
    launch_split(lk.undistort_points, t.shape[0],
                 [as_warp(t), as_warp(c), MODEL_CODES[model], int(iterations), float(tol), as_warp(out),
                  as_warp(status)], t.device, min_chunk=8192)
    return out, status
