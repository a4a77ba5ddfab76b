"""Mitsuba's rough conductor with the exact Fresnel reflectance of a metal (Mitsuba 3's ``conductor`` and
``roughconductor``), for materials with ``Material.conductor_eta`` and ``Material.conductor_k`` set.

With ``wo`` towards the viewer, ``wi`` towards the light (both above the surface), ``c`` the base colour (the
reflectance at normal incidence), ``eta + i k`` the metal's complex index of refraction per channel, ``alpha =
max(roughness^2, ALPHA_MIN)`` and ``h = normalize(wi + wo)``::

    f = c F(wo.h; eta, k) / F(1; eta, k) D(h) G1(wo) G1(wi) / (4 n.wo n.wi)

``F`` the unpolarised Fresnel reflectance of a conductor (:func:`fresnel_conductor`), ``D`` and ``G1`` GGX's or
Beckmann's (``si.beckmann``), with the separable shadowing Mitsuba uses; anisotropic (Mitsuba's ``alpha_u``
and ``alpha_v``) where ``si.log_aspect`` is set (``Material.roughness_aspect``,
:mod:`lumigrad.shading.anisotropy`). The base colour scales the curve and
sets its height at normal incidence; ``eta`` and ``k`` set its shape: gold's, copper's or chromium's rise
towards grazing light, which glTF's Schlick curve (the metal lobe of :func:`lumigrad.shading.metallic_roughness`)
gets wrong by up to a quarter at 75 degrees. Mitsuba's ``specular_reflectance`` ``s`` with ``eta, k`` is the base
colour ``s F(1; eta, k)``, which :func:`lumigrad.io.load_mitsuba` writes. ``metallic``, ``ior``,
``specular_factor`` and ``transmission_factor`` are not used. A ``roughness`` of 0 is a sharp but finite lobe
(``ALPHA_MIN``) standing in for Mitsuba's smooth ``conductor``, whose delta lobe delta lights never meet
(``Material.delta_specular``, :mod:`lumigrad.shading.delta_specular`).

Each shading point carries its material's ``eta`` and ``k``: ``si.conductor [..., 7]`` (``eta`` 3, ``k`` 3 and a 1
that marks the point as a conductor), as :func:`lumigrad.shading.sample_material` gives it.

Sampling: GGX normals visible from ``wo`` or Beckmann normals by ``D (n.h)``, reflected (one lobe).
"""

from __future__ import annotations

from typing import Optional

import torch

from .anisotropy import (anisotropic_normal, anisotropic_terms, is_anisotropic, lobe_widths, sampling_frame,
                         where_turned)
from .brdf import ALPHA_MIN, BSDFSample, beckmann_d, ggx_d, smith_g1
from .per_point import PerPointModelBSDF, sample_at
from .surface import SurfaceSample
from .warps import beckmann_normal, ggx_visible_normal, to_local, to_world

__all__ = ["CONDUCTOR_VALUES", "ConductorBSDF", "PerPointConductorBSDF", "conductor_mask", "fresnel_conductor"]

#: Columns of a point's ``si.conductor``: ``eta`` (3), ``k`` (3) and the conductor flag.
CONDUCTOR_VALUES = 7
#: Floor of the square roots' arguments and of the denominators of :func:`fresnel_conductor` (finite values and
#: slopes where a root's argument reaches 0: a real ``eta < 1`` at the critical angle, ``eta = 1, k = 0``).
_FLOOR = 1e-30
_EPS = 1e-12
#: The least reflectance head-on the curve is divided by (``lumigrad.shading.material.MIN_CONDUCTOR_REFLECTANCE``:
#: below it the curve would be float32 rounding).
MIN_HEAD_ON = 1e-4


