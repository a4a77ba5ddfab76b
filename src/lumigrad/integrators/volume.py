"""The ``"volume"`` integrator: the scene's radiance field (:class:`~lumigrad.volume.VolumeShape`) by ray marching.

Every pixel's ray (through the camera's own projection and lens distortion) is clipped to the field's box,
marched with a fixed step (empty space skipped with the shape's occupancy grid, samples behind opaque parts
dropped) and composited over the background: :func:`lumigrad.volume.render_rays`, in chunks of rays so that
memory stays bounded for any image size.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from .._checks import check_number, check_positive_int
from ..cameras.camera import Camera
from ..scene.scene import Scene
from ..shading.image_formation import form_image_unchecked
from ..volume.rays import camera_rays
from ..volume.render import DEFAULT_STEPS_PER_DIAGONAL, default_step_size, render_rays_chunked
from ..scene.volume_shape import VolumeShape
from .base import Integrator, RenderOutput, register_integrator

__all__ = ["VolumeIntegrator"]

BackgroundLike = Union[None, float, Sequence[float], torch.Tensor]


@register_integrator("volume")
class VolumeIntegrator(Integrator):
    """Render the scene's one :class:`~lumigrad.volume.VolumeShape` (group ``"volumes"``) by ray marching.

    Settings:
        steps_per_diagonal: samples along the box diagonal: the step is the diagonal over this (default 256).
        step_size: the step as a distance instead (overrides ``steps_per_diagonal``).
        early_stop_eps: samples behind which less than this much light gets through are not evaluated
            (``0``: every sample is).
        use_occupancy: skip the cells the shape's occupancy grid marks empty (when it has one).
        background: colour behind the volume: ``None`` / a number / ``[r, g, b]`` / a ``[3]`` tensor (black
            by default). The alpha channel is the volume's opacity either way.
        chunk: rays rendered at once (bounds memory; the image is the same for any chunk).
        near: no samples closer to the camera than this distance.

    ``spp = 1`` renders evenly spaced samples (repeatable); ``spp > 1`` averages ``spp`` renders with jittered
    samples drawn from ``seed`` (antialiasing along the ray, not across the pixel).

    AOVs: ``depth`` (camera-frame z of the expected distance of the visible part, weights normalised by the
    opacity; 0 where nothing is seen), ``mask`` (the opacity, the same as ``alpha``).

    Meshes in the scene are not drawn (a :class:`UserWarning` once per render says so).

    **Differentiability:** ``rgb``, ``alpha`` and the AOVs are differentiable w.r.t. the field's parameters,
    ``background`` and the camera (``K``, ``world_to_cam``, distortion: through the ray origins and
    directions); the choice of samples is discrete.
    """

    aov_names = ("depth", "mask")
    monte_carlo = True

    def __init__(self, *, steps_per_diagonal: int = DEFAULT_STEPS_PER_DIAGONAL, step_size: Optional[float] = None,
                 early_stop_eps: float = 1e-4, use_occupancy: bool = True, background: BackgroundLike = None,
                 chunk: int = 1 << 14, near: float = 0.0):
        self.steps_per_diagonal = check_positive_int(steps_per_diagonal, "steps_per_diagonal")
        self.step_size = None if step_size is None else check_number(step_size, "step_size", lo=0.0, lo_open=True)
        self.early_stop_eps = check_number(early_stop_eps, "early_stop_eps", lo=0.0, hi=1.0, hi_open=True)
        if not isinstance(use_occupancy, bool):
            raise TypeError(f"use_occupancy must be a bool; got {type(use_occupancy).__name__}")
        self.use_occupancy = use_occupancy
        self.background = _background(background)
        self.chunk = check_positive_int(chunk, "chunk")
        self.near = check_number(near, "near", lo=0.0)

    def render(self, scene: Scene, camera: Camera, *, aovs: Sequence[str] = (), spp: int = 1,
               seed: int = 0) -> RenderOutput:
        """Render colour, opacity and the AOVs ``aovs``; see the class."""
        shape = _the_volume(scene)
        rays = camera_rays(camera)
        lead = rays.origins.shape[:-1]
        o, d = rays.origins.reshape(-1, 3), rays.directions.reshape(-1, 3)
        step = self.step_size if self.step_size is not None else default_step_size(shape.aabb,
                                                                                   self.steps_per_diagonal)
        occupancy = shape.occupancy if self.use_occupancy else None
        bg = None if self.background is None else self.background.to(device=o.device, dtype=o.dtype)
        generator = None
        if spp > 1:
            generator = torch.Generator(device=o.device)
            generator.manual_seed(seed)
        radiance = alpha = distance = 0.0
        for _ in range(spp):
            rgb_s, alpha_s, dist_s = render_rays_chunked(shape.field, o, d, chunk=self.chunk, step_size=step,
                                                         occupancy=occupancy, near=self.near, background=bg,
                                                         jitter=spp > 1, generator=generator,
                                                         early_stop_eps=self.early_stop_eps)
            radiance, alpha, distance = radiance + rgb_s, alpha + alpha_s, distance + dist_s
        radiance = (radiance / spp).reshape(lead + (3,))
        alpha = (alpha / spp).reshape(lead + (1,)).to(radiance.dtype)
        film = scene.film
        rgb = form_image_unchecked(radiance, exposure=film.exposure, white_balance=film.white_balance,
                                   vignetting=film.vignetting, K=camera.K if film.vignetting is not None else None,
                                   tone=film.tone, encode=film.encode, gamma=film.gamma)
        buffers = {}
        if "mask" in aovs:
            buffers["mask"] = alpha
        if "depth" in aovs:
            distance = (distance / spp).reshape(lead + (1,)).to(radiance.dtype)
            buffers["depth"] = distance * _axial_cosine(camera, rays.directions).to(radiance.dtype)
        return RenderOutput(rgb, alpha, buffers)


def _the_volume(scene: Scene) -> VolumeShape:
    volumes = scene.shapes.get("volumes", {})
    if len(volumes) != 1:
        have = ", ".join(volumes) or "none"
        raise ValueError(f"the volume integrator renders a scene with exactly one VolumeShape (scene.add_shape(name, "
                         f"VolumeShape(field))); this scene's volumes: {have}")
    if scene.meshes:
        import warnings

        warnings.warn("the volume integrator draws only the scene's volume; its meshes are not rendered",
                      UserWarning, stacklevel=3)
    return next(iter(volumes.values()))


def _background(value: BackgroundLike) -> Optional[torch.Tensor]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("background must be None, a number, [r, g, b] or a [3] tensor; got a bool")
    if isinstance(value, (int, float)):
        value = [float(value)] * 3
    try:
        t = torch.as_tensor(value, dtype=torch.float64) if not isinstance(value, torch.Tensor) else value.detach()
    except (TypeError, ValueError):
        raise TypeError(f"background must be None, a number, [r, g, b] or a [3] tensor; got {value!r}") from None
    if t.shape != (3,) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"background must be three finite numbers; got {value!r}")
    return value if isinstance(value, torch.Tensor) else t


def _axial_cosine(camera: Camera, directions: torch.Tensor) -> torch.Tensor:
    """``[..., 1]`` the camera-frame z component of unit world directions (distance -> depth)."""
    axis = camera.world_to_cam[..., 2, :3]  # the camera's z axis in world coordinates
    return (directions * axis.reshape(axis.shape[:-1] + (1, 1, 3)).to(directions.dtype)).sum(-1, keepdim=True)
