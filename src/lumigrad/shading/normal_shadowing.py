"""Mitsuba's normal maps: the shadowing of light that grazes a bent normal, and the flip of a normal that faces
away from the viewer (Mitsuba 3's ``normalmap`` with its defaults ``use_shadowing_function`` and
``flip_invalid_normals``), for materials with ``Material.mitsuba_normal_map = True``.

A normal map bends the shading normal ``n0`` to ``n``; a surface of such bent facets shadows light arriving at a
grazing angle to ``n0`` (Conty Estevez et al. 2019, "A Microfacet-Based Shadowing Function to Solve the Bump
Terminator Problem": the facets as a microfacet surface of ``alpha^2 = min(tan^2(n, n0) / 8, 1)``, its Smith
masking of the light direction ``wi``)::

    S(wi) = 2 / (1 + sqrt(1 + alpha^2 tan^2(wi, n0)))

multiplies the BSDF's value (its light samples and its sample's weight; not its density). Where the bent normal
faces away from a viewer on ``n0``'s side (``(n0 . wo) (n . wo) <= 0``) it is mirrored about ``n0`` (``2 (n . n0)
n0 - n``) instead of leaving the point black. (On the back of a double-sided part the renderers also keep the front's bitangent for
such maps: Mitsuba's ``twosided`` mirrors the directions, not the map's frame.)
"""

from __future__ import annotations

from typing import Optional

import torch

from .brdf import BSDFSample
from .surface import SurfaceSample

__all__ = ["ShadowedNormalMapBSDF", "flip_invalid_normal", "normal_map_shadowing", "shadowing_factor", "shadowing_mask"]

_EPS = 1e-12


def normal_map_shadowing(unmapped: torch.Tensor, mapped: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    """``S(wi) [..., 1]`` of unit normals ``unmapped`` (``n0``) and ``mapped`` (``n``) and a direction ``wi``
    towards the light (any length): 1 where the map does not bend the normal or ``wi`` is along ``n0``."""
    cos_p = (unmapped * mapped).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    cos2_p = (cos_p * cos_p).clamp_min(_EPS)
    alpha2 = (0.125 * (1.0 - cos2_p) / cos2_p).clamp(max=1.0)
    w = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True).clamp_min(_EPS)
    cos_w = (unmapped * w).sum(-1, keepdim=True)
    cos2_w = (cos_w * cos_w).clamp_min(_EPS)
    tan2_w = (1.0 - cos2_w).clamp_min(0.0) / cos2_w
    return 2.0 / (1.0 + torch.sqrt(1.0 + alpha2 * tan2_w))


def flip_invalid_normal(unmapped: torch.Tensor, mapped: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """``mapped`` mirrored about ``unmapped`` where the viewer ``wo`` is not on the same side of both
    (``(unmapped . wo) (mapped . wo) <= 0``: Mitsuba's ``flip_invalid_normals``), else unchanged (a point seen
    from behind, from inside glass, keeps its normal)."""
    mirrored = 2.0 * (mapped * unmapped).sum(-1, keepdim=True) * unmapped - mapped
    invalid = (unmapped * wo).sum(-1, keepdim=True) * (mapped * wo).sum(-1, keepdim=True) <= 0
    return torch.where(invalid, mirrored, mapped)


def shadowing_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool where ``si``'s points take the shadowing (``si.shadowing`` marks them and they have an
    unmapped normal); None where none can."""
    if si.shadowing is None or si.unmapped_normal is None:
        return None
    return si.shadowing > 0.5


def shadowing_factor(si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
    """``[..., 1]``: :func:`normal_map_shadowing` of the light direction ``wi`` at the points
    :func:`shadowing_mask` marks, 1 elsewhere (``si`` must have a mask)."""
    s = normal_map_shadowing(si.unmapped_normal, si.normal, wi)
    return torch.where(shadowing_mask(si), s, torch.ones_like(s))


class ShadowedNormalMapBSDF:
    """``other``'s value times :func:`normal_map_shadowing` of the light direction at the points
    :func:`shadowing_mask` marks (its samples' weights and delta coefficients too; densities are ``other``'s)."""

    def __init__(self, other):
        self.other = other

    def _factor(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        return shadowing_factor(si, wi)

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        return self.other.eval(si, wi) * self._factor(si, wi)

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        return self.other.pdf(si, wi)

    def delta_coefficient(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``other``'s delta coefficient times the shadowing, as its delta samples' weights."""
        if not hasattr(self.other, "delta_coefficient"):
            return torch.zeros_like(si.base_color)
        return self.other.delta_coefficient(si, wi) * self._factor(si, wi)

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        s = self.other.sample(si, u1, u2)
        return s._replace(weight=s.weight * self._factor(si, s.wi))
