"""Mitsuba's rough conductor in the fused path kernel (Warp, float32): a metal's exact Fresnel curve on a GGX or
Beckmann lobe with separable shadowing, evaluated, its density, sampled, and the derivatives of its value.

The float32 twin of :class:`lumigrad.shading.conductor.ConductorBSDF` (the PyTorch code is the reference: the
same operations in the same order, on the unit normal and view the path kernel shares between a vertex's light
samples and its BSDF sample). A part's complex index of refraction is rows ``2 row`` (``eta``) and ``2 row + 1``
(``k``) of ``table``, built per material by :mod:`lumigrad.integrators.fused_paths`.
"""

from __future__ import annotations

import warp as wp

from .anisotropy_kernels import anisotropic_lobe_pdf_wp, anisotropic_terms_wp, aspect_widths_wp, tangent_frame_wp
from .bsdf_kernels import (reflection_terms_wp, sample_weight_wp, separable_lobe_slope_wp, separable_lobe_wp,
                           two_lobe_direction_in_wp, two_lobe_direction_wp)

wp.set_module_options({"enable_backward": False})

#: Columns of a shading point's ``si.conductor`` (``lumigrad.shading.conductor.CONDUCTOR_VALUES``: ``eta``, ``k``,
#: the flag), which the path replay's kernels read.
CONDUCTOR_VALUES = 7
_EPS = wp.constant(1.0e-12)
#: ``lumigrad.shading.conductor.MIN_HEAD_ON``: the least reflectance head-on the curve is divided by.
MIN_HEAD_ON = wp.constant(1.0e-4)
#: ``lumigrad.shading.conductor._FLOOR`` in float32's range.
_FLOOR = wp.constant(1.0e-30)


@wp.func
def fresnel_conductor_wp(cos: float, eta: float, k: float):
    """The unpolarised Fresnel reflectance of a conductor ``eta + i k`` at ``cos`` (clamped to [0, 1]): the twin
    of :func:`lumigrad.shading.fresnel_conductor`."""
    c = wp.clamp(cos, 0.0, 1.0)
    c2 = c * c
    s2 = 1.0 - c2
    eta2 = eta * eta
    k2 = k * k
    t0 = eta2 - k2 - s2
    a2pb2 = wp.sqrt(wp.max(t0 * t0 + 4.0 * eta2 * k2, _FLOOR))
    a = wp.sqrt(wp.max(0.5 * (a2pb2 + t0), _FLOOR))
    t1 = a2pb2 + c2
    t2 = 2.0 * c * a
    r_s = (t1 - t2) / wp.max(t1 + t2, _FLOOR)
    t3 = c2 * a2pb2 + s2 * s2
    t4 = t2 * s2
    r_p = r_s * (t3 - t4) / wp.max(t3 + t4, _FLOOR)
    return 0.5 * (r_s + r_p)


@wp.func
def conductor_curve_wp(table: wp.array(dtype=wp.vec3), row: int, cos: float):
    """``F(cos) / F(1)`` per channel of the conductor of row ``row`` (what scales the base colour)."""
    eta = table[2 * row]
    k = table[2 * row + 1]
    out = wp.vec3()
    for c in range(3):
        k2 = k[c] * k[c]
        head_on = ((eta[c] - 1.0) * (eta[c] - 1.0) + k2) / ((eta[c] + 1.0) * (eta[c] + 1.0) + k2)  # F(1)
        out[c] = fresnel_conductor_wp(cos, eta[c], k[c]) / wp.max(head_on, MIN_HEAD_ON)
    return out


