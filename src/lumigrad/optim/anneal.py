"""Annealing schedules: coarse (blurred, soft) first, sharp later.

Soft rasterization trades gradient reach against geometric detail: a large ``sigma`` (wide sigmoid) and
``gamma`` (soft depth blend) let far-away pixels pull on the mesh, but they blur the silhouette and
over-smooth the recovered shape. :func:`anneal` moves a value from ``start`` to ``end`` over a fit, and
:class:`SoftRasterSchedule` does it for ``sigma`` and ``gamma`` together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["SoftRasterSchedule", "anneal"]


def anneal(step: int, total: int, start: float, end: float,
           kind: Literal["geometric", "linear", "cosine"] = "geometric", *, hold: float = 0.0) -> float:
    """The value at ``step`` of ``total`` going from ``start`` to ``end``.

    ``"geometric"`` interpolates ``log(value)`` linearly (the natural choice for a blur width: each step
    sharpens by the same factor; needs positive ends), ``"linear"`` the value itself, ``"cosine"`` follows
    half a cosine (slow at both ends). The last ``hold`` share of the steps stays at ``end``.

    Example:
        >>> round(anneal(50, 100, 1.0, 0.01), 6)
        0.1
    """
    if total < 1:
        raise ValueError(f"total must be >= 1; got {total}")
    if not 0 <= hold < 1:
        raise ValueError(f"hold must lie in [0, 1); got {hold}")
    t = min(max(step / max(1.0, total * (1 - hold)), 0.0), 1.0)
    if kind == "geometric":
        if start <= 0 or end <= 0:
            raise ValueError(f"a geometric schedule needs positive start and end; got {start}, {end}")
        return math.exp(math.log(start) + t * (math.log(end) - math.log(start)))
    if kind == "linear":
        return start + t * (end - start)
    if kind == "cosine":
        return end + 0.5 * (start - end) * (1 + math.cos(math.pi * t))
    raise ValueError(f"kind must be 'geometric', 'linear' or 'cosine'; got {kind!r}")


@dataclass
class SoftRasterSchedule:
    """``sigma`` (pixel^2) and ``gamma`` of :func:`lumigrad.soft_rasterize` annealed geometrically.

    ``schedule(step, total) -> (sigma, gamma)``; defaults go from a blur of several pixels to a sub-pixel
    edge, holding the sharp end for the last ``hold`` share of the fit.
    """

    sigma_start: float = 16.0
    sigma_end: float = 0.25
    gamma_start: float = 1e-2
    gamma_end: float = 1e-4
    hold: float = 0.2

    def __call__(self, step: int, total: int):
        return (anneal(step, total, self.sigma_start, self.sigma_end, hold=self.hold),
                anneal(step, total, self.gamma_start, self.gamma_end, hold=self.hold))
