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
    """``d distort / d xy`` as ``[..., 2, 2]`` (rows: output x, y); points are independent, so two
    reverse-mode passes of the summed outputs give every point's Jacobian rows."""
    with torch.enable_grad():
        p = xy.detach().requires_grad_(True)
        out = _distort(p, coeffs.detach(), model)
        rows = [torch.autograd.grad(out[..., k].sum(), p, retain_graph=k == 0)[0] for k in range(2)]
    return torch.stack(rows, -2)


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
    target = xy_distorted.detach()
    c = coeffs.detach()
    p = target.clone()
    for _ in range(iterations):
        J = distortion_jacobian(p, c, model)
        residual = _distort(p, c, model) - target
        if float(residual.abs().max()) < tol:
            break
        det = J[..., 0, 0] * J[..., 1, 1] - J[..., 0, 1] * J[..., 1, 0]
        if bool((det.abs() < 1e-12).any()):
            raise ValueError("undistort: the distortion model folds (singular Jacobian) at some points; "
                             "check coeffs or restrict the points to the valid image region")
        p = p - torch.linalg.solve(J, residual[..., None])[..., 0]
    residual = _distort(p, c, model) - target
    if not bool(torch.isfinite(p).all()) or float(residual.abs().max()) > 1e-6:
        raise ValueError("undistort did not converge: the distortion is not invertible for these points "
                         "(the radial model folds inside the image)")
    J = distortion_jacobian(p, c, model)
    step = _distort(p, coeffs, model) - xy_distorted  # zero in value; carries the gradients
    return p - torch.linalg.solve(J, step[..., None])[..., 0]


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
