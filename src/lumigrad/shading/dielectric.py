"""Dielectric interfaces (glass, water): exact Fresnel, a smooth (delta) and a rough (GGX microfacet) BSDF.

Conventions, as Mitsuba 3's ``dielectric`` and ``roughdielectric`` plugins (``docs/scene.md``):

* ``si.normal`` points to the **exterior** (the side the normal is on): it is the geometric outward normal,
  never flipped towards the viewer, so ``si.wo`` and ``wi`` may lie on either side of the surface. Both point
  away from the surface (``wo`` towards the viewer, ``wi`` towards the light), as everywhere in shading.
* ``eta`` is the relative index of refraction ``interior IOR / exterior IOR`` (Mitsuba's ``int_ior /
  ext_ior``): ``si.ior`` unless the BSDF was built with an ``eta``; a glass in air has ``eta = 1.5``, an air
  bubble in water ``1 / 1.33``.
* ``mode="radiance"`` (the default, Mitsuba's ``TransportMode::Radiance``): the BSDF transports radiance from
  ``wi`` to ``wo``, so transmission scales it by ``(eta_wo_side / eta_wi_side)^2`` (the solid angle compression
  across the interface): light refracted out of glass into air is ``1 / eta^2`` as bright per unit solid
  angle. ``mode="importance"`` gives the adjoint (``f_importance(wo, wi) = f_radiance(wi, wo)``, no such
  factor), for tracing from the lights. Reciprocity holds in the generalised form
  ``f(wo, wi) / eta_wo_side^2 = f(wi, wo) / eta_wi_side^2`` (radiance) (Veach 1997, section 5.2).
* ``eval`` is ``f`` without the cosine; ``sample``'s ``weight = f abs(n.wi) / pdf``. ``BSDFSample.eta`` is
  ``eta_wi_side / eta_wo_side`` for a refraction and 1 for a reflection (Mitsuba's ``bs.eta``).

The numbers are tensors that broadcast: ``eta`` a number or ``[..., 1]``, cosines ``[..., 1]``.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Tuple

import torch

from .._checks import check_choice, check_number, check_tensor
from .anisotropy import AnisotropicLobe, anisotropic_d, anisotropic_g1, anisotropic_lobe, anisotropic_normal
from .brdf import ALPHA_MIN, BSDFSample, beckmann_d, beckmann_g1
from .surface import SurfaceSample
from .bsdf import beckmann_mask as _beckmann
from .warps import beckmann_normal, ggx_visible_normal, local_frame, to_local, to_world

__all__ = ["fresnel_dielectric", "fresnel_dielectric_unchecked", "rough_dielectric_unchecked",
           "rough_dielectric_pdf_unchecked", "rough_dielectric_sample_unchecked", "SmoothDielectricBSDF",
           "RoughDielectricBSDF"]

#: Cosines and denominators are kept at least this far from 0 in branches that ``torch.where`` discards, so
#: that their (unused) gradients stay finite.
_EPS = 1e-12

Mode = Literal["radiance", "importance"]


# --------------------------------------------------------------------------------------------- Fresnel
def fresnel_dielectric(cos_i: torch.Tensor, eta) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate the exact, unpolarised Fresnel reflectance of a dielectric interface.

    With ``eta_it = eta`` where ``cos_i >= 0`` (arriving from the exterior) and ``1 / eta`` where
    ``cos_i < 0`` (from the interior), ``eta_ti = 1 / eta_it``, Snell's law
    ``cos_t^2 = 1 - eta_ti^2 (1 - cos_i^2)`` and ``c = abs(cos_i)``, ``ct = sqrt(cos_t^2)``::

        r_s = (c - eta_it ct) / (c + eta_it ct),   r_p = (eta_it c - ct) / (eta_it c + ct)
        F   = (r_s^2 + r_p^2) / 2                  (1 under total internal reflection: cos_t^2 <= 0)

    Args:
        cos_i: ``[...]`` cosine between the normal (pointing to the exterior) and the direction the light
            leaves towards (``wo``), in [-1, 1]; negative from the interior.
        eta: relative IOR ``interior / exterior``, ``> 0``, a number or a tensor broadcasting with ``cos_i``.

    Returns:
        ``(F, cos_t, eta_it, eta_ti)``, each the broadcast shape: the reflectance in [0, 1]; the cosine of the
        transmitted direction, with the sign opposite to ``cos_i`` (0 under total internal reflection);
        ``eta_it`` the IOR ratio transmitted side / incident side and ``eta_ti = 1 / eta_it``, the factor
        that scales the tangential part of the refracted direction (Mitsuba's ``fresnel``). ``F = 0`` where
        ``eta = 1``; ``F = 1`` at grazing incidence (``cos_i = 0``).

    Raises:
        TypeError / ValueError: naming ``cos_i`` or ``eta``: not a tensor / number, NaN or Inf, ``cos_i``
            outside [-1, 1], ``eta <= 0``.

    **Differentiability:** smooth in ``cos_i`` and ``eta`` away from the critical angle; under total internal
    reflection ``F = 1`` with zero gradients, and the gradient at the critical angle itself is large but
    finite (the square root is guarded).

    Example: normal incidence on glass, ``F = ((eta - 1) / (eta + 1))^2 = 0.04``::

        >>> F, cos_t, eta_it, eta_ti = fresnel_dielectric(torch.tensor([1.0, -1.0]), 1.5)
        >>> [round(x, 6) for x in F.tolist()], cos_t.tolist(), [round(x, 6) for x in eta_it.tolist()]
        ([0.04, 0.04], [-1.0, 1.0], [1.5, 0.666667])
    """
    check_tensor(cos_i, "cos_i", floating=True, finite=True)
    if isinstance(eta, torch.Tensor):
        check_tensor(eta, "eta", floating=True, finite=True, device=cos_i.device)
        if eta.numel() and eta.device.type != "meta" and bool((eta <= 0).any()):
            raise ValueError(f"eta must be > 0; got min {float(eta.detach().min()):.9g}")
    else:
        eta = check_number(eta, "eta", lo=0.0, lo_open=True)
    if cos_i.numel() and cos_i.device.type != "meta":
        ulps = 8 * torch.finfo(cos_i.dtype).eps
        if bool((cos_i.abs() > 1 + ulps).any()):
            raise ValueError(f"cos_i must lie in [-1, 1]; got values in [{float(cos_i.detach().min()):.9g}, "
                             f"{float(cos_i.detach().max()):.9g}]")
    return fresnel_dielectric_unchecked(cos_i, eta)


