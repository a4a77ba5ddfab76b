"""What a delta light sees of a surface whose specular lobes are Dirac lobes (``Material.delta_specular``).

Mitsuba's smooth ``conductor``, ``plastic``, ``dielectric`` and ``thindielectric`` reflect and refract through
delta lobes. A delta light (point, spot, directional) is a delta too, and a path cannot connect a single point or
direction through a single direction: Mitsuba's path tracer never shows such a light's glint in a mirror or its
caustic through glass. lumigrad renders those lobes as GGX of ``alpha = ALPHA_MIN``, which is the same for every
light with a density (area lights, the environment: sampled by both strategies and weighted by MIS) but would
show each delta light as a tiny, very bright highlight. So at a ``delta_specular`` point a delta light's
next-event sample takes the BSDF without its specular lobes: nothing for a conductor or glass, the diffuse base
for a plastic (:meth:`lumigrad.shading.plastic.PlasticBSDF.eval_diffuse`).

The fused path kernel does the same (:func:`lumigrad.kernels.path_kernels.light_sample_value_wp`, part flag 128).
"""

from __future__ import annotations

import torch

from .normal_shadowing import shadowing_factor, shadowing_mask
from .plastic import PlasticBSDF, plastic_mask
from .surface import SurfaceSample

__all__ = ["dirac_points", "eval_toward_delta_light", "without_dirac_lobes"]


def eval_toward_delta_light(bsdf, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
    """``bsdf.eval(si, wi)`` ``[..., C]`` for a delta light's direction ``wi``: at the points of Dirac lobes
    (:func:`dirac_points`), without the specular lobes (0, or a plastic's diffuse base); elsewhere unchanged.

    **Differentiability:** as ``bsdf.eval`` and :meth:`~lumigrad.shading.plastic.PlasticBSDF.eval_diffuse`."""
    return without_dirac_lobes(bsdf.eval(si, wi), si, wi)


def without_dirac_lobes(f: torch.Tensor, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
    """``f`` (``bsdf_for(si)``'s value toward ``wi``) with the points of Dirac lobes (:func:`dirac_points`) replaced
    by what a delta light sees of them: 0, or a plastic's diffuse base (times a Mitsuba normal map's shadowing, as
    ``bsdf_for``'s value)."""
    dirac = dirac_points(si)
    if dirac is None:
        return f
    kept = torch.zeros_like(f)
    plastic = plastic_mask(si)
    if plastic is not None:
        kept = torch.where(plastic, PlasticBSDF().eval_diffuse(si, wi), kept)
        if shadowing_mask(si) is not None:
            kept = kept * shadowing_factor(si, wi)
    return torch.where(dirac, kept, f)


def dirac_points(si: SurfaceSample):
    """``[..., 1]`` bool where ``si``'s specular lobes are Dirac lobes: ``si.delta_specular`` marks the point, its
    roughness is 0 and it is a conductor, a plastic or glass (transmission 1, metallic 0); None where no point is
    marked. (A fit that moves a marked material's roughness above 0, or its model, makes its lobes ordinary
    ones again.)"""
    if si.delta_specular is None:
        return None
    model = torch.zeros_like(si.delta_specular, dtype=torch.bool)
    if si.conductor is not None:
        model = model | (si.conductor[..., -1:] > 0.5)
    plastic = plastic_mask(si)
    if plastic is not None:
        model = model | plastic
    if si.transmission is not None:
        model = model | ((si.transmission == 1) & (si.metallic == 0))
    return (si.delta_specular > 0.5) & (si.roughness == 0) & model
