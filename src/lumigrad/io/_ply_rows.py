"""Vectorised parse of PLY elements whose rows have lists of varying length (triangles and quads in one file).

Where each row starts is a chain (a row's length depends on its counts), walked by one compiled Warp thread
(:mod:`lumigrad.kernels.ply_rows`); the values are then gathered with numpy at those starts, with no Python
loop over rows. Both parsers return ``None`` when the rows do not fit the data (truncated, negative or
non-integer counts): the caller's row-by-row parser then reports the error with the row that causes it.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..kernels.ply_rows import ascii_row_starts, binary_row_starts

__all__ = ["ascii_rows", "binary_rows"]


def binary_rows(data: bytes, pos: int, props, order: str, n: int) -> Optional[Tuple[Dict[str, object], int]]:
    """``(values, end position)`` of ``n`` binary rows of ``props`` starting at byte ``pos`` of ``data``, or None.

    ``props``: the element's properties (``name``, numpy ``dtype`` code, ``count_dtype`` set for lists). Values:
    scalars ``[n]`` arrays, lists ``(counts [n] int64, flat items)``."""
    block = np.frombuffer(data, np.uint8, len(data) - pos, pos)
    layout = np.array([[0, np.dtype(p.dtype).itemsize, 0, 0] if p.count_dtype is None else
                       [1, np.dtype(p.count_dtype).itemsize, int(p.count_dtype[0] == "i"), np.dtype(p.dtype).itemsize]
                       for p in props], dtype=np.int32)
    found = binary_row_starts(block, n, layout, order == ">")
    if found is None:
        return None
    offset, end = found
    out: Dict[str, object] = {}
    for prop in props:
        item = np.dtype(order + prop.dtype)
        if prop.count_dtype is None:
            out[prop.name] = _gather(block, offset, item).astype(prop.dtype)
            offset = offset + item.itemsize
            continue
        counts = _gather(block, offset, np.dtype(order + prop.count_dtype)).astype(np.int64)
        first = offset + np.dtype(prop.count_dtype).itemsize
        flat = np.repeat(first - _exclusive_cumsum(counts) * item.itemsize, counts) + \
            np.arange(int(counts.sum()), dtype=np.int64) * item.itemsize
        out[prop.name] = (counts, _gather(block, flat, item).astype(prop.dtype))
        offset = first + counts * item.itemsize
    return out, pos + end


def ascii_rows(values: np.ndarray, props, n: int) -> Optional[Tuple[Dict[str, object], int]]:
    """``(values by property, tokens used)`` of ``n`` ASCII rows of ``props`` in the numbers ``values``
    (float64, every token of the body from the element's first), or None. Values are float64, to be cast."""
    lists = np.array([int(p.count_dtype is not None) for p in props], dtype=np.int32)
    found = ascii_row_starts(np.ascontiguousarray(values, dtype=np.float64), n, lists)
    if found is None:
        return None
    offset, end = found
    out: Dict[str, object] = {}
    for prop in props:
        if prop.count_dtype is None:
            out[prop.name] = values[offset]
            offset = offset + 1
            continue
        counts = values[offset].astype(np.int64)
        flat = np.repeat(offset + 1 - _exclusive_cumsum(counts), counts) + np.arange(int(counts.sum()), dtype=np.int64)
        out[prop.name] = (counts, values[flat])
        offset = offset + 1 + counts
    return out, end


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _gather(block: np.ndarray, offsets: np.ndarray, item: np.dtype) -> np.ndarray:
    """The values of type ``item`` stored at byte ``offsets`` of ``block`` (unaligned): read through one view of
    the bytes per alignment ``offset % itemsize``, without a per-byte index table."""
    out = np.empty(len(offsets), item)
    if len(offsets) == 0:
        return out
    size = item.itemsize
    phase = offsets % size
    for r in range(size):
        chosen = phase == r
        if not chosen.any():
            continue
        view = np.frombuffer(block, item, (len(block) - r) // size, r)
        out[chosen] = view[(offsets[chosen] - r) // size]
    return out
