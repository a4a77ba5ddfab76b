"""The fused kernels' glTF metallic-roughness BSDF in Warp (float32): evaluation, density, sampling, and the
derivatives of its value in the material's parameters.

The float32 twin of :mod:`lumigrad.shading.brdf` (``metallic_roughness_unchecked``, its density and sampling:
the PyTorch code is the reference), with ``KHR_materials_specular``'s weight; weight 0 and no metal is Lambert's.
:func:`bsdf_param_grads_wp` is the adjoint the fused path replay (:mod:`.path_kernels`, ``adjoint`` on) needs:
``sum_c coef_c d f_c / d theta`` for ``theta`` the base colour, metallic, roughness, index of refraction and
specular weight, checked against PyTorch's autograd of the float64 twin in ``tests/kernels/test_bsdf_kernels.py``.
"""

from __future__ import annotations

import warp as wp

wp.set_module_options({"enable_backward": False})

ALPHA_MIN = wp.constant(1.0e-3)
DOT_EPS = wp.constant(1.0e-6)
FLOOR = wp.constant(1.0e-30)
#: Beckmann: floor of ``cos^2`` of the half vector, and the ``a`` beyond which Smith's ``Lambda`` is 0
#: (``lumigrad.shading.brdf``'s ``_BECKMANN_COS2_FLOOR`` and ``_BECKMANN_MAX_A``).
BECKMANN_COS2_FLOOR = wp.constant(1.0e-6)
BECKMANN_MAX_A = wp.constant(1.6)


@wp.func
def normalize_floor_wp(v: wp.vec3):
    """``v / sqrt(max(|v|^2, 1e-30))`` (the warps' ``_normalize``)."""
    return v / wp.sqrt(wp.max(wp.dot(v, v), FLOOR))


@wp.func
def unit_wp(v: wp.vec3):
    """``v / |v|`` (``torch.linalg.vector_norm``)."""
    return v / wp.length(v)


@wp.func
def _lambertian(base: wp.vec3, metallic: float, specular: float, transmission: float):
    """Whether the BSDF is exactly ``base / pi`` with cosine sampling: no metal, no specular coat
    (``KHR_materials_specular`` weight 0: Mitsuba's ``diffuse``) and a non-black base (so that the specular
    lobe's probability is 0, as the PyTorch twin's, not the 1 it takes where both lobes vanish)."""
    return (specular == 0.0 and metallic == 0.0 and transmission == 0.0
            and (base[0] > 0.0 or base[1] > 0.0 or base[2] > 0.0))


@wp.func
def _schlick_weight(cos: float):
    """``(1 - clamp(cos, 0, 1))^5``, Schlick's weight of the grazing reflectance."""
    m = 1.0 - wp.clamp(cos, 0.0, 1.0)
    m2 = m * m
    return m2 * m2 * m


@wp.func
def _schlick(f0: float, weight: float):
    """Schlick's Fresnel ``f0 + (1 - f0) weight`` of a :func:`_schlick_weight`."""
    return f0 + (1.0 - f0) * weight


@wp.func
def specular_probability_wp(n_dot_v: float, base: wp.vec3, metallic: float, f0_d: float, specular: float,
                            transmission: float):
    """The PyTorch twin's ``specular_probability_wp``; 0 without arithmetic where :func:`_lambertian`."""
    out = float(0.0)
    if not _lambertian(base, metallic, specular, transmission):
        fc = _schlick_weight(n_dot_v)
        f_d = specular * _schlick(f0_d, fc)
        w_d = (1.0 - metallic) * (1.0 - transmission)
        spec = float(0.0)
        diff = float(0.0)
        for k in range(3):
            spec += w_d * f_d + metallic * _schlick(base[k], fc)
            diff += w_d * (1.0 - f_d) * base[k]
        spec = spec / 3.0
        diff = diff / 3.0
        total = spec + diff
        out = 1.0
        if total > 0.0:
            out = spec / total
    return out


