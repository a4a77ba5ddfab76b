"""``Fit``: the optimisation loop as a library object, with divergence checks, spike clipping, resumable
bit-for-bit reproducible checkpoints, an explicit random generator and a :class:`~lumigrad.optim.Strategy` seam
for fits that span several processes.

One step (``step`` counts from 0; ``steps_done = step + 1`` once it is finished; the ``strategy.*`` hooks are
identities in a single process, see :mod:`lumigrad.optim.strategy`):

1. set every gradient to ``None``; ``loss_fn(step)`` -> ``loss`` or ``(loss, {name: float})``; a
   :class:`FitDivergedError` raised by ``loss_fn`` or a NaN / Inf loss is combined across ranks
   (``strategy.combine_divergence``) and raised on every rank; ``strategy.reduce_log`` combines the loss and
   the logged values across ranks; ``loss.backward()``; ``strategy.reduce_gradients`` on every parameter;
2. raise :class:`FitDivergedError` (on every rank, combined likewise) if a gradient is NaN / Inf (one device
   sync for all of them);
3. per parameter group active at this step (``step >= group.start``): gradient spike clipping. With ``n`` the
   group's gradient norm and ``e`` its running norm (an EMA, decay ``spike_decay``, started at the first
   norm), a norm ``n > clip_spikes * e`` is scaled down to ``clip_spikes * e`` (logged as ``clip/<group>``,
   the scale factor); then ``e = decay * e + (1 - decay) * min(n, clip_spikes * e)``;
4. step each active group's optimiser with ``lr * schedule(step, steps)``; frozen groups (``step < start``)
   are not stepped at all (their optimiser moments start at ``start``) and log ``lr/<group> = 0``;
5. raise :class:`FitDivergedError` (on every rank) if a parameter became NaN / Inf;
6. record the loss and the log; on the main rank (``strategy.is_main``) update the progress bar and call the
   callbacks (any returning ``True`` stops the fit on every rank: ``strategy.any_rank``); write a checkpoint
   when ``steps_done`` is a multiple of ``checkpoint_every``, at the last step and on an early stop.

Randomness: ``loss_fn`` draws its random numbers (views sampled per step, noise, ...) from ``Fit.generator``, a
``torch.Generator`` (the one passed as ``generator``, or a new CPU one) that the fit seeds with
``strategy.rank_seed(seed)`` when it starts afresh and whose state every checkpoint stores for every rank. Two
fits in one process therefore never share a random stream, whatever else draws from torch's global RNG.
With ``global_rng=True`` (the default, for loss functions written against the global RNG: ``torch.rand``
without a generator, dropout) the fit also seeds torch's global CPU and CUDA RNGs with the same seed and
checkpoints their states; :func:`lumigrad.fitting.run_fit` passes ``False``: nothing in lumigrad's own fits
reads the global RNG.

Checkpoints (``checkpoint_dir/checkpoint.pt``) are written by the main rank only, atomically (temporary file
in the same folder, ``fsync``, ``os.replace``), after gathering every rank's RNG state
(``strategy.gather_object``), and followed by ``strategy.barrier()``. They hold everything that determines
the rest of the fit: parameter values, optimiser states, the spike-clipper EMAs, the generator state and, with
``global_rng``, the torch CPU (and CUDA) RNG states of every rank, losses and logs. Resuming therefore
reproduces an uninterrupted run bit for bit, provided ``loss_fn`` depends only on ``step``, the parameters and
the generator (or, with ``global_rng``, torch's RNG), not on Python's ``random``, NumPy's RNG or state kept
between calls, such as a conjugate-gradient warm start. A checkpoint resumes only with as many ranks as wrote it.

The strategy seam: ``strategy`` (default :class:`~lumigrad.optim.LocalStrategy`, one process) decides how
gradients and logged values are combined across ranks, which rank writes checkpoints and shows progress and
callbacks, how each rank's generator is seeded, and how a divergence on one rank stops every rank; see
:mod:`lumigrad.optim.strategy` and ``docs/design.md`` ("Fits across processes").

Checkpoints are untrusted input: a run folder may come from somewhere else, or be planted. They are read with
``torch.load(..., weights_only=True)``, which unpickles tensors and plain containers only and never calls
arbitrary code, and every key and type is validated (:func:`read_checkpoint`) before anything is restored.
A corrupt, truncated, empty or foreign file raises :class:`CheckpointError` (a ``ValueError``) in one line.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import torch

from .._checks import check_choice, check_positive_int
from .adam_uniform import AdamUniform
from .progress import LossProgress
from .strategy import Strategy, check_strategy

__all__ = ["CheckpointError", "Fit", "FitDivergedError", "FitResult", "ParamGroup", "cosine_schedule",
           "read_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
_FORMAT = 2  # 2: per-rank RNG states (``rng["ranks"]``); format 1 files (one global RNG state) still resume
_FORMATS = (1, 2)
_OPTIMIZERS = ("adam", "adam_uniform", "sgd", "sparse_adam")

LossOutput = Union[torch.Tensor, Tuple[torch.Tensor, Mapping[str, float]]]
Callback = Callable[[int, float, Dict[str, float]], Optional[bool]]


class FitDivergedError(RuntimeError):
    """The loss, a gradient or a parameter became NaN or Inf; the message names the step and the group."""


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, foreign or written for another fit; the message names it."""


