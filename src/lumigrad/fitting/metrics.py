"""How well a fit did: image agreement for every fit, and parameter errors when the truth is known.

Per optimised parameter present in the true scene with the same shape: the mean and largest absolute error
and the relative RMS error; camera poses add the rotation error in degrees and the camera-centre error,
intrinsics the focal-length error in percent and the principal-point error in pixels, keyframe rotations the
mean angle between fitted and true keys in degrees (``angle_error_deg``, ``2 acos |q . q_true|``). Fitted meshes are
compared with the true scene's surface by the symmetric surface distance: points sampled uniformly on each
surface, their exact distance to the other surface, the two means averaged, in percent of the true
bounding-box diagonal (as ``examples/06_shape_from_images.py`` reports it); it works when the topology differs.

Measured during a fit, the surface distance costs more than a step of a short fit (about 0.3 s for 250 points
against Spot's 5856 faces on a 2-core CPU), so :class:`RecordingBudget` lets the fit record it at its first
and last step and in between only while the recording has taken at most a share of the time elapsed.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, Optional, TypeVar

import torch

from ..geometry.distance import point_mesh_distance, sample_points_on_mesh
from ..losses.image import psnr
from ..scene.params import INTRINSICS, KEYFRAME_ROTATION, POSE_KINDS
from ..scene.scene import Scene

__all__ = ["RecordingBudget", "image_metrics", "parameter_errors", "quaternion_angle_deg", "shape_error_pct"]

T = TypeVar("T")


def image_metrics(images: torch.Tensor, targets: torch.Tensor) -> Dict[str, float]:
    """PSNR (dB, colour clamped to [0, 1]) and mean absolute error of the colour channels."""
    a, b = images[..., :3].clamp(0, 1), targets[..., :3].clamp(0, 1)
    return {"psnr_db": float(psnr(a, b)), "mean_abs_error": float((a - b).abs().mean())}


def parameter_errors(name: str, value: torch.Tensor, truth: Optional[Scene]) -> Dict[str, float]:
    """Errors of ``value`` against the true scene's ``name`` (empty when the truth has no such tensor)."""
    if truth is None or name not in truth:
        return {}
    info = truth.param_info(name)
    true = truth[name].detach().to(value)
    if true.shape != value.shape:
        return {}
    value = value.detach()
    diff = (value - true).double()
    out = {"mean_abs_error": float(diff.abs().mean()), "max_abs_error": float(diff.abs().max()),
           "relative_rms_error": float(diff.norm() / true.double().norm().clamp_min(1e-12))}
    if info.kind in POSE_KINDS and value.shape[-2:] == (4, 4):
        out.update(_pose_errors(value, true))
    if info.kind == INTRINSICS and value.shape[-2:] == (3, 3):
        f_err = (value[..., [0, 1], [0, 1]] / true[..., [0, 1], [0, 1]] - 1).abs()
        c_err = (value[..., :2, 2] - true[..., :2, 2]).norm(dim=-1)
        out.update({"focal_error_pct": 100 * float(f_err.mean()), "principal_point_error_px": float(c_err.mean())})
    if info.kind == KEYFRAME_ROTATION:  # CUBICSPLINE keys [N, 3, 4]: (in-tangent, value, out-tangent)
        keys = (value[:, 1], true[:, 1]) if value.dim() == 3 else (value, true)
        out["angle_error_deg"] = float(quaternion_angle_deg(*keys).mean())
    return out


def quaternion_angle_deg(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``[...]`` angle in degrees of the rotation between quaternions ``q`` and ``r`` ``[..., 4]`` (any length:
    normalised here; ``q`` and ``-q`` are one rotation): ``2 acos |q . r|``.

    Example: the identity and a 90 degree turn about z, ``(cos 45deg, 0, 0, sin 45deg)``, are 90 degrees apart."""
    q, r = q.double(), r.double()
    dot = ((q * r).sum(-1) / (q.norm(dim=-1) * r.norm(dim=-1)).clamp_min(1e-300)).abs().clamp(max=1.0)
    return torch.rad2deg(2 * torch.acos(dot))


def _pose_errors(value: torch.Tensor, true: torch.Tensor) -> Dict[str, float]:
    R, Rt = value[..., :3, :3].double(), true[..., :3, :3].double()
    cos = ((R.transpose(-1, -2) @ Rt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))

    def centre(T):
        return -(T[..., :3, :3].transpose(-1, -2) @ T[..., :3, 3:])[..., 0]

    return {"rotation_error_deg": float(angle.mean()),
            "centre_error": float((centre(value.double()) - centre(true.double())).norm(dim=-1).mean())}


def shape_error_pct(fitted: Scene, truth: Scene, points: int = 2000, seed: int = 0) -> float:
    """Symmetric surface distance between the scenes' surfaces, in % of the true bounding-box diagonal."""
    g = torch.Generator().manual_seed(seed)

    def surface(scene: Scene) -> torch.Tensor:
        flat = scene.flatten()
        return flat.verts.detach().float().cpu(), flat.faces.cpu()

    tv, tf = surface(truth)
    fv, ff = surface(fitted)
    diagonal = float((tv.max(0).values - tv.min(0).values).norm())
    a = sample_points_on_mesh(tv, tf, points, generator=g)
    b = sample_points_on_mesh(fv, ff, points, generator=g)
    d = 0.5 * float(point_mesh_distance(a, fv, ff).mean() + point_mesh_distance(b, tv, tf).mean())
    return 100 * d / diagonal if diagonal > 0 else math.nan


class RecordingBudget:
    """When a fit records a costly metric: at the first step it sees and at the last step always; in between only
    when one more recording (as long as the last one took) keeps the time spent on the in-between recordings
    within ``share`` of the time elapsed since the first step.

    So a 20-step fit of a few seconds records its start, its end and what the budget allows between them (its
    curve still runs from start to end), and a long fit records at its usual rate. ``clock`` (seconds,
    :func:`time.perf_counter` by default) is injectable for tests.

    Example::

        budget = RecordingBudget(0.1)
        if budget.due(step, last=steps - 1):
            log["error/shape"] = budget.spend(lambda: shape_error_pct(scene, truth))
    """

    def __init__(self, share: float = 0.1, clock: Callable[[], float] = time.perf_counter):
        if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 <= share <= 1):
            raise ValueError(f"share must be a fraction of the elapsed time in [0, 1]; got {share!r}")
        self.share, self.clock = float(share), clock
        self.started: Optional[float] = None
        self.spent = 0.0  # on the in-between recordings
        self.last_cost = 0.0
        self._counted = False
        self._in_between = False

    def due(self, step: int, last: int) -> bool:
        """Whether to record at ``step`` (``last``: the fit's last step); a ``True`` is followed by :meth:`spend`."""
        now = self.clock()
        self._in_between = False
        if self.started is None:
            self.started, self._counted = now, False
            return True
        if step >= last:
            self._counted = False
            return True
        self._in_between = True
        self._counted = self.share > 0 and self.spent + self.last_cost <= self.share * (now - self.started)
        return self._counted

    def agree(self, due: bool) -> bool:
        """Return ``due``, the decision several processes agreed on (any one's :meth:`due`): an in-between
        recording that another process's clock asked for counts against this budget too, so that every process
        spends alike."""
        self._counted = bool(due) and self._in_between
        return bool(due)

    def spend(self, measure: Callable[[], T]) -> T:
        """Run ``measure()``, time it (against the budget when it is an in-between recording), return its value."""
        before = self.clock()
        try:
            return measure()
        finally:
            self.last_cost = self.clock() - before
            if self._counted:
                self.spent += self.last_cost
