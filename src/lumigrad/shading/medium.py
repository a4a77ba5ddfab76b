"""A homogeneous participating medium: absorption, scattering, transmittance and free-flight sampling.

Coefficients are per unit length of the scene, per colour channel ``[C]``: ``sigma_a`` absorbs, ``sigma_s``
scatters (into the :class:`~lumigrad.shading.HenyeyGreenstein` phase function of asymmetry ``g``),
``sigma_t = sigma_a + sigma_s`` extinguishes. Along a ray the transmittance is ``Tr(t) = exp(-sigma_t t)``.

Free-flight sampling uses **spectral multiple importance sampling** (the one-sample balance heuristic over
the channels, as PBRT-v4 and Mitsuba's spectral MIS do): a channel ``c`` is chosen uniformly, the distance
``t`` from its exponential ``sigma_t[c] exp(-sigma_t[c] t)``, and the density is the average over channels,

    pdf(t) = mean_c sigma_t[c] exp(-sigma_t[c] t)          (a scattering event at t < t_max)
    P_esc  = mean_c exp(-sigma_t[c] t_max)                  (no event before the surface at t_max)

so one sample estimates every channel without bias and without the weights blowing up in a channel whose
``sigma_t`` differs from the sampled one. A grey medium (equal ``sigma_t``) is plain exponential sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, NamedTuple, Optional, Union

import torch

from .._checks import check_indices, check_number, check_tensor
from .henyey_greenstein import HenyeyGreenstein

__all__ = ["DistanceSample", "HomogeneousMedium", "homogeneous_transmittance", "sample_homogeneous_distance"]


class DistanceSample(NamedTuple):
    """A free-flight distance drawn in a medium.

    Attributes:
        t: ``[..., 1]`` distance along the ray: a scattering event where ``t < t_max``, else ``t = t_max``
            (the ray reached the surface, or ``+inf`` in an unbounded medium that some channel does not
            extinguish). ``scattered = t < t_max``.
        weight: ``[..., C]`` the path throughput factor: ``sigma_s Tr(t) / pdf`` at a scattering event (go on
            with the phase function), ``Tr(t_max) / pdf`` at the surface; ``E[weight * L]`` is the
            radiative-transfer integral ``int_0^t_max Tr(s) sigma_s L_s(s) ds + Tr(t_max) L_surface``.
        pdf: ``[..., 1]`` the spectral-MIS density of ``t`` (per unit length) at an event, the probability
            ``P_esc`` of passing at the surface (a discrete mass); 0 where nothing can happen (then
            ``weight = 0``).
    """

    t: torch.Tensor
    weight: torch.Tensor
    pdf: torch.Tensor


def homogeneous_transmittance(sigma_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``Tr = exp(-sigma_t t)`` ``[..., C]`` for ``sigma_t [C]`` (``>= 0``) and distances ``t [..., 1]`` (``>= 0``,
    ``+inf`` allowed: ``Tr = 0``, or 1 where ``sigma_t = 0``), no validation.

    **Differentiability:** smooth in ``sigma_t`` and ``t`` (zero gradients at ``t = inf``).

    Example:
        >>> homogeneous_transmittance(torch.tensor([0.0, 1.0]), torch.tensor([[2.0], [float("inf")]])).tolist()
        [[1.0, 0.1353352814912796], [1.0, 0.0]]
    """
    finite = torch.isfinite(t)
    tau = sigma_t * torch.where(finite, t, torch.zeros_like(t))
    tr = torch.exp(-tau)
    at_inf = (sigma_t == 0).to(tr.dtype).expand(tr.shape)
    return torch.where(finite, tr, at_inf)


