"""Mitsuba's principled BSDF in the fused path kernel (Warp, float32): evaluated, its density, sampled.

The float32 twin of :class:`lumigrad.shading.principled.PrincipledBSDF` (the PyTorch code is the reference: the
same operations in the same order, on the unit normal and view the path kernel shares between a vertex's light
samples and its BSDF sample): GGX reflection with the exact dielectric Fresnel mixed with the metal's Schlick
curve, and Burley's diffuse with its retro-reflection.
"""

from __future__ import annotations

import warp as wp

from .bsdf_kernels import (ALPHA_MIN, DOT_EPS, alpha_slope_wp, reflection_terms_wp, sample_weight_wp,
                           smith_g1_alpha_slope_wp, smith_g1_wp, two_lobe_direction_wp)
from .dielectric_kernels import fresnel_dielectric_wp, fresnel_ior_slope_wp

wp.set_module_options({"enable_backward": False})

_EPS = wp.constant(1.0e-12)


@wp.func
def _schlick_weight(cos: float):
    m = wp.clamp(1.0 - cos, 0.0, 1.0)
    m2 = m * m
    return m2 * m2 * m


@wp.func
def principled_specular_probability_wp(cos_o: float, base: wp.vec3, metallic: float, ior: float):
    """The specular lobe's probability at ``cos_o`` (already clamped to ``[1e-6, 1]``): the channel means of the
    Schlick-estimated specular reflectance and of the diffuse albedo ``(1 - metallic) base``; 1 where both
    vanish."""
    r = (ior - 1.0) / (ior + 1.0)
    f0 = r * r
    s = _schlick_weight(cos_o)
    spec = float(0.0)
    diff = float(0.0)
    for k in range(3):
        spec += (1.0 - metallic) * (f0 + (1.0 - f0) * s) + metallic * (base[k] + (1.0 - base[k]) * s)
        diff += (1.0 - metallic) * base[k]
    spec = spec / 3.0
    diff = diff / 3.0
    total = spec + diff
    out = float(1.0)
    if total > 0.0:
        out = spec / total
    return out


@wp.func
def principled_eval_pdf_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, p_spec_known: float, base: wp.vec3,
                           roughness: float, metallic: float, ior: float):
    """``(f [3], pdf)`` of the principled BSDF (no cosine in ``f``) at unit ``n``, ``wi``, ``wo``: zero unless both
    are above the surface. ``p_spec_known`` >= 0: :func:`principled_specular_probability_wp` at ``clamp(n . wo,
    1e-6, 1)``, already known (a vertex's light samples and BSDF sample share it); < 0: computed here."""
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        wo_h = wp.clamp(wp.dot(wo, h), 0.0, 1.0)
        alpha = wp.max(roughness * roughness, ALPHA_MIN)
        a2 = alpha * alpha
        q = a2 + sin2_h * (1.0 - a2)
        dist = a2 / (wp.pi * q * q)
        g1_o = smith_g1_wp(co, alpha, 0)
        shadowing = dist * g1_o * smith_g1_wp(ci, alpha, 0) / (4.0 * co * ci)
        f_d, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wo_h, ior)
        if not (f_d > 0.0):  # (an ior of 1: Mitsuba drops the whole specular lobe, the metal's too)
            shadowing = 0.0
        s_h = _schlick_weight(wo_h)
        s_o = _schlick_weight(co)
        s_i = _schlick_weight(ci)
        retro = 2.0 * roughness * wo_h * wo_h
        lobes = (1.0 - 0.5 * s_o) * (1.0 - 0.5 * s_i) + retro * (s_o + s_i + s_o * s_i * (retro - 1.0))
        for k in range(3):
            fresnel = (1.0 - metallic) * f_d + metallic * (base[k] + (1.0 - base[k]) * s_h)
            f[k] = fresnel * shadowing + (1.0 - metallic) * base[k] / wp.pi * lobes
        p = p_spec_known
        if p < 0.0:
            p = principled_specular_probability_wp(co, base, metallic, ior)
        pdf = p * (dist * g1_o / (4.0 * co)) + (1.0 - p) * ci / wp.pi
    return f, pdf


