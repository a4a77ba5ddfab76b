"""BRDFs as pure, differentiable PyTorch functions of directions, normals and material parameters.

Every BRDF here returns the value ``f(wi, wo)`` of the bidirectional reflectance distribution function,
**not** multiplied by the cosine. The reflected radiance of one light is

    L_o(wo) = f(wi, wo) * L_i(wi) * max(n . wi, 0)

so the rasterizer's deferred shading and a ray tracer call the same functions.

Conventions (``docs/conventions.md``):

* ``n``, ``wi``, ``wo`` are ``[..., 3]`` and broadcast against each other. All directions point **away**
  from the surface: ``wi`` towards the light, ``wo`` towards the viewer. They are normalised here (an
  interpolated normal need not be exactly unit), and a vector shorter than ``1e-6`` raises ``ValueError``.
* Colours are channel-last ``[..., C]``. Per-point scalars (``roughness``, ``metallic``, ``ior``) are a
  Python number, a 0-dim tensor or a ``[..., 1]`` tensor (the channel dim is 1, as in a G-buffer).
* Whenever ``wi`` or ``wo`` is at or below the horizon (``n . wi <= 0`` or ``n . wo <= 0``) the BRDF is
  exactly 0, and so are its gradients there (never NaN).
* ``alpha = roughness ** 2`` (glTF 2.0), clamped from below to ``ALPHA_MIN = 1e-3``, so that roughness 0
  (a mirror, a Dirac delta in theory) gives a very sharp but finite lobe with finite gradients.

The low-level terms ``ggx_distribution``, ``smith_ggx_correlated_visibility``, ``fresnel_schlick`` and
``f0_from_ior`` are elementwise and take any broadcastable shapes.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple, Union

import torch

from .._checks import check_tensor
from .warps import beckmann_normal, cosine_hemisphere, ggx_visible_normal, local_frame, to_local, to_world

__all__ = [
    "ALPHA_MIN",
    "MICROFACETS",
    "lambert",
    "ggx_distribution",
    "smith_ggx_correlated_visibility",
    "fresnel_schlick",
    "f0_from_ior",
    "cook_torrance",
    "metallic_roughness",
    "metallic_roughness_unchecked",
    "BSDFSample",
    "metallic_roughness_pdf",
    "metallic_roughness_pdf_unchecked",
    "metallic_roughness_sample",
    "metallic_roughness_sample_unchecked",
]

#: Smallest GGX ``alpha`` (= roughness ** 2) used anywhere: roughness below ``sqrt(ALPHA_MIN) ~ 0.0316``
#: shades like that roughness and gets a zero gradient (``torch.clamp``), never an infinite one.
ALPHA_MIN = 1e-3
#: The microfacet distributions of the specular lobes (``Material.microfacet``): ``"ggx"`` (glTF's) and
#: ``"beckmann"`` (Mitsuba's default for its rough BSDFs), both of width ``alpha = max(roughness^2, ALPHA_MIN)``.
MICROFACETS = ("ggx", "beckmann")
#: Beyond this ``a = 1 / (alpha tan(theta))`` Smith's Beckmann ``Lambda`` is 0 (Walter et al. 2007's fit).
_BECKMANN_MAX_A = 1.6
#: Floor of ``cos^2`` of a Beckmann half vector: below it ``D`` is ``exp(-1e6 / alpha^2) = 0`` anyway.
_BECKMANN_COS2_FLOOR = 1e-6
#: Cosines are clamped to at least this inside the maths, so grazing directions stay finite.
_DOT_EPS = 1e-6
#: Directions and normals shorter than this raise ``ValueError``.
_MIN_NORM = 1e-6

# --------------------------------------------------------------------------------------------- checks
def _as_tensor(x, name: str, like: torch.Tensor) -> torch.Tensor:
    """A float tensor from a Python number or tensor, on ``like``'s device (numbers take its dtype)."""
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a number or a torch.Tensor; got bool")
    if isinstance(x, (int, float)):
        return torch.tensor(float(x), dtype=like.dtype, device=like.device)
    check_tensor(x, name, floating=True, finite=True, device=like.device)
    return x


def _check_param(x, name: str, like: torch.Tensor, lo=None, hi=None, *, shape: str = "point",
                 lo_open: bool = False) -> torch.Tensor:
    """Validate a parameter and return it as a tensor; ``ValueError`` names it when out of range.

    ``shape``: ``"point"`` for per-point scalars (a number, 0-dim or ``[..., 1]``), ``"color"`` for
    ``[..., C]`` (a number is allowed), ``"any"`` for the elementwise terms. Closed bounds allow a few ulps of
    rounding (texture filtering of texels in [0, 1] can return 1 + 1 ulp).
    """
    x = _as_tensor(x, name, like)
    if shape == "point" and x.dim() > 0:
        check_tensor(x, name, trailing=(1,))
    if not x.numel() or x.device.type == "meta":
        return x
    ulps = 8 * torch.finfo(x.dtype).eps
    lo_bad = lo is not None and bool((x <= lo).any() if lo_open else (x < lo - ulps * max(1.0, abs(lo))).any())
    hi_bad = hi is not None and bool((x > hi + ulps * max(1.0, abs(hi))).any())
    if lo_bad or hi_bad:
        if hi is None:
            want = f"> {lo}" if lo_open else f">= {lo}"
        else:
            want = f"in [{lo}, {hi}]"
        got = f"min {float(x.detach().min()):.9g}" if lo_bad else f"max {float(x.detach().max()):.9g}"
        raise ValueError(f"{name} must be {want}; got {got}")
    return x


def _check_dir(x, name: str, device=None) -> torch.Tensor:
    """Validate a ``[..., 3]`` direction and return it normalised; zero-length vectors raise."""
    check_tensor(x, name, trailing=(3,), floating=True, finite=True, device=device)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if x.numel() and x.device.type != "meta" and bool((norm < _MIN_NORM).any()):
        raise ValueError(f"{name} must have non-zero length (>= {_MIN_NORM:g}) everywhere; got a vector of "
                         f"length {float(norm.detach().min()):g}")
    return x / norm


def _batch(named) -> torch.Size:
    """Broadcast the shapes of ``(name, tensor)`` pairs or raise ``ValueError`` naming the culprits."""
    shape = torch.Size(())
    seen = []
    for name, t in named:
        try:
            shape = torch.broadcast_shapes(shape, t.shape)
        except RuntimeError:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, which does not broadcast with "
                             f"{', '.join(seen)} (broadcast shape {tuple(shape)})") from None
        seen.append(name)
    return shape


