"""Point-set and point-mesh distances for fitting meshes to points: chamfer, point-triangle, surface sampling.

Every search for a nearest point / triangle runs chunk by chunk under ``torch.no_grad`` (memory
``O(chunk x M)``), then the distances of the chosen pairs are recomputed with autograd on, so the backward pass
stores only ``O(N)`` values and gradients reach exactly the selected pairs (the usual subgradient of a min).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from .._checks import broadcast_batch, check_mesh, check_positive_int, check_tensor
from ..kernels.bvh import TriangleBVH

__all__ = ["chamfer_distance", "closest_point_on_triangle", "point_mesh_distance", "points_to_mesh_loss",
           "sample_points_on_mesh"]

_PAIR_BUDGET = 1 << 20  # default number of (point, point) pairs examined per chunk
_TRI_BUDGET = 1 << 18  # default number of (point, triangle) pairs per chunk (about 25 [pairs, 3] temporaries)
#: Searches of more (point, triangle) pairs than this go through a BVH (Warp's ``wp.Mesh``) instead of brute force.
BVH_MIN_PAIRS = 1 << 16


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt(sq)`` with a zero (not NaN / Inf) gradient at ``sq == 0``."""
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def _nearest_sq(x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    """For ``x [B, N, 3]``, ``y [B, M, 3]``: differentiable squared distance ``[B, N]`` to the nearest ``y``."""
    with torch.no_grad():
        idx = torch.cat([
            torch.cdist(x[:, s:s + chunk], y, compute_mode="donot_use_mm_for_euclid_dist").argmin(-1)
            for s in range(0, x.shape[1], chunk)
        ], dim=1)
    nearest = torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
    return ((x - nearest) ** 2).sum(-1)


def chamfer_distance(x: torch.Tensor, y: torch.Tensor, *, squared: bool = True, chunk: Optional[int] = None
                     ) -> torch.Tensor:
    """Compute the symmetric chamfer distance between two point sets.

    ``CD = mean_i min_j d(x_i, y_j) + mean_j min_i d(x_i, y_j)`` with ``d = |x - y|^2`` (``squared=True``, the
    PyTorch3D convention: the two directions are summed) or ``|x - y|``. Leading batch dims broadcast and the
    result is averaged over them.

    Example (one point each, 5 apart: ``25 + 25`` squared, ``5 + 5`` not):
        >>> x, y = torch.tensor([[0.0, 0, 0]]), torch.tensor([[3.0, 4, 0]])
        >>> float(chamfer_distance(x, y)), float(chamfer_distance(x, y, squared=False))
        (50.0, 10.0)

    Args:
        x: ``[..., N, 3]`` float points, ``N > 0``.
        y: ``[..., M, 3]`` float points, ``M > 0``, same dtype and device.
        squared: use squared distances (smooth) or distances.
        chunk: points per search chunk; the search holds ``chunk x M`` distances at a time. Default keeps about
            one million pairs per chunk.

    Returns:
        Scalar tensor (mean over batch dims), ``x``'s dtype.

    **Differentiability:** gradients flow to ``x`` and ``y`` through each point's nearest neighbour (the
    selection itself is piecewise constant; ties pick one). With ``squared=False`` coincident points get a zero
    gradient instead of the undefined one.
    """
    check_tensor(x, "x", trailing=(None, 3), floating=True, finite=True)
    check_tensor(y, "y", trailing=(None, 3), floating=True, finite=True, device=x.device)
    if y.dtype != x.dtype:
        raise TypeError(f"x and y must have the same dtype; got {x.dtype} and {y.dtype}")
    if x.shape[-2] == 0 or y.shape[-2] == 0:
        raise ValueError(f"x and y must hold at least one point; got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    batch = broadcast_batch(x.shape[:-2], "x", y.shape[:-2], "y")
    N, M = x.shape[-2], y.shape[-2]
    xb = x.expand(*batch, N, 3).reshape(-1, N, 3)
    yb = y.expand(*batch, M, 3).reshape(-1, M, 3)
    work = torch.promote_types(x.dtype, torch.float32)
    xb, yb = xb.to(work), yb.to(work)
    cx = check_positive_int(chunk, "chunk") if chunk is not None else max(1, _PAIR_BUDGET // M)
    cy = chunk if chunk is not None else max(1, _PAIR_BUDGET // N)
    dx = _nearest_sq(xb, yb, cx)
    dy = _nearest_sq(yb, xb, cy)
    if not squared:
        dx, dy = safe_sqrt(dx), safe_sqrt(dy)
    return (dx.mean(-1) + dy.mean(-1)).mean().to(x.dtype)


def _dot(a, b):
    return (a * b).sum(-1)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def closest_point_on_triangle(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Find the closest point of triangle ``abc`` to ``p`` (Ericson, *Real-Time Collision Detection*, 5.1.5).

    All seven Voronoi regions (three vertices, three edges, the face) are evaluated for every element and the
    first matching region in Ericson's order is selected, so the result equals the scalar algorithm's.
    Degenerate triangles (repeated or collinear corners, twice the area ``<= 64 eps`` times the summed squared
    edge lengths) are treated as the union of their three segments (region 3, 4 or 5 for the nearest one);
    every division is guarded, so no NaN or Inf can arise.

    Args:
        p, a, b, c: broadcastable ``[..., 3]`` float tensors.

    Returns:
        ``(q, region)``: closest points ``[..., 3]`` and int64 region ids ``[...]``: 0, 1, 2 vertex a, b, c;
        3 edge ab, 4 edge ac, 5 edge bc; 6 face interior.

    **Differentiability:** ``q`` is piecewise smooth in ``p``, ``a``, ``b``, ``c`` (continuous across regions);
    ``region`` is an index, not differentiable.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    bp = p - b
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    cp = p - c
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    vc = d1 * d4 - d3 * d2
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4

    in_a = (d1 <= 0) & (d2 <= 0)
    in_b = (d3 >= 0) & (d4 <= d3)
    in_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    in_c = (d6 >= 0) & (d5 <= d6)
    in_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    in_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)

    u = lambda t: t.unsqueeze(-1)  # noqa: E731
    q_ab = a + u(_safe_div(d1, d1 - d3)) * ab
    q_ac = a + u(_safe_div(d2, d2 - d6)) * ac
    q_bc = b + u(_safe_div(d4 - d3, (d4 - d3) + (d5 - d6))) * (c - b)
    den = va + vb + vc
    q_face = a + u(_safe_div(vb, den)) * ab + u(_safe_div(vc, den)) * ac

    shape = torch.broadcast_shapes(p.shape, a.shape, b.shape, c.shape)
    q = q_face.expand(shape)
    region = torch.full(shape[:-1], 6, dtype=torch.int64, device=p.device)
    for mask, cand, rid in ((in_bc, q_bc, 5), (in_ac, q_ac, 4), (in_c, c, 2), (in_ab, q_ab, 3), (in_b, b, 1),
                            (in_a, a, 0)):
        mask = mask.expand(shape[:-1])
        q = torch.where(u(mask), cand, q)
        region = torch.where(mask, torch.full_like(region, rid), region)
    # Degenerate triangles (twice the area <= 64 eps times the summed squared edge lengths) are the union of their
    # three segments, where Ericson's region tests are not reliable (with a == b the "edge ab" test always
    # passes): use the nearest of the three segments there.
    degenerate = _degenerate(ab, ac, c - b).expand(shape[:-1])
    if bool(degenerate.any()):
        segs = [_closest_on_segment(p, a, b), _closest_on_segment(p, a, c), _closest_on_segment(p, b, c)]
        k = torch.stack([_dot(p - s_, p - s_) for s_ in segs], -1).argmin(-1).expand(shape[:-1])
        seg_q = torch.where(u(k == 0), segs[0], torch.where(u(k == 1), segs[1], segs[2]))
        q = torch.where(u(degenerate), seg_q, q)
        region = torch.where(degenerate, 3 + k, region)
    return q, region


def _degenerate(ab: torch.Tensor, ac: torch.Tensor, bc: torch.Tensor, eps: Optional[float] = None) -> torch.Tensor:
    """Whether the triangle of edges ``ab``, ``ac``, ``bc`` is degenerate: twice its area at most ``64 eps`` (the
    edges' dtype's epsilon unless given) times its summed squared edge lengths."""
    cross = torch.linalg.cross(ab, ac)
    size = _dot(ab, ab) + _dot(ac, ac) + _dot(bc, bc)
    eps = torch.finfo(size.dtype).eps if eps is None else eps
    return _dot(cross, cross) <= (64.0 * eps * size) ** 2


def _closest_on_segment(p, a, b):
    ab = b - a
    t = _safe_div(_dot(p - a, ab), _dot(ab, ab)).clamp(0, 1)
    return a + t.unsqueeze(-1) * ab


def _use_bvh(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> bool:
    """Whether the nearest-face search goes through a BVH: more than :data:`BVH_MIN_PAIRS` (point, face) pairs
    and no zero-area triangle (those count as segments, which only the brute force tests)."""
    if points.shape[0] * a.shape[0] <= BVH_MIN_PAIRS:
        return False
    # the brute force's test for a degenerate triangle, with float32's epsilon (the BVH's precision)
    return not bool(_degenerate(b - a, c - a, c - b, torch.finfo(torch.float32).eps).any())


def point_mesh_distance(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, *, squared: bool = False,
                        chunk: Optional[int] = None, return_closest: bool = False
                        ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Compute the exact distance from each point to the nearest triangle of a mesh.

    Each point's nearest triangle is searched without gradients, then its closest point is recomputed with
    :func:`closest_point_on_triangle` in the points' precision. The search: above :data:`BVH_MIN_PAIRS`
    (point, face) pairs a BVH over the triangles (Warp's ``wp.Mesh``, float32: ``O(P log F)`` time for ordinary
    meshes; between faces within float32 rounding of the same distance it may pick either), else, and for
    meshes with a zero-area triangle, every triangle is tested (brute force, chunked over points, ``O(P F)``
    time, ``O(chunk x F)`` memory). Degenerate triangles count as the segments / points they collapse to;
    isolated vertices are not part of the surface.

    Args:
        points: ``[P, 3]`` float query points.
        verts: ``[V, 3]`` float vertex positions, same dtype and device.
        faces: ``[F, 3]`` integer vertex indices, ``F > 0``.
        squared: return squared distances.
        chunk: points per brute-force search chunk; default keeps about 262k (point, face) pairs per chunk.
        return_closest: also return the closest points and the nearest face ids.

    Returns:
        ``[P]`` distances (``points``' dtype); with ``return_closest`` a tuple ``(dist [P], closest [P, 3],
        face_ids [P] int64)``. Point ``(0.2, 0.2, 1)`` over the triangle ``(0,0,0), (1,0,0), (0,1,0)``: 1.

    **Differentiability:** gradients flow to ``points`` and ``verts`` through the closest point on the nearest
    triangle (piecewise smooth, continuous; the face choice is not differentiated). A point exactly on the
    surface gets a zero gradient with ``squared=False``.
    """
    check_tensor(points, "points", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_mesh(verts, faces)
    check_tensor(verts, "verts", device=points.device)
    if verts.dtype != points.dtype:
        raise TypeError(f"points and verts must have the same dtype; got {points.dtype} and {verts.dtype}")
    f = faces.long()
    F = f.shape[0]
    step = check_positive_int(chunk, "chunk") if chunk is not None else max(1, _TRI_BUDGET // F)
    work = torch.promote_types(points.dtype, torch.float32)
    pts, v = points.to(work), verts.to(work)
    with torch.no_grad():
        a, b, c = (v[f[:, k]] for k in range(3))
        if _use_bvh(pts, a, b, c):
            face_ids = TriangleBVH(v, f, engine="warp").nearest_faces(pts)
        else:
            best = []
            for s in range(0, pts.shape[0], step):
                p = pts[s:s + step, None, :]
                q, _ = closest_point_on_triangle(p, a, b, c)
                best.append(((p - q) ** 2).sum(-1).argmin(-1))
            face_ids = torch.cat(best) if best else torch.zeros(0, dtype=torch.int64, device=points.device)
    fs = f[face_ids]
    q, _ = closest_point_on_triangle(pts, v[fs[:, 0]], v[fs[:, 1]], v[fs[:, 2]])
    sq = ((pts - q) ** 2).sum(-1)
    dist = (sq if squared else safe_sqrt(sq)).to(points.dtype)
    if return_closest:
        return dist, q.to(points.dtype), face_ids
    return dist


def points_to_mesh_loss(points: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor, *, squared: bool = True,
                        chunk: Optional[int] = None) -> torch.Tensor:
    """Compute the mean (squared) distance from ``points`` to the surface of a mesh.

    ``loss = mean_p dist(p, mesh)^2`` (or ``dist`` with ``squared=False``): the one-sided "point-to-surface"
    term of mesh fitting; pair it with ``chamfer_distance(sample_points_on_mesh(...), points)`` for the other
    side.

    Args:
        points: ``[P, 3]`` float target points, ``P > 0``.
        verts: ``[V, 3]`` float vertex positions.
        faces: ``[F, 3]`` integer vertex indices, ``F > 0``.
        squared: average squared distances (smooth) or distances.
        chunk: see :func:`point_mesh_distance`.

    Returns:
        Scalar tensor, ``points``' dtype.

    **Differentiability:** as :func:`point_mesh_distance`: ``points`` and ``verts`` receive gradients.
    """
    check_tensor(points, "points", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    if points.shape[0] == 0:
        raise ValueError("points must hold at least one point; got shape (0, 3)")
    return point_mesh_distance(points, verts, faces, squared=squared, chunk=chunk).mean()


def sample_points_on_mesh(verts: torch.Tensor, faces: torch.Tensor, num: int, *,
                          generator: Optional[torch.Generator] = None, return_barycentrics: bool = False
                          ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Sample points uniformly (by area) on the surface of a triangle mesh.

    A face is drawn with probability proportional to its area, then a uniform point in it with barycentrics
    ``(1 - sqrt(r1), sqrt(r1) (1 - r2), sqrt(r1) r2)``, ``r1, r2 ~ U[0, 1)``. Zero-area faces are never drawn;
    isolated vertices play no part.

    Args:
        verts: ``[V, 3]`` float vertex positions.
        faces: ``[F, 3]`` integer vertex indices; the mesh must have a positive total area.
        num: number of samples (positive int).
        generator: optional ``torch.Generator`` for reproducible samples; the random numbers are drawn on the
            generator's device and moved to ``verts``' device.
        return_barycentrics: also return the face ids and barycentrics.

    Returns:
        ``[num, 3]`` points (``verts``' dtype and device); with ``return_barycentrics`` a tuple
        ``(points, face_ids [num] int64, bary [num, 3])``.

    **Differentiability:** face ids and barycentrics are drawn without gradient and then held fixed, so the
    points are a linear function of ``verts`` and gradients flow to the three corners of each sampled face
    (the area-dependent face choice itself is not differentiated).
    """
    check_mesh(verts, faces)
    check_positive_int(num, "num")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    f = faces.long()
    with torch.no_grad():
        v = verts.detach().to(torch.promote_types(verts.dtype, torch.float32))
        area = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).norm(dim=-1)
        total = float(area.sum())
        if not total > 0:
            raise ValueError("the mesh (verts, faces) has zero total area; no point can be sampled on it")
        gdev = generator.device if generator is not None else verts.device
        face_ids = torch.multinomial(area.to(device=gdev, dtype=torch.float64), num, replacement=True,
                                     generator=generator).to(verts.device)
        r = torch.rand(num, 2, generator=generator, device=gdev, dtype=torch.float64).to(verts.device)
        s = r[:, 0].sqrt()
        bary = torch.stack([1 - s, s * (1 - r[:, 1]), s * r[:, 1]], dim=-1).to(verts.dtype)
    fs = f[face_ids]
    pts = (bary[:, :, None] * torch.stack([verts[fs[:, k]] for k in range(3)], dim=1)).sum(1)
    if return_barycentrics:
        return pts, face_ids, bary
    return pts