@wp.func
def f0_dielectric_wp(ior: float):
    r = (ior - 1.0) / (ior + 1.0)
    return r * r


@wp.func
def bsdf_eval_pdf_wp(n_in: wp.vec3, wi_in: wp.vec3, wo_in: wp.vec3, base: wp.vec3, roughness: float,
                     metallic: float, ior: float, specular: float):
    """``(f [3], pdf)`` of the glTF metallic-roughness BSDF with ``KHR_materials_specular``'s weight
    ``specular`` (``metallic_roughness_unchecked`` and ``metallic_roughness_pdf_unchecked``), no cosine in ``f``."""
    return eval_pdf_unit_wp(unit_wp(n_in), unit_wp(wi_in), unit_wp(wo_in), -1.0, base, roughness, metallic, ior,
                            specular, 0.0, 0)


@wp.func
def _half_vector_terms(n: wp.vec3, wi: wp.vec3, wo: wp.vec3):
    """``(sin2_h, v.h)`` of unit ``n, wi, wo`` as the PyTorch twin's ``_cosines`` (and the direct-light kernels)
    compute them, without a normalised half vector: with ``hv = wi + wo``, ``sin2_h = 1 - (n.h)^2 =
    |n x hv|^2 / |hv|^2`` (no cancellation near a sharp highlight, where float32 ``1 - (n.h)^2`` loses its
    digits) and ``v.h = |hv| / 2`` (``wo . hv / 1e-6`` where ``|hv|^2`` is clamped to ``1e-12``), clamped to
    ``[0, 1]``."""
    hv = wi + wo
    hh_raw = wp.dot(hv, hv)
    hh = wp.max(hh_raw, DOT_EPS * DOT_EPS)
    c = wp.cross(n, hv)
    sin2_h = wp.dot(c, c) / hh
    vh = 0.5 * wp.sqrt(hh)
    if not (hh_raw >= DOT_EPS * DOT_EPS):
        vh = wp.dot(wo, hv) / DOT_EPS
    return sin2_h, wp.clamp(vh, 0.0, 1.0)


@wp.func
def beckmann_lambda_wp(cos: float, alpha: float):
    """Smith's ``Lambda`` of a Beckmann surface seen at ``cos > 0`` (Walter et al. 2007's rational fit; the twin
    of ``lumigrad.shading.brdf.beckmann_lambda``)."""
    sin = wp.sqrt(wp.max(1.0 - cos * cos, 1.0e-12))
    a = wp.min(cos / (alpha * sin), BECKMANN_MAX_A)
    lam = float(0.0)
    if a < BECKMANN_MAX_A:
        lam = (1.0 - 1.259 * a + 0.396 * a * a) / (3.535 * a + 2.181 * a * a)
    return lam


@wp.func
def beckmann_d_wp(sin2_h: float, a2: float):
    """Beckmann's ``D = exp(-tan^2 / alpha^2) / (pi alpha^2 cos^4)`` from ``sin2_h = 1 - (n.h)^2 >= 0`` and ``a2 =
    alpha^2`` (the twin of ``lumigrad.shading.brdf.beckmann_d``)."""
    c2 = wp.max(1.0 - sin2_h, BECKMANN_COS2_FLOOR)
    return wp.exp(-sin2_h / (c2 * a2)) / (wp.pi * a2 * c2 * c2)


@wp.func
def beckmann_g1_wp(cos: float, alpha: float):
    """Smith's masking ``1 / (1 + Lambda)`` of a Beckmann surface at ``cos > 0`` (``brdf.beckmann_g1``)."""
    return 1.0 / (1.0 + beckmann_lambda_wp(cos, alpha))


@wp.func
def beckmann_normal_wp(alpha: float, u0: float, u1: float):
    """A Beckmann normal with density ``D(h) h_z`` from uniform ``u0, u1`` (the twin of
    ``lumigrad.shading.warps.beckmann_normal``)."""
    tan2 = -(alpha * alpha) * wp.log(wp.max(1.0 - u0, FLOOR))
    cos = 1.0 / wp.sqrt(1.0 + tan2)
    sin = wp.sqrt(wp.max(tan2 * cos * cos, FLOOR))
    phi = 2.0 * wp.pi * u1
    return wp.vec3(sin * wp.cos(phi), sin * wp.sin(phi), cos)


