"""``render_rays``: a radiance field seen along rays, end to end (the one path both rendering and training use).

::

    rays -> clip to the field's box -> stratified samples (step size) -> drop empty space (occupancy grid)
         -> density pass without gradients -> drop samples behind opaque parts (early termination)
         -> field(points, directions) -> composite over the background

The field is any module with ``aabb`` (``[2, 3]`` or ``[6]``), ``density(points [N, 3]) -> [N]`` and
``forward(points, directions) -> (sigma [N], rgb [N, 3])``: :class:`~lumigrad.volume.fields.NerfField`, or a
user's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from .._checks import check_number, check_positive_int, check_tensor
from .composite import composite
from .occupancy import OccupancyGrid
from .rays import ray_aabb
from .packing import segment_exclusive_cumsum
from .sampling import RaySamples, stratified_samples

__all__ = ["RayRender", "default_step_size", "render_rays", "render_rays_chunked"]

#: Samples along the box diagonal of :func:`default_step_size` (instant-ngp takes 1024 at full quality; a CPU
#: fit of a 100-200 pixel image needs fewer).
DEFAULT_STEPS_PER_DIAGONAL = 256


@dataclass
class RayRender:
    """What :func:`render_rays` returns for ``R`` rays.

    Attributes:
        rgb: ``[R, 3]`` colour over the background; opacity: ``[R, 1]``; depth: ``[R, 1]`` expected distance
            along the (unit) ray, 0 where nothing was hit.
        samples: the packed samples the field was evaluated at (after empty-space skipping and culling).
        weights: ``[S]`` compositing weights of ``samples`` (for regularisers such as the distortion loss).
        samples_per_ray: mean number of field evaluations per ray (the colour pass).
    """

    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor
    samples: RaySamples
    weights: torch.Tensor
    samples_per_ray: float


def default_step_size(aabb: torch.Tensor, steps: int = DEFAULT_STEPS_PER_DIAGONAL) -> float:
    """The box diagonal over ``steps``: the distance between samples of a ray crossing the box corner to corner."""
    box = torch.as_tensor(aabb).reshape(-1)
    return float(torch.linalg.vector_norm(box[3:] - box[:3])) / check_positive_int(steps, "steps")


def render_rays(field: nn.Module, origins: torch.Tensor, directions: torch.Tensor, *,
                step_size: Optional[float] = None, occupancy: Optional[OccupancyGrid] = None, near: float = 0.0,
                background: Optional[torch.Tensor] = None, jitter: bool = False,
                generator: Optional[torch.Generator] = None, early_stop_eps: float = 1e-4,
                max_samples_per_ray: int = 1024) -> RayRender:
    """Render ``R`` rays through a radiance field.

    Args:
        field: the field (module doc); its ``aabb`` bounds the rays.
        origins, directions: ``[R, 3]`` world rays, unit directions (``t`` is then a distance).
        step_size: distance between samples (default :func:`default_step_size` of the box).
        occupancy: an :class:`~lumigrad.volume.OccupancyGrid`; samples in cells it marks empty are skipped.
        near: no samples before this distance.
        background: ``[3]`` or ``[R, 3]`` colour seen where the rays are not fully absorbed; ``None`` for black.
        jitter: randomise sample positions (training); ``False`` gives evenly spaced, repeatable samples.
        generator: random generator of the jitter.
        early_stop_eps: samples behind which the transmittance is below this are not coloured (0: all are).
        max_samples_per_ray: cap on samples of one ray.

    Returns:
        :class:`RayRender`.

    Raises:
        ValueError: rays of the wrong shape or not finite, a bad ``step_size`` / ``early_stop_eps``, a field
            returning densities or colours of the wrong shape, negative or not finite.

    **Differentiability:** ``rgb``, ``opacity`` and ``depth`` are differentiable w.r.t. the field's parameters
    (through its outputs), ``background`` and the rays (through the sample positions; the choice of samples
    is discrete).
    """
    check_tensor(origins, "origins", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(directions, "directions", trailing=(None, 3), max_dims=2, floating=True, finite=True,
                 device=origins.device)
    if directions.shape != origins.shape:
        raise ValueError(f"directions must have the shape of origins {tuple(origins.shape)}; got "
                         f"{tuple(directions.shape)}")
    aabb = getattr(field, "aabb", None)
    if not isinstance(aabb, torch.Tensor) or aabb.numel() != 6:
        raise ValueError("field must have an aabb tensor ([2, 3] or [6]: the box the field lives in)")
    box = aabb.reshape(6).to(device=origins.device, dtype=origins.dtype)
    step = default_step_size(box) if step_size is None else check_number(step_size, "step_size", lo=0.0,
                                                                            lo_open=True)
    eps = check_number(early_stop_eps, "early_stop_eps", lo=0.0, hi=1.0, hi_open=True)
    R = origins.shape[0]
    t_near, t_far, hit = ray_aabb(origins.detach(), directions.detach(), box, near)
    occupied = occupancy.occupied_unchecked if occupancy is not None else None
    samples = stratified_samples(t_near, t_far, step_size=step, hit=hit, jitter=jitter, generator=generator,
                                 max_samples_per_ray=max_samples_per_ray, origins=origins, directions=directions,
                                 occupied=occupied)
    if eps > 0 and samples.num_samples:
        samples = _march_until_opaque(field, samples, origins, directions, eps)
    points = samples.positions(origins, directions)
    dirs = directions.index_select(0, samples.ray_indices)
    sigma, rgb = field(points, dirs)
    _check_field_output(sigma, rgb, samples.num_samples)
    bg = None if background is None else background.to(device=origins.device)
    out = composite(sigma, rgb.to(sigma.dtype), samples.t_starts.to(sigma.dtype), samples.t_ends.to(sigma.dtype),
                    samples.ray_indices, R, background=None if bg is None else bg.to(sigma.dtype),
                    return_weights=True)
    return RayRender(out.rgb, out.opacity, out.depth, samples, out.weights, samples.num_samples / max(R, 1))


def render_rays_chunked(field: nn.Module, origins: torch.Tensor, directions: torch.Tensor, *, chunk: int = 1 << 14,
                        **settings) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`render_rays` of ``chunk`` rays at a time (memory bounded for any number of rays).

    Args:
        field, origins, directions: as :func:`render_rays` (``[R, 3]`` rays).
        chunk: rays rendered at once; the result does not depend on it (a ``generator`` in ``settings`` is
            drawn from chunk after chunk).
        **settings: the other keyword arguments of :func:`render_rays`.

    Returns:
        ``(rgb [R, 3], opacity [R, 1], depth [R, 1])`` (depth: distance along the unit ray).

    **Differentiability:** as :func:`render_rays`.
    """
    chunk = check_positive_int(chunk, "chunk")
    parts = [render_rays(field, origins[k:k + chunk], directions[k:k + chunk], **settings)
             for k in range(0, origins.shape[0], chunk)]
    if not parts:
        empty = origins.new_zeros(0, 1)
        return origins.new_zeros(0, 3), empty, empty.clone()
    return (torch.cat([p.rgb for p in parts]), torch.cat([p.opacity for p in parts]),
            torch.cat([p.depth for p in parts]))