def _geometry(n, wi, wo):
    """Normalised ``n, wi, wo`` plus the clamped cosines, the half vector and the above-horizon mask."""
    n = _check_dir(n, "n")
    wi = _check_dir(wi, "wi", device=n.device)
    wo = _check_dir(wo, "wo", device=n.device)
    _batch([("n", n), ("wi", wi), ("wo", wo)])
    return _cosines(n, wi, wo)


def _cosines(n, wi, wo):
    """``(n.l, n.v, sin2_h, v.h, valid)`` of unit ``n, wi, wo``: clamped cosines, ``sin2_h = 1 - (n.h)^2`` and
    the above-horizon mask.

    No normalised half vector: with ``hv = wi + wo``, ``1 - (n.h)^2 = |n x hv|^2 / |hv|^2`` (Lagrange's identity
    for unit ``n``), which keeps all its digits near a sharp highlight (``n.h -> 1``), where ``1 - (n.h)^2``
    would cancel, and ``v.h = |hv| / 2``, which keeps them where ``wi`` nears ``-wo`` (both grazing), where
    ``wo . h`` would. ``|hv|^2`` is clamped to ``1e-12`` (then ``v.h = wo . hv / 1e-6``)."""
    n_dot_l_raw = (n * wi).sum(-1, keepdim=True)
    n_dot_v_raw = (n * wo).sum(-1, keepdim=True)
    valid = (n_dot_l_raw > 0) & (n_dot_v_raw > 0)
    # Below the horizon the result is replaced by an exact 0 with torch.where; the clamps keep the unused
    # branch finite so that its (zero) gradient never turns into 0 * inf = NaN.
    n_dot_l = n_dot_l_raw.clamp(_DOT_EPS, 1.0)
    n_dot_v = n_dot_v_raw.clamp(_DOT_EPS, 1.0)
    hv = wi + wo
    hh_raw = (hv * hv).sum(-1, keepdim=True)
    hh = hh_raw.clamp_min(_DOT_EPS ** 2)
    dtype = torch.promote_types(n.dtype, hv.dtype)  # cross, unlike the dot products, does not promote
    n_cross_hv = torch.linalg.cross(*torch.broadcast_tensors(n.to(dtype), hv.to(dtype)), dim=-1)
    sin2_h = (n_cross_hv * n_cross_hv).sum(-1, keepdim=True) / hh
    # v.h = |hv| / 2 for unit wi, wo (wo . h cancels when wi is close to -wo); wo . hv / 1e-6 where |hv| is clamped
    v_dot_h = torch.where(hh_raw >= _DOT_EPS ** 2, 0.5 * hh.sqrt(), (wo * hv).sum(-1, keepdim=True) / _DOT_EPS)
    return n_dot_l, n_dot_v, sin2_h, v_dot_h.clamp(0.0, 1.0), valid


def _ggx_q(sin2_h, a2):
    """GGX's ``q = (1 - (n.h)^2) + (n.h)^2 alpha^2`` as ``alpha^2 + sin2_h (1 - alpha^2)``: two non-negative
    terms, no cancellation (``D = alpha^2 / (pi q^2)``)."""
    return a2 + sin2_h * (1.0 - a2)


