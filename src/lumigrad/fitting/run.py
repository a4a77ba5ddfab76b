"""``run_fit``: a configuration in, an output folder out (images, plots, assets, metrics.json, report.html).

The optimisation is a :class:`~lumigrad.optim.Fit` with one :class:`~lumigrad.optim.ParamGroup` per
``[[optimize]]`` table, checkpointing into ``OUT/checkpoint/`` so that an interrupted fit resumes bit for
bit (``resume=True``). Its random numbers (the views of a step) come from the problem's own generator, which
the fit seeds with ``[fit] seed`` and checkpoints; torch's global RNG is neither read nor changed. Parameter
and shape errors against the truth are logged every ``record_every`` steps through the loss function's log, so
they are part of the checkpoint and the curves survive a resume.

The output folder is held by one fit at a time and its checkpoint is tied to the configuration
(:mod:`lumigrad.fitting.run_folder`): a second fit into the same folder, a resume with another configuration
or ``--steps``, or a resume without a checkpoint stops with one line before anything is rendered.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from .._checks import resolve_device
from ..optim.distributed import DistributedStrategy, RankMismatchError, launched_by_torchrun
from ..optim.fit import CHECKPOINT_NAME, Fit, FitDivergedError, ParamGroup, cosine_schedule, read_checkpoint
from ..optim.strategy import LocalStrategy, Strategy
from .config import ConfigError, FitConfig, load_config
from .metrics import RecordingBudget, parameter_errors, shape_error_pct
from .problem import Problem, build_problem
from .ranks import finish_training, prepare_ranks, rank_device, restarted_by_torchrun, start_ranks
from .run_folder import RankLog, RunFolder, config_identity, describe_differences, merged_log_lines
from .time_outputs import joint_angle_error_deg, time_metrics
from .view_evaluation import evaluate_views
from .volume_config import VolumeFitConfig

__all__ = ["FitOutcome", "make_fit", "run_fit"]

SHAPE_KEY = "shape_error_pct"
SHAPE_RECORDING_SHARE = 0.1  # of the elapsed fit time, at most, spent recording the surface distance


@dataclass
class FitOutcome:
    out_dir: Path
    metrics: Dict
    report: Path


def run_fit(config: Union[FitConfig, str, Path], out_dir: Optional[Union[str, Path]] = None, *,
            resume: bool = False, overwrite: bool = False, steps: Optional[int] = None, progress: bool = False,
            device: str = "cpu", force: bool = False, trust_paths: bool = False,
            dist_timeout: Optional[float] = None) -> FitOutcome:
    """Run the fit ``config`` describes and write its output folder.

    Args:
        config: a :class:`FitConfig` (or, for ``[render] integrator = "volume"``, a
            :class:`~lumigrad.fitting.volume_config.VolumeFitConfig`) or the path of a TOML / YAML file.
        out_dir: the output folder (default: ``[output] dir``, else ``lumigrad-runs/<config name>``).
        resume: continue from ``out_dir/checkpoint/checkpoint.pt``; the folder must hold one, written for the
            same configuration (and the same ``steps``).
        overwrite: start afresh even though ``out_dir`` holds a checkpoint or the results of an earlier fit.
        steps: override ``[fit] steps``.
        progress: show a progress bar with the loss and the time left.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        force: resume although the checkpoint was written for a different configuration; the differences
            are recorded in ``OUT/run.log`` and the new configuration is kept beside the original.
        trust_paths: let files named *inside* input files (OBJ ``mtllib`` / ``map_*``, glTF URIs, NeRF
            ``file_path``, COLMAP image names) be absolute or lead outside their file's folder; by default
            they are confined to it. Paths in the configuration itself are always followed (it is trusted).
        dist_timeout: in a process started by ``torchrun`` (a fit over several processes, see
            :mod:`lumigrad.fitting.ranks`), seconds a collective waits for the other ranks before it raises
            (default 600).

    Returns:
        a :class:`FitOutcome` with the folder, the metrics and the report's path.

    Raises:
        ConfigError: a bad configuration or data, an output folder that is a file or in use by another fit,
            a checkpoint of another configuration, or ``resume`` without a checkpoint (the message says what
            to fix).
        lumigrad.optim.CheckpointError: the checkpoint is corrupt, truncated or foreign.
        ValueError: ``device`` is not cpu / cuda / auto, or CUDA was asked for without a device.
        lumigrad.optim.FitDivergedError: the loss, a gradient or a parameter became NaN / Inf.
    """
    if not isinstance(config, (FitConfig, VolumeFitConfig)):
        config = load_config(config)
    config.trust_paths = bool(trust_paths) or config.trust_paths
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: --resume continues the folder's fit, "
                          "--overwrite starts it again")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1; got {steps!r}")
        config.fit.steps = steps
    out = Path(out_dir) if out_dir is not None else (config.output or Path("lumigrad-runs") / config.path.stem)
    dev = resolve_device(device)
    if launched_by_torchrun():
        return _run_ranked(config, out, rank_device(dev), resume=resume, overwrite=overwrite, force=force,
                           progress=progress, timeout_s=dist_timeout)
    with RunFolder(out) as folder:
        identity = config_identity(config)
        saved = _start_folder(folder, config, identity, resume=resume, overwrite=overwrite, force=force)
        return _run_any(config, folder, identity, saved is not None, progress, dev, None)


def _check_folder_state(folder: RunFolder, checkpoint: Path, identity, *, resume: bool, overwrite: bool,
                        force: bool) -> Optional[dict]:
    """Refuse to mix two fits in one folder (see :mod:`lumigrad.fitting.run_folder`); return the checkpoint
    being resumed, or ``None`` for a fit that starts afresh."""
    out = folder.path
    if not resume:
        if (checkpoint.exists() or folder.has_results()) and not overwrite:
            what = "a checkpoint" if checkpoint.exists() else "the results"
            raise ConfigError(f"{out} holds {what} of an earlier fit: add --resume to continue it, --overwrite to "
                              "start again, or choose another output folder with -o")
        if checkpoint.exists():
            checkpoint.unlink()
            folder.log("--overwrite: removed the earlier fit's checkpoint")
        return None
    if not checkpoint.exists():
        raise ConfigError(f"{out} has no checkpoint to resume ({checkpoint} does not exist); run without --resume "
                          "to start the fit")
    ckpt = read_checkpoint(checkpoint)
    saved = ckpt["metadata"].get("config")
    if not isinstance(saved, dict) or not isinstance(saved.get("keys"), dict):
        problem = "was written without a configuration identity (another program or an older lumigrad)"
        differences = None
    elif saved.get("sha256") != identity["sha256"]:
        differences = describe_differences(saved["keys"], identity["keys"])
        problem = f"was written for a different configuration: {differences}"
    else:
        return ckpt
    if not force:
        raise ConfigError(f"the checkpoint in {out} {problem}; resume with the configuration it was written for, "
                          "start again with --overwrite, or add --force to resume anyway")
    folder.log(f"--force: resuming a checkpoint that {problem}")
    return ckpt


def _run_ranked(config: FitConfig, out: Path, dev, *, resume: bool, overwrite: bool, force: bool, progress: bool,
                timeout_s: Optional[float]) -> FitOutcome:
    """One rank of a fit over several processes: the main rank holds the folder and decides whether the fit
    resumes (by itself after a ``torchrun`` restart), the others follow its decision."""
    import torch.distributed as dist

    owns_group = not dist.is_initialized()
    strategy = start_ranks(dev, timeout_s)
    try:
        outcome = _run_rank(config, out, dev, strategy, resume=resume, overwrite=overwrite, force=force,
                            progress=progress)
    except RankMismatchError:
        # every rank raises it at the same collective, so they leave together here too: the group is torn down
        # (its gloo threads joined) before the error goes up; left to interpreter shutdown, a gloo thread could
        # abort the process after the message ("terminate called without an active exception")
        if owns_group:
            strategy.barrier()
            dist.destroy_process_group()
        raise
    if owns_group:  # all ranks leave together: a group torn down while another rank still uses it aborts
        strategy.barrier()
        dist.destroy_process_group()
    return outcome


def _run_rank(config: FitConfig, out: Path, dev, strategy: DistributedStrategy, *, resume: bool, overwrite: bool,
              force: bool, progress: bool) -> FitOutcome:
    identity = config_identity(config)
    strategy.check_same("the configuration (sha256 of its parsed keys)",
                        config_identity(config, resolve_paths=False)["sha256"])
    if not strategy.is_main:
        decision = strategy.broadcast_object(None)
        if decision[0] == "error":
            raise ConfigError(decision[1])
        return _run_any(config, RankLog(out, strategy.rank), identity, decision[1], False, dev, strategy)
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(RunFolder(out))
            if restarted_by_torchrun():
                resume = (folder.checkpoint_dir / CHECKPOINT_NAME).exists()
                overwrite, force = not resume, False
                folder.log(f"restarted by torchrun (restart {os.environ.get('TORCHELASTIC_RESTART_COUNT')}): "
                           + ("resuming from the last checkpoint" if resume else "no checkpoint yet, starting again"))
            saved = _start_folder(folder, config, identity, resume=resume, overwrite=overwrite, force=force)
        except ConfigError as exc:
            strategy.broadcast_object(("error", str(exc)))
            raise
        strategy.broadcast_object(("ok", saved is not None))
        return _run_any(config, folder, identity, saved is not None, progress, dev, strategy)


def _run_any(config, folder, identity, resume: bool, progress: bool, dev, strategy) -> FitOutcome:
    if isinstance(config, VolumeFitConfig):
        from .volume_fit import run_volume

        metrics, report = run_volume(config, folder, identity, resume, progress, dev, strategy)
        return FitOutcome(folder.path, metrics, report)
    return _run(config, folder, identity, resume, progress, dev, strategy)


def _start_folder(folder: RunFolder, config, identity, *, resume: bool, overwrite: bool, force: bool):
    """Check the folder against the flags, keep the config, log the start; the checkpoint resumed, or None."""
    checkpoint = folder.checkpoint_dir / CHECKPOINT_NAME
    saved = _check_folder_state(folder, checkpoint, identity, resume=resume, overwrite=overwrite, force=force)
    if saved is not None:
        if saved["metadata"].get("config", {}).get("sha256") != identity["sha256"]:
            kept = folder.keep_config(config, resumed=True)
            folder.log(f"the resumed configuration is kept as {kept.name}; the original stays")
        folder.log(f"resumed from step {saved['steps_done']} (config sha256 {identity['sha256'][:12]})")
    else:
        folder.keep_config(config, resumed=False)
        folder.log(f"started: {config.fit.steps} steps, config sha256 {identity['sha256'][:12]}")
    return saved


def _run(config: FitConfig, folder, identity, resume: bool, progress: bool, dev,
         strategy: Optional[DistributedStrategy] = None) -> FitOutcome:
    out = folder.path
    started = time.perf_counter()
    problem = build_problem(config, dev)
    main = strategy is None or strategy.is_main
    if strategy is not None:
        prepare_ranks(problem, strategy, folder.log)
    initial_images = initial_errors = initial_shape = None
    measure_shape = problem.truth is not None and bool(problem.fitted_meshes())
    if main:
        initial_images, initial_errors = evaluate_views(problem)
        initial_shape = shape_error_pct(problem.scene, problem.truth) if measure_shape else None
    fit = make_fit(problem, checkpoint_dir=folder.checkpoint_dir, resume=resume, progress=progress and main,
                   metadata={"config": identity}, strategy=strategy)
    if strategy is not None and config.fit.sync_check_every > 0:
        fit.loss_fn = _sync_checked(fit, strategy, config.fit.sync_check_every)
    with contextlib.ExitStack() as live:
        if config.tensorboard and main:
            from .tensorboard_output import fit_tensorboard

            fit.callbacks.append(live.enter_context(fit_tensorboard(problem, out, _record_every(problem))))
        result = fit.run()
    follower = finish_training(folder, strategy, result)
    if follower is not None:
        return FitOutcome(out, follower, None)
    with torch.no_grad():
        problem.apply(result.steps_done)
    final_images, final_errors = evaluate_views(problem)
    metrics = _metrics(problem, result, initial_errors, final_errors, time.perf_counter() - started)
    if measure_shape:
        metrics[SHAPE_KEY + "_initial"] = initial_shape
        metrics[SHAPE_KEY + "_final"] = shape_error_pct(problem.scene, problem.truth)
    from .outputs import write_outputs

    if strategy is not None:
        metrics["processes"] = strategy.world_size
    report = write_outputs(out, problem, result, metrics, initial_images, final_images,
                           run_log=merged_log_lines(out))
    folder.log(f"finished: {result.steps_done} steps, report {report.name}")
    return FitOutcome(out, metrics, report)


def _sync_checked(fit: Fit, strategy: DistributedStrategy, every: int):
    """``fit.loss_fn``, first checking every ``every`` steps that the ranks' parameters are bit-identical."""
    inner = fit.loss_fn

    def loss_fn(step: int):
        if step > 0 and step % every == 0:
            strategy.check_in_sync(fit._all_params, step - 1)
        return inner(step)

    return loss_fn


