"""Point-light blocks as explicit SIMD on the CPU: native C++ functions (``wp.func_native``) that run a shading
point's whole loop over its full blocks of four point lights (tables without range or cone) with clang vector
types: two blocks at a time as ``ext_vector_type(8)`` of double (one AVX-512 register; two 256-bit ones without
AVX-512), an odd last block as ``ext_vector_type(4)``. The forward (:func:`block_radiance_native`) and the
backward (:func:`block_gradients_native`, per case) share the pair terms' source.

Why: Warp's ``vec4d`` operations are per-component C++, and LLVM's SLP vectoriser packed only part of the
Warp-language blocks (:mod:`lumigrad.kernels.direct_lights_kernels`): ``objdump`` of the backward's block loop
showed 704 instructions for 4 lights, a third of the arithmetic scalar or 128-bit, 160 stack references. Here
the vector form is the source, and the loops are fully packed (``docs/benchmarks.md``, branch lights6).

The arithmetic is ``direct_lights_kernels._block`` followed by ``_block_radiance`` or by
``_block_gradients_func``'s adjoint, term by term in the same order (the formulas are in
:mod:`lumigrad.kernels.direct_lights_kernels`); the compiler may fuse a product and a sum into one FMA and the
lanes are summed in another order, so values agree with the Warp-language lanes to rounding, not to the bit. The
masks are vector compares and selects: a light at the point, one inside ``min_distance``, below the horizon or
opposite the viewer is handled as there (inputs made harmless, then multiplied by 0).

CPU only: NVRTC has no clang vector types, so CUDA keeps the Warp-language lanes
(``direct_lights.NATIVE_LANES``).
"""

from __future__ import annotations

import functools

import warp as wp

from .direct_lights_kernels import (BASE_ROWS, DOT_EPS, MAX_CHANNELS, PA2, PE, PF0, PF90, PKD, PN, PV, PX,
                                    POINT_ROWS, RADIANCE, VECTOR)

wp.set_module_options({"enable_backward": False})


#: The C++ prelude of both functions: the vector types and helpers. ``V`` is the width in use (``d8``: two blocks
#: side by side, adjacent in the tables; ``d4``: one block).
_PRELUDE = f"""
typedef double d4 __attribute__((ext_vector_type(4)));
typedef double d8 __attribute__((ext_vector_type(8)));
const double eps = {DOT_EPS!r}, eps2 = eps * eps;
const double n0 = n[0], n1 = n[1], n2 = n[2], v0 = v[0], v1 = v[1], v2 = v[2];
const double inv_min3 = inv_min_d * inv_min_d * inv_min_d;
"""

#: The terms of the lights of blocks ``blk...`` at the point (``direct_lights_kernels._block``), inside a generic
#: lambda whose vector type is ``V``; ``ld(row)`` loads a table row of those lights.
_PAIR = f"""
    const V ones = 1.0, zeros = 0.0;
    auto sqrtv = [](V a) {{ return __builtin_elementwise_sqrt(a); }};
    auto clampv = [](V a, double lo, double hi) {{
        return __builtin_elementwise_min(__builtin_elementwise_max(a, (V)lo), (V)hi); }};
    const V ux0 = ld({VECTOR}) - x[0], uy0 = ld({VECTOR + 1}) - x[1], uz0 = ld({VECTOR + 2}) - x[2];
    const V s0 = ux0 * ux0 + uy0 * uy0 + uz0 * uz0;
    const auto live = s0 > 0.0;  // a light at the point lights nothing
    const V ux = live ? ux0 : (V)n0, uy = live ? uy0 : (V)n1, uz = live ? uz0 : (V)n2;
    const V s = live ? s0 : ones;
    const V inv_len = ones / sqrtv(s);
    const V nu = n0 * ux + n1 * uy + n2 * uz;
    const V nl_raw = nu * inv_len;
    const V lx = ux * inv_len, ly = uy * inv_len, lz = uz * inv_len;
    const auto unclamped = s >= min_d2;
    const V K3 = unclamped ? inv_len * inv_len * inv_len : (V)inv_min3;
    const V ok = (live & (nl_raw > 0.0)) ? ones : zeros;
    const V G0 = nu * K3;
    const V nl = clampv(nl_raw, eps, 1.0);
    const V hx = lx + v0, hy = ly + v1, hz = lz + v2;
    const V hh = hx * hx + hy * hy + hz * hz;
    const auto hcl = hh < eps2;  // l = -v up to rounding: clamped as the reference
    const V hc = hcl ? (V)eps2 : hh;
    const V hl = hcl ? (V)eps : sqrtv(hh);
    const V vh_raw = hcl ? (v0 * hx + v1 * hy + v2 * hz) * (1.0 / eps) : 0.5 * hl;
    const V m = ones - clampv(vh_raw, 0.0, 1.0);
    const V m2 = m * m;
    const V m5 = m2 * m2 * m;
    const V cx = n1 * hz - n2 * hy, cy = n2 * hx - n0 * hz, cz = n0 * hy - n1 * hx;
    const V c2 = cx * cx + cy * cy + cz * cz;
    const V qn = a2 * hc + one_a2 * c2;
    const V s2 = sqrtv(one_a2 * (nl * nl) + a2);
    const V Q = s1 * nl + nv * s2;
"""

