"""``run_fit``: a configuration in, an output folder out (images, plots, assets, metrics.json, report.html).

The optimisation is a :class:`~lumigrad.optim.Fit` with one :class:`~lumigrad.optim.ParamGroup` per
``[[optimize]]`` table, checkpointing into ``OUT/checkpoint/`` so that an interrupted fit resumes bit for
bit (``resume=True``). Parameter and shape errors against the truth are logged every ``record_every`` steps
through the loss function's log, so they are part of the checkpoint and the curves survive a resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from .._checks import resolve_device
from ..optim.fit import CHECKPOINT_NAME, Fit, ParamGroup, cosine_schedule
from .config import ConfigError, FitConfig, load_config
from .metrics import image_metrics, parameter_errors, shape_error_pct
from .problem import Problem, build_problem

__all__ = ["FitOutcome", "run_fit"]

SHAPE_KEY = "shape_error_pct"


@dataclass
class FitOutcome:
    out_dir: Path
    metrics: Dict
    report: Path


def run_fit(config: Union[FitConfig, str, Path], out_dir: Optional[Union[str, Path]] = None, *,
            resume: bool = False, overwrite: bool = False, steps: Optional[int] = None, progress: bool = False,
            device: str = "cpu") -> FitOutcome:
    """Run the fit ``config`` describes and write its output folder.

    Args:
        config: a :class:`FitConfig` or the path of a TOML / YAML file.
        out_dir: the output folder (default: ``[output] dir``, else ``lumigrad-runs/<config name>``).
        resume: continue from ``out_dir/checkpoint/checkpoint.pt`` when there is one.
        overwrite: start afresh even though ``out_dir`` holds a checkpoint of an earlier fit.
        steps: override ``[fit] steps``.
        progress: show a progress bar with the loss and the time left.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns:
        a :class:`FitOutcome` with the folder, the metrics and the report's path.

    Raises:
        ConfigError: a bad configuration or data (the message says what to fix).
        ValueError: ``device`` is not cpu / cuda / auto, or CUDA was asked for without a device.
        lumigrad.optim.FitDivergedError: the loss, a gradient or a parameter became NaN / Inf.
    """
    if not isinstance(config, FitConfig):
        config = load_config(config)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be an integer >= 1; got {steps!r}")
        config.fit.steps = steps
    out = Path(out_dir) if out_dir is not None else (config.output or Path("lumigrad-runs") / config.path.stem)
    checkpoint_dir = out / "checkpoint"
    if (checkpoint_dir / CHECKPOINT_NAME).exists() and not resume:
        if not overwrite:
            raise ConfigError(f"{out} holds a checkpoint of an earlier fit: add --resume to continue it, "
                              "--overwrite to start again, or choose another output folder with -o")
        (checkpoint_dir / CHECKPOINT_NAME).unlink()
    dev = resolve_device(device)
    started = time.perf_counter()
    problem = build_problem(config, dev)
    with torch.no_grad():
        initial_images = problem.render_views()
    measure_shape = problem.truth is not None and bool(problem.fitted_meshes())
    initial_shape = shape_error_pct(problem.scene, problem.truth) if measure_shape else None
    fit = Fit(_logged_loss(problem), _groups(problem), steps=config.fit.steps, checkpoint_dir=checkpoint_dir,
              checkpoint_every=config.fit.checkpoint_every, seed=config.fit.seed,
              clip_spikes=config.fit.clip_spikes, progress=progress, resume=resume,
              extra_state={"adversary": problem.adversary} if problem.adversary is not None else None)
    result = fit.run()
    with torch.no_grad():
        problem.apply()
        final_images = problem.render_views()
    metrics = _metrics(problem, result, initial_images, final_images, time.perf_counter() - started)
    if measure_shape:
        metrics[SHAPE_KEY + "_initial"] = initial_shape
        metrics[SHAPE_KEY + "_final"] = shape_error_pct(problem.scene, problem.truth)
    from .outputs import write_outputs

    report = write_outputs(out, problem, result, metrics, initial_images, final_images)
    return FitOutcome(out, metrics, report)


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


def _logged_loss(problem: Problem):
    every = _record_every(problem)
    fits_shape = bool(problem.fitted_meshes())

    def loss_fn(step: int):
        loss, log = problem.loss(step)
        if problem.truth is not None and (step % every == 0 or step == problem.config.fit.steps - 1):
            with torch.no_grad():
                for name in problem.optimised_names():
                    errors = parameter_errors(name, problem.scene[name], problem.truth)
                    if errors:
                        log[f"error/{name}"] = errors["mean_abs_error"]
                if fits_shape:
                    log[f"error/{SHAPE_KEY}"] = shape_error_pct(problem.scene, problem.truth, points=250)
        return loss, log

    return loss_fn


def _metrics(problem: Problem, result, initial_images, final_images, seconds: float) -> Dict:
    config = problem.config
    metrics: Dict = {"name": config.name, "config": str(config.path), "steps": result.steps_done,
                     "seconds": round(seconds, 3), "final_loss": result.losses[-1] if result.losses else None,
                     "initial_loss": result.losses[0] if result.losses else None,
                     "views": len(problem.camera), "image_size": [problem.camera.width, problem.camera.height],
                     "synthetic_targets": problem.truth is not None}
    initial, final = image_metrics(initial_images, problem.targets), image_metrics(final_images, problem.targets)
    metrics.update({"psnr_initial_db": initial["psnr_db"], "psnr_final_db": final["psnr_db"],
                    "mean_abs_error_initial": initial["mean_abs_error"],
                    "mean_abs_error_final": final["mean_abs_error"]})
    params = {}
    for name in problem.optimised_names():
        value = problem.scene[name].detach()
        entry = {"initial": _summary(problem.initial_values[name]), "final": _summary(value)}
        if problem.truth is not None and name in problem.truth.parameters():
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
