"""Geometric regularizers for mesh fitting: Laplacian smoothing, normal consistency, edge length.

All three take ``verts [..., V, 3]`` (any leading batch dims, one shared connectivity) and ``faces [F, 3]``, and
return a scalar averaged over the batch. They are well defined on bad meshes: non-manifold edges, duplicate
vertices or faces, zero-area faces and isolated vertices give finite values and finite gradients (each
function's docstring says how). Half-precision inputs are computed in float32.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

import torch

from .._checks import check_choice, check_indices, check_tensor
from ..geometry.distance import safe_sqrt
from ..geometry.laplacian import cotangent_edge_weights, mesh_edges_unchecked

__all__ = ["edge_length_loss", "laplacian_smoothing", "normal_consistency"]


def _check_mesh(verts, faces):
    check_tensor(verts, "verts", trailing=(None, 3), floating=True, finite=True)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    if verts.shape[-2] == 0:
        raise ValueError(f"verts must hold at least one vertex; got shape {tuple(verts.shape)}")
    check_indices(faces, "faces", verts.shape[-2])
    return verts.to(torch.promote_types(verts.dtype, torch.float32)), faces.long()


def _zero(verts: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """A zero scalar still attached to ``verts`` (so ``backward`` works and gives zero gradients)."""
    return (verts.sum() * 0).to(out_dtype)


def laplacian_smoothing(verts: torch.Tensor, faces: torch.Tensor,
                        method: Literal["uniform", "cotangent"] = "uniform", *, squared: bool = True,
                        detach_weights: bool = False) -> torch.Tensor:
    """Penalise each vertex's offset from the weighted mean of its neighbours.

    ``r_i = (sum_j w_ij v_j) / (sum_j w_ij) - v_i`` (the Laplacian ``L v`` with rows normalised by the degree /
    the cotangent weight sum, as PyTorch3D's ``mesh_laplacian_smoothing`` ``"uniform"`` / ``"cot"``), and
    ``loss = mean_i |r_i|^2`` over all ``V`` vertices (``squared=False``: ``mean_i |r_i|``, PyTorch3D's form,
    non-smooth where ``r_i = 0``). Uniform: ``w_ij = 1`` per unique edge. Cotangent: ``w_ij = (cot a + cot b) / 2``
    from :func:`lumigrad.geometry.cotangent_laplacian`. Example: the centre of a flat 3x3 grid has ``r = 0``.

    Bad meshes: an isolated vertex (or one whose cotangent weights sum to ``<= 1e-6`` times their absolute sum,
    e.g. a vertex only in zero-area faces, or a degenerate fan of obtuse triangles) has ``r_i = 0`` and still
    counts in the mean; a non-manifold edge counts once (uniform) or once per adjacent face (cotangent);
    zero-area faces add no cotangent weight; duplicate vertices are ordinary vertices.

    Args:
        verts: ``[..., V, 3]`` float vertex positions, ``V > 0``.
        faces: ``[F, 3]`` integer vertex indices (may be empty: the loss is then 0).
        method: ``"uniform"`` or ``"cotangent"``.
        squared: average ``|r_i|^2`` (default) or ``|r_i|``.
        detach_weights: treat the cotangent weights as constants (PyTorch3D computes them without gradient).

    Returns:
        Scalar tensor (mean over batch dims), ``verts``' dtype.

    **Differentiability:** smooth in ``verts``; with ``method="cotangent"`` gradients also flow through the
    weights unless ``detach_weights``. With ``squared=False`` a zero residual gets a zero gradient.
    """
    check_choice(method, "method", ("uniform", "cotangent"))
    v, f = _check_mesh(verts, faces)
    V = v.shape[-2]
    if method == "uniform":
        edges = mesh_edges_unchecked(f)
        w = torch.ones(edges.shape[0], dtype=v.dtype, device=v.device).expand(*v.shape[:-2], -1)
    else:
        edges, w = cotangent_edge_weights(v.detach() if detach_weights else v, f)
    if edges.shape[0] == 0:
        return _zero(verts, verts.dtype)
    i, j = edges[:, 0], edges[:, 1]
    wsum = torch.zeros(*v.shape[:-2], V, dtype=v.dtype, device=v.device).index_add(-1, i, w).index_add(-1, j, w)
    wabs = torch.zeros_like(wsum).index_add(-1, i, w.abs()).index_add(-1, j, w.abs())
    mean = (torch.zeros_like(v)
            .index_add(-2, i, w[..., None] * v[..., j, :])
            .index_add(-2, j, w[..., None] * v[..., i, :]))
    ok = wsum > 1e-6 * wabs
    den = torch.where(ok, wsum, torch.ones_like(wsum))[..., None]
    r = torch.where(ok[..., None], mean / den - v, torch.zeros_like(v))
    sq = (r * r).sum(-1)
    per_vertex = sq if squared else safe_sqrt(sq)
    return per_vertex.mean().to(verts.dtype)


def normal_consistency(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Penalise the bending between neighbouring faces: ``mean over face pairs of 1 - cos(n0, n1)``.

    For an edge ``(a, b)`` (``a < b``) shared by faces with opposite vertices ``c`` and ``d``:
    ``n0 = (b - a) x (c - a)``, ``n1 = -(b - a) x (d - a)``, as PyTorch3D's ``mesh_normal_consistency``; this
    measures the dihedral angle from the geometry alone, independent of the faces' winding. A flat mesh gives
    0; a fold of 90 degrees gives 1 for that pair; two coinciding faces (a full fold back) give 2.

    Bad meshes: a non-manifold edge contributes every pair of its faces; boundary edges (one face) contribute
    nothing; a pair with a zero-area face (twice its area ``<= 64 eps`` times its summed squared edge lengths)
    has no defined normal and contributes 0 with zero gradient, but still counts in the mean; repeated indices
    in a face add no self-edge; duplicate vertices / faces are ordinary. With no pairs at all the loss is 0.

    Args:
        verts: ``[..., V, 3]`` float vertex positions.
        faces: ``[F, 3]`` integer vertex indices.

    Returns:
        Scalar tensor (mean over face pairs and batch dims), ``verts``' dtype.

    **Differentiability:** smooth in ``verts`` for non-degenerate faces; degenerate faces have zero gradient.
    """
    v, f = _check_mesh(verts, faces)
    V = v.shape[-2]
    ends = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    opp = torch.cat([f[:, 2], f[:, 0], f[:, 1]])
    face_of = torch.arange(f.shape[0], device=f.device).repeat(3)
    ends = torch.sort(ends, dim=1).values
    keep = ends[:, 0] != ends[:, 1]
    ends, opp, face_of = ends[keep], opp[keep], face_of[keep]
    keys = ends[:, 0] * V + ends[:, 1]
    keys, order = torch.sort(keys, stable=True)
    first, second = [], []
    if keys.numel() > 1:
        counts = torch.unique_consecutive(keys, return_counts=True)[1]
        for d in range(1, int(counts.max())):
            same = (keys[:-d] == keys[d:]).nonzero().squeeze(-1)
            first.append(order[same])
            second.append(order[same + d])
    if not first or sum(x.numel() for x in first) == 0:
        return _zero(verts, verts.dtype)
    pa, pb = torch.cat(first), torch.cat(second)
    # per-incidence normals from the edge and the opposite vertex
    a, b = v[..., ends[:, 0], :], v[..., ends[:, 1], :]
    n = torch.linalg.cross(b - a, v[..., opp, :] - a)  # [..., I, 3]; |n| = 2 area of the face
    degenerate = _face_degenerate(v.detach(), f)  # [..., F]
    n0, n1 = n[..., pa, :], -n[..., pb, :]
    valid = ~(degenerate[..., face_of[pa]] | degenerate[..., face_of[pb]])
    den_sq = (n0 * n0).sum(-1) * (n1 * n1).sum(-1)
    den = torch.sqrt(torch.where(valid, den_sq, torch.ones_like(den_sq)))
    cos = torch.where(valid, (n0 * n1).sum(-1) / den, torch.ones_like(den))
    return (1 - cos).mean().to(verts.dtype)


def _face_degenerate(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``[..., F]`` bool: twice the area ``<= 64 eps`` times the summed squared edge lengths (as the cotangents)."""
    rel_eps = 64.0 * torch.finfo(v.dtype).eps
    p = [v[..., f[:, k], :] for k in range(3)]
    cross = torch.linalg.cross(p[1] - p[0], p[2] - p[0])
    size = sum(((p[(k + 1) % 3] - p[k]) ** 2).sum(-1) for k in range(3))
    return (cross * cross).sum(-1) <= (rel_eps * size) ** 2


def edge_length_loss(verts: torch.Tensor, faces: torch.Tensor,
                     target_length: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
    """Penalise edge lengths: ``mean over unique edges of (|v_i - v_j| - target)^2``.

    With ``target_length=None`` (target 0) this is the mean squared edge length ``mean |v_i - v_j|^2``, smooth
    everywhere (PyTorch3D's ``mesh_edge_loss`` default). Example: one unit right triangle gives
    ``(1 + 1 + 2) / 3 = 4/3``; with target 1, ``(sqrt 2 - 1)^2 / 3``:

        >>> v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
        >>> f = torch.tensor([[0, 1, 2]])
        >>> round(float(edge_length_loss(v, f)), 6), round(float(edge_length_loss(v, f, 1.0)), 6)
        (1.333333, 0.057191)

    Bad meshes: an edge shared by several faces (non-manifold or duplicate faces) counts once; a face with a
    repeated index adds no zero-length self-edge; duplicate vertices joined by an edge give a zero-length edge
    (with a target its gradient is taken as 0 where ``|e| = 0``); isolated vertices are in no edge. With no
    edges the loss is 0.

    Args:
        verts: ``[..., V, 3]`` float vertex positions.
        faces: ``[F, 3]`` integer vertex indices.
        target_length: ``None``, a non-negative number, or a float tensor broadcastable to ``[..., E]`` (one
            length per edge of :func:`lumigrad.geometry.mesh_edges`).

    Returns:
        Scalar tensor (mean over edges and batch dims), ``verts``' dtype.

    **Differentiability:** smooth in ``verts`` (and in a tensor ``target_length``), except at zero-length edges
    with a positive target, where the zero subgradient is used.
    """
    v, f = _check_mesh(verts, faces)
    if target_length is not None:
        if isinstance(target_length, torch.Tensor):
            check_tensor(target_length, "target_length", floating=True, finite=True, device=verts.device)
        elif isinstance(target_length, bool) or not isinstance(target_length, (int, float)):
            raise TypeError(f"target_length must be None, a number or a tensor; got {type(target_length).__name__}")
        elif not target_length >= 0:
            raise ValueError(f"target_length must be non-negative; got {target_length}")
    edges = mesh_edges_unchecked(f)
    if edges.shape[0] == 0:
        return _zero(verts, verts.dtype)
    e = v[..., edges[:, 0], :] - v[..., edges[:, 1], :]
    sq = (e * e).sum(-1)
    if target_length is None:
        return sq.mean().to(verts.dtype)
    t = target_length.to(v.dtype) if isinstance(target_length, torch.Tensor) else target_length
    try:
        err = (safe_sqrt(sq) - t) ** 2
    except RuntimeError:
        raise ValueError(f"target_length of shape {tuple(target_length.shape)} does not broadcast to the edge "
                         f"lengths {tuple(sq.shape)}") from None
    return err.mean().to(verts.dtype)
