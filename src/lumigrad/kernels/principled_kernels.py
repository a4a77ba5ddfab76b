"""Mitsuba's principled BSDF in the fused path kernel (Warp, float32): evaluated, its density, sampled.

The float32 twin of :class:`lumigrad.shading.principled.PrincipledBSDF` (the PyTorch code is the reference: the
same operations in the same order, on the unit normal and view the path kernel shares between a vertex's light
samples and its BSDF sample): GGX reflection with the exact dielectric Fresnel mixed with the metal's Schlick
curve, and Burley's diffuse with its retro-reflection; with ``Material.principled_lobes`` also the tinted share of
the dielectric Fresnel, the sheen, Burley's clearcoat (GTR1, sampled by its normals) and the flatness.

A point's ``principled`` code: 0 not principled, 1 the opaque base alone, ``2 + r`` with the other lobes in rows
``2 r`` (spec_tint, sheen, sheen_tint) and ``2 r + 1`` (clearcoat, clearcoat_gloss, flatness) of a ``vec3`` table
(the path kernel's ``part_conductor``, whose rows a principled part does not use for a conductor's ``eta, k``).
"""

from __future__ import annotations

import warp as wp

from .anisotropy_kernels import anisotropic_terms_wp, aspect_widths_wp, tangent_frame_wp
from .bsdf_kernels import (ALPHA_MIN, DOT_EPS, alpha_slope_wp, local_frame_wp, reflection_terms_wp,
                           sample_weight_wp, smith_g1_alpha_slope_wp, smith_g1_wp, two_lobe_direction_in_wp,
                           two_lobe_direction_wp)
from .dielectric_kernels import fresnel_dielectric_wp, fresnel_ior_slope_wp

wp.set_module_options({"enable_backward": False})

_EPS = wp.constant(1.0e-12)
_CLEARCOAT_F0 = wp.constant(0.04)
_CLEARCOAT_ALPHA_G = wp.constant(0.25)
_LUMINANCE = wp.constant(wp.vec3(0.212671, 0.715160, 0.072169))


@wp.func
def _tint(c: wp.vec3):
    """The base colour over its luminance (1 where the luminance is 0): the twin's ``_tint``."""
    lum = wp.dot(c, _LUMINANCE)
    out = wp.vec3(1.0, 1.0, 1.0)
    if lum > 0.0:
        out = c / lum
    return out


@wp.func
def _clearcoat_alpha(gloss: float):
    return 0.1 + (0.001 - 0.1) * gloss


@wp.func
def _gtr1(sin2_h: float, alpha: float):
    """Berry's GTR1 (the twin's ``_gtr1``, without the cancellation at its peak)."""
    a2 = alpha * alpha
    return (a2 - 1.0) / (wp.pi * wp.log(a2) * (a2 + (1.0 - a2) * sin2_h))


@wp.func
def _clearcoat_g1(cos: float):
    tan2 = (1.0 - cos * cos) / (cos * cos)
    return 2.0 / (1.0 + wp.sqrt(1.0 + _CLEARCOAT_ALPHA_G * _CLEARCOAT_ALPHA_G * tan2))


@wp.func
def clearcoat_probability_wp(lobe_table: wp.array(dtype=wp.vec3), code: int):
    """The clearcoat's share of a principled point's samples, ``w / (1 + w)`` with ``w = clearcoat / 4`` (0 without
    lobes: ``code`` < 2)."""
    q = float(0.0)
    if code >= 2:
        w = 0.25 * wp.max(lobe_table[2 * (code - 2) + 1][0], 0.0)
        q = w / (1.0 + w)
    return q


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
                           roughness: float, metallic: float, ior: float, lobe_table: wp.array(dtype=wp.vec3),
                           code: int, tangent: wp.vec3, log_aspect: float):
    """``(f [3], pdf)`` of the principled BSDF (no cosine in ``f``) at unit ``n``, ``wi``, ``wo``: zero unless both
    are above the surface. ``p_spec_known`` >= 0: :func:`principled_specular_probability_wp` at ``clamp(n . wo,
    1e-6, 1)``, already known (a vertex's light samples and BSDF sample share it); < 0: computed here. ``code``
    (>= 1) and ``lobe_table``: the module's (2 and more: with the other lobes). ``log_aspect`` not 0: the specular
    lobe anisotropic in the frame of ``tangent`` (:mod:`.anisotropy_kernels`)."""
    if code >= 2:
        return _lobes_eval_pdf(n, wi, wo, p_spec_known, base, roughness, metallic, ior, lobe_table[2 * (code - 2)],
                               lobe_table[2 * (code - 2) + 1], tangent, log_aspect)
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, sin2_h, wo_h, spec_pdf, shadowing, f_d, s_h, s_o, s_i, retro, lobes = _base_terms(
            n, wi, wo, cos_o_raw, cos_i_raw, roughness, ior, tangent, log_aspect)
        for k in range(3):
            fresnel = (1.0 - metallic) * f_d + metallic * (base[k] + (1.0 - base[k]) * s_h)
            f[k] = fresnel * shadowing + (1.0 - metallic) * base[k] / wp.pi * lobes
        p = p_spec_known
        if p < 0.0:
            p = principled_specular_probability_wp(co, base, metallic, ior)
        pdf = p * spec_pdf + (1.0 - p) * ci / wp.pi
    return f, pdf