def cosine_schedule(step: int, steps: int, final: float = 0.0) -> float:
    """Return the cosine-annealing lr multiplier ``final + (1 - final) (1 + cos(pi step / steps)) / 2``.

    Args:
        step: the current step, from 0.
        steps: the total number of steps.
        final: the multiplier reached at ``step = steps``.

    Returns:
        A float in ``[final, 1]``: 1 at step 0, ``(1 + final) / 2`` half way.
    """
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))


@dataclass
class ParamGroup:
    """Tensors optimised together with one optimiser, learning rate, schedule and start step.

    Args:
        params: leaf tensors with ``requires_grad=True`` (e.g. ``nn.Parameter``, ``LargeSteps.parameter``).
        lr: base learning rate, finite and ``>= 0``.
        optimizer: ``"adam"`` (``torch.optim.Adam``), ``"adam_uniform"`` (:class:`AdamUniform`, for
            :class:`~lumigrad.optim.LargeSteps` parameters), ``"sgd"`` (``torch.optim.SGD``) or
            ``"sparse_adam"`` (``torch.optim.SparseAdam``, for parameters with sparse gradients such as a
            :class:`~lumigrad.volume.fields.HashGridEncoding` table: only the rows a step touched move).
        schedule: optional ``schedule(step, steps) -> float`` multiplier of ``lr`` (e.g. :func:`cosine_schedule`).
        start: the group is frozen (not stepped, lr 0) before this step.
        betas: Adam / AdamUniform moment decays.
        eps: Adam / AdamUniform denominator epsilon.
        momentum: SGD momentum.
    """

    params: Sequence[torch.Tensor]
    lr: float
    optimizer: Literal["adam", "adam_uniform", "sgd", "sparse_adam"] = "adam"
    schedule: Optional[Callable[[int, int], float]] = None
    start: int = 0
    betas: Tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0


