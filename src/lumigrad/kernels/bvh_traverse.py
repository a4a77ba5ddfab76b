"""Ray traversal of lumigrad's own flattened binary BVH (:mod:`.bvh_build`): closest hit and any hit, as Warp
functions that kernels call per ray.

Why our own instead of Warp's ``wp.mesh_query_ray``: on the CPU that query cost about 250 ns a ray even on a
14-triangle box (docs/benchmarks.md, "The fused primal kernel"), and the path tracer makes two a bounce. This
traversal precomputes per ray what Warp recomputes per triangle and per node (the inverse direction of the slab
tests, the shear of the watertight triangle test), tests both children of a node from one parent visit and
descends into the nearer first, and culls stacked nodes farther than the closest hit so far. A shadow ray
(:func:`any_hit_wp`) has its own, simpler loop: it stops at its first blocker, and since any order of the nodes
gives the same answer, it neither sorts children by distance nor keeps distances on its stack.

Conventions (the same as :mod:`.bvh_kernels` documents for Warp's query): a hit is ``o + t * d`` with ``t`` in
multiples of ``d``'s length and ``0 <= t < t_max``; ``(u, v)`` are the weights of corners 0 and 1; both sides of
a triangle are hit; zero-area triangles, zero directions and non-positive or NaN ``t_max`` miss.

The triangle test is Woop, Benthin and Wald's watertight test (JCGT 2013): the ray is sheared so that it runs
along +z from the origin, and the triangle's 2D edge functions at the origin decide the hit, recomputed in
float64 when one is exactly zero, so a ray through a shared edge or vertex hits at least one of the triangles
there. The slab test grows the far distance by ``ROBUST_SCALE`` (Ize 2013, "Robust BVH ray traversal") so that
rounding never culls a box the ray touches.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

#: Deepest tree the traversal stack holds (the build checks its trees against it).
STACK_SIZE = 64
#: ``1 + 2 * gamma_3`` for float32 (Ize 2013): the slab test's far distance is multiplied by it.
ROBUST_SCALE = 1.0000004
#: Direction components smaller than this are replaced by it (signed) before inverting: no inf * 0 = NaN.
MIN_DIRECTION = 1.0e-30

stack_vec = wp.types.vector(length=STACK_SIZE, dtype=wp.int32)
distance_vec = wp.types.vector(length=STACK_SIZE, dtype=wp.float32)


@wp.struct
class FlatBVH:
    """The arrays of one BVH (see :mod:`.bvh_build` for the layout).

    Node ``k`` covers the box ``[box[2k], box[2k + 1]]`` and has ``node[k] = (first, count)``. An inner node
    (``count == 0``) has children ``first`` and ``first + 1`` (their four box corners are contiguous); a leaf
    holds triangles ``first .. first + count - 1`` of the leaf-ordered corners ``tri[3j], tri[3j + 1],
    tri[3j + 2]`` (corners 0, 1, 2 of face ``face[j]``). Node 0 is the root; ``num_nodes == 0``: no triangles.

    Small meshes on the CPU also carry ``lanes``, their ``num_faces`` leaf-ordered triangles as SIMD blocks with
    a box each (:func:`.bvh_build.triangle_lanes`, tested by :mod:`.bvh_native`); unread by the traversal.
    """
    box: wp.array(dtype=wp.vec3)
    node: wp.array(dtype=wp.vec2i)
    tri: wp.array(dtype=wp.vec3)
    face: wp.array(dtype=wp.int32)
    num_nodes: int
    lanes: wp.array(dtype=wp.float32)
    num_faces: int


@wp.struct
class RayPre:
    """What a ray's tests share: origin, inverse direction, and Woop's shear (axes ``kx, ky, kz``)."""
    o: wp.vec3
    inv: wp.vec3
    kx: int
    ky: int
    kz: int
    sx: float
    sy: float
    sz: float


@wp.func
def _safe_inverse(x: float):
    if wp.abs(x) < MIN_DIRECTION:
        if x < 0.0:
            return -1.0 / MIN_DIRECTION
        return 1.0 / MIN_DIRECTION
    return 1.0 / x


@wp.func
def prepare_ray(o: wp.vec3, d: wp.vec3):
    """Per-ray constants of the slab and triangle tests (``d`` must be non-zero)."""
    r = RayPre()
    r.o = o
    r.inv = wp.vec3(_safe_inverse(d[0]), _safe_inverse(d[1]), _safe_inverse(d[2]))
    ax = wp.abs(d[0])
    ay = wp.abs(d[1])
    az = wp.abs(d[2])
    kz = int(2)
    if ax > ay and ax > az:
        kz = 0
    elif ay > az:
        kz = 1
    kx = kz + 1
    if kx == 3:
        kx = 0
    ky = kx + 1
    if ky == 3:
        ky = 0
    if d[kz] < 0.0:  # keep the winding: swap x and y for rays going down the z axis
        tmp = kx
        kx = ky
        ky = tmp
    r.kx = kx
    r.ky = ky
    r.kz = kz
    r.sx = d[kx] / d[kz]
    r.sy = d[ky] / d[kz]
    r.sz = 1.0 / d[kz]
    return r


@wp.func
def _lesser(a: float, b: float):
    """``min(a, b)`` as one select: ``wp.min`` also guards NaN (a compare and two blends more on the CPU),
    which the slab distances cannot be (finite boxes, origins and ``inv``: no ``0 * inf``)."""
    return wp.where(a <= b, a, b)


@wp.func
def _greater(a: float, b: float):
    """``max(a, b)`` as one select (see :func:`_lesser`)."""
    return wp.where(a >= b, a, b)


@wp.func
def _box_entry(r: RayPre, lo: wp.vec3, hi: wp.vec3, t_cap: float):
    """Entry distance of the ray into box ``[lo, hi]`` clipped to ``[0, t_cap]``, or inf if it misses."""
    t0 = wp.cw_mul(lo - r.o, r.inv)
    t1 = wp.cw_mul(hi - r.o, r.inv)
    near = _greater(_greater(_lesser(t0[0], t1[0]), _lesser(t0[1], t1[1])),
                    _greater(_lesser(t0[2], t1[2]), 0.0))
    far = _lesser(_lesser(_greater(t0[0], t1[0]), _greater(t0[1], t1[1])),
                  _lesser(_greater(t0[2], t1[2]), t_cap))
    if near <= far * ROBUST_SCALE:
        return near
    return wp.inf


@wp.func
def _edge(ax: float, ay: float, bx: float, by: float):
    return ax * by - ay * bx


@wp.func
def _edge64(ax: float, ay: float, bx: float, by: float):
    return wp.float32(wp.float64(ax) * wp.float64(by) - wp.float64(ay) * wp.float64(bx))


@wp.func
def _axis(v: wp.vec3, k: int):
    """``v[k]`` by selects (no indexed load through memory)."""
    return v[k]


@wp.func
def intersect_triangle(r: RayPre, p0: wp.vec3, p1: wp.vec3, p2: wp.vec3):
    """Watertight ray-triangle test: ``(t, u, v)`` of the hit, ``t = -1`` on a miss; ``u, v`` weigh p0, p1."""
    A = p0 - r.o
    B = p1 - r.o
    C = p2 - r.o
    az = _axis(A, r.kz)
    bz = _axis(B, r.kz)
    cz = _axis(C, r.kz)
    ax = _axis(A, r.kx) - r.sx * az
    ay = _axis(A, r.ky) - r.sy * az
    bx = _axis(B, r.kx) - r.sx * bz
    by = _axis(B, r.ky) - r.sy * bz
    cx = _axis(C, r.kx) - r.sx * cz
    cy = _axis(C, r.ky) - r.sy * cz
    U = _edge(cx, cy, bx, by)
    V = _edge(ax, ay, cx, cy)
    W = _edge(bx, by, ax, ay)
    if U == 0.0 or V == 0.0 or W == 0.0:
        U = _edge64(cx, cy, bx, by)
        V = _edge64(ax, ay, cx, cy)
        W = _edge64(bx, by, ax, ay)
    # one branch at the end: a hit has U, V, W of one sign, a non-zero sum, and T of that sum's sign
    det = U + V + W
    T = r.sz * (U * az + V * bz + W * cz)
    one_sign = _lesser(_lesser(U, V), W) >= 0.0 or _greater(_greater(U, V), W) <= 0.0
    if one_sign and det != 0.0 and T * det >= 0.0:
        inv_det = 1.0 / det
        return wp.vec3(T * inv_det, U * inv_det, V * inv_det)
    return wp.vec3(-1.0, 0.0, 0.0)


@wp.func
def _usable(d: wp.vec3, t_max: float):
    return wp.dot(d, d) > 0.0 and t_max > 0.0


@wp.func
def _root(bvh: FlatBVH, r: RayPre, t_cap: float):
    """0 (the root) if the ray enters the root's box before ``t_cap``, else -1."""
    if _box_entry(r, bvh.box[0], bvh.box[1], t_cap) < wp.inf:
        return 0
    return -1


