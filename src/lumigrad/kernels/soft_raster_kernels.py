"""Candidate selection kernel of the soft rasterizer: per pixel, the K nearest faces within a cutoff distance.

The faces are binned into screen tiles by the hard rasterizer's ``bin_count_range`` / ``bin_fill_range``
(``raster_kernels.py``), fed with proxy triangles whose bounding boxes are the projected triangles' boxes grown
by the cutoff (see ``soft_raster.py``). Then one thread per pixel walks its tile's list and keeps, sorted by
depth (ties by face id), the ``K`` nearest faces whose screen-space distance to the pixel centre is at most the
cutoff. The output is integer face ids, not differentiated: the soft coverage and aggregation are recomputed in
differentiable PyTorch (``raster/soft.py``).

Distances and depths follow ``raster/soft.py``'s definitions exactly (float64): the distance from the pixel
centre to the triangle region (0 inside), and the depth at the pixel's barycentrics clamped to the triangle
(the closest point of the triangle: inside, the pixel's own barycentrics; outside, the closest point of the
nearest edge), perspective-correct (``1 / sum(lam_k / z_k)``) or affine (orthographic).
Cost: O(pixels x faces listed in the pixel's tile). ``soft_candidates`` is the plain scan over the hard
rasterizer's 16 x 16 bins (the reference); ``soft_candidates_sorted`` selects the same faces over soft-specific
8 x 8 bins listed by a lower bound of the depth, and stops a pixel's scan early (see the section below);
``soft_candidates_tiles`` is its CPU layout (one thread per tile, face by face over each face's pixels).
"""

from __future__ import annotations

import warp as wp

from .raster_kernels import TILE_SIZE, tri_uvz

wp.set_module_options({"enable_backward": False})


@wp.func
def _segment_param(ax: wp.float64, ay: wp.float64, bx: wp.float64, by: wp.float64, pu: wp.float64,
                   pv: wp.float64):
    """Parameter in [0, 1] of the point of segment a-b closest to p, and the squared distance to it."""
    ex = bx - ax
    ey = by - ay
    l2 = ex * ex + ey * ey
    t = wp.float64(0.0)
    if l2 > wp.float64(0.0):
        t = wp.clamp(((pu - ax) * ex + (pv - ay) * ey) / l2, wp.float64(0.0), wp.float64(1.0))
    dx = pu - ax - t * ex
    dy = pv - ay - t * ey
    return t, dx * dx + dy * dy


@wp.func
def _clamped_barycentrics(m: wp.mat33d, pu: wp.float64, pv: wp.float64):
    """Squared distance from p to the triangle (0 inside) and the barycentrics of the closest point of the triangle."""
    area2 = (m[1, 0] - m[0, 0]) * (m[2, 1] - m[0, 1]) - (m[2, 0] - m[0, 0]) * (m[1, 1] - m[0, 1])
    lam = wp.vec3d()
    inside = area2 != wp.float64(0.0)
    for i in range(3):
        j = (i + 1) % 3
        w = (m[j, 0] - m[i, 0]) * (pv - m[i, 1]) - (m[j, 1] - m[i, 1]) * (pu - m[i, 0])
        if w * area2 <= wp.float64(0.0):
            inside = False
        lam[(i + 2) % 3] = w
    d2 = wp.float64(0.0)
    if inside:
        lam = lam / area2
    else:
        best = wp.float64(wp.inf)
        lam = wp.vec3d()
        for i in range(3):
            j = (i + 1) % 3
            tj, dj = _segment_param(m[i, 0], m[i, 1], m[j, 0], m[j, 1], pu, pv)
            if dj < best:
                best = dj
                lam = wp.vec3d()
                lam[i] = wp.float64(1.0) - tj
                lam[j] = tj
        d2 = best
    return d2, lam


@wp.func
def _depth_at(m: wp.mat33d, lam: wp.vec3d, affine_depth: int):
    """Depth at barycentrics ``lam``: perspective-correct (``1 / sum(lam_k / z_k)``) or affine."""
    if affine_depth != 0:
        return lam[0] * m[0, 2] + lam[1] * m[1, 2] + lam[2] * m[2, 2]
    return wp.float64(1.0) / (lam[0] / m[0, 2] + lam[1] / m[1, 2] + lam[2] / m[2, 2])


@wp.func
def _clamped_depth(m: wp.mat33d, pu: wp.float64, pv: wp.float64, affine_depth: int):
    """Squared distance from p to the triangle (0 inside) and the depth at the closest point of the triangle."""
    d2, lam = _clamped_barycentrics(m, pu, pv)
    return d2, _depth_at(m, lam, affine_depth)


@wp.func
def _keep_nearest(out_face: wp.array(dtype=wp.int32), base: int, out_depth: wp.array(dtype=wp.float64),
                  depth_base: int, n: int, k_max: int, depth: wp.float64, face: int):
    """Insert ``(depth, face)`` into the pixel's list (faces from ``out_face[base]``, their depths from
    ``out_depth[depth_base]``; ``n`` kept so far, sorted by depth then face id) if it is among the ``k_max``
    nearest; return the new count."""
    pos = int(0)
    if n < k_max:
        pos = n
        n = n + 1
    else:
        last_d = out_depth[depth_base + k_max - 1]
        if depth > last_d or (depth == last_d and face > out_face[base + k_max - 1]):
            return n
        pos = k_max - 1
    while pos > 0:
        pd = out_depth[depth_base + pos - 1]
        if pd > depth or (pd == depth and out_face[base + pos - 1] > face):
            out_depth[depth_base + pos] = pd
            out_face[base + pos] = out_face[base + pos - 1]
            pos = pos - 1
        else:
            break
    out_depth[depth_base + pos] = depth
    out_face[base + pos] = face
    return n


