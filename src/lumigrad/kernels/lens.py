"""Torch-facing wrapper of the lens-undistortion kernel."""

from __future__ import annotations

from typing import Tuple

import torch

from . import lens_kernels as lk
from ._runtime import ensure_init, launch_split

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
                 [t, c, MODEL_CODES[model], int(iterations), float(tol), out, status], t.device, min_chunk=8192)
    return out, status


def _intrinsics(K: torch.Tensor) -> torch.Tensor:
    return torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1]], -1).double().contiguous()


@torch.no_grad()
def lens_grid(K: torch.Tensor, K_pinhole: torch.Tensor, coeffs: torch.Tensor, model: str, width: int,
              height: int, samples: int, iterations: int = 20,
              tol: float = 1e-12) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resampling grid ``[N, H, W, S^2, 2]`` (float64 pinhole pixel positions) and status ``[N*H*W*S^2]``.

    Args:
        K, K_pinhole: ``[N, 3, 3]`` intrinsics of the distorted camera and of its pinhole cover.
        coeffs: ``[N, C]`` distortion coefficients of each view.
    """
    ensure_init()
    N = K.shape[0]
    count = N * height * width * samples * samples
    out = torch.empty(count, 2, dtype=torch.float64, device=K.device)
    status = torch.empty(count, dtype=torch.int32, device=K.device)
    launch_split(lk.lens_grid, count,
                 [_intrinsics(K.detach()), _intrinsics(K_pinhole.detach()), coeffs.detach().double().contiguous(),
                  MODEL_CODES[model], int(width), int(height), int(samples), int(iterations), float(tol), out, status],
                 K.device, min_chunk=8192)
    return out.view(N, height, width, samples * samples, 2), status