@wp.func
def _triangle(bvh: FlatBVH, r: RayPre, k: int):
    """:func:`intersect_triangle` of leaf-ordered triangle ``k``."""
    return intersect_triangle(r, bvh.tri[3 * k], bvh.tri[3 * k + 1], bvh.tri[3 * k + 2])


@wp.func
def _traverse(bvh: FlatBVH, o: wp.vec3, d: wp.vec3, t_max: float):
    """The closest hit of ``o + t d`` at ``0 <= t < t_max``: ``(face, t, u, v)``, ``face = -1`` and ``t = inf``
    on a miss."""
    best_face = int(-1)
    best_t = t_max
    best_u = float(0.0)
    best_v = float(0.0)
    if bvh.num_nodes == 0 or not _usable(d, t_max):
        return best_face, float(wp.inf), best_u, best_v
    r = prepare_ray(o, d)
    stack = stack_vec()
    entry = distance_vec()
    sp = int(0)
    node = _root(bvh, r, best_t)
    while node >= 0:
        first = bvh.node[node][0]
        count = bvh.node[node][1]
        if count > 0:
            for k in range(first, first + count):
                h = _triangle(bvh, r, k)
                if h[0] >= 0.0 and h[0] < best_t:
                    best_t = h[0]
                    best_u = h[1]
                    best_v = h[2]
                    best_face = bvh.face[k]
            node = -1
        else:  # both children's boxes; descend into the nearer, defer the farther
            near = first
            far = first + 1
            t_near = _box_entry(r, bvh.box[2 * near], bvh.box[2 * near + 1], best_t)
            t_far = _box_entry(r, bvh.box[2 * far], bvh.box[2 * far + 1], best_t)
            if t_far < t_near:
                near = first + 1
                far = first
                tmp = t_near
                t_near = t_far
                t_far = tmp
            node = -1
            if t_near < wp.inf:
                node = near
                if t_far < wp.inf:
                    stack[sp] = far
                    entry[sp] = t_far
                    sp += 1
        while node < 0 and sp > 0:  # the nearest deferred node not beyond the closest hit
            sp -= 1
            if entry[sp] <= best_t * ROBUST_SCALE:
                node = stack[sp]
    if best_face < 0:
        best_t = wp.inf
    return best_face, best_t, best_u, best_v


