"""Smoke grid layout and back-traced sampling (trilinear in 3D, bilinear in 2D).

**Layout.** A 3D scalar field is ``[D, H, W]`` indexed ``[z, y, x]``; a 3D velocity field is ``[D, H, W, 3]``
with components ``(u_x, u_y, u_z)`` in grid cells per unit time times ``dx`` (world units per unit time).
In 2D: ``[H, W]`` and ``[H, W, 2]`` with components ``(u_x, u_y)``. Values sit at grid vertices spaced ``dx``
apart, the layout of :class:`~lumigrad.volume.fields.DenseGrid` (vertex ``(i, j, k)`` at
``min + (i, j, k) * dx``), so a density grid renders through the volume renderer without resampling.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..volume.fields.dense_grid import trilinear_interpolate_unchecked

__all__ = ["grid_positions", "sample_grid", "sample_grid_ref", "spatial_dims"]


def spatial_dims(velocity: torch.Tensor, name: str = "velocity") -> int:
    """The number of spatial axes ``d`` (2 or 3) of a velocity ``[..., d]`` with ``d`` grid axes, or raise."""
    if not isinstance(velocity, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(velocity).__name__}")
    d = velocity.shape[-1] if velocity.dim() else 0
    if d not in (2, 3) or velocity.dim() != d + 1:
        raise ValueError(f"{name} must have shape [H, W, 2] (2D) or [D, H, W, 3] (3D); got {tuple(velocity.shape)}")
    if min(velocity.shape[:-1]) < 2:
        raise ValueError(f"{name} must have at least 2 vertices per axis; got {tuple(velocity.shape)}")
    return d


def grid_positions(shape: Tuple[int, ...], *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Vertex index coordinates ``[*shape, d]`` in component order ``(x, y[, z])`` (x along the last axis)."""
    axes = [torch.arange(n, dtype=dtype, device=device) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")  # (z, y, x) or (y, x)
    return torch.stack(mesh[::-1], dim=-1)


def sample_grid(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Sample a vertex grid at fractional index positions, linearly per axis, positions clamped to the grid.

    Args:
        values: ``[*S, C]`` channel-last grid, ``S`` = ``(D, H, W)`` or ``(H, W)``.
        positions: ``[*S, d]`` index coordinates ``(x, y[, z])`` (``d = len(S)``), where to read each output
            vertex; positions outside ``[0, n - 1]`` are clamped onto the grid's boundary.

    Returns:
        ``[*S, C]`` sampled values.

    **Differentiability:** linear in ``values``; piecewise (bi/tri)linear in ``positions`` (kinks on cell faces;
    zero gradient where a position is clamped), through ``torch.nn.functional.grid_sample`` with
    ``align_corners=True`` and ``padding_mode="border"``.
    """
    d = positions.shape[-1]
    S = values.shape[:d]
    sizes = torch.tensor(S[::-1], dtype=positions.dtype, device=positions.device)  # (W, H[, D])
    normalized = 2.0 * positions / (sizes - 1) - 1.0
    inp = values.movedim(-1, 0).unsqueeze(0)  # [1, C, *S]
    out = F.grid_sample(inp, normalized.unsqueeze(0).to(values.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out[0].movedim(0, -1)


def sample_grid_ref(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Float64 reference of :func:`sample_grid` by explicit corner gathers (the volume package's trilinear code).

    A 2D grid is lifted to a 3D grid of two equal z slices read at ``z = 0``.
    """
    d = positions.shape[-1]
    S = values.shape[:d]
    grid, pos = values, positions
    if d == 2:
        grid = values.unsqueeze(0).expand(2, *values.shape)
        pos = torch.cat([positions, torch.zeros_like(positions[..., :1])], dim=-1)
        S = (2,) + tuple(S)
    sizes = torch.tensor(S[::-1], dtype=pos.dtype, device=pos.device)
    unit = (pos / (sizes - 1)).clamp(0.0, 1.0)
    return trilinear_interpolate_unchecked(grid, unit)
