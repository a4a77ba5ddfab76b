"""Autograd glue for the texture kernels (float32 / float64): one fused gather forward, one explicit backward."""

from __future__ import annotations

import math
from typing import Optional

import torch
import warp as wp

from . import buffer_pool
from . import texture_kernels as tk
from ._runtime import as_warp, ensure_init, launch_partitioned, launch_split, num_workers
from .texture_pyramid import table_adjoint

MODES = {"nearest": tk.NEAREST, "bilinear": tk.BILINEAR, "trilinear": tk.TRILINEAR}
WRAPS = {"repeat": tk.REPEAT, "clamp": tk.CLAMP, "mirror": tk.MIRROR}
TAPS = {"nearest": 1, "bilinear": 4, "trilinear": 8}  # texels one sample reads


class _SampleTexture(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias,
                tex, slope, shapes, use_fine, grad_enabled):
        ensure_init()
        S = uv.shape[0]
        items = S if active is None else active.shape[0]
        # Listed samples only: the others stay zero.
        out = _pooled((S, table.shape[1]), table.dtype, table.device, zero=active is not None)
        # The finest level read, per item: only the CPU backward of a cached pyramid reads it.
        fine = torch.empty(items if use_fine else 1, dtype=torch.int32, device=table.device)
        # What the backward needs, per work item (only when one will run), sized by the filter and the gradients
        # wanted: the taps for texel gradients, the derivatives for those of ``uv`` (and ``duv``). (Under
        # ``no_grad`` ``needs_input_grad`` still says which inputs require a gradient: ``grad_enabled`` is the
        # caller's grad mode.)
        taps, slopes = _record_kinds(mode, ctx.needs_input_grad) if grad_enabled else (False, 0)
        records, ctx.record_bytes = _new_records(items, table.shape[1], table.dtype, table.device, mode, taps, slopes)
        args = _args(table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias)
        kernel = tk.sample_forward_recording if taps or slopes else tk.sample_forward  # no record code at all
        launch_split(kernel, items, args + [as_warp(out), as_warp(fine), int(use_fine), int(taps), slopes]
                     + _warp_records(records), table.device, min_chunk=4096)
        ctx.save_for_backward(table, uv, mask, active, slope, fine, offsets, *records)
        ctx.meta = (mode, None if tex is None else tex.shape, shapes, taps, slopes)
        return out

    @staticmethod
    def backward(ctx, v_out):
        mode, tex_shape, shapes, want_table, slopes = ctx.meta
        if not (want_table or slopes):
            # Only gradients that are zero (``uv`` of nearest sampling) or inputs without a gradient of their own
            # (``slope``) were asked for: there is no record to replay.
            return (None,) * 17
        table, uv, mask, active, slope, fine, offsets, *records = ctx.saved_tensors
        want_tex = tex_shape is not None and ctx.needs_input_grad[12]
        S = uv.shape[0]
        items = S if active is None else active.shape[0]
        dev = table.device
        # Gradients not asked for get one-row stand-ins the kernel never writes.
        v_uv = _pooled(uv.shape if slopes else (1, 2), uv.dtype, dev, zero=active is not None)
        v_duv = _pooled((S if slopes == 3 else 1, 4), uv.dtype, dev, zero=active is not None)
        use_mask, use_active = mask is not None, active is not None
        args = [as_warp(_int8_or_stub(mask, dev)), int(use_mask), as_warp(_int64_or_stub(active, dev)),
                int(use_active), MODES[mode], int(want_table), slopes] + _warp_records(records) + \
            [as_warp(v_out.contiguous())]
        tail = [as_warp(v_uv), as_warp(v_duv)]
        # The table gradient of a cached pyramid (``tex`` given) is scratch, consumed here by the pyramid's
        # adjoint, which accumulates the levels in place and returns level 0's rows as ``tex``'s gradient. On
        # the CPU its tables come from the buffer pool (a fresh 1024^2 pyramid's gradient is 16 MiB of page
        # faults per backward), and only the levels the samples read are zeroed, summed and pushed through the
        # adjoint (levels finer than ``first`` get the coarse gradient only).
        consume = want_tex and not ctx.needs_input_grad[0] and len(shapes) > 1
        scratch = consume and dev.type == "cpu"  # then the forward recorded ``fine`` (``_records_fine``)
        first = min(int(fine.min()), len(shapes) - 1) if scratch and items and fine.numel() == items else 0
        start = int(offsets[first]) if scratch else 0  # rows below it are never written nor read
        parts = min(num_workers(), max(1, items // 16384))
        if want_table and items * TAPS[mode] < table.shape[0] - start:
            # A large table and few samples (a 2048^2 pyramid under a 256^2 image): one more zeroed table (from
            # row ``start``) and its sum would cost more than splitting the scatter saves.
            parts = 1
        count = parts if want_table and dev.type == "cpu" else 1
        if scratch:
            tables = [_pooled_zeros(table, start) for _ in range(count)]
        elif want_table:
            tables = [torch.zeros_like(table) for _ in range(count)]
        else:
            tables = [table.new_zeros(1, table.shape[1])]
        if want_table and dev.type == "cpu":
            # Atomics are not atomic across CPU threads: each part scatters into its own table, then sum.
            launch_partitioned(tk.sample_backward, items, lambda k: args + [as_warp(tables[k])] + tail, count, dev)
            for extra in tables[1:]:
                tables[0][start:] += extra[start:]
        else:
            launch_split(tk.sample_backward, items, args + [as_warp(tables[0])] + tail, dev, min_chunk=4096)
        v_table = tables[0]
        v_tex = None
        if want_tex:
            # Never a view of ``table``: a fresh tensor, or level 0's rows of the consumed scratch table.
            v_tex = table_adjoint(v_table, tex_shape, shapes, slope if slope.numel() > 1 else None, first,
                                  in_place=consume)
        want_uv = ctx.needs_input_grad[1] and slopes != 0  # nearest sampling is flat in uv (no slopes)
        want_duv = ctx.needs_input_grad[2] and slopes == 3
        return (v_table if ctx.needs_input_grad[0] else None, v_uv if want_uv else None,
                v_duv if want_duv else None) + (None,) * 9 + (v_tex,) + (None,) * 4


def _pooled(shape, dtype: torch.dtype, device: torch.device, zero: bool) -> torch.Tensor:
    """A ``shape`` tensor from the buffer pool (per-frame outputs and gradients: no fresh pages on the CPU),
    zeroed if ``zero``, else uninitialised."""
    out = buffer_pool.take(shape, dtype, device)
    return out.zero_() if zero else out


def _pooled_zeros(like: torch.Tensor, start: int = 0) -> torch.Tensor:
    """A table shaped like ``like`` (CPU, from the buffer pool), zero from row ``start`` on (earlier rows hold
    whatever the buffer held)."""
    out = buffer_pool.take(like.shape, like.dtype, like.device)
    out[start:].zero_()
    return out


def _record_kinds(mode: str, needs_input_grad) -> tuple:
    """What the forward records for ``_SampleTexture.backward``: ``(taps, slopes)``; ``taps`` whether the texels
    (``table`` or the cached pyramid's ``tex``) want gradients; ``slopes`` 0 (no ``uv`` / ``duv`` gradient, or
    nearest sampling, flat in uv), 2 (``uv``'s only) or 3 (trilinear with ``duv``'s too)."""
    taps = bool(needs_input_grad[0] or needs_input_grad[12])
    want_uv = needs_input_grad[1] and mode != "nearest"
    want_duv = needs_input_grad[2] and mode == "trilinear"  # other filters: no duv gradient (None)
    return taps, 3 if want_duv else (2 if want_uv else 0)


def _new_records(items: int, channels: int, dtype: torch.dtype, device: torch.device, mode: str, taps: bool,
                 slopes: int) -> tuple:
    """Uninitialised per-item records of the forward for the backward (``texture_kernels.sample_forward``) and
    their bytes: with ``taps`` a nearest sample's table row ``[items]`` int32, else the tap rows ``[items, L, 4]``
    int32 and weights ``[items, L, 4]`` of its ``L`` levels (2 trilinear, 1 bilinear); with ``slopes`` 2 the
    u and v derivatives ``[items, C, 2]``, with 3 the u, v and blend derivatives ``[items, C, 3]`` and ``d lod /
    d duv`` ``[items, 4]``. Arrays not recorded are one-row stand-ins (not counted).

    The recorded arrays are views of one buffer from the buffer pool (widest elements first, so each is
    aligned): on the CPU a training loop reuses the same pages every step instead of faulting in the record
    afresh (464 MiB for a full 2048^2 record); it is free again once the backward has dropped it."""
    levels = 2 if mode == "trilinear" else 1
    nearest = mode == "nearest"
    used = [taps and nearest, taps and not nearest, taps and not nearest, slopes == 2, slopes == 3, slopes == 3]
    tails = [(), (levels, 4), (levels, 4), (channels, 2), (channels, 3), (4,)]
    dtypes = [torch.int32, torch.int32, dtype, dtype, dtype, dtype]
    shapes = [(items if u else 1,) + tail for u, tail in zip(used, tails)]
    sizes = [math.prod(shape) * d.itemsize for shape, d in zip(shapes, dtypes)]
    total = sum(n for n, u in zip(sizes, used) if u)
    flat = buffer_pool.take((total,), torch.uint8, device)  # empty when every sample is masked
    records, start = [None] * len(used), 0
    for k in sorted(range(len(used)), key=lambda k: -dtypes[k].itemsize):
        if used[k]:
            records[k] = flat[start:start + sizes[k]].view(dtypes[k]).view(shapes[k])
            start += sizes[k]
        else:
            records[k] = torch.empty(shapes[k], dtype=dtypes[k], device=device)
    return records, total


def _warp_records(records: list) -> list:
    """``records`` (``_new_records``) as the kernels' vector-typed arrays."""
    nearest_rows, rows, weights, slopes_uv, slopes, dlods = records
    vec4, vec2, vec3, dvec4 = tk.RECORD_TYPES[wp.float64 if weights.dtype == torch.float64 else wp.float32]
    return [as_warp(nearest_rows), as_warp(rows, dtype=wp.vec4i), as_warp(weights, dtype=vec4),
            as_warp(slopes_uv, dtype=vec2), as_warp(slopes, dtype=vec3), as_warp(dlods, dtype=dvec4)]


def record_bytes(out: torch.Tensor) -> int:
    """Bytes of the record that ``out`` (a :func:`sample_texture` result) keeps for its backward; 0 when no
    backward will replay one."""
    return getattr(out.grad_fn, "record_bytes", 0)


def _int8_or_stub(mask: Optional[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``mask`` (int8), or a one-element stand-in the kernels never read."""
    return mask if mask is not None else torch.zeros(1, dtype=torch.int8, device=device)


def _int64_or_stub(active: Optional[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``active`` (int64, as ``nonzero`` gives it), or a one-element stand-in the kernels never read."""
    return active if active is not None else torch.zeros(1, dtype=torch.int64, device=device)


def _args(table, uv, duv, heights, widths, offsets, mask, active, per_owner, mode, wrap, lod_bias):
    """The forward kernel's leading arguments; ``mask`` (int8) and ``active`` (int64) may be None (unused)."""
    dev = table.device
    return [as_warp(table), as_warp(heights), as_warp(widths), as_warp(offsets), int(heights.shape[0]),
            as_warp(uv), as_warp(duv), as_warp(_int8_or_stub(mask, dev)), int(mask is not None),
            as_warp(_int64_or_stub(active, dev)), int(active is not None), int(per_owner), MODES[mode],
            WRAPS[wrap], wp.float64(lod_bias)]


def sample_texture(table: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, offsets: torch.Tensor,
                   uv: torch.Tensor, duv: Optional[torch.Tensor], mask: Optional[torch.Tensor], per_owner: int,
                   mode: str, wrap: str, lod_bias: float = 0.0, source: Optional[tuple] = None) -> torch.Tensor:
    """Filter a flattened mip table ``[T, C]`` at ``uv [S, 2]`` (float32 or float64, one dtype for the table,
    ``uv`` and ``duv``); see ``texture_kernels``.

    ``duv [S, 4]`` (du/dx, du/dy, dv/dx, dv/dy) is needed for trilinear filtering; ``mask [S]`` skips samples
    (zero output, zero gradient); ``per_owner`` > 0 selects texture ``s // per_owner`` of a batch.
    Differentiable w.r.t. ``table``, ``uv`` and ``duv``. On the CPU the kernels run over the unmasked samples
    only (their indices, found once per forward); on CUDA over all samples, since listing them would cost a
    host sync.

    ``source = (tex, slope, shapes)``: ``table`` holds the constant, cached pyramid (level sizes ``shapes``) of
    an elementwise ``transform(tex)`` whose derivative is ``slope`` (None: the identity); the gradient then goes
    to ``tex`` through the pyramid's adjoint (``texture_pyramid.table_adjoint``) instead of to ``table``.
    """
    dev = table.device
    duv = duv.contiguous() if duv is not None else uv.new_zeros(1, 4)
    active = None
    if mask is not None and dev.type == "cpu":
        active = mask.nonzero().reshape(-1)
        mask = None
    mask = mask.to(torch.int8).contiguous() if mask is not None else None
    tex, slope, shapes = source if source is not None else (None, None, None)
    slope = table.new_zeros(()) if slope is None else slope
    i32 = dict(dtype=torch.int32, device=dev)
    use_fine = _records_fine(tex, shapes)
    return _SampleTexture.apply(table.detach().contiguous() if tex is not None else table.contiguous(),
                                uv.contiguous(), duv, heights.to(**i32).contiguous(), widths.to(**i32).contiguous(),
                                offsets.to(**i32).contiguous(), mask, active, per_owner, mode, wrap, lod_bias,
                                tex, slope, None if shapes is None else tuple(shapes), use_fine,
                                torch.is_grad_enabled())


def _records_fine(tex: Optional[torch.Tensor], shapes) -> bool:
    """Whether the backward will read the finest level of every sample: that of a cached pyramid of two
    levels or more on the CPU (where it bounds the scratch zeroed; ``tex`` given only for cached pyramids)."""
    return (tex is not None and tex.device.type == "cpu" and tex.requires_grad and torch.is_grad_enabled()
            and len(shapes) > 1)