@wp.func
def eval_pdf_unit_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, p_spec_known: float, base: wp.vec3, roughness: float,
                   metallic: float, ior: float, specular: float, transmission: float, beckmann: int):
    """:func:`bsdf_eval_pdf_wp` of unit ``n``, ``wi`` and ``wo`` (a shading point's normal and view, shared by its
    light samples and its BSDF sample, and a unit direction: none normalised again; a light sample's ``wi`` is
    normalised by its caller) and, when ``p_spec_known >= 0``, the specular lobe's probability at
    ``clamp(n . wo, 1e-6, 1)`` already known: less work. Where :func:`_lambertian`, Lambert's
    ``base / pi`` and ``n.wi / pi`` without the GGX lobe's arithmetic (the twin's bits: its zero terms add 0).
    GGX's ``D`` from ``q = alpha^2 + sin2_h (1 - alpha^2)`` (:func:`_half_vector_terms`), as the twin;
    ``beckmann`` 1: Beckmann's ``D``, Smith's height-correlated ``V = 1 / (4 n.l n.v (1 + Lambda(l) +
    Lambda(v)))`` and the lobe's density ``D (n.h) / (4 v.h)`` of :func:`beckmann_normal_wp`, as the twin's."""
    nl_raw = wp.dot(n, wi)
    nv_raw = wp.dot(n, wo)
    f = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    if nl_raw > 0.0 and nv_raw > 0.0:
        nl = wp.clamp(nl_raw, DOT_EPS, 1.0)
        if _lambertian(base, metallic, specular, transmission):
            f = base / wp.pi
            pdf = nl / wp.pi
        else:
            nv = wp.clamp(nv_raw, DOT_EPS, 1.0)
            sin2_h, vh = _half_vector_terms(n, wi, wo)
            f0_d = f0_dielectric_wp(ior)
            alpha = wp.max(roughness * roughness, ALPHA_MIN)
            a2 = alpha * alpha
            dist = float(0.0)
            vis = float(0.0)
            pdf_spec = float(0.0)
            if beckmann != 0:
                c2 = wp.max(1.0 - sin2_h, BECKMANN_COS2_FLOOR)
                dist = wp.exp(-sin2_h / (c2 * a2)) / (wp.pi * a2 * c2 * c2)
                vis = 0.25 / (nl * nv * (1.0 + beckmann_lambda_wp(nl, alpha) + beckmann_lambda_wp(nv, alpha)))
                pdf_spec = dist * wp.sqrt(c2) / (4.0 * wp.max(vh, DOT_EPS))
            else:
                q = a2 + sin2_h * (1.0 - a2)
                dist = a2 / (wp.pi * q * q)
                vis = 0.5 / (nl * wp.sqrt(nv * nv * (1.0 - a2) + a2) + nv * wp.sqrt(nl * nl * (1.0 - a2) + a2))
                pdf_spec = dist / (2.0 * (nv + wp.sqrt(a2 + (1.0 - a2) * nv * nv)))
            dv = dist * vis
            m5 = _schlick_weight(vh)
            fd = specular * _schlick(f0_d, m5)
            w_d = (1.0 - metallic) * (1.0 - transmission)
            for k in range(3):
                diffuse = w_d * (1.0 - fd) * (base[k] / wp.pi)
                coat = w_d * fd * dv + metallic * (dv * _schlick(base[k], m5))
                f[k] = diffuse + coat
            pdf_diff = nl / wp.pi
            p_spec = p_spec_known
            if p_spec < 0.0:
                p_spec = specular_probability_wp(nv, base, metallic, f0_d, specular, transmission)
            pdf = p_spec * pdf_spec + (1.0 - p_spec) * pdf_diff
    return f, pdf


