"""Ray queries of small meshes as explicit SIMD on the CPU: the triangles tested :data:`LANE_WIDTH` at a time,
in native C++ (``wp.func_native``) with clang vector types (``ext_vector_type(16)`` of float:
one AVX-512 register; two 256-bit ones without AVX-512).

Why: on the Cornell box (12 triangles) a closest hit of the own BVH (:mod:`.bvh_traverse`) cost ~91 ns, most
of it scalar slab and triangle tests of a tree whose inner boxes all span the box; Warp-language lanes did not
vectorise (docs/benchmarks.md, "BVH traversal lanes"). Here the vector form is the source: the triangles'
corners are stored structure-of-arrays in the tree's leaf order (:func:`.bvh_build.triangle_lanes`: per block
of 16 triangles, 9 rows ``3 * corner + axis`` of 16 floats and the block's box), and one step runs Woop,
Benthin and Wald's watertight test (the arithmetic of :func:`.bvh_traverse.intersect_triangle`, operation by
operation, no fused multiply-add) on 16 triangles. With several blocks, a block whose box the ray does not enter
before the closest hit so far (or ``t_max``) is skipped (the tree's conservative slab test); the box (one block)
tests all triangles without it.

The answers equal the tree traversal's bit for bit; where they might not, the query says so and the caller
runs the traversal (:mod:`.ray_queries`):

* a triangle with an edge function exactly 0 (the traversal recomputes those in float64): fall back;
* two triangles hit at the same least ``t`` (a ray through a shared edge of coplanar triangles: the traversal
  reports the one it visits first, which depends on the tree): fall back;
* otherwise the least ``t`` of the triangles hit is the traversal's closest hit (it tests, conservatively,
  every triangle that could be nearer), and any hit is any hit.

CPU only: NVRTC has no clang vector types, so on CUDA (and on a compiler without them) the functions compile
to "fall back" and :func:`lanes_available` to 0; :class:`.bvh.TriangleBVH` uses the lanes only where a probe
kernel says they are compiled in.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

#: Triangles a SIMD step tests.
LANE_WIDTH = 16
#: Float rows of one block of :data:`LANE_WIDTH` triangles: 3 corners x 3 axes, then the block's box (``lo``,
#: ``hi``: the row's first 6 floats).
BLOCK_ROWS = 10
#: ``1 + 2 * gamma_3`` for float32 (Ize 2013), as :data:`.bvh_traverse.ROBUST_SCALE`: a block's box test grows its
#: far distance by it so that rounding never culls a block the ray touches.
ROBUST_SCALE = 1.0000004
#: As :data:`.bvh_traverse.MIN_DIRECTION`: smaller direction components are replaced by it before inverting.
MIN_DIRECTION = 1.0e-30
#: ``face`` returned by :func:`closest_hit_lanes` when the traversal must answer instead; ``-1``: a miss.
FALLBACK = -2



def _guarded(code: str, fallback: str) -> str:
    """``code`` where clang's vector extensions are at hand (clang on the host), ``fallback`` elsewhere (NVRTC's
    device code, other compilers). Two levels: ``__has_builtin`` may be undefined where ``__clang__`` is not."""
    return f"""
