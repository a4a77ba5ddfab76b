"""The fused path tracer: one Warp kernel thread per camera ray, every bounce in registers.

The float32 twin of the primal pass of :func:`lumigrad.raytrace.transport.sample_paths` (its PyTorch code is
the reference): the same operations in the same order, the same random numbers
(:mod:`lumigrad.kernels.counter_rng`, dimension ``0`` the lobe, ``1, 2`` the direction, ``3`` Russian roulette,
``4 + 2 j, 5 + 2 j`` light ``j``), so a path's radiance matches the PyTorch transport's to float32 rounding
unless a branch (a lobe choice, a shadow ray grazing an edge, roulette) falls the other way at a tie.

What it supports (:mod:`lumigrad.integrators.fused_paths` decides, and falls back to PyTorch otherwise): the
glTF metallic-roughness materials (GGX, or Beckmann's microfacets: ``Material.microfacet``) and
Mitsuba's plastic (``Material.plastic``: :mod:`.plastic_kernels`, a table per part in ``part_plastic``) and
principled (``Material.principled``: :mod:`.principled_kernels`) and conductor (``Material.conductor_eta``:
:mod:`.conductor_kernels`, each part's ``eta`` and ``k`` in ``part_conductor``), with
``KHR_materials_transmission`` (glass: :mod:`.dielectric_kernels`, in no medium; a thin sheet,
``Material.thin_dielectric``, too), Dirac specular lobes that delta lights never meet (``Material.delta_specular``:
part flag 128, a plastic's diffuse base alone, :func:`.plastic_kernels.plastic_diffuse_wp`) and
``KHR_materials_specular``'s specular weight (weight 0 and no metal is
Lambert's, without the GGX lobe's arithmetic) with constant factors and base colour, metallic-roughness, emissive
and normal textures (bilinear as ``lumigrad.texture`` at level 0 of texels sRGB-decoded where glTF says; normal
maps in the frame of the interpolated per-corner tangents), emissive surfaces,
point, spot, directional and area lights (sampled by solid angle or by area, MIS-weighted emission) and an
equirectangular environment map (luminance sampling, seen by escaping rays, MIS-weighted). Each thread handles ray
``offset + wp.tid()`` (:func:`._runtime.launch_split`).
"""

from __future__ import annotations

import warp as wp

from .bsdf_kernels import (DOT_EPS, FLOOR, eval_pdf_unit_wp, f0_dielectric_wp, normalize_floor_wp, sample_unit_wp,
                           specular_probability_wp, bsdf_eval_pdf_wp, bsdf_param_grads_wp, bsdf_sample_wp, unit_wp)
from .bvh_traverse import FlatBVH
from .counter_rng import depth_key_wp, ray_key_wp, uniform_dim_wp
from .dielectric_kernels import transmission_eval_pdf_wp, transmission_sample_wp
from .cutouts import Cutouts, closest_visible_hit_wp, visible_any_hit_wp
from .ray_queries import any_hit_any_bvh, closest_hit_any_bvh
from .ray_offsets import offset_origin_wp
from .path_adjoint_kernels import (GRAD_BASE, GRAD_EMISSION, GRAD_IOR, GRAD_METALLIC, GRAD_ROUGHNESS, GRAD_SPECULAR,
                                   HELD_FIELDS, PART_GRADS, add3_wp, add_bsdf_grads_wp, add_emission_grads_wp,
                                   hold_vertex_wp, release_vertices_wp)
from .path_textures import texture_wp
from .plastic_kernels import (plastic_diffuse_wp, plastic_eval_pdf_wp, plastic_sample_wp,
                              plastic_specular_probability_wp)
from .conductor_kernels import conductor_eval_pdf_wp, conductor_sample_wp
from .principled_kernels import principled_eval_pdf_wp, principled_sample_wp, principled_specular_probability_wp

wp.set_module_options({"enable_backward": False})

LIGHT_POINT = wp.constant(0)
LIGHT_SPOT = wp.constant(1)
LIGHT_DIRECTIONAL = wp.constant(2)
LIGHT_AREA = wp.constant(3)
LIGHT_ENVIRONMENT = wp.constant(4)
LIGHT_SPOT_LINEAR = wp.constant(5)  # a spot light with Mitsuba's falloff, a ramp in the angle

#: equals lumigrad.raytrace.transport.SHADING_NORMAL_MIN_COS (tests/integrators/test_fused_paths.py checks it)
SHADING_NORMAL_MIN_COS = wp.constant(1.0e-2)
#: equal lumigrad.shading.lights.MIN_LIGHT_DISTANCE and the emitters' smallest |cos| of area densities
MIN_LIGHT_DISTANCE = wp.constant(1.0e-4)
_MIN_COS = wp.constant(1.0e-12)
#: equals lumigrad.shading.lights._ACOS_MARGIN: the spot cone's cosine is kept inside [-1 + it, 1 - it]
ACOS_MARGIN = wp.constant(1.0e-6)
#: Solid angles and unit corner directions of the first ``CACHED`` triangles of an area light and the totals of the
#: first ``CACHED`` lights are kept in registers (the rest are recomputed: the same bits either way).
CACHED = 8
vec_cached = wp.types.vector(length=CACHED, dtype=wp.float32)
mat_cached = wp.types.matrix(shape=(CACHED, 3), dtype=wp.float32)


@wp.func
def _cw_mul(a: wp.vec3, b: wp.vec3):
    return wp.vec3(a[0] * b[0], a[1] * b[1], a[2] * b[2])


@wp.func
def power_heuristic_wp(a: float, b: float):
    a2 = a * a
    total = a2 + b * b
    out = float(0.0)
    if total > 0.0:
        out = a2 / total
    return out


@wp.func
def _search_right(cdf: wp.array(dtype=float), start: int, count: int, x: float):
    """``searchsorted(cdf[start:start + count], x, right=True)``: how many entries are <= x."""
    lo = int(0)
    hi = count
    while lo < hi:
        mid = (lo + hi) / 2
        if cdf[start + mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# ------------------------------------------------------------------------------------------------ area lights
@wp.func
def _emitting_solid_angle(x: wp.vec3, p0: wp.vec3, p1: wp.vec3, p2: wp.vec3, two_sided: int):
    return _solid_angle_of_units(unit_wp(p0 - x), unit_wp(p1 - x), unit_wp(p2 - x), two_sided)


@wp.func
def _solid_angle_of_units(a: wp.vec3, b: wp.vec3, c: wp.vec3, two_sided: int):
    """The solid angle of the triangle whose corners are seen from ``x`` along the unit ``a, b, c`` (0 when
    only its back faces ``x`` and it is not ``two_sided``)."""
    triple = wp.dot(a, wp.cross(b, c))
    omega = 2.0 * wp.atan2(wp.abs(triple), 1.0 + wp.dot(a, b) + wp.dot(b, c) + wp.dot(c, a))
    if two_sided == 0 and not (triple < 0.0):
        omega = 0.0
    return omega


@wp.func
def _spherical_triangle(a: wp.vec3, b: wp.vec3, c: wp.vec3, u0: float, u1: float):
    triple = wp.abs(wp.dot(a, wp.cross(b, c)))
    ab = wp.dot(a, b)
    bc = wp.dot(b, c)
    ca = wp.dot(c, a)
    alpha = wp.atan2(triple, bc - ab * ca)
    beta = wp.atan2(triple, ca - bc * ab)
    gamma = wp.atan2(triple, ab - ca * bc)
    area = alpha + beta + gamma - wp.pi
    sub_area = u0 * area
    s = wp.sin(sub_area - alpha)
    t = wp.cos(sub_area - alpha)
    cos_alpha = wp.cos(alpha)
    sin_alpha = wp.sin(alpha)
    p = t - cos_alpha
    q = s + sin_alpha * ab
    cos_b = ((q * t - p * s) * cos_alpha - q) / ((q * s + p * t) * sin_alpha)
    cos_b = wp.clamp(cos_b, -1.0, 1.0)
    c_new = cos_b * a + wp.sqrt(wp.max(1.0 - cos_b * cos_b, FLOOR)) * normalize_floor_wp(c - ca * a)
    z = 1.0 - u1 * (1.0 - wp.dot(c_new, b))
    z = wp.clamp(z, -1.0, 1.0)
    return z * b + wp.sqrt(wp.max(1.0 - z * z, FLOOR)) * normalize_floor_wp(c_new - wp.dot(c_new, b) * b)


@wp.func
def area_sample_triangle_wp(x: wp.vec3, start: int, count: int, two_sided: int, tv0: wp.array(dtype=wp.vec3),
                            tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3),
                            tle: wp.array(dtype=wp.vec3), u0: float, u1: float):
    """:func:`area_sample_wp`'s ``(wi, distance, weight, pdf, Omega)`` and the triangle ``k`` drawn (counted from
    ``start``; -1 when nothing is seen)."""
    total = float(0.0)
    omegas = vec_cached()
    units_a = mat_cached()  # the corners' unit directions of the first CACHED triangles (the sample reuses them)
    units_b = mat_cached()
    units_c = mat_cached()
    for f in range(count):
        a = unit_wp(tv0[start + f] - x)
        b = unit_wp(tv1[start + f] - x)
        c = unit_wp(tv2[start + f] - x)
        w = _solid_angle_of_units(a, b, c, two_sided)
        if f < CACHED:
            omegas[f] = w
            units_a[f] = a
            units_b[f] = b
            units_c[f] = c
        total += w
    wi = wp.vec3(0.0, 0.0, 1.0)
    weight = wp.vec3(0.0, 0.0, 0.0)
    pdf = float(0.0)
    distance = float(wp.inf)
    chosen = int(-1)
    if total > 0.0:
        # the triangle: the number of cdf entries <= u0 (searchsorted right), the last cdf entry being 1
        running = float(0.0)
        k = int(-1)  # the last entry is 1 > u0: always found
        lo = float(0.0)
        hi = float(0.0)
        prev = float(0.0)
        for f in range(count):
            if f < CACHED:
                running += omegas[f]
            else:
                running += _emitting_solid_angle(x, tv0[start + f], tv1[start + f], tv2[start + f], two_sided)
            cdf = running / total
            if f == count - 1:
                cdf = 1.0
            if k < 0 and not (cdf <= u0):
                k = f
                lo = prev
                hi = cdf
            prev = cdf
        if k < 0:
            k = count - 1
            lo = float(0.0)
            hi = float(1.0)
        width = hi - lo
        if not (width > 0.0):
            width = 1.0
        ur = wp.clamp((u0 - lo) / width, 0.0, 1.0 - 1.1920928955078125e-07)
        p0 = tv0[start + k] - x
        p1 = tv1[start + k] - x
        p2 = tv2[start + k] - x
        if k < CACHED:
            wi = _spherical_triangle(units_a[k], units_b[k], units_c[k], ur, u1)
        else:
            wi = _spherical_triangle(unit_wp(p0), unit_wp(p1), unit_wp(p2), ur, u1)
        nrm = wp.cross(tv1[start + k] - tv0[start + k], tv2[start + k] - tv0[start + k])
        denom = wp.dot(nrm, wi)
        if denom != 0.0:
            distance = wp.dot(nrm, p0) / denom
        weight = tle[start + k] * total
        pdf = 1.0 / total
        chosen = k
    return wi, distance, weight, pdf, total, chosen


