"""The fused path replay's adjoint helpers (:func:`.path_kernels.trace_paths` in its adjoint modes): float64
gradient tables per part, light, light triangle and texel, the chain through a part's textures, and the rows of
continuing vertices held until their path's radiance is known."""

from __future__ import annotations

import warp as wp

from .bsdf_kernels import bsdf_param_grads_wp
from .conductor_kernels import conductor_param_grads_wp
from .path_textures import texture_scatter_wp, texture_wp
from .plastic_kernels import plastic_param_grads_wp
from .principled_kernels import principled_param_grads_wp

wp.set_module_options({"enable_backward": False})

#: Columns of the per-part gradient table: d/d base colour (3), metallic, roughness, index of refraction,
#: specular weight, emission (3): of the part's factors (through the clamp of factor * texture where textured).
GRAD_BASE = wp.constant(0)
GRAD_METALLIC = wp.constant(3)
GRAD_ROUGHNESS = wp.constant(4)
GRAD_IOR = wp.constant(5)
GRAD_SPECULAR = wp.constant(6)
GRAD_EMISSION = wp.constant(7)
PART_GRADS = 10
#: Columns of a continuing vertex held until its path ends (``adjoint`` 2): part, unit normal (3), sampled
#: direction (3), unit view direction (3), base colour (3), roughness, metallic, IOR, specular weight, the
#: adjoint over the BSDF value per channel (3), the radiance gathered up to the vertex (3), uv (2), Beckmann's
#: microfacets (1) or GGX's (0), Mitsuba's principled (1; the fused replay declines its other lobes) or the glTF
#: model (0), the plastic's table row (-1: not
#: plastic), the conductor's row (-1: not a conductor).
HELD_FIELDS = 29


@wp.func
def add3_wp(g: wp.array2d(dtype=wp.float64), row: int, col: int, v: wp.vec3):
    """``g[row, col : col + 3] += v`` in float64 (atomic on CUDA; a CPU range owns its table)."""
    for c in range(3):
        wp.atomic_add(g, row, col + c, wp.float64(v[c]))


@wp.func
def _clamp_slope(x: float):
    """``d clamp(x, 0, 1) / dx`` as PyTorch's (1 on the closed interval)."""
    out = float(0.0)
    if x >= 0.0 and x <= 1.0:
        out = 1.0
    return out


