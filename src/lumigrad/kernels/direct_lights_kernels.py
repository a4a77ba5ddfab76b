"""Direct lighting of shading points by many directional, point and spot lights in one pass (float32 and float64
point arrays, float64 light tables, float64 arithmetic), with an explicit backward that recomputes each light's terms.

One thread per shading point ``i`` loops over the ``K`` lights. With ``n = normal / max(|normal|, 1e-12)`` and
``v = wo / |wo|`` (towards the viewer) at the point, light ``k`` of kind ``light_kind[k]`` arrives along

* ``0``, directional: ``l = light_vector[k]``, already the unit direction towards the light (the caller
  normalises), ``G = n.l``;
* ``1``, point, and ``2``, spot, at ``p = light_vector[k]``: ``u = p - x``, ``l = u / |u|``,
  ``d = sqrt(max(u.u, min_d2))``, ``G = (n.u) / d^3 * W * a`` (``= A (n.w)`` with ``w = u / d``, ``A = 1 / d^2``)
  with the glTF range window ``W = clamp(1 - (d ir)^4, 0, 1)`` (``ir = light_shape[k, 0]`` is ``1 / range``,
  0 without range) and, for spot lights only, the cone ``a = clamp(cd sc + of, 0, 1)^2``, ``cd = -(u.s) / d``
  (``s = light_axis[k]`` the unit axis, ``(ir, sc, of) = light_shape[k]``); ``a = 1`` otherwise;

and reflects by the glTF metallic-roughness BRDF of :mod:`lumigrad.shading.brdf` (same clamps)::

    valid = (n.l > 0) and (n.v > 0)
    nl = clamp(n.l, 1e-6, 1), nv = clamp(n.v, 1e-6, 1), hv = l + v, hc = max(|hv|^2, 1e-12)
    vh = clamp(|hv| / 2, 0, 1) (= v.h for unit l, v), alpha = max(r^2, 1e-3), a2 = alpha^2
    D V = a2 hc^2 / (2 pi qn^2 Q),  qn = a2 hc + (1 - a2) |n x hv|^2,
    Q = nl s(nv) + nv s(nl),  s(c) = sqrt(c^2 (1 - a2) + a2)
    m5 = (1 - vh)^5, kd_c = (1 - metal) c_c (1 - f0_c) / pi, F0_c = (1 - metal) f0_c + metal c_c
    f_c = kd_c (1 - m5) + D V (F0_c + (1 - F0_c) m5)                               (0 unless valid)
    out[i, c] += f_c * radiance[k, c] * G

(the same ``f`` as ``(1 - metal) ((1 - Fd) c / pi + Fd D V) + metal D V Fm`` of the reference). ``qn`` is
``q |hv|^2`` with GGX's ``q = (1 - nh^2) + nh^2 a2`` written as the twin writes it
(:func:`lumigrad.shading.brdf._cosines`): ``1 - nh^2 = |n x hv|^2 / |hv|^2``, a sum of non-negative terms that
keeps its digits near a sharp highlight, where ``1 - nh^2`` from ``n.h`` cancels. No normalised half vector:
per light three square roots and two divisions forward; the backward's one reciprocal
``1 / (qn Q s(nl) hc)`` gives the four it needs.

**Backward**: per point and light the same values are recomputed and differentiated by hand; point
gradients are written per point (no atomics; sums over the lights of the per-point factors are kept and the
material chain runs once per point), light gradients are summed (in float64, whatever the dtype) into
``v_light[slot, k]`` = ``(v_vector[3], v_axis[3], v_shape[3], v_radiance[C])`` with ``slot = i // group``:
the caller gives each CPU thread its own slot (``group`` larger than the points) or, on CUDA, one slot per
``group`` points, and reduces the slots.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})

#: Same constants as :mod:`lumigrad.shading.brdf`.
_ALPHA_MIN = wp.constant(wp.float64(1.0e-3))
_DOT_EPS = wp.constant(wp.float64(1.0e-6))
_INV_PI = wp.constant(wp.float64(0.3183098861837907))
#: :func:`lumigrad.shading.shade_direct`'s guard on the normal's length.
_NORMAL_EPS = wp.constant(wp.float64(1.0e-12))
#: At most this many colour channels (a ``vec4d`` accumulator); the wrapper falls back beyond it.
MAX_CHANNELS = 4
#: Light kinds (``light_kind``).
DIRECTIONAL, POINT, SPOT = 0, 1, 2
#: Per-light gradient entries before the radiance's: vector (3), axis (3), shape (3).
LIGHT_GRADS = 9


@wp.struct
class _Point:
    """A shading point's terms shared by all lights."""

    x: wp.vec3d
    n: wp.vec3d
    v: wp.vec3d
    n_len: wp.float64
    v_len: wp.float64
    nv_raw: wp.float64
    nv: wp.float64
    r: wp.float64
    alpha: wp.float64
    a2: wp.float64
    one_a2: wp.float64
    s1: wp.float64
    a2_2pi: wp.float64
    metal: wp.float64


