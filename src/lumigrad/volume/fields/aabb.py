"""The axis-aligned box a field lives in: validation and the world -> unit-cube map shared by grids and occupancy."""

from __future__ import annotations

from typing import Sequence, Union

import torch

from ..._checks import check_tensor

__all__ = ["as_aabb", "to_unit_cube"]

AabbLike = Union[torch.Tensor, Sequence[float]]


def as_aabb(aabb: AabbLike, name: str = "aabb") -> torch.Tensor:
    """Return ``aabb`` as a float ``[2, 3]`` tensor ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``, or raise.

    Args:
        aabb: the box, either ``[2, 3]`` (min row, max row) or the flat nerfacc layout
            ``[xmin, ymin, zmin, xmax, ymax, zmax]`` (a tensor or a sequence of 6 numbers), world units.
        name: argument name for error messages.

    Returns:
        ``[2, 3]`` tensor (float32 unless a float64 tensor was given), detached.

    Raises:
        ValueError: wrong shape, NaN / Inf, or a max not strictly greater than its min on some axis.

    **Differentiability:** none (the box is a constant of the field).

    Example::

        >>> as_aabb([-1, -1, -1, 1, 1, 1]).tolist()
        [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    """
    if not isinstance(aabb, torch.Tensor):
        try:
            aabb = torch.tensor(aabb, dtype=torch.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a tensor or 6 numbers [xmin, ymin, zmin, xmax, ymax, zmax]; "
                            f"got {aabb!r}") from None
    check_tensor(aabb, name, floating=True, finite=True)
    if tuple(aabb.shape) == (6,):
        aabb = aabb.reshape(2, 3)
    if tuple(aabb.shape) != (2, 3):
        raise ValueError(f"{name} must have shape [2, 3] or [6]; got {tuple(aabb.shape)}")
    if not bool((aabb[1] > aabb[0]).all()):
        raise ValueError(f"{name} must have max > min on every axis; got min {aabb[0].tolist()} "
                         f"max {aabb[1].tolist()}")
    return aabb.detach().clone()


def to_unit_cube(points: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """Map world points into the box's unit cube: ``u = (points - min) / (max - min)`` (no clamping).

    Args:
        points: ``[..., 3]`` world points.
        aabb: ``[2, 3]`` box from :func:`as_aabb` (unchecked here).

    Returns:
        ``[..., 3]`` coordinates, ``[0, 1]`` inside the box, dtype of ``points``.

    **Differentiability:** affine in ``points``.
    """
    lo = aabb[0].to(points)
    return (points - lo) / (aabb[1].to(points) - lo)
