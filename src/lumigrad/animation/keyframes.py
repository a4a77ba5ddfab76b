"""Keyframe tracks sampled per the glTF 2.0 specification (STEP, LINEAR, CUBICSPLINE)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .._checks import check_choice, check_tensor
from .rotations import quaternion_slerp

__all__ = ["KeyframeTrack", "sample_track", "INTERPOLATIONS", "TRACK_KINDS"]

INTERPOLATIONS = ("LINEAR", "STEP", "CUBICSPLINE")
TRACK_KINDS = ("translation", "rotation", "scale", "weights")
_WIDTH = {"translation": 3, "rotation": 4, "scale": 3}


@dataclass
class KeyframeTrack:
    """One animated property: keyframe ``times`` and their ``values``.

    Attributes:
        times: ``[N]`` strictly increasing keyframe times in seconds, ``N >= 1``.
        values: ``[N, C]`` for STEP / LINEAR, ``[N, 3, C]`` for CUBICSPLINE (in-tangent, value, out-tangent per
            key, as glTF stores them). ``C`` is 3 for translation / scale, 4 for rotation (unit quaternions
            ``(w, x, y, z)``), the number of morph targets for weights.
        interpolation: ``"LINEAR"``, ``"STEP"`` or ``"CUBICSPLINE"``.
        kind: ``"translation"``, ``"rotation"``, ``"scale"`` or ``"weights"``.
        name: used in error messages (e.g. ``"walk/channel 3"``).

    Construction validates the shapes and raises ``ValueError`` naming the track when ``times`` are not
    strictly increasing.
    """

    times: torch.Tensor
    values: torch.Tensor
    interpolation: Literal["LINEAR", "STEP", "CUBICSPLINE"] = "LINEAR"
    kind: Literal["translation", "rotation", "scale", "weights"] = "translation"
    name: str = "track"

    def __post_init__(self):
        check_choice(self.interpolation, f"{self.name}: interpolation", INTERPOLATIONS)
        check_choice(self.kind, f"{self.name}: kind", TRACK_KINDS)
        check_tensor(self.times, f"{self.name}: times", trailing=(None,), max_dims=1, floating=True, finite=True)
        N = self.times.shape[0]
        if N == 0:
            raise ValueError(f"{self.name}: times must hold at least one keyframe; got 0")
        if N > 1 and not bool((self.times[1:] > self.times[:-1]).all()):
            k = int((self.times[1:] <= self.times[:-1]).nonzero()[0]) + 1
            raise ValueError(f"{self.name}: times must be strictly increasing; times[{k}] = {float(self.times[k])} "
                             f"follows times[{k - 1}] = {float(self.times[k - 1])}")
        width = _WIDTH.get(self.kind)
        if self.interpolation == "CUBICSPLINE":
            check_tensor(self.values, f"{self.name}: values", trailing=(N, 3, width), max_dims=3, floating=True,
                         finite=True)
        else:
            check_tensor(self.values, f"{self.name}: values", trailing=(N, width), max_dims=2, floating=True,
                         finite=True)

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])


def sample_track(track: KeyframeTrack, t) -> torch.Tensor:
    """Evaluate a track at time(s) ``t`` following glTF 2.0 (Appendix C, "Animation sampler interpolation").

    Times outside ``[times[0], times[-1]]`` are clamped. With ``t_k <= t < t_{k+1}``, ``td = t_{k+1} - t_k`` and
    ``s = (t - t_k) / td``:

    * STEP: ``v_k``.
    * LINEAR: ``(1 - s) v_k + s v_{k+1}``; for rotations the shortest-arc slerp of the two quaternions.
    * CUBICSPLINE: Hermite ``(2s^3 - 3s^2 + 1) v_k + td (s^3 - 2s^2 + s) b_k + (-2s^3 + 3s^2) v_{k+1}
      + td (s^3 - s^2) a_{k+1}`` with ``b_k`` the out-tangent of key k and ``a_{k+1}`` the in-tangent of key
      k+1.

    Rotations are renormalised to unit quaternions.

    Args:
        track: the keyframes.
        t: a float or a tensor of times ``[...]``.

    Returns:
        ``[..., C]`` values (``[C]`` for a scalar ``t``).

    **Differentiability:** linear (or, for slerp and the normalisation of rotations, smooth) in
    ``track.values``; piecewise smooth in ``t`` (kinks at keyframes, zero gradient outside the range).

    Example: times ``[0, 1]``, values ``[[0], [2]]`` (weights track, LINEAR) sampled at 0.25 gives ``[0.5]``.
    """
    times = track.times
    values = track.values
    t = torch.as_tensor(t, dtype=times.dtype, device=times.device)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{track.name}: sample time t contains NaN or Inf")
    N = times.shape[0]
    cubic = track.interpolation == "CUBICSPLINE"
    if N == 1:
        v = values[0, 1] if cubic else values[0]
        out = v.expand(t.shape + v.shape)
        return _finish(track, out)
    tc = t.clamp(times[0], times[-1])
    after = torch.searchsorted(times, tc.detach().contiguous(), right=True) - 1   # k with t_k <= t
    if track.interpolation == "STEP":
        return _finish(track, values[after.clamp(0, N - 1)])
    k = after.clamp(0, N - 2)
    t0, t1 = times[k], times[k + 1]
    td = t1 - t0
    s = ((tc - t0) / td)[..., None].to(values.dtype)
    if cubic:
        s2, s3 = s * s, s * s * s
        td = td[..., None].to(values.dtype)
        out = ((2 * s3 - 3 * s2 + 1) * values[k, 1] + td * (s3 - 2 * s2 + s) * values[k, 2]
               + (-2 * s3 + 3 * s2) * values[k + 1, 1] + td * (s3 - s2) * values[k + 1, 0])
        return _finish(track, out)
    if track.kind == "rotation":
        return quaternion_slerp(values[k], values[k + 1], s[..., 0])
    return (1 - s) * values[k] + s * values[k + 1]


def _finish(track: KeyframeTrack, out: torch.Tensor) -> torch.Tensor:
    if track.kind == "rotation":
        return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return out
