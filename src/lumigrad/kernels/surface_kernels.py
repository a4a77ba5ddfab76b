"""Fused recomputation of the surface at covered pixels (float32 and float64 arrays), with an explicit backward.

One thread per covered pixel recomputes, from the camera-frame corners of its visible face and the inverse
intrinsics ``K^-1`` of its view, what ``raster/rasterize.py``'s PyTorch twin (``surface_at_pixels_reference``)
computes: barycentrics, depth and the screen-space derivatives of the barycentrics. The arithmetic is float64
whatever the array dtype; results are rounded to the array dtype when stored.

With the face's corners divided by the power of two ``s`` above their largest coordinate (exact), ``P_i``
(lifted to ``z = 1`` for an orthographic camera), ``e1 = P1 - P0``, ``e2 = P2 - P0``, ``n = e1 x e2``,
``a = P0 x e2``, ``b = e1 x P0`` and the pixel's ray ``d = R K^-1 (u, v, 1)`` (``R = diag(1/s, 1/s, 1)`` for an
orthographic camera, else the identity), its columns ``d_u = R K^-1 e_0``, ``d_v = R K^-1 e_1``:

    S = n . d,  A = a . d,  B = b . d,   bary = (1 - b1 - b2, b1, b2),  b1 = -A / S,  b2 = -B / S
    depth = Z s / S,  Z = P0 . n  (perspective)  or  Z = (-m_x, -m_y, T0 . m) . d  (orthographic,
            m = (T1 - T0) x (T2 - T0) of the scaled true corners T_i)
    d b_k / d j = -(A_j + b_k S_j) / S  (k = 1, 2; A_j = a . d_j, B_j for b2, S_j = n . d_j),  d b_0 = -(d b_1 + d b_2)

The per-vertex powers of two come precomputed (``pow2_scale`` of each camera-frame vertex's largest
coordinate); a face's ``s`` is the largest of its corners'. The backward kernel runs the chain rule of
these lines in reverse (reverse mode by hand), over runs of consecutive covered pixels as the forward (a face's
forms once per stretch of pixels showing it, its corners' gradients summed over the stretch), and accumulates
the gradients of the camera-frame vertices ``[N V, 3]`` and of ``K^-1`` ``[N, 9]`` with atomic adds into
float64 buffers: on CPU each thread of a
partitioned launch owns its buffers (no cross-thread atomics), the caller sums them. A zero ``S`` (a zero-area
face, never drawn) is replaced by 1 and passes no gradient, as in the twin.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})


@wp.func
def _corner(vc: wp.array2d(dtype=Any), faces: wp.array2d(dtype=wp.int32), base: int, f: int, k: int):
    i = base + faces[f, k]
    return wp.vec3d(wp.float64(vc[i, 0]), wp.float64(vc[i, 1]), wp.float64(vc[i, 2]))


@wp.func
def _face_scale(vscale: wp.array(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32), base: int, f: int):
    """The face's power of two: the largest of its corners' (``pow2_scale`` is monotone)."""
    return wp.max(wp.max(vscale[base + faces[f, 0]], vscale[base + faces[f, 1]]), vscale[base + faces[f, 2]])


@wp.func
def _lift(p: wp.vec3d, ortho: int):
    if ortho != 0:
        return wp.vec3d(p[0], p[1], wp.float64(1.0))
    return p


@wp.func
def _kinv_column(kinv: wp.array2d(dtype=Any), view: int, c: int, row_scale: wp.vec3d):
    return wp.cw_mul(row_scale, wp.vec3d(wp.float64(kinv[view, c]), wp.float64(kinv[view, 3 + c]),
                                         wp.float64(kinv[view, 6 + c])))


@wp.func
def _row_scale(inv_s: wp.float64, ortho: int):
    one = wp.float64(1.0)
    if ortho != 0:
        return wp.vec3d(inv_s, inv_s, one)
    return wp.vec3d(one, one, one)


@wp.func
def _forms(T0: wp.vec3d, T1: wp.vec3d, T2: wp.vec3d, ortho: int):
    """``P0, e1, e2`` (lifted for an orthographic camera) and the forms ``n, a, b`` of the scaled corners."""
    P0 = _lift(T0, ortho)
    e1 = _lift(T1, ortho) - P0
    e2 = _lift(T2, ortho) - P0
    return P0, e1, e2, wp.cross(e1, e2), wp.cross(P0, e2), wp.cross(e1, P0)


@wp.func
def _ray_columns(kinv: wp.array2d(dtype=Any), view: int, inv_s: wp.float64, ortho: int):
    """``R``'s diagonal and the columns ``d_u``, ``d_v``, ``c`` of ``R K^-1``: the ray of the pixel centre
    ``(u, v)`` is ``d = d_u u + d_v v + c`` (the same for every pixel of a face: kept while the face is)."""
    rs = _row_scale(inv_s, ortho)
    return rs, _kinv_column(kinv, view, 0, rs), _kinv_column(kinv, view, 1, rs), _kinv_column(kinv, view, 2, rs)


@wp.func
def _view_of(p: wp.int64, pixels_per_view: int):
    """The view of flat pixel ``p``: ``p // pixels_per_view``, without a 64-bit division in the first view (all
    pixels of a single view; the division costs more than the rest of an interpolation)."""
    if p < wp.int64(pixels_per_view):
        return 0
    return int(p // wp.int64(pixels_per_view))


@wp.func
def _pixel(covered: wp.array(dtype=wp.int64), i: int, pixels_per_view: int, width: int):
    """``(view, u, v)`` of covered pixel ``i``: its view and the pixel centre."""
    p = covered[i]
    view = _view_of(p, pixels_per_view)
    rem = int(p - wp.int64(view) * wp.int64(pixels_per_view))
    row = rem // width
    u = wp.float64(rem - row * width) + wp.float64(0.5)
    v = wp.float64(row) + wp.float64(0.5)
    return view, u, v


@wp.func
def _scaled_face(vc: wp.array2d(dtype=Any), vscale: wp.array(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
                 base: int, f: int):
    """Face ``f``'s power of two ``s``, ``1 / s`` and corners divided by it ``T0, T1, T2``."""
    s = _face_scale(vscale, faces, base, f)
    inv_s = wp.float64(1.0) / s  # exact: s is a power of two
    T0 = _corner(vc, faces, base, f, 0) * inv_s
    T1 = _corner(vc, faces, base, f, 1) * inv_s
    T2 = _corner(vc, faces, base, f, 2) * inv_s
    return s, inv_s, T0, T1, T2


