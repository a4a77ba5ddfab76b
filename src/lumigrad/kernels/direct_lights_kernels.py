"""Direct lighting of shading points by many point / directional lights in one pass (float32 and float64),
with an explicit backward that recomputes each light's terms.

One thread per shading point ``i`` loops over the ``K`` lights. With ``n = normal / max(|normal|, 1e-12)`` and
``v = wo / |wo|`` (towards the viewer) at the point, light ``k`` arrives along

* a point light at ``p_k = light_vector[k]``: ``u = p_k - x``, ``d = sqrt(max(u.u, min_d2))``, ``w = u / d``,
  ``A = 1 / d^2``;
* a directional light travelling along ``light_vector[k]``: ``w = -light_vector[k] / |light_vector[k]|``,
  ``A = 1``;

and reflects (the glTF metallic-roughness BRDF of :mod:`lumigrad.shading.brdf`, same clamps)::

    l = w / |w|,  valid = (n.l > 0) and (n.v > 0)
    nl = clamp(n.l, 1e-6, 1), nv = clamp(n.v, 1e-6, 1), h = (l + v) / sqrt(max(|l + v|^2, 1e-12))
    nh = clamp(n.h, 0, 1), vh = clamp(v.h, 0, 1), alpha = max(r^2, 1e-3), a2 = alpha^2
    D = a2 / (pi q^2), q = (1 - nh^2) + nh^2 a2
    V = 0.5 / (nl sqrt(nv^2 (1 - a2) + a2) + nv sqrt(nl^2 (1 - a2) + a2))
    m5 = (1 - vh)^5, Fd_c = f0_c + (1 - f0_c) m5, Fm_c = c_c + (1 - c_c) m5
    f_c = (1 - metal) ((1 - Fd_c) c_c / pi + Fd_c D V) + metal D V Fm_c          (0 unless valid)
    out[i, c] += f_c * radiance[k, c] * A * (n . w)

(``n . w`` with the unnormalised ``w``, as the PyTorch path multiplies by the cosine of the sample's ``wi``.)

**Backward**: per point and light the same values are recomputed and differentiated by hand; point
gradients are written per point (no atomics), light gradients are summed (in float64, whatever the dtype)
into ``v_light[slot]`` with ``slot = i // group``: the caller gives each CPU thread its own slot (``group`` larger than the points) or,
on CUDA, one slot per ``group`` points, and reduces the slots. Arithmetic is float64 whatever the array
dtype; results are rounded to it when stored.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})

#: Same constants as :mod:`lumigrad.shading.brdf`.
_ALPHA_MIN = wp.constant(wp.float64(1.0e-3))
_DOT_EPS = wp.constant(wp.float64(1.0e-6))
_PI = wp.constant(wp.float64(3.141592653589793))
#: :func:`lumigrad.shading.shade_direct`'s guard on the normal's length.
_NORMAL_EPS = wp.constant(wp.float64(1.0e-12))
#: At most this many colour channels (a ``vec4d`` accumulator); the wrapper falls back beyond it.
MAX_CHANNELS = 4


@wp.func
def _vec(a: wp.array2d(dtype=Any), i: int):
    return wp.vec3d(wp.float64(a[i, 0]), wp.float64(a[i, 1]), wp.float64(a[i, 2]))


@wp.func
def _unit(a: wp.array2d(dtype=Any), i: int, eps: wp.float64):
    """``(a[i] / max(|a[i]|, eps), |a[i]|)``."""
    raw = _vec(a, i)
    length = wp.length(raw)
    return raw / wp.max(length, eps), length


@wp.func
def _channels(a: wp.array2d(dtype=Any), i: int, num_channels: int):
    out = wp.vec4d()
    for c in range(num_channels):
        out[c] = wp.float64(a[i, c])
    return out


@wp.func
def _renormalised(w: wp.vec3d, unit: int):
    """``(w / |w|, |w|)``, as the BRDF normalises ``wi`` again; ``w`` taken as unit (``|w| = 1``) where ``unit``
    (it is, up to rounding, except inside ``min_distance``)."""
    if unit != 0:
        return w, wp.float64(1.0)
    wl = wp.length(w)
    return w / wl, wl


@wp.func
def _roughness_terms(r: wp.float64, nv: wp.float64):
    """``(r, alpha, a2, 1 - a2, s1)``: ``alpha = max(r^2, ALPHA_MIN)``, ``a2 = alpha^2``, ``s1`` the Smith root of
    ``nv``."""
    alpha = wp.max(r * r, _ALPHA_MIN)
    a2 = alpha * alpha
    one_a2 = wp.float64(1.0) - a2
    return r, alpha, a2, one_a2, _smith_root(nv, a2, one_a2)


@wp.func
def _half_vector(l: wp.vec3d, v: wp.vec3d):
    """``(hv, hv.hv, hl, h)``: ``hv = l + v``, ``hl = sqrt(max(hv.hv, 1e-12))``, ``h = hv / hl``."""
    hv = l + v
    hh = wp.dot(hv, hv)
    hl = wp.sqrt(wp.max(hh, _DOT_EPS * _DOT_EPS))
    return hv, hh, hl, hv * (wp.float64(1.0) / hl)


@wp.func
def _smith_root(cos_theta: wp.float64, a2: wp.float64, one_a2: wp.float64):
    return wp.sqrt(cos_theta * cos_theta * one_a2 + a2)


@wp.func
def _ggx(nh: wp.float64, nl: wp.float64, nv: wp.float64, a2: wp.float64, one_a2: wp.float64, s1: wp.float64):
    """``(nh^2, q, D, s2, Q, V)`` of the GGX distribution and the height-correlated Smith visibility (``s1`` is
    ``nv``'s root, :func:`_smith_root`)."""
    one = wp.float64(1.0)
    nh2 = nh * nh
    q = (one - nh2) + nh2 * a2
    s2 = _smith_root(nl, a2, one_a2)
    Q = nl * s1 + nv * s2
    return nh2, q, a2 / (_PI * q * q), s2, Q, wp.float64(0.5) / Q


@wp.func
def _incoming(x: wp.vec3d, k: int, light_vector: wp.array2d(dtype=Any), light_is_point: wp.array(dtype=wp.int32),
              min_d2: wp.float64):
    """``(w, A, u, d, unclamped)``: direction towards light ``k`` (length 1, or < 1 inside ``min_distance``),
    its falloff, ``u`` (``p - x``, or a directional light's direction of travel), ``d`` (the clamped distance,
    or ``|u|``) and whether ``w`` is unit (``u.u >= min_d2``, or a directional light)."""
    u = _vec(light_vector, k)
    one = wp.float64(1.0)
    if light_is_point[k] == 0:
        s = wp.length(u)
        return -u / s, one, u, s, 1
    u = u - x
    s = wp.dot(u, u)
    unclamped = 1
    if s < min_d2:
        s = min_d2
        unclamped = 0
    d = wp.sqrt(s)
    inv_d = one / d
    return u * inv_d, inv_d * inv_d, u, d, unclamped


@wp.kernel
def direct_lights_forward(offset: int, end: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any),
                          wo: wp.array2d(dtype=Any), base_color: wp.array2d(dtype=Any),
                          roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any),
                          f0: wp.array2d(dtype=Any), num_channels: int, light_vector: wp.array2d(dtype=Any),
                          light_is_point: wp.array(dtype=wp.int32), light_radiance: wp.array2d(dtype=Any),
                          num_lights: int, min_d2: wp.float64, out: wp.array2d(dtype=Any)):
    i = offset + wp.tid()
    x = _vec(position, i)
    n, n_len = _unit(normal, i, _NORMAL_EPS)
    v, v_len = _unit(wo, i, wp.float64(0.0))
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    acc = wp.vec4d()
    nv_raw = wp.dot(n, v)
    if nv_raw > zero:
        nv = wp.min(wp.max(nv_raw, _DOT_EPS), one)
        r, alpha, a2, one_a2, s1 = _roughness_terms(wp.float64(roughness[i]), nv)
        metal = wp.float64(metallic[i])
        w_d = one - metal
        cvec, f0vec = _channels(base_color, i, num_channels), _channels(f0, i, num_channels)
        for k in range(num_lights):
            w, A, u, d, unclamped = _incoming(x, k, light_vector, light_is_point, min_d2)
            l, wl = _renormalised(w, unclamped)
            nl_raw = wp.dot(n, l)
            if nl_raw > zero:
                nl = wp.min(wp.max(nl_raw, _DOT_EPS), one)
                hv, hh, hl, h = _half_vector(l, v)
                nh = wp.min(wp.max(wp.dot(n, h), zero), one)
                vh = wp.min(wp.max(wp.dot(v, h), zero), one)
                nh2, q, D, s2, Q, V = _ggx(nh, nl, nv, a2, one_a2, s1)
                dv = D * V
                m = one - vh
                m2 = m * m
                m5 = m2 * m2 * m
                G = A * wp.dot(n, w)
                for c in range(num_channels):
                    cc = cvec[c]
                    f0c = f0vec[c]
                    fd = f0c + (one - f0c) * m5
                    fm = cc + (one - cc) * m5
                    f = w_d * (one - fd) * (cc / _PI) + (w_d * fd * dv + metal * (dv * fm))
                    acc[c] = acc[c] + f * wp.float64(light_radiance[k, c]) * G
    for c in range(num_channels):
        out[i, c] = type(out[i, c])(acc[c])


