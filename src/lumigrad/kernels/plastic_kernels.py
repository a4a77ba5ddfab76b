"""Mitsuba's plastic in the fused path kernel (Warp, float32): a diffuse base under a smooth or rough dielectric
interface, evaluated, its density, sampled.

The float32 twin of :class:`lumigrad.shading.plastic.PlasticBSDF` (the PyTorch code is the reference: the same
operations in the same order, on the unit normal and view the path kernel shares between a vertex's light samples
and its BSDF sample). A part's table (:func:`lumigrad.shading.plastic.plastic_table`: 64 transmittances ``t(mu)``,
the internal reflectance ``R_int``, a flag) is row ``row`` of ``table`` (``PLASTIC_TABLE`` floats a row), built in
PyTorch per material (:mod:`lumigrad.integrators.fused_paths`), so the kernel only interpolates it.
"""

from __future__ import annotations

import warp as wp

from .bsdf_kernels import (DOT_EPS, reflection_terms_wp, sample_weight_wp, separable_lobe_slope_wp,
                           separable_lobe_wp, two_lobe_direction_wp)
from .dielectric_kernels import fresnel_dielectric_wp, fresnel_ior_slope_wp

wp.set_module_options({"enable_backward": False})

#: Cosines in a table (``lumigrad.shading.plastic.TABLE_SIZE``) and floats a row (``PLASTIC_TABLE``).
TABLE_SIZE = wp.constant(64)
PLASTIC_TABLE = wp.constant(66)
_EPS = wp.constant(1.0e-12)


@wp.func
def plastic_transmittance_wp(table: wp.array(dtype=float), row: int, cos: float, roughness: float, eta: float):
    """``t(cos)``: the row's table linearly at ``clamp(cos, 0, 1)`` (Mitsuba's ``lerp_gather``), or ``1 - F(cos)``
    exactly at ``roughness`` 0 (Mitsuba's smooth plastic)."""
    out = float(0.0)
    if roughness == 0.0:
        f, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.clamp(cos, -1.0, 1.0), eta)
        out = 1.0 - f
    else:
        x = wp.clamp(cos, 0.0, 1.0) * float(TABLE_SIZE - 1)
        index = wp.clamp(int(wp.floor(x)), 0, TABLE_SIZE - 2)
        w1 = x - float(index)
        start = row * PLASTIC_TABLE + index
        out = (1.0 - w1) * table[start] + w1 * table[start + 1]
    return out


@wp.func
def plastic_specular_probability_wp(table: wp.array(dtype=float), row: int, cos_o: float, base: wp.vec3,
                                    roughness: float, eta: float):
    """The specular lobe's probability at ``cos_o`` (already clamped to ``[1e-6, 1]``): Mitsuba's weights
    ``(1 - t) w`` and ``t (1 - w)``, ``w = 1 / (1 + mean(base))``; 1 where both vanish."""
    t_o = plastic_transmittance_wp(table, row, cos_o, roughness, eta)
    w = 1.0 / (1.0 + (base[0] + base[1] + base[2]) / 3.0)
    spec = (1.0 - t_o) * w
    total = spec + t_o * (1.0 - w)
    out = float(1.0)
    if total > 0.0:
        out = spec / total
    return out


@wp.func
def _diffuse_scale_wp(table: wp.array(dtype=float), row: int, co: float, ci: float, roughness: float, ior: float):
    """The diffuse base's value per unit base colour at the clamped cosines ``co``, ``ci``."""
    t_o = plastic_transmittance_wp(table, row, co, roughness, ior)
    t_i = plastic_transmittance_wp(table, row, ci, roughness, ior)
    r_int = table[row * PLASTIC_TABLE + TABLE_SIZE]
    return t_o * t_i / (wp.pi * ior * ior) / (1.0 - r_int)


@wp.func
def plastic_diffuse_wp(table: wp.array(dtype=float), row: int, n: wp.vec3, wi: wp.vec3, wo: wp.vec3,
                       base: wp.vec3, roughness: float, ior: float):
    """The diffuse base's part of :func:`plastic_eval_pdf_wp`'s ``f`` [3] (unit ``n``, ``wi``, ``wo``), without
    the specular coat: what a delta light sees of a smooth plastic (``Material.delta_specular``; the twin of
    ``PlasticBSDF.eval_diffuse``)."""
    f = wp.vec3(0.0, 0.0, 0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        f = base * _diffuse_scale_wp(table, row, co, ci, roughness, ior)
    return f


@wp.func
def plastic_eval_pdf_wp(table: wp.array(dtype=float), row: int, n: wp.vec3, wi: wp.vec3, wo: wp.vec3,
                        p_spec_known: float, base: wp.vec3, roughness: float, ior: float, beckmann: int):
    """``(f [3], pdf)`` of the plastic (no cosine in ``f``) at unit ``n``, ``wi``, ``wo``: zero unless both are
    above the surface. ``p_spec_known`` >= 0: :func:`plastic_specular_probability_wp` at ``clamp(n . wo, 1e-6,
    1)``, already known (a vertex's light samples and BSDF sample share it); < 0: computed here."""
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        wo_h = wp.dot(wo, h)
        dist, g, pdf_spec = separable_lobe_wp(co, ci, sin2_h, wp.clamp(wp.dot(n, h), 0.0, 1.0), wo_h, roughness,
                                              beckmann)
        fresnel, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.clamp(wo_h, -1.0, 1.0), ior)
        spec = fresnel * dist * g / (4.0 * co * ci)
        scale = _diffuse_scale_wp(table, row, co, ci, roughness, ior)
        for k in range(3):
            f[k] = spec + base[k] * scale
        p = p_spec_known
        if p < 0.0:
            p = plastic_specular_probability_wp(table, row, co, base, roughness, ior)
        pdf = p * pdf_spec + (1.0 - p) * ci / wp.pi
    return f, pdf