@wp.func
def _face_forms(vc: wp.array2d(dtype=Any), vscale: wp.array(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
                base: int, f: int, ortho: int):
    """Face ``f``'s ``s``, ``1 / s``, scaled corners ``T0, T1, T2`` and their ``P0, e1, e2, n, a, b``."""
    s, inv_s, T0, T1, T2 = _scaled_face(vc, vscale, faces, base, f)
    P0, e1, e2, n, a, b = _forms(T0, T1, T2, ortho)
    return s, inv_s, T0, T1, T2, P0, e1, e2, n, a, b


@wp.func
def _axis(du: wp.vec3d, dv: wp.vec3d, j: int):
    if j == 1:
        return dv
    return du


@wp.func
def _slopes(n: wp.vec3d, a: wp.vec3d, b: wp.vec3d, dj: wp.vec3d, b1: wp.float64, b2: wp.float64,
            inv_S: wp.float64):
    """``S_j`` and ``d b1 / dj``, ``d b2 / dj`` along the ray column ``dj``."""
    Sj = wp.dot(n, dj)
    return Sj, -(wp.dot(a, dj) + b1 * Sj) * inv_S, -(wp.dot(b, dj) + b2 * Sj) * inv_S


@wp.kernel
def surface_forward(offset: int, end: int, vc: wp.array2d(dtype=Any), vscale: wp.array(dtype=wp.float64),
                    faces: wp.array2d(dtype=wp.int32), kinv: wp.array2d(dtype=Any), covered: wp.array(dtype=wp.int64),
                    face_ids: wp.array(dtype=wp.int32), num_verts: int, pixels_per_view: int, width: int,
                    ortho: int, want_derivs: int, num_pixels: int, run: int, bary: wp.array2d(dtype=Any),
                    depth: wp.array(dtype=Any), derivs: wp.array2d(dtype=Any)):
    """Covered pixels ``[r run, (r + 1) run)`` for work item ``r``: consecutive covered pixels often show the same
    face, whose scaled corners and forms are then reused (the per-pixel arithmetic, hence every bit, is
    unchanged)."""
    r = offset + wp.tid()
    zero = wp.float64(0.0)
    one = wp.float64(1.0)
    view, u, v = _pixel(covered, r * run, pixels_per_view, width)  # the run's first pixel's face
    f = int(face_ids[int(covered[r * run])])
    s, inv_s, T0, T1, T2, P0, e1, e2, n, a, b = _face_forms(vc, vscale, faces, view * num_verts, f, ortho)
    rs, du, dv, c2 = _ray_columns(kinv, view, inv_s, ortho)
    for i in range(r * run, wp.min(r * run + run, num_pixels)):
        pview, u, v = _pixel(covered, i, pixels_per_view, width)
        pf = int(face_ids[int(covered[i])])
        if pf != f or pview != view:
            f = pf
            view = pview
            s, inv_s, T0, T1, T2, P0, e1, e2, n, a, b = _face_forms(vc, vscale, faces, view * num_verts, f, ortho)
            rs, du, dv, c2 = _ray_columns(kinv, view, inv_s, ortho)
        d = du * u + dv * v + c2
        S = wp.dot(n, d)
        if S == zero:
            S = one
        inv_S = one / S
        b1 = -wp.dot(a, d) * inv_S
        b2 = -wp.dot(b, d) * inv_S
        Z = wp.dot(P0, n)
        if ortho != 0:
            m = wp.cross(T1 - T0, T2 - T0)
            Z = wp.dot(wp.vec3d(-m[0], -m[1], wp.dot(T0, m)), d)
        bary[i, 0] = type(bary[i, 0])(one - b1 - b2)
        bary[i, 1] = type(bary[i, 0])(b1)
        bary[i, 2] = type(bary[i, 0])(b2)
        depth[i] = type(depth[i])(Z * inv_S * s)
        if want_derivs != 0:
            for j in range(2):
                Sj, g1, g2 = _slopes(n, a, b, _axis(du, dv, j), b1, b2, inv_S)
                derivs[i, j] = type(derivs[i, 0])(-(g1 + g2))
                derivs[i, 2 + j] = type(derivs[i, 0])(g1)
                derivs[i, 4 + j] = type(derivs[i, 0])(g2)


@wp.func
def _add_vertex(out: wp.array2d(dtype=wp.float64), i: int, g: wp.vec3d):
    wp.atomic_add(out, i, 0, g[0])
    wp.atomic_add(out, i, 1, g[1])
    wp.atomic_add(out, i, 2, g[2])


@wp.func
def _add_face(out: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32), base: int, f: int,
              g0: wp.vec3d, g1: wp.vec3d, g2: wp.vec3d):
    """Adds the gradients of face ``f``'s corners (rows ``base + faces[f]``)."""
    _add_vertex(out, base + faces[f, 0], g0)
    _add_vertex(out, base + faces[f, 1], g1)
    _add_vertex(out, base + faces[f, 2], g2)


