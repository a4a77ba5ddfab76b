"""Pressure projection: the divergence-free part of a velocity grid, by conjugate gradients.

**Discretisation.** Collocated vertices, central differences with zero outside the grid:
``(G p)_a = (p[i + e_a] - p[i - e_a]) / (2 dx)`` and ``div u = sum_a (u_a[i + e_a] - u_a[i - e_a]) / (2 dx)``
(``u = 0`` and ``p = 0`` beyond the boundary: closed walls for the velocity). With this choice
``div = -G^T`` exactly, so the pressure equation ``G^T G p = G^T u`` is symmetric positive semi-definite and
the projected velocity ``P u = u - G p`` is the *orthogonal* projection onto ``ker(div)``:
``P = I - G (G^T G)^+ G^T``. ``P`` does not depend on ``dx``. The divergence left after the solve equals the
conjugate-gradient residual (``div(P u) = -(G^T u - G^T G p)``), so the returned residual is the relative
divergence reached. Central differences do not see the grid-scale checkerboard (it is in ``ker(div)``): that
mode is left untouched, as in any collocated solver without a staggered grid.

**Gradients.** ``P`` is self-adjoint, so the vector-Jacobian product of the projection is one more projection
of the cotangent (an adjoint / implicit solve): memory is one grid, independent of the number of CG
iterations, and the gradient is exact to the same tolerance as the forward solve. Differentiating through
the CG iterations instead would store every iterate and be exact only for the truncated iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._checks import check_number, check_positive_int, check_tensor
from .grid import spatial_dims

__all__ = ["PressureSolve", "divergence", "pressure_gradient", "project", "project_ref", "project_with_info"]

#: Default relative residual (``|div P u| / |div u|``) at which CG stops, and its iteration cap.
DEFAULT_TOL = 1e-6
DEFAULT_MAX_ITERS = 400


class PressureSolve(NamedTuple):
    """What :func:`project_with_info` reports: ``iterations`` run and the relative ``residual`` reached
    (``|div(P u)| / |div u|``, 0 when ``u`` had no divergence)."""

    velocity: torch.Tensor
    iterations: int
    residual: float


def _central(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``(x[i + 1] - x[i - 1]) / 2`` along ``dim`` with zeros outside."""
    pad = torch.zeros_like(x.narrow(dim, 0, 1))
    padded = torch.cat([pad, x, pad], dim=dim)
    n = x.shape[dim]
    return 0.5 * (padded.narrow(dim, 2, n) - padded.narrow(dim, 0, n))


def divergence(velocity: torch.Tensor, dx: float = 1.0) -> torch.Tensor:
    """Central-difference divergence ``[*S]`` of ``velocity [*S, d]`` (zero velocity outside the grid).

    **Differentiability:** linear in ``velocity``.
    """
    d = spatial_dims(velocity)
    dx = check_number(dx, "dx", lo=0.0, lo_open=True)
    return _divergence(velocity, d) / dx


def pressure_gradient(pressure: torch.Tensor, dx: float = 1.0) -> torch.Tensor:
    """Central-difference gradient ``[*S, d]`` of ``pressure [*S]`` (zero pressure outside the grid).

    **Differentiability:** linear in ``pressure``.
    """
    check_tensor(pressure, "pressure", floating=True)
    if pressure.dim() not in (2, 3):
        raise ValueError(f"pressure must have shape [H, W] or [D, H, W]; got {tuple(pressure.shape)}")
    dx = check_number(dx, "dx", lo=0.0, lo_open=True)
    return _gradient(pressure) / dx


def _divergence(u: torch.Tensor, d: int) -> torch.Tensor:
    # component a (x, y, z) varies along tensor axis d - 1 - a
    return sum(_central(u[..., a], d - 1 - a) for a in range(d))


def _gradient(p: torch.Tensor) -> torch.Tensor:
    d = p.dim()
    return torch.stack([_central(p, d - 1 - a) for a in range(d)], dim=-1)


