"""Silhouette (mask) losses: soft IoU and binary cross-entropy over ``[..., H, W]`` coverage images."""

from __future__ import annotations

import torch

from .._checks import broadcast_batch, check_tensor

__all__ = ["silhouette_bce_loss", "silhouette_iou_loss"]


def _check_pair(pred, target, eps):
    check_tensor(pred, "pred", trailing=(None, None), floating=True, finite=True)
    check_tensor(target, "target", trailing=(None, None), floating=True, finite=True, device=pred.device)
    broadcast_batch(pred.shape, "pred", target.shape, "target")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative number; got {eps!r}")
    work = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(work), target.to(work)


def silhouette_iou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Compute ``1 - soft IoU`` between predicted and target silhouettes, averaged over the batch.

    Per image: ``I = sum(p t)``, ``U = sum(p + t - p t)`` over the last two dims and
    ``loss = 1 - (I + eps) / (U + eps)``; the result is the mean over all leading dims. Two empty masks give
    0 (not 1), disjoint masks give ``1 - eps / (U + eps)``, about 1.

    Example (``I = 1``, ``U = 2``):
        >>> float(silhouette_iou_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]), eps=0.0))
        0.5

    Args:
        pred: ``[..., H, W]`` float coverage in ``[0, 1]`` (e.g. the alpha of a soft or antialiased render).
        target: ``[..., H, W]`` float target mask in ``[0, 1]``, broadcastable with ``pred``.
        eps: smoothing term added to numerator and denominator (``>= 0``).

    Returns:
        Scalar tensor in ``pred``'s dtype (half inputs computed in float32).

    **Differentiability:** smooth in ``pred`` and ``target`` (the denominator is ``>= eps``, and ``> 0``
    wherever either mask is non-zero). Visibility enters only through ``pred``.
    """
    p, t = _check_pair(pred, target, eps)
    p, t = torch.broadcast_tensors(p, t)
    inter = (p * t).sum((-2, -1))
    union = (p + t - p * t).sum((-2, -1))
    return (1 - (inter + eps) / (union + eps)).mean().to(pred.dtype)


def silhouette_bce_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Compute the binary cross-entropy between predicted and target silhouettes, averaged over all pixels.

    ``loss = mean(-(t log p' + (1 - t) log(1 - p')))`` with ``p' = clamp(p, eps, 1 - eps)``, so a prediction of
    exactly 0 or 1 gives a finite loss (at most ``-log(eps)`` per pixel, ~13.8 for the default) instead of Inf.
    Example: ``p = 0.5`` everywhere gives ``log 2``.

    Args:
        pred: ``[..., H, W]`` float coverage in ``[0, 1]``.
        target: ``[..., H, W]`` float target mask in ``[0, 1]`` (soft targets allowed), broadcastable.
        eps: clamp margin, ``0 <= eps < 0.5``; computed in at least float32 so ``1 - eps`` stays below 1.

    Returns:
        Scalar tensor in ``pred``'s dtype.

    **Differentiability:** smooth in ``target``; in ``pred`` the gradient is
    ``(p - t) / (p (1 - p))`` inside ``[eps, 1 - eps]`` and zero where the clamp is active (a pixel predicted
    exactly 0 whose target is 1 therefore gets no gradient: keep predictions soft, e.g. from a sigmoid).
    """
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and not eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5); got {eps!r}")
    p, t = _check_pair(pred, target, eps)
    p = p.clamp(eps, 1 - eps)
    loss = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
    return loss.mean().to(pred.dtype)
