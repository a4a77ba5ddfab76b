"""Large-steps geometry optimisation (Nicolet, Jacobson and Jakob, "Large Steps in Inverse Rendering of
Geometry", SIGGRAPH Asia 2021).

Instead of optimising vertex positions ``v [V, 3]`` directly, optimise ``u = M v`` with the smoothing matrix
``M = I + lambda L`` (``L = D - A``, the uniform graph Laplacian of the mesh) and recover ``v = M^{-1} u``
every step. A gradient step on ``u`` moves ``v`` by ``M^{-1}`` applied to (roughly) ``M^{-1}`` times the
vertex gradient: high spatial frequencies are damped by about ``(1 + lambda mu)^2`` for a Laplacian
eigenvalue ``mu``, so sparse, noisy gradients (silhouettes, a few pixels) move whole smooth patches instead
of single vertices and large steps stay free of self-intersections and spikes. Pair it with
:class:`~lumigrad.optim.AdamUniform`, whose step is the gradient direction (no per-coordinate rescaling
that would undo the smoothing).

``M`` is symmetric positive definite: ``L = sum over edges (e_a - e_b)(e_a - e_b)^T`` is symmetric
positive semi-definite (``x^T L x = sum_edges (x_a - x_b)^2 >= 0``), so for ``lambda > 0`` every
eigenvalue of ``I + lambda L`` is ``>= 1`` (and of ``(1 - alpha) I + alpha L`` is ``>= 1 - alpha > 0``).
That makes Cholesky and conjugate gradients applicable and makes the backward of ``v = M^{-1} u`` another
solve with the same matrix (``M^{-T} = M^{-1}``).

Solvers (:class:`SmoothingSolver`):

* ``"cholesky"``: dense factorisation of ``M`` in float64, O(V^3 / 3) once and O(V^2) memory, then
  O(V^2 C) per solve (two triangular solves). Exact to rounding and never fails for an SPD ``M``.
  ``method="auto"`` picks it up to ``dense_max_verts`` vertices: 1500 on CPU, 4000 elsewhere (128 MB of
  float64 factor). Measured on one CPU core (float32 mesh, forward + backward solve per step):
  V = 642: Cholesky 16 ms setup, 2.6 ms per step vs CG 12 ms per step; V = 2562: Cholesky 0.4 s setup,
  97 ms per step vs CG 28 ms per step (53 iterations per solve), hence the lower CPU threshold. The GPU
  threshold follows the usual advice (dense triangular solves are cheap there, CG syncs every iteration)
  and is not measured here.
* ``"cg"``: Jacobi-preconditioned conjugate gradients on the sparse CSR matrix (CPU and CUDA), float64
  accumulations, warm-started from the previous solution of the same kind (forward / backward),
  O(iterations x (nnz + V) x C) per solve with ``nnz ~ 7 V``. Raises :class:`ConvergenceError` when the
  relative residual is not below ``rtol`` after ``max_iter`` iterations.
"""

from __future__ import annotations

import math
import warnings
import weakref
from typing import Dict, Literal, Optional, Tuple, Union

import torch

from .._checks import check_choice, check_indices, check_tensor
from ..geometry.laplacian import uniform_laplacian

__all__ = [
    "ConvergenceError",
    "SmoothingSolver",
    "LargeSteps",
    "from_differential",
    "smoothing_matrix",
    "solver_for",
    "to_differential",
]

DENSE_MAX_VERTS = {"cpu": 1500, "other": 4000}


class ConvergenceError(RuntimeError):
    """Conjugate gradients did not reach the requested tolerance within ``max_iter`` iterations."""


def _check_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if not (isinstance(value, torch.Tensor) and value.numel() == 1):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return value


