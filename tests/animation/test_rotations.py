import math

import torch
from torch.autograd import gradcheck

from lumigrad.animation import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rotation_6d,
                                quaternion_slerp, quaternion_to_matrix, rotation_6d_to_matrix)

D = torch.float64


def test_axis_angle_round_trip_and_orthonormal():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(20, 3, generator=g, dtype=D)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(20, 1, generator=g, dtype=D) * 3.0
    R = axis_angle_to_matrix(v)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=D).expand(20, 3, 3), atol=1e-12)
    assert torch.allclose(matrix_to_axis_angle(R), v, atol=1e-10)


def test_axis_angle_known_value():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=D))
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=D)
    assert torch.allclose(R, expected, atol=1e-12)


def test_axis_angle_gradcheck_including_zero_and_tiny_angles():
    for v in ([0.3, -0.2, 0.5], [0.0, 0.0, 0.0], [1e-6, -2e-6, 5e-7]):
        x = torch.tensor(v, dtype=D, requires_grad=True)
        assert gradcheck(axis_angle_to_matrix, (x,))
    x = torch.zeros(3, dtype=D, requires_grad=True)
    axis_angle_to_matrix(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_matrix_to_axis_angle_gradcheck():
    R = axis_angle_to_matrix(torch.tensor([0.4, 0.1, -0.3], dtype=D)).requires_grad_(True)
    assert gradcheck(matrix_to_axis_angle, (R,))


def test_6d_round_trip_and_gradcheck():
    R = axis_angle_to_matrix(torch.tensor([[0.4, 0.1, -0.3], [2.0, 1.0, 0.5]], dtype=D))
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-12)
    d = torch.randn(2, 6, dtype=D, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert gradcheck(rotation_6d_to_matrix, (d,))
    Rd = rotation_6d_to_matrix(d.detach())
    assert torch.allclose(torch.linalg.det(Rd), torch.ones(2, dtype=D))


def test_slerp_known_values_and_shortest_arc():
    q0 = torch.tensor([1.0, 0, 0, 0], dtype=D)
    q1 = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=D)
    mid = quaternion_slerp(q0, q1, 0.5)
    assert torch.allclose(mid, torch.tensor([math.cos(math.pi / 8), 0, 0, math.sin(math.pi / 8)], dtype=D))
    assert torch.allclose(quaternion_slerp(q0, q1, 0.0), q0) and torch.allclose(quaternion_slerp(q0, q1, 1.0), q1)
    # -q1 is the same rotation: slerp takes the short way and gives the same matrix
    assert torch.allclose(quaternion_to_matrix(quaternion_slerp(q0, -q1, 0.5)), quaternion_to_matrix(mid))
    # constant angular speed: angle from q0 is linear in t
    ts = torch.linspace(0, 1, 5, dtype=D)
    qs = quaternion_slerp(q0, q1, ts)
    angles = 2 * torch.atan2(qs[:, 1:].norm(dim=-1), qs[:, 0])
    assert torch.allclose(angles, ts * math.pi / 2, atol=1e-12)


def test_slerp_near_parallel_is_finite_and_gradcheck():
    q0 = torch.tensor([1.0, 0, 0, 0], dtype=D, requires_grad=True)
    q1 = torch.tensor([1.0, 1e-9, 0, 0], dtype=D)
    q1 = (q1 / q1.norm()).requires_grad_(True)
    out = quaternion_slerp(q0, q1, 0.3)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(q0.grad).all() and torch.isfinite(q1.grad).all()
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 4, dtype=D, generator=g)
    b = torch.randn(3, 4, dtype=D, generator=g)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=D, requires_grad=True)
    assert gradcheck(quaternion_slerp, (a.requires_grad_(), b.requires_grad_(), t))
    # nearly parallel inputs, both branches
    c = (a + 1e-6 * b)
    c = c / c.norm(dim=-1, keepdim=True)
    assert gradcheck(lambda x, y: quaternion_slerp(x, y, 0.4), (a.detach().requires_grad_(), c.requires_grad_()))
