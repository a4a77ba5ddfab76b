"""Pure-PyTorch float64 reference twin of :func:`lumigrad.soft_rasterize`, for tests on tiny inputs.

Brute force: every face against every pixel (O(pixels x faces)), no cutoff, no top-K, dense per-face images
aggregated with ``torch.logsumexp``. It shares no code with the fast path: point-to-segment distances are
written out per edge, inside-ness and barycentrics come from a 2x2 linear solve per face.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..cameras.camera import Camera
from .soft import SoftRaster


def _closest_on_segment(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """``(t [P], squared distance [P])`` of the point of segment ``a b`` (``[2]`` each) closest to ``p [P, 2]``."""
    e = b - a
    l2 = float((e * e).sum().detach())
    if l2 == 0.0:
        t = torch.zeros_like(p[:, 0])
    else:
        t = (((p - a) * e).sum(-1) / (e * e).sum()).clamp(0.0, 1.0)
    q = a + t[:, None] * e
    return t, ((p - q) ** 2).sum(-1)


def soft_rasterize_ref(
    verts: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    attrs: Optional[torch.Tensor] = None,
    *,
    background: Optional[torch.Tensor] = None,
    sigma: float = 1.0,
    gamma: float = 1e-4,
    eps: float = 1e-3,
) -> SoftRaster:
    """Brute-force twin of :func:`~lumigrad.soft_rasterize` (same definitions, every face at every pixel).

    ``verts [V, 3]`` or ``[N, V, 3]`` with a camera of batch shape ``[]`` or ``[N]``; ``attrs [V, C]`` or
    ``[N, V, C]``. Returns ``SoftRaster`` with ``face_ids`` an empty ``[..., H, W, 0]`` tensor.
    Differentiable with autograd like the fast op; use float64.
    """
    H, W = camera.height, camera.width
    batched = len(camera.batch_shape) > 0 or verts.dim() == 3
    Ks, w2cs = camera.flat()
    N = max(Ks.shape[0], verts.shape[0] if verts.dim() == 3 else 1)
    v_all = verts.expand(N, *verts.shape[-2:]) if verts.dim() == 3 else verts[None].expand(N, -1, -1)
    Ks, w2cs = Ks.expand(N, 3, 3), w2cs.expand(N, 4, 4)
    a_all = None
    if attrs is not None:
        a_all = attrs.expand(N, *attrs.shape[-2:]) if attrs.dim() == 3 else attrs[None].expand(N, -1, -1)
    vv, uu = torch.meshgrid(torch.arange(H, dtype=verts.dtype) + 0.5, torch.arange(W, dtype=verts.dtype) + 0.5,
                            indexing="ij")
    p = torch.stack([uu, vv], -1).reshape(-1, 2)
    near, far = camera.near, camera.far
    sils, imgs = [], []
    for n in range(N):
        vc = v_all[n] @ w2cs[n, :3, :3].T + w2cs[n, :3, 3]
        K = Ks[n]
        if camera.projection == "orthographic":
            xy = vc[:, :2]
        else:
            xy = vc[:, :2] / vc[:, 2:]
        uv = torch.stack([K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2], K[1, 1] * xy[:, 1] + K[1, 2]], -1)
        log_transmit = torch.zeros(H * W, dtype=verts.dtype)
        logits = [torch.full((H * W,), eps / gamma, dtype=verts.dtype)]
        colours = [None if background is None else background.expand(N, H, W, -1)[n].reshape(H * W, -1)]
        for f in range(faces.shape[0]):
            idx = [int(i) for i in faces[f]]
            z = vc[idx, 2]
            if bool((z < near).any()):
                continue
            c = uv[idx]  # [3, 2]
            # Inside test and barycentrics: solve [c1 - c0, c2 - c0] (l1, l2) = p - c0.
            T = torch.stack([c[1] - c[0], c[2] - c[0]], -1)
            det = float(torch.linalg.det(T.detach()))
            best_d2 = torch.full((H * W,), math.inf, dtype=verts.dtype)
            lam_out = torch.zeros(H * W, 3, dtype=verts.dtype)
            for k in range(3):
                t, d2 = _closest_on_segment(p, c[k], c[(k + 1) % 3])
                better = d2 < best_d2
                lam_k = torch.zeros(H * W, 3, dtype=verts.dtype)
                lam_k[:, k] = 1 - t
                lam_k[:, (k + 1) % 3] = t
                lam_out = torch.where(better[:, None], lam_k, lam_out)
                best_d2 = torch.where(better, d2, best_d2)
            if det != 0.0:
                l12 = torch.linalg.solve(T, (p - c[0]).T).T
                lam_in = torch.cat([1 - l12.sum(-1, keepdim=True), l12], -1)
                inside = (lam_in > 0).all(-1)
            else:
                lam_in = torch.zeros_like(lam_out)
                inside = torch.zeros(H * W, dtype=torch.bool)
            lam = torch.where(inside[:, None], lam_in, lam_out)
            sign = torch.where(inside, 1.0, -1.0).to(verts.dtype)
            D = torch.sigmoid(sign * best_d2 / sigma)
            if camera.projection == "orthographic":
                depth = lam @ z
                pc = lam
            else:
                depth = 1 / (lam / z).sum(-1)
                pc = lam / z * depth[:, None]
            ok = depth <= far
            log_transmit = log_transmit + torch.where(ok, torch.log1p(-D), torch.zeros_like(D))
            zn = (far - depth) / (far - near)
            logits.append(torch.where(ok, torch.log(D) + zn / gamma, torch.full_like(D, -math.inf)))
            colours.append(None if a_all is None else pc @ a_all[n][idx])
        sils.append(1 - torch.exp(log_transmit))
        if a_all is not None:
            L = torch.stack(logits)  # [1 + F', P]
            w = torch.softmax(L, 0)
            C = a_all.shape[-1]
            cols = [torch.zeros(H * W, C, dtype=verts.dtype) if x is None else x for x in colours]
            imgs.append((w[..., None] * torch.stack(cols)).sum(0).reshape(H, W, C))
    sil = torch.stack(sils).reshape(N, H, W)
    img = torch.stack(imgs) if imgs else None
    if not batched:
        sil = sil[0]
        img = None if img is None else img[0]
    ids = torch.empty(sil.shape + (0,), dtype=torch.int32)
    return SoftRaster(sil, img, ids)