@wp.func
def _add_kinv(out: wp.array2d(dtype=wp.float64), view: int, col0: wp.vec3d, col1: wp.vec3d, col2: wp.vec3d):
    """Adds the gradient of view ``view``'s ``K^-1`` (row-major ``[9]``) given by its columns."""
    for r in range(3):
        wp.atomic_add(out, view, 3 * r, col0[r])
        wp.atomic_add(out, view, 3 * r + 1, col1[r])
        wp.atomic_add(out, view, 3 * r + 2, col2[r])


@wp.kernel
def surface_backward(offset: int, end: int, vc: wp.array2d(dtype=Any), vscale: wp.array(dtype=wp.float64),
                     faces: wp.array2d(dtype=wp.int32), kinv: wp.array2d(dtype=Any), covered: wp.array(dtype=wp.int64),
                     face_ids: wp.array(dtype=wp.int32), num_verts: int, pixels_per_view: int, width: int,
                     ortho: int, g_bary: wp.array2d(dtype=Any), has_bary: int, g_depth: wp.array(dtype=Any),
                     has_depth: int, g_derivs: wp.array2d(dtype=Any), has_derivs: int,
                     want_verts: int, want_kinv: int, num_pixels: int, run: int,
                     d_vc: wp.array2d(dtype=wp.float64), d_kinv: wp.array2d(dtype=wp.float64)):
    """Covered pixels ``[r run, (r + 1) run)`` for work item ``r``, as ``surface_forward``: a face's scaled corners
    and forms are computed once per stretch of consecutive pixels showing it, and the gradients of its corners
    (and of the view's ``K^-1``) are summed over the stretch before they are added to ``d_vc`` (``d_kinv``)."""
    r = offset + wp.tid()
    zero = wp.float64(0.0)
    one = wp.float64(1.0)
    view, u, v = _pixel(covered, r * run, pixels_per_view, width)  # the run's first pixel's face
    f = int(face_ids[int(covered[r * run])])
    base = view * num_verts
    s, inv_s, T0, T1, T2, P0, e1, e2, n, a, b = _face_forms(vc, vscale, faces, base, f, ortho)
    rs, du, dv, c2 = _ray_columns(kinv, view, inv_s, ortho)
    acc0 = wp.vec3d(zero, zero, zero)  # gradients of the face's scaled corners, summed over its stretch
    acc1 = acc0
    acc2 = acc0
    kc0 = acc0  # columns of K^-1's gradient, summed over the view's pixels
    kc1 = acc0
    kc2 = acc0
    for i in range(r * run, wp.min(r * run + run, num_pixels)):
        pview, u, v = _pixel(covered, i, pixels_per_view, width)
        pf = int(face_ids[int(covered[i])])
        if pf != f or pview != view:
            if want_verts != 0:
                _add_face(d_vc, faces, base, f, acc0 * inv_s, acc1 * inv_s, acc2 * inv_s)
            if pview != view and want_kinv != 0:
                _add_kinv(d_kinv, view, kc0, kc1, kc2)
                kc0 = wp.vec3d(zero, zero, zero)
                kc1 = kc0
                kc2 = kc0
            f = pf
            view = pview
            base = view * num_verts
            s, inv_s, T0, T1, T2, P0, e1, e2, n, a, b = _face_forms(vc, vscale, faces, base, f, ortho)
            rs, du, dv, c2 = _ray_columns(kinv, view, inv_s, ortho)
            acc0 = wp.vec3d(zero, zero, zero)
            acc1 = acc0
            acc2 = acc0
        # --- forward, again
        d = du * u + dv * v + c2
        S = wp.dot(n, d)
        live = S != zero
        if not live:
            S = one
        inv_S = one / S
        b1 = -wp.dot(a, d) * inv_S
        b2 = -wp.dot(b, d) * inv_S
        Z = wp.dot(P0, n)
        m = wp.vec3d(zero, zero, zero)
        D = m
        if ortho != 0:
            m = wp.cross(T1 - T0, T2 - T0)
            D = wp.vec3d(-m[0], -m[1], wp.dot(T0, m))
            Z = wp.dot(D, d)
        # --- cotangents of b1, b2, S, Z and of the forms' dot products
        gb1 = zero
        gb2 = zero
        if has_bary != 0:
            gb0 = wp.float64(g_bary[i, 0])
            gb1 = wp.float64(g_bary[i, 1]) - gb0
            gb2 = wp.float64(g_bary[i, 2]) - gb0
        gS = zero
        gZ = zero
        if has_depth != 0:
            gz = wp.float64(g_depth[i])
            gZ = gz * s * inv_S
            gS -= gz * (Z * inv_S * s) * inv_S
        gn = wp.vec3d(zero, zero, zero)  # cotangents of n, a, b, d, du, dv
        ga = wp.vec3d(zero, zero, zero)
        gb = wp.vec3d(zero, zero, zero)
        gdu = wp.vec3d(zero, zero, zero)
        gdv = wp.vec3d(zero, zero, zero)
        if has_derivs != 0:
            for j in range(2):
                dj = _axis(du, dv, j)
                Sj, g1, g2 = _slopes(n, a, b, dj, b1, b2, inv_S)
                h0 = wp.float64(g_derivs[i, j])
                h1 = wp.float64(g_derivs[i, 2 + j]) - h0  # cotangent of d b1 / dj
                h2 = wp.float64(g_derivs[i, 4 + j]) - h0
                gAj = -h1 * inv_S
                gBj = -h2 * inv_S
                gSj = -(h1 * b1 + h2 * b2) * inv_S
                gb1 -= h1 * Sj * inv_S
                gb2 -= h2 * Sj * inv_S
                gS -= (h1 * g1 + h2 * g2) * inv_S
                gn += gSj * dj
                ga += gAj * dj
                gb += gBj * dj
                gdj = gSj * n + gAj * a + gBj * b
                if j == 0:
                    gdu += gdj
                else:
                    gdv += gdj
        gA = -gb1 * inv_S
        gB = -gb2 * inv_S
        gS -= (gb1 * b1 + gb2 * b2) * inv_S
        if not live:
            gS = zero
        gn += gS * d
        ga += gA * d
        gb += gB * d
        gd = gS * n + gA * a + gB * b
        gP0 = wp.vec3d(zero, zero, zero)
        gT0 = wp.vec3d(zero, zero, zero)
        gT1 = wp.vec3d(zero, zero, zero)
        gT2 = wp.vec3d(zero, zero, zero)
        if ortho != 0:
            gD = gZ * d
            gd += gZ * D
            gm = wp.vec3d(-gD[0], -gD[1], zero) + gD[2] * T0
            gT0 += gD[2] * m
            f1 = T1 - T0
            f2 = T2 - T0
            gf1 = wp.cross(f2, gm)
            gf2 = wp.cross(gm, f1)
            gT1 += gf1
            gT2 += gf2
            gT0 -= gf1 + gf2
        else:
            gP0 += gZ * n
            gn += gZ * P0
        # a = P0 x e2, b = e1 x P0, n = e1 x e2; for c = x x y: grad_x = y x g, grad_y = g x x
        gP0 += wp.cross(e2, ga) + wp.cross(gb, e1)
        ge2 = wp.cross(ga, P0) + wp.cross(gn, e1)
        ge1 = wp.cross(P0, gb) + wp.cross(e2, gn)
        gP1 = ge1
        gP2 = ge2
        gP0 -= ge1 + ge2
        if ortho != 0:  # the lifted z = 1 carries no gradient
            gP0 = wp.vec3d(gP0[0], gP0[1], zero)
            gP1 = wp.vec3d(gP1[0], gP1[1], zero)
            gP2 = wp.vec3d(gP2[0], gP2[1], zero)
        acc0 += gP0 + gT0
        acc1 += gP1 + gT1
        acc2 += gP2 + gT2
        # d = R K^-1 (u, v, 1), du = R K^-1 e_0, dv = R K^-1 e_1
        kc0 += wp.cw_mul(rs, gd * u + gdu)
        kc1 += wp.cw_mul(rs, gd * v + gdv)
        kc2 += wp.cw_mul(rs, gd)
    if want_verts != 0:
        _add_face(d_vc, faces, base, f, acc0 * inv_s, acc1 * inv_s, acc2 * inv_s)
    if want_kinv != 0:
        _add_kinv(d_kinv, view, kc0, kc1, kc2)


