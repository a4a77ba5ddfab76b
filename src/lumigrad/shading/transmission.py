"""The glTF metallic-roughness BSDF with ``KHR_materials_transmission``: part of the dielectric base refracts.

glTF's model (``KHR_materials_transmission``) mixes, inside the dielectric base, the diffuse lobe with a
specular transmission lobe tinted by ``base_color``, by the fraction ``transmission``::

    dielectric = fresnel_mix(specular_brdf, mix(diffuse, base_color * specular_btdf, transmission))
    f          = mix(dielectric, metal, metallic)

Here the transmitting fraction is a whole rough dielectric interface (:mod:`lumigrad.shading.dielectric`,
exact Fresnel, the material's ``roughness`` and ``ior``), so that its reflection and refraction share one
Fresnel term, conserve energy together and handle light arriving from inside (total internal reflection)::

    f = metallic * metal + (1 - metallic) [(1 - T) opaque_dielectric + T rough_dielectric_T]

where ``opaque_dielectric`` is the glTF dielectric (Lambert under a Schlick-Fresnel GGX coat, as
:class:`~lumigrad.shading.MetallicRoughnessBSDF`) and ``rough_dielectric_T`` is the rough dielectric with its
refracted part multiplied by ``base_color`` (once per crossing, as glTF's thin-walled default). The diffuse
lobe gets glTF's weight ``(1 - metallic)(1 - T)(1 - F)``; the specular reflection in the fraction ``T`` uses
exact instead of Schlick Fresnel and separable instead of height-correlated Smith masking. ``T = 0`` gives
exactly the opaque model's numbers (bit for bit); ``T = 1, metallic = 0, base_color = 1`` is
:class:`~lumigrad.shading.RoughDielectricBSDF`.

A **thin** transmitting fraction (``si.thin`` 1, ``Material.thin_dielectric``; Mitsuba's ``thindielectric``) is a
sheet of glass too thin to see: light either reflects about the normal, with the sheet's total reflectance over its
inner reflections ``R' = R + T^2 R / (1 - R^2)`` (``R = F(|n.wo|, ior)``, ``T = 1 - R``), or passes straight
through (``wi = -wo``, tinted by ``base_color``, no bending and no ``eta^2``), both delta lobes whatever the
roughness; the opaque lobes are unchanged.

Conventions: those of the dielectric BSDFs (``si.normal`` points to the exterior; ``si.ior`` is interior /
exterior; radiance transport by default). Seen from inside (``n.wo < 0``) only the transmitting fraction
exists: ``f = (1 - metallic) T rough_dielectric_T`` (the opaque lobes are one-sided).
"""

from __future__ import annotations

import torch

from .._checks import check_choice
from .anisotropy import anisotropic_lobe
from .brdf import (ALPHA_MIN, BSDFSample, metallic_roughness_pdf_unchecked, metallic_roughness_sample_unchecked,
                   metallic_roughness_unchecked)
from .bsdf import BSDF, MetallicRoughnessBSDF, beckmann_mask
from .dielectric import (check_bsdf_args, fresnel_dielectric_unchecked, rough_dielectric_pdf_unchecked,
                         rough_dielectric_sample_unchecked, rough_dielectric_unchecked)
from .plastic import PerPointPlasticBSDF
from .normal_shadowing import ShadowedNormalMapBSDF, shadowing_mask
from .conductor import PerPointConductorBSDF
from .principled import PerPointPrincipledBSDF
from .surface import SurfaceSample

__all__ = ["MetallicRoughnessTransmissionBSDF", "bsdf_for", "is_gltf_ggx", "thin_sheet_reflectance"]


