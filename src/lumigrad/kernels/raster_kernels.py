"""Visibility kernels of the hard rasterizer: tile binning and a per-tile depth test.

These kernels only find *which* triangle covers each pixel centre (and its depth, for depth peeling). They
produce integer ids and are not differentiated; barycentrics and depth are recomputed in differentiable
PyTorch (``raster/rasterize.py``).

Triangles come from two sources, numbered ``t`` in one range:

* ``t < N*F``: face ``t % F`` of view ``t // F``, read through ``faces`` from the per-view projected
  vertices ``proj [N*V, 3]`` = (u, v, z). Skipped when ``face_skip[t]`` is set (a vertex before the near
  plane: such faces come clipped, in the second source, or not at all).
* ``t >= N*F``: near-plane-clipped triangles ``extra_uvz [E*3, 3]`` with their view and face ids.

The projection (perspective or orthographic) happens first, per vertex (``projection_kernels.project_vertices``,
the operations of ``cameras.projection.project_points``); the kernels here only see screen-space
triangles, and ``affine_depth`` selects how depth is interpolated across them.

Coverage uses float64 edge functions evaluated with canonically ordered endpoints and a consistent tie
rule, so meshes are watertight: a pixel centre on a shared edge belongs to exactly one of the two triangles.
Positions are not snapped, so coverage agrees with the exact ray-triangle test used by the differentiable
recomputation and by antialias (to float64 rounding).
Cost: O(triangles x tiles they overlap) to bin, O(sum over (triangle, tile) of overlapped pixels) to test;
back-facing triangles whose pixels are all nearer already skip their tests (``raster_tiles``).
"""

from __future__ import annotations

import warp as wp

TILE_SIZE = 16
# Explicit backward passes live in PyTorch / separate kernels; skipping Warp's adjoints compiles 1.3-2x faster.
wp.set_module_options({"enable_backward": False})


@wp.kernel
def near_flags(offset: int, end: int, proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
               num_faces: int, num_verts: int, near: wp.float64, flags: wp.array(dtype=wp.int8)):
    """Per (view, face) ``t``: 0 when no corner lies before the near plane (``z < near``), 1 when all do (never
    drawn), 2 when some do (drawn clipped). The visibility kernels skip faces with a non-zero flag."""
    t = offset + wp.tid()
    view = t // num_faces
    f = t - view * num_faces
    base = view * num_verts
    n = int(0)
    for k in range(3):
        if proj[base + faces[f, k], 2] < near:
            n += 1
    flag = wp.int8(0)
    if n == 3:
        flag = wp.int8(1)
    elif n > 0:
        flag = wp.int8(2)
    flags[t] = flag


@wp.func
def _tri_corners(t: int, num_views_faces: int, num_faces: int, num_verts: int,
                 proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
                 extra_uvz: wp.array2d(dtype=wp.float64)):
    """Triangle ``t``'s three (u, v, z) rows: face ``t % F`` of view ``t // F`` read through ``faces`` from
    ``proj``, or (``t >= N F``) clipped triangle ``t - N F`` of ``extra_uvz``."""
    if t < num_views_faces:
        view = t // num_faces
        f = t - view * num_faces
        base = view * num_verts
        i0 = base + faces[f, 0]
        i1 = base + faces[f, 1]
        i2 = base + faces[f, 2]
        return (wp.vec3d(proj[i0, 0], proj[i0, 1], proj[i0, 2]), wp.vec3d(proj[i1, 0], proj[i1, 1], proj[i1, 2]),
                wp.vec3d(proj[i2, 0], proj[i2, 1], proj[i2, 2]))
    r = (t - num_views_faces) * 3
    return (wp.vec3d(extra_uvz[r, 0], extra_uvz[r, 1], extra_uvz[r, 2]),
            wp.vec3d(extra_uvz[r + 1, 0], extra_uvz[r + 1, 1], extra_uvz[r + 1, 2]),
            wp.vec3d(extra_uvz[r + 2, 0], extra_uvz[r + 2, 1], extra_uvz[r + 2, 2]))