def sample_homogeneous_distance(sigma_t: torch.Tensor, sigma_s: torch.Tensor, u: torch.Tensor,
                                channel: Optional[torch.Tensor] = None,
                                t_max: Optional[torch.Tensor] = None) -> DistanceSample:
    """Draw a free-flight distance by spectral MIS (module docstring), no validation.

    Args:
        sigma_t, sigma_s: ``[C]`` extinction and scattering coefficients, ``>= 0``.
        u: ``[..., 1]`` uniform numbers in [0, 1).
        channel: optional ``[..., 1]`` int64 channel indices in ``[0, C)``, drawn **uniformly** by the caller
            (the estimator assumes it). ``None``: ``c = floor(C u)`` and the fraction ``C u - c`` samples ``t``
            (one number does both).
        t_max: optional ``[..., 1]`` distance to the next surface (``None``: ``+inf``).

    Returns:
        :class:`DistanceSample` ``(t [..., 1], weight [..., C], pdf [..., 1])``.

    **Differentiability:** for fixed ``u`` and channel, ``t = -log(1 - u') / sigma_t[c]`` is a
    reparameterisation in ``sigma_t``; ``weight`` and ``pdf`` are differentiable in ``sigma_t``, ``sigma_s``
    and ``t_max``. The event / surface choice is discrete.

    Example: a grey medium, one channel, ``u = 1 - 1/e``: ``t = 1 / sigma_t``, ``weight = albedo``::

        >>> s = sample_homogeneous_distance(torch.tensor([2.0]), torch.tensor([1.5]), torch.tensor([[0.6321205588]]))
        >>> round(s.t.item(), 6), round(s.weight.item(), 6)
        (0.5, 0.75)
    """
    n_ch = sigma_t.shape[-1]
    if channel is None:
        scaled = u * n_ch
        channel = scaled.floor().clamp(0, n_ch - 1)
        u = (scaled - channel).clamp(0.0, 1.0)
        channel = channel.long()
    sig = sigma_t.expand(channel.shape[:-1] + (n_ch,)).gather(-1, channel)
    positive = sig > 0
    t = -torch.log1p(-u) / torch.where(positive, sig, torch.ones_like(sig))
    t = torch.where(positive, t, torch.full_like(t, float("inf")))
    if t_max is None:
        t_max = torch.full_like(t, float("inf"))
    scattered = t < t_max
    t = torch.where(scattered, t, t_max.expand(t.shape))
    tr = homogeneous_transmittance(sigma_t, t)
    pdf_event = (sigma_t * tr).mean(-1, keepdim=True)
    pdf_pass = tr.mean(-1, keepdim=True)
    pdf = torch.where(scattered, pdf_event, pdf_pass)
    ok = pdf > 0
    safe = torch.where(ok, pdf, torch.ones_like(pdf))
    weight = torch.where(scattered, sigma_s * tr, tr) / safe
    weight = torch.where(ok, weight, torch.zeros_like(weight))
    return DistanceSample(t, weight, torch.where(ok, pdf, torch.zeros_like(pdf)))


def _coefficient(x, name: str) -> torch.Tensor:
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a tensor [C] or a number; got bool")
    if isinstance(x, (int, float)):
        x = torch.tensor([float(x)])
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor [C] or a number; got {type(x).__name__}")
    check_tensor(x, name, trailing=(None,), max_dims=1, floating=True, finite=True)
    if x.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one channel; got shape {tuple(x.shape)}")
    if x.device.type != "meta" and bool((x.detach() < 0).any()):
        raise ValueError(f"{name} must be >= 0; got min {float(x.detach().min()):.9g}")
    return x


