"""Optimisation: the large-steps parameterisation of geometry and its ``AdamUniform`` optimiser.

``LargeSteps`` / ``to_differential`` / ``from_differential`` reparameterise vertex positions as
``u = (I + lambda L) v`` (Nicolet, Jacobson, Jakob 2021) so gradient steps stay smooth; ``AdamUniform``
is the matching optimiser; ``Fit`` runs the fit loop (divergence checks, spike clipping, atomic resumable
checkpoints, an explicit per-rank generator) and consults a ``Strategy`` (``LocalStrategy``: one process; ``DistributedStrategy``: ``torchrun`` ranks on
``torch.distributed``) where a fit across processes differs; ``anneal`` / ``SoftRasterSchedule`` sharpen soft rasterization over a fit; ``TensorBoardCallback`` writes a fit
to TensorBoard live. See :mod:`lumigrad.optim.large_steps` for the maths and solver costs.
"""

from .adam_uniform import AdamUniform
from .anneal import SoftRasterSchedule, anneal
from .fit import CheckpointError, Fit, FitDivergedError, FitResult, ParamGroup, cosine_schedule, read_checkpoint
from .large_steps import (ConvergenceError, LargeSteps, SmoothingSolver, from_differential, smoothing_matrix,
                          solver_for, to_differential)
from .distributed import (DistributedStrategy, RankMismatchError, init_distributed, launched_by_torchrun, shard,
                          shard_weight)
from .strategy import LocalStrategy, Strategy
from .tensorboard import TensorBoardCallback, tensorboard_available

__all__ = [
    "AdamUniform",
    "CheckpointError",
    "ConvergenceError",
    "DistributedStrategy",
    "Fit",
    "FitDivergedError",
    "FitResult",
    "LargeSteps",
    "LocalStrategy",
    "ParamGroup",
    "RankMismatchError",
    "SmoothingSolver",
    "SoftRasterSchedule",
    "Strategy",
    "TensorBoardCallback",
    "anneal",
    "cosine_schedule",
    "from_differential",
    "init_distributed",
    "launched_by_torchrun",
    "read_checkpoint",
    "shard",
    "shard_weight",
    "smoothing_matrix",
    "solver_for",
    "tensorboard_available",
    "to_differential",
]
