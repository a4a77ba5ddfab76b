"""Camera trajectories as optimisable parameters: one pose per frame, or a smooth cumulative cubic B-spline.

A trajectory maps a time ``t`` (seconds, any unit you choose) to a :class:`~lumigrad.Camera` sharing one set of
intrinsics. Poses are held as **camera-to-world** rotations ``R_c2w`` and camera centres ``c`` (world units), so
``world_to_cam = [R_c2w^T | -R_c2w^T c]`` (OpenCV camera frame, see :mod:`lumigrad.conventions`).

* :class:`PoseTrajectory`: a pose per frame. Parameters ``rotation`` (axis-angle ``[T, 3]``, zero at the initial
  poses, right-multiplied: ``R = R0 exp([w]x)``, a rotation in the camera's own frame) and ``centres [T, 3]``.
* :class:`SplineTrajectory`: a cumulative cubic B-spline on **SO(3) x R^3** (Kim et al. 1995 for the rotation
  part, as used by Lovegrove et al. 2013 "Spline Fusion"). Why SO(3) x R^3 rather than SE(3): the camera centre
  then follows an ordinary cubic B-spline in world space (C2, exact for constant-velocity translation, no screw
  coupling between turning and moving), the rotation follows the cumulative SO(3) spline (C2, exact for constant
  angular velocity), and both parts are cheap and batched. Control ``i`` sits at knot time
  ``t_start + (i - 1) dt``; the spline is defined on ``[t_start, t_start + (N - 3) dt]`` for ``N >= 4`` controls.
  With ``u = (t - t_i) / dt`` in segment ``i`` (controls ``i-1 .. i+2``), the cumulative basis is
  ``b1 = (5 + 3u - 3u^2 + u^3) / 6``, ``b2 = (1 + 3u + 3u^2 - 2u^3) / 6``, ``b3 = u^3 / 6`` and::

      R(t) = R_{i-1} exp(b1 d_1) exp(b2 d_2) exp(b3 d_3),   d_j = log(R_{i+j-2}^T R_{i+j-1})
      c(t) = c_{i-1} + b1 (c_i - c_{i-1}) + b2 (c_{i+1} - c_i) + b3 (c_{i+2} - c_{i+1})

Both trajectories give ``camera_at(t)`` (one view) and ``cameras(times)`` (a Camera with batch shape ``[N]``) and
``parameters()`` (a dict of leaf tensors with ``requires_grad``) to hand to an optimiser.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch

from .._checks import check_number, check_tensor
from ..conventions import axis_angle_to_matrix, compose_world_to_cam, invert_rigid, matrix_to_axis_angle
from .camera import Camera

__all__ = ["PoseTrajectory", "SplineTrajectory", "cumulative_bspline_weights", "pose_to_world_to_cam",
           "so3_bspline", "spline_poses"]

TimesLike = Union[float, Sequence[float], torch.Tensor]


def pose_to_world_to_cam(R0: torch.Tensor, rotation: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Compose camera-to-world rotations ``R0 exp([rotation]x)`` and centres into ``world_to_cam [..., 4, 4]``.

    Args:
        R0: initial camera-to-world rotations ``[..., 3, 3]`` (constants).
        rotation: axis-angle corrections ``[..., 3]`` (radians) applied in the camera's frame (right-multiplied).
        centres: camera centres in world space ``[..., 3]``.

    Returns:
        ``[..., 4, 4]`` with ``x_cam = R^T (x_world - c)``.

    **Differentiability:** smooth in ``rotation`` (including 0) and ``centres``.
    """
    R = R0 @ axis_angle_to_matrix(rotation)
    Rt = R.transpose(-1, -2)
    return compose_world_to_cam(Rt, -(Rt @ centres[..., None])[..., 0])


def cumulative_bspline_weights(u: torch.Tensor) -> torch.Tensor:
    """Cumulative uniform cubic B-spline weights ``(b1, b2, b3)`` ``[..., 3]`` at ``u [...]`` in ``[0, 1]``.

    ``b1 = (5 + 3u - 3u^2 + u^3)/6``, ``b2 = (1 + 3u + 3u^2 - 2u^3)/6``, ``b3 = u^3/6``; at ``u = 0`` they are
    ``(5/6, 1/6, 0)``, at ``u = 1`` ``(1, 5/6, 1/6)``. **Differentiability:** polynomial in ``u``.
    """
    u2, u3 = u * u, u * u * u
    return torch.stack([(5 + 3 * u - 3 * u2 + u3) / 6, (1 + 3 * u + 3 * u2 - 2 * u3) / 6, u3 / 6], -1)


