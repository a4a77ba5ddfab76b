"""Autograd glue for cached mip tables: forward values computed once per texel update, a fused adjoint backward.

A texel table is the flattened concatenation ``[texels of all levels, C]`` of a mip pyramid of
``transform(tex)``, where ``transform`` is elementwise (identity, or e.g. an sRGB decode) and every level is
the 2x2 box average of the one above (odd sizes average what exists, as ``avg_pool2d(ceil_mode=True)``).
Its values do not change until ``tex`` does, so the caller may compute them once and hand them in; this
function then only attaches the backward: the table's gradient is pushed coarse to fine through the adjoint
of each 2x2 average (one broadcast add per level, no autograd graph of the pyramid), then multiplied by the
transform's elementwise slope ``d transform / d tex`` at the cached texels.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import warp as wp

from . import buffer_pool
from . import texture_kernels as tk
from ._runtime import as_warp, ensure_init, launch_split


class _CachedTable(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tex, values, slope, shapes):
        ctx.save_for_backward(slope)
        ctx.meta = (tex.shape, shapes)
        return values.view_as(values)

    @staticmethod
    def backward(ctx, v_table):
        (slope,) = ctx.saved_tensors
        tex_shape, shapes = ctx.meta
        return table_adjoint(v_table, tex_shape, shapes, slope if slope.numel() > 1 else None), None, None, None


def cached_table(tex: torch.Tensor, values: torch.Tensor, slope: Optional[torch.Tensor],
                 shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """``values`` (the texel table of ``transform(tex)``'s pyramid with level sizes ``shapes``), differentiable
    w.r.t. ``tex`` through the fused adjoint; ``slope`` (``tex``'s shape) is ``d transform / d tex``, or
    ``None`` for the identity."""
    slope = values.new_zeros(()) if slope is None else slope
    return _CachedTable.apply(tex, values, slope, tuple(shapes))


def table_adjoint(v_table: torch.Tensor, tex_shape: torch.Size, shapes: Sequence[Tuple[int, int]],
                  slope: Optional[torch.Tensor] = None, first_level: int = 0, in_place: bool = False) -> torch.Tensor:
    """The gradient w.r.t. ``tex [..., H, W, C]`` of the texel table ``[texels, C]`` of ``transform(tex)``'s
    pyramid (level sizes ``shapes``) whose gradient is ``v_table``: each level's own gradient plus the adjoint
    of the 2x2 average applied to the next coarser level's accumulated gradient, from the coarsest level up
    (one broadcast add per level, writing each level once), times ``slope = d transform / d tex`` if given.

    ``first_level``: the levels finer than it have no gradient of their own (their rows of ``v_table`` are
    not read, whatever they hold); when the sizes halve evenly down to level 0, that level's accumulated
    gradient is spread to ``tex`` in one broadcast (``2^l x 2^l`` blocks times ``4^-l``).

    ``in_place``: ``v_table`` is scratch of the caller's (contiguous): each level accumulates into its own rows
    and the result is level 0's rows (a view of ``v_table``), so no level-sized buffer is allocated; the rows
    of the other levels are left holding their accumulated gradients (or, finer than ``first_level``,
    whatever they held)."""
    c = tex_shape[-1]
    num_tex = 1
    for d in tex_shape[:-3]:
        num_tex *= int(d)
    parts = torch.split(v_table, [num_tex * h * w for h, w in shapes])
    acc = parts[-1].reshape(num_tex, *shapes[-1], c)
    for k in range(len(shapes) - 2, -1, -1):
        h, w = shapes[k]
        own = parts[k].view(num_tex, h, w, c) if in_place else parts[k].reshape(num_tex, h, w, c)
        if k < first_level:
            level0 = parts[0].view(num_tex, *shapes[0], c) if in_place else None
            acc = _spread(acc, shapes[:k + 1], num_tex, c, level0)
            break
        if h % 2 == 0 and w % 2 == 0 and in_place and _pool_adjoint_kernel(acc, own):
            acc = own  # the 2x2 adjoint added in place by a kernel (channel vectors of 3 or 4)
        elif h % 2 == 0 and w % 2 == 0:
            # Columns are duplicated on the coarse rows first (half a level, into a pooled buffer), so that the
            # broadcast over the row pairs adds whole contiguous rows; the 1/4 is exact (a power of two).
            wide = _repeat_columns(acc, 2).view(num_tex, h // 2, 1, w, c)
            rows = own.view(num_tex, h // 2, 2, w, c)
            acc = rows.add_(wide, alpha=0.25) if in_place else torch.add(rows, wide, alpha=0.25)
            acc = acc.view(num_tex, h, w, c)
        else:
            up = _pool_adjoint(acc, h, w)
            acc = own.add_(up) if in_place else own + up
    if slope is not None:
        # ``acc`` is a fresh buffer or, ``in_place``, the caller's scratch, unless the table has one level (then
        # it views ``v_table``: not in place). (``_spread`` also returns fresh buffers.)
        own_buffer = in_place or len(shapes) > 1
        acc = acc.mul_(slope.reshape(acc.shape)) if own_buffer else acc * slope.reshape(acc.shape)
    return acc.reshape(tex_shape)


#: Warp's scalar types of the float dtypes ``_pool_adjoint_kernel`` takes.
_WARP_SCALARS = {torch.float32: wp.float32, torch.float64: wp.float64}


def _pool_adjoint_kernel(acc: torch.Tensor, own: torch.Tensor) -> bool:
    """Adds the adjoint of the 2x2 average of ``own [Nt, h, w, C]`` (even sizes, contiguous) applied to ``acc
    [Nt, h/2, w/2, C]`` to ``own`` in place by ``texture_kernels.pool_adjoint_add``, when it is compiled for the
    dtype and ``C`` (3 or 4); returns whether it did (else the caller adds with PyTorch). The same sums as
    PyTorch's broadcast add (``own + 0.25 g``, each texel once), about 1.7x faster for a 1024^2 RGB level (the
    columns need no duplicating copies)."""
    nt, h, w, c = own.shape
    vec = tk.POOL_ADJOINT_TYPES.get((_WARP_SCALARS.get(own.dtype), c))
    if vec is None or not (own.is_contiguous() and acc.is_contiguous()):
        return False
    ensure_init()
    coarse = acc.reshape(nt * h // 2, w // 2, c)
    launch_split(tk.pool_adjoint_add, nt * h // 2, [as_warp(coarse, dtype=vec), as_warp(own.view(nt * h, w, c), dtype=vec),
                                                    _WARP_SCALARS[own.dtype](0.25)], own.device, min_chunk=64)
    return True


def _repeat_columns(acc: torch.Tensor, times: int) -> torch.Tensor:
    """``acc [Nt, h, w, C]`` with every texel repeated ``times`` times along its row, ``[Nt, h, w, times, C]``,
    in a pooled buffer. Twice: one strided copy per repeat (faster than ``torch.stack``'s interleaving of
    C-long runs: 1.2 vs 1.6 ms for 512^2 x 3 float32 texels); more often (``_spread``'s blocks, up to the
    texture's width): one ``stack``, not one call per repeat."""
    out = buffer_pool.take((*acc.shape[:3], times, acc.shape[3]), acc.dtype, acc.device)
    if times != 2:
        return torch.stack([acc] * times, 3, out=out)
    out[:, :, :, 0].copy_(acc)
    out[:, :, :, 1].copy_(acc)
    return out


def _spread(acc: torch.Tensor, shapes: Sequence[Tuple[int, int]], num_tex: int, c: int,
            out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The adjoint of pooling level 0 (``shapes[0]``) down to the level after ``shapes[-1]``, whose gradient is
    ``acc [Nt, h, w, C]``, with no gradient of the levels in between: one expanded copy when every size halves
    evenly, else one 2x2 adjoint per level; written into ``out [Nt, H0, W0, C]`` if given."""
    (h0, w0), steps = shapes[0], len(shapes)
    block = 1 << steps
    if h0 % block == 0 and w0 % block == 0:
        # Columns first (``_repeat_columns``: 1/block of the size), then whole rows (a copy with contiguous
        # rows): 1.5-2x faster than expanding both at once, whose innermost runs are C elements long.
        hb = h0 // block
        scaled = acc * (1.0 / (block * block))
        cols = _repeat_columns(scaled, block).view(num_tex, hb, 1, w0, c)
        rows = cols.expand(num_tex, hb, block, w0, c)
        if out is None:
            return rows.contiguous().view(num_tex, h0, w0, c)
        out.view(num_tex, hb, block, w0, c).copy_(rows)
        return out
    for h, w in reversed(shapes):
        acc = _pool_adjoint(acc, h, w)
    if out is None:
        return acc.contiguous()
    return out.copy_(acc)


def _pool_adjoint(acc: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The adjoint of one 2x2 average (ceil mode, odd sizes included) from ``acc [Nt, h', w', C]`` up to a
    ``[Nt, h, w, C]`` level (a channel-last view)."""
    like = acc.new_empty(acc.shape[0], acc.shape[-1], h, w)
    spread = torch.ops.aten.avg_pool2d_backward(acc.permute(0, 3, 1, 2).contiguous(), like, [2, 2], [2, 2],
                                                [0, 0], True, True, None)
    return spread.permute(0, 2, 3, 1)


def pool_level(level: torch.Tensor) -> torch.Tensor:
    """The next coarser level of ``level [..., H, W, C]``: 2x2 box average (odd sizes average what exists)."""
    lead = level.shape[:-3]
    h, w, c = level.shape[-3:]
    if h % 2 == 0 and w % 2 == 0:  # channel-last 2x2 mean of strided views: no layout copies
        q = level.reshape(lead + (h // 2, 2, w // 2, 2, c))
        return (q[..., 0, :, 0, :] + q[..., 0, :, 1, :] + q[..., 1, :, 0, :] + q[..., 1, :, 1, :]) * 0.25
    x = level.reshape(-1, h, w, c).permute(0, 3, 1, 2)
    x = F.avg_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
    return x.permute(0, 2, 3, 1).reshape(lead + x.shape[-2:] + (c,))