@wp.kernel
def direct_lights_backward(offset: int, end: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any),
                           wo: wp.array2d(dtype=Any), base_color: wp.array2d(dtype=Any),
                           roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any),
                           f0: wp.array2d(dtype=Any), num_channels: int, light_vector: wp.array2d(dtype=Any),
                           light_is_point: wp.array(dtype=wp.int32), light_radiance: wp.array2d(dtype=Any),
                           num_lights: int, min_d2: wp.float64, v_out: wp.array2d(dtype=Any),
                           v_position: wp.array2d(dtype=Any), v_normal: wp.array2d(dtype=Any),
                           v_wo: wp.array2d(dtype=Any), v_base_color: wp.array2d(dtype=Any),
                           v_roughness: wp.array(dtype=Any), v_metallic: wp.array(dtype=Any),
                           v_f0: wp.array2d(dtype=Any), v_light: wp.array3d(dtype=Any), group: int):
    """``v_light[slot, k]`` holds ``(v_light_vector[k, 0:3], v_light_radiance[k, 0:C])``."""
    i = offset + wp.tid()
    slot = i // group
    x = _vec(position, i)
    n, n_len = _unit(normal, i, _NORMAL_EPS)
    v, v_len = _unit(wo, i, wp.float64(0.0))
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    half = wp.float64(0.5)
    g = wp.vec4d()
    for c in range(num_channels):
        g[c] = wp.float64(v_out[i, c])
    g_x = wp.vec3d()
    g_n = wp.vec3d()
    g_v = wp.vec3d()
    g_c = wp.vec4d()
    g_f0 = wp.vec4d()
    g_r = zero
    g_metal = zero
    nv_raw = wp.dot(n, v)
    if nv_raw > zero:
        nv = wp.min(wp.max(nv_raw, _DOT_EPS), one)
        r, alpha, a2, one_a2, s1 = _roughness_terms(wp.float64(roughness[i]), nv)
        metal = wp.float64(metallic[i])
        w_d = one - metal
        cvec, f0vec = _channels(base_color, i, num_channels), _channels(f0, i, num_channels)
        g_nv = zero
        g_a2 = zero
        for k in range(num_lights):
            w, A, u, d, unclamped = _incoming(x, k, light_vector, light_is_point, min_d2)
            l, wl = _renormalised(w, unclamped)
            nl_raw = wp.dot(n, l)
            if nl_raw > zero:
                nl = wp.min(wp.max(nl_raw, _DOT_EPS), one)
                hv, hh, hl, h = _half_vector(l, v)
                nh_raw = wp.dot(n, h)
                vh_raw = wp.dot(v, h)
                nh = wp.min(wp.max(nh_raw, zero), one)
                vh = wp.min(wp.max(vh_raw, zero), one)
                nh2, q, D, s2, Q, V = _ggx(nh, nl, nv, a2, one_a2, s1)
                dv = D * V
                m = one - vh
                m2 = m * m
                m4 = m2 * m2
                m5 = m4 * m
                cosw = wp.dot(n, w)
                G = A * cosw
                # reverse pass through the channels
                g_G = zero
                g_dv = zero
                g_m5 = zero
                for c in range(num_channels):
                    cc = cvec[c]
                    f0c = f0vec[c]
                    Lc = wp.float64(light_radiance[k, c])
                    fd = f0c + (one - f0c) * m5
                    fm = cc + (one - cc) * m5
                    f = w_d * (one - fd) * (cc / _PI) + (w_d * fd * dv + metal * (dv * fm))
                    g_G = g_G + g[c] * f * Lc
                    wp.atomic_add(v_light, slot, k, 3 + c, type(v_light[slot, k, 0])(g[c] * f * G))
                    gf = g[c] * Lc * G
                    g_c[c] = g_c[c] + gf * (w_d * (one - fd) / _PI + metal * dv * (one - m5))
                    g_fd = gf * w_d * (dv - cc / _PI)
                    g_f0[c] = g_f0[c] + g_fd * (one - m5)
                    g_dv = g_dv + gf * (w_d * fd + metal * fm)
                    g_m5 = g_m5 + g_fd * (one - f0c) + gf * metal * dv * (one - cc)
                    g_metal = g_metal + gf * (dv * fm - (one - fd) * (cc / _PI) - fd * dv)
                g_A = g_G * cosw
                g_cosw = g_G * A
                # m5 = (1 - vh)^5
                g_vh = -g_m5 * wp.float64(5.0) * m4
                # dv = D V, D = a2 / (pi q^2), V = 0.5 / Q
                g_D = g_dv * V
                g_V = g_dv * D
                g_q = -g_D * wp.float64(2.0) * a2 / (_PI * q * q * q)
                g_nh = g_q * wp.float64(2.0) * nh * (a2 - one)
                g_a2 = g_a2 + g_D / (_PI * q * q) + g_q * nh2
                g_Q = -g_V * half / (Q * Q)
                g_nl = g_Q * (s1 + nv * nl * (one - a2) / s2)
                g_nv = g_nv + g_Q * (s2 + nl * nv * (one - a2) / s1)
                g_a2 = g_a2 + g_Q * (nl * (one - nv * nv) / (wp.float64(2.0) * s1)
                                     + nv * (one - nl * nl) / (wp.float64(2.0) * s2))
                # clamps (gradient passes on the closed interval, as torch.clamp's)
                if nl_raw < _DOT_EPS or nl_raw > one:
                    g_nl = zero
                if nh_raw < zero or nh_raw > one:
                    g_nh = zero
                if vh_raw < zero or vh_raw > one:
                    g_vh = zero
                # nh = n.h, vh = v.h, h = hv / hl
                g_h = g_nh * n + g_vh * v
                g_n = g_n + g_nh * h
                g_v = g_v + g_vh * h
                g_hv = g_h / hl
                if hh >= _DOT_EPS * _DOT_EPS:
                    g_hv = (g_h - h * wp.dot(g_h, h)) / hl
                # nl = n.l, hv = l + v, l = w / |w|
                g_l = g_hv + g_nl * n
                g_n = g_n + g_nl * l
                g_v = g_v + g_hv
                g_w = g_l
                if unclamped == 0:
                    g_w = (g_l - l * wp.dot(g_l, l)) / wl
                # G = A (n.w)
                g_n = g_n + g_cosw * w
                g_w = g_w + g_cosw * n
                if light_is_point[k] == 0:
                    # w = -u / |u|
                    g_u = (w * wp.dot(g_w, w) - g_w) / d
                else:
                    # w = u / d, A = 1 / d^2, d = sqrt(max(u.u, min_d2))
                    g_u = g_w / d
                    if unclamped != 0:  # d = |u|
                        g_d = -wp.dot(g_w, u) / (d * d) - wp.float64(2.0) * g_A / (d * d * d)
                        g_u = g_u + g_d * u / d
                    g_x = g_x - g_u
                for j in range(3):
                    wp.atomic_add(v_light, slot, k, j, type(v_light[slot, k, 0])(g_u[j]))
        if nv_raw < _DOT_EPS or nv_raw > one:
            g_nv = zero
        g_n = g_n + g_nv * v
        g_v = g_v + g_nv * n
        # a2 = alpha^2, alpha = max(r^2, ALPHA_MIN)
        if r * r >= _ALPHA_MIN:
            g_r = g_a2 * wp.float64(2.0) * alpha * wp.float64(2.0) * r
    # n = n_raw / max(|n_raw|, 1e-12), v = v_raw / |v_raw|
    if n_len >= _NORMAL_EPS:
        g_n = g_n - n * wp.dot(g_n, n)
    g_n = g_n / wp.max(n_len, _NORMAL_EPS)
    g_v = (g_v - v * wp.dot(g_v, v)) / v_len
    for j in range(3):
        v_position[i, j] = type(v_position[i, j])(g_x[j])
        v_normal[i, j] = type(v_normal[i, j])(g_n[j])
        v_wo[i, j] = type(v_wo[i, j])(g_v[j])
    for c in range(num_channels):
        v_base_color[i, c] = type(v_base_color[i, c])(g_c[c])
        v_f0[i, c] = type(v_f0[i, c])(g_f0[c])
    v_roughness[i] = type(v_roughness[i])(g_r)
    v_metallic[i] = type(v_metallic[i])(g_metal)


def _overload_all() -> None:
    for f in (wp.float32, wp.float64):
        a1, a2, a3 = wp.array(dtype=f), wp.array2d(dtype=f), wp.array3d(dtype=wp.float64)
        i32, f64 = wp.array(dtype=wp.int32), wp.float64
        common = [int, int, a2, a2, a2, a2, a1, a1, a2, int, a2, i32, a2, int, f64]
        wp.overload(direct_lights_forward, common + [a2])
        wp.overload(direct_lights_backward, common + [a2, a2, a2, a2, a2, a1, a1, a2, a3, int])


_overload_all()
