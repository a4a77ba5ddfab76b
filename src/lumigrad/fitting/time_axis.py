"""The time axis of a fit: targets seen from ``N`` views at ``T`` times of one animation.

With ``[data] times = [...]`` (or ``frames = T``, evenly over the animation's duration, both ends included) the
targets are the ``T x N`` (time, view) pairs, time-major: pair ``p`` is time ``p // N`` seen from view
``p % N``. Each pair is rendered from the scene posed at its time (:meth:`lumigrad.Scene.at`), so the
animation's keyframe values (``animations.NAME.TARGET.PATH``) get gradients from every pair whose time their
keys span, beside the static parameters (materials, skin weights, cameras).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..cameras.camera import Camera
from ..integrators import RenderOutput
from ..scene.scene import Scene
from .config import ConfigError, FitConfig

__all__ = ["TimeAxis", "time_axis"]

RenderOne = Callable[[Scene, Camera], RenderOutput]


@dataclass
class TimeAxis:
    """The animation ``animation`` played at ``times [T]`` (seconds) for ``views`` views per time."""

    animation: str
    times: torch.Tensor
    views: int

    def __len__(self) -> int:
        return len(self.times) * self.views

    def render(self, scene: Scene, camera: Camera, render_one: RenderOne,
               pairs: Optional[torch.Tensor] = None) -> RenderOutput:
        """Render the (time, view) ``pairs`` (sorted pair indices; ``None``: all, in order) of ``scene`` seen by
        ``camera`` (its ``N`` views), one ``render_one(scene posed at t, views at t)`` call per time."""
        if pairs is None:
            pairs = torch.arange(len(self))
        outs = []
        time_of = pairs // self.views
        for k in torch.unique_consecutive(time_of).tolist():
            views = pairs[time_of == k] % self.views
            seen = camera if len(views) == self.views else camera[views]
            outs.append(render_one(scene.at(float(self.times[k]), self.animation), seen))
        if len(outs) == 1:
            return outs[0]
        aovs = {name: torch.cat([o.aovs[name] for o in outs]) for name in outs[0].aovs}
        return RenderOutput(torch.cat([o.rgb for o in outs]), torch.cat([o.alpha for o in outs]), aovs)


def time_axis(config: FitConfig, truth: Scene, views: int) -> Optional[TimeAxis]:
    """The time axis ``[data]`` asks for (``None`` without ``times`` / ``frames``), on ``truth``'s animation.

    Raises:
        ConfigError: the scene has no animations, ``data.animation`` names none of them, or a time lies past
            the animation's end (naming the key).
    """
    d = config.data
    if not d.over_time:
        return None
    name = config.path.name
    if not truth.animations:
        raise ConfigError(f"{name}: data.{'times' if d.times is not None else 'frames'} asks for targets over time, "
                          "and the scene has no animations")
    if d.animation is None:
        animation = next(iter(truth.animations))
    elif d.animation in truth.animations:
        animation = d.animation
    else:
        raise ConfigError(f"{name}: data.animation = {d.animation!r} is not an animation of the scene; it has "
                          f"{', '.join(repr(a) for a in truth.animations)}")
    duration = truth.animations[animation].duration
    if d.times is not None:
        late = [t for t in d.times if t > duration * (1 + 1e-6) + 1e-9]
        if late:
            raise ConfigError(f"{name}: data.times holds {late[0]:g} s, past the end of animation {animation!r} "
                              f"({duration:g} s)")
        times = torch.tensor(d.times, dtype=torch.float64)
    else:
        times = torch.linspace(0.0, duration, d.frames, dtype=torch.float64) if d.frames > 1 else \
            torch.zeros(1, dtype=torch.float64)
    return TimeAxis(animation, times, views)