def so3_bspline(R_ctrl: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Evaluate one cumulative SO(3) B-spline segment: ``R_0 prod_j exp(b_j log(R_{j-1}^T R_j))``.

    Args:
        R_ctrl: the segment's four control rotations ``[..., 4, 3, 3]``.
        weights: cumulative weights ``[..., 3]`` (:func:`cumulative_bspline_weights`).

    Returns:
        ``[..., 3, 3]`` rotations.

    **Differentiability:** smooth in ``weights`` and in ``R_ctrl`` while consecutive controls differ by less
    than pi (the log is taken of the relative rotations).
    """
    rel = R_ctrl[..., :-1, :, :].transpose(-1, -2) @ R_ctrl[..., 1:, :, :]
    d = matrix_to_axis_angle(rel)  # [..., 3, 3]
    steps = axis_angle_to_matrix(weights[..., None] * d)
    R = R_ctrl[..., 0, :, :]
    for j in range(3):
        R = R @ steps[..., j, :, :]
    return R


def spline_poses(R_ctrl: torch.Tensor, centres: torch.Tensor, u_global: torch.Tensor) -> torch.Tensor:
    """``world_to_cam [N, 4, 4]`` of the SO(3) x R^3 cumulative cubic B-spline at knot coordinates ``u_global``.

    Args:
        R_ctrl: camera-to-world control rotations ``[M, 3, 3]`` (``M >= 4``).
        centres: control camera centres ``[M, 3]``.
        u_global: ``[N]`` positions in knot units, in ``[0, M - 3]`` (segment ``floor(u)``, control ``k`` at
            ``u = k - 1``).

    **Differentiability:** smooth in ``R_ctrl``, ``centres`` and ``u_global`` (C2 across knots).
    """
    M = R_ctrl.shape[0]
    seg = u_global.detach().floor().clamp(0, M - 4).long()
    u = u_global - seg.to(u_global.dtype)
    idx = seg[:, None] + torch.arange(4, device=seg.device)  # [N, 4]
    b = cumulative_bspline_weights(u)
    R = so3_bspline(R_ctrl[idx], b)
    c = centres[idx]
    pos = c[:, 0] + (b[..., None] * (c[:, 1:] - c[:, :-1])).sum(-2)
    Rt = R.transpose(-1, -2)
    return compose_world_to_cam(Rt, -(Rt @ pos[..., None])[..., 0])


def _times(times: TimesLike, dtype, device) -> torch.Tensor:
    t = times if isinstance(times, torch.Tensor) else torch.as_tensor(times, dtype=dtype)
    t = t.to(device=device, dtype=dtype) if not t.requires_grad else t
    check_tensor(t, "times", max_dims=1, floating=True, finite=True)
    return t.reshape(-1)


def _split_world_to_cam(world_to_cam: torch.Tensor, name: str):
    check_tensor(world_to_cam, name, trailing=(None, 4, 4), max_dims=3, floating=True, finite=True)
    c2w = invert_rigid(world_to_cam.detach())
    return c2w[..., :3, :3].clone(), c2w[..., :3, 3].clone()


class _Trajectory:
    """Shared intrinsics and the Camera factory."""

    def _init_intrinsics(self, K, width, height, near, far, dtype, device):
        check_tensor(K, "K", trailing=(3, 3), max_dims=2, floating=True, finite=True)
        self.K = K.to(device=device, dtype=dtype)
        self.width, self.height, self.near, self.far = width, height, near, far

    def world_to_cam(self, times: TimesLike) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def cameras(self, times: TimesLike) -> Camera:
        """Cameras at ``times [N]``: a :class:`Camera` with batch shape ``[N]`` and the shared ``K``."""
        w2c = self.world_to_cam(times)
        return Camera(self.K.expand(w2c.shape[0], 3, 3), w2c, self.width, self.height, self.near, self.far)

    def camera_at(self, t: float) -> Camera:
        """The single camera (batch shape ``[]``) at time ``t``."""
        return self.cameras([t] if not isinstance(t, torch.Tensor) else t.reshape(1))[0]


class PoseTrajectory(_Trajectory):
    """A camera pose per frame, optimisable: ``R_k = R0_k exp([rotation_k]x)``, centre ``centres_k``.

    Args:
        world_to_cam: initial poses ``[T, 4, 4]`` (one per frame).
        times: the frames' times ``[T]``, strictly increasing (default ``0, 1, ..., T-1``).
        K: shared intrinsics ``[3, 3]`` (pixels); width, height, near, far: as :class:`Camera`.

    ``camera_at(t)`` / ``cameras(times)`` accept only the frames' times (within ``1e-6`` of one): a per-frame
    trajectory has no pose between frames (use :class:`SplineTrajectory` for that).

    **Differentiability:** the cameras' ``world_to_cam`` is smooth in ``parameters()["rotation"]`` and
    ``["centres"]``.
    """

    def __init__(self, world_to_cam: torch.Tensor, K: torch.Tensor, width: int, height: int, *,
                 times: Optional[TimesLike] = None, near: float = 0.01, far: float = 1e4):
        self.R0, centres = _split_world_to_cam(world_to_cam, "world_to_cam")
        T = self.R0.shape[0]
        dtype, device = self.R0.dtype, self.R0.device
        self.times = torch.arange(T, dtype=dtype, device=device) if times is None else _times(times, dtype, device)
        if self.times.shape[0] != T:
            raise ValueError(f"times must have one entry per pose ({T}); got {self.times.shape[0]}")
        if T > 1 and bool((self.times[1:] <= self.times[:-1]).any()):
            raise ValueError("times must be strictly increasing")
        self.rotation = torch.zeros(T, 3, dtype=dtype, device=device, requires_grad=True)
        self.centres = centres.requires_grad_(True)
        self._init_intrinsics(K, width, height, near, far, dtype, device)

    def parameters(self) -> Dict[str, torch.Tensor]:
        """``{"rotation": [T, 3] axis-angle corrections, "centres": [T, 3]}`` (leaf tensors with grad)."""
        return {"rotation": self.rotation, "centres": self.centres}

    def frame_index(self, times: TimesLike) -> torch.Tensor:
        """Indices ``[N]`` of the frames at ``times`` (ValueError for a time that is no frame's)."""
        t = _times(times, self.times.dtype, self.times.device).detach()
        dist = (t[:, None] - self.times[None, :]).abs()
        best, idx = dist.min(-1)
        if bool((best > 1e-6).any()):
            bad = float(t[best > 1e-6][0])
            raise ValueError(f"times must be frame times of this PoseTrajectory; {bad} is not (frames at "
                             f"{self.times.tolist()[:8]}{'...' if len(self.times) > 8 else ''})")
        return idx

    def world_to_cam(self, times: TimesLike) -> torch.Tensor:
        """``[N, 4, 4]`` poses at the frames at ``times``."""
        k = self.frame_index(times)
        return pose_to_world_to_cam(self.R0[k], self.rotation[k], self.centres[k])


class SplineTrajectory(_Trajectory):
    """A C2 camera path: cumulative cubic B-spline on SO(3) x R^3 through ``M >= 4`` control poses.

    Args:
        world_to_cam: initial control poses ``[M, 4, 4]``; control ``k`` sits at knot time ``t_start + (k-1) dt``.
        K: shared intrinsics ``[3, 3]``; width, height, near, far: as :class:`Camera`.
        t_start: first time of the spline's domain; dt: knot spacing (> 0). The domain is
            ``[t_start, t_start + (M - 3) dt]``; times outside it raise ``ValueError``.

    Parameters (``parameters()``): ``rotation [M, 3]`` axis-angle corrections of the control rotations
    (right-multiplied, zero at the start) and ``centres [M, 3]`` the control centres.

    **Differentiability:** ``world_to_cam(times)`` is smooth in both parameters and in ``times`` (a tensor with
    grad gives the pose's time derivative); C2 in time across knots.

    Example: controls with centres ``(k, 0, -5)`` and one rotation give a camera moving at constant velocity
    ``1/dt`` along x: ``camera_at(t)`` has its centre at ``((t - t_start)/dt, 0, -5)``.
    """

    def __init__(self, world_to_cam: torch.Tensor, K: torch.Tensor, width: int, height: int, *,
                 t_start: float = 0.0, dt: float = 1.0, near: float = 0.01, far: float = 1e4):
        self.R0, centres = _split_world_to_cam(world_to_cam, "world_to_cam")
        if self.R0.shape[0] < 4:
            raise ValueError(f"world_to_cam must hold at least 4 control poses [M >= 4, 4, 4]; got "
                             f"{tuple(world_to_cam.shape)}")
        self.t_start = check_number(t_start, "t_start")
        self.dt = check_number(dt, "dt", lo=0.0, lo_open=True)
        dtype, device = self.R0.dtype, self.R0.device
        self.rotation = torch.zeros(self.R0.shape[0], 3, dtype=dtype, device=device, requires_grad=True)
        self.centres = centres.requires_grad_(True)
        self._init_intrinsics(K, width, height, near, far, dtype, device)

    @property
    def t_end(self) -> float:
        return self.t_start + (self.R0.shape[0] - 3) * self.dt

    def parameters(self) -> Dict[str, torch.Tensor]:
        """``{"rotation": [M, 3], "centres": [M, 3]}`` (leaf tensors with grad)."""
        return {"rotation": self.rotation, "centres": self.centres}

    def control_rotations(self) -> torch.Tensor:
        """Camera-to-world control rotations ``[M, 3, 3]`` (``R0 exp([rotation]x)``)."""
        return self.R0 @ axis_angle_to_matrix(self.rotation)

    def world_to_cam(self, times: TimesLike) -> torch.Tensor:
        """``[N, 4, 4]`` poses at ``times [N]`` in ``[t_start, t_end]``."""
        t = _times(times, self.R0.dtype, self.R0.device)
        eps = 1e-9 * max(1.0, abs(self.t_end))
        if bool(((t.detach() < self.t_start - eps) | (t.detach() > self.t_end + eps)).any()):
            raise ValueError(f"times must lie in the spline's domain [{self.t_start}, {self.t_end}]; got "
                             f"[{float(t.min())}, {float(t.max())}]")
        return spline_poses(self.control_rotations(), self.centres, (t - self.t_start) / self.dt)
