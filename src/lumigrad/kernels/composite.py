"""Autograd glue for the volume compositing kernels: one forward per ray, one explicit backward that recomputes
transmittance (``composite_kernels``). Inputs are checked by ``lumigrad.volume.composite``."""

from __future__ import annotations

from typing import Tuple

import torch
import warp as wp

from . import composite_kernels as ck
from ._runtime import as_warp, ensure_init, launch_split

#: dtypes the kernels are compiled for.
KERNEL_DTYPES = (torch.float32, torch.float64)

_MIN_RAYS_PER_THREAD = 2048


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, values, t_starts, t_ends, ray_start, ray_count, eps):
        ensure_init()
        R, S, C = ray_start.shape[0], sigmas.shape[0], values.shape[1]
        dev, dt = sigmas.device, sigmas.dtype
        acc = torch.empty(R, C, dtype=dt, device=dev)
        opacity = torch.empty(R, dtype=dt, device=dev)
        depth = torch.empty(R, dtype=dt, device=dev)
        weights = torch.empty(S, dtype=dt, device=dev)
        trans = torch.empty(S, dtype=dt, device=dev)
        args = _inputs(sigmas, values, t_starts, t_ends, ray_start, ray_count, eps)
        launch_split(ck.composite_forward, R, args + [_view(acc), as_warp(opacity), as_warp(depth),
                                                      as_warp(weights), as_warp(trans)], dev,
                     min_chunk=_MIN_RAYS_PER_THREAD)
        ctx.save_for_backward(sigmas, values, t_starts, t_ends, ray_start, ray_count)
        ctx.eps = eps
        ctx.set_materialize_grads(False)  # outputs without a cotangent arrive as None and cost nothing
        return acc, opacity, depth, weights, trans

    @staticmethod
    def backward(ctx, v_acc, v_opacity, v_depth, v_weights, v_trans):
        sigmas, values, t_starts, t_ends, ray_start, ray_count = ctx.saved_tensors
        if not any(ctx.needs_input_grad[:4]):
            return (None,) * 7
        R, S, C = ray_start.shape[0], sigmas.shape[0], values.shape[1]
        need = ctx.needs_input_grad
        zeros = lambda g, shape: sigmas.new_zeros(shape) if g is None else g.to(sigmas.dtype).contiguous()  # noqa: E731
        optional = lambda g: sigmas.new_zeros(1) if g is None else g.to(sigmas.dtype).contiguous()  # noqa: E731
        v_acc, v_opacity, v_depth = zeros(v_acc, (R, C)), zeros(v_opacity, (R,)), zeros(v_depth, (R,))
        want_values, want_t = need[1], need[2] or need[3]
        v_sigmas = torch.empty_like(sigmas)
        v_values = torch.empty_like(values) if want_values else values.new_zeros(1, 1)
        v_t_starts = torch.empty_like(t_starts) if want_t else t_starts.new_zeros(1)
        v_t_ends = torch.empty_like(t_ends) if want_t else t_ends.new_zeros(1)
        args = _inputs(sigmas, values, t_starts, t_ends, ray_start, ray_count, ctx.eps)
        args += [_view(v_acc), as_warp(v_opacity), as_warp(v_depth), as_warp(optional(v_weights)),
                 int(v_weights is not None), as_warp(optional(v_trans)), int(v_trans is not None),
                 as_warp(v_sigmas), _view(v_values), int(want_values), as_warp(v_t_starts), as_warp(v_t_ends),
                 int(want_t)]
        launch_split(ck.composite_backward, R, args, sigmas.device, min_chunk=_MIN_RAYS_PER_THREAD)
        return (v_sigmas if need[0] else None, v_values if need[1] else None,
                v_t_starts if need[2] else None, v_t_ends if need[3] else None, None, None, None)


def _view(t: torch.Tensor):
    """A Warp 2-D view; a tensor with no columns (or rows) gets a one-element stand-in the kernel never reads."""
    if t.numel() == 0:
        return as_warp(t.new_zeros(1, 1))
    return as_warp(t)


def _inputs(sigmas, values, t_starts, t_ends, ray_start, ray_count, eps) -> list:
    eps_value = wp.float64(eps)
    return [as_warp(sigmas), _view(values), int(values.shape[1]), as_warp(t_starts), as_warp(t_ends),
            as_warp(ray_start), as_warp(ray_count), eps_value]


def composite_packed(sigmas: torch.Tensor, values: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                     ray_start: torch.Tensor, ray_count: torch.Tensor, eps: float
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite packed samples ray by ray (float32 or float64, one dtype for all float inputs).

    Args:
        sigmas, t_starts, t_ends: ``[S]`` densities and sample intervals, sorted within each ray.
        values: ``[S, C]`` per-sample values (``C`` may be 0).
        ray_start, ray_count: ``[R]`` int32: ray ``r`` owns samples ``[ray_start[r], ray_start[r] + ray_count[r])``.
        eps: early-termination threshold on transmittance (0 keeps every sample).

    Returns:
        ``(acc [R, C], opacity [R], depth [R], weights [S], transmittance [S])`` as in ``composite_kernels``.

    **Differentiability:** every output is differentiable w.r.t. ``sigmas``, ``values``, ``t_starts`` and
    ``t_ends``; the backward is the explicit adjoint of ``composite_kernels`` (transmittance recomputed).
    """
    return _Composite.apply(sigmas.contiguous(), values.contiguous(), t_starts.contiguous(), t_ends.contiguous(),
                            ray_start.to(torch.int32).contiguous(), ray_count.to(torch.int32).contiguous(),
                            float(eps))