def make_fit(problem: Problem, *, checkpoint_dir: Optional[Union[str, Path]] = None, resume: bool = False,
             progress: bool = False, metadata: Optional[Dict] = None, strategy: Optional[Strategy] = None) -> Fit:
    """The :class:`~lumigrad.optim.Fit` that ``run_fit`` runs for ``problem``: one group per ``[[optimize]]``
    table, the ``[fit]`` settings, the adversary's state checkpointed, and the problem's generator as the fit's
    (seeded with ``[fit] seed``, checkpointed; ``global_rng=False``: torch's global RNG is left alone).

    Args:
        problem: from :func:`~lumigrad.fitting.problem.build_problem`.
        checkpoint_dir: folder for the checkpoint, or ``None`` for none.
        resume: continue from the checkpoint in ``checkpoint_dir``, if there is one.
        progress: show a progress bar.
        metadata: plain data written into every checkpoint.
        strategy: how the fit spans processes (:class:`~lumigrad.optim.Strategy`); default one process.
    """
    config = problem.config
    return Fit(_logged_loss(problem, strategy), _groups(problem), steps=config.fit.steps,
               checkpoint_dir=checkpoint_dir, checkpoint_every=config.fit.checkpoint_every, seed=config.fit.seed,
               clip_spikes=config.fit.clip_spikes, progress=progress, resume=resume,
               extra_state={"adversary": problem.adversary} if problem.adversary is not None else None,
               metadata=metadata, generator=problem.generator, global_rng=False, strategy=strategy)