def fresnel_dielectric_unchecked(cos_i: torch.Tensor, eta) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                    torch.Tensor]:
    """:func:`fresnel_dielectric` without validation (no host syncs): ``eta > 0``, ``cos_i`` in [-1, 1]."""
    outside = cos_i >= 0
    eta = eta if isinstance(eta, torch.Tensor) else torch.tensor(float(eta), dtype=cos_i.dtype, device=cos_i.device)
    inv = 1.0 / eta
    eta_it = torch.where(outside, eta, inv)
    eta_ti = torch.where(outside, inv, eta)
    c = cos_i.abs().clamp(max=1.0)
    cos_t_sqr = 1.0 - eta_ti * eta_ti * (1.0 - c * c)
    tir = cos_t_sqr <= 0
    ct = torch.where(tir, torch.ones_like(cos_t_sqr), cos_t_sqr).sqrt()
    ct = torch.where(tir, torch.zeros_like(ct), ct)
    den_s = c + eta_it * ct
    den_p = eta_it * c + ct
    ok = (den_s > 0) & (den_p > 0)
    one = torch.ones_like(den_s)
    r_s = (c - eta_it * ct) / torch.where(ok, den_s, one)
    r_p = (eta_it * c - ct) / torch.where(ok, den_p, one)
    f = 0.5 * (r_s * r_s + r_p * r_p)
    # Grazing incidence with cos_t = 0 (only possible at eta = 1) is the index-matched interface: no reflection.
    f = torch.where(ok, f, torch.zeros_like(f))
    f = torch.where(tir, torch.ones_like(f), f)
    f = torch.where(eta_it == 1, torch.zeros_like(f), f)
    cos_t = torch.where(outside, -ct, ct)
    return f, cos_t, eta_it.expand(f.shape), eta_ti.expand(f.shape)


# --------------------------------------------------------------------------------------------- helpers
def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / (v * v).sum(-1, keepdim=True).clamp_min(1e-30).sqrt()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


def _as(x, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)


