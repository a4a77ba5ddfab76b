"""Direct lighting of shading points by many directional, point and spot lights in one pass (float32 and float64
point arrays, float64 light tables, float64 arithmetic), with an explicit backward that recomputes each light's terms.

One thread per shading point ``i`` loops over the ``K`` lights, :data:`LANES` at a time and the last
``K mod LANES`` one by one (the light table is one column per light, ``lights[ROWS, K]``, see :data:`VECTOR`). With ``n = normal / max(|normal|, 1e-12)`` and
``v = wo / |wo|`` (towards the viewer) at the point, light ``k`` arrives along

* a directional light (``PT`` 0): ``l = u = vector[k]``, already the unit direction towards the light (the
  caller normalises), ``G = n.l`` (computed as the point light's ``(n.u) / |u|^3``, equal for ``|u| = 1``; its
  gradient differs only along ``u``, which the caller's normalisation removes); it does not read the point's
  position ``x``;
* a point or spot light (``PT`` 1) at ``p = vector[k]``: ``u = p - x``, ``l = u / |u|``,
  ``d = sqrt(max(u.u, min_d2))``, ``G = (n.u) / d^3 * W * a`` (``= A (n.w)`` with ``w = u / d``, ``A = 1 / d^2``)
  with the glTF range window ``W = clamp(1 - (d ir)^4, 0, 1)`` (``ir`` is ``1 / range``, 0 without range)
  and the cone ``a = clamp(cd sc + of, 0, 1)^2``, ``cd = -(u.s) / d`` (``s`` the spot's unit axis); lights
  that are not spots have ``sc = 0``, ``of = 1``: ``a = 1``;

and reflects by the glTF metallic-roughness BRDF of :mod:`lumigrad.shading.brdf` (same clamps)::

    valid = (n.l > 0) and (n.v > 0)
    nl = clamp(n.l, 1e-6, 1), nv = clamp(n.v, 1e-6, 1), hv = l + v, hc = max(|hv|^2, 1e-12)
    vh = clamp(|hv| / 2, 0, 1) (= v.h for unit l, v), alpha = max(r^2, 1e-3), a2 = alpha^2
    D V = a2 hc^2 / (2 pi qn^2 Q),  qn = a2 hc + (1 - a2) |n x hv|^2,
    Q = nl s(nv) + nv s(nl),  s(c) = sqrt(c^2 (1 - a2) + a2)
    m5 = (1 - vh)^5, kd_c = (1 - metal) c_c (1 - f0_c) / pi, F0_c = (1 - metal) f0_c + metal c_c
    f_c = kd_c (1 - m5) + D V (F0_c + (1 - F0_c) m5)                               (0 unless valid)
    out[i, c] += f_c * radiance[k, c] * G

(the same ``f`` as ``(1 - metal) ((1 - Fd) c / pi + Fd D V) + metal D V Fm`` of the reference). With a specular
weight ``s`` (``KHR_materials_specular``: the reference's ``Fd`` is ``s schlick(f0)``) the caller passes ``s f0`` as
``f0`` and ``s`` per point, and the ``weighted`` kernels (``wp.static``: the others run none of it) add::

    e_c = (1 - metal) (1 - s) c_c / pi, f90 = (1 - metal) s + metal
    f_c = kd_c (1 - m5) + e_c m5 + D V (F0_c + (f90 - F0_c) m5)

(``s = 1``: ``e = 0``, ``f90 = 1``, the formula above), with ``d out / d s`` from ``e`` and ``f90`` (the chain
through ``s f0`` is PyTorch's). ``qn`` is
``q |hv|^2`` with GGX's ``q = (1 - nh^2) + nh^2 a2`` written as the twin writes it
(:func:`lumigrad.shading.brdf._cosines`): ``1 - nh^2 = |n x hv|^2 / |hv|^2``, a sum of non-negative terms that
keeps its digits near a sharp highlight, where ``1 - nh^2`` from ``n.h`` cancels. No normalised half vector:
per light three square roots and two divisions forward; the backward's one reciprocal
``1 / (qn Q s(nl) hc)`` gives the four it needs.

**Lanes**: every light runs the same branch-free code (the kinds, the range window, the cone and the clamps'
ends are selects and table entries), and a light that adds nothing (``valid`` false, outside its range or
cone, at the point itself) is multiplied by 0 after its inputs were made harmless. So the :data:`LANES` copies
of a step's code are identical, independent and in one basic block, and LLVM's SLP vectoriser packs part of
them into 256-bit instructions. It packs what feeds stores to adjacent addresses: the forward's four channels
(its output always has :data:`MAX_CHANNELS` columns, see :func:`forward_kernel`), and in the backward the four
lanes, because a block's light gradients and its per-lane point terms are added after the block as one
4-vector per row (``v_light[slot, row, block]`` and ``scratch[srow, entry]``, lanes side by side). Any branch or
store between the lanes splits that block and loses the gain (measured: a uniform ``if`` inside the lane code,
or a test skipping a block of back-facing lights, made the forward slower than the per-light loop). The
arithmetic is float64 (the results equal the per-light loop's to rounding).

**Explicit lanes** (point-light tables: the forward, and the backward for the lights' gradients, the points'
(on the CPU: their per-lane terms summed in ``scratch`` as ``vec4d``) or both):
a full block's terms are computed as one ``wp.vec4d`` per term, lane ``j`` light ``LANES block + j``
(:class:`_Block`, with the component-wise helpers of :mod:`lumigrad.kernels.lanes4`), from a ``vec4d`` view
of the light table (``lanes[row, block]``: the table is padded to whole blocks, so a row of a block is one
load instead of four strided ones, which LLVM had turned into gathers). The same operations in the same order
as the per-lane code, so the same values. LLVM's SLP vectoriser still chooses the SIMD form (Warp's vector
operations are per-component code), but finds it far more often on these adjacent lanes.
The forward runs two blocks a step into two sums (independent chains that hide the square roots' and
divisions' latency; the backward gained nothing from it). Measured on Spot's pixels, 1 thread
(``docs/benchmarks.md``, branch lights4x): forward 11.5-12 -> 7.6 ns a pair, light-gradient backward
22.4-23 -> 18.9-19.3; with the points' gradients too (branch lights5), 64 / 1 lights fwd+bwd 5.7-6.0x -> 4.5-4.6x
process CPU time.

**Native SIMD on the CPU** (branch lights6): there the point-light tables' full blocks run instead in
:mod:`lumigrad.kernels.direct_lights_native`, the same terms written in C++ with clang vector types (two blocks a
step as 8 float64 lanes), which the compiler keeps packed: forward 7.6 -> 3.6 ns a pair, backward 19.5 -> 8.0
(light gradients) and 20-24 -> 10.7 (the points' too). CUDA, and the CPU with ``direct_lights.NATIVE_LANES``
off, run the Warp-language lanes above.

**Kernels per case**: :func:`forward_kernel` and :func:`backward_kernel` are built (and compiled on first
launch) per case with ``wp.static`` flags, so the common case runs no dead arithmetic: ``point_only`` tables
(point lights without range or cone) leave out the directional, range and cone terms, and the backward
generates only the gradients asked for (the point's, the lights', the lights' axis and shape rows).

**Backward**: per point and light the same values are recomputed and differentiated by hand; point
gradients are written per point (no atomics; each lane's per-point factors are summed in ``scratch``, and the
material chain runs once per point), light gradients are summed (in float64, whatever the dtype) into
``v_light[slot, row, k // LANES][k % LANES]`` (the table's rows: vector, axis, shape, radiance) with
``slot = i // group``: the caller gives each CPU thread its own slot and scratch row (``group`` larger than the
points) or, on CUDA, one slot per ``group`` points (there the point's terms are summed in registers), and
reduces the slots.
"""

from __future__ import annotations

import functools
from typing import Any

import warp as wp

from . import lanes4 as l4

wp.set_module_options({"enable_backward": False})

