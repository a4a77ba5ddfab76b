"""Fan triangulation of polygons stored flat (``counts`` + concatenated corners), without a loop over faces."""

from __future__ import annotations

import numpy as np

__all__ = ["fan_triangulate"]


def fan_triangulate(counts: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Triangles ``[T, 3]`` of the polygons ``counts [N]`` (each >= 3) whose corners are ``flat [sum counts]``.

    Polygon ``(c0, c1, ..., ck)`` gives ``(c0, c1, c2), (c0, c2, c3), ...``; a triangle is kept as it is.
    Example: ``counts = [4]``, ``flat = [0, 1, 2, 3]`` gives ``[[0, 1, 2], [0, 2, 3]]``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and bool((counts == 3).all()):
        return np.ascontiguousarray(flat.reshape(-1, 3))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    ntri = counts - 2
    poly = np.repeat(np.arange(counts.size), ntri)
    k = np.arange(poly.size) - np.repeat(np.cumsum(ntri) - ntri, ntri) + 1
    base = starts[poly]
    return np.stack([flat[base], flat[base + k], flat[base + k + 1]], -1).reshape(-1, 3)