@wp.func
def closest_hit_wp(bvh: FlatBVH, o: wp.vec3, d: wp.vec3, t_max: float):
    """Closest hit of ``o + t d`` at ``0 <= t < t_max``: ``(face, t, u, v)``, ``face = -1`` on a miss."""
    return _traverse(bvh, o, d, t_max)


@wp.func
def _leaf_blocks(bvh: FlatBVH, r: RayPre, first: int, count: int, t_max: float):
    """Whether one of leaf-ordered triangles ``first .. first + count - 1`` is hit at ``0 <= t < t_max``."""
    for k in range(first, first + count):
        h = _triangle(bvh, r, k)
        if h[0] >= 0.0 and h[0] < t_max:
            return True
    return False


@wp.func
def any_hit_wp(bvh: FlatBVH, o: wp.vec3, d: wp.vec3, t_max: float):
    """Whether ``o + t d`` hits any triangle at ``0 <= t < t_max`` (returns at the first one found).

    Any order of the nodes gives the same answer (boxes are culled by ``t_max`` alone, conservatively), so this
    loop neither sorts a node's children nor keeps their distances: it descends into the first child the ray
    enters and defers the second (up to 16 % cheaper than the closest-hit loop stopping at its first hit:
    docs/benchmarks.md, "BVH traversal lanes")."""
    if bvh.num_nodes == 0 or not _usable(d, t_max):
        return False
    r = prepare_ray(o, d)
    stack = stack_vec()
    sp = int(0)
    node = _root(bvh, r, t_max)
    while node >= 0:
        span = bvh.node[node]  # (first child, 0) or (first triangle, count)
        node = -1
        if span[1] > 0:
            if _leaf_blocks(bvh, r, span[0], span[1], t_max):
                return True
        else:
            first = span[0]
            enter_first = _box_entry(r, bvh.box[2 * first], bvh.box[2 * first + 1], t_max) < wp.inf
            enter_second = _box_entry(r, bvh.box[2 * first + 2], bvh.box[2 * first + 3], t_max) < wp.inf
            if enter_first:
                node = first
                if enter_second:
                    stack[sp] = first + 1
                    sp += 1
            elif enter_second:
                node = first + 1
        if node < 0 and sp > 0:
            sp -= 1
            node = stack[sp]
    return False
