"""Functional pinhole camera maths in lumigrad's OpenCV convention (see ``lumigrad.conventions``).

All functions are differentiable in every tensor argument and broadcast over leading batch dims.
"""

from __future__ import annotations

import math

import torch

from ..conventions import compose_world_to_cam


def transform_points(points: torch.Tensor, world_to_cam: torch.Tensor) -> torch.Tensor:
    """Map world points ``[..., P, 3]`` to the camera frame with ``world_to_cam [..., 4, 4]``: ``R x + t``."""
    R = world_to_cam[..., :3, :3]
    t = world_to_cam[..., None, :3, 3]
    return points @ R.transpose(-1, -2) + t


def project_points(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Project camera-frame points ``[..., P, 3]`` to pixels ``[..., P, 2]`` with intrinsics ``K [..., 3, 3]``.

    ``u = fx x/z + s y/z + cx``, ``v = fy y/z + cy``. Points at ``z = 0`` are projected with ``z = eps``.

    Example: with ``K = [[100, 0, 32], [0, 100, 24], [0, 0, 1]]`` the point ``(0, 0, 5)`` lands at ``(32, 24)``,
    the centre of pixel row 23.5 -> the corner between rows 23 and 24.
    """
    z = points_cam[..., 2]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    x = points_cam[..., 0] / z
    y = points_cam[..., 1] / z
    k = K[..., None, :, :]
    u = k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2]
    v = k[..., 1, 1] * y + k[..., 1, 2]
    return torch.stack([u, v], dim=-1)


def pixel_rays(K: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Return camera-frame ray directions ``[..., 3]`` with ``z = 1`` through pixel positions ``uv [..., 2]``.

    ``K`` must broadcast against ``uv[..., 0]`` after adding two trailing dims (``K [..., 1, 1, 3, 3]`` for
    images). Inverse of :func:`project_points` for points at depth 1:
    ``y = (v - cy) / fy``, ``x = (u - cx - s y) / fx``.
    """
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy, s = K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def K_inverse(K: torch.Tensor) -> torch.Tensor:
    """Inverse ``[..., 3, 3]`` of intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` from those five entries.

    Only ``fx, fy, cx, cy, s`` receive gradients: the fixed entries of ``K`` are not parameters, so an
    optimiser stepping on ``K`` keeps it a valid intrinsic matrix.
    """
    fx, fy, cx, cy, s = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy), zero, 1 / fy, -cy / fy, zero, zero, one]
    return torch.stack(rows, -1).reshape(fx.shape + (3, 3))


def rays_at_pixels(K: torch.Tensor, index: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Rays ``[P, 3]`` (z = 1) through the centres of pixels given as flat indices into ``[N, H, W]``.

    ``K`` is ``[N, 3, 3]``; pixel ``index`` lies in view ``index // (H W)``. Differentiable in ``K``.
    """
    view = index // (height * width)
    pix = index % (height * width)
    uv = torch.stack([(pix % width).to(K.dtype) + 0.5, (pix // width).to(K.dtype) + 0.5], -1)
    return pixel_rays(K[view], uv)


def K_from_fov(fov_y: float, width: int, height: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Build ``K [3, 3]`` from a vertical field of view (radians), square pixels, centred principal point."""
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Return ``world_to_cam [..., 4, 4]`` for cameras at ``eye`` looking at ``target``.

    ``up [..., 3]`` is the world direction that should appear upwards in the image (the camera's -y).
    Differentiable in ``eye`` and ``target``.
    """
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.linalg.cross(-up.expand_as(z), z)
    xn = x.norm(dim=-1, keepdim=True)
    if bool((xn < 1e-9).any()):
        raise ValueError("look_at: up is parallel to the viewing direction (target - eye); choose another up")
    x = x / xn
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], dim=-2)
    t = -(R @ eye[..., None])[..., 0]
    return compose_world_to_cam(R, t)
