"""``render_sequence(scene, cameras, times, integrator=...)``: one render per time, stacked into ``[T, H, W, C]``."""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch

from .._checks import check_numbers
from ..cameras.camera import Camera
from ..scene.scene import Scene
from .base import Integrator, RenderOutput, get_integrator
from .dispatch import MAX_SEED, render

__all__ = ["render_sequence", "scene_at", "camera_at"]


def scene_at(scene: Union[Scene, Callable], t) -> Scene:
    """The scene at time ``t``: ``scene(t)`` for a callable, ``scene.at(t)`` when the Scene has ``at``, else
    ``scene`` itself (a static scene).

    Raises:
        TypeError: ``scene`` neither a Scene nor a callable, or a callable that returned something else.
    """
    if isinstance(scene, Scene):
        at = getattr(scene, "at", None)
        return at(t) if callable(at) else scene
    if callable(scene):
        out = scene(t)
        if not isinstance(out, Scene):
            raise TypeError(f"scene(t) must return a lumigrad.Scene; got {type(out).__name__} at t={float(t)}")
        return out
    raise TypeError(f"scene must be a lumigrad.Scene or a callable t -> Scene; got {type(scene).__name__}")


def camera_at(cameras, k: int, t, count: int) -> Camera:
    """Frame ``k``'s camera: ``cameras.camera_at(t)`` for a trajectory, ``cameras[k]`` for a Camera with batch
    shape ``[T]`` or a list of ``T`` Cameras, ``cameras`` itself for one Camera with batch shape ``[]``."""
    if callable(getattr(cameras, "camera_at", None)):
        return cameras.camera_at(t)
    if isinstance(cameras, Camera):
        if cameras.batch_shape == ():
            return cameras
        if tuple(cameras.batch_shape) != (count,):
            raise ValueError(f"cameras must have batch shape [] or [T] = [{count}] (one view per time); got "
                             f"{list(cameras.batch_shape)}")
        return cameras[k]
    if isinstance(cameras, (list, tuple)):
        if len(cameras) != count:
            raise ValueError(f"cameras must hold one Camera per time ({count}); got {len(cameras)}")
        if not isinstance(cameras[k], Camera):
            raise TypeError(f"cameras[{k}] must be a lumigrad.Camera; got {type(cameras[k]).__name__}")
        return cameras[k]
    raise TypeError("cameras must be a trajectory (with camera_at(t)), a Camera or a list of Cameras; got "
                    f"{type(cameras).__name__}")


def render_sequence(scene: Union[Scene, Callable], cameras, times, *, integrator: Union[str, Integrator] = "raster",
                    aovs: Sequence[str] = (), spp: int = 1, seed: int = 0, **settings) -> RenderOutput:
    """Render ``scene`` at each of ``times`` through ``cameras`` with one integrator; stack the frames.

    Args:
        scene: a :class:`~lumigrad.Scene` (posed with ``scene.at(t)`` when it has that method, e.g. an animated
            glTF scene; used as is otherwise) or a callable ``t -> Scene`` (e.g.
            ``lambda t: lumigrad.scene.deformed_scene(rest, deformation, t)``).
        cameras: a trajectory (:class:`~lumigrad.cameras.SplineTrajectory`, :class:`~lumigrad.cameras.PoseTrajectory`
            or anything with ``camera_at(t)``), a :class:`~lumigrad.Camera` with batch shape ``[T]`` (frame ``k``
            uses view ``k``) or ``[]`` (one camera for every frame), or a list of ``T`` single-view Cameras.
            Every frame's camera must give the same image size.
        times: ``T >= 1`` times, a sequence of floats or a 1-D tensor (passed to the scene and trajectory as
            floats, or as 0-d tensors when ``times`` is a tensor).
        integrator, aovs, spp, **settings: as :func:`lumigrad.render` (``"raster"``, ``"path"``, ``"volume"``,
            ...). The integrator is built once and reused for every frame.
        seed: frame ``k`` is rendered with seed ``seed + k`` (independent noise per frame for Monte Carlo).

    Returns:
        A :class:`~lumigrad.integrators.RenderOutput` with ``rgb [T, H, W, 3]``, ``alpha [T, H, W, 1]`` and each
        AOV ``[T, H, W, C]``.

    Raises:
        TypeError / ValueError: as :func:`lumigrad.render`, plus bad ``times`` (empty, NaN, not 1-D), cameras
            that do not give one view per time, frames of different sizes.

    **Memory:** frames are rendered one at a time, so the renderer's intermediate buffers are bounded by one
    frame; under autograd the graphs of all ``T`` frames are kept until ``backward``. For long sequences under
    autograd, call ``render_sequence`` on chunks of ``times`` and back-propagate each chunk's loss before the
    next (the example ``examples/14_deforming_avatar.py`` does).

    **Differentiability:** what the integrator gives, per frame, to the scene's tensors (and through a callable
    scene, to whatever it is built from: deformation fields, skinning) and to the cameras (a trajectory's
    ``parameters()``).
    """
    values = check_numbers(times, "times")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if not 0 <= seed <= MAX_SEED - len(values):
        raise ValueError(f"seed must be in [0, 2^63 - T); got {seed}")
    chosen = integrator if isinstance(integrator, Integrator) else get_integrator(integrator, **settings)
    if isinstance(integrator, Integrator) and settings:
        raise ValueError(f"settings ({', '.join(settings)}) go with an integrator name; this integrator "
                         "instance is already configured")
    frames = []
    size = None
    for k, t in enumerate(values):
        cam = camera_at(cameras, k, t, len(values))
        if size is None:
            size = (cam.width, cam.height)
        elif (cam.width, cam.height) != size:
            raise ValueError(f"every frame's camera must have the same image size; frame 0 is {size[0]}x{size[1]}, "
                             f"frame {k} is {cam.width}x{cam.height}")
        if cam.batch_shape != ():
            raise ValueError(f"frame {k}'s camera must be a single view (batch shape []); got "
                             f"{list(cam.batch_shape)}")
        frames.append(render(scene_at(scene, t), cam, integrator=chosen, aovs=aovs, spp=spp, seed=seed + k))
    stacked = {name: torch.stack([f.aovs[name] for f in frames]) for name in frames[0].aovs}
    return RenderOutput(torch.stack([f.rgb for f in frames]), torch.stack([f.alpha for f in frames]), stacked)