@torch.no_grad()
def _solve(u: torch.Tensor, tol: float, max_iters: int):
    """CG on ``G^T G p = G^T u`` (``G^T u = -div u``); returns ``(P u, iterations, relative residual)``."""
    d = u.shape[-1]
    b = -_divergence(u, d)
    b_norm = float(torch.linalg.vector_norm(b))
    if b_norm == 0.0:
        return u.clone(), 0, 0.0
    p = torch.zeros_like(b)
    r = b.clone()
    z = r.clone()
    rr = torch.sum(r * r)
    k = 0
    for k in range(1, max_iters + 1):
        Az = -_divergence(_gradient(z), d)
        alpha = rr / torch.sum(z * Az)
        p = p + alpha * z
        r = r - alpha * Az
        rr_new = torch.sum(r * r)
        if float(rr_new.sqrt()) <= tol * b_norm:
            rr = rr_new
            break
        z = r + (rr_new / rr) * z
        rr = rr_new
    out = u - _gradient(p)
    residual = float(torch.linalg.vector_norm(_divergence(out, d))) / b_norm
    return out, k, residual


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, tol, max_iters):
        ctx.tol, ctx.max_iters = tol, max_iters
        out, iterations, residual = _solve(u, tol, max_iters)
        ctx.info = (iterations, residual)
        return out

    @staticmethod
    def backward(ctx, v_out):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        v_u, _, _ = _solve(v_out, ctx.tol, ctx.max_iters)  # P is self-adjoint: the vjp is one more projection
        return v_u, None, None


def project(velocity: torch.Tensor, *, tol: float = DEFAULT_TOL, max_iters: int = DEFAULT_MAX_ITERS) -> torch.Tensor:
    """The divergence-free part of ``velocity`` (module doc): ``P u = u - G p`` with ``G^T G p = G^T u``.

    Args:
        velocity: ``[D, H, W, 3]`` or ``[H, W, 2]`` float, finite.
        tol: CG stops once ``|div(P u)| <= tol * |div u|``.
        max_iters: CG iteration cap (the residual reached is reported by :func:`project_with_info`).

    Returns:
        ``[*S, d]`` projected velocity.

    **Differentiability:** w.r.t. ``velocity`` by the adjoint solve (``P^T = P``: the cotangent is projected
    with the same ``tol`` / ``max_iters``); no iterate is stored.

    Example: a uniform flow into a closed box has its interior kept and its wall-normal flux removed::

        >>> u = torch.zeros(8, 8, 2); u[..., 0] = 1.0
        >>> float(divergence(project(u, tol=1e-10)).abs().max()) < 1e-5  # float32 round-off
        True
    """
    return project_with_info(velocity, tol=tol, max_iters=max_iters).velocity


def project_with_info(velocity: torch.Tensor, *, tol: float = DEFAULT_TOL,
                      max_iters: int = DEFAULT_MAX_ITERS) -> PressureSolve:
    """:func:`project` returning also the CG iterations and relative residual reached (:class:`PressureSolve`)."""
    spatial_dims(velocity)
    check_tensor(velocity, "velocity", floating=True, finite=True)
    tol = check_number(tol, "tol", lo=0.0, lo_open=True)
    max_iters = check_positive_int(max_iters, "max_iters")
    return project_unchecked(velocity, tol, max_iters)


def project_unchecked(velocity: torch.Tensor, tol: float = DEFAULT_TOL,
                      max_iters: int = DEFAULT_MAX_ITERS) -> PressureSolve:
    """:func:`project_with_info` without checks."""
    if not (torch.is_grad_enabled() and velocity.requires_grad):
        return PressureSolve(*_solve(velocity, tol, max_iters))
    out = _Project.apply(velocity, tol, max_iters)
    return PressureSolve(out, *out.grad_fn.info)  # the autograd node is the Function's ctx


def project_ref(velocity: torch.Tensor) -> torch.Tensor:
    """Float64 reference of :func:`project` for tiny grids: the dense matrix ``I - G G^+`` applied to ``u``.

    ``G`` (the dense pressure-gradient matrix) is built column by column; ``G G^+`` is the orthogonal projector
    onto its range (``torch.linalg.pinv``), so ``u - G G^+ u`` is the exact divergence-free part.
    """
    S = velocity.shape[:-1]
    n = int(torch.tensor(S).prod())
    eye = torch.eye(n, dtype=torch.float64, device=velocity.device)
    G = torch.stack([_gradient(eye[k].reshape(S)).reshape(-1) for k in range(n)], dim=1)  # [n * d, n]
    u = velocity.double().reshape(-1)
    return (u - G @ (torch.linalg.pinv(G) @ u)).reshape(velocity.shape)