def smoothing_matrix(verts: torch.Tensor, faces: torch.Tensor, lambda_: float = 19.0,
                     alpha: Optional[float] = None) -> torch.Tensor:
    """Build the sparse smoothing matrix ``M = I + lambda_ L`` (or ``(1 - alpha) I + alpha L``).

    ``L = D - A`` is the uniform (combinatorial) Laplacian of the mesh edges: ``L[i, i]`` is the number of
    neighbours of vertex ``i`` and ``L[i, j] = -1`` for every edge ``(i, j)``. ``M`` is symmetric positive
    definite (see the module docstring). Isolated vertices get the row of ``I``. Cost: O(F log F).

    Args:
        verts: vertex positions ``[V, 3]``, floating; only ``V``, dtype and device are used.
        faces: ``[F, 3]`` integer vertex indices.
        lambda_: smoothing strength, ``> 0`` (the paper uses 10 to 100; 19 is a common default).
        alpha: when given, use the paper's convex form ``(1 - alpha) I + alpha L`` with ``0 <= alpha < 1``
            instead (``lambda_`` is then ignored; ``alpha / (1 - alpha)`` plays its role).

    Returns:
        ``M``: sparse COO ``[V, V]``, coalesced, ``verts``' dtype and device.

    **Differentiability:** none; ``M`` depends on connectivity only.

    Example:
        >>> v = torch.zeros(3, 3)
        >>> smoothing_matrix(v, torch.tensor([[0, 1, 2]]), lambda_=1.0).to_dense()
        tensor([[ 3., -1., -1.],
                [-1.,  3., -1.],
                [-1., -1.,  3.]])
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    V = verts.shape[0]
    if V == 0:
        raise ValueError("verts must hold at least one vertex; got an empty mesh")
    check_indices(faces, "faces", V)
    if alpha is None:
        lam = _check_number(lambda_, "lambda_")
        if lam <= 0:
            raise ValueError(f"lambda_ must be > 0; got {lam}")
        c_eye, c_lap = 1.0, lam
    else:
        a = _check_number(alpha, "alpha")
        if not 0.0 <= a < 1.0:
            raise ValueError(f"alpha must lie in [0, 1); got {a}")
        c_eye, c_lap = 1.0 - a, a
    L = uniform_laplacian(faces.long(), V, dtype=verts.dtype).coalesce().to(device=verts.device)
    idx = torch.arange(V, device=verts.device)
    indices = torch.cat([torch.stack([idx, idx]), L.indices()], dim=1)
    values = torch.cat([torch.full((V,), c_eye, dtype=verts.dtype, device=verts.device), c_lap * L.values()])
    return torch.sparse_coo_tensor(indices, values, (V, V), check_invariants=False).coalesce()


def _as_columns(x: torch.Tensor, n: int, name: str) -> Tuple[torch.Tensor, torch.Size]:
    """``[..., V, C]`` or ``[V]`` -> ``[V, K]`` plus what is needed to undo it."""
    if x.dim() == 1:
        if x.shape[0] != n:
            raise ValueError(f"{name} must have shape [..., {n}, C] or [{n}]; got {tuple(x.shape)}")
        return x[:, None], x.shape
    if x.shape[-2] != n:
        raise ValueError(f"{name} must have shape [..., {n}, C] or [{n}]; got {tuple(x.shape)}")
    return x.movedim(-2, 0).reshape(n, -1), x.shape


def _from_columns(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 1:
        return x[:, 0]
    moved = (shape[-2],) + tuple(shape[:-2]) + (shape[-1],)
    return x.reshape(moved).movedim(0, -2)


class SmoothingSolver:
    """Solve ``M x = b`` for one fixed sparse symmetric positive definite matrix ``M``.

    The factorisation (or the CSR copy and Jacobi preconditioner) is computed once at construction and
    reused by every :meth:`solve`; build one solver per matrix (:func:`solver_for` caches them).

    Args:
        M: ``[V, V]`` sparse (COO or CSR) or dense SPD matrix, e.g. from :func:`smoothing_matrix`.
        method: ``"cholesky"`` (dense, float64), ``"cg"`` (sparse Jacobi-PCG, float64) or ``"auto"``
            (Cholesky when ``V <= dense_max_verts``).
        dense_max_verts: the ``"auto"`` threshold; default 1500 on CPU (where sparse CG is already faster
            per step at V = 2.5k) and 4000 on other devices (a 128 MB float64 factor).
        rtol: CG stops when ``||b - M x|| <= rtol ||b||`` for every column.
        max_iter: CG iteration limit (default 1000; ``M = I + 19 L`` typically needs 30 to 200).
        warm_start: start CG from the previous solution with the same ``key`` and shape.

    Attributes:
        method: the resolved method. ``last_iterations``: CG iterations of the latest solve (0 for Cholesky).
    """

    def __init__(self, M: torch.Tensor, method: Literal["auto", "cholesky", "cg"] = "auto",
                 dense_max_verts: Optional[int] = None, rtol: float = 1e-7, max_iter: int = 1000,
                 warm_start: bool = True):
        if not isinstance(M, torch.Tensor):
            raise TypeError(f"M must be a torch.Tensor; got {type(M).__name__}")
        if M.dim() != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
            raise ValueError(f"M must be a non-empty square matrix [V, V]; got {tuple(M.shape)}")
        if not M.dtype.is_floating_point:
            raise TypeError(f"M must have a floating dtype; got {M.dtype}")
        check_choice(method, "method", ("auto", "cholesky", "cg"))
        rtol = _check_number(rtol, "rtol")
        if rtol <= 0:
            raise ValueError(f"rtol must be > 0; got {rtol}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive int; got {max_iter!r}")
        self.n = M.shape[0]
        self.device = M.device
        if method == "auto":
            if dense_max_verts is None:
                dense_max_verts = DENSE_MAX_VERTS["cpu" if M.device.type == "cpu" else "other"]
            method = "cholesky" if self.n <= dense_max_verts else "cg"
        self.method = method
        self.rtol = rtol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.last_iterations = 0
        self._x0: Dict[str, torch.Tensor] = {}
        M64 = M.to(torch.float64)
        if method == "cholesky":
            dense = M64.to_dense() if M64.layout != torch.strided else M64.clone()
            if not torch.isfinite(dense).all():
                raise ValueError("M contains NaN or Inf values")
            factor, info = torch.linalg.cholesky_ex(dense)
            if int(info) != 0:
                raise ValueError("M is not symmetric positive definite (Cholesky failed at column "
                                 f"{int(info) - 1}); use lambda_ > 0 or 0 <= alpha < 1")
            self._factor = factor
        else:
            if M64.layout == torch.sparse_coo:
                M64 = M64.coalesce()
            elif M64.layout == torch.strided:
                M64 = M64.to_sparse()
            with warnings.catch_warnings():  # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                csr = M64.to_sparse_csr() if M64.layout != torch.sparse_csr else M64.clone()
            if not torch.isfinite(csr.values()).all():
                raise ValueError("M contains NaN or Inf values")
            diag = _csr_diagonal(csr)
            if not bool((diag > 0).all()):
                raise ValueError("M is not positive definite: its diagonal has entries <= 0")
            self._csr = csr
            self._inv_diag = 1.0 / diag

    def solve(self, b: torch.Tensor, key: Optional[str] = None) -> torch.Tensor:
        """Return ``x = M^{-1} b`` for ``b [..., V, C]`` or ``[V]``, in ``b``'s dtype.

        ``key`` names a stream of related right-hand sides (e.g. ``"forward"``) whose previous solution
        warm-starts CG; ``None`` starts from zero. Not differentiable (see :func:`from_differential`).
        """
        check_tensor(b, "b", min_dims=1, floating=True, finite=True, device=self.device)
        cols, shape = _as_columns(b, self.n, "b")
        rhs = cols.detach().to(torch.float64)
        if self.method == "cholesky":
            x = torch.cholesky_solve(rhs, self._factor)
            self.last_iterations = 0
        else:
            x0 = self._x0.get(key) if (key is not None and self.warm_start) else None
            if x0 is not None and x0.shape != rhs.shape:
                x0 = None
            x, self.last_iterations = self._cg(rhs, x0)
            if key is not None and self.warm_start:
                self._x0[key] = x
        return _from_columns(x.to(b.dtype), shape)

    def _cg(self, b: torch.Tensor, x0: Optional[torch.Tensor]) -> Tuple[torch.Tensor, int]:
        A, Dinv = self._csr, self._inv_diag[:, None]
        bnorm = b.norm(dim=0)
        # a zero right-hand side has the exact solution zero (a warm start would never reach rtol * 0)
        x = torch.zeros_like(b) if x0 is None else torch.where(bnorm > 0, x0, torch.zeros_like(x0))
        thresh = self.rtol * bnorm
        r = b - A @ x if x0 is not None else b.clone()
        z = Dinv * r
        p = z.clone()
        rz = (r * z).sum(0)
        zero = torch.zeros_like(rz)
        for it in range(self.max_iter + 1):
            rnorm = r.norm(dim=0)
            if bool((rnorm <= thresh).all()):
                return x, it
            if it == self.max_iter:
                break
            active = rnorm > thresh  # converged columns are frozen (alpha = beta = 0)
            Ap = A @ p
            pAp = (p * Ap).sum(0)
            ok = active & (pAp > 0)
            a = torch.where(ok, rz / torch.where(ok, pAp, torch.ones_like(pAp)), zero)
            x = x + a * p
            r = r - a * Ap
            z = Dinv * r
            rz_new = (r * z).sum(0)
            ok = active & (rz > 0)
            beta = torch.where(ok, rz_new / torch.where(ok, rz, torch.ones_like(rz)), zero)
            p = z + beta * p
            rz = rz_new
        worst = float((rnorm / bnorm.clamp_min(1e-300)).max())
        raise ConvergenceError(f"conjugate gradients did not converge in max_iter={self.max_iter} iterations: "
                               f"relative residual {worst:.3g} > rtol={self.rtol:g}; raise max_iter or rtol")


def _csr_diagonal(csr: torch.Tensor) -> torch.Tensor:
    crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
    n = csr.shape[0]
    rows = torch.repeat_interleave(torch.arange(n, device=csr.device), crow[1:] - crow[:-1])
    on_diag = rows == col
    return torch.zeros(n, dtype=val.dtype, device=val.device).index_add_(0, rows[on_diag], val[on_diag])


_SOLVERS: Dict[tuple, tuple] = {}


def solver_for(M: torch.Tensor, **options) -> SmoothingSolver:
    """Return the cached :class:`SmoothingSolver` of ``M`` (built on first use; dropped when ``M`` is freed).

    ``options`` are :class:`SmoothingSolver`'s keyword arguments and are part of the cache key.
    """
    key = (id(M), tuple(sorted(options.items())))
    hit = _SOLVERS.get(key)
    if hit is not None and hit[0]() is M:
        return hit[1]
    solver = SmoothingSolver(M, **options)
    ref = weakref.ref(M, lambda _ref, key=key: _SOLVERS.pop(key, None))
    _SOLVERS[key] = (ref, solver)
    return solver


def to_differential(verts: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Map vertex positions to the differential parameterisation ``u = M v``.

    Args:
        verts: ``[..., V, C]`` vertex positions (``C = 3``) or ``[V]``, floating.
        M: ``[V, V]`` smoothing matrix from :func:`smoothing_matrix` (sparse or dense).

    Returns:
        ``u`` with ``verts``' shape and dtype. Cost: O(nnz(M) C).

    **Differentiability:** linear in ``verts`` (gradient ``M^T g = M g``); ``M`` gets no gradient.
    """
    check_tensor(verts, "verts", min_dims=1, floating=True, finite=True)
    if not isinstance(M, torch.Tensor) or M.dim() != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square [V, V] matrix; got {getattr(M, 'shape', type(M).__name__)}")
    cols, shape = _as_columns(verts, M.shape[0], "verts")
    Mx = M.detach().to(device=verts.device, dtype=verts.dtype)
    return _from_columns(Mx @ cols, shape)