#if defined(__clang__) && !defined(__CUDA_ARCH__) && defined(__has_builtin)
#if __has_builtin(__builtin_convertvector) && __has_builtin(__builtin_bit_cast)
{code}
#else
{fallback}
#endif
#else
{fallback}
#endif
"""


#: Shared set-up of both queries: Woop's shear of the ray (as ``bvh_traverse.prepare_ray``), then the lambda
#: ``block(b, tv, zero)`` that tests the 16 triangles of block ``b``: ``tv`` their hit distances (inf where
#: not hit at ``0 <= t < t_max``), ``zero`` the lanes with an edge function exactly 0; ``Uv, Vv, inv`` for the
#: barycentrics.
_TEST = f"""
typedef float f16 __attribute__((ext_vector_type({LANE_WIDTH})));
typedef int i16 __attribute__((ext_vector_type({LANE_WIDTH})));
typedef bool b16 __attribute__((ext_vector_type({LANE_WIDTH})));
typedef float f8 __attribute__((ext_vector_type(8)));
typedef float f4 __attribute__((ext_vector_type(4)));
typedef float f2 __attribute__((ext_vector_type(2)));
// lane j of a mask as bit j
auto bits = [](i16 mask) {{ return (unsigned)__builtin_bit_cast(unsigned short, __builtin_convertvector(mask, b16)); }};
// the axes as prepare_ray picks them, by selects (scattered rays would mispredict branches)
const float dd[3] = {{d[0], d[1], d[2]}}, oo[3] = {{o[0], o[1], o[2]}};
const float a0 = __builtin_fabsf(dd[0]), a1 = __builtin_fabsf(dd[1]), a2 = __builtin_fabsf(dd[2]);
const int kz = ((a0 > a1) & (a0 > a2)) ? 0 : (a1 > a2 ? 1 : 2);
const int kx0 = kz == 2 ? 0 : kz + 1;
const int ky0 = kx0 == 2 ? 0 : kx0 + 1;
const bool down = dd[kz] < 0.0f;  // keep the winding: swap x and y for rays going down the z axis
const int kx = down ? ky0 : kx0, ky = down ? kx0 : ky0;
const float sx = dd[kx] / dd[kz], sy = dd[ky] / dd[kz], sz = 1.0f / dd[kz];
const float ox = oo[kx], oy = oo[ky], oz = oo[kz];
const float* rows = (const float*)lanes.data;
// the box test of a block (bvh_traverse._box_entry, scalar), only where there are several blocks
auto inverse = [](float x) {{
    return __builtin_fabsf(x) < {MIN_DIRECTION!r}f ? (x < 0.0f ? -1.0f / {MIN_DIRECTION!r}f : 1.0f / {MIN_DIRECTION!r}f)
                                         : 1.0f / x; }};
const float inv0 = inverse(dd[0]), inv1 = inverse(dd[1]), inv2 = inverse(dd[2]);
auto lesser = [](float a, float b) {{ return a <= b ? a : b; }};
auto greater = [](float a, float b) {{ return a >= b ? a : b; }};
auto enters = [&](int b, float t_cap) {{
    const float* box = rows + (b * {BLOCK_ROWS} + {BLOCK_ROWS - 1}) * {LANE_WIDTH};
    const float x0 = (box[0] - oo[0]) * inv0, x1 = (box[3] - oo[0]) * inv0;
    const float y0 = (box[1] - oo[1]) * inv1, y1 = (box[4] - oo[1]) * inv1;
    const float z0 = (box[2] - oo[2]) * inv2, z1 = (box[5] - oo[2]) * inv2;
    const float near = greater(greater(lesser(x0, x1), lesser(y0, y1)), greater(lesser(z0, z1), 0.0f));
    const float far = lesser(lesser(greater(x0, x1), greater(y0, y1)), lesser(greater(z0, z1), t_cap));
    return near <= far * {ROBUST_SCALE!r}f; }};
