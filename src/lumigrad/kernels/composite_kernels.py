"""Volume compositing kernels over packed samples (float32 and float64), with an explicit backward.

One thread per ray walks the ray's samples ``[start, start + count)`` in order. With optical thickness
``tau_i = sigma_i (t_end_i - t_start_i)``, transmittance ``T_i = exp(-sum_{j<i} tau_j)`` and
``alpha_i = 1 - exp(-tau_i)``, a sample is *alive* while ``T_i >= eps`` (early ray termination; ``eps = 0``
keeps every sample) and its weight is ``w_i = T_i alpha_i`` if alive, else 0. Per ray the forward writes

    acc[r, c] = sum_i w_i values[i, c],   opacity[r] = sum_i w_i,   depth[r] = sum_i w_i (t_start_i + t_end_i) / 2

and per sample ``weights[i] = w_i`` and ``trans[i] = T_i``.

**Backward** (nothing but the inputs is stored; transmittance is recomputed). With ``a_i`` the cotangent
reaching ``w_i`` (``v_weights_i + v_acc[r] . values_i + v_opacity[r] + v_depth[r] t_mid_i``, alive samples
only) and ``b_i = v_trans_i``, and since ``w_i = T_i - T_{i+1}`` for alive samples,

    dL/dtau_j = [j alive] a_j T_{j+1} - sum_{i>j, alive} a_i w_i - sum_{i>j} b_i T_i.

The two suffix sums are a first pass's totals minus running prefix sums (the reverse cumulative sum).
The arithmetic is float64 whatever the array dtype (one ``exp`` per sample and pass; transmittance is the
running product of ``exp(-tau_i)``): in float32 the difference ``total - prefix`` at the far end of a long
ray would keep only ``1e-7 * total`` of accuracy. Values are rounded to the array dtype when stored.
Flags skip the cotangents that are absent (``v_weights``, ``v_trans``) and the gradients nobody needs
(``v_values``, ``v_t_starts`` / ``v_t_ends``), whose arrays may then be one-element stand-ins.
Then ``v_sigma_j = dL/dtau_j delta_j``, ``v_t_end_j = dL/dtau_j sigma_j + w_j v_depth / 2``,
``v_t_start_j = -dL/dtau_j sigma_j + w_j v_depth / 2`` and ``v_values[j] = w_j v_acc[r]``.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def _alpha(tau: wp.float64, e: wp.float64):
    """``1 - exp(-tau)`` given ``e = exp(-tau)``, without the cancellation of small ``tau`` (cubic series)."""
    if tau < wp.float64(1.0e-5):
        return tau * (wp.float64(1.0) - tau * (wp.float64(0.5) - tau / wp.float64(6.0)))
    return wp.float64(1.0) - e


@wp.func
def _cotangent(i: int, r: int, num_channels: int, values: wp.array2d(dtype=Any), v_acc: wp.array2d(dtype=Any),
               v_weights: wp.array(dtype=Any), has_v_weights: int, g_op: wp.float64, g_dep: wp.float64,
               mid: wp.float64):
    """``a_i``: the cotangent reaching weight ``w_i`` from every output."""
    a = g_op + g_dep * mid
    if has_v_weights != 0:
        a += wp.float64(v_weights[i])
    for c in range(num_channels):
        a += wp.float64(v_acc[r, c]) * wp.float64(values[i, c])
    return a


@wp.kernel
def composite_forward(offset: int, end: int, sigmas: wp.array(dtype=Any), values: wp.array2d(dtype=Any),
                      num_channels: int, t_starts: wp.array(dtype=Any), t_ends: wp.array(dtype=Any),
                      ray_start: wp.array(dtype=wp.int32), ray_count: wp.array(dtype=wp.int32), eps: wp.float64,
                      acc: wp.array2d(dtype=Any), opacity: wp.array(dtype=Any), depth: wp.array(dtype=Any),
                      weights: wp.array(dtype=Any), trans: wp.array(dtype=Any)):
    r = offset + wp.tid()
    zero = wp.float64(0.0)
    T = wp.float64(1.0)
    op = zero
    dep = zero
    for c in range(num_channels):
        acc[r, c] = type(acc[r, c])(0.0)
    first = ray_start[r]
    for i in range(first, first + ray_count[r]):
        t0 = wp.float64(t_starts[i])
        t1 = wp.float64(t_ends[i])
        tau = wp.float64(sigmas[i]) * (t1 - t0)
        e = wp.exp(-tau)
        trans[i] = type(trans[i])(T)
        w = zero
        if T >= eps:
            w = T * _alpha(tau, e)
            op += w
            dep += w * wp.float64(0.5) * (t0 + t1)
            for c in range(num_channels):
                acc[r, c] = type(acc[r, c])(wp.float64(acc[r, c]) + w * wp.float64(values[i, c]))
        weights[i] = type(weights[i])(w)
        T = T * e
    opacity[r] = type(opacity[r])(op)
    depth[r] = type(depth[r])(dep)


@wp.kernel
def composite_backward(offset: int, end: int, sigmas: wp.array(dtype=Any), values: wp.array2d(dtype=Any),
                       num_channels: int, t_starts: wp.array(dtype=Any), t_ends: wp.array(dtype=Any),
                       ray_start: wp.array(dtype=wp.int32), ray_count: wp.array(dtype=wp.int32), eps: wp.float64,
                       v_acc: wp.array2d(dtype=Any), v_opacity: wp.array(dtype=Any), v_depth: wp.array(dtype=Any),
                       v_weights: wp.array(dtype=Any), has_v_weights: int, v_trans: wp.array(dtype=Any),
                       has_v_trans: int, v_sigmas: wp.array(dtype=Any), v_values: wp.array2d(dtype=Any),
                       want_values: int, v_t_starts: wp.array(dtype=Any), v_t_ends: wp.array(dtype=Any),
                       want_t: int):
    r = offset + wp.tid()
    zero = wp.float64(0.0)
    half = wp.float64(0.5)
    first = ray_start[r]
    last = first + ray_count[r]
    g_op = wp.float64(v_opacity[r])
    g_dep = wp.float64(v_depth[r])
    # Pass 1: the totals sum_i a_i w_i (alive samples) and sum_i b_i T_i.
    T = wp.float64(1.0)
    total_aw = zero
    total_bt = zero
    for i in range(first, last):
        t0 = wp.float64(t_starts[i])
        t1 = wp.float64(t_ends[i])
        tau = wp.float64(sigmas[i]) * (t1 - t0)
        e = wp.exp(-tau)
        if has_v_trans != 0:
            total_bt += wp.float64(v_trans[i]) * T
        if T >= eps:
            a = _cotangent(i, r, num_channels, values, v_acc, v_weights, has_v_weights, g_op, g_dep,
                           half * (t0 + t1))
            total_aw += a * T * _alpha(tau, e)
        T = T * e
    # Pass 2: suffix sums as totals minus inclusive prefix sums.
    T = wp.float64(1.0)
    pre_aw = zero
    pre_bt = zero
    for i in range(first, last):
        t0 = wp.float64(t_starts[i])
        t1 = wp.float64(t_ends[i])
        sigma = wp.float64(sigmas[i])
        tau = sigma * (t1 - t0)
        e = wp.exp(-tau)
        if has_v_trans != 0:
            pre_bt += wp.float64(v_trans[i]) * T
        g_tau = -(total_bt - pre_bt)
        w = zero
        if T >= eps:
            a = _cotangent(i, r, num_channels, values, v_acc, v_weights, has_v_weights, g_op, g_dep,
                           half * (t0 + t1))
            w = T * _alpha(tau, e)
            pre_aw += a * w
            g_tau += a * T * e - (total_aw - pre_aw)
        if want_values != 0:
            for c in range(num_channels):
                v_values[i, c] = type(v_values[i, c])(w * wp.float64(v_acc[r, c]))
        v_sigmas[i] = type(v_sigmas[i])(g_tau * (t1 - t0))
        if want_t != 0:
            v_t_ends[i] = type(v_t_ends[i])(g_tau * sigma + half * w * g_dep)
            v_t_starts[i] = type(v_t_starts[i])(-g_tau * sigma + half * w * g_dep)
        T = T * e


def _overload_all() -> None:
    for f in (wp.float32, wp.float64):
        a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
        i32, f64 = wp.array(dtype=wp.int32), wp.float64
        wp.overload(composite_forward, [int, int, a1, a2, int, a1, a1, i32, i32, f64, a2, a1, a1, a1, a1])
        wp.overload(composite_backward, [int, int, a1, a2, int, a1, a1, i32, i32, f64,
                                         a2, a1, a1, a1, int, a1, int, a1, a2, int, a1, a1, int])


_overload_all()