@wp.func
def local_frame_wp(n: wp.vec3):
    """Unit tangents ``(t, b)`` making ``(t, b, n)`` a right-handed frame of unit ``n`` (Duff et al. 2017; the twin
    of ``lumigrad.shading.warps.local_frame``)."""
    s = float(1.0)  # copysign(1, n_z)
    if n[2] < 0.0:
        s = -1.0
    a = -1.0 / (s + n[2])
    c = n[0] * n[1] * a
    t = wp.vec3(1.0 + s * n[0] * n[0] * a, s * c, -s * n[0])
    b = wp.vec3(c, s + n[1] * n[1] * a, -n[1])
    return t, b


@wp.func
def ggx_visible_normal_wp(wo: wp.vec3, alpha: float, u0: float, u1: float):
    """A GGX normal of width ``alpha`` visible from the local unit ``wo`` (Heitz 2018; the twin of
    ``lumigrad.shading.warps.ggx_visible_normal``) from uniform ``u0, u1``."""
    return ggx_visible_normal_xy_wp(wo, alpha, alpha, u0, u1)


@wp.func
def ggx_visible_normal_xy_wp(wo: wp.vec3, alpha_x: float, alpha_y: float, u0: float, u1: float):
    """:func:`ggx_visible_normal_wp` of the anisotropic lobe of widths ``alpha_x`` along the local x axis and
    ``alpha_y`` along y (the twin's ``ggx_visible_normal`` with both widths)."""
    vh = normalize_floor_wp(wp.vec3(alpha_x * wo[0], alpha_y * wo[1], wo[2]))
    lensq = vh[0] * vh[0] + vh[1] * vh[1]
    t1 = wp.vec3(1.0, 0.0, 0.0)
    if lensq > 0.0:
        inv = 1.0 / wp.sqrt(lensq)
        t1 = wp.vec3(-vh[1] * inv, vh[0] * inv, 0.0)
    t2 = wp.cross(vh, t1)
    r = wp.sqrt(u0)
    phi = 2.0 * wp.pi * u1
    p1 = r * wp.cos(phi)
    p2 = r * wp.sin(phi)
    s = 0.5 * (1.0 + vh[2])
    p2 = (1.0 - s) * wp.sqrt(wp.max(1.0 - p1 * p1, FLOOR)) + s * p2
    pz = wp.sqrt(wp.max(1.0 - p1 * p1 - p2 * p2, FLOOR))
    nh = p1 * t1 + p2 * t2 + pz * vh
    return normalize_floor_wp(wp.vec3(alpha_x * nh[0], alpha_y * nh[1], wp.max(nh[2], 0.0)))


@wp.func
def bsdf_sample_wp(n_in: wp.vec3, wo_in: wp.vec3, base: wp.vec3, roughness: float, metallic: float, ior: float,
                   specular: float, beckmann: int, u_lobe: float, u0: float, u1: float):
    """``(wi, weight [3], pdf)`` as ``metallic_roughness_sample_unchecked`` with the specular weight
    ``specular`` (``KHR_materials_specular``), GGX or ``beckmann``."""
    n = unit_wp(n_in)
    wo = unit_wp(wo_in)
    p_spec = specular_probability_wp(wp.dot(n, wo), base, metallic, f0_dielectric_wp(ior), specular, 0.0)
    return sample_unit_wp(n, wo, p_spec, base, roughness, metallic, ior, specular, 0.0, beckmann, u_lobe, u0, u1)


@wp.func
def two_lobe_direction_wp(n: wp.vec3, wo: wp.vec3, p_spec: float, roughness: float, beckmann: int, u_lobe: float,
                          u0: float, u1: float):
    """The world direction (not normalised) of a two-lobe sample at unit ``n``, ``wo``: where ``u_lobe < p_spec``
    ``wo`` mirrored about a microfacet normal (GGX's visible from ``wo``, or with ``beckmann`` Beckmann's by ``D
    (n.h)``, ``alpha = max(roughness^2, 1e-3)``), else a cosine-distributed direction (the glTF model's and the
    plastic's samplers)."""
    t, b = local_frame_wp(n)
    alpha = wp.max(roughness * roughness, ALPHA_MIN)
    return two_lobe_direction_in_wp(n, t, b, wo, p_spec, alpha, alpha, beckmann, 0, u_lobe, u0, u1)