def ggx_d(sin2_h: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """GGX's ``D = alpha^2 / (pi q^2)`` from ``sin2_h = 1 - (n.h)^2`` and ``a2 = alpha^2`` (:func:`_ggx_q`; no
    checks), the twin of :func:`beckmann_d`."""
    q = _ggx_q(sin2_h, a2)
    return a2 / (math.pi * q * q)


def _alpha(roughness: torch.Tensor) -> torch.Tensor:
    return (roughness * roughness).clamp_min(ALPHA_MIN)


def beckmann_d(sin2_h: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """Beckmann's ``D = exp(-tan^2(theta_h) / alpha^2) / (pi alpha^2 cos^4(theta_h))`` from ``sin2_h = 1 -
    (n.h)^2`` and ``a2 = alpha^2`` (no checks; normalised so that the integral of ``D (n.h)`` is 1)."""
    c2 = (1.0 - sin2_h).clamp_min(_BECKMANN_COS2_FLOOR)
    return torch.exp(-sin2_h / (c2 * a2)) / (math.pi * a2 * c2 * c2)


def beckmann_lambda(cos: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Smith's ``Lambda`` of a Beckmann surface seen at ``cos`` (``> 0``) from the normal: Walter et al. 2007's
    rational fit in ``a = cos / (alpha sin)``, ``(1 - 1.259 a + 0.396 a^2) / (3.535 a + 2.181 a^2)`` below
    ``a = 1.6`` and 0 above, as Mitsuba's ``smith_g1 = 1 / (1 + Lambda)`` (no checks; finite gradients)."""
    sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
    a = (cos / (alpha * sin)).clamp_max(_BECKMANN_MAX_A)
    lam = (1.0 - 1.259 * a + 0.396 * a * a) / (3.535 * a + 2.181 * a * a)
    return torch.where(a < _BECKMANN_MAX_A, lam, torch.zeros_like(lam))


def beckmann_g1(cos: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Smith's masking ``1 / (1 + Lambda)`` of a Beckmann surface at ``cos > 0`` (:func:`beckmann_lambda`)."""
    return 1.0 / (1.0 + beckmann_lambda(cos, alpha))


def smith_g1(cos: torch.Tensor, alpha: torch.Tensor, beckmann: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Smith's masking at ``cos > 0``: GGX's ``2 cos / (cos + sqrt(alpha^2 + (1 - alpha^2) cos^2))``, or
    :func:`beckmann_g1` where ``beckmann`` (``[..., 1]`` bool, or None) is True (no checks)."""
    a2 = alpha * alpha
    g = 2.0 * cos / (cos + (a2 + (1.0 - a2) * cos * cos).sqrt()).clamp_min(1e-12)
    if beckmann is not None:
        g = torch.where(beckmann, beckmann_g1(cos, alpha), g)
    return g


def _beckmann_terms(n_dot_l, n_dot_v, sin2_h, alpha):
    """``(D, V)`` of a Beckmann surface: ``V = 1 / (4 n.l n.v (1 + Lambda(l) + Lambda(v)))``, height-correlated
    as the GGX one (:func:`smith_ggx_correlated_visibility`)."""
    vis = 0.25 / (n_dot_l * n_dot_v * (1.0 + beckmann_lambda(n_dot_l, alpha) + beckmann_lambda(n_dot_v, alpha)))
    return beckmann_d(sin2_h, alpha * alpha), vis


# --------------------------------------------------------------------------------------------- terms
def ggx_distribution(n_dot_h, alpha) -> torch.Tensor:
    """Evaluate the GGX / Trowbridge-Reitz normal distribution ``D(h)``.

    ``D = alpha^2 / (pi * ((n.h)^2 * (alpha^2 - 1) + 1)^2)``, normalised so that
    ``integral of D(h) (n.h) dw_h over the hemisphere = 1``.

    Args:
        n_dot_h: cosine between the normal and the half vector, any shape, float; clamped to ``[0, 1]``.
        alpha: GGX width (glTF: ``roughness ** 2``), broadcastable with ``n_dot_h``, in ``[0, 1]``;
            clamped from below to ``ALPHA_MIN = 1e-3``.

    Returns:
        ``D``, the broadcast shape of the inputs, in 1 / steradian.

    **Differentiability:** smooth in ``n_dot_h`` and ``alpha``; zero gradient where a clamp is active
    (``n_dot_h`` outside ``[0, 1]``, ``alpha < ALPHA_MIN``).

    Example:
        >>> round(ggx_distribution(torch.tensor(1.0), torch.tensor(0.5)).item(), 4)  # 1 / (pi * 0.25)
        1.2732
    """
    n_dot_h = _as_tensor(n_dot_h, "n_dot_h", _like(n_dot_h, alpha))
    alpha = _check_param(alpha, "alpha", n_dot_h, 0.0, 1.0, shape="any")
    nh = n_dot_h.clamp(0.0, 1.0)
    a2 = alpha.clamp_min(ALPHA_MIN) ** 2
    nh2 = nh * nh
    d = (1.0 - nh2) + nh2 * a2
    return a2 / (math.pi * d * d)


def smith_ggx_correlated_visibility(n_dot_v, n_dot_l, alpha) -> torch.Tensor:
    """Evaluate the height-correlated Smith GGX visibility ``V = G2 / (4 (n.l)(n.v))``.

    As in the glTF 2.0 spec (appendix B) and Filament:
    ``V = 0.5 / (n.l * sqrt((n.v)^2 (1 - alpha^2) + alpha^2) + n.v * sqrt((n.l)^2 (1 - alpha^2) + alpha^2))``.

    Args:
        n_dot_v: cosine of the view direction ``wo`` with the normal, any shape; clamped to ``[1e-6, 1]``.
        n_dot_l: cosine of the light direction ``wi`` with the normal, broadcastable; clamped likewise.
        alpha: GGX width (``roughness ** 2``) in ``[0, 1]``, broadcastable; clamped below at ``ALPHA_MIN``.

    Returns:
        ``V``, the broadcast shape of the inputs. It is symmetric in ``n_dot_v`` and ``n_dot_l``. The
        caller masks directions below the horizon (``cook_torrance`` does).

    **Differentiability:** smooth in all three inputs (the square roots never see less than
    ``ALPHA_MIN^2``); zero gradient where a clamp is active.

    Example:
        >>> smith_ggx_correlated_visibility(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(0.5)).item()
        0.25
    """
    like = _like(n_dot_v, n_dot_l, alpha)
    n_dot_v = _as_tensor(n_dot_v, "n_dot_v", like)
    n_dot_l = _as_tensor(n_dot_l, "n_dot_l", like)
    alpha = _check_param(alpha, "alpha", like, 0.0, 1.0, shape="any")
    nv = n_dot_v.clamp(_DOT_EPS, 1.0)
    nl = n_dot_l.clamp(_DOT_EPS, 1.0)
    a2 = alpha.clamp_min(ALPHA_MIN) ** 2
    ggx_v = nl * torch.sqrt(nv * nv * (1.0 - a2) + a2)
    ggx_l = nv * torch.sqrt(nl * nl * (1.0 - a2) + a2)
    return 0.5 / (ggx_v + ggx_l)


def fresnel_schlick(v_dot_h, f0) -> torch.Tensor:
    """Evaluate Schlick's Fresnel approximation ``F = f0 + (1 - f0) (1 - v.h)^5``.

    Args:
        v_dot_h: cosine between the view direction and the half vector, any shape; clamped to ``[0, 1]``.
            Append a trailing 1 (``[..., 1]``) to broadcast against a colour ``f0 [..., C]``.
        f0: reflectance at normal incidence in ``[0, 1]``, broadcastable (a number, ``[..., 1]`` or
            ``[..., C]``).

    Returns:
        ``F``, the broadcast shape of the inputs.

    **Differentiability:** smooth in both inputs (polynomial); zero gradient in ``v_dot_h`` where it is
    clamped.

    Example:
        >>> fresnel_schlick(torch.tensor(0.0), torch.tensor(0.04)).item()  # grazing: F = 1
        1.0
    """
    like = _like(v_dot_h, f0)
    v_dot_h = _as_tensor(v_dot_h, "v_dot_h", like)
    f0 = _check_param(f0, "f0", like, 0.0, 1.0, shape="any")
    m = 1.0 - v_dot_h.clamp(0.0, 1.0)
    m2 = m * m
    return f0 + (1.0 - f0) * (m2 * m2 * m)


def f0_from_ior(ior) -> torch.Tensor:
    """Return the normal-incidence reflectance of a dielectric, ``f0 = ((ior - 1) / (ior + 1))^2``.

    Args:
        ior: index of refraction (relative to the outside medium), ``> 0``, a number or a tensor of any
            shape.

    Returns:
        ``f0``, the shape of ``ior`` (a 0-dim float32 tensor for a Python number).

    **Differentiability:** smooth in ``ior`` (``d f0 / d ior = 4 (ior - 1) / (ior + 1)^3``).

    Example:
        >>> round(f0_from_ior(1.5).item(), 6)  # glTF's default dielectric
        0.04
    """
    if isinstance(ior, (int, float)) and not isinstance(ior, bool):
        ior = torch.tensor(float(ior))
    ior = _check_param(ior, "ior", _like(ior), 0.0, None, shape="any", lo_open=True)
    r = (ior - 1.0) / (ior + 1.0)
    return r * r


def _like(*xs) -> torch.Tensor:
    """The first tensor among ``xs`` (for dtype and device), else a float32 CPU scalar."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x
    return torch.tensor(0.0)


# --------------------------------------------------------------------------------------------- BRDFs
def lambert(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, albedo) -> torch.Tensor:
    """Evaluate the Lambertian (ideal diffuse) BRDF ``f = albedo / pi`` above the horizon.

    Radiance: ``L_o = f * L_i * max(n.wi, 0)``.

    Args:
        n: surface normals, ``[..., 3]``, float; normalised here, zero length raises ``ValueError``.
        wi: directions towards the light, ``[..., 3]``, pointing away from the surface.
        wo: directions towards the viewer, ``[..., 3]``, pointing away from the surface.
        albedo: diffuse reflectance, ``[..., C]`` (or a number), linear colour; not range-checked.

    Returns:
        ``f``, ``[..., C]``: the broadcast of the batch dims of ``n, wi, wo, albedo`` with ``C`` channels;
        exactly 0 where ``n.wi <= 0`` or ``n.wo <= 0``.

    **Differentiability:** linear in ``albedo`` (gradient ``1 / pi`` above the horizon, 0 below); the
    gradient with respect to ``n``, ``wi``, ``wo`` is 0 everywhere (the value is piecewise constant in them,
    and the horizon step is not differentiated).

    Example:
        >>> z = torch.tensor([0.0, 0.0, 1.0])
        >>> lambert(z, z, z, torch.tensor([math.pi])).tolist()
        [1.0]
    """
    _, _, _, _, valid = _geometry(n, wi, wo)
    albedo = _as_tensor(albedo, "albedo", n)
    if albedo.dim() == 0:
        albedo = albedo.reshape(1)
    _batch([("n, wi, wo", valid), ("albedo", albedo)])
    f = albedo / math.pi
    return torch.where(valid, f, torch.zeros((), dtype=f.dtype, device=f.device))


def cook_torrance(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, roughness, f0) -> torch.Tensor:
    """Evaluate the GGX Cook-Torrance specular lobe ``f = D(h) * V(n.v, n.l) * F(v.h)``.

    ``h = normalize(wi + wo)``, ``alpha = max(roughness^2, ALPHA_MIN)`` with ``ALPHA_MIN = 1e-3``,
    ``D = ggx_distribution``, ``V = smith_ggx_correlated_visibility`` (``G / (4 n.l n.v)`` already folded
    in) and ``F = fresnel_schlick(v.h, f0)``. Radiance: ``L_o = f * L_i * max(n.wi, 0)``.

    Args:
        n: surface normals, ``[..., 3]``, float; normalised here, zero length raises ``ValueError``.
        wi: directions towards the light, ``[..., 3]``, pointing away from the surface.
        wo: directions towards the viewer, ``[..., 3]``, pointing away from the surface.
        roughness: perceptual roughness in ``[0, 1]``, a number or ``[..., 1]``.
        f0: specular reflectance at normal incidence in ``[0, 1]``, a number, ``[..., 1]`` or ``[..., C]``.

    Returns:
        ``f``, ``[..., C]`` (``C = 1`` for a scalar ``f0``); exactly 0 where ``n.wi <= 0`` or ``n.wo <= 0``.
        Symmetric in ``wi`` and ``wo`` (reciprocal).

    **Differentiability:** smooth in ``n``, ``wi``, ``wo``, ``roughness`` and ``f0`` above the horizon;
    exactly zero gradients below it (``torch.where`` over a branch kept finite by clamping the cosines to
    ``>= 1e-6``). The gradient with respect to ``roughness`` is 0 for ``roughness < sqrt(ALPHA_MIN) ~ 0.032``
    (the alpha clamp), so roughness 0 and 1 give finite values and finite gradients. Very small roughness
    gives large (finite) values near the mirror direction, as the physics demands.

    Example:
        >>> z = torch.tensor([0.0, 0.0, 1.0])  # normal incidence: D = 1 / (pi alpha^2), V = 1/4, F = f0
        >>> round(cook_torrance(z, z, z, 0.5, 1.0).item(), 4)  # 1 / (4 pi 0.0625) = 4 / pi
        1.2732
    """
    n_dot_l, n_dot_v, sin2_h, v_dot_h, valid = _geometry(n, wi, wo)
    roughness = _check_param(roughness, "roughness", n_dot_l, 0.0, 1.0)
    f0 = _check_param(f0, "f0", n_dot_l, 0.0, 1.0, shape="color")
    _batch([("n, wi, wo", valid), ("roughness", roughness), ("f0", f0.reshape(1) if f0.dim() == 0 else f0)])
    f, _ = _specular(n_dot_l, n_dot_v, sin2_h, v_dot_h, _alpha(roughness), f0)
    return torch.where(valid, f, torch.zeros((), dtype=f.dtype, device=f.device))


def _specular(n_dot_l, n_dot_v, sin2_h, v_dot_h, alpha, f0, beckmann=None):
    """``(D V F, D V)`` from already clamped cosines and ``sin2_h = 1 - (n.h)^2`` (:func:`_cosines`); no checks.
    ``beckmann`` (``[..., 1]`` bool, or None: GGX everywhere, the same bits) picks Beckmann's ``D`` and ``V``."""
    a2 = alpha * alpha
    dist = ggx_d(sin2_h, a2)
    vis = 0.5 / (n_dot_l * torch.sqrt(n_dot_v * n_dot_v * (1.0 - a2) + a2)
                 + n_dot_v * torch.sqrt(n_dot_l * n_dot_l * (1.0 - a2) + a2))
    if beckmann is not None:
        b_dist, b_vis = _beckmann_terms(n_dot_l, n_dot_v, sin2_h, alpha)
        dist, vis = torch.where(beckmann, b_dist, dist), torch.where(beckmann, b_vis, vis)
    dv = dist * vis
    m = 1.0 - v_dot_h
    m2 = m * m
    fres = f0 + (1.0 - f0) * (m2 * m2 * m)
    return dv * fres, dv


def metallic_roughness(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, base_color, roughness, metallic, *,
                       ior=1.5, specular_f0=None, specular=None, return_parts: bool = False
                       ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Evaluate the glTF 2.0 metallic-roughness BRDF (spec appendix B).

    With ``c = base_color``, ``alpha = max(roughness^2, 1e-3)``, ``DV = D(n.h) V(n.v, n.l)`` (the GGX
    specular without Fresnel) and ``schlick(f0) = f0 + (1 - f0) (1 - v.h)^5``::

        dielectric = (1 - s Fd) * c / pi + s Fd * DV   Fd = schlick(f0_d), f0_d = ((ior-1)/(ior+1))^2
        metal      = schlick(c) * DV                   (conductor Fresnel with f0 = base colour)
        f          = (1 - metallic) * dielectric + metallic * metal

    where ``s = specular`` (glTF ``KHR_materials_specular``'s ``specularFactor``, 1 when not given: the core
    glTF model); ``s = 0`` and ``metallic = 0`` give Lambert's ``c / pi`` exactly (Mitsuba's ``diffuse``).

    Radiance: ``L_o = f * L_i * max(n.wi, 0)``. Like the spec's model, the dielectric is not energy
    conserving at grazing view angles: ``1 - Fd`` is evaluated per light direction (about 0.96 for most of
    them) while the specular Fresnel tends to 1, so a white, smooth dielectric reflects up to ~1.8x the
    incident energy near 90 degrees (it conserves energy to 0.5% up to ~35 degrees; metals always do).

    Args:
        n: surface normals, ``[..., 3]``, float; normalised here, zero length raises ``ValueError``.
        wi: directions towards the light, ``[..., 3]``, pointing away from the surface.
        wo: directions towards the viewer, ``[..., 3]``, pointing away from the surface.
        base_color: linear base colour, ``[..., C]``, in ``[0, 1]``.
        roughness: perceptual roughness in ``[0, 1]``, a number or ``[..., 1]``.
        metallic: metalness in ``[0, 1]``, a number or ``[..., 1]``.
        ior: index of refraction of the dielectric, ``> 0``, a number or ``[..., 1]``; default 1.5
            (``f0_d = 0.04``). Ignored when ``specular_f0`` is given.
        specular_f0: optional dielectric normal-incidence reflectance in ``[0, 1]``, a number, ``[..., 1]``
            or ``[..., C]`` (e.g. ``KHR_materials_specular``), replacing the one from ``ior``.
        specular: optional weight ``s`` in ``[0, 1]`` of the dielectric's specular coat, a number or
            ``[..., 1]`` (``KHR_materials_specular``'s ``specularFactor``); ``None`` is 1 (the same bits).
        return_parts: also return the diffuse and specular parts.

    Returns:
        ``f``, ``[..., C]``, exactly 0 where ``n.wi <= 0`` or ``n.wo <= 0``; with ``return_parts``, the tuple
        ``(f, f_diffuse, f_specular)`` with ``f = f_diffuse + f_specular``, where
        ``f_diffuse = (1 - metallic) (1 - s Fd) c / pi``.

    **Differentiability:** smooth in ``n``, ``wi``, ``wo``, ``base_color``, ``roughness``, ``metallic``,
    ``ior``, ``specular_f0`` and ``specular`` above the horizon; exactly zero gradients below it. As in
    ``cook_torrance``, the gradient with respect to ``roughness`` vanishes below ``sqrt(1e-3) ~ 0.032``.

    Example:
        >>> z = torch.tensor([0.0, 0.0, 1.0])  # metal at normal incidence: f = c / (4 pi alpha^2)
        >>> c = torch.tensor([math.pi / 4, math.pi / 8, 0.0])  # roughness 0.5: f = 4 c / pi
        >>> metallic_roughness(z, z, z, c, 0.5, 1.0).tolist()
        [1.0, 0.5, 0.0]
    """
    n_dot_l, n_dot_v, sin2_h, v_dot_h, valid = _geometry(n, wi, wo)
    base_color, roughness, metallic, ior, specular_f0 = _check_material(base_color, roughness, metallic, ior,
                                                                        specular_f0, n_dot_l, valid)
    specular = _check_specular(specular, n_dot_l, valid)
    return _metallic_roughness(n_dot_l, n_dot_v, sin2_h, v_dot_h, valid, base_color, roughness, metallic, ior,
                               specular_f0, return_parts, specular=specular)


def metallic_roughness_unchecked(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, base_color, roughness,
                                 metallic, *, ior=1.5, specular_f0=None, return_parts: bool = False,
                                 transmission=None, specular=None, beckmann=None):
    """:func:`metallic_roughness` without validation (no host syncs): the same operations, so the same bits.

    For callers that validated their inputs once at their own boundary (deferred shading, BSDF sampling).
    Directions must be non-zero (they are normalised here, as in :func:`metallic_roughness`) and the
    parameters in range; nothing checks it.

    ``transmission`` (optional ``[..., 1]`` in [0, 1], glTF ``KHR_materials_transmission``) weights the
    dielectric layer by ``(1 - metallic) (1 - transmission)`` instead of ``1 - metallic``: the opaque part of
    :class:`lumigrad.shading.MetallicRoughnessTransmissionBSDF`, which adds the transmitting part. ``None``
    runs exactly the operations above; 0 gives the same bits (``(1 - metallic) * 1.0``). ``specular``: as in
    :func:`metallic_roughness` (``None`` or 1: the same bits). ``beckmann`` (optional ``[..., 1]`` bool) gives the
    specular lobes Beckmann's distribution and its height-correlated Smith visibility (Walter et al. 2007's
    ``Lambda``) where it is True; ``None`` is GGX everywhere, with the same bits.
    """
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    wi = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True)
    wo = wo / torch.linalg.vector_norm(wo, dim=-1, keepdim=True)
    cosines = _cosines(n, wi, wo)
    like = cosines[0]
    base_color, roughness, metallic = (_to_tensor(x, like) for x in (base_color, roughness, metallic))
    if specular_f0 is None:
        ior = _to_tensor(ior, like)
    else:
        specular_f0 = _to_tensor(specular_f0, like)
    return _metallic_roughness(*cosines, base_color, roughness, metallic, ior, specular_f0, return_parts,
                               transmission, specular, beckmann)


def _to_tensor(x, like: torch.Tensor) -> torch.Tensor:
    """A Python number as a 0-dim tensor of ``like``'s dtype and device (tensors unchanged), no checks."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)


def _metallic_roughness(n_dot_l, n_dot_v, sin2_h, v_dot_h, valid, base_color, roughness, metallic, ior,
                        specular_f0, return_parts, transmission=None, specular=None, beckmann=None):
    """The glTF BRDF from clamped cosines and tensor parameters (``ior`` unused when ``specular_f0`` is set);
    a ``transmission`` fraction scales the dielectric layer by ``1 - transmission``, a ``specular`` weight its
    Fresnel term (``KHR_materials_specular``)."""
    if specular_f0 is None:
        r = (ior - 1.0) / (ior + 1.0)
        f0_d = r * r
    else:
        f0_d = specular_f0
    alpha = _alpha(roughness)
    f_metal, dv = _specular(n_dot_l, n_dot_v, sin2_h, v_dot_h, alpha, base_color, beckmann)
    m = 1.0 - v_dot_h
    m2 = m * m
    fd = _weighted(f0_d + (1.0 - f0_d) * (m2 * m2 * m), specular)
    w_d = _dielectric_weight(metallic, transmission)
    diffuse = w_d * (1.0 - fd) * (base_color / math.pi)
    glossy = w_d * fd * dv + metallic * f_metal
    zero = torch.zeros((), dtype=diffuse.dtype, device=diffuse.device)
    diffuse = torch.where(valid, diffuse, zero)
    glossy = torch.where(valid, glossy, zero)
    f = diffuse + glossy
    if return_parts:
        return f, diffuse.expand(f.shape), glossy.expand(f.shape)
    return f


# --------------------------------------------------------------------------------------------- sampling
class BSDFSample(NamedTuple):
    """A direction drawn from a BSDF's sampling density, with its Monte Carlo weight.

    Attributes:
        wi: ``[..., 3]`` unit world direction towards the (sampled) light, pointing away from the surface.
        weight: ``[..., C]`` ``f(wi, wo) abs(n.wi) / pdf``, the estimator of scattered radiance per unit
            incident radiance; 0 where the sample is invalid (on the wrong side of the surface, ``pdf = 0``).
            For a delta lobe (``is_delta``) it is the lobe's coefficient divided by ``pdf``.
        pdf: ``[..., 1]`` density of ``wi`` per unit solid angle (the whole mixture, not just the lobe that
            produced it); 0 where the sample is invalid. For a delta lobe it is the discrete probability with
            which the lobe was chosen, not a density (Mitsuba's convention): never use it for multiple
            importance sampling against a density.
        is_delta: optional ``[..., 1]`` bool, where ``wi`` comes from a Dirac delta lobe (a smooth mirror or
            refraction: ``BSDF.eval`` and ``BSDF.pdf`` are 0 there, and light sampling can never find it).
            ``None`` (the reflection-only BSDFs): no sample is delta.
        is_transmission: optional ``[..., 1]`` bool, where ``wi`` is on the other side of the surface from
            ``wo`` (``(n.wi) (n.wo) < 0``: the path crosses the interface). ``None``: no sample is.
        eta: optional ``[..., 1]`` relative index of refraction along the sampled path, ``eta_wi_side /
            eta_wo_side`` (1 for reflection; Mitsuba's ``BSDFSample3f.eta``); an integrator multiplies it
            up for Russian roulette or to know in which medium the path continues. ``None``: 1 everywhere.

    The three optional fields default to ``None``, so ``BSDFSample(wi, weight, pdf)`` (the reflection-only
    BSDFs) is unchanged; read them as attributes (``s.is_delta``), not by unpacking.
    """

    wi: torch.Tensor
    weight: torch.Tensor
    pdf: torch.Tensor
    is_delta: Optional[torch.Tensor] = None
    is_transmission: Optional[torch.Tensor] = None
    eta: Optional[torch.Tensor] = None


def metallic_roughness_pdf(n: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor, base_color, roughness, metallic, *,
                           ior=1.5, specular_f0=None, specular=None) -> torch.Tensor:
    """Density per solid angle with which :func:`metallic_roughness_sample` draws ``wi``.

    A mixture of GGX visible-normal sampling of the specular lobe and cosine sampling of the diffuse one::

        pdf(wi) = p_spec * G1(wo) D(h) / (4 n.wo) + (1 - p_spec) * n.wi / pi       (n.wi > 0, n.wo > 0)

    with ``h = normalize(wi + wo)``, ``alpha = max(roughness^2, ALPHA_MIN)``, ``D`` the GGX distribution and
    ``G1(wo) = 2 n.wo / (n.wo + sqrt(alpha^2 + (1 - alpha^2) (n.wo)^2))``. The specular probability depends on
    ``wo`` only: with ``Fc = (1 - n.wo)^5``, ``F(f0) = f0 + (1 - f0) Fc``, ``F0_d`` from ``ior`` (or
    ``specular_f0``), ``s = specular`` (1 when None) and ``c = base_color``::

        spec = mean_C[(1 - metallic) s F(F0_d) + metallic F(c)],   diff = mean_C[(1 - metallic) (1 - s F(F0_d)) c]
        p_spec = spec / (spec + diff)     (1 where both are 0)

    which is the lobes' share of the reflected energy at ``wo`` (Schlick-weighted, as Mitsuba's principled
    BSDF chooses its lobes): a Lambertian configuration (``s = 0``, ``metallic = 0``, ``c != 0``) has
    ``p_spec = 0``, cosine sampling only. ``pdf = 0`` where ``n.wi <= 0`` or ``n.wo <= 0``; over the upper hemisphere it
    integrates to ``1 - P(a specular sample falls below the horizon) <= 1``.

    Args:
        n, wi, wo, base_color, roughness, metallic, ior, specular_f0, specular: as :func:`metallic_roughness`.

    Returns:
        ``pdf``, ``[..., 1]``, 1 / steradian.

    Raises:
        ValueError / TypeError: as :func:`metallic_roughness`.

    **Differentiability:** smooth in ``n``, ``wi``, ``wo``, ``roughness`` (above ``sqrt(ALPHA_MIN)``),
    ``base_color``, ``metallic``, ``ior``, ``specular_f0`` and ``specular`` above the horizon (through ``D``,
    ``G1`` and ``p_spec``); exactly 0 with zero gradients below it.

    Example: a pure diffuse configuration is cosine sampling, ``pdf = cos / pi``::

        >>> z = torch.tensor([0.0, 0.0, 1.0])
        >>> wi = torch.tensor([0.6, 0.0, 0.8])
        >>> round(metallic_roughness_pdf(z, wi, z, 1.0, 1.0, 0.0, specular_f0=0.0).item(), 4)  # p_spec = 0 at n.wo = 1
        0.2546
    """
    n_dot_l, n_dot_v, sin2_h, v_dot_h, valid = _geometry(n, wi, wo)
    like = n_dot_l
    base_color, roughness, metallic, ior, specular_f0 = _check_material(base_color, roughness, metallic, ior,
                                                                        specular_f0, like, valid)
    specular = _check_specular(specular, like, valid)
    return _pdf(n_dot_l, n_dot_v, sin2_h, None, valid, base_color, roughness, metallic,
                _f0_dielectric(ior, specular_f0), specular=specular)


def metallic_roughness_sample(n: torch.Tensor, wo: torch.Tensor, base_color, roughness, metallic,
                              u1: torch.Tensor, u2: torch.Tensor, *, ior=1.5, specular_f0=None,
                              specular=None) -> BSDFSample:
    """Draw an incident direction from the glTF metallic-roughness BRDF's sampling mixture.

    ``u1 < p_spec`` (see :func:`metallic_roughness_pdf`) picks the specular lobe: a GGX normal visible from
    ``wo`` (Heitz 2018, :func:`lumigrad.shading.warps.ggx_visible_normal`) with ``u2``, and ``wi`` the mirror
    of ``wo`` about it; otherwise ``wi`` is cosine-distributed (:func:`lumigrad.shading.warps.cosine_hemisphere`)
    with ``u2``. Both are built in the frame :func:`lumigrad.shading.warps.local_frame` of ``n``. The weight
    uses the whole mixture's density (one-sample multiple importance sampling over the lobes)::

        weight = metallic_roughness(n, wi, wo, ...) * max(n.wi, 0) / pdf(wi)

    Args:
        n, wo, base_color, roughness, metallic, ior, specular_f0, specular: as :func:`metallic_roughness`.
        u1: ``[..., 1]`` uniform numbers in [0, 1) choosing the lobe.
        u2: ``[..., 2]`` uniform numbers in [0, 1)^2 choosing the direction.

    Returns:
        :class:`BSDFSample` ``(wi [..., 3], weight [..., C], pdf [..., 1])``; a specular sample reflected below
        the horizon (or any sample when ``n.wo <= 0``) has ``weight = 0`` and ``pdf = 0``. ``pdf`` equals
        :func:`metallic_roughness_pdf` at ``wi``.

    Raises:
        ValueError / TypeError: as :func:`metallic_roughness`, and ``u1`` / ``u2`` of the wrong shape, device,
            or outside [0, 1].

    **Differentiability:** for a fixed ``(u1, u2)``, ``wi`` is a smooth reparameterisation in ``roughness``
    and ``n``, ``wo`` (the specular lobe; the diffuse lobe's ``wi`` depends on ``n`` only), and ``weight`` and
    ``pdf`` are differentiable in everything :func:`metallic_roughness_pdf` is. The choice of the lobe is
    discrete: ``p_spec`` moves with ``base_color``, ``metallic`` and ``ior`` but a sample never switches lobes
    under a gradient, so ``d weight / d theta`` is not an unbiased estimator of ``d/dtheta E[weight]`` when
    ``p_spec`` depends on ``theta``. For unbiased gradients of rendered integrals use detached sampling as
    Mitsuba's ``prb`` does: ``wi = s.wi.detach()`` and differentiate ``f(wi) max(n.wi, 0) / s.pdf.detach()``.

    Example: a diffuse surface seen head-on, ``u2 = (0, 0)``: the sample is the normal, weight = albedo::

        >>> z = torch.tensor([0.0, 0.0, 1.0])
        >>> s = metallic_roughness_sample(z, z, torch.tensor([0.5]), 1.0, 0.0, torch.tensor([0.99]),
        ...                               torch.zeros(2), specular_f0=0.0)
        >>> s.wi.tolist(), s.weight.tolist()
        ([0.0, 0.0, 1.0], [0.5])
    """
    n = _check_dir(n, "n")
    wo = _check_dir(wo, "wo", device=n.device)
    check_tensor(u1, "u1", trailing=(1,), floating=True, finite=True, device=n.device)
    check_tensor(u2, "u2", trailing=(2,), floating=True, finite=True, device=n.device)
    for u, name in ((u1, "u1"), (u2, "u2")):
        if u.numel() and u.device.type != "meta" and bool(((u < 0) | (u > 1)).any()):
            raise ValueError(f"{name} must lie in [0, 1]; got values in [{float(u.min()):.9g}, {float(u.max()):.9g}]")
    like = (n * wo).sum(-1, keepdim=True)
    base_color, roughness, metallic, ior, specular_f0 = _check_material(
        base_color, roughness, metallic, ior, specular_f0, like, like > 0)
    specular = _check_specular(specular, like, like > 0)
    _batch([("n, wo", like), ("u1", u1), ("u2", u2[..., :1])])
    return metallic_roughness_sample_unchecked(n, wo, base_color, roughness, metallic, u1, u2, ior=ior,
                                               specular_f0=specular_f0, specular=specular)


def metallic_roughness_pdf_unchecked(n, wi, wo, base_color, roughness, metallic, *, ior=1.5, specular_f0=None,
                                     transmission=None, specular=None, beckmann=None):
    """:func:`metallic_roughness_pdf` without validation (non-zero directions, parameters in range).

    ``transmission``: as in :func:`metallic_roughness_unchecked` (the lobe choice ``p_spec`` then weighs the
    dielectric layer by ``(1 - metallic) (1 - transmission)``); ``None`` or 0: the same bits as without.
    ``specular``: as in :func:`metallic_roughness_pdf` (``None`` or 1: the same bits). ``beckmann``: as in
    :func:`metallic_roughness_unchecked`; where True the specular lobe samples Beckmann normals by ``D (n.h)``
    (:func:`lumigrad.shading.warps.beckmann_normal`): ``pdf_spec = D(h) (n.h) / (4 wo.h)``."""
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    wi = wi / torch.linalg.vector_norm(wi, dim=-1, keepdim=True)
    wo = wo / torch.linalg.vector_norm(wo, dim=-1, keepdim=True)
    n_dot_l, n_dot_v, sin2_h, v_dot_h, valid = _cosines(n, wi, wo)
    base_color, roughness, metallic = (_to_tensor(x, n_dot_l) for x in (base_color, roughness, metallic))
    f0_d = _f0_dielectric(_to_tensor(ior, n_dot_l), None if specular_f0 is None else _to_tensor(specular_f0, n_dot_l))
    return _pdf(n_dot_l, n_dot_v, sin2_h, v_dot_h, valid, base_color, roughness, metallic, f0_d, transmission,
                specular, beckmann)


def metallic_roughness_sample_unchecked(n, wo, base_color, roughness, metallic, u1, u2, *, ior=1.5,
                                        specular_f0=None, transmission=None, specular=None,
                                        beckmann=None) -> BSDFSample:
    """:func:`metallic_roughness_sample` without validation (non-zero directions, parameters and ``u`` in
    range); ``transmission``, ``specular`` and ``beckmann`` as in :func:`metallic_roughness_pdf_unchecked`."""
    n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    wo = wo / torch.linalg.vector_norm(wo, dim=-1, keepdim=True)
    like = (n * wo).sum(-1, keepdim=True)
    base_color, roughness, metallic = (_to_tensor(x, like) for x in (base_color, roughness, metallic))
    ior = _to_tensor(ior, like)
    specular_f0 = None if specular_f0 is None else _to_tensor(specular_f0, like)
    f0_d = _f0_dielectric(ior, specular_f0)
    p_spec = _specular_probability(like, base_color, metallic, f0_d, transmission, specular)
    n_b, wo_b = torch.broadcast_tensors(n, wo)
    t, b = local_frame(n_b)
    wo_local = to_local(wo_b, t, b, n_b)
    h = ggx_visible_normal(wo_local, _alpha(roughness), u2)
    if beckmann is not None:
        h = torch.where(beckmann, beckmann_normal(_alpha(roughness), u2), h)
    wi_spec = 2 * (wo_local * h).sum(-1, keepdim=True) * h - wo_local
    wi_diff = cosine_hemisphere(u2)
    wi_local = torch.where(u1 < p_spec, wi_spec, wi_diff)
    wi = to_world(wi_local, t, b, n_b)
    wi = wi / (wi * wi).sum(-1, keepdim=True).clamp_min(1e-30).sqrt()
    pdf = metallic_roughness_pdf_unchecked(n, wi, wo, base_color, roughness, metallic, ior=ior,
                                           specular_f0=specular_f0, transmission=transmission, specular=specular,
                                           beckmann=beckmann)
    f = metallic_roughness_unchecked(n, wi, wo, base_color, roughness, metallic, ior=ior, specular_f0=specular_f0,
                                     transmission=transmission, specular=specular, beckmann=beckmann)
    cos = (n * wi).sum(-1, keepdim=True).clamp_min(0.0)
    ok = pdf > 0
    weight = torch.where(ok, f * cos / torch.where(ok, pdf, torch.ones_like(pdf)), torch.zeros_like(f))
    return BSDFSample(wi, weight, pdf)


def _check_material(base_color, roughness, metallic, ior, specular_f0, like, valid):
    base_color = _check_param(base_color, "base_color", like, 0.0, 1.0, shape="color")
    roughness = _check_param(roughness, "roughness", like, 0.0, 1.0)
    metallic = _check_param(metallic, "metallic", like, 0.0, 1.0)
    if specular_f0 is None:
        ior = _check_param(ior, "ior", like, 0.0, None, lo_open=True)
        named_f0 = ("ior", ior)
    else:
        ior = _as_tensor(ior, "ior", like)
        specular_f0 = _check_param(specular_f0, "specular_f0", like, 0.0, 1.0, shape="color")
        named_f0 = ("specular_f0", specular_f0)
    _batch([("n, wi, wo", valid), ("base_color", base_color), ("roughness", roughness), ("metallic", metallic),
            named_f0])
    return base_color, roughness, metallic, ior, specular_f0


def _check_specular(specular, like, valid):
    """``specular`` (None, a number or ``[..., 1]``) checked in [0, 1] and against the batch, as a tensor."""
    if specular is None:
        return None
    specular = _check_param(specular, "specular", like, 0.0, 1.0)
    _batch([("n, wi, wo", valid), ("specular", specular)])
    return specular


def _weighted(fresnel, specular):
    """The dielectric's Fresnel term times the specular weight (``KHR_materials_specular``); None: unweighted."""
    return fresnel if specular is None else specular * fresnel


def _f0_dielectric(ior, specular_f0):
    if specular_f0 is not None:
        return specular_f0
    r = (ior - 1.0) / (ior + 1.0)
    return r * r


def _dielectric_weight(metallic, transmission):
    """Weight of the opaque dielectric layer: ``1 - metallic``, times ``1 - transmission`` when given."""
    w_d = 1.0 - metallic
    return w_d if transmission is None else w_d * (1.0 - transmission)


def _specular_probability(n_dot_v, base_color, metallic, f0_d, transmission=None, specular=None):
    """``p_spec [..., 1]``: the specular lobe's share of the Schlick-estimated reflectance at ``wo``."""
    m = 1.0 - n_dot_v.clamp(0.0, 1.0)
    m2 = m * m
    fc = m2 * m2 * m
    f_d = _weighted(f0_d + (1.0 - f0_d) * fc, specular)
    f_m = base_color + (1.0 - base_color) * fc
    w_d = _dielectric_weight(metallic, transmission)
    spec = (w_d * f_d + metallic * f_m).mean(-1, keepdim=True)
    diff = (w_d * (1.0 - f_d) * base_color).mean(-1, keepdim=True)
    total = spec + diff
    positive = total > 0
    return torch.where(positive, spec / torch.where(positive, total, torch.ones_like(total)), torch.ones_like(total))


def _pdf(n_dot_l, n_dot_v, sin2_h, v_dot_h, valid, base_color, roughness, metallic, f0_d, transmission=None,
         specular=None, beckmann=None):
    alpha = _alpha(roughness)
    a2 = alpha * alpha
    dist = ggx_d(sin2_h, a2)
    # G1(wo) D / (4 n.v) with G1 = 2 n.v / (n.v + sqrt(a2 + (1 - a2) n.v^2)): the n.v cancels.
    pdf_spec = dist / (2.0 * (n_dot_v + torch.sqrt(a2 + (1.0 - a2) * n_dot_v * n_dot_v)))
    if beckmann is not None:  # D (n.h) / (4 wo.h), the density of beckmann_normal reflected about wo
        cos_h = (1.0 - sin2_h).clamp_min(_BECKMANN_COS2_FLOOR).sqrt()  # (D is 0 below the floor; sqrt's slope finite)
        b_spec = beckmann_d(sin2_h, a2) * cos_h / (4.0 * v_dot_h.clamp_min(_DOT_EPS))
        pdf_spec = torch.where(beckmann, b_spec, pdf_spec)
    pdf_diff = n_dot_l / math.pi
    p_spec = _specular_probability(n_dot_v, base_color, metallic, f0_d, transmission, specular)
    pdf = p_spec * pdf_spec + (1.0 - p_spec) * pdf_diff
    return torch.where(valid, pdf, torch.zeros((), dtype=pdf.dtype, device=pdf.device))
