"""Filter importance sampling of camera-ray positions as one Warp kernel (float64; :mod:`.filter_sampling`
launches it): the per-ray arithmetic of :func:`lumigrad.cameras.pixel_filter.sample_in_pixels`, whose PyTorch
twin ``sample_in_pixels_reference`` is the reference (``tests/cameras/test_pixel_filter.py`` compares them). Why a kernel: the PyTorch form is some 40 elementwise
float64 passes over every ray and axis (0.13 s for a million rays on two cores, a quarter of a 256^2 16-spp path
trace); here one pass.

Per axis: ``y = lo + u span`` picks a knot interval ``k = floor(y)`` (each equally likely) and inside it the
inverse of a trapezoid density through ``|f|`` at its two knots; the weight is ``f(x) width span / (shape Z)``.
``ranges`` rows per pixel index: ``(lo, span, span / Z, a, b)``.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

#: Filter kinds (``lumigrad.cameras.pixel_filter.FILTERS`` order, box excluded: it is never sampled here).
TENT, GAUSSIAN, CUBIC, LANCZOS = 1, 2, 3, 4


@wp.func
def _sinc(x: wp.float64):
    if x == wp.float64(0.0):
        return wp.float64(1.0)
    px = wp.float64(3.141592653589793) * x
    return wp.sin(px) / px


@wp.func
def filter_value_wp(kind: int, x: wp.float64, radius: wp.float64, alpha: wp.float64, bias: wp.float64,
                    b: wp.float64, c: wp.float64, lobes: wp.float64):
    """``PixelFilter.eval`` at ``x`` (``alpha = -1 / (2 stddev^2)``, ``bias = exp(alpha radius^2)``)."""
    a = wp.abs(x)
    zero = wp.float64(0.0)
    one = wp.float64(1.0)
    six = wp.float64(6.0)
    out = zero
    if kind == TENT:
        out = wp.max(one - a / radius, zero)
    elif kind == GAUSSIAN:
        out = wp.max(wp.exp(alpha * a * a) - bias, zero)
    elif kind == CUBIC:
        a2 = a * a
        a3 = a2 * a
        if a < one:
            out = ((wp.float64(12.0) - wp.float64(9.0) * b - six * c) * a3
                   + (wp.float64(-18.0) + wp.float64(12.0) * b + six * c) * a2 + (six - wp.float64(2.0) * b)) / six
        elif a < wp.float64(2.0):
            out = ((-b - six * c) * a3 + (six * b + wp.float64(30.0) * c) * a2
                   + (wp.float64(-12.0) * b - wp.float64(48.0) * c) * a + (wp.float64(8.0) * b + wp.float64(24.0) * c)) / six
    elif kind == LANCZOS:
        if a < radius:
            out = _sinc(x) * _sinc(x / lobes)
    return out


@wp.func
def _axis_wp(u: wp.float64, index: int, ranges: wp.array2d(dtype=wp.float64), knots: wp.array(dtype=wp.float64),
             width: wp.array(dtype=wp.float64), ends: wp.array(dtype=wp.float64), count: int, kind: int,
             radius: wp.float64, alpha: wp.float64, bias: wp.float64, b: wp.float64, c: wp.float64,
             lobes: wp.float64):
    """``(offset, weight)`` of one axis (``_sample_axis``)."""
    zero = wp.float64(0.0)
    one = wp.float64(1.0)
    lo = ranges[index, 0]
    span = ranges[index, 1]
    y = lo + u * span
    k = wp.clamp(int(wp.floor(y)), 0, count - 1)
    v = wp.clamp(y - wp.float64(k), zero, one)
    d0 = ends[k]
    d1 = ends[k + 1]
    s = d0 + d1
    root = d0 + wp.sqrt(wp.max(d0 * d0 + v * (d1 * d1 - d0 * d0), zero))
    t = v
    if root > zero:
        t = v * s / root
    t = wp.clamp(t, zero, one)
    w = width[k]
    x = wp.min(wp.max(knots[k] + t * w, ranges[index, 3]), ranges[index, 4])
    shape = one
    if s > zero:
        shape = wp.float64(2.0) * ((one - t) * d0 + t * d1) / s
    weight = zero
    if shape > zero:
        weight = filter_value_wp(kind, x, radius, alpha, bias, b, c, lobes) * w * ranges[index, 2] / shape
    return x, weight


@wp.kernel
def sample_filter(offset: int, end: int, u: wp.array2d(dtype=wp.float64), rows: wp.array(dtype=wp.int32),
                  cols: wp.array(dtype=wp.int32), ranges_x: wp.array2d(dtype=wp.float64),
                  ranges_y: wp.array2d(dtype=wp.float64), knots: wp.array(dtype=wp.float64),
                  width: wp.array(dtype=wp.float64), ends: wp.array(dtype=wp.float64), count: int, kind: int,
                  radius: wp.float64, alpha: wp.float64, bias: wp.float64, b: wp.float64, c: wp.float64,
                  lobes: wp.float64, uv: wp.array2d(dtype=wp.float64), weight: wp.array(dtype=wp.float64)):
    i = offset + wp.tid()
    if i >= end:
        return
    col = cols[i]
    row = rows[i]
    x, wx = _axis_wp(u[i, 0], col, ranges_x, knots, width, ends, count, kind, radius, alpha, bias, b, c, lobes)
    y, wy = _axis_wp(u[i, 1], row, ranges_y, knots, width, ends, count, kind, radius, alpha, bias, b, c, lobes)
    half = wp.float64(0.5)
    uv[i, 0] = wp.float64(col) + x + half
    uv[i, 1] = wp.float64(row) + y + half
    weight[i] = wx * wy
