"""Where each row of a PLY element starts when its lists vary in length (triangles and quads in one file).

A row's length depends on its list counts, so row ``k + 1``'s start depends on row ``k``'s: a chain that no
vectorised numpy expression follows cheaply. One Warp thread walks it instead (compiled, so about a
nanosecond per property rather than the microsecond of a Python loop); the values are then gathered with
numpy at the starts found (:mod:`lumigrad.io._ply_rows`).

Property layout, one int32 row per property: ``kind`` (0 scalar, 1 list), ``size`` (bytes of a scalar, or of
the list's count), ``signed`` (the count type is signed), ``item`` (bytes of one list item).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import warp as wp

from ._runtime import as_warp, ensure_init, launch

__all__ = ["ascii_row_starts", "binary_row_starts"]


@wp.func
def _read_count(data: wp.array(dtype=wp.uint8), pos: wp.int64, width: int, signed: int, big_endian: int):
    value = wp.int64(0)
    for b in range(width):
        byte = wp.int64(data[pos + wp.int64(b)])
        shift = b
        if big_endian != 0:
            shift = width - 1 - b
        value = value + byte * (wp.int64(1) << wp.int64(8 * shift))
    if signed != 0 and value >= (wp.int64(1) << wp.int64(8 * width - 1)):
        value = value - (wp.int64(1) << wp.int64(8 * width))
    return value


@wp.kernel
def _binary_starts(data: wp.array(dtype=wp.uint8), start: wp.int64, rows: int, layout: wp.array2d(dtype=wp.int32),
                   big_endian: int, starts: wp.array(dtype=wp.int64), status: wp.array(dtype=wp.int64)):
    size = wp.int64(data.shape[0])
    pos = start
    for row in range(rows):
        starts[row] = pos
        for k in range(layout.shape[0]):
            width = wp.int64(layout[k, 1])
            if layout[k, 0] == 0:
                pos = pos + width
            else:
                if pos + width > size:
                    status[0] = wp.int64(row + 1)
                    return
                count = _read_count(data, pos, layout[k, 1], layout[k, 2], big_endian)
                if count < wp.int64(0):
                    status[0] = wp.int64(row + 1)
                    return
                pos = pos + width + count * wp.int64(layout[k, 3])
        if pos > size:
            status[0] = wp.int64(row + 1)
            return
    status[1] = pos


@wp.kernel
def _ascii_starts(values: wp.array(dtype=wp.float64), rows: int, lists: wp.array(dtype=wp.int32),
                  starts: wp.array(dtype=wp.int64), status: wp.array(dtype=wp.int64)):
    size = wp.int64(values.shape[0])
    pos = wp.int64(0)
    for row in range(rows):
        starts[row] = pos
        for k in range(lists.shape[0]):
            if lists[k] == 0:
                pos = pos + wp.int64(1)
            else:
                if pos >= size:
                    status[0] = wp.int64(row + 1)
                    return
                c = values[pos]
                if not (c >= 0.0 and c <= 2.0e9 and wp.floor(c) == c):
                    status[0] = wp.int64(row + 1)
                    return
                pos = pos + wp.int64(1) + wp.int64(c)
        if pos > size:
            status[0] = wp.int64(row + 1)
            return
    status[1] = pos


def binary_row_starts(block: np.ndarray, rows: int, layout: np.ndarray, big_endian: bool):
    """``(starts [rows] int64, end)`` of ``rows`` rows in the bytes ``block`` (uint8), or ``None`` when a row is
    truncated or has a negative count. ``layout``: ``[P, 4]`` int32, see the module docstring."""
    ensure_init()
    with warnings.catch_warnings():  # a read-only view of the file's bytes: the kernel only reads it
        warnings.simplefilter("ignore", UserWarning)
        data = torch.from_numpy(block)
    starts = torch.zeros(rows, dtype=torch.int64)
    status = torch.zeros(2, dtype=torch.int64)
    launch(_binary_starts, 1, [as_warp(data, wp.uint8), 0, int(rows), as_warp(torch.from_numpy(layout)),
                               int(bool(big_endian)), as_warp(starts), as_warp(status)], torch.device("cpu"))
    return None if int(status[0]) else (starts.numpy(), int(status[1]))


def ascii_row_starts(values: np.ndarray, rows: int, lists: np.ndarray):
    """``(starts [rows] int64, end)`` of ``rows`` rows in the numbers ``values`` (float64), or ``None`` when a
    row is truncated or a count is not a non-negative integer. ``lists``: ``[P]`` int32, 1 for list properties."""
    ensure_init()
    starts = torch.zeros(rows, dtype=torch.int64)
    status = torch.zeros(2, dtype=torch.int64)
    launch(_ascii_starts, 1, [as_warp(torch.from_numpy(values)), int(rows), as_warp(torch.from_numpy(lists)),
                              as_warp(starts), as_warp(status)], torch.device("cpu"))
    return None if int(status[0]) else (starts.numpy(), int(status[1]))
