"""Autograd glue for the antialias blend kernels (``blend_kernels``): ``color`` blended across silhouette
crossings, with an explicit backward to ``color`` and to the crossing positions ``t``."""

from __future__ import annotations

import torch

from . import blend_kernels as bk
from ._runtime import as_warp, ensure_init, launch

#: dtypes the kernels are compiled for.
KERNEL_DTYPES = (torch.float32, torch.float64)


def blend_at_crossings(flat: torch.Tensor, p_in: torch.Tensor, p_out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``flat [pixels, C]`` (float32 or float64) blended across the crossings ``(p_in, p_out, t)`` (int64 pixel
    indices, positions ``t [E]`` cast to ``flat``'s dtype); differentiable w.r.t. ``flat`` and ``t``."""
    return _Blend.apply(flat, p_in.contiguous(), p_out.contiguous(), t.to(flat.dtype).contiguous())


class _Blend(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat, p_in, p_out, t):
        ensure_init()
        flat = flat.contiguous()
        out = flat.clone()
        # One launch (atomic adds: a pixel may join several crossings); crossings are few, so one CPU thread.
        launch(bk.blend_forward, t.shape[0], [as_warp(flat), as_warp(p_in), as_warp(p_out), as_warp(t.detach()),
                                              as_warp(out)], flat.device)
        ctx.save_for_backward(flat, p_in, p_out, t)
        return out

    @staticmethod
    def backward(ctx, g_out):
        flat, p_in, p_out, t = ctx.saved_tensors
        want_color, want_t = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
        g_out = g_out.to(flat.dtype).contiguous()
        g_color = g_out.clone() if want_color else g_out.new_zeros(1, 1)
        g_t = torch.empty_like(t)
        launch(bk.blend_backward, t.shape[0], [as_warp(flat.detach()), as_warp(p_in), as_warp(p_out),
                                               as_warp(t.detach()), as_warp(g_out), int(want_color),
                                               as_warp(g_color), as_warp(g_t)], flat.device)
        return (g_color if want_color else None, None, None, g_t if want_t else None)
