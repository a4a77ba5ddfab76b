"""The fused kernels' transmitting glTF BSDF in Warp (float32): the rough dielectric of Walter et al. 2007 with
GGX and exact Fresnel, and ``KHR_materials_transmission``'s mixture of it with the opaque model.

The float32 twins of :mod:`lumigrad.shading.dielectric` (``fresnel_dielectric_unchecked``,
``rough_dielectric_unchecked``, ``rough_dielectric_pdf_unchecked``, ``rough_dielectric_sample_unchecked``, radiance
mode) and :class:`lumigrad.shading.transmission.MetallicRoughnessTransmissionBSDF` (the PyTorch code is the
reference): the same operations in the same order, on unit vectors (the path kernel's normal and view; directions
normalised where they are made). Conventions: ``n`` points to the exterior, ``ior`` is interior / exterior (the
material's: the kernel renders no nested media), either side may hold ``wo``. Where a part's log aspect is not 0
(``Material.roughness_aspect``: Mitsuba's ``alpha_u`` / ``alpha_v``) the dielectric's lobe is anisotropic in the
frame of the point's tangent (:mod:`.anisotropy_kernels`); the opaque model beside it stays isotropic.
"""

from __future__ import annotations

import warp as wp

from .anisotropy_kernels import anisotropic_d_wp, anisotropic_g1_wp, aspect_widths_wp, tangent_frame_wp
from .bsdf_kernels import (ALPHA_MIN, anisotropic_normal_wp, beckmann_d_wp, beckmann_g1_wp, beckmann_normal_wp,
                           ggx_visible_normal_wp, local_frame_wp, eval_pdf_unit_wp, f0_dielectric_wp,
                           normalize_floor_wp, sample_unit_wp, specular_probability_wp)

wp.set_module_options({"enable_backward": False})

#: ``lumigrad.shading.dielectric._EPS``.
_EPS = wp.constant(1.0e-12)
#: ``lumigrad.shading.transmission.INDEX_MATCHED_TOLERANCE``.
INDEX_MATCHED_TOLERANCE = wp.constant(1.0e-4)


@wp.func
def _sign(x: float):
    out = float(1.0)
    if x < 0.0:
        out = -1.0
    return out


@wp.func
def fresnel_dielectric_wp(cos_i: float, eta: float):
    """``(F, cos_t, eta_it, eta_ti)``: exact unpolarised Fresnel reflectance at incidence cosine ``cos_i`` (either
    side; ``eta`` interior / exterior), the refracted cosine (opposite sign to ``cos_i``; 0 at total internal
    reflection) and the relative indices."""
    outside = cos_i >= 0.0
    inv = 1.0 / eta
    eta_it = inv
    eta_ti = eta
    if outside:
        eta_it = eta
        eta_ti = inv
    c = wp.min(wp.abs(cos_i), 1.0)
    cos_t_sqr = 1.0 - eta_ti * eta_ti * (1.0 - c * c)
    tir = cos_t_sqr <= 0.0
    ct = float(0.0)
    if not tir:
        ct = wp.sqrt(cos_t_sqr)
    den_s = c + eta_it * ct
    den_p = eta_it * c + ct
    f = float(0.0)
    if den_s > 0.0 and den_p > 0.0:
        r_s = (c - eta_it * ct) / den_s
        r_p = (eta_it * c - ct) / den_p
        f = 0.5 * (r_s * r_s + r_p * r_p)
    if tir:
        f = 1.0
    if eta_it == 1.0:
        f = 0.0
    cos_t = ct
    if outside:
        cos_t = -ct
    return f, cos_t, eta_it, eta_ti


@wp.func
def fresnel_ior_slope_wp(cos_i: float, eta: float):
    """``d F / d eta`` of :func:`fresnel_dielectric_wp` at ``cos_i`` in ``[0, 1]`` (light
    arriving from outside): 0 at total internal reflection and at ``eta`` 1 (the index-matched interface, where
    ``F`` is held at 0)."""
    out = float(0.0)
    c = wp.min(cos_i, 1.0)
    ct2 = 1.0 - (1.0 - c * c) / (eta * eta)
    if ct2 > 0.0 and eta != 1.0:
        ct = wp.sqrt(ct2)
        d_ct = (1.0 - c * c) / (eta * eta * eta * ct)
        u = eta * ct
        r_s = (c - u) / (c + u)
        d_rs = -2.0 * c * (ct + eta * d_ct) / ((c + u) * (c + u))
        den_p = eta * c + ct
        r_p = (eta * c - ct) / den_p
        d_rp = 2.0 * c * (ct - eta * d_ct) / (den_p * den_p)
        out = r_s * d_rs + r_p * d_rp
    return out


