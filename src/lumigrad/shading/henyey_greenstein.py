"""The Henyey-Greenstein phase function: ``eval``, ``sample`` and ``pdf``, with Mitsuba's ``hg`` conventions.

Both directions point **away** from the scattering point, as a BSDF's do: ``wo`` towards where the path came
from (the viewer), ``wi`` towards where it goes (the light). Light travelling on undeflected arrives along
``-wi`` and leaves along ``wo = -wi``, so forward scattering (``g > 0``) peaks at ``wi = -wo``::

    p(wo, wi) = (1 - g^2) / (4 pi (1 + g^2 + 2 g (wo . wi))^(3/2))

(Mitsuba 3's ``hg`` plugin evaluates ``hg(dot(wo, mi.wi))`` with this ``+ 2 g cos``). ``g`` is the mean cosine
of the deflection: ``integral p(wo, wi) (-wo . wi) dwi = g``; ``g = 0`` is isotropic, ``g < 0`` scatters
backwards. The function is normalised over the sphere and symmetric (``p(wo, wi) = p(wi, wo)``), so sampling
it exactly gives ``weight = 1``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch

from .._checks import check_number, check_tensor
from .warps import local_frame

__all__ = ["PhaseSample", "HenyeyGreenstein", "hg_eval", "hg_sample"]


class PhaseSample(NamedTuple):
    """A direction drawn from a phase function.

    Attributes:
        wi: ``[..., 3]`` unit direction from the scattering point towards where the path continues.
        weight: ``[..., 1]`` ``p(wo, wi) / pdf`` (1 for exact sampling).
        pdf: ``[..., 1]`` density of ``wi`` per unit solid angle.
    """

    wi: torch.Tensor
    weight: torch.Tensor
    pdf: torch.Tensor


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / (v * v).sum(-1, keepdim=True).clamp_min(1e-30).sqrt()


def _as(x, like: torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)


def _hg(cos: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(1 - g^2) / (4 pi (1 + g^2 + 2 g cos)^1.5)``; ``1 + g^2 + 2 g cos >= (1 - |g|)^2 > 0``."""
    temp = 1.0 + g * g + 2.0 * g * cos
    return (1.0 - g * g) / (4.0 * math.pi * temp * temp.sqrt())


def hg_eval(wo: torch.Tensor, wi: torch.Tensor, g) -> torch.Tensor:
    """Evaluate the Henyey-Greenstein phase function ``p(wo, wi)`` (module docstring), no validation.

    Args:
        wo: ``[..., 3]`` directions from the scattering point towards the viewer (non-zero; normalised here).
        wi: ``[..., 3]`` directions towards where the path continues (non-zero; normalised here).
        g: asymmetry in (-1, 1), a number or a tensor broadcasting with ``[..., 1]``.

    Returns:
        ``p [..., 1]`` per steradian.

    **Differentiability:** smooth in ``wo``, ``wi`` and ``g`` on (-1, 1).

    Example: isotropic, ``1 / (4 pi)``::

        >>> z = torch.tensor([0.0, 0.0, 1.0])
        >>> round(hg_eval(z, z, 0.0).item() * 4 * math.pi, 6)
        1.0
    """
    cos = (_unit(wo) * _unit(wi)).sum(-1, keepdim=True)
    return _hg(cos, _as(g, cos))


