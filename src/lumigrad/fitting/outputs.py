"""The output folder of a fit: what people look at and what they take away.

::

    OUT/report.html            one page showing everything below
    OUT/metrics.json           image and parameter errors, timings
    OUT/config.toml|yaml       the configuration as the fit started it, re-runnable from anywhere (run_folder)
    OUT/run.log                when the fit started, resumed, was forced or finished
    OUT/images/views.png       rows: target, initial, final (up to 4 views), linear renders in the default look
    OUT/images/error.png       |final - target| and |initial - target| per pixel, one colour scale
    OUT/plots/loss.png         total loss and each term per step
    OUT/plots/parameters.png   parameter errors per step (synthetic targets)
    OUT/images/sequence.png    a rendered sequence's strip, when one was saved (lumigrad.app.report.save_sequence)
    OUT/assets/sequence.gif    and its animation (.mp4 too with the video extra)
    OUT/assets/scene.glb       the fitted scene (opens in Blender)
    OUT/images/over_time.png   with targets over time: those of lumigrad.fitting.time_outputs (and its assets)
    OUT/assets/NAME.obj        each fitted mesh, with its material in NAME.mtl
    OUT/checkpoint/            the resumable state of the fit
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ..app.report import save_image_grid, sequence_figures
from ..app.report_html import Figure, write_html_report
from ..shading.image_formation import display_encode
from .run_folder import portable_config_text
from .view_evaluation import MAX_VIEWS_SHOWN

__all__ = ["as_shown", "save_views", "write_outputs"]


def write_outputs(out: Path, problem, result, metrics: Dict, initial: torch.Tensor, final: torch.Tensor,
                  run_log: Sequence[str] = ()) -> Path:
    """Write the folder described in the module docstring; return the report's path.

    The configuration is copied only when the folder has no copy yet (the run folder keeps the original).
    """
    config = problem.config
    copy = prepare_output_folder(out, config)
    n = save_views(out / "images" / "views.png", problem, initial, final)
    targets = problem.targets[:n, ..., :3].cpu()
    _error_maps(out / "images" / "error.png", targets, initial[:n, ..., :3].cpu(), final[:n, ..., :3].cpu())
    loss_plot(out / "plots" / "loss.png", result)
    figures = [Figure("Target, initial and final renders", "images/views.png",
                      f"Rows: target, initial, final; the first {n} of {len(problem.camera)} views."),
               Figure("Per-pixel error", "images/error.png",
                      "Mean absolute colour error per pixel, initial (top) and final (bottom), on one colour scale."),
               Figure("Loss", "plots/loss.png", "Total loss and each weighted term's raw value per step (log scale).")]
    if _parameter_plot(out / "plots" / "parameters.png", result):
        figures.append(Figure("Parameter errors", "plots/parameters.png",
                              "Error of each recovered parameter against the truth per recorded step: mean absolute error, "
                              "for keyframe rotations the mean angle in degrees, for shapes the surface distance in % "
                              "of the bounding diagonal."))
    strip, animations = sequence_figures(out)  # a sequence rendered into the folder (images/sequence.png)
    figures += strip
    if problem.time_axis is not None:
        from .time_outputs import write_time_outputs

        over_time, time_assets = write_time_outputs(out, problem, initial, final)
        figures += over_time
        animations += time_assets
    assets = _assets(out, problem) + animations
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    assets = ["metrics.json", *assets, copy.name] + (["run.log"] if (out / "run.log").exists() else [])
    if (out / "checkpoint" / "checkpoint.pt").exists():
        assets.append("checkpoint/checkpoint.pt")
    summary = _summary(metrics)
    log_tail = list(run_log)[-10:] + [f"step {k}: loss {loss:.6g}" for k, loss in list(enumerate(result.losses))[-20:]]
    return write_html_report(out, title=f"lumigrad fit: {config.name}", summary=summary, metrics=metrics,
                             figures=figures, assets=assets, config_text=config.text, log_tail=log_tail)


def save_views(path: Path, problem, initial: torch.Tensor, final: torch.Tensor) -> int:
    """Write the grid of rows target, initial, final (the first :data:`MAX_VIEWS_SHOWN` views) as the report
    shows them (:func:`as_shown`); return how many views it holds."""
    n = min(len(problem.camera), MAX_VIEWS_SHOWN)
    rows = torch.cat([problem.targets[:n, ..., :3].cpu(), initial[:n, ..., :3].cpu(), final[:n, ..., :3].cpu()])
    save_image_grid(path, as_shown(problem, rows), columns=n)
    return n


def as_shown(problem, images: torch.Tensor) -> torch.Tensor:
    """``images`` of ``problem`` as the output folder shows them: the default look
    (:func:`lumigrad.shading.image_formation.display_encode`, as ``lumigrad render`` and ``lumigrad.preview``)
    when they are linear radiance, i.e. renders through a film without ``tone`` / ``encode`` compared with
    synthetic targets; as they are when the film already encodes them or the targets are photos (values as
    stored, which the fit matches)."""
    film = problem.scene.film
    linear = film is None or (film.tone is None and film.encode is None)
    return display_encode(images) if linear and problem.truth is not None else images


def prepare_output_folder(out: Path, config) -> Path:
    """Make ``images/``, ``plots/``, ``assets/`` and copy the configuration when the folder has no copy yet;
    return the copy's path."""
    for sub in ("images", "plots", "assets"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    copy = out / f"config{config.path.suffix.lower()}"
    if not copy.exists():
        copy.write_text(portable_config_text(config), encoding="utf-8")
    return copy


def _summary(m: Dict) -> str:
    text = (f"{m['steps']} steps in {m['seconds']:.1f} s on {m['views']} views of {m['image_size'][0]}x"
            f"{m['image_size'][1]} pixels. PSNR {m['psnr_initial_db']:.2f} dB -> {m['psnr_final_db']:.2f} dB.")
    if "shape_error_pct_final" in m:
        text += (f" Surface distance to the truth {m['shape_error_pct_initial']:.2f} % -> "
                 f"{m['shape_error_pct_final']:.2f} % of the bounding diagonal.")
    if "keyframe_angle_error_deg_final" in m:
        text += (f" {len(m['times'])} times of animation {m['animation']!r}; keyframe rotation error "
                 f"{m['keyframe_angle_error_deg_initial']:.2f} -> {m['keyframe_angle_error_deg_final']:.2f} degrees.")
    return text


def _error_maps(path: Path, target, initial, final) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errors = [(initial - target).abs().mean(-1), (final - target).abs().mean(-1)]
    vmax = max(float(errors[0].max()), float(errors[1].max()), 1e-6)
    n = target.shape[0]
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n + 0.8, 5.2), squeeze=False)
    for row, (label, err) in enumerate(zip(("initial", "final"), errors)):
        for k in range(n):
            ax = axes[row, k]
            im = ax.imshow(err[k].numpy(), cmap="inferno", vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(label)
    fig.colorbar(im, ax=axes, shrink=0.8, label="|error|")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def loss_plot(path: Path, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.semilogy(_positive(result.losses), label="total", color="black")
    terms = sorted({k for log in result.logs for k in log if k.startswith("loss/")})
    for term in terms:
        ax.semilogy(_positive([log.get(term, math.nan) for log in result.logs]), label=term[5:], alpha=0.8)
    save_line_plot(fig, ax, path, "step", "loss")


def save_line_plot(fig, ax, path: Path, xlabel: str, ylabel: str) -> None:
    """Label, grid and legend ``ax`` the report's way, write ``fig`` to ``path`` and close it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _parameter_plot(path: Path, result) -> bool:
    keys = sorted({k for log in result.logs for k in log if k.startswith("error/")})
    if not keys:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        steps = [k for k, log in enumerate(result.logs) if key in log]
        ax.semilogy(steps, _positive([result.logs[k][key] for k in steps]), marker=".")
        ax.set_title(key[6:], fontsize=8)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _positive(values: List[float]) -> List[float]:
    return [v if v > 0 else math.nan for v in values]


def _assets(out: Path, problem) -> List[str]:
    """The fitted scene as GLB and each fitted mesh as OBJ; returns their paths relative to ``out``."""
    from ..io.gltf_writer import write_gltf
    from ..io.obj import write_obj

    written = []
    scene = problem.scene
    views = scene.cameras.pop("views")  # a batched camera: glTF stores one camera per node
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lights glTF cannot hold are left out, as the writer explains
            write_gltf(out / "assets" / "scene.glb", scene)
        written.append("assets/scene.glb")
    finally:
        scene.cameras["views"] = views
    for name in problem.fitted_meshes():
        mesh = scene.meshes[name]
        faces = mesh.faces.cpu()
        uv = None if mesh.uv is None else mesh.uv.detach().cpu()
        write_obj(out / "assets" / f"{name}.obj", mesh.world_verts().detach().cpu(), faces, uv=uv,
                  uv_faces=None if uv is None else mesh.uv_faces.cpu(), materials={name: _cpu(mesh.material)},
                  face_materials=torch.zeros(faces.shape[0], dtype=torch.int64))
        written += [f"assets/{name}.obj", f"assets/{name}.mtl"]
    return written


def _cpu(material):
    """A copy of ``material`` with detached CPU tensors (what the MTL writer saves)."""
    import dataclasses

    return dataclasses.replace(material, **{k: v.detach().cpu() for k, v in material.parameters().items()})


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to metrics.json")
