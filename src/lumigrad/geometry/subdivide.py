"""Coarse-to-fine mesh refinement: 1-to-4 midpoint subdivision, Loop subdivision and icospheres.

All three build the new vertices as fixed linear combinations of the old ones, so gradients flow from the
fine mesh back to the coarse one (a coarse-to-fine optimisation can subdivide a mesh it is optimising).
Topology (the new ``faces``) is integer data and carries no gradient.

Edges are numbered once per mesh: the unique undirected edges ``(a, b)`` with ``a < b``, sorted by
``a * V + b``. The midpoint of edge ``e`` becomes vertex ``V + e``, shared by both faces along the edge,
so the refined mesh has no cracks and ``V' = V + E``, ``F' = 4 F``.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch

from .._checks import check_mesh, check_tensor

__all__ = ["numbered_edges", "subdivide_midpoint", "loop_subdivide", "icosphere"]


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor, attrs: Optional[torch.Tensor] = None) -> None:
    check_mesh(verts, faces, batched=True, allow_empty=True)
    if attrs is not None:
        check_tensor(attrs, "attrs", trailing=(verts.shape[-2], None), floating=True, finite=True,
                     device=verts.device)


def numbered_edges(faces: torch.Tensor, num_verts: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Number the undirected edges of a triangle mesh.

    Args:
        faces: ``[F, 3]`` integer vertex indices.
        num_verts: ``V``, the number of vertices (indices must lie in ``[0, V)``).

    Returns:
        ``(edges, face_edges)``: ``edges [E, 2]`` int64 with ``edges[:, 0] < edges[:, 1]``, sorted;
        ``face_edges [F, 3]`` int64, the id of edge ``(faces[f, k], faces[f, (k + 1) % 3])``.

    Example:
        >>> edges, fe = numbered_edges(torch.tensor([[0, 1, 2]]), 3)
        >>> edges.tolist(), fe.tolist()
        ([[0, 1], [0, 2], [1, 2]], [[0, 2, 1]])
    """
    f = faces.long()
    a = f
    b = f.roll(-1, dims=1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = (lo * num_verts + hi).reshape(-1)
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    edges = torch.stack([uniq // num_verts, uniq % num_verts], dim=1)
    return edges, inverse.reshape(-1, 3)


def _split_faces(faces: torch.Tensor, face_edges: torch.Tensor, num_verts: int) -> torch.Tensor:
    """The four children of each face, wound like their parent (corner triangles, then the middle one)."""
    f = faces.long()
    m = face_edges + num_verts  # m[:, 0] on edge (v0, v1), m[:, 1] on (v1, v2), m[:, 2] on (v2, v0)
    v0, v1, v2 = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
    out = torch.stack([
        torch.stack([v0, m01, m20], 1),
        torch.stack([v1, m12, m01], 1),
        torch.stack([v2, m20, m12], 1),
        torch.stack([m01, m12, m20], 1),
    ], dim=1)  # [F, 4, 3]: children of one face stay together
    return out.reshape(-1, 3).to(faces.dtype)


def subdivide_midpoint(verts: torch.Tensor, faces: torch.Tensor, attrs: Optional[torch.Tensor] = None
                       ) -> Union[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Split every triangle into four at its edge midpoints (the surface itself does not change).

    Each edge gets one new vertex at its midpoint ``(v_a + v_b) / 2``, shared by the (one, two or more)
    faces along it, so open meshes, non-manifold edges and isolated vertices are all handled: old
    vertices keep their indices, new ones are appended in edge order (see :func:`numbered_edges`).
    Cost: O(F log F) for the edge numbering, O(V + E) for the positions.

    Args:
        verts: vertex positions, ``[..., V, 3]``, floating.
        faces: ``[F, 3]`` integer vertex indices, counter-clockwise front faces.
        attrs: optional per-vertex attributes ``[..., V, C]`` (uv, colours, ...) averaged the same way.

    Returns:
        ``(verts [..., V + E, 3], faces [4 F, 3])`` and, when ``attrs`` is given, ``attrs [..., V + E, C]``.
        Child faces keep the parent's winding; face ``f``'s children are rows ``4 f .. 4 f + 3``.

    **Differentiability:** new vertices (and attributes) are averages of two old ones, so gradients flow
    to ``verts`` and ``attrs`` with weight 1/2 per midpoint; ``faces`` is integer and not differentiable.

    Example:
        >>> v = torch.tensor([[0., 0, 0], [2, 0, 0], [0, 2, 0]])
        >>> nv, nf = subdivide_midpoint(v, torch.tensor([[0, 1, 2]]))
        >>> nv[3:].tolist(), nf.shape
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]], torch.Size([4, 3]))
    """
    _check_mesh(verts, faces, attrs)
    V = verts.shape[-2]
    edges, face_edges = numbered_edges(faces, V)

    def mid(x):
        return torch.cat([x, 0.5 * (x[..., edges[:, 0], :] + x[..., edges[:, 1], :])], dim=-2)

    new_faces = _split_faces(faces, face_edges, V)
    if attrs is None:
        return mid(verts), new_faces
    return mid(verts), new_faces, mid(attrs)


def loop_subdivide(verts: torch.Tensor, faces: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Refine a triangle mesh one level with Loop's scheme (a smoother surface than midpoint splitting).

    Connectivity is that of :func:`subdivide_midpoint`. Positions (Loop 1987; boundary rules as in
    Hoppe et al. 1994):

    * edge vertex, interior edge ``(a, b)`` with opposite corners ``c, d``: ``3/8 (a + b) + 1/8 (c + d)``;
      boundary or non-manifold edge: the midpoint ``(a + b) / 2``.
    * old vertex ``v`` of valence ``n`` with neighbours ``w_i``: ``(1 - n beta) v + beta sum w_i`` with
      ``beta = (5/8 - (3/8 + 1/4 cos(2 pi / n))^2) / n``; a vertex on ``k`` boundary / non-manifold
      edges keeps ``(1 - k/8) v + 1/8 sum`` of those edges' other ends (``3/4 v + 1/8 (b_1 + b_2)``
      on an ordinary boundary); isolated vertices stay where they are.

    All weights sum to one, so the scheme commutes with affine maps. Cost: O(F log F + V + E).

    Args:
        verts: vertex positions, ``[..., V, 3]``, floating.
        faces: ``[F, 3]`` integer vertex indices.

    Returns:
        ``(verts [..., V + E, 3], faces [4 F, 3])``.

    **Differentiability:** every output vertex is a fixed linear combination of input vertices, so
    gradients flow to ``verts``; ``faces`` is not differentiable.
    """
    _check_mesh(verts, faces)
    V = verts.shape[-2]
    f = faces.long()
    edges, face_edges = numbered_edges(faces, V)
    E = edges.shape[0]
    dev = verts.device
    wdt = verts.dtype

    fe = face_edges.reshape(-1)
    count = torch.zeros(E, dtype=torch.long, device=dev).index_add_(0, fe, torch.ones_like(fe))
    interior = count == 2
    # the corner opposite edge (f[:, k], f[:, k+1]) is f[:, k+2]
    opp = f.roll(-2, dims=1).reshape(-1)
    opp_sum = torch.zeros(*verts.shape[:-2], E, 3, dtype=wdt, device=dev).index_add_(-2, fe, verts[..., opp, :])
    a, b = verts[..., edges[:, 0], :], verts[..., edges[:, 1], :]
    w_int = interior.to(wdt)[:, None]
    edge_pts = w_int * (0.375 * (a + b) + 0.125 * opp_sum) + (1 - w_int) * (0.5 * (a + b))

    # even (old) vertices
    ea, eb = edges[:, 0], edges[:, 1]
    ones = torch.ones(E, dtype=wdt, device=dev)
    valence = torch.zeros(V, dtype=wdt, device=dev).index_add_(0, ea, ones).index_add_(0, eb, ones)
    nb_sum = (torch.zeros_like(verts).index_add_(-2, ea, verts[..., eb, :]).index_add_(-2, eb, verts[..., ea, :]))
    crease = (~interior).to(wdt)
    n_crease = torch.zeros(V, dtype=wdt, device=dev).index_add_(0, ea, crease).index_add_(0, eb, crease)
    cr_sum = (torch.zeros_like(verts).index_add_(-2, ea, crease[:, None] * verts[..., eb, :])
              .index_add_(-2, eb, crease[:, None] * verts[..., ea, :]))
    n_safe = valence.clamp(min=1)
    beta = (0.625 - (0.375 + 0.25 * torch.cos(2 * math.pi / n_safe)) ** 2) / n_safe
    beta = torch.where(valence > 0, beta, torch.zeros_like(beta))
    smooth_pts = (1 - valence * beta)[:, None] * verts + beta[:, None] * nb_sum
    crease_pts = (1 - n_crease / 8)[:, None] * verts + cr_sum / 8
    on_crease = (n_crease > 0).to(wdt)[:, None]
    even = on_crease * crease_pts + (1 - on_crease) * smooth_pts
    return torch.cat([even, edge_pts], dim=-2), _split_faces(faces, face_edges, V)


def _icosahedron(dtype, device) -> Tuple[torch.Tensor, torch.Tensor]:
    t = (1.0 + 5.0 ** 0.5) / 2.0
    verts = torch.tensor([
        [-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0],
        [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
        [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1],
    ], dtype=torch.float64)
    faces = torch.tensor([
        [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
        [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
        [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
        [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
    ], dtype=torch.int64)
    verts = verts / verts.norm(dim=1, keepdim=True)
    return verts, faces


def icosphere(subdivisions: int = 2, radius: float = 1.0, dtype: torch.dtype = torch.float32,
              device: Union[str, torch.device, None] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Build a geodesic sphere: an icosahedron split ``subdivisions`` times, every vertex on the sphere.

    After each midpoint split the new vertices are pushed out onto the sphere, which keeps triangles
    close to equilateral. The mesh is closed, 2-manifold (Euler characteristic 2) and wound
    counter-clockwise seen from outside (outward normals, positive signed volume).

    Args:
        subdivisions: number of 1-to-4 splits, ``>= 0`` (0 gives the icosahedron).
        radius: sphere radius, ``> 0``.
        dtype: floating dtype of the positions (built in float64, then cast).
        device: device of both outputs.

    Returns:
        ``(verts [10 * 4^n + 2, 3], faces [20 * 4^n, 3] int64)``, centred at the origin.

    **Differentiability:** none (a constructor); subdivide or deform its output to optimise it.

    Example:
        >>> v, f = icosphere(1)
        >>> v.shape, f.shape
        (torch.Size([42, 3]), torch.Size([80, 3]))
    """
    if isinstance(subdivisions, bool) or not isinstance(subdivisions, int):
        raise TypeError(f"subdivisions must be an int; got {type(subdivisions).__name__}")
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0; got {subdivisions}")
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive finite number; got {radius!r}")
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype must be a floating dtype; got {dtype}")
    verts, faces = _icosahedron(torch.float64, "cpu")
    for _ in range(subdivisions):
        verts, faces = subdivide_midpoint(verts, faces)
        verts = verts / verts.norm(dim=1, keepdim=True)
    return (verts * radius).to(dtype=dtype, device=device), faces.to(device=device)