const f16 infv = __builtin_inff();
i16 iota;
for (int j = 0; j < {LANE_WIDTH}; ++j) iota[j] = j;
auto block = [&](int b, f16& tv, i16& zero, f16& Uv, f16& Vv, f16& inv) {{
    const float* base = rows + b * {BLOCK_ROWS * LANE_WIDTH};
    auto ld = [&](int corner, int axis) {{
        f16 r; __builtin_memcpy(&r, base + (3 * corner + axis) * {LANE_WIDTH}, sizeof(r)); return r; }};
    const i16 active = iota < faces - b * {LANE_WIDTH};
    const f16 az = ld(0, kz) - oz, bz = ld(1, kz) - oz, cz = ld(2, kz) - oz;
    const f16 ax = (ld(0, kx) - ox) - sx * az, ay = (ld(0, ky) - oy) - sy * az;
    const f16 bx = (ld(1, kx) - ox) - sx * bz, by = (ld(1, ky) - oy) - sy * bz;
    const f16 cx = (ld(2, kx) - ox) - sx * cz, cy = (ld(2, ky) - oy) - sy * cz;
    const f16 U = cx * by - cy * bx, V = ax * cy - ay * cx, W = bx * ay - by * ax;
    zero = active & ((U == 0.0f) | (V == 0.0f) | (W == 0.0f));
    const f16 det = (U + V) + W;
    const f16 T = sz * (((U * az) + (V * bz)) + (W * cz));
    const f16 lo = U <= V ? U : V, hi = U >= V ? U : V;
    const i16 one_sign = ((lo <= W ? lo : W) >= 0.0f) | ((hi >= W ? hi : W) <= 0.0f);
    inv = 1.0f / det;
    const f16 t = T * inv;
    const i16 hit = active & one_sign & (det != 0.0f) & (T * det >= 0.0f) & (t >= 0.0f) & (t < t_max);
    tv = hit ? t : infv;
    Uv = U;
    Vv = V;
}};
"""

def _over_blocks(before: str, step: str, after: str, fallback: str, cap: str) -> str:
    """A query's C++ body: the set-up, ``before``, then ``step`` after each block's test (its results ``tv``,
    ``zero``, ``Uv``, ``Vv``, ``inv`` of block ``b``; blocks whose box the ray does not enter before ``cap`` are
    skipped), then ``after``; ``fallback`` where the lanes are not compiled in."""
    return _guarded(f"""{{
#pragma clang fp contract(off)
{_TEST}
{before}
const int blocks = (faces + {LANE_WIDTH - 1}) / {LANE_WIDTH};
for (int b = 0; b < blocks; ++b) {{
    if (blocks > 1 && !enters(b, {cap})) continue;
    f16 tv, Uv, Vv, inv;
    i16 zero;
    block(b, tv, zero, Uv, Vv, inv);
{step}
}}
{after}
}}""", fallback)


_GIVE_UP = f"return wp::vec4(0.0f, 0.0f, 0.0f, {float(FALLBACK)!r}f);"

_CLOSEST = _over_blocks("""
float best = __builtin_inff(), best_u = 0.0f, best_v = 0.0f;
int best_face = -1;
bool tied = false;""", f"""
    if (bits(zero)) {_GIVE_UP}
    // the least t by halves (each a vector min: no NaN here, the lanes hold hit distances or inf; of +0 and -0
    // either may come out, and both then compare equal to it: a tie)
    const f8 m8 = tv.lo < tv.hi ? tv.lo : tv.hi;
    const f4 m4 = m8.lo < m8.hi ? m8.lo : m8.hi;
    const f2 m2 = m4.lo < m4.hi ? m4.lo : m4.hi;
    const float m = m2.x < m2.y ? m2.x : m2.y;
    if (m == __builtin_inff() || m > best) continue;
    if (m == best) {{ tied = true; continue; }}
    const unsigned at = bits(tv == m);
    const int lane = __builtin_ctz(at);
    tied = (at & (at - 1)) != 0;
    best = m;
    best_u = Uv[lane] * inv[lane];
    best_v = Vv[lane] * inv[lane];
    best_face = b * {LANE_WIDTH} + lane;""", f"""
if (tied) {_GIVE_UP}
return wp::vec4(best, best_u, best_v, (float)best_face);""", _GIVE_UP, "lesser(best, t_max)")

_ANY = _over_blocks("bool unsure = false;", """
    if (bits((tv < infv) & ~zero)) return 1;
    unsure = unsure || bits(zero);""", f"return unsure ? {FALLBACK} : 0;", f"return {FALLBACK};",
                    "t_max")

_AVAILABLE = _guarded("return 1;", "return 0;")


@wp.func_native(_CLOSEST)
def closest_hit_lanes(lanes: wp.array(dtype=wp.float32), faces: int, o: wp.vec3, d: wp.vec3, t_max: float
                      ) -> wp.vec4:
    """``(t, u, v, k)`` of the closest of the ``faces`` triangles of ``lanes`` hit at ``0 <= t < t_max``
    (``k``: its index in ``lanes``, as a float; ``-1``: a miss, :data:`FALLBACK`: ask the traversal). ``d``
    non-zero, ``t_max > 0``."""
    ...


@wp.func_native(_ANY)
def any_hit_lanes(lanes: wp.array(dtype=wp.float32), faces: int, o: wp.vec3, d: wp.vec3, t_max: float) -> int:
    """1 if one of the ``faces`` triangles of ``lanes`` is hit at ``0 <= t < t_max``, 0 if none, :data:`FALLBACK`:
    ask the traversal. ``d`` non-zero, ``t_max > 0``."""
    ...


@wp.func_native(_AVAILABLE)
def lanes_available() -> int:
    """1 where the SIMD queries are compiled in (clang on the CPU), 0 where they only fall back."""
    ...


@wp.kernel
def _probe(out: wp.array(dtype=wp.int32)):
    out[0] = lanes_available()


def probe_lanes(device: str = "cpu") -> bool:
    """Whether the SIMD queries compile and are compiled in on ``device`` (builds a one-thread kernel; raises
    what the build raises)."""
    out = wp.zeros(1, dtype=wp.int32, device=device)
    wp.launch(_probe, dim=1, inputs=[out], device=device)
    return bool(out.numpy()[0])