@wp.func
def area_sample_wp(x: wp.vec3, start: int, count: int, two_sided: int, tv0: wp.array(dtype=wp.vec3),
                   tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3), tle: wp.array(dtype=wp.vec3),
                   u0: float, u1: float):
    """``(wi, distance, weight [3], pdf, Omega)`` of ``area_light_sample_direct`` (solid angle; pdf 0: nothing
    seen) and the light's total solid angle ``Omega`` at ``x``."""
    wi, distance, weight, pdf, total, k = area_sample_triangle_wp(x, start, count, two_sided, tv0, tv1, tv2, tle,
                                                                  u0, u1)
    return wi, distance, weight, pdf, total


@wp.func
def area_sample_by_area_triangle_wp(x: wp.vec3, start: int, count: int, two_sided: int, area: float,
                           tv0: wp.array(dtype=wp.vec3), tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3),
                           tle: wp.array(dtype=wp.vec3), tri_cdf: wp.array(dtype=float), u0: float, u1: float):
    """``(wi, distance, weight [3], pdf)`` of ``area_light_sample_direct(method="area")``: a triangle by area
    (``tri_cdf``: the light's cumulative area fractions, its last entry 1; ``area``: its total area), a point
    uniform on it, the density ``d^2 / (A |cos_y|)`` per solid angle; then the triangle ``k`` drawn (counted
    from ``start``) and ``g``, the weight per unit of its radiance (``weight = tle[start + k] g``)."""
    k = wp.min(_search_right(tri_cdf, start, count, u0), count - 1)
    lo = float(0.0)
    if k > 0:
        lo = tri_cdf[start + k - 1]
    width = tri_cdf[start + k] - lo
    if not (width > 0.0):
        width = 1.0
    ur = wp.clamp((u0 - lo) / width, 0.0, 1.0 - 1.1920928955078125e-07)
    su = wp.sqrt(ur)
    v0 = tv0[start + k]
    e1 = tv1[start + k] - v0
    e2 = tv2[start + k] - v0
    y = v0 + (u1 * su) * e1 + ((1.0 - u1) * su) * e2
    v = y - x
    d = wp.max(wp.length(v), MIN_LIGHT_DISTANCE)
    wi = v / d
    nrm = wp.cross(e1, e2)
    nrm = nrm / wp.max(wp.length(nrm), FLOOR)
    cos_y = -wp.dot(nrm, wi)
    emit_cos = wp.max(cos_y, 0.0)
    if two_sided != 0:
        emit_cos = wp.abs(cos_y)
    g = emit_cos * area / (d * d)
    weight = tle[start + k] * g
    pdf = d * d / (area * wp.max(wp.abs(cos_y), _MIN_COS))
    return wi, d, weight, pdf, k, g


@wp.func
def area_sample_by_area_wp(x: wp.vec3, start: int, count: int, two_sided: int, area: float,
                           tv0: wp.array(dtype=wp.vec3), tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3),
                           tle: wp.array(dtype=wp.vec3), tri_cdf: wp.array(dtype=float), u0: float, u1: float):
    """``(wi, distance, weight [3], pdf)`` of :func:`area_sample_by_area_triangle_wp`."""
    wi, d, weight, pdf, k, g = area_sample_by_area_triangle_wp(x, start, count, two_sided, area, tv0, tv1, tv2, tle,
                                                               tri_cdf, u0, u1)
    return wi, d, weight, pdf


@wp.func
def _by_area(x: wp.vec3, j: int, light_area: wp.array(dtype=float), light_centre: wp.array(dtype=wp.vec3),
             light_far2: wp.array(dtype=float)):
    """Light ``j``'s total area where next-event estimation samples it by area at ``x`` (``emitters``'
    ``"area"``, or ``"auto"`` beyond ``light_far2``, the squared distance from ``light_centre``), else 0."""
    out = float(0.0)
    v = x - light_centre[j]
    if wp.dot(v, v) > light_far2[j]:
        out = light_area[j]
    return out


@wp.func
def area_pdf_wp(x: wp.vec3, d_in: wp.vec3, start: int, count: int, two_sided: int, tv0: wp.array(dtype=wp.vec3),
                tv1: wp.array(dtype=wp.vec3), tv2: wp.array(dtype=wp.vec3), omega_known: float, area: float):
    """``area_light_pdf``: where the ray meets the light, ``d^2 / (A |cos_y|)`` when ``area > 0`` (the area
    strategy; ``area`` the light's total area), else (solid angle) ``1 / Omega`` where it meets an emitting
    side; 0 elsewhere (``omega_known >= 0``: ``Omega`` at ``x``, already summed by :func:`area_sample_wp`
    there)."""
    d = unit_wp(d_in)
    best = float(wp.inf)
    cos_y = float(0.0)
    for f in range(count):
        v0 = tv0[start + f]
        e1 = tv1[start + f] - v0
        e2 = tv2[start + f] - v0
        p = wp.cross(d, e2)
        det = wp.dot(e1, p)
        if det != 0.0:
            inv = 1.0 / det
            s = x - v0
            b1 = wp.dot(s, p) * inv
            q = wp.cross(s, e1)
            b2 = wp.dot(d, q) * inv
            t = wp.dot(e2, q) * inv
            if b1 >= 0.0 and b2 >= 0.0 and b1 + b2 <= 1.0 and t > 0.0 and t < best:
                best = t
                nrm = wp.cross(e1, e2)
                nrm = nrm / wp.length(nrm)
                cos_y = -wp.dot(nrm, d)
    pdf = float(0.0)
    counted = cos_y > 0.0
    if two_sided != 0:
        counted = wp.abs(cos_y) > 0.0
    if area > 0.0:
        if best < wp.inf:
            dist = wp.max(best, MIN_LIGHT_DISTANCE)
            pdf = dist * dist / (area * wp.max(wp.abs(cos_y), _MIN_COS))
    elif best < wp.inf and counted:
        omega = omega_known
        if omega < 0.0:
            omega = float(0.0)
            for f in range(count):
                omega += _emitting_solid_angle(x, tv0[start + f], tv1[start + f], tv2[start + f], two_sided)
        if omega > 0.0:
            pdf = 1.0 / omega
    return pdf


