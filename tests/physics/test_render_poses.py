"""Physics -> pixels: body_q_to_matrices against the closed form, and the gradient of an image loss of a simulated,
rendered box against central differences."""

import math

import pytest
import torch

from lumigrad.physics import body_q_to_matrices


def test_body_q_to_matrices_closed_form_and_gradcheck():
    half = math.pi / 6  # 60 degrees about y: quaternion (x, y, z, w) = (0, sin 30, 0, cos 30)
    q = torch.tensor([0.1, 0.2, 0.3, 0.0, math.sin(half), 0.0, math.cos(half)], dtype=torch.float64)
    m = body_q_to_matrices(q)
    c, s = math.cos(2 * half), math.sin(2 * half)
    expected = torch.tensor([[c, 0, s, 0.1], [0, 1, 0, 0.2], [-s, 0, c, 0.3], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(m, expected)
    x = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(body_q_to_matrices, (x,))
    with pytest.raises(ValueError, match="body_q"):
        body_q_to_matrices(torch.zeros(3, 6))


def test_image_loss_gradient_through_the_simulation_matches_finite_differences():
    # simulate -> render -> image loss. The renderer's own gradient is tested in tests/raster; here the
    # incoming gradient it produces (d loss / d body_q of a rendered, thrown box) is pushed back through the
    # simulation, and compared with central differences of <d loss / d body_q, simulate(v0)>
    pytest.importorskip("newton")
    import lumigrad as lg
    from lumigrad.physics import simulate, thrown_body
    from lumigrad.physics.render import box_mesh, render_posed_mesh

    system = thrown_body("box", half_extent=0.1, height=0.3)
    camera = lg.Camera.look_at([0.3, 0.6, 1.4], [0.3, 0.2, 0.0], width=32, height=32, fov_y=0.5)
    mesh = box_mesh(0.1)
    target = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))

    def trajectory(v0):
        params = {"state.body_qd": torch.cat([v0, torch.tensor([0.0, 0.0, 0.5])]).unsqueeze(0)}
        return simulate(system, params, 40, 1.0 / 400.0, checkpoint_every=10)

    v0 = torch.tensor([1.5, 0.8, 0.1], requires_grad=True)
    body_q = trajectory(v0)
    poses = body_q.detach().requires_grad_()
    (render_posed_mesh(*mesh, poses[::10, 0], camera) - target).square().mean().backward()
    incoming = poses.grad
    assert incoming.abs().sum() > 0
    (body_q * incoming).sum().backward()
    eps = 1e-2
    for i in range(3):
        step = torch.zeros(3)
        step[i] = eps
        with torch.no_grad():
            numeric = ((trajectory(v0 + step) - trajectory(v0 - step)) * incoming).sum() / (2 * eps)
        assert abs(float(v0.grad[i]) - float(numeric)) <= 1e-2 * abs(float(numeric)) + 1e-6, (i, v0.grad, numeric)


def test_missing_newton_names_the_extra(monkeypatch):
    import sys

    from lumigrad.physics import require_newton
    monkeypatch.setitem(sys.modules, "newton", None)  # makes `import newton` raise ImportError
    with pytest.raises(ImportError, match=r"pip install lumigrad\[physics\]"):
        require_newton()
