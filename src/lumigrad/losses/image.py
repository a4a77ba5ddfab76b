"""Image losses and metrics for fitting: (masked) MSE / L1, PSNR, SSIM, MS-SSIM over ``[..., H, W, C]`` images.

Images are channel-last, ``[..., H, W, C]``, with any number of leading batch dims. Every loss returns a scalar.
SSIM follows Wang et al. 2004 with a Gaussian window and a 'valid' convolution (the reference MATLAB code, and
scikit-image's ``structural_similarity(..., gaussian_weights=True, use_sample_covariance=False)`` averaged over
channels); MS-SSIM follows Wang et al. 2003.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .._checks import check_tensor

__all__ = ["l1_loss", "ms_ssim", "ms_ssim_loss", "mse_loss", "psnr", "ssim", "ssim_loss"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_MS_SSIM_FLOOR = 1e-6  # negative / zero per-scale values are clamped up to this before the power


def _check_channels_last(x: torch.Tensor, name: str) -> None:
    """Refuse an image that looks channels-first (``[N, C, H, W]``, PyTorch's convolution layout), naming the fix;
    lumigrad's images are ``[..., H, W, C]`` (what ``lg.render`` returns)."""
    C, H, W = x.shape[-3], x.shape[-2], x.shape[-1]
    if C in (1, 3, 4) and H > 4 and W > 4:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, which looks like channels-first [N, C, H, W]; lumigrad "
                         f"images are channels-last [..., H, W, C]: pass {name}.permute(0, 2, 3, 1) (or "
                         f"{name}.movedim(-3, -1))")