@wp.func
def conductor_eval_pdf_wp(table: wp.array(dtype=wp.vec3), row: int, n: wp.vec3, wi: wp.vec3, wo: wp.vec3,
                          base: wp.vec3, roughness: float, beckmann: int, tangent: wp.vec3, log_aspect: float):
    """``(f [3], pdf)`` of the conductor (no cosine in ``f``) at unit ``n``, ``wi``, ``wo``: zero unless both are
    above the surface; anisotropic in the frame of ``tangent`` where ``log_aspect`` is not 0
    (:mod:`.anisotropy_kernels`)."""
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        wo_h = wp.clamp(wp.dot(wo, h), 0.0, 1.0)
        cos_h = wp.clamp(wp.dot(n, h), 0.0, 1.0)
        dist = float(0.0)
        g = float(0.0)
        if log_aspect != 0.0:
            au, av = aspect_widths_wp(roughness, log_aspect)
            d_a, g_o, g_i = anisotropic_terms_wp(n, tangent, wo, wi, h, au, av, beckmann)
            dist = d_a
            g = g_o * g_i
            pdf = anisotropic_lobe_pdf_wp(d_a, g_o, co, cos_h, wo_h, beckmann)
        else:
            dist, g, pdf = separable_lobe_wp(co, ci, sin2_h, cos_h, wo_h, roughness, beckmann)
        curve = conductor_curve_wp(table, row, wo_h)
        lobe = dist * g / (4.0 * co * ci)
        for c in range(3):
            f[c] = base[c] * curve[c] * lobe
    return f, pdf


@wp.func
def conductor_sample_wp(table: wp.array(dtype=wp.vec3), row: int, n: wp.vec3, wo: wp.vec3, base: wp.vec3,
                        roughness: float, beckmann: int, tangent: wp.vec3, log_aspect: float, u0: float, u1: float):
    """``(wi, weight [3], pdf)``: ``wo`` mirrored about a GGX normal visible from ``wo`` (or a Beckmann normal by
    ``D (n.h)``), of both widths in the frame of ``tangent`` where ``log_aspect`` is not 0; ``weight = f cos /
    pdf``."""
    wi = wp.vec3()
    if log_aspect != 0.0:
        s, t = tangent_frame_wp(n, tangent)
        au, av = aspect_widths_wp(roughness, log_aspect)
        wi = two_lobe_direction_in_wp(n, s, t, wo, 1.0, au, av, beckmann, 1, 0.0, u0, u1)
    else:
        wi = two_lobe_direction_wp(n, wo, 1.0, roughness, beckmann, 0.0, u0, u1)
    wi = wi / wp.max(wp.length(wi), _EPS)
    f, pdf = conductor_eval_pdf_wp(table, row, n, wi, wo, base, roughness, beckmann, tangent, log_aspect)
    return wi, sample_weight_wp(f, pdf, n, wi), pdf


@wp.func
def conductor_param_grads_wp(table: wp.array(dtype=wp.vec3), row: int, n: wp.vec3, wi_in: wp.vec3, wo: wp.vec3,
                             base: wp.vec3, roughness: float, beckmann: int, coef: wp.vec3):
    """``sum_c coef_c d f_c / d theta`` of :func:`conductor_eval_pdf_wp`'s value ``f`` (unit ``n``, ``wo``):
    ``(d base [3], 0, d roughness, 0, 0)`` (the glTF model's metallic, ior and specular columns, which the
    conductor does not read; its ``eta`` and ``k`` are not differentiated here: the fused adjoint refuses them).
    Zero where ``f`` is (below either surface)."""
    wi = wi_in / wp.max(wp.length(wi_in), _EPS)
    g_base = wp.vec3(0.0, 0.0, 0.0)
    g_roughness = float(0.0)
    cos_o_raw = wp.dot(n, wo)
    cos_i_raw = wp.dot(n, wi)
    if cos_o_raw > 0.0 and cos_i_raw > 0.0:
        co, ci, h, sin2_h = reflection_terms_wp(n, wi, wo, cos_o_raw, cos_i_raw)
        curve = conductor_curve_wp(table, row, wp.clamp(wp.dot(wo, h), 0.0, 1.0))
        dg, d_dg = separable_lobe_slope_wp(co, ci, sin2_h, roughness, beckmann)
        shadow = 1.0 / (4.0 * co * ci)
        for c in range(3):
            g_base[c] = coef[c] * curve[c] * dg * shadow
            g_roughness += coef[c] * base[c] * curve[c] * d_dg * shadow
    return g_base, float(0.0), g_roughness, float(0.0), float(0.0)