# ------------------------------------------------------------------------------------------------ environment
@wp.func
def _equirect(d: wp.vec3):
    """``direction_to_equirect``: ``(u, v)`` in [0, 1) of a direction."""
    nd = d / wp.max(wp.length(d), 1.0e-12)
    x = nd[0]
    y = nd[1]
    z = nd[2]
    ax = float(0.0)
    az = float(1.0)
    if x * x + z * z > 1.0e-12:
        ax = x
        az = -z
    u = wp.atan2(ax, az) / (2.0 * wp.pi)
    u = u - wp.floor(u)
    v = wp.acos(wp.clamp(y, -1.0 + 1.0e-7, 1.0 - 1.0e-7)) / wp.pi
    return u, v


@wp.func
def _env_padded_row(row: int, col: int, H: int, W: int):
    """The texel (``row * W + c``) at ``(row, col)`` of the map padded by one wrapped column on each side; -1
    outside."""
    out = int(-1)
    if row >= 0 and row < H and col >= 0 and col < W + 2:
        c = col - 1
        if col == 0:
            c = W - 1
        if col == W + 1:
            c = 0
        out = row * W + c
    return out


@wp.func
def _env_texel(row: int, col: int, H: int, W: int, texels: wp.array(dtype=wp.vec3)):
    """Texel of the map padded by one wrapped column on each side (``envmap_lookup``); 0 outside."""
    out = wp.vec3(0.0, 0.0, 0.0)
    k = _env_padded_row(row, col, H, W)
    if k >= 0:
        out = texels[k]
    return out


@wp.func
def _env_coords(d: wp.vec3, H: int, W: int):
    """:func:`env_lookup_wp`'s continuous texel coordinates ``(ix, iy)`` on the padded map and their floors."""
    u, v = _equirect(d)
    gx = (u * float(W) + 1.0) / float(W + 2) * 2.0 - 1.0
    gy = v * 2.0 - 1.0
    ix = wp.clamp(((gx + 1.0) * float(W + 2) - 1.0) / 2.0, 0.0, float(W + 1))
    iy = wp.clamp(((gy + 1.0) * float(H) - 1.0) / 2.0, 0.0, float(H - 1))
    return ix, iy, wp.floor(ix), wp.floor(iy)


@wp.func
def env_lookup_wp(d: wp.vec3, H: int, W: int, texels: wp.array(dtype=wp.vec3)):
    """``envmap_lookup``: bilinear (``grid_sample``, border padding, ``align_corners=False``) on the padded map."""
    ix, iy, x0, y0 = _env_coords(d, H, W)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    c0 = int(x0)
    r0 = int(y0)
    nw = (x1 - ix) * (y1 - iy)
    ne = (ix - x0) * (y1 - iy)
    sw = (x1 - ix) * (iy - y0)
    se = (ix - x0) * (iy - y0)
    return (_env_texel(r0, c0, H, W, texels) * nw + _env_texel(r0, c0 + 1, H, W, texels) * ne
            + _env_texel(r0 + 1, c0, H, W, texels) * sw + _env_texel(r0 + 1, c0 + 1, H, W, texels) * se)


@wp.func
def _env_scatter_tap(row: int, col: int, H: int, W: int, g: wp.vec3, g_env: wp.array2d(dtype=wp.float64)):
    """``g_env[texel] += g`` for the texel :func:`_env_texel` reads at ``(row, col)`` of the padded map."""
    k = _env_padded_row(row, col, H, W)
    if k >= 0:
        for c in range(3):
            wp.atomic_add(g_env, k, c, wp.float64(g[c]))


@wp.func
def env_scatter_wp(d: wp.vec3, H: int, W: int, g_out: wp.vec3, g_env: wp.array2d(dtype=wp.float64)):
    """The adjoint of :func:`env_lookup_wp`: ``g_env[row * W + col] += (d lookup / d texel) g_out`` over its four
    taps, with the lookup's own weights (the wrapped columns to the texels they copy; taps outside add nothing)."""
    ix, iy, x0, y0 = _env_coords(d, H, W)
    x1 = x0 + 1.0
    y1 = y0 + 1.0
    c0 = int(x0)
    r0 = int(y0)
    _env_scatter_tap(r0, c0, H, W, g_out * ((x1 - ix) * (y1 - iy)), g_env)
    _env_scatter_tap(r0, c0 + 1, H, W, g_out * ((ix - x0) * (y1 - iy)), g_env)
    _env_scatter_tap(r0 + 1, c0, H, W, g_out * ((x1 - ix) * (iy - y0)), g_env)
    _env_scatter_tap(r0 + 1, c0 + 1, H, W, g_out * ((ix - x0) * (iy - y0)), g_env)


@wp.func
def env_pdf_wp(d: wp.vec3, H: int, W: int, pmf: wp.array(dtype=float)):
    """``_env_pdf``: the texel's probability over the Jacobian ``2 pi^2 sin(theta)``."""
    u, v = _equirect(d)
    i = wp.clamp(int(v * float(H)), 0, H - 1)
    j = wp.clamp(int(u * float(W)), 0, W - 1)
    sin_theta = wp.sqrt(wp.max(1.0 - d[1] * d[1], 1.0e-24))
    return pmf[i * W + j] * float(H * W) / (19.739208802178716 * sin_theta)


@wp.func
def env_sample_wp(H: int, W: int, texels: wp.array(dtype=wp.vec3), pmf: wp.array(dtype=float),
                  row_cdf: wp.array(dtype=float), cond_cdf: wp.array(dtype=float), u0: float, u1: float):
    """``envmap_sample_direct``: ``(wi, weight [3], pdf)``."""
    one = 1.0 - 1.1920928955078125e-07
    i = wp.min(_search_right(row_cdf, 0, H, u0), H - 1)
    lo = float(0.0)
    if i > 0:
        lo = row_cdf[i - 1]
    fv = wp.clamp((u0 - lo) / wp.max(row_cdf[i] - lo, 0.0), 0.0, one)
    j = wp.min(_search_right(cond_cdf, i * W, W, u1), W - 1)
    lo = float(0.0)
    if j > 0:
        lo = cond_cdf[i * W + j - 1]
    fu = wp.clamp((u1 - lo) / wp.max(cond_cdf[i * W + j] - lo, 0.0), 0.0, one)
    theta = wp.pi * (float(i) + fv) / float(H)
    phi = 2.0 * wp.pi * (float(j) + fu) / float(W)
    st = wp.sin(theta)
    wi = wp.vec3(wp.sin(phi) * st, wp.cos(theta), -wp.cos(phi) * st)
    pdf = env_pdf_wp(wi, H, W, pmf)
    weight = wp.vec3(0.0, 0.0, 0.0)
    if pdf > 0.0:
        weight = env_lookup_wp(wi, H, W, texels) / pdf
    return wi, weight, pdf


@wp.func
def area_light_sample_triangle_wp(x: wp.vec3, j: int, light_start: wp.array(dtype=wp.int32),
                                  light_count: wp.array(dtype=wp.int32), light_two_sided: wp.array(dtype=wp.int32),
                                  light_area: wp.array(dtype=float), light_centre: wp.array(dtype=wp.vec3),
                                  light_far2: wp.array(dtype=float), tri_v0: wp.array(dtype=wp.vec3),
                                  tri_v1: wp.array(dtype=wp.vec3), tri_v2: wp.array(dtype=wp.vec3),
                                  tri_le: wp.array(dtype=wp.vec3), tri_cdf: wp.array(dtype=float), u0: float,
                                  u1: float):
    """Area light ``j``'s next-event sample at ``x``: ``(wi, dist, weight, pdf, omega)``, by area where
    :func:`_by_area` says (``omega`` -1), else by solid angle (``omega`` the light's solid angle at ``x``); then
    the triangle drawn (a row of the ``tri_*`` tables; -1: none) and the weight per unit of its radiance."""
    wi = wp.vec3(0.0, 0.0, 1.0)
    dist = float(wp.inf)
    lw = wp.vec3(0.0, 0.0, 0.0)
    lpdf = float(0.0)
    omega = float(-1.0)
    k = int(-1)
    g = float(0.0)
    start = light_start[j]
    if _by_area(x, j, light_area, light_centre, light_far2) > 0.0:
        wi, dist, lw, lpdf, k, g = area_sample_by_area_triangle_wp(x, start, light_count[j], light_two_sided[j],
                                                                   light_area[j], tri_v0, tri_v1, tri_v2, tri_le,
                                                                   tri_cdf, u0, u1)
    else:
        wi, dist, lw, lpdf, omega, k = area_sample_triangle_wp(x, start, light_count[j], light_two_sided[j], tri_v0,
                                                               tri_v1, tri_v2, tri_le, u0, u1)
        g = omega
    row = int(-1)
    if k >= 0:
        row = start + k
    return wi, dist, lw, lpdf, omega, row, g