#: Samples per ray whose densities :func:`_march_until_opaque` evaluates at once.
MARCH_WINDOW = 32


@torch.no_grad()
def _march_until_opaque(field: nn.Module, samples: RaySamples, origins: torch.Tensor, directions: torch.Tensor,
                        eps: float) -> RaySamples:
    """The samples in front of the point where each ray's transmittance falls below ``eps``.

    Densities are evaluated front to back, :data:`MARCH_WINDOW` samples of every still-transparent ray at a
    time, so that the samples behind an opaque surface are never evaluated (as instant-ngp marches), and a
    sample is kept when the transmittance in front of it is at least ``eps``.
    """
    local = torch.arange(samples.num_samples, device=samples.counts.device) - samples.offsets.index_select(
        0, samples.ray_indices)
    depth = torch.zeros(samples.num_rays, dtype=torch.float64, device=samples.counts.device)  # optical depth so far
    keep = torch.zeros(samples.num_samples, dtype=torch.bool, device=samples.counts.device)
    cut = -math.log(eps)
    longest = int(samples.counts.max()) if samples.num_rays else 0
    for begin in range(0, longest, MARCH_WINDOW):
        alive = depth < cut
        window = (local >= begin) & (local < begin + MARCH_WINDOW) & alive.index_select(0, samples.ray_indices)
        index = window.nonzero()[:, 0]
        if not index.numel():
            break
        sub = samples.select(window)
        sigma = _checked_density(field, sub.positions(origins, directions)).double()
        tau = sigma * sub.deltas().double()
        before = depth.index_select(0, sub.ray_indices) + segment_exclusive_cumsum(tau, sub.ray_indices, sub.offsets)
        keep[index] = before < cut
        depth.index_add_(0, sub.ray_indices, tau)
    return samples.select(keep)


def _checked_density(field: nn.Module, points: torch.Tensor) -> torch.Tensor:
    sigma = field.density(points)
    if not isinstance(sigma, torch.Tensor) or sigma.shape != points.shape[:-1]:
        raise ValueError(f"field.density must return one density per point, shape {tuple(points.shape[:-1])}; got "
                         f"{tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__}")
    _check_density_values(sigma, "field.density(points)")
    return sigma


def _check_field_output(sigma, rgb, count: int) -> None:
    if not isinstance(sigma, torch.Tensor) or sigma.shape != (count,):
        raise ValueError(f"field must return sigma of shape [{count}]; got "
                         f"{tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__}")
    if not isinstance(rgb, torch.Tensor) or rgb.shape != (count, 3):
        raise ValueError(f"field must return rgb of shape [{count}, 3]; got "
                         f"{tuple(rgb.shape) if isinstance(rgb, torch.Tensor) else type(rgb).__name__}")
    _check_density_values(sigma.detach(), "the field's sigma")
    check_tensor(rgb.detach(), "the field's rgb", floating=True, finite=True)


def _check_density_values(sigma: torch.Tensor, name: str) -> None:
    check_tensor(sigma, name, floating=True, finite=True)
    if sigma.numel() and bool((sigma < 0).any()):
        raise ValueError(f"{name} has negative densities (min {float(sigma.min()):.3g}); a density must be >= 0")
