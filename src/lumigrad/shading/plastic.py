"""Mitsuba's plastic: a diffuse base under a smooth or rough dielectric interface (Mitsuba 3's ``plastic`` and
``roughplastic``), for materials with ``Material.plastic = True``.

With ``wo`` towards the viewer, ``wi`` towards the light (both above the surface), ``c`` the base colour (the
diffuse reflectance), ``eta`` the material's ``ior`` (interior over exterior), ``alpha = max(roughness^2,
ALPHA_MIN)`` and ``h = normalize(wi + wo)``::

    f = F(wo.h, eta) D(h) G1(wo) G1(wi) / (4 n.wo n.wi)                   the interface's rough reflection
      + c / (1 - R_int) * t(n.wo) t(n.wi) / (pi eta^2)                    light that crossed it twice

``F`` the exact dielectric Fresnel reflectance, ``D`` and ``G1`` GGX's or Beckmann's (``si.beckmann``), the
separable shadowing Mitsuba uses. ``t(mu)`` is the interface's transmittance: the fraction of the light arriving at
``cos = mu`` that it refracts inside, masking of the refracted direction included (what single scattering loses
at grazing angles is lost to the diffuse base too), tabulated at Mitsuba's 64 cosines ``max(1e-6, i / 63)``
and interpolated linearly as Mitsuba does; ``R_int = 2 mean_i(R'(mu_i) mu_i)`` is the fraction of the diffuse
light that the interface reflects back inside (``R'`` the albedo seen from inside, ``1 / eta``), the same
discrete mean Mitsuba takes (its ``nonlinear = false``). A ``roughness`` of 0 is a sharp but finite lobe
(``ALPHA_MIN``) standing in for Mitsuba's smooth ``plastic``, whose ``t`` is ``1 - F`` to within the lobe's width
(and whose coat delta lights never meet: ``Material.delta_specular``, :meth:`PlasticBSDF.eval_diffuse`).

The albedos are integrals over microfacet normals, evaluated per material by Gauss-Legendre quadrature
(:func:`plastic_table`): in PyTorch, so the material's roughness and ior get gradients through them too. Each
shading point carries its material's table, ``si.plastic [..., 66]`` (64 transmittances, ``R_int``, and a 1 that
marks the point as plastic), as :func:`lumigrad.shading.sample_material` gives it.

Sampling: the specular lobe with probability ``(1 - t(n.wo)) w / ((1 - t(n.wo)) w + t(n.wo) (1 - w))``, ``w = 1 /
(1 + mean(c))`` (Mitsuba's weights), GGX normals visible from ``wo`` or Beckmann normals by ``D (n.h)``; otherwise
a cosine-distributed direction.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.utils.checkpoint

from .._checks import PerVersion
from .brdf import ALPHA_MIN, BSDFSample, beckmann_d, ggx_d, smith_g1
from .dielectric import fresnel_dielectric_unchecked
from .per_point import PerPointModelBSDF, sample_at
from .surface import SurfaceSample
from .warps import beckmann_normal, cosine_hemisphere, ggx_visible_normal, local_frame, to_local, to_world

__all__ = ["PLASTIC_TABLE", "PerPointPlasticBSDF", "PlasticBSDF", "material_plastic_table", "plastic_mask",
           "plastic_table"]

#: Cosines at which the interface's transmittance is tabulated (Mitsuba's ``MTS_ROUGH_TRANSMITTANCE_RES``).
TABLE_SIZE = 64
#: Columns of a point's ``si.plastic``: the transmittances, ``R_int`` and the plastic flag.
PLASTIC_TABLE = TABLE_SIZE + 2
#: Above this ior a smooth plastic's internal reflectance is integrated instead of taken from the fit Mitsuba uses
#: (0.6 % off at 2, 4 % at 2.5, above 1 at 3.9).
SMOOTH_FIT_MAX_IOR = 2.0
#: Gauss-Legendre nodes per axis of the albedo quadrature over Beckmann normals.
QUADRATURE = 64
_EPS = 1e-12


def _fresnel(cos_i: torch.Tensor, eta) -> torch.Tensor:
    return fresnel_dielectric_unchecked(cos_i.clamp(-1.0, 1.0), eta)[0]


def _gauss_legendre_grid(res: int, like: torch.Tensor):
    """``(u [res^2, 2], weights [res^2])``: Gauss-Legendre nodes mapped to [0, 1]^2, weights summing to 1."""
    x, w = np.polynomial.legendre.leggauss(res)
    x = torch.as_tensor((x + 1) / 2, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(w / 2, dtype=like.dtype, device=like.device)
    u0, u1 = torch.meshgrid(x, x, indexing="ij")
    return torch.stack([u0.reshape(-1), u1.reshape(-1)], -1), (w[:, None] * w[None, :]).reshape(-1)


def _albedo(mu: torch.Tensor, alpha: torch.Tensor, eta, beckmann: bool, transmit: bool = False) -> torch.Tensor:
    """Directional albedo ``[M]`` of the interface seen at the cosines ``mu [M]``: its rough reflection's
    (``F D G1 G1 / (4 cos cos)``), or with ``transmit`` the fraction it refracts to the other side, masking of the
    refracted direction included (Mitsuba's ``eval_reflectance`` and ``eval_transmittance``): the mean over normals
    ``h`` of ``X G1(w')``, ``X = F`` and ``w'`` the mirror direction or ``X = 1 - F`` and ``w'`` the refracted
    one, ``h`` drawn from GGX's visible normals on Mitsuba's Gauss-Legendre grid (32^2 nodes, 128^2 for ``eta <
    1``), or for Beckmann by ``D (n.h)`` (:data:`QUADRATURE`^2 nodes, the weight ``G1(wo) (wo.h) / (n.wo n.h)``)."""
    eta = torch.as_tensor(eta, dtype=mu.dtype, device=mu.device)
    wo = torch.stack([(1.0 - mu * mu).clamp_min(0.0).sqrt(), torch.zeros_like(mu), mu], -1)  # [M, 3]
    if beckmann:
        u, weights = _gauss_legendre_grid(QUADRATURE, mu)
        h = beckmann_normal(alpha, u)  # [Q, 3]
        wo_h = wo @ h.T  # [M, Q]
        h_z = h[:, 2].expand_as(wo_h)
        mask = torch.ones_like(wo_h, dtype=torch.bool)
        weight = smith_g1(mu[:, None].expand_as(wo_h), alpha, mask) * wo_h / (mu[:, None] * h_z).clamp_min(_EPS)
    else:
        u, weights = _gauss_legendre_grid(32 if float(eta.detach()) > 1 else 128, mu)
        M, Q = mu.shape[0], u.shape[0]
        h = ggx_visible_normal(wo[:, None, :].expand(M, Q, 3), alpha, u[None].expand(M, Q, 2))  # [M, Q, 3]
        wo_h = (wo[:, None, :] * h).sum(-1)
        h_z = h[..., 2]
        mask = None
        weight = torch.ones_like(wo_h)  # (the visible normals' density carries G1(wo) (wo.h) D / n.wo)
    f, cos_t, _, eta_ti = fresnel_dielectric_unchecked(wo_h.clamp(-1.0, 1.0), eta)
    if transmit:  # Snell about h; the refracted direction must cross the surface and see h's back
        out = h_z * (wo_h * eta_ti + cos_t) - mu[:, None] * eta_ti
        ok = (wo_h > 0) & (out < 0) & (cos_t < 0) & (f < 1)  # (cos_t = out . h)
        x_term = 1.0 - f
    else:
        out = 2.0 * wo_h * h_z - mu[:, None]
        ok = (wo_h > 0) & (out > 0)
        x_term = f
    value = x_term * smith_g1(out.abs().clamp_min(_EPS), alpha, mask) * weight
    return (torch.where(ok, value, torch.zeros_like(value)) * weights).sum(-1)


def plastic_table(roughness: torch.Tensor, ior: torch.Tensor, beckmann: bool = False) -> torch.Tensor:
    """``[66]``: the transmittances ``t(mu_i)`` (:func:`_albedo` with ``transmit``; ``1 - F`` at ``roughness`` 0,
    Mitsuba's smooth ``plastic``, whose ``R_int`` is then :func:`fresnel_diffuse_reflectance` of ``1 / ior``) at ``mu_i = max(1e-6, i / 63)``, the internal
    reflectance ``R_int = 2 mean_i(R'(mu_i) mu_i)`` (``R'`` with ``1 / ior``) and the flag 1 of a material with
    ``roughness`` and ``ior`` (0-dim tensors, differentiable), GGX or ``beckmann``."""
    alpha = (roughness * roughness).clamp_min(ALPHA_MIN)
    mu = (torch.arange(TABLE_SIZE, dtype=alpha.dtype, device=alpha.device) / (TABLE_SIZE - 1)).clamp_min(1e-6)
    if float(roughness.detach()) == 0.0:  # Mitsuba's smooth plastic: t = 1 - F, R_int its diffuse Fresnel reflectance
        eta = torch.as_tensor(ior, dtype=alpha.dtype, device=alpha.device)
        t = 1.0 - fresnel_dielectric_unchecked(mu, eta)[0]
        if float(eta.detach()) <= SMOOTH_FIT_MAX_IOR:
            r_int = fresnel_diffuse_reflectance(1.0 / eta)
        else:  # beyond the fit's range (it reaches 1 at ior 3.9): the integral itself
            x, w = np.polynomial.legendre.leggauss(256)
            nodes = torch.as_tensor((x + 1) / 2, dtype=alpha.dtype, device=alpha.device)
            r_int = (fresnel_dielectric_unchecked(nodes, 1.0 / eta)[0] * nodes *
                     torch.as_tensor(w, dtype=alpha.dtype, device=alpha.device)).sum()
    else:
        t = _albedo(mu, alpha, ior, beckmann, transmit=True)
        r_int = 2.0 * (_albedo(mu, alpha, 1.0 / ior, beckmann) * mu).mean()
    return torch.cat([t, r_int.reshape(1), torch.ones_like(r_int).reshape(1)])


def fresnel_diffuse_reflectance(eta: torch.Tensor) -> torch.Tensor:
    """``2 int_0^1 F(mu, eta) mu dmu``, the dielectric's reflectance of uniform diffuse light, by the published fits
    Mitsuba takes (Egan and Hilgeman 1973 for ``eta < 1``, within 0.1 % for ``1 / eta`` up to 1.5; d'Eon and Irving
    2011 above)."""
    inv = 1.0 / eta
    below = -1.4399 * eta * eta + 0.7099 * eta + 0.6681 + 0.0636 * inv
    above = 0.919317 + inv * (-3.4793 + inv * (6.75335 + inv * (-7.80989 + inv * (4.98554 - 1.36881 * inv))))
    return torch.where(eta < 1, below, above)


def _lerp_table(table: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Mitsuba's ``lerp_gather``: ``table [..., 64]`` at ``cos [..., 1]`` in [0, 1], linearly."""
    x = torch.nan_to_num(cos, nan=0.0).clamp(0.0, 1.0) * (TABLE_SIZE - 1)
    index = x.detach().floor().clamp(0, TABLE_SIZE - 2).long()
    w1 = x - index.to(x.dtype)
    v0 = table.gather(-1, index)
    v1 = table.gather(-1, index + 1)
    return (1.0 - w1) * v0 + w1 * v1


class PlasticBSDF:
    """Mitsuba's ``plastic`` / ``roughplastic`` (the module docstring), from ``si.base_color`` (the diffuse
    reflectance), ``si.roughness``, ``si.ior``, ``si.beckmann`` and the table ``si.plastic``. Reflection only:
    ``eval`` and ``pdf`` are 0 unless ``n.wo > 0`` and ``n.wi > 0``.

    **Differentiability:** ``eval`` and ``pdf`` in the base colour, roughness and ior (also through the table,
    where the material's were differentiable), the normal and both directions; ``sample`` as
    :func:`lumigrad.shading.metallic_roughness_sample` (a reparameterised specular direction, a discrete lobe
    choice).
    """

    def _terms(self, si: SurfaceSample, wi: torch.Tensor):
        n = si.normal / torch.linalg.vector_norm(si.normal, dim=-1, keepdim=True).clamp_min(_EPS)
        wo = si.wo / torch.linalg.vector_norm(si.wo, dim=-1, keepdim=True).clamp_min(_EPS)
        wi = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True).clamp_min(_EPS)
        cos_o = (n * wo).sum(-1, keepdim=True)
        cos_i = (n * wi).sum(-1, keepdim=True)
        valid = (cos_o > 0) & (cos_i > 0)
        co, ci = cos_o.clamp(1e-6, 1.0), cos_i.clamp(1e-6, 1.0)
        hv = wi + wo
        h = hv / torch.linalg.vector_norm(hv, dim=-1, keepdim=True).clamp_min(1e-6)
        cos_h = (n * h).sum(-1, keepdim=True).clamp(0.0, 1.0)
        wo_h = (wo * h).sum(-1, keepdim=True)
        # 1 - cos_h^2 as |n x h|^2: no cancellation in a sharp lobe (float32's 1 - cos^2 is rounding within 1e-3)
        sin2_h = torch.linalg.cross(*torch.broadcast_tensors(n, h)).square().sum(-1, keepdim=True).clamp(0.0, 1.0)
        return n, wo, wi, co, ci, valid, cos_h, wo_h, sin2_h

    def _alpha(self, si):
        return (si.roughness * si.roughness).clamp_min(ALPHA_MIN)

    def _beckmann(self, si):
        return None if si.beckmann is None else si.beckmann > 0.5

    def _transmittance(self, si: SurfaceSample, cos: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """``t(cos)``: the table, linearly (Mitsuba's rough plastic); ``1 - F(cos)`` exactly where the roughness
        is 0 (Mitsuba's smooth plastic)."""
        t = _lerp_table(si.plastic[..., :TABLE_SIZE], cos)
        return torch.where(si.roughness == 0, 1.0 - _fresnel(cos, eta), t)

    def _specular_probability(self, si: SurfaceSample, co: torch.Tensor) -> torch.Tensor:
        t_o = self._transmittance(si, co, torch.as_tensor(si.ior, dtype=co.dtype, device=co.device))
        w = 1.0 / (1.0 + si.base_color.mean(-1, keepdim=True))
        spec, diff = (1.0 - t_o) * w, t_o * (1.0 - w)
        total = spec + diff
        return torch.where(total > 0, spec / torch.where(total > 0, total, torch.ones_like(total)),
                           torch.ones_like(total))

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine."""
        n, wo, wi, co, ci, valid, cos_h, wo_h, sin2_h = self._terms(si, wi)
        alpha, bk = self._alpha(si), self._beckmann(si)
        a2 = alpha * alpha
        d = ggx_d(sin2_h, a2)
        if bk is not None:
            d = torch.where(bk, beckmann_d(sin2_h, a2), d)
        g = smith_g1(co, alpha, bk) * smith_g1(ci, alpha, bk)
        eta = torch.as_tensor(si.ior, dtype=co.dtype, device=co.device)
        spec = _fresnel(wo_h, eta) * d * g / (4.0 * co * ci)
        f = spec + self._diffuse(si, co, ci, eta)
        return torch.where(valid, f, torch.zeros_like(f))

    def _diffuse(self, si: SurfaceSample, co: torch.Tensor, ci: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """The diffuse base's value at the clamped cosines ``co``, ``ci``: the light that enters, scatters in the
        base (internally reflected ``R_int``) and leaves."""
        t_o, t_i = self._transmittance(si, co, eta), self._transmittance(si, ci, eta)
        r_int = si.plastic[..., TABLE_SIZE:TABLE_SIZE + 1]
        return si.base_color / (1.0 - r_int) * (t_o * t_i / (math.pi * eta * eta))

    def eval_diffuse(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """The diffuse base's part of :meth:`eval` ``[..., C]``, without the specular coat: what a delta light
        sees of a smooth plastic (``Material.delta_specular``: the coat is a Dirac lobe)."""
        n, wo, wi, co, ci, valid, cos_h, wo_h, sin2_h = self._terms(si, wi)
        f = self._diffuse(si, co, ci, torch.as_tensor(si.ior, dtype=co.dtype, device=co.device))
        return torch.where(valid, f, torch.zeros_like(f))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        n, wo, wi, co, ci, valid, cos_h, wo_h, sin2_h = self._terms(si, wi)
        alpha, bk = self._alpha(si), self._beckmann(si)
        a2 = alpha * alpha
        d = ggx_d(sin2_h, a2)
        spec = d * smith_g1(co, alpha, None) / (4.0 * co)  # visible GGX normals, reflected
        if bk is not None:
            b = beckmann_d(sin2_h, a2) * cos_h / (4.0 * wo_h.clamp_min(1e-6))
            spec = torch.where(bk, b, spec)
        p = self._specular_probability(si, co)
        pdf = p * spec + (1.0 - p) * ci / math.pi
        return torch.where(valid, pdf, torch.zeros_like(pdf))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (lobe) and ``u2 [..., 2]`` (direction)."""
        n = si.normal / torch.linalg.vector_norm(si.normal, dim=-1, keepdim=True)
        wo = si.wo / torch.linalg.vector_norm(si.wo, dim=-1, keepdim=True)
        n_b, wo_b = torch.broadcast_tensors(n, wo)
        t, b = local_frame(n_b)
        wo_l = to_local(wo_b, t, b, n_b)
        alpha, bk = self._alpha(si), self._beckmann(si)
        h = ggx_visible_normal(wo_l, alpha, u2)
        if bk is not None:
            h = torch.where(bk, beckmann_normal(alpha, u2), h)
        wi_spec = 2.0 * (wo_l * h).sum(-1, keepdim=True) * h - wo_l
        p = self._specular_probability(si, wo_l[..., 2:].clamp(1e-6, 1.0))
        wi_l = torch.where(u1 < p, wi_spec, cosine_hemisphere(u2))
        wi = to_world(wi_l, t, b, n_b)
        wi = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True).clamp_min(_EPS)
        return sample_at(self, si, n_b, wi)


def plastic_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool where ``si``'s points are plastic; None where ``si.plastic`` is unset."""
    return None if si.plastic is None else si.plastic[..., PLASTIC_TABLE - 1:] > 0.5


class PerPointPlasticBSDF(PerPointModelBSDF):
    """``PlasticBSDF`` where ``si.plastic`` marks a point, ``other`` (the glTF model) elsewhere
    (:class:`lumigrad.shading.per_point.PerPointModelBSDF`)."""

    def __init__(self, other):
        super().__init__(other, PlasticBSDF(), plastic_mask)
        self.plastic = self.model


_TABLES = PerVersion()


def material_plastic_table(roughness: torch.Tensor, ior: torch.Tensor, beckmann: bool) -> torch.Tensor:
    """:func:`plastic_table` of a material's ``roughness_factor`` and ``ior`` (one value each; the roughness
    clamped to [0, 1]). Without a gradient to take it is kept per tensor version (:class:`PerVersion`: not for
    inference tensors); with one it is rebuilt under a checkpoint, so that only the table waits for the backward
    pass (its quadratures' intermediates are recomputed there)."""
    if roughness.numel() != 1 or ior.numel() != 1:
        raise ValueError(f"a plastic material needs one roughness_factor and one ior; got shapes "
                         f"{tuple(roughness.shape)} and {tuple(ior.shape)}")

    def table_of(r, eta):
        return plastic_table(r.reshape(()).clamp(0.0, 1.0), eta.reshape(()).to(r), beckmann)
    if torch.is_grad_enabled() and (roughness.requires_grad or ior.requires_grad):
        return torch.utils.checkpoint.checkpoint(table_of, roughness, ior, use_reentrant=False)
    key = ("plastic", beckmann, roughness.dtype, str(roughness.device))
    hit = _TABLES.recall(roughness, key)
    if hit is None or hit[0] is not ior or hit[1] != PerVersion._version(ior):
        hit = (ior, PerVersion._version(ior), table_of(roughness.detach(), ior.detach()))
        _TABLES.keep(roughness, key, hit)
    return hit[2]
