"""Anisotropic microfacet lobes: Mitsuba's ``alpha_u`` / ``alpha_v`` (``roughconductor``, ``roughdielectric``) and
the principled's ``anisotropic``, for materials with ``Material.roughness_aspect`` set.

A lobe of roughness ``r`` and aspect ``a`` has the widths ``alpha_u = alpha / a`` along the surface's tangent
``s`` and ``alpha_v = alpha a`` along ``t = n x s`` (``alpha = r^2``, their geometric mean; each at least
:data:`lumigrad.shading.brdf.ALPHA_MIN`). In the frame ``(s, t, n)``, with ``h = (x, y, z)`` a unit half vector
and ``w`` a unit direction::

    GGX       D(h) = 1 / (pi alpha_u alpha_v (x^2 / alpha_u^2 + y^2 / alpha_v^2 + z^2)^2)
    Beckmann  D(h) = exp(-(x^2 / alpha_u^2 + y^2 / alpha_v^2) / z^2) / (pi alpha_u alpha_v z^4)
    G1(w)     Smith's masking of the isotropic lobe of the width the direction sees,
              alpha_w^2 = (w_x^2 alpha_u^2 + w_y^2 alpha_v^2) / (w_x^2 + w_y^2)

(Heitz 2014, "Understanding the masking-shadowing function"; Mitsuba's ``MicrofacetDistribution``). Samples
stretch the view direction by ``(alpha_u, alpha_v)``, draw a normal of the unit-width lobe and stretch it back
(GGX: visible normals; Beckmann: by ``D (n.h)``), so their densities are the isotropic formulas with these ``D``
and ``G1``. ``a = 1`` is the isotropic lobe.

The tangent is the point's ``si.tangent`` (``xyz``; renderers give the mesh's tangents, else each triangle's
``dp/du`` of its texture coordinates, else its first edge, as Mitsuba's frames:
:func:`lumigrad.shading.tangents.frame_tangents`) made orthogonal to the shading normal; where it is unset or
parallel to the normal the frame is :func:`lumigrad.shading.warps.local_frame`'s.

Each point carries its material's ``log a``: ``si.log_aspect [..., 1]`` (0 on isotropic points), as
:func:`lumigrad.shading.sample_material` gives it. The fused path kernel's float32 twin:
:mod:`lumigrad.kernels.anisotropy_kernels`.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import torch

from .brdf import ALPHA_MIN, beckmann_lambda
from .surface import SurfaceSample
from .warps import beckmann_normal, ggx_visible_normal, local_frame

__all__ = ["AnisotropicLobe", "anisotropic_lobe", "aspect_alphas", "anisotropic_d", "anisotropic_g1",
           "anisotropic_normal", "anisotropic_terms", "is_anisotropic", "lobe_widths", "sampling_frame",
           "tangent_frame", "where_turned"]

#: Squared length, relative to the tangent's, below which a tangent made orthogonal to the normal is no direction
#: (within 1e-4 of the normal: float32 rounding would turn it anywhere, with slopes of 1e4 and more).
_TANGENT_MIN2 = 1e-8
#: Floor of ``z^2`` in Beckmann's ``D`` (as :func:`lumigrad.shading.brdf.beckmann_d`'s).
_COS2_FLOOR = 1e-6
_EPS = 1e-30


def is_anisotropic(si: SurfaceSample) -> bool:
    """Whether ``si`` carries aspects (``si.log_aspect``), so its lobes take the anisotropic forms."""
    return si.log_aspect is not None


def aspect_alphas(alpha: torch.Tensor, log_aspect: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` widths ``(alpha_u, alpha_v) = (alpha / a, alpha a)`` of a lobe of mean width ``alpha [..., 1]``
    and ``log a [..., 1]``, each at least ``ALPHA_MIN``. **Differentiability:** in both."""
    a = torch.exp(log_aspect)
    return torch.cat([alpha / a, alpha * a], -1).clamp_min(ALPHA_MIN)