@wp.func
def normal_map_shadowing_wp(n0: wp.vec3, n: wp.vec3, wi: wp.vec3):
    """Mitsuba's normal maps' shadowing of light from ``wi`` grazing the unmapped normal ``n0`` (``n`` the mapped
    one, both unit): the twin of ``lumigrad.shading.normal_shadowing.normal_map_shadowing``."""
    cos_p = wp.clamp(wp.dot(n0, n), -1.0, 1.0)
    cos2_p = wp.max(cos_p * cos_p, 1.0e-12)
    alpha2 = wp.min(0.125 * (1.0 - cos2_p) / cos2_p, 1.0)
    w = wi / wp.max(wp.length(wi), 1.0e-12)
    cos_w = wp.dot(n0, w)
    cos2_w = wp.max(cos_w * cos_w, 1.0e-12)
    tan2_w = wp.max(1.0 - cos2_w, 0.0) / cos2_w
    return 2.0 / (1.0 + wp.sqrt(1.0 + alpha2 * tan2_w))


@wp.func
def light_sample_value_wp(x: wp.vec3, n: wp.vec3, ng: wp.vec3,
                         n_u: wp.vec3, wo_u: wp.vec3, p_eval: float, base: wp.vec3, roughness: float,
                         metallic: float, ior: float, specular: float, transmission: float, thin: int, beckmann: int,
                         plastic: wp.array(dtype=float), plastic_row: int, principled: int,
                         conductor: wp.array(dtype=wp.vec3), conductor_row: int, shadowed: int,
                         n0: wp.vec3, wi: wp.vec3, dist: float, lw: wp.vec3, lpdf: float, is_delta: bool,
                         delta_specular: int, adjoint: int, tangent: wp.vec3, log_aspect: float):
    """:func:`light_sample_parts_wp` before its shadow ray: ``(term, f, |cos| w, t_max)``, zeros where the term
    is not counted or (with ``adjoint`` 0) is zero, and ``t_max`` the shadow ray's reach."""
    term = wp.vec3(0.0, 0.0, 0.0)
    f_out = wp.vec3(0.0, 0.0, 0.0)
    cos_w = float(0.0)
    cos = wp.dot(n, wi)
    # a delta light never meets a Dirac lobe (Material.delta_specular: a smooth conductor, plastic or glass, as
    # lumigrad.shading.delta_specular.dirac_points): a conductor or glass shows it nothing
    dirac = is_delta and delta_specular != 0 and roughness == 0.0 and (
        conductor_row >= 0 or plastic_row >= 0 or (transmission == 1.0 and metallic == 0.0))
    if lpdf > 0.0 and wp.dot(ng, wi) * cos > 0.0 and not (dirac and plastic_row < 0):
        # (a light's wi is not always unit: a point light or area sample within MIN_LIGHT_DISTANCE, a spherical
        # triangle's sample of a tiny triangle; the BSDF sees it normalised, as the twin's, the cosine not)
        f = wp.vec3(0.0, 0.0, 0.0)
        bpdf = float(0.0)
        if transmission != 0.0:  # KHR_materials_transmission: the light may be on either side
            f, bpdf = transmission_eval_pdf_wp(n_u, unit_wp(wi), wo_u, base, roughness, metallic, ior, specular,
                                               transmission, thin, beckmann, tangent, log_aspect)
        elif plastic_row >= 0 and dirac:  # (a smooth plastic: its diffuse base alone)
            f = plastic_diffuse_wp(plastic, plastic_row, n_u, unit_wp(wi), wo_u, base, roughness, ior)
        elif plastic_row >= 0:  # Mitsuba's plastic (its table is row plastic_row of plastic)
            f, bpdf = plastic_eval_pdf_wp(plastic, plastic_row, n_u, unit_wp(wi), wo_u, p_eval, base, roughness, ior,
                                          beckmann)
        elif conductor_row >= 0:  # Mitsuba's conductor (its eta and k: rows 2 conductor_row and the next of conductor)
            f, bpdf = conductor_eval_pdf_wp(conductor, conductor_row, n_u, unit_wp(wi), wo_u, base, roughness,
                                            beckmann, tangent, log_aspect)
        elif principled != 0:
            f, bpdf = principled_eval_pdf_wp(n_u, unit_wp(wi), wo_u, p_eval, base, roughness, metallic, ior,
                                             conductor, principled, tangent, log_aspect)
        else:
            f, bpdf = eval_pdf_unit_wp(n_u, unit_wp(wi), wo_u, p_eval, base, roughness, metallic, ior, specular, 0.0,
                                       beckmann)
        w = float(1.0)
        if not is_delta:
            w = power_heuristic_wp(lpdf, bpdf)
        if shadowed != 0:
            w = w * normal_map_shadowing_wp(n0, n_u, wi)
        t_max = float(wp.inf)
        if dist < wp.inf and dist > -wp.inf:
            t_max = dist * 0.9999
        contribution = _cw_mul(f * wp.abs(cos), lw) * w
        # a shadow ray only where it matters (a zero term adds zero whatever it says), or where its derivative does
        matters = contribution[0] != 0.0 or contribution[1] != 0.0 or contribution[2] != 0.0
        if adjoint != 0 and not matters and w > 0.0:
            matters = wp.length_sq(f) > 0.0 or wp.length_sq(lw) > 0.0
        if matters:
            term = contribution
            f_out = f
            cos_w = wp.abs(cos) * w
    return term, f_out, cos_w, t_max


@wp.func
def light_sample_parts_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts, x: wp.vec3, n: wp.vec3,
                         ng: wp.vec3,
                         n_u: wp.vec3, wo_u: wp.vec3, p_eval: float, base: wp.vec3, roughness: float,
                         metallic: float, ior: float, specular: float, transmission: float, thin: int, beckmann: int,
                         plastic: wp.array(dtype=float), plastic_row: int, principled: int,
                         conductor: wp.array(dtype=wp.vec3), conductor_row: int, shadowed: int,
                         n0: wp.vec3, wi: wp.vec3, dist: float, lw: wp.vec3, lpdf: float, is_delta: bool,
                         delta_specular: int, adjoint: int, tangent: wp.vec3, log_aspect: float):
    """:func:`light_sample_term_wp`'s term, then its factors: the BSDF value ``f`` and ``|cos| w`` (the term is
    ``(f |cos| w) * lw`` per channel), zeros where the term is not counted. ``adjoint`` not 0: the shadow ray is
    traced also where the term is zero but has a derivative (``f`` or ``lw`` zero, the other not: a black
    base colour, a light of value 0), so that its factors come back. ``thin`` 1: the transmitting fraction is a thin
    sheet (deltas only: no value toward a light). ``plastic_row`` >= 0: the surface is
    Mitsuba's plastic, its table row ``plastic_row`` of ``plastic`` (:mod:`.plastic_kernels`); ``principled`` 1 or
    more: Mitsuba's principled (:mod:`.principled_kernels`'s code: 2 and more with its other lobes in ``conductor``'s
    rows); ``conductor_row`` >= 0: Mitsuba's conductor, its ``eta``
    and ``k`` rows ``2 conductor_row`` and ``2 conductor_row + 1`` of ``conductor`` (:mod:`.conductor_kernels`);
    ``shadowed`` 1: a Mitsuba normal map bent ``n0`` to ``n_u``,
    and the value is shadowed (:func:`normal_map_shadowing_wp`; in ``|cos| w``, not in ``f``)."""
    term, f, cos_w, t_max = light_sample_value_wp(x, n, ng, n_u, wo_u, p_eval, base, roughness, metallic, ior,
                                                  specular, transmission, thin, beckmann, plastic, plastic_row,
                                                  principled, conductor, conductor_row, shadowed, n0, wi, dist, lw,
                                                  lpdf, is_delta, delta_specular, adjoint, tangent, log_aspect)
    if cos_w > 0.0 and t_max > 0.0:
        if visible_any_hit_wp(mesh, own, use_own, cut, offset_origin_wp(x, ng, wi), wi, t_max):
            term = wp.vec3(0.0, 0.0, 0.0)
            f = wp.vec3(0.0, 0.0, 0.0)
            cos_w = 0.0
    return term, f, cos_w