@wp.func
def principled_sample_wp(n: wp.vec3, wo: wp.vec3, p_spec_known: float, base: wp.vec3, roughness: float,
                         metallic: float, ior: float, u_lobe: float, u0: float, u1: float):
    """``(wi, weight [3], pdf)``: the specular lobe (GGX normals visible from ``wo``, mirrored) with
    :func:`principled_specular_probability_wp` (``p_spec_known`` as :func:`principled_eval_pdf_wp`'s), else a
    cosine-distributed direction; ``weight = f cos / pdf``."""
    p = p_spec_known
    if p < 0.0:
        p = principled_specular_probability_wp(wp.clamp(wp.dot(wo, n), DOT_EPS, 1.0), base, metallic, ior)
    wi = two_lobe_direction_wp(n, wo, p, roughness, 0, u_lobe, u0, u1)
    wi = wi / wp.max(wp.length(wi), _EPS)
    f, pdf = principled_eval_pdf_wp(n, wi, wo, p, base, roughness, metallic, ior)
    return wi, sample_weight_wp(f, pdf, n, wi), pdf


@wp.func
def principled_param_grads_wp(n: wp.vec3, wi_in: wp.vec3, wo: wp.vec3, base: wp.vec3, roughness: float,
                              metallic: float, ior: float, coef: wp.vec3):
    """``sum_c coef_c d f_c / d theta`` of :func:`principled_eval_pdf_wp`'s value ``f`` (unit ``n``, ``wo``):
    ``(d base [3], d metallic, d roughness, d ior, 0)`` (the last the glTF model's specular weight, which the
    principled does not read); zero where ``f`` is (below either surface). ``alpha = max(roughness^2, 1e-3)``
    has no roughness derivative below its floor, as the twin's ``clamp_min``."""
    wi = wi_in / wp.max(wp.length(wi_in), _EPS)
    g_base = wp.vec3(0.0, 0.0, 0.0)
    g_metallic = float(0.0)
    g_roughness = float(0.0)
    g_ior = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        wo_h = wp.clamp(wp.dot(wo, h), 0.0, 1.0)
        alpha, d_alpha = alpha_slope_wp(roughness)
        a2 = alpha * alpha
        q = a2 + sin2_h * (1.0 - a2)
        dist = a2 / (wp.pi * q * q)
        d_dist = (q - 2.0 * a2 * (1.0 - sin2_h)) / (wp.pi * q * q * q)  # d D / d a2
        g1_o = smith_g1_wp(co, alpha, 0)
        g1_i = smith_g1_wp(ci, alpha, 0)
        shadowing = dist * g1_o * g1_i / (4.0 * co * ci)
        d_g = smith_g1_alpha_slope_wp(co, alpha, 0) * g1_i + g1_o * smith_g1_alpha_slope_wp(ci, alpha, 0)
        d_shadowing = (d_dist * 2.0 * alpha * g1_o * g1_i + dist * d_g) / (4.0 * co * ci) * d_alpha
        f_d, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wo_h, ior)
        d_fd = fresnel_ior_slope_wp(wo_h, ior)
        if not (f_d > 0.0):  # (an ior of 1: no specular lobe, as the value's)
            shadowing = 0.0
            d_shadowing = 0.0
        s_h = _schlick_weight(wo_h)
        s_o = _schlick_weight(co)
        s_i = _schlick_weight(ci)
        retro = 2.0 * roughness * wo_h * wo_h
        lobes = (1.0 - 0.5 * s_o) * (1.0 - 0.5 * s_i) + retro * (s_o + s_i + s_o * s_i * (retro - 1.0))
        d_lobes = (s_o + s_i + s_o * s_i * (retro - 1.0) + retro * s_o * s_i) * (2.0 * wo_h * wo_h)
        for k in range(3):
            metal_k = base[k] + (1.0 - base[k]) * s_h
            fresnel = (1.0 - metallic) * f_d + metallic * metal_k
            g_base[k] = coef[k] * (metallic * (1.0 - s_h) * shadowing + (1.0 - metallic) * lobes / wp.pi)
            g_metallic += coef[k] * ((metal_k - f_d) * shadowing - base[k] * lobes / wp.pi)
            g_roughness += coef[k] * (fresnel * d_shadowing + (1.0 - metallic) * base[k] / wp.pi * d_lobes)
            g_ior += coef[k] * (1.0 - metallic) * d_fd * shadowing
    return g_base, g_metallic, g_roughness, g_ior, float(0.0)
