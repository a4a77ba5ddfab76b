"""``Strategy``: what :class:`~lumigrad.optim.Fit` asks of the processes it runs in.

A fit in one process and a data-parallel fit over ``N`` processes (``torchrun``, issue 17) run the same
:class:`~lumigrad.optim.Fit` loop; they differ only in a strategy object that the loop consults at fixed points
(what :class:`LocalStrategy`, the single-process strategy, answers in brackets):

* ``rank``, ``world_size``: this process and how many there are; checked against a checkpoint's (0, 1).
* ``is_main``: the one rank that writes the checkpoint file, shows the progress bar and runs the callbacks
  (True).
* ``rank_seed(seed)``: the seed of this rank's generator ``Fit.generator``, at the start of a fresh fit
  (``seed``).
* ``reduce_gradients(params)``: after ``backward``, before any gradient is checked, clipped or stepped with;
  may all-reduce / average them in place (nothing).
* ``reduce_log(loss, values)``: once per step, the loss and ``loss_fn``'s logged values, before they are
  recorded (unchanged).
* ``combine_divergence(message)``: at each divergence check (loss, gradients, parameters); the reason some
  rank diverged, or ``None`` (its argument).
* ``any_rank(flag)``: once per step, "a callback asked to stop" (``flag``); also where a ``loss_fn`` needs the
  ranks to agree (``lumigrad fit``'s: whether to record the shape error, at the start of its step).
* ``gather_object(obj)``: when a checkpoint is written, every rank's RNG state, to the main rank (``[obj]``).
* ``barrier()``: after the main rank has written a checkpoint (returns at once).

Every method but ``rank_seed`` is a *collective*: every rank calls it, in the same order, with arguments of
the same structure, so an implementation may back each one by one ``torch.distributed`` call (``all_reduce`` of
the flattened gradients, of a ``float64`` vector of the logged values or of a flag, ``all_gather_object`` /
``gather_object``, ``barrier``). A divergence seen by one rank (a NaN / Inf loss, gradient or parameter, or a
:class:`~lumigrad.optim.FitDivergedError` raised by ``loss_fn``) is first combined, then raised on every rank
together, so that no rank is left waiting in a collective the others will never reach. A ``loss_fn`` may call
collectives of its own only before anything in it can raise on one rank alone: a rank that raised would meet the
others' collective with the divergence's.

:class:`LocalStrategy` is one process; :class:`~lumigrad.optim.distributed.DistributedStrategy` runs the ranks
``torchrun`` starts (``docs/design.md``, "Fits across processes"; ``docs/distributed.md``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch

__all__ = ["LocalStrategy", "Strategy", "check_strategy"]

_MEMBERS = ("rank", "world_size", "is_main")
_METHODS = ("rank_seed", "reduce_gradients", "reduce_log", "combine_divergence", "any_rank", "gather_object",
            "barrier")


@runtime_checkable
class Strategy(Protocol):
    """The seam between :class:`~lumigrad.optim.Fit` and the processes a fit runs in; see the module docstring.

    Attributes:
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: the number of processes taking part in the fit.
        is_main: whether this process writes the checkpoint file, shows the progress bar and runs the
            callbacks (the other ranks do none of that). Exactly one rank is the main rank.
    """

    rank: int
    world_size: int
    is_main: bool

    def rank_seed(self, seed: int) -> int:
        """Return the seed of this rank's generator (``Fit.generator``) for a fit seeded with ``seed``."""

    def reduce_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Combine the gradients of ``params`` across ranks, in place, so every rank steps with the same ones.

        ``params`` is every parameter of every group, in the same order on every rank. A parameter whose
        ``.grad`` is ``None`` on this rank (not used by this rank's share of the loss) counts as a zero
        gradient: another rank may have one for it, so a distributed strategy must then set ``.grad``.
        """

    def reduce_log(self, loss: float, values: Dict[str, float]) -> Tuple[float, Dict[str, float]]:
        """Return the step's ``loss`` and ``loss_fn``'s logged ``values`` combined across ranks (e.g. their
        means), as the fit records, reports and checkpoints them. ``values`` has the same keys on every rank."""

    def combine_divergence(self, message: Optional[str]) -> Optional[str]:
        """Return why some rank diverged (this rank's ``message`` if it has one, else another rank's), or
        ``None`` when no rank did; :class:`Fit` then raises :class:`FitDivergedError` on every rank."""

    def any_rank(self, flag: bool) -> bool:
        """Return whether ``flag`` is true on any rank (a callback on the main rank asked to stop)."""

    def gather_object(self, obj: object) -> Optional[List[object]]:
        """Return every rank's ``obj`` in rank order on the main rank, ``None`` on the others."""

    def barrier(self) -> None:
        """Return once every rank has called it (after the main rank wrote a checkpoint)."""


class LocalStrategy:
    """One process: rank 0 of 1, main, the seed as given, every reduction the identity.

    Example:
        >>> s = LocalStrategy()
        >>> s.rank, s.world_size, s.is_main, s.rank_seed(7), s.combine_divergence(None), s.any_rank(True)
        (0, 1, True, 7, None, True)
    """

    rank = 0
    world_size = 1
    is_main = True

    def rank_seed(self, seed: int) -> int:
        return seed

    def reduce_gradients(self, params: Sequence[torch.Tensor]) -> None:
        return None

    def reduce_log(self, loss: float, values: Dict[str, float]) -> Tuple[float, Dict[str, float]]:
        return loss, values

    def combine_divergence(self, message: Optional[str]) -> Optional[str]:
        return message

    def any_rank(self, flag: bool) -> bool:
        return bool(flag)

    def gather_object(self, obj: object) -> Optional[List[object]]:
        return [obj]

    def barrier(self) -> None:
        return None

    def __repr__(self) -> str:
        return "LocalStrategy()"


def check_strategy(strategy: object, name: str = "strategy") -> Strategy:
    """Return ``strategy`` (``None``: a new :class:`LocalStrategy`) after checking that it has every member.

    Raises:
        TypeError: a method is missing or not callable, or ``rank`` / ``world_size`` / ``is_main`` are missing
            or not an int / an int / a bool, naming the member.
        ValueError: ``world_size < 1`` or ``rank`` outside ``[0, world_size)``.
    """
    if strategy is None:
        return LocalStrategy()
    kind = type(strategy).__name__
    for member in _METHODS:
        if not callable(getattr(strategy, member, None)):
            raise TypeError(f"{name} must implement the Strategy protocol (lumigrad.optim.Strategy); {kind} has no "
                            f"method {member}()")
    for member in _MEMBERS:
        if not hasattr(strategy, member):
            raise TypeError(f"{name} must implement the Strategy protocol (lumigrad.optim.Strategy); {kind} has no "
                            f"attribute {member}")
    rank, world, main = strategy.rank, strategy.world_size, strategy.is_main
    for member, value in (("rank", rank), ("world_size", world)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}.{member} must be an int; got {type(value).__name__}")
    if not isinstance(main, bool):
        raise TypeError(f"{name}.is_main must be a bool; got {type(main).__name__}")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"{name} must have world_size >= 1 and 0 <= rank < world_size; got rank {rank}, "
                         f"world_size {world}")
    return strategy