@wp.struct
class _Incoming:
    """One light's geometry at a point (``ok`` 0: it adds nothing, no gradient)."""

    ok: int
    kind: int
    unclamped: int
    l: wp.vec3d
    u: wp.vec3d
    inv_len: wp.float64
    nl_raw: wp.float64
    G0: wp.float64
    K3: wp.float64
    dcl: wp.float64
    inv_dcl: wp.float64
    ir: wp.float64
    t: wp.float64
    W: wp.float64
    cd: wp.float64
    tt: wp.float64
    a: wp.float64


@wp.struct
class _Lobe:
    """The BRDF's terms of one light at a point (``qn`` and ``Q``, not yet ``D V``)."""

    nl: wp.float64
    hv: wp.vec3d
    hc: wp.float64
    hl: wp.float64
    h_clamped: int
    c: wp.vec3d
    c2: wp.float64
    vh_raw: wp.float64
    m: wp.float64
    m5: wp.float64
    qn: wp.float64
    s2: wp.float64
    Q: wp.float64


@wp.func
def _vec(a: wp.array2d(dtype=Any), i: int):
    return wp.vec3d(wp.float64(a[i, 0]), wp.float64(a[i, 1]), wp.float64(a[i, 2]))


@wp.func
def _unit(a: wp.array2d(dtype=Any), i: int, eps: wp.float64):
    """``(a[i] / max(|a[i]|, eps), |a[i]|)``."""
    raw = _vec(a, i)
    length = wp.length(raw)
    return raw * (wp.float64(1.0) / wp.max(length, eps)), length


@wp.func
def _channels(a: wp.array2d(dtype=Any), i: int, num_channels: int):
    out = wp.vec4d()
    for c in range(num_channels):
        out[c] = wp.float64(a[i, c])
    return out


@wp.func
def _point(i: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any), wo: wp.array2d(dtype=Any),
           roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any)):
    one = wp.float64(1.0)
    p = _Point()
    p.x = _vec(position, i)
    n, n_len = _unit(normal, i, _NORMAL_EPS)
    v, v_len = _unit(wo, i, wp.float64(0.0))
    p.n = n
    p.v = v
    p.n_len = n_len
    p.v_len = v_len
    p.nv_raw = wp.dot(n, v)
    p.nv = wp.min(wp.max(p.nv_raw, _DOT_EPS), one)
    r = wp.float64(roughness[i])
    p.r = r
    p.alpha = wp.max(r * r, _ALPHA_MIN)
    p.a2 = p.alpha * p.alpha
    p.one_a2 = one - p.a2
    p.s1 = wp.sqrt(p.nv * p.nv * p.one_a2 + p.a2)
    p.a2_2pi = p.a2 * wp.float64(0.5) * _INV_PI
    p.metal = wp.float64(metallic[i])
    return p


@wp.func
def _mix(metal: wp.float64, cvec: wp.vec4d, f0vec: wp.vec4d):
    """``(kd, F0)``: ``kd_c = (1 - metal) c_c (1 - f0_c) / pi``, ``F0_c = (1 - metal) f0_c + metal c_c``."""
    one = wp.float64(1.0)
    w_d = one - metal
    kd = wp.vec4d()
    F0 = wp.vec4d()
    for c in range(4):  # zeros beyond num_channels
        kd[c] = w_d * cvec[c] * (one - f0vec[c]) * _INV_PI
        F0[c] = w_d * f0vec[c] + metal * cvec[c]
    return kd, F0