@wp.func
def _ggx_d(n_h: float, a2: float):
    nh2 = n_h * n_h
    d = (1.0 - nh2) + nh2 * a2
    return a2 / (wp.pi * d * d)


@wp.func
def _smith_g1(cos_v: float, v_dot_h: float, a2: float):
    c = wp.abs(cos_v)
    g1 = 2.0 * c / wp.max(c + wp.sqrt(a2 + (1.0 - a2) * c * c), _EPS)
    out = float(0.0)
    if v_dot_h * cos_v > 0.0:
        out = g1
    return out


@wp.func
def _beckmann_g1(cos_v: float, v_dot_h: float, alpha: float):
    out = float(0.0)
    if v_dot_h * cos_v > 0.0:
        out = beckmann_g1_wp(wp.max(wp.abs(cos_v), _EPS), alpha)
    return out


@wp.func
def _anisotropic_g1(v: wp.vec3, s: wp.vec3, t: wp.vec3, n: wp.vec3, cos_v: float, v_dot_h: float, au: float, av: float,
                    beckmann: int):
    """Smith's masking of the anisotropic lobe for ``v`` seen from its own side (0 where it sees the microfacet's
    back): the twin of the rough dielectric's ``_anisotropic_terms``."""
    out = float(0.0)
    if v_dot_h * cos_v > 0.0:
        out = anisotropic_g1_wp(wp.vec3(wp.dot(v, s), wp.dot(v, t), cos_v) * _sign(cos_v), au, av, beckmann)
    return out


@wp.func
def rough_dielectric_eval_pdf_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, alpha: float, eta: float, beckmann: int,
                                 tangent: wp.vec3, log_aspect: float, roughness: float):
    """``(f, pdf)`` of the rough dielectric (``rough_dielectric_unchecked`` and its pdf, radiance mode) at unit
    ``n, wi, wo``: reflection ``F D G / (4 |n.wo| |n.wi|)``, refraction ``(1 - F) D G |wo.h| |wi.h| / (|n.wo|
    |n.wi| (wo.h + eta' wi.h)^2)``; visible-normal density times the reflection or refraction Jacobian and its
    Fresnel probability. Zero where a direction lies on the surface, a direction sees the microfacet's back, or
    the refraction's half vector degenerates. ``beckmann`` 1: Beckmann's ``D`` and ``G1`` (Walter et al. 2007's
    ``Lambda``), the normals' density ``D (n.h)``. Where ``log_aspect`` is not 0, ``D`` and ``G1`` of the widths
    of ``roughness`` and the aspect in the frame of ``tangent`` instead of ``alpha``'s."""
    cos_o = wp.dot(n, wo)
    cos_i = wp.dot(n, wi)
    reflect = cos_o * cos_i > 0.0
    eta_p = 1.0 / eta
    if cos_o > 0.0:
        eta_p = eta
    scale = eta_p
    if reflect:
        scale = 1.0
    h = wo + wi * scale
    h_len2 = wp.dot(h, h)
    h = h / wp.sqrt(wp.max(h_len2, 1.0e-30))
    h = h * _sign(wp.dot(n, h))
    wo_h = wp.dot(wo, h)
    wi_h = wp.dot(wi, h)
    den = wo_h + eta_p * wi_h
    valid = cos_o != 0.0 and cos_i != 0.0 and h_len2 > 0.0 and wo_h * cos_o > 0.0 and wi_h * cos_i > 0.0
    valid = valid and (reflect or wp.abs(den) > 1.0e-7)
    f = float(0.0)
    pdf = float(0.0)
    if valid:
        n_h = wp.dot(n, h)
        a2 = alpha * alpha
        d = float(0.0)
        g = float(0.0)
        pdf_h = float(0.0)
        if log_aspect != 0.0:
            au, av = aspect_widths_wp(roughness, log_aspect)
            s, t = tangent_frame_wp(n, tangent)
            d = anisotropic_d_wp(wp.vec3(wp.dot(h, s), wp.dot(h, t), n_h), au, av, beckmann)
            g_o = _anisotropic_g1(wo, s, t, n, cos_o, wo_h, au, av, beckmann)
            g = g_o * _anisotropic_g1(wi, s, t, n, cos_i, wi_h, au, av, beckmann)
            pdf_h = d * g_o * wp.abs(wo_h) / wp.max(wp.abs(cos_o), _EPS)
            if beckmann != 0:
                pdf_h = d * n_h
        elif beckmann != 0:
            d = beckmann_d_wp(wp.max(1.0 - n_h * n_h, 0.0), a2)
            g = _beckmann_g1(cos_o, wo_h, alpha) * _beckmann_g1(cos_i, wi_h, alpha)
            pdf_h = d * n_h
        else:
            d = _ggx_d(n_h, a2)
            g = _smith_g1(cos_o, wo_h, a2) * _smith_g1(cos_i, wi_h, a2)
            co_raw = wp.abs(cos_o)
            pdf_h = 2.0 * d * wp.abs(wo_h) / wp.max(co_raw + wp.sqrt(a2 + (1.0 - a2) * co_raw * co_raw), _EPS)
        fres, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.clamp(wo_h, -1.0, 1.0), eta)
        co = wp.max(wp.abs(cos_o), _EPS)
        ci = wp.max(wp.abs(cos_i), _EPS)
        den2 = wp.max(den * den, _EPS)
        if reflect:
            f = fres * d * g / (4.0 * co * ci)
            pdf = pdf_h * (fres / (4.0 * wp.max(wp.abs(wi_h), _EPS)))
        else:
            f = (1.0 - fres) * d * g * wp.abs(wo_h * wi_h) / (co * ci * den2)
            pdf = pdf_h * ((1.0 - fres) * eta_p * eta_p * wp.abs(wi_h) / den2)
    return f, pdf


