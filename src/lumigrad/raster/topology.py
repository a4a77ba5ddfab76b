"""Mesh connectivity needed by the raster ops (cached per faces tensor) and by the path tracer's edge samplers
(welded by position: :func:`welded_edge_adjacency`)."""

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


def welded_faces(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``faces`` re-indexed so that vertices at exactly the same position are one: each corner points to the
    lowest-numbered vertex at its position (``[F, 3]`` int64).

    Meshes split their vertices where a normal, uv or material changes (a Mitsuba ``cube``'s 24 corners, glTF's
    seams): such an edge is two index pairs at one place. Welded, it is one edge with a face on either side.
    """
    v = verts.detach()
    _, inverse = torch.unique(v, dim=0, return_inverse=True)
    index = torch.arange(v.shape[0], device=v.device)
    first = torch.full((int(inverse.max()) + 1 if v.shape[0] else 0,), v.shape[0], dtype=torch.long, device=v.device)
    first = first.scatter_reduce(0, inverse, index, reduce="amin")
    return first[inverse][faces.long()]


def welded_edge_adjacency(verts: torch.Tensor, faces: torch.Tensor):
    """``(across [F, 3] int64, split [F, 3] bool)``: :func:`edge_adjacency` of the :func:`welded_faces` (the face
    across each edge where the geometry continues, -1 boundary, -2 non-manifold) and where that edge is a seam
    of split vertices (the two faces share its position but not its vertex indices: the shading may jump)."""
    welded = welded_faces(verts, faces)
    across = edge_adjacency(welded, verts.shape[0]).long()
    split = (across >= 0) & (edge_adjacency(faces, verts.shape[0]) < 0)
    return across, split
