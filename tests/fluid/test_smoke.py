import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.fluid import (FluidInstabilityError, SmokeParams, SmokeState, divergence, simulate_smoke, smoke_step,
                            sphere_source)


def _setup(n=6, dtype=torch.float64, d=3):
    shape = (n,) * d
    center = [(n - 1) / 2] * d
    center[1] = 1.0
    source = sphere_source(shape, center, 1.2, dtype=dtype)
    state = SmokeState(torch.zeros(shape, dtype=dtype), torch.zeros(shape + (d,), dtype=dtype))
    return source, state


@pytest.mark.slow
def test_smoke_step_gradcheck_over_two_steps():
    """Two full steps on a 6^3 grid: gradients w.r.t. the inflow velocity, rate, buoyancy and initial density
    (~7 s on an idle 2-core CPU, 15 s loaded)."""
    source, state = _setup()
    g = torch.Generator().manual_seed(0)
    rho0 = (0.3 * torch.rand(state.density.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    inflow = torch.tensor([0.2, 0.8, -0.1], dtype=torch.float64, requires_grad=True)
    rate = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    buoy = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(state.density.shape, generator=g, dtype=torch.float64)

    def loss(rho0, inflow, rate, buoy):
        params = SmokeParams(source=source, inflow_velocity=inflow, inflow_rate=rate, buoyancy=buoy, dx=0.2,
                             pressure_tol=1e-13, pressure_iters=1000)
        s = SmokeState(rho0, state.velocity)
        for k in range(2):
            s = smoke_step(s, params, 0.1, step=k)
        return (s.density * weights).sum() + (s.velocity ** 2).sum()

    assert gradcheck(loss, (rho0, inflow, rate, buoy), eps=1e-6, atol=1e-6)


def test_maccormack_step_gradcheck_in_2d():
    source, state = _setup(6, d=2)
    inflow = torch.tensor([0.3, 1.0], dtype=torch.float64, requires_grad=True)

    def loss(inflow):
        params = SmokeParams(source=source, inflow_velocity=inflow, inflow_rate=1.0, buoyancy=1.0, dx=0.2,
                             scheme="maccormack", pressure_tol=1e-13, pressure_iters=1000)
        s = smoke_step(smoke_step(state, params, 0.1, step=0), params, 0.1, step=1)
        return s.density.square().sum()

    assert gradcheck(loss, (inflow,), eps=1e-6, atol=1e-6)


def test_the_plume_rises_stays_non_negative_and_divergence_free():
    source, state = _setup(12, dtype=torch.float32)
    params = SmokeParams(source=source, inflow_velocity=torch.tensor([0.0, 1.0, 0.0]), inflow_rate=3.0,
                         buoyancy=2.0, dx=1 / 11, pressure_tol=1e-5)
    run = simulate_smoke(state, params, 10, 0.03)
    rho = run.state.density
    assert len(run.frames) == 10 and float(rho.min()) >= 0
    profile = rho.sum((0, 2)) / rho.sum()  # mass per height y
    assert float(profile[3:].sum()) > 0.3  # measured 0.36; without inflow velocity and buoyancy 0.014
    still = SmokeParams(source=source, inflow_velocity=torch.zeros(3), inflow_rate=3.0, dx=1 / 11)
    rho_still = simulate_smoke(state, still, 10, 0.03).state.density
    assert float(rho_still.sum((0, 2))[3:].sum() / rho_still.sum()) < 0.05
    assert float(torch.linalg.vector_norm(divergence(run.state.velocity))) <= 1e-5 * float(
        torch.linalg.vector_norm(run.state.velocity)) * 12


@pytest.mark.parametrize("every", [1, 3])
def test_checkpointing_changes_nothing_but_memory(every):
    source, state = _setup(6, dtype=torch.float64)
    inflow = torch.tensor([0.1, 0.9, 0.0], dtype=torch.float64, requires_grad=True)

    def run(k):
        params = SmokeParams(source=source, inflow_velocity=inflow, inflow_rate=2.0, buoyancy=1.0, dx=0.2,
                             pressure_tol=1e-12)
        out = simulate_smoke(state, params, 5, 0.1, checkpoint_every=k,
                             observe=lambda n, s: (s.density ** 2).sum())
        loss = sum(out.frames)
        return loss, torch.autograd.grad(loss, inflow)[0]

    (l0, g0), (l1, g1) = run(None), run(every)
    torch.testing.assert_close(l1, l0, rtol=1e-12, atol=0)
    torch.testing.assert_close(g1, g0, rtol=1e-10, atol=1e-12)


def test_cfl_violation_names_the_step():
    source, state = _setup(8, dtype=torch.float32)
    params = SmokeParams(source=source, inflow_velocity=torch.tensor([0.0, 1.0, 0.0]), inflow_rate=1.0,
                         buoyancy=200.0, dx=1 / 7, cfl_limit=1.0)
    with pytest.raises(FluidInstabilityError, match=r"step \d+: CFL number"):
        simulate_smoke(state, params, 30, 0.1)
    fast = SmokeParams(source=source, inflow_velocity=torch.tensor([0.0, 50.0, 0.0]), dx=1 / 7)
    with pytest.raises(FluidInstabilityError, match="step 3: CFL"):
        smoke_step(state, fast, 0.1, step=3)


def test_non_finite_parameters_never_give_nan():
    source, state = _setup(6, dtype=torch.float32)
    params = SmokeParams(source=source, inflow_velocity=torch.tensor([0.0, 1.0, 0.0]),
                         buoyancy=torch.tensor(float("nan")))
    with pytest.raises(ValueError, match="params.buoyancy contains NaN"):
        smoke_step(state, params, 0.1)


def test_bad_arguments_name_themselves():
    source, state = _setup(6, dtype=torch.float32)
    ok = SmokeParams(source=source, inflow_velocity=torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="dt"):
        smoke_step(state, ok, 0.0)
    with pytest.raises(ValueError, match="params.source"):
        smoke_step(state, SmokeParams(source=source[:5], inflow_velocity=ok.inflow_velocity), 0.1)
    with pytest.raises(ValueError, match="params.inflow_velocity"):
        smoke_step(state, SmokeParams(source=source, inflow_velocity=torch.zeros(2)), 0.1)
    with pytest.raises(ValueError, match="state.density must be >= 0"):
        smoke_step(SmokeState(-state.density - 1, state.velocity), ok, 0.1)
    with pytest.raises(ValueError, match="state.density must have shape"):
        smoke_step(SmokeState(state.density[:4], state.velocity), ok, 0.1)
    with pytest.raises(ValueError, match="checkpoint_every"):
        simulate_smoke(state, ok, 2, 0.1, checkpoint_every=-1)
    with pytest.raises(ValueError, match="steps"):
        simulate_smoke(state, ok, 0, 0.1)
    with pytest.raises(TypeError, match="params"):
        smoke_step(state, {"source": source}, 0.1)
