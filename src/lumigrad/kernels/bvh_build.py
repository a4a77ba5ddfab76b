"""Build and refit lumigrad's flattened binary BVH over triangles (traversed by :mod:`.bvh_traverse`).

The build is top-down binned SAH (surface area heuristic; Wald 2007, "On fast construction of SAH-based
bounding volume hierarchies"): a node's triangles are binned (``BINS``) by centroid along the centroids'
longest axis, and the boundary that minimises the children's area-weighted triangle counts is taken, unless a
leaf (at most ``leaf_size`` triangles) is expected to be cheaper. Where no boundary separates the centroids, or
deep enough that SAH splits could outgrow the traversal stack, the range is split at its median. It runs on
the host in PyTorch, one vectorised step for all the nodes of a tree level, so it costs a few sorts and
scatters of ``F`` elements per level.

Layout (what :class:`.bvh_traverse.FlatBVH` reads): nodes are numbered level by level from the root (node 0),
and the two children of an inner node are adjacent (``first``, ``first + 1``); a leaf's ``first`` indexes the
leaf-ordered triangles. The boxes and the leaf-ordered corners are filled by :func:`refit`, in PyTorch on the
tree's device (CPU or CUDA), one step per level from the deepest: a refit keeps the tree and recomputes the
boxes, so it is cheap but the tree degrades if vertices move far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import torch

from .bvh_traverse import STACK_SIZE

__all__ = ["FlatTree", "build_tree", "refit", "triangle_lanes"]

#: Most triangles in a leaf.
LEAF_SIZE = 4
#: Bins of the SAH split search.
BINS = 16
#: Relative costs of a box test and a triangle test (the surface area heuristic's weights).
BOX_COST, TRIANGLE_COST = 0.5, 1.0


@dataclass
class FlatTree:
    """A BVH's arrays (torch tensors on one device); see the module docstring for the layout."""
    node: torch.Tensor          # [N, 2] int32: (first child or first triangle, 0 or the leaf's triangle count)
    box: torch.Tensor           # [N, 2, 3] float32: each node's box corners (filled by refit)
    tri: torch.Tensor           # [F, 3, 3] float32: corners of each leaf-ordered triangle (filled by refit)
    face: torch.Tensor          # [F] int32: face id of each leaf-ordered triangle
    corners: torch.Tensor       # [F, 3] int64: vertex indices of each leaf-ordered triangle
    leaf_ids: torch.Tensor      # [L] int64: the leaves' node ids
    leaf_members: torch.Tensor  # [L, leaf_size] int64: each leaf's triangles (the last one repeated)
    inner_levels: List[torch.Tensor]  # inner node ids per level, deepest level first
    depth: int                  # levels below the root


