"""Multiresolution hash-encoding kernels (float32) with an explicit backward pass.

Layout and formulas as in :mod:`lumigrad.volume.fields.hash_grid`: all levels share one table ``[R, F]``;
level ``l`` has ``res[l]`` cells per axis and starts at row ``row_offset[l]`` with ``rows[l]`` rows, indexed
densely (``x + (res + 1) (y + (res + 1) z)``) when ``dense[l]`` and else by the instant-ngp hash in uint32
arithmetic. Points arrive clamped to the unit cube. Corner ``c`` of a cell sits at offset
``(c & 1, (c >> 1) & 1, c >> 2)``.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

_PRIME_Y = wp.constant(wp.uint32(2654435761))
_PRIME_Z = wp.constant(wp.uint32(805459861))


@wp.func
def _row(x: int, y: int, z: int, res: int, rows: int, dense: int):
    if dense != 0:
        side = res + 1
        return x + side * (y + side * z)
    h = wp.uint32(x) ^ (wp.uint32(y) * _PRIME_Y) ^ (wp.uint32(z) * _PRIME_Z)
    return int(h % wp.uint32(rows))


@wp.func
def _cell(u: float, res: int):
    """Cell index (clamped to the last cell) and the fraction inside it of a unit coordinate."""
    p = u * float(res)
    c = wp.clamp(int(wp.floor(p)), 0, res - 1)
    return c, p - float(c)


@wp.func
def _point_cell(unit: wp.array2d(dtype=wp.float32), i: int, res: int):
    """Cell ``(cx, cy, cz)`` of point ``i`` at ``res`` cells per axis and its fractions ``(fx, fy, fz)`` inside it."""
    cx, fx = _cell(unit[i, 0], res)
    cy, fy = _cell(unit[i, 1], res)
    cz, fz = _cell(unit[i, 2], res)
    return cx, cy, cz, fx, fy, fz


@wp.func
def _lerp_weight(bit: int, f: float):
    if bit != 0:
        return f
    return 1.0 - f


@wp.func
def _corner_row(c: int, cx: int, cy: int, cz: int, res: int, start: int, rows: int, dense: int):
    """Table row of corner ``c`` of cell ``(cx, cy, cz)`` of a level starting at row ``start``."""
    return start + _row(cx + (c & 1), cy + ((c >> 1) & 1), cz + ((c >> 2) & 1), res, rows, dense)


@wp.func
def _corner_weight(c: int, fx: float, fy: float, fz: float):
    """Trilinear weight of corner ``c`` at the fractions ``(fx, fy, fz)`` inside the cell."""
    return _lerp_weight(c & 1, fx) * _lerp_weight((c >> 1) & 1, fy) * _lerp_weight((c >> 2) & 1, fz)


@wp.kernel
def hash_encode_fwd(offset: int, end: int, unit: wp.array2d(dtype=wp.float32), table: wp.array2d(dtype=wp.float32),
                    res: wp.array(dtype=wp.int32), row_offset: wp.array(dtype=wp.int32),
                    rows: wp.array(dtype=wp.int32), dense: wp.array(dtype=wp.int32),
                    out: wp.array2d(dtype=wp.float32)):
    i = offset + wp.tid()
    F = table.shape[1]
    for l in range(res.shape[0]):
        r = res[l]
        cx, cy, cz, fx, fy, fz = _point_cell(unit, i, r)
        for c in range(8):
            w = _corner_weight(c, fx, fy, fz)
            row = _corner_row(c, cx, cy, cz, r, row_offset[l], rows[l], dense[l])
            for f in range(F):
                out[i, l * F + f] = out[i, l * F + f] + w * table[row, f]


@wp.kernel
def hash_encode_bwd_table(unit: wp.array2d(dtype=wp.float32), v_out: wp.array2d(dtype=wp.float32),
                          res: wp.array(dtype=wp.int32), row_offset: wp.array(dtype=wp.int32),
                          rows: wp.array(dtype=wp.int32), dense: wp.array(dtype=wp.int32),
                          v_table: wp.array2d(dtype=wp.float32), touched: wp.array(dtype=wp.uint8)):
    """One launch (atomics): scatter ``w * v_out`` into ``v_table`` and flag the rows touched."""
    i = wp.tid()
    F = v_table.shape[1]
    for l in range(res.shape[0]):
        r = res[l]
        cx, cy, cz, fx, fy, fz = _point_cell(unit, i, r)
        for c in range(8):
            w = _corner_weight(c, fx, fy, fz)
            row = _corner_row(c, cx, cy, cz, r, row_offset[l], rows[l], dense[l])
            touched[row] = wp.uint8(1)
            for f in range(F):
                wp.atomic_add(v_table, row, f, w * v_out[i, l * F + f])


@wp.kernel
def hash_encode_bwd_points(offset: int, end: int, unit: wp.array2d(dtype=wp.float32),
                           table: wp.array2d(dtype=wp.float32), v_out: wp.array2d(dtype=wp.float32),
                           res: wp.array(dtype=wp.int32), row_offset: wp.array(dtype=wp.int32),
                           rows: wp.array(dtype=wp.int32), dense: wp.array(dtype=wp.int32),
                           v_unit: wp.array2d(dtype=wp.float32)):
    """Per point (no shared writes): ``v_unit = sum_l res_l sum_c <table row, v_out_l> d w_c / d frac``."""
    i = offset + wp.tid()
    F = table.shape[1]
    gx = float(0.0)
    gy = float(0.0)
    gz = float(0.0)
    for l in range(res.shape[0]):
        r = res[l]
        cx, cy, cz, fx, fy, fz = _point_cell(unit, i, r)
        for c in range(8):
            bx = c & 1
            by = (c >> 1) & 1
            bz = (c >> 2) & 1
            row = _corner_row(c, cx, cy, cz, r, row_offset[l], rows[l], dense[l])
            tv = float(0.0)
            for f in range(F):
                tv += table[row, f] * v_out[i, l * F + f]
            wx = _lerp_weight(bx, fx)
            wy = _lerp_weight(by, fy)
            wz = _lerp_weight(bz, fz)
            sx = float(2 * bx - 1)
            sy = float(2 * by - 1)
            sz = float(2 * bz - 1)
            rf = float(r)
            gx += rf * tv * sx * wy * wz
            gy += rf * tv * wx * sy * wz
            gz += rf * tv * wx * wy * sz
    v_unit[i, 0] = gx
    v_unit[i, 1] = gy
    v_unit[i, 2] = gz
