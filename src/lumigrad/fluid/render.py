"""Seeing smoke: a density grid rendered by emission-absorption through the volume renderer.

:class:`DensityGridField` is the thin field wrapper the volume renderer needs for a density that is *computed*
(by a simulation) rather than learned: it holds the tensor as given (no ``nn.Parameter`` copy), so gradients
flow from the pixels back into the simulation. ``sigma = sigma_scale * density`` and every sample emits the
constant ``color``: a sample's contribution is ``T * (1 - exp(-sigma * delta)) * color``
(:func:`lumigrad.volume.composite`). :func:`render_density` renders one camera through
:func:`lumigrad.volume.render_rays_chunked`; a ``VolumeShape(DensityGridField(...))`` in a Scene renders the same
through ``lumigrad.render(scene, camera, integrator="volume")``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .._checks import check_number, check_positive_int, check_tensor
from ..cameras import Camera
from ..volume.fields.aabb import AabbLike, as_aabb, to_unit_cube
from ..volume.fields.dense_grid import trilinear_interpolate_unchecked
from ..volume.rays import camera_rays
from ..volume.render import default_step_size, render_rays_chunked

__all__ = ["DensityGridField", "render_density"]


class DensityGridField(nn.Module):
    """An emission-absorption field over ``aabb`` from a density grid ``[D, H, W]`` (vertex layout of
    :class:`~lumigrad.volume.fields.DenseGrid`: the corner vertices on the box corners).

    Args:
        density: ``[D, H, W]`` float, ``>= 0``; kept by reference (gradients flow into it).
        aabb: the box, ``[2, 3]`` or ``[6]``.
        sigma_scale: extinction per unit density (per world unit of path).
        color: ``[3]`` emitted colour per unit opacity (numbers or a tensor, which may require gradients).

    **Differentiability:** ``sigma`` is linear in ``density`` (trilinear reads); ``rgb`` is ``color``.
    """

    def __init__(self, density: torch.Tensor, aabb: AabbLike, *, sigma_scale: float = 1.0,
                 color: Union[Sequence[float], torch.Tensor] = (1.0, 1.0, 1.0)):
        super().__init__()
        check_tensor(density, "density", floating=True, finite=True)
        if density.dim() != 3 or min(density.shape) < 2:
            raise ValueError(f"density must have shape [D, H, W] with each size >= 2; got {tuple(density.shape)}")
        if density.numel() and float(density.detach().min()) < 0:
            raise ValueError(f"density must be >= 0; got min {float(density.detach().min()):.3g}")
        self.register_buffer("aabb", as_aabb(aabb).to(device=density.device, dtype=density.dtype))
        self.sigma_scale = check_number(sigma_scale, "sigma_scale", lo=0.0)
        color = color if isinstance(color, torch.Tensor) else torch.tensor(list(color), dtype=density.dtype)
        check_tensor(color, "color", trailing=(3,), max_dims=1, floating=True, finite=True)
        self.values = density
        self.color = color.to(device=density.device, dtype=density.dtype)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """``sigma [N]`` at world ``points [N, 3]`` (0 outside the box)."""
        unit = to_unit_cube(points.to(self.values.dtype), self.aabb)
        return self.sigma_scale * trilinear_interpolate_unchecked(self.values[..., None], unit)[..., 0]

    def forward(self, points: torch.Tensor, directions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(sigma [N], rgb [N, 3])``: the density and the constant colour."""
        sigma = self.density(points)
        return sigma, self.color.expand(sigma.shape[0], 3)


def render_density(density: torch.Tensor, camera: Camera, aabb: AabbLike, *, sigma_scale: float = 1.0,
                   color: Union[Sequence[float], torch.Tensor] = (1.0, 1.0, 1.0),
                   background: Optional[torch.Tensor] = None, steps_per_diagonal: int = 96,
                   early_stop_eps: float = 0.0, chunk: int = 1 << 14) -> Tuple[torch.Tensor, torch.Tensor]:
    """Render a density grid seen by one camera (module doc).

    Args:
        density: ``[D, H, W]`` float, ``>= 0``, finite.
        camera: a single :class:`~lumigrad.cameras.Camera` (no batch), ``height x width`` pixels.
        aabb: the box the grid spans, ``[2, 3]`` or ``[6]``.
        sigma_scale, color: as :class:`DensityGridField`.
        background: ``[3]`` colour behind the smoke (``None``: black).
        steps_per_diagonal: ray samples along the box diagonal (:func:`~lumigrad.volume.default_step_size`).
        early_stop_eps, chunk: as :func:`~lumigrad.volume.render_rays` (0 by default: thin smoke rarely
            becomes opaque, so the extra density pass of early termination would cost more than it saves).

    Returns:
        ``(rgb [height, width, 3], alpha [height, width, 1])`` linear radiance and opacity.

    **Differentiability:** w.r.t. ``density``, ``color`` and ``background`` (the sample positions are fixed, so
    the render is linear in ``color`` and smooth in ``density``).
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad Camera; got {type(camera).__name__}")
    if tuple(camera.batch_shape):
        raise ValueError(f"camera must be a single camera; got batch shape {tuple(camera.batch_shape)}")
    steps = check_positive_int(steps_per_diagonal, "steps_per_diagonal")
    field = DensityGridField(density, aabb, sigma_scale=sigma_scale, color=color)
    rays = camera_rays(camera)
    o = rays.origins.reshape(-1, 3).to(density.dtype)
    d = rays.directions.reshape(-1, 3).to(density.dtype)
    bg = None if background is None else torch.as_tensor(background, dtype=density.dtype, device=density.device)
    rgb, alpha, _ = render_rays_chunked(field, o, d, chunk=chunk, step_size=default_step_size(field.aabb, steps),
                                        background=bg, early_stop_eps=early_stop_eps)
    H, W = camera.height, camera.width
    return rgb.reshape(H, W, 3), alpha.reshape(H, W, 1)
