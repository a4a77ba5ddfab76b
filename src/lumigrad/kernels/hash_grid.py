"""Torch-facing wrappers of the hash-encoding kernels (float32, CPU and CUDA).

The autograd unit lives in :mod:`lumigrad.volume.fields.hash_grid`, which calls these for float32 tensors and
keeps a pure-PyTorch path as the float64 twin. Inputs are trusted: unit-cube points ``[N, 3]`` clamped to
``[0, 1]``, a contiguous table ``[R, F]`` and the level layout as int32 tensors on the table's device.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import hash_grid_kernels as hk
from ._runtime import as_warp, ensure_init, launch, launch_split


def layout_tensors(layout, device: torch.device) -> Tuple[torch.Tensor, ...]:
    """``(res, row_offset, rows, dense)`` int32 tensors of a level layout ``[(res, offset, rows, dense), ...]``."""
    cols = list(zip(*layout))
    return tuple(torch.tensor([int(v) for v in col], dtype=torch.int32, device=device) for col in cols)


def hash_encode_forward(unit: torch.Tensor, table: torch.Tensor, levels: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Features ``[N, L * F]`` of ``unit [N, 3]`` (float32)."""
    ensure_init()
    n, L, F = unit.shape[0], levels[0].shape[0], table.shape[1]
    out = torch.zeros(n, L * F, dtype=torch.float32, device=unit.device)
    launch_split(hk.hash_encode_fwd, n, [as_warp(unit), as_warp(table), *[as_warp(t) for t in levels],
                                         as_warp(out)], unit.device, min_chunk=2048)
    return out


def hash_encode_backward(unit: torch.Tensor, table: torch.Tensor, levels: Tuple[torch.Tensor, ...],
                         v_out: torch.Tensor, need_table: bool, need_unit: bool
                         ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Return ``(v_table [R, F] dense, touched [R] bool, v_unit [N, 3])`` (``None`` where not needed)."""
    ensure_init()
    v_out = v_out.contiguous()
    wl = [as_warp(t) for t in levels]
    v_table = touched = v_unit = None
    if need_table:
        v_table = torch.zeros_like(table)
        touched = torch.zeros(table.shape[0], dtype=torch.uint8, device=table.device)
        launch(hk.hash_encode_bwd_table, unit.shape[0], [as_warp(unit), as_warp(v_out), *wl, as_warp(v_table),
                                                          as_warp(touched)], unit.device)
        touched = touched.bool()
    if need_unit:
        v_unit = torch.empty_like(unit)
        launch_split(hk.hash_encode_bwd_points, unit.shape[0], [as_warp(unit), as_warp(table), as_warp(v_out), *wl,
                                                                as_warp(v_unit)], unit.device, min_chunk=2048)
    return v_table, touched, v_unit