@wp.func
def _incoming(p: _Point, k: int, light_vector: wp.array2d(dtype=Any), light_kind: wp.array(dtype=wp.int32),
              light_shape: wp.array2d(dtype=Any), light_axis: wp.array2d(dtype=Any), min_d2: wp.float64,
              inv_min_d: wp.float64):
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    g = _Incoming()
    g.ok = 0
    g.kind = light_kind[k]
    g.unclamped = 1
    g.W = one
    g.a = one
    vec = _vec(light_vector, k)
    if g.kind == 0:
        g.l = vec
        g.nl_raw = wp.dot(p.n, vec)
        if g.nl_raw > zero:
            g.ok = 1
            g.G0 = g.nl_raw
    else:
        u = vec - p.x
        s = wp.dot(u, u)
        inv_len = one / wp.sqrt(s)
        nu = wp.dot(p.n, u)
        g.u = u
        g.inv_len = inv_len
        g.nl_raw = nu * inv_len  # NaN at u = 0: not > 0, so no light (as the reference's 0 / 0 direction)
        if g.nl_raw > zero:
            g.ok = 1
            g.l = u * inv_len
            if s >= min_d2:
                g.K3 = inv_len * inv_len * inv_len
                g.dcl = s * inv_len
                g.inv_dcl = inv_len
            else:
                g.unclamped = 0
                g.K3 = inv_min_d * inv_min_d * inv_min_d
                g.dcl = one / inv_min_d
                g.inv_dcl = inv_min_d
            g.G0 = nu * g.K3
            g.ir = wp.float64(light_shape[k, 0])
            if g.ir > zero:
                g.t = g.dcl * g.ir
                t2 = g.t * g.t
                g.W = one - t2 * t2
                if g.W < zero:
                    g.ok = 0
            if g.kind == 2:
                g.cd = -wp.dot(u, _vec(light_axis, k)) * g.inv_dcl
                g.tt = g.cd * wp.float64(light_shape[k, 1]) + wp.float64(light_shape[k, 2])
                if g.tt <= zero:
                    g.ok = 0
                ta = wp.min(g.tt, one)
                g.a = ta * ta
    return g


@wp.func
def _lobe(p: _Point, g: _Incoming):
    """No normalised half vector: ``hv = l + v``, ``v.h = |hv| / 2`` (unit ``l``, ``v``) and ``q |hv|^2 =
    a2 |hv|^2 + (1 - a2) |n x hv|^2`` (the twin's ``1 - nh^2 = |n x hv|^2 / |hv|^2``: no cancellation)."""
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    b = _Lobe()
    b.nl = wp.min(wp.max(g.nl_raw, _DOT_EPS), one)
    hv = g.l + p.v
    b.hv = hv
    hh = wp.dot(hv, hv)
    b.h_clamped = 0
    if hh >= _DOT_EPS * _DOT_EPS:
        b.hc = hh
        b.hl = wp.sqrt(hh)
        b.vh_raw = wp.float64(0.5) * b.hl
    else:  # l = -v up to rounding: |l + v| clamped as the reference's
        b.h_clamped = 1
        b.hc = _DOT_EPS * _DOT_EPS
        b.hl = _DOT_EPS
        b.vh_raw = wp.dot(p.v, hv) / _DOT_EPS
    b.m = one - wp.min(wp.max(b.vh_raw, zero), one)
    m2 = b.m * b.m
    b.m5 = m2 * m2 * b.m
    b.c = wp.cross(p.n, hv)
    b.c2 = wp.dot(b.c, b.c)
    b.qn = p.a2 * b.hc + p.one_a2 * b.c2
    b.s2 = wp.sqrt(b.nl * b.nl * p.one_a2 + p.a2)
    b.Q = b.nl * p.s1 + p.nv * b.s2
    return b


