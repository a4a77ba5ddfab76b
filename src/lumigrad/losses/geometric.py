"""Geometric image losses: depth maps and normal maps compared pixel by pixel, with masks and invalid pixels.

Use these when the supervision is geometry rather than colour: a depth sensor or a monocular depth network
(:func:`depth_loss`, with ``scale_invariant=True`` when the prior's scale is unknown) or a normal map from
photometric stereo or a normal-estimation network (:func:`normal_loss`). Depth is lumigrad's camera-frame
``z`` (what ``rasterize(...).depth`` returns, see docs/conventions.md), not the distance along the ray.

Pixels whose target is invalid (depth ``<= 0`` or non-finite, a normal of zero length or non-finite) are
excluded automatically, so background or sensor holes never need a separate mask; an empty valid set gives a
loss of exactly 0 (with zero gradients), never NaN. Every loss returns a scalar pooled over all valid pixels of
all images in the batch.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from .._checks import check_choice, check_tensor

__all__ = ["depth_loss", "normal_loss"]

_LOG_FLOOR = 1e-6  # predicted depths are clamped up to this before the log of kind="log_l1"
_NORM_FLOOR = 1e-12  # lengths are clamped up to this before normalising (as torch.nn.functional.normalize)


def _as_depth_map(x: torch.Tensor, name: str) -> torch.Tensor:
    """``[..., H, W]`` or ``[..., H, W, 1]`` -> ``[..., H, W]`` (a trailing 1 is read as the channel dim)."""
    check_tensor(x, name, trailing=(None, None), floating=True)
    if x.dim() >= 3 and x.shape[-1] == 1:
        return x[..., 0]
    return x


def _pixel_weights(mask: Optional[torch.Tensor], shape: torch.Size, dtype, device):
    """Return the mask as float weights broadcast to ``shape`` (``[..., H, W]``), or ones without a mask."""
    if mask is None:
        return torch.ones(shape, dtype=dtype, device=device)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor; got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        check_tensor(mask, "mask", trailing=(None, None), floating=True, finite=True)
    if mask.device != torch.device(device):
        raise ValueError(f"mask is on {mask.device} but the other inputs are on {device}; move them to one device")
    H, W = shape[-2], shape[-1]
    m = mask
    if m.dim() >= 3 and tuple(m.shape[-3:]) == (H, W, 1):
        m = m[..., 0]
    if m.dim() < 2 or tuple(m.shape[-2:]) != (H, W):
        raise ValueError(f"mask must have shape [..., H, W] or [..., H, W, 1] with H, W = {H}, {W}; "
                         f"got {tuple(mask.shape)}")
    try:
        if torch.broadcast_shapes(tuple(m.shape), tuple(shape)) != tuple(shape):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, which does not broadcast to the prediction's "
                         f"{tuple(shape)}") from None
    if mask.dtype != torch.bool and mask.numel() and bool((mask < 0).any()):
        raise ValueError("mask must be non-negative (it weights pixels)")
    return torch.broadcast_to(m.to(dtype), shape)


def _pooled_mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``sum(w err) / sum(w)``, or 0 (zero gradient) when ``sum(w) == 0``."""
    total = w.sum()
    return (err * w).sum() / total.clamp_min(torch.finfo(total.dtype).tiny) * (total > 0)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
               kind: Literal["l1", "l2", "log_l1"] = "l1", scale_invariant: bool = False) -> torch.Tensor:
    """Compare a predicted depth map with a target depth map over the target's valid pixels.

    A pixel counts when its target depth is finite and ``> 0`` and its mask weight ``w`` is non-zero; the loss
    is ``sum(w e) / sum(w)`` over counted pixels of all images, with the per-pixel error ``e``:

    * ``"l1"``: ``|s p - t|``; ``"l2"``: ``(s p - t)^2``;
    * ``"log_l1"``: ``|log(max(p, 1e-6)) + log s - log t|`` (relative error, good for large depth ranges).

    ``s = 1`` unless ``scale_invariant``: then, per image (per index of the leading dims), ``s`` is the closed-form
    least-squares scale ``s = sum(w p t) / sum(w p^2)`` (for ``"log_l1"``: ``log s`` is the weighted mean of
    ``log t - log p``, the least-squares shift in log space). This lets a monocular depth prior, known only up to
    scale, supervise a render. It is a least-squares fit, not the median of ratios, so it stays smooth; note that
    it fits a scale only, not an affine (scale and shift) or disparity-space alignment.

    Example (errors 1 and 0; the second target is invalid, the third pixel matches):
        >>> p = torch.tensor([[2.0, 5.0, 3.0]])
        >>> t = torch.tensor([[1.0, 0.0, 3.0]])
        >>> float(depth_loss(p, t)), float(depth_loss(p, t, scale_invariant=True, kind="l2")) < 0.5
        (0.5, True)

    Args:
        pred: predicted depth ``[..., H, W]`` or ``[..., H, W, 1]``, float, finite, camera-frame z.
        target: target depth, same shape as ``pred``; values ``<= 0``, NaN or Inf mark invalid pixels.
        mask: optional ``[..., H, W]`` or ``[..., H, W, 1]`` non-negative float (or bool) pixel weights whose batch
            dims broadcast to ``pred``'s.
        kind: ``"l1"``, ``"l2"`` or ``"log_l1"``.
        scale_invariant: fit the optimal per-image scale of ``pred`` before comparing.

    Returns:
        Scalar tensor in ``pred``'s dtype (half inputs computed in float32); 0 when no pixel is valid.

    Raises:
        TypeError: an argument is not a float tensor (``mask`` may be bool).
        ValueError: shapes differ, ``pred`` is not finite, ``mask`` is negative or misshapen, or ``kind`` is unknown.

    **Differentiability:** ``pred`` gets gradients (through ``s`` too when ``scale_invariant``: the optimal scale
    is differentiated, not detached), ``target`` too where valid; the validity test and the mask are constants.
    ``"l1"`` uses the subgradient 0 at exact ties; ``"log_l1"`` gives no gradient where ``p < 1e-6``.
    """
    check_choice(kind, "kind", ("l1", "l2", "log_l1"))
    if not isinstance(scale_invariant, bool):
        raise TypeError(f"scale_invariant must be a bool; got {type(scale_invariant).__name__}")
    p = _as_depth_map(pred, "pred")
    t = _as_depth_map(target, "target")
    check_tensor(p, "pred", finite=True)
    if t.device != p.device:
        raise ValueError(f"target is on {t.device} but pred is on {p.device}; move them to one device")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape [..., H, W] (or [..., H, W, 1]); got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    work = torch.promote_types(torch.promote_types(p.dtype, t.dtype), torch.float32)
    p, t = p.to(work), t.to(work)
    valid = torch.isfinite(t) & (t > 0)
    t = torch.where(valid, t, torch.ones_like(t))  # keep NaN / Inf out of the arithmetic (and its gradient)
    w = _pixel_weights(mask, p.shape, work, p.device) * valid
    if kind == "log_l1":
        diff = torch.log(p.clamp_min(_LOG_FLOOR)) - torch.log(t)
        if scale_invariant:
            diff = diff - _pooled_image_mean(diff, w)[..., None, None]
        return _pooled_mean(diff.abs(), w).to(pred.dtype)
    if scale_invariant:
        num = (w * p * t).sum((-2, -1))
        den = (w * p * p).sum((-2, -1))
        s = torch.where(den > 0, num / den.clamp_min(torch.finfo(work).tiny), torch.ones_like(den))
        p = p * s[..., None, None]
    err = (p - t).abs() if kind == "l1" else (p - t) ** 2
    return _pooled_mean(err, w).to(pred.dtype)