@wp.func
def anisotropic_normal_wp(wo: wp.vec3, alpha_x: float, alpha_y: float, beckmann: int, u0: float, u1: float):
    """A local normal of the lobe of widths ``alpha_x`` along x and ``alpha_y`` along y from uniform ``u0, u1``:
    GGX's visible from the local unit ``wo``, or Beckmann's by ``D (n.h)`` (a unit-width normal stretched by both
    widths); the twin of ``lumigrad.shading.anisotropy.anisotropic_normal``."""
    h = wp.vec3()
    if beckmann != 0:
        unit = beckmann_normal_wp(1.0, u0, u1)
        v = wp.vec3(alpha_x * unit[0], alpha_y * unit[1], unit[2])
        h = v / wp.max(wp.length(v), FLOOR)
    else:
        h = ggx_visible_normal_xy_wp(wo, alpha_x, alpha_y, u0, u1)
    return h


@wp.func
def two_lobe_direction_in_wp(n: wp.vec3, t: wp.vec3, b: wp.vec3, wo: wp.vec3, p_spec: float, alpha_x: float,
                             alpha_y: float, beckmann: int, stretched: int, u_lobe: float, u0: float, u1: float):
    """:func:`two_lobe_direction_wp` in the frame ``(t, b, n)``, the microfacet lobe of widths ``alpha_x`` along
    ``t`` and ``alpha_y`` along ``b``; ``stretched`` 1: Beckmann's normal is a unit-width one stretched by both
    widths (the anisotropic lobes' twin, ``lumigrad.shading.anisotropy.anisotropic_normal``)."""
    wo_local = wp.vec3(wp.dot(wo, t), wp.dot(wo, b), wp.dot(wo, n))
    wi_local = wp.vec3()
    if u_lobe < p_spec:
        h = wp.vec3()
        if stretched != 0:
            h = anisotropic_normal_wp(wo_local, alpha_x, alpha_y, beckmann, u0, u1)
        elif beckmann != 0:
            h = beckmann_normal_wp(alpha_x, u0, u1)
        else:
            h = ggx_visible_normal_xy_wp(wo_local, alpha_x, alpha_y, u0, u1)
        wi_local = 2.0 * wp.dot(wo_local, h) * h - wo_local
    else:
        r = wp.sqrt(u0)
        phi = 2.0 * wp.pi * u1
        wi_local = wp.vec3(r * wp.cos(phi), r * wp.sin(phi), wp.sqrt(wp.max(1.0 - u0, FLOOR)))
    return wi_local[0] * t + wi_local[1] * b + wi_local[2] * n


@wp.func
def sample_unit_wp(n: wp.vec3, wo: wp.vec3, p_spec: float, base: wp.vec3, roughness: float, metallic: float,
                 ior: float, specular: float, transmission: float, beckmann: int, u_lobe: float, u0: float,
                 u1: float):
    """:func:`bsdf_sample_wp` of ``n`` and ``wo`` already through ``_unit`` and the specular lobe's probability
    ``p_spec`` at ``n . wo`` already known; ``beckmann`` 1: the specular lobe's normal drawn by
    :func:`beckmann_normal_wp` (``D (n.h)``), as the twin."""
    wi = normalize_floor_wp(two_lobe_direction_wp(n, wo, p_spec, roughness, beckmann, u_lobe, u0, u1))
    p_known = float(-1.0)  # (below 1e-6 the evaluation's clamped cosine differs: it computes its own)
    if wp.dot(n, wo) >= DOT_EPS:
        p_known = p_spec
    f, pdf = eval_pdf_unit_wp(n, wi, wo, p_known, base, roughness, metallic, ior, specular, transmission, beckmann)
    cos = wp.max(wp.dot(n, wi), 0.0)
    weight = wp.vec3(0.0, 0.0, 0.0)
    if pdf > 0.0:
        weight = f * (cos / pdf)
    return wi, weight, pdf


