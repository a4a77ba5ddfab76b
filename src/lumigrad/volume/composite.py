"""Differentiable volume compositing over packed samples: weights, transmittance, colour, opacity, depth, normals.

Along a ray with samples ``i`` (intervals ``[t_start_i, t_end_i]``, ``delta_i = t_end_i - t_start_i``,
density ``sigma_i``) the emission-absorption quadrature is

    T_i = exp(-sum_{j<i} sigma_j delta_j),   w_i = T_i (1 - exp(-sigma_i delta_i)),
    C = sum_i w_i c_i + (1 - sum_i w_i) background.

Early ray termination: with ``early_stop_eps > 0`` a sample whose transmittance fell below it gets weight 0
(the omitted weight is at most ``T_i < eps`` in total). The Warp kernel (``lumigrad.kernels.composite``,
float32 / float64 on CPU and CUDA) runs one thread per ray and its backward recomputes transmittance instead
of storing it; :func:`composite_ref` is the pure-PyTorch twin (float64) that tests compare it with and that
serves other devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .._checks import check_number, check_tensor
from ..kernels.composite import KERNEL_DTYPES, composite_packed
from .packing import check_packed, ray_offsets, segment_exclusive_cumsum

__all__ = ["VolumeRender", "render_weights", "accumulate", "composite", "composite_ref",
           "normals_from_density_gradient"]


@dataclass
class VolumeRender:
    """Per-ray results of :func:`composite` (``R`` rays).

    Attributes:
        rgb: ``[R, C]`` composited values, background blended in when one was given.
        opacity: ``[R, 1]`` accumulated weight ``sum_i w_i`` (alpha).
        depth: ``[R, 1]`` expected depth ``sum_i w_i t_mid_i / sum_i w_i`` along the ray (0 where opacity is 0);
            ray parameter ``t``, i.e. distance for unit directions.
        accumulated_depth: ``[R, 1]`` ``sum_i w_i t_mid_i`` (nerfacc's un-normalised depth).
        weights: ``[S]`` per-sample weights, when ``return_weights``; else ``None``.
        transmittance: ``[S]`` per-sample transmittance ``T_i``, when ``return_weights``; else ``None``.
        normals: ``[R, 3]`` accumulated, re-normalised normals when ``normals`` were given; else ``None``.
    """

    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor
    accumulated_depth: torch.Tensor
    weights: Optional[torch.Tensor] = None
    transmittance: Optional[torch.Tensor] = None
    normals: Optional[torch.Tensor] = None


def _check_inputs(sigmas, values, t_starts, t_ends, ray_indices, num_rays, early_stop_eps) -> float:
    check_tensor(sigmas, "sigmas", trailing=(None,), max_dims=1, floating=True)
    dev = sigmas.device
    check_tensor(ray_indices, "ray_indices", trailing=(None,), max_dims=1, floating=False, device=dev)
    S = sigmas.shape[0]
    if ray_indices.shape[0] != S:
        raise ValueError(f"ray_indices must have one entry per sample ([S] = [{S}], like sigmas); "
                         f"got {tuple(ray_indices.shape)}")
    extra = [("sigmas", sigmas, True)]
    if values is not None:
        check_tensor(values, "values", trailing=(None, None), max_dims=2, floating=True, device=dev)
        if values.shape[0] != S:
            raise ValueError(f"values must have shape [S, C] with S = {S} (one row per sample); "
                             f"got {tuple(values.shape)}")
        extra.append(("values", values, False))
    check_packed(ray_indices, num_rays, t_starts, t_ends, extra=extra)
    return check_number(early_stop_eps, "early_stop_eps", lo=0.0, hi=1.0, hi_open=True)


def composite_ref(sigmas: torch.Tensor, values: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                  ray_indices: torch.Tensor, num_rays: int, early_stop_eps: float = 0.0
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite packed samples with PyTorch ops in float64 (float32 where the device has no float64): the twin
    of the Warp kernel.

    Args:
        sigmas: ``[S]`` non-negative densities.
        values: ``[S, C]`` per-sample values (``C`` may be 0).
        t_starts, t_ends: ``[S]`` sample intervals, sorted and non-overlapping within each ray.
        ray_indices: ``[S]`` int, sorted: the ray of each sample.
        num_rays: ``R``.
        early_stop_eps: samples with transmittance below it get weight 0.

    Returns:
        ``(acc [R, C], opacity [R], accumulated_depth [R], weights [S], transmittance [S])`` in the dtype of
        ``sigmas``, where ``acc = sum_i w_i values_i`` and ``accumulated_depth = sum_i w_i (t_start_i + t_end_i) / 2``.

    **Differentiability:** through ordinary autograd (a global cumulative sum, ``exp``, ``index_add``) w.r.t.
    ``sigmas``, ``values``, ``t_starts`` and ``t_ends``; the early-termination mask is piecewise constant.
    Inputs are not checked (the public ops do that).
    """
    out_dtype = sigmas.dtype
    dt = torch.float32 if sigmas.device.type == "mps" else torch.float64
    sigmas, values, t_starts, t_ends = (x.to(dt) for x in (sigmas, values, t_starts, t_ends))
    ray_indices = ray_indices.long()
    offsets, _ = ray_offsets(ray_indices, num_rays)
    tau = sigmas * (t_ends - t_starts)
    trans = torch.exp(-segment_exclusive_cumsum(tau, ray_indices, offsets))
    alive = trans >= early_stop_eps
    weights = torch.where(alive, trans * -torch.expm1(-tau), torch.zeros_like(tau))
    R = num_rays
    acc = values.new_zeros(R, values.shape[1]).index_add(0, ray_indices, weights[:, None] * values)
    opacity = weights.new_zeros(R).index_add(0, ray_indices, weights)
    depth = weights.new_zeros(R).index_add(0, ray_indices, weights * 0.5 * (t_starts + t_ends))
    return tuple(x.to(out_dtype) for x in (acc, opacity, depth, weights, trans))


def _composite_dispatch(sigmas, values, t_starts, t_ends, ray_indices, num_rays, eps):
    """Kernel for float32 / float64 (half precision upcast to float32) on CPU and CUDA, else the twin."""
    if sigmas.device.type not in ("cpu", "cuda"):
        return composite_ref(sigmas, values, t_starts, t_ends, ray_indices, num_rays, eps)
    dt = sigmas.dtype if sigmas.dtype in KERNEL_DTYPES else torch.float32
    ray_start, ray_count = ray_offsets(ray_indices.long(), num_rays)
    outs = composite_packed(sigmas.to(dt), values.to(dt), t_starts.to(dt), t_ends.to(dt), ray_start, ray_count,
                            eps)
    return tuple(x.to(sigmas.dtype) for x in outs)


def render_weights(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor,
                   num_rays: int, *, early_stop_eps: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Compute the compositing weights and transmittance of packed samples.

    ``w_i = T_i (1 - exp(-sigma_i delta_i))`` with ``T_i = exp(-sum_{j<i} sigma_j delta_j)`` over the earlier
    samples of the same ray; ``w_i = 0`` where ``T_i < early_stop_eps``.

    Args:
        sigmas: ``[S]`` float, non-negative densities (per unit of ``t``).
        t_starts, t_ends: ``[S]`` float, sample intervals along each ray; sorted, non-overlapping within a ray.
        ray_indices: ``[S]`` int, sorted (non-decreasing): the ray of each sample.
        num_rays: ``R``; rays with no samples are allowed.
        early_stop_eps: transmittance threshold of early ray termination, in ``[0, 1)`` (0: none).

    Returns:
        ``(weights [S], transmittance [S])`` in the dtype of ``sigmas``.

    Example: one ray, ``sigmas = [ln 2, ln 2]``, intervals ``[0, 1], [1, 2]`` -> ``T = [1, 0.5]``,
    ``weights = [0.5, 0.25]``.

    **Differentiability:** both outputs are differentiable w.r.t. ``sigmas``, ``t_starts`` and ``t_ends``
    (the Warp kernel's explicit adjoint, which recomputes transmittance). The early-termination cut-off is a
    discrete choice and carries no gradient.

    Raises:
        TypeError / ValueError: naming the argument, for NaN / Inf or negative ``sigmas``, mismatched lengths,
            unsorted ``ray_indices``, indices outside ``[0, num_rays)``, ``t_ends < t_starts`` or overlapping
            intervals within a ray.
    """
    eps = _check_inputs(sigmas, None, t_starts, t_ends, ray_indices, num_rays, early_stop_eps)
    values = sigmas.new_zeros(sigmas.shape[0], 0)
    _, _, _, weights, trans = _composite_dispatch(sigmas, values, t_starts, t_ends, ray_indices, num_rays, eps)
    return weights, trans


def accumulate(values: torch.Tensor, weights: torch.Tensor, ray_indices: torch.Tensor, num_rays: int) -> torch.Tensor:
    """Sum weighted per-sample values along each ray: ``out[r] = sum_{i in ray r} w_i values_i``.

    Args:
        values: ``[S, C]`` (or ``[S]``, read as ``[S, 1]``) per-sample values: colour, ``t`` for depth, normals.
        weights: ``[S]`` compositing weights (:func:`render_weights`).
        ray_indices: ``[S]`` int, the ray of each sample, in ``[0, num_rays)`` (any order).
        num_rays: ``R``.

    Returns:
        ``[R, C]`` in the promoted dtype of ``values`` and ``weights``; rays without samples get 0.

    Example: ``values = [[1.], [3.]]``, ``weights = [0.5, 0.25]``, ``ray_indices = [0, 0]`` -> ``[[1.25]]``.

    **Differentiability:** linear in ``values`` and in ``weights`` (autograd of ``index_add``).
    """
    check_tensor(weights, "weights", trailing=(None,), max_dims=1, floating=True, finite=True)
    check_tensor(values, "values", min_dims=1, max_dims=2, floating=True, finite=True, device=weights.device)
    if values.dim() == 1:
        values = values[:, None]
    S = weights.shape[0]
    if values.shape[0] != S:
        raise ValueError(f"values must have one row per sample (S = {S}, like weights); got {tuple(values.shape)}")
    check_tensor(ray_indices, "ray_indices", trailing=(None,), max_dims=1, floating=False, device=weights.device)
    if ray_indices.shape[0] != S:
        raise ValueError(f"ray_indices must have one entry per sample (S = {S}); got {tuple(ray_indices.shape)}")
    if isinstance(num_rays, bool) or not isinstance(num_rays, int) or num_rays < 0:
        raise ValueError(f"num_rays must be a non-negative int; got {num_rays!r}")
    if S and (int(ray_indices.min()) < 0 or int(ray_indices.max()) >= num_rays):
        raise ValueError(f"ray_indices must lie in [0, num_rays) = [0, {num_rays}); got values in "
                         f"[{int(ray_indices.min())}, {int(ray_indices.max())}]")
    dt = torch.promote_types(values.dtype, weights.dtype)
    return values.new_zeros(num_rays, values.shape[1], dtype=dt).index_add(
        0, ray_indices.long(), weights.to(dt)[:, None] * values.to(dt))


def normals_from_density_gradient(grad_sigma: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals ``n = -grad sigma / |grad sigma|`` ``[..., 3]`` (density falls towards the outside).

    Args:
        grad_sigma: ``[..., 3]`` gradient of the density w.r.t. position (e.g. ``torch.autograd.grad`` of the
            field's density with ``create_graph=True``, or a finite difference).
        eps: floor of the norm, so that a flat density gives a zero normal rather than NaN.

    Returns:
        ``[..., 3]`` unit (or zero) normals.

    **Differentiability:** smooth in ``grad_sigma`` where its norm exceeds ``eps``.
    """
    check_tensor(grad_sigma, "grad_sigma", trailing=(3,), floating=True, finite=True)
    return -grad_sigma / torch.linalg.vector_norm(grad_sigma, dim=-1, keepdim=True).clamp_min(eps)


def composite(sigmas: torch.Tensor, rgbs: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
              ray_indices: torch.Tensor, num_rays: int, *, background: Optional[torch.Tensor] = None,
              normals: Optional[torch.Tensor] = None, early_stop_eps: float = 0.0,
              return_weights: bool = False) -> VolumeRender:
    """Render packed samples to per-ray colour, opacity and depth (and normals).

    ``rgb = sum_i w_i c_i + (1 - opacity) background``, ``opacity = sum_i w_i``,
    ``depth = sum_i w_i t_mid_i / opacity`` with ``w_i`` as in :func:`render_weights`.

    Args:
        sigmas: ``[S]`` non-negative densities.
        rgbs: ``[S, C]`` per-sample colours (any ``C >= 0``: features render the same way).
        t_starts, t_ends: ``[S]`` sample intervals, sorted and non-overlapping within each ray.
        ray_indices: ``[S]`` int, sorted: the ray of each sample.
        num_rays: ``R``.
        background: ``[C]`` or ``[R, C]`` colour behind the volume, or ``None`` (black / no blending).
        normals: ``[S, 3]`` per-sample normals (e.g. :func:`normals_from_density_gradient`), or ``None``.
        early_stop_eps: transmittance threshold of early ray termination (0: none).
        return_weights: also return the per-sample ``weights`` and ``transmittance``.

    Returns:
        :class:`VolumeRender`, in the dtype of ``sigmas`` (the other inputs are cast to it). The kernel
        composites float32 and float64; float16 / bfloat16 inputs are composited in float32 and the results
        rounded back; devices other than CPU and CUDA use :func:`composite_ref`.

    Example: a homogeneous slab of density ``sigma`` and length ``L`` cut into any samples gives
    ``opacity = 1 - exp(-sigma L)``; a single sample with ``sigma delta >> 1`` gives ``opacity ~ 1`` and its
    colour.

    **Differentiability:** ``rgb``, ``opacity``, ``depth`` and the weights are differentiable w.r.t.
    ``sigmas``, ``rgbs``, ``t_starts``, ``t_ends`` (the kernel's explicit backward) and ``background``;
    ``normals`` w.r.t. the per-sample normals and, through the weights, the densities. Early termination
    carries no gradient.
    """
    eps = _check_inputs(sigmas, rgbs, t_starts, t_ends, ray_indices, num_rays, early_stop_eps)
    acc, opacity, depth_acc, weights, trans = _composite_dispatch(sigmas, rgbs, t_starts, t_ends, ray_indices,
                                                                  num_rays, eps)
    opacity, depth_acc = opacity[:, None], depth_acc[:, None]
    rgb = acc
    if background is not None:
        check_tensor(background, "background", min_dims=1, max_dims=2, floating=True, finite=True,
                     device=sigmas.device)
        C = rgbs.shape[1]
        if background.shape[-1] != C or (background.dim() == 2 and background.shape[0] not in (1, num_rays)):
            raise ValueError(f"background must have shape [{C}] or [{num_rays}, {C}]; got {tuple(background.shape)}")
        rgb = acc + (1 - opacity) * background.to(acc.dtype)
    positive = opacity > 0
    depth = torch.where(positive, depth_acc / torch.where(positive, opacity, torch.ones_like(opacity)),
                        torch.zeros_like(opacity))
    out_normals = None
    if normals is not None:
        check_tensor(normals, "normals", trailing=(None, 3), max_dims=2, floating=True, finite=True,
                     device=sigmas.device)
        if normals.shape[0] != sigmas.shape[0]:
            raise ValueError(f"normals must have shape [S, 3] with S = {sigmas.shape[0]}; got {tuple(normals.shape)}")
        summed = accumulate(normals, weights, ray_indices, num_rays)
        out_normals = summed / torch.linalg.vector_norm(summed, dim=-1, keepdim=True).clamp_min(1e-12)
    return VolumeRender(rgb=rgb, opacity=opacity, depth=depth, accumulated_depth=depth_acc,
                        weights=weights if return_weights else None,
                        transmittance=trans if return_weights else None, normals=out_normals)
