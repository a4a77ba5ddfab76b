"""Ray-triangle intersection: BVH queries for ids, then a differentiable Möller–Trumbore replay in PyTorch.

The BVH (:mod:`lumigrad.kernels.bvh`, cached per faces tensor and refit when vertices move) says *which*
triangle each ray hits; :func:`intersect_faces` recomputes *where* (``t`` and barycentrics) from the vertex,
origin and direction tensors, so gradients reach all three. Rays are ``origins + t * directions``: ``t`` is
in multiples of each direction's length (directions need not be unit), hits count for ``0 <= t < t_max``,
both sides of a triangle are hit and zero-area triangles never are.

Validation happens once, in the public functions; the ``*_unchecked`` cores are for per-frame callers that
validated their tensors already (on CUDA every value check is a host sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple, Union

import torch

from .._checks import DeferredChecks, check_indices, check_tensor
from ..kernels.bvh import bvh_for

__all__ = ["RayHit", "intersect_faces", "intersect_faces_unchecked", "intersect_reference", "offset_ray_origin",
           "offset_ray_origin_unchecked", "trace_closest", "trace_closest_unchecked", "trace_occluded",
           "trace_occluded_unchecked"]

TMax = Union[float, torch.Tensor]


@dataclass
class RayHit:
    """The closest hit of each ray.

    Attributes:
        face: ``[...]`` int64 face id, -1 where the ray hits nothing.
        t: ``[...]`` float ray parameter of the hit (``origins + t * directions``), ``inf`` on a miss.
        bary: ``[..., 3]`` float weights of the face's corners 0, 1, 2 (the hit is
            ``sum_k bary[..., k] * verts[faces[face, k]]``), zero on a miss.
    """

    face: torch.Tensor
    t: torch.Tensor
    bary: torch.Tensor

    @property
    def hit(self) -> torch.Tensor:
        """``[...]`` bool: where the ray hits a triangle."""
        return self.face >= 0


# ------------------------------------------------------------------------------------------------ validation
def _check_rays(verts, faces, origins, directions, t_max=None) -> None:
    """Shapes, dtypes and devices of a query; face indices in range; then every value check in one read."""
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True)
    device = verts.device
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=device)
    check_indices(faces, "faces", verts.shape[0])
    check_tensor(origins, "origins", trailing=(3,), floating=True, device=device)
    check_tensor(directions, "directions", trailing=(3,), floating=True, device=device)
    if directions.shape != origins.shape:
        raise ValueError(f"origins and directions must have the same shape [..., 3]; got {tuple(origins.shape)} "
                         f"and {tuple(directions.shape)}")
    checks = DeferredChecks()
    checks.require_finite({"verts": verts, "origins": origins, "directions": directions})
    if isinstance(t_max, torch.Tensor):
        check_tensor(t_max, "t_max", floating=True, device=device)
        if t_max.shape != origins.shape[:-1]:
            raise ValueError(f"t_max must be a number or have the rays' shape {tuple(origins.shape[:-1])}; "
                             f"got {tuple(t_max.shape)}")
        if t_max.numel():
            checks.add(torch.isnan(t_max.detach()).any(), _raise_nan_t_max)
    elif t_max is not None and (isinstance(t_max, bool) or not isinstance(t_max, (int, float))):
        raise TypeError(f"t_max must be a number or a float tensor; got {type(t_max).__name__}")
    elif t_max is not None and math.isnan(t_max):
        _raise_nan_t_max()
    checks.flush()


def _raise_nan_t_max() -> None:
    raise ValueError("t_max contains NaN values (use inf for an unbounded ray)")


def _flat_t_max(t_max: TMax) -> TMax:
    return t_max.reshape(-1) if isinstance(t_max, torch.Tensor) else float(t_max)


# ------------------------------------------------------------------------------------------------- queries
def trace_closest(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                  t_max: TMax = math.inf) -> RayHit:
    """Find the closest triangle hit by each ray ``origins + t * directions``, ``0 <= t < t_max``.

    Args:
        verts: ``[V, 3]`` float vertex positions, world space.
        faces: ``[F, 3]`` integer vertex indices (``F = 0``: every ray misses).
        origins: ``[..., 3]`` float ray origins.
        directions: ``[..., 3]`` float ray directions, any non-zero length (a zero direction misses); ``t`` is
            in multiples of it.
        t_max: a number (default ``inf``) or a ``[...]`` float tensor; hits at ``t >= t_max`` are ignored.

    Returns:
        :class:`RayHit` with ``face [...]`` int64 (-1 on a miss), ``t [...]`` and ``bary [..., 3]`` in the
        promoted float dtype of ``verts``, ``origins`` and ``directions``.

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, NaN / Inf in ``verts``, ``origins`` or ``directions``,
            NaN in ``t_max``, face indices outside ``[0, V)``, tensors on different devices.

    **Differentiability:** the hit face is found in float32 on a BVH and is piecewise constant (no gradient);
    ``t`` and ``bary`` are then recomputed from ``verts``, ``origins`` and ``directions`` by
    :func:`intersect_faces`, so they are differentiable w.r.t. all three for a fixed hit face. Visibility
    changes (which face is hit, silhouettes, ``t_max``) carry no gradient: that needs edge sampling. Misses
    have ``t = inf``, ``bary = 0`` and zero gradients.

    Example: the triangle ``(0,0,0), (1,0,0), (0,1,0)`` and the ray from ``(0.1, 0.3, 1)`` along
    ``(0, 0, -2)`` give face 0, ``t = 0.5`` and ``bary = (0.6, 0.1, 0.3)``.
    """
    _check_rays(verts, faces, origins, directions, t_max)
    return trace_closest_unchecked(verts, faces, origins, directions, t_max)


def trace_closest_unchecked(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor,
                            directions: torch.Tensor, t_max: TMax = math.inf) -> RayHit:
    """:func:`trace_closest` without its checks (validate ``verts`` / ``faces`` once, then trace every frame);
    same arguments and results. Unchecked NaN rays miss; out-of-range faces are still refused by the BVH build."""
    shape = origins.shape[:-1]
    o, d = origins.reshape(-1, 3), directions.reshape(-1, 3)
    face, _, _ = bvh_for(verts, faces).closest_hit(o, d, _flat_t_max(t_max))
    t, bary = intersect_faces_unchecked(verts, faces, o, d, face)
    return RayHit(face.reshape(shape), t.reshape(shape), bary.reshape(*shape, 3))


def trace_occluded(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                   t_max: TMax = math.inf) -> torch.Tensor:
    """Return ``[...]`` bool: whether each ray hits any triangle at ``0 <= t < t_max`` (shadow rays).

    Same arguments and checks as :func:`trace_closest`; for a shadow ray towards a point light at
    ``origins + directions``, ``t_max = 1 - eps``. It stops at the first hit found, so it is
    cheaper than :func:`trace_closest`; ``trace_occluded(...) == trace_closest(...).hit`` up to float32
    near-ties at ``t_max``. Start rays that leave a surface at :func:`offset_ray_origin`.

    **Differentiability:** none (a boolean); visibility gradients need edge sampling.
    """
    _check_rays(verts, faces, origins, directions, t_max)
    return trace_occluded_unchecked(verts, faces, origins, directions, t_max)


def trace_occluded_unchecked(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor,
                             directions: torch.Tensor, t_max: TMax = math.inf) -> torch.Tensor:
    """:func:`trace_occluded` without its checks; same arguments and result."""
    hit = bvh_for(verts, faces).occluded(origins.reshape(-1, 3), directions.reshape(-1, 3), _flat_t_max(t_max))
    return hit.reshape(origins.shape[:-1])


# ------------------------------------------------------------------------------- differentiable recomputation
def intersect_faces(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                    face: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Intersect each ray with the plane of a given face (Möller–Trumbore), differentiably.

    For ``e1 = v1 - v0``, ``e2 = v2 - v0``, ``s = o - v0``, ``p = d x e2``, ``q = s x e1`` and
    ``det = e1 . p``: ``b1 = (s . p) / det``, ``b2 = (d . q) / det``, ``t = (e2 . q) / det`` and
    ``bary = (1 - b1 - b2, b1, b2)``, so that ``o + t d = sum_k bary_k v_k``.

    Args:
        verts: ``[V, 3]`` float vertex positions; ``faces``: ``[F, 3]`` integer indices.
        origins, directions: ``[..., 3]`` float rays (``t`` in multiples of the direction's length).
        face: ``[...]`` integer face of each ray (from a BVH query or a replay), -1 for none.

    Returns:
        ``t [...]`` and ``bary [..., 3]`` in the promoted float dtype of the inputs; ``inf`` and zero where
        ``face`` is -1 or the ray is parallel to the face's plane. ``bary`` is not clamped: outside
        ``[0, 1]`` when the ray passes beside the triangle (a replayed hit moved by the gradient step).

    **Differentiability:** smooth in ``verts`` (the three corners of each face), ``origins`` and
    ``directions`` wherever ``det != 0``; ``face`` is an index. Rows without a face get zero gradients
    (finite, never NaN).

    Example: face ``(0,0,0), (1,0,0), (0,1,0)``, ray ``(0.1, 0.3, 1) + t (0, 0, -2)``: ``det = -2``,
    ``t = 0.5``, ``bary = (0.6, 0.1, 0.3)``.
    """
    check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
    check_indices(faces, "faces", verts.shape[0])
    check_tensor(origins, "origins", trailing=(3,), floating=True, finite=True, device=verts.device)
    check_tensor(directions, "directions", trailing=(3,), floating=True, finite=True, device=verts.device)
    check_tensor(face, "face", floating=False, device=verts.device)
    if directions.shape != origins.shape or face.shape != origins.shape[:-1]:
        raise ValueError(f"origins {tuple(origins.shape)}, directions {tuple(directions.shape)} and face "
                         f"{tuple(face.shape)} must have shapes [..., 3], [..., 3] and [...] with the same [...]")
    if face.numel() and (int(face.min()) < -1 or int(face.max()) >= faces.shape[0]):
        raise ValueError(f"face holds ids outside [-1, {faces.shape[0]}): faces has {faces.shape[0]} rows")
    return intersect_faces_unchecked(verts, faces, origins, directions, face)


