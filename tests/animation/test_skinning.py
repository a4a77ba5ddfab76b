import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.animation import (SkinWeightWarning, axis_angle_to_matrix, dual_quaternion_skinning,
                                forward_kinematics, linear_blend_skinning, normalize_skin_weights, skin_matrices,
                                skin_normals)

from ._helpers import D, chain_skeleton, cylinder, mesh_volume


def _random_rigid(n, g):
    M = torch.eye(4, dtype=D).repeat(n, 1, 1)
    M[:, :3, :3] = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=D))
    M[:, :3, 3] = torch.randn(n, 3, generator=g, dtype=D)
    return M


def _binding(V, J, K, g):
    joints = torch.randint(0, J, (V, K), generator=g)
    w = torch.rand(V, K, generator=g, dtype=D) + 0.1
    return joints, w / w.sum(-1, keepdim=True)


def test_identity_pose_returns_rest_mesh():
    sk = chain_skeleton(3)
    verts, _ = cylinder(segments=6, rings=5)
    g = torch.Generator().manual_seed(0)
    joints, w = _binding(verts.shape[0], 3, 2, g)
    S = skin_matrices(sk, forward_kinematics(sk))
    assert torch.allclose(linear_blend_skinning(verts, joints, w, S), verts, atol=1e-12)
    assert torch.allclose(dual_quaternion_skinning(verts, joints, w, S), verts, atol=1e-12)


def test_lbs_against_loop_reference_batched():
    g = torch.Generator().manual_seed(1)
    V, J, K = 7, 4, 3
    verts = torch.randn(V, 3, generator=g, dtype=D)
    joints, w = _binding(V, J, K, g)
    S = torch.stack([_random_rigid(J, g), _random_rigid(J, g)])  # [2, J, 4, 4]
    out = linear_blend_skinning(verts, joints, w, S)
    assert out.shape == (2, V, 3)
    for b in range(2):
        for v in range(V):
            M = sum(w[v, k] * S[b, joints[v, k]] for k in range(K))
            assert torch.allclose(out[b, v], (M @ torch.cat([verts[v], torch.ones(1, dtype=D)]))[:3])


def test_dqs_equals_lbs_for_single_joint_weights():
    g = torch.Generator().manual_seed(2)
    V, J = 20, 5
    verts = torch.randn(V, 3, generator=g, dtype=D)
    joints = torch.randint(0, J, (V, 2), generator=g)
    w = torch.zeros(V, 2, dtype=D)
    w[:, 0] = 1
    S = _random_rigid(J, g)
    assert torch.allclose(dual_quaternion_skinning(verts, joints, w, S), linear_blend_skinning(verts, joints, w, S),
                          atol=1e-12)


def test_dqs_blends_rotations_about_the_joint():
    # a vertex half bound to a fixed joint and half to one turned 180 degrees about x, at distance r from the
    # axis: LBS collapses it onto the axis, DQS turns it by 90 degrees and keeps its distance.
    verts = torch.tensor([[0.0, 1.0, 0.0]], dtype=D)
    S = torch.eye(4, dtype=D).repeat(2, 1, 1)
    S[1, :3, :3] = axis_angle_to_matrix(torch.tensor([math.pi * 0.999, 0, 0], dtype=D))
    joints = torch.tensor([[0, 1]])
    w = torch.tensor([[0.5, 0.5]], dtype=D)
    lbs = linear_blend_skinning(verts, joints, w, S)
    dqs = dual_quaternion_skinning(verts, joints, w, S)
    assert lbs[0, 1:].norm() < 0.01
    assert torch.allclose(dqs[0, 1:].norm(), torch.tensor(1.0, dtype=D), atol=1e-12)


