"""Pure-PyTorch reference twins of the raster ops, for tests on tiny inputs (use float64).

They share no code with the kernels: brute force over every (pixel, face) pair, explicit loops, and
``torch.nn.functional.grid_sample`` for texture filtering. Slow by design; O(pixels x faces).

Orthographic cameras are handled in screen space instead of with camera-frame ray forms: pixel centres are
mapped to the camera's xy-plane with a linear solve against ``K`` (rasterize), or vertices are projected to
pixels written out by hand (antialias), and barycentrics come from 2D linear systems / 2D edge functions.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..cameras.camera import Camera
from .fragments import Fragments


def _pixel_rays(camera: Camera, K: torch.Tensor) -> torch.Tensor:
    """``[H*W, 3]`` rays for one view's ``K [3, 3]`` (row-major pixel order)."""
    H, W = camera.height, camera.width
    v, u = torch.meshgrid(torch.arange(H, dtype=K.dtype) + 0.5, torch.arange(W, dtype=K.dtype) + 0.5,
                          indexing="ij")
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)


def _pixel_centres(camera: Camera, dtype) -> torch.Tensor:
    """``[H*W, 2]`` pixel centres ``(u, v)`` in row-major order."""
    v, u = torch.meshgrid(torch.arange(camera.height, dtype=dtype) + 0.5,
                          torch.arange(camera.width, dtype=dtype) + 0.5, indexing="ij")
    return torch.stack([u, v], -1).reshape(-1, 2)


def _rasterize_ref_orthographic(vc: torch.Tensor, faces: torch.Tensor, camera: Camera, K: torch.Tensor,
                                cull: str) -> Fragments:
    """Orthographic brute force: per (pixel, face) solve ``[[x0, x1, x2], [y0, y1, y2], [1, 1, 1]] b = (x, y, 1)``."""
    H, W = camera.height, camera.width
    uv = _pixel_centres(camera, K.dtype)
    uv1 = torch.cat([uv, torch.ones_like(uv[:, :1])], -1)
    xy1 = torch.linalg.solve(K, uv1.T).T  # [P, 3] = (x, y, 1): the ray starts at (x, y, 0) and runs along +z
    tri = vc[faces]  # [F, 3 corners, 3]
    T = torch.stack([tri[..., 0], tri[..., 1], torch.ones_like(tri[..., 0])], -2)  # [F, 3, 3], corners as columns
    area = torch.linalg.det(T)  # = n_z: negative for front faces (counter-clockwise seen from the camera)
    safe = torch.where((area != 0)[:, None, None], T, torch.eye(3, dtype=T.dtype).expand_as(T))
    bary = torch.linalg.solve(safe[None], xy1[:, None, :, None].expand(-1, T.shape[0], -1, -1))[..., 0]  # [P, F, 3]
    depth = (bary * tri[None, :, :, 2]).sum(-1)
    ok = (bary > 0).all(-1) & (area != 0)[None] & (depth >= camera.near) & (depth <= camera.far)
    if cull == "back":
        ok &= (area < 0)[None]
    elif cull == "front":
        ok &= (area > 0)[None]
    key = torch.where(ok, depth, torch.full_like(depth, float("inf")))
    best = key.argmin(-1)
    hit = ok.any(-1)
    face_ids = torch.where(hit, best, torch.full_like(best, -1))
    rows = torch.arange(uv.shape[0])
    covered = hit.nonzero()[:, 0]
    return Fragments(face_ids.reshape(H, W).to(torch.int32), covered, bary[rows, best][covered],
                     depth[rows, best][covered])