def _groups(problem: Problem) -> Dict[str, ParamGroup]:
    groups = {}
    for g in problem.config.optimize:
        schedule = cosine_schedule if g.schedule == "cosine" else None
        groups[g.name] = ParamGroup(problem.leaves(g.name), lr=g.lr, optimizer=g.optimizer, schedule=schedule,
                                    start=g.start)
    return groups


def _record_every(problem: Problem) -> int:
    every = problem.config.fit.record_every
    return every if every > 0 else max(1, problem.config.fit.steps // 50)


def _logged_loss(problem: Problem, strategy: Optional[Strategy] = None):
    """``problem.loss`` with the truth's errors logged every ``_record_every`` steps (``strategy``: the fit's,
    default one process). Every rank must log the same keys at every step, and the shape error's budget is
    timed on each rank's own clock, so the ranks agree on it (``strategy.any_rank``) at the start of the step:
    before the loss, which may raise on one rank only (a divergence, which ``Fit`` then raises on every rank
    with collectives of its own that a collective here would meet instead)."""
    strategy = strategy if strategy is not None else LocalStrategy()
    every = _record_every(problem)
    fits_shape = bool(problem.fitted_meshes())
    shape_budget = RecordingBudget(SHAPE_RECORDING_SHARE)  # short fits were dominated by this metric

    def loss_fn(step: int):
        last = problem.config.fit.steps - 1
        records = problem.truth is not None and (step % every == 0 or step == last)
        record_shape = records and fits_shape and shape_budget.agree(strategy.any_rank(shape_budget.due(step, last)))
        try:
            loss, log = problem.loss(step)
        except ValueError as exc:
            # The initial values rendered before the fit; a value refused now was moved there by the optimiser.
            raise FitDivergedError(f"step {step}: a fitted parameter left its valid range ({exc}); lower the "
                                   "group's lr or choose a map that keeps it in range (exp, sigmoid)") from None
        if records:
            with torch.no_grad():
                for name in problem.optimised_names():
                    errors = parameter_errors(name, problem.scene[name], problem.truth)
                    if errors:  # keyframe rotations in degrees, the rest as mean absolute errors
                        log[f"error/{name}"] = errors.get("angle_error_deg", errors["mean_abs_error"])
                if record_shape:
                    log[f"error/{SHAPE_KEY}"] = shape_budget.spend(
                        lambda: shape_error_pct(problem.scene, problem.truth, points=250))
                if problem.time_axis is not None:
                    log["error/joint_angle_error_deg"] = joint_angle_error_deg(problem)
        return loss, log

    return loss_fn


def _metrics(problem: Problem, result, initial: Dict[str, float], final: Dict[str, float], seconds: float) -> Dict:
    config = problem.config
    metrics: Dict = {"name": config.name, "config": str(config.path), "steps": result.steps_done,
                     "seconds": round(seconds, 3), "final_loss": result.losses[-1] if result.losses else None,
                     "initial_loss": result.losses[0] if result.losses else None,
                     "views": len(problem.camera), "image_size": [problem.camera.width, problem.camera.height],
                     "synthetic_targets": problem.truth is not None}
    if problem.time_axis is not None:
        metrics.update(time_metrics(problem))
    metrics.update({"psnr_initial_db": initial["psnr_db"], "psnr_final_db": final["psnr_db"],
                    "mean_abs_error_initial": initial["mean_abs_error"],
                    "mean_abs_error_final": final["mean_abs_error"]})
    params = {}
    for name in problem.optimised_names():
        value = problem.scene[name].detach()
        entry = {"initial": _summary(problem.initial_values[name]), "final": _summary(value)}
        if problem.truth is not None and name in problem.truth:
            entry["true"] = _summary(problem.truth[name])
        entry.update(parameter_errors(name, value, problem.truth))
        initial_errors = parameter_errors(name, problem.initial_values[name], problem.truth)
        entry.update({f"initial_{k}": v for k, v in initial_errors.items()})
        params[name] = entry
    metrics["parameters"] = params
    return metrics


def _summary(t: torch.Tensor):
    t = t.detach().double().cpu()
    if t.numel() <= 16:
        return [round(float(x), 6) for x in t.flatten()] if t.numel() > 1 else round(float(t), 6)
    return {"shape": list(t.shape), "mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())}
