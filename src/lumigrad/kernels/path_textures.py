"""The fused path kernels' texture lookups (float32): a part's base colour, metallic-roughness or emissive
texture at a hit's uv, as ``lumigrad.texture`` filters level 0 (bilinear taps of :func:`.texture_kernels.
bilinear_taps`, texels sRGB-decoded first where glTF says), and the adjoint of that lookup (the fused replay
scatters a value's gradient back into the texels)."""

from __future__ import annotations

import warp as wp

from .texture_kernels import bilinear_taps

wp.set_module_options({"enable_backward": False})


@wp.func
def srgb_decode_wp(e: float):
    """``lumigrad.shading.srgb_decode`` of one value."""
    x = wp.max(e, 0.0)
    out = x / 12.92
    if x > 0.04045:
        out = wp.pow((x + 0.055) / 1.055, 2.4)
    return out


@wp.func
def texture_wp(k: int, uv: wp.vec2, tex_offset: wp.array(dtype=wp.int32), tex_width: wp.array(dtype=wp.int32),
               tex_height: wp.array(dtype=wp.int32), tex_wrap: wp.array(dtype=wp.int32),
               texels: wp.array(dtype=wp.vec3), decode: int):
    """Texture ``k``'s first three channels at ``uv``: bilinear (``lumigrad.texture``'s level-0 taps) of the
    texels, each sRGB-decoded first when ``decode`` is 1 (base colour, emission; metallic-roughness is linear)."""
    # texture k is "level" k of the per-texture tables (its rows start at tex_offset[k])
    idx, fx, fy, w, h = bilinear_taps(uv[0], uv[1], k, 0, tex_height, tex_width, tex_offset, tex_wrap[k])
    w00 = (1.0 - fx) * (1.0 - fy) * 1.0
    w01 = fx * (1.0 - fy) * 1.0
    w10 = (1.0 - fx) * fy * 1.0
    w11 = fx * fy * 1.0
    out = wp.vec3()
    for c in range(3):
        t0 = texels[idx[0]][c]
        t1 = texels[idx[1]][c]
        t2 = texels[idx[2]][c]
        t3 = texels[idx[3]][c]
        if decode != 0:  # each texel decoded before filtering, as lumigrad's materials (and GPU sRGB textures)
            t0 = srgb_decode_wp(t0)
            t1 = srgb_decode_wp(t1)
            t2 = srgb_decode_wp(t2)
            t3 = srgb_decode_wp(t3)
        out[c] = w00 * t0 + w01 * t1 + w10 * t2 + w11 * t3
    return out


@wp.func
def srgb_decode_grad_wp(e: float):
    """``d srgb_decode(e) / d e`` as PyTorch's autograd of ``srgb_decode_unchecked`` (0 below 0)."""
    out = float(0.0)
    if e >= 0.0:
        out = 1.0 / 12.92
        if e > 0.04045:
            out = (2.4 / 1.055) * wp.pow((e + 0.055) / 1.055, 1.4)
    return out


@wp.func
def texture_scatter_wp(k: int, uv: wp.vec2, tex_offset: wp.array(dtype=wp.int32),
                       tex_width: wp.array(dtype=wp.int32), tex_height: wp.array(dtype=wp.int32),
                       tex_wrap: wp.array(dtype=wp.int32), texels: wp.array(dtype=wp.vec3), decode: int,
                       g_out: wp.vec3, g_texels: wp.array2d(dtype=wp.float64), grad_rows: wp.array(dtype=wp.int32)):
    """The adjoint of :func:`texture_wp`: ``g_texels[row, c] += d texture_wp(...)[c] / d texels[row'][c] *
    g_out[c]`` over its four taps (a channel of ``g_out`` that is 0 adds nothing), ``row'`` a tap's row of
    ``texels`` and ``row = row' - tex_offset[k] + grad_rows[k]``: texture ``k``'s rows in ``g_texels`` start at
    ``grad_rows[k]`` (-1: no gradient wanted, nothing added)."""
    first = grad_rows[k]
    if first < 0:
        return
    idx, fx, fy, w, h = bilinear_taps(uv[0], uv[1], k, 0, tex_height, tex_width, tex_offset, tex_wrap[k])
    shift = first - tex_offset[k]
    weights = wp.vec4((1.0 - fx) * (1.0 - fy) * 1.0, fx * (1.0 - fy) * 1.0, (1.0 - fx) * fy * 1.0, fx * fy * 1.0)
    for c in range(3):
        if g_out[c] != 0.0:
            for t in range(4):
                slope = weights[t]
                if decode != 0:
                    slope = slope * srgb_decode_grad_wp(texels[idx[t]][c])
                wp.atomic_add(g_texels, idx[t] + shift, c, wp.float64(g_out[c] * slope))
