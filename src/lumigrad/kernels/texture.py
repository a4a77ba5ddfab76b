"""Autograd glue for the float32 texture kernels: one fused gather forward, one explicit backward."""

from __future__ import annotations

from typing import Optional

import torch

from . import texture_kernels as tk
from ._runtime import as_warp, ensure_init, launch, launch_partitioned, launch_split, num_workers

MODES = {"nearest": tk.NEAREST, "bilinear": tk.BILINEAR, "trilinear": tk.TRILINEAR}
WRAPS = {"repeat": tk.REPEAT, "clamp": tk.CLAMP, "mirror": tk.MIRROR}
TAPS = {"nearest": 1, "bilinear": 4, "trilinear": 8}  # texels one sample reads


class _SampleTexture(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias):
        ensure_init()
        S = uv.shape[0]
        items = S if active is None else active.shape[0]
        new = torch.empty if active is None else torch.zeros  # listed samples only: the others stay zero
        out = new(S, table.shape[1], dtype=table.dtype, device=table.device)
        args = _args(table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias)
        launch_split(tk.sample_forward, items, args + [as_warp(out)], table.device, min_chunk=4096)
        ctx.save_for_backward(table, uv, duv, heights, widths, offsets, mask, active)
        ctx.meta = (per_owner, mode, wrap, lod_bias)
        return out

    @staticmethod
    def backward(ctx, v_out):
        table, uv, duv, heights, widths, offsets, mask, active = ctx.saved_tensors
        per_owner, mode, wrap, lod_bias = ctx.meta
        want_table = ctx.needs_input_grad[0]
        S = uv.shape[0]
        items = S if active is None else active.shape[0]
        dev = table.device
        new = torch.empty if active is None else torch.zeros
        v_uv = new(uv.shape, dtype=uv.dtype, device=dev)
        v_duv = new(S, 4, dtype=uv.dtype, device=dev)
        args = _args(table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias)
        args += [as_warp(v_out.contiguous()), int(want_table)]
        tail = [as_warp(v_uv), as_warp(v_duv)]
        parts = min(num_workers(), max(1, items // 16384))
        if want_table and items * TAPS[mode] * table.shape[1] < table.numel():
            # A large table and few samples (a 2048^2 pyramid under a 256^2 image): one more zeroed table and
            # its sum would cost more than splitting the scatter saves.
            parts = 1
        if want_table and dev.type == "cpu" and parts > 1:
            # Atomics are not atomic across CPU threads: each thread scatters into its own table, then sum.
            tables = [torch.zeros_like(table) for _ in range(parts)]
            launch_partitioned(tk.sample_backward, items, lambda k: args + [as_warp(tables[k])] + tail, parts, dev)
            v_table = tables[0]
            for extra in tables[1:]:
                v_table += extra
        else:
            v_table = torch.zeros_like(table) if want_table else table.new_zeros(1, table.shape[1])
            if want_table and dev.type == "cpu":
                launch(tk.sample_backward, items, [0, items] + args + [as_warp(v_table)] + tail, dev)
            else:
                launch_split(tk.sample_backward, items, args + [as_warp(v_table)] + tail, dev, min_chunk=4096)
        want_uv = ctx.needs_input_grad[1] and mode != "nearest"  # nearest sampling is flat in uv
        return (v_table if want_table else None, v_uv if want_uv else None,
                v_duv if ctx.needs_input_grad[2] else None) + (None,) * 9


def _args(table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias):
    use_active = active is not None
    active = active if use_active else torch.zeros(1, dtype=torch.int32, device=table.device)
    return [as_warp(table), as_warp(heights), as_warp(widths), as_warp(offsets), int(heights.shape[0]),
            as_warp(uv), as_warp(duv), as_warp(mask), int(mask.shape[0] == uv.shape[0] and not use_active),
            as_warp(active), int(use_active), int(per_owner), MODES[mode], WRAPS[wrap], float(lod_bias)]


def sample_texture(table: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, offsets: torch.Tensor,
                   uv: torch.Tensor, duv: Optional[torch.Tensor], mask: Optional[torch.Tensor], per_owner: int,
                   mode: str, wrap: str, lod_bias: float = 0.0) -> torch.Tensor:
    """Filter a flattened mip table ``[T, C]`` at ``uv [S, 2]`` (float32); see ``texture_kernels``.

    ``duv [S, 4]`` (du/dx, du/dy, dv/dx, dv/dy) is needed for trilinear filtering; ``mask [S]`` skips samples
    (zero output, zero gradient); ``per_owner`` > 0 selects texture ``s // per_owner`` of a batch.
    Differentiable w.r.t. ``table``, ``uv`` and ``duv``. On the CPU the kernels run over the unmasked samples
    only (their indices, found once per forward); on CUDA over all samples, since listing them would cost a
    host sync.
    """
    dev = table.device
    duv = duv.contiguous() if duv is not None else uv.new_zeros(1, 4)
    active = None
    if mask is not None and dev.type == "cpu":
        active = mask.nonzero().reshape(-1).to(torch.int32)
        mask = None
    mask = mask.to(torch.int8).contiguous() if mask is not None else torch.zeros(1, dtype=torch.int8, device=dev)
    i32 = dict(dtype=torch.int32, device=dev)
    return _SampleTexture.apply(table.contiguous(), uv.contiguous(), duv, heights.to(**i32).contiguous(),
                                widths.to(**i32).contiguous(), offsets.to(**i32).contiguous(), mask, active,
                                per_owner, mode, wrap, lod_bias)