@wp.func
def light_sample_parts_opaque_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, x: wp.vec3, n: wp.vec3, ng: wp.vec3,
                                n_u: wp.vec3, wo_u: wp.vec3, p_eval: float, base: wp.vec3, roughness: float,
                                metallic: float, ior: float, specular: float, transmission: float, thin: int,
                                beckmann: int, plastic: wp.array(dtype=float), plastic_row: int, principled: int,
                                conductor: wp.array(dtype=wp.vec3), conductor_row: int, shadowed: int, n0: wp.vec3,
                                wi: wp.vec3, dist: float, lw: wp.vec3, lpdf: float, is_delta: bool,
                                delta_specular: int, adjoint: int, tangent: wp.vec3, log_aspect: float):
    """:func:`light_sample_parts_wp` of a scene without alpha (every surface blocks the shadow ray; one struct
    argument less to copy per call: the lean path kernels')."""
    term, f, cos_w, t_max = light_sample_value_wp(x, n, ng, n_u, wo_u, p_eval, base, roughness, metallic, ior,
                                                  specular, transmission, thin, beckmann, plastic, plastic_row,
                                                  principled, conductor, conductor_row, shadowed, n0, wi, dist, lw,
                                                  lpdf, is_delta, delta_specular, adjoint, tangent, log_aspect)
    if cos_w > 0.0 and t_max > 0.0:
        if any_hit_any_bvh(mesh, own, use_own, offset_origin_wp(x, ng, wi), wi, t_max):
            term = wp.vec3(0.0, 0.0, 0.0)
            f = wp.vec3(0.0, 0.0, 0.0)
            cos_w = 0.0
    return term, f, cos_w


@wp.func
def light_sample_term_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts, x: wp.vec3, n: wp.vec3,
                         ng: wp.vec3,
                         n_u: wp.vec3, wo_u: wp.vec3, p_eval: float, base: wp.vec3, roughness: float,
                         metallic: float, ior: float, specular: float, transmission: float, beckmann: int,
                         plastic: wp.array(dtype=float), plastic_row: int, principled: int,
                         conductor: wp.array(dtype=wp.vec3), conductor_row: int, wi: wp.vec3, dist: float,
                         lw: wp.vec3, lpdf: float, is_delta: bool):
    """One light sample's next-event term at a surface vertex (no throughput): the BSDF (of the unit normal
    ``n_u`` and view ``wo_u``, ``p_eval`` as :func:`eval_pdf_unit_wp`, ``specular`` the ``KHR_materials_specular``
    weight) times ``|cos|`` times ``lw``, MIS-weighted unless ``is_delta``, zero where ``lpdf`` is not positive,
    ``wi`` is below the shading or geometric surface, or the shadow ray toward ``dist`` is blocked. The glTF model,
    GGX or ``beckmann``, or Mitsuba's plastic where ``plastic_row >= 0`` (its table's row in ``plastic``), or its
    principled where ``principled`` is 1 (the opaque base), or its conductor where ``conductor_row >= 0`` (its
    ``eta``, ``k`` rows in ``conductor``)."""
    term, f, cos_w = light_sample_parts_wp(mesh, own, use_own, cut, x, n, ng, n_u, wo_u, p_eval, base, roughness,
                                           metallic,
                                           ior, specular, transmission, 0, beckmann, plastic, plastic_row, principled,
                                           conductor, conductor_row, 0, n_u, wi, dist, lw, lpdf, is_delta, 0, 0,
                                           wp.vec3(0.0, 0.0, 0.0), 0.0)
    return term


@wp.func
def light_sample_term_opaque_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, x: wp.vec3, n: wp.vec3, ng: wp.vec3,
                               n_u: wp.vec3, wo_u: wp.vec3, p_eval: float, base: wp.vec3, roughness: float,
                               metallic: float, ior: float, specular: float, transmission: float, beckmann: int,
                               plastic: wp.array(dtype=float), plastic_row: int, principled: int,
                               conductor: wp.array(dtype=wp.vec3), conductor_row: int, wi: wp.vec3,
                               dist: float, lw: wp.vec3, lpdf: float, is_delta: bool):
    """:func:`light_sample_term_wp` of a scene without alpha (every surface blocks the shadow ray)."""
    term, f, cos_w = light_sample_parts_opaque_wp(mesh, own, use_own, x, n, ng, n_u, wo_u, p_eval, base, roughness,
                                                  metallic, ior, specular, transmission, 0, beckmann, plastic,
                                                  plastic_row, principled, conductor, conductor_row, 0, n_u, wi, dist,
                                                  lw, lpdf, is_delta, 0, 0, wp.vec3(0.0, 0.0, 0.0), 0.0)
    return term


@wp.func
def normal_mapped_wp(n: wp.vec3, tangent: wp.vec4, rgb: wp.vec3, scale: float):
    """The unit shading normal ``n`` perturbed by a normal map's texel ``rgb`` (``(2 rgb - 1) * (scale, scale,
    1)`` in the frame of the interpolated ``tangent`` (xyz, handedness w) made orthogonal to ``n``): the twin of
    ``lumigrad.shading.tangents.perturb_normal_unchecked`` with ``material``'s decoding; ``n`` unchanged where
    the tangent-space normal or the tangent is zero (a part or face without a map)."""
    nt = wp.vec3((2.0 * rgb[0] - 1.0) * scale, (2.0 * rgb[1] - 1.0) * scale, 2.0 * rgb[2] - 1.0)
    t3 = wp.vec3(tangent[0], tangent[1], tangent[2])
    out = n
    if (wp.abs(nt[0]) + wp.abs(nt[1]) + wp.abs(nt[2]) > 0.0) and (wp.abs(t3[0]) + wp.abs(t3[1]) + wp.abs(t3[2]) > 0.0):
        nn = n / wp.max(wp.length(n), 1.0e-12)
        t = t3 - nn * wp.dot(nn, t3)
        t = t / wp.max(wp.length(t), 1.0e-12)
        b = tangent[3] * wp.cross(nn, t)
        m = nt[0] * t + nt[1] * b + nt[2] * nn
        out = m / wp.max(wp.length(m), 1.0e-12)
    return out