@wp.func
def plastic_sample_wp(table: wp.array(dtype=float), row: int, n: wp.vec3, wo: wp.vec3, p_spec_known: float,
                      base: wp.vec3, roughness: float, ior: float, beckmann: int, u_lobe: float, u0: float, u1: float):
    """``(wi, weight [3], pdf)``: the specular lobe (GGX normals visible from ``wo``, or Beckmann's by ``D (n.h)``)
    with :func:`plastic_specular_probability_wp` (``p_spec_known`` as :func:`plastic_eval_pdf_wp`'s), else a
    cosine-distributed direction; ``weight = f cos / pdf``."""
    p = p_spec_known
    if p < 0.0:
        p = plastic_specular_probability_wp(table, row, wp.clamp(wp.dot(wo, n), DOT_EPS, 1.0), base, roughness, ior)
    wi = two_lobe_direction_wp(n, wo, p, roughness, beckmann, u_lobe, u0, u1)
    wi = wi / wp.max(wp.length(wi), _EPS)
    f, pdf = plastic_eval_pdf_wp(table, row, n, wi, wo, p, base, roughness, ior, beckmann)
    return wi, sample_weight_wp(f, pdf, n, wi), pdf


@wp.func
def _table_taps(cos: float):
    """``(index, w1)``: :func:`plastic_transmittance_wp`'s two entries ``index, index + 1`` and the second's
    weight at ``cos``."""
    x = wp.clamp(cos, 0.0, 1.0) * float(TABLE_SIZE - 1)
    index = wp.clamp(int(wp.floor(x)), 0, TABLE_SIZE - 2)
    return index, x - float(index)


@wp.func
def plastic_param_grads_wp(table: wp.array(dtype=float), row: int, n: wp.vec3, wi_in: wp.vec3, wo: wp.vec3,
                           base: wp.vec3, roughness: float, ior: float, beckmann: int, coat: float, coef: wp.vec3,
                           g_table: wp.array2d(dtype=wp.float64)):
    """``sum_c coef_c d f_c / d theta`` of :func:`plastic_eval_pdf_wp`'s value ``f`` (unit ``n``, ``wo``) with the
    table held: ``(d base [3], 0, d roughness, d ior, 0)`` (the glTF model's metallic and specular columns, which
    the plastic does not read); its derivatives in the table's entries (the two taps of ``t(n.wo)`` and of ``t(n.wi)``,
    and ``R_int``) are added to row ``row`` of ``g_table [P, PLASTIC_TABLE]`` (float64), for autograd to chain
    through the table's quadratures to the roughness and ior. At roughness 0 ``t = 1 - F`` exactly, whose ior
    derivative is direct. Zero where ``f`` is (below either surface). ``coat`` 0: of :func:`plastic_diffuse_wp`'s
    value instead (the specular coat's terms dropped; 1: the whole value)."""
    wi = wi_in / wp.max(wp.length(wi_in), _EPS)
    g_base = wp.vec3(0.0, 0.0, 0.0)
    g_roughness = float(0.0)
    g_ior = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        wo_h = wp.dot(wo, h)
        dg, d_dg = separable_lobe_slope_wp(co, ci, sin2_h, roughness, beckmann)
        cos_f = wp.clamp(wo_h, -1.0, 1.0)
        fresnel, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(cos_f, ior)
        d_fresnel = float(0.0)
        if cos_f >= 0.0:
            d_fresnel = fresnel_ior_slope_wp(cos_f, ior)
        shadow = 1.0 / (4.0 * co * ci)
        d_spec_r = fresnel * d_dg * shadow
        d_spec_ior = d_fresnel * dg * shadow
        t_o = plastic_transmittance_wp(table, row, co, roughness, ior)
        t_i = plastic_transmittance_wp(table, row, ci, roughness, ior)
        r_int = table[row * PLASTIC_TABLE + TABLE_SIZE]
        k_diff = 1.0 / (wp.pi * ior * ior) / (1.0 - r_int)  # scale = t_o t_i k_diff
        scale = t_o * t_i * k_diff
        cb = float(0.0)  # sum_c coef_c base_c
        cs = float(0.0)  # sum_c coef_c
        for k in range(3):
            g_base[k] = coef[k] * scale
            cb += coef[k] * base[k]
            cs += coef[k]
        g_roughness = coat * cs * d_spec_r
        g_ior = coat * cs * d_spec_ior + cb * scale * (-2.0 / ior)
        if roughness == 0.0:  # t = 1 - F(cos) exactly
            g_ior += cb * k_diff * (-fresnel_ior_slope_wp(co, ior) * t_i - t_o * fresnel_ior_slope_wp(ci, ior))
        else:
            i_o, w_o = _table_taps(co)
            i_i, w_i = _table_taps(ci)
            wp.atomic_add(g_table, row, i_o, wp.float64(cb * t_i * k_diff * (1.0 - w_o)))
            wp.atomic_add(g_table, row, i_o + 1, wp.float64(cb * t_i * k_diff * w_o))
            wp.atomic_add(g_table, row, i_i, wp.float64(cb * t_o * k_diff * (1.0 - w_i)))
            wp.atomic_add(g_table, row, i_i + 1, wp.float64(cb * t_o * k_diff * w_i))
        wp.atomic_add(g_table, row, TABLE_SIZE, wp.float64(cb * scale / (1.0 - r_int)))
    return g_base, float(0.0), g_roughness, g_ior, float(0.0)
