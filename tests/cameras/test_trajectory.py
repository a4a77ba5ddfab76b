"""Camera trajectories: per-frame poses and the SO(3) x R^3 cumulative cubic B-spline."""

import math

import pytest
import torch

from lumigrad.cameras import (Camera, PoseTrajectory, SplineTrajectory, cumulative_bspline_weights,
                              pose_to_world_to_cam, spline_poses)
from lumigrad.conventions import axis_angle_to_matrix, invert_rigid


def _K(dtype=torch.float64):
    return torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]], dtype=dtype)


def _controls(M=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = axis_angle_to_matrix(0.4 * torch.randn(M, 3, generator=g, dtype=torch.float64))
    c = torch.randn(M, 3, generator=g, dtype=torch.float64)
    return R, c


def test_weights_partition():
    b = cumulative_bspline_weights(torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(b, torch.tensor([[5 / 6, 1 / 6, 0], [1, 5 / 6, 1 / 6]], dtype=torch.float64))


def test_pose_composition_gradcheck_and_value():
    R0, c = _controls(3)
    w = (0.3 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_()
    cc = c.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda w, cc: pose_to_world_to_cam(R0, w, cc), (w, cc))
    # zero correction gives back the initial pose; the centre maps to the camera origin
    T = pose_to_world_to_cam(R0, torch.zeros(3, 3, dtype=torch.float64), c)
    torch.testing.assert_close(invert_rigid(T)[:, :3, :3], R0)
    origin = (T[:, :3, :3] @ c[..., None])[..., 0] + T[:, :3, 3]
    torch.testing.assert_close(origin, torch.zeros(3, 3, dtype=torch.float64))


def test_spline_gradcheck_controls_and_time():
    R, c = _controls(6)
    R = R.requires_grad_()
    c = c.requires_grad_()
    u = torch.tensor([0.1, 1.37, 2.5, 2.95], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(spline_poses, (R, c, u))


def test_spline_parameters_gradcheck():
    R, c = _controls(5)
    w2c = invert_rigid(torch.cat([torch.cat([R, c[..., None]], -1),
                                  torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(5, 1, 4)], 1))
    traj = SplineTrajectory(w2c, _K(), 16, 16, t_start=0.0, dt=0.5)
    rot, cen = traj.parameters()["rotation"], traj.parameters()["centres"]
    times = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)

    def f(r, cc):
        traj.rotation, traj.centres = r, cc
        return traj.world_to_cam(times)

    assert torch.autograd.gradcheck(f, (rot.detach().clone().requires_grad_(), cen.detach().clone().requires_grad_()))
    # at zero corrections the controls are the given poses
    torch.testing.assert_close(traj.control_rotations().detach(), R.double())


def test_spline_is_c2_across_knots():
    R, c = _controls(7, seed=3)
    h = 1e-3
    for knot in (1.0, 2.0, 3.0):
        u = torch.tensor([knot - 2 * h, knot - h, knot, knot + h, knot + 2 * h], dtype=torch.float64)
        P = spline_poses(R, c, u)[:, :3, :].reshape(5, -1)
        # one-sided first and second derivatives agree across the knot (C2), jumps would be O(1)
        d1_left, d1_right = (P[2] - P[1]) / h, (P[3] - P[2]) / h
        d2_left = (P[2] - 2 * P[1] + P[0]) / h ** 2
        d2_right = (P[4] - 2 * P[3] + P[2]) / h ** 2
        assert (d1_left - d1_right).abs().max() < 1e-2 * (1 + d1_left.abs().max())
        assert (d2_left - d2_right).abs().max() < 3e-2 * (1 + d2_left.abs().max())
        # and the second derivative stays bounded (no kink)
        assert d2_left.abs().max() < 1e3


def test_spline_reproduces_constant_velocity():
    M, dt = 6, 0.25
    w = torch.tensor([0.0, 0.3, 0.1], dtype=torch.float64)  # angular step per knot
    v = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)  # centre step per knot
    k = torch.arange(M, dtype=torch.float64)
    R = axis_angle_to_matrix((k - 1)[:, None] * w)
    c = torch.tensor([0.0, 0.0, -4.0], dtype=torch.float64) + (k - 1)[:, None] * v
    c2w = torch.eye(4, dtype=torch.float64).repeat(M, 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = R, c
    traj = SplineTrajectory(invert_rigid(c2w), _K(), 16, 16, t_start=1.0, dt=dt)
    t = torch.linspace(1.0, traj.t_end, 11, dtype=torch.float64)
    s = (t - 1.0) / dt
    want = torch.eye(4, dtype=torch.float64).repeat(11, 1, 1)
    want[:, :3, :3], want[:, :3, 3] = axis_angle_to_matrix(s[:, None] * w), c[1] + s[:, None] * v
    torch.testing.assert_close(traj.world_to_cam(t).detach(), invert_rigid(want), atol=1e-10, rtol=0)


def test_cameras_batched_and_errors():
    R, c = _controls(5)
    c2w = torch.eye(4, dtype=torch.float64).repeat(5, 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = R, c
    traj = SplineTrajectory(invert_rigid(c2w), _K(), 16, 12)
    cams = traj.cameras(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    assert isinstance(cams, Camera) and cams.batch_shape == (3,) and cams.width == 16 and cams.height == 12
    assert traj.camera_at(0.5).batch_shape == ()
    with pytest.raises(ValueError, match="times"):
        traj.cameras([3.5])
    with pytest.raises(ValueError, match="world_to_cam"):
        SplineTrajectory(invert_rigid(c2w)[:3], _K(), 16, 12)
    with pytest.raises(ValueError, match="dt"):
        SplineTrajectory(invert_rigid(c2w), _K(), 16, 12, dt=0.0)
    frames = PoseTrajectory(invert_rigid(c2w), _K(), 16, 12, times=[0.0, 0.1, 0.2, 0.3, 0.4])
    assert frames.cameras([0.1, 0.4]).batch_shape == (2,)
    torch.testing.assert_close(frames.camera_at(0.2).world_to_cam.detach(), invert_rigid(c2w)[2])
    with pytest.raises(ValueError, match="frame times"):
        frames.camera_at(0.15)
    with pytest.raises(ValueError, match="times"):
        PoseTrajectory(invert_rigid(c2w), _K(), 16, 12, times=[0.0, 0.1, 0.1, 0.3, 0.4])


def test_pose_trajectory_gradients_reach_parameters():
    R, c = _controls(4)
    c2w = torch.eye(4, dtype=torch.float64).repeat(4, 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = R, c
    traj = PoseTrajectory(invert_rigid(c2w), _K(), 8, 8)
    traj.cameras([0.0, 2.0]).world_to_cam.sum().backward()
    g = traj.parameters()["rotation"].grad
    assert g[1].abs().sum() == 0 and g[0].abs().sum() > 0 and g[2].abs().sum() > 0