#: Runs ``block(V(), acc, blk)`` over the full blocks: two at a time as ``d8``, the last odd one as ``d4``.
_LOOP = """
int blk = 0;
for (; blk + 1 < blocks; blk += 2) block(d8(0.0), acc8, blk);
if (blk < blocks) block(d4(0.0), acc4, blk);
"""


def _head(rows: int) -> str:
    """The start of both bodies: ``rows`` sums per width (``acc8``, ``acc4``), then the opening of the generic
    lambda ``block(V(), acc, blk)`` with ``ld(row)`` and the pair terms; the caller adds the rest of its body."""
    return _PRELUDE + f"""
d8 acc8[{rows}];
d4 acc4[{rows}];
for (int q = 0; q < {rows}; ++q) {{ acc8[q] = 0.0; acc4[q] = 0.0; }}
auto block = [&](auto zero, decltype(zero)* acc, int blk) {{
    typedef decltype(zero) V;
    auto ld = [&](int row) {{ V r; __builtin_memcpy(&r, &wp::index(lanes, row, blk), sizeof(r)); return r; }};
{_PAIR}"""


def _weight_source(weighted: bool) -> tuple[str, str]:
    """The C++ of the specular weight's ``f90`` (per point; the literal 1 without a weight) and the diffuse
    term ``e_c m5`` added to ``f`` (nothing without a weight)."""
    return ("f90", " + e[c] * m5") if weighted else ("1.0", "")


def _forward_source(weighted: bool) -> str:
    """The C++ body of :func:`block_radiance_native`."""
    f90, e_m5 = _weight_source(weighted)
    return _head(MAX_CHANNELS) + f"""
    const V dv = a2_2pi * ((hc * hc) / ((qn * qn) * Q));
    const V G = G0 * ok;
    const V one_m5 = ones - m5;
    for (int c = 0; c < {MAX_CHANNELS}; ++c) {{
        const double F0c = F0[c];
        const V f = kd[c] * one_m5 + dv * (F0c + ({f90} - F0c) * m5){e_m5};
        acc[c] += (f * ld({RADIANCE} + c)) * G;
    }}
}};
{_LOOP}
wp::vec_t<4, double> out;
for (int c = 0; c < {MAX_CHANNELS}; ++c) {{
    const d4 t = acc8[c].lo + acc8[c].hi + acc4[c];
    out[c] = (t[0] + t[1]) + (t[2] + t[3]);
}}
return out;
"""


