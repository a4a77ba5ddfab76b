"""Mitsuba's principled BSDF (Mitsuba 3's ``principled``, Burley's Disney model) in its opaque form, for materials
with ``Material.principled = True``: what a Blender export's Principled BSDF becomes in a Mitsuba file.

With ``wo`` towards the viewer, ``wi`` towards the light (both above the surface), ``c`` the base colour, ``m``
metallic, ``r`` roughness, ``eta`` the material's ``ior``, ``alpha = max(r^2, ALPHA_MIN)``, ``h = normalize(wi +
wo)`` and ``S(x) = (1 - x)^5``::

    f = F D(h) G1(wo) G1(wi) / (4 n.wo n.wi)                                      specular reflection
      + (1 - m) c / pi ((1 - S(n.wi) / 2)(1 - S(n.wo) / 2)                          Burley's diffuse
                        + R (S(n.wi) + S(n.wo) + S(n.wi) S(n.wo) (R - 1)))          and its retro-reflection
    F = (1 - m) F_dielectric(wo.h, eta) + m (c + (1 - c) S(wo.h)),   R = 2 r (wo.h)^2

``D`` and ``G1`` GGX's (Smith's separable shadowing, as Mitsuba), ``F_dielectric`` the exact Fresnel
reflectance. Unlike the glTF model the diffuse lobe is not scaled by ``1 - F`` and brightens toward grazing
angles on rough surfaces (the retro-reflection).

Mitsuba's other lobes (``Material.principled_lobes``, ``si.principled_lobes``: ``t`` spec_tint, ``s`` sheen,
``st`` sheen_tint, ``cc`` clearcoat, ``g`` clearcoat_gloss, ``fl`` flatness; unset, all 0), with ``T = c /
lum(c)`` the base colour's hue (``lum`` Rec. 709's luminance; ``T = 1`` where it is 0)::

    F  = (1 - m)(1 - t) F_dielectric + m (c + (1 - c) S(wo.h)) + (1 - m) t (F0_T + (1 - F0_T) S(wo.h)),
         F0_T = T ((eta - 1) / (eta + 1))^2                                        the specular tinted
    diffuse lobes -> lerp(diffuse lobes, 1.25 (Fss (1 / (n.wo + n.wi) - 0.5) + 0.5), fl),
         Fss = (1 + (R / 2 - 1) S(n.wo)) (1 + (R / 2 - 1) S(n.wi))                Hanrahan-Krueger's flattening
    f += s (1 - m) S(wo.h) lerp(1, T, st)                                           the sheen (no 1 / pi)
       + cc / 4 (0.04 + 0.96 S(wo.h)) D_GTR1(h) G1(wo) G1(wi)                        the clearcoat

``D_GTR1`` Berry's distribution of width ``lerp(0.1, 0.001, g)`` and the clearcoat's ``G1`` GGX's of width 0.25,
without the microfacet lobe's ``1 / (4 n.wo n.wi)``: as Mitsuba evaluates them (its ``principled.eval`` to
float32 precision). Mitsuba's ``anisotropic`` ``an`` is ``Material.roughness_aspect = sqrt(1 - 0.9 an)``: the main
lobe's widths ``alpha / aspect`` along the surface's tangent and ``alpha aspect`` across it
(:mod:`lumigrad.shading.anisotropy`). ``spec_trans`` is not modelled (the Mitsuba reader keeps the glTF
approximation for it). Reflection only: ``eval`` and ``pdf`` are 0 unless
``n.wo > 0`` and ``n.wi > 0`` (Mitsuba's principled is black from behind; ``twosided`` flips it).
An ``ior`` of at least 1 is assumed, as the Mitsuba reader requires: below 1 Mitsuba takes the metal's Schlick
weight at the refracted cosine, this model at ``wo.h`` (up to 23 % apart at ior 0.8 and metallic 0.3; a
dielectric still agrees). At exactly 1 (``specular`` 0) the dielectric reflects nothing and, as in Mitsuba, the
whole specular lobe goes, the metal's and the tint's with it. A white rough surface reflects more than it receives near normal incidence (albedo
1.08 at roughness 0.9): Burley's retro-reflection, in Mitsuba's model too.

Sampling: the specular lobe (GGX normals visible from ``wo``, reflected) with probability ``s / (s + d)``, ``s``
and ``d`` the channel means of the Schlick-estimated specular reflectance at ``n.wo`` and of ``(1 - m) c``;
otherwise a cosine-distributed direction (the sheen and the flattened diffuse lobe with it). With a clearcoat,
first that lobe (GTR1 normals by ``D (n.h)``, reflected) with probability ``(cc / 4) / (1 + cc / 4)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .anisotropy import anisotropic_terms, is_anisotropic, lobe_widths, sampling_frame, where_turned
from .brdf import ALPHA_MIN, BSDFSample, ggx_d, smith_g1
from .dielectric import fresnel_dielectric_unchecked
from .per_point import PerPointModelBSDF, sample_at
from .surface import SurfaceSample
from .warps import cosine_hemisphere, ggx_visible_normal, to_local, to_world

__all__ = ["PRINCIPLED_LOBES", "PerPointPrincipledBSDF", "PrincipledBSDF", "principled_mask", "specular_from_ior",
           "ior_from_specular"]

#: Mitsuba's principled lobes beyond the opaque base, in the order of ``Material.principled_lobes`` and
#: ``si.principled_lobes``.
PRINCIPLED_LOBES = ("spec_tint", "sheen", "sheen_tint", "clearcoat", "clearcoat_gloss", "flatness")
#: Mitsuba's luminance of a linear RGB colour (Rec. 709).
_LUMINANCE = (0.212671, 0.715160, 0.072169)
#: The clearcoat's Fresnel head-on (an ior of 1.5, Schlick's curve) and its shadowing's GGX width (Burley's).
_CLEARCOAT_F0 = 0.04
_CLEARCOAT_ALPHA_G = 0.25
_EPS = 1e-12
#: Cosines are clamped to at least this (as the glTF model's and the plastic's).
_DOT_EPS = 1e-6


def ior_from_specular(specular: float) -> float:
    """Mitsuba's ``eta`` of a principled material given by its ``specular`` weight: the ior whose normal-incidence
    reflectance is ``0.08 specular`` (the default 0.5 is ior 1.5)."""
    return 2.0 / (1.0 - math.sqrt(0.08 * specular)) - 1.0


def specular_from_ior(ior: float) -> float:
    """The inverse of :func:`ior_from_specular`."""
    return ((ior - 1.0) / (ior + 1.0)) ** 2 / 0.08


def _schlick_weight(cos: torch.Tensor) -> torch.Tensor:
    m = (1.0 - cos).clamp(0.0, 1.0)
    m2 = m * m
    return m2 * m2 * m


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_EPS)


class PrincipledBSDF:
    """Mitsuba's opaque ``principled`` (the module docstring) from ``si.base_color``, ``si.roughness``,
    ``si.metallic``, ``si.ior`` and, where set, ``si.principled_lobes`` (``spec_tint``, ``sheen``, ``sheen_tint``,
    ``clearcoat``, ``clearcoat_gloss``, ``flatness``: :data:`PRINCIPLED_LOBES`; unset, all 0).

    **Differentiability:** ``eval`` and ``pdf`` in the base colour, roughness, metallic, ior and the lobes' weights,
    the normal and both directions; ``sample`` as :func:`lumigrad.shading.metallic_roughness_sample` (a
    reparameterised specular or clearcoat direction, a discrete lobe choice).
    """

    def _terms(self, si: SurfaceSample, wi: torch.Tensor):
        n, wo, wi = _unit(si.normal), _unit(si.wo), _unit(wi)
        cos_o = (n * wo).sum(-1, keepdim=True)
        cos_i = (n * wi).sum(-1, keepdim=True)
        valid = (cos_o > 0) & (cos_i > 0)
        co, ci = cos_o.clamp(_DOT_EPS, 1.0), cos_i.clamp(_DOT_EPS, 1.0)
        hv = wi + wo
        h = hv / torch.linalg.vector_norm(hv, dim=-1, keepdim=True).clamp_min(1e-6)
        wo_h = (wo * h).sum(-1, keepdim=True).clamp(0.0, 1.0)
        # 1 - (n.h)^2 as |n x h|^2: no cancellation inside a sharp lobe
        sin2_h = torch.linalg.cross(*torch.broadcast_tensors(n, h)).square().sum(-1, keepdim=True).clamp(0.0, 1.0)
        return co, ci, valid, wo_h, sin2_h, (n, wo, wi, h)

    def _main_lobe(self, si: SurfaceSample, co, ci, sin2_h, vectors):
        """``(D, G1(wo), G1(wi))`` of the main GGX lobe: isotropic, anisotropic at the points whose aspect is not 1
        (Mitsuba's ``anisotropic``: :mod:`lumigrad.shading.anisotropy`)."""
        alpha = self._alpha(si)
        iso = ggx_d(sin2_h, alpha * alpha), smith_g1(co, alpha), smith_g1(ci, alpha)
        if is_anisotropic(si):  # (where the aspect is not 1: the isotropic forms elsewhere, as the fused kernel)
            return where_turned(si, anisotropic_terms(si, *vectors), iso)
        return iso

    def _alpha(self, si: SurfaceSample) -> torch.Tensor:
        return (si.roughness * si.roughness).clamp_min(ALPHA_MIN)

    def _specular_probability(self, si: SurfaceSample, co: torch.Tensor) -> torch.Tensor:
        eta = torch.as_tensor(si.ior, dtype=co.dtype, device=co.device)
        f0 = ((eta - 1.0) / (eta + 1.0)) ** 2
        s = _schlick_weight(co)
        c, m = si.base_color, si.metallic
        spec = ((1.0 - m) * (f0 + (1.0 - f0) * s) + m * (c + (1.0 - c) * s)).mean(-1, keepdim=True)
        diff = ((1.0 - m) * c).mean(-1, keepdim=True)
        total = spec + diff
        positive = total > 0
        return torch.where(positive, spec / torch.where(positive, total, torch.ones_like(total)),
                           torch.ones_like(total))

    def _clearcoat_probability(self, si: SurfaceSample) -> Optional[torch.Tensor]:
        """``[..., 1]``: the clearcoat lobe's share of the samples, ``w / (1 + w)`` with ``w = clearcoat / 4`` (its
        weight against the main lobes' 1); None without lobes."""
        if si.principled_lobes is None:
            return None
        w = 0.25 * si.principled_lobes[..., 3:4].clamp_min(0.0)
        return w / (1.0 + w)

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine."""
        co, ci, valid, wo_h, sin2_h, vectors = self._terms(si, wi)
        d, g_o, g_i = self._main_lobe(si, co, ci, sin2_h, vectors)
        eta = torch.as_tensor(si.ior, dtype=co.dtype, device=co.device)
        c, m, r = si.base_color, si.metallic, si.roughness
        s_h = _schlick_weight(wo_h)
        dielectric = fresnel_dielectric_unchecked(wo_h, eta)[0]
        metal = m * (c + (1.0 - c) * s_h)
        lobes = None if si.principled_lobes is None else si.principled_lobes.unbind(-1)
        if lobes is None:
            fresnel = (1.0 - m) * dielectric + metal
        else:  # spec_tint: that share of the dielectric's Fresnel is Schlick's from the tint times its f0
            spec_tint = lobes[0][..., None]
            f0_tint = _tint(c) * ((eta - 1.0) / (eta + 1.0)) ** 2
            fresnel = ((1.0 - m) * (1.0 - spec_tint) * dielectric + metal
                       + (1.0 - m) * spec_tint * (f0_tint + (1.0 - f0_tint) * s_h))
        spec = fresnel * d * g_o * g_i / (4.0 * co * ci)
        spec = torch.where(dielectric > 0, spec, torch.zeros_like(spec))  # (ior 1: Mitsuba drops the whole lobe)
        s_o, s_i = _schlick_weight(co), _schlick_weight(ci)
        retro = 2.0 * r * wo_h * wo_h
        diffuse = (1.0 - 0.5 * s_o) * (1.0 - 0.5 * s_i) + retro * (s_o + s_i + s_o * s_i * (retro - 1.0))
        if lobes is not None:  # flatness: towards Hanrahan-Krueger's fake subsurface
            flat = lobes[5][..., None]
            fss = (1.0 + (0.5 * retro - 1.0) * s_o) * (1.0 + (0.5 * retro - 1.0) * s_i)
            diffuse = diffuse + flat * (1.25 * (fss * (1.0 / (co + ci) - 0.5) + 0.5) - diffuse)
        f = spec + (1.0 - m) * c / math.pi * diffuse
        if lobes is not None:
            sheen, sheen_tint, clearcoat = lobes[1][..., None], lobes[2][..., None], lobes[3][..., None]
            f = f + sheen * (1.0 - m) * s_h * (1.0 + sheen_tint * (_tint(c) - 1.0))
            f = f + 0.25 * clearcoat * _clearcoat(co, ci, wo_h, sin2_h, lobes[4][..., None])
        return torch.where(valid, f, torch.zeros_like(f))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        co, ci, valid, wo_h, sin2_h, vectors = self._terms(si, wi)
        d, g_o, _ = self._main_lobe(si, co, ci, sin2_h, vectors)
        spec = d * g_o / (4.0 * co)  # visible normals, reflected
        p = self._specular_probability(si, co)
        pdf = p * spec + (1.0 - p) * ci / math.pi
        q = self._clearcoat_probability(si)
        if q is not None:  # GTR1 normals by D (n.h), reflected
            d_cc = _gtr1(sin2_h, _clearcoat_alpha(si.principled_lobes[..., 4:5]))
            pdf = q * d_cc * (1.0 - sin2_h).clamp_min(0.0).sqrt() / (4.0 * wo_h.clamp_min(_DOT_EPS)) + (1.0 - q) * pdf
        return torch.where(valid, pdf, torch.zeros_like(pdf))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (lobe) and ``u2 [..., 2]`` (direction): the clearcoat where
        ``u1 < q`` (its share), else the specular lobe or the cosine by ``(u1 - q) / (1 - q)``."""
        n, wo = _unit(si.normal), _unit(si.wo)
        n_b, wo_b = torch.broadcast_tensors(n, wo)
        t, b = sampling_frame(si, n_b)
        wo_l = to_local(wo_b, t, b, n_b)
        alpha = self._alpha(si)
        if is_anisotropic(si):  # (both widths where the aspect is not 1)
            (alpha,) = where_turned(si, (lobe_widths(si),), (torch.cat(torch.broadcast_tensors(alpha, alpha), -1),))
        h = ggx_visible_normal(wo_l, alpha, u2)
        q = self._clearcoat_probability(si)
        u_main = u1 if q is None else ((u1 - q) / (1.0 - q)).clamp(0.0, 1.0)
        wi_spec = 2.0 * (wo_l * h).sum(-1, keepdim=True) * h - wo_l
        p = self._specular_probability(si, wo_l[..., 2:].clamp(_DOT_EPS, 1.0))
        wi_l = torch.where(u_main < p, wi_spec, cosine_hemisphere(u2))
        if q is not None:
            h_cc = _gtr1_normal(_clearcoat_alpha(si.principled_lobes[..., 4:5]), u2)
            wi_l = torch.where(u1 < q, 2.0 * (wo_l * h_cc).sum(-1, keepdim=True) * h_cc - wo_l, wi_l)
        wi = _unit(to_world(wi_l, t, b, n_b))
        return sample_at(self, si, n_b, wi)


def _tint(c: torch.Tensor) -> torch.Tensor:
    """The base colour over its luminance (Mitsuba's ``c_tint``; 1 where the luminance is 0): the hue the
    ``spec_tint`` and ``sheen_tint`` lobes take."""
    lum = (c * c.new_tensor(_LUMINANCE)).sum(-1, keepdim=True)
    positive = lum > 0
    return torch.where(positive, c / torch.where(positive, lum, torch.ones_like(lum)), torch.ones_like(c))


def _clearcoat_alpha(gloss: torch.Tensor) -> torch.Tensor:
    """The clearcoat's GTR1 width ``lerp(0.1, 0.001, clearcoat_gloss)``."""
    return 0.1 + (0.001 - 0.1) * gloss


def _gtr1(sin2_h: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Berry's GTR1 ``D = (alpha^2 - 1) / (pi log(alpha^2) (1 + (alpha^2 - 1) (n.h)^2))`` (Burley's clearcoat)."""
    a2 = alpha * alpha  # (1 + (alpha^2 - 1) (n.h)^2 as alpha^2 + (1 - alpha^2) sin2_h: no cancellation at the peak)
    return (a2 - 1.0) / (math.pi * torch.log(a2) * (a2 + (1.0 - a2) * sin2_h))


def _gtr1_normal(alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A GTR1 normal (local frame) with density ``D (n.h)`` from uniform ``u [..., 2]``."""
    a2 = alpha * alpha
    power = a2 ** (1.0 - u[..., 1:2])
    cos2 = ((1.0 - power) / (1.0 - a2)).clamp(0.0, 1.0)
    # (sin^2 not as 1 - cos^2, which float32 rounds away in a sharp lobe; the roots' arguments floored: at the pole
    # and the horizon their slopes would be infinite, NaN times a 0)
    sin = ((power - a2) / (1.0 - a2)).clamp(0.0, 1.0).clamp_min(_EPS * _EPS).sqrt()
    phi = 2.0 * math.pi * u[..., 0:1]
    return torch.cat([sin * torch.cos(phi), sin * torch.sin(phi), cos2.clamp_min(_EPS * _EPS).sqrt()], -1)


def _clearcoat(co: torch.Tensor, ci: torch.Tensor, wo_h: torch.Tensor, sin2_h: torch.Tensor,
               gloss: torch.Tensor) -> torch.Tensor:
    """``F D G`` of the clearcoat lobe as Mitsuba evaluates it: Schlick's Fresnel from 0.04, GTR1 of
    ``clearcoat_gloss``'s width, separable GGX shadowing of width 0.25, without ``1 / (4 n.wo n.wi)``."""
    fresnel = _CLEARCOAT_F0 + (1.0 - _CLEARCOAT_F0) * _schlick_weight(wo_h)

    def g1(cos):
        tan2 = (1.0 - cos * cos) / (cos * cos)
        return 2.0 / (1.0 + (1.0 + _CLEARCOAT_ALPHA_G ** 2 * tan2).sqrt())

    return fresnel * _gtr1(sin2_h, _clearcoat_alpha(gloss)) * g1(co) * g1(ci)


def principled_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool where ``si``'s points are principled; None where ``si.principled`` is unset."""
    return None if si.principled is None else si.principled > 0.5


class PerPointPrincipledBSDF(PerPointModelBSDF):
    """``PrincipledBSDF`` where ``si.principled`` marks a point, ``other`` elsewhere
    (:class:`lumigrad.shading.per_point.PerPointModelBSDF`)."""

    def __init__(self, other):
        super().__init__(other, PrincipledBSDF(), principled_mask)
        self.principled = self.model