@wp.func
def add_bsdf_grads_wp(g: wp.array2d(dtype=wp.float64), g_texels: wp.array2d(dtype=wp.float64), tex_grad_rows: wp.array(dtype=wp.int32),
                      part: int, uv: wp.vec2, part_base: wp.array(dtype=wp.vec3),
                      part_metallic: wp.array(dtype=float), part_roughness: wp.array(dtype=float),
                      part_texture: wp.array(dtype=wp.int32), part_mr_texture: wp.array(dtype=wp.int32),
                      tex_offset: wp.array(dtype=wp.int32), tex_width: wp.array(dtype=wp.int32),
                      tex_height: wp.array(dtype=wp.int32), tex_wrap: wp.array(dtype=wp.int32),
                      texels: wp.array(dtype=wp.vec3), n: wp.vec3, wi: wp.vec3, wo: wp.vec3, base: wp.vec3,
                      roughness: float, metallic: float, ior: float, specular: float, beckmann: int, principled: int,
                      plastic: wp.array(dtype=float), plastic_row: int, g_plastic: wp.array2d(dtype=wp.float64),
                      conductor: wp.array(dtype=wp.vec3), conductor_row: int, coat: float, coef: wp.vec3):
    """Part ``part``'s columns of ``g`` += ``sum_c coef_c d f_c / d theta`` (:func:`bsdf_param_grads_wp` at the
    vertex's values, GGX or ``beckmann``; :func:`.principled_kernels.principled_param_grads_wp` where
    ``principled``; :func:`.plastic_kernels.plastic_param_grads_wp` where ``plastic_row >= 0``, its table's entries'
    derivatives to that row of ``g_plastic``; :func:`.conductor_kernels.conductor_param_grads_wp` where
    ``conductor_row >= 0``; ``coat`` 0: a plastic's diffuse base alone, :func:`.plastic_kernels.plastic_diffuse_wp`,
    else 1), chained where a texture scales a factor (``clamp(factor * texture, 0, 1)``) to the
    factor and
    to the texels of the textures that want gradients (``g_texels`` from row ``tex_grad_rows[k]``)."""
    gb = wp.vec3()
    gm = float(0.0)
    gr = float(0.0)
    gi = float(0.0)
    gs = float(0.0)
    if plastic_row >= 0:
        gb, gm, gr, gi, gs = plastic_param_grads_wp(plastic, plastic_row, n, wi, wo, base, roughness, ior, beckmann,
                                                    coat, coef, g_plastic)
    elif conductor_row >= 0:
        gb, gm, gr, gi, gs = conductor_param_grads_wp(conductor, conductor_row, n, wi, wo, base, roughness, beckmann,
                                                      coef)
    elif principled != 0:
        gb, gm, gr, gi, gs = principled_param_grads_wp(n, wi, wo, base, roughness, metallic, ior, coef)
    else:
        gb, gm, gr, gi, gs = bsdf_param_grads_wp(n, wi, wo, base, roughness, metallic, ior, specular, beckmann, coef)
    tex = part_texture[part]
    if tex < 0:
        add3_wp(g, part, GRAD_BASE, gb)
    else:
        rgb = texture_wp(tex, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 1)
        factor = part_base[part]
        g_factor = wp.vec3(0.0, 0.0, 0.0)
        g_rgb = wp.vec3(0.0, 0.0, 0.0)
        for c in range(3):
            slope = _clamp_slope(factor[c] * rgb[c]) * gb[c]
            g_factor[c] = slope * rgb[c]
            g_rgb[c] = slope * factor[c]
        add3_wp(g, part, GRAD_BASE, g_factor)
        texture_scatter_wp(tex, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 1, g_rgb, g_texels,
                           tex_grad_rows)
    tex_mr = part_mr_texture[part]
    if tex_mr < 0:
        wp.atomic_add(g, part, GRAD_METALLIC, wp.float64(gm))
        wp.atomic_add(g, part, GRAD_ROUGHNESS, wp.float64(gr))
    else:  # linear: G roughness, B metallic
        mr = texture_wp(tex_mr, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 0)
        rf = part_roughness[part]
        mf = part_metallic[part]
        slope_r = _clamp_slope(rf * mr[1]) * gr
        slope_m = _clamp_slope(mf * mr[2]) * gm
        wp.atomic_add(g, part, GRAD_ROUGHNESS, wp.float64(slope_r * mr[1]))
        wp.atomic_add(g, part, GRAD_METALLIC, wp.float64(slope_m * mr[2]))
        texture_scatter_wp(tex_mr, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 0,
                           wp.vec3(0.0, slope_r * rf, slope_m * mf), g_texels, tex_grad_rows)
    wp.atomic_add(g, part, GRAD_IOR, wp.float64(gi))
    wp.atomic_add(g, part, GRAD_SPECULAR, wp.float64(gs))


@wp.func
def add_emission_grads_wp(g: wp.array2d(dtype=wp.float64), g_texels: wp.array2d(dtype=wp.float64),
                          tex_grad_rows: wp.array(dtype=wp.int32), part: int, uv: wp.vec2, part_emission: wp.array(dtype=wp.vec3),
                          part_emissive_texture: wp.array(dtype=wp.int32), tex_offset: wp.array(dtype=wp.int32),
                          tex_width: wp.array(dtype=wp.int32), tex_height: wp.array(dtype=wp.int32),
                          tex_wrap: wp.array(dtype=wp.int32), texels: wp.array(dtype=wp.vec3), g_emission: wp.vec3):
    """Part ``part``'s emission columns of ``g`` += ``g_emission`` (the gradient of its emitted radiance),
    through its emissive texture where it has one (``factor * texture``; to its texels as
    :func:`add_bsdf_grads_wp`)."""
    tex = part_emissive_texture[part]
    if tex < 0:
        add3_wp(g, part, GRAD_EMISSION, g_emission)
    else:
        t = texture_wp(tex, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 1)
        factor = part_emission[part]
        add3_wp(g, part, GRAD_EMISSION, wp.vec3(g_emission[0] * t[0], g_emission[1] * t[1], g_emission[2] * t[2]))
        texture_scatter_wp(tex, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 1,
                           wp.vec3(g_emission[0] * factor[0], g_emission[1] * factor[1], g_emission[2] * factor[2]),
                           g_texels, tex_grad_rows)