def _sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0``, -1 elsewhere (never 0)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _smith_g1(cos_v: torch.Tensor, v_dot_h: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """Smith's GGX masking ``G1 = 2 |cos| / (|cos| + sqrt(a^2 + (1 - a^2) cos^2))``, 0 where ``v`` sees the back
    of the microfacet (``(v.h) cos <= 0``)."""
    c = cos_v.abs()
    g1 = 2.0 * c / (c + (a2 + (1.0 - a2) * c * c).sqrt()).clamp_min(_EPS)
    return torch.where(v_dot_h * cos_v > 0, g1, torch.zeros_like(g1))


def _microfacet_terms(n_h, cos_o, cos_i, wo_h, wi_h, alpha, beckmann):
    """``(D, G1(wo) G1(wi))`` of GGX, or of Beckmann where ``beckmann`` (``[..., 1]`` bool, or None) is True."""
    a2 = alpha ** 2
    d = _ggx_d(n_h, a2)
    g = _smith_g1(cos_o, wo_h, a2) * _smith_g1(cos_i, wi_h, a2)
    if beckmann is not None:
        def g1(cos_v, v_dot_h):
            g1 = beckmann_g1(cos_v.abs().clamp_min(_EPS), alpha)
            return torch.where(v_dot_h * cos_v > 0, g1, torch.zeros_like(g1))
        d = torch.where(beckmann, beckmann_d((1.0 - n_h * n_h).clamp_min(0.0), a2), d)
        g = torch.where(beckmann, g1(cos_o, wo_h) * g1(cos_i, wi_h), g)
    return d, g


def _anisotropic_terms(lobe: AnisotropicLobe, n, h, wo, wi, cos_o, cos_i, n_h, wo_h, wi_h, beckmann):
    """``(D, G1(wo) G1(wi), D_wo)`` of ``lobe`` (the anisotropic twins of :func:`_microfacet_terms` and of the
    normals' density: ``G1(wo) |wo.h| D / |n.wo|`` for GGX's visible normals, ``D (n.h)`` for Beckmann's) at the
    half vector ``h`` on the normal's side, each direction seen from its own side of the surface (its masking
    depends on the squares of its coordinates only)."""
    n, wo, wi = _unit(n), _unit(wo), _unit(wi)
    d = anisotropic_d(lobe.local(h, n), lobe.widths, beckmann)
    zero = torch.zeros_like(d)
    g_o = anisotropic_g1(lobe.local(wo, n) * _sign(cos_o), lobe.widths, beckmann)
    g_i = anisotropic_g1(lobe.local(wi, n) * _sign(cos_i), lobe.widths, beckmann)
    g_o, g_i = torch.where(wo_h * cos_o > 0, g_o, zero), torch.where(wi_h * cos_i > 0, g_i, zero)
    d_wo = d * g_o * wo_h.abs() / cos_o.abs().clamp_min(_EPS)
    if beckmann is not None:
        d_wo = torch.where(beckmann, d * n_h, d_wo)
    return d, g_o * g_i, d_wo


def _check_mode(mode: str) -> str:
    return check_choice(mode, "mode", ("radiance", "importance"))


# --------------------------------------------------------------------------------------------- rough dielectric
def _rough_geometry(n, wi, wo, eta):
    """Cosines, the generalised half vector (Walter et al. 2007, eq. 16) on the normal's side, and masks."""
    n, wi, wo = _unit(n), _unit(wi), _unit(wo)
    cos_o = _dot(n, wo)
    cos_i = _dot(n, wi)
    reflect = cos_o * cos_i > 0
    eta = _as(eta, cos_o)
    # eta_wi_side / eta_wo_side for a refraction (the factor of wi in the half vector).
    eta_p = torch.where(cos_o > 0, eta, 1.0 / eta)
    scale = torch.where(reflect, torch.ones_like(eta_p), eta_p)
    h = wo + wi * scale
    h_len2 = (h * h).sum(-1, keepdim=True)
    h = h / h_len2.clamp_min(1e-30).sqrt()
    h = h * _sign(_dot(n, h))
    wo_h, wi_h = _dot(wo, h), _dot(wi, h)
    den = wo_h + eta_p * wi_h  # refraction's Jacobian denominator
    valid = (cos_o != 0) & (cos_i != 0) & (h_len2 > 0) & (wo_h * cos_o > 0) & (wi_h * cos_i > 0)
    valid = valid & (reflect | (den.abs() > 1e-7))
    return cos_o, cos_i, reflect, eta, eta_p, h, _dot(n, h), wo_h, wi_h, den, valid


def _ggx_d(n_dot_h, a2):
    nh2 = n_dot_h * n_dot_h
    d = (1.0 - nh2) + nh2 * a2
    return a2 / (math.pi * d * d)


def rough_dielectric_unchecked(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, alpha, eta, *,
                               mode: Mode = "radiance", beckmann: Optional[torch.Tensor] = None,
                               lobe: Optional[AnisotropicLobe] = None) -> torch.Tensor:
    """Evaluate the rough dielectric BSDF of Walter et al. 2007 with GGX, without validation (no host syncs).

    With ``h`` the generalised half vector ``normalize(wo + s wi)`` (``s = 1`` for a reflection, where ``n.wi``
    and ``n.wo`` have the same sign; otherwise ``s = eta' = eta_wi_side / eta_wo_side``) flipped to the
    normal's side, ``D`` the GGX distribution, ``G = G1(wo) G1(wi)`` the separable Smith masking and
    ``F = fresnel_dielectric(wo.h, eta)``::

        reflection:    f = F D G / (4 |n.wo| |n.wi|)
        transmission:  f = (1 - F) D G |wo.h| |wi.h| / (|n.wo| |n.wi| (wo.h + eta' wi.h)^2)      (radiance)
                       times eta'^2                                                                (importance)

    Args:
        n: ``[..., 3]`` normals pointing to the exterior; wi, wo: ``[..., 3]`` directions (either side), all
            non-zero (normalised here).
        alpha: GGX width, a number or ``[..., 1]``, ``> 0`` (the BSDF passes ``max(roughness^2, ALPHA_MIN)``).
        eta: relative IOR interior / exterior, a number or ``[..., 1]``, ``> 0`` and ``!= 1``.
        mode: ``"radiance"`` or ``"importance"`` (module docstring).
        beckmann: optional ``[..., 1]`` bool: Beckmann's ``D`` and Smith ``G1`` (Walter et al. 2007's ``Lambda``,
            as Mitsuba's default ``roughdielectric``) where True; None: GGX everywhere (the same bits).
        lobe: optional :class:`lumigrad.shading.anisotropy.AnisotropicLobe`: where it is turned, ``D`` and ``G1``
            of its two widths in its frame (Mitsuba's ``roughdielectric`` with ``alpha_u`` / ``alpha_v``) instead
            of ``alpha``'s; None: isotropic everywhere (the same bits).

    Returns:
        ``f [..., 1]``; 0 where a direction is exactly on the surface, ``wo`` or ``wi`` sees the back of the
        microfacet, or the refraction's half vector is degenerate (``eta = 1``).

    **Differentiability:** smooth in ``n``, ``wi``, ``wo``, ``alpha`` and ``eta`` away from the critical angle
    of total internal reflection and the switch between reflection and transmission at the horizon; exactly
    zero with zero gradients where invalid.
    """
    cos_o, cos_i, reflect, eta, eta_p, h, n_h, wo_h, wi_h, den, valid = _rough_geometry(n, wi, wo, eta)
    d, g = _microfacet_terms(n_h, cos_o, cos_i, wo_h, wi_h, _as(alpha, cos_o), beckmann)
    if lobe is not None:
        d_a, g_a, _ = _anisotropic_terms(lobe, n, h, wo, wi, cos_o, cos_i, n_h, wo_h, wi_h, beckmann)
        d, g = torch.where(lobe.turned, d_a, d), torch.where(lobe.turned, g_a, g)
    f_fres = fresnel_dielectric_unchecked(wo_h.clamp(-1.0, 1.0), eta)[0]
    co = cos_o.abs().clamp_min(_EPS)
    ci = cos_i.abs().clamp_min(_EPS)
    f_r = f_fres * d * g / (4.0 * co * ci)
    den2 = (den * den).clamp_min(_EPS)
    f_t = (1.0 - f_fres) * d * g * (wo_h * wi_h).abs() / (co * ci * den2)
    if mode == "importance":
        f_t = f_t * (eta_p * eta_p)
    f = torch.where(reflect, f_r, f_t)
    return torch.where(valid, f, torch.zeros_like(f))


def rough_dielectric_pdf_unchecked(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, alpha, eta, *,
                                   beckmann: Optional[torch.Tensor] = None,
                                   lobe: Optional[AnisotropicLobe] = None) -> torch.Tensor:
    """Density ``[..., 1]`` per solid angle with which :func:`rough_dielectric_sample_unchecked` draws ``wi``.

    Visible-normal sampling from ``wo`` (flipped to the normal's side), then reflection with probability
    ``F`` and refraction with ``1 - F``::

        pdf = D_wo(h) * (F  / (4 |wi.h|))                              reflection
                      * ((1 - F) eta'^2 |wi.h| / (wo.h + eta' wi.h)^2)  transmission

    with ``D_wo(h) = G1(wo) |wo.h| D(h) / |n.wo|`` (Heitz 2018) and ``h``, ``eta'`` as in
    :func:`rough_dielectric_unchecked`. It integrates over the sphere to one minus the probability that a
    sample lands on the wrong side (a reflection through the surface, a refraction that does not cross it),
    which the sampler returns with ``pdf = weight = 0``. Where ``beckmann`` is True the normals are Beckmann's,
    sampled by ``D (n.h)`` (:func:`lumigrad.shading.warps.beckmann_normal`): ``pdf_h = D(h) n.h``. Where
    ``lobe`` is turned, ``D`` and ``G1`` are its anisotropic ones.

    **Differentiability:** as :func:`rough_dielectric_unchecked`.
    """
    cos_o, cos_i, reflect, eta, eta_p, h, n_h, wo_h, wi_h, den, valid = _rough_geometry(n, wi, wo, eta)
    a2 = _as(alpha, cos_o) ** 2
    d = _ggx_d(n_h, a2)
    co = cos_o.abs()
    # D_wo(h) = G1(wo) |wo.h| D / |n.wo| with G1 = 2 |n.wo| / (|n.wo| + sqrt(...)): |n.wo| cancels.
    pdf_h = 2.0 * d * wo_h.abs() / (co + (a2 + (1.0 - a2) * co * co).sqrt()).clamp_min(_EPS)
    if beckmann is not None:
        pdf_h = torch.where(beckmann, beckmann_d((1.0 - n_h * n_h).clamp_min(0.0), a2) * n_h, pdf_h)
    if lobe is not None:
        pdf_h = torch.where(lobe.turned, _anisotropic_terms(lobe, n, h, wo, wi, cos_o, cos_i, n_h, wo_h, wi_h,
                                                            beckmann)[2], pdf_h)
    f_fres = fresnel_dielectric_unchecked(wo_h.clamp(-1.0, 1.0), eta)[0]
    jac_r = f_fres / (4.0 * wi_h.abs().clamp_min(_EPS))
    jac_t = (1.0 - f_fres) * eta_p * eta_p * wi_h.abs() / (den * den).clamp_min(_EPS)
    pdf = pdf_h * torch.where(reflect, jac_r, jac_t)
    return torch.where(valid, pdf, torch.zeros_like(pdf))


def rough_dielectric_sample_unchecked(n: torch.Tensor, wo: torch.Tensor, alpha, eta, u1: torch.Tensor,
                                      u2: torch.Tensor, *, mode: Mode = "radiance",
                                      beckmann: Optional[torch.Tensor] = None,
                                      lobe: Optional[AnisotropicLobe] = None) -> BSDFSample:
    """Draw ``wi`` from the rough dielectric, without validation (no host syncs).

    A GGX normal ``h`` visible from ``wo`` (flipped to the normal's side; Heitz 2018,
    :func:`lumigrad.shading.warps.ggx_visible_normal`) from ``u2``; then, with ``F = fresnel(wo.h, eta)``,
    ``u1 < F`` reflects ``wo`` about ``h`` and otherwise refracts it through ``h`` (Snell's law about ``h``):
    ``wi = h (eta_ti wo.h + cos_t) - eta_ti wo``. A reflection that goes through the surface or a refraction
    that does not cross it is invalid (``pdf = weight = 0``). Where ``beckmann`` is True, ``h`` is a Beckmann
    normal drawn by ``D (n.h)`` (:func:`lumigrad.shading.warps.beckmann_normal`) instead. Where ``lobe`` is turned
    the normal is its anisotropic one, in its frame (:func:`lumigrad.shading.anisotropy.anisotropic_normal`).

    Returns:
        :class:`BSDFSample` with ``weight [..., 1] = f abs(n.wi) / pdf`` (``G1(wi)``, times ``eta_ti^2`` for a
        refraction in radiance mode), ``pdf`` equal to :func:`rough_dielectric_pdf_unchecked` at ``wi``,
        ``is_delta`` False, ``is_transmission`` where the path crosses, ``eta`` ``eta_it`` for a refraction.

    **Differentiability:** for fixed ``u``, ``wi`` is a reparameterisation in ``alpha``, ``eta``, ``n`` and
    ``wo``; the discrete choice reflection / refraction is not differentiated (use detached sampling for
    unbiased gradients of integrals, as :func:`lumigrad.shading.metallic_roughness_sample` explains).
    """
    n, wo = _unit(n), _unit(wo)
    shape = torch.broadcast_shapes(n.shape, wo.shape, u2.shape[:-1] + (3,), u1.shape[:-1] + (3,))
    n_b, wo_b = n.expand(shape), wo.expand(shape)
    t, b = local_frame(n_b)
    if lobe is not None:  # (the normal's default frame where the lobe is isotropic: the same bits)
        t, b = torch.where(lobe.turned, lobe.s, t), torch.where(lobe.turned, lobe.t, b)
    wo_l = to_local(wo_b, t, b, n_b)
    side = _sign(wo_l[..., 2:])
    alpha = _as(alpha, wo_l)
    h = ggx_visible_normal(wo_l * side, alpha, u2)
    if beckmann is not None:
        h = torch.where(beckmann, beckmann_normal(alpha, u2), h)
    if lobe is not None:
        h = torch.where(lobe.turned, anisotropic_normal(wo_l * side, lobe.widths, u2, beckmann), h)
    wo_h = _dot(wo_l, h)
    f_fres, cos_t, eta_it, eta_ti = fresnel_dielectric_unchecked(wo_h.clamp(-1.0, 1.0), _as(eta, wo_l))
    reflect = (u1 < f_fres) | (f_fres >= 1)
    wi_r = 2.0 * wo_h * h - wo_l
    wi_t = h * (wo_h * eta_ti + cos_t) - wo_l * eta_ti
    wi_l = torch.where(reflect, wi_r, wi_t)
    wi = _unit(to_world(wi_l, t, b, n_b))
    crosses = wi_l[..., 2:] * wo_l[..., 2:] < 0
    ok = torch.where(reflect, ~crosses & (wi_l[..., 2:] != 0), crosses) & (wo_l[..., 2:] != 0)
    if beckmann is not None:  # a Beckmann normal may face away from wo (visible normals never do): no sample there
        ok = ok & (~beckmann | (wo_h * wo_l[..., 2:] > 0))
    pdf = rough_dielectric_pdf_unchecked(n_b, wi, wo_b, alpha, eta, beckmann=beckmann, lobe=lobe)
    f = rough_dielectric_unchecked(n_b, wi, wo_b, alpha, eta, mode=mode, beckmann=beckmann, lobe=lobe)
    ok = ok & (pdf > 0)
    zero = torch.zeros_like(pdf)
    pdf = torch.where(ok, pdf, zero)
    weight = torch.where(ok, f * _dot(n_b, wi).abs() / torch.where(ok, pdf, torch.ones_like(pdf)), zero)
    crosses = ~reflect & ok
    eta_out = torch.where(crosses, eta_it, torch.ones_like(eta_it))
    return BSDFSample(wi, weight, pdf, is_delta=torch.zeros_like(ok), is_transmission=crosses, eta=eta_out)


# --------------------------------------------------------------------------------------------- BSDF objects
def check_bsdf_args(si, wi=None, u1=None, u2=None) -> None:
    """Structural checks of a BSDF method's arguments only (no values read, no host sync)."""
    if not isinstance(si, SurfaceSample):
        raise TypeError(f"si must be a SurfaceSample; got {type(si).__name__}")
    device = si.position.device
    for x, name, k in ((wi, "wi", 3), (u1, "u1", 1), (u2, "u2", 2)):
        if x is not None:
            check_tensor(x, name, trailing=(k,), floating=True, device=device)


def _check_eta(eta, rough: bool) -> Optional[float]:
    if eta is None:
        return None
    eta = check_number(eta, "eta", lo=0.0, lo_open=True)
    if rough and eta == 1.0:
        raise ValueError("eta must differ from 1 for a rough dielectric (an index-matched interface does not "
                         "refract: it is no surface at all); got 1.0")
    return eta


def _channels(x: torch.Tensor, si: SurfaceSample) -> torch.Tensor:
    """``x [..., 1]`` expanded to the colour channels of ``si``."""
    return x.expand(x.shape[:-1] + (si.channels,))


class SmoothDielectricBSDF:
    """A smooth dielectric interface: a delta reflection and a delta refraction, chosen by exact Fresnel.

    Mitsuba's ``dielectric`` plugin (conventions in the module docstring: ``si.normal`` points to the
    exterior, ``eta`` = interior / exterior IOR, radiance mode scales refracted radiance by
    ``eta_ti^2 = (eta_wo_side / eta_wi_side)^2``).

    * ``eval`` and ``pdf`` are 0 for every ``wi`` (a Dirac delta has no value a light sample could hit).
    * ``sample``: with ``F, cos_t, eta_it, eta_ti = fresnel_dielectric(n.wo, eta)``, ``u1 < F`` gives the
      mirror direction ``2 (n.wo) n - wo`` with ``pdf = F`` and ``weight = 1``; otherwise the refraction
      ``n (eta_ti n.wo + cos_t) - eta_ti wo`` with ``pdf = 1 - F`` and ``weight = eta_ti^2`` (radiance) or 1
      (importance). ``pdf`` is a discrete probability (``is_delta`` is True everywhere); ``weight``'s expected
      value is ``F + (1 - F) eta_ti^2`` (``F + (1 - F) = 1`` in importance mode: the interface neither creates
      nor absorbs energy). ``u2`` is unused. ``wo`` exactly on the surface gives ``weight = pdf = 0``.

    Args:
        eta: optional relative IOR (interior / exterior) used instead of ``si.ior``; ``> 0``.
        mode: ``"radiance"`` (default) or ``"importance"``.

    Raises:
        ValueError: ``eta <= 0`` or not finite; ``mode`` not one of the two.

    **Differentiability:** ``wi`` is differentiable in ``si.normal``, ``si.wo`` and ``eta`` (the refraction's
    direction moves with ``eta``). The lobe choice is discrete; ``weight`` carries Mitsuba's detached-choice
    gradient: its value is ``1`` (or ``eta_ti^2``) but its gradient is that of ``F / detach(F)`` (or
    ``(1 - F) / detach(1 - F)``), so ``E[d weight L]`` is the derivative of ``F L_r + (1 - F) eta_ti^2 L_t``.

    Example: head-on onto glass, ``u1 = 0.5 > F = 0.04``: straight through, ``weight = 1 / 1.5^2``::

        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.ones(1, 1),
        ...                    roughness=torch.zeros(1, 1), metallic=torch.zeros(1, 1), ior=1.5)
        >>> s = SmoothDielectricBSDF().sample(si, torch.full((1, 1), 0.5), torch.zeros(1, 2))
        >>> s.wi[0, 2].item(), round(s.weight.item(), 6), round(s.pdf.item(), 6), s.is_delta.item()
        (-1.0, 0.444444, 0.96, True)
    """

    def __init__(self, eta: Optional[float] = None, mode: Mode = "radiance"):
        self.eta = _check_eta(eta, rough=False)
        self.mode = _check_mode(mode)

    def _eta(self, si: SurfaceSample):
        return si.ior if self.eta is None else self.eta

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """0 ``[..., C]`` for every ``wi`` (delta lobes only)."""
        check_bsdf_args(si, wi)
        shape = torch.broadcast_shapes(si.batch_shape, wi.shape[:-1])
        return si.base_color.new_zeros(shape + (si.channels,))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """0 ``[..., 1]`` for every ``wi`` (delta lobes only)."""
        check_bsdf_args(si, wi)
        shape = torch.broadcast_shapes(si.batch_shape, wi.shape[:-1])
        return si.base_color.new_zeros(shape + (1,))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """The reflected (``u1 < F``) or refracted direction; ``u2`` is unused (kept for the protocol)."""
        check_bsdf_args(si, u1=u1, u2=u2)
        n, wo = _unit(si.normal), _unit(si.wo)
        cos_o = _dot(n, wo)
        f_fres, cos_t, eta_it, eta_ti = fresnel_dielectric_unchecked(cos_o.clamp(-1.0, 1.0), _as(self._eta(si), cos_o))
        shape = torch.broadcast_shapes(f_fres.shape, u1.shape)
        reflect = ((u1 < f_fres) | (f_fres >= 1)).expand(shape)
        wi_r = 2.0 * cos_o * n - wo
        wi_t = n * (cos_o * eta_ti + cos_t) - wo * eta_ti
        wi = _unit(torch.where(reflect, wi_r, wi_t))
        prob = torch.where(reflect, f_fres, 1.0 - f_fres)
        ok = (prob > 0) & (cos_o != 0)
        one = torch.ones_like(prob)
        safe = torch.where(ok, prob, one)
        weight = safe / safe.detach()  # 1, with the gradient of the lobe's probability (detached choice)
        if self.mode == "radiance":
            weight = torch.where(reflect, weight, weight * eta_ti * eta_ti)
        zero = torch.zeros_like(prob)
        weight = torch.where(ok, weight, zero)
        crosses = ~reflect & ok
        return BSDFSample(wi, _channels(weight, si), torch.where(ok, prob, zero), is_delta=torch.ones_like(ok),
                          is_transmission=crosses, eta=torch.where(crosses, eta_it, one))


class RoughDielectricBSDF:
    """A rough dielectric interface: GGX microfacet reflection and refraction (Walter et al. 2007).

    Mitsuba's ``roughdielectric`` plugin with ``distribution="ggx"`` and visible-normal sampling (conventions
    in the module docstring), or with its default ``"beckmann"`` where ``si.beckmann`` is 1 (sampled by
    ``D (n.h)``). ``alpha = max(si.roughness^2, ALPHA_MIN)``, like the glTF model, and
    ``eta`` = ``si.ior`` unless given here. Where ``si.log_aspect`` is set (``Material.roughness_aspect``: Mitsuba's
    ``alpha_u`` / ``alpha_v``) the lobe is anisotropic, in the frame of ``si.tangent``
    (:mod:`lumigrad.shading.anisotropy`).

    * ``eval``: :func:`rough_dielectric_unchecked` (both hemispheres: reflection where ``n.wi`` and ``n.wo``
      have the same sign, refraction where they differ; generalised half vector, separable Smith ``G``,
      exact Fresnel).
    * ``sample``: :func:`rough_dielectric_sample_unchecked`, GGX visible normals (Heitz 2018) from ``wo``,
      reflection with probability ``F(wo.h)``.
    * ``pdf``: :func:`rough_dielectric_pdf_unchecked`.

    A single-scattering microfacet model loses the energy of the light that the microsurface masks (a few
    per cent at roughness 0.5, more at grazing angles and high roughness), never gains any. The values are
    grey: ``[..., 1]`` expanded to ``si``'s colour channels.

    Args:
        eta: optional relative IOR used instead of ``si.ior``; ``> 0`` and ``!= 1``. ``si.ior = 1`` (not
            checked, it would sync) gives 0 for every transmission.
        mode: ``"radiance"`` (default) or ``"importance"``.

    Raises:
        ValueError: ``eta <= 0``, ``eta = 1`` or not finite; ``mode`` not one of the two.

    **Differentiability:** ``eval`` and ``pdf`` in ``si.roughness`` (above ``sqrt(ALPHA_MIN)``), ``si.ior``,
    ``si.normal``, ``si.wo`` and ``wi``; ``sample``'s ``wi`` is reparameterised in them for fixed ``u``.

    Example: at normal incidence the reflection lobe peaks at ``F D G / 4 = 0.04 / (4 pi alpha^2)``::

        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.ones(1, 1),
        ...                    roughness=torch.full((1, 1), 0.5), metallic=torch.zeros(1, 1), ior=1.5)
        >>> round(RoughDielectricBSDF().eval(si, z).item() * 4 * math.pi * 0.25 ** 2, 6)
        0.04
    """

    def __init__(self, eta: Optional[float] = None, mode: Mode = "radiance"):
        self.eta = _check_eta(eta, rough=True)
        self.mode = _check_mode(mode)

    def _params(self, si: SurfaceSample):
        alpha = (si.roughness * si.roughness).clamp_min(ALPHA_MIN)
        return alpha, (si.ior if self.eta is None else self.eta)

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine."""
        check_bsdf_args(si, wi)
        alpha, eta = self._params(si)
        return _channels(rough_dielectric_unchecked(si.normal, wi, si.wo, alpha, eta, mode=self.mode,
                                                    beckmann=_beckmann(si), lobe=anisotropic_lobe(si)), si)

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (reflection or refraction) and ``u2 [..., 2]`` (microfacet)."""
        check_bsdf_args(si, u1=u1, u2=u2)
        alpha, eta = self._params(si)
        s = rough_dielectric_sample_unchecked(si.normal, si.wo, alpha, eta, u1, u2, mode=self.mode,
                                              beckmann=_beckmann(si), lobe=anisotropic_lobe(si))
        return s._replace(weight=_channels(s.weight, si))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        check_bsdf_args(si, wi)
        alpha, eta = self._params(si)
        return rough_dielectric_pdf_unchecked(si.normal, wi, si.wo, alpha, eta, beckmann=_beckmann(si),
                                              lobe=anisotropic_lobe(si))
