"""One BSDF model at the points a mask marks, another elsewhere: how Mitsuba's plastic, principled and conductor
models (:mod:`lumigrad.shading.plastic`, :mod:`lumigrad.shading.principled`, :mod:`lumigrad.shading.conductor`)
share a batch with the glTF model."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .brdf import BSDFSample
from .surface import SurfaceSample

__all__ = ["PerPointModelBSDF", "sample_at"]


def sample_at(bsdf, si: SurfaceSample, n: torch.Tensor, wi: torch.Tensor) -> BSDFSample:
    """The :class:`BSDFSample` of the unit direction ``wi`` that ``bsdf`` drew at ``si`` (unit normal ``n``): its
    density ``bsdf.pdf`` and weight ``eval cos / pdf`` (0 where the density is): the end of the reflection-only
    models' ``sample``."""
    pdf = bsdf.pdf(si, wi)
    f = bsdf.eval(si, wi)
    ok = pdf > 0
    cos = (n * wi).sum(-1, keepdim=True).clamp_min(0.0)
    weight = torch.where(ok, f * cos / torch.where(ok, pdf, torch.ones_like(pdf)), torch.zeros_like(f))
    return BSDFSample(wi, weight, pdf)


class PerPointModelBSDF:
    """``model`` where ``mask(si)`` (``[..., 1]`` bool) marks a point, ``other`` elsewhere: both evaluated, each
    point's kept (so a batch may mix materials). ``model`` reflects only: no delta lobe, no crossing, ``eta`` 1 at
    its points."""

    def __init__(self, other, model, mask: Callable[[SurfaceSample], Optional[torch.Tensor]]):
        self.other = other
        self.model = model
        self.mask = mask

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask(si), self.model.eval(si, wi), self.other.eval(si, wi))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask(si), self.model.pdf(si, wi), self.other.pdf(si, wi))

    def delta_coefficient(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``other``'s delta coefficient (:meth:`MetallicRoughnessTransmissionBSDF.delta_coefficient`), 0 at the
        model's points (no delta lobe)."""
        if not hasattr(self.other, "delta_coefficient"):
            return torch.zeros_like(si.base_color)
        coef = self.other.delta_coefficient(si, wi)
        return torch.where(self.mask(si), torch.zeros_like(coef), coef)

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        mask = self.mask(si)
        a, b = self.model.sample(si, u1, u2), self.other.sample(si, u1, u2)
        fields = {"wi": torch.where(mask, a.wi, b.wi), "weight": torch.where(mask, a.weight, b.weight),
                  "pdf": torch.where(mask, a.pdf, b.pdf)}
        if b.is_delta is not None:  # the model reflects: no delta, no crossing, eta 1
            fields["is_delta"] = b.is_delta & ~mask
            fields["is_transmission"] = b.is_transmission & ~mask
            fields["eta"] = torch.where(mask, torch.ones_like(b.eta), b.eta)
        return BSDFSample(**fields)
