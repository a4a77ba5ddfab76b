"""A dense voxel grid over an axis-aligned box: trilinear interpolation at world points and total variation.

**Layout.** Values live at grid *vertices*, channel-last ``grid [D, H, W, C]`` indexed ``[z, y, x, c]``: vertex
``(i, j, k)`` (x, y, z indices) sits at ``min + (i / (W - 1), j / (H - 1), k / (D - 1)) * (max - min)``, so the
first and last vertices lie on the box faces (``align_corners=True`` in ``torch.nn.functional.grid_sample``
terms). Points outside the closed box read ``fill`` (0 by default).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..._checks import check_choice, check_number, check_positive_int, check_tensor
from .aabb import AabbLike, as_aabb, to_unit_cube

__all__ = ["DenseGrid", "grid_total_variation", "trilinear_interpolate"]

# the 8 corners of a cell as (x, y, z) offsets, x fastest
_CORNERS = torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])


def trilinear_interpolate(grid: torch.Tensor, points: torch.Tensor, aabb: AabbLike, fill: float = 0.0) -> torch.Tensor:
    """Trilinearly interpolate a vertex grid at world points.

    ``out[n] = sum_corners w_corner(points[n]) * grid[corner]`` with the usual product weights
    ``w = prod_axis (f_axis if the corner is on the upper side else 1 - f_axis)``, ``f`` the position inside
    the cell. Points outside the closed box give ``fill``.

    Args:
        grid: vertex values, ``[D, H, W, C]``, float, each of ``D, H, W >= 2`` (layout: module doc).
        points: world points, ``[..., 3]``, float, finite, same device as ``grid``.
        aabb: the box, ``[2, 3]`` or the flat ``[6]`` layout (see :func:`~lumigrad.volume.fields.aabb.as_aabb`).
        fill: value of points outside the box.

    Returns:
        ``[..., C]`` interpolated values, dtype of ``grid`` / ``points`` promoted.

    **Differentiability:** linear in ``grid`` (each point's gradient lands on its cell's 8 vertices); piecewise
    trilinear in ``points`` (continuous everywhere inside the box, kinked on cell faces, where the gradient is
    the one-sided value of the cell ``floor`` picks). Points outside the box get zero gradient and send none to
    ``grid``; the jump to ``fill`` at the box boundary is not differentiated.

    Example: a 2 x 2 x 2 grid with value ``x`` at each vertex reads back ``x`` (box ``[0, 1]^3``)::

        >>> g = torch.tensor([0.0, 1.0]).repeat(2, 2, 1)[..., None]
        >>> trilinear_interpolate(g, torch.tensor([[0.25, 0.5, 0.9]]), [0, 0, 0, 1, 1, 1]).tolist()
        [[0.25]]
    """
    _check_grid(grid, "grid")
    check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=grid.device)
    fill = check_number(fill, "fill")
    return trilinear_interpolate_unchecked(grid, to_unit_cube(points, as_aabb(aabb)), fill)


def trilinear_interpolate_unchecked(grid: torch.Tensor, unit: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """:func:`trilinear_interpolate` on unit-cube coordinates ``unit [..., 3]``, without checks."""
    D, H, W, C = grid.shape
    batch = unit.shape[:-1]
    u = unit.reshape(-1, 3)
    sizes = torch.tensor([W, H, D], device=u.device)
    pos = u * (sizes - 1).to(u.dtype)
    cell = torch.minimum(pos.detach().floor().clamp(min=0), (sizes - 2).to(u.dtype)).long()  # [N, 3]
    f = pos - cell.to(u.dtype)
    inside = ((u >= 0) & (u <= 1)).all(-1)
    bits = _CORNERS.to(u.device)
    corner = cell[:, None, :] + bits[None]  # [N, 8, 3]
    flat = (corner[..., 2] * H + corner[..., 1]) * W + corner[..., 0]
    w = torch.where(bits[None].bool(), f[:, None, :], 1 - f[:, None, :]).prod(-1)  # [N, 8]
    values = grid.reshape(-1, C)[flat]  # [N, 8, C]
    out = (w[..., None] * values).sum(1)
    out = torch.where(inside[:, None], out, torch.full_like(out, fill))
    return out.reshape(*batch, C)


def grid_total_variation(grid: torch.Tensor, norm: Literal["l2", "l1"] = "l2") -> torch.Tensor:
    """Total variation of a vertex grid: the mean neighbour difference along each axis, summed over axes.

    ``TV = sum_axis mean(|g[i + 1] - g[i]|^p)`` with ``p = 2`` for ``"l2"`` (the squared form of Plenoxels /
    DVGO, smooth) or ``p = 1`` for ``"l1"`` (edge preserving, subgradient at ties), over all channels.

    Args:
        grid: ``[D, H, W, C]`` float, each spatial size ``>= 2``.
        norm: ``"l2"`` or ``"l1"``.

    Returns:
        scalar tensor.

    **Differentiability:** smooth in ``grid`` for ``"l2"``; ``"l1"`` uses ``sign(0) = 0`` at equal neighbours.

    Example: a ramp ``0, 1`` along x (2 x 2 x 2) has TV ``1`` (x differences 1, others 0)::

        >>> g = torch.tensor([0.0, 1.0]).repeat(2, 2, 1)[..., None]
        >>> grid_total_variation(g).item()
        1.0
    """
    _check_grid(grid, "grid")
    check_choice(norm, "norm", ("l2", "l1"))
    total = grid.new_zeros(())
    for axis in range(3):
        d = grid.diff(dim=axis)
        total = total + (d.square() if norm == "l2" else d.abs()).mean()
    return total


class DenseGrid(nn.Module):
    """A learnable dense vertex grid over a box: ``forward(points) -> [..., C]`` by trilinear interpolation.

    Args:
        aabb: the box, ``[2, 3]`` or ``[6]`` (world units).
        resolution: vertices per axis, an int (cube) or ``(W, H, D)`` along ``(x, y, z)``, each ``>= 2``.
        channels: values per vertex ``C``.
        init: initial value of every entry (``init_std > 0`` adds Gaussian noise).
        init_std: standard deviation of the initial noise.
        fill: value outside the box.

    Attributes:
        grid: ``nn.Parameter [D, H, W, C]`` (layout: module doc).

    **Differentiability:** as :func:`trilinear_interpolate`: linear in :attr:`grid`, piecewise trilinear in
    the points. :meth:`total_variation` regularises :attr:`grid`.

    Example::

        >>> g = DenseGrid([-1, -1, -1, 1, 1, 1], resolution=8, channels=4)
        >>> g(torch.zeros(5, 3)).shape
        torch.Size([5, 4])
    """

    def __init__(self, aabb: AabbLike, resolution=32, channels: int = 1, *, init: float = 0.0,
                 init_std: float = 0.0, fill: float = 0.0):
        super().__init__()
        self.register_buffer("aabb", as_aabb(aabb).float())
        res = _check_resolution(resolution, "resolution")
        channels = check_positive_int(channels, "channels")
        init = check_number(init, "init")
        init_std = check_number(init_std, "init_std", lo=0.0)
        self.fill = check_number(fill, "fill")
        W, H, D = res
        grid = torch.full((D, H, W, channels), init)
        if init_std > 0:
            grid += init_std * torch.randn_like(grid)
        self.grid = nn.Parameter(grid)

    @property
    def resolution(self):
        """Vertices per axis ``(W, H, D)`` along ``(x, y, z)``."""
        D, H, W, _ = self.grid.shape
        return (W, H, D)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Interpolate at world ``points [..., 3]`` (finite); returns ``[..., C]`` (``fill`` outside the box)."""
        check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=self.grid.device)
        unit = to_unit_cube(points.to(self.grid.dtype), self.aabb)
        return trilinear_interpolate_unchecked(self.grid, unit, self.fill)

    def total_variation(self, norm: Literal["l2", "l1"] = "l2") -> torch.Tensor:
        """:func:`grid_total_variation` of :attr:`grid`."""
        return grid_total_variation(self.grid, norm)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, channels={self.grid.shape[-1]}"


def _check_grid(grid, name):
    check_tensor(grid, name, floating=True)
    if grid.dim() != 4:
        raise ValueError(f"{name} must have shape [D, H, W, C]; got {tuple(grid.shape)}")
    if min(grid.shape[:3]) < 2 or grid.shape[3] < 1:
        raise ValueError(f"{name} must have at least 2 vertices per axis and 1 channel ([D, H, W, C] with "
                         f"D, H, W >= 2); got {tuple(grid.shape)}")


def _check_resolution(resolution, name):
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        resolution = (resolution,) * 3
    if not isinstance(resolution, (tuple, list)) or len(resolution) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (W, H, D); got {resolution!r}")
    for r in resolution:
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"{name} must hold ints; got {resolution!r}")
        if r < 2:
            raise ValueError(f"{name} must be >= 2 vertices per axis; got {resolution!r}")
    return tuple(resolution)
