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
Optical depth, totals and prefix sums accumulate in float64 whatever the array dtype: in float32 the
difference ``total - prefix`` at the far end of a long ray would keep only ``1e-7 * total`` of accuracy.
Then ``v_sigma_j = dL/dtau_j delta_j``, ``v_t_end_j = dL/dtau_j sigma_j + w_j v_depth / 2``,
``v_t_start_j = -dL/dtau_j sigma_j + w_j v_depth / 2`` and ``v_values[j] = w_j v_acc[r]``.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def _one_minus_exp_neg(tau: Any):
    """``1 - exp(-tau)`` without the cancellation of small ``tau`` (a cubic series below 1e-3)."""
    if tau < type(tau)(1.0e-3):
        return tau * (type(tau)(1.0) - tau * (type(tau)(0.5) - tau / type(tau)(6.0)))
    return type(tau)(1.0) - wp.exp(-tau)


@wp.kernel
def composite_forward(offset: int, end: int, sigmas: wp.array(dtype=Any), values: wp.array2d(dtype=Any),
                      num_channels: int, t_starts: wp.array(dtype=Any), t_ends: wp.array(dtype=Any),
                      ray_start: wp.array(dtype=wp.int32), ray_count: wp.array(dtype=wp.int32), eps: Any,
                      acc: wp.array2d(dtype=Any), opacity: wp.array(dtype=Any), depth: wp.array(dtype=Any),
                      weights: wp.array(dtype=Any), trans: wp.array(dtype=Any)):
    r = offset + wp.tid()
    zero = type(eps)(0.0)
    half = type(eps)(0.5)
    tau_sum = wp.float64(0.0)
    op = zero
    dep = zero
    for c in range(num_channels):
        acc[r, c] = zero
    first = ray_start[r]
    for i in range(first, first + ray_count[r]):
        T = type(eps)(wp.exp(-tau_sum))
        tau = sigmas[i] * (t_ends[i] - t_starts[i])
        trans[i] = T
        w = zero
        if T >= eps:
            w = T * _one_minus_exp_neg(tau)
            op += w
            dep += w * half * (t_starts[i] + t_ends[i])
            for c in range(num_channels):
                acc[r, c] = acc[r, c] + w * values[i, c]
        weights[i] = w
        tau_sum += wp.float64(tau)
    opacity[r] = op
    depth[r] = dep


@wp.kernel
def composite_backward(offset: int, end: int, sigmas: wp.array(dtype=Any), values: wp.array2d(dtype=Any),
                       num_channels: int, t_starts: wp.array(dtype=Any), t_ends: wp.array(dtype=Any),
                       ray_start: wp.array(dtype=wp.int32), ray_count: wp.array(dtype=wp.int32), eps: Any,
                       v_acc: wp.array2d(dtype=Any), v_opacity: wp.array(dtype=Any), v_depth: wp.array(dtype=Any),
                       v_weights: wp.array(dtype=Any), v_trans: wp.array(dtype=Any),
                       v_sigmas: wp.array(dtype=Any), v_values: wp.array2d(dtype=Any),
                       v_t_starts: wp.array(dtype=Any), v_t_ends: wp.array(dtype=Any)):
    r = offset + wp.tid()
    zero = type(eps)(0.0)
    half = type(eps)(0.5)
    zero64 = wp.float64(0.0)
    first = ray_start[r]
    last = first + ray_count[r]
    g_op = v_opacity[r]
    g_dep = v_depth[r]
    # Pass 1: the totals sum_i a_i w_i (alive) and sum_i b_i T_i.
    tau_sum = zero64
    total_aw = zero64
    total_bt = zero64
    for i in range(first, last):
        T = type(eps)(wp.exp(-tau_sum))
        tau = sigmas[i] * (t_ends[i] - t_starts[i])
        total_bt += wp.float64(v_trans[i] * T)
        if T >= eps:
            a = v_weights[i] + g_op + g_dep * half * (t_starts[i] + t_ends[i])
            for c in range(num_channels):
                a += v_acc[r, c] * values[i, c]
            total_aw += wp.float64(a * T * _one_minus_exp_neg(tau))
        tau_sum += wp.float64(tau)
    # Pass 2: suffix sums as totals minus inclusive prefix sums.
    tau_sum = zero64
    pre_aw = zero64
    pre_bt = zero64
    for i in range(first, last):
        T = type(eps)(wp.exp(-tau_sum))
        delta = t_ends[i] - t_starts[i]
        tau = sigmas[i] * delta
        pre_bt += wp.float64(v_trans[i] * T)
        g_tau = -type(eps)(total_bt - pre_bt)
        w = zero
        if T >= eps:
            a = v_weights[i] + g_op + g_dep * half * (t_starts[i] + t_ends[i])
            for c in range(num_channels):
                a += v_acc[r, c] * values[i, c]
            w = T * _one_minus_exp_neg(tau)
            pre_aw += wp.float64(a * w)
            g_tau += a * type(eps)(wp.exp(-(tau_sum + wp.float64(tau)))) - type(eps)(total_aw - pre_aw)
        for c in range(num_channels):
            v_values[i, c] = w * v_acc[r, c]
        v_sigmas[i] = g_tau * delta
        v_t_ends[i] = g_tau * sigmas[i] + half * w * g_dep
        v_t_starts[i] = -g_tau * sigmas[i] + half * w * g_dep
        tau_sum += wp.float64(tau)


def _overload_all() -> None:
    for f in (wp.float32, wp.float64):
        a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
        i32 = wp.array(dtype=wp.int32)
        wp.overload(composite_forward, [int, int, a1, a2, int, a1, a1, i32, i32, f, a2, a1, a1, a1, a1])
        wp.overload(composite_backward, [int, int, a1, a2, int, a1, a1, i32, i32, f,
                                         a2, a1, a1, a1, a1, a1, a2, a1, a1])


_overload_all()