def _backward_source(channels: int, want_point: bool, want_light: bool, weighted: bool) -> str:
    """The C++ body of :func:`block_gradients_native` for one case."""
    light = int(want_light)
    point = int(want_point)
    rows = POINT_ROWS if weighted else BASE_ROWS
    f90, e_m5 = _weight_source(weighted)
    # d f / d m5 = dv (f90 - F0_c) - (kd_c - e_c); d f / d e_c = m5, d f / d f90 = dv m5 (summed over channels)
    kd_e = "(kdc - e[c])" if weighted else "kdc"
    weight_sums = f"""
            acc[{PE} + c] += gf * m5;
            acc[{PF90}] += (gf * dv) * m5;""" if weighted else ""
    return _head(rows) + f"""
    auto add = [&](int row, V x) {{
        wp::vec_t<4, double>* t = &wp::index(v_light, slot, row, blk);
        V r; __builtin_memcpy(&r, t, sizeof(r)); r += x; __builtin_memcpy(t, &r, sizeof(r)); }};
    // the adjoint (direct_lights_kernels._block_gradients_func)
    const V qQ = qn * Q, s2hc = s2 * hc;
    const V R = ones / (qQ * s2hc);
    const V iqn = (R * Q) * s2hc, iQ = (R * qn) * s2hc, is2 = (R * qQ) * hc, ihc = (R * qQ) * s2;
    const V dv = a2_2pi * (((hc * hc) * (iqn * iqn)) * iQ);
    const V one_m5 = ones - m5;
    V g_G = zeros, g_dv = zeros, g_m5 = zeros;
    for (int c = 0; c < {channels}; ++c) {{
        const V gk = g[c] * ok;  // a light that adds nothing: every gradient below is a product with 0
        const V Lc = ld({RADIANCE} + c);
        const double F0c = F0[c], kdc = kd[c];
        const V spec = F0c + ({f90} - F0c) * m5;
        const V gkf = gk * (kdc * one_m5 + dv * spec{e_m5});
        g_G += gkf * Lc;
        if ({light}) add({RADIANCE} + c, gkf * G0);
        const V gf = (gk * Lc) * G0;
        if ({point}) {{
            acc[{PKD} + c] += gf * one_m5;
            acc[{PF0} + c] += (gf * dv) * one_m5;{weight_sums}
        }}
        g_dv += gf * spec;
        g_m5 += gf * (dv * ({f90} - F0c) - {kd_e});
    }}
    const V gE = g_dv * dv;
    const V g_qn = -2.0 * (gE * iqn);
    const V g_c2 = one_a2 * g_qn;
    const V g_hc = 2.0 * (gE * ihc) + a2 * g_qn;
    const V g_Q = -(gE * iQ);
    V g_nl = g_Q * (s1 + (nv * one_a2) * (nl * is2));
    if ({point}) {{
        acc[{PA2}] += gE;
        acc[{PA2 + 1}] += g_qn * (hc - c2);
        acc[{PA2 + 2}] += g_Q * s2;
        acc[{PA2 + 3}] += g_Q * nl;
        acc[{PA2 + 4}] += (g_Q * (ones - nl * nl)) * is2;
    }}
    // the clamps pass the gradient on the closed interval, as torch.clamp's
    const V g_vh = ((vh_raw >= 0.0) & (vh_raw <= 1.0)) ? -5.0 * ((m2 * m2) * g_m5) : zeros;
    g_nl = ((nl_raw >= eps) & (nl_raw <= 1.0)) ? g_nl : zeros;
    // hv = l + v: 2 g_c2 (c x n) + (h_clamped ? (g_vh / eps) v : (2 g_hc + g_vh hl ihc / 2) hv)
    const V t2 = 2.0 * g_c2;
    const V wv = g_vh * (1.0 / eps);
    const V wh = 2.0 * g_hc + 0.5 * ((g_vh * hl) * ihc);
    const V ghx = t2 * (n2 * cy - n1 * cz) + (hcl ? v0 * wv : wh * hx);
    const V ghy = t2 * (n0 * cz - n2 * cx) + (hcl ? v1 * wv : wh * hy);
    const V ghz = t2 * (n1 * cx - n0 * cy) + (hcl ? v2 * wv : wh * hz);
    const V glx = ghx + n0 * g_nl, gly = ghy + n1 * g_nl, glz = ghz + n2 * g_nl;
    // l = u / |u|, G0 = (n.u) K3 (K3 = 1 / |u|^3, or 1 / min_d^3 inside it)
    const V gll = glx * lx + gly * ly + glz * lz;
    const V gGK = g_G * K3;
    const V gd = unclamped ? -3.0 * (gGK * nl_raw) : zeros;
    const V gux = inv_len * (glx - lx * gll) + n0 * gGK + gd * lx;
    const V guy = inv_len * (gly - ly * gll) + n1 * gGK + gd * ly;
    const V guz = inv_len * (glz - lz * gll) + n2 * gGK + gd * lz;
    if ({light}) {{
        add({VECTOR}, gux);
        add({VECTOR + 1}, guy);
        add({VECTOR + 2}, guz);
    }}
    if ({point}) {{
        // x: -g_u; v: g_hv (+ (g_vh / eps) hv where clamped); n: 2 g_c2 (hv x c) + g_nl l + g_G K3 u
        acc[{PX}] -= gux;
        acc[{PX + 1}] -= guy;
        acc[{PX + 2}] -= guz;
        acc[{PN}] += t2 * (hy * cz - hz * cy) + g_nl * lx + gGK * ux;
        acc[{PN + 1}] += t2 * (hz * cx - hx * cz) + g_nl * ly + gGK * uy;
        acc[{PN + 2}] += t2 * (hx * cy - hy * cx) + g_nl * lz + gGK * uz;
        const V wvh = hcl ? wv : zeros;
        acc[{PV}] += ghx + wvh * hx;
        acc[{PV + 1}] += ghy + wvh * hy;
        acc[{PV + 2}] += ghz + wvh * hz;
    }}
}};
{_LOOP}
if ({point}) {{
    for (int q = 0; q < {rows}; ++q) {{
        wp::vec_t<4, double>* t = &wp::index(scratch, srow, q);
        d4 r; __builtin_memcpy(&r, t, sizeof(r)); r += acc8[q].lo + acc8[q].hi + acc4[q];
        __builtin_memcpy(t, &r, sizeof(r));
    }}
}}
"""


