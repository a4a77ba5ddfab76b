"""Per-step force control of the soft box (examples/17_physics_control.py): the gradient of the final centre of mass
with respect to the force schedule against its closed form on a frictionless floor, and (slow) the control fit."""

import runpy
from pathlib import Path

import pytest
import torch

pytest.importorskip("newton")

from lumigrad.physics.soft_body import drop_soft_box  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "17_physics_control.py"


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))


def test_force_schedule_gradient_matches_closed_form(example):
    """Internal FEM forces cancel and a frictionless floor pushes only along z, so with semi-implicit Euler the final
    centre of mass moves by sum_k F[k] * dt^2 * (steps - k) / M along x and y: d x_final / d F[k, x] is exactly
    dt^2 (steps - k) / M."""
    body = drop_soft_box(drop_height=0.0, tilt=0.0, youngs_modulus=2.0e4, contact_mu=0.0, contact_kd=20.0)
    mass = torch.from_numpy(body.system.model.particle_mass.numpy()).double()
    steps = 30
    g = torch.Generator().manual_seed(0)
    forces = (2.0 * torch.randn(steps, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    final = example["final_state"](body, forces, mass)
    final.mean(0)[0].backward()
    dt = example["DT"]
    expected = dt ** 2 * (steps - torch.arange(steps, dtype=torch.float64)) / mass.sum()
    assert torch.allclose(forces.grad[:, 0], expected, rtol=1e-3)
    assert forces.grad[:, 1].abs().max() < 1e-3 * expected.max()
    # the forward agrees with the same closed form
    with torch.no_grad():
        rest = example["final_state"](body, torch.zeros_like(forces), mass).mean(0)
        moved = final.detach().mean(0)
    assert torch.allclose(moved[:2] - rest[:2], (expected[:, None] * forces.detach()[:, :2]).sum(0), rtol=1e-3,
                          atol=1e-6)


def test_push_spreads_force_by_mass(example):
    forces = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    mass = torch.tensor([1.0, 3.0], dtype=torch.float64)
    spread = example["push"](forces, mass)
    assert spread.shape == (1, 2, 3)
    assert torch.allclose(spread.sum(1), forces) and torch.allclose(spread[0, 1], 3 * spread[0, 0])


@pytest.mark.slow
def test_control_fit_reaches_target_placement(example):
    """10 frames (100 force steps) at 32 px, 15 Adam steps: the final centre of mass ends 10.8 mm from the target's,
    from 44.4 mm with no force (the example's full size, 20 frames, 64 px, 60 steps: 4.8 mm from 176.9 mm)."""
    result = example["main"](["--frames", "10", "--size", "32", "--steps", "15"])
    assert result["start_position_error"] > 0.04
    assert result["position_error"] < 0.015