@dataclass
class FitResult:
    """What :meth:`Fit.run` returns.

    Attributes:
        losses: the loss of every finished step, from step 0 (including steps restored from a checkpoint).
        logs: one dict per step: ``loss_fn``'s extra values plus ``lr/<group>``, ``grad_norm/<group>`` and,
            when a spike was clipped, ``clip/<group>`` (the scale applied).
        steps_done: the number of finished steps.
        seconds: wall time of this :meth:`Fit.run` call.
        stopped_early: a callback returned ``True``.
    """

    losses: List[float] = field(default_factory=list)
    logs: List[Dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


class Fit:
    """Minimise ``loss_fn`` over parameter groups for ``steps`` steps; see the module docstring for one step.

    Example::

        ls = LargeSteps(verts, faces)
        fit = Fit(lambda step: render_loss(ls.verts(), step),
                  {"shape": ParamGroup([ls.parameter], lr=1e-2, optimizer="adam_uniform"),
                   "albedo": ParamGroup([albedo], lr=3e-2, schedule=cosine_schedule, start=100)},
                  steps=1000, checkpoint_dir="runs/a", resume=True)
        result = fit.run()

    Args:
        loss_fn: ``loss_fn(step)`` returns a scalar loss tensor, or ``(loss, {name: float})`` to log.
        groups: group name -> :class:`ParamGroup`; a tensor may belong to one group only.
        steps: total number of steps (a resumed fit continues up to it).
        checkpoint_dir: folder for ``checkpoint.pt``; ``None`` writes no checkpoints.
        checkpoint_every: write a checkpoint every this many finished steps (and at the end).
        seed: the seed of a fit that does not resume: ``generator`` is seeded with ``strategy.rank_seed(seed)``
            (``seed`` itself in one process), and so is torch's global RNG when ``global_rng`` is true.
        clip_spikes: clip a group's gradient norm to this many times its running norm; ``None`` disables.
        progress: show a tqdm bar with the loss.
        callbacks: ``cb(step, loss, log)`` after each step; returning ``True`` stops the fit.
        resume: load ``checkpoint_dir/checkpoint.pt`` (if it exists) when :meth:`run` starts.
        spike_decay: decay of the running gradient norm used by ``clip_spikes``, in ``[0, 1)``.
        extra_state: other stateful objects the loss uses, by name (anything with ``state_dict()`` and
            ``load_state_dict()``, e.g. an :class:`~lumigrad.losses.AdversarialLoss` and its discriminator);
            saved in every checkpoint and restored on resume.
        metadata: plain data (str, int, float, bool, None, lists and str-keyed dicts of them) written into every
            checkpoint, e.g. a hash of the configuration; :func:`read_checkpoint` returns it so that a caller
            can refuse to resume a checkpoint written for something else.
        generator: the ``torch.Generator`` that ``loss_fn`` draws its random numbers from (pass the same object
            to both); the fit seeds it and checkpoints its state. Default: a new CPU generator, available as
            ``fit.generator``.
        global_rng: also seed torch's global RNGs at the start and save / restore them in checkpoints, for a
            ``loss_fn`` that draws from them (see the module docstring); ``False`` leaves them alone.
        strategy: how the fit spans processes (:class:`~lumigrad.optim.Strategy`); default
            :class:`~lumigrad.optim.LocalStrategy`, a single process.
        progress_keys: log entries shown beside the loss on the progress bar (their latest value), e.g.
            ``("psnr_db",)``.

    Raises:
        ValueError / TypeError: on invalid arguments, naming the argument.
    """

    def __init__(self, loss_fn: Callable[[int], LossOutput], groups: Mapping[str, ParamGroup], *, steps: int,
                 checkpoint_dir: Optional[Union[str, os.PathLike]] = None, checkpoint_every: int = 50,
                 seed: int = 0, clip_spikes: Optional[float] = 10.0, progress: bool = False,
                 callbacks: Sequence[Callback] = (), resume: bool = False, spike_decay: float = 0.9,
                 extra_state: Optional[Mapping[str, object]] = None, metadata: Optional[Mapping[str, object]] = None,
                 generator: Optional[torch.Generator] = None, global_rng: bool = True,
                 strategy: Optional[Strategy] = None, progress_keys: Sequence[str] = ()):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        self.steps = check_positive_int(steps, "steps")
        self.checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int; got {type(seed).__name__}")
        self.seed = seed
        if clip_spikes is not None:
            if isinstance(clip_spikes, bool) or not isinstance(clip_spikes, (int, float)) \
                    or not math.isfinite(clip_spikes) or clip_spikes <= 0:
                raise ValueError(f"clip_spikes must be a finite number > 0 or None; got {clip_spikes!r}")
            clip_spikes = float(clip_spikes)
        self.clip_spikes = clip_spikes
        if not (isinstance(spike_decay, (int, float)) and 0.0 <= spike_decay < 1.0):
            raise ValueError(f"spike_decay must be a number in [0, 1); got {spike_decay!r}")
        self.spike_decay = float(spike_decay)
        self.progress = bool(progress)
        if isinstance(progress_keys, str) or not all(isinstance(k, str) for k in progress_keys):
            raise TypeError(f"progress_keys must be a sequence of log names; got {progress_keys!r}")
        self.progress_keys = tuple(progress_keys)
        self.callbacks = list(callbacks)
        for k, cb in enumerate(self.callbacks):
            if not callable(cb):
                raise TypeError(f"callbacks[{k}] must be callable; got {type(cb).__name__}")
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        self._resume_pending = bool(resume)
        self.extra_state = dict(extra_state or {})
        for name, obj in self.extra_state.items():
            if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
                raise TypeError(f"extra_state[{name!r}] needs state_dict() and load_state_dict(); got "
                                f"{type(obj).__name__}")
        self.metadata = dict(metadata or {})
        _check_plain(self.metadata, "metadata")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
        self.generator = generator if generator is not None else torch.Generator()
        self.global_rng = bool(global_rng)
        self.strategy = check_strategy(strategy)
        self.groups: Dict[str, ParamGroup] = self._check_groups(groups)
        self.optimizers = {name: self._make_optimizer(name, g) for name, g in self.groups.items()}
        self.spike_ema: Dict[str, Optional[float]] = {name: None for name in self.groups}
        self.losses: List[float] = []
        self.logs: List[Dict[str, float]] = []
        self.steps_done = 0
        self._seeded = False
        self._all_params = [p for g in self.groups.values() for p in g.params]

    # ------------------------------------------------------------------------------------------ set-up

    @staticmethod
    def _check_groups(groups) -> Dict[str, ParamGroup]:
        if not isinstance(groups, Mapping) or not groups:
            raise ValueError("groups must be a non-empty dict of name -> ParamGroup")
        seen: Dict[int, str] = {}
        out = {}
        for name, g in groups.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"group names must be non-empty strings; got {name!r}")
            if not isinstance(g, ParamGroup):
                raise TypeError(f"groups[{name!r}] must be a ParamGroup; got {type(g).__name__}")
            params = list(g.params) if not isinstance(g.params, torch.Tensor) else [g.params]
            if not params:
                raise ValueError(f"groups[{name!r}].params is empty")
            for k, p in enumerate(params):
                where = f"groups[{name!r}].params[{k}]"
                if not isinstance(p, torch.Tensor):
                    raise TypeError(f"{where} must be a torch.Tensor; got {type(p).__name__}")
                if not p.is_floating_point():
                    raise TypeError(f"{where} must have a floating dtype; got {p.dtype}")
                if not p.is_leaf or not p.requires_grad:
                    raise ValueError(f"{where} must be a leaf tensor with requires_grad=True")
                if id(p) in seen:
                    raise ValueError(f"{where} is already in group {seen[id(p)]!r}; a tensor may be in one group")
                seen[id(p)] = name
            lr = g.lr
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
                raise ValueError(f"groups[{name!r}].lr must be a finite number >= 0; got {lr!r}")
            check_choice(g.optimizer, f"groups[{name!r}].optimizer", _OPTIMIZERS)
            if g.schedule is not None and not callable(g.schedule):
                raise TypeError(f"groups[{name!r}].schedule must be callable(step, steps) or None")
            if isinstance(g.start, bool) or not isinstance(g.start, int) or g.start < 0:
                raise ValueError(f"groups[{name!r}].start must be an int >= 0; got {g.start!r}")
            out[name] = ParamGroup(params, float(lr), g.optimizer, g.schedule, g.start, tuple(g.betas), g.eps,
                                   g.momentum)
        return out

    @staticmethod
    def _make_optimizer(name: str, g: ParamGroup) -> torch.optim.Optimizer:
        if g.optimizer == "adam":
            return torch.optim.Adam(g.params, lr=g.lr, betas=g.betas, eps=g.eps)
        if g.optimizer == "adam_uniform":
            return AdamUniform(g.params, lr=g.lr, betas=g.betas, eps=g.eps)
        if g.optimizer == "sparse_adam":
            return torch.optim.SparseAdam(list(g.params), lr=g.lr, betas=g.betas, eps=g.eps)
        return torch.optim.SGD(g.params, lr=g.lr, momentum=g.momentum)

    def fingerprint(self) -> List[tuple]:
        """Return ``[(group name, optimizer, [(shape, dtype), ...]), ...]``, what a checkpoint must match."""
        return [(name, g.optimizer, [(tuple(p.shape), str(p.dtype)) for p in g.params])
                for name, g in self.groups.items()]

    # ------------------------------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Optional[Path]:
        """``checkpoint_dir / "checkpoint.pt"``, or ``None`` without a ``checkpoint_dir``."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def rng_state(self) -> dict:
        """Return this rank's random state: ``{"generator", "torch", "cuda"}`` (the last two ``None`` unless
        ``global_rng``)."""
        use_cuda = self.global_rng and torch.cuda.is_available()
        return {"generator": self.generator.get_state(),
                "torch": torch.get_rng_state() if self.global_rng else None,
                "cuda": torch.cuda.get_rng_state_all() if use_cuda else None}

    def state_dict(self, rng_states: Optional[Sequence[dict]] = None) -> dict:
        """Return everything a checkpoint holds (tensors are referenced, not copied).

        Args:
            rng_states: every rank's :meth:`rng_state`, in rank order (as :meth:`save_checkpoint` gathers them);
                default: this process's alone.
        """
        rng = {"ranks": [dict(r) for r in rng_states] if rng_states is not None else [self.rng_state()]}
        return {
            "format": _FORMAT,
            "steps_done": self.steps_done,
            "fingerprint": self.fingerprint(),
            "params": {name: [p.detach() for p in g.params] for name, g in self.groups.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "spike_ema": dict(self.spike_ema),
            "losses": list(self.losses),
            "logs": [dict(log) for log in self.logs],
            "rng": rng,
            "seed": self.seed,
            "extra": {name: obj.state_dict() for name, obj in self.extra_state.items()},
            "steps": self.steps,
            "metadata": dict(self.metadata),
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint_dir/checkpoint.pt`` atomically and return its path.

        Every rank calls it: the RNG states of all ranks are gathered (``strategy.gather_object``), the main
        rank writes the file, then every rank waits for it (``strategy.barrier``). The state is written to a
        temporary file in the same folder, flushed and ``fsync``-ed, then renamed over the old checkpoint with
        ``os.replace``: a crash at any point leaves either the old or the new checkpoint, never a partial one.

        Returns:
            The checkpoint path.
        """
        if self.checkpoint_dir is None:
            raise ValueError("save_checkpoint needs a checkpoint_dir")
        states = self.strategy.gather_object(self.rng_state())
        if self.strategy.is_main:
            if not isinstance(states, list) or len(states) != self.strategy.world_size:
                raise RuntimeError(f"strategy.gather_object returned {_what(states)} on the main rank; expected a "
                                   f"list of {self.strategy.world_size} RNG states")
            self._write_checkpoint(self.state_dict(states))
        self.strategy.barrier()
        return self.checkpoint_path

    def _write_checkpoint(self, state: dict) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        final = self.checkpoint_path
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=self.checkpoint_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(self.checkpoint_dir)

    def load_checkpoint(self, path: Optional[Union[str, os.PathLike]] = None) -> int:
        """Restore the fit from a checkpoint, if there is one.

        Args:
            path: the checkpoint file; defaults to ``checkpoint_dir/checkpoint.pt``.

        Returns:
            The number of steps done after loading (0 when there is no checkpoint file).

        Every rank reads the file and restores its own RNG state from it (``rng["ranks"][strategy.rank]``). A
        checkpoint of format 1 (before per-rank states) holds no generator state: the generator then starts
        from its seed, as in a fresh fit.

        Raises:
            CheckpointError: the file is not a valid checkpoint (:func:`read_checkpoint`), or it was written for
                different groups (names, optimisers, shapes, dtypes), extra state, number of ranks or kind of
                generator.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        self._resume_pending = False
        if path is None or not path.exists():
            return self.steps_done
        ckpt = read_checkpoint(path)
        want, got = self.fingerprint(), ckpt["fingerprint"]
        if want != got:
            raise CheckpointError(f"checkpoint {path} was written for different parameter groups and cannot resume "
                                  f"this fit: checkpoint has {_describe(got)}, this fit has {_describe(want)}")
        missing = sorted(set(self.extra_state) - set(ckpt["extra"]))
        if missing:
            raise CheckpointError(f"checkpoint {path} has no state for extra_state[{missing[0]!r}]")
        ranks, world, rank = ckpt["rng"]["ranks"], self.strategy.world_size, self.strategy.rank
        if len(ranks) != world:
            raise CheckpointError(f"checkpoint {path} was written by a fit over {len(ranks)} process(es) and this fit "
                                  f"runs over {world}; resume it with {len(ranks)}")
        mine = ranks[rank]
        try:  # check the states on scratch generators before anything is restored
            if mine["generator"] is not None:
                torch.Generator(device=self.generator.device).set_state(mine["generator"])
            if self.global_rng and mine["torch"] is not None:
                torch.Generator().set_state(mine["torch"])
        except (RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: the RNG state of rank {rank} does not fit this fit's "
                                  f"generator on {self.generator.device} ({_first_line(exc)})") from None
        for name, g in self.groups.items():
            saved = ckpt["params"].get(name)
            if not isinstance(saved, list) or len(saved) != len(g.params):
                raise CheckpointError(f"checkpoint {path}: params[{name!r}] must hold {len(g.params)} tensors")
            for k, (p, t) in enumerate(zip(g.params, saved)):
                if not isinstance(t, torch.Tensor) or t.shape != p.shape or t.dtype != p.dtype:
                    raise CheckpointError(f"checkpoint {path}: params[{name!r}][{k}] must be a {p.dtype} tensor of "
                                          f"shape {list(p.shape)}; got {_what(t)}")
                if not bool(torch.isfinite(t).all()):
                    raise CheckpointError(f"checkpoint {path}: params[{name!r}][{k}] holds NaN or Inf values")
        try:
            for name, opt in self.optimizers.items():
                opt.load_state_dict(ckpt["optimizers"][name])
            for name, obj in self.extra_state.items():
                obj.load_state_dict(ckpt["extra"][name])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimiser or extra state does not fit this fit "
                                  f"({_first_line(exc)})") from None
        with torch.no_grad():
            for name, g in self.groups.items():
                for p, saved in zip(g.params, ckpt["params"][name]):
                    p.copy_(saved)
        self.spike_ema = {name: ckpt["spike_ema"].get(name) for name in self.groups}
        self.losses = list(ckpt["losses"])
        self.logs = [dict(log) for log in ckpt["logs"]]
        self.steps_done = ckpt["steps_done"]
        if mine["generator"] is not None:
            self.generator.set_state(mine["generator"])
        else:
            self.generator.manual_seed(self._rank_seed())
        if self.global_rng:
            if mine["torch"] is None:
                torch.manual_seed(self._rank_seed())
            else:
                torch.set_rng_state(mine["torch"])
                if mine["cuda"] is not None and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(mine["cuda"])
        self._seeded = True
        return self.steps_done

    def resume(self) -> FitResult:
        """Load the checkpoint (if present) and run the remaining steps; see :meth:`run`."""
        self.load_checkpoint()
        return self.run()

    # ------------------------------------------------------------------------------------------ the loop

    def run(self) -> FitResult:
        """Run the fit from the current step (0, or the checkpoint's when resuming) up to ``steps``.

        Returns:
            A :class:`FitResult` with the full loss / log history.

        Raises:
            FitDivergedError: the loss, a gradient or a parameter became NaN / Inf.
        """
        if self._resume_pending:
            self.load_checkpoint()
        if not self._seeded:
            seed = self._rank_seed()
            self.generator.manual_seed(seed)
            if self.global_rng:
                torch.manual_seed(seed)
            self._seeded = True
        t0 = time.perf_counter()
        stopped = False
        main = self.strategy.is_main
        with LossProgress(self.steps, "fit", enabled=self.progress and main, keys=self.progress_keys) as bar:
            if bar.bar is not None and self.steps_done:
                bar.bar.update(self.steps_done)
            while self.steps_done < self.steps:
                step = self.steps_done
                loss, log = self._step(step)
                self.losses.append(loss)
                self.logs.append(log)
                self.steps_done = step + 1
                stop = False
                if main:
                    for cb in self.callbacks:
                        if cb(step, loss, log) is True:
                            stop = True
                bar.update(loss, log)
                stopped = bool(self.strategy.any_rank(stop))
                last = stopped or self.steps_done == self.steps
                if self.checkpoint_dir is not None and (last or self.steps_done % self.checkpoint_every == 0):
                    self.save_checkpoint()
                if stopped:
                    break
        return FitResult(list(self.losses), [dict(x) for x in self.logs], self.steps_done,
                         time.perf_counter() - t0, stopped)

    def _rank_seed(self) -> int:
        seed = self.strategy.rank_seed(self.seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"strategy.rank_seed must return an int; got {type(seed).__name__}")
        return seed

    def _diverged(self, error: Optional[FitDivergedError]) -> None:
        """Raise this rank's ``error``, or another rank's divergence, on every rank together."""
        message = self.strategy.combine_divergence(None if error is None else str(error))
        if error is not None:
            raise error
        if message is not None:
            raise FitDivergedError(str(message))

    def _step(self, step: int) -> Tuple[float, Dict[str, float]]:
        for g in self.groups.values():
            for p in g.params:
                p.grad = None
        error: Optional[FitDivergedError] = None
        try:
            out = self.loss_fn(step)
        except FitDivergedError as exc:  # raised on every rank together, below
            error = exc
        loss, extra = math.nan, {}
        if error is None:
            if isinstance(out, tuple):
                if len(out) != 2 or not isinstance(out[1], Mapping):
                    raise TypeError("loss_fn must return a loss tensor or (loss, dict of floats)")
                out, extra = out
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                raise TypeError(f"loss_fn must return a scalar tensor; got "
                                f"{getattr(out, 'shape', type(out).__name__)}")
            if not out.requires_grad:
                raise ValueError(f"the loss at step {step} does not depend on any parameter (requires_grad is False)")
            loss = float(out.detach())
            if not math.isfinite(loss):
                last = f"; last finite loss {self.losses[-1]:.6g} at step {step - 1}" if self.losses else ""
                error = FitDivergedError(f"loss is {loss} at step {step}{last}")
        self._diverged(error)
        loss, log = self.strategy.reduce_log(loss, {k: float(v) for k, v in extra.items()})
        loss, log = float(loss), dict(log)
        out.backward()
        self.strategy.reduce_gradients(self._all_params)

        grads = [(name, k, p) for name, g in self.groups.items() for k, p in enumerate(g.params) if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(_grad_values(p)).all() for _, _, p in grads]).all()):
            for name, k, p in grads:
                if not bool(torch.isfinite(_grad_values(p)).all()):
                    bad = int((~torch.isfinite(_grad_values(p))).sum())
                    error = FitDivergedError(f"gradient of group {name!r} parameter {k} has {bad} NaN/Inf values of "
                                             f"{p.grad.numel()} at step {step}; the parameter (still finite) has "
                                             f"{_stats(p.detach())}")
                    break
        self._diverged(error)

        active = [name for name, g in self.groups.items() if step >= g.start]
        norms = {}
        if active:
            per_group = []
            for name in active:
                gs = [_grad_values(p).detach().double().pow(2).sum() for p in self.groups[name].params
                      if p.grad is not None]
                per_group.append(torch.stack(gs).sum().sqrt() if gs else torch.zeros((), dtype=torch.float64))
            norms = dict(zip(active, torch.stack([x.cpu() for x in per_group]).tolist()))
        before = {}
        for name, g in self.groups.items():
            if step < g.start:
                log[f"lr/{name}"] = 0.0
                continue
            n = norms[name]
            log[f"grad_norm/{name}"] = n
            if self.clip_spikes is not None and n > 0:
                ema = self.spike_ema[name]
                if ema is None:
                    ema = n
                else:
                    bound = self.clip_spikes * ema
                    if n > bound:
                        scale = bound / n
                        for p in g.params:
                            if p.grad is not None:
                                p.grad = p.grad * scale if p.grad.is_sparse else p.grad.mul_(scale)
                        log[f"clip/{name}"] = scale
                        n = bound
                    ema = self.spike_decay * ema + (1.0 - self.spike_decay) * n
                self.spike_ema[name] = ema
            lr = g.lr * (float(g.schedule(step, self.steps)) if g.schedule is not None else 1.0)
            log[f"lr/{name}"] = lr
            opt = self.optimizers[name]
            for pg in opt.param_groups:
                pg["lr"] = lr
            before[name] = [torch.stack([p.detach().double().amin(), p.detach().double().amax(),
                                         p.detach().double().mean(), p.detach().double().norm()])
                            if p.numel() else None for p in g.params]
            opt.step()

        stepped = [(name, k, p) for name in before for k, p in enumerate(self.groups[name].params)]
        if stepped and not bool(torch.stack([torch.isfinite(p).all() for _, _, p in stepped]).all()):
            for name, k, p in stepped:
                if not bool(torch.isfinite(p).all()):
                    s = before[name][k].tolist()
                    error = FitDivergedError(
                        f"parameter {k} of group {name!r} became NaN/Inf after the optimiser step at step {step} "
                        f"(lr {log[f'lr/{name}']:.3g}); before the step it had min {s[0]:.6g}, max {s[1]:.6g}, "
                        f"mean {s[2]:.6g}, norm {s[3]:.6g}")
                    break
        self._diverged(error)
        return loss, log


def read_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """Read and validate a :class:`Fit` checkpoint without running any code from it.

    The file is unpickled with ``torch.load(..., weights_only=True)`` (tensors, numbers, strings and plain
    containers only: a pickle that would call a function is refused), then every key the fit needs is checked
    for its type. The optimiser and extra states are only checked to be dicts here; :meth:`Fit.load_checkpoint`
    reports it when they do not fit.

    Args:
        path: the checkpoint file.

    Returns:
        The checkpoint dict: ``format``, ``steps_done``, ``fingerprint`` (as :meth:`Fit.fingerprint` returns it),
        ``params``, ``optimizers``, ``spike_ema``, ``losses``, ``logs``, ``rng``, ``seed``, ``extra``, ``steps``
        (``None`` in checkpoints of older versions) and ``metadata`` (``{}`` likewise). ``rng["ranks"]`` lists
        every rank's :meth:`Fit.rng_state` in rank order; a format-1 file's single global state is returned as
        ``{"ranks": [{"generator": None, "torch": ..., "cuda": ...}]}``.

    Raises:
        CheckpointError: the file is missing, empty, truncated, not a checkpoint, unsafe, or has a key of the
            wrong type; one line naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file there")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes); it is not usable, start again with "
                              "--overwrite")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle is a bad file, reported in one line
        raise CheckpointError(f"{path}: not a readable lumigrad checkpoint ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in _FORMATS:
        raise CheckpointError(f"{path} is not a lumigrad Fit checkpoint (format "
                              f"{' or '.join(str(f) for f in _FORMATS)})")

    def need(key, ok, what):
        if key not in ckpt or not ok(ckpt[key]):
            got = _what(ckpt[key]) if key in ckpt else "nothing"
            raise CheckpointError(f"{path}: checkpoint key {key!r} must be {what}; got {got}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_float(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    need("steps_done", lambda v: is_int(v) and v >= 0, "an int >= 0")
    need("fingerprint", _is_fingerprint, "a list of (group, optimizer, [(shape, dtype), ...])")
    need("params", lambda v: isinstance(v, dict) and all(isinstance(x, list) for x in v.values()),
         "a dict of group -> list of tensors")
    need("optimizers", lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
         "a dict of group -> optimiser state")
    need("spike_ema", lambda v: isinstance(v, dict) and all(x is None or is_float(x) for x in v.values()),
         "a dict of group -> float or None")
    need("losses", lambda v: isinstance(v, list) and all(is_float(x) for x in v), "a list of floats")
    need("logs", lambda v: isinstance(v, list) and all(
        isinstance(x, dict) and all(isinstance(k, str) and is_float(y) for k, y in x.items()) for x in v),
        "a list of dicts of name -> float")
    if ckpt["format"] == 1:
        need("rng", lambda v: isinstance(v, dict) and _is_state(v.get("torch")) and _is_cuda_states(v.get("cuda")),
             "a dict with the torch RNG state (a uint8 tensor)")
        ckpt["rng"] = {"ranks": [{"generator": None, "torch": ckpt["rng"]["torch"], "cuda": ckpt["rng"].get("cuda")}]}
    need("rng", lambda v: isinstance(v, dict) and isinstance(v.get("ranks"), list) and v["ranks"] and all(
        isinstance(r, dict) and {"generator", "torch", "cuda"} <= set(r) and (r["generator"] is None or
        _is_state(r["generator"])) and (r["torch"] is None or _is_state(r["torch"])) and _is_cuda_states(r["cuda"])
        for r in v["ranks"]), "a dict with a non-empty list 'ranks' of {generator, torch, cuda} RNG states "
        "(uint8 tensors or None)")
    need("seed", is_int, "an int")
    ckpt.setdefault("extra", {})
    need("extra", lambda v: isinstance(v, dict), "a dict of name -> state")
    ckpt.setdefault("steps", None)
    need("steps", lambda v: v is None or (is_int(v) and v > 0), "an int > 0")
    ckpt.setdefault("metadata", {})
    need("metadata", lambda v: isinstance(v, dict), "a dict")
    if len(ckpt["losses"]) != ckpt["steps_done"] or len(ckpt["logs"]) != ckpt["steps_done"]:
        raise CheckpointError(f"{path}: the checkpoint says {ckpt['steps_done']} steps are done but holds "
                              f"{len(ckpt['losses'])} losses and {len(ckpt['logs'])} logs")
    ckpt["fingerprint"] = [(n, o, [(tuple(s), d) for s, d in ps]) for n, o, ps in ckpt["fingerprint"]]
    return ckpt


def _is_state(v) -> bool:
    return isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.dim() == 1


def _is_cuda_states(v) -> bool:
    return v is None or (isinstance(v, list) and all(_is_state(x) for x in v))


def _is_fingerprint(v) -> bool:
    if not isinstance(v, (list, tuple)):
        return False
    for item in v:
        if not (isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], str)
                and isinstance(item[1], str) and isinstance(item[2], (list, tuple))):
            return False
        for entry in item[2]:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], str)
                    and isinstance(entry[0], (list, tuple))
                    and all(isinstance(n, int) and not isinstance(n, bool) for n in entry[0])):
                return False
    return True


