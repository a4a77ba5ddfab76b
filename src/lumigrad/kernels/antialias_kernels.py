"""Edge-finding kernel of the analytic antialias op (no autograd: it outputs integer edge records).

For every pixel p and its right / lower neighbour q whose visible faces differ, it decides which face's
silhouette edge passes between the two pixel centres, and which of the two pixels that face covers. The
differentiable blend is then computed in PyTorch from these records (``raster/antialias.py``).

Geometry is tested in the camera frame with pixel rays ``d`` (z = 1): for a face edge from ``a`` to ``b``,
``w(d) = d . (a x b)`` is a homogeneous edge function, linear in the pixel position, exact under
perspective and unaffected by near-plane clipping.

Orthographic cameras reuse every test unchanged on *lifted* vertices ``vc = (x, y, 1)`` (the wrapper lifts
them): the ray of pixel ``d = K^-1 (u, v, 1) = (x, y, 1)`` starts at ``(x, y, 0)`` and runs along +z, and
``d . (a' x b')`` with ``a' = (a_x, a_y, 1)`` is exactly the 2D edge function of the edge in the camera's
xy-plane. Only the in-front test of ``_covers`` needs true depths: it reads the unlifted vertices ``vz``
when the ``ortho`` flag is set (a branch off the per-pixel hot path).
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

MAX_WALK = 8  # faces crossed between two pixel centres before giving up
CPU_PIXELS_PER_THREAD = 16  # consecutive pixels per kernel thread of ``find_edges`` on the CPU (1 on CUDA)


@wp.func
def _ray(intr: wp.array2d(dtype=wp.float64), view: int, px: float, py: float):
    y = (wp.float64(py) - intr[view, 3]) / intr[view, 1]
    x = (wp.float64(px) - intr[view, 2] - intr[view, 4] * y) / intr[view, 0]
    return wp.vec3d(x, y, wp.float64(1.0))


@wp.func
def _corner(vc: wp.array(dtype=wp.vec3d), faces: wp.array2d(dtype=wp.int32), base: int, f: int, k: int):
    return vc[base + faces[f, k % 3]]


@wp.kernel
def face_setup(vc: wp.array(dtype=wp.vec3d), faces: wp.array2d(dtype=wp.int32), num_faces: int, num_verts: int,
               edge_normals: wp.array2d(dtype=wp.vec3d), dets: wp.array(dtype=wp.float64)):
    """Per (view, face) ``i = view * F + f``: ``edge_normals[i, e] = v_e x v_(e+1)`` (``w(d) = d . n_e`` is edge
    ``e``'s function) and ``dets[i] = v0 . (v1 x v2)`` (positive: the face is seen from the front), computed
    once per frame instead of once per pixel pair (the same expressions, so the same bits)."""
    i = wp.tid()
    view = i // num_faces
    f = i - view * num_faces
    base = view * num_verts
    for e in range(3):
        edge_normals[i, e] = wp.cross(_corner(vc, faces, base, f, e), _corner(vc, faces, base, f, e + 1))
    v0 = _corner(vc, faces, base, f, 0)
    dets[i] = wp.dot(v0, wp.cross(_corner(vc, faces, base, f, 1), _corner(vc, faces, base, f, 2)))


@wp.func
def _covers(normals: wp.array2d(dtype=wp.vec3d), dets: wp.array(dtype=wp.float64), i: int, d: wp.vec3d,
            faces: wp.array2d(dtype=wp.int32), base: int, f: int, vz: wp.array(dtype=wp.vec3d), ortho: int):
    """True if the ray ``d`` passes through face ``f`` (setup row ``i``) in front of the camera."""
    w0 = wp.dot(d, normals[i, 0])
    w1 = wp.dot(d, normals[i, 1])
    w2 = wp.dot(d, normals[i, 2])
    zero = wp.float64(0.0)
    pos = w0 > zero and w1 > zero and w2 > zero
    neg = w0 < zero and w1 < zero and w2 < zero
    if not (pos or neg):
        return False
    det = dets[i]  # perspective: depth = det / (w0 + w1 + w2), the ray parameter
    if ortho != 0:
        # The face's plane n . p = n . r0 through the unlifted corners, solved for z at (x, y) = (d_x, d_y);
        # w0 + w1 + w2 = n_z here.
        r0 = _corner(vz, faces, base, f, 0)
        n = wp.cross(_corner(vz, faces, base, f, 1) - r0, _corner(vz, faces, base, f, 2) - r0)
        det = wp.dot(n, r0) - n[0] * d[0] - n[1] * d[1]
    return det / (w0 + w1 + w2) > zero


@wp.func
def _facing(dets: wp.array(dtype=wp.float64), i: int):
    return dets[i] > wp.float64(0.0)


@wp.func
def _exit_edge(normals: wp.array2d(dtype=wp.vec3d), i: int, d_in: wp.vec3d, d_out: wp.vec3d):
    """Edge of the face of setup row ``i`` through which the segment from ray d_in to d_out leaves the face; -1 if none.

    Leaving edges are those whose edge function is positive (inside) at d_in and decreases towards d_out;
    the first crossing among them is where the segment leaves. A crossing just beyond d_out (float32
    rounding disagreeing with the rasterizer's exact test) still counts, and is clamped to the pixel centre.
    """
    best = int(-1)
    best_t = wp.float64(1e30)
    w_sum = wp.float64(0.0)
    for e in range(3):
        w_sum += wp.dot(d_in, normals[i, e])
    sgn = wp.float64(1.0)
    if w_sum < wp.float64(0.0):
        sgn = wp.float64(-1.0)
    for e in range(3):
        c = normals[i, e]
        wi = sgn * wp.dot(d_in, c)
        wo = sgn * wp.dot(d_out, c)
        if wi > wp.float64(0.0) and wo < wi:
            t = wi / (wi - wo)
            if t < best_t:
                best_t = t
                best = e
    return best


@wp.func
def _mostly_vertical(normals: wp.array2d(dtype=wp.vec3d), i: int, e: int, intr: wp.array2d(dtype=wp.float64),
                     view: int):
    """True if the projected edge is closer to vertical, i.e. its normal (dw/du, dw/dv) closer to horizontal."""
    c = normals[i, e]
    fx = intr[view, 0]
    dw_du = c[0] / fx
    dw_dv = c[1] / intr[view, 1] - intr[view, 4] * c[0] / (fx * intr[view, 1])
    return wp.abs(dw_du) >= wp.abs(dw_dv)


@wp.func
def _pair_code(p: int, x: int, y: int, q: int, qx: int, qy: int, fa: int, fb: int, direction: int, view: int,
               base: int, row0: int, zbuf: wp.array(dtype=wp.float32),
               normals: wp.array2d(dtype=wp.vec3d), dets: wp.array(dtype=wp.float64),
               faces: wp.array2d(dtype=wp.int32), adjacency: wp.array2d(dtype=wp.int32),
               intr: wp.array2d(dtype=wp.float64), width: int, height: int,
               vz: wp.array(dtype=wp.vec3d), ortho: int):
    """The record of pixel ``p`` (column ``x``, row ``y``, face ``fa``) and its right (``direction`` 0) or
    lower neighbour ``q`` (``qx``, ``qy``, face ``fb`` != ``fa``): face * 8 + edge * 2 + (1 if the neighbour is
    the covered pixel), or -1. ``row0``: the setup row of face 0 of ``p``'s view."""
    da = _ray(intr, view, float(x) + 0.5, float(y) + 0.5)
    db = _ray(intr, view, float(qx) + 0.5, float(qy) + 0.5)
    f = int(-1)
    q_in = int(0)
    if fb < 0:
        f = fa
    elif fa < 0:
        f = fb
        q_in = 1
    else:
        b_in_a = _covers(normals, dets, row0 + fa, db, faces, base, fa, vz, ortho)
        a_in_b = _covers(normals, dets, row0 + fb, da, faces, base, fb, vz, ortho)
        if (not b_in_a) and a_in_b:
            f = fa
        elif b_in_a and (not a_in_b):
            f = fb
            q_in = 1
        elif (not b_in_a) and (not a_in_b):
            if zbuf[q] < zbuf[p]:
                f = fb
                q_in = 1
            else:
                f = fa
    if f < 0:
        return -1
    d_in = da
    d_out = db
    if q_in == 1:
        d_in = db
        d_out = da
    # Walk from the covering face across non-silhouette edges (a continuous surface of faces smaller
    # than a pixel) until the segment leaves the surface through a silhouette edge.
    f_other = fb
    if q_in == 1:
        f_other = fa
    cur = int(f)
    e = int(-1)
    state = int(0)  # 0 walking, 1 found a silhouette edge, 2 gave up
    for step in range(MAX_WALK):
        if state == 0:
            e = _exit_edge(normals, row0 + cur, d_in, d_out)
            if e < 0:
                state = 2
            else:
                nb = adjacency[cur, e]
                if nb < 0:
                    state = 1
                elif _facing(dets, row0 + nb) != _facing(dets, row0 + cur):
                    state = 1
                elif nb == f_other:
                    state = 2
                else:
                    cur = nb
    f = cur
    if state != 1:
        return -1
    # Each edge is blended along one axis only, the one closer to its screen-space normal, so a pixel
    # is never blended twice for one edge and the output stays continuous as the edge moves.
    if _mostly_vertical(normals, row0 + f, e, intr, view) != (direction == 0):
        return -1
    return f * 8 + e * 2 + q_in


@wp.kernel
def find_edges(
    offset: int, end: int,
    face_ids: wp.array(dtype=wp.int32), zbuf: wp.array(dtype=wp.float32),
    normals: wp.array2d(dtype=wp.vec3d), dets: wp.array(dtype=wp.float64), num_faces: int,
    faces: wp.array2d(dtype=wp.int32), adjacency: wp.array2d(dtype=wp.int32),
    intr: wp.array2d(dtype=wp.float64), width: int, height: int, num_verts: int,
    vz: wp.array(dtype=wp.vec3d), ortho: int, num_pixels: int, per_thread: int,
    codes: wp.array(dtype=wp.int32),
):
    """Write ``codes[2 p + dir]`` (``_pair_code``) for the ``per_thread`` pixels ``p`` from ``(offset + tid) *
    per_thread`` (fewer in the last thread): on the CPU a thread per pixel would cost more in per-thread overhead
    than the two comparisons that settle most pixels. ``normals``, ``dets``: ``face_setup``'s output."""
    first = (offset + wp.tid()) * per_thread
    last = wp.min(first + per_thread, num_pixels)
    hw = width * height
    view = first // hw
    y = (first - view * hw) // width
    x = first - view * hw - y * width
    for p in range(first, last):
        fa = face_ids[p]
        for direction in range(2):
            code = int(-1)
            q = p + 1
            qx = x + 1
            qy = y
            if direction == 1:
                q = p + width
                qx = x
                qy = y + 1
            if qx < width and qy < height:  # the cheap tests here: most pixels stop at them
                fb = face_ids[q]
                if fa != fb:
                    code = _pair_code(p, x, y, q, qx, qy, fa, fb, direction, view, view * num_verts,
                                      view * num_faces, zbuf, normals, dets, faces, adjacency, intr, width, height,
                                      vz, ortho)
            codes[2 * p + direction] = code
        x += 1  # the next pixel's column, row and view
        if x == width:
            x = 0
            y += 1
            if y == height:
                y = 0
                view += 1