def _pooled_image_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-image weighted mean ``[...]`` of ``x [..., H, W]`` (0 for an image with no weight)."""
    total = w.sum((-2, -1))
    return (x * w).sum((-2, -1)) / total.clamp_min(torch.finfo(total.dtype).tiny) * (total > 0)


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last dim with a zero (not NaN) gradient at the zero vector."""
    sq = (x * x).sum(-1)
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def normal_loss(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
                kind: Literal["cosine", "angle"] = "cosine") -> torch.Tensor:
    """Compare predicted and target normal maps by direction, ignoring their lengths.

    Both maps are normalised (a zero-length prediction stays the zero vector and scores as perpendicular).
    With unit ``a = p / |p|``, ``b = t / |t|`` the per-pixel error is

    * ``"cosine"``: ``1 - a . b`` (in ``[0, 2]``, smooth everywhere);
    * ``"angle"``: the angle in radians, ``2 atan2(|a - b|, |a + b|)`` (in ``[0, pi]``). This form is exact for
      unit vectors, accurate near 0 and pi (unlike ``acos(a . b)``) and its gradient is finite (0) at 0 angle.

    A pixel counts when its target normal is finite and non-zero and its mask weight ``w`` is non-zero; the loss
    is ``sum(w e) / sum(w)`` over counted pixels of all images (0 when none counts).

    Example (identical directions, then opposite ones):
        >>> n = torch.tensor([[[0.0, 0.0, 2.0]]])
        >>> float(normal_loss(n, n)), round(float(normal_loss(n, -n, kind="angle")), 4)
        (0.0, 3.1416)

    Args:
        pred: predicted normals ``[..., H, W, 3]``, float, finite, any length.
        target: target normals, same shape; zero-length or non-finite vectors mark invalid pixels.
        mask: optional ``[..., H, W]`` or ``[..., H, W, 1]`` non-negative float (or bool) pixel weights whose batch
            dims broadcast to ``pred``'s.
        kind: ``"cosine"`` or ``"angle"``.

    Returns:
        Scalar tensor in ``pred``'s dtype (half inputs computed in float32).

    Raises:
        TypeError: an argument is not a float tensor (``mask`` may be bool).
        ValueError: shapes differ or are not ``[..., H, W, 3]``, ``pred`` is not finite, ``mask`` is bad, or
            ``kind`` is unknown.

    **Differentiability:** smooth in ``pred`` and ``target`` away from zero-length normals (the normalisation
    divides by the length); ``"angle"`` has a finite gradient everywhere, 0 at exactly 0 angle (its subgradient:
    the angle grows like ``|a - b|`` there) and at exactly ``pi``.
    """
    check_choice(kind, "kind", ("cosine", "angle"))
    check_tensor(pred, "pred", trailing=(None, None, 3), floating=True, finite=True)
    check_tensor(target, "target", trailing=(None, None, 3), floating=True, device=pred.device)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape [..., H, W, 3]; got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    work = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    p, t = pred.to(work), target.to(work)
    valid = torch.isfinite(t).all(-1)
    t = torch.where(valid[..., None], t, torch.zeros_like(t))
    tn, pn = _safe_norm(t), _safe_norm(p)
    valid = valid & (tn > 0)
    a = p / pn.clamp_min(_NORM_FLOOR)[..., None]
    b = t / tn.clamp_min(_NORM_FLOOR)[..., None]
    if kind == "cosine":
        err = 1 - (a * b).sum(-1)
    else:
        err = 2 * torch.atan2(_safe_norm(a - b), _safe_norm(a + b))
    w = _pixel_weights(mask, p.shape[:-1], work, p.device) * valid
    return _pooled_mean(err, w).to(pred.dtype)
