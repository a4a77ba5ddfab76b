"""The output folder of a radiance-field fit.

::

    OUT/report.html             one page showing everything below
    OUT/metrics.json            held-out and training PSNR, the PSNR-vs-time curve, samples per ray, timings
    OUT/images/holdout.png      rows: held-out photos, renders, depth (up to 4 views)
    OUT/images/turntable.png    the field seen from a circle of cameras (an image strip)
    OUT/plots/psnr.png          PSNR against training time: training batches and held-out views
    OUT/plots/loss.png          the loss terms per step
    OUT/assets/field.pt         the field's weights, its settings and box (``lumigrad.fitting.load_field``)
    OUT/assets/density.ply      the density's iso-surface as a mesh (opens in Blender / MeshLab)
    OUT/assets/turntable.gif    the turntable as an animation
    OUT/checkpoint/             the resumable state of the fit
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ..app.report import save_image_grid
from ..app.report_html import Figure, write_html_report
from .outputs import loss_plot, prepare_output_folder, save_line_plot

__all__ = ["write_volume_outputs"]

MAX_VIEWS_SHOWN = 4
TURNTABLE_VIEWS = 12
MESH_RESOLUTION = 96  # lattice cells per axis of the exported iso-surface (WaterBottle fit: 383k faces, bbox within 1 mm)


def write_volume_outputs(out: Path, trainer, result, metrics: Dict, run_log: Sequence[str] = ()) -> Path:
    """Write the folder described in the module docstring; return the report's path."""
    config = trainer.config
    prepare_output_folder(out, config)
    figures: List[Figure] = []
    if trainer.data.holdout_camera is not None:
        n = min(len(trainer.data.holdout_camera), MAX_VIEWS_SHOWN)
        rgb, distance = trainer.render_holdout(n)
        depth = _depth_image(distance)
        rows = torch.cat([trainer.holdout_targets(n).cpu(), rgb.cpu(), depth.cpu()])
        save_image_grid(out / "images" / "holdout.png", rows, columns=n)
        figures.append(Figure("Held-out views", "images/holdout.png",
                              f"Rows: photo (never trained on), render, depth (near bright); {n} of "
                              f"{len(trainer.data.holdout_camera)} held-out views."))
    _psnr_plot(out / "plots" / "psnr.png", result)
    figures.append(Figure("PSNR against training time", "plots/psnr.png",
                          "Training batches (running mean over 20 steps) and held-out views; evaluation time "
                          "excluded."))
    loss_plot(out / "plots" / "loss.png", result)
    figures.append(Figure("Loss", "plots/loss.png", "Each loss term per step (log scale)."))
    assets = _assets(out, trainer, figures, metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    summary = (f"{metrics['steps']} steps in {metrics['training_seconds']:.0f} s of training on "
               f"{metrics['train_views']} views; held-out PSNR {_fmt(metrics.get('holdout_psnr_db'))} dB on "
               f"{metrics['holdout_views']} views, training PSNR {_fmt(metrics.get('train_psnr_db'))} dB.")
    return write_html_report(out, title=config.name, summary=summary, metrics=metrics, figures=figures,
                             assets=assets + ["metrics.json"], config_text=config.text, log_tail=list(run_log)[-20:])


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _depth_image(distance: torch.Tensor) -> torch.Tensor:
    """Distances as a grey image, near bright, the background black."""
    d = distance[..., 0]
    seen = d > 0
    if not bool(seen.any()):
        return torch.zeros(d.shape + (3,))
    lo, hi = float(d[seen].min()), float(d[seen].max())
    v = torch.where(seen, 1 - 0.8 * (d - lo) / max(hi - lo, 1e-6), torch.zeros_like(d))
    return v[..., None].expand(d.shape + (3,)).contiguous()


def _assets(out: Path, trainer, figures: List[Figure], metrics: Dict) -> List[str]:
    from .volume_field_io import save_field

    save_field(out / "assets" / "field.pt", trainer)
    assets = ["assets/field.pt"]
    from ..io import write_frames
    from ..volume import density_to_mesh, turntable_cameras

    mesh = density_to_mesh(trainer.field.density, trainer.data.aabb.cpu(), resolution=MESH_RESOLUTION)
    metrics["mesh_faces"] = int(mesh.faces.shape[0])
    if mesh.faces.shape[0]:
        from ..io import write_ply

        write_ply(out / "assets" / "density.ply", mesh.verts, mesh.faces)
        assets.append("assets/density.ply")
    size = trainer.data.train_camera.width, trainer.data.train_camera.height
    cams = turntable_cameras(trainer.data.aabb.cpu(), views=TURNTABLE_VIEWS, size=(min(size[0], 160), min(size[1], 160)))
    images, _ = trainer.render_views(cams.to(device=trainer.origins.device))
    save_image_grid(out / "images" / "turntable.png", images.cpu(), columns=TURNTABLE_VIEWS // 2)
    write_frames(out / "assets" / "turntable.gif", images.cpu())
    figures.append(Figure("Turntable", "images/turntable.png",
                          f"The fitted field from {TURNTABLE_VIEWS} cameras around its box (assets/turntable.gif)."))
    assets.append("assets/turntable.gif")
    return assets


def _psnr_plot(path: Path, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = result.logs
    t = [log.get("time_s", math.nan) for log in logs]
    psnr = [log.get("psnr_db", math.nan) for log in logs]
    smooth = [sum(psnr[max(0, k - 19):k + 1]) / len(psnr[max(0, k - 19):k + 1]) for k in range(len(psnr))]
    held = [(log["time_s"], log["holdout_psnr_db"]) for log in logs if "holdout_psnr_db" in log]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(t, smooth, label="training rays (running mean)", color="0.5")
    if held:
        ax.plot([h[0] for h in held], [h[1] for h in held], "o-", label="held-out views", color="C0")
    save_line_plot(fig, ax, path, "training time (s)", "PSNR (dB)")
