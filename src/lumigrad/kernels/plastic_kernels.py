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

from .bsdf_kernels import ALPHA_MIN, DOT_EPS, beckmann_d_wp, beckmann_g1_wp, two_lobe_direction_wp
from .dielectric_kernels import fresnel_dielectric_wp

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
def _smith_g1(cos: float, alpha: float, beckmann: int):
    """Smith's separable masking at ``cos > 0``, GGX's or Beckmann's (``lumigrad.shading.brdf.smith_g1``)."""
    out = float(0.0)
    if beckmann != 0:
        out = beckmann_g1_wp(cos, alpha)
    else:
        a2 = alpha * alpha
        out = 2.0 * cos / wp.max(cos + wp.sqrt(a2 + (1.0 - a2) * cos * cos), _EPS)
    return out


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
        co = wp.clamp(cos_o_raw, DOT_EPS, 1.0)
        ci = wp.clamp(cos_i_raw, DOT_EPS, 1.0)
        hv = wi + wo
        h = hv / wp.max(wp.length(hv), DOT_EPS)
        cos_h = wp.clamp(wp.dot(n, h), 0.0, 1.0)
        wo_h = wp.dot(wo, h)
        alpha = wp.max(roughness * roughness, ALPHA_MIN)
        a2 = alpha * alpha
        nxh = wp.cross(n, h)  # (1 - cos_h^2 without cancellation in a sharp lobe, as the twin)
        sin2_h = wp.clamp(wp.dot(nxh, nxh), 0.0, 1.0)
        dist = float(0.0)
        pdf_spec = float(0.0)
        if beckmann != 0:
            dist = beckmann_d_wp(sin2_h, a2)
            pdf_spec = dist * cos_h / (4.0 * wp.max(wo_h, DOT_EPS))
        else:
            q = a2 + sin2_h * (1.0 - a2)
            dist = a2 / (wp.pi * q * q)
            pdf_spec = dist * _smith_g1(co, alpha, 0) / (4.0 * co)  # visible GGX normals, reflected
        g = _smith_g1(co, alpha, beckmann) * _smith_g1(ci, alpha, beckmann)
        fresnel, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.clamp(wo_h, -1.0, 1.0), ior)
        spec = fresnel * dist * g / (4.0 * co * ci)
        t_o = plastic_transmittance_wp(table, row, co, roughness, ior)
        t_i = plastic_transmittance_wp(table, row, ci, roughness, ior)
        r_int = table[row * PLASTIC_TABLE + TABLE_SIZE]
        scale = t_o * t_i / (wp.pi * ior * ior) / (1.0 - r_int)
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
    weight = wp.vec3(0.0, 0.0, 0.0)
    if pdf > 0.0:
        weight = f * (wp.max(wp.dot(n, wi), 0.0) / pdf)
    return wi, weight, pdf
