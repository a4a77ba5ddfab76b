"""Texture filtering kernels (float32 and float64 overloads) with an explicit backward pass.

The texels of all mip levels (and of all textures of a batch) live in one table ``[T, C]``; level ``l`` of
texture ``n`` starts at row ``offsets[l] + n * heights[l] * widths[l]``. Per sample the forward gathers 1,
4 or 8 taps and, when a backward will follow, records per sample what that backward needs (sized by the
filter and by the gradients wanted: its taps and their weights, the output's derivatives); the backward
replays that record: it scatters the output gradient into the table (atomic adds) and writes the gradients of
the texture coordinates and of their screen-space derivatives (through the level of detail) without
recomputing the taps or reading the table (the record costs the forward less than the recomputation cost the
backward: docs/benchmarks.md, branch spot10). Work items are all samples (masked ones only write zeros)
or, with ``use_active``, the listed unmasked samples only.

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
def _sample_of(item: int, active: wp.array(dtype=wp.int64), use_active: int):
    """The sample of work item ``item``: itself, or with ``use_active`` the ``item``-th listed unmasked sample."""
    if use_active != 0:
        return int(active[item])
    return item


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


@wp.func(inline=True)
def _tap_weights(fx: Any, fy: Any):
    """The bilinear weights of the taps (x0 y0, x1 y0, x0 y1, x1 y1) at fractions ``fx``, ``fy``."""
    one = type(fx)(1.0)
    return wp.vector((one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy)


@wp.func(inline=True)
def _texels(table: wp.array2d(dtype=Any), idx: wp.vec4i, c: int):
    """Channel ``c`` of the four taps ``idx``."""
    return wp.vector(table[idx[0], c], table[idx[1], c], table[idx[2], c], table[idx[3], c])


@wp.func(inline=True)
def _slope(t00: Any, t01: Any, t10: Any, t11: Any, f: Any):
    """d bilinear / d (the fraction between t00 -> t01 and t10 -> t11), the other fraction being ``f``."""
    return (t01 - t00) * (type(f)(1.0) - f) + (t11 - t10) * f


def _sample_forward_kernel(recording: bool):
    """``sample_forward`` (below) with its record code (``recording``) or without any (for forwards no backward
    follows: the record code, even when skipped at run time, slowed the kernel by about 1 ms of 6-7 for Spot
    512^2; docs/benchmarks.md, branch texrecord). Same arithmetic, so the same values."""

    def sample_forward(
        offset: int, end: int,
        table: wp.array2d(dtype=Any), heights: wp.array(dtype=wp.int32), widths: wp.array(dtype=wp.int32),
        offsets: wp.array(dtype=wp.int32), num_levels: int,
        uv: wp.array2d(dtype=Any), duv: wp.array2d(dtype=Any), mask: wp.array(dtype=wp.int8),
        use_mask: int, active: wp.array(dtype=wp.int64), use_active: int, per_owner: int, mode: int, wrap: int,
        lod_bias: wp.float64,
        out: wp.array2d(dtype=Any), fine: wp.array(dtype=wp.int32), use_fine: int,
        record_taps: int, record_slopes: int, nearest_rows: wp.array(dtype=wp.int32), rows: wp.array2d(dtype=wp.vec4i),
        weights: wp.array2d(dtype=Any), slopes_uv: wp.array2d(dtype=Any), slopes: wp.array2d(dtype=Any),
        dlods: wp.array(dtype=Any),
    ):
        """Filtered values ``out``, and with ``use_fine`` per work item the finest mip level it read in ``fine``
        (``num_levels`` for a masked sample): the backward scatters into those levels and coarser ones only.

        Each unmasked work item also writes what the backward needs (``sample_backward``), sized by the filter and
        by the gradients wanted. With ``record_taps`` (texel gradients): a nearest sample its table row
        (``nearest_rows [items]``), a bilinear or trilinear one the table rows of its levels' 2x2 taps (``rows
        [items, levels]`` vec4i, one level for bilinear) and their weights (``weights [items, levels]`` vec4).
        With ``record_slopes`` (gradients of the texture coordinates; never for nearest, which is flat in uv): 2,
        per channel the derivatives of the output w.r.t. u and v (``slopes_uv [items, C]`` vec2); 3 (trilinear,
        ``duv`` gradients too), per channel those and the derivative w.r.t. the level blend (``slopes [items, C]``
        vec3) and ``d lod / d duv`` (``dlods [items]`` vec4, zero where the level of detail is clamped). The
        backward then neither recomputes the taps nor reads the table. (Vector-typed records: one store per
        vector, not per scalar.)"""
        item = offset + wp.tid()
        s = _sample_of(item, active, use_active)
        channels = table.shape[1]
        zero = out.dtype(0.0)
        one = out.dtype(1.0)
        if use_fine != 0:
            fine[item] = num_levels
        if use_mask != 0:
            if mask[s] == wp.int8(0):
                for c in range(channels):
                    out[s, c] = zero
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
            if wp.static(recording):
                if record_taps != 0:
                    nearest_rows[item] = row
            return
        lo, hi, frac, lod_active, dlod = _mip_levels(duv, s, widths, heights, num_levels, out.dtype(lod_bias), mode)
        if use_fine != 0:
            fine[item] = lo
        # Level ``lo`` weighs ``1 - frac``, level ``hi`` ``frac`` (bilinear: level 0 alone, ``frac`` = 0).
        idx0, fx0, fy0, iw0, ih0 = _taps(u, v, lo, owner, heights, widths, offsets, wrap)
        idx1 = idx0
        fx1 = fx0
        fy1 = fy0
        iw1 = iw0
        ih1 = ih0
        if mode == TRILINEAR:
            idx1, fx1, fy1, iw1, ih1 = _taps(u, v, hi, owner, heights, widths, offsets, wrap)
        a = one - frac
        b = frac
        q0 = _tap_weights(fx0, fy0)
        q1 = _tap_weights(fx1, fy1)
        for c in range(channels):
            t0 = _texels(table, idx0, c)
            bil0 = wp.dot(q0, t0)
            value = a * bil0
            if mode == TRILINEAR:
                t1 = _texels(table, idx1, c)
                bil1 = wp.dot(q1, t1)
                value += b * bil1
                if wp.static(recording):
                    if record_slopes != 0:
                        du = a * out.dtype(iw0) * _slope(t0[0], t0[1], t0[2], t0[3], fy0) \
                            + b * out.dtype(iw1) * _slope(t1[0], t1[1], t1[2], t1[3], fy1)
                        dv = a * out.dtype(ih0) * _slope(t0[0], t0[2], t0[1], t0[3], fx0) \
                            + b * out.dtype(ih1) * _slope(t1[0], t1[2], t1[1], t1[3], fx1)
                        if record_slopes == 3:
                            slopes[item, c] = wp.vector(du, dv, bil1 - bil0)
                        else:
                            slopes_uv[item, c] = wp.vector(du, dv)
            elif wp.static(recording):
                if record_slopes != 0:
                    slopes_uv[item, c] = wp.vector(a * out.dtype(iw0) * _slope(t0[0], t0[1], t0[2], t0[3], fy0),
                                                   a * out.dtype(ih0) * _slope(t0[0], t0[2], t0[1], t0[3], fx0))
            out[s, c] = value
        if wp.static(recording):
            if record_taps != 0:
                rows[item, 0] = idx0
                weights[item, 0] = a * q0
                if mode == TRILINEAR:
                    rows[item, 1] = idx1
                    weights[item, 1] = b * q1
            if record_slopes == 3:
                if lod_active:
                    dlods[item] = dlod
                else:
                    dlods[item] = wp.vector(zero, zero, zero, zero)

    return wp.kernel(sample_forward, name="sample_forward_recording" if recording else "sample_forward")


sample_forward = _sample_forward_kernel(False)
sample_forward_recording = _sample_forward_kernel(True)


@wp.kernel
def sample_backward(
    offset: int, end: int,
    mask: wp.array(dtype=wp.int8), use_mask: int, active: wp.array(dtype=wp.int64), use_active: int, mode: int,
    record_taps: int, record_slopes: int, nearest_rows: wp.array(dtype=wp.int32), rows: wp.array2d(dtype=wp.vec4i),
    weights: wp.array2d(dtype=Any), slopes_uv: wp.array2d(dtype=Any), slopes: wp.array2d(dtype=Any),
    dlods: wp.array(dtype=Any),
    v_out: wp.array2d(dtype=Any), v_table: wp.array2d(dtype=Any), v_uv: wp.array2d(dtype=Any),
    v_duv: wp.array2d(dtype=Any),
):
    """Gradients of ``sum(v_out * out)`` from the forward's record (``sample_forward``, the same ``record_*``
    flags): with ``record_taps`` texel gradients by atomic adds into ``v_table`` (each CPU thread into its own
    table); with ``record_slopes`` those of ``uv`` (``v_uv``) and, when 3, of ``duv`` (``v_duv``) through the
    recorded derivatives. Arrays of gradients not asked for are never written."""
    item = offset + wp.tid()
    s = _sample_of(item, active, use_active)
    channels = v_out.shape[1]
    zero = v_out.dtype(0.0)
    if record_slopes != 0:
        v_uv[s, 0] = zero
        v_uv[s, 1] = zero
    if record_slopes == 3:
        for k in range(4):
            v_duv[s, k] = zero
    if use_mask != 0:
        if mask[s] == wp.int8(0):
            return
    if mode == NEAREST:
        if record_taps != 0:
            row = nearest_rows[item]
            for c in range(channels):
                wp.atomic_add(v_table, row, c, v_out[s, c])
        return
    two_levels = rows.shape[1] > 1
    rows0 = wp.vec4i(0, 0, 0, 0)
    rows1 = rows0
    w0 = wp.vector(zero, zero, zero, zero)
    w1 = w0
    if record_taps != 0:
        rows0 = rows[item, 0]
        w0 = weights[item, 0]
        if two_levels:
            rows1 = rows[item, 1]
            w1 = weights[item, 1]
    gu = zero
    gv = zero
    gfrac = zero
    for c in range(channels):
        g = v_out[s, c]
        if record_slopes == 3:
            j = slopes[item, c]
            gu += g * j[0]
            gv += g * j[1]
            gfrac += g * j[2]
        elif record_slopes != 0:
            j2 = slopes_uv[item, c]
            gu += g * j2[0]
            gv += g * j2[1]
        if record_taps != 0:
            for q in range(4):
                wp.atomic_add(v_table, rows0[q], c, g * w0[q])
                if two_levels:
                    wp.atomic_add(v_table, rows1[q], c, g * w1[q])
    if record_slopes != 0:
        v_uv[s, 0] = gu
        v_uv[s, 1] = gv
    if record_slopes == 3:
        dl = dlods[item]
        for k in range(4):
            v_duv[s, k] = gfrac * dl[k]


@wp.kernel
def pool_adjoint_add(offset: int, end: int, coarse: wp.array2d(dtype=Any), fine: wp.array2d(dtype=Any),
                     quarter: Any):
    """Adds the adjoint of a 2x2 average to an even-sized finer level, in place: texel ``(y, x)`` of the coarse
    gradient ``coarse [rows, w]`` (texels as vectors of the channels) adds ``quarter`` (0.25) times itself to
    texels ``(2y + i, 2x + j)`` of ``fine [2 rows, 2 w]``. One work item per coarse row (levels of a batch of
    textures stacked along the rows)."""
    y = offset + wp.tid()
    for x in range(coarse.shape[1]):
        g = coarse[y, x] * quarter
        fine[2 * y, 2 * x] += g
        fine[2 * y, 2 * x + 1] += g
        fine[2 * y + 1, 2 * x] += g
        fine[2 * y + 1, 2 * x + 1] += g


#: Channel counts ``pool_adjoint_add`` is compiled for, with each float dtype's texel vector types.
POOL_ADJOINT_TYPES = {(wp.float32, 3): wp.vec3f, (wp.float32, 4): wp.vec4f, (wp.float64, 3): wp.vec3d,
                      (wp.float64, 4): wp.vec4d}
for (_scalar, _), _vec in POOL_ADJOINT_TYPES.items():
    wp.overload(pool_adjoint_add, {"coarse": wp.array2d(dtype=_vec), "fine": wp.array2d(dtype=_vec),
                                   "quarter": _scalar})


#: The record arrays' Warp dtypes per float dtype: (tap weights vec4, u and v derivatives vec2, u, v and blend
#: derivatives vec3, d lod vec4).
RECORD_TYPES = {wp.float32: (wp.vec4f, wp.vec2f, wp.vec3f, wp.vec4f),
                wp.float64: (wp.vec4d, wp.vec2d, wp.vec3d, wp.vec4d)}

for _dtype, (_w, _j2, _j3, _l) in RECORD_TYPES.items():
    _a = wp.array2d(dtype=_dtype)
    _record = {"weights": wp.array2d(dtype=_w), "slopes_uv": wp.array2d(dtype=_j2), "slopes": wp.array2d(dtype=_j3),
               "dlods": wp.array(dtype=_l)}
    for _forward in (sample_forward, sample_forward_recording):
        wp.overload(_forward, {"table": _a, "uv": _a, "duv": _a, "out": _a, **_record})
    wp.overload(sample_backward, {"v_out": _a, "v_table": _a, "v_uv": _a, "v_duv": _a, **_record})
