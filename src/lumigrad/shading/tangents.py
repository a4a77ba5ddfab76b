"""Tangent frames for normal mapping: per-vertex tangents from texture coordinates, and normal perturbation."""

from __future__ import annotations

import torch

from .._checks import broadcast_batch, check_indices, check_mesh, check_tensor


def vertex_tangents(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                    normals: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-corner tangents ``[F, 3, 4]`` (xyz + handedness w = +-1) from the uv layout.

    For each face, the tangent ``T`` and bitangent ``B`` solve ``e1 = du1 T + dv1 B``, ``e2 = du2 T + dv2 B``
    (edges in position and in uv). Face tangents are accumulated (area-weighted) at the vertices, then
    Gram-Schmidt orthogonalised against each corner's ``normals [F, 3, 3]`` (per corner, e.g. from
    ``interpolate``-ready corner normals); ``w`` is the sign of ``(N x T) . B``. uv's v axis points down
    (lumigrad's and glTF's texture convention) and glTF normal maps expect +y of the tangent frame towards
    -v, which the sign takes care of: ``B = w (N x T)`` points towards decreasing v (up in the texture image), where a
    glTF normal map's green channel points. Faces with a degenerate uv mapping contribute nothing.

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, NaN / Inf, face or uv indices out of range, ``normals``
            not one ``[3, 3]`` per face, mixed devices.

    **Differentiability:** w.r.t. ``verts``, ``uv`` and ``normals``.
    """
    check_mesh(verts, faces, what="vertex_tangents")
    check_tensor(uv, "uv", trailing=(None, 2), max_dims=2, floating=True, finite=True, device=verts.device)
    check_tensor(uv_faces, "uv_faces", trailing=(faces.shape[0], 3), max_dims=2, floating=False,
                 device=verts.device)
    check_indices(uv_faces, "uv_faces", uv.shape[0])
    check_tensor(normals, "normals", trailing=(faces.shape[0], 3, 3), max_dims=3, floating=True, finite=True,
                 device=verts.device)
    return vertex_tangents_unchecked(verts, faces, uv, uv_faces, normals, eps)


def vertex_tangents_unchecked(verts, faces, uv, uv_faces, normals, eps: float = 1e-12) -> torch.Tensor:
    """:func:`vertex_tangents` on inputs already validated (for :func:`lumigrad.render`, whose meshes were
    checked when built)."""
    p = verts[faces]  # [F, 3, 3]
    t = uv[uv_faces]  # [F, 3, 2]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = det.abs() > eps
    r = torch.where(ok, 1 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))[:, None]
    tangent = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r
    bitangent = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * r
    # B as solved points towards increasing v, i.e. down the texture image; glTF normal maps are +Y up.
    bitangent = -bitangent
    weight = torch.linalg.cross(e1, e2).norm(dim=-1, keepdim=True)  # area-weighted accumulation
    V = verts.shape[0]
    acc_t = torch.zeros(V, 3, dtype=verts.dtype, device=verts.device).index_add(
        0, faces.reshape(-1), (tangent * weight).repeat_interleave(3, 0))
    acc_b = torch.zeros(V, 3, dtype=verts.dtype, device=verts.device).index_add(
        0, faces.reshape(-1), (bitangent * weight).repeat_interleave(3, 0))
    T, B = acc_t[faces], acc_b[faces]  # [F, 3, 3]
    n = normals
    T = T - n * (n * T).sum(-1, keepdim=True)
    T = T / T.norm(dim=-1, keepdim=True).clamp_min(eps)
    w = torch.where((torch.linalg.cross(n, T) * B).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(T.dtype)
    return torch.cat([T, w], -1)


def corner_tangents(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                    normals: torch.Tensor, tangents=None) -> torch.Tensor:
    """``[F, 3, 4]`` tangents per face corner of one validated mesh: its own per-vertex ``tangents [V, 4]``
    (glTF ``TANGENT``) when given, else derived from the uv layout (:func:`vertex_tangents`) against the
    per-vertex ``normals [V, 3]``. For the renderers (no checks). **Differentiability:** as
    :func:`vertex_tangents`."""
    if tangents is not None:
        return tangents[faces]
    return vertex_tangents_unchecked(verts, faces, uv, uv_faces, normals[faces])


def frame_tangents(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                   eps: float = 1e-12) -> torch.Tensor:
    """``[F, 3, 4]`` Mitsuba's tangent of each triangle, the same at its three corners with handedness 1: ``dp/du``
    of its texture coordinates, ``(dv2 e1 - dv1 e2) / (du1 dv2 - du2 dv1)`` (``e1, e2`` the edges from corner 0 in
    position, ``du, dv`` in uv), or its first edge ``e1`` where the uv layout is degenerate (a shape without
    texture coordinates: Mitsuba's ``uv`` are then the barycentrics, whose ``dp/du`` is ``e1``). The frame of
    Mitsuba's anisotropic lobes (``sh_frame.s``, made orthogonal to the shading normal where it is used); unlike
    :func:`vertex_tangents` not averaged at the vertices. For the renderers (no checks).
    **Differentiability:** in ``verts`` and ``uv``."""
    p = verts[faces]  # [F, 3, 3]
    t = uv[uv_faces]  # [F, 3, 2]
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = (det.abs() > eps)[:, None]
    r = 1 / torch.where(ok, det[:, None], torch.ones_like(det[:, None]))
    dpdu = torch.where(ok, (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * r, e1)
    tangent = torch.cat([dpdu, torch.ones_like(dpdu[:, :1])], -1)
    return tangent[:, None].expand(-1, 3, -1)


def perturb_normal(normal: torch.Tensor, tangent: torch.Tensor, normal_tangent: torch.Tensor,
                   eps: float = 1e-12) -> torch.Tensor:
    """World normal ``[..., 3]`` from a tangent-space normal (``normal_tangent [..., 3]``, e.g. from
    :func:`sample_material`), the interpolated ``normal [..., 3]`` and ``tangent [..., 4]`` (xyz, w).

    ``n' = normalize(x T + y B + z N)`` with ``B = w (N x T)`` (MikkTSpace's per-pixel reconstruction).
    Shapes, dtypes and devices are checked (no host sync; values are the caller's).
    **Differentiability:** w.r.t. all three inputs.
    """
    check_tensor(normal, "normal", trailing=(3,), floating=True)
    check_tensor(tangent, "tangent", trailing=(4,), floating=True, device=normal.device)
    check_tensor(normal_tangent, "normal_tangent", trailing=(3,), floating=True, device=normal.device)
    broadcast_batch(normal.shape[:-1], "normal", tangent.shape[:-1], "tangent")
    broadcast_batch(normal.shape[:-1], "normal", normal_tangent.shape[:-1], "normal_tangent")
    return perturb_normal_unchecked(normal, tangent, normal_tangent, eps)


def perturb_normal_unchecked(normal: torch.Tensor, tangent: torch.Tensor, normal_tangent: torch.Tensor,
                             eps: float = 1e-12) -> torch.Tensor:
    """:func:`perturb_normal` without its checks (inputs built by a renderer)."""
    N = normal / normal.norm(dim=-1, keepdim=True).clamp_min(eps)
    T = tangent[..., :3] - N * (N * tangent[..., :3]).sum(-1, keepdim=True)
    T = T / T.norm(dim=-1, keepdim=True).clamp_min(eps)
    B = tangent[..., 3:4] * torch.linalg.cross(N, T)
    n = normal_tangent[..., 0:1] * T + normal_tangent[..., 1:2] * B + normal_tangent[..., 2:3] * N
    return n / n.norm(dim=-1, keepdim=True).clamp_min(eps)
