"""Lens distortion models on normalized image coordinates, differentiable in points and coefficients.

Normalized coordinates are ``(x / z, y / z)`` in the camera frame (before ``K``). Two models:

* ``"opencv"`` (radial-tangential, OpenCV's order ``(k1, k2, p1, p2, k3)``): with ``r^2 = x^2 + y^2``,
  ``x' = x (1 + k1 r^2 + k2 r^4 + k3 r^6) + 2 p1 x y + p2 (r^2 + 2 x^2)``,
  ``y' = y (1 + k1 r^2 + k2 r^4 + k3 r^6) + p1 (r^2 + 2 y^2) + 2 p2 x y``.
* ``"fisheye"`` (Kannala-Brandt, OpenCV's fisheye, ``(k1, k2, k3, k4)``): with ``r = |(x, y)|`` and
  ``theta = atan(r)``, ``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)`` and
  ``(x', y') = (theta_d / r) (x, y)``.

:func:`undistort` inverts either model by Newton's method and is differentiable through the implicit
function theorem (its gradient is exact at the solution and does not unroll the iterations).
"""

from __future__ import annotations

from typing import Literal

import torch

from .._checks import check_choice, check_tensor
from ..kernels.lens import undistort_newton

MODELS = {"opencv": 5, "fisheye": 4}


def _check(xy: torch.Tensor, coeffs: torch.Tensor, model: str) -> None:
    check_choice(model, "model", tuple(MODELS))
    check_tensor(xy, "xy", trailing=(2,), floating=True, finite=True)
    check_tensor(coeffs, "coeffs", trailing=(MODELS[model],), floating=True, finite=True, device=xy.device)


def distort(xy: torch.Tensor, coeffs: torch.Tensor, model: Literal["opencv", "fisheye"] = "opencv") -> torch.Tensor:
    """Apply lens distortion to normalized coordinates ``xy [..., 2]``.

    Args:
        xy: undistorted normalized image coordinates ``[..., 2]``.
        coeffs: ``[..., 5]`` ``(k1, k2, p1, p2, k3)`` for ``"opencv"`` or ``[..., 4]`` ``(k1..k4)`` for
            ``"fisheye"``; leading dims broadcast with ``xy``'s leading dims (add a sample dim for images).
        model: ``"opencv"`` or ``"fisheye"``.

    Returns:
        distorted normalized coordinates ``[..., 2]``.

    **Differentiability:** smooth in ``xy`` and ``coeffs`` (the fisheye model uses a series near the centre).

    Example: ``distort(torch.tensor([0.5, 0.]), torch.tensor([0.1, 0., 0., 0., 0.]))`` gives
    ``0.5 * (1 + 0.1 * 0.25) = 0.5125`` in x.
    """
    _check(xy, coeffs, model)
    return _distort(xy, coeffs, model)


def _distort(xy, coeffs, model):
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    if model == "opencv":
        k1, k2, p1, p2, k3 = coeffs.unbind(-1)
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return torch.stack([xd, yd], -1)
    k1, k2, k3, k4 = coeffs.unbind(-1)
    small = r2 < 1e-12
    r = torch.where(small, torch.ones_like(r2), r2).sqrt()
    theta = torch.atan(r)
    # atan(r) / r = 1 - r^2 / 3 + ... near the centre, where the ratio's autograd would divide by zero.
    ratio = torch.where(small, 1 - r2 / 3, theta / r)
    t2 = torch.where(small, r2, theta * theta)
    scale = ratio * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    return xy * scale[..., None]


def distortion_jacobian(xy: torch.Tensor, coeffs: torch.Tensor, model: str) -> torch.Tensor:
    """``d distort / d xy`` as ``[..., 2, 2]`` (rows: output x, y), in closed form (no autograd graph).

    ``"opencv"``: differentiate the two polynomials directly. ``"fisheye"``: the map is ``xy * s(r)`` with
    ``s = theta_d(atan r) / r``, so ``J = s I + (s'(r) / r) xy xy^T``.
    """
    xy = xy.detach()
    coeffs = coeffs.detach()
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    if model == "opencv":
        k1, k2, p1, p2, k3 = coeffs.unbind(-1)
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
        j00 = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
        j01 = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
        j10 = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
        j11 = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
        return torch.stack([torch.stack([j00, j01], -1), torch.stack([j10, j11], -1)], -2)
    k1, k2, k3, k4 = coeffs.unbind(-1)
    small = r2 < 1e-12
    r = torch.where(small, torch.ones_like(r2), r2).sqrt()
    theta = torch.atan(r)
    t2 = theta * theta
    poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    dpoly = 2 * theta * (k1 + t2 * (2 * k2 + t2 * (3 * k3 + t2 * 4 * k4)))  # d poly / d theta
    scale = theta * poly / r
    # s'(r) = (d theta_d / d theta * d theta / d r - s) / r, with d theta / d r = 1 / (1 + r^2).
    dscale = ((poly + theta * dpoly) / (1 + r2) - scale) / r
    scale = torch.where(small, 1 + r2 * (k1 - 1.0 / 3.0), scale)
    coef = torch.where(small, 2 * (k1 - 1.0 / 3.0) * torch.ones_like(r2), dscale / r)
    eye = torch.eye(2, dtype=xy.dtype, device=xy.device)
    return scale[..., None, None] * eye + coef[..., None, None] * xy[..., :, None] * xy[..., None, :]