def _check_pair(pred, target):
    check_tensor(pred, "pred", trailing=(None, None, None), floating=True, finite=True)
    check_tensor(target, "target", trailing=(None, None, None), floating=True, finite=True, device=pred.device)
    _check_channels_last(pred, "pred")
    _check_channels_last(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape [..., H, W, C]; got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    work = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(work), target.to(work)


def _check_mask(mask, pred):
    """Return the mask as ``[..., H, W, 1]`` in ``pred``'s dtype, broadcastable against ``pred``."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor; got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        check_tensor(mask, "mask", trailing=(None, None), floating=True, finite=True)
    if mask.device != pred.device:
        raise ValueError(f"mask is on {mask.device} but the other inputs are on {pred.device}; move them to one device")
    H, W = pred.shape[-3], pred.shape[-2]
    if mask.dim() >= 3 and tuple(mask.shape[-3:]) == (H, W, 1):
        m = mask
    elif mask.dim() >= 2 and tuple(mask.shape[-2:]) == (H, W):
        m = mask.unsqueeze(-1)
    else:
        raise ValueError(f"mask must have shape [..., H, W] or [..., H, W, 1] with H, W = {H}, {W}; "
                         f"got {tuple(mask.shape)}")
    try:
        torch.broadcast_shapes(tuple(m.shape), tuple(pred.shape))
    except RuntimeError:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, whose batch dims do not broadcast with pred's "
                         f"{tuple(pred.shape[:-3])}") from None
    if mask.dtype != torch.bool and mask.numel() and bool((mask < 0).any()):
        raise ValueError("mask must be non-negative (it weights pixels)")
    return m.to(pred.dtype)


def _weighted_mean(err, mask):
    """Mean of ``err [..., H, W, C]``, or its ``mask``-weighted mean over pixels (0 when the mask is empty)."""
    if mask is None:
        return err.mean()
    w = torch.broadcast_to(mask, err.shape)
    total = w.sum()
    # an all-zero mask selects nothing: return 0 (with a zero gradient) instead of 0 / 0 = NaN
    return (err * w).sum() / total.clamp_min(torch.finfo(total.dtype).tiny) * (total > 0)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Compute the mean squared error between two images, optionally weighting pixels by a mask.

    ``loss = sum(w (p - t)^2) / sum(w)`` over all elements, where ``w`` is the mask broadcast over batch dims and
    channels (``w = 1`` without a mask, giving the plain mean). A mask that is zero everywhere selects nothing and
    gives a loss of exactly 0 (and zero gradients) rather than NaN.

    Example (errors 0 and 2 on two pixels; the mask keeps only the second):
        >>> p, t = torch.tensor([[[0.0], [2.0]]]), torch.zeros(1, 2, 1)
        >>> float(mse_loss(p, t)), float(mse_loss(p, t, mask=torch.tensor([[0.0, 1.0]])))
        (2.0, 4.0)

    Args:
        pred: ``[..., H, W, C]`` float image.
        target: ``[..., H, W, C]`` float image, same shape as ``pred``.
        mask: optional ``[..., H, W]`` or ``[..., H, W, 1]`` non-negative float (or bool) pixel weights, batch dims
            broadcastable with ``pred``'s.

    Returns:
        Scalar tensor in ``pred``'s dtype (half inputs computed in float32).

    **Differentiability:** smooth in ``pred`` and ``target`` (gradient ``2 w (p - t) / sum(w)``); the mask is
    treated as a constant weight (it gets a gradient if it requires one, but is not meant to be optimised).
    """
    p, t = _check_pair(pred, target)
    m = None if mask is None else _check_mask(mask, p)
    return _weighted_mean((p - t) ** 2, m).to(pred.dtype)


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Compute the mean absolute error between two images, optionally weighting pixels by a mask.

    ``loss = sum(w |p - t|) / sum(w)``, with the same mask rules as :func:`mse_loss` (an all-zero mask gives 0).

    Example:
        >>> float(l1_loss(torch.tensor([[[1.0], [-3.0]]]), torch.zeros(1, 2, 1)))
        2.0

    Args:
        pred: ``[..., H, W, C]`` float image.
        target: ``[..., H, W, C]`` float image, same shape as ``pred``.
        mask: optional ``[..., H, W]`` or ``[..., H, W, 1]`` non-negative pixel weights.

    Returns:
        Scalar tensor in ``pred``'s dtype.

    **Differentiability:** gradient ``w sign(p - t) / sum(w)`` in ``pred`` (negated in ``target``); at exact ties
    ``p == t`` the subgradient 0 is used, so the loss is not differentiable there in the classical sense.
    """
    p, t = _check_pair(pred, target)
    m = None if mask is None else _check_mask(mask, p)
    return _weighted_mean((p - t).abs(), m).to(pred.dtype)


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 1.0,
         mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Compute the peak signal-to-noise ratio in dB, a metric for reporting fits.

    ``psnr = 10 log10(max_value^2 / mse)`` with ``mse = mse_loss(pred, target, mask)`` pooled over every image
    in the batch (not a mean of per-image PSNRs: call it per image for that). Identical images (or an all-zero
    mask) give ``+inf``.

    Example (``mse = 0.01``):
        >>> round(float(psnr(torch.full((1, 1, 1), 0.1), torch.zeros(1, 1, 1))), 4)
        20.0

    Args:
        pred: ``[..., H, W, C]`` float image.
        target: ``[..., H, W, C]`` float image, same shape.
        max_value: the peak value of the signal (1 for images in ``[0, 1]``, 255 for 8-bit), ``> 0``.
        mask: optional ``[..., H, W]`` or ``[..., H, W, 1]`` pixel weights, as in :func:`mse_loss`.

    Returns:
        Scalar float tensor in ``pred``'s dtype (at least float32).

    **Differentiability:** differentiable where ``mse > 0`` (gradient ``-10 / ln 10 * d mse / mse``); meant as
    a metric, not a loss: it is infinite, with an infinite gradient, when the images match.
    """
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or not max_value > 0:
        raise ValueError(f"max_value must be a positive number; got {max_value!r}")
    mse = mse_loss(pred, target, mask)
    work = torch.promote_types(mse.dtype, torch.float32)
    return 10 * torch.log10(max_value ** 2 / mse.to(work))


# ----------------------------------------------------------------------------------------------------- SSIM


def _check_ssim_args(window, sigma, data_range, k1, k2):
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"window must be an int; got {type(window).__name__}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd int; got {window}")
    for name, v in (("sigma", sigma), ("data_range", data_range)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")
    for name, v in (("k1", k1), ("k2", k2)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive finite number; got {v!r}")


def _check_size(pred, window, min_size, why):
    H, W = pred.shape[-3], pred.shape[-2]
    if H < min_size or W < min_size:
        raise ValueError(f"pred and target must have H, W >= {min_size} ({why}); got H, W = {H}, {W}")


def _gaussian_1d(window, sigma, dtype, device):
    r = (window - 1) / 2
    x = torch.arange(window, dtype=dtype, device=device) - r
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _to_planes(x):
    """``[..., H, W, C]`` -> ``[N, 1, H, W]`` with one plane per image and channel."""
    H, W, C = x.shape[-3:]
    return x.reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(-1, 1, H, W)


def _ssim_maps(x, y, g, data_range, k1, k2):
    """SSIM and contrast-structure maps of ``[N, 1, H, W]`` planes, 'valid' Gaussian filtering."""
    k = g.numel()
    gy, gx = g.view(1, 1, k, 1), g.view(1, 1, 1, k)
    # The (co)variances are shift invariant; take the moments of the images minus their plane means so that
    # E[x^2] - E[x]^2 does not cancel catastrophically in float32 for bright images (the result is the same
    # function of x, y, so detaching the shift leaves the gradient exact).
    a = x.mean((-2, -1), keepdim=True).detach()
    b = y.mean((-2, -1), keepdim=True).detach()
    xc, yc = x - a, y - b
    stack = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1)  # [N, 5, H, W], one separable pass
    n, _, H, W = stack.shape
    f = F.conv2d(F.conv2d(stack.reshape(-1, 1, H, W), gy), gx).reshape(n, 5, H - k + 1, W - k + 1)
    mc_x, mc_y, exx, eyy, exy = f.unbind(1)
    var_x = exx - mc_x * mc_x
    var_y = eyy - mc_y * mc_y
    cov = exy - mc_x * mc_y
    mu_x, mu_y = mc_x + a[:, 0], mc_y + b[:, 0]
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    lum = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return lum * cs, cs  # [N, H', W']


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5,
         data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Compute the mean structural similarity (SSIM, Wang et al. 2004) of two images.

    Per channel, local statistics are Gaussian-weighted (``window x window`` taps, std ``sigma``, normalised to
    sum 1) over every window that fits inside the image ('valid', no padding):
    ``mu_x = g * x``, ``var_x = g * x^2 - mu_x^2``, ``cov = g * xy - mu_x mu_y`` (population, not sample,
    statistics), and

        ``SSIM = (2 mu_x mu_y + C1) (2 cov + C2) / ((mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2))``

    with ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``. The map is averaged over windows, channels
    (each handled independently) and all leading batch dims. This matches the reference MATLAB ``ssim_index``
    and scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=L, channel_axis=-1)``.

    Example (constant images 0.5 and 0.6: the structure term is 1 and
    ``SSIM = (2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4)``):
        >>> round(float(ssim(torch.full((11, 11, 1), 0.5), torch.full((11, 11, 1), 0.6))), 5)
        0.98361

    Args:
        pred: ``[..., H, W, C]`` float image, ``H, W >= window``.
        target: ``[..., H, W, C]`` float image, same shape.
        window: odd Gaussian window size in pixels.
        sigma: Gaussian standard deviation in pixels.
        data_range: dynamic range ``L`` of the images (1 for ``[0, 1]``, 255 for 8-bit).
        k1, k2: stabilising constants.

    Returns:
        Scalar tensor in ``pred``'s dtype (half inputs computed in float32); 1 for identical images.

    **Differentiability:** smooth in ``pred`` and ``target`` everywhere (both denominators are ``>= C1`` and
    ``>= C2`` since the Gaussian-weighted variances are non-negative); filtering is a linear convolution.
    """
    p, t = _check_pair(pred, target)
    _check_ssim_args(window, sigma, data_range, k1, k2)
    _check_size(p, window, window, f"the SSIM window is {window}")
    g = _gaussian_1d(window, sigma, p.dtype, p.device)
    s, _ = _ssim_maps(_to_planes(p), _to_planes(t), g, data_range, k1, k2)
    return s.mean().to(pred.dtype)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    """Compute ``1 - ssim(pred, target, **kwargs)``, a loss in ``[0, 2]`` that is 0 for identical images.

    Takes the same arguments as :func:`ssim`. **Differentiability:** as :func:`ssim`.
    """
    return 1 - ssim(pred, target, **kwargs)


def ms_ssim(pred: torch.Tensor, target: torch.Tensor, *, weights: Sequence[float] = MS_SSIM_WEIGHTS,
            window: int = 11, sigma: float = 1.5, data_range: float = 1.0, k1: float = 0.01,
            k2: float = 0.03) -> torch.Tensor:
    """Compute the multi-scale structural similarity (MS-SSIM, Wang et al. 2003) of two images.

    With ``M = len(weights)`` scales, scale 0 is the input and scale ``j + 1`` is scale ``j`` average-pooled
    2 x 2 with stride 2 (an odd last row / column is dropped). Per image and channel,

        ``MS-SSIM = prod_{j < M-1} cs_j^{w_j} * ssim_{M-1}^{w_{M-1}}``

    where ``cs_j`` is the mean contrast-structure map ``(2 cov + C2) / (var_x + var_y + C2)`` at scale ``j`` and
    ``ssim_{M-1}`` the mean SSIM map (luminance times contrast-structure) at the coarsest scale, with the same
    'valid' Gaussian filtering as :func:`ssim`; this is the reference MATLAB ``msssim.m`` (and TensorFlow's
    ``ssim_multiscale``). The result is averaged over channels and leading batch dims. The default weights are
    Wang's; they sum to 0.9999, not 1, and are used as given.

    Each ``cs_j`` / ``ssim_{M-1}`` is clamped to at least ``1e-6`` before the power: for very dissimilar images
    they can be ``<= 0``, where a fractional power is NaN or has an infinite gradient. The clamp makes MS-SSIM
    well defined (then close to 0), at the price of a zero gradient through a clamped scale.

    Args:
        pred: ``[..., H, W, C]`` float image with ``H, W >= window * 2^(M-1)`` (176 for the defaults).
        target: ``[..., H, W, C]`` float image, same shape.
        weights: per-scale exponents, finest first; non-negative, at least one.
        window, sigma, data_range, k1, k2: as in :func:`ssim`.

    Returns:
        Scalar tensor in ``pred``'s dtype; 1 for identical images (when the weights sum to 1; otherwise
        ``1^{sum w} = 1`` too, since every factor is 1).

    **Differentiability:** smooth in ``pred`` and ``target`` wherever no scale is clamped (average pooling and
    filtering are linear); a clamped scale contributes no gradient.
    """
    p, t = _check_pair(pred, target)
    _check_ssim_args(window, sigma, data_range, k1, k2)
    try:
        w = [float(v) for v in weights]
    except (TypeError, ValueError):
        raise TypeError(f"weights must be a sequence of numbers; got {weights!r}") from None
    if not w or not all(math.isfinite(v) and v >= 0 for v in w):
        raise ValueError(f"weights must be a non-empty sequence of non-negative finite numbers; got {weights!r}")
    M = len(w)
    min_size = window * 2 ** (M - 1)
    _check_size(p, window, min_size, f"{M} scales with a window of {window} need window * 2^(scales - 1)")
    g = _gaussian_1d(window, sigma, p.dtype, p.device)
    x, y = _to_planes(p), _to_planes(t)
    factors = []
    for j in range(M):
        s_map, cs_map = _ssim_maps(x, y, g, data_range, k1, k2)
        val = (s_map if j == M - 1 else cs_map).mean((-2, -1))  # [N]
        factors.append(val.clamp_min(_MS_SSIM_FLOOR) ** w[j])
        if j < M - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.stack(factors, 0).prod(0).mean().to(pred.dtype)


def ms_ssim_loss(pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    """Compute ``1 - ms_ssim(pred, target, **kwargs)``, 0 for identical images.

    Takes the same arguments as :func:`ms_ssim`. **Differentiability:** as :func:`ms_ssim`.
    """
    return 1 - ms_ssim(pred, target, **kwargs)