# ------------------------------------------------------------------------------------- interpolation
# out[pix, c] = sum_k bary[i, k] attrs[corner_k, c] and dout[pix, c, j] = sum_k derivs[i, k, j] attrs[corner_k, c]
# for covered pixel i at flat pixel pix = covered[i], corner_k = view * attrs_per_view + faces[face, k]
# (attrs_per_view = 0 for attributes shared by every view). Background rows are left as they are (zeros).


@wp.func
def _attr_rows(faces: wp.array2d(dtype=wp.int32), face_ids: wp.array(dtype=wp.int32),
               covered: wp.array(dtype=wp.int64), i: int, pixels_per_view: int, attrs_per_view: int):
    """The attribute rows of covered pixel ``i``'s face corners."""
    p = covered[i]
    first = _view_of(p, pixels_per_view) * attrs_per_view
    f = int(face_ids[int(p)])
    return wp.vec3i(first + faces[f, 0], first + faces[f, 1], first + faces[f, 2])


@wp.kernel
def interpolate_forward(offset: int, end: int, attrs: wp.array2d(dtype=Any), faces: wp.array2d(dtype=wp.int32),
                        covered: wp.array(dtype=wp.int64), face_ids: wp.array(dtype=wp.int32),
                        pixels_per_view: int, attrs_per_view: int, bary: wp.array2d(dtype=Any),
                        derivs: wp.array2d(dtype=Any), want_derivs: int, out: wp.array2d(dtype=Any),
                        dout: wp.array2d(dtype=Any)):
    i = offset + wp.tid()
    pix = int(covered[i])
    rows = _attr_rows(faces, face_ids, covered, i, pixels_per_view, attrs_per_view)
    w = wp.vec3d(wp.float64(bary[i, 0]), wp.float64(bary[i, 1]), wp.float64(bary[i, 2]))
    zero = wp.float64(0.0)
    wx = wp.vec3d(zero, zero, zero)  # the corners' d bary / dx and / dy
    wy = wx
    if want_derivs != 0:
        wx = wp.vec3d(wp.float64(derivs[i, 0]), wp.float64(derivs[i, 2]), wp.float64(derivs[i, 4]))
        wy = wp.vec3d(wp.float64(derivs[i, 1]), wp.float64(derivs[i, 3]), wp.float64(derivs[i, 5]))
    for c in range(attrs.shape[1]):
        a0 = wp.float64(attrs[rows[0], c])
        a1 = wp.float64(attrs[rows[1], c])
        a2 = wp.float64(attrs[rows[2], c])
        out[pix, c] = type(out[pix, c])(w[0] * a0 + w[1] * a1 + w[2] * a2)
        if want_derivs != 0:
            dout[pix, 2 * c] = type(dout[pix, 0])(wx[0] * a0 + wx[1] * a1 + wx[2] * a2)
            dout[pix, 2 * c + 1] = type(dout[pix, 0])(wy[0] * a0 + wy[1] * a1 + wy[2] * a2)