class _Solve(torch.autograd.Function):
    """``x = M^{-1} u``; backward is ``M^{-1} g`` (``M`` symmetric), itself a ``_Solve`` for double backward."""

    @staticmethod
    def forward(ctx, u, solver, key):
        ctx.solver = solver
        ctx.key = key
        return solver.solve(u, key=key)

    @staticmethod
    def backward(ctx, v_out):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        back_key = "backward" if ctx.key == "forward" else "forward"
        return _Solve.apply(v_out.contiguous(), ctx.solver, back_key), None, None


def from_differential(u: torch.Tensor, solver: Union[SmoothingSolver, torch.Tensor]) -> torch.Tensor:
    """Map the differential parameterisation back to vertex positions: ``v = M^{-1} u``.

    Args:
        u: ``[..., V, C]`` (or ``[V]``) differential coordinates, floating, e.g. ``LargeSteps.parameter``.
        solver: a :class:`SmoothingSolver` of ``M``, or ``M`` itself (its solver comes from
            :func:`solver_for`, built once per matrix).

    Returns:
        ``v`` with ``u``'s shape and dtype. Cost: one solve (see :class:`SmoothingSolver`).

    **Differentiability:** linear in ``u``; the backward is one more solve with the same matrix,
    ``dL/du = M^{-1} dL/dv`` (``M`` is symmetric), and is itself differentiable (double backward works).
    With ``"cg"`` gradients are exact up to ``rtol``. ``M`` gets no gradient.

    Example:
        >>> M = smoothing_matrix(torch.zeros(3, 3, dtype=torch.float64), torch.tensor([[0, 1, 2]]))
        >>> v = torch.rand(3, 3, dtype=torch.float64)
        >>> torch.allclose(from_differential(to_differential(v, M), M), v)
        True
    """
    if isinstance(solver, torch.Tensor):
        solver = solver_for(solver)
    if not isinstance(solver, SmoothingSolver):
        raise TypeError(f"solver must be a SmoothingSolver or a [V, V] matrix; got {type(solver).__name__}")
    check_tensor(u, "u", min_dims=1, floating=True, finite=True, device=solver.device)
    _as_columns(u, solver.n, "u")
    return _Solve.apply(u, solver, "forward")


