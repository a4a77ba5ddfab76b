"""Skinning: deform a bind-pose mesh by per-joint skinning matrices.

Two blends are offered with one signature: :func:`linear_blend_skinning` (blend the matrices) and
:func:`dual_quaternion_skinning` (Kavan et al. 2007, blend unit dual quaternions; no candy-wrapper collapse,
rigid transforms only). Weight normalisation is decided in one place, :func:`normalize_skin_weights`:
weights whose rows do not sum to 1 (within 1e-3) are **renormalised with a warning** (glTF requires rows to sum
to 1, but exporters often write 8-bit quantised weights that do not); rows summing to 0 or negative weights are
refused with ``ValueError``.
"""

from __future__ import annotations

import warnings

import torch

from .._checks import check_indices, check_tensor
from ..conventions import matrix_to_quaternion, quaternion_multiply

__all__ = ["SkinWeightWarning", "normalize_skin_weights", "linear_blend_skinning", "dual_quaternion_skinning",
           "skin_normals", "skin_tangents", "blend_skin_matrices"]

_SUM_TOLERANCE = 1e-3
_DENSE_LIMIT = 1 << 25  # largest V * J blended as a dense [V, J] @ [J, 16] product


class SkinWeightWarning(UserWarning):
    """Skin weights were renormalised because their rows did not sum to 1."""


def normalize_skin_weights(weights: torch.Tensor, name: str = "weights", *, warn: bool = True) -> torch.Tensor:
    """Return ``weights`` ``[V, K]`` with rows summing to 1; warn (``SkinWeightWarning``) if that changed them.

    ``warn=False`` is for callers whose weights are an optimisation variable, normalised on purpose every step
    (:class:`lumigrad.scene.SkinnedMesh`).

    Raises ``ValueError`` naming ``name`` for negative weights, NaN / Inf, or a row that sums to 0.

    **Differentiability:** smooth in ``weights`` (division by the row sum; the check itself is not traced).
    """
    check_tensor(weights, name, trailing=(None, None), max_dims=2, floating=True, finite=True)
    w = weights.detach()
    if bool((w < 0).any()):
        raise ValueError(f"{name} must be non-negative; got a minimum of {float(w.min()):.4g}")
    total = w.sum(-1)
    if bool((total <= 0).any()):
        v = int((total <= 0).nonzero()[0])
        raise ValueError(f"{name} row {v} sums to 0: vertex {v} is bound to no joint")
    off = (total - 1).abs().max() if total.numel() else total.new_zeros(())
    if warn and float(off) > _SUM_TOLERANCE:
        warnings.warn(f"{name} rows do not sum to 1 (largest deviation {float(off):.3g}); renormalising",
                      SkinWeightWarning, stacklevel=3)
    return weights / weights.sum(-1, keepdim=True)


def _check_skin_inputs(verts, joints, weights, skin_mats, warn=True):
    check_tensor(verts, "verts", trailing=(None, 3), floating=True)
    V = verts.shape[-2]
    check_tensor(joints, "joints", trailing=(V, None), max_dims=2, floating=False)
    check_tensor(weights, "weights", trailing=(V, joints.shape[1]), max_dims=2, floating=True)
    check_tensor(skin_mats, "skin_mats", trailing=(None, 4, 4), floating=True)
    check_indices(joints, "joints", skin_mats.shape[-3])
    return normalize_skin_weights(weights, warn=warn)


def blend_skin_matrices(joints: torch.Tensor, weights: torch.Tensor, skin_mats: torch.Tensor) -> torch.Tensor:
    """Return the per-vertex blended matrices ``sum_k w[v,k] M[joints[v,k]]``, ``[..., V, R, C]`` (no checks).

    ``skin_mats`` is ``[..., J, R, C]``. With few joints per influence (``J <= 8 K``) and a small dense ``[V, J]``
    weight matrix (up to 2^25 entries) the blend is one matrix product ``W @ M`` (BLAS; faster than gathering
    for CesiumMan's 19 joints); otherwise the matrices are gathered one influence at a time (``V K`` instead of
    ``V J`` multiply-adds: 2.5x faster for 100k vertices and 64 joints, measured in ``benchmarks/skinning.py``).
    """
    V, K = joints.shape
    J, R, C = skin_mats.shape[-3:]
    if V * J <= _DENSE_LIMIT and J <= 8 * K:
        dense = weights.new_zeros(V, J).scatter_add(1, joints, weights)       # [V, J]
        flat = skin_mats.reshape(skin_mats.shape[:-2] + (R * C,))            # [..., J, R*C]
        return (dense @ flat).reshape(flat.shape[:-2] + (V, R, C))
    out = None
    for k in range(K):  # one [..., V, R, C] gather at a time: K times less memory than [..., V, K, R, C]
        term = weights[:, k, None, None] * skin_mats[..., joints[:, k], :, :]
        out = term if out is None else out + term
    return out


