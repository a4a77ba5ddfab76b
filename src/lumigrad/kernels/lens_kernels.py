"""Newton inversion of the lens distortion models, one thread per point (no autograd: the gradient is the
implicit-function step taken in PyTorch, see ``cameras/distortion.py``).

Float64 throughout. ``model`` 0 is OpenCV radial-tangential ``(k1, k2, p1, p2, k3)``, 1 is Kannala-Brandt
fisheye ``(k1, k2, k3, k4)``. Status per point: 0 converged, 1 singular Jacobian (the model folds), 2 not
converged within the iteration budget.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def _opencv(x: wp.float64, y: wp.float64, c: wp.array2d(dtype=wp.float64), i: int):
    """Distorted point and Jacobian rows ``(xd, yd, j00, j01, j10, j11)`` of the OpenCV model."""
    k1 = c[i, 0]
    k2 = c[i, 1]
    p1 = c[i, 2]
    p2 = c[i, 3]
    k3 = c[i, 4]
    one = wp.float64(1.0)
    two = wp.float64(2.0)
    r2 = x * x + y * y
    radial = one + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (two * k2 + wp.float64(3.0) * k3 * r2)
    xd = x * radial + two * p1 * x * y + p2 * (r2 + two * x * x)
    yd = y * radial + p1 * (r2 + two * y * y) + two * p2 * x * y
    cross = two * x * y * dradial + two * p1 * x + two * p2 * y
    j00 = radial + two * x * x * dradial + two * p1 * y + wp.float64(6.0) * p2 * x
    j11 = radial + two * y * y * dradial + wp.float64(6.0) * p1 * y + two * p2 * x
    return wp.vec4d(xd, yd, j00, j11), cross


@wp.func
def _fisheye(x: wp.float64, y: wp.float64, c: wp.array2d(dtype=wp.float64), i: int):
    """Distorted point, Jacobian diagonal and off-diagonal of the Kannala-Brandt model."""
    k1 = c[i, 0]
    k2 = c[i, 1]
    k3 = c[i, 2]
    k4 = c[i, 3]
    one = wp.float64(1.0)
    r2 = x * x + y * y
    scale = wp.float64(0.0)
    coef = wp.float64(0.0)
    if r2 < wp.float64(1e-12):
        scale = one + r2 * (k1 - one / wp.float64(3.0))
        coef = wp.float64(2.0) * (k1 - one / wp.float64(3.0))
    else:
        r = wp.sqrt(r2)
        theta = wp.atan(r)
        t2 = theta * theta
        poly = one + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
        dpoly = wp.float64(2.0) * theta * (k1 + t2 * (wp.float64(2.0) * k2 + t2 * (wp.float64(3.0) * k3
                                                                                 + t2 * wp.float64(4.0) * k4)))
        scale = theta * poly / r
        coef = ((poly + theta * dpoly) / (one + r2) - scale) / r2
    return wp.vec4d(x * scale, y * scale, scale + coef * x * x, scale + coef * y * y), coef * x * y


@wp.func
def _undistort(tx: wp.float64, ty: wp.float64, coeffs: wp.array2d(dtype=wp.float64), i: int, model: int,
               iterations: int, tol: wp.float64):
    """Newton from ``(tx, ty)``; returns ``(x, y, status)`` as in :func:`undistort_points`."""
    x = tx
    y = ty
    state = int(2)
    for _ in range(iterations):
        f = wp.vec4d()
        off = wp.float64(0.0)
        if model == 0:
            f, off = _opencv(x, y, coeffs, i)
        else:
            f, off = _fisheye(x, y, coeffs, i)
        rx = f[0] - tx
        ry = f[1] - ty
        if wp.abs(rx) < tol and wp.abs(ry) < tol:
            state = 0
            break
        det = f[2] * f[3] - off * off
        if wp.abs(det) < wp.float64(1e-12):
            state = 1
            break
        x = x - (f[3] * rx - off * ry) / det
        y = y - (f[2] * ry - off * rx) / det
    return wp.vec3d(x, y, wp.float64(state))


@wp.kernel
def undistort_points(offset: int, end: int, target: wp.array2d(dtype=wp.float64),
                     coeffs: wp.array2d(dtype=wp.float64), model: int, iterations: int, tol: wp.float64,
                     out: wp.array2d(dtype=wp.float64), status: wp.array(dtype=wp.int32)):
    i = offset + wp.tid()
    if i >= end:
        return
    r = _undistort(target[i, 0], target[i, 1], coeffs, i, model, iterations, tol)
    out[i, 0] = r[0]
    out[i, 1] = r[1]
    status[i] = int(r[2])


@wp.kernel
def lens_grid(offset: int, end: int, intr: wp.array2d(dtype=wp.float64), intr_pin: wp.array2d(dtype=wp.float64),
              coeffs: wp.array2d(dtype=wp.float64), model: int, width: int, height: int, samples: int,
              iterations: int, tol: wp.float64, out: wp.array2d(dtype=wp.float64), status: wp.array(dtype=wp.int32)):
    """Pinhole-image position of every sample of every pixel of a distorted camera (the resampling grid).

    Item ``i`` is sample ``i % S^2`` of pixel ``(i // S^2) % (H W)`` of view ``i // (S^2 H W)``; ``intr`` and
    ``intr_pin`` hold ``(fx, fy, cx, cy, s)`` per view of the distorted and the pinhole camera.
    """
    i = offset + wp.tid()
    if i >= end:
        return
    ss = samples * samples
    sub = i % ss
    pix = (i // ss) % (width * height)
    view = i // (ss * width * height)
    inv = wp.float64(1.0) / wp.float64(samples)
    u = wp.float64(pix % width) + (wp.float64(sub % samples) + wp.float64(0.5)) * inv
    v = wp.float64(pix // width) + (wp.float64(sub // samples) + wp.float64(0.5)) * inv
    yd = (v - intr[view, 3]) / intr[view, 1]
    xd = (u - intr[view, 2] - intr[view, 4] * yd) / intr[view, 0]
    r = _undistort(xd, yd, coeffs, view, model, iterations, tol)
    out[i, 0] = intr_pin[view, 0] * r[0] + intr_pin[view, 4] * r[1] + intr_pin[view, 2]
    out[i, 1] = intr_pin[view, 1] * r[1] + intr_pin[view, 3]
    status[i] = int(r[2])