class LargeSteps:
    """Hold a mesh's smoothing matrix, its solver and the trainable differential coordinates ``u = M v``.

    Typical loop::

        ls = LargeSteps(verts, faces, lambda_=19.0)
        opt = AdamUniform([ls.parameter], lr=1e-2)
        for it in range(n):
            loss = render_loss(ls.verts(), ls.faces)
            opt.zero_grad(); loss.backward(); opt.step()
            if it == n // 2:  # coarse to fine
                v, f = subdivide_midpoint(ls.verts().detach(), ls.faces)
                ls.reset(v, f); opt = AdamUniform([ls.parameter], lr=1e-2)

    Args:
        verts: initial positions ``[V, 3]``, floating (its dtype and device are kept).
        faces: ``[F, 3]`` integer vertex indices.
        lambda_, alpha: see :func:`smoothing_matrix`.
        **solver_options: :class:`SmoothingSolver` keyword arguments (``method``, ``rtol``, ...).

    Attributes:
        faces, matrix (``M``), solver, parameter (``u``, a leaf ``nn.Parameter`` ``[V, 3]``).

    **Differentiability:** :meth:`verts` is differentiable in ``parameter`` (see :func:`from_differential`).
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, lambda_: float = 19.0,
                 alpha: Optional[float] = None, **solver_options):
        self.lambda_ = lambda_
        self.alpha = alpha
        self.solver_options = solver_options
        self.reset(verts, faces)

    def reset(self, verts: torch.Tensor, faces: torch.Tensor) -> torch.nn.Parameter:
        """Start again from a new mesh (after remeshing or subdivision): rebuild ``M``, refactor, new ``u``.

        ``parameter`` is a new tensor (its shape may change), so build a new optimiser afterwards.
        Returns the new parameter.
        """
        self.matrix = smoothing_matrix(verts, faces, self.lambda_, self.alpha)
        self.solver = SmoothingSolver(self.matrix, **self.solver_options)
        self.faces = faces
        with torch.no_grad():
            u = to_differential(verts.detach(), self.matrix)
        self.parameter = torch.nn.Parameter(u)
        return self.parameter

    def verts(self) -> torch.Tensor:
        """Return the current vertex positions ``M^{-1} u``, ``[V, 3]``, differentiable in ``parameter``."""
        return from_differential(self.parameter, self.solver)