@wp.kernel
def direct_lights_forward(offset: int, end: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any),
                          wo: wp.array2d(dtype=Any), base_color: wp.array2d(dtype=Any),
                          roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any),
                          f0: wp.array2d(dtype=Any), num_channels: int, light_vector: wp.array2d(dtype=Any),
                          light_kind: wp.array(dtype=wp.int32), light_radiance: wp.array2d(dtype=Any),
                          light_shape: wp.array2d(dtype=Any), light_axis: wp.array2d(dtype=Any),
                          num_lights: int, min_d2: wp.float64, inv_min_d: wp.float64, out: wp.array2d(dtype=Any)):
    i = offset + wp.tid()
    one = wp.float64(1.0)
    acc = wp.vec4d()
    p = _point(i, position, normal, wo, roughness, metallic)
    if p.nv_raw > wp.float64(0.0):
        kd, F0 = _mix(p.metal, _channels(base_color, i, num_channels), _channels(f0, i, num_channels))
        for k in range(num_lights):
            g = _incoming(p, k, light_vector, light_kind, light_shape, light_axis, min_d2, inv_min_d)
            if g.ok == 0:
                continue
            b = _lobe(p, g)
            dv = p.a2_2pi * b.hc * b.hc / (b.qn * b.qn * b.Q)
            G = g.G0 * g.W * g.a
            one_m5 = one - b.m5
            for c in range(4):  # all of MAX_CHANNELS (constant: unrolled, the vectors stay in registers)
                F0c = F0[c]
                f = kd[c] * one_m5 + dv * (F0c + (one - F0c) * b.m5)
                acc[c] = acc[c] + f * wp.float64(light_radiance[k, c]) * G
    for c in range(num_channels):
        out[i, c] = type(out[i, c])(acc[c])