@wp.func
def _offer(m: wp.mat33d, pu: wp.float64, pv: wp.float64, cutoff2: wp.float64, far: wp.float64, affine_depth: int,
           out_face: wp.array(dtype=wp.int32), base: int, out_depth: wp.array(dtype=wp.float64), depth_base: int,
           n: int, k_max: int, face: int):
    """Offer face ``face`` (corners ``m``) to pixel ``p``'s list (as ``_keep_nearest``) if it lies within the cutoff
    and its depth there is at most ``far``; return the new count."""
    d2, lam = _clamped_barycentrics(m, pu, pv)
    if d2 > cutoff2:
        return n
    depth = _depth_at(m, lam, affine_depth)
    if not (depth <= far):
        return n
    return _keep_nearest(out_face, base, out_depth, depth_base, n, k_max, depth, face)


@wp.kernel
def soft_candidates(
    offset: int, end: int,
    num_views_faces: int, num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32), extra_uvz: wp.array2d(dtype=wp.float64),
    bbox: wp.array2d(dtype=wp.int32), tile_offsets: wp.array(dtype=wp.int32), tile_list: wp.array(dtype=wp.int32),
    width: int, height: int, tiles_x: int, tiles_y: int, cutoff2: wp.float64, far: wp.float64,
    affine_depth: int, k_max: int,
    out_face: wp.array(dtype=wp.int32), out_depth: wp.array(dtype=wp.float64),
):
    """Per pixel ``g`` (view-major, row-major): the ``k_max`` nearest candidate faces, nearest first, -1 padded.

    ``out_depth`` is scratch space of the same size as ``out_face`` (the sort keys).
    """
    g = offset + wp.tid()
    npix = width * height
    view = g // npix
    pix = g - view * npix
    y = pix // width
    x = pix - y * width
    tile = view * tiles_x * tiles_y + (y // TILE_SIZE) * tiles_x + x // TILE_SIZE
    base = g * k_max
    for k in range(k_max):
        out_face[base + k] = -1
        out_depth[base + k] = wp.float64(wp.inf)
    pu = wp.float64(x) + wp.float64(0.5)
    pv = wp.float64(y) + wp.float64(0.5)
    n = int(0)
    for idx in range(tile_offsets[tile], tile_offsets[tile + 1]):
        t = tile_list[idx]
        if x < bbox[t, 0] or x > bbox[t, 1] or y < bbox[t, 2] or y > bbox[t, 3]:
            continue
        m = tri_uvz(t, num_views_faces, num_faces, num_verts, proj, faces, extra_uvz)
        d2, depth = _clamped_depth(m, pu, pv, affine_depth)
        if d2 > cutoff2 or not (depth <= far):
            continue
        n = _keep_nearest(out_face, base, out_depth, base, n, k_max, depth, t - view * num_faces)


# Candidate search with per-tile early-out. Each face gets ``depth_lb``, a lower bound of the depth that
# ``_clamped_depth`` can return for it at any pixel (float64 rounding included, see ``soft_face_bounds``). Each tile
# lists its faces in increasing ``depth_lb``, so a pixel whose K slots are full stops at the first face whose bound
# exceeds its K-th depth: every later face would be rejected (strictly deeper). Faces whose bound exceeds ``far``
# are never binned. The selection equals ``soft_candidates``' (a strict total order on (depth, face id) makes the
# top-K independent of the scan order).

_EPS64 = wp.constant(wp.float64(2.220446049250313e-16))


@wp.func
def _face_corners(view: int, face: int, num_verts: int, proj: wp.array2d(dtype=wp.float64),
                  faces: wp.array2d(dtype=wp.int32)):
    """Rows (u, v, z) of face ``face`` of view ``view``."""
    m = wp.mat33d()
    for k in range(3):
        vi = view * num_verts + faces[face, k]
        m[k, 0] = proj[vi, 0]
        m[k, 1] = proj[vi, 1]
        m[k, 2] = proj[vi, 2]
    return m


@wp.func
def _depth_lower_bound(m: wp.mat33d, affine_depth: int):
    """A value ``<=`` every depth ``_clamped_depth(m, p)`` returns, for any pixel ``p``; ``-inf`` if no bound is known.

    The depth is ``1 / sum(lam_k / z_k)`` (or ``sum(lam_k z_k)``) with ``lam_k >= 0``. Outside the triangle
    ``sum(lam_k)`` is 1 to one rounding. Inside, ``lam_k = w_k / area2`` with computed edge functions whose errors are
    at most ~8 eps D^2 each (``D``: the larger side of the triangle's box; inside pixels lie in the box), so
    ``sum(lam_k) <= 1 + 33 rho`` with ``rho = eps D^2 / |area2|``. The bound takes twice the margins derived this way:
    ``z_min - max|z_k| (64 rho + 32 eps)``. Slivers with ``rho > 1e-3`` (first-order bounds unreliable) get -inf.
    """
    zmin = wp.min(m[0, 2], wp.min(m[1, 2], m[2, 2]))
    zabs = wp.max(wp.abs(m[0, 2]), wp.max(wp.abs(m[1, 2]), wp.abs(m[2, 2])))
    if affine_depth == 0 and not (zmin > wp.float64(0.0)):
        return wp.float64(-wp.inf)
    area2 = (m[1, 0] - m[0, 0]) * (m[2, 1] - m[0, 1]) - (m[2, 0] - m[0, 0]) * (m[1, 1] - m[0, 1])
    du = wp.max(m[0, 0], wp.max(m[1, 0], m[2, 0])) - wp.min(m[0, 0], wp.min(m[1, 0], m[2, 0]))
    dv = wp.max(m[0, 1], wp.max(m[1, 1], m[2, 1])) - wp.min(m[0, 1], wp.min(m[1, 1], m[2, 1]))
    d = wp.max(du, dv)
    rho = wp.float64(0.0)
    if area2 != wp.float64(0.0):
        rho = _EPS64 * d * d / wp.abs(area2)
    if not (rho <= wp.float64(1.0e-3)):
        return wp.float64(-wp.inf)
    return zmin - zabs * (wp.float64(64.0) * rho + wp.float64(32.0) * _EPS64)


@wp.kernel
def soft_face_bounds(
    offset: int, end: int,
    num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32), far: wp.float64, affine_depth: int,
    tile: int, bbox: wp.array2d(dtype=wp.int32), depth_lb: wp.array(dtype=wp.float64),
    tile_count: wp.array(dtype=wp.int32),
):
    """Per face ``t`` (view-major) with its pixel box ``bbox[t]`` (``x0, x1, y0, y1``; empty if ``x1 < x0``): the
    depth bound and the number of ``tile x tile`` tiles the box overlaps; a face bounded beyond ``far`` is never a
    candidate, so its box is emptied."""
    t = offset + wp.tid()
    depth_lb[t] = wp.float64(wp.inf)
    tile_count[t] = 0
    if bbox[t, 1] < bbox[t, 0]:
        return
    m = _face_corners(t // num_faces, t - (t // num_faces) * num_faces, num_verts, proj, faces)
    lb = _depth_lower_bound(m, affine_depth)
    if lb > far:
        bbox[t, 1] = bbox[t, 0] - 1
        return
    depth_lb[t] = lb
    tile_count[t] = (bbox[t, 1] // tile - bbox[t, 0] // tile + 1) * (bbox[t, 3] // tile - bbox[t, 2] // tile + 1)


@wp.kernel
def soft_bin_count(num_faces: int, bbox: wp.array2d(dtype=wp.int32), tile: int, tiles_x: int, tiles_y: int,
                   counts: wp.array(dtype=wp.int32)):
    """Count face ``t`` in every ``tile x tile`` tile its box overlaps."""
    t = wp.tid()
    if bbox[t, 1] < bbox[t, 0]:
        return
    base = (t // num_faces) * tiles_x * tiles_y
    for ty in range(bbox[t, 2] // tile, bbox[t, 3] // tile + 1):
        for tx in range(bbox[t, 0] // tile, bbox[t, 1] // tile + 1):
            wp.atomic_add(counts, base + ty * tiles_x + tx, 1)


@wp.kernel
def soft_bin_fill(
    ranks_per_thread: int, num_ranks: int, num_faces: int,
    order: wp.array(dtype=wp.int32), bbox: wp.array2d(dtype=wp.int32), depth_lb: wp.array(dtype=wp.float64),
    tile: int, tiles_x: int, tiles_y: int, cursor: wp.array(dtype=wp.int32),
    entry_rank: wp.array(dtype=wp.int32), entry_face: wp.array(dtype=wp.int32),
    entry_lb: wp.array(dtype=wp.float64), entry_bbox: wp.array2d(dtype=wp.int32),
):
    """Append face ``t = order[r]`` of rank ``r`` to the list of every tile its box overlaps, with its rank, depth
    bound and box (so a pixel reads its tile's list sequentially). Each thread takes ``ranks_per_thread``
    consecutive ranks in increasing order, so one thread over all ranks fills every list in increasing rank
    (several threads fill them in any order: sort each list by rank after)."""
    r0 = wp.tid() * ranks_per_thread
    for r in range(r0, wp.min(r0 + ranks_per_thread, num_ranks)):
        t = order[r]
        if bbox[t, 1] >= bbox[t, 0]:
            base = (t // num_faces) * tiles_x * tiles_y
            for ty in range(bbox[t, 2] // tile, bbox[t, 3] // tile + 1):
                for tx in range(bbox[t, 0] // tile, bbox[t, 1] // tile + 1):
                    slot = wp.atomic_add(cursor, base + ty * tiles_x + tx, 1)
                    entry_rank[slot] = r
                    entry_face[slot] = t
                    entry_lb[slot] = depth_lb[t]
                    for k in range(4):
                        entry_bbox[slot, k] = bbox[t, k]


@wp.kernel
def soft_candidates_sorted(
    offset: int, end: int,
    num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
    tile_offsets: wp.array(dtype=wp.int32), entry_face: wp.array(dtype=wp.int32),
    entry_lb: wp.array(dtype=wp.float64), entry_bbox: wp.array2d(dtype=wp.int32),
    width: int, height: int, tile: int, tiles_x: int, tiles_y: int, cutoff2: wp.float64, far: wp.float64,
    affine_depth: int, k_max: int, span: int,
    out_face: wp.array(dtype=wp.int32), item_depth: wp.array(dtype=wp.float64),
):
    """Per item: ``span`` consecutive pixels of one tile (tiles view-major, pixels row-major in the tile; ``span =
    1`` on CUDA; the CPU runs ``soft_candidates_tiles`` instead unless a span is asked for) one after the other, each as ``soft_candidates`` but over the tile's list sorted by the faces' depth bounds (entry ``e``: face
    ``entry_face[e]`` (view-major), bound ``entry_lb[e]``, box ``entry_bbox[e]``), stopping once its K slots are
    full and the next bound exceeds its K-th depth. The sort keys of the pixel being scanned live in the item's
    ``k_max`` slots of ``item_depth``; slots ``>= n`` (filled so far) are never read, so nothing is initialised but
    the -1 padding at the end."""
    item = offset + wp.tid()
    items_per_tile = (tile * tile + span - 1) // span
    tile_id = item // items_per_tile
    first_local = (item - tile_id * items_per_tile) * span
    per_view = tiles_x * tiles_y
    view = tile_id // per_view
    ty = (tile_id - view * per_view) // tiles_x
    tx = tile_id - view * per_view - ty * tiles_x
    depth_base = item * k_max
    first = tile_offsets[tile_id]
    stop = tile_offsets[tile_id + 1]
    for local in range(first_local, wp.min(first_local + span, tile * tile)):
        y = ty * tile + local // tile
        x = tx * tile + local - (local // tile) * tile
        if x >= width or y >= height:
            continue
        base = ((view * height + y) * width + x) * k_max
        pu = wp.float64(x) + wp.float64(0.5)
        pv = wp.float64(y) + wp.float64(0.5)
        n = int(0)
        last_d = wp.float64(wp.inf)
        for idx in range(first, stop):
            if n == k_max and entry_lb[idx] > last_d:
                break
            if x < entry_bbox[idx, 0] or x > entry_bbox[idx, 1] or y < entry_bbox[idx, 2] or y > entry_bbox[idx, 3]:
                continue
            face = entry_face[idx] - view * num_faces
            m = _face_corners(view, face, num_verts, proj, faces)
            n = _offer(m, pu, pv, cutoff2, far, affine_depth, out_face, base, item_depth, depth_base, n, k_max, face)
            if n == k_max:
                last_d = item_depth[depth_base + k_max - 1]
        for k in range(n, k_max):
            out_face[base + k] = -1


@wp.kernel
def soft_candidates_tiles(
    offset: int, end: int,
    first_tile: int, num_faces: int, num_verts: int,
    proj: wp.array2d(dtype=wp.float64), faces: wp.array2d(dtype=wp.int32),
    tile_offsets: wp.array(dtype=wp.int32), entry_face: wp.array(dtype=wp.int32),
    entry_lb: wp.array(dtype=wp.float64), entry_bbox: wp.array2d(dtype=wp.int32),
    width: int, height: int, tile: int, tiles_x: int, tiles_y: int, cutoff2: wp.float64, far: wp.float64,
    affine_depth: int, k_max: int,
    out_face: wp.array(dtype=wp.int32), pixel_depth: wp.array(dtype=wp.float64), pixel_count: wp.array(dtype=wp.int32),
):
    """The CPU layout of ``soft_candidates_sorted``: one thread per tile ``first_tile + tid`` walks the tile's list
    once, face by face, and offers each face to the pixels of its box within the tile (its corners are read once
    per tile, and no pixel outside the box is visited). Each pixel keeps its own K slots: its sort keys in the
    tile's ``tile * tile * k_max`` slots of ``pixel_depth`` (at ``tid``: the launch covers a batch of tiles) and its
    count in ``pixel_count``; a pixel whose K slots are full skips every face whose bound exceeds its K-th depth
    (and all later ones are bounded higher still). Each pixel therefore sees the same faces in the same order as
    in ``soft_candidates_sorted`` and keeps the same ones. Once every pixel of the tile is full, the walk stops at the
    first face bounded beyond ``full_max``, the largest K-th depth any pixel had when it filled up (K-th depths only
    decrease, so it bounds them all: every pixel would skip that face and all later ones)."""
    tid = wp.tid()
    tile_id = first_tile + offset + tid
    per_view = tiles_x * tiles_y
    view = tile_id // per_view
    ty = (tile_id - view * per_view) // tiles_x
    tx = tile_id - view * per_view - ty * tiles_x
    x0 = tx * tile
    y0 = ty * tile
    x1 = wp.min(x0 + tile, width) - 1
    y1 = wp.min(y0 + tile, height) - 1
    pixels = tile * tile
    count_base = (offset + tid) * pixels
    depth_base = count_base * k_max
    for local in range(pixels):
        pixel_count[count_base + local] = 0
    open_pixels = (x1 - x0 + 1) * (y1 - y0 + 1)
    full_max = wp.float64(-wp.inf)
    for idx in range(tile_offsets[tile_id], tile_offsets[tile_id + 1]):
        lb = entry_lb[idx]
        if open_pixels == 0 and lb > full_max:
            break
        bx0 = wp.max(entry_bbox[idx, 0], x0)
        bx1 = wp.min(entry_bbox[idx, 1], x1)
        by0 = wp.max(entry_bbox[idx, 2], y0)
        by1 = wp.min(entry_bbox[idx, 3], y1)
        face = entry_face[idx] - view * num_faces
        m = _face_corners(view, face, num_verts, proj, faces)
        for y in range(by0, by1 + 1):
            pv = wp.float64(y) + wp.float64(0.5)
            for x in range(bx0, bx1 + 1):
                local = (y - y0) * tile + x - x0
                n = pixel_count[count_base + local]
                slots = depth_base + local * k_max
                if n == k_max and lb > pixel_depth[slots + k_max - 1]:
                    continue
                pu = wp.float64(x) + wp.float64(0.5)
                base = ((view * height + y) * width + x) * k_max
                kept = _offer(m, pu, pv, cutoff2, far, affine_depth, out_face, base, pixel_depth, slots, n, k_max,
                              face)
                pixel_count[count_base + local] = kept
                if kept == k_max and n < k_max:
                    open_pixels -= 1
                    full_max = wp.max(full_max, pixel_depth[slots + k_max - 1])
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            base = ((view * height + y) * width + x) * k_max
            for k in range(pixel_count[count_base + (y - y0) * tile + x - x0], k_max):
                out_face[base + k] = -1


# ---------------------------------------------------------------------------------------------------------------
# Fused continuous part (float32): coverage, clamped barycentrics, depth and softmax aggregation per pixel, with an
# explicit backward that recomputes the per-pair terms. Same definitions as ``raster/soft.py``'s ``pair_terms``
# and aggregation (edge k runs from corner k to corner k + 1; corner k is opposite edge k + 1).
# ---------------------------------------------------------------------------------------------------------------


# A weight ``exp(logit - max logit)`` below ``exp(-NEGLIGIBLE_LOGIT)`` is below half the smallest float32
# subnormal (2^-149 = exp(-103.28)): the float32 ``exp`` returns exactly 0 for it, so a pair whose logit is that far
# below the pixel's running max adds exactly nothing to the aggregated attributes nor to their gradients, and the
# kernels skip its attribute work (the silhouette part stays). Since ``log sigmoid(x) <= 0``, the depth term alone
# bounds the logit from above, so the test comes before the ``log``. (Bounding the depth term by the nearest corner's
# depth, to skip the barycentrics too, saved nothing measurable on Spot and cost 10% on a 100k-face sphere.)
NEGLIGIBLE_LOGIT = wp.constant(104.0)


@wp.func
def _sigmoids(x: float, e: float):
    """``(sigmoid(x), sigmoid(-x))`` from ``e = exp(-|x|)``, each in its stable form (``1 / (1 + e)`` on the side
    of the sign of ``x``, ``e / (1 + e)`` on the other)."""
    big = 1.0 / (1.0 + e)
    small = e * big
    if x >= 0.0:
        return big, small
    return small, big


@wp.func
def _log1p(s: float):
    """``log(1 + s)`` for ``s >= 0``, accurate for small ``s`` (``log(u) s / (u - 1)`` with ``u = 1 + s`` rounded)."""
    u = 1.0 + s
    if u == 1.0:
        return s
    return wp.log(u) * s / (u - 1.0)


@wp.func
def _neg_expm1(x: float):
    """``-expm1(x)`` for ``x <= 0`` (series near 0, where ``1 - exp(x)`` cancels)."""
    if x > -1.0e-3:
        return -x * (1.0 + x * (0.5 + x / 6.0))
    return 1.0 - wp.exp(x)


@wp.func
def _corners(base: int, f: int, faces: wp.array2d(dtype=wp.int32), uv: wp.array2d(dtype=wp.float32),
             z: wp.array(dtype=wp.float32)):
    """Rows (u, v, z) of face ``f``'s corners in the view whose vertices start at row ``base``."""
    m = wp.mat33()
    for k in range(3):
        vi = base + faces[f, k]
        m[k, 0] = uv[vi, 0]
        m[k, 1] = uv[vi, 1]
        m[k, 2] = z[vi]
    return m


@wp.func
def _edge_vectors(m: wp.mat33, k: int, pu: float, pv: float):
    """Edge ``k`` (corner k to corner k+1) and the pixel relative to its start: ``ex, ey, apx, apy``."""
    j = (k + 1) % 3
    return m[j, 0] - m[k, 0], m[j, 1] - m[k, 1], pu - m[k, 0], pv - m[k, 1]


@wp.func
def _edge_functions(m: wp.mat33, pu: float, pv: float):
    """Per edge the edge function ``w`` (edge x (pixel - start)); the doubled signed area."""
    w = wp.vec3()
    for k in range(3):
        ex, ey, apx, apy = _edge_vectors(m, k, pu, pv)
        w[k] = ex * apy - ey * apx
    area2 = (m[1, 0] - m[0, 0]) * (m[2, 1] - m[0, 1]) - (m[1, 1] - m[0, 1]) * (m[2, 0] - m[0, 0])
    return w, area2


@wp.func
def _edges(m: wp.mat33, pu: float, pv: float):
    """Per edge: clamped parameter t, squared distance, edge function w; the doubled signed area."""
    t = wp.vec3()
    d2 = wp.vec3()
    for k in range(3):
        ex, ey, apx, apy = _edge_vectors(m, k, pu, pv)
        l2 = ex * ex + ey * ey
        tk = float(0.0)
        if l2 != 0.0:
            tk = wp.clamp((apx * ex + apy * ey) / l2, 0.0, 1.0)
        dx = apx - tk * ex
        dy = apy - tk * ey
        t[k] = tk
        d2[k] = dx * dx + dy * dy
    w, area2 = _edge_functions(m, pu, pv)
    return t, d2, w, area2


@wp.func
def _inside_nearest(d2: wp.vec3, w: wp.vec3, area2: float):
    inside = area2 != 0.0
    for k in range(3):
        if not (w[k] * area2 > 0.0):
            inside = False
    n = int(0)
    if d2[1] < d2[n]:
        n = 1
    if d2[2] < d2[n]:
        n = 2
    return inside, n


@wp.func
def _barycentrics(t: wp.vec3, w: wp.vec3, area2: float, inside: bool, n: int):
    lam = wp.vec3()
    if inside:
        for k in range(3):
            lam[k] = w[(k + 1) % 3] / area2
    else:
        lam[n] = 1.0 - t[n]
        lam[(n + 1) % 3] = t[n]
    return lam


@wp.func
def _pair_state(m: wp.mat33, pu: float, pv: float):
    """Edge parameters, squared distances, edge functions, doubled area, inside-ness and nearest edge of one
    (pixel, face) pair: what ``_signed_x``, ``_interp_depth`` and ``_pair_backward`` read."""
    t, d2, w, area2 = _edges(m, pu, pv)
    inside, n = _inside_nearest(d2, w, area2)
    return t, d2, w, area2, inside, n


@wp.func
def _signed_x(d2: wp.vec3, inside: bool, n: int, sigma: float):
    """``x = s d^2 / sigma`` (``D = sigmoid(x)``; ``s = +1`` inside, ``-1`` outside) of one pair."""
    if inside:
        return d2[n] / sigma
    return -d2[n] / sigma


@wp.func
def _interp_depth(m: wp.mat33, t: wp.vec3, w: wp.vec3, area2: float, inside: bool, n: int, affine_depth: int):
    """Clamped barycentrics, interpolation weights and depth of one pair, from its state (only ``t[n]`` is read
    of ``t``, and ``w``, ``area2`` only inside)."""
    lam = _barycentrics(t, w, area2, inside, n)
    if affine_depth != 0:
        return lam, lam, lam[0] * m[0, 2] + lam[1] * m[1, 2] + lam[2] * m[2, 2]
    q = wp.vec3(lam[0] / m[0, 2], lam[1] / m[1, 2], lam[2] / m[2, 2])
    depth = 1.0 / (q[0] + q[1] + q[2])
    return lam, q * depth, depth


@wp.func
def _pair_backward(m: wp.mat33, pu: float, pv: float, sigma: float, affine_depth: int, g_x: float, live: bool,
                   g_interp: wp.vec3, g_depth: float, t: wp.vec3, area2: float, inside: bool, n: int, lam: wp.vec3):
    """Gradient of the pair's ``(x, interp, depth)`` cotangents w.r.t. the corners' rows ``(u, v, z)``, given the
    pair's state from ``_pair_state``; ``live`` false: ``g_interp`` and ``g_depth`` are zero (only the distance
    term), and the barycentric and depth parts, which would add zeros, are skipped."""
    gm = wp.mat33()
    g_lam = wp.vec3()
    if live and affine_depth != 0:
        for k in range(3):
            g_lam[k] = g_interp[k] + g_depth * m[k, 2]
            gm[k, 2] = g_depth * lam[k]
    elif live:
        q = wp.vec3(lam[0] / m[0, 2], lam[1] / m[1, 2], lam[2] / m[2, 2])
        depth = 1.0 / (q[0] + q[1] + q[2])
        common = (wp.dot(g_interp, q) + g_depth) * depth * depth
        for k in range(3):
            g_q = g_interp[k] * depth - common
            g_lam[k] = g_q / m[k, 2]
            gm[k, 2] = -g_q * q[k] / m[k, 2]
    # x = +-d2[n] / sigma; outside, lam also depends on t[n]
    g_d2 = -g_x / sigma
    g_t = float(0.0)
    if inside:
        g_d2 = g_x / sigma
    elif live:
        g_t = g_lam[(n + 1) % 3] - g_lam[n]
    j = (n + 1) % 3
    ex, ey, apx, apy = _edge_vectors(m, n, pu, pv)
    l2 = ex * ex + ey * ey
    tn = t[n]
    gdx = 2.0 * g_d2 * (apx - tn * ex)
    gdy = 2.0 * g_d2 * (apy - tn * ey)
    gm[n, 0] = gm[n, 0] - (1.0 - tn) * gdx
    gm[n, 1] = gm[n, 1] - (1.0 - tn) * gdy
    gm[j, 0] = gm[j, 0] - tn * gdx
    gm[j, 1] = gm[j, 1] - tn * gdy
    g_t = g_t - (gdx * ex + gdy * ey)
    if l2 != 0.0:
        raw = (apx * ex + apy * ey) / l2
        if raw >= 0.0 and raw <= 1.0:
            gm[n, 0] = gm[n, 0] + g_t * (2.0 * raw * ex - ex - apx) / l2
            gm[n, 1] = gm[n, 1] + g_t * (2.0 * raw * ey - ey - apy) / l2
            gm[j, 0] = gm[j, 0] + g_t * (apx - 2.0 * raw * ex) / l2
            gm[j, 1] = gm[j, 1] + g_t * (apy - 2.0 * raw * ey) / l2
    if inside and live:
        g_area2 = float(0.0)
        for k in range(3):
            g_area2 = g_area2 - g_lam[k] * lam[k] / area2
        for k in range(3):
            # w[k] = e x ap with e = b - a, ap = p - a (a = corner k, b = corner k + 1); lam[k - 1] = w[k] / area2
            g_w = g_lam[(k + 2) % 3] / area2
            kb = (k + 1) % 3
            kex = m[kb, 0] - m[k, 0]
            key = m[kb, 1] - m[k, 1]
            kapx = pu - m[k, 0]
            kapy = pv - m[k, 1]
            gm[kb, 0] = gm[kb, 0] + g_w * kapy
            gm[kb, 1] = gm[kb, 1] - g_w * kapx
            gm[k, 0] = gm[k, 0] + g_w * (key - kapy)
            gm[k, 1] = gm[k, 1] + g_w * (kapx - kex)
        ux = m[1, 0] - m[0, 0]
        uy = m[1, 1] - m[0, 1]
        vx = m[2, 0] - m[0, 0]
        vy = m[2, 1] - m[0, 1]
        gm[1, 0] = gm[1, 0] + g_area2 * vy
        gm[1, 1] = gm[1, 1] - g_area2 * vx
        gm[2, 0] = gm[2, 0] - g_area2 * uy
        gm[2, 1] = gm[2, 1] + g_area2 * ux
        gm[0, 0] = gm[0, 0] - g_area2 * (vy - uy)
        gm[0, 1] = gm[0, 1] - g_area2 * (ux - vx)
    return gm


@wp.func
def _pixel(g: int, width: int, height: int):
    npix = width * height
    view = g // npix
    pix = g - view * npix
    y = pix // width
    x = pix - y * width
    return view, float(x) + 0.5, float(y) + 0.5


# What the forward records per (pixel, candidate) pair for the backward, when one is needed (``record != 0``): the
# pairs of pixel ``g`` take slots ``pair_offset[g]`` to ``pair_offset[g + 1] - 1`` (``soft_pair_counts`` and a
# prefix sum) in three float32 arrays and one int32 array: ``x``, the nearest edge's parameter ``t[n]``, the logit
# (live pairs only) and the flags ``n | 4 inside | 8 live`` (live: the attribute work was done). From these the
# backward recomputes, bit for bit, all it reads: the edge functions and barycentrics only for live pairs, no
# distances, no ``log`` (16 bytes per pair).
FLAG_INSIDE = wp.constant(4)
FLAG_LIVE = wp.constant(8)


@wp.kernel
def soft_pair_counts(offset: int, end: int, ids: wp.array(dtype=wp.int32), k_max: int,
                     counts: wp.array(dtype=wp.int32)):
    """Per pixel ``g``: the number of candidates before the -1 padding, into ``counts[g + 1]``."""
    g = offset + wp.tid()
    n = int(0)
    while n < k_max and ids[g * k_max + n] >= 0:
        n += 1
    counts[g + 1] = n


@wp.kernel
def soft_aggregate_forward(
    offset: int, end: int,
    uv: wp.array2d(dtype=wp.float32), z: wp.array(dtype=wp.float32), faces: wp.array2d(dtype=wp.int32),
    ids: wp.array(dtype=wp.int32), attrs: wp.array2d(dtype=wp.float32), background: wp.array2d(dtype=wp.float32),
    has_attrs: int, num_verts: int, width: int, height: int, k_max: int,
    sigma: float, gamma: float, eps: float, far: float, depth_range: float, affine_depth: int,
    silhouette: wp.array(dtype=wp.float32), out: wp.array2d(dtype=wp.float32),
    log_transmit: wp.array(dtype=wp.float32), top: wp.array(dtype=wp.float32), denom: wp.array(dtype=wp.float32),
    record: int, pair_offset: wp.array(dtype=wp.int32), pair_x: wp.array(dtype=wp.float32),
    pair_t: wp.array(dtype=wp.float32), pair_logit: wp.array(dtype=wp.float32), pair_flags: wp.array(dtype=wp.int32),
):
    """Per pixel ``g``: silhouette, aggregated attributes and the per-pixel softmax state (max logit, sum), and
    with ``record`` the pairs' state for the backward (see above).

    One pass over the candidates: the softmax sums are kept relative to the running max logit and rescaled when
    it grows (candidates come nearest first, so the first one usually holds the max)."""
    g = offset + wp.tid()
    logit_b = eps / gamma
    channels = attrs.shape[1]
    if ids[g * k_max] < 0:  # no candidate: what the general path below computes for an empty list
        log_transmit[g] = 0.0
        silhouette[g] = 0.0
        top[g] = logit_b
        denom[g] = 1.0
        if has_attrs != 0:
            for c in range(channels):
                out[g, c] = background[g, c]
        return
    view, pu, pv = _pixel(g, width, height)
    base = view * num_verts
    inside_x = float(0.0)  # sum of max(x, 0) over the pairs
    prod_m1 = float(0.0)  # prod(1 + exp(-|x|)) - 1 over the pairs: log transmittance = -inside_x - log1p(prod_m1)
    mx = logit_b
    total = float(0.0)
    acc = wp.vec4()  # the sums of channels 0-3; channels from 4 on are summed in ``out``
    if has_attrs != 0:
        for c in range(4, channels):
            out[g, c] = 0.0
    slot = int(0)
    if record != 0:
        slot = pair_offset[g]
    for k in range(k_max):
        f = ids[g * k_max + k]
        if f < 0:
            break
        m = _corners(base, f, faces, uv, z)
        t, d2, w, area2, inside, n = _pair_state(m, pu, pv)
        x = _signed_x(d2, inside, n, sigma)
        e_x = wp.exp(-wp.abs(x))
        inside_x += wp.max(x, 0.0)
        prod_m1 += e_x * (1.0 + prod_m1)
        flags = n
        if inside:
            flags += FLAG_INSIDE
        if has_attrs != 0:
            lam, interp, depth = _interp_depth(m, t, w, area2, inside, n, affine_depth)
            zl = ((far - depth) / depth_range) / gamma
            if zl - mx >= -NEGLIGIBLE_LOGIT:
                logit = wp.min(x, 0.0) - wp.log(1.0 + e_x) + zl
                flags += FLAG_LIVE
                if record != 0:
                    pair_logit[slot + k] = logit
                if logit > mx:
                    scale = wp.exp(mx - logit)
                    total *= scale
                    acc *= scale
                    for c in range(4, channels):
                        out[g, c] *= scale
                    mx = logit
                e = wp.exp(logit - mx)
                total += e
                for i in range(3):
                    vi = base + faces[f, i]
                    we = e * interp[i]
                    for c in range(4):
                        if c < channels:
                            acc[c] += we * attrs[vi, c]
                    for c in range(4, channels):
                        out[g, c] += we * attrs[vi, c]
        if record != 0:
            pair_x[slot + k] = x
            pair_t[slot + k] = t[n]
            pair_flags[slot + k] = flags
    lt = -inside_x - _log1p(prod_m1)
    log_transmit[g] = lt
    silhouette[g] = _neg_expm1(lt)
    top[g] = mx
    if has_attrs == 0:
        denom[g] = 1.0
        return
    e_b = wp.exp(logit_b - mx)
    total += e_b
    denom[g] = total
    for c in range(channels):
        s = float(0.0)
        if c < 4:
            s = acc[c]
        else:
            s = out[g, c]
        out[g, c] = (s + e_b * background[g, c]) / total


@wp.kernel
def soft_aggregate_backward(
    offset: int, end: int,
    uv: wp.array2d(dtype=wp.float32), z: wp.array(dtype=wp.float32), faces: wp.array2d(dtype=wp.int32),
    ids: wp.array(dtype=wp.int32), attrs: wp.array2d(dtype=wp.float32),
    has_attrs: int, num_verts: int, width: int, height: int, k_max: int,
    sigma: float, gamma: float, eps: float, far: float, depth_range: float, affine_depth: int,
    out: wp.array2d(dtype=wp.float32), log_transmit: wp.array(dtype=wp.float32), top: wp.array(dtype=wp.float32),
    denom: wp.array(dtype=wp.float32),
    pair_offset: wp.array(dtype=wp.int32), pair_x: wp.array(dtype=wp.float32), pair_t: wp.array(dtype=wp.float32),
    pair_logit: wp.array(dtype=wp.float32), pair_flags: wp.array(dtype=wp.int32),
    v_sil: wp.array(dtype=wp.float32), v_out: wp.array2d(dtype=wp.float32),
    want_geom: int, want_attrs: int, want_bg: int,
    v_uvz: wp.array2d(dtype=wp.float32), v_attrs: wp.array2d(dtype=wp.float32),
    v_bg: wp.array2d(dtype=wp.float32),
):
    """Gradients of ``sum(v_sil * silhouette + v_out * out)``: per-vertex ``(u, v, z)`` and ``attrs`` by
    atomic adds (one launch per buffer on CPU), ``background`` per pixel; each pair's state comes from the
    forward's record."""
    g = offset + wp.tid()
    mx = top[g]
    inv = 1.0 / denom[g]
    channels = attrs.shape[1]
    go_out = float(0.0)
    if has_attrs != 0:
        for c in range(channels):
            go_out += v_out[g, c] * out[g, c]
        if want_bg != 0:
            w_b = wp.exp(eps / gamma - mx) * inv
            for c in range(channels):
                v_bg[g, c] = v_out[g, c] * w_b
    first = pair_offset[g]
    count = pair_offset[g + 1] - first
    if count == 0:
        return
    view, pu, pv = _pixel(g, width, height)
    base = view * num_verts
    gs_t = v_sil[g] * wp.exp(log_transmit[g])
    for k in range(count):
        f = ids[g * k_max + k]
        m = _corners(base, f, faces, uv, z)
        x = pair_x[first + k]
        flags = pair_flags[first + k]
        n = flags % 4
        inside = (flags & FLAG_INSIDE) != 0
        t = wp.vec3()
        t[n] = pair_t[first + k]
        sig_pos, sig_neg = _sigmoids(x, wp.exp(-wp.abs(x)))
        g_x = gs_t * sig_pos
        g_interp = wp.vec3()
        g_depth = float(0.0)
        lam = wp.vec3()
        area2 = float(0.0)
        live = False
        logit = float(0.0)
        if (flags & FLAG_LIVE) != 0:
            logit = pair_logit[first + k]
            live = logit - mx >= -NEGLIGIBLE_LOGIT
        if live:
            w, area2 = _edge_functions(m, pu, pv)
            lam, interp, depth = _interp_depth(m, t, w, area2, inside, n, affine_depth)
            wj = wp.exp(logit - mx) * inv
            col_go = float(0.0)
            for i in range(3):
                vi = base + faces[f, i]
                s = float(0.0)
                for c in range(channels):
                    s += attrs[vi, c] * v_out[g, c]
                    if want_attrs != 0:
                        wp.atomic_add(v_attrs, vi, c, wj * interp[i] * v_out[g, c])
                g_interp[i] = wj * s
                col_go += interp[i] * s
            g_logit = wj * (col_go - go_out)
            g_x += g_logit * sig_neg
            g_depth = -g_logit / depth_range / gamma
        if want_geom != 0:
            gm = _pair_backward(m, pu, pv, sigma, affine_depth, g_x, live, g_interp, g_depth, t, area2, inside, n,
                                lam)
            for i in range(3):
                vi = base + faces[f, i]
                wp.atomic_add(v_uvz, vi, 0, gm[i, 0])
                wp.atomic_add(v_uvz, vi, 1, gm[i, 1])
                wp.atomic_add(v_uvz, vi, 2, gm[i, 2])
