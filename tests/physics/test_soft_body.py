"""lumigrad.physics.soft_body: the Lame map (closed form, gradcheck), the surface mesh, the stiffness gradient of the
simulation and of a rendered image loss against central differences, bad input, and (slow) stiffness recovery."""

import runpy
from pathlib import Path

import pytest
import torch

pytest.importorskip("newton")

import lumigrad as lg  # noqa: E402
from lumigrad.physics import simulate  # noqa: E402
from lumigrad.physics.soft_body import drop_soft_box, lame_parameters, outward_faces  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "16_soft_body_stiffness.py"


@pytest.fixture(scope="module")
def body():
    return drop_soft_box(youngs_modulus=4.0e3, contact_mu=0.0)


def test_lame_parameters_closed_form_and_gradcheck(body):
    mu, lam = lame_parameters(2.6, 0.3)
    assert mu == pytest.approx(1.0) and lam == pytest.approx(1.5)
    E = torch.tensor(3.0e3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: body.tet_materials(e), (E,))
    materials = body.tet_materials(E)
    assert materials.shape == (body.tet_count, 3)
    assert torch.allclose(materials[0, :2], torch.stack(lame_parameters(E, 0.3)))


def test_surface_is_closed_and_outward(body):
    faces = body.surface_faces
    verts = torch.from_numpy(body.system.model.particle_q.numpy()).double()
    assert faces.shape == (48, 3)  # 2x2x2 cells: 6 sides x 4 squares x 2 triangles
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    # closed and consistently wound: every directed edge appears once and its reverse once
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == edges.shape[0] and all((b, a) in directed for a, b in directed)
    a, b, c = verts[faces].unbind(1)
    normal = torch.linalg.cross(b - a, c - a)
    assert ((normal * ((a + b + c) / 3 - verts.mean(0))).sum(-1) > 0).all()
    assert torch.equal(outward_faces(verts, faces[:, [0, 2, 1]]), faces)


def test_lowest_corner_starts_at_drop_height():
    b = drop_soft_box(drop_height=0.05, tilt=0.3)
    assert float(b.system.model.particle_q.numpy()[:, 2].min()) == pytest.approx(0.05, abs=1e-6)


def _heights(body, E, steps):
    return simulate(body.system, {"model.tet_materials": body.tet_materials(E)}, steps, 2e-3, checkpoint_every=40)


def test_stiffness_gradient_of_trajectory_matches_central_difference(body):
    steps = 120  # 0.24 s: the fall, the landing and the first squash on the frictionless floor
    weights = torch.linspace(0.0, 1.0, steps + 1)[:, None, None] * torch.tensor([0.3, -0.5, 1.0])
    E = torch.tensor(4.0e3, requires_grad=True)
    (_heights(body, E, steps) * weights).sum().backward()
    with torch.no_grad():
        h = 40.0
        numeric = ((_heights(body, torch.tensor(4.0e3 + h), steps) * weights).sum()
                   - (_heights(body, torch.tensor(4.0e3 - h), steps) * weights).sum()) / (2 * h)
    assert float(E.grad) == pytest.approx(float(numeric), rel=0.05)


@pytest.mark.slow
def test_stiffness_gradient_of_image_loss_matches_central_difference(body):
    namespace = runpy.run_path(str(EXAMPLE))
    cam = namespace["camera"](24)
    with torch.no_grad():
        target = namespace["render_video"](body, torch.tensor(4.0e3), 12, 10, cam)

    def loss(E):
        return ((namespace["render_video"](body, E, 12, 10, cam) - target) ** 2).mean()

    E = torch.tensor(6.0e3, requires_grad=True)
    loss(E).backward()
    with torch.no_grad():
        h = 120.0
        numeric = (loss(torch.tensor(6.0e3 + h)) - loss(torch.tensor(6.0e3 - h))) / (2 * h)
    assert float(E.grad) > 0 and float(numeric) > 0
    assert float(E.grad) == pytest.approx(float(numeric), rel=0.3)


def test_bad_input():
    with pytest.raises(ValueError, match="poisson_ratio"):
        drop_soft_box(poisson_ratio=0.5)
    with pytest.raises(ValueError, match="cells"):
        drop_soft_box(cells=(2, 2))
    with pytest.raises(ValueError, match="cell_size"):
        drop_soft_box(cell_size=0.0)
    with pytest.raises(TypeError, match="cells"):
        drop_soft_box(cells=(2, 2.5, 2))


def test_bad_modulus(body):
    with pytest.raises(ValueError, match="youngs_modulus"):
        body.tet_materials(torch.ones(2))


@pytest.mark.slow
def test_stiffness_recovered_from_small_video():
    """20 frames at 32 px, 15 Adam steps from twice the true modulus (the example's full size: 40 frames, 64 px, 40 steps
    reaches 0.94 %)."""
    result = runpy.run_path(str(EXAMPLE))["main"](["--frames", "20", "--size", "32", "--steps", "15"])
    assert result["relative_error"] < 0.02  # reaches 0.9 % here; the issue asks < 10 %
