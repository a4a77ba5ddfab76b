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
angles on rough surfaces (the retro-reflection). Mitsuba's defaults for the other lobes are what this models:
``spec_tint``, ``sheen``, ``clearcoat``, ``flatness``, ``anisotropic`` and ``spec_trans`` all 0 (the Mitsuba
reader keeps the glTF approximation, and says so, for files that set them). Reflection only: ``eval`` and ``pdf``
are 0 unless ``n.wo > 0`` and ``n.wi > 0`` (Mitsuba's principled is black from behind; ``twosided`` flips it).
An ``ior`` of at least 1 is assumed, as the Mitsuba reader requires: below 1 Mitsuba takes the metal's Schlick
weight at the refracted cosine, this model at ``wo.h`` (up to 23 % apart at ior 0.8 and metallic 0.3; a
dielectric still agrees). A white rough surface reflects more than it receives near normal incidence (albedo
1.08 at roughness 0.9): Burley's retro-reflection, in Mitsuba's model too.

Sampling: the specular lobe (GGX normals visible from ``wo``, reflected) with probability ``s / (s + d)``, ``s``
and ``d`` the channel means of the Schlick-estimated specular reflectance at ``n.wo`` and of ``(1 - m) c``;
otherwise a cosine-distributed direction.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .brdf import ALPHA_MIN, BSDFSample, ggx_d, smith_g1
from .dielectric import fresnel_dielectric_unchecked
from .per_point import PerPointModelBSDF
from .surface import SurfaceSample
from .warps import cosine_hemisphere, ggx_visible_normal, local_frame, to_local, to_world

__all__ = ["PerPointPrincipledBSDF", "PrincipledBSDF", "principled_mask", "specular_from_ior", "ior_from_specular"]

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
    ``si.metallic`` and ``si.ior``.

    **Differentiability:** ``eval`` and ``pdf`` in the base colour, roughness, metallic and ior, the normal and
    both directions; ``sample`` as :func:`lumigrad.shading.metallic_roughness_sample` (a reparameterised specular
    direction, a discrete lobe choice).
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
        return co, ci, valid, wo_h, sin2_h

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

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine."""
        co, ci, valid, wo_h, sin2_h = self._terms(si, wi)
        alpha = self._alpha(si)
        eta = torch.as_tensor(si.ior, dtype=co.dtype, device=co.device)
        c, m, r = si.base_color, si.metallic, si.roughness
        s_h = _schlick_weight(wo_h)
        fresnel = (1.0 - m) * fresnel_dielectric_unchecked(wo_h, eta)[0] + m * (c + (1.0 - c) * s_h)
        spec = fresnel * ggx_d(sin2_h, alpha * alpha) * smith_g1(co, alpha) * smith_g1(ci, alpha) / (4.0 * co * ci)
        s_o, s_i = _schlick_weight(co), _schlick_weight(ci)
        retro = 2.0 * r * wo_h * wo_h
        lobes = (1.0 - 0.5 * s_o) * (1.0 - 0.5 * s_i) + retro * (s_o + s_i + s_o * s_i * (retro - 1.0))
        f = spec + (1.0 - m) * c / math.pi * lobes
        return torch.where(valid, f, torch.zeros_like(f))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        co, ci, valid, wo_h, sin2_h = self._terms(si, wi)
        alpha = self._alpha(si)
        spec = ggx_d(sin2_h, alpha * alpha) * smith_g1(co, alpha) / (4.0 * co)  # visible normals, reflected
        p = self._specular_probability(si, co)
        pdf = p * spec + (1.0 - p) * ci / math.pi
        return torch.where(valid, pdf, torch.zeros_like(pdf))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (lobe) and ``u2 [..., 2]`` (direction)."""
        n, wo = _unit(si.normal), _unit(si.wo)
        n_b, wo_b = torch.broadcast_tensors(n, wo)
        t, b = local_frame(n_b)
        wo_l = to_local(wo_b, t, b, n_b)
        h = ggx_visible_normal(wo_l, self._alpha(si), u2)
        wi_spec = 2.0 * (wo_l * h).sum(-1, keepdim=True) * h - wo_l
        p = self._specular_probability(si, wo_l[..., 2:].clamp(_DOT_EPS, 1.0))
        wi = _unit(to_world(torch.where(u1 < p, wi_spec, cosine_hemisphere(u2)), t, b, n_b))
        pdf = self.pdf(si, wi)
        f = self.eval(si, wi)
        ok = pdf > 0
        cos = (n_b * wi).sum(-1, keepdim=True).clamp_min(0.0)
        weight = torch.where(ok, f * cos / torch.where(ok, pdf, torch.ones_like(pdf)), torch.zeros_like(f))
        return BSDFSample(wi, weight, pdf)


def principled_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool where ``si``'s points are principled; None where ``si.principled`` is unset."""
    return None if si.principled is None else si.principled > 0.5


class PerPointPrincipledBSDF(PerPointModelBSDF):
    """``PrincipledBSDF`` where ``si.principled`` marks a point, ``other`` elsewhere
    (:class:`lumigrad.shading.per_point.PerPointModelBSDF`)."""

    def __init__(self, other):
        super().__init__(other, PrincipledBSDF(), principled_mask)
        self.principled = self.model
