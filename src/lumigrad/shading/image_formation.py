"""Image formation: from linear scene radiance to the pixel values a camera records, every step optional.

``form_image`` applies, in this order (each step skipped when its argument is ``None``):

1. exposure: ``x * 2^ev`` (``ev`` in stops);
2. white balance: per-channel gains ``x * gains``;
3. vignetting: ``x * (1 + v1 r^2 + v2 r^4 + v3 r^6)`` with ``r`` the pixel's normalized radius
   ``|K^-1 (u, v, 1) - (0, 0, 1)|`` (distance from the principal point in focal lengths);
4. tone mapping: ``"reinhard"`` (``x / (1 + x)``) or ``"aces"`` (Narkowicz's fit of the ACES filmic curve);
5. encoding: ``"srgb"`` (the IEC 61966-2-1 transfer function) or a power ``x^(1/gamma)``.

With every argument ``None`` the output is the linear HDR input, unchanged. All steps are differentiable in
the image and in their parameters (``ev``, ``gains``, vignetting coefficients, ``K``, ``gamma``).
Images are channel-last ``[..., H, W, C]``.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import torch

from .._checks import broadcast_batch, check_choice, check_positive_int, check_tensor
from ..limits import check_pixel_samples

_SRGB_KNEE = 0.0031308  # linear value where the sRGB curve turns from linear to a power law


def srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    """Encode linear values with the sRGB transfer function (IEC 61966-2-1).

    ``12.92 x`` for ``x <= 0.0031308``, else ``1.055 x^(1/2.4) - 0.055``. Negative inputs are clamped to 0
    (their gradient is 0); values above 1 follow the power law (no clamp).

    **Differentiability:** w.r.t. ``linear``; the derivative is finite everywhere (the linear segment covers 0).

    Example: ``srgb_encode(torch.tensor(0.5))`` is ``1.055 * 0.5^(1/2.4) - 0.055 = 0.7354``.
    """
    check_tensor(linear, "linear", floating=True)
    return _srgb_encode(linear)


def _srgb_encode(linear: torch.Tensor) -> torch.Tensor:
    x = linear.clamp_min(0)
    power = 1.055 * torch.where(x > _SRGB_KNEE, x, torch.full_like(x, _SRGB_KNEE)) ** (1 / 2.4) - 0.055
    return torch.where(x > _SRGB_KNEE, power, 12.92 * x)


def srgb_decode(encoded: torch.Tensor) -> torch.Tensor:
    """Invert :func:`srgb_encode`: ``x / 12.92`` for ``x <= 0.04045``, else ``((x + 0.055) / 1.055)^2.4``.

    Negative inputs are clamped to 0. **Differentiability:** w.r.t. ``encoded``.
    """
    check_tensor(encoded, "encoded", floating=True)
    return srgb_decode_unchecked(encoded)


def srgb_decode_unchecked(encoded: torch.Tensor) -> torch.Tensor:
    """:func:`srgb_decode` of a floating tensor, unchecked (for per-frame texture decoding)."""
    x = encoded.clamp_min(0)
    power = ((torch.where(x > 0.04045, x, torch.full_like(x, 0.04045)) + 0.055) / 1.055) ** 2.4
    return torch.where(x > 0.04045, power, x / 12.92)


def gamma_encode(linear: torch.Tensor, gamma: Union[float, torch.Tensor] = 2.2, eps: float = 1e-6) -> torch.Tensor:
    """``max(x, eps)^(1 / gamma)``: a power-law camera response. ``eps`` keeps the gradient at 0 finite.

    **Differentiability:** w.r.t. ``linear`` (zero below ``eps``) and ``gamma``.
    """
    check_tensor(linear, "linear", floating=True)
    g = torch.as_tensor(gamma, dtype=linear.dtype, device=linear.device)
    if bool((g <= 0).any()):
        raise ValueError(f"gamma must be positive; got {gamma}")
    return _gamma_encode(linear, g, eps)


def _gamma_encode(linear: torch.Tensor, g: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return linear.clamp_min(eps) ** (1 / g)


def tonemap(image: torch.Tensor, operator: Literal["reinhard", "aces"] = "reinhard") -> torch.Tensor:
    """Compress HDR values into [0, 1).

    * ``"reinhard"``: ``x / (1 + x)``;
    * ``"aces"``: Narkowicz 2015, ``x (2.51 x + 0.03) / (x (2.43 x + 0.59) + 0.14)``, clamped to [0, 1].

    Negative inputs are clamped to 0. **Differentiability:** w.r.t. ``image`` (zero where clamped).
    """
    check_tensor(image, "image", floating=True)
    check_choice(operator, "operator", ("reinhard", "aces"))
    return _tonemap(image, operator)


def _tonemap(image: torch.Tensor, operator: str) -> torch.Tensor:
    x = image.clamp_min(0)
    if operator == "reinhard":
        return x / (1 + x)
    return (x * (2.51 * x + 0.03) / (x * (2.43 * x + 0.59) + 0.14)).clamp(0, 1)


#: The default look: how a linear HDR image is shown (``lumigrad render``'s PNG / JPEG, the images ``lumigrad fit``
#: writes, :func:`lumigrad.io.preview`): the ACES filmic tone curve, then the sRGB encoding.
DISPLAY_TONE = "aces"
DISPLAY_ENCODE = "srgb"


def display_encode(linear: torch.Tensor) -> torch.Tensor:
    """The default look of a linear HDR image ``[..., H, W, C]``: :data:`DISPLAY_TONE` tone mapping, then
    :data:`DISPLAY_ENCODE` encoding, values in [0, 1] ready to be quantised for a PNG.

    The same transform a :class:`~lumigrad.scene.Film` with ``tone="aces", encode="srgb"`` applies; keep the
    linear image (EXR, ``.npy``, the tensor itself) when you need radiance.

    **Differentiability:** w.r.t. ``linear`` (zero where the tone curve clamps).

    Example: ``display_encode(torch.zeros(1, 1, 3))`` is 0 (black stays black); a linear 1.0 shows as 0.908.
    """
    check_tensor(linear, "linear", trailing=(None, None, None), floating=True)
    return form_image_unchecked(linear, tone=DISPLAY_TONE, encode=DISPLAY_ENCODE)


def vignetting_falloff(K: torch.Tensor, height: int, width: int, coeffs: torch.Tensor) -> torch.Tensor:
    """Per-pixel factor ``[..., H, W, 1]``: ``1 + v1 r^2 + v2 r^4 + v3 r^6`` at the pixel centres.

    Args:
        K: intrinsics ``[..., 3, 3]`` (``r`` is measured in focal lengths from the principal point, so the
            falloff follows the lens when the image is resized or cropped).
        height, width: image size in pixels.
        coeffs: ``[..., k]`` with ``k <= 3`` (``v1``, ``v2``, ``v3``); batch dims broadcast with ``K``'s.

    **Differentiability:** w.r.t. ``K`` (fx, fy, cx, cy, skew) and ``coeffs``.
    """
    check_tensor(K, "K", trailing=(3, 3), floating=True, finite=True)
    check_tensor(coeffs, "coeffs", floating=True, finite=True, device=K.device)
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    if coeffs.dim() == 0 or not 1 <= coeffs.shape[-1] <= 3:
        raise ValueError(f"coeffs must have 1 to 3 entries in its last dim (v1, v2, v3); got shape "
                         f"{tuple(coeffs.shape)}")
    views = math.prod(broadcast_batch(K.shape[:-2], "K", coeffs.shape[:-1], "coeffs"))
    check_pixel_samples(views * height * width, f"vignetting_falloff: {views} view(s) of width x height "
                                                f"{width}x{height} pixels")
    from ..cameras.projection import pixel_rays

    rows = torch.arange(height, dtype=K.dtype, device=K.device) + 0.5
    cols = torch.arange(width, dtype=K.dtype, device=K.device) + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    rays = pixel_rays(K[..., None, None, :, :], torch.stack([u, v], -1))
    r2 = (rays[..., :2] ** 2).sum(-1)
    c = coeffs[..., None, None, :]
    factor = torch.ones_like(r2)
    power = torch.ones_like(r2)
    for k in range(coeffs.shape[-1]):
        power = power * r2
        factor = factor + c[..., k] * power
    return factor[..., None]


def form_image(
    radiance: torch.Tensor,
    *,
    exposure: Optional[Union[float, torch.Tensor]] = None,
    white_balance: Optional[torch.Tensor] = None,
    vignetting: Optional[torch.Tensor] = None,
    K: Optional[torch.Tensor] = None,
    tone: Optional[Literal["reinhard", "aces"]] = None,
    encode: Optional[Literal["srgb", "gamma"]] = None,
    gamma: Union[float, torch.Tensor] = 2.2,
) -> torch.Tensor:
    """Turn linear radiance ``[..., H, W, C]`` into recorded pixel values (see the module docstring).

    Args:
        radiance: linear HDR image ``[..., H, W, C]``.
        exposure: exposure in stops (scalar or ``[...]`` per image); ``None`` skips.
        white_balance: per-channel gains ``[..., C]``; ``None`` skips.
        vignetting: coefficients ``[..., k]`` (``k <= 3``) of :func:`vignetting_falloff`; needs ``K``.
        K: intrinsics ``[..., 3, 3]`` for vignetting.
        tone: ``"reinhard"``, ``"aces"`` or ``None``.
        encode: ``"srgb"``, ``"gamma"`` (with ``gamma``) or ``None`` (linear output).

    **Differentiability:** w.r.t. ``radiance`` and every parameter given as a tensor.

    Example:
        >>> round(form_image(torch.full((1, 1, 3), 0.25), exposure=1.0, encode="srgb")[0, 0, 0].item(), 4)
        0.7354
    """
    check_tensor(radiance, "radiance", trailing=(None, None, None), floating=True)
    if exposure is not None:
        check_tensor(torch.as_tensor(exposure), "exposure", finite=True)
    if white_balance is not None:
        check_tensor(white_balance, "white_balance", trailing=(radiance.shape[-1],), floating=True, finite=True)
        if bool((white_balance < 0).any()):
            raise ValueError("white_balance gains must be non-negative")
    if vignetting is not None and K is None:
        raise ValueError("vignetting needs K (the intrinsics that define the normalized radius)")
    if tone is not None:
        check_choice(tone, "tone", ("reinhard", "aces"))
    if encode is not None:
        check_choice(encode, "encode", ("srgb", "gamma"))
        if encode == "gamma" and bool((torch.as_tensor(gamma) <= 0).any()):
            raise ValueError(f"gamma must be positive; got {gamma}")
    return form_image_unchecked(radiance, exposure=exposure, white_balance=white_balance, vignetting=vignetting,
                                K=K, tone=tone, encode=encode, gamma=gamma)


def form_image_unchecked(radiance: torch.Tensor, *, exposure=None, white_balance=None, vignetting=None, K=None,
                         tone=None, encode=None, gamma=2.2) -> torch.Tensor:
    """:func:`form_image` on validated settings (a scene's :class:`~lumigrad.scene.Film`, checked when it was
    built): no value reads, so a renderer can apply it every frame without a host sync."""
    x = radiance
    if exposure is not None:
        ev = torch.as_tensor(exposure, dtype=x.dtype, device=x.device)
        x = x * torch.exp2(ev)[..., None, None, None] if ev.dim() else x * torch.exp2(ev)
    if white_balance is not None:
        x = x * white_balance[..., None, None, :]
    if vignetting is not None:
        x = x * vignetting_falloff(K, x.shape[-3], x.shape[-2], vignetting)
    if tone is not None:
        x = _tonemap(x, tone)
    if encode == "srgb":
        x = _srgb_encode(x)
    elif encode == "gamma":
        x = _gamma_encode(x, torch.as_tensor(gamma, dtype=x.dtype, device=x.device))
    return x
