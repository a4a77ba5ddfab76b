"""The report's comparison of renders and targets over every view, before and after a fit.

A fit that holds its targets and renders whole images compares them in one batch, as it always did. A fit
made for large inputs (``[data] stream`` or ``[render] tile``) would lose its bounded memory at the last
moment if the report rendered every view at once: it renders one view at a time (tile by tile with
``[render] tile``), accumulates the error sums in float64 and keeps only the views the report shows.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from ..integrators import render_tiled
from .metrics import image_metrics
from .streamed_targets import StreamedTargets

__all__ = ["MAX_VIEWS_SHOWN", "evaluate_views", "render_view"]

#: Views the report shows (images/views.png, error.png): the renders kept when views go one at a time.
MAX_VIEWS_SHOWN = 4


def evaluate_views(problem) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(renders, metrics)`` of the scene as it is now: ``renders [N, H, W, 4]`` of every target view (the first
    :data:`MAX_VIEWS_SHOWN` only when views go one at a time) and :func:`~lumigrad.fitting.metrics.image_metrics`
    over all views (``psnr_db``, ``mean_abs_error``)."""
    with torch.no_grad():
        if not _one_at_a_time(problem):
            images = problem.render_views()
            return images, image_metrics(images, problem.targets)
        kept, squared, absolute, count = [], 0.0, 0.0, 0
        for k in range(len(problem.camera)):
            image = render_view(problem, k)
            target = problem.targets[k:k + 1]
            a, b = image[..., :3].clamp(0, 1).double(), target[..., :3].clamp(0, 1).double()
            squared += float(((a - b) ** 2).sum())
            absolute += float((a - b).abs().sum())
            count += a.numel()
            if k < MAX_VIEWS_SHOWN:
                kept.append(image)
    mse = squared / count
    psnr_db = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
    return torch.cat(kept), {"psnr_db": psnr_db, "mean_abs_error": absolute / count}


def _one_at_a_time(problem) -> bool:
    return isinstance(problem.targets, StreamedTargets) or bool(problem.config.render.tile)


def render_view(problem, k: int) -> torch.Tensor:
    """``[1, H, W, 4]`` render of target view ``k`` as the scene is now (tiled with ``[render] tile``)."""
    camera = problem.camera[torch.tensor([k])]
    tile: Optional[int] = problem.config.render.tile or None
    if tile is None:
        return problem.render_output(camera).rgba
    from .problem import render_settings

    config = problem.config
    _, out = render_tiled(problem.scene, camera, lambda out, t: out.rgb.new_zeros(()), tile=tile,
                          integrator=config.render.integrator, spp=config.render.spp, seed=problem.step_seed(None),
                          return_image=True, **render_settings(config, problem.targets))
    return out.rgba