@wp.func
def sample_weight_wp(f: wp.vec3, pdf: float, n: wp.vec3, wi: wp.vec3):
    """A BSDF sample's weight ``f max(n.wi, 0) / pdf``, 0 where ``pdf`` is (the twins' ``sample_at``)."""
    weight = wp.vec3(0.0, 0.0, 0.0)
    if pdf > 0.0:
        weight = f * (wp.max(wp.dot(n, wi), 0.0) / pdf)
    return weight


@wp.func
def alpha_slope_wp(roughness: float):
    """``(alpha, d alpha / d roughness)`` of ``alpha = max(roughness^2, ALPHA_MIN)``: no slope at or below the floor,
    as the twins' ``clamp_min`` (the parameter derivatives' shared first step)."""
    alpha = roughness * roughness
    d_alpha = 2.0 * roughness
    if not (alpha > ALPHA_MIN):
        alpha = ALPHA_MIN
        d_alpha = 0.0
    return alpha, d_alpha


@wp.func
def reflection_terms_wp(n: wp.vec3, wi: wp.vec3, wo: wp.vec3, cos_o_raw: float, cos_i_raw: float):
    """``(n.wo, n.wi, h, 1 - (n.h)^2)`` of a reflection of unit ``wi``, ``wo`` above the unit normal ``n`` (the
    cosines ``cos_o_raw``, ``cos_i_raw`` given, clamped to ``[1e-6, 1]``), ``h`` the unit half vector, ``1 -
    (n.h)^2`` as ``|n x h|^2`` (no cancellation in a sharp lobe): the plastic's and the principled's twins take
    them so (``PlasticBSDF._terms``, ``PrincipledBSDF._terms``)."""
    hv = wi + wo
    h = hv / wp.max(wp.length(hv), DOT_EPS)
    nxh = wp.cross(n, h)
    return wp.clamp(cos_o_raw, DOT_EPS, 1.0), wp.clamp(cos_i_raw, DOT_EPS, 1.0), h, wp.clamp(wp.dot(nxh, nxh), 0.0,
                                                                                             1.0)


@wp.func
def smith_g1_wp(cos: float, alpha: float, beckmann: int):
    """Smith's separable masking at ``cos > 0``, GGX's or Beckmann's (``lumigrad.shading.brdf.smith_g1``)."""
    out = float(0.0)
    if beckmann != 0:
        out = beckmann_g1_wp(cos, alpha)
    else:
        a2 = alpha * alpha
        out = 2.0 * cos / wp.max(cos + wp.sqrt(a2 + (1.0 - a2) * cos * cos), 1.0e-12)
    return out


@wp.func
def beckmann_lambda_slope_wp(cos: float, alpha: float):
    """``d Lambda / d alpha`` of :func:`beckmann_lambda_wp` (0 beyond its cut-off ``a = 1.6``, as the twin's)."""
    sin = wp.sqrt(wp.max(1.0 - cos * cos, 1.0e-12))
    a = cos / (alpha * sin)
    out = float(0.0)
    if a < BECKMANN_MAX_A:
        num = 1.0 - 1.259 * a + 0.396 * a * a
        den = 3.535 * a + 2.181 * a * a
        d_lam_d_a = ((-1.259 + 0.792 * a) * den - num * (3.535 + 4.362 * a)) / (den * den)
        out = d_lam_d_a * (-a / alpha)
    return out


@wp.func
def smith_g1_alpha_slope_wp(cos: float, alpha: float, beckmann: int):
    """``d G1 / d alpha`` of :func:`smith_g1_wp`."""
    out = float(0.0)
    if beckmann != 0:
        lam = beckmann_lambda_wp(cos, alpha)
        out = -beckmann_lambda_slope_wp(cos, alpha) / ((1.0 + lam) * (1.0 + lam))
    else:
        a2 = alpha * alpha
        root = wp.sqrt(a2 + (1.0 - a2) * cos * cos)
        out = -2.0 * cos * ((1.0 - cos * cos) * alpha / root) / ((cos + root) * (cos + root))
    return out