@wp.kernel
def interpolate_backward(offset: int, end: int, attrs: wp.array2d(dtype=Any), faces: wp.array2d(dtype=wp.int32),
                         covered: wp.array(dtype=wp.int64), face_ids: wp.array(dtype=wp.int32),
                         pixels_per_view: int, attrs_per_view: int, bary: wp.array2d(dtype=Any),
                         derivs: wp.array2d(dtype=Any), g_out: wp.array2d(dtype=Any), has_out: int,
                         g_dout: wp.array2d(dtype=Any), has_dout: int, want_bary: int, want_attrs: int,
                         g_bary: wp.array2d(dtype=Any), g_derivs: wp.array2d(dtype=Any),
                         g_attrs: wp.array2d(dtype=wp.float64)):
    i = offset + wp.tid()
    zero = wp.float64(0.0)
    pix = int(covered[i])
    rows = _attr_rows(faces, face_ids, covered, i, pixels_per_view, attrs_per_view)
    w = wp.vec3d(wp.float64(bary[i, 0]), wp.float64(bary[i, 1]), wp.float64(bary[i, 2]))
    wx = wp.vec3d(zero, zero, zero)  # the corners' d bary / dx and / dy
    wy = wx
    if has_dout != 0:
        wx = wp.vec3d(wp.float64(derivs[i, 0]), wp.float64(derivs[i, 2]), wp.float64(derivs[i, 4]))
        wy = wp.vec3d(wp.float64(derivs[i, 1]), wp.float64(derivs[i, 3]), wp.float64(derivs[i, 5]))
    gw = wp.vec3d(zero, zero, zero)  # per corner: cotangents of bary, d bary / dx, d bary / dy
    gd0 = gw
    gd1 = gw
    # Channel by channel (each pixel cotangent read once), the corners within.
    for c in range(attrs.shape[1]):
        go = zero
        if has_out != 0:
            go = wp.float64(g_out[pix, c])
        gu = zero
        gv = zero
        if has_dout != 0:
            gu = wp.float64(g_dout[pix, 2 * c])
            gv = wp.float64(g_dout[pix, 2 * c + 1])
        av = wp.vec3d(wp.float64(attrs[rows[0], c]), wp.float64(attrs[rows[1], c]), wp.float64(attrs[rows[2], c]))
        gw += go * av
        gd0 += gu * av
        gd1 += gv * av
        if want_attrs != 0:
            for k in range(3):
                ga = w[k] * go
                if has_dout != 0:
                    ga += wx[k] * gu + wy[k] * gv
                wp.atomic_add(g_attrs, rows[k], c, ga)
    if want_bary != 0:
        for k in range(3):
            g_bary[i, k] = type(g_bary[i, 0])(gw[k])
            if has_dout != 0:
                g_derivs[i, 2 * k] = type(g_derivs[i, 0])(gd0[k])
                g_derivs[i, 2 * k + 1] = type(g_derivs[i, 0])(gd1[k])


def _overload_all() -> None:
    """Compile-time overloads for float32 and float64 arrays (every floating array of one launch shares the
    dtype), declared at import so that no launch thread specialises a generic kernel on its own."""
    i32, i64, g64 = wp.array2d(dtype=wp.int32), wp.array(dtype=wp.int64), wp.array2d(dtype=wp.float64)
    ids, s64 = wp.array(dtype=wp.int32), wp.array(dtype=wp.float64)
    for f in (wp.float32, wp.float64):
        a1, a2 = wp.array(dtype=f), wp.array2d(dtype=f)
        wp.overload(surface_forward, [int, int, a2, s64, i32, a2, i64, ids, int, int, int, int, int, int, int, a2, a1,
                                      a2])
        wp.overload(surface_backward, [int, int, a2, s64, i32, a2, i64, ids, int, int, int, int, a2, int, a1, int, a2,
                                       int, int, int, int, int, g64, g64])
        wp.overload(interpolate_forward, [int, int, a2, i32, i64, ids, int, int, a2, a2, int, a2, a2])
        wp.overload(interpolate_backward, [int, int, a2, i32, i64, ids, int, int, a2, a2, a2, int, a2, int, int,
                                           int, a2, a2, g64])


_overload_all()