#: Same constants as :mod:`lumigrad.shading.brdf`.
_ALPHA_MIN = wp.constant(wp.float64(1.0e-3))
#: The BRDF's floor on the cosines (and on ``|l + v|``), as a Python float for native code.
DOT_EPS = 1.0e-6
_DOT_EPS = wp.constant(wp.float64(DOT_EPS))
_INV_PI = wp.constant(wp.float64(0.3183098861837907))
#: :func:`lumigrad.shading.shade_direct`'s guard on the normal's length.
_NORMAL_EPS = wp.constant(wp.float64(1.0e-12))
#: At most this many colour channels (a ``vec4d`` accumulator); the wrapper falls back beyond it.
MAX_CHANNELS = 4
#: Rows of the light table ``lights[ROWS, K]`` (one column per light):
#: the point or spot light's position or the directional light's unit direction towards it (3), the spot's unit
#: axis (3), the shape ``(ir, sc, of)`` (3), ``PT`` (1 for point and spot lights, 0 for directional ones) and
#: the radiance (4). The light gradients ``v_light[slot, ROWS, K]`` use the same rows (``PT``'s unused).
VECTOR, AXIS, SHAPE, PT, RADIANCE, ROWS = 0, 3, 6, 9, 10, 14
#: Lights per step of a shading point's loop: their code is unrolled side by side, branch-free, so that LLVM
#: turns the lanes into SIMD instructions (4 float64 lanes: one 256-bit register).
LANES = 4


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
class _Pair:
    """One light's terms at a point. ``ok`` 0: it adds nothing and gets no gradient; its other fields are then
    finite but meaningless (the lanes run without branches, so they are computed all the same)."""

    ok: wp.float64
    unclamped: int
    l: wp.vec3d
    u: wp.vec3d
    axis: wp.vec3d
    inv_len: wp.float64
    nl_raw: wp.float64
    G0: wp.float64
    K3: wp.float64
    dcl: wp.float64
    inv_dcl: wp.float64
    ir: wp.float64
    sc: wp.float64
    t: wp.float64
    W: wp.float64
    cd: wp.float64
    tt: wp.float64
    a: wp.float64
    G: wp.float64
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
def _column(table: wp.array2d(dtype=wp.float64), row: int, k: int):
    return wp.vec3d(table[row, k], table[row + 1, k], table[row + 2, k])


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
def _weight_terms(metal: wp.float64, cvec: wp.vec4d, s: wp.float64):
    """``(e, f90)`` of a specular weight ``s`` (``KHR_materials_specular``; ``f0`` already ``s f0``):
    ``e_c = (1 - metal) (1 - s) c_c / pi``, ``f90 = (1 - metal) s + metal``."""
    one = wp.float64(1.0)
    w_d = one - metal
    e = wp.vec4d()
    for c in range(4):
        e[c] = w_d * (one - s) * cvec[c] * _INV_PI
    return e, w_d * s + metal


@functools.cache
def _pair_func(point_only: bool):
    """``_pair(p, k, lights, min_d2, inv_min_d)``: light ``k`` at point ``p``, without branches. The general
    version runs every light through the point light's path: a directional light's ``u`` is its unit vector
    (``PT`` 0: unclamped, ``K3`` 1 up to rounding; the point's position is not read, a select picks the vector),
    the range window (``ir`` 0: ``W`` 1) and the cone (``sc`` 0, ``of`` 1 for all but spot lights: ``a`` 1); the
    ends of the clamps are selects. ``point_only``: the table holds point lights without range or cone, and
    these terms are not generated (``W``, ``a`` and the cone's fields are left unset). Where ``ok`` is 0 the
    inputs are replaced by harmless ones, so nothing is NaN."""

    @wp.func
    def _pair(p: _Point, k: int, lights: wp.array2d(dtype=wp.float64), min_d2: wp.float64,
              inv_min_d: wp.float64):
        one = wp.float64(1.0)
        zero = wp.float64(0.0)
        b = _Pair()
        vector = _column(lights, VECTOR, k)
        pt = lights[PT, k]
        if wp.static(point_only):
            u0 = vector - p.x
        else:
            u0 = wp.where(pt != zero, vector - p.x, vector)
        s0 = wp.dot(u0, u0)
        live = s0 > zero  # a point light at the shading point lights nothing (the reference's 0 / 0 direction)
        u = wp.where(live, u0, p.n)
        s = wp.where(live, s0, one)
        inv_len = one / wp.sqrt(s)
        nu = wp.dot(p.n, u)
        b.u = u
        b.inv_len = inv_len
        b.nl_raw = nu * inv_len
        b.l = u * inv_len
        if wp.static(point_only):
            b.unclamped = wp.where(s >= min_d2, 1, 0)
        else:
            b.unclamped = wp.where(s >= min_d2, 1, wp.where(pt == zero, 1, 0))  # selects: `or` would branch
        inv3 = inv_len * inv_len * inv_len
        inv_min3 = inv_min_d * inv_min_d * inv_min_d
        b.K3 = wp.where(b.unclamped != 0, inv3, inv_min3)
        b.G0 = nu * b.K3
        if wp.static(point_only):
            b.G = b.G0
            b.ok = wp.where(live, wp.where(b.nl_raw > zero, one, zero), zero)
        else:
            b.dcl = wp.where(b.unclamped != 0, s * inv_len, one / inv_min_d)
            b.inv_dcl = wp.where(b.unclamped != 0, inv_len, inv_min_d)
            b.ir = lights[SHAPE, k]
            b.t = b.dcl * b.ir
            t2 = b.t * b.t
            b.W = one - t2 * t2
            b.axis = _column(lights, AXIS, k)
            b.sc = lights[SHAPE + 1, k]
            b.cd = -wp.dot(u, b.axis) * b.inv_dcl
            b.tt = b.cd * b.sc + lights[SHAPE + 2, k]
            ta = wp.min(b.tt, one)
            b.a = ta * ta
            b.G = b.G0 * b.W * b.a
            b.ok = wp.where(live, wp.where(b.nl_raw > zero, wp.where(b.W >= zero, wp.where(b.tt > zero, one, zero),
                                                                       zero), zero), zero)
        # the BRDF, no normalised half vector: hv = l + v, v.h = |hv| / 2 (unit l, v) and q |hv|^2 =
        # a2 |hv|^2 + (1 - a2) |n x hv|^2 (the twin's 1 - nh^2 = |n x hv|^2 / |hv|^2: no cancellation)
        b.nl = wp.min(wp.max(b.nl_raw, _DOT_EPS), one)
        hv = b.l + p.v
        b.hv = hv
        hh = wp.dot(hv, hv)
        b.h_clamped = wp.where(hh < _DOT_EPS * _DOT_EPS, 1, 0)  # l = -v up to rounding: clamped as the reference
        b.hc = wp.where(b.h_clamped != 0, _DOT_EPS * _DOT_EPS, hh)
        b.hl = wp.where(b.h_clamped != 0, _DOT_EPS, wp.sqrt(hh))
        b.vh_raw = wp.where(b.h_clamped != 0, wp.dot(p.v, hv) / _DOT_EPS, wp.float64(0.5) * b.hl)
        b.m = one - wp.min(wp.max(b.vh_raw, zero), one)
        m2 = b.m * b.m
        b.m5 = m2 * m2 * b.m
        b.c = wp.cross(p.n, hv)
        b.c2 = wp.dot(b.c, b.c)
        b.qn = p.a2 * b.hc + p.one_a2 * b.c2
        b.s2 = wp.sqrt(b.nl * b.nl * p.one_a2 + p.a2)
        b.Q = b.nl * p.s1 + p.nv * b.s2
        return b

    return _pair


_LaneSums = wp.types.matrix(shape=(LANES, 4), dtype=wp.float64)


@functools.cache
def _radiance_func(point_only: bool, channels: int, weighted: bool):
    """``_radiance(p, kd, F0, e, f90, k, lights, min_d2, inv_min_d)``: light ``k``'s reflected radiance at ``p``
    in its first ``channels`` entries (0 where it adds nothing); ``e`` read only where ``weighted``."""
    pair = _pair_func(point_only)

    @wp.func
    def _radiance(p: _Point, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64, k: int,
                  lights: wp.array2d(dtype=wp.float64), min_d2: wp.float64, inv_min_d: wp.float64):
        one = wp.float64(1.0)
        b = pair(p, k, lights, min_d2, inv_min_d)
        dv = p.a2_2pi * b.hc * b.hc / (b.qn * b.qn * b.Q)
        G = b.G * b.ok
        one_m5 = one - b.m5
        out = wp.vec4d()
        for c in range(wp.static(channels)):  # constant: unrolled, the vectors stay in registers
            F0c = F0[c]
            f = kd[c] * one_m5 + dv * (F0c + (f90 - F0c) * b.m5)
            if wp.static(weighted):
                f = f + e[c] * b.m5
            out[c] = f * lights[RADIANCE + c, k] * G
        return out

    return _radiance