@wp.func
def rough_dielectric_direction_wp(n: wp.vec3, wo: wp.vec3, alpha: float, eta: float, beckmann: int,
                                  tangent: wp.vec3, log_aspect: float, roughness: float, u_choice: float, u0: float,
                                  u1: float):
    """``rough_dielectric_sample_unchecked``'s direction at unit ``n, wo``: a GGX normal visible from ``wo``
    (flipped to the normal's side), or with ``beckmann`` a Beckmann normal drawn by ``D (n.h)``, from ``u0, u1``,
    then reflection where ``u_choice < F`` (or at total internal reflection), else refraction; ``(wi, ok)`` with
    ``ok`` False for a reflection through the surface, a refraction that does not cross it or a Beckmann normal
    facing away from ``wo`` (the caller also requires a positive density). Where ``log_aspect`` is not 0, the
    normal is the anisotropic lobe's in the frame of ``tangent``."""
    t = wp.vec3()
    b = wp.vec3()
    if log_aspect != 0.0:
        t, b = tangent_frame_wp(n, tangent)
    else:
        t, b = local_frame_wp(n)
    wo_l = wp.vec3(wp.dot(wo, t), wp.dot(wo, b), wp.dot(wo, n))
    side = _sign(wo_l[2])
    h = wp.vec3()
    if log_aspect != 0.0:
        au, av = aspect_widths_wp(roughness, log_aspect)
        h = anisotropic_normal_wp(wo_l * side, au, av, beckmann, u0, u1)
    elif beckmann != 0:
        h = beckmann_normal_wp(alpha, u0, u1)
    else:
        h = ggx_visible_normal_wp(wo_l * side, alpha, u0, u1)
    wo_h = wp.dot(wo_l, h)
    fres, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.clamp(wo_h, -1.0, 1.0), eta)
    reflect = u_choice < fres or fres >= 1.0
    wi_l = h * (wo_h * eta_ti + cos_t) - wo_l * eta_ti
    if reflect:
        wi_l = 2.0 * wo_h * h - wo_l
    wi = normalize_floor_wp(wi_l[0] * t + wi_l[1] * b + wi_l[2] * n)
    crosses = wi_l[2] * wo_l[2] < 0.0
    ok = crosses
    if reflect:
        ok = (not crosses) and wi_l[2] != 0.0
    ok = ok and wo_l[2] != 0.0
    if beckmann != 0:  # (visible normals never face away from wo)
        ok = ok and wo_h * wo_l[2] > 0.0
    return wi, ok


