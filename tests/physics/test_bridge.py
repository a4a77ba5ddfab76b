"""lumigrad.physics.simulate: gradients against central finite differences of the same (float32) simulation,
checkpointed == non-checkpointed backward, blow-up detection, bad input."""

import pytest
import torch

pytest.importorskip("newton")

from lumigrad.physics import PhysicsInstabilityError, simulate, spring_pair, thrown_body  # noqa: E402


def _directional_check(system, params, steps, dt, weights, name, direction, eps, **kw):
    """Analytic d loss / d params[name] . direction versus the central difference of the same simulation."""
    leaf = {n: v.detach().clone().requires_grad_(n == name) for n, v in params.items()}
    loss = (simulate(system, leaf, steps, dt, **kw) * weights).sum()
    loss.backward()
    analytic = float((leaf[name].grad * direction).sum())

    def value(sign):
        shifted = {n: v.detach() + (sign * eps * direction if n == name else 0.0) for n, v in params.items()}
        return float((simulate(system, shifted, steps, dt) * weights).sum())

    numeric = (value(1.0) - value(-1.0)) / (2.0 * eps)
    return analytic, numeric


@pytest.fixture(scope="module")
def spring():
    return spring_pair()


def _spring_params(steps):
    g = torch.Generator().manual_seed(0)
    return {"state.particle_qd": torch.tensor([[0.5, 0.2, 0.0], [-0.3, 0.4, 0.1]]),
            "model.spring_stiffness": torch.tensor([50.0]),
            "model.spring_damping": torch.tensor([0.5]),
            "state.particle_f": 0.5 * torch.randn(steps, 2, 3, generator=g)}


@pytest.mark.parametrize("name,eps", [("state.particle_qd", 1e-2), ("model.spring_stiffness", 1.0),
                                      ("model.spring_damping", 5e-2), ("state.particle_f", 5e-2)])
def test_spring_gradients_match_finite_differences(spring, name, eps):
    steps, dt = 60, 1.0 / 120.0
    params = _spring_params(steps)
    g = torch.Generator().manual_seed(1)
    weights = torch.randn(steps + 1, 2, 3, generator=g)
    direction = torch.randn(params[name].shape, generator=g)
    analytic, numeric = _directional_check(spring, params, steps, dt, weights, name, direction, eps)
    assert abs(analytic - numeric) <= 1e-2 * abs(numeric) + 1e-5, (analytic, numeric)


def test_checkpointed_backward_equals_full_backward(spring):
    steps, dt = 50, 1.0 / 120.0
    params = _spring_params(steps)
    weights = torch.randn(steps + 1, 2, 3, generator=torch.Generator().manual_seed(2))
    grads = []
    for k in (None, 1, 7, 50):
        leaf = {n: v.clone().requires_grad_() for n, v in params.items()}
        (simulate(spring, leaf, steps, dt, checkpoint_every=k) * weights).sum().backward()
        grads.append({n: v.grad for n, v in leaf.items()})
    for other in grads[1:]:
        for n in params:
            torch.testing.assert_close(other[n], grads[0][n], rtol=1e-5, atol=1e-6)


def test_forward_matches_closed_form_free_fall(spring):
    # a spring at rest length between two particles of a rigid pair falling together: each falls as g t^2 / 2
    steps, dt = 30, 1.0 / 100.0
    out = simulate(spring, {"model.spring_stiffness": torch.tensor([0.0]),
                            "model.spring_damping": torch.tensor([0.0])}, steps, dt)
    t = steps * dt
    drop = float(out[0, 0, 1] - out[-1, 0, 1])
    # semi-implicit Euler: v_n = n g dt, x drop = g dt^2 n (n + 1) / 2
    assert drop == pytest.approx(9.81 * dt * dt * steps * (steps + 1) / 2, rel=1e-3)
    assert t > 0


@pytest.fixture(scope="module")
def sphere():
    return thrown_body("sphere", contact_stiffness=1.0e4, contact_damping=10.0, friction=0.3)


@pytest.mark.parametrize("name,index,eps,tolerance", [("state.body_qd", (0, 0), 2e-2, 0.02),
                                                    ("state.body_qd", (0, 1), 1e-3, 0.02),
                                                    ("model.shape_material_mu", None, 1e-2, 0.05),
                                                    ("model.shape_material_kd", None, 0.5, 0.02)])
def test_contact_gradients_match_finite_differences(sphere, name, index, eps, tolerance):
    # a sphere thrown down onto the floor (impact at ~0.2 s), bounces and slides; the loss weighs the trajectory.
    # The vertical velocity moves the impact step: the loss is a sawtooth in it (docs/physics.md), so its
    # difference uses a step inside one smooth piece (1e-3); with 1e-2 it straddles jumps and reads -10 vs -36.
    steps, dt = 200, 1.0 / 400.0
    params = {"state.body_qd": torch.tensor([[1.0, -1.0, 0.0, 0.0, 0.0, 0.0]]),
              "model.shape_material_mu": torch.tensor([0.3, 0.3]),
              "model.shape_material_kd": torch.tensor([10.0, 10.0])}
    direction = torch.zeros(params[name].shape)
    if index is None:
        direction.fill_(1.0)
    else:
        direction[index] = 1.0
    weights = torch.zeros(steps + 1, 1, 7)
    weights[:, 0, :3] = torch.tensor([1.0, 2.0, 0.5])
    analytic, numeric = _directional_check(sphere, params, steps, dt, weights, name, direction, eps,
                                           checkpoint_every=20)
    assert abs(numeric) > 0.1
    assert abs(analytic - numeric) <= tolerance * abs(numeric), (analytic, numeric)


def test_unstable_time_step_raises_naming_the_step():
    stiff = spring_pair(stiffness=1.0e5, damping=0.0)
    with pytest.raises(PhysicsInstabilityError, match=r"unstable at step \d+ .*reduce dt"):
        simulate(stiff, {"state.particle_qd": torch.zeros(2, 3)}, 200, 1.0 / 30.0)


@pytest.mark.parametrize("params,steps,dt,match", [
    ({"state.particle_qd": torch.zeros(3, 3)}, 5, 0.01, r"params\['state.particle_qd'\] must have shape"),
    ({"model.nonexistent": torch.zeros(1)}, 5, 0.01, "the model has no array"),
    ({"velocity": torch.zeros(1)}, 5, 0.01, "must be 'model.X'"),
    ({"state.particle_qd": torch.full((2, 3), float("nan"))}, 5, 0.01, "non-finite"),
    ({}, 0, 0.01, "steps"),
    ({}, 5, 0.0, "dt"),
])
def test_bad_input_names_the_argument(spring, params, steps, dt, match):
    with pytest.raises((ValueError, TypeError), match=match):
        simulate(spring, params, steps, dt)