def test_dqs_preserves_twisted_cylinder_volume_better_than_lbs():
    sk = chain_skeleton(2, spacing=1.0)
    verts, faces = cylinder(segments=24, rings=41, length=2.0, radius=0.2)
    # weights ramp from joint 0 to joint 1 across x in [0.5, 1.5]
    s = ((verts[:, 0] - 0.5) / 1.0).clamp(0, 1)
    joints = torch.tensor([[0, 1]]).expand(verts.shape[0], 2)
    w = torch.stack([1 - s, s], -1)
    rest = mesh_volume(verts, faces)
    rot = torch.eye(3, dtype=D).repeat(2, 1, 1)
    rot[1] = axis_angle_to_matrix(torch.tensor([math.radians(150), 0, 0], dtype=D))  # twist about the bone
    S = skin_matrices(sk, forward_kinematics(sk, rot))
    v_lbs = mesh_volume(linear_blend_skinning(verts, joints, w, S), faces)
    v_dqs = mesh_volume(dual_quaternion_skinning(verts, joints, w, S), faces)
    loss_lbs = float(1 - v_lbs / rest)
    loss_dqs = float(1 - v_dqs / rest)
    # measured: LBS loses ~31% of the volume (candy wrapper), DQS ~0% (twist is volume preserving)
    assert loss_lbs > 0.2
    assert abs(loss_dqs) < 0.01
    assert abs(loss_dqs) < abs(loss_lbs) / 10


def test_gradcheck_lbs_dqs_normals():
    g = torch.Generator().manual_seed(4)
    V, J, K = 4, 3, 2
    verts = torch.randn(V, 3, generator=g, dtype=D, requires_grad=True)
    normals = torch.randn(V, 3, generator=g, dtype=D, requires_grad=True)
    joints, w = _binding(V, J, K, g)
    w.requires_grad_(True)
    aa = torch.randn(J, 3, generator=g, dtype=D, requires_grad=True)
    tr = torch.randn(J, 3, generator=g, dtype=D, requires_grad=True)

    def mats(a, t):
        M = torch.eye(4, dtype=D).repeat(J, 1, 1)
        M = torch.cat([torch.cat([axis_angle_to_matrix(a), t[..., None]], -1), M[:, 3:]], -2)
        return M

    assert gradcheck(lambda v, ww, a, t: linear_blend_skinning(v, joints, ww, mats(a, t)), (verts, w, aa, tr))
    assert gradcheck(lambda v, ww, a, t: dual_quaternion_skinning(v, joints, ww, mats(a, t)), (verts, w, aa, tr))
    assert gradcheck(lambda n, ww, a, t: skin_normals(n, joints, ww, mats(a, t)), (normals, w, aa, tr))
    # also w.r.t. a general (scaled) matrix for LBS
    S = (torch.randn(J, 4, 4, generator=g, dtype=D) * 0.1 + torch.eye(4, dtype=D)).requires_grad_(True)
    assert gradcheck(lambda m: linear_blend_skinning(verts.detach(), joints, w.detach(), m), (S,))


def test_skin_normals_match_inverse_transpose():
    g = torch.Generator().manual_seed(5)
    V, J = 6, 3
    normals = torch.randn(V, 3, generator=g, dtype=D)
    joints, w = _binding(V, J, 2, g)
    S = torch.randn(J, 4, 4, generator=g, dtype=D) * 0.2 + torch.eye(4, dtype=D)
    out = skin_normals(normals, joints, w, S)
    for v in range(V):
        A = sum(w[v, k] * S[joints[v, k], :3, :3] for k in range(2))
        n = torch.linalg.inv(A).T @ normals[v]
        n = n / n.norm() * torch.sign(torch.linalg.det(A))
        assert torch.allclose(out[v], n, atol=1e-10)


def test_weights_not_summing_to_one_warn_and_normalise():
    w = torch.tensor([[0.5, 0.3], [1.0, 0.0]], dtype=D)
    with pytest.warns(SkinWeightWarning, match="renormalising"):
        out = normalize_skin_weights(w)
    assert torch.allclose(out.sum(-1), torch.ones(2, dtype=D))
    verts = torch.zeros(2, 3, dtype=D)
    S = torch.eye(4, dtype=D).repeat(2, 1, 1)
    S[1, :3, 3] = 1.0
    with pytest.warns(SkinWeightWarning):
        posed = linear_blend_skinning(verts, torch.tensor([[0, 1], [0, 1]]), w, S)
    assert torch.allclose(posed[0], torch.full((3,), 0.375, dtype=D))


