"""Morph targets (blend shapes): ``base + sum_m w_m * delta_m``."""

from __future__ import annotations

import torch

from .._checks import check_tensor

__all__ = ["apply_morph_targets"]


def apply_morph_targets(base: torch.Tensor, deltas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Add weighted morph-target displacements to a base attribute.

    Args:
        base: base attribute ``[V, C]`` (positions, normals, ...).
        deltas: per-target displacements ``[M, V, C]`` (glTF morph targets store displacements, not positions).
        weights: target weights ``[..., M]``; glTF does not bound them (negative and >1 extrapolate).

    Returns:
        ``[..., V, C]``: ``base + sum_m weights[..., m] * deltas[m]``.

    **Differentiability:** linear in ``base``, ``deltas`` and ``weights``.

    Example: ``base = 0``, ``deltas = [[[1.]], [[10.]]]``, ``weights = [0.5, 0.1]`` gives ``[[1.5]]``.
    """
    check_tensor(base, "base", trailing=(None, None), max_dims=2, floating=True)
    V, C = base.shape
    check_tensor(deltas, "deltas", trailing=(None, V, C), max_dims=3, floating=True)
    check_tensor(weights, "weights", trailing=(deltas.shape[0],), floating=True)
    dtype = torch.promote_types(torch.promote_types(base.dtype, deltas.dtype), weights.dtype)
    offset = torch.tensordot(weights.to(dtype), deltas.to(dtype), dims=([-1], [0]))  # [..., V, C]
    return base.to(dtype) + offset
