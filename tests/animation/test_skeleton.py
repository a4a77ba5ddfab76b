import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.animation import (Skeleton, axis_angle_to_matrix, forward_kinematics, quaternion_to_matrix,
                                skin_matrices)

from ._helpers import D, chain_skeleton


def _skeleton(parents, names=None):
    J = len(parents)
    q = torch.zeros(J, 4, dtype=D)
    q[:, 0] = 1
    return Skeleton(names or [f"j{k}" for k in range(J)], torch.tensor(parents), torch.rand(J, 3, dtype=D), q,
                    torch.ones(J, 3, dtype=D), torch.eye(4, dtype=D).repeat(J, 1, 1))


def test_two_joint_chain_by_hand():
    sk = chain_skeleton(2)
    R = axis_angle_to_matrix(torch.tensor([[0, 0, math.pi / 2], [0, 0, 0]], dtype=D))
    W = forward_kinematics(sk, R)
    assert torch.allclose(W[1, :3, 3], torch.tensor([0.0, 1, 0], dtype=D), atol=1e-12)
    assert torch.allclose(W[1, :3, :3], R[0], atol=1e-12)


def test_children_listed_before_parents_are_sorted():
    # joint 0's parent is joint 2, joint 2's parent is joint 1 (the root)
    J = 3
    q = torch.zeros(J, 4, dtype=D)
    q[:, 0] = 1
    t = torch.tensor([[1.0, 0, 0], [0, 0, 5], [0, 2, 0]], dtype=D)
    sk = Skeleton(["c", "root", "m"], torch.tensor([2, -1, 1]), t, q, torch.ones(J, 3, dtype=D),
                  torch.eye(4, dtype=D).repeat(J, 1, 1))
    W = forward_kinematics(sk)
    assert torch.allclose(W[0, :3, 3], torch.tensor([1.0, 2, 5], dtype=D))
    assert sk.order.index(1) < sk.order.index(2) < sk.order.index(0)


def test_fk_matches_reference_composition_batched_with_scale_and_root():
    g = torch.Generator().manual_seed(0)
    parents = [-1, 0, 1, 0, 3]
    sk = _skeleton(parents)
    sk.root_transform = torch.eye(4, dtype=D)
    sk.root_transform[:3, 3] = torch.tensor([0.5, -1, 2], dtype=D)
    rot = axis_angle_to_matrix(torch.randn(2, 5, 3, generator=g, dtype=D))
    tr = torch.randn(2, 5, 3, generator=g, dtype=D)
    sc = torch.rand(2, 5, 3, generator=g, dtype=D) + 0.5
    W = forward_kinematics(sk, rot, tr, sc)
    for b in range(2):
        for j in range(5):
            chain, k = [], j
            while k >= 0:
                chain.append(k)
                k = parents[k]
            M = sk.root_transform.clone()
            for k in reversed(chain):
                L = torch.eye(4, dtype=D)
                L[:3, :3] = rot[b, k] @ torch.diag(sc[b, k])
                L[:3, 3] = tr[b, k]
                M = M @ L
            assert torch.allclose(W[b, j], M, atol=1e-12)


def test_rest_pose_skin_matrices_are_identity():
    sk = chain_skeleton(4)
    S = skin_matrices(sk, forward_kinematics(sk))
    assert torch.allclose(S, torch.eye(4, dtype=D).expand(4, 4, 4), atol=1e-12)


def test_fk_gradcheck():
    sk = _skeleton([-1, 0, 1])
    g = torch.Generator().manual_seed(3)
    aa = torch.randn(3, 3, generator=g, dtype=D, requires_grad=True)
    tr = torch.randn(3, 3, generator=g, dtype=D, requires_grad=True)
    sc = (torch.rand(3, 3, generator=g, dtype=D) + 0.5).requires_grad_(True)
    assert gradcheck(lambda a, t, s: skin_matrices(sk, forward_kinematics(sk, axis_angle_to_matrix(a), t, s)),
                     (aa, tr, sc))


def test_rest_rotation_used_when_rotation_is_none():
    sk = _skeleton([-1, 0])
    sk.rest_rotation = torch.tensor([[math.cos(0.3), 0, math.sin(0.3), 0], [1, 0, 0, 0]], dtype=D)
    W = forward_kinematics(sk)
    W2 = forward_kinematics(sk, quaternion_to_matrix(sk.rest_rotation))
    assert torch.allclose(W, W2)


def test_cycle_names_the_joints():
    with pytest.raises(ValueError, match=r"cycle.*\(child -> parent\) b -> d -> c -> b"):
        _skeleton([-1, 3, 1, 2], names=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="cycle"):
        _skeleton([0])  # self-parent


def test_bad_parents_and_shapes():
    with pytest.raises(ValueError, match=r"parents\[1\] = 7"):
        _skeleton([-1, 7])
    with pytest.raises(ValueError, match=r"parents\[0\] = -2"):
        _skeleton([-2])
    sk = _skeleton([-1, 0])
    with pytest.raises(ValueError, match="rotation"):
        forward_kinematics(sk, torch.eye(3, dtype=D).expand(3, 3, 3))
    with pytest.raises(TypeError, match="parents"):
        Skeleton(["a"], torch.tensor([-1.0]), torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3),
                 torch.eye(4)[None])
    with pytest.raises(ValueError, match="rest_translation"):
        Skeleton(["a"], torch.tensor([-1]), torch.zeros(2, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.ones(1, 3),
                 torch.eye(4)[None])
    with pytest.raises(KeyError, match="nope"):
        sk.index("nope")
