"""Large-steps parameterisation (smoothing matrix, solvers, autograd) and the AdamUniform optimiser."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from lumigrad.geometry.laplacian import uniform_laplacian
from lumigrad.geometry.subdivide import icosphere, subdivide_midpoint
from lumigrad.optim import (AdamUniform, ConvergenceError, LargeSteps, SmoothingSolver, from_differential,
                            smoothing_matrix, solver_for, to_differential)

F64 = torch.float64


def _sphere(n=2):
    return icosphere(n, dtype=F64)


# ---------------------------------------------------------------------------------------------- the matrix

@pytest.mark.parametrize("alpha", [None, 0.9])
def test_matrix_symmetric_positive_definite(alpha):
    v, f = _sphere(1)
    M = smoothing_matrix(v, f, lambda_=19.0, alpha=alpha).to_dense()
    assert M.dtype == F64 and M.shape == (42, 42)
    assert torch.equal(M, M.T)
    eig = torch.linalg.eigvalsh(M)
    lower = 1.0 if alpha is None else 1.0 - alpha  # L is PSD, so the identity term bounds the spectrum
    assert float(eig.min()) >= lower - 1e-9
    L = uniform_laplacian(f, 42, dtype=F64).to_dense()
    want = torch.eye(42, dtype=F64) + 19.0 * L if alpha is None else (1 - alpha) * torch.eye(42, dtype=F64) + alpha * L
    torch.testing.assert_close(M, want, rtol=0, atol=1e-12)


def test_matrix_isolated_vertex_and_open_mesh():
    v = torch.zeros(5, 3, dtype=F64)  # vertex 4 is in no face
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    M = smoothing_matrix(v, f, lambda_=2.0).to_dense()
    assert M[4].tolist() == [0, 0, 0, 0, 1]
    assert M[0, 0] == 1 + 2 * 3 and M[1, 3] == 0 and M[0, 1] == -2


# --------------------------------------------------------------------------------------------- the solvers

def test_roundtrip_dense_and_cg_agree():
    v, f = _sphere(2)
    v = v + 0.05 * torch.randn(v.shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    M = smoothing_matrix(v, f)
    u = to_differential(v, M)
    torch.testing.assert_close(u, M.to_dense() @ v)
    dense = SmoothingSolver(M, method="cholesky")
    cg = SmoothingSolver(M, method="cg", rtol=1e-13)
    x_dense = from_differential(u, dense)
    x_cg = from_differential(u, cg)
    assert dense.method == "cholesky" and cg.method == "cg" and cg.last_iterations > 0
    torch.testing.assert_close(x_dense, v, rtol=0, atol=1e-12)
    assert float((x_dense - x_cg).abs().max()) < 1e-8
    # default CG tolerance (1e-7 relative residual) still recovers the mesh closely
    torch.testing.assert_close(SmoothingSolver(M, method="cg").solve(u), v, rtol=0, atol=1e-6)


def test_auto_method_threshold():
    v, f = _sphere(1)
    M = smoothing_matrix(v, f)
    assert SmoothingSolver(M).method == "cholesky"
    assert SmoothingSolver(M, dense_max_verts=10).method == "cg"
    v4, f4 = _sphere(4)  # V = 2562: sparse CG is the faster CPU default there
    assert SmoothingSolver(smoothing_matrix(v4, f4)).method == "cg"


def test_float32_and_batch_dims():
    v, f = _sphere(1)
    M = smoothing_matrix(v.float(), f)
    u = torch.randn(2, 42, 3)
    for method in ("cholesky", "cg"):
        s = SmoothingSolver(M, method=method)
        x = from_differential(u, s)
        assert x.shape == u.shape and x.dtype == torch.float32
        for b in range(2):
            torch.testing.assert_close(x[b], s.solve(u[b]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(to_differential(x, M), u, rtol=1e-4, atol=1e-4)
    x1 = SmoothingSolver(M).solve(u[0, :, 0])
    assert x1.shape == (42,)


def test_gradcheck_dense_and_cg():
    v, f = icosphere(0, dtype=F64)
    M = smoothing_matrix(v, f, lambda_=3.0)
    u = torch.randn(12, 3, dtype=F64, requires_grad=True)
    # CG warm-starts from its previous solution, so repeated backwards agree to rtol, not bitwise
    cases = ((SmoothingSolver(M, method="cholesky"), 0.0), (SmoothingSolver(M, method="cg", rtol=1e-14), 1e-12))
    for solver, tol in cases:
        assert torch.autograd.gradcheck(lambda x: from_differential(x, solver), (u,), nondet_tol=tol)
        assert torch.autograd.gradgradcheck(lambda x: from_differential(x, solver) ** 2, (u,), nondet_tol=tol)
    vv = torch.randn(12, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: to_differential(x, M), (vv,))


def test_backward_is_a_solve_with_the_same_matrix():
    v, f = _sphere(1)
    M = smoothing_matrix(v, f)
    u = torch.randn(42, 3, dtype=F64, requires_grad=True)
    g = torch.randn(42, 3, dtype=F64)
    (from_differential(u, M) * g).sum().backward()
    torch.testing.assert_close(u.grad, torch.linalg.solve(M.to_dense(), g))


def test_cg_raises_when_max_iter_too_small():
    v, f = _sphere(2)
    M = smoothing_matrix(v, f)
    u = to_differential(v, M)
    with pytest.raises(ConvergenceError, match="max_iter=2"):
        SmoothingSolver(M, method="cg", max_iter=2).solve(u)


def test_cg_warm_start_saves_iterations():
    v, f = _sphere(3)
    M = smoothing_matrix(v, f)
    u = to_differential(v, M)
    s = SmoothingSolver(M, method="cg")
    s.solve(u, key="forward")
    cold = s.last_iterations
    s.solve(u * 1.001, key="forward")
    warm = s.last_iterations
    s.solve(u * 1.001)  # no key: cold start
    assert warm < cold and s.last_iterations == cold


def test_solver_cache():
    v, f = _sphere(1)
    M = smoothing_matrix(v, f)
    assert solver_for(M) is solver_for(M)
    assert solver_for(M) is not solver_for(M, method="cg")
    assert solver_for(M) is not solver_for(smoothing_matrix(v, f))


def test_large_steps_container_and_reset():
    v, f = _sphere(1)
    ls = LargeSteps(v, f, lambda_=10.0)
    assert ls.parameter.is_leaf and ls.parameter.requires_grad and ls.parameter.shape == (42, 3)
    torch.testing.assert_close(ls.verts(), v, rtol=0, atol=1e-12)
    ls.verts().sum().backward()
    assert ls.parameter.grad is not None and ls.parameter.grad.shape == (42, 3)
    v2, f2 = subdivide_midpoint(ls.verts().detach(), ls.faces)
    p = ls.reset(v2, f2)
    assert p is ls.parameter and p.shape == (162, 3) and ls.matrix.shape == (162, 162)
    torch.testing.assert_close(ls.verts(), v2, rtol=0, atol=1e-12)
    assert LargeSteps(v, f, method="cg").solver.method == "cg"


@pytest.mark.parametrize("kwargs, match", [
    (dict(lambda_=0.0), "lambda_"), (dict(lambda_=-1.0), "lambda_"), (dict(lambda_=float("nan")), "lambda_"),
    (dict(alpha=1.0), "alpha"), (dict(alpha=-0.1), "alpha"),
])
def test_bad_parameters(kwargs, match):
    v, f = _sphere(0)
    with pytest.raises(ValueError, match=match):
        smoothing_matrix(v, f, **kwargs)


def test_bad_inputs():
    v, f = _sphere(0)
    with pytest.raises(ValueError, match="faces"):
        smoothing_matrix(v, torch.tensor([[0, 1, 12]]))
    bad = v.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="verts"):
        smoothing_matrix(bad, f)
    with pytest.raises(ValueError, match="verts"):
        LargeSteps(bad, f)
    M = smoothing_matrix(v, f)
    with pytest.raises(ValueError, match="u"):
        from_differential(torch.full((12, 3), float("nan"), dtype=F64), M)
    with pytest.raises(ValueError, match="u"):
        from_differential(torch.zeros(11, 3, dtype=F64), M)
    with pytest.raises(ValueError, match="positive definite"):
        SmoothingSolver(-M.to_dense(), method="cholesky")
    with pytest.raises(ValueError, match="positive definite"):
        SmoothingSolver(-M, method="cg")
    with pytest.raises(ValueError, match="method"):
        SmoothingSolver(M, method="lu")
    with pytest.raises(ValueError, match="max_iter"):
        SmoothingSolver(M, max_iter=0)


# ------------------------------------------------------------------------------------------- AdamUniform

def _adam_uniform_ref(p, grads, lr, b1, b2, eps):
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (torch.sqrt(v.max() / (1 - b2 ** t)) + eps)
    return p


def test_adam_uniform_matches_formula_and_keeps_gradient_direction():
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(7, 3, dtype=F64, generator=gen)
    grads = [torch.randn(7, 3, dtype=F64, generator=gen) for _ in range(5)]
    p = torch.nn.Parameter(p0.clone())
    opt = AdamUniform([p], lr=0.05, betas=(0.8, 0.99), eps=1e-8)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p.detach(), _adam_uniform_ref(p0, grads, 0.05, 0.8, 0.99, 1e-8))
    # one step with a fresh optimiser is exactly -lr * g / max|g|: the gradient direction, not sign(g)
    q = torch.nn.Parameter(p0.clone())
    q.grad = grads[0].clone()
    AdamUniform([q], lr=0.1).step()
    torch.testing.assert_close(q.detach() - p0, -0.1 * grads[0] / grads[0].abs().max(), rtol=1e-6, atol=1e-9)


def test_adam_uniform_state_dict_round_trip():
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(20, 3, generator=gen)

    def train(p, opt, n):
        for _ in range(n):
            opt.zero_grad()
            ((p - target) ** 4).sum().backward()
            opt.step()

    p = torch.nn.Parameter(torch.zeros(20, 3))
    opt = AdamUniform([p], lr=0.02)
    train(p, opt, 5)
    buf = io.BytesIO()
    torch.save({"p": p.detach().clone(), "opt": opt.state_dict()}, buf)
    train(p, opt, 5)

    buf.seek(0)
    ckpt = torch.load(buf)
    p2 = torch.nn.Parameter(ckpt["p"])
    opt2 = AdamUniform([p2], lr=0.5)  # hyper-parameters come back from the checkpoint too
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.param_groups[0]["lr"] == 0.02 and opt2.state[p2]["step"] == 5
    train(p2, opt2, 5)
    assert torch.equal(p2.detach(), p.detach())
    assert copy.deepcopy(opt2.state_dict())["state"][0]["step"] == 10


def test_adam_uniform_bad_arguments_and_zero_grad():
    p = torch.nn.Parameter(torch.ones(3))
    for kwargs, name in ((dict(lr=-1.0), "lr"), (dict(betas=(0.9, 1.0)), "betas"), (dict(eps=-1.0), "eps")):
        with pytest.raises(ValueError, match=name):
            AdamUniform([p], **kwargs)
    opt = AdamUniform([p], lr=0.1, eps=0.0)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))


# ----------------------------------------------------------------------------- why large steps: a toy fit

def test_large_steps_fit_is_faster_to_tolerance_and_smoother():
    """Fit a sphere to a noisy ellipsoid with a per-vertex L2 loss; measure the error to the *clean* ellipsoid.

    Plain Adam on ``v`` converges to the noisy target (error about the noise level, rough surface); Adam-
    Uniform on ``u = (I + 19 L) v`` fits low frequencies first and stays smooth, so it gets well below the
    noise level. Measured (icosphere(3), V = 642, noise 0.03 along the normal, 150 steps): Adam (lr 0.03)
    reaches error 0.05 in 32 steps with roughness 0.037 (2.5x the clean surface's 0.0149), never 0.02, and
    ends at error 0.0239 / roughness 0.0296; large steps (lr 0.03) reaches 0.05 in 40 steps, 0.02 in 47 with
    roughness 0.0146, and ends at error 0.0062 / roughness 0.0146.
    """
    v0, f = icosphere(3, dtype=F64)
    V = v0.shape[0]
    scale = torch.tensor([1.5, 1.0, 0.6], dtype=F64)
    clean = v0 * scale
    normal = torch.nn.functional.normalize(clean / scale ** 2, dim=1)
    torch.manual_seed(0)
    noise = 0.03 * torch.randn(V, 1, dtype=F64) * normal
    target = clean + noise
    L = uniform_laplacian(f, V, dtype=F64)
    deg = L.to_dense().diagonal()

    def roughness(v):  # mean distance from a vertex to the centroid of its neighbours
        return float(((L @ v).norm(dim=1) / deg).mean())

    def error(v):
        return float((v - clean).norm(dim=1).mean())

    def fit(large_steps, steps=150, tol=0.02):
        if large_steps:
            ls = LargeSteps(v0, f, lambda_=19.0)
            opt, get = AdamUniform([ls.parameter], lr=0.03), ls.verts
        else:
            p = torch.nn.Parameter(v0.clone())
            opt, get = torch.optim.Adam([p], lr=0.03), (lambda: p)
        hit = None
        for it in range(steps):
            loss = ((get() - target) ** 2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                v = get().detach()
                if hit is None and error(v) < tol:
                    hit = (it + 1, roughness(v))
        return hit, error(v), roughness(v)

    noise_err, clean_rough = float(noise.norm(dim=1).mean()), roughness(clean)
    adam_hit, adam_err, adam_rough = fit(False)
    ls_hit, ls_err, ls_rough = fit(True)
    assert adam_hit is None and adam_err > 0.9 * noise_err and adam_rough > 1.7 * clean_rough
    assert ls_hit is not None and ls_hit[0] <= 80 and ls_hit[1] < 1.1 * clean_rough
    assert ls_err < 0.4 * noise_err and ls_rough < 1.1 * clean_rough