def thin_sheet_reflectance(cos: torch.Tensor, eta) -> torch.Tensor:
    """Total reflectance ``R' = R + T^2 R / (1 - R^2)`` of a thin dielectric sheet (the light reflected at its
    first face and after every round trip inside), ``R = F(|cos|, eta)`` the exact Fresnel reflectance, ``T = 1 -
    R`` (Mitsuba's ``thindielectric``); 1 where ``R = 1``."""
    r = fresnel_dielectric_unchecked(cos.abs().clamp(max=1.0), eta)[0]
    t = 1.0 - r
    below = r < 1
    return torch.where(below, r + t * t * r / torch.where(below, 1.0 + r, torch.ones_like(r)) /
                       torch.where(below, 1.0 - r, torch.ones_like(r)), torch.ones_like(r))


def _thin_sheet(n, wo, cos_o, si, u, p):
    """A thin sheet's delta sample from ``u`` (reflect where ``u < R'``, else pass straight through): ``(wi, weight,
    pdf)`` with ``pdf = p R'`` or ``p (1 - R')`` (``p`` the transmitting fraction's probability) and weight 1 or
    ``base_color``."""
    r = thin_sheet_reflectance(cos_o, torch.as_tensor(si.ior, dtype=cos_o.dtype, device=cos_o.device))
    reflect = u < r
    wi = torch.where(reflect, 2.0 * cos_o * n - wo, -wo)
    weight = torch.where(reflect, torch.ones_like(si.base_color), si.base_color * torch.ones_like(r))
    pdf = p * torch.where(reflect, r, 1.0 - r)
    return wi, weight, pdf


def bsdf_for(si: SurfaceSample) -> BSDF:
    """The BSDF that shades ``si``: :class:`MetallicRoughnessTransmissionBSDF` when ``si.transmission`` is set,
    else :class:`~lumigrad.shading.MetallicRoughnessBSDF` (reads no values: no host sync); where ``si.plastic`` is
    set, :class:`lumigrad.shading.plastic.PerPointPlasticBSDF` around it (Mitsuba's plastic at the points it marks),
    and where ``si.principled`` is, :class:`lumigrad.shading.principled.PerPointPrincipledBSDF` around that, and
    where ``si.conductor`` is, :class:`lumigrad.shading.conductor.PerPointConductorBSDF` around that; where
    ``si.shadowing`` marks Mitsuba's normal maps (with ``si.unmapped_normal``),
    :class:`lumigrad.shading.normal_shadowing.ShadowedNormalMapBSDF` outermost.

    Example:
        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.ones(1, 3),
        ...                    roughness=torch.ones(1, 1), metallic=torch.zeros(1, 1))
        >>> type(bsdf_for(si)).__name__, type(bsdf_for(si.replace(transmission=torch.ones(1, 1)))).__name__
        ('MetallicRoughnessBSDF', 'MetallicRoughnessTransmissionBSDF')
    """
    if not isinstance(si, SurfaceSample):
        raise TypeError(f"si must be a SurfaceSample; got {type(si).__name__}")
    gltf = MetallicRoughnessBSDF() if si.transmission is None else MetallicRoughnessTransmissionBSDF()
    bsdf = gltf
    if si.plastic is not None:  # Mitsuba's plastic where si.plastic marks a point
        bsdf = PerPointPlasticBSDF(bsdf)
    if si.principled is not None:  # Mitsuba's principled where si.principled marks a point
        bsdf = PerPointPrincipledBSDF(bsdf)
    if si.conductor is not None:  # Mitsuba's conductor where si.conductor marks a point
        bsdf = PerPointConductorBSDF(bsdf)
    if shadowing_mask(si) is not None:  # Mitsuba's normal maps: grazing light shadowed by the bent facets
        bsdf = ShadowedNormalMapBSDF(bsdf)
    return bsdf


def is_gltf_ggx(si: SurfaceSample) -> bool:
    """Whether every point of ``si`` is the glTF model with GGX lobes and glTF's normal maps (no Beckmann
    microfacets, none of Mitsuba's models or normal maps, no Dirac specular lobes, no anisotropic lobes): what the
    fused raster kernels shade. Reads no values."""
    return (si.beckmann is None and si.plastic is None and si.principled is None and si.conductor is None
            and si.delta_specular is None and si.log_aspect is None and shadowing_mask(si) is None)