@wp.kernel
def direct_lights_backward(offset: int, end: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any),
                           wo: wp.array2d(dtype=Any), base_color: wp.array2d(dtype=Any),
                           roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any),
                           f0: wp.array2d(dtype=Any), num_channels: int, light_vector: wp.array2d(dtype=Any),
                           light_kind: wp.array(dtype=wp.int32), light_radiance: wp.array2d(dtype=Any),
                           light_shape: wp.array2d(dtype=Any), light_axis: wp.array2d(dtype=Any),
                           num_lights: int, min_d2: wp.float64, inv_min_d: wp.float64, v_out: wp.array2d(dtype=Any),
                           v_position: wp.array2d(dtype=Any), v_normal: wp.array2d(dtype=Any),
                           v_wo: wp.array2d(dtype=Any), v_base_color: wp.array2d(dtype=Any),
                           v_roughness: wp.array(dtype=Any), v_metallic: wp.array(dtype=Any),
                           v_f0: wp.array2d(dtype=Any), v_light: wp.array3d(dtype=Any), group: int,
                           want_point: int, want_light: int):
    """``v_light[slot, k]`` holds ``(v_vector[0:3], v_axis[0:3], v_shape[0:3], v_radiance[0:C])``; ``want_point`` 0
    skips the point gradients (not written), ``want_light`` 0 the light gradients (``v_light`` untouched)."""
    i = offset + wp.tid()
    slot = i // group
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    two = wp.float64(2.0)
    p = _point(i, position, normal, wo, roughness, metallic)
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
    if p.nv_raw > zero:
        cvec = _channels(base_color, i, num_channels)
        f0vec = _channels(f0, i, num_channels)
        kd, F0 = _mix(p.metal, cvec, f0vec)
        sum_kd = wp.vec4d()  # sum over lights of d out / d kd_c, then of d out / d F0_c
        sum_F0 = wp.vec4d()
        gE_a2 = zero  # sums over the lights for the gradient of a2 (D's numerator, q, the Smith roots)
        gqn_a2 = zero
        gQ_s2 = zero
        gQ_nl = zero
        gQ_a2 = zero
        for k in range(num_lights):
            inc = _incoming(p, k, light_vector, light_kind, light_shape, light_axis, min_d2, inv_min_d)
            if inc.ok == 0:
                continue
            b = _lobe(p, inc)
            R = one / (b.qn * b.Q * b.s2 * b.hc)
            qQ = b.qn * b.Q
            s2hc = b.s2 * b.hc
            iqn = R * b.Q * s2hc
            iQ = R * b.qn * s2hc
            is2 = R * qQ * b.hc
            ihc = R * qQ * b.s2
            dv = p.a2_2pi * b.hc * b.hc * iqn * iqn * iQ
            G = inc.G0 * inc.W * inc.a
            one_m5 = one - b.m5
            g_G = zero
            g_dv = zero
            g_m5 = zero
            for c in range(4):  # all of MAX_CHANNELS, as the forward
                Lc = wp.float64(light_radiance[k, c])
                F0c = F0[c]
                spec = F0c + (one - F0c) * b.m5
                f = kd[c] * one_m5 + dv * spec
                g_G = g_G + g[c] * f * Lc
                if want_light != 0:
                    wp.atomic_add(v_light, slot, k, LIGHT_GRADS + c, type(v_light[slot, k, 0])(g[c] * f * G))
                gf = g[c] * Lc * G
                if want_point != 0:
                    sum_kd[c] = sum_kd[c] + gf * one_m5
                    sum_F0[c] = sum_F0[c] + gf * dv * one_m5
                g_dv = g_dv + gf * spec
                g_m5 = g_m5 + gf * (dv * (one - F0c) - kd[c])
            # D V = a2 hc^2 / (2 pi qn^2 Q), qn = a2 hc + (1 - a2) c2, c2 = |n x hv|^2
            gE = g_dv * dv
            g_qn = -two * gE * iqn
            g_c2 = g_qn * p.one_a2
            g_hc = two * gE * ihc + g_qn * p.a2
            g_Q = -gE * iQ
            g_nl = g_Q * (p.s1 + p.nv * b.nl * p.one_a2 * is2)
            if want_point != 0:
                gE_a2 = gE_a2 + gE
                gqn_a2 = gqn_a2 + g_qn * (b.hc - b.c2)
                gQ_s2 = gQ_s2 + g_Q * b.s2
                gQ_nl = gQ_nl + g_Q * b.nl
                gQ_a2 = gQ_a2 + g_Q * (one - b.nl * b.nl) * is2
            # m5 = (1 - vh)^5
            m2 = b.m * b.m
            g_vh = -wp.float64(5.0) * m2 * m2 * g_m5
            # clamps (gradient passes on the closed interval, as torch.clamp's)
            if inc.nl_raw < _DOT_EPS or inc.nl_raw > one:
                g_nl = zero
            if b.vh_raw < zero or b.vh_raw > one:
                g_vh = zero
            # c2 = |n x hv|^2, hc = |hv|^2 (or 1e-12), vh = |hv| / 2 (or v.hv / 1e-6), hv = l + v
            hv = b.hv
            g_hv = (two * g_c2) * wp.cross(b.c, p.n)
            g_vv = wp.vec3d()
            if b.h_clamped == 0:
                g_hv = g_hv + (two * g_hc + wp.float64(0.5) * g_vh * b.hl * ihc) * hv
            else:
                g_hv = g_hv + (g_vh / _DOT_EPS) * p.v
                g_vv = (g_vh / _DOT_EPS) * hv
            g_l = g_hv + g_nl * p.n
            if want_point != 0:
                g_n = g_n + (two * g_c2) * wp.cross(hv, b.c) + g_nl * inc.l
                g_v = g_v + g_hv + g_vv
            # G = G0 W a
            g_G0 = g_G * inc.W * inc.a
            l = inc.l
            if inc.kind == 0:  # G0 = n.l
                g_l = g_l + g_G0 * p.n
                if want_point != 0:
                    g_n = g_n + g_G0 * l
                if want_light != 0:
                    for j in range(3):
                        wp.atomic_add(v_light, slot, k, j, type(v_light[slot, k, 0])(g_l[j]))
            else:
                u = inc.u
                # l = u / |u|, G0 = (n.u) K3 (K3 = 1 / |u|^3, or 1 / min_d^3 inside it)
                g_u = inc.inv_len * (g_l - l * wp.dot(g_l, l))
                g_u = g_u + g_G0 * inc.K3 * p.n
                if inc.unclamped != 0:
                    g_u = g_u - wp.float64(3.0) * g_G0 * inc.K3 * inc.nl_raw * l
                if want_point != 0:
                    g_n = g_n + g_G0 * inc.K3 * u
                if inc.ir > zero:  # W = 1 - (d ir)^4
                    g_W = g_G * inc.G0 * inc.a
                    t3 = inc.t * inc.t * inc.t
                    if want_light != 0:
                        g_ir = -g_W * wp.float64(4.0) * t3 * inc.dcl
                        wp.atomic_add(v_light, slot, k, 6, type(v_light[slot, k, 0])(g_ir))
                    if inc.unclamped != 0:
                        g_u = g_u - g_W * wp.float64(4.0) * t3 * inc.ir * l
                if inc.kind == 2:  # a = min(cd sc + of, 1)^2, cd = -(u.s) / d
                    g_tt = zero
                    if inc.tt <= one:
                        g_tt = g_G * inc.G0 * inc.W * two * inc.tt
                    g_cd = g_tt * wp.float64(light_shape[k, 1])
                    axis = _vec(light_axis, k)
                    if want_light != 0:
                        wp.atomic_add(v_light, slot, k, 7, type(v_light[slot, k, 0])(g_tt * inc.cd))
                        wp.atomic_add(v_light, slot, k, 8, type(v_light[slot, k, 0])(g_tt))
                        g_axis = -g_cd * inc.inv_dcl * u
                        for j in range(3):
                            wp.atomic_add(v_light, slot, k, 3 + j, type(v_light[slot, k, 0])(g_axis[j]))
                    if inc.unclamped != 0:
                        g_u = g_u - g_cd * inc.inv_dcl * (axis + inc.cd * l)
                    else:
                        g_u = g_u - g_cd * inc.inv_dcl * axis
                g_x = g_x - g_u
                if want_light != 0:
                    for j in range(3):
                        wp.atomic_add(v_light, slot, k, j, type(v_light[slot, k, 0])(g_u[j]))
        if want_point == 0:  # light gradients only: the point's chain and stores are skipped
            return
        # Smith visibility through nv (clamped) and a2
        inv_s1 = one / p.s1
        g_nv = gQ_s2 + p.nv * p.one_a2 * inv_s1 * gQ_nl
        if p.nv_raw < _DOT_EPS or p.nv_raw > one:
            g_nv = zero
        g_n = g_n + g_nv * p.v
        g_v = g_v + g_nv * p.n
        g_a2 = gE_a2 / p.a2 + gqn_a2
        g_a2 = g_a2 + (one - p.nv * p.nv) * wp.float64(0.5) * inv_s1 * gQ_nl + wp.float64(0.5) * p.nv * gQ_a2
        # a2 = alpha^2, alpha = max(r^2, ALPHA_MIN)
        if p.r * p.r >= _ALPHA_MIN:
            g_r = g_a2 * two * p.alpha * two * p.r
        # kd_c = (1 - metal) c_c (1 - f0_c) / pi, F0_c = (1 - metal) f0_c + metal c_c
        w_d = one - p.metal
        for c in range(num_channels):
            cc = cvec[c]
            f0c = f0vec[c]
            g_c[c] = sum_kd[c] * w_d * (one - f0c) * _INV_PI + sum_F0[c] * p.metal
            g_f0[c] = -sum_kd[c] * w_d * cc * _INV_PI + sum_F0[c] * w_d
            g_metal = g_metal - sum_kd[c] * cc * (one - f0c) * _INV_PI + sum_F0[c] * (cc - f0c)
    if want_point == 0:
        return
    # n = n_raw / max(|n_raw|, 1e-12), v = v_raw / |v_raw|
    n = p.n
    v = p.v
    if p.n_len >= _NORMAL_EPS:
        g_n = g_n - n * wp.dot(g_n, n)
    g_n = g_n * (wp.float64(1.0) / wp.max(p.n_len, _NORMAL_EPS))
    g_v = (g_v - v * wp.dot(g_v, v)) * (wp.float64(1.0) / p.v_len)
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
        i32, f64, d2 = wp.array(dtype=wp.int32), wp.float64, wp.array2d(dtype=wp.float64)
        common = [int, int, a2, a2, a2, a2, a1, a1, a2, int, d2, i32, d2, d2, d2, int, f64, f64]
        wp.overload(direct_lights_forward, common + [a2])
        wp.overload(direct_lights_backward, common + [a2, a2, a2, a2, a2, a1, a1, a2, a3, int, int, int])


_overload_all()