def fold_radius(coeffs: torch.Tensor, model: Literal["opencv", "fisheye"], max_radius: float = 20.0,
                samples: int = 4096) -> torch.Tensor:
    """Largest distorted radius ``[...]`` that the radial model reaches before it folds (stops growing).

    The distorted radius is followed from the centre out to undistorted radius ``max_radius`` (normalized
    units; 20 is 87 degrees off-axis): the result is the distorted radius where it first stops growing, or
    the one reached at ``max_radius`` (``inf`` when that exceeds ``1e6``). Every image point whose distorted
    normalized radius is below the result has exactly one undistorted preimage (tangential terms ignored).
    A fisheye model never exceeds about ``theta_d(pi / 2)``: directions beyond 90 degrees off-axis have no
    pinhole ray.
    """
    check_choice(model, "model", tuple(MODELS))
    check_tensor(coeffs, "coeffs", trailing=(MODELS[model],), floating=True, finite=True)
    flat = coeffs.detach().reshape(-1, MODELS[model]).double().clone()
    if model == "opencv":
        flat[:, 2:4] = 0  # tangential terms do not change the radial ordering
    r = torch.linspace(0, max_radius, samples, dtype=torch.float64, device=coeffs.device)
    pts = torch.stack([r, torch.zeros_like(r)], -1)
    rd = _distort(pts[None], flat[:, None], model)[..., 0]  # [C, samples]
    falling = rd[:, 1:] - rd[:, :-1] <= 0
    last = torch.full_like(falling[:, 0], samples - 1, dtype=torch.long)
    first = torch.where(falling.any(-1), falling.float().argmax(-1), last)
    out = rd.gather(1, first[:, None])[:, 0]
    out = torch.where(out > 1e6, torch.full_like(out, float("inf")), out)
    return out.reshape(coeffs.shape[:-1]).to(coeffs.dtype)


def undistort(xy_distorted: torch.Tensor, coeffs: torch.Tensor, model: Literal["opencv", "fisheye"] = "opencv",
              *, iterations: int = 20, tol: float = 1e-12) -> torch.Tensor:
    """Invert :func:`distort`: find ``xy`` with ``distort(xy, coeffs) = xy_distorted``.

    Newton's method from ``xy = xy_distorted`` (``iterations`` at most). Points where the model folds (its
    Jacobian is singular or the iteration does not converge) raise ``ValueError``.

    **Differentiability:** w.r.t. ``xy_distorted`` and ``coeffs`` by the implicit function theorem: with
    ``J = d distort / d xy`` at the solution, ``d xy / d xy_distorted = J^-1`` and
    ``d xy / d coeffs = -J^-1 d distort / d coeffs``. Implemented as one Newton step taken with autograd from
    the detached solution, whose derivatives are exactly these.
    """
    _check(xy_distorted, coeffs, model)
    shape = xy_distorted.shape
    flat_target = xy_distorted.detach().reshape(-1, 2)
    flat_coeffs = coeffs.detach().expand(shape[:-1] + coeffs.shape[-1:]).reshape(-1, coeffs.shape[-1])
    # Newton in a float64 kernel whatever the input dtype (float32 cannot reach the tolerance).
    p, status = undistort_newton(flat_target, flat_coeffs, model, iterations, tol)
    if bool((status == 1).any()):
        raise ValueError("undistort: the distortion model folds (singular Jacobian) at some points; "
                         "check coeffs or restrict the points to the valid image region")
    if bool((status != 0).any()) or not bool(torch.isfinite(p).all()):
        raise ValueError("undistort did not converge: the distortion is not invertible for these points "
                         "(the radial model folds inside the image)")
    p = p.to(xy_distorted.dtype).reshape(shape)
    if not (torch.is_grad_enabled() and (xy_distorted.requires_grad or coeffs.requires_grad)):
        return p
    J = distortion_jacobian(p, coeffs, model)
    step = _distort(p, coeffs, model) - xy_distorted  # zero in value; carries the gradients
    return p - _solve_2x2(J, step)[0]


def _solve_2x2(J: torch.Tensor, b: torch.Tensor):
    """``(J^-1 b [..., 2], invertible [...])`` for ``J [..., 2, 2]`` by Cramer's rule (differentiable in ``b``)."""
    a, bb, c, d = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]
    det = a * d - bb * c
    ok = det.abs() > 1e-12
    inv = 1 / torch.where(ok, det, torch.ones_like(det))
    x = (d * b[..., 0] - bb * b[..., 1]) * inv
    y = (a * b[..., 1] - c * b[..., 0]) * inv
    return torch.stack([x, y], -1), ok


def check_monotonic(coeffs: torch.Tensor, model: Literal["opencv", "fisheye"], max_radius: float,
                    samples: int = 512) -> None:
    """Raise ``ValueError`` if the radial distortion folds within normalized radius ``max_radius``.

    A model is usable only while the distorted radius grows with the undistorted one; beyond that, two
    scene points map to one pixel. (For ``"opencv"`` only the radial part is tested.)
    """
    check_choice(model, "model", tuple(MODELS))
    check_tensor(coeffs, "coeffs", trailing=(MODELS[model],), floating=True, finite=True)
    r = torch.linspace(0, max_radius, samples, dtype=coeffs.dtype, device=coeffs.device)
    flat = coeffs.reshape(-1, MODELS[model]).detach()
    pts = torch.stack([r, torch.zeros_like(r)], -1)
    for k in range(flat.shape[0]):
        c = flat[k].clone()
        if model == "opencv":
            c[2:4] = 0  # tangential terms do not change the radial ordering
        rd = _distort(pts, c.expand(samples, -1), model)[:, 0]
        if bool((rd[1:] - rd[:-1] <= 0).any()):
            first = float(r[1:][(rd[1:] - rd[:-1] <= 0)][0])
            raise ValueError(f"coeffs fold the image: the distorted radius stops growing at normalized radius "
                             f"{first:.3f} < {max_radius:.3f} (camera {k})")