@wp.func
def separable_lobe_wp(co: float, ci: float, sin2_h: float, cos_h: float, wo_h: float, roughness: float,
                      beckmann: int):
    """``(D, G1(wo) G1(wi), pdf)`` of a reflection lobe with Smith's separable shadowing (Mitsuba's plastic's and
    conductor's) at the clamped cosines ``co``, ``ci``, ``sin2_h = 1 - (n.h)^2``, ``cos_h = n.h`` and ``wo_h =
    wo.h``: GGX's ``D`` and its visible normals' density reflected, ``D G1(wo) / (4 co)``, or with ``beckmann``
    Beckmann's ``D`` and its ``D (n.h)`` density reflected, ``D (n.h) / (4 wo.h)``; ``alpha = max(roughness^2,
    1e-3)``."""
    alpha = wp.max(roughness * roughness, ALPHA_MIN)
    a2 = alpha * alpha
    dist = float(0.0)
    pdf = float(0.0)
    if beckmann != 0:
        dist = beckmann_d_wp(sin2_h, a2)
        pdf = dist * cos_h / (4.0 * wp.max(wo_h, DOT_EPS))
    else:
        q = a2 + sin2_h * (1.0 - a2)
        dist = a2 / (wp.pi * q * q)
        pdf = dist * smith_g1_wp(co, alpha, 0) / (4.0 * co)  # visible GGX normals, reflected
    return dist, smith_g1_wp(co, alpha, beckmann) * smith_g1_wp(ci, alpha, beckmann), pdf


@wp.func
def separable_lobe_slope_wp(co: float, ci: float, sin2_h: float, roughness: float, beckmann: int):
    """``(D G1(wo) G1(wi), d (D G1(wo) G1(wi)) / d roughness)`` of :func:`separable_lobe_wp`'s lobe (no slope
    where ``alpha`` is at its floor)."""
    alpha, d_alpha = alpha_slope_wp(roughness)
    a2 = alpha * alpha
    dist = float(0.0)
    d_dist = float(0.0)  # d D / d alpha
    if beckmann != 0:
        dist = beckmann_d_wp(sin2_h, a2)
        c2 = wp.max(1.0 - sin2_h, BECKMANN_COS2_FLOOR)
        d_dist = dist * (sin2_h / (c2 * a2 * a2) - 1.0 / a2) * 2.0 * alpha
    else:
        q = a2 + sin2_h * (1.0 - a2)
        dist = a2 / (wp.pi * q * q)
        d_dist = (q - 2.0 * a2 * (1.0 - sin2_h)) / (wp.pi * q * q * q) * 2.0 * alpha
    g1_o = smith_g1_wp(co, alpha, beckmann)
    g1_i = smith_g1_wp(ci, alpha, beckmann)
    d_g = smith_g1_alpha_slope_wp(co, alpha, beckmann) * g1_i + g1_o * smith_g1_alpha_slope_wp(ci, alpha, beckmann)
    return dist * g1_o * g1_i, (d_dist * g1_o * g1_i + dist * d_g) * d_alpha