def intersect_faces_unchecked(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor,
                              directions: torch.Tensor, face: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`intersect_faces` without its checks; same arguments and results."""
    dtype = torch.promote_types(torch.promote_types(verts.dtype, origins.dtype), directions.dtype)
    shape = origins.shape[:-1]
    o, d, face = origins.reshape(-1, 3).to(dtype), directions.reshape(-1, 3).to(dtype), face.reshape(-1)
    if faces.shape[0] == 0:  # nothing to hit (every face id is -1)
        return (torch.full(shape, math.inf, dtype=dtype, device=o.device),
                torch.zeros(*shape, 3, dtype=dtype, device=o.device))
    has = face >= 0
    corners = faces.index_select(0, face.clamp_min(0)).long()  # [R, 3]
    v = verts.to(dtype)
    v0, v1, v2 = v[corners[:, 0]], v[corners[:, 1]], v[corners[:, 2]]
    e1, e2, s = v1 - v0, v2 - v0, o - v0
    p = torch.linalg.cross(d, e2)
    q = torch.linalg.cross(s, e1)
    det = (e1 * p).sum(-1)
    ok = has & (det != 0)
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))  # rows without a face divide by 1: finite gradients
    b1 = (s * p).sum(-1) * inv
    b2 = (d * q).sum(-1) * inv
    t = (e2 * q).sum(-1) * inv
    t = torch.where(ok, t, torch.full_like(t, math.inf))
    bary = torch.where(ok[:, None], torch.stack([1 - b1 - b2, b1, b2], -1), torch.zeros_like(o))
    return t.reshape(shape), bary.reshape(*shape, 3)


# ------------------------------------------------------------------------------------------ reference twin
def intersect_reference(verts: torch.Tensor, faces: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                        t_max: TMax = math.inf, *, chunk: int = 1 << 22) -> RayHit:
    """The float64 brute-force twin of :func:`trace_closest` (every ray against every face, O(R F); tests).

    Möller–Trumbore in float64 with inclusive edges (``b1, b2 >= 0``, ``b1 + b2 <= 1``), ``0 <= t < t_max``,
    no culling, ``det == 0`` (zero-area faces, rays in a face's plane, zero directions) never hits; among
    equal ``t`` the lowest face id wins. Same arguments and result layout as :func:`trace_closest`, in
    float64; ``chunk`` bounds the ray-face pairs held at once.

    **Differentiability:** as :func:`trace_closest` (float64, same replay); meant for tests.
    """
    _check_rays(verts, faces, origins, directions, t_max)
    shape = origins.shape[:-1]
    o, d = origins.reshape(-1, 3).double(), directions.reshape(-1, 3).double()
    R, F = o.shape[0], faces.shape[0]
    limit = t_max.reshape(-1).double() if isinstance(t_max, torch.Tensor) else torch.full((R,), float(t_max),
                                                                                         dtype=torch.float64)
    limit = limit.to(o.device)
    face = torch.full((R,), -1, dtype=torch.int64, device=o.device)
    tri = verts.detach().double()[faces.long()]  # [F, 3 corners, 3]
    e1, e2 = tri[None, :, 1] - tri[None, :, 0], tri[None, :, 2] - tri[None, :, 0]
    step = max(1, chunk // max(F, 1))
    for a in range(0, R if F else 0, step):
        oo, dd = o[a:a + step, None].detach(), d[a:a + step, None].detach()
        p = torch.linalg.cross(dd.expand(-1, F, -1), e2.expand(dd.shape[0], -1, -1))
        det = (e1 * p).sum(-1)
        ok = det != 0
        inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
        s = oo - tri[None, :, 0]
        q = torch.linalg.cross(s, e1.expand_as(s))
        b1, b2, t = (s * p).sum(-1) * inv, (dd * q).sum(-1) * inv, (e2 * q).sum(-1) * inv
        ok = ok & (b1 >= 0) & (b2 >= 0) & (b1 + b2 <= 1) & (t >= 0) & (t < limit[a:a + step, None])
        t_best, f_best = torch.where(ok, t, torch.full_like(t, math.inf)).min(1)  # first index among ties
        face[a:a + step] = torch.where(torch.isfinite(t_best), f_best, -1)
    t, bary = intersect_faces_unchecked(verts.double(), faces, o, d, face)
    return RayHit(face.reshape(shape), t.reshape(shape), bary.reshape(*shape, 3))


# --------------------------------------------------------------------------------------- leaving a surface
#: Wächter & Binder's constants for float32 positions: below ``ORIGIN`` a fixed step, else integer ULP steps.
_ORIGIN, _FLOAT_SCALE, _INT_SCALE = 1.0 / 32.0, 1.0 / 65536.0, 256.0


def offset_ray_origin(p: torch.Tensor, n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Move surface points off their surface, to the side a new ray leaves towards, so it does not hit the
    surface it starts on.

    The method of Wächter & Binder, "A Fast and Robust Method for Avoiding Self-Intersection" (Ray Tracing
    Gems, ch. 6, 2019): along the unit geometric normal ``n`` flipped to the side of ``d``, each coordinate
    moves by ``256 |n_i|`` float32 ULPs (integer steps on the float32 bit pattern, so the offset scales with
    the coordinate's magnitude), or by ``n_i / 65536`` for coordinates within ``1/32`` of zero, where ULPs
    are too small. Offsets are sized for float32 because the BVH intersects in float32; whatever the input
    dtype, the result is a float32-representable point (given in ``p``'s dtype). Compute ``p`` from the
    barycentrics (``sum_k bary_k v_k``), not as ``o + t d``: its error then scales with ``|p|`` as the
    method assumes.

    Args:
        p: ``[..., 3]`` float points on a surface.
        n: ``[..., 3]`` float geometric normals there (any length, non-zero; either orientation).
        d: ``[..., 3]`` float directions of the rays that will start at the result.

    Returns:
        ``[..., 3]`` ray origins in ``p``'s dtype.

    **Differentiability:** the offset is a constant: the gradient w.r.t. ``p`` is the identity, ``n`` and
    ``d`` get none.

    Example: ``p = (1, 0, 0)``, ``n = (1, 0, 0)``, ``d = (-1, 0, 0)`` gives ``(1 - 256 * 2**-24, 0, 0)``
    (the float32 ULP below 1 is ``2**-24``; coordinates 0 stay 0 since ``n_y = n_z = 0``).
    """
    check_tensor(p, "p", trailing=(3,), floating=True, finite=True)
    check_tensor(n, "n", trailing=(3,), floating=True, finite=True, device=p.device)
    check_tensor(d, "d", trailing=(3,), floating=True, finite=True, device=p.device)
    if n.shape != p.shape or d.shape != p.shape:
        raise ValueError(f"p, n and d must have the same shape [..., 3]; got {tuple(p.shape)}, {tuple(n.shape)} "
                         f"and {tuple(d.shape)}")
    return offset_ray_origin_unchecked(p, n, d)


def offset_ray_origin_unchecked(p: torch.Tensor, n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """:func:`offset_ray_origin` without its checks; same arguments and result."""
    with torch.no_grad():
        n32 = n.float()
        n32 = n32 / n32.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        n32 = torch.where(((n32 * d.float()).sum(-1, keepdim=True) < 0), -n32, n32)
        p32 = p.float()
        steps = (_INT_SCALE * n32).to(torch.int32)  # truncated towards zero, as the paper's int cast
        moved = (p32.view(torch.int32) + torch.where(p32 < 0, -steps, steps)).view(torch.float32)
        out = torch.where(p32.abs() < _ORIGIN, p32 + _FLOAT_SCALE * n32, moved)
        shift = out.to(p.dtype) - p.detach()
    return p + shift
