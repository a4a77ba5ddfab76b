"""Multiple importance sampling weights and the light samples they weigh, shared by the surface and the medium
vertices of the path tracer."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["power_heuristic", "sample_light"]


def power_heuristic(pdf_a: torch.Tensor, pdf_b: torch.Tensor) -> torch.Tensor:
    """``pdf_a^2 / (pdf_a^2 + pdf_b^2)`` (Veach's power heuristic, beta = 2), 0 where both are 0.

    Args:
        pdf_a: densities of the strategy that drew the sample, any shape.
        pdf_b: densities of the other strategy for the same sample, broadcasting with ``pdf_a``.

    Returns:
        the weight of the sample, ``pdf_a``'s broadcast shape.

    **Differentiability:** smooth where ``pdf_a^2 + pdf_b^2 > 0``; the path tracer uses it on detached
    densities (constant weights).

    Example:
        >>> power_heuristic(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    a2, b2 = pdf_a * pdf_a, pdf_b * pdf_b
    total = a2 + b2
    return torch.where(total > 0, a2 / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(total))


def sample_light(light, x: torch.Tensor, u: torch.Tensor, method: Optional[str]):
    """``light.sample_direct(x, u)`` by the strategy ``method`` (an area light's ``"solid_angle"``, ``"area"``
    or ``"auto"``), or the light's one way when ``method`` is None (delta lights, the environment): every
    vertex that samples a light goes through here, so the densities that weigh its BSDF- or phase-found
    emission are the strategy's that drew it."""
    return light.sample_direct(x, u) if method is None else light.sample_direct(x, u, method=method)
