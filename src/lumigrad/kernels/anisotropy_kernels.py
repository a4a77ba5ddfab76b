"""Anisotropic microfacet lobes in the fused path kernel (Warp, float32): the twin of
:mod:`lumigrad.shading.anisotropy` (the same operations in the same order).

A part's aspect is ``log a`` (0: isotropic), its widths ``alpha_u = max(r^2 / a, 1e-3)`` along the point's tangent
``s`` and ``alpha_v = max(r^2 a, 1e-3)`` along ``t = n x s``; GGX's or Beckmann's ``D`` and Smith's ``G1`` at the
width a direction sees, samples stretched by both widths. Used by the conductor's, the principled's and the rough
dielectric's kernels where a part's ``log a`` is not 0; an isotropic part keeps their isotropic arithmetic.
"""

from __future__ import annotations

import warp as wp

from .bsdf_kernels import ALPHA_MIN, DOT_EPS, beckmann_lambda_wp, local_frame_wp

wp.set_module_options({"enable_backward": False})

#: ``lumigrad.shading.anisotropy._TANGENT_MIN2``: a tangent within 1e-4 of the normal is no direction.
_TANGENT_MIN2 = wp.constant(1.0e-8)
_EPS = wp.constant(1.0e-30)
#: ``lumigrad.shading.anisotropy._COS2_FLOOR``.
_COS2_FLOOR = wp.constant(1.0e-6)


@wp.func
def aspect_widths_wp(roughness: float, log_aspect: float):
    """``(alpha_u, alpha_v)`` of mean width ``roughness^2`` and aspect ``exp(log_aspect)``, each at least
    ``ALPHA_MIN`` (the twin's ``lobe_widths``)."""
    a = wp.exp(log_aspect)
    alpha = roughness * roughness
    return wp.max(alpha / a, ALPHA_MIN), wp.max(alpha * a, ALPHA_MIN)


@wp.func
def tangent_frame_wp(n: wp.vec3, tangent: wp.vec3):
    """Unit ``(s, t)``: ``tangent`` made orthogonal to the unit ``n`` and ``n x s``, or :func:`local_frame_wp`'s
    where it is zero or within 1e-4 of ``n`` (the twin's ``tangent_frame``)."""
    x = tangent - n * wp.dot(n, tangent)
    len2 = wp.dot(x, x)
    s = wp.vec3()
    t = wp.vec3()
    if len2 > _TANGENT_MIN2 * wp.dot(tangent, tangent) and len2 > _EPS:
        s = x * (1.0 / wp.sqrt(len2))
        t = wp.cross(n, s)
    else:
        s, t = local_frame_wp(n)
    return s, t


@wp.func
def anisotropic_d_wp(h: wp.vec3, au: float, av: float, beckmann: int):
    """``D(h)`` of the local unit half vector ``h`` (0 where ``h_z <= 0``), GGX's or Beckmann's."""
    out = float(0.0)
    if h[2] > 0.0:
        slope2 = (h[0] / au) * (h[0] / au) + (h[1] / av) * (h[1] / av)
        if beckmann != 0:
            z2 = wp.max(h[2] * h[2], _COS2_FLOOR)
            out = wp.exp(-slope2 / z2) / (wp.pi * au * av * z2 * z2)
        else:
            q = slope2 + h[2] * h[2]
            out = 1.0 / (wp.pi * au * av * q * q)
    return out


@wp.func
def anisotropic_g1_wp(w: wp.vec3, au: float, av: float, beckmann: int):
    """Smith's masking of the local unit ``w`` above the surface at the width it sees."""
    z = wp.max(w[2], 1.0e-6)
    sin2 = w[0] * w[0] + w[1] * w[1]
    xy = (au * w[0]) * (au * w[0]) + (av * w[1]) * (av * w[1])
    out = float(0.0)
    if beckmann != 0:
        alpha_w2 = au * au
        if sin2 > _EPS:
            alpha_w2 = xy / sin2
        out = 1.0 / (1.0 + beckmann_lambda_wp(wp.min(z, 1.0), wp.sqrt(alpha_w2)))
    else:
        out = 2.0 / (1.0 + wp.sqrt(1.0 + xy / (z * z)))
    return out


@wp.func
def anisotropic_terms_wp(n: wp.vec3, tangent: wp.vec3, wo: wp.vec3, wi: wp.vec3, h: wp.vec3, au: float, av: float,
                         beckmann: int):
    """``(D(h), G1(wo), G1(wi))`` of the world unit vectors in the frame of ``tangent`` (the twin's
    ``anisotropic_terms``)."""
    s, t = tangent_frame_wp(n, tangent)
    hl = wp.vec3(wp.dot(h, s), wp.dot(h, t), wp.dot(h, n))
    ol = wp.vec3(wp.dot(wo, s), wp.dot(wo, t), wp.dot(wo, n))
    il = wp.vec3(wp.dot(wi, s), wp.dot(wi, t), wp.dot(wi, n))
    return (anisotropic_d_wp(hl, au, av, beckmann), anisotropic_g1_wp(ol, au, av, beckmann),
            anisotropic_g1_wp(il, au, av, beckmann))


@wp.func
def anisotropic_lobe_pdf_wp(d: float, g1_o: float, co: float, cos_h: float, wo_h: float, beckmann: int):
    """The density of the lobe's reflected samples: ``D G1(wo) / (4 n.wo)`` (GGX's visible normals) or ``D (n.h) /
    (4 wo.h)`` (Beckmann's)."""
    out = d * g1_o / (4.0 * co)
    if beckmann != 0:
        out = d * cos_h / (4.0 * wp.max(wo_h, DOT_EPS))
    return out