def tangent_frame(n: torch.Tensor, tangent: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit ``(s, t)`` with ``(s, t, n)`` right-handed and orthonormal (``n [..., 3]`` unit): ``s`` along
    ``tangent [..., >= 3]`` (its ``xyz``) made orthogonal to ``n``, ``t = n x s``; :func:`local_frame` where
    ``tangent`` is None, zero or within 1e-4 of ``n``'s direction. **Differentiability:** in ``n`` and ``tangent``."""
    fallback = local_frame(n)
    if tangent is None:
        return fallback
    given = tangent[..., :3]
    x = given - n * (n * given).sum(-1, keepdim=True)
    len2 = (x * x).sum(-1, keepdim=True)
    ok = (len2 > _TANGENT_MIN2 * (given * given).sum(-1, keepdim=True)) & (len2 > _EPS)
    s = x * torch.where(ok, len2, torch.ones_like(len2)).rsqrt()
    s = torch.where(ok, s, fallback[0])
    t = torch.where(ok, torch.linalg.cross(*torch.broadcast_tensors(n, s)), fallback[1])
    return s, t


def anisotropic_d(h: torch.Tensor, alphas: torch.Tensor, beckmann: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``D(h) [..., 1]`` of the lobe of widths ``alphas [..., 2]`` at local unit half vectors ``h [..., 3]`` (0
    where ``h_z <= 0``); Beckmann's where ``beckmann`` (``[..., 1]`` bool) is True, GGX's elsewhere."""
    au, av = alphas[..., :1], alphas[..., 1:]
    x, y, z = h[..., :1], h[..., 1:2], h[..., 2:]
    slope2 = (x / au) ** 2 + (y / av) ** 2
    up = z > 0
    q = torch.where(up, slope2 + z * z, torch.ones_like(z))  # (0 at h = 0, wi = -wo: a NaN slope behind the where)
    d = 1.0 / (math.pi * au * av * q * q)
    if beckmann is not None:
        z2 = (z * z).clamp_min(_COS2_FLOOR)
        d = torch.where(beckmann, torch.exp(-slope2 / z2) / (math.pi * au * av * z2 * z2), d)
    return torch.where(up, d, torch.zeros_like(d))


def anisotropic_g1(w: torch.Tensor, alphas: torch.Tensor, beckmann: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Smith's masking ``G1(w) [..., 1]`` of the lobe of widths ``alphas [..., 2]`` for local unit directions
    ``w [..., 3]`` above the surface (``w_z > 0``): GGX's ``2 / (1 + sqrt(1 + alpha_w^2 tan^2))``, or Beckmann's
    ``1 / (1 + Lambda)`` where ``beckmann`` is True (Walter et al.'s fit, :func:`beckmann_lambda`, at the width
    ``alpha_w`` the direction sees)."""
    x, y, z = w[..., :1], w[..., 1:2], w[..., 2:].clamp_min(1e-6)
    sin2 = x * x + y * y
    xy = (alphas[..., :1] * x) ** 2 + (alphas[..., 1:] * y) ** 2  # alpha_w^2 sin^2
    g = 2.0 / (1.0 + (1.0 + xy / (z * z)).sqrt())
    if beckmann is not None:
        seen = sin2 > _EPS
        alpha_w = torch.where(seen, xy / torch.where(seen, sin2, torch.ones_like(sin2)), alphas[..., :1] ** 2).sqrt()
        g = torch.where(beckmann, 1.0 / (1.0 + beckmann_lambda(z.clamp_max(1.0), alpha_w)), g)
    return g


def anisotropic_normal(wo: torch.Tensor, alphas: torch.Tensor, u: torch.Tensor,
                       beckmann: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A local half vector ``[..., 3]`` of the lobe of widths ``alphas [..., 2]`` from uniform ``u [..., 2]``:
    GGX's visible from the local ``wo [..., 3]`` (:func:`ggx_visible_normal` with both widths), or where
    ``beckmann`` is True Beckmann's by ``D (n.h)`` (a unit-width normal, stretched). **Differentiability:** smooth
    in ``wo`` and ``alphas`` for fixed ``u``."""
    h = ggx_visible_normal(wo, alphas, u)
    if beckmann is not None:
        unit = beckmann_normal(torch.ones_like(alphas[..., :1]), u)
        b = torch.cat([alphas * unit[..., :2], unit[..., 2:]], -1)
        b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True).clamp_min(_EPS)
        h = torch.where(beckmann, b, h)
    return h


def lobe_widths(si: SurfaceSample) -> torch.Tensor:
    """``[..., 2]`` widths ``(alpha_u, alpha_v)`` of ``si``'s anisotropic lobes: :func:`aspect_alphas` of the mean
    width ``roughness^2`` (each width clamped on its own, as Mitsuba's)."""
    return aspect_alphas(si.roughness * si.roughness, si.log_aspect)


def anisotropic_terms(si: SurfaceSample, n: torch.Tensor, wo: torch.Tensor, wi: torch.Tensor, h: torch.Tensor,
                      beckmann: Optional[torch.Tensor] = None):
    """``(D(h), G1(wo), G1(wi))`` (each ``[..., 1]``) of ``si``'s anisotropic lobes (:func:`lobe_widths`) for the
    world unit vectors ``n``, ``wo``, ``wi`` and ``h`` (the shading normal, the two directions, their half vector),
    in the frame of ``si.tangent`` (:func:`tangent_frame`)."""
    s, t = tangent_frame(n, si.tangent)
    alphas = lobe_widths(si)

    def local(v):
        return torch.cat([(v * s).sum(-1, keepdim=True), (v * t).sum(-1, keepdim=True),
                          (v * n).sum(-1, keepdim=True)], -1)

    return (anisotropic_d(local(h), alphas, beckmann), anisotropic_g1(local(wo), alphas, beckmann),
            anisotropic_g1(local(wi), alphas, beckmann))


def where_turned(si: SurfaceSample, anisotropic, isotropic) -> tuple:
    """The tensors of ``anisotropic`` where the point's aspect is not 1 (``si.log_aspect != 0``), those of
    ``isotropic`` elsewhere: each point's lobe takes the isotropic arithmetic unless it is anisotropic, as the fused
    kernel's (the same bits as a scene without aspects)."""
    turned = si.log_aspect != 0
    return tuple(torch.where(turned, a, b) for a, b in zip(anisotropic, isotropic))


def sampling_frame(si: SurfaceSample, n: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The frame a lobe samples in: ``si.tangent``'s where the point's aspect is not 1 (:func:`tangent_frame`),
    else :func:`local_frame`'s (an isotropic lobe does not depend on it; the fused kernel's twin chooses alike)."""
    fallback = local_frame(n)
    if not is_anisotropic(si):
        return fallback
    s, t = tangent_frame(n, si.tangent)
    turned = si.log_aspect != 0
    return torch.where(turned, s, fallback[0]), torch.where(turned, t, fallback[1])


class AnisotropicLobe(NamedTuple):
    """The anisotropic lobe of each point, for BSDFs that take plain tensors (the rough dielectric's functions):
    its frame ``s, t [..., 3]`` (:func:`tangent_frame`), its widths ``[..., 2]`` (:func:`lobe_widths`) and
    ``turned [..., 1]`` (bool), where the aspect is not 1 (elsewhere the isotropic arithmetic holds, as
    :func:`where_turned`'s)."""
    s: torch.Tensor
    t: torch.Tensor
    widths: torch.Tensor
    turned: torch.Tensor

    def local(self, v: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """World ``v [..., 3]`` in the frame ``(s, t, n)``."""
        return torch.cat([(v * self.s).sum(-1, keepdim=True), (v * self.t).sum(-1, keepdim=True),
                          (v * n).sum(-1, keepdim=True)], -1)


def anisotropic_lobe(si: SurfaceSample) -> Optional[AnisotropicLobe]:
    """:class:`AnisotropicLobe` of ``si`` about its unit shading normal, or None where ``si`` carries no aspects
    (reads no values)."""
    if not is_anisotropic(si):
        return None
    n = si.normal / torch.linalg.vector_norm(si.normal, dim=-1, keepdim=True)
    s, t = tangent_frame(n, si.tangent)
    return AnisotropicLobe(s, t, lobe_widths(si), si.log_aspect != 0)