def _check_plain(value, where: str, depth: int = 0) -> None:
    """Raise TypeError unless ``value`` is plain data that ``torch.load(weights_only=True)`` reads back."""
    if depth > 32:
        raise TypeError(f"{where} is nested too deeply (more than 32 levels)")
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        for k, x in enumerate(value):
            _check_plain(x, f"{where}[{k}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} keys must be strings; got {type(k).__name__}")
            _check_plain(x, f"{where}[{k!r}]", depth + 1)
        return
    raise TypeError(f"{where} must hold plain data (str, int, float, bool, None, lists, dicts); got "
                    f"{type(value).__name__}")


def _what(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"a {v.dtype} tensor of shape {list(v.shape)}"
    return type(v).__name__


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stats(x: torch.Tensor) -> str:
    if not x.numel():
        return "no values"
    x = x.double()
    return f"min {float(x.min()):.6g}, max {float(x.max()):.6g}, mean {float(x.mean()):.6g}, norm {float(x.norm()):.6g}"


def _describe(fp) -> str:
    return "; ".join(f"{name!r} ({opt}): " + ", ".join(f"{list(s)} {d}" for s, d in ps) for name, opt, ps in fp)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _grad_values(p: torch.Tensor) -> torch.Tensor:
    """The stored values of ``p.grad``: the dense gradient, or a sparse gradient's (coalesced) values."""
    return p.grad.coalesce().values() if p.grad.is_sparse else p.grad
