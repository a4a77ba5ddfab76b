"""Candidate selection kernel of the soft rasterizer: per pixel, the K nearest faces within a cutoff distance.

The faces are binned into screen tiles by the hard rasterizer's ``bin_count`` / ``bin_fill``
(``raster_kernels.py``), fed with proxy triangles whose bounding boxes are the projected triangles' boxes grown
by the cutoff (see ``soft_raster.py``). Then one thread per pixel walks its tile's list and keeps, sorted by
depth (ties by face id), the ``K`` nearest faces whose screen-space distance to the pixel centre is at most the
cutoff. The output is integer face ids, not differentiated: the soft coverage and aggregation are recomputed in
differentiable PyTorch (``raster/soft.py``).

Distances and depths follow ``raster/soft.py``'s definitions exactly (float64): the distance from the pixel
centre to the triangle region (0 inside), and the depth at the pixel's barycentrics clamped to the triangle
(the closest point of the triangle: inside, the pixel's own barycentrics; outside, the closest point of the
nearest edge), perspective-correct (``1 / sum(lam_k / z_k)``) or affine (orthographic).
Cost: O(pixels x faces listed in the pixel's tile).
"""

from __future__ import annotations

import warp as wp

from .raster_kernels import TILE_SIZE, _tri_uvz

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
def _clamped_depth(m: wp.mat33d, pu: wp.float64, pv: wp.float64, affine_depth: int):
    """Squared distance from p to the triangle (0 inside) and the depth at the closest point of the triangle."""
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
    depth = wp.float64(0.0)
    if affine_depth != 0:
        depth = lam[0] * m[0, 2] + lam[1] * m[1, 2] + lam[2] * m[2, 2]
    else:
        depth = wp.float64(1.0) / (lam[0] / m[0, 2] + lam[1] / m[1, 2] + lam[2] / m[2, 2])
    return d2, depth


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
        m = _tri_uvz(t, num_views_faces, num_faces, num_verts, proj, faces, extra_uvz)
        d2, depth = _clamped_depth(m, pu, pv, affine_depth)
        if d2 > cutoff2 or not (depth <= far):
            continue
        face = t - view * num_faces
        pos = int(0)
        if n < k_max:
            pos = n
            n = n + 1
        else:
            last_d = out_depth[base + k_max - 1]
            if depth > last_d or (depth == last_d and face > out_face[base + k_max - 1]):
                continue
            pos = k_max - 1
        while pos > 0:
            pd = out_depth[base + pos - 1]
            if pd > depth or (pd == depth and out_face[base + pos - 1] > face):
                out_depth[base + pos] = pd
                out_face[base + pos] = out_face[base + pos - 1]
                pos = pos - 1
            else:
                break
        out_depth[base + pos] = depth
        out_face[base + pos] = face