def rasterize_ref(verts: torch.Tensor, faces: torch.Tensor, camera: Camera, cull: str = "none") -> Fragments:
    """Brute-force twin of :func:`lumigrad.rasterize` for one view: ``verts [V, 3]``, unbatched camera.

    Every pixel ray is intersected with every face; the nearest hit with depth in [near, far] wins (ties to
    the lower face index). Back faces are those seen clockwise, i.e. ``det(v0, v1, v2) > 0`` in the camera
    frame (orthographic: a positive signed area of the corners' (x, y), i.e. ``n_z > 0``).
    """
    K, w2c = camera.K.reshape(3, 3), camera.world_to_cam.reshape(4, 4)
    vc = verts @ w2c[:3, :3].T + w2c[:3, 3]
    if camera.projection == "orthographic":
        return _rasterize_ref_orthographic(vc, faces, camera, K, cull)
    tri = vc[faces]  # [F, 3, 3]
    c = torch.stack([torch.linalg.cross(tri[:, 1], tri[:, 2]), torch.linalg.cross(tri[:, 2], tri[:, 0]),
                     torch.linalg.cross(tri[:, 0], tri[:, 1])], 1)  # [F, 3, 3]
    det = (tri[:, 0] * c[:, 0]).sum(-1)
    d = _pixel_rays(camera, K)  # [P, 3]
    w = torch.einsum("pk,fik->pfi", d, c)  # [P, F, 3]
    S = w.sum(-1)
    inside = ((w > 0).all(-1) | (w < 0).all(-1)) & (S != 0)
    depth = det / torch.where(S == 0, torch.ones_like(S), S)
    ok = inside & (depth >= camera.near) & (depth <= camera.far)
    if cull == "back":
        ok &= (det < 0)[None]
    elif cull == "front":
        ok &= (det > 0)[None]
    key = torch.where(ok, depth, torch.full_like(depth, float("inf")))
    best = key.argmin(-1)  # argmin returns the first minimum: the lower face index on ties
    hit = ok.any(-1)
    face_ids = torch.where(hit, best, torch.full_like(best, -1))
    rows = torch.arange(d.shape[0])
    bary = w[rows, best] / S[rows, best][:, None]
    z = depth[rows, best]
    H, W = camera.height, camera.width
    bary = torch.where(hit[:, None], bary, torch.zeros_like(bary))
    z = torch.where(hit, z, torch.zeros_like(z))
    covered = hit.nonzero()[:, 0]
    return Fragments(face_ids.reshape(H, W).to(torch.int32), covered, bary[covered], z[covered])


def interpolate_ref(attrs: torch.Tensor, frags: Fragments, faces: torch.Tensor) -> torch.Tensor:
    """Loop twin of :func:`lumigrad.interpolate` for one view: ``attrs [A, C]``."""
    H, W = frags.face_ids.shape[-2:]
    out = attrs.new_zeros(H, W, attrs.shape[-1])
    for i in range(H):
        for j in range(W):
            f = int(frags.face_ids[i, j])
            if f >= 0:
                out[i, j] = sum(frags.bary[i, j, k] * attrs[faces[f, k]] for k in range(3))
    return out


def _tile_for_wrap(tex: torch.Tensor, wrap: str) -> torch.Tensor:
    """3x3 tiling of ``tex [C, H, W]`` that reproduces the wrap mode for coordinates in [-1, 2]."""
    if wrap == "repeat":
        row = torch.cat([tex, tex, tex], -1)
        return torch.cat([row, row, row], -2)
    flip_w = tex.flip(-1)
    row = torch.cat([flip_w, tex, flip_w], -1)
    flip_h = row.flip(-2)
    return torch.cat([flip_h, row, flip_h], -2)


def _grid_sample_level(tex: torch.Tensor, uv: torch.Tensor, wrap: str, mode: str) -> torch.Tensor:
    """Sample ``tex [Ht, Wt, C]`` at ``uv [S, 2]`` with grid_sample (align_corners=False, texel centres)."""
    t = tex.permute(2, 0, 1)[None]
    if wrap == "clamp":
        grid = uv * 2 - 1
        out = F.grid_sample(t, grid[None, None], mode=mode, padding_mode="border", align_corners=False)
    else:
        if bool(((uv < -1) | (uv > 2)).any()):
            raise ValueError("texture_ref supports uv in [-1, 2] for repeat / mirror")
        tiled = _tile_for_wrap(t[0], wrap)[None]
        grid = ((uv + 1) / 3) * 2 - 1
        out = F.grid_sample(tiled, grid[None, None], mode=mode, padding_mode="border", align_corners=False)
    return out[0, :, 0].T  # [S, C]


