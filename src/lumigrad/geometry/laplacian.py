"""Mesh edges and Laplacians (uniform and cotangent) as sparse ``[V, V]`` matrices.

Both Laplacians are *positive semi-definite* ``L = D - W`` (``W`` symmetric edge weights, ``D`` its row sums), so
each row sums to zero and ``(L v)_i = sum_j w_ij (v_i - v_j)``. The sparse matrices are coalesced COO tensors on
the device of the input; the private helpers ``_edge_weights_*`` give the same weights as dense ``[E]`` vectors
for losses that want to differentiate through them without sparse autograd.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._checks import check_indices, check_tensor

__all__ = ["cotangent_laplacian", "mesh_edges", "uniform_laplacian"]


def _check_faces(faces, num_verts: int, name: str = "faces") -> torch.Tensor:
    check_tensor(faces, name, trailing=(None, 3), max_dims=2, floating=False)
    check_indices(faces, name, num_verts)
    return faces.long()


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed in float32 (cotangents overflow / lose all digits in fp16)."""
    return torch.promote_types(dtype, torch.float32)


def mesh_edges_unchecked(faces: torch.Tensor) -> torch.Tensor:
    """:func:`mesh_edges` without validating ``faces``, for callers that validated them already."""
    f = faces.long()
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0)
    e = torch.sort(e, dim=1).values
    e = e[e[:, 0] != e[:, 1]]  # a face with a repeated index has no edge from a vertex to itself
    if e.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.int64, device=faces.device)
    return torch.unique(e, dim=0)


def mesh_edges(faces: torch.Tensor) -> torch.Tensor:
    """Return the unique undirected edges of a triangle mesh as sorted pairs.

    Args:
        faces: ``[F, 3]`` integer vertex indices (any winding; non-manifold, duplicate and degenerate faces allowed).

    Returns:
        ``[E, 2]`` int64, each row ``(i, j)`` with ``i < j``, rows in lexicographic order. Self-edges ``(i, i)`` of
        faces with a repeated index are dropped.

    Example:
        >>> mesh_edges(torch.tensor([[0, 1, 2], [2, 1, 3]])).tolist()
        [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]

    **Differentiability:** index output, not differentiable.
    """
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False)
    if faces.numel() and int(faces.min()) < 0:
        raise ValueError(f"faces holds index {int(faces.min())}, outside the valid range [0, inf)")
    return mesh_edges_unchecked(faces)


def _laplacian_from_weights(edges: torch.Tensor, w: torch.Tensor, num_verts: int) -> torch.Tensor:
    i, j = edges[:, 0], edges[:, 1]
    deg = torch.zeros(num_verts, dtype=w.dtype, device=w.device).index_add(0, i, w).index_add(0, j, w)
    diag = torch.arange(num_verts, device=w.device)
    rows = torch.cat([i, j, diag])
    cols = torch.cat([j, i, diag])
    vals = torch.cat([-w, -w, deg])
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (num_verts, num_verts),
                                   check_invariants=False).coalesce()