@wp.func
def _base_terms(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, cos_o_raw: float, cos_i_raw: float, roughness: float,
                ior: float, tangent: wp.vec3, log_aspect: float):
    """What the opaque base and the lobes' evaluation share (both directions above the surface): the clamped
    cosines, ``1 - (n.h)^2``, ``wo.h``, the specular lobe's density ``D G1(wo) / (4 n.wo)``, its ``D G1 G1 / (4 n.wo
    n.wi)`` (0 at an ior of 1: Mitsuba drops the whole specular lobe, the metal's too), the dielectric Fresnel,
    Schlick's weights at ``wo.h``, ``n.wo``, ``n.wi``, the retro-reflection ``R`` and Burley's diffuse lobes."""
    co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
    wo_h = wp.clamp(wp.dot(wo, h), 0.0, 1.0)
    dist = float(0.0)
    g1_o = float(0.0)
    g1_i = float(0.0)
    if log_aspect != 0.0:  # (anisotropic: the main lobe's widths along and across the tangent)
        au, av = aspect_widths_wp(roughness, log_aspect)
        dist, g1_o, g1_i = anisotropic_terms_wp(n, tangent, wo, wi, h, au, av, 0)
    else:
        alpha = wp.max(roughness * roughness, ALPHA_MIN)
        a2 = alpha * alpha
        q = a2 + sin2_h * (1.0 - a2)
        dist = a2 / (wp.pi * q * q)
        g1_o = smith_g1_wp(co, alpha, 0)
        g1_i = smith_g1_wp(ci, alpha, 0)
    shadowing = dist * g1_o * g1_i / (4.0 * co * ci)
    f_d, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wo_h, ior)
    if not (f_d > 0.0):
        shadowing = 0.0
    s_h = _schlick_weight(wo_h)
    s_o = _schlick_weight(co)
    s_i = _schlick_weight(ci)
    retro = 2.0 * roughness * wo_h * wo_h
    lobes = (1.0 - 0.5 * s_o) * (1.0 - 0.5 * s_i) + retro * (s_o + s_i + s_o * s_i * (retro - 1.0))
    return co, ci, sin2_h, wo_h, dist * g1_o / (4.0 * co), shadowing, f_d, s_h, s_o, s_i, retro, lobes


@wp.func
def _lobes_eval_pdf(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, p_spec_known: float, base: wp.vec3, roughness: float,
                    metallic: float, ior: float, row0: wp.vec3, row1: wp.vec3, tangent: wp.vec3, log_aspect: float):
    """:func:`principled_eval_pdf_wp` with the other lobes ``row0 = (spec_tint, sheen, sheen_tint)``, ``row1 =
    (clearcoat, clearcoat_gloss, flatness)``, as the twin's ``eval`` and ``pdf`` with ``si.principled_lobes``."""
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, sin2_h, wo_h, spec_pdf, shadowing, f_d, s_h, s_o, s_i, retro, diffuse = _base_terms(
            n, wi, wo, cos_o_raw, cos_i_raw, roughness, ior, tangent, log_aspect)
        spec_tint = row0[0]
        sheen = row0[1]
        sheen_tint = row0[2]
        clearcoat = row1[0]
        flat = row1[2]
        fss = (1.0 + (0.5 * retro - 1.0) * s_o) * (1.0 + (0.5 * retro - 1.0) * s_i)
        diffuse = diffuse + flat * (1.25 * (fss * (1.0 / (co + ci) - 0.5) + 0.5) - diffuse)
        tint = _tint(base)
        r = (ior - 1.0) / (ior + 1.0)
        alpha_cc = _clearcoat_alpha(row1[1])
        d_cc = _gtr1(sin2_h, alpha_cc)
        coat = (_CLEARCOAT_F0 + (1.0 - _CLEARCOAT_F0) * s_h) * d_cc * _clearcoat_g1(co) * _clearcoat_g1(ci)
        for k in range(3):
            f0_tint = tint[k] * (r * r)
            fresnel = ((1.0 - metallic) * (1.0 - spec_tint) * f_d + metallic * (base[k] + (1.0 - base[k]) * s_h)
                       + (1.0 - metallic) * spec_tint * (f0_tint + (1.0 - f0_tint) * s_h))
            f[k] = (fresnel * shadowing + (1.0 - metallic) * base[k] / wp.pi * diffuse
                    + sheen * (1.0 - metallic) * s_h * (1.0 + sheen_tint * (tint[k] - 1.0)) + 0.25 * clearcoat * coat)
        p = p_spec_known
        if p < 0.0:
            p = principled_specular_probability_wp(co, base, metallic, ior)
        pdf = p * spec_pdf + (1.0 - p) * ci / wp.pi
        w = 0.25 * wp.max(clearcoat, 0.0)
        q_cc = w / (1.0 + w)  # (GTR1 normals by D (n.h), reflected)
        pdf = q_cc * d_cc * wp.sqrt(wp.max(1.0 - sin2_h, 0.0)) / (4.0 * wp.max(wo_h, DOT_EPS)) + (1.0 - q_cc) * pdf
    return f, pdf