def hg_sample(wo: torch.Tensor, g, u: torch.Tensor) -> PhaseSample:
    """Draw ``wi`` exactly from the Henyey-Greenstein phase function, no validation.

    Inverting the CDF of the cosine ``mu`` of the deflection from the forward direction ``-wo``, with
    ``v = 2 u_0 - 1`` and ``a = 1 + g v``::

        mu = (v + g (v^2 + 3) / 2 + g^2 v + g^3 (v^2 - 1) / 2) / a^2

    which is Mitsuba's ``(1 + g^2 - ((1 - g^2) / a)^2) / (2 g)`` multiplied out, so it needs no special case at
    ``g = 0`` (where it is ``mu = v``, uniform) and loses no digits near it. The azimuth is ``2 pi u_1`` about
    ``-wo`` (the frame :func:`lumigrad.shading.warps.local_frame`).

    Args:
        wo: ``[..., 3]`` directions towards the viewer (non-zero).
        g: asymmetry in (-1, 1), a number or broadcasting with ``[..., 1]``.
        u: ``[..., 2]`` uniform numbers in [0, 1)^2.

    Returns:
        :class:`PhaseSample` ``(wi [..., 3], weight = 1 [..., 1], pdf = hg_eval(wo, wi, g) [..., 1])``.

    **Differentiability:** ``wi`` is a reparameterisation in ``g`` and ``wo`` for fixed ``u``; ``pdf`` is
    differentiable in both; ``weight`` is the constant 1.

    Example: ``u_0 = 1`` goes straight on, whatever ``g``::

        >>> s = hg_sample(torch.tensor([0.0, 0.0, 1.0]), 0.5, torch.tensor([1.0, 0.0]))
        >>> s.wi[2].item(), round(s.pdf.item(), 6) == round(0.75 / (4 * math.pi * 0.125), 6)
        (-1.0, True)
    """
    wo = _unit(wo)
    shape = torch.broadcast_shapes(wo.shape, u.shape[:-1] + (3,))
    forward = (-wo).expand(shape)
    g = _as(g, wo)
    v = 2.0 * u[..., :1] - 1.0
    a = 1.0 + g * v
    mu = (v + 0.5 * g * (v * v + 3.0) + g * g * v + 0.5 * g * g * g * (v * v - 1.0)) / (a * a)
    mu = mu.clamp(-1.0, 1.0)
    sin = (1.0 - mu * mu).clamp_min(1e-30).sqrt()
    phi = 2.0 * math.pi * u[..., 1:2]
    t, b = local_frame(forward)
    wi = _unit(sin * torch.cos(phi) * t + sin * torch.sin(phi) * b + mu * forward)
    pdf = _hg(-mu, g)
    return PhaseSample(wi, torch.ones_like(pdf), pdf)


class HenyeyGreenstein:
    """The Henyey-Greenstein phase function of asymmetry ``g`` (Mitsuba's ``hg``; conventions in the module
    docstring). A thin, validated container over :func:`hg_eval` and :func:`hg_sample`.

    Args:
        g: the mean cosine of the deflection, a number or a tensor (0-dim or broadcasting with ``[..., 1]``),
            in the open interval (-1, 1). A tensor keeps its autograd graph.

    Raises:
        TypeError: ``g`` not a number or floating tensor.
        ValueError: ``g`` NaN / Inf or ``|g| >= 1`` (the function degenerates to a Dirac delta).

    **Differentiability:** ``eval`` and ``pdf`` in ``g``, ``wo`` and ``wi``; ``sample``'s ``wi`` is
    reparameterised in ``g`` and ``wo``.

    Example: forward scattering peaks straight on (``wi = -wo``)::

        >>> hg, z = HenyeyGreenstein(0.8), torch.tensor([0.0, 0.0, 1.0])
        >>> bool(hg.eval(z, -z) > hg.eval(z, z))
        True
    """

    def __init__(self, g: Union[float, torch.Tensor] = 0.0):
        if isinstance(g, torch.Tensor) and g.numel() != 1:
            check_tensor(g, "g", floating=True, finite=True)
            if g.numel() and g.device.type != "meta" and bool((g.detach().abs() >= 1).any()):
                raise ValueError(f"g must lie in (-1, 1); got values in [{float(g.detach().min()):.9g}, "
                                 f"{float(g.detach().max()):.9g}]")
        else:
            if isinstance(g, torch.Tensor):
                check_tensor(g, "g", floating=True)
            check_number(g.detach() if isinstance(g, torch.Tensor) else g, "g", lo=-1.0, hi=1.0, lo_open=True,
                         hi_open=True)
        self.g = g

    def eval(self, wo: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """``p(wo, wi)`` ``[..., 1]`` for ``wo, wi [..., 3]``."""
        _check_dirs(wo=wo, wi=wi)
        return hg_eval(wo, wi, self.g)

    def sample(self, wo: torch.Tensor, u: torch.Tensor) -> PhaseSample:
        """Draw ``wi`` from ``u [..., 2]``; ``weight = 1``, ``pdf = eval(wo, wi)``."""
        _check_dirs(wo=wo)
        check_tensor(u, "u", trailing=(2,), floating=True, device=wo.device)
        return hg_sample(wo, self.g, u)

    def pdf(self, wo: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """Density ``[..., 1]`` of ``sample`` drawing ``wi``: ``eval(wo, wi)``."""
        return self.eval(wo, wi)


def _check_dirs(**dirs) -> None:
    device = None
    for name, d in dirs.items():
        check_tensor(d, name, trailing=(3,), floating=True, device=device)
        device = d.device