def uniform_laplacian(faces: torch.Tensor, num_verts: int, *, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Build the uniform (graph / "umbrella") Laplacian ``L = D - A`` of a triangle mesh.

    ``A_ij = 1`` for every unique undirected edge ``{i, j}`` (an edge shared by several faces still counts once),
    ``D = diag(deg)``. Rows sum to zero; an isolated vertex (in no face) gets an all-zero row.

    Args:
        faces: ``[F, 3]`` integer vertex indices into ``[0, num_verts)``.
        num_verts: ``V``, the number of vertices (may exceed the largest index: trailing isolated vertices).
        dtype: value dtype; default ``torch.get_default_dtype()``.

    Returns:
        Sparse coalesced COO ``[V, V]`` tensor on ``faces.device``.

    Example:
        >>> uniform_laplacian(torch.tensor([[0, 1, 2]]), 4).to_dense().tolist()
        [[2.0, -1.0, -1.0, 0.0], [-1.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]

    **Differentiability:** depends on connectivity only; nothing to differentiate.
    """
    if isinstance(num_verts, bool) or not isinstance(num_verts, int):
        raise TypeError(f"num_verts must be an int; got {type(num_verts).__name__}")
    if num_verts < 0:
        raise ValueError(f"num_verts must be non-negative; got {num_verts}")
    f = _check_faces(faces, num_verts)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    edges = mesh_edges_unchecked(f)
    w = torch.ones(edges.shape[0], dtype=dtype, device=faces.device)
    return _laplacian_from_weights(edges, w, num_verts)


def _cotangents(verts: torch.Tensor, faces: torch.Tensor, rel_eps: Optional[float] = None) -> torch.Tensor:
    """``[..., F, 3]`` cotangent of the angle at each corner; zero for every corner of a degenerate face.

    A face is degenerate when ``|e1 x e2| <= rel_eps * (|e0|^2 + |e1|^2 + |e2|^2)`` (twice its area is tiny
    relative to its squared size, which bounds every finite cotangent by about ``1 / rel_eps``). Safe
    denominators keep values and gradients finite there.
    """
    if rel_eps is None:
        rel_eps = 64.0 * torch.finfo(verts.dtype).eps
    v = [verts[..., faces[:, k], :] for k in range(3)]
    cross = torch.linalg.cross(v[1] - v[0], v[2] - v[0])
    sq = (cross * cross).sum(-1)
    size = sum(((v[(k + 1) % 3] - v[k]) ** 2).sum(-1) for k in range(3))
    degenerate = sq <= (rel_eps * size) ** 2
    twice_area = torch.sqrt(torch.where(degenerate, torch.ones_like(sq), sq))
    cots = []
    for k in range(3):
        a = v[(k + 1) % 3] - v[k]
        b = v[(k + 2) % 3] - v[k]
        cots.append(torch.where(degenerate, torch.zeros_like(sq), (a * b).sum(-1) / twice_area))
    return torch.stack(cots, dim=-1)


def cotangent_edge_weights(verts: torch.Tensor, faces: torch.Tensor, *, nonnegative: bool = False
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unique edges ``[E, 2]`` and cotangent weights ``[..., E]`` (``(cot a + cot b) / 2`` summed over faces).

    An unchecked core (no validation of ``verts`` / ``faces``) for callers that validated them already."""
    f = faces.long()
    cot = _cotangents(verts, f)  # [..., F, 3]; corner k is opposite edge (k+1, k+2)
    e = torch.cat([f[:, [1, 2]], f[:, [2, 0]], f[:, [0, 1]]], dim=0)  # opposite corners 0, 1, 2
    c = torch.cat([cot[..., 0], cot[..., 1], cot[..., 2]], dim=-1) * 0.5
    e = torch.sort(e, dim=1).values
    keep = e[:, 0] != e[:, 1]
    e, c = e[keep], c[..., keep]
    if e.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.int64, device=f.device), c
    edges, inverse = torch.unique(e, dim=0, return_inverse=True)
    w = torch.zeros(*c.shape[:-1], edges.shape[0], dtype=c.dtype, device=c.device).index_add(-1, inverse, c)
    if nonnegative:
        w = w.clamp(min=0)
    return edges, w


def cotangent_laplacian(verts: torch.Tensor, faces: torch.Tensor, *, nonnegative: bool = False) -> torch.Tensor:
    """Build the cotangent Laplacian ``L = D - W`` of a triangle mesh.

    ``w_ij = (cot alpha_ij + cot beta_ij) / 2`` summed over the faces on edge ``{i, j}`` (alpha, beta: the
    angles opposite the edge; a boundary edge has one term, a non-manifold edge one per face). Then
    ``(L v)_i = sum_j w_ij (v_i - v_j)``, which for a closed smooth surface approximates
    ``-A_i * Laplace-Beltrami(x) = 2 H_i n_i A_i`` (``A_i`` the barycentric / mixed area of vertex i, ``H``
    the mean curvature, ``n`` the outward normal). Rows sum to zero; interior vertices of a planar mesh map to
    zero exactly (linear precision).

    Bad triangles:
        * obtuse triangles give a negative cotangent at the obtuse corner, kept as is by default (that is the
          standard operator and preserves linear precision); ``nonnegative=True`` clamps each final edge weight
          at zero (an M-matrix, useful for solvers, at the cost of linear precision);
        * degenerate (zero-area or needle) faces, with ``2 * area <= 64 * eps(dtype) * (sum of squared edge
          lengths)``, contribute no weight at all, so no cotangent is ever Inf or NaN;
        * isolated vertices get an all-zero row; repeated indices in a face add no self-edge.

    Args:
        verts: ``[V, 3]`` float vertex positions (finite).
        faces: ``[F, 3]`` integer vertex indices.
        nonnegative: clamp the edge weights at zero (see above).

    Returns:
        Sparse coalesced COO ``[V, V]`` tensor, ``verts``' dtype and device (half inputs computed in float32).

    **Differentiability:** the sparse values are a differentiable function of ``verts`` (through sparse autograd
    to ``verts``); degenerate faces have zero weight and zero gradient. Losses in :mod:`lumigrad.losses` use the
    dense twin ``cotangent_edge_weights`` instead of sparse autograd.
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    f = _check_faces(faces, verts.shape[0])
    check_tensor(faces, "faces", device=verts.device)
    work = verts.to(_work_dtype(verts.dtype))
    edges, w = cotangent_edge_weights(work, f, nonnegative=nonnegative)
    return _laplacian_from_weights(edges, w, verts.shape[0]).to(verts.dtype)
