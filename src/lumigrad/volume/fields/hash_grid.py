"""Multiresolution hash encoding (instant-ngp, Müller et al. 2022) with row-sparse gradients.

**Levels.** Level ``l`` of ``L`` has ``N_l = floor(N_min * b^l)`` cells per axis, ``b = exp((ln N_max - ln N_min) /
(L - 1))`` (``b = 1`` for one level), over the box's unit cube; its ``(N_l + 1)^3`` vertices each own ``F``
features. A level whose vertices fit in ``T`` rows is stored densely (row ``x + (N_l + 1) (y + (N_l + 1) z)``,
no collisions); finer levels share ``T`` rows through the spatial hash of instant-ngp::

    h(x, y, z) = ((x * 1) xor (y * 2654435761) xor (z * 805459861)) mod 2^32 mod T

All levels live in one table ``[R, F]`` (``R = sum_l rows_l``), level ``l`` from row ``offsets[l]``. A point's
feature at level ``l`` is the trilinear interpolation of its cell's 8 vertex rows; the levels are concatenated
into ``[..., L * F]`` (level-major).

**Sparse gradients.** The table's gradient is a ``torch.sparse_coo_tensor`` holding only the rows the batch
touched (``sparse=True``, the default; ``sparse=False`` gives a dense tensor), so ``torch.optim.SparseAdam``
updates only those rows and their moments (lazy Adam): the rows no sample touched stay bit-identical.

**Implementation.** Two paths with the same maths, both recomputing the corner indices and weights in the
backward (nothing but the inputs is saved):

* Warp kernels (:mod:`lumigrad.kernels.hash_grid`, float32, CPU and CUDA): one thread per point for the forward
  and the point gradient, one launch with atomic adds for the table gradient (which also flags the touched
  rows). ``"auto"`` uses them on CUDA.
* pure PyTorch, vectorised over points with one loop over levels: any dtype (float64 is the gradcheck twin).
  ``"auto"`` uses it on the CPU, where the encoding is bound by random reads of the table and the kernels were
  no faster: at 262,144 points with the instant-ngp settings (L = 16, T = 2^19, 6.1 M rows) the forward took
  1.7-1.8 s of CPU time with Warp and 1.2-1.3 s with PyTorch (2-core EPYC, load average 8).

The CUDA path of the kernels has not been run here (no GPU); the tests check Warp against PyTorch on the CPU.
"""

from __future__ import annotations

import math
from typing import List, Literal, Tuple

import torch
from torch import nn

from ... import threads
from ..._checks import check_choice, check_number, check_positive_int, check_tensor
from ...kernels import hash_grid as hash_kernels
from .aabb import AabbLike, as_aabb, to_unit_cube

__all__ = ["HashGridEncoding", "hash_grid_encode", "hash_level_layout"]

PRIMES = (1, 2654435761, 805459861)


def hash_level_layout(num_levels: int, table_size: int, base_resolution: int,
                      max_resolution: int) -> List[Tuple[int, int, int, bool]]:
    """Return ``(resolution N_l, row offset, rows, dense)`` for every level (formulas: module doc).

    Args:
        num_levels: ``L >= 1``.
        table_size: ``T >= 1``, rows per hashed level (a power of two is usual, not required).
        base_resolution: ``N_min >= 1`` cells per axis of the coarsest level.
        max_resolution: ``N_max >= N_min`` cells per axis of the finest level.

    Returns:
        list of ``L`` tuples.

    **Differentiability:** not applicable (integers).

    Example: two levels of 1 and 3 cells; both fit in 64 rows, so both are dense (8 and 64 rows)::

        >>> hash_level_layout(2, 64, 1, 3)
        [(1, 0, 8, True), (3, 8, 64, True)]
    """
    num_levels = check_positive_int(num_levels, "num_levels")
    table_size = check_positive_int(table_size, "table_size")
    base_resolution = check_positive_int(base_resolution, "base_resolution")
    max_resolution = check_positive_int(max_resolution, "max_resolution")
    if max_resolution < base_resolution:
        raise ValueError(f"max_resolution must be >= base_resolution ({base_resolution}); got {max_resolution}")
    growth = 1.0 if num_levels == 1 else math.exp(
        (math.log(max_resolution) - math.log(base_resolution)) / (num_levels - 1))
    layout, offset = [], 0
    for level in range(num_levels):
        res = int(math.floor(base_resolution * growth ** level + 1e-9))
        vertices = (res + 1) ** 3
        dense = vertices <= table_size
        rows = vertices if dense else table_size
        layout.append((res, offset, rows, dense))
        offset += rows
    return layout


