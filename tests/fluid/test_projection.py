import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.fluid import divergence, pressure_gradient, project, project_ref, project_with_info


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (6, 7, 2)])
def test_projection_matches_the_dense_reference(shape):
    u = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(project(u, tol=1e-12), project_ref(u), rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-8), (torch.float32, 1e-5)])
def test_projection_reaches_its_tolerance_and_is_idempotent(dtype, tol):
    u = torch.randn(12, 12, 12, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    solve = project_with_info(u, tol=tol)
    before = float(torch.linalg.vector_norm(divergence(u)))
    after = float(torch.linalg.vector_norm(divergence(solve.velocity)))
    assert solve.residual <= tol and after / before <= 1.01 * tol  # the CG residual is the divergence left
    assert solve.iterations < 400
    again = project_with_info(solve.velocity, tol=tol)
    torch.testing.assert_close(again.velocity, solve.velocity, rtol=0, atol=10 * tol * float(u.abs().max()))


def test_divergence_is_minus_the_adjoint_of_the_gradient():
    g = torch.Generator().manual_seed(2)
    p = torch.randn(5, 6, 7, generator=g, dtype=torch.float64)
    u = torch.randn(5, 6, 7, 3, generator=g, dtype=torch.float64)
    lhs = (pressure_gradient(p, 0.3) * u).sum()
    rhs = -(p * divergence(u, 0.3)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_projection_gradcheck_and_self_adjoint_backward():
    u = torch.randn(3, 4, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                    requires_grad=True)
    assert gradcheck(lambda u: project(u, tol=1e-13), (u,), eps=1e-6, atol=1e-7, fast_mode=True)
    cot = torch.randn_like(u)
    (ours,) = torch.autograd.grad(project(u, tol=1e-13), u, cot)
    (ref,) = torch.autograd.grad(project_ref(u), u, cot)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)


def test_divergence_free_input_is_unchanged():
    u = torch.zeros(6, 6, 2, dtype=torch.float64)
    u[2:4, 2:4, 0] = 1.0
    free = project(u, tol=1e-12)
    torch.testing.assert_close(project(free, tol=1e-12), free, rtol=0, atol=1e-10)
    assert project_with_info(torch.zeros(4, 4, 2)).iterations == 0


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="velocity"):
        project(torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match="tol"):
        project(torch.zeros(4, 4, 2), tol=0.0)
    with pytest.raises(ValueError, match="max_iters"):
        project(torch.zeros(4, 4, 2), max_iters=0)
    with pytest.raises(ValueError, match="velocity contains NaN"):
        project(torch.full((4, 4, 2), float("inf")))