def texture_ref(tex: torch.Tensor, uv: torch.Tensor, *, uv_derivs: Optional[torch.Tensor] = None,
                filter: str = "bilinear", wrap: str = "repeat") -> torch.Tensor:
    """grid_sample twin of :func:`lumigrad.texture` for a shared texture ``[Ht, Wt, C]``, ``uv [..., 2]``."""
    from .texture import build_mipmaps  # the pyramid is plain average pooling, checked separately

    flat = uv.reshape(-1, 2)
    mode = "nearest" if filter == "nearest" else "bilinear"
    if filter != "trilinear":
        return _grid_sample_level(tex, flat, wrap, mode).reshape(uv.shape[:-1] + (tex.shape[-1],))
    levels = build_mipmaps(tex)
    d = uv_derivs.reshape(-1, 2, 2) * torch.tensor([tex.shape[1], tex.shape[0]], dtype=uv.dtype)[:, None]
    rho = torch.maximum(d[..., 0].norm(dim=-1), d[..., 1].norm(dim=-1))
    lod = torch.log2(rho.clamp_min(1e-10)).clamp(0, len(levels) - 1)
    samples = torch.stack([_grid_sample_level(lv, flat, wrap, mode) for lv in levels], 0)  # [L, S, C]
    lo = lod.floor().long()
    hi = (lo + 1).clamp(max=len(levels) - 1)
    frac = (lod - lo.to(lod.dtype))[:, None]
    rows = torch.arange(flat.shape[0])
    out = samples[lo, rows] * (1 - frac) + samples[hi, rows] * frac
    return out.reshape(uv.shape[:-1] + (tex.shape[-1],))