@wp.struct
class _Block:
    """The :class:`_Pair` terms of :data:`LANES` point lights (without range or cone) at a point, one ``vec4d``
    per term, lane ``j`` light ``k + j``: the packed form of :func:`_pair_func` ``(True)`` (same operations in the
    same order, so the same values to the bit). Masks (``ok``, ``unclamped``, ``h_clamped``) are 1 or 0."""

    ok: wp.vec4d
    unclamped: wp.vec4d
    ux: wp.vec4d
    uy: wp.vec4d
    uz: wp.vec4d
    lx: wp.vec4d
    ly: wp.vec4d
    lz: wp.vec4d
    hx: wp.vec4d
    hy: wp.vec4d
    hz: wp.vec4d
    cx: wp.vec4d
    cy: wp.vec4d
    cz: wp.vec4d
    inv_len: wp.vec4d
    nl_raw: wp.vec4d
    K3: wp.vec4d
    G0: wp.vec4d
    nl: wp.vec4d
    h_clamped: wp.vec4d
    hc: wp.vec4d
    hl: wp.vec4d
    vh_raw: wp.vec4d
    m: wp.vec4d
    m5: wp.vec4d
    c2: wp.vec4d
    qn: wp.vec4d
    s2: wp.vec4d
    Q: wp.vec4d


@wp.func
def _block(p: _Point, block: int, lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64, inv_min_d: wp.float64):
    """The point lights ``LANES block ...`` at ``p``; ``lanes[row, block]`` is the light table's row ``row`` of
    those lights (four adjacent float64: one load)."""
    one = wp.float64(1.0)
    zero = wp.float64(0.0)
    ones = l4.splat(one)
    zeros = l4.splat(zero)
    b = _Block()
    ux0 = lanes[VECTOR, block] - l4.splat(p.x[0])
    uy0 = lanes[VECTOR + 1, block] - l4.splat(p.x[1])
    uz0 = lanes[VECTOR + 2, block] - l4.splat(p.x[2])
    s0 = wp.cw_mul(ux0, ux0) + wp.cw_mul(uy0, uy0) + wp.cw_mul(uz0, uz0)
    live = l4.greater(s0, zeros)  # a light at the point lights nothing
    ux = l4.select(live, ux0, l4.splat(p.n[0]))
    uy = l4.select(live, uy0, l4.splat(p.n[1]))
    uz = l4.select(live, uz0, l4.splat(p.n[2]))
    b.ux = ux
    b.uy = uy
    b.uz = uz
    s = l4.select(live, s0, ones)
    inv_len = wp.cw_div(ones, l4.sqrt4(s))
    b.inv_len = inv_len
    nu = p.n[0] * ux + p.n[1] * uy + p.n[2] * uz
    b.nl_raw = wp.cw_mul(nu, inv_len)
    b.lx = wp.cw_mul(ux, inv_len)
    b.ly = wp.cw_mul(uy, inv_len)
    b.lz = wp.cw_mul(uz, inv_len)
    inv3 = wp.cw_mul(wp.cw_mul(inv_len, inv_len), inv_len)
    b.unclamped = l4.greater_equal(s, l4.splat(min_d2))
    b.K3 = l4.select(b.unclamped, inv3, l4.splat(inv_min_d * inv_min_d * inv_min_d))
    b.ok = wp.cw_mul(live, l4.greater(b.nl_raw, zeros))
    b.G0 = wp.cw_mul(nu, b.K3)
    b.nl = l4.clamp4(b.nl_raw, _DOT_EPS, one)
    hx = b.lx + l4.splat(p.v[0])
    hy = b.ly + l4.splat(p.v[1])
    hz = b.lz + l4.splat(p.v[2])
    b.hx = hx
    b.hy = hy
    b.hz = hz
    hh = wp.cw_mul(hx, hx) + wp.cw_mul(hy, hy) + wp.cw_mul(hz, hz)
    eps2 = _DOT_EPS * _DOT_EPS
    b.h_clamped = l4.greater(l4.splat(eps2), hh)
    b.hc = l4.select(b.h_clamped, l4.splat(eps2), hh)
    b.hl = l4.select(b.h_clamped, l4.splat(_DOT_EPS), l4.sqrt4(hh))
    b.vh_raw = l4.select(b.h_clamped, (p.v[0] * hx + p.v[1] * hy + p.v[2] * hz) * (one / _DOT_EPS),
                         wp.float64(0.5) * b.hl)
    b.m = ones - l4.clamp4(b.vh_raw, zero, one)
    m2 = wp.cw_mul(b.m, b.m)
    b.m5 = wp.cw_mul(wp.cw_mul(m2, m2), b.m)
    b.cx = p.n[1] * hz - p.n[2] * hy
    b.cy = p.n[2] * hx - p.n[0] * hz
    b.cz = p.n[0] * hy - p.n[1] * hx
    b.c2 = wp.cw_mul(b.cx, b.cx) + wp.cw_mul(b.cy, b.cy) + wp.cw_mul(b.cz, b.cz)
    b.qn = p.a2 * b.hc + p.one_a2 * b.c2
    b.s2 = l4.sqrt4(p.one_a2 * wp.cw_mul(b.nl, b.nl) + l4.splat(p.a2))
    b.Q = p.s1 * b.nl + p.nv * b.s2
    return b


@functools.cache
def _block_radiance_func(weighted: bool):
    """``_block_radiance(p, kd, F0, e, f90, block, lanes, min_d2, inv_min_d, acc)``: ``acc[c][j]`` plus light
    ``LANES block + j``'s reflected radiance in channel ``c`` (point lights only); ``e`` read only where
    ``weighted``."""

    @wp.func
    def _block_radiance(p: _Point, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64, block: int,
                        lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64, inv_min_d: wp.float64,
                        acc: wp.mat44d):
        one = wp.float64(1.0)
        b = _block(p, block, lanes, min_d2, inv_min_d)
        dv = p.a2_2pi * wp.cw_div(wp.cw_mul(b.hc, b.hc), wp.cw_mul(wp.cw_mul(b.qn, b.qn), b.Q))
        G = wp.cw_mul(b.G0, b.ok)
        one_m5 = l4.splat(one) - b.m5
        for c in range(MAX_CHANNELS):
            F0c = F0[c]
            f = kd[c] * one_m5 + wp.cw_mul(dv, l4.splat(F0c) + (f90 - F0c) * b.m5)
            if wp.static(weighted):
                f = f + e[c] * b.m5
            acc[c] = acc[c] + wp.cw_mul(wp.cw_mul(f, lanes[RADIANCE + c, block]), G)
        return acc

    return _block_radiance