# ------------------------------------------------------------------------------------------------ the kernel
def _trace_paths_kernel(adjoint_code: bool, every_material: bool):
    """:func:`trace_paths` compiled for a kind of launch (see :data:`TRACE_PATHS`)."""
    @wp.kernel
    def trace_paths(offset: int, end: int, mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts,
                    verts: wp.array(dtype=wp.vec3),
                    faces: wp.array(dtype=wp.int32), normals: wp.array(dtype=wp.vec3), has_normals: int,
                    face_part: wp.array(dtype=wp.int32),
                    part_base: wp.array(dtype=wp.vec3), part_metallic: wp.array(dtype=float),
                    part_roughness: wp.array(dtype=float), part_ior: wp.array(dtype=float),
                    part_specular: wp.array(dtype=float), part_transmission: wp.array(dtype=float),
                    part_emission: wp.array(dtype=wp.vec3),
                    part_flags: wp.array(dtype=wp.int32), part_plastic: wp.array(dtype=float),
                    part_conductor: wp.array(dtype=wp.vec3),
                    part_emitter: wp.array(dtype=wp.int32),
                    uvs: wp.array(dtype=wp.vec2), uv_faces: wp.array(dtype=wp.int32),
                    part_texture: wp.array(dtype=wp.int32),
                    part_mr_texture: wp.array(dtype=wp.int32), part_emissive_texture: wp.array(dtype=wp.int32),
                    tex_offset: wp.array(dtype=wp.int32), tex_width: wp.array(dtype=wp.int32),
                    tex_height: wp.array(dtype=wp.int32), tex_wrap: wp.array(dtype=wp.int32),
                    texels: wp.array(dtype=wp.vec3), part_normal_texture: wp.array(dtype=wp.int32),
                    part_normal_scale: wp.array(dtype=float), tangents: wp.array(dtype=wp.vec4), has_tangents: int,
                    num_lights: int, light_type: wp.array(dtype=wp.int32), light_pos: wp.array(dtype=wp.vec3),
                    light_dir: wp.array(dtype=wp.vec3), light_value: wp.array(dtype=wp.vec3),
                    light_cone_edge: wp.array(dtype=float), light_cone_scale: wp.array(dtype=float),
                    light_range: wp.array(dtype=float), light_start: wp.array(dtype=wp.int32),
                    light_count: wp.array(dtype=wp.int32), light_two_sided: wp.array(dtype=wp.int32),
                    light_area: wp.array(dtype=float), light_centre: wp.array(dtype=wp.vec3),
                    light_far2: wp.array(dtype=float),
                    tri_v0: wp.array(dtype=wp.vec3), tri_v1: wp.array(dtype=wp.vec3), tri_v2: wp.array(dtype=wp.vec3),
                    tri_le: wp.array(dtype=wp.vec3), tri_cdf: wp.array(dtype=float),
                    env_on: int, env_h: int, env_w: int, env_texels: wp.array(dtype=wp.vec3),
                    env_pmf: wp.array(dtype=float), env_row_cdf: wp.array(dtype=float),
                    env_cond_cdf: wp.array(dtype=float),
                    origins: wp.array(dtype=wp.vec3), directions: wp.array(dtype=wp.vec3),
                    seed_lo: wp.uint32, seed_hi: wp.uint32, depth_limit: int, rr_depth: int, hide_emitters: int,
                    out_radiance: wp.array(dtype=wp.vec3), out_hit: wp.array(dtype=wp.bool), adjoint: int,
                    radiance_in: wp.array(dtype=wp.vec3), v_in: wp.array(dtype=wp.vec3),
                    g_part: wp.array2d(dtype=wp.float64), g_light: wp.array2d(dtype=wp.float64),
                    g_tri: wp.array2d(dtype=wp.float64), g_texels: wp.array2d(dtype=wp.float64),
                    tex_grad_rows: wp.array(dtype=wp.int32), g_env: wp.array2d(dtype=wp.float64), want_env: int,
                    g_plastic: wp.array2d(dtype=wp.float64),
                    held: wp.array2d(dtype=float)):
        """Radiance of ray ``offset + tid`` (see the module docstring); ``out_hit``: its first ray hit a surface.

        ``adjoint`` 1: also path replay backpropagation of the material and light values. The path is traced again
        (the same code, so the same bits as the primal that gave ``radiance_in``, its radiance), and with ``v_in``
        the adjoint of that radiance, each vertex adds to ``g_part [P, PART_GRADS]`` (columns ``GRAD_*``) the
        derivatives of its emission, of its light samples' BSDF values (times the light, MIS weight and cosine),
        and of the BSDF value of the sample that continues the path (times the radiance still to come over that
        value: ``radiance_in`` less what the path gathered so far); to ``g_light [L, 3]`` those of the point, spot
        and directional lights' values; to ``g_tri [T, 3]`` those of the area lights' triangle radiances. Sampling
        densities, MIS weights and roulette are held fixed (detached sampling: unbiased, as Mitsuba's ``prb``).
        A textured part's columns are its factors' (through ``clamp(factor * texture, 0, 1)``); with
        the texels' gradients of texture ``k`` go to ``g_texels [rows, 3]`` from row ``tex_grad_rows[k]`` (-1: none
        wanted), with ``want_env`` 1 the environment
        map's to ``g_env [H W, 3]`` (seen by escaping rays and sampled by next-event estimation).

        ``adjoint`` 2: the same in one pass, without ``radiance_in``: each continuing vertex is held in a row of
        ``held [depth_limit, HELD_FIELDS]`` until the path ends, when its radiance is known. The rows are one
        thread's scratch: only where a launch's items run one after another on one thread (a CPU range). In both
        modes a plastic part's table entries' derivatives go to ``g_plastic [P, PLASTIC_TABLE]`` (row ``p``
        part ``p``'s; one placeholder element without plastic parts)."""
        i = offset + wp.tid()
        mode = int(0)  # adjoint, where this variant has the adjoint's code (else 0: its branches fold away)
        if wp.static(adjoint_code):
            mode = adjoint
        key = ray_key_wp(seed_lo, seed_hi, wp.uint32(i))
        o = origins[i]
        d = directions[i]
        beta = wp.vec3(1.0, 1.0, 1.0)
        radiance = wp.vec3(0.0, 0.0, 0.0)
        prev_pdf = float(0.0)
        prev_x = o
        out_hit[i] = False
        totals = vec_cached()  # Omega of the first CACHED lights at prev_x (their next-event estimation's)
        total_in = wp.vec3(0.0, 0.0, 0.0)
        dv = wp.vec3(0.0, 0.0, 0.0)
        held_count = int(0)
        if mode != 0:
            dv = v_in[i]
        if mode == 1:
            total_in = radiance_in[i]
        for depth in range(depth_limit):
            if not (wp.dot(d, d) > 0.0):
                break
            bounce_key = depth_key_wp(key, depth)
            face = int(-1)
            t_hit = float(wp.inf)
            u_hit = float(0.0)
            v_hit = float(0.0)
            use_cut = False  # (alpha: never in the lean variants' scenes; the table is passed only where it is on)
            if wp.static(every_material):
                use_cut = cut.on != 0
            if use_cut:
                face, t_hit, u_hit, v_hit = closest_visible_hit_wp(mesh, own, use_own, cut, o, d, wp.inf)
            else:
                face, t_hit, u_hit, v_hit = closest_hit_any_bvh(mesh, own, use_own, o, d, wp.inf)
            if face < 0:
                if env_on != 0:  # the ray leaves the scene and sees the environment (MIS against its sampling)
                    w_env = float(1.0)
                    if depth == 0:
                        if hide_emitters != 0:
                            w_env = 0.0
                    elif not (prev_pdf < 0.0):
                        w_env = power_heuristic_wp(prev_pdf, env_pdf_wp(unit_wp(d), env_h, env_w, env_pmf))
                    radiance = radiance + _cw_mul(beta, env_lookup_wp(d, env_h, env_w, env_texels)) * w_env
                    if mode != 0 and want_env != 0 and w_env != 0.0:
                        env_scatter_wp(d, env_h, env_w, _cw_mul(dv, beta) * w_env, g_env)
                break
            if depth == 0:
                out_hit[i] = True
            # the surface, recomputed from the vertices (surface_at / intersect_faces)
            c0 = faces[3 * face]
            c1 = faces[3 * face + 1]
            c2 = faces[3 * face + 2]
            v0 = verts[c0]
            v1 = verts[c1]
            v2 = verts[c2]
            e1 = v1 - v0
            e2 = v2 - v0
            s = o - v0
            p = wp.cross(d, e2)
            qq = wp.cross(s, e1)
            det = wp.dot(e1, p)
            b0 = float(0.0)  # a BVH hit the re-intersection calls parallel: zero weights, as intersect_faces
            b1 = float(0.0)
            b2 = float(0.0)
            if det != 0.0:
                inv = 1.0 / det
                b1 = wp.dot(s, p) * inv
                b2 = wp.dot(d, qq) * inv
                b0 = 1.0 - b1 - b2
            x = b0 * v0 + b1 * v1 + b2 * v2
            ng = wp.cross(e1, e2)
            ng = ng / wp.max(wp.length(ng), 1.0e-30)
            n = ng
            if has_normals != 0:
                n = b0 * normals[c0] + b1 * normals[c1] + b2 * normals[c2]
                n = n / wp.max(wp.length(n), 1.0e-30)
            wo = -d / wp.length(d)
            part = face_part[face]
            back = wp.dot(ng, wo) < 0.0
            flags = part_flags[part]  # bit 0: double-sided, 1: Beckmann's microfacets (else GGX), 2: plastic, 3: thin,
            # 4: principled, 5: Mitsuba's normal map, 6: conductor, 7: delta_specular, 8: principled lobes,
            # 9: an anisotropic lobe (Material.roughness_aspect)
            double = (flags & 1) != 0
            beckmann = int(0)  # (the lean variant's materials: GGX, no plastic, no glass, no normal map)
            thin = int(0)
            plastic_row = int(-1)  # Mitsuba's plastic: its table's row in part_plastic
            principled = int(0)  # Mitsuba's principled (principled_kernels' code: 2 + part with its other lobes)
            conductor_row = int(-1)  # Mitsuba's conductor: its eta and k rows in part_conductor
            shadowed = int(0)  # Mitsuba's normal maps (shadowing, flipped normals)
            delta_spec = int(0)  # Material.delta_specular: the specular lobes are Dirac's (no delta light meets them)
            aniso_tangent = wp.vec3(0.0, 0.0, 0.0)  # Material.roughness_aspect: the lobe's tangent and log aspect
            log_aspect = float(0.0)
            if wp.static(every_material):
                beckmann = (flags >> 1) & 1
                thin = (flags >> 3) & 1
                if (flags & 4) != 0:
                    plastic_row = part
                principled = (flags >> 4) & 1
                if (flags & 256) != 0:  # its other lobes: rows 2 part and the next of part_conductor
                    principled = 2 + part
                shadowed = (flags >> 5) & 1
                if (flags & 64) != 0:
                    conductor_row = part
                delta_spec = (flags >> 7) & 1
                if (flags & 512) != 0:  # an anisotropic lobe: its log aspect in row 2 P + part of part_conductor,
                    log_aspect = part_conductor[2 * part_base.shape[0] + part][0]  # its tangent interpolated (none:
                    if has_tangents != 0:  # the normal's default frame, as the twin's tangent_frame)
                        t4 = b0 * tangents[3 * face] + b1 * tangents[3 * face + 1] + b2 * tangents[3 * face + 2]
                        aniso_tangent = wp.vec3(t4[0], t4[1], t4[2])
            if back and double:
                ng = -ng
                n = -n
            if has_normals != 0 and wp.dot(ng, wo) > 0.0:
                # the transport's _facing_shading_normal: bend normals that turn from the viewer (silhouette rims)
                lift = wp.max(SHADING_NORMAL_MIN_COS - wp.dot(n, wo), 0.0)
                if lift > 0.0:  # (else n stays the unit vector it is)
                    n = n + lift * wo
                    n = n / wp.max(wp.length(n), 1.0e-30)
            base = part_base[part]
            tex = part_texture[part]
            tex_mr = part_mr_texture[part]
            tex_em = part_emissive_texture[part]
            tex_n = int(-1)
            if wp.static(every_material):
                if has_tangents != 0:
                    tex_n = part_normal_texture[part]
            uv = wp.vec2(0.0, 0.0)
            if tex >= 0 or tex_mr >= 0 or tex_em >= 0 or tex_n >= 0:
                uv = b0 * uvs[uv_faces[3 * face]] + b1 * uvs[uv_faces[3 * face + 1]] + b2 * uvs[uv_faces[3 * face + 2]]
            n_unmapped = n  # (a BSDF sample must leave on its side too: below)
            if tex_n >= 0:  # a normal map (surface_at's perturb_normal_unchecked, after the facing bend)
                tangent = b0 * tangents[3 * face] + b1 * tangents[3 * face + 1] + b2 * tangents[3 * face + 2]
                if shadowed != 0 and back and double:  # (Mitsuba's map on the back: the front's bitangent)
                    tangent = wp.vec4(tangent[0], tangent[1], tangent[2], -tangent[3])
                n = normal_mapped_wp(n, tangent,
                                     texture_wp(tex_n, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 0),
                                     part_normal_scale[part])
                if shadowed != 0 and wp.dot(n_unmapped, wo) * wp.dot(n, wo) <= 0.0:  # Mitsuba's
                    n = 2.0 * wp.dot(n, n_unmapped) * n_unmapped - n  # flip_invalid_normals: mirrored about n0
            if tex >= 0:
                rgb = texture_wp(tex, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 1)
                base = wp.vec3(wp.clamp(base[0] * rgb[0], 0.0, 1.0), wp.clamp(base[1] * rgb[1], 0.0, 1.0),
                               wp.clamp(base[2] * rgb[2], 0.0, 1.0))
            metallic = part_metallic[part]
            roughness = part_roughness[part]
            if tex_mr >= 0:  # linear: G roughness, B metallic, times the (unclamped) factors, then clamped
                mr = texture_wp(tex_mr, uv, tex_offset, tex_width, tex_height, tex_wrap, texels, 0)
                roughness = wp.clamp(roughness * mr[1], 0.0, 1.0)
                metallic = wp.clamp(metallic * mr[2], 0.0, 1.0)
            ior = part_ior[part]
            specular = part_specular[part]
            transmission = float(0.0)
            if wp.static(every_material):
                transmission = part_transmission[part]
            emission = part_emission[part]
            if tex_em >= 0:
                emission = _cw_mul(emission, texture_wp(tex_em, uv, tex_offset, tex_width, tex_height, tex_wrap, texels,
                                                        1))
            if back and not double:
                emission = wp.vec3(0.0, 0.0, 0.0)
            # emission seen by the previous bounce, MIS-weighted for area lights
            weight_e = float(1.0)
            emitter = part_emitter[part]
            if depth > 0 and emitter >= 0:
                if prev_pdf < 0.0:
                    weight_e = 1.0
                else:
                    known = float(-1.0)
                    if emitter < CACHED:
                        known = totals[emitter]
                    pdf_light = area_pdf_wp(prev_x, d, light_start[emitter], light_count[emitter],
                                            light_two_sided[emitter], tri_v0, tri_v1, tri_v2, known,
                                            _by_area(prev_x, emitter, light_area, light_centre, light_far2))
                    weight_e = power_heuristic_wp(prev_pdf, pdf_light)
            if hide_emitters != 0 and depth == 0:
                weight_e = 0.0
            term = _cw_mul(beta, emission) * weight_e
            if mode != 0 and weight_e != 0.0 and not (back and not double):
                add_emission_grads_wp(g_part, g_texels, tex_grad_rows, part, uv, part_emission, part_emissive_texture,
                                      tex_offset, tex_width, tex_height, tex_wrap, texels, _cw_mul(dv, beta) * weight_e)
            # what the light samples' BSDF evaluations and the BSDF sample share (the same bits as each computing
            # its own): the unit normal and view direction, and the specular lobe's probability at their cosine
            n_u = n  # (both unit already)
            wo_u = wo
            like = wp.dot(n_u, wo_u)
            p_like = float(0.0)
            p_eval = float(-1.0)  # (below 1e-6 the evaluation's clamped cosine differs: it computes its own)
            if depth + 1 < depth_limit:
                if plastic_row >= 0:  # (at the cosine clamped to [1e-6, 1], as its evaluation and sample take it)
                    p_like = plastic_specular_probability_wp(part_plastic, plastic_row, wp.clamp(like, DOT_EPS, 1.0),
                                                             base, roughness, ior)
                    p_eval = p_like
                elif principled != 0:  # (likewise)
                    p_like = principled_specular_probability_wp(wp.clamp(like, DOT_EPS, 1.0), base, metallic, ior)
                    p_eval = p_like
                elif transmission == 0.0:  # (the opaque model's sample and light samples; glass computes its own)
                    p_like = specular_probability_wp(like, base, metallic, f0_dielectric_wp(ior), specular, 0.0)
                    if like >= DOT_EPS:
                        p_eval = p_like
                nee = wp.vec3(0.0, 0.0, 0.0)
                for j in range(num_lights):
                    u0 = uniform_dim_wp(bounce_key, 4 + 2 * j)
                    u1 = uniform_dim_wp(bounce_key, 5 + 2 * j)
                    kind = light_type[j]
                    wi = wp.vec3(0.0, 0.0, 1.0)
                    dist = float(wp.inf)
                    lw = wp.vec3(0.0, 0.0, 0.0)
                    lpdf = float(1.0)
                    per_value = float(1.0)  # lw per unit of the light's value (or of triangle tri_row's radiance)
                    tri_row = int(-1)
                    is_delta = kind != LIGHT_AREA and kind != LIGHT_ENVIRONMENT
                    if kind == LIGHT_DIRECTIONAL:
                        wi = light_dir[j]
                        lw = light_value[j]
                    elif kind == LIGHT_ENVIRONMENT:
                        wi, lw, lpdf = env_sample_wp(env_h, env_w, env_texels, env_pmf, env_row_cdf, env_cond_cdf, u0,
                                                     u1)
                    elif kind == LIGHT_AREA:
                        omega = float(0.0)
                        wi, dist, lw, lpdf, omega, tri_row, per_value = area_light_sample_triangle_wp(
                            x, j, light_start, light_count, light_two_sided, light_area, light_centre, light_far2,
                            tri_v0, tri_v1, tri_v2, tri_le, tri_cdf, u0, u1)
                        if j < CACHED and omega >= 0.0:  # (sampled by solid angle)
                            totals[j] = omega
                    else:
                        v = light_pos[j] - x
                        dist = wp.sqrt(wp.max(wp.dot(v, v), 1.0e-8))
                        wi = v / dist
                        fall = 1.0 / (dist * dist)
                        rng = light_range[j]
                        if rng > 0.0:
                            r = dist / rng
                            fall = wp.clamp(1.0 - r * r * r * r, 0.0, 1.0) * fall
                        if kind == LIGHT_SPOT:
                            cd = -wp.dot(wi, light_dir[j])
                            a = wp.clamp(cd * light_cone_scale[j] - light_cone_edge[j] * light_cone_scale[j], 0.0, 1.0)
                            fall = a * a * fall
                        elif kind == LIGHT_SPOT_LINEAR:
                            theta = wp.acos(wp.clamp(-wp.dot(wi, light_dir[j]), -1.0 + ACOS_MARGIN, 1.0 - ACOS_MARGIN))
                            fall = wp.clamp((light_cone_edge[j] - theta) * light_cone_scale[j], 0.0, 1.0) * fall
                        lw = light_value[j] * fall
                        per_value = fall
                    t_j = wp.vec3(0.0, 0.0, 0.0)
                    f_j = wp.vec3(0.0, 0.0, 0.0)
                    cos_w = float(0.0)
                    if use_cut:
                        t_j, f_j, cos_w = light_sample_parts_wp(
                            mesh, own, use_own, cut, x, n, ng, n_u, wo_u, p_eval, base, roughness, metallic, ior,
                            specular, transmission, thin, beckmann, part_plastic, plastic_row, principled,
                            part_conductor, conductor_row, shadowed, n_unmapped, wi, dist, lw, lpdf, is_delta,
                            delta_spec, mode, aniso_tangent, log_aspect)
                    else:
                        t_j, f_j, cos_w = light_sample_parts_opaque_wp(
                            mesh, own, use_own, x, n, ng, n_u, wo_u, p_eval, base, roughness, metallic, ior,
                            specular, transmission, thin, beckmann, part_plastic, plastic_row, principled,
                            part_conductor, conductor_row, shadowed, n_unmapped, wi, dist, lw, lpdf, is_delta,
                            delta_spec, mode, aniso_tangent, log_aspect)
                    nee = nee + t_j
                    coat_j = float(1.0)  # (a delta light at a Dirac coat: the plastic's diffuse base alone)
                    if is_delta and delta_spec != 0 and roughness == 0.0:
                        coat_j = 0.0
                    if mode != 0 and cos_w > 0.0:
                        bw = _cw_mul(dv, beta)
                        if transmission == 0.0:  # (a transmitting part's values are not differentiated here)
                            add_bsdf_grads_wp(g_part, g_texels, tex_grad_rows, part, uv, part_base, part_metallic,
                                              part_roughness, part_texture, part_mr_texture, tex_offset, tex_width,
                                              tex_height, tex_wrap, texels, n_u, wi, wo_u, base, roughness, metallic,
                                              ior, specular, beckmann, principled, part_plastic, plastic_row,
                                              g_plastic, part_conductor, conductor_row, coat_j,
                                              _cw_mul(bw, lw) * cos_w)
                        g_value = _cw_mul(bw, f_j) * (cos_w * per_value)
                        if kind == LIGHT_AREA:
                            if tri_row >= 0:
                                add3_wp(g_tri, tri_row, 0, g_value)
                        elif kind == LIGHT_ENVIRONMENT:  # lw = lookup / pdf
                            if want_env != 0:
                                env_scatter_wp(wi, env_h, env_w, g_value / lpdf, g_env)
                        else:
                            add3_wp(g_light, j, 0, g_value)
                term = term + _cw_mul(beta, nee)
            radiance = radiance + term
            if depth + 1 >= depth_limit:
                break
            # the next ray: a BSDF sample, then Russian roulette
            u_lobe = uniform_dim_wp(bounce_key, 0)
            u_dir0 = uniform_dim_wp(bounce_key, 1)
            u_dir1 = uniform_dim_wp(bounce_key, 2)
            delta = False  # (an index-matched boundary's pass-through: no MIS at the next vertex)
            wi = wp.vec3(0.0, 0.0, 1.0)
            weight = wp.vec3(0.0, 0.0, 0.0)
            pdf = float(0.0)
            if transmission != 0.0:  # (as the twin, whatever its sign: an optimiser may push it out of [0, 1])
                wi, weight, pdf, delta = transmission_sample_wp(n_u, wo_u, base, roughness, metallic, ior, specular,
                                                                transmission, thin, beckmann, aniso_tangent, log_aspect,
                                                                u_lobe, u_dir0, u_dir1)
            elif plastic_row >= 0:
                wi, weight, pdf = plastic_sample_wp(part_plastic, plastic_row, n_u, wo_u, p_like, base, roughness, ior,
                                                    beckmann, u_lobe, u_dir0, u_dir1)
            elif conductor_row >= 0:
                wi, weight, pdf = conductor_sample_wp(part_conductor, conductor_row, n_u, wo_u, base, roughness,
                                                      beckmann, aniso_tangent, log_aspect, u_dir0, u_dir1)
            elif principled != 0:
                wi, weight, pdf = principled_sample_wp(n_u, wo_u, p_like, base, roughness, metallic, ior,
                                                       part_conductor, principled, aniso_tangent, log_aspect, u_lobe,
                                                       u_dir0, u_dir1)
            else:
                wi, weight, pdf = sample_unit_wp(n_u, wo_u, p_like, base, roughness, metallic, ior, specular, 0.0,
                                                 beckmann, u_lobe, u_dir0, u_dir1)
            if shadowed != 0:  # (Mitsuba's normal maps: the sample's weight shadowed, its density not)
                weight = weight * normal_map_shadowing_wp(n_unmapped, n_u, wi)
            ok = pdf > 0.0 and (weight[0] > 0.0 or weight[1] > 0.0 or weight[2] > 0.0)
            if tex_n >= 0 and wp.dot(n_unmapped, wi) * wp.dot(n_u, wi) <= 0.0:  # a normal map bent the normal: on
                ok = False  # the unmapped normal's side only (Mitsuba's normalmap rule; surface_at's unmapped_normal)
            new_beta = _cw_mul(beta, weight)
            if depth + 1 >= rr_depth:
                qr = wp.min(wp.max(wp.max(new_beta[0], new_beta[1]), new_beta[2]), 0.95)
                if uniform_dim_wp(bounce_key, 3) < qr:
                    new_beta = new_beta / qr
                else:
                    ok = False
            if not (ok and (new_beta[0] > 0.0 or new_beta[1] > 0.0 or new_beta[2] > 0.0)):
                break
            if mode != 0 and transmission == 0.0:  # the sample's BSDF value carries the radiance still to come
                # (a transmitting part's vertex only carries the path: its values are not differentiated here)
                f_s = wp.vec3()
                pdf_s = float(0.0)
                if plastic_row >= 0:
                    f_s, pdf_s = plastic_eval_pdf_wp(part_plastic, plastic_row, n_u, wi, wo_u, p_eval, base, roughness,
                                                     ior, beckmann)
                elif conductor_row >= 0:
                    f_s, pdf_s = conductor_eval_pdf_wp(part_conductor, conductor_row, n_u, wi, wo_u, base, roughness,
                                                       beckmann, aniso_tangent, log_aspect)
                elif principled != 0:
                    f_s, pdf_s = principled_eval_pdf_wp(n_u, wi, wo_u, p_eval, base, roughness, metallic, ior,
                                                        part_conductor, principled, aniso_tangent, log_aspect)
                else:
                    f_s, pdf_s = eval_pdf_unit_wp(n_u, wi, wo_u, p_eval, base, roughness, metallic, ior, specular,
                                                  0.0, beckmann)
                q = wp.vec3(0.0, 0.0, 0.0)  # the adjoint over the BSDF value
                for c in range(3):
                    if f_s[c] > 0.0:
                        q[c] = dv[c] / f_s[c]
                if mode == 1:
                    add_bsdf_grads_wp(g_part, g_texels, tex_grad_rows, part, uv, part_base, part_metallic,
                                      part_roughness, part_texture, part_mr_texture, tex_offset, tex_width, tex_height,
                                      tex_wrap, texels, n_u, wi, wo_u, base, roughness, metallic, ior, specular,
                                      beckmann, principled, part_plastic, plastic_row, g_plastic, part_conductor,
                                      conductor_row, 1.0, _cw_mul(q, total_in - radiance))
                else:
                    hold_vertex_wp(held, held_count, part, n_u, wi, wo_u, base, roughness, metallic, ior, specular, q,
                                   radiance, uv, beckmann, principled, plastic_row, conductor_row)
                    held_count += 1
            beta = new_beta
            o = offset_origin_wp(x, ng, wi)
            prev_x = x
            prev_pdf = pdf
            if delta:
                prev_pdf = -1.0
            d = wi
        if mode == 2:
            release_vertices_wp(held, held_count, radiance, g_part, g_texels, tex_grad_rows, part_base, part_metallic,
                                part_roughness, part_texture, part_mr_texture, tex_offset, tex_width, tex_height,
                                tex_wrap, texels, part_plastic, g_plastic, part_conductor)
        out_radiance[i] = radiance

    return trace_paths



#: The path kernel by kind of launch, ``(adjoint, every_material)``, each :func:`trace_paths` compiled with only
#: the code it runs: the adjoint's (``adjoint`` 1 and 2) only in the replay's variants, and Mitsuba's plastic,
#: glass and thin sheets (``part_transmission``), Beckmann's microfacets and normal maps only in the
#: ``every_material`` variants (and alpha, :mod:`.cutouts`, read there where the table is on); a lean variant
#: reads every part as an opaque GGX glTF material without a normal map or alpha (:func:`lean_materials` says
#: whether the tables allow it). Branches a scene never takes are not free on the CPU (the glTF Cornell box's
#: forward is ~12 % faster without them); the arithmetic, and so every path, is the same in every variant.
TRACE_PATHS = {(adjoint, every): _trace_paths_kernel(adjoint, every)
               for adjoint in (False, True) for every in (False, True)}
#: the variant that runs everything
trace_paths = TRACE_PATHS[(True, True)]