#: How close to 1 an ior must be for the boundary to count as index-matched (a straight pass-through).
INDEX_MATCHED_TOLERANCE = 1e-4


def _index_matched(si: SurfaceSample) -> torch.Tensor:
    """``[..., 1]`` bool: the surface's ior is 1 (to :data:`INDEX_MATCHED_TOLERANCE`)."""
    ior = torch.as_tensor(si.ior, dtype=si.normal.dtype, device=si.normal.device)
    matched = (ior - 1.0).abs() < INDEX_MATCHED_TOLERANCE
    return matched.expand(si.normal.shape[:-1] + (1,)) if ior.dim() == 0 else matched


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


class MetallicRoughnessTransmissionBSDF:
    """The glTF metallic-roughness BSDF whose dielectric base transmits the fraction ``si.transmission``.

    The model is in the module docstring. With ``T = si.transmission`` (``None`` reads as 0) and
    ``w = (1 - metallic) T``, the probability of sampling the transmitting part is ``p = w``:

    * ``eval``: ``opaque + w rough_dielectric_T`` (:func:`lumigrad.shading.metallic_roughness_unchecked` with
      ``transmission=T``, :func:`lumigrad.shading.dielectric.rough_dielectric_unchecked` with ``alpha =
      max(roughness^2, ALPHA_MIN)`` and ``eta = si.ior``).
    * ``sample``: ``u1 < p`` samples the rough dielectric (with ``u1 / p`` choosing reflection or refraction),
      otherwise the opaque lobes (with ``(u1 - p) / (1 - p)``); ``weight = eval abs(n.wi) / pdf`` with the
      mixture's density (one-sample multiple importance sampling over the lobes). Seen from inside, where
      the opaque lobes do not exist, their share ``1 - p`` of the samples is invalid (``weight = pdf = 0``):
      the estimate stays unbiased and ``pdf`` smooth in ``T``; glass (``w = 1``) wastes none.
    * ``pdf``: ``(1 - p) opaque_pdf + p rough_dielectric_pdf``.

    ``BSDFSample.is_transmission`` marks samples that cross the surface, ``eta`` is the IOR ratio across it,
    ``is_delta`` is False (``roughness`` 0 is clamped to ``ALPHA_MIN``: a very sharp but finite lobe).
    ``si.specular_f0`` and ``si.specular`` affect only the opaque part; the dielectric interface uses ``si.ior``.

    Args:
        mode: ``"radiance"`` (default) or ``"importance"``, as for the dielectric BSDFs.

    **Differentiability:** ``eval`` and ``pdf`` in every material value (``transmission`` included, also at
    ``T = 0``: the transmitting lobe is computed, then weighted by 0), ``si.normal``, ``si.wo`` and ``wi``.
    The choice of lobe is discrete, as in :func:`lumigrad.shading.metallic_roughness_sample`.

    Example: glass (``T = 1``, white) head-on: only the interface reflects, ``F D G / 4 = 0.04 / (4 pi
    alpha^2)`` at the mirror direction::

        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.ones(1, 1),
        ...                    roughness=torch.full((1, 1), 0.5), metallic=torch.zeros(1, 1),
        ...                    transmission=torch.ones(1, 1))
        >>> round(MetallicRoughnessTransmissionBSDF().eval(si, z).item() * 4 * torch.pi * 0.25 ** 2, 6)
        0.04
    """

    def __init__(self, mode: str = "radiance"):
        self.mode = check_choice(mode, "mode", ("radiance", "importance"))

    @staticmethod
    def _thin(si: SurfaceSample):
        """``[..., 1]`` bool where the transmitting fraction is a thin sheet; None where ``si.thin`` is unset."""
        return None if si.thin is None else si.thin > 0.5

    @staticmethod
    def _fraction(si: SurfaceSample):
        """``(T, w)``: the transmitting fraction and its weight ``w = (1 - metallic) T``."""
        t = si.transmission if si.transmission is not None else torch.zeros_like(si.metallic)
        return t, (1.0 - si.metallic) * t

    @classmethod
    def _parts(cls, si: SurfaceSample):
        """``(T, w, alpha, lobe)``: :meth:`_fraction`, the glass's width and its anisotropic lobe
        (:func:`lumigrad.shading.anisotropy.anisotropic_lobe`, None where isotropic), made once per call."""
        alpha = (si.roughness * si.roughness).clamp_min(ALPHA_MIN)
        return (*cls._fraction(si), alpha, anisotropic_lobe(si))

    def _eval(self, n, wi, wo, si, t, w, alpha, lobe):
        """``eval`` from unit ``n`` and ``wo`` (normalised once, as the opaque model's sampler does)."""
        opaque = metallic_roughness_unchecked(n, wi, wo, si.base_color, si.roughness, si.metallic, ior=si.ior,
                                              specular_f0=si.specular_f0, transmission=t,
                                              specular=si.specular, beckmann=beckmann_mask(si))
        glass = rough_dielectric_unchecked(n, wi, wo, alpha, si.ior, mode=self.mode, beckmann=beckmann_mask(si),
                                           lobe=lobe) * ~_index_matched(si)
        thin = self._thin(si)
        if thin is not None:  # the sheet's lobes are deltas: 0 for every wi
            glass = glass * ~thin
        crosses = (n * wi).sum(-1, keepdim=True) * (n * wo).sum(-1, keepdim=True) < 0
        tint = torch.where(crosses, si.base_color, torch.ones_like(si.base_color))
        return opaque + w * glass * tint

    def _pdf(self, n, wi, wo, si, t, w, alpha, lobe):
        opaque = metallic_roughness_pdf_unchecked(n, wi, wo, si.base_color, si.roughness, si.metallic, ior=si.ior,
                                                  specular_f0=si.specular_f0, transmission=t,
                                                  specular=si.specular, beckmann=beckmann_mask(si))
        glass = rough_dielectric_pdf_unchecked(n, wi, wo, alpha, si.ior, beckmann=beckmann_mask(si),
                                               lobe=lobe) * ~_index_matched(si)
        thin = self._thin(si)
        if thin is not None:
            glass = glass * ~thin
        return (1.0 - w) * opaque + w * glass

    def delta_coefficient(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``[..., C]`` the coefficient of the delta lobe that sent ``wi`` (a direction :meth:`sample` drew from
        one), differentiable in the material: a thin sheet's ``w R'`` for its mirror direction and ``w (1 - R')
        base_color`` for ``-wo``, an index-matched boundary's ``w base_color`` (``w = (1 - metallic)
        transmission``); 0 for other directions. The path replay differentiates a delta sample's weight ``c /
        detach(c)`` through it (its ``eval`` is 0)."""
        t, w = self._fraction(si)
        n, wo = _unit(si.normal), _unit(si.wo)
        wi = _unit(wi)
        cos_o = (n * wo).sum(-1, keepdim=True)
        through = ((wi + wo) * (wi + wo)).sum(-1, keepdim=True) < 1e-10
        coef = torch.zeros_like(si.base_color * w)
        matched = _index_matched(si) & through
        coef = torch.where(matched, w * si.base_color, coef)
        thin = self._thin(si)
        if thin is not None:
            r = thin_sheet_reflectance(cos_o, torch.as_tensor(si.ior, dtype=cos_o.dtype, device=cos_o.device))
            mirror = 2.0 * cos_o * n - wo
            reflected = ((wi - mirror) * (wi - mirror)).sum(-1, keepdim=True) < 1e-10
            sheet = torch.where(reflected, w * r * torch.ones_like(si.base_color),
                                torch.where(through, w * (1.0 - r) * si.base_color, torch.zeros_like(coef)))
            coef = torch.where(thin, sheet, coef)
        return coef

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine, for ``wi`` on either side of the surface."""
        check_bsdf_args(si, wi)
        return self._eval(si.normal, wi, si.wo, si, *self._parts(si))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        check_bsdf_args(si, wi)
        return self._pdf(si.normal, wi, si.wo, si, *self._parts(si))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (lobe) and ``u2 [..., 2]`` (direction)."""
        check_bsdf_args(si, u1=u1, u2=u2)
        t, w, alpha, lobe = self._parts(si)
        n, wo = _unit(si.normal), _unit(si.wo)
        cos_o = (n * wo).sum(-1, keepdim=True)
        p = w
        glass = u1 < p
        one = torch.ones_like(p)
        u_glass = torch.where(p > 0, u1 / torch.where(p > 0, p, one), torch.zeros_like(u1))
        rest = p < 1
        u_opaque = torch.where(rest, (u1 - p) / torch.where(rest, 1.0 - p, one), torch.zeros_like(u1))
        # The raw normal and wo, as MetallicRoughnessBSDF.sample passes them: T = 0 gives its bits.
        s_opaque = metallic_roughness_sample_unchecked(si.normal, si.wo, si.base_color, si.roughness, si.metallic,
                                                       u_opaque, u2, ior=si.ior, specular_f0=si.specular_f0,
                                                       transmission=t, specular=si.specular,
                                                       beckmann=beckmann_mask(si))
        s_glass = rough_dielectric_sample_unchecked(n, wo, alpha, si.ior, u_glass.clamp(0.0, 1.0), u2,
                                                    mode=self.mode, beckmann=beckmann_mask(si),
                                                    lobe=lobe)
        wi = torch.where(glass, s_glass.wi, s_opaque.wi)
        valid = torch.where(glass, s_glass.pdf > 0, s_opaque.pdf > 0)
        pdf = self._pdf(n, wi, wo, si, t, w, alpha, lobe)
        f = self._eval(n, wi, wo, si, t, w, alpha, lobe)
        cos_i = (n * wi).sum(-1, keepdim=True)
        ok = valid & (pdf > 0)
        zero = torch.zeros_like(pdf)
        weight = torch.where(ok, f * cos_i.abs() / torch.where(ok, pdf, one), torch.zeros_like(f))
        # An index-matched boundary (ior 1) does not bend or reflect light: its glass lobe is a delta that passes
        # straight through (the rough formulas degenerate there: the half vector of wi = -wo vanishes).
        through = glass & _index_matched(si)
        wi = torch.where(through, -wo, wi)
        cos_i = torch.where(through, -cos_o, cos_i)
        weight = torch.where(through, si.base_color * torch.ones_like(weight), weight)  # the transmission tint
        pdf = torch.where(through, p, pdf)
        ok = ok | (through & (p > 0))
        thin = self._thin(si)
        if thin is not None:
            sheet = glass & thin
            wi_t, weight_t, pdf_t = _thin_sheet(n, wo, cos_o, si, u_glass.clamp(0.0, 1.0), p)
            wi = torch.where(sheet, wi_t, wi)
            cos_i = torch.where(sheet, (n * wi_t).sum(-1, keepdim=True), cos_i)
            weight = torch.where(sheet, weight_t, weight)
            pdf = torch.where(sheet, pdf_t, pdf)
            ok = torch.where(sheet, pdf_t > 0, ok)
            through = through | sheet  # a delta sample either way (the flag below)
        crosses = (cos_i * cos_o < 0) & ok
        eta_it = fresnel_dielectric_unchecked(cos_o.clamp(-1.0, 1.0), torch.as_tensor(si.ior, dtype=p.dtype,
                                                                                      device=p.device))[2]
        eta = torch.where(crosses, eta_it, torch.ones_like(eta_it))
        if thin is not None:  # through a sheet the path stays in its medium: no index change
            eta = torch.where(sheet, torch.ones_like(eta), eta)
        return BSDFSample(wi, weight, torch.where(ok, pdf, zero), is_delta=through & ok,
                          is_transmission=crosses, eta=eta)