@functools.cache
def _block_gradients_func(channels: int, want_point: bool, want_light: bool, weighted: bool):
    """``_block_gradients(p, kd, F0, e, f90, g, block, lanes, min_d2, inv_min_d, v_light, slot, scratch, srow)``: the
    gradients of the point lights ``LANES block ...`` at ``p`` for the output gradient ``g``: the lights'
    (position and radiance rows, ``want_light``) added to ``v_light[slot, row, block]``, the point's per-lane
    terms (``want_point``, the entries of :class:`_Sums` as :func:`_flat` orders them) added to
    ``scratch[srow, entry]``. :func:`_gradients_func` ``(True, channels, want_point, want_light, False)`` on
    :class:`_Block` lanes (same operations, same values). ``weighted``: with the specular weight's ``e`` and
    ``f90`` (their terms in the rows ``PE``, ``PF90``)."""

    @wp.func
    def _block_gradients(p: _Point, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64, g: wp.vec4d,
                         block: int,
                         lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64, inv_min_d: wp.float64,
                         v_light: wp.array3d(dtype=wp.vec4d), slot: int, scratch: wp.array2d(dtype=wp.vec4d),
                         srow: int):
        one = wp.float64(1.0)
        zero = wp.float64(0.0)
        two = wp.float64(2.0)
        ones = l4.splat(one)
        zeros = l4.splat(zero)
        b = _block(p, block, lanes, min_d2, inv_min_d)
        R = wp.cw_div(ones, wp.cw_mul(wp.cw_mul(b.qn, b.Q), wp.cw_mul(b.s2, b.hc)))
        qQ = wp.cw_mul(b.qn, b.Q)
        s2hc = wp.cw_mul(b.s2, b.hc)
        iqn = wp.cw_mul(wp.cw_mul(R, b.Q), s2hc)
        iQ = wp.cw_mul(wp.cw_mul(R, b.qn), s2hc)
        is2 = wp.cw_mul(wp.cw_mul(R, qQ), b.hc)
        ihc = wp.cw_mul(wp.cw_mul(R, qQ), b.s2)
        dv = p.a2_2pi * wp.cw_mul(wp.cw_mul(wp.cw_mul(b.hc, b.hc), wp.cw_mul(iqn, iqn)), iQ)
        one_m5 = ones - b.m5
        g_G = zeros
        g_dv = zeros
        g_m5 = zeros
        for c in range(wp.static(channels)):
            gk = g[c] * b.ok  # a light that adds nothing: every gradient below is a product with 0
            Lc = lanes[RADIANCE + c, block]
            F0c = F0[c]
            spec = l4.splat(F0c) + (f90 - F0c) * b.m5
            f = kd[c] * one_m5 + wp.cw_mul(dv, spec)
            if wp.static(weighted):
                f = f + e[c] * b.m5
            gkf = wp.cw_mul(gk, f)
            g_G = g_G + wp.cw_mul(gkf, Lc)
            if wp.static(want_light):
                wp.atomic_add(v_light, slot, RADIANCE + c, block, wp.cw_mul(gkf, b.G0))
            gf = wp.cw_mul(wp.cw_mul(gk, Lc), b.G0)
            if wp.static(want_point):
                scratch[srow, PKD + c] = scratch[srow, PKD + c] + wp.cw_mul(gf, one_m5)
                scratch[srow, PF0 + c] = scratch[srow, PF0 + c] + wp.cw_mul(wp.cw_mul(gf, dv), one_m5)
                if wp.static(weighted):
                    scratch[srow, PE + c] = scratch[srow, PE + c] + wp.cw_mul(gf, b.m5)
                    scratch[srow, PF90] = scratch[srow, PF90] + wp.cw_mul(wp.cw_mul(gf, dv), b.m5)
            g_dv = g_dv + wp.cw_mul(gf, spec)
            g_m5 = g_m5 + wp.cw_mul(gf, dv * (f90 - F0c) - l4.splat(kd[c] - e[c]))  # unweighted: f90 1, e 0
        gE = wp.cw_mul(g_dv, dv)
        g_qn = -two * wp.cw_mul(gE, iqn)
        g_c2 = p.one_a2 * g_qn
        g_hc = two * wp.cw_mul(gE, ihc) + p.a2 * g_qn
        g_Q = -wp.cw_mul(gE, iQ)
        g_nl = wp.cw_mul(g_Q, l4.splat(p.s1) + (p.nv * p.one_a2) * wp.cw_mul(b.nl, is2))
        if wp.static(want_point):
            scratch[srow, PA2] = scratch[srow, PA2] + gE
            scratch[srow, PA2 + 1] = scratch[srow, PA2 + 1] + wp.cw_mul(g_qn, b.hc - b.c2)
            scratch[srow, PA2 + 2] = scratch[srow, PA2 + 2] + wp.cw_mul(g_Q, b.s2)
            scratch[srow, PA2 + 3] = scratch[srow, PA2 + 3] + wp.cw_mul(g_Q, b.nl)
            scratch[srow, PA2 + 4] = scratch[srow, PA2 + 4] + wp.cw_mul(wp.cw_mul(g_Q, ones - wp.cw_mul(b.nl, b.nl)),
                                                                        is2)
        # the clamps pass the gradient on the closed interval, as torch.clamp's
        m2 = wp.cw_mul(b.m, b.m)
        g_vh = l4.select(wp.cw_mul(l4.greater_equal(b.vh_raw, zeros), l4.greater_equal(ones, b.vh_raw)),
                         -wp.float64(5.0) * wp.cw_mul(wp.cw_mul(m2, m2), g_m5), zeros)
        g_nl = l4.select(wp.cw_mul(l4.greater_equal(b.nl_raw, l4.splat(_DOT_EPS)), l4.greater_equal(ones, b.nl_raw)),
                         g_nl, zeros)
        # hv = l + v: 2 g_c2 (c x n) + (h_clamped ? (g_vh / eps) v : (2 g_hc + g_vh hl ihc / 2) hv)
        t2 = two * g_c2
        wv = g_vh * (one / _DOT_EPS)
        wh = two * g_hc + wp.float64(0.5) * wp.cw_mul(wp.cw_mul(g_vh, b.hl), ihc)
        ghx = wp.cw_mul(t2, p.n[2] * b.cy - p.n[1] * b.cz) + l4.select(b.h_clamped, p.v[0] * wv, wp.cw_mul(wh, b.hx))
        ghy = wp.cw_mul(t2, p.n[0] * b.cz - p.n[2] * b.cx) + l4.select(b.h_clamped, p.v[1] * wv, wp.cw_mul(wh, b.hy))
        ghz = wp.cw_mul(t2, p.n[1] * b.cx - p.n[0] * b.cy) + l4.select(b.h_clamped, p.v[2] * wv, wp.cw_mul(wh, b.hz))
        glx = ghx + p.n[0] * g_nl
        gly = ghy + p.n[1] * g_nl
        glz = ghz + p.n[2] * g_nl
        # l = u / |u|, G0 = (n.u) K3 (K3 = 1 / |u|^3, or 1 / min_d^3 inside it)
        gll = wp.cw_mul(glx, b.lx) + wp.cw_mul(gly, b.ly) + wp.cw_mul(glz, b.lz)
        gGK = wp.cw_mul(g_G, b.K3)
        gd = l4.select(b.unclamped, -wp.float64(3.0) * wp.cw_mul(gGK, b.nl_raw), zeros)
        gux = wp.cw_mul(b.inv_len, glx - wp.cw_mul(b.lx, gll)) + p.n[0] * gGK + wp.cw_mul(gd, b.lx)
        guy = wp.cw_mul(b.inv_len, gly - wp.cw_mul(b.ly, gll)) + p.n[1] * gGK + wp.cw_mul(gd, b.ly)
        guz = wp.cw_mul(b.inv_len, glz - wp.cw_mul(b.lz, gll)) + p.n[2] * gGK + wp.cw_mul(gd, b.lz)
        if wp.static(want_light):
            wp.atomic_add(v_light, slot, VECTOR, block, gux)
            wp.atomic_add(v_light, slot, VECTOR + 1, block, guy)
            wp.atomic_add(v_light, slot, VECTOR + 2, block, guz)
        if wp.static(want_point):
            # x: -g_u; v: g_hv (+ (g_vh / eps) hv where clamped); n: 2 g_c2 (hv x c) + g_nl l + g_G K3 u
            scratch[srow, PX] = scratch[srow, PX] + (zeros - gux)
            scratch[srow, PX + 1] = scratch[srow, PX + 1] + (zeros - guy)
            scratch[srow, PX + 2] = scratch[srow, PX + 2] + (zeros - guz)
            scratch[srow, PN] = scratch[srow, PN] + (wp.cw_mul(t2, wp.cw_mul(b.hy, b.cz) - wp.cw_mul(b.hz, b.cy))
                                                     + wp.cw_mul(g_nl, b.lx) + wp.cw_mul(gGK, b.ux))
            scratch[srow, PN + 1] = scratch[srow, PN + 1] + (wp.cw_mul(t2, wp.cw_mul(b.hz, b.cx) - wp.cw_mul(b.hx, b.cz))
                                                             + wp.cw_mul(g_nl, b.ly) + wp.cw_mul(gGK, b.uy))
            scratch[srow, PN + 2] = scratch[srow, PN + 2] + (wp.cw_mul(t2, wp.cw_mul(b.hx, b.cy) - wp.cw_mul(b.hy, b.cx))
                                                             + wp.cw_mul(g_nl, b.lz) + wp.cw_mul(gGK, b.uz))
            wvh = l4.select(b.h_clamped, wv, zeros)
            scratch[srow, PV] = scratch[srow, PV] + (ghx + wp.cw_mul(wvh, b.hx))
            scratch[srow, PV + 1] = scratch[srow, PV + 1] + (ghy + wp.cw_mul(wvh, b.hy))
            scratch[srow, PV + 2] = scratch[srow, PV + 2] + (ghz + wp.cw_mul(wvh, b.hz))
        return 0

    return _block_gradients