@functools.cache
def block_radiance_native(weighted: bool = False):
    """``f(x, n, v, nv, s1, a2, one_a2, a2_2pi, kd, F0, e, f90, blocks, lanes, min_d2, inv_min_d)``: the reflected
    radiance (:data:`MAX_CHANNELS` channels) of a point's first ``blocks`` full blocks of point lights, as
    :func:`~lumigrad.kernels.direct_lights_kernels._block_radiance_func` ``(weighted)`` summed over them (in
    another order); ``e`` and ``f90`` are read only where ``weighted``."""

    if weighted:  # one Warp function per case, each decorated in place: Warp takes a native function's return
        # type only from a literal `@wp.func_native(...)`
        @wp.func_native(_forward_source(True))
        def radiance_weighted(x: wp.vec3d, n: wp.vec3d, v: wp.vec3d, nv: wp.float64, s1: wp.float64, a2: wp.float64,
                              one_a2: wp.float64, a2_2pi: wp.float64, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d,
                              f90: wp.float64, blocks: int, lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64,
                              inv_min_d: wp.float64) -> wp.vec4d:
            ...

        return radiance_weighted

    @wp.func_native(_forward_source(False))
    def radiance(x: wp.vec3d, n: wp.vec3d, v: wp.vec3d, nv: wp.float64, s1: wp.float64, a2: wp.float64,
                 one_a2: wp.float64, a2_2pi: wp.float64, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64,
                 blocks: int, lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64, inv_min_d: wp.float64
                 ) -> wp.vec4d:
        ...

    return radiance


@functools.cache
def block_gradients_native(channels: int, want_point: bool, want_light: bool, weighted: bool = False):
    """``f(x, n, v, nv, s1, a2, one_a2, a2_2pi, kd, F0, e, f90, g, blocks, lanes, min_d2, inv_min_d, v_light,
    slot, scratch, srow)``: the gradients of a point's first ``blocks`` full blocks of point lights, as
    :func:`~lumigrad.kernels.direct_lights_kernels._block_gradients_func` ``(channels, want_point,
    want_light, weighted)`` called for each block: the lights' position and radiance rows added to
    ``v_light[slot, row, block]``, the point's per-lane terms to ``scratch[srow, entry]`` (each entry once, after
    the loop)."""

    def stub(x: wp.vec3d, n: wp.vec3d, v: wp.vec3d, nv: wp.float64, s1: wp.float64, a2: wp.float64,
             one_a2: wp.float64, a2_2pi: wp.float64, kd: wp.vec4d, F0: wp.vec4d, e: wp.vec4d, f90: wp.float64,
             g: wp.vec4d, blocks: int,
             lanes: wp.array2d(dtype=wp.vec4d), min_d2: wp.float64, inv_min_d: wp.float64,
             v_light: wp.array3d(dtype=wp.vec4d), slot: int, scratch: wp.array2d(dtype=wp.vec4d), srow: int):
        ...

    # one Warp function per case: a distinct name, so that the cases do not overwrite one another
    stub.__name__ = stub.__qualname__ = (f"block_gradients_native_c{channels}_p{int(want_point)}_l{int(want_light)}"
                                         f"_w{int(weighted)}")
    return wp.func_native(_backward_source(channels, want_point, want_light, weighted))(stub)