def hash_grid_encode(unit: torch.Tensor, table: torch.Tensor, layout, sparse: bool = True,
                     implementation: Literal["auto", "warp", "torch"] = "auto") -> torch.Tensor:
    """Encode unit-cube points with a hash-grid ``table`` (functional form of :class:`HashGridEncoding`).

    Args:
        unit: points in the unit cube, ``[N, 3]``, float, finite (clamped to ``[0, 1]`` here).
        table: ``[R, F]`` features of all levels, same dtype and device as ``unit``.
        layout: :func:`hash_level_layout` for this table (``R`` must equal the last offset + rows).
        sparse: return the table's gradient as a sparse COO tensor of the touched rows.
        implementation: ``"warp"`` (float32 only), ``"torch"``, or ``"auto"``: Warp for float32 on CUDA, else
            torch (module doc).

    Returns:
        ``[N, L * F]`` features, level-major.

    **Differentiability:** linear in ``table`` (sparse gradient: module doc); piecewise trilinear in ``unit``
    (continuous, kinked on every level's cell faces; the gradient inside a cell is exact, on a face it is the
    one-sided value of the cell ``floor`` picks). Outside ``[0, 1]`` the clamp makes the gradient zero.
    Double backward is not supported.
    """
    check_choice(implementation, "implementation", ("auto", "warp", "torch"))
    check_tensor(unit, "unit", trailing=(3,), max_dims=2, floating=True, finite=True)
    check_tensor(table, "table", trailing=(None, None), max_dims=2, floating=True, device=unit.device)
    if table.dtype != unit.dtype:
        raise TypeError(f"table and unit must have one dtype; got {table.dtype} and {unit.dtype}")
    layout = tuple(layout)
    if not layout or layout[-1][1] + layout[-1][2] != table.shape[0]:
        raise ValueError(f"table has {table.shape[0]} rows but layout describes "
                         f"{layout[-1][1] + layout[-1][2] if layout else 0}; pass the layout of this table")
    return hash_grid_encode_unchecked(unit, table, layout, sparse, implementation)


def hash_grid_encode_unchecked(unit: torch.Tensor, table: torch.Tensor, layout, sparse: bool = True,
                               implementation: str = "auto") -> torch.Tensor:
    """:func:`hash_grid_encode` without input checks (callers that validated their inputs)."""
    is_f32 = unit.dtype == torch.float32 and table.dtype == torch.float32
    if implementation == "warp" and not is_f32:
        raise TypeError(f"implementation 'warp' needs float32 unit and table; got {unit.dtype} and {table.dtype}")
    use_kernel = implementation == "warp" or (implementation == "auto" and is_f32 and unit.device.type == "cuda")
    # On the CPU the Warp forward is ~4x faster than the PyTorch gathers (200k points, 16 levels: 0.14 vs 0.61 s)
    # but its atomic backward is slower than the bincount one (0.92 vs 0.70 s): "auto" mixes the two there.
    kernel_forward = use_kernel or (implementation == "auto" and is_f32 and unit.device.type == "cpu")
    if unit.device.type == "cpu":
        threads.prepare_cpu()  # PyTorch's thread pool as lumigrad sets it up for its CPU kernels (lumigrad.threads)
    return _HashGridFn.apply(unit.clamp(0.0, 1.0), table, tuple(layout), bool(sparse), (kernel_forward, use_kernel))


def _level_corners(unit: torch.Tensor, res: int, dense: bool, rows: int):
    """Row indices ``[N, 8]`` (within the level, corner ``c`` at offset ``(c & 1, c >> 1 & 1, c >> 2)``) and
    fractions ``[N, 3]`` of one level. The index is separable per axis, so it is built from ``[N, 2]`` parts."""
    pos = unit * res
    cell = pos.floor().clamp(0, res - 1)
    frac = pos - cell
    c = cell.long()
    n = unit.shape[0]
    lo_hi = [torch.stack([c[:, a], c[:, a] + 1], dim=1) for a in range(3)]  # [N, 2] per axis
    if dense:
        side = res + 1
        x, y, z = lo_hi[0], lo_hi[1] * side, lo_hi[2] * (side * side)
        idx = (z[:, :, None, None] + y[:, None, :, None] + x[:, None, None, :]).reshape(n, 8)
    else:
        x, y, z = lo_hi[0] * PRIMES[0], lo_hi[1] * PRIMES[1], lo_hi[2] * PRIMES[2]
        h = (z[:, :, None, None] ^ y[:, None, :, None] ^ x[:, None, None, :]).reshape(n, 8)
        idx = (h & (rows - 1)) if rows & (rows - 1) == 0 else (h & 0xFFFFFFFF) % rows
    return idx, frac


