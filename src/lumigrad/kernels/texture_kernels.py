"""Texture filtering kernels (float32 and float64 overloads) with an explicit backward pass.

The texels of all mip levels (and of all textures of a batch) live in one table ``[T, C]``; level ``l`` of
texture ``n`` starts at row ``offsets[l] + n * heights[l] * widths[l]``. Per sample the forward gathers 1,
4 or 8 taps; the backward scatters the output gradient into the table (atomic adds) and writes the gradients
of the texture coordinates and of their screen-space derivatives (through the level of detail). Work items
are all samples (masked ones only write zeros) or, with ``use_active``, the listed unmasked samples only.

The float arrays of one launch share one dtype (``Any`` below, resolved by the overloads at the end); every
constant is made in that dtype (``type(x)(1.0)``), so the float64 overload computes in float64 throughout.

Conventions as in ``lumigrad.texture``: texel (i, j) of a level has its centre at ((j + .5)/W, (i + .5)/H).
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})

NEAREST = 0
BILINEAR = 1
TRILINEAR = 2
REPEAT = 0
CLAMP = 1
MIRROR = 2


@wp.func
def _wrap(i: int, size: int, mode: int):
    if i >= 0 and i < size:  # inside: the same for every mode, and no integer division
        return i
    if mode == 0:
        r = i % size
        if r < 0:
            r += size
        return r
    if mode == 1:
        return wp.clamp(i, 0, size - 1)
    m = i % (2 * size)
    if m < 0:
        m += 2 * size
    if m < size:
        return m
    return 2 * size - 1 - m


@wp.func
def _level_of_detail(duv: wp.array2d(dtype=Any), s: int, w0: Any, h0: Any):
    """Returns (lod, d lod / d duv[s, 0..3] as a 4-vector); duv columns: du/dx, du/dy, dv/dx, dv/dy."""
    ux = duv[s, 0] * w0
    uy = duv[s, 1] * w0
    vx = duv[s, 2] * h0
    vy = duv[s, 3] * h0
    zero = type(ux)(0.0)
    two = type(ux)(2.0)
    rx = ux * ux + vx * vx
    ry = uy * uy + vy * vy
    rho2 = wp.max(rx, ry)
    g = wp.vector(zero, zero, zero, zero)
    if rho2 < type(ux)(1.0e-20):  # 0.5 * log2(1e-20), with zero gradient like the clamp it mirrors
        return type(ux)(0.5) * wp.log2(type(ux)(1.0e-20)), g
    scale = type(ux)(0.5) / (rho2 * type(ux)(0.6931471805599453))
    if rx >= ry:
        g = wp.vector(two * ux * w0 * scale, zero, two * vx * h0 * scale, zero)
    else:
        g = wp.vector(zero, two * uy * w0 * scale, zero, two * vy * h0 * scale)
    return type(ux)(0.5) * wp.log2(rho2), g


@wp.func
def _owner(s: int, per_owner: int):
    """Index of the texture (in a batch) that sample ``s`` reads; 0 for a shared texture."""
    if per_owner > 0:
        return s / per_owner
    return 0


@wp.func
def _nearest_row(u: Any, v: Any, owner: int, heights: wp.array(dtype=wp.int32),
                 widths: wp.array(dtype=wp.int32), offsets: wp.array(dtype=wp.int32), wrap: int):
    """Table row of the level-0 texel containing ``(u, v)``."""
    w = widths[0]
    h = heights[0]
    return offsets[0] + owner * w * h + _wrap(int(wp.floor(v * type(v)(h))), h, wrap) * w + \
        _wrap(int(wp.floor(u * type(u)(w))), w, wrap)


@wp.func
def _mip_levels(duv: wp.array2d(dtype=Any), s: int, widths: wp.array(dtype=wp.int32),
                heights: wp.array(dtype=wp.int32), num_levels: int, lod_bias: Any, mode: int):
    """Returns (fine level, coarse level, blend, lod unclamped?, d lod / d duv); level 0 unless trilinear."""
    zero = type(lod_bias)(0.0)
    lo = int(0)
    frac = zero
    active = False
    dlod = wp.vector(zero, zero, zero, zero)
    if mode == TRILINEAR:
        lod_raw, dlod = _level_of_detail(duv, s, type(lod_bias)(widths[0]), type(lod_bias)(heights[0]))
        raw = lod_raw + lod_bias
        top = type(lod_bias)(num_levels - 1)
        lod = wp.clamp(raw, zero, top)
        active = raw >= zero and raw <= top
        lo = wp.min(int(wp.floor(lod)), num_levels - 1)
        frac = lod - type(lod_bias)(lo)
    return lo, wp.min(lo + 1, num_levels - 1), frac, active, dlod


@wp.func
def _taps(u: Any, v: Any, level: int, owner: int, heights: wp.array(dtype=wp.int32),
          widths: wp.array(dtype=wp.int32), offsets: wp.array(dtype=wp.int32), wrap: int):
    """Bilinear taps at ``level``: (row indices vec4i as 4 ints, fx, fy, width, height)."""
    w = widths[level]
    h = heights[level]
    base = offsets[level] + owner * w * h
    x = u * type(u)(w) - type(u)(0.5)
    y = v * type(v)(h) - type(v)(0.5)
    x0 = wp.floor(x)
    y0 = wp.floor(y)
    ix = int(x0)
    iy = int(y0)
    c0 = _wrap(ix, w, wrap)
    c1 = _wrap(ix + 1, w, wrap)
    r0 = base + _wrap(iy, h, wrap) * w
    r1 = base + _wrap(iy + 1, h, wrap) * w
    return wp.vec4i(r0 + c0, r0 + c1, r1 + c0, r1 + c1), x - x0, y - y0, w, h


#: The bilinear taps of level ``level`` (public for kernels that filter textures themselves, such as the fused
#: path tracer's base colour): ``(rows vec4i, fx, fy, width, height)``.
bilinear_taps = _taps


@wp.kernel
def sample_forward(
    offset: int, end: int,
    table: wp.array2d(dtype=Any), heights: wp.array(dtype=wp.int32), widths: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32), num_levels: int,
    uv: wp.array2d(dtype=Any), duv: wp.array2d(dtype=Any), mask: wp.array(dtype=wp.int8),
    use_mask: int, active: wp.array(dtype=wp.int32), use_active: int, per_owner: int, mode: int, wrap: int,
    lod_bias: wp.float64,
    out: wp.array2d(dtype=Any), fine: wp.array(dtype=wp.int32), use_fine: int,
):
    """Filtered values ``out``, and with ``use_fine`` per work item the finest mip level it read in ``fine``
    (``num_levels`` for a masked sample): the backward scatters into those levels and coarser ones only."""
    item = offset + wp.tid()
    s = item
    if use_active != 0:  # the work items are the unmasked samples' indices
        s = active[item]
    channels = table.shape[1]
    zero = out.dtype(0.0)
    one = out.dtype(1.0)
    for c in range(channels):
        out[s, c] = zero
    if use_fine != 0:
        fine[item] = num_levels
    if use_mask != 0:
        if mask[s] == wp.int8(0):
            return
    owner = _owner(s, per_owner)
    u = uv[s, 0]
    v = uv[s, 1]
    if mode == NEAREST:
        if use_fine != 0:
            fine[item] = 0
        row = _nearest_row(u, v, owner, heights, widths, offsets, wrap)
        for c in range(channels):
            out[s, c] = table[row, c]
        return
    lo, hi, frac, lod_active, dlod = _mip_levels(duv, s, widths, heights, num_levels, out.dtype(lod_bias), mode)
    if use_fine != 0:
        fine[item] = lo
    for k in range(2):
        level = lo
        weight = one - frac
        if k == 1:
            level = hi
            weight = frac
        if k == 0 or mode == TRILINEAR:
            idx, fx, fy, lw, lh = _taps(u, v, level, owner, heights, widths, offsets, wrap)
            w00 = (one - fx) * (one - fy) * weight
            w01 = fx * (one - fy) * weight
            w10 = (one - fx) * fy * weight
            w11 = fx * fy * weight
            for c in range(channels):
                out[s, c] += w00 * table[idx[0], c] + w01 * table[idx[1], c] + w10 * table[idx[2], c] + \
                    w11 * table[idx[3], c]


@wp.kernel
def sample_backward(
    offset: int, end: int,
    table: wp.array2d(dtype=Any), heights: wp.array(dtype=wp.int32), widths: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32), num_levels: int,
    uv: wp.array2d(dtype=Any), duv: wp.array2d(dtype=Any), mask: wp.array(dtype=wp.int8),
    use_mask: int, active: wp.array(dtype=wp.int32), use_active: int, per_owner: int, mode: int, wrap: int,
    lod_bias: wp.float64,
    v_out: wp.array2d(dtype=Any), want_table: int,
    v_table: wp.array2d(dtype=Any), v_uv: wp.array2d(dtype=Any),
    v_duv: wp.array2d(dtype=Any),
):
    """Gradients of ``sum(v_out * out)``; texel gradients by atomic adds (one launch on CPU)."""
    s = offset + wp.tid()
    if use_active != 0:  # the work items are the unmasked samples' indices
        s = active[s]
    channels = table.shape[1]
    zero = v_uv.dtype(0.0)
    one = v_uv.dtype(1.0)
    v_uv[s, 0] = zero
    v_uv[s, 1] = zero
    for k in range(4):
        v_duv[s, k] = zero
    if use_mask != 0:
        if mask[s] == wp.int8(0):
            return
    owner = _owner(s, per_owner)
    u = uv[s, 0]
    v = uv[s, 1]
    if mode == NEAREST:
        if want_table != 0:
            row = _nearest_row(u, v, owner, heights, widths, offsets, wrap)
            for c in range(channels):
                wp.atomic_add(v_table, row, c, v_out[s, c])
        return
    lo, hi, frac, lod_active, dlod = _mip_levels(duv, s, widths, heights, num_levels, v_uv.dtype(lod_bias), mode)
    gu = zero
    gv = zero
    gfrac = zero
    for k in range(2):
        level = lo
        weight = one - frac
        sign = -one
        if k == 1:
            level = hi
            weight = frac
            sign = one
        if k == 0 or mode == TRILINEAR:
            idx, fx, fy, iw, ih = _taps(u, v, level, owner, heights, widths, offsets, wrap)
            lw = v_uv.dtype(iw)
            lh = v_uv.dtype(ih)
            for c in range(channels):
                g = v_out[s, c]
                t00 = table[idx[0], c]
                t01 = table[idx[1], c]
                t10 = table[idx[2], c]
                t11 = table[idx[3], c]
                bil = (one - fx) * (one - fy) * t00 + fx * (one - fy) * t01 + (one - fx) * fy * t10 + fx * fy * t11
                gfrac += sign * g * bil
                gu += g * weight * lw * ((t01 - t00) * (one - fy) + (t11 - t10) * fy)
                gv += g * weight * lh * ((t10 - t00) * (one - fx) + (t11 - t01) * fx)
                if want_table != 0:
                    gw = g * weight
                    wp.atomic_add(v_table, idx[0], c, gw * (one - fx) * (one - fy))
                    wp.atomic_add(v_table, idx[1], c, gw * fx * (one - fy))
                    wp.atomic_add(v_table, idx[2], c, gw * (one - fx) * fy)
                    wp.atomic_add(v_table, idx[3], c, gw * fx * fy)
    v_uv[s, 0] = gu
    v_uv[s, 1] = gv
    if mode == TRILINEAR and lod_active:
        for k in range(4):
            v_duv[s, k] = gfrac * dlod[k]


for _dtype in (wp.float32, wp.float64):
    _a = wp.array2d(dtype=_dtype)
    wp.overload(sample_forward, {"table": _a, "uv": _a, "duv": _a, "out": _a})
    wp.overload(sample_backward, {"table": _a, "uv": _a, "duv": _a, "v_out": _a, "v_table": _a, "v_uv": _a,
                                  "v_duv": _a})