def fresnel_conductor(cos: torch.Tensor, eta: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The unpolarised Fresnel reflectance of a conductor of complex index of refraction ``eta + i k`` (relative
    to the outside) seen at ``cos`` (the cosine between the direction and the (micro)normal, clamped to [0, 1]),
    ``(R_s + R_p) / 2``, in real arithmetic; broadcasting. ``F(1) = ((eta - 1)^2 + k^2) / ((eta + 1)^2 + k^2)``,
    ``F(0) = 1``; ``k = 0`` gives the dielectric's reflectance (``eta >= 1``).

    **Differentiability:** in ``cos``, ``eta`` and ``k`` (finite slopes everywhere; see ``_FLOOR``)."""
    c = cos.clamp(0.0, 1.0)
    c2 = c * c
    s2 = 1.0 - c2
    eta2, k2 = eta * eta, k * k
    t0 = eta2 - k2 - s2
    a2pb2 = (t0 * t0 + 4.0 * eta2 * k2).clamp_min(_FLOOR).sqrt()
    a = (0.5 * (a2pb2 + t0)).clamp_min(_FLOOR).sqrt()
    t1 = a2pb2 + c2
    t2 = 2.0 * c * a
    r_s = (t1 - t2) / (t1 + t2).clamp_min(_FLOOR)
    t3 = c2 * a2pb2 + s2 * s2
    t4 = t2 * s2
    r_p = r_s * (t3 - t4) / (t3 + t4).clamp_min(_FLOOR)
    return 0.5 * (r_s + r_p)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_EPS)


class ConductorBSDF:
    """Mitsuba's ``conductor`` / ``roughconductor`` (the module docstring) from ``si.base_color``,
    ``si.roughness``, ``si.beckmann`` and ``si.conductor`` (``eta``, ``k``). Reflection only: ``eval`` and
    ``pdf`` are 0 unless ``n.wo > 0`` and ``n.wi > 0``.

    **Differentiability:** ``eval`` and ``pdf`` in the base colour, roughness, ``eta`` and ``k``, the normal and
    both directions; ``sample`` reparameterised (the reflected direction of a drawn normal).
    """

    def _terms(self, si: SurfaceSample, wi: torch.Tensor):
        n, wo, wi = _unit(si.normal), _unit(si.wo), _unit(wi)
        cos_o = (n * wo).sum(-1, keepdim=True)
        cos_i = (n * wi).sum(-1, keepdim=True)
        valid = (cos_o > 0) & (cos_i > 0)
        co, ci = cos_o.clamp(1e-6, 1.0), cos_i.clamp(1e-6, 1.0)
        hv = wi + wo
        h = hv / torch.linalg.vector_norm(hv, dim=-1, keepdim=True).clamp_min(1e-6)
        cos_h = (n * h).sum(-1, keepdim=True).clamp(0.0, 1.0)
        wo_h = (wo * h).sum(-1, keepdim=True).clamp(0.0, 1.0)
        # 1 - (n.h)^2 as |n x h|^2: no cancellation inside a sharp lobe
        sin2_h = torch.linalg.cross(*torch.broadcast_tensors(n, h)).square().sum(-1, keepdim=True).clamp(0.0, 1.0)
        return co, ci, valid, cos_h, wo_h, sin2_h, (n, wo, wi, h)

    def _lobe(self, si: SurfaceSample, wi: torch.Tensor):
        """``(terms of _terms, D, G1(wo), G1(wi))``: the isotropic lobe's, the anisotropic one's at the points whose
        aspect is not 1 (:mod:`lumigrad.shading.anisotropy`)."""
        co, ci, valid, cos_h, wo_h, sin2_h, vectors = self._terms(si, wi)
        alpha, bk = self._alpha(si), self._beckmann(si)
        a2 = alpha * alpha
        d = ggx_d(sin2_h, a2)
        if bk is not None:
            d = torch.where(bk, beckmann_d(sin2_h, a2), d)
        g_o, g_i = smith_g1(co, alpha, bk), smith_g1(ci, alpha, bk)
        if is_anisotropic(si):  # (where the aspect is not 1: the isotropic forms elsewhere, as the fused kernel)
            d, g_o, g_i = where_turned(si, anisotropic_terms(si, *vectors, bk), (d, g_o, g_i))
        return (co, ci, valid, cos_h, wo_h), d, g_o, g_i

    def _alpha(self, si: SurfaceSample) -> torch.Tensor:
        return (si.roughness * si.roughness).clamp_min(ALPHA_MIN)

    def _beckmann(self, si: SurfaceSample) -> Optional[torch.Tensor]:
        return None if si.beckmann is None else si.beckmann > 0.5

    def fresnel(self, si: SurfaceSample, cos: torch.Tensor) -> torch.Tensor:
        """``c F(cos) / F(1)`` ``[..., C]``: the base colour times the conductor's curve relative to its value at
        normal incidence."""
        eta, k = si.conductor[..., 0:3], si.conductor[..., 3:6]
        k2 = k * k
        head_on = ((eta - 1.0) ** 2 + k2) / ((eta + 1.0) ** 2 + k2)  # (F(1), well conditioned)
        return si.base_color * (fresnel_conductor(cos, eta, k) / head_on.clamp_min(MIN_HEAD_ON))

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine."""
        (co, ci, valid, cos_h, wo_h), d, g_o, g_i = self._lobe(si, wi)
        f = self.fresnel(si, wo_h) * (d * g_o * g_i / (4.0 * co * ci))
        return torch.where(valid, f, torch.zeros_like(f))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        (co, ci, valid, cos_h, wo_h), d, g_o, _ = self._lobe(si, wi)
        pdf = d * g_o / (4.0 * co)  # visible GGX normals, reflected
        bk = self._beckmann(si)
        if bk is not None:
            pdf = torch.where(bk, d * cos_h / (4.0 * wo_h.clamp_min(1e-6)), pdf)
        return torch.where(valid, pdf, torch.zeros_like(pdf))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u2 [..., 2]`` (``u1``, the lobe's number, is not used: one lobe)."""
        n, wo = _unit(si.normal), _unit(si.wo)
        n_b, wo_b = torch.broadcast_tensors(n, wo)
        t, b = sampling_frame(si, n_b)
        wo_l = to_local(wo_b, t, b, n_b)
        alpha, bk = self._alpha(si), self._beckmann(si)
        h = ggx_visible_normal(wo_l, alpha, u2)
        if bk is not None:
            h = torch.where(bk, beckmann_normal(alpha, u2), h)
        if is_anisotropic(si):
            (h,) = where_turned(si, (anisotropic_normal(wo_l, lobe_widths(si), u2, bk),), (h,))
        wi = _unit(to_world(2.0 * (wo_l * h).sum(-1, keepdim=True) * h - wo_l, t, b, n_b))
        return sample_at(self, si, n_b, wi)


def conductor_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool where ``si``'s points are conductors; None where ``si.conductor`` is unset."""
    return None if si.conductor is None else si.conductor[..., CONDUCTOR_VALUES - 1:] > 0.5


class PerPointConductorBSDF(PerPointModelBSDF):
    """``ConductorBSDF`` where ``si.conductor`` marks a point, ``other`` elsewhere
    (:class:`lumigrad.shading.per_point.PerPointModelBSDF`)."""

    def __init__(self, other):
        super().__init__(other, ConductorBSDF(), conductor_mask)
        self.conductor = self.model