def linear_blend_skinning(verts: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor,
                          skin_mats: torch.Tensor) -> torch.Tensor:
    """Deform ``verts`` by linear blend skinning: ``v' = (sum_k w_k M_{j_k}) v``.

    Args:
        verts: bind-pose positions ``[V, 3]`` (or ``[..., V, 3]``, e.g. after batched morph targets, broadcast
            with the batch of ``skin_mats``).
        joints: joint indices ``[V, K]``, integer, each in ``[0, J)``.
        weights: skin weights ``[V, K]``, non-negative; renormalised with a ``SkinWeightWarning`` if a row does
            not sum to 1 (see :func:`normalize_skin_weights`).
        skin_mats: skinning matrices ``[..., J, 4, 4]`` (:func:`~lumigrad.animation.skin_matrices`).

    Returns:
        Posed positions ``[..., V, 3]``.

    **Differentiability:** bilinear in ``weights`` and ``skin_mats``, linear in ``verts``; ``joints`` is an index.

    Example: with every ``skin_mats`` the identity the output equals ``verts``.
    """
    weights = _check_skin_inputs(verts, joints, weights, skin_mats)
    return _lbs_unchecked(verts, joints, weights, skin_mats)


def _lbs_unchecked(verts, joints, weights, skin_mats):
    dtype = torch.promote_types(torch.promote_types(verts.dtype, weights.dtype), skin_mats.dtype)
    verts, weights, skin_mats = verts.to(dtype), weights.to(dtype), skin_mats.to(dtype)
    M = blend_skin_matrices(joints, weights, skin_mats[..., :3, :])   # [..., V, 3, 4]
    return (M[..., :3] * verts[..., None, :]).sum(-1) + M[..., 3]  # elementwise: faster than V tiny matmuls


def skin_normals(normals: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor,
                 skin_mats: torch.Tensor) -> torch.Tensor:
    """Transform bind-pose normals ``[V, 3]`` (or ``[..., V, 3]``) by the linear-blended matrices' inverse transpose, renormalised.

    Uses the cofactor matrix (``det(A) A^{-T}``), which needs no inverse and is the exact normal transform up to
    the positive scale removed by the renormalisation (for orientation-preserving blends).

    Returns:
        Unit normals ``[..., V, 3]``.

    **Differentiability:** smooth in ``normals``, ``weights`` and ``skin_mats`` away from zero-length results.
    """
    weights = _check_skin_inputs(normals, joints, weights, skin_mats)
    dtype = torch.promote_types(torch.promote_types(normals.dtype, weights.dtype), skin_mats.dtype)
    A = blend_skin_matrices(joints, weights.to(dtype), skin_mats.to(dtype)[..., :3, :3])
    c0 = torch.linalg.cross(A[..., 1, :], A[..., 2, :])
    c1 = torch.linalg.cross(A[..., 2, :], A[..., 0, :])
    c2 = torch.linalg.cross(A[..., 0, :], A[..., 1, :])
    cof = torch.stack([c0, c1, c2], dim=-2)                      # cofactor matrix = det(A) A^{-T}
    n = (cof @ normals.to(dtype)[..., None])[..., 0]
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def skin_tangents(tangents: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor,
                  skin_mats: torch.Tensor) -> torch.Tensor:
    """Transform bind-pose glTF tangents ``[V, 4]`` (or ``[..., V, 4]``: direction xyz, handedness w) by the
    linear-blended matrices: ``xyz' = normalize(A xyz)`` with ``A = sum_k w_k M_{j_k}[:3, :3]`` (a tangent lies
    in the surface, so it moves with the surface, unlike a normal), ``w`` unchanged.

    Returns:
        Tangents ``[..., V, 4]`` with unit xyz.

    **Differentiability:** smooth in ``tangents`` (xyz), ``weights`` and ``skin_mats`` away from zero-length
    results; the handedness is passed through.

    Example: a joint turning 90 degrees about z takes tangent ``(1, 0, 0, -1)`` to ``(0, 1, 0, -1)``.
    """
    check_tensor(tangents, "tangents", trailing=(None, 4), floating=True)
    weights = _check_skin_inputs(tangents[..., :3], joints, weights, skin_mats)
    dtype = torch.promote_types(torch.promote_types(tangents.dtype, weights.dtype), skin_mats.dtype)
    A = blend_skin_matrices(joints, weights.to(dtype), skin_mats.to(dtype)[..., :3, :3])
    xyz = (A @ tangents.to(dtype)[..., :3, None])[..., 0]
    xyz = xyz / xyz.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.cat([xyz, tangents.to(dtype)[..., 3:].expand(xyz.shape[:-1] + (1,))], dim=-1)


