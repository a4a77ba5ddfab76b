"""A multi-level occupancy grid that lets a volume sampler skip empty space (instant-ngp / nerfacc style).

**Cascade.** Level ``k`` (``0 <= k < levels``) covers the scene box scaled by ``2^k`` about its centre, with
``R^3`` cells (``R = resolution``, indexed ``[z, y, x]``, flat ``x + R (y + R z)``); level 0 is the box itself,
each further level doubles the extent (for unbounded scenes; ``levels = 1`` for a bounded one). A point is looked
up in the finest level that contains it.

**Update.** Each cell keeps a density estimate. Every ``update_every`` steps, :meth:`OccupancyGrid.update`
evaluates ``density_fn`` at one jittered point in each chosen cell and sets::

    estimate = max(estimate * ema_decay, sigma(jittered point))
    occupied = estimate > min(threshold, mean of all estimates / 2)

(instant-ngp's decayed maximum, the "EMA" of its paper). The cap by half the mean keeps the grid from going
empty while the field has not separated matter from empty space yet: instant-ngp caps by the mean itself, which
marks every cell of a field that starts out uniform (as ``NerfField`` does: the same faint density everywhere)
empty after its first update, so that nothing is ever sampled or trained again. During the first ``warmup_steps`` steps every cell is
chosen; after that ``R^3 / 4`` uniformly random cells plus ``R^3 / 4`` cells drawn from the occupied ones, per
level. ``threshold`` is a density (1 / world unit): to skip cells whose opacity over a step ``dt`` stays below
``alpha``, pass ``threshold = -log(1 - alpha) / dt`` (about ``alpha / dt``). Before the first update every cell
is occupied, so nothing is skipped by an untrained grid.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .._checks import check_number, check_positive_int, check_tensor
from .fields.aabb import AabbLike, as_aabb

__all__ = ["OccupancyGrid"]


class OccupancyGrid(nn.Module):
    """Binary occupancy over a cascade of grids, updated from a field's density during training.

    Args:
        aabb: the scene box, ``[2, 3]`` or ``[6]`` (world units); level 0 covers it.
        resolution: cells per axis ``R`` of every level (128 as instant-ngp; any int >= 1).
        levels: number of cascaded levels, each doubling the extent (1 for a bounded scene).
        threshold: density above which a cell is occupied (capped by half the mean estimate; module doc).
        ema_decay: decay of the running estimate per update, in ``[0, 1]`` (0.95 as instant-ngp).
        update_every: update every this many steps (16 as instant-ngp / nerfacc).
        warmup_steps: before this step every cell is updated (256 as nerfacc).
        chunk: points per ``density_fn`` call (bounds memory).

    Buffers (saved with ``state_dict``): ``density [levels, R^3]`` the estimates, ``binary [levels, R, R, R]``
    the occupancy, ``num_updates``.

    **Differentiability:** none; :meth:`update` runs ``density_fn`` under ``torch.no_grad``.

    Example: a ball of radius 0.5 in the box ``[-1, 1]^3``::

        >>> grid = OccupancyGrid([-1, -1, -1, 1, 1, 1], resolution=16, warmup_steps=10)
        >>> ball = lambda p: 10.0 * (p.norm(dim=-1) < 0.5).float()
        >>> _ = [grid.update(step, ball) for step in range(0, 10, 16)]
        >>> grid.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]])).tolist()
        [True, False]
    """

    def __init__(self, aabb: AabbLike, resolution: int = 128, levels: int = 1, *, threshold: float = 0.01,
                 ema_decay: float = 0.95, update_every: int = 16, warmup_steps: int = 256, chunk: int = 1 << 18):
        super().__init__()
        self.register_buffer("aabb", as_aabb(aabb).float())
        self.resolution = check_positive_int(resolution, "resolution")
        self.levels = check_positive_int(levels, "levels")
        if self.resolution > 1024:
            raise ValueError(f"resolution must be <= 1024 cells per axis; got {resolution}")
        self.threshold = check_number(threshold, "threshold", lo=0.0)
        self.ema_decay = check_number(ema_decay, "ema_decay", lo=0.0, hi=1.0)
        self.update_every = check_positive_int(update_every, "update_every")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0; got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        self.chunk = check_positive_int(chunk, "chunk")
        R = self.resolution
        self.register_buffer("density", torch.zeros(self.levels, R ** 3))
        self.register_buffer("binary", torch.ones(self.levels, R, R, R, dtype=torch.bool))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------------------------------ queries
    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each point lies in an occupied cell (of the finest level containing it).

        Args:
            points: ``[..., 3]`` world points, float, finite.

        Returns:
            ``[...]`` bool; ``False`` outside the outermost level.
        """
        check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=self.binary.device)
        return self.occupied_unchecked(points)

    def occupied_unchecked(self, points: torch.Tensor) -> torch.Tensor:
        """:meth:`occupied` without input checks."""
        shape = points.shape[:-1]
        p = points.reshape(-1, 3).to(self.aabb.dtype)
        centre = (self.aabb[0] + self.aabb[1]) / 2
        half = (self.aabb[1] - self.aabb[0]) / 2
        extent = ((p - centre).abs() / half).amax(-1)  # 1 on level 0's boundary
        level = torch.ceil(torch.log2(extent.clamp(min=1e-30))).clamp(min=0).long()
        valid = level < self.levels
        level = level.clamp(max=self.levels - 1)
        scale = (2.0 ** level.to(p.dtype))[:, None]
        unit = (p - centre) / (half * scale) * 0.5 + 0.5  # [0, 1] in the level's box
        R = self.resolution
        cell = (unit * R).floor().long().clamp(0, R - 1)
        hit = self.binary[level, cell[:, 2], cell[:, 1], cell[:, 0]]
        return (hit & valid).reshape(shape)

    @property
    def fraction_occupied(self) -> float:
        """Fraction of all cells (all levels) that are occupied."""
        return float(self.binary.float().mean())

    def fraction_occupied_per_level(self) -> list:
        """Fraction of occupied cells of each level, a list of ``levels`` floats."""
        return self.binary.flatten(1).float().mean(1).tolist()

    # ------------------------------------------------------------------------------------------ training
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor],
               generator: Optional[torch.Generator] = None) -> bool:
        """Refresh the grid on schedule (module doc); call once per training step.

        Args:
            step: the training step (``>= 0``); nothing happens unless ``step % update_every == 0``.
            density_fn: maps world points ``[M, 3]`` (float32, on the grid's device) to densities ``[M]``
                (e.g. ``field.density``); must return finite, non-negative values.
            generator: random generator for the cell choice and jitter (for reproducible / resumable runs).

        Returns:
            ``True`` when the grid was updated at this step.

        Raises:
            ValueError: ``density_fn`` returned the wrong shape, NaN / Inf or negative values.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0; got {step!r}")
        if not callable(density_fn):
            raise TypeError(f"density_fn must be callable (points [M, 3] -> density [M]); got {type(density_fn)}")
        if step % self.update_every != 0:
            return False
        R, dev = self.resolution, self.density.device
        num_cells = R ** 3
        centre = (self.aabb[0] + self.aabb[1]) / 2
        half = (self.aabb[1] - self.aabb[0]) / 2
        with torch.no_grad():
            for lvl in range(self.levels):
                if step < self.warmup_steps:
                    cells = torch.arange(num_cells, device=dev)
                else:
                    n = max(num_cells // 4, 1)
                    uniform = torch.randint(num_cells, (n,), device=dev, generator=generator)
                    occ = self.binary[lvl].reshape(-1).nonzero().squeeze(1)
                    if occ.numel():
                        pick = torch.randint(occ.numel(), (n,), device=dev, generator=generator)
                        cells = torch.cat([uniform, occ[pick]])
                    else:
                        cells = uniform
                xyz = torch.stack([cells % R, (cells // R) % R, cells // (R * R)], dim=-1)
                jitter = torch.rand(cells.shape[0], 3, device=dev, generator=generator)
                unit = (xyz + jitter) / R
                points = centre + (unit * 2 - 1) * half * (2.0 ** lvl)
                sigma = torch.cat([self._eval(density_fn, points[i:i + self.chunk])
                                   for i in range(0, points.shape[0], self.chunk)])
                new = torch.full((num_cells,), -1.0, device=dev).scatter_reduce(0, cells, sigma, "amax")
                touched = new >= 0
                est = self.density[lvl]
                est[touched] = torch.maximum(est[touched] * self.ema_decay, new[touched])
            cut = min(self.threshold, 0.5 * float(self.density.mean()))
            self.binary.copy_((self.density > cut).reshape(self.binary.shape))
            self.num_updates += 1
        return True

    def _eval(self, density_fn, points):
        sigma = density_fn(points)
        if not isinstance(sigma, torch.Tensor) or tuple(sigma.shape) != (points.shape[0],):
            got = tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__
            raise ValueError(f"density_fn must return a tensor [M] (M = {points.shape[0]}) for points [M, 3]; "
                             f"got {got}")
        sigma = sigma.detach().float()
        if not bool(torch.isfinite(sigma).all()):
            raise ValueError("density_fn returned NaN or Inf densities")
        if bool((sigma < 0).any()):
            raise ValueError(f"density_fn returned negative densities (min {float(sigma.min()):.4g})")
        return sigma

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, levels={self.levels}, threshold={self.threshold}"