@dataclass
class HomogeneousMedium:
    """A homogeneous medium: absorption ``sigma_a [C]``, scattering ``sigma_s [C]`` (per unit length) and the
    Henyey-Greenstein asymmetry ``g`` of its phase function (Mitsuba's ``homogeneous`` with an ``hg`` phase).

    Attributes:
        sigma_a: ``[C]`` absorption coefficients, ``>= 0`` (a number means one channel).
        sigma_s: ``[C]`` scattering coefficients, ``>= 0``; the same channels as ``sigma_a`` (or one, which
            broadcasts).
        g: asymmetry in (-1, 1), a number or a one-element tensor.

    Validated on construction (one host sync). Tensors keep their autograd graph: optimise them directly.

    Raises:
        TypeError / ValueError: naming ``sigma_a``, ``sigma_s`` or ``g``: not a tensor or number, NaN / Inf,
            negative, mismatched channels, ``|g| >= 1``.

    **Differentiability:** ``transmittance`` in ``sigma_a``, ``sigma_s`` and ``t``; ``sample_distance`` as
    :func:`sample_homogeneous_distance`; ``phase`` in ``g``.

    Example: half the light scatters, half is absorbed; ``Tr(1) = exp(-2)``::

        >>> m = HomogeneousMedium(torch.tensor([1.0]), torch.tensor([1.0]), g=0.5)
        >>> m.albedo.tolist(), round(m.transmittance(torch.ones(1, 1)).item(), 6)
        ([0.5], 0.135335)
    """

    sigma_a: torch.Tensor
    sigma_s: torch.Tensor
    g: Union[float, torch.Tensor] = 0.0

    def __post_init__(self):
        self.sigma_a = _coefficient(self.sigma_a, "sigma_a")
        self.sigma_s = _coefficient(self.sigma_s, "sigma_s")
        if self.sigma_s.device != self.sigma_a.device:
            raise ValueError(f"sigma_s is on {self.sigma_s.device} but sigma_a is on {self.sigma_a.device}; move "
                             "them to one device")
        a, s = self.sigma_a.shape[-1], self.sigma_s.shape[-1]
        if a != s and 1 not in (a, s):
            raise ValueError(f"sigma_a and sigma_s must have the same channels; got {a} and {s}")
        if isinstance(self.g, torch.Tensor) and self.g.numel() != 1:
            raise ValueError(f"g must be a number or a one-element tensor; got shape {tuple(self.g.shape)}")
        HenyeyGreenstein(self.g)  # validates g (finite, |g| < 1)
        if not isinstance(self.g, torch.Tensor):
            self.g = check_number(self.g, "g", lo=-1.0, hi=1.0, lo_open=True, hi_open=True)

    def parameters(self) -> Dict[str, torch.Tensor]:
        """``{"sigma_a", "sigma_s"}`` and ``"g"`` when it is a tensor: the medium's differentiable values."""
        out = {"sigma_a": self.sigma_a, "sigma_s": self.sigma_s}
        if isinstance(self.g, torch.Tensor):
            out["g"] = self.g
        return out

    def with_tensor_g(self, dtype: torch.dtype, device=None) -> "HomogeneousMedium":
        """This medium if ``g`` is a tensor, else a copy whose ``g`` is a tensor of ``dtype`` (so that it is a
        parameter), the same copy every time it is asked of this medium (while its values are unchanged): a
        medium given to several materials, or to a material and a scene, stays one medium."""
        if isinstance(self.g, torch.Tensor):
            return self
        copy = self.__dict__.get("_with_tensor_g")
        device = self.sigma_a.device if device is None else device
        if (copy is None or copy.sigma_a is not self.sigma_a or copy.sigma_s is not self.sigma_s
                or copy.g.dtype != dtype or copy.g.device != torch.device(device) or float(copy.g) != self.g):
            copy = replace(self, g=torch.tensor(float(self.g), dtype=dtype, device=device))
            self.__dict__["_with_tensor_g"] = copy
        return copy

    @property
    def channels(self) -> int:
        """``C``."""
        return max(self.sigma_a.shape[-1], self.sigma_s.shape[-1])

    @property
    def sigma_t(self) -> torch.Tensor:
        """Extinction ``sigma_a + sigma_s`` ``[C]``."""
        return self.sigma_a + self.sigma_s

    @property
    def albedo(self) -> torch.Tensor:
        """Single-scattering albedo ``sigma_s / sigma_t`` ``[C]`` (0 where ``sigma_t = 0``)."""
        st = self.sigma_t
        ok = st > 0
        return torch.where(ok, self.sigma_s / torch.where(ok, st, torch.ones_like(st)), torch.zeros_like(st))

    @property
    def phase(self) -> HenyeyGreenstein:
        """The phase function, :class:`~lumigrad.shading.HenyeyGreenstein` of ``g``."""
        return HenyeyGreenstein(self.g)

    def transmittance(self, t: torch.Tensor) -> torch.Tensor:
        """``exp(-sigma_t t)`` ``[..., C]`` for distances ``t [..., 1]`` (``>= 0``; ``+inf`` allowed)."""
        check_tensor(t, "t", trailing=(1,), floating=True, device=self.sigma_a.device)
        return homogeneous_transmittance(self.sigma_t, t)

    def sample_distance(self, u: torch.Tensor, channel: Optional[torch.Tensor] = None,
                        t_max: Optional[torch.Tensor] = None) -> DistanceSample:
        """A free-flight distance from ``u [..., 1]``: :func:`sample_homogeneous_distance` (spectral MIS).

        ``channel`` (optional ``[..., 1]`` integer indices, drawn uniformly by the caller) is checked to lie in
        ``[0, C)`` (one host sync); ``t_max`` is the optional ``[..., 1]`` distance to the next surface.
        """
        device = self.sigma_a.device
        check_tensor(u, "u", trailing=(1,), floating=True, device=device)
        if channel is not None:
            check_tensor(channel, "channel", trailing=(1,), floating=False, device=device)
            check_indices(channel, "channel", self.channels)
            channel = channel.long()
        if t_max is not None:
            check_tensor(t_max, "t_max", trailing=(1,), floating=True, device=device)
        sigma_s = self.sigma_s.expand(self.channels)
        return sample_homogeneous_distance(self.sigma_t.expand(self.channels), sigma_s, u, channel, t_max)