@wp.func
def tri_uvz(t: int, num_views_faces: int, num_faces: int, num_verts: int,
            proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
            extra_uvz: wp.array2d(dtype=wp.float64)):
    """Triangle ``t``'s (u, v, z) rows (:func:`_tri_corners`) as the rows of a mat33d."""
    q0, q1, q2 = _tri_corners(t, num_views_faces, num_faces, num_verts, proj, faces, extra_uvz)
    return wp.matrix_from_rows(q0, q1, q2)


@wp.func
def _tri_face_view(t: int, num_views_faces: int, num_faces: int,
                   extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32)):
    if t < num_views_faces:
        return t - (t // num_faces) * num_faces, t // num_faces
    e = t - num_views_faces
    return extra_face[e], extra_view[e]


@wp.func
def _signed_area2(q0: wp.vec3d, q1: wp.vec3d, q2: wp.vec3d):
    """Twice the signed screen-space area of the triangle with (u, v, z) corners ``q0, q1, q2``."""
    return (q1[0] - q0[0]) * (q2[1] - q0[1]) - (q2[0] - q0[0]) * (q1[1] - q0[1])


@wp.func
def _bin_triangle(
    t: int, num_views_faces: int, num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
    face_skip: wp.array(dtype=wp.int8), use_skip: int, extra_uvz: wp.array2d(dtype=wp.float64),
    extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32),
    width: int, height: int, tiles_x: int, tiles_y: int, cull: int,
    bbox: wp.array2d(dtype=wp.int32), counts: wp.array(dtype=wp.int32),
):
    """Triangle ``t``'s pixel bounding box of covered pixel centres (empty if culled) and its tile counts."""
    bbox[t, 0] = 0
    bbox[t, 1] = -1
    bbox[t, 2] = 0
    bbox[t, 3] = -1
    if t < num_views_faces and use_skip != 0:
        if face_skip[t] != wp.int8(0):
            return
    q0, q1, q2 = _tri_corners(t, num_views_faces, num_faces, num_verts, proj, faces, extra_uvz)
    fv = _tri_face_view(t, num_views_faces, num_faces, extra_view, extra_face)
    view = fv[1]
    area2 = _signed_area2(q0, q1, q2)
    if area2 == wp.float64(0.0) or not wp.isfinite(area2):  # non-finite corners (NaN / Inf) are never drawn
        return
    # Front faces wind counter-clockwise in a y-up view, i.e. negative area in pixel coordinates (y down).
    if cull == 1 and area2 > wp.float64(0.0):
        return
    if cull == 2 and area2 < wp.float64(0.0):
        return
    umin = wp.min(q0[0], wp.min(q1[0], q2[0]))
    umax = wp.max(q0[0], wp.max(q1[0], q2[0]))
    vmin = wp.min(q0[1], wp.min(q1[1], q2[1]))
    vmax = wp.max(q0[1], wp.max(q1[1], q2[1]))
    half = wp.float64(0.5)
    # Pixel j is a candidate when its centre j + 0.5 lies in [umin, umax].
    x0 = wp.max(wp.float64(0.0), wp.ceil(umin - half))
    x1 = wp.min(wp.float64(width - 1), wp.floor(umax - half))
    y0 = wp.max(wp.float64(0.0), wp.ceil(vmin - half))
    y1 = wp.min(wp.float64(height - 1), wp.floor(vmax - half))
    if x0 > x1 or y0 > y1:
        return
    ix0 = int(x0)
    ix1 = int(x1)
    iy0 = int(y0)
    iy1 = int(y1)
    bbox[t, 0] = ix0
    bbox[t, 1] = ix1
    bbox[t, 2] = iy0
    bbox[t, 3] = iy1
    base = view * tiles_x * tiles_y
    for ty in range(iy0 // TILE_SIZE, iy1 // TILE_SIZE + 1):
        for tx in range(ix0 // TILE_SIZE, ix1 // TILE_SIZE + 1):
            wp.atomic_add(counts, base + ty * tiles_x + tx, 1)


@wp.kernel
def bin_count_range(
    offset: int, end: int,
    num_views_faces: int, num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
    face_skip: wp.array(dtype=wp.int8), use_skip: int, extra_uvz: wp.array2d(dtype=wp.float64),
    extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32),
    width: int, height: int, tiles_x: int, tiles_y: int, cull: int,
    bbox: wp.array2d(dtype=wp.int32), counts: wp.array(dtype=wp.int32),
):
    """Per triangle ``offset + tid``: pixel bounding box of covered pixel centres (empty if culled) and tile
    counts, for a partitioned launch (each part its own ``counts``); ``face_skip`` is read only when
    ``use_skip`` is set."""
    _bin_triangle(offset + wp.tid(), num_views_faces, num_faces, num_verts, proj, faces, face_skip, use_skip, extra_uvz,
                  extra_view, extra_face, width, height, tiles_x, tiles_y, cull, bbox, counts)


@wp.func
def _fill_triangle(
    t: int, num_views_faces: int, num_faces: int,
    extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32),
    tiles_x: int, tiles_y: int,
    bbox: wp.array2d(dtype=wp.int32), cursor: wp.array(dtype=wp.int32), tile_list: wp.array(dtype=wp.int32),
):
    """Append triangle ``t`` to the list of every tile its bounding box overlaps."""
    if bbox[t, 1] < bbox[t, 0]:
        return
    fv = _tri_face_view(t, num_views_faces, num_faces, extra_view, extra_face)
    base = fv[1] * tiles_x * tiles_y
    for ty in range(bbox[t, 2] // TILE_SIZE, bbox[t, 3] // TILE_SIZE + 1):
        for tx in range(bbox[t, 0] // TILE_SIZE, bbox[t, 1] // TILE_SIZE + 1):
            slot = wp.atomic_add(cursor, base + ty * tiles_x + tx, 1)
            tile_list[slot] = t


@wp.kernel
def bin_fill_range(
    offset: int, end: int,
    num_views_faces: int, num_faces: int,
    extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32),
    tiles_x: int, tiles_y: int,
    bbox: wp.array2d(dtype=wp.int32), cursor: wp.array(dtype=wp.int32), tile_list: wp.array(dtype=wp.int32),
):
    """Append triangle ``offset + tid`` to the list of every tile its bounding box overlaps, for a partitioned
    launch (each part its own ``cursor``, starting where the earlier parts' entries of each tile end)."""
    _fill_triangle(offset + wp.tid(), num_views_faces, num_faces, extra_view, extra_face, tiles_x, tiles_y, bbox,
                   cursor, tile_list)


@wp.func
def _edge_owns(ex: wp.float64, ey: wp.float64):
    """Tie rule for a pixel centre exactly on an edge of a positively oriented triangle."""
    return ey > wp.float64(0.0) or (ey == wp.float64(0.0) and ex < wp.float64(0.0))


@wp.func
def _edge_setup(ax: wp.float64, ay: wp.float64, bx: wp.float64, by: wp.float64, s: wp.float64):
    """The edge ``a -> b`` of a triangle of orientation ``s`` (+-1) in canonical form: the start ``(ox, oy)`` and
    the direction ``(dx, dy)`` of the endpoints in a canonical order, the sign ``sg`` that turns
    ``dx (pv - oy) - dy (pu - ox)`` into ``s (b - a) x (p - a)``, and whether the edge owns centres on it.

    Two faces sharing an edge traverse it in opposite directions; ordering the endpoints first makes their
    values exact negatives of each other, so with the tie rule a pixel centre is never covered twice or
    missed along a shared edge (watertight without snapping vertices to a grid). Everything here depends on
    the triangle only, so the per-pixel work is two products and two differences per edge.
    """
    owns = _edge_owns(s * (bx - ax), s * (by - ay))
    if bx < ax or (bx == ax and by < ay):
        return wp.vec4d(bx, by, ax - bx, ay - by), -s, owns
    return wp.vec4d(ax, ay, bx - ax, by - ay), s, owns


@wp.func
def _covers(w: wp.float64, owns: bool):
    """Whether a pixel centre with the (oriented) edge value ``w`` lies on the inner side of the edge."""
    return w > wp.float64(0.0) or (w == wp.float64(0.0) and owns)


@wp.func
def _row_span(e: wp.vec4d, sg: wp.float64, row_term: wp.float64, x0: int, x1: int):
    """Narrow the pixel columns ``[x0, x1]`` of one row to those that can lie inside the edge ``e``.

    The edge value ``sg (row_term - dy (pu - ox))`` is affine in the centre ``pu = x + 0.5``; its root is
    found in floating point and widened by a margin far above its rounding error, so no covered pixel is
    cut (the exact test still decides every pixel left). Returns an empty span when the edge excludes the row.
    """
    dy = e[3]
    if dy == wp.float64(0.0):
        if sg * row_term < wp.float64(0.0):
            return x1 + 1, x1
        return x0, x1
    root = e[0] + row_term / dy  # pu where the edge value is zero
    margin = wp.float64(1.0) + wp.float64(1e-12) * (wp.abs(e[0]) + wp.abs(root))
    lo = wp.float64(x0)
    hi = wp.float64(x1)
    if sg * dy < wp.float64(0.0):  # the value grows with pu: inside from the root on
        lo = wp.max(lo, wp.ceil(root - wp.float64(0.5) - margin))
    else:
        hi = wp.min(hi, wp.floor(root - wp.float64(0.5) + margin))
    if lo > hi:
        return x1 + 1, x1
    return int(lo), int(hi)


#: Rows of a triangle at least this wide (pixels of its box within the tile) are first narrowed to the
#: columns its edges allow (:func:`_row_span`); narrower ones test every pixel of the box.
ROW_SPAN_MIN = 8


#: Relative slack of :func:`_hidden_behind`'s depth bound: far above the few float64 roundings of the bound
#: itself, and a float32 depth above ``d (1 + DEPTH_GAP)`` is certain to round to a float32 above ``d``.
DEPTH_SLACK = 1e-12
DEPTH_GAP = 1e-6


@wp.func
def _depth_floor(q0: wp.vec3d, q1: wp.vec3d, q2: wp.vec3d, area2: wp.float64, width: int, height: int,
                 affine_depth: int):
    """A lower bound on the depth the pixel loop can compute at any covered pixel centre of the image, or 0
    when none is known (a corner at ``z <= 0``).

    Each covered centre has edge values ``w_i >= 0`` and weights ``lam_i = w_i / |area2| >= 0``; their sum is
    1 in exact arithmetic. The computed ``w_i`` err by at most a few units of rounding times the size of
    their terms, ``|area2|`` by a few times the size of its products, so ``sum(lam_i) <= 1 + rel`` with
    ``rel`` below (generous: 64 roundings of 2^-53). Perspective depth ``1 / sum(lam_i / z_i)`` is then at
    least ``zmin / (1 + rel)``, affine depth ``sum(lam_i z_i)`` at least ``zmin (1 - rel)``; both are shrunk
    by :data:`DEPTH_SLACK` for the bound's own rounding.
    """
    zmin = wp.min(q0[2], wp.min(q1[2], q2[2]))
    if not (zmin > wp.float64(0.0)):
        return wp.float64(0.0)
    extent = wp.float64(width + height)
    terms = wp.float64(0.0)  # sum over edges of |dx| (|pv| + |oy|) + |dy| (|pu| + |ox|), corners' magnitudes
    qs = wp.matrix_from_rows(q0, q1, q2)
    for i in range(3):
        a = qs[i]
        b = qs[(i + 1) % 3]
        terms += wp.abs(b[0] - a[0]) * (extent + wp.abs(a[1]) + wp.abs(b[1]))
        terms += wp.abs(b[1] - a[1]) * (extent + wp.abs(a[0]) + wp.abs(b[0]))
    rel = wp.float64(64.0 * 1.1102230246251565e-16) * terms / wp.abs(area2)
    if affine_depth != 0:
        return zmin * (wp.float64(1.0) - rel) * (wp.float64(1.0) - wp.float64(DEPTH_SLACK))
    return zmin / ((wp.float64(1.0) + rel) * (wp.float64(1.0) + wp.float64(DEPTH_SLACK)))


@wp.func
def _hidden_behind(floor: wp.float64, img: int, width: int, x0: int, x1: int, y0: int, y1: int,
                   out_depth: wp.array(dtype=wp.float32)):
    """Whether every pixel of the box ``[x0, x1] x [y0, y1]`` already holds a depth that a fragment at depth
    ``>= floor`` cannot reach or tie (so it could not change the pixel, whatever its face index)."""
    if not (floor > wp.float64(0.0)):
        return False
    limit = floor / wp.float64(1.0 + DEPTH_GAP)
    for y in range(y0, y1 + 1):
        row = img + y * width
        for x in range(x0, x1 + 1):
            if not (wp.float64(out_depth[row + x]) < limit):
                return False
    return True


@wp.func
def _draw_triangle(
    q0: wp.vec3d, q1: wp.vec3d, q2: wp.vec3d, area2: wp.float64, face: int, bx0: int, bx1: int, y0: int, y1: int,
    img: int, width: int, height: int, near_lo: wp.float32, far: float, affine_depth: int, cull_hidden: bool,
    use_prev: int, prev_face: wp.array(dtype=wp.int32), prev_depth: wp.array(dtype=wp.float32),
    out_face: wp.array(dtype=wp.int32), out_depth: wp.array(dtype=wp.float32),
):
    """Depth-test triangle ``(q0, q1, q2)`` (face ``face``) at every pixel centre of the box
    ``[bx0, bx1] x [y0, y1]``. With ``cull_hidden``, first skip the triangle when the box already holds
    nearer depths everywhere (:func:`_hidden_behind`): the result is the same, the pixel tests are saved."""
    if cull_hidden:
        if _hidden_behind(_depth_floor(q0, q1, q2, area2, width, height, affine_depth), img, width, bx0, bx1, y0,
                          y1, out_depth):
            return
    half = wp.float64(0.5)
    s = wp.float64(1.0)
    if area2 < wp.float64(0.0):
        s = wp.float64(-1.0)
    inv_area = wp.float64(1.0) / (s * area2)
    e0, sg0, own0 = _edge_setup(q0[0], q0[1], q1[0], q1[1], s)
    e1, sg1, own1 = _edge_setup(q1[0], q1[1], q2[0], q2[1], s)
    e2, sg2, own2 = _edge_setup(q2[0], q2[1], q0[0], q0[1], s)
    narrow = bx1 - bx0 + 1 >= ROW_SPAN_MIN
    for y in range(y0, y1 + 1):
        pv = wp.float64(y) + half
        r0 = e0[2] * (pv - e0[1])
        r1 = e1[2] * (pv - e1[1])
        r2 = e2[2] * (pv - e2[1])
        x0 = bx0
        x1 = bx1
        if narrow:
            x0, x1 = _row_span(e0, sg0, r0, x0, x1)
            x0, x1 = _row_span(e1, sg1, r1, x0, x1)
            x0, x1 = _row_span(e2, sg2, r2, x0, x1)
        for x in range(x0, x1 + 1):
            pu = wp.float64(x) + half
            w0 = sg0 * (r0 - e0[3] * (pu - e0[0]))
            if not _covers(w0, own0):
                continue
            w1 = sg1 * (r1 - e1[3] * (pu - e1[0]))
            if not _covers(w1, own1):
                continue
            w2 = sg2 * (r2 - e2[3] * (pu - e2[0]))
            if not _covers(w2, own2):
                continue
            lam0 = w1 * inv_area
            lam1 = w2 * inv_area
            lam2 = w0 * inv_area
            depth = wp.float32(0.0)
            if affine_depth != 0:
                depth = wp.float32(lam0 * q0[2] + lam1 * q1[2] + lam2 * q2[2])
            else:
                inv_z = lam0 / q0[2] + lam1 / q1[2] + lam2 / q2[2]
                depth = wp.float32(wp.float64(1.0) / inv_z)
            if depth >= near_lo and depth <= far:
                p = img + y * width + x
                ok = True
                if use_prev != 0:
                    pd = prev_depth[p]
                    pf = prev_face[p]
                    if pf < 0 or depth < pd or (depth == pd and face <= pf):
                        ok = False
                if ok:
                    cd = out_depth[p]
                    if depth < cd or (depth == cd and face < out_face[p]):
                        out_depth[p] = depth
                        out_face[p] = face


@wp.kernel
def raster_tiles(
    offset: int, end: int,
    num_views_faces: int, num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
    extra_uvz: wp.array2d(dtype=wp.float64),
    extra_view: wp.array(dtype=wp.int32), extra_face: wp.array(dtype=wp.int32),
    bbox: wp.array2d(dtype=wp.int32), tile_offsets: wp.array(dtype=wp.int32), tile_list: wp.array(dtype=wp.int32),
    width: int, height: int, tiles_x: int, tiles_y: int, near: float, far: float, affine_depth: int,
    use_prev: int, prev_face: wp.array(dtype=wp.int32), prev_depth: wp.array(dtype=wp.float32),
    skip_hidden: int, deferred: wp.array(dtype=wp.int8),
    out_face: wp.array(dtype=wp.int32), out_depth: wp.array(dtype=wp.float32),
):
    """Per (view, tile): nearest triangle at every pixel centre, optionally behind a previous layer, into
    ``out_face`` / ``out_depth`` filled with -1 / inf beforehand (a fill is cheaper than a per-tile loop).

    Pixel centre ``p`` is inside when each oriented edge value ``w_i = s (v_j - v_i) x (p - v_i)`` is positive
    (or zero on an edge that owns it, the tie rule). Depth at a pixel centre with screen-space barycentrics
    ``lam`` (``lam_(i+2)%3 = w_i / (2 area)``): ``1 / sum(lam_i / z_i)`` (perspective), or ``sum(lam_i z_i)``
    when ``affine_depth`` is set (orthographic: depth is affine in screen space).

    The kept fragment of a pixel is the least (depth, face) of those drawn there, whatever the order they are
    drawn in. So the tile's list is drawn in two passes: triangles of positive pixel-space area (back faces
    of a mesh wound as the conventions ask) wait in the second pass (``deferred``, one flag per list entry),
    where each is skipped whole when the pixels of its box are all nearer already (behind a closed mesh's
    front, most are). The bound that decides this is conservative (:func:`_depth_floor`), so the output is
    the same as drawing every triangle; ``skip_hidden = 0`` draws every triangle in one pass, in list order
    (the twin the tests compare against).
    """
    g = offset + wp.tid()
    tiles = tiles_x * tiles_y
    view = g // tiles
    tile = g - view * tiles
    px0 = (tile - (tile // tiles_x) * tiles_x) * TILE_SIZE
    py0 = (tile // tiles_x) * TILE_SIZE
    px1 = wp.min(px0 + TILE_SIZE, width) - 1
    py1 = wp.min(py0 + TILE_SIZE, height) - 1
    img = view * width * height
    near_lo = wp.float32(near) * wp.float32(0.99999)
    passes = 1
    if skip_hidden != 0:
        passes = 2
    for second in range(passes):
        for k in range(tile_offsets[g], tile_offsets[g + 1]):
            if second == 1 and deferred[k] == wp.int8(0):
                continue
            t = tile_list[k]
            q0, q1, q2 = _tri_corners(t, num_views_faces, num_faces, num_verts, proj, faces, extra_uvz)
            area2 = _signed_area2(q0, q1, q2)
            if second == 0 and skip_hidden != 0:
                if area2 > wp.float64(0.0):
                    deferred[k] = wp.int8(1)
                    continue
                deferred[k] = wp.int8(0)
            face, tview = _tri_face_view(t, num_views_faces, num_faces, extra_view, extra_face)
            _draw_triangle(q0, q1, q2, area2, face, wp.max(bbox[t, 0], px0), wp.min(bbox[t, 1], px1),
                           wp.max(bbox[t, 2], py0), wp.min(bbox[t, 3], py1), img, width, height, near_lo, far,
                           affine_depth, second == 1, use_prev, prev_face, prev_depth, out_face, out_depth)