@wp.func
def index_matched_wp(ior: float):
    """The boundary does not bend light: ``|ior - 1| < INDEX_MATCHED_TOLERANCE``."""
    return wp.abs(ior - 1.0) < INDEX_MATCHED_TOLERANCE


@wp.func
def _mixture_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, base: wp.vec3, metallic: float, glass_delta: bool,
                transmission: float, f_o: wp.vec3, pdf_o: float, f_g: float, pdf_g: float):
    """:func:`transmission_eval_pdf_wp` from the opaque model's ``(f_o, pdf_o)`` and the rough dielectric's
    ``(f_g, pdf_g)`` at the same directions (the dielectric's taken as 0 where its lobes are deltas,
    ``glass_delta``: an index-matched boundary, a thin sheet)."""
    w = (1.0 - metallic) * transmission
    g = f_g
    pdf_d = pdf_g
    if glass_delta:
        g = 0.0
        pdf_d = 0.0
    tint = wp.vec3(1.0, 1.0, 1.0)
    if wp.dot(n, wi) * wp.dot(n, wo) < 0.0:
        tint = base
    return f_o + (w * g) * tint, (1.0 - w) * pdf_o + w * pdf_d


@wp.func
def transmission_eval_pdf_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, base: wp.vec3, roughness: float,
                             metallic: float, ior: float, specular: float, transmission: float, thin: int,
                             beckmann: int, tangent: wp.vec3, log_aspect: float):
    """``(f [3], pdf)`` of ``MetallicRoughnessTransmissionBSDF`` at unit ``n, wi, wo``: the opaque model with its
    dielectric layer weighted by ``1 - transmission``, plus ``w = (1 - metallic) transmission`` times the rough
    dielectric (``alpha = max(roughness^2, 1e-3)``, none at an index-matched boundary or a ``thin`` sheet: deltas),
    its refraction tinted by ``base``; the density ``(1 - w) opaque + w dielectric``; ``beckmann`` 1: both with
    Beckmann's microfacets; the dielectric anisotropic where ``log_aspect`` is not 0 (in the frame of ``tangent``)."""
    f_o, pdf_o = eval_pdf_unit_wp(n, wi, wo, -1.0, base, roughness, metallic, ior, specular, transmission, beckmann)
    f_g = float(0.0)
    pdf_g = float(0.0)
    glass_delta = index_matched_wp(ior) or thin != 0
    if not glass_delta:
        f_g, pdf_g = rough_dielectric_eval_pdf_wp(n, wi, wo, wp.max(roughness * roughness, ALPHA_MIN), ior, beckmann,
                                                  tangent, log_aspect, roughness)
    return _mixture_wp(n, wi, wo, base, metallic, glass_delta, transmission, f_o, pdf_o, f_g, pdf_g)


@wp.func
def thin_sheet_reflectance_wp(cos: float, eta: float):
    """Total reflectance ``R' = R + T^2 R / (1 - R^2)`` of a thin dielectric sheet, ``R = F(|cos|, eta)`` (the
    twin of ``lumigrad.shading.transmission.thin_sheet_reflectance``); 1 where ``R = 1``."""
    r, cos_t, eta_it, eta_ti = fresnel_dielectric_wp(wp.min(wp.abs(cos), 1.0), eta)
    out = float(1.0)
    if r < 1.0:
        t = 1.0 - r
        out = r + t * t * r / (1.0 + r) / (1.0 - r)
    return out


