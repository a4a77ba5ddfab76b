"""Mesh connectivity needed by the raster ops (cached per faces tensor) and by the path tracer's edge samplers
(found by position: :func:`welded_edges`)."""

from __future__ import annotations

import weakref
from typing import NamedTuple

import torch

_cache: dict = {}  # id(faces) -> (weakref to faces, version, num_verts, adjacency)


def _adjacency(faces: torch.Tensor, num_verts: int) -> torch.Tensor:
    """:func:`edge_adjacency` of int64 ``faces``, not remembered: ``[F, 3]`` int64."""
    f = faces
    F = f.shape[0]
    a, b = f, f.roll(-1, dims=1)
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
    return result.view(F, 3)


def edge_adjacency(faces: torch.Tensor, num_verts: int) -> torch.Tensor:
    """Return ``[F, 3]`` int32: the face across edge ``i`` (from corner i to corner i+1) of each face.

    ``-1`` marks a boundary edge, ``-2`` a non-manifold edge (shared by more than two faces); the antialias
    op treats both as silhouette candidates. Cached per tensor object (invalidated by in-place edits).
    """
    hit = _cache.get(id(faces))
    if hit is not None and hit[0]() is faces and hit[1] == faces._version and hit[2] == num_verts:
        return hit[3]
    out = _adjacency(faces.long(), num_verts).to(torch.int32).contiguous()
    if len(_cache) >= 16:  # drop the entries of freed tables, then the oldest
        for stale in [k for k, e in _cache.items() if e[0]() is None]:
            del _cache[stale]
        while len(_cache) >= 16:
            del _cache[next(iter(_cache))]
    _cache[id(faces)] = (weakref.ref(faces), faces._version, num_verts, out)
    return out


class WeldedEdges(NamedTuple):
    """Every edge of a mesh once, by position (:func:`welded_edges`), ``[E]`` each: ``a``, ``b`` the own face's
    vertex indices (corners ``i`` and ``i + 1``), ``own`` that face, ``other`` the face across (-1: a boundary or
    a non-manifold edge), ``seam`` where the two faces share the edge's position but not its vertex indices."""
    a: torch.Tensor
    b: torch.Tensor
    own: torch.Tensor
    other: torch.Tensor
    seam: torch.Tensor


_weld_cache: dict = {}  # id(verts) -> (weakref to verts, version, faces weakref, faces version, groups, edges)


def _first_of_groups(inverse: torch.Tensor, groups: int) -> torch.Tensor:
    """``[groups]`` int64: for each group the lowest index ``i`` with ``inverse[i]`` equal to it (the inverse of
    a ``torch.unique``)."""
    first = torch.full((groups,), inverse.numel(), dtype=torch.long, device=inverse.device)
    return first.scatter_reduce(0, inverse, torch.arange(inverse.numel(), device=inverse.device), reduce="amin")


def position_groups(verts: torch.Tensor) -> torch.Tensor:
    """``[V]`` int64: for each vertex the lowest-numbered vertex at exactly its position (itself where it is the
    only one). Meshes split their vertices where a normal, uv or material changes (a Mitsuba ``cube``'s 24
    corners, glTF's seams): such an edge is two index pairs at one place; by these groups it is one."""
    v = verts.detach() + 0.0  # (-0.0 is 0.0)
    if v.shape[0] == 0:
        return torch.arange(0, device=v.device)
    uniq, inverse = torch.unique(v, dim=0, return_inverse=True)
    return _first_of_groups(inverse, uniq.shape[0])[inverse]


def welded_faces(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``faces`` (``[F, 3]`` int64) with each corner re-indexed to the lowest-numbered vertex at its position
    (:func:`position_groups`)."""
    return _welded(verts, faces)[0][faces.long()]


def welded_edges(verts: torch.Tensor, faces: torch.Tensor) -> WeldedEdges:
    """Every edge of ``faces`` over ``verts`` once, found by position (:class:`WeldedEdges`), so that a seam of
    split vertices is one edge between its two faces and an edge of three or more faces (objects that touch)
    is listed once, not once per face. Remembered for the last few ``(verts, faces)`` tensors (unchanged
    versions): the path tracer's edge samplers ask for it per view and per boundary term."""
    return _welded(verts, faces)[1]


def welded_positions(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``verts`` itself in value, whose gradient is shared equally by the copies of each position (split
    vertices): an edge sampler differentiating a seam's points through one face's copies would otherwise give
    the whole boundary term to those copies and none to the others, which an optimiser then pulls apart."""
    group = _welded(verts, faces)[0]
    total = torch.zeros_like(verts).index_add(0, group, verts)
    count = torch.zeros_like(verts[:, 0]).index_add(0, group, torch.ones_like(verts[:, 0]))
    mean = (total / count.clamp_min(1)[:, None])[group]
    return verts.detach() + (mean - mean.detach())


def _welded(verts: torch.Tensor, faces: torch.Tensor):
    """``(position_groups(verts), welded_edges)``, remembered per ``(verts, faces)`` version."""
    hit = _weld_cache.get(id(verts))
    if (hit is not None and hit[0]() is verts and hit[1] == verts._version and hit[2]() is faces
            and hit[3] == faces._version):
        return hit[4], hit[5]
    group = position_groups(verts)
    f = faces.long()
    welded = group[f]
    V, F = verts.shape[0], faces.shape[0]
    across = _adjacency(welded, V)
    seam = (across >= 0) & (_adjacency(f, V) < 0)
    own = torch.arange(F, device=faces.device)[:, None].expand(F, 3)
    once = (across == -1) | (across > own)
    shared = (across == -2).reshape(-1)
    if bool(shared.any()):  # an edge of three or more faces: the first face's listing
        rows = shared.nonzero()[:, 0]
        w = welded.reshape(-1)[rows]
        w_next = welded.roll(-1, dims=1).reshape(-1)[rows]
        key = torch.minimum(w, w_next) * V + torch.maximum(w, w_next)
        uniq, inverse = torch.unique(key, return_inverse=True)
        keep = torch.zeros(3 * F, dtype=torch.bool, device=faces.device)
        keep[rows[_first_of_groups(inverse, uniq.numel())]] = True
        once = once | keep.reshape(F, 3)
    edges = WeldedEdges(f[once], f.roll(-1, dims=1)[once], own[once], across.clamp(min=-1)[once], seam[once])
    if len(_weld_cache) >= 4:
        for stale in [k for k, e in _weld_cache.items() if e[0]() is None or e[2]() is None]:
            del _weld_cache[stale]
        while len(_weld_cache) >= 4:
            del _weld_cache[next(iter(_weld_cache))]
    _weld_cache[id(verts)] = (weakref.ref(verts), verts._version, weakref.ref(faces), faces._version, group, edges)
    return group, edges
