"""BSDFs as objects with Mitsuba's plugin discipline: ``eval``, ``sample`` and ``pdf`` of a :class:`SurfaceSample`.

The maths is in the functional ops of :mod:`lumigrad.shading.brdf` (:func:`metallic_roughness`,
:func:`metallic_roughness_sample`, :func:`metallic_roughness_pdf`); a BSDF object reads the material values and
the geometry from a :class:`~lumigrad.shading.SurfaceSample` and calls them, so the rasterizer's deferred
shading (``eval`` per light sample) and a Monte Carlo integrator (``sample`` and ``pdf``) share one model.

Conventions (``docs/conventions.md``): world space; ``si.normal`` and ``si.wo`` and ``wi`` point **away** from
the surface (``wi`` towards the light, ``si.wo`` towards the viewer), the lit hemisphere is the one of
``si.normal``; ``eval`` is ``f(wi, wo)`` **without** the cosine (reflected radiance of one light is
``eval(si, wi) * L * max(n.wi, 0)``); densities are per unit solid angle, ``[..., 1]``.

The methods check the structure of their arguments (types, trailing sizes, devices) but not their values, so
they cost no host sync: validate a :class:`SurfaceSample` once with :meth:`SurfaceSample.validate`, or use
the checked functional ops.
"""

from __future__ import annotations

import math
from typing import Optional, Protocol, runtime_checkable

import torch

from .._checks import check_tensor
from .brdf import (BSDFSample, metallic_roughness_pdf_unchecked, metallic_roughness_sample_unchecked,
                   metallic_roughness_unchecked)
from .surface import SurfaceSample
from .warps import cosine_hemisphere, local_frame, to_world

__all__ = ["BSDF", "BSDFSample", "DiffuseBSDF", "MetallicRoughnessBSDF"]


@runtime_checkable
class BSDF(Protocol):
    """What every BSDF offers (a structural protocol: any object with these three methods is one).

    * ``eval(si, wi) -> f [..., C]``: the BSDF value for light arriving from ``wi [..., 3]``, without cosine.
    * ``sample(si, u1, u2) -> BSDFSample(wi, weight, pdf)``: a direction drawn with density ``pdf`` from
      uniform numbers ``u1 [..., 1]`` and ``u2 [..., 2]``, and ``weight = eval * max(n.wi, 0) / pdf``.
    * ``pdf(si, wi) -> [..., 1]``: the density ``sample`` draws ``wi`` with, per unit solid angle.
    """

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor: ...  # noqa: E704

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample: ...  # noqa: E704

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor: ...  # noqa: E704


def _check_args(si, wi=None, u1=None, u2=None) -> None:
    """Structural checks only (no values read, no host sync)."""
    if not isinstance(si, SurfaceSample):
        raise TypeError(f"si must be a SurfaceSample; got {type(si).__name__}")
    device = si.position.device
    if wi is not None:
        check_tensor(wi, "wi", trailing=(3,), floating=True, device=device)
    if u1 is not None:
        check_tensor(u1, "u1", trailing=(1,), floating=True, device=device)
    if u2 is not None:
        check_tensor(u2, "u2", trailing=(2,), floating=True, device=device)


def beckmann_mask(si: SurfaceSample) -> Optional[torch.Tensor]:
    """``[..., 1]`` bool, True where ``si``'s specular lobes are Beckmann's; None where ``si.beckmann`` is unset."""
    return None if si.beckmann is None else si.beckmann > 0.5