def _area(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Surface area of boxes ``[..., 3]``; empty boxes (``lo > hi``) have zero area."""
    e = (hi - lo).clamp(min=0)
    return 2 * (e[..., 0] * e[..., 1] + e[..., 1] * e[..., 2] + e[..., 2] * e[..., 0])


def _scatter(values: torch.Tensor, key: torch.Tensor, size: int, how: str) -> torch.Tensor:
    fill = math.inf if how == "amin" else -math.inf
    out = torch.full((size, values.shape[1]), fill, dtype=values.dtype)
    return out.scatter_reduce_(0, key[:, None].expand_as(values), values, how)


def _splits(order, start, end, tri_lo, tri_hi, centroids, leaf_size: int, median_only: bool):
    """Split the ranges ``[start, end)`` of ``order`` (reordered in place so that each range's left half comes
    first); return ``(split, mid)``: whether each range is split, and where. Binned SAH on the longest axis
    of the centroids; the median along that axis where SAH finds no split (or ``median_only``)."""
    n = start.shape[0]
    count = end - start
    seg = torch.repeat_interleave(torch.arange(n), count)
    offsets = torch.cumsum(count, 0) - count
    pos = start[seg] + torch.arange(seg.shape[0]) - offsets[seg]
    tri = order[pos]
    c = centroids[tri]
    c_lo, c_hi = _scatter(c, seg, n, "amin"), _scatter(c, seg, n, "amax")
    extent = c_hi - c_lo
    axis = extent.argmax(dim=1)
    along = c.gather(1, axis[seg, None])[:, 0]
    lo_axis = c_lo.gather(1, axis[:, None])[:, 0]
    ext_axis = extent.gather(1, axis[:, None])[:, 0]
    scale = torch.where(ext_axis > 0, BINS / ext_axis.clamp(min=1e-300), torch.zeros_like(ext_axis))
    bin_ = ((along - lo_axis[seg]) * scale[seg]).long().clamp(0, BINS - 1)
    key = seg * BINS + bin_
    t_lo, t_hi = tri_lo[tri], tri_hi[tri]
    b_lo = _scatter(t_lo, key, n * BINS, "amin").view(n, BINS, 3)
    b_hi = _scatter(t_hi, key, n * BINS, "amax").view(n, BINS, 3)
    b_n = torch.bincount(key, minlength=n * BINS).view(n, BINS).double()
    left_n = torch.cumsum(b_n, 1)[:, :-1]
    right_n = torch.flip(torch.cumsum(torch.flip(b_n, [1]), 1), [1])[:, 1:]
    left_area = _area(torch.cummin(b_lo, 1).values, torch.cummax(b_hi, 1).values)[:, :-1]
    right_area = torch.flip(_area(torch.cummin(torch.flip(b_lo, [1]), 1).values,
                                  torch.cummax(torch.flip(b_hi, [1]), 1).values), [1])[:, 1:]
    cost = left_area * left_n + right_area * right_n
    cost = torch.where((left_n > 0) & (right_n > 0), cost, torch.full_like(cost, math.inf))
    best_cost, best_bin = cost.min(dim=1)
    node_area = _area(b_lo.amin(1), b_hi.amax(1))
    # SAH: a leaf costs count triangle tests, a split two box tests plus the children's expected tests
    as_leaf = (count <= leaf_size) & (count.double() * node_area * TRIANGLE_COST
                                      <= 2 * node_area * BOX_COST + best_cost * TRIANGLE_COST)
    sah_ok = torch.isfinite(best_cost) & ~as_leaf & (not median_only)
    split = ~as_leaf  # as_leaf needs count <= leaf_size: a larger node always splits
    right = bin_ > best_bin[seg]
    median = split & ~sah_ok
    if bool(median.any()):  # rank along the axis within the range: the upper half goes right
        by_value = torch.argsort(along, stable=True)
        by_range = by_value[torch.argsort(seg[by_value], stable=True)]
        rank = torch.empty_like(seg)
        rank[by_range] = torch.arange(seg.shape[0]) - offsets[seg[by_range]]
        right = torch.where(median[seg], rank >= count[seg] // 2, right)
    right = right & split[seg]
    perm = torch.argsort(seg * 2 + right.long(), stable=True)
    order[pos] = tri[perm]
    mid = start + torch.bincount(seg, weights=(~right).double(), minlength=n).long()
    return split, mid


def build_tree(verts: torch.Tensor, faces: torch.Tensor, leaf_size: int = LEAF_SIZE) -> FlatTree:
    """Build the tree of ``faces [F, 3]`` (F >= 1) over ``verts [V, 3]`` and fill its boxes (:func:`refit`).

    Splits are median splits once a range is so deep that SAH splits could outgrow the traversal's stack, so
    the depth stays below ``STACK_SIZE`` for any ``F < 2**31``.
    """
    device = verts.device
    points = verts.detach().to(device="cpu", dtype=torch.float64)
    tri = faces.detach().to(device="cpu", dtype=torch.int64)
    corners = points[tri]
    tri_lo, tri_hi = corners.amin(1), corners.amax(1)
    centroids = corners.mean(1)
    F = tri.shape[0]
    median_depth = STACK_SIZE - 2 - max(1, math.ceil(math.log2(F)))
    order = torch.arange(F)
    first_parts, count_parts, inner_levels = [], [], []
    start, end = torch.zeros(1, dtype=torch.int64), torch.full((1,), F, dtype=torch.int64)
    level_base, next_base, depth = 0, 1, 0
    while start.numel():
        split, mid = _splits(order, start, end, tri_lo, tri_hi, centroids, leaf_size, depth >= median_depth)
        k = torch.nonzero(split)[:, 0]
        first = start.clone()
        count = end - start
        first[k] = next_base + 2 * torch.arange(k.numel())
        count[k] = 0
        first_parts.append(first)
        count_parts.append(count)
        if k.numel():
            inner_levels.append(level_base + k)
            start = torch.stack([start[k], mid[k]], dim=1).reshape(-1)
            end = torch.stack([mid[k], end[k]], dim=1).reshape(-1)
            depth += 1
        else:
            start = end = torch.zeros(0, dtype=torch.int64)
        level_base, next_base = next_base, next_base + 2 * k.numel()
    if depth >= STACK_SIZE:
        raise RuntimeError(f"internal error: BVH of depth {depth} exceeds the traversal stack ({STACK_SIZE})")
    first = torch.cat(first_parts)
    count = torch.cat(count_parts)
    leaves = torch.nonzero(count > 0)[:, 0]
    members = first[leaves, None] + torch.minimum(torch.arange(leaf_size), count[leaves, None] - 1)

    def on_device(x, dtype):
        return x.to(device=device, dtype=dtype).contiguous()

    tree = FlatTree(
        node=on_device(torch.stack([first, count], dim=1), torch.int32),
        box=torch.empty(first.numel(), 2, 3, dtype=torch.float32, device=device),
        tri=torch.empty(F, 3, 3, dtype=torch.float32, device=device),
        face=on_device(order, torch.int32), corners=on_device(tri[order], torch.int64),
        leaf_ids=on_device(leaves, torch.int64), leaf_members=on_device(members, torch.int64),
        inner_levels=[on_device(ids, torch.int64) for ids in reversed(inner_levels)], depth=depth)
    refit(tree, verts)
    return tree


@torch.no_grad()
def refit(tree: FlatTree, verts: torch.Tensor) -> None:
    """Recompute ``tree``'s triangle corners and boxes, in place, from ``verts [V, 3]`` (same topology)."""
    points = verts.detach().to(device=tree.box.device, dtype=torch.float32)
    tree.tri.copy_(points[tree.corners])
    tree.box[tree.leaf_ids, 0] = tree.tri.amin(dim=1)[tree.leaf_members].amin(dim=1)
    tree.box[tree.leaf_ids, 1] = tree.tri.amax(dim=1)[tree.leaf_members].amax(dim=1)
    first = tree.node[:, 0].long()
    for ids in tree.inner_levels:  # deepest first: children are done before their parents
        left = first[ids]
        tree.box[ids, 0] = torch.minimum(tree.box[left, 0], tree.box[left + 1, 0])
        tree.box[ids, 1] = torch.maximum(tree.box[left, 1], tree.box[left + 1, 1])


def triangle_lanes(verts: torch.Tensor, faces: torch.Tensor, width: int) -> torch.Tensor:
    """The corners of ``faces [F, 3]`` over ``verts [V, 3]`` as structure-of-arrays blocks for SIMD tests
    (:mod:`.bvh_native`): ``[B, 10, width]`` float32 on ``verts``' device, ``B = ceil(F / width)``; block ``b``
    holds faces ``b * width ..`` side by side, row ``3 * corner + axis`` one coordinate (zeros past ``F``), and
    row 9 the block's box (``lo`` in its first 3 floats, ``hi`` in the next 3). Pass the faces in the tree's
    leaf order (``FlatTree.corners``) for blocks of nearby triangles, whose boxes cull."""
    F = faces.shape[0]
    blocks = (F + width - 1) // width
    corners = verts.detach().to(torch.float32)[faces.long()]  # [F, 3 corners, 3 axes]
    out = corners.new_zeros(blocks, 10, width)
    padded = corners.new_zeros(blocks * width, 3, 3)
    padded[:F] = corners
    out[:, :9] = padded.view(blocks, width, 9).transpose(1, 2)
    # the boxes over the real faces: the padding repeats the last face
    points = torch.cat([corners, corners[-1:].expand(blocks * width - F, 3, 3)]).view(blocks, width * 3, 3)
    out[:, 9, :3] = points.amin(dim=1)
    out[:, 9, 3:6] = points.amax(dim=1)
    return out.contiguous()