@wp.func
def hold_vertex_wp(held: wp.array2d(dtype=float), s: int, part: int, n: wp.vec3, wi: wp.vec3, wo: wp.vec3,
                   base: wp.vec3, roughness: float, metallic: float, ior: float, specular: float, q: wp.vec3,
                   gathered: wp.vec3, uv: wp.vec2, beckmann: int, principled: int, plastic_row: int,
                   conductor_row: int):
    """Row ``s`` of ``held`` := a continuing vertex (columns as :data:`HELD_FIELDS` says)."""
    held[s, 0] = float(part)
    for c in range(3):
        held[s, 1 + c] = n[c]
        held[s, 4 + c] = wi[c]
        held[s, 7 + c] = wo[c]
        held[s, 10 + c] = base[c]
        held[s, 17 + c] = q[c]
        held[s, 20 + c] = gathered[c]
    held[s, 13] = roughness
    held[s, 14] = metallic
    held[s, 15] = ior
    held[s, 16] = specular
    held[s, 23] = uv[0]
    held[s, 24] = uv[1]
    held[s, 25] = float(beckmann)
    held[s, 26] = float(principled)
    held[s, 27] = float(plastic_row)
    held[s, 28] = float(conductor_row)


@wp.func
def held_vec_wp(held: wp.array2d(dtype=float), s: int, col: int):
    return wp.vec3(held[s, col], held[s, col + 1], held[s, col + 2])


@wp.func
def release_vertices_wp(held: wp.array2d(dtype=float), count: int, total: wp.vec3, g: wp.array2d(dtype=wp.float64),
                        g_texels: wp.array2d(dtype=wp.float64), tex_grad_rows: wp.array(dtype=wp.int32),
                        part_base: wp.array(dtype=wp.vec3), part_metallic: wp.array(dtype=float),
                        part_roughness: wp.array(dtype=float), part_texture: wp.array(dtype=wp.int32),
                        part_mr_texture: wp.array(dtype=wp.int32), tex_offset: wp.array(dtype=wp.int32),
                        tex_width: wp.array(dtype=wp.int32), tex_height: wp.array(dtype=wp.int32),
                        tex_wrap: wp.array(dtype=wp.int32), texels: wp.array(dtype=wp.vec3),
                        plastic: wp.array(dtype=float), g_plastic: wp.array2d(dtype=wp.float64),
                        conductor: wp.array(dtype=wp.vec3)):
    """The BSDF derivatives of the ``count`` continuing vertices held in ``held``, now that the path's radiance
    ``total`` is known: each vertex's adjoint over its BSDF value times the radiance still to come after it."""
    for s in range(count):
        q = held_vec_wp(held, s, 17)
        rest = total - held_vec_wp(held, s, 20)
        add_bsdf_grads_wp(g, g_texels, tex_grad_rows, int(held[s, 0]), wp.vec2(held[s, 23], held[s, 24]), part_base,
                          part_metallic, part_roughness, part_texture, part_mr_texture, tex_offset, tex_width,
                          tex_height, tex_wrap, texels, held_vec_wp(held, s, 1), held_vec_wp(held, s, 4),
                          held_vec_wp(held, s, 7), held_vec_wp(held, s, 10), held[s, 13], held[s, 14], held[s, 15],
                          held[s, 16], int(held[s, 25]), int(held[s, 26]), plastic, int(held[s, 27]), g_plastic,
                          conductor, int(held[s, 28]), 1.0,
                          wp.vec3(q[0] * rest[0], q[1] * rest[1], q[2] * rest[2]))
