"""Mesh connectivity needed by the raster ops (cached per faces tensor)."""

from __future__ import annotations

import weakref

import torch

_cache: dict = {}  # id(faces) -> (weakref to faces, version, num_verts, adjacency)


def edge_adjacency(faces: torch.Tensor, num_verts: int) -> torch.Tensor:
    """Return ``[F, 3]`` int32: the face across edge ``i`` (from corner i to corner i+1) of each face.

    ``-1`` marks a boundary edge, ``-2`` a non-manifold edge (shared by more than two faces); the antialias
    op treats both as silhouette candidates. Cached per tensor object (invalidated by in-place edits).
    """
    hit = _cache.get(id(faces))
    if hit is not None and hit[0]() is faces and hit[1] == faces._version and hit[2] == num_verts:
        return hit[3]
    f = faces.long()
    F = f.shape[0]
    a = f
    b = f.roll(-1, dims=1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    keys = (lo * num_verts + hi).reshape(-1)  # [3F], entry 3 * face + edge
    order = torch.argsort(keys, stable=True)
    sorted_keys = keys[order]
    uniq, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    group_start = torch.cumsum(counts, 0) - counts
    group_of = torch.repeat_interleave(torch.arange(uniq.numel(), device=faces.device), counts)
    count_of = counts[group_of]
    first = order[group_start[group_of]]
    second = order[(group_start + 1).clamp(max=keys.numel() - 1)[group_of]]
    partner = torch.where(first == order, second, first)  # the other entry of a pair
    result = torch.full((3 * F,), -1, dtype=torch.int64, device=faces.device)
    result[order] = torch.where(count_of == 2, partner // 3, torch.where(count_of > 2, -2, -1))
    out = result.view(F, 3).to(torch.int32).contiguous()
    if len(_cache) >= 16:  # drop the entries of freed tables, then the oldest
        for stale in [k for k, e in _cache.items() if e[0]() is None]:
            del _cache[stale]
        while len(_cache) >= 16:
            del _cache[next(iter(_cache))]
    _cache[id(faces)] = (weakref.ref(faces), faces._version, num_verts, out)
    return out