@wp.func
def bsdf_param_grads_wp(n: wp.vec3, wi_in: wp.vec3, wo: wp.vec3, base: wp.vec3, roughness: float, metallic: float,
                        ior: float, specular: float, beckmann: int, coef: wp.vec3):
    """``sum_c coef_c d f_c / d theta`` of :func:`eval_pdf_unit_wp`'s value ``f`` (unit ``n``, ``wo``):
    ``(d base [3], d metallic, d roughness, d ior, d specular)``; zero where ``f`` is (below either surface).
    ``beckmann`` 1: of Beckmann's ``D`` and height-correlated ``V`` (the value's with ``beckmann``).

    The general lobes' derivatives also where the value takes Lambert's shortcut (metallic and specular weight
    0): the shortcut is the same value, not a different function. ``alpha = max(roughness^2, 1e-3)`` has no
    roughness derivative below its floor, as the twin's ``clamp_min``."""
    wi = unit_wp(wi_in)
    nl_raw = wp.dot(n, wi)
    nv_raw = wp.dot(n, wo)
    g_base = wp.vec3(0.0, 0.0, 0.0)
    g_metallic = float(0.0)
    g_roughness = float(0.0)
    g_ior = float(0.0)
    g_specular = float(0.0)
    if nl_raw > 0.0 and nv_raw > 0.0:
        nl = wp.clamp(nl_raw, DOT_EPS, 1.0)
        nv = wp.clamp(nv_raw, DOT_EPS, 1.0)
        sin2_h, vh = _half_vector_terms(n, wi, wo)
        r = (ior - 1.0) / (ior + 1.0)
        f0_d = r * r
        alpha, d_alpha = alpha_slope_wp(roughness)
        a2 = alpha * alpha
        dv = float(0.0)
        d_dv = float(0.0)
        if beckmann != 0:
            c2 = wp.max(1.0 - sin2_h, BECKMANN_COS2_FLOOR)
            dist = wp.exp(-sin2_h / (c2 * a2)) / (wp.pi * a2 * c2 * c2)
            lam_sum = 1.0 + beckmann_lambda_wp(nl, alpha) + beckmann_lambda_wp(nv, alpha)
            vis = 0.25 / (nl * nv * lam_sum)
            dv = dist * vis
            d_dist = dist * (sin2_h / (c2 * a2 * a2) - 1.0 / a2)  # d D / d a2
            d_vis = -vis * (beckmann_lambda_slope_wp(nl, alpha) + beckmann_lambda_slope_wp(nv, alpha)) / lam_sum
            d_dv = (d_dist * vis * 2.0 * alpha + dist * d_vis) * d_alpha  # per unit of roughness
        else:
            q = a2 + sin2_h * (1.0 - a2)
            dist = a2 / (wp.pi * q * q)
            sa = wp.sqrt(nv * nv * (1.0 - a2) + a2)
            sb = wp.sqrt(nl * nl * (1.0 - a2) + a2)
            den = nl * sa + nv * sb
            vis = 0.5 / den
            dv = dist * vis
            # d dv / d a2 = vis d dist / d a2 + dist d vis / d a2
            d_dist = (q - 2.0 * a2 * (1.0 - sin2_h)) / (wp.pi * q * q * q)
            d_den = nl * (1.0 - nv * nv) / (2.0 * sa) + nv * (1.0 - nl * nl) / (2.0 * sb)
            d_vis = -0.5 * d_den / (den * den)
            d_dv = (d_dist * vis + dist * d_vis) * (2.0 * alpha * d_alpha)  # per unit of roughness
        m5 = _schlick_weight(vh)
        f0s = _schlick(f0_d, m5)
        fd = specular * f0s
        w_d = 1.0 - metallic
        d_f0 = 2.0 * r * (2.0 / ((ior + 1.0) * (ior + 1.0)))  # d f0_d / d ior
        for k in range(3):
            diffuse_k = base[k] / wp.pi
            metal_k = _schlick(base[k], m5)
            g_base[k] = coef[k] * (w_d * (1.0 - fd) / wp.pi + metallic * dv * (1.0 - m5))
            g_metallic += coef[k] * (-(1.0 - fd) * diffuse_k - fd * dv + dv * metal_k)
            g_roughness += coef[k] * (w_d * fd + metallic * metal_k) * d_dv
            lobe_swap = w_d * (dv - diffuse_k)  # d f / d fd
            g_specular += coef[k] * lobe_swap * f0s
            g_ior += coef[k] * lobe_swap * specular * (1.0 - m5) * d_f0
    return g_base, g_metallic, g_roughness, g_ior, g_specular