@functools.cache
def forward_kernel(point_only: bool, channels: int, native: bool = False, weighted: bool = False):
    """The forward kernel for tables of point lights only (``point_only``) or of any lights, and ``channels``
    colour channels (1 to :data:`MAX_CHANNELS`), compiled on first launch. Inputs: ``(offset, end, position,
    normal, wo, base_color, roughness, metallic, f0, specular, lights, num_lights, min_d2, inv_min_d, out,
    lanes)``; ``specular`` (``[P]``, the weight ``s``, with ``f0`` already ``s f0``) is read only where
    ``weighted`` (the kernel without it runs no arithmetic of it: ``f90 = 1``, ``e = 0``); ``lights``
    has ``num_lights`` columns, padded with zeros to whole blocks, and ``lanes`` (the last argument) is the
    same table as ``vec4d`` (``[ROWS, blocks]``); they run four at a time as lanes (point lights: from
    ``lanes``, as :class:`_Block`), and the last, partial block one light
    at a time. ``out`` has :data:`MAX_CHANNELS` columns whatever ``channels`` (the extra ones get 0): the
    4-channel arithmetic is what LLVM packs into 256-bit instructions, and with the 4th column not stored it
    is left out and the rest stays scalar (measured 17.7 against 12.4 ns per pair for 3 channels). ``native``
    (CPU only) runs the full blocks of point lights as explicit SIMD
    (:func:`lumigrad.kernels.direct_lights_native.block_radiance_native`); where the table is not ``point_only`` it
    has nothing to run and the kernel is the one without it (the same object)."""
    if native and not point_only:  # native SIMD runs point-light blocks only: the one kernel of this case
        return forward_kernel(point_only, channels, False, weighted)
    radiance = _radiance_func(point_only, MAX_CHANNELS, weighted)
    block_radiance = _block_radiance_func(weighted)
    native_radiance = None
    if native:
        from .direct_lights_native import block_radiance_native  # it imports this module's constants

        native_radiance = block_radiance_native(weighted)

    @wp.kernel(enable_backward=False, module="unique")
    def direct_lights_forward(offset: int, end: int, position: wp.array2d(dtype=Any), normal: wp.array2d(dtype=Any),
                              wo: wp.array2d(dtype=Any), base_color: wp.array2d(dtype=Any),
                              roughness: wp.array(dtype=Any), metallic: wp.array(dtype=Any),
                              f0: wp.array2d(dtype=Any), specular: wp.array(dtype=Any),
                              lights: wp.array2d(dtype=wp.float64), num_lights: int,
                              min_d2: wp.float64, inv_min_d: wp.float64, out: wp.array2d(dtype=Any),
                              lanes: wp.array2d(dtype=wp.vec4d)):
        i = offset + wp.tid()
        acc = wp.vec4d()
        part = _LaneSums()  # part[lane, c]: one sum per lane, so that the lanes' chains are independent
        packed = wp.mat44d()  # point lights: packed[c][lane], even blocks
        packed2 = wp.mat44d()  # odd blocks
        p = _point(i, position, normal, wo, roughness, metallic)
        if p.nv_raw > wp.float64(0.0):
            cvec = _channels(base_color, i, channels)
            kd, F0 = _mix(p.metal, cvec, _channels(f0, i, channels))
            e = wp.vec4d()
            f90 = wp.float64(1.0)
            if wp.static(weighted):
                e, f90 = _weight_terms(p.metal, cvec, wp.float64(specular[i]))
            blocks = num_lights // LANES
            if wp.static(native_radiance is not None):  # all full blocks at once, explicit SIMD
                if blocks > 0:  # fewer than LANES lights (the 1-light row): not even the sums' set-up
                    acc = native_radiance(p.x, p.n, p.v, p.nv, p.s1, p.a2, p.one_a2, p.a2_2pi, kd, F0, e, f90, blocks,
                                          lanes, min_d2, inv_min_d)
            elif wp.static(point_only):  # explicit lanes, two independent blocks a step (hides latency)
                for two in range(blocks // 2):
                    packed = block_radiance(p, kd, F0, e, f90, 2 * two, lanes, min_d2, inv_min_d, packed)
                    packed2 = block_radiance(p, kd, F0, e, f90, 2 * two + 1, lanes, min_d2, inv_min_d, packed2)
                if blocks % 2 == 1:
                    packed = block_radiance(p, kd, F0, e, f90, blocks - 1, lanes, min_d2, inv_min_d, packed)
            else:
                for block in range(blocks):
                    for lane in range(LANES):  # unrolled: the lanes' identical code, in one basic block
                        part[lane] = part[lane] + radiance(p, kd, F0, e, f90, block * LANES + lane, lights, min_d2,
                                                           inv_min_d)
            for k in range(blocks * LANES, num_lights):
                acc = acc + radiance(p, kd, F0, e, f90, k, lights, min_d2, inv_min_d)
        packed = packed + packed2
        for lane in range(LANES):
            if wp.static(point_only):
                acc = acc + wp.vec4d(packed[0, lane], packed[1, lane], packed[2, lane], packed[3, lane])
            else:
                acc = acc + part[lane]
        for c in range(MAX_CHANNELS):
            out[i, c] = type(out[i, c])(acc[c])

    for f in (wp.float32, wp.float64):
        wp.overload(direct_lights_forward, _common_types(f) + [wp.array2d(dtype=f), wp.array2d(dtype=wp.vec4d)])
    return direct_lights_forward


@wp.struct
class _Sums:
    """A point's gradient terms, one light's or summed over its lights: ``x``, ``n``, ``v`` (before the normalisations),
    ``d out / d kd_c`` and ``d out / d F0_c``, and the factors of the gradient of ``a2`` (D's numerator, ``q``,
    the Smith roots); with a specular weight, ``d out / d e_c`` and ``d out / d f90``."""

    g_x: wp.vec3d
    g_n: wp.vec3d
    g_v: wp.vec3d
    kd: wp.vec4d
    F0: wp.vec4d
    gE_a2: wp.float64
    gqn_a2: wp.float64
    gQ_s2: wp.float64
    gQ_nl: wp.float64
    gQ_a2: wp.float64
    e: wp.vec4d
    f90: wp.float64


_LightRow = wp.types.vector(length=ROWS, dtype=wp.float64)
_LaneRows = wp.types.matrix(shape=(LANES, ROWS), dtype=wp.float64)
#: A light's :class:`_Sums` terms flattened (``x``, ``n``, ``v``, ``kd``, ``F0``, then the five ``a2`` factors,
#: the first ``BASE_ROWS``; with a specular weight also ``e`` and ``f90``): the backward adds a block's lanes
#: side by side into ``scratch[row, entry]`` (4-vectors).
PX, PN, PV, PKD, PF0, PA2, BASE_ROWS = 0, 3, 6, 9, 13, 17, 22
PE, PF90, POINT_ROWS = 22, 26, 27
_PointRow = wp.types.vector(length=POINT_ROWS, dtype=wp.float64)
_LanePoints = wp.types.matrix(shape=(LANES, POINT_ROWS), dtype=wp.float64)


@wp.func
def _flat(s: _Sums):
    r = _PointRow()
    for j in range(3):
        r[PX + j] = s.g_x[j]
        r[PN + j] = s.g_n[j]
        r[PV + j] = s.g_v[j]
    for c in range(4):
        r[PKD + c] = s.kd[c]
        r[PF0 + c] = s.F0[c]
    r[PA2] = s.gE_a2
    r[PA2 + 1] = s.gqn_a2
    r[PA2 + 2] = s.gQ_s2
    r[PA2 + 3] = s.gQ_nl
    r[PA2 + 4] = s.gQ_a2
    for c in range(4):
        r[PE + c] = s.e[c]
    r[PF90] = s.f90
    return r


@functools.cache
def _add_point_lanes_func(weighted: bool):
    """``_add_point_lanes(scratch, srow, rows)``: ``scratch[srow, q][lane] += rows[lane, q]`` for the first
    ``BASE_ROWS`` entries (all :data:`POINT_ROWS` where ``weighted``): one 4-vector per entry, the lanes side by
    side in memory (LLVM's SLP vectoriser then packs the lanes' arithmetic that feeds them)."""

    @wp.func
    def _add_point_lanes(scratch: wp.array2d(dtype=wp.vec4d), srow: int, rows: _LanePoints):
        for h in range(2):  # two loops of 11: Warp unrolls constant loops up to 16 iterations
            for j in range(11):
                q = h * 11 + j
                scratch[srow, q] = scratch[srow, q] + wp.vec4d(rows[0, q], rows[1, q], rows[2, q], rows[3, q])
        if wp.static(weighted):
            for j in range(POINT_ROWS - BASE_ROWS):
                q = BASE_ROWS + j
                scratch[srow, q] = scratch[srow, q] + wp.vec4d(rows[0, q], rows[1, q], rows[2, q], rows[3, q])
        return 0

    return _add_point_lanes


@wp.func
def _lane_total(scratch: wp.array2d(dtype=wp.vec4d), srow: int, q: int):
    v = scratch[srow, q]
    return (v[0] + v[1]) + (v[2] + v[3])


@functools.cache
def _sums_of_func(weighted: bool):
    """``_sums_of(scratch, srow)``: the point's :class:`_Sums`, each scratch entry's lanes added (once per point):
    the first ``BASE_ROWS`` entries, and ``e``, ``f90`` only where ``weighted`` (the other kernels neither clear
    nor write those rows; their sums stay 0)."""

    @wp.func
    def _sums_of(scratch: wp.array2d(dtype=wp.vec4d), srow: int):
        s = _Sums()
        for j in range(3):
            s.g_x[j] = _lane_total(scratch, srow, PX + j)
            s.g_n[j] = _lane_total(scratch, srow, PN + j)
            s.g_v[j] = _lane_total(scratch, srow, PV + j)
        for c in range(4):
            s.kd[c] = _lane_total(scratch, srow, PKD + c)
            s.F0[c] = _lane_total(scratch, srow, PF0 + c)
        s.gE_a2 = _lane_total(scratch, srow, PA2)
        s.gqn_a2 = _lane_total(scratch, srow, PA2 + 1)
        s.gQ_s2 = _lane_total(scratch, srow, PA2 + 2)
        s.gQ_nl = _lane_total(scratch, srow, PA2 + 3)
        s.gQ_a2 = _lane_total(scratch, srow, PA2 + 4)
        if wp.static(weighted):
            for c in range(4):
                s.e[c] = _lane_total(scratch, srow, PE + c)
            s.f90 = _lane_total(scratch, srow, PF90)
        return s

    return _sums_of


@functools.cache
def _gradients_func(point_only: bool, channels: int, want_point: bool, want_light: bool, want_shape: bool,
                    weighted: bool):
    """``_gradients(sums, p, b, kd, F0, e, f90, g, k, lights)``: light ``k``'s share of the gradients at ``p`` for the
    output gradient ``g``: ``(sums`` plus the point's terms (the backward passes zero ``sums``: one lane's
    terms), the light's gradient row ``(vector, axis, shape, PT (0), radiance))``, both 0 where it adds
    nothing. Only what the flags ask for is generated: the point's sums (``want_point``), the light's row
    (``want_light``), its axis and shape entries (``want_shape``, not with ``point_only``); the rest stays 0.
    ``weighted``: with the specular weight's ``e`` and ``f90`` (else 0 and 1, not read)."""

    @wp.func
    def _gradients(sums: _Sums, p: _Point, b: _Pair, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64,
                   g: wp.vec4d, k: int, lights: wp.array2d(dtype=wp.float64)):
        one = wp.float64(1.0)
        zero = wp.float64(0.0)
        two = wp.float64(2.0)
        gk = g * b.ok  # a light that adds nothing: every gradient below is a product with 0
        R = one / (b.qn * b.Q * b.s2 * b.hc)
        qQ = b.qn * b.Q
        s2hc = b.s2 * b.hc
        iqn = R * b.Q * s2hc
        iQ = R * b.qn * s2hc
        is2 = R * qQ * b.hc
        ihc = R * qQ * b.s2
        dv = p.a2_2pi * b.hc * b.hc * iqn * iqn * iQ
        one_m5 = one - b.m5
        row = _LightRow()
        g_G = zero
        g_dv = zero
        g_m5 = zero
        for c in range(wp.static(channels)):
            Lc = lights[RADIANCE + c, k]
            F0c = F0[c]
            spec = F0c + (f90 - F0c) * b.m5
            f = kd[c] * one_m5 + dv * spec
            if wp.static(weighted):
                f = f + e[c] * b.m5
            g_G = g_G + gk[c] * f * Lc
            if wp.static(want_light):
                row[RADIANCE + c] = gk[c] * f * b.G
            gf = gk[c] * Lc * b.G
            if wp.static(want_point):
                sums.kd[c] = sums.kd[c] + gf * one_m5
                sums.F0[c] = sums.F0[c] + gf * dv * one_m5
                if wp.static(weighted):
                    sums.e[c] = sums.e[c] + gf * b.m5
                    sums.f90 = sums.f90 + gf * dv * b.m5
            g_dv = g_dv + gf * spec
            g_m5 = g_m5 + gf * (dv * (f90 - F0c) - (kd[c] - e[c]))  # unweighted: f90 1, e 0 (the same bits)
        # D V = a2 hc^2 / (2 pi qn^2 Q), qn = a2 hc + (1 - a2) c2, c2 = |n x hv|^2
        gE = g_dv * dv
        g_qn = -two * gE * iqn
        g_c2 = g_qn * p.one_a2
        g_hc = two * gE * ihc + g_qn * p.a2
        g_Q = -gE * iQ
        g_nl = g_Q * (p.s1 + p.nv * b.nl * p.one_a2 * is2)
        if wp.static(want_point):
            sums.gE_a2 = sums.gE_a2 + gE
            sums.gqn_a2 = sums.gqn_a2 + g_qn * (b.hc - b.c2)
            sums.gQ_s2 = sums.gQ_s2 + g_Q * b.s2
            sums.gQ_nl = sums.gQ_nl + g_Q * b.nl
            sums.gQ_a2 = sums.gQ_a2 + g_Q * (one - b.nl * b.nl) * is2
        # m5 = (1 - vh)^5; the clamps pass the gradient on the closed interval, as torch.clamp's (selects: `or`
        # would branch)
        m2 = b.m * b.m
        g_vh = wp.where(b.vh_raw < zero, zero, wp.where(b.vh_raw > one, zero, -wp.float64(5.0) * m2 * m2 * g_m5))
        g_nl = wp.where(b.nl_raw < _DOT_EPS, zero, wp.where(b.nl_raw > one, zero, g_nl))
        # c2 = |n x hv|^2, hc = |hv|^2 (or 1e-12), vh = |hv| / 2 (or v.hv / 1e-6), hv = l + v
        hv = b.hv
        g_hv = (two * g_c2) * wp.cross(b.c, p.n) + wp.where(
            b.h_clamped != 0, (g_vh / _DOT_EPS) * p.v, (two * g_hc + wp.float64(0.5) * g_vh * b.hl * ihc) * hv)
        g_l = g_hv + g_nl * p.n
        if wp.static(want_point):
            g_vv = wp.where(b.h_clamped != 0, (g_vh / _DOT_EPS) * hv, wp.vec3d())
            sums.g_v = sums.g_v + g_hv + g_vv
        # G = G0 W a, G0 = (n.u) K3 (K3 = 1 / |u|^3, or 1 / min_d^3 inside it), l = u / |u|
        if wp.static(point_only):
            g_G0 = g_G
        else:
            g_G0 = g_G * b.W * b.a
        l = b.l
        u = b.u
        if wp.static(want_point):
            sums.g_n = sums.g_n + (two * g_c2) * wp.cross(hv, b.c) + g_nl * l + g_G0 * b.K3 * u
        g_u = b.inv_len * (g_l - l * wp.dot(g_l, l)) + g_G0 * b.K3 * p.n
        # through d (not inside min_d)
        g_u_d = -wp.float64(3.0) * g_G0 * b.K3 * b.nl_raw * l
        if wp.static(not point_only):
            # W = 1 - (d ir)^4
            g_W = g_G * b.G0 * b.a
            t3 = b.t * b.t * b.t
            # a = min(cd sc + of, 1)^2, cd = -(u.s) / d
            g_tt = wp.where(b.tt <= one, g_G * b.G0 * b.W * two * b.tt, zero)
            g_cd = g_tt * b.sc
            g_u_d = g_u_d - g_W * wp.float64(4.0) * t3 * b.ir * l - g_cd * b.inv_dcl * b.cd * l
            g_u = g_u - g_cd * b.inv_dcl * b.axis
            if wp.static(want_light and want_shape):
                g_axis = -g_cd * b.inv_dcl * u
                for j in range(3):
                    row[AXIS + j] = g_axis[j]
                row[SHAPE] = -g_W * wp.float64(4.0) * t3 * b.dcl
                row[SHAPE + 1] = g_tt * b.cd
                row[SHAPE + 2] = g_tt
        g_u = g_u + wp.where(b.unclamped != 0, g_u_d, wp.vec3d())
        if wp.static(want_point):
            if wp.static(point_only):
                sums.g_x = sums.g_x - g_u
            else:
                sums.g_x = sums.g_x - g_u * lights[PT, k]
        if wp.static(want_light):
            for j in range(3):
                row[VECTOR + j] = g_u[j]
        return sums, row

    return _gradients


@wp.func
def _lanes(rows: _LaneRows, j: int):
    """Row ``j`` of a block's light gradients, its lanes side by side."""
    return wp.vec4d(rows[0, j], rows[1, j], rows[2, j], rows[3, j])


@functools.cache
def _add_rows_func(want_shape: bool):
    """``_add_rows(v_light, slot, block, rows)``: the light gradients of a block of :data:`LANES` lights,
    ``v_light[slot, j, block][lane] += rows[lane, j]`` for each row ``j`` (one 4-vector per row, so the lanes'
    sums are adjacent in memory); the axis and shape rows only where ``want_shape``."""

    @wp.func
    def _add_rows(v_light: wp.array3d(dtype=wp.vec4d), slot: int, block: int, rows: _LaneRows):
        for j in range(3):
            wp.atomic_add(v_light, slot, VECTOR + j, block, _lanes(rows, VECTOR + j))
        for c in range(4):
            wp.atomic_add(v_light, slot, RADIANCE + c, block, _lanes(rows, RADIANCE + c))
        if wp.static(want_shape):
            for j in range(6):
                wp.atomic_add(v_light, slot, AXIS + j, block, _lanes(rows, AXIS + j))
        return 0

    return _add_rows


@functools.cache
def _lane_step_func(point_only: bool, channels: int, want_point: bool, want_light: bool, want_shape: bool,
                    weighted: bool, packed: bool):
    """``(_lane_step, _add_lanes)``, the per-lane form of the backward (general tables, the last partial block,
    CUDA's points' gradients). ``_lane_step(sums, k, p, kd, F0, e, f90, g, lights, min_d2, inv_min_d) -> (sums,
    row, prow)``: light ``k``'s gradients (:func:`_gradients_func`): its light row, and the point's terms as a
    lane's row (``packed``, as :func:`_flat` orders them; else 0) or added to ``sums`` (registers); the caller
    keeps ``row`` and ``prow`` in its block's lane (rows, not the block's matrices, cross the call: with the
    matrices passed in and out, the last lights' loop, whose lane is known only at run time, ran about 1.4x
    slower: 3 point lights fwd+bwd 30 against 21 ms, 40,000 points, one thread, load 5).
    ``_add_lanes(v_light, slot, block, rows, scratch, srow, prows)``: the block's light rows (``want_light``) and
    point lanes (``packed``) added after the block, each row one 4-vector (a store between the lanes would split
    their code)."""
    pair = _pair_func(point_only)
    gradients = _gradients_func(point_only, channels, want_point, want_light, want_shape and not point_only,
                                weighted)
    add_rows = _add_rows_func(want_shape and not point_only)
    add_point_lanes = _add_point_lanes_func(weighted)

    @wp.func
    def _lane_step(sums: _Sums, k: int, p: _Point, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64,
                   g: wp.vec4d, lights: wp.array2d(dtype=wp.float64), min_d2: wp.float64, inv_min_d: wp.float64):
        b = pair(p, k, lights, min_d2, inv_min_d)
        prow = _PointRow()
        if wp.static(packed):
            terms, row = gradients(_Sums(), p, b, kd, F0, e, f90, g, k, lights)
            prow = _flat(terms)
        else:
            sums, row = gradients(sums, p, b, kd, F0, e, f90, g, k, lights)
        return sums, row, prow

    @wp.func
    def _add_lanes(v_light: wp.array3d(dtype=wp.vec4d), slot: int, block: int, rows: _LaneRows,
                   scratch: wp.array2d(dtype=wp.vec4d), srow: int, prows: _LanePoints):
        if wp.static(want_light):
            add_rows(v_light, slot, block, rows)
        if wp.static(packed):
            add_point_lanes(scratch, srow, prows)
        return 0

    return _lane_step, _add_lanes


@functools.cache
def backward_kernel(point_only: bool, channels: int, want_point: bool, want_light: bool, want_shape: bool,
                    packed: bool = True, native: bool = False, weighted: bool = False):
    """The backward kernel for :func:`forward_kernel` ``(point_only, channels)``, generating only the gradients
    asked for: the point gradients (``want_point``; else not written), the light gradients (``want_light``;
    else ``v_light`` is untouched) and their axis and shape rows (``want_shape``; else left 0). Inputs: the
    forward's (without ``out``), then ``(v_out, v_position, v_normal, v_wo, v_base_color, v_roughness,
    v_metallic, v_f0, v_specular, v_light, group)`` (``v_specular`` written only where ``weighted``);
    ``v_light[slot, :, k]`` holds ``(v_vector[0:3], v_axis[0:3],
    v_shape[0:3], 0, v_radiance[0:4])`` (the table's rows). ``packed`` (the CPU's choice) sums the point's
    per-light terms lane by lane in ``scratch`` (one row per thread, ``[rows, POINT_ROWS]`` 4-vectors), so that
    LLVM packs the lanes; otherwise (CUDA: no SLP vectoriser to feed, and a scratch row per thread would be one
    per point) they are summed in registers and ``scratch`` is not read. ``lanes``, the last input, is the
    light table as ``vec4d`` (see :func:`forward_kernel`); point-light tables run their full blocks as
    :class:`_Block` lanes from it (:func:`_block_gradients_func`), except for the points' gradients on CUDA;
    ``native`` (CPU only) runs those blocks as explicit SIMD instead
    (:func:`lumigrad.kernels.direct_lights_native.block_gradients_native`: same terms, clang vector types); in the
    other cases it has nothing to run and the kernel is the one without it (the same object)."""
    # point lights: the block's lanes as vec4d terms (the point's terms summed in scratch: the CPU's choice)
    lane_blocks = point_only and (want_light or want_point) and (packed or not want_point)
    if native and not lane_blocks:
        return backward_kernel(point_only, channels, want_point, want_light, want_shape, packed, False, weighted)
    packed = packed and want_point
    lane_step, add_lanes = _lane_step_func(point_only, channels, want_point, want_light, want_shape, weighted, packed)
    sums_of = _sums_of_func(weighted)
    block_gradients = _block_gradients_func(channels, want_point, want_light, weighted) if lane_blocks else None
    native_blocks = None
    if native:
        from .direct_lights_native import block_gradients_native  # it imports this module's constants

        native_blocks = block_gradients_native(channels, want_point, want_light, weighted)

    @wp.kernel(enable_backward=False, module="unique")
    def direct_lights_backward(offset: int, end: int, position: wp.array2d(dtype=Any),
                               normal: wp.array2d(dtype=Any), wo: wp.array2d(dtype=Any),
                               base_color: wp.array2d(dtype=Any), roughness: wp.array(dtype=Any),
                               metallic: wp.array(dtype=Any), f0: wp.array2d(dtype=Any),
                               specular: wp.array(dtype=Any),
                               lights: wp.array2d(dtype=wp.float64), num_lights: int, min_d2: wp.float64,
                               inv_min_d: wp.float64, v_out: wp.array2d(dtype=Any),
                               v_position: wp.array2d(dtype=Any), v_normal: wp.array2d(dtype=Any),
                               v_wo: wp.array2d(dtype=Any), v_base_color: wp.array2d(dtype=Any),
                               v_roughness: wp.array(dtype=Any), v_metallic: wp.array(dtype=Any),
                               v_f0: wp.array2d(dtype=Any), v_specular: wp.array(dtype=Any),
                               v_light: wp.array3d(dtype=wp.vec4d), group: int,
                               scratch: wp.array2d(dtype=wp.vec4d), lanes: wp.array2d(dtype=wp.vec4d)):
        i = offset + wp.tid()
        slot = i // group
        one = wp.float64(1.0)
        zero = wp.float64(0.0)
        two = wp.float64(2.0)
        p = _point(i, position, normal, wo, roughness, metallic)
        g = wp.vec4d()
        for c in range(wp.static(channels)):
            g[c] = wp.float64(v_out[i, c])
        g_x = wp.vec3d()
        g_n = wp.vec3d()
        g_v = wp.vec3d()
        g_c = wp.vec4d()
        g_f0 = wp.vec4d()
        g_r = zero
        g_metal = zero
        g_s = zero
        if p.nv_raw > zero:
            cvec = _channels(base_color, i, channels)
            f0vec = _channels(f0, i, channels)
            kd, F0 = _mix(p.metal, cvec, f0vec)
            e = wp.vec4d()
            f90 = one
            s = zero
            if wp.static(weighted):
                s = wp.float64(specular[i])
                e, f90 = _weight_terms(p.metal, cvec, s)
            srow = i % scratch.shape[0]
            sums = _Sums()
            if wp.static(packed):
                for h in range(2):
                    for j in range(11):
                        scratch[srow, h * 11 + j] = wp.vec4d()
                if wp.static(weighted):
                    for j in range(POINT_ROWS - BASE_ROWS):
                        scratch[srow, BASE_ROWS + j] = wp.vec4d()
            blocks = num_lights // LANES
            if wp.static(native_blocks is not None):  # all full blocks at once, explicit SIMD
                if blocks > 0:
                    native_blocks(p.x, p.n, p.v, p.nv, p.s1, p.a2, p.one_a2, p.a2_2pi, kd, F0, e, f90, g, blocks, lanes,
                                  min_d2, inv_min_d, v_light, slot, scratch, srow)
                blocks_left = 0
            else:
                blocks_left = blocks
            for block in range(blocks_left):
                if wp.static(block_gradients is not None):  # explicit lanes: one vec4d per term
                    block_gradients(p, kd, F0, e, f90, g, block, lanes, min_d2, inv_min_d, v_light, slot, scratch,
                                    srow)
                else:  # each lane's terms, added after the block
                    rows = _LaneRows()
                    prows = _LanePoints()
                    for lane in range(LANES):  # unrolled, as the forward's
                        sums, row, prow = lane_step(sums, block * LANES + lane, p, kd, F0, e, f90, g, lights, min_d2,
                                                    inv_min_d)
                        rows[lane] = row
                        prows[lane] = prow
                    add_lanes(v_light, slot, block, rows, scratch, srow, prows)
            if blocks * LANES < num_lights:  # the last lights, one by one
                rows = _LaneRows()
                prows = _LanePoints()
                for k in range(blocks * LANES, num_lights):
                    sums, row, prow = lane_step(sums, k, p, kd, F0, e, f90, g, lights, min_d2, inv_min_d)
                    rows[k - blocks * LANES] = row
                    prows[k - blocks * LANES] = prow
                add_lanes(v_light, slot, blocks, rows, scratch, srow, prows)
            if wp.static(want_point):
                if wp.static(packed):
                    sums = sums_of(scratch, srow)
                g_x = sums.g_x
                g_n = sums.g_n
                g_v = sums.g_v
                sum_kd = sums.kd
                sum_F0 = sums.F0
                # Smith visibility through nv (clamped) and a2
                inv_s1 = one / p.s1
                g_nv = sums.gQ_s2 + p.nv * p.one_a2 * inv_s1 * sums.gQ_nl
                if p.nv_raw < _DOT_EPS or p.nv_raw > one:
                    g_nv = zero
                g_n = g_n + g_nv * p.v
                g_v = g_v + g_nv * p.n
                g_a2 = sums.gE_a2 / p.a2 + sums.gqn_a2
                g_a2 = g_a2 + (one - p.nv * p.nv) * wp.float64(0.5) * inv_s1 * sums.gQ_nl
                g_a2 = g_a2 + wp.float64(0.5) * p.nv * sums.gQ_a2
                # a2 = alpha^2, alpha = max(r^2, ALPHA_MIN)
                if p.r * p.r >= _ALPHA_MIN:
                    g_r = g_a2 * two * p.alpha * two * p.r
                # kd_c = (1 - metal) c_c (1 - f0_c) / pi, F0_c = (1 - metal) f0_c + metal c_c
                w_d = one - p.metal
                for c in range(wp.static(channels)):
                    cc = cvec[c]
                    f0c = f0vec[c]
                    g_c[c] = sum_kd[c] * w_d * (one - f0c) * _INV_PI + sum_F0[c] * p.metal
                    g_f0[c] = -sum_kd[c] * w_d * cc * _INV_PI + sum_F0[c] * w_d
                    g_metal = g_metal - sum_kd[c] * cc * (one - f0c) * _INV_PI + sum_F0[c] * (cc - f0c)
                if wp.static(weighted):
                    # e_c = (1 - metal) (1 - s) c_c / pi, f90 = (1 - metal) s + metal (f0 is already s f0)
                    g_metal = g_metal + sums.f90 * (one - s)
                    g_s = sums.f90 * w_d
                    for c in range(wp.static(channels)):
                        cc = cvec[c]
                        g_c[c] = g_c[c] + sums.e[c] * w_d * (one - s) * _INV_PI
                        g_metal = g_metal - sums.e[c] * (one - s) * cc * _INV_PI
                        g_s = g_s - sums.e[c] * w_d * cc * _INV_PI
        if wp.static(want_point):
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
            for c in range(wp.static(channels)):
                v_base_color[i, c] = type(v_base_color[i, c])(g_c[c])
                v_f0[i, c] = type(v_f0[i, c])(g_f0[c])
            v_roughness[i] = type(v_roughness[i])(g_r)
            v_metallic[i] = type(v_metallic[i])(g_metal)
            if wp.static(weighted):
                v_specular[i] = type(v_specular[i])(g_s)

    for f in (wp.float32, wp.float64):
        a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
        wp.overload(direct_lights_backward, _common_types(f) + [a2, a2, a2, a2, a2, a1, a1, a2, a1,
                                                                wp.array3d(dtype=wp.vec4d), int,
                                                                wp.array2d(dtype=wp.vec4d),
                                                                wp.array2d(dtype=wp.vec4d)])
    return direct_lights_backward


def _common_types(f) -> list:
    """The argument types both kernels start with, for point arrays of Warp dtype ``f``."""
    a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
    return [int, int, a2, a2, a2, a2, a1, a1, a2, a1, wp.array2d(dtype=wp.float64), int, wp.float64, wp.float64]
