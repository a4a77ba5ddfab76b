"""Deformation fields: temporal cosine basis offsets and the time-conditioned MLP; applied to a scene."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.geometry import (BasisDeformation, MLPDeformation, NonRigidDeformation, basis_offsets, dct_basis,
                               deform_verts, mlp_offsets, positional_encoding, remove_rigid_motion)
from lumigrad.scene import deformed_scene


def test_dct_basis_values_and_orthogonality():
    b = dct_basis(torch.tensor([0.0, 1.0], dtype=torch.float64), 3, (0.0, 1.0))
    torch.testing.assert_close(b, torch.tensor([[1.0, 1, 1], [1, -1, 1]], dtype=torch.float64))
    # orthogonal on the DCT-II grid of times
    n = 8
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    B = dct_basis(t, 4, (0.0, 1.0))
    G = B.T @ B
    off_diagonal = G - torch.diag(torch.diag(G))
    torch.testing.assert_close(off_diagonal, torch.zeros(4, 4, dtype=torch.float64), atol=1e-12, rtol=0)


def test_basis_deformation_value_and_gradcheck():
    deform = BasisDeformation(5, 3, (0.0, 2.0), dtype=torch.float64)
    verts = torch.randn(5, 3, dtype=torch.float64)
    d = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        deform.basis[1] = d
    out = deform.offsets(verts, [0.0, 1.0, 2.0])
    torch.testing.assert_close(out[0], d)
    torch.testing.assert_close(out[1], torch.zeros_like(d), atol=1e-12, rtol=0)
    torch.testing.assert_close(out[2], -d)
    basis = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda B, t: basis_offsets(B, dct_basis(t, 3, (0.0, 1.0))), (basis, t))


def test_mlp_deformation_starts_at_identity_and_gradchecks():
    deform = MLPDeformation(hidden=8, layers=2, freqs_x=2, freqs_t=2, dtype=torch.float64)
    verts = torch.randn(6, 3, dtype=torch.float64)
    assert deform.offsets(verts, [0.0, 0.5]).abs().max() == 0
    assert sorted(deform.parameters()) == ["layer0.bias", "layer0.weight", "layer1.bias", "layer1.weight",
                                           "layer2.bias", "layer2.weight"]
    # gradients reach the zero last layer at the start
    deform.offsets(verts, [0.3]).pow(2).sum().backward()  # zero loss gradient at identity: use a linear loss
    deform.offsets(verts, [0.3]).sum().backward()
    assert deform.parameters()["layer2.weight"].grad.abs().sum() > 0
    g = torch.Generator().manual_seed(1)
    weights = [(torch.randn(8, 3 * 5 + 5, generator=g, dtype=torch.float64).mul(0.3).requires_grad_(),
                torch.randn(8, generator=g, dtype=torch.float64).requires_grad_()),
               (torch.randn(3, 8, generator=g, dtype=torch.float64).requires_grad_(),
                torch.randn(3, generator=g, dtype=torch.float64).requires_grad_())]
    v = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.1, 0.6], dtype=torch.float64, requires_grad=True)
    flat = [x for pair in weights for x in pair]
    f = lambda v, t, *w: mlp_offsets([(w[0], w[1]), (w[2], w[3])], v, t, 2, 2)  # noqa: E731
    assert torch.autograd.gradcheck(f, (v, t, *flat))


def test_positional_encoding_layout():
    p = torch.tensor([[0.25]], dtype=torch.float64)
    e = positional_encoding(p, 2)
    torch.testing.assert_close(e, torch.tensor([[0.25, math.sin(math.pi / 4), math.sin(math.pi / 2),
                                                 math.cos(math.pi / 4), math.cos(math.pi / 2)]], dtype=torch.float64))


def test_deformed_scene_moves_only_the_copy():
    verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]])
    scene = lg.Scene()
    scene.add_mesh("tri", lg.SceneMesh(verts, torch.tensor([[0, 2, 1]])))
    deform = BasisDeformation(3, 2, (0.0, 1.0))
    with torch.no_grad():
        deform.basis[0] = torch.tensor([0.0, 0.5, 0.0])
    moved = deformed_scene(scene, deform, 0.3)
    torch.testing.assert_close(moved.meshes["tri"].verts, verts + torch.tensor([0.0, 0.5, 0.0]))
    assert scene.meshes["tri"].verts is verts
    assert deform_verts(verts, deform, [0.0, 1.0]).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="mesh"):
        deformed_scene(scene, deform, 0.3, mesh="nope")
    with pytest.raises(TypeError, match="deformation"):
        deformed_scene(scene, object(), 0.3)
    with pytest.raises(TypeError, match="t must"):
        deformed_scene(scene, deform, [0.1, 0.2])
    with pytest.raises(ValueError, match="t_range"):
        BasisDeformation(3, 2, (1.0, 1.0))


def test_deformation_image_loss_matches_finite_differences():
    """A rendered image loss is differentiable in the basis through the rasterizer (central differences)."""
    verts = torch.tensor([[-0.8, -0.8, 0], [0.8, -0.7, 0], [0.1, 0.8, 0]], dtype=torch.float64)
    scene = lg.Scene()
    scene.add_mesh("tri", lg.SceneMesh(verts, torch.tensor([[0, 2, 1]]), double_sided=True))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), 3.0))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0, -3], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                            torch.tensor([0.0, 1, 0], dtype=torch.float64), width=24, height=24, fov_y=0.7)
    deform = BasisDeformation(3, 2, (0.0, 1.0), dtype=torch.float64)
    target = torch.linspace(0, 1, 24 * 24 * 4, dtype=torch.float64).reshape(24, 24, 4)

    def loss():
        return (lg.render(deformed_scene(scene, deform, 0.25), cam).rgba - target).pow(2).sum()

    loss().backward()
    g = deform.basis.grad[1, 2, 0].item()  # x of the top vertex, second basis shape
    h = 1e-3
    vals = []
    for s in (h, -h):
        with torch.no_grad():
            deform.basis[1, 2, 0] = s
        vals.append(loss().item())
    fd = (vals[0] - vals[1]) / (2 * h)
    assert abs(fd) > 1e-3 and abs(g - fd) < 0.1 * abs(fd)


def _rigid_field(verts, shift, w):
    """``shift + w x (verts - centroid)``: an infinitesimal rigid motion ``[N, V, 3]`` for ``shift, w [N, 3]``."""
    r = verts - verts.mean(0)
    return shift[:, None] + torch.linalg.cross(w[:, None].expand(-1, len(verts), -1), r.expand(len(w), -1, -1), dim=-1)


def test_remove_rigid_motion_zeroes_rigid_and_keeps_non_rigid():
    g = torch.Generator().manual_seed(3)
    verts = torch.randn(30, 3, generator=g, dtype=torch.float64)
    rigid = _rigid_field(verts, torch.randn(4, 3, generator=g, dtype=torch.float64),
                         torch.randn(4, 3, generator=g, dtype=torch.float64))
    torch.testing.assert_close(remove_rigid_motion(verts, rigid), torch.zeros_like(rigid), atol=1e-12, rtol=0)
    # non-rigid fields (a stretch, a bend) with their rigid parts removed once are kept exactly, also with a rigid
    # motion added; and the removal does not zero them
    stretch = torch.zeros(1, 30, 3, dtype=torch.float64)
    stretch[0, :, 0] = 0.1 * (verts[:, 0] - verts[:, 0].mean())
    bend = torch.zeros(1, 30, 3, dtype=torch.float64)
    bend[0, :, 1] = 0.05 * verts[:, 0] ** 2
    for raw in (stretch, bend):
        field = remove_rigid_motion(verts, raw)
        assert field.norm() > 0.3 * raw.norm()  # mostly non-rigid: not zeroed
        torch.testing.assert_close(remove_rigid_motion(verts, field), field, atol=1e-12, rtol=0)
        torch.testing.assert_close(remove_rigid_motion(verts, field + rigid[:1]), field, atol=1e-12, rtol=0)


def test_remove_rigid_motion_is_a_projection_with_zero_momenta():
    g = torch.Generator().manual_seed(4)
    verts = torch.randn(12, 3, generator=g, dtype=torch.float64)
    d = torch.randn(2, 12, 3, generator=g, dtype=torch.float64)
    p = remove_rigid_motion(verts, d)
    torch.testing.assert_close(remove_rigid_motion(verts, p), p)
    r = verts - verts.mean(0)
    torch.testing.assert_close(p.mean(-2), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.cross(r.expand_as(p), p, dim=-1).sum(-2),
                               torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    # orthogonal projection: the removed part is orthogonal to what is kept
    assert abs(float(((d - p) * p).sum())) < 1e-10


def test_remove_rigid_motion_gradcheck_and_errors():
    g = torch.Generator().manual_seed(5)
    verts = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(remove_rigid_motion, (verts, d))
    line = torch.linspace(0, 1, 6, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="collinear"):
        remove_rigid_motion(line, torch.zeros(6, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="offsets"):
        remove_rigid_motion(verts.detach(), torch.zeros(4, 3, dtype=torch.float64))


def test_non_rigid_deformation_wraps_basis_and_mlp():
    verts = torch.randn(20, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    basis = BasisDeformation(20, 3, dtype=torch.float64)
    with torch.no_grad():
        basis.basis[1] = _rigid_field(verts, torch.tensor([[0.1, 0.0, 0.2]], dtype=torch.float64),
                                      torch.tensor([[0.0, 0.3, 0.0]], dtype=torch.float64))[0]
    wrapped = NonRigidDeformation(basis)
    assert wrapped.parameters()["basis"] is basis.basis
    out = deform_verts(verts, wrapped, [0.0, 0.4])
    torch.testing.assert_close(out, verts.expand(2, -1, -1), atol=1e-12, rtol=0)  # a rigid basis does nothing
    mlp = MLPDeformation(8, 1, freqs_x=1, freqs_t=1, dtype=torch.float64)
    with torch.no_grad():
        mlp.weights[-1][0].normal_()
    d = NonRigidDeformation(mlp).offsets(verts, [0.3])
    torch.testing.assert_close(d.mean(-2), torch.zeros(1, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    d.pow(2).sum().backward()  # (d.sum() is zero for any weights: the projected offsets have zero mean)
    assert mlp.weights[-1][0].grad.abs().sum() > 1e-6
    with pytest.raises(TypeError, match="inner"):
        NonRigidDeformation(object())