class MetallicRoughnessBSDF:
    """The glTF 2.0 metallic-roughness BSDF: Lambert diffuse under a GGX dielectric coat, mixed with a GGX
    conductor by ``metallic`` (height-correlated Smith visibility, Schlick Fresnel).

    * ``eval``: :func:`lumigrad.shading.metallic_roughness` of ``si``'s normal, ``wo`` and material values (the
      same operations, so the same bits, as the rasterizer's deferred shading, which calls this method).
    * ``sample``: GGX visible-normal sampling (Heitz 2018) of the specular lobe and cosine sampling of the
      diffuse lobe, mixed by a Fresnel- and metalness-based probability
      (:func:`lumigrad.shading.metallic_roughness_sample`).
    * ``pdf``: the mixture's density (:func:`lumigrad.shading.metallic_roughness_pdf`).

    Uses ``si.base_color``, ``si.roughness``, ``si.metallic``, ``si.ior``, ``si.specular_f0``, ``si.specular`` and
    ``si.beckmann`` (Beckmann's microfacet distribution instead of GGX's where set, sampled by ``D (n.h)``).
    Stateless: one instance serves every material.

    **Differentiability:** as the functional ops: ``eval`` and ``pdf`` in the material values, ``si.normal``,
    ``si.wo`` and ``wi``; ``sample``'s ``wi`` is reparameterised in ``roughness`` (specular lobe) for fixed
    ``u``. See :func:`lumigrad.shading.metallic_roughness_sample` for the discrete choice of the lobe and how
    to get unbiased gradients of integrals (detached sampling).

    Example: a rough metal at normal incidence, ``f = c / (4 pi alpha^2)`` with ``alpha = 0.25``::

        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.tensor([[math.pi / 4]]),
        ...                    roughness=torch.tensor([[0.5]]), metallic=torch.ones(1, 1))
        >>> MetallicRoughnessBSDF().eval(si, z).tolist()
        [[1.0]]
    """

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``f(wi, si.wo)`` ``[..., C]``, no cosine; exactly 0 where ``n.wi <= 0`` or ``n.wo <= 0``."""
        _check_args(si, wi)
        return metallic_roughness_unchecked(si.normal, wi, si.wo, si.base_color, si.roughness, si.metallic,
                                            ior=si.ior, specular_f0=si.specular_f0, specular=si.specular,
                                            beckmann=beckmann_mask(si))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Draw ``wi`` from uniform ``u1 [..., 1]`` (lobe) and ``u2 [..., 2]`` (direction)."""
        _check_args(si, u1=u1, u2=u2)
        return metallic_roughness_sample_unchecked(si.normal, si.wo, si.base_color, si.roughness, si.metallic, u1,
                                                   u2, ior=si.ior, specular_f0=si.specular_f0, specular=si.specular,
                                                   beckmann=beckmann_mask(si))

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` per solid angle of ``sample`` drawing ``wi``."""
        _check_args(si, wi)
        return metallic_roughness_pdf_unchecked(si.normal, wi, si.wo, si.base_color, si.roughness, si.metallic,
                                                ior=si.ior, specular_f0=si.specular_f0, specular=si.specular,
                                                beckmann=beckmann_mask(si))


class DiffuseBSDF:
    """An ideal diffuse (Lambertian) BSDF of albedo ``si.base_color``: ``f = base_color / pi``, cosine sampling.

    Mitsuba's ``diffuse`` plugin. The reference for energy tests (an albedo of 1 reflects all the light) and a
    simple material for integrators. Other material values of ``si`` are ignored.

    **Differentiability:** ``eval`` and ``sample``'s ``weight`` are linear in ``base_color``; ``pdf`` and ``wi``
    depend on ``si.normal`` only.

    Example:
        >>> z = torch.tensor([[0.0, 0.0, 1.0]])
        >>> si = SurfaceSample(position=torch.zeros(1, 3), normal=z, wo=z, base_color=torch.tensor([[0.5]]),
        ...                    roughness=torch.ones(1, 1), metallic=torch.zeros(1, 1))
        >>> DiffuseBSDF().sample(si, torch.zeros(1, 1), torch.zeros(1, 2)).weight.tolist()
        [[0.5]]
    """

    def eval(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``base_color / pi`` ``[..., C]`` where ``n.wi > 0`` and ``n.wo > 0``, else exactly 0."""
        _check_args(si, wi)
        valid, _, _ = _hemisphere(si, wi)
        f = si.base_color / math.pi
        return torch.where(valid, f, torch.zeros((), dtype=f.dtype, device=f.device))

    def sample(self, si: SurfaceSample, u1: torch.Tensor, u2: torch.Tensor) -> BSDFSample:
        """Cosine-distributed ``wi`` from ``u2 [..., 2]`` (``u1`` is unused, kept for the protocol)."""
        _check_args(si, u1=u1, u2=u2)
        n = si.normal / torch.linalg.vector_norm(si.normal, dim=-1, keepdim=True)
        n = n.expand(torch.broadcast_shapes(n.shape, u2.shape[:-1] + (3,)))
        t, b = local_frame(n)
        wi = to_world(cosine_hemisphere(u2), t, b, n)
        pdf = self.pdf(si, wi)
        f = self.eval(si, wi)
        cos = (n * wi).sum(-1, keepdim=True).clamp_min(0.0)
        ok = pdf > 0
        weight = torch.where(ok, f * cos / torch.where(ok, pdf, torch.ones_like(pdf)), torch.zeros_like(f))
        return BSDFSample(wi, weight, pdf)

    def pdf(self, si: SurfaceSample, wi: torch.Tensor) -> torch.Tensor:
        """``max(n.wi, 0) / pi`` ``[..., 1]`` where ``n.wo > 0``, else 0."""
        _check_args(si, wi)
        valid, n_dot_l, _ = _hemisphere(si, wi)
        pdf = n_dot_l / math.pi
        return torch.where(valid, pdf, torch.zeros((), dtype=pdf.dtype, device=pdf.device))


def _hemisphere(si: SurfaceSample, wi: torch.Tensor):
    """``(valid, n.wi, n.wo)`` with unit vectors; ``valid`` where both cosines are positive."""
    n = si.normal / torch.linalg.vector_norm(si.normal, dim=-1, keepdim=True)
    wi = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True)
    wo = si.wo / torch.linalg.vector_norm(si.wo, dim=-1, keepdim=True)
    n_dot_l = (n * wi).sum(-1, keepdim=True)
    n_dot_v = (n * wo).sum(-1, keepdim=True)
    return (n_dot_l > 0) & (n_dot_v > 0), n_dot_l, n_dot_v
