"""Deformation fields: temporal cosine basis offsets and the time-conditioned MLP; applied to a scene."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.geometry import (BasisDeformation, MLPDeformation, basis_offsets, dct_basis, deform_verts,
                               mlp_offsets, positional_encoding)
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