def test_bad_skin_inputs():
    verts = torch.zeros(2, 3)
    S = torch.eye(4).repeat(2, 1, 1)
    with pytest.raises(ValueError, match="sums to 0"):
        linear_blend_skinning(verts, torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1), S)
    with pytest.raises(ValueError, match="non-negative"):
        linear_blend_skinning(verts, torch.zeros(2, 2, dtype=torch.long), torch.tensor([[2.0, -1], [1, 0]]), S)
    with pytest.raises(ValueError, match="joints holds index 5"):
        linear_blend_skinning(verts, torch.full((2, 1), 5), torch.ones(2, 1), S)
    with pytest.raises(ValueError, match="weights"):
        dual_quaternion_skinning(verts, torch.zeros(2, 1, dtype=torch.long), torch.ones(3, 1), S)
    with pytest.raises(TypeError, match="joints"):
        linear_blend_skinning(verts, torch.zeros(2, 1), torch.ones(2, 1), S)
    with pytest.raises(ValueError, match="NaN"):
        linear_blend_skinning(verts, torch.zeros(2, 1, dtype=torch.long), torch.tensor([[float("nan")], [1]]), S)
    with pytest.raises(ValueError, match="skin_mats"):
        linear_blend_skinning(verts, torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1), torch.eye(3))


def test_gather_path_equals_dense_path(monkeypatch):
    import lumigrad.animation.skinning as skinning

    g = torch.Generator().manual_seed(6)
    V, J, K = 9, 5, 3
    verts = torch.randn(V, 3, generator=g, dtype=D)
    joints, w = _binding(V, J, K, g)
    S = torch.randn(2, J, 4, 4, generator=g, dtype=D, requires_grad=True)
    dense = linear_blend_skinning(verts, joints, w, S)
    (g_dense,) = torch.autograd.grad(dense.sum(), S)
    monkeypatch.setattr(skinning, "_DENSE_LIMIT", 0)
    gathered = linear_blend_skinning(verts, joints, w, S)
    (g_gathered,) = torch.autograd.grad(gathered.sum(), S)
    assert torch.allclose(dense, gathered, atol=1e-12) and torch.allclose(g_dense, g_gathered, atol=1e-12)


def test_batched_verts_broadcast_with_batched_matrices():
    g = torch.Generator().manual_seed(7)
    V, J = 6, 3
    verts = torch.randn(2, V, 3, generator=g, dtype=D)
    joints, w = _binding(V, J, 2, g)
    S = torch.stack([_random_rigid(J, g), _random_rigid(J, g)])
    for op in (linear_blend_skinning, dual_quaternion_skinning, skin_normals):
        out = op(verts, joints, w, S)
        assert out.shape == (2, V, 3)
        for b in range(2):
            assert torch.allclose(out[b], op(verts[b], joints, w, S[b]), atol=1e-12)
        assert op(verts, joints, w, S[0]).shape == (2, V, 3)  # batched verts, one pose


def test_skin_tangents_move_with_the_surface_and_keep_handedness():
    from lumigrad.animation import skin_tangents

    g = torch.Generator().manual_seed(11)
    V, J = 5, 3
    tangents = torch.cat([torch.randn(V, 3, generator=g, dtype=D), torch.tensor([1.0, -1, 1, -1, 1], dtype=D)[:, None]],
                         -1)
    joints, w = _binding(V, J, 2, g)
    S = torch.randn(J, 4, 4, generator=g, dtype=D) * 0.2 + torch.eye(4, dtype=D)
    out = skin_tangents(tangents, joints, w, S)
    for v in range(V):  # float64 reference: the blended linear part applied to the direction, renormalised
        A = sum(w[v, k] * S[joints[v, k], :3, :3] for k in range(2))
        t = A @ tangents[v, :3]
        assert torch.allclose(out[v, :3], t / t.norm(), atol=1e-12) and out[v, 3] == tangents[v, 3]
    # a tangent stays perpendicular to the skinned normal (tangent by A, normal by A's cofactor)
    normal = torch.linalg.cross(tangents[:, :3], torch.randn(V, 3, generator=g, dtype=D))
    n = skin_normals(normal, joints, w, S)
    assert float((n * out[:, :3]).sum(-1).abs().max()) < 1e-12
    xyz = tangents[:, :3].clone().requires_grad_(True)
    ww = w.clone().requires_grad_(True)
    Sg = S.clone().requires_grad_(True)
    assert gradcheck(lambda x, a, m: skin_tangents(torch.cat([x, tangents[:, 3:]], -1), joints, a, m), (xyz, ww, Sg))
    with pytest.raises(ValueError, match="tangents"):
        skin_tangents(tangents[:, :3], joints, w, S)
