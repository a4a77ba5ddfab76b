"""Optimisation: the large-steps parameterisation of geometry and its ``AdamUniform`` optimiser.

``LargeSteps`` / ``to_differential`` / ``from_differential`` reparameterise vertex positions as
``u = (I + lambda L) v`` (Nicolet, Jacobson, Jakob 2021) so gradient steps stay smooth; ``AdamUniform``
is the matching optimiser; ``anneal`` / ``SoftRasterSchedule`` sharpen soft rasterization over a fit. See :mod:`lumigrad.optim.large_steps` for the maths and solver costs.
"""

from .adam_uniform import AdamUniform
from .anneal import SoftRasterSchedule, anneal
from .large_steps import (ConvergenceError, LargeSteps, SmoothingSolver, from_differential, smoothing_matrix,
                          solver_for, to_differential)

__all__ = [
    "AdamUniform",
    "ConvergenceError",
    "LargeSteps",
    "SmoothingSolver",
    "SoftRasterSchedule",
    "anneal",
    "from_differential",
    "smoothing_matrix",
    "solver_for",
    "to_differential",
]
