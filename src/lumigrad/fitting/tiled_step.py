"""One fit step rendered in tiles (``[render] tile = N``): the step's loss with the memory of one tile's graph.

Each tile of each drawn view is rendered, scored by the ``[loss]`` image terms and differentiated at once
(:func:`lumigrad.tiled_loss`); the gradients, taken with respect to the scene's tensors, are summed over the tiles
and the returned loss carries them, so :class:`~lumigrad.optim.Fit` steps as after an untiled render. Only
terms that are weighted means over pixels (``per_pixel`` in :mod:`lumigrad.fitting.losses`: ``mse``, ``l1``,
with or without ``mask = "alpha"``) split over tiles exactly: a tile's value is weighted by its share of the
image's weight. Mesh regularizers do not depend on the image and are added once.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from ..cameras.camera import Camera
from ..integrators import tiled_loss
from .config import ConfigError, FitConfig
from .losses import LOSS_TERMS, LossInputs

__all__ = ["check_tiling", "tiled_step_loss"]


def check_tiling(config: FitConfig) -> None:
    """``[render] tile`` goes with per-pixel image terms and without a time axis.

    Raises:
        ConfigError: naming the first term that tiles would change, or ``data.times`` / ``data.frames``.
    """
    if not config.render.tile:
        return
    for name in config.loss:
        term = LOSS_TERMS[name]
        if term.data and not term.per_pixel:
            safe = ", ".join(n for n, t in LOSS_TERMS.items() if t.per_pixel)
            raise ConfigError(f"{config.path.name}: loss.{name} reads pixel neighbourhoods or whole-image statistics, "
                              f"which render.tile would cut at tile borders; tiled fits take per-pixel terms "
                              f"({safe}) and mesh regularizers")
    if config.data.over_time:
        raise ConfigError(f"{config.path.name}: render.tile renders one time at a time only without data.times / "
                          "data.frames; drop one of them")


def tiled_step_loss(problem, camera: Camera, targets: torch.Tensor, step: int) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(loss, {"loss/<term>": value})`` of one step: ``camera`` (the drawn views, at the step's resolution)
    rendered in tiles of ``[render] tile`` pixels against ``targets [K, H, W, C]``."""
    from .problem import check_finite_render, render_settings

    config = problem.config
    data_terms = [(name, w) for name, w in config.loss.items() if LOSS_TERMS[name].data]
    masked = config.mask == "alpha"
    whole = float(targets[..., 3].sum()) if masked else float(targets[..., 0].numel())
    logged = dict.fromkeys(config.loss, 0.0)

    def tile_loss(out, target_tile: torch.Tensor) -> torch.Tensor:
        check_finite_render(out.rgba, step)
        mask = target_tile[..., 3:4] if masked else None
        part = float(mask.sum()) if masked else float(target_tile[..., 0].numel())
        share = part / whole if whole > 0 else 0.0
        x = LossInputs(problem, out.rgb, out.alpha[..., 0], target_tile, target_tile[..., :3], mask)
        value = out.rgb.new_zeros(())
        for name, weight in data_terms:
            term = LOSS_TERMS[name].compute(x) * share
            logged[name] += float(term.detach())
            value = value + weight * term
        return value

    loss = tiled_loss(problem.scene, camera, tile_loss, targets, inputs=list(problem.scene.parameters().values()),
                      tile=config.render.tile, integrator=config.render.integrator, spp=config.render.spp,
                      seed=problem.step_seed(step), **render_settings(config, targets))
    regularizers = LossInputs(problem, None, None, targets, targets[..., :3])
    for name, weight in config.loss.items():
        if not LOSS_TERMS[name].data:
            value = LOSS_TERMS[name].compute(regularizers)
            logged[name] = float(value.detach())
            loss = loss + weight * value
    return loss, {f"loss/{name}": value for name, value in logged.items()}