def antialias_ref(color: torch.Tensor, frags: Fragments, verts: torch.Tensor, faces: torch.Tensor,
                  camera: Camera) -> torch.Tensor:
    """Loop twin of :func:`lumigrad.antialias` for one view (``color [H, W, C]``, ``verts [V, 3]``)."""
    K, w2c = camera.K.reshape(3, 3), camera.world_to_cam.reshape(4, 4)
    vc = verts @ w2c[:3, :3].T + w2c[:3, 3]
    H, W = camera.height, camera.width
    rays = _pixel_rays(camera, K).reshape(H, W, 3)
    ortho = camera.projection == "orthographic"
    fx, fy, skew = K[0, 0], K[1, 1], K[0, 1]
    # Orthographic: vertices in pixels, written out (u = fx x + s y + cx, v = fy y + cy); 2D edge functions.
    pix = torch.stack([fx * vc[:, 0] + skew * vc[:, 1] + K[0, 2], fy * vc[:, 1] + K[1, 2]], -1)
    ids = frags.face_ids
    depth = frags.to_dense(frags.depth_covered)  # [H, W]
    # Neighbour across each edge, by brute force over all faces.
    Fn = faces.shape[0]
    edges = {}
    for f in range(Fn):
        for e in range(3):
            a, b = int(faces[f, e]), int(faces[f, (e + 1) % 3])
            edges.setdefault((min(a, b), max(a, b)), []).append(f)

    def corners(f):
        return [vc[faces[f, k]] for k in range(3)]

    def corners_px(f):
        return [pix[faces[f, k]] for k in range(3)]

    def edge_value(f, e, ij):
        """Edge function of edge e (corner e -> e + 1) of face f at pixel centre ij (both signs possible)."""
        if ortho:
            a, b = corners_px(f)[e], corners_px(f)[(e + 1) % 3]
            p = torch.tensor([ij[1] + 0.5, ij[0] + 0.5], dtype=pix.dtype)
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
        v = corners(f)
        return torch.dot(rays[ij], torch.linalg.cross(v[e], v[(e + 1) % 3]))

    def facing(f):
        if ortho:
            a, b, c = corners_px(f)
            return bool((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) > 0)
        v0, v1, v2 = corners(f)
        return bool(torch.dot(v0, torch.linalg.cross(v1, v2)) > 0)

    def covers(f, ij):
        w = torch.stack([edge_value(f, k, ij) for k in range(3)])
        if not (bool((w > 0).all()) or bool((w < 0).all())):
            return False
        if ortho:  # barycentric k is the edge function of the opposite edge, normalised
            bary = torch.stack([w[1], w[2], w[0]]) / w.sum()
            return bool(sum(bary[k] * corners(f)[k][2] for k in range(3)) > 0)
        v = corners(f)
        return bool(torch.dot(v[0], torch.linalg.cross(v[1], v[2])) / w.sum() > 0)

    def exit_edge(f, ij_in, ij_out):
        sgn = 1.0 if float(sum(edge_value(f, e, ij_in) for e in range(3)).detach()) >= 0 else -1.0
        best, best_t = None, None
        for e in range(3):
            wi, wo = sgn * edge_value(f, e, ij_in), sgn * edge_value(f, e, ij_out)
            if wi > 0 and wo < wi:
                t = wi / (wi - wo)
                if best_t is None or t < best_t:
                    best, best_t = e, t
        return best, best_t

    def normal_uv(f, e):
        """Screen-space gradient (dw/du, dw/dv) of edge e's function (up to a positive factor)."""
        if ortho:
            a, b = corners_px(f)[e], corners_px(f)[(e + 1) % 3]
            return -(b[1] - a[1]), b[0] - a[0]
        v = corners(f)
        n = torch.linalg.cross(v[e], v[(e + 1) % 3])
        return n[0] / fx, n[1] / fy - skew * n[0] / (fx * fy)

    out = color.clone()
    for i in range(H):
        for j in range(W):
            for di, dj in ((0, 1), (1, 0)):
                qi, qj = i + di, j + dj
                if qi >= H or qj >= W or ids[i, j] == ids[qi, qj]:
                    continue
                fa, fb = int(ids[i, j]), int(ids[qi, qj])
                da, db = (i, j), (qi, qj)
                if fb < 0:
                    f, q_in = fa, False
                elif fa < 0:
                    f, q_in = fb, True
                else:
                    b_in_a, a_in_b = covers(fa, db), covers(fb, da)
                    if b_in_a and a_in_b:
                        continue
                    if b_in_a != a_in_b:
                        f, q_in = (fa, False) if a_in_b else (fb, True)
                    else:
                        f, q_in = (fb, True) if depth[qi, qj] < depth[i, j] else (fa, False)
                d_in, d_out = (db, da) if q_in else (da, db)
                f_other = fa if q_in else fb
                best, best_t = None, None
                for _ in range(8):  # walk across non-silhouette edges, as the kernel does
                    best, best_t = exit_edge(f, d_in, d_out)
                    if best is None:
                        break
                    key = tuple(sorted((int(faces[f, best]), int(faces[f, (best + 1) % 3]))))
                    others = [g for g in edges[key] if g != f]
                    if len(others) != 1 or facing(others[0]) != facing(f):
                        break
                    if others[0] == f_other:
                        best = None
                        break
                    f = others[0]
                else:
                    best = None
                if best is None:
                    continue
                normal_u, normal_v = normal_uv(f, best)
                if bool(abs(normal_u) >= abs(normal_v)) != (dj == 1):
                    continue  # blended along the other axis
                p_in, p_out = ((qi, qj), (i, j)) if q_in else ((i, j), (qi, qj))
                c_in, c_out = color[p_in], color[p_out]
                if best_t > 0.5:
                    out[p_out] = out[p_out] + (best_t - 0.5) * (c_in - c_out)
                else:
                    out[p_in] = out[p_in] + (0.5 - best_t) * (c_out - c_in)
    return out