def _gather_rows(level: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``level[idx]`` for ``idx [N, 8]`` as ``[N, 8, F]`` (index_select: faster than advanced indexing on CPU)."""
    return level.index_select(0, idx.reshape(-1)).view(*idx.shape, level.shape[1])


def _axis_weights(frac: torch.Tensor):
    """Per-axis linear weights ``[(1 - f, f)]``, three ``[N, 2]`` tensors."""
    return [torch.stack([1 - frac[:, a], frac[:, a]], dim=1) for a in range(3)]


def _outer8(wx: torch.Tensor, wy: torch.Tensor, wz: torch.Tensor) -> torch.Tensor:
    """Corner products ``[N, 8]`` of per-axis ``[N, 2]`` factors, corner ``c = x + 2 y + 4 z`` (as the indices)."""
    return (wz[:, :, None, None] * wy[:, None, :, None] * wx[:, None, None, :]).reshape(wx.shape[0], 8)


def _corner_weights(frac: torch.Tensor) -> torch.Tensor:
    return _outer8(*_axis_weights(frac))


def _scatter_rows(idx: torch.Tensor, values: torch.Tensor, rows: int) -> torch.Tensor:
    """``out[r] = sum of values[k] with idx[k] == r``: ``[rows, F]`` from ``idx [M]`` and ``values [M, F]``.

    ``bincount`` per feature column: one sequential pass each, 3-4x faster than ``index_add_`` on the CPU."""
    return torch.stack([torch.bincount(idx, values[:, f].contiguous(), minlength=rows)
                        for f in range(values.shape[1])], dim=1)


class _HashGridFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, unit, table, layout, sparse, kernels):
        kernel_forward, use_kernel = kernels  # the Warp kernel for the forward pass, for the backward pass
        ctx.layout, ctx.sparse, ctx.use_kernel = layout, sparse, use_kernel
        if kernel_forward:
            unit, table = unit.contiguous(), table.contiguous()
            ctx.save_for_backward(unit, table)
            return hash_kernels.hash_encode_forward(unit, table, hash_kernels.layout_tensors(layout, unit.device))
        feats = []
        for res, offset, rows, dense in layout:
            idx, frac = _level_corners(unit, res, dense, rows)
            w = _corner_weights(frac)
            level = table[offset:offset + rows]
            feats.append(torch.bmm(w[:, None, :], _gather_rows(level, idx))[:, 0])
        ctx.save_for_backward(unit, table)
        return torch.cat(feats, dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_out):
        unit, table = ctx.saved_tensors
        F = table.shape[1]
        need_unit, need_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if ctx.use_kernel:
            return _kernel_backward(ctx, unit, table, v_out, need_table, need_unit)
        v_unit = torch.zeros_like(unit) if need_unit else None
        rows_list, values_list = [], []
        v_table_dense = torch.zeros_like(table) if (need_table and not ctx.sparse) else None
        sign = torch.tensor([-1.0, 1.0], dtype=unit.dtype, device=unit.device).expand(unit.shape[0], 2)
        for k, (res, offset, rows, dense) in enumerate(ctx.layout):
            v_level = v_out[:, k * F:(k + 1) * F]
            idx, frac = _level_corners(unit, res, dense, rows)
            wx, wy, wz = _axis_weights(frac)
            if need_table:
                w = _outer8(wx, wy, wz)
                flat = idx.reshape(-1)
                level_grad = _scatter_rows(flat, (w[..., None] * v_level[:, None, :]).reshape(-1, F), rows)
                if ctx.sparse:
                    r = (torch.bincount(flat, minlength=rows) > 0).nonzero().squeeze(1)
                    rows_list.append(r + offset)
                    values_list.append(level_grad[r])
                else:
                    v_table_dense[offset:offset + rows] = level_grad
            if need_unit:
                level = table[offset:offset + rows]
                tv = torch.bmm(_gather_rows(level, idx), v_level[:, :, None])[..., 0]  # [N, 8] = <table row, v_out>
                # d w_c / d frac_a: the per-axis factor of axis a replaced by its derivative (-1, +1)
                v_unit[:, 0] += res * (tv * _outer8(sign, wy, wz)).sum(1)
                v_unit[:, 1] += res * (tv * _outer8(wx, sign, wz)).sum(1)
                v_unit[:, 2] += res * (tv * _outer8(wx, wy, sign)).sum(1)
        v_table = None
        if need_table:
            if ctx.sparse:
                rows_all = torch.cat(rows_list)
                v_table = torch.sparse_coo_tensor(rows_all[None], torch.cat(values_list), table.shape,
                                                  check_invariants=False, is_coalesced=True)
            else:
                v_table = v_table_dense
        return v_unit, v_table, None, None, None


def _kernel_backward(ctx, unit, table, v_out, need_table, need_unit):
    levels = hash_kernels.layout_tensors(ctx.layout, unit.device)
    v_table, touched, v_unit = hash_kernels.hash_encode_backward(unit, table, levels, v_out.float(), need_table,
                                                                 need_unit)
    if need_table and ctx.sparse:
        rows = touched.nonzero().squeeze(1)
        v_table = torch.sparse_coo_tensor(rows[None], v_table[rows], table.shape, check_invariants=False,
                                          is_coalesced=True)
    return v_unit, v_table, None, None, None


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding of world points over a box (instant-ngp; formulas: module doc).

    Args:
        aabb: the box, ``[2, 3]`` or ``[6]`` (world units); points outside are clamped onto it.
        num_levels: ``L`` (16 in instant-ngp).
        features_per_level: ``F`` (2 in instant-ngp).
        log2_table_size: ``log2 T`` (19 in instant-ngp), ``T = 2^log2_table_size`` rows per hashed level, 1..30.
        base_resolution: ``N_min`` cells per axis of the coarsest level (16 in instant-ngp).
        max_resolution: ``N_max`` cells per axis of the finest level (2048 in instant-ngp's NeRF).
        init_scale: table entries start uniform in ``[-init_scale, init_scale]`` (``1e-4`` as instant-ngp).
        sparse: the table's gradient is a sparse COO tensor of the touched rows (for
            ``torch.optim.SparseAdam``); ``False`` gives a dense gradient (any optimiser).
        implementation: ``"auto"`` (Warp kernels for a float32 table on CUDA, PyTorch otherwise), ``"warp"``
            or ``"torch"`` (see :func:`hash_grid_encode`).

    Attributes:
        table: ``nn.Parameter [R, F]``; :attr:`layout` gives each level's ``(N_l, offset, rows, dense)``.
        output_dim: ``L * F``.

    **Differentiability:** see :func:`hash_grid_encode`: linear in :attr:`table` with a row-sparse gradient,
    piecewise trilinear in the points (through the box map).

    Example::

        >>> enc = HashGridEncoding([-1, -1, -1, 1, 1, 1], num_levels=4, log2_table_size=12, max_resolution=64)
        >>> enc(torch.zeros(10, 3)).shape
        torch.Size([10, 8])
    """

    def __init__(self, aabb: AabbLike, *, num_levels: int = 16, features_per_level: int = 2,
                 log2_table_size: int = 19, base_resolution: int = 16, max_resolution: int = 2048,
                 init_scale: float = 1e-4, sparse: bool = True,
                 implementation: Literal["auto", "warp", "torch"] = "auto"):
        super().__init__()
        self.implementation = check_choice(implementation, "implementation", ("auto", "warp", "torch"))
        self.register_buffer("aabb", as_aabb(aabb).float())
        log2_table_size = check_positive_int(log2_table_size, "log2_table_size")
        if log2_table_size > 30:
            raise ValueError(f"log2_table_size must be in [1, 30]; got {log2_table_size}")
        self.features_per_level = check_positive_int(features_per_level, "features_per_level")
        self.layout = hash_level_layout(num_levels, 2 ** log2_table_size, base_resolution, max_resolution)
        init_scale = check_number(init_scale, "init_scale", lo=0.0)
        self.sparse = bool(sparse)
        rows = self.layout[-1][1] + self.layout[-1][2]
        self.table = nn.Parameter((torch.rand(rows, self.features_per_level) * 2 - 1) * init_scale)

    @property
    def output_dim(self) -> int:
        """Feature width ``L * F``."""
        return len(self.layout) * self.features_per_level

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Encode world ``points [..., 3]`` (finite) into ``[..., L * F]`` features (dtype of the table)."""
        check_tensor(points, "points", trailing=(3,), floating=True, finite=True, device=self.table.device)
        return self.encode_unchecked(points)

    def encode_unchecked(self, points: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without input checks (for callers that validated ``points`` already)."""
        batch = points.shape[:-1]
        unit = to_unit_cube(points.reshape(-1, 3).to(self.table.dtype), self.aabb)
        out = hash_grid_encode_unchecked(unit, self.table, self.layout, self.sparse, self.implementation)
        return out.reshape(*batch, self.output_dim)

    def extra_repr(self) -> str:
        res = [lvl[0] for lvl in self.layout]
        dense = sum(lvl[3] for lvl in self.layout)
        return (f"levels={len(self.layout)}, features_per_level={self.features_per_level}, "
                f"resolutions={res[0]}..{res[-1]}, dense_levels={dense}, rows={self.table.shape[0]}")
