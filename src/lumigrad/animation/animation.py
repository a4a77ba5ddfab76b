"""Animations: named sets of channels, each a keyframe track driving one property of one target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Optional, Tuple, Union

import torch

from .keyframes import KeyframeTrack, sample_track

__all__ = ["Channel", "Animation"]

Target = Union[str, int]


@dataclass
class Channel:
    """One animated property: ``track`` drives ``path`` of the node / joint ``target``.

    Attributes:
        target: the node or joint the channel drives (a name, or a node index as the glTF loader writes it).
        path: ``"translation"``, ``"rotation"``, ``"scale"`` or ``"weights"`` (morph weights); defaults to the
            track's kind and must agree with it.
        track: the keyframes.
    """

    target: Target
    track: KeyframeTrack
    path: str = ""

    def __post_init__(self):
        if not isinstance(self.track, KeyframeTrack):
            raise TypeError(f"track must be a KeyframeTrack; got {type(self.track).__name__}")
        if not self.path:
            self.path = self.track.kind
        if self.path != self.track.kind:
            raise ValueError(f"channel path {self.path!r} does not match its track's kind {self.track.kind!r}")


@dataclass
class Animation:
    """A named animation: channels sampled together at one time.

    Attributes:
        name: the animation's name.
        channels: the channels; at most one per ``(target, path)``.

    ``duration`` is the last keyframe time over all channels (glTF animations play from time 0);
    :meth:`sample` returns, per target, the sampled local properties.

    Parameters (:meth:`parameters`, for :class:`lumigrad.Scene`, which lists them as
    ``animations.NAME.TARGET.PATH``): each channel's keyframe ``values`` under ``"TARGET.PATH"``
    (``"Hips.rotation"``), of kind ``"keyframe_" + PATH`` (``keyframe_rotation`` ...).
    """

    kind: ClassVar[str] = "animation"

    name: str
    channels: List[Channel] = field(default_factory=list)

    def __post_init__(self):
        seen = set()
        for c in self.channels:
            if not isinstance(c, Channel):
                raise TypeError(f"animation {self.name!r}: channels must be Channel objects; got {type(c).__name__}")
            key = (c.target, c.path)
            if key in seen:
                raise ValueError(f"animation {self.name!r} has two channels for {c.path} of {c.target!r}")
            seen.add(key)

    @property
    def duration(self) -> float:
        """The last keyframe time (seconds) over all channels; 0 for an empty animation."""
        return max((c.track.end for c in self.channels), default=0.0)

    @property
    def targets(self) -> List[Target]:
        return list(dict.fromkeys(c.target for c in self.channels))

    def sample(self, t) -> Dict[Target, Dict[str, torch.Tensor]]:
        """Sample every channel at time(s) ``t``.

        Args:
            t: a float or a tensor of times ``[...]``; times outside a channel's keys are clamped.

        Returns:
            ``{target: {path: value}}`` with ``value`` ``[..., 3]`` (translation / scale), ``[..., 4]`` (rotation,
            unit ``(w, x, y, z)``) or ``[..., M]`` (morph weights). Properties without a channel are absent: the
            caller keeps their rest values.

        **Differentiability:** as :func:`~lumigrad.animation.sample_track`, w.r.t. each track's values.
        """
        out: Dict[Target, Dict[str, torch.Tensor]] = {}
        for c in self.channels:
            out.setdefault(c.target, {})[c.path] = sample_track(c.track, t)
        return out

    # ------------------------------------------------------------------------------------ parameters
    def parameters(self) -> Dict[str, torch.Tensor]:
        """Each channel's keyframe values by ``"TARGET.PATH"``."""
        return {_local(c): c.track.values for c in self.channels}

    def parameter_kinds(self) -> Dict[str, str]:
        """``{"TARGET.PATH": "keyframe_" + PATH}`` (kinds listed in :mod:`lumigrad.scene.params`)."""
        return {_local(c): KEYFRAME_KIND_PREFIX + c.path for c in self.channels}

    def parameter_slot(self, local: str) -> Tuple[Optional[KeyframeTrack], str]:
        """``(track, "values")``: where the parameter ``local`` (``"TARGET.PATH"``) lives; ``(None, "values")``
        when no channel has that name."""
        track = next((c.track for c in self.channels if _local(c) == local), None)
        return track, "values"


#: A keyframe parameter's kind is this prefix and its channel's path (``keyframe_rotation``).
KEYFRAME_KIND_PREFIX = "keyframe_"


def _local(channel: Channel) -> str:
    return f"{channel.target}.{channel.path}"