@wp.func
def gtr1_normal_wp(alpha: float, u0: float, u1: float):
    """A GTR1 normal (local frame) with density ``D (n.h)`` (the twin's ``_gtr1_normal``)."""
    a2 = alpha * alpha
    power = wp.pow(a2, 1.0 - u1)
    cos2 = wp.clamp((1.0 - power) / (1.0 - a2), 0.0, 1.0)
    sin = wp.sqrt(wp.max(wp.clamp((power - a2) / (1.0 - a2), 0.0, 1.0), _EPS * _EPS))  # (not 1 - cos2: rounding)
    phi = 2.0 * wp.pi * u0
    return wp.vec3(sin * wp.cos(phi), sin * wp.sin(phi), wp.sqrt(wp.max(cos2, _EPS * _EPS)))


@wp.func
def principled_sample_wp(n: wp.vec3, wo: wp.vec3, p_spec_known: float, base: wp.vec3, roughness: float,
                         metallic: float, ior: float, lobe_table: wp.array(dtype=wp.vec3), code: int, tangent: wp.vec3,
                         log_aspect: float, u_lobe: float, u0: float, u1: float):
    """``(wi, weight [3], pdf)``: the specular lobe (GGX normals visible from ``wo``, mirrored) with
    :func:`principled_specular_probability_wp` (``p_spec_known`` as :func:`principled_eval_pdf_wp`'s), else a
    cosine-distributed direction; with the other lobes (``code`` >= 2), first the clearcoat (GTR1 normals,
    mirrored) where ``u_lobe`` is below its share ``q``, the others by ``(u_lobe - q) / (1 - q)``, as the twin;
    ``weight = f cos / pdf``."""
    p = p_spec_known
    if p < 0.0:
        p = principled_specular_probability_wp(wp.clamp(wp.dot(wo, n), DOT_EPS, 1.0), base, metallic, ior)
    q = clearcoat_probability_wp(lobe_table, code)
    wi = wp.vec3()
    # (the frame: the tangent's where the lobe is anisotropic, as the twin's sampling_frame)
    t, b = local_frame_wp(n)
    if log_aspect != 0.0:
        t, b = tangent_frame_wp(n, tangent)
    if code >= 2 and u_lobe < q:  # the clearcoat (the twin draws both and keeps this one)
        wo_local = wp.vec3(wp.dot(wo, t), wp.dot(wo, b), wp.dot(wo, n))
        h = gtr1_normal_wp(_clearcoat_alpha(lobe_table[2 * (code - 2) + 1][1]), u0, u1)
        wi_local = 2.0 * wp.dot(wo_local, h) * h - wo_local
        wi = wi_local[0] * t + wi_local[1] * b + wi_local[2] * n
    else:
        u_main = u_lobe
        if code >= 2:
            u_main = wp.clamp((u_lobe - q) / (1.0 - q), 0.0, 1.0)
        if log_aspect != 0.0:
            au, av = aspect_widths_wp(roughness, log_aspect)
            wi = two_lobe_direction_in_wp(n, t, b, wo, p, au, av, 0, 1, u_main, u0, u1)
        else:
            wi = two_lobe_direction_wp(n, wo, p, roughness, 0, u_main, u0, u1)
    wi = wi / wp.max(wp.length(wi), _EPS)
    f, pdf = principled_eval_pdf_wp(n, wi, wo, p, base, roughness, metallic, ior, lobe_table, code, tangent,
                                    log_aspect)
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