def _matrix_to_dual_quaternion(M: torch.Tensor):
    """Rigid ``[..., 4, 4]`` -> (real ``[..., 4]``, dual ``[..., 4]``) with ``dual = 0.5 * (0, t) * real``."""
    real = matrix_to_quaternion(M[..., :3, :3])
    t = M[..., :3, 3]
    tq = torch.cat([torch.zeros_like(t[..., :1]), t], dim=-1)
    return real, 0.5 * quaternion_multiply(tq, real)


def dual_quaternion_skinning(verts: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor,
                             skin_mats: torch.Tensor) -> torch.Tensor:
    """Deform ``verts`` by dual quaternion skinning (Kavan, Collins, Zara and O'Sullivan 2007).

    Each skinning matrix becomes a unit dual quaternion ``(q_r, q_d)``; per vertex they are blended with the
    weights after flipping the sign of any whose real part points away from the vertex's dominant
    (largest-weight) joint (antipodality), the blend is normalised by ``|q_r|``, and the vertex is moved by
    the resulting rigid transform.

    DQS represents rigid transforms only: the rotation part of each skinning matrix is projected to the
    nearest rotation (through the quaternion conversion) and any **scale or shear in ``skin_mats`` is
    ignored**. Use :func:`linear_blend_skinning` for scaled joints.

    Args / Returns: as :func:`linear_blend_skinning`.

    **Differentiability:** smooth in ``weights``, ``verts`` and ``skin_mats`` (through the matrix -> quaternion
    conversion, smooth within each Shepperd branch); the antipodality sign is piecewise constant.

    Example: when every vertex is bound to a single joint it equals linear blend skinning for rigid matrices.
    """
    weights = _check_skin_inputs(verts, joints, weights, skin_mats)
    dtype = torch.promote_types(torch.promote_types(verts.dtype, weights.dtype), skin_mats.dtype)
    verts, weights, skin_mats = verts.to(dtype), weights.to(dtype), skin_mats.to(dtype)
    real, dual = _matrix_to_dual_quaternion(skin_mats)            # [..., J, 4]
    r = real[..., joints, :]                                     # [..., V, K, 4]
    d = dual[..., joints, :]
    dominant = weights.argmax(-1)                                # [V]
    pivot = torch.gather(r, -2, dominant[:, None, None].expand(r.shape[:-2] + (1, 4)))  # [..., V, 1, 4]
    sign = torch.where((r * pivot).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(dtype)
    w = weights[..., None] * sign                                # [..., V, K, 1]
    br = (w * r).sum(-2)
    bd = (w * d).sum(-2)
    norm = br.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    br, bd = br / norm, bd / norm
    # rotate: v' = R(br) v + t, with t = 2 * vec(bd * conj(br))
    w0, xyz = br[..., :1], br[..., 1:]
    xyz, v = torch.broadcast_tensors(xyz, verts)
    uv = torch.linalg.cross(xyz, v)
    rotated = v + 2 * (w0 * uv + torch.linalg.cross(xyz, uv))
    conj = torch.cat([br[..., :1], -br[..., 1:]], dim=-1)
    t = 2 * quaternion_multiply(bd, conj)[..., 1:]
    return rotated + t