@wp.func
def transmission_sample_wp(n: wp.vec3, wo: wp.vec3, base: wp.vec3, roughness: float, metallic: float, ior: float,
                           specular: float, transmission: float, thin: int, beckmann: int, tangent: wp.vec3,
                           log_aspect: float, u_lobe: float, u0: float, u1: float):
    """``MetallicRoughnessTransmissionBSDF.sample`` at unit ``n, wo``: ``(wi, weight [3], pdf, delta)``.
    ``u_lobe < w`` samples the dielectric (``u_lobe / w`` choosing reflection or refraction), otherwise the
    opaque model (with ``(u_lobe - w) / (1 - w)``); the weight is ``f |n.wi| / pdf`` of the mixture. At an
    index-matched boundary the dielectric is a delta passing straight through (``wi = -wo``, weight ``base``,
    pdf ``w``, ``delta`` True). A ``thin`` sheet's (Mitsuba's ``thindielectric``) are two deltas: the mirror
    direction where ``u_lobe / w < R'`` (:func:`thin_sheet_reflectance_wp`; weight 1, pdf ``w R'``), else straight
    through (weight ``base``, pdf ``w (1 - R')``). ``beckmann`` 1: both lobes with Beckmann's microfacets; the
    dielectric anisotropic where ``log_aspect`` is not 0 (in the frame of ``tangent``). The
    dielectric's value at a dielectric sample is evaluated once
    (its density decides the sample's validity, then enters the mixture)."""
    w = (1.0 - metallic) * transmission
    p = w
    glass = u_lobe < p
    alpha = wp.max(roughness * roughness, ALPHA_MIN)
    wi = wp.vec3(0.0, 0.0, 1.0)
    valid = False
    have_g = False
    f_g = float(0.0)
    pdf_g = float(0.0)
    u_glass = float(0.0)
    if glass and p > 0.0:
        u_glass = u_lobe / p
    glass_delta = index_matched_wp(ior) or thin != 0  # (the dielectric's value is 0 there: deltas, below)
    if glass and thin == 0:
        wi, ok_dir = rough_dielectric_direction_wp(n, wo, alpha, ior, beckmann, tangent, log_aspect, roughness,
                                                   wp.clamp(u_glass, 0.0, 1.0), u0, u1)
        if ok_dir:
            f_g, pdf_g = rough_dielectric_eval_pdf_wp(n, wi, wo, alpha, ior, beckmann, tangent, log_aspect, roughness)
            have_g = True
            valid = pdf_g > 0.0
    elif not glass:
        u_opaque = float(0.0)
        if p < 1.0:
            u_opaque = (u_lobe - p) / (1.0 - p)
        p_spec = specular_probability_wp(wp.dot(n, wo), base, metallic, f0_dielectric_wp(ior), specular,
                                         transmission)
        wi_o, weight_o, pdf_o = sample_unit_wp(n, wo, p_spec, base, roughness, metallic, ior, specular,
                                               transmission, beckmann, u_opaque, u0, u1)
        wi = wi_o
        valid = pdf_o > 0.0
    ok = False
    pdf = float(0.0)
    weight = wp.vec3(0.0, 0.0, 0.0)
    if valid:  # (an invalid sample has weight 0 whatever the mixture says)
        if not have_g and not glass_delta:
            f_g, pdf_g = rough_dielectric_eval_pdf_wp(n, wi, wo, alpha, ior, beckmann, tangent, log_aspect, roughness)
        f_o, pdf_o = eval_pdf_unit_wp(n, wi, wo, -1.0, base, roughness, metallic, ior, specular, transmission, beckmann)
        f, pdf = _mixture_wp(n, wi, wo, base, metallic, glass_delta, transmission, f_o, pdf_o, f_g, pdf_g)
        ok = pdf > 0.0
        if ok:
            weight = f * wp.abs(wp.dot(n, wi)) / pdf
    delta = False
    if glass and thin != 0:
        cos_o = wp.dot(n, wo)
        r = thin_sheet_reflectance_wp(cos_o, ior)
        if wp.clamp(u_glass, 0.0, 1.0) < r:
            wi = 2.0 * cos_o * n - wo
            weight = wp.vec3(1.0, 1.0, 1.0)
            pdf = p * r
        else:
            wi = -wo
            weight = base
            pdf = p * (1.0 - r)
        ok = pdf > 0.0
        delta = ok
    elif glass and index_matched_wp(ior):
        wi = -wo
        weight = base
        pdf = p
        ok = ok or p > 0.0
        delta = ok
    if not ok:
        pdf = 0.0
    return wi, weight, pdf, delta
