"""Torch-facing wrapper of the soft rasterizer's candidate kernel (no autograd: the output is face ids)."""

from __future__ import annotations

import torch

from . import raster_kernels as rk
from . import soft_raster_kernels as sk
from ._runtime import as_warp, ensure_init, launch, launch_split


@torch.no_grad()
def find_candidates(
    proj: torch.Tensor,
    faces: torch.Tensor,
    face_skip: torch.Tensor,
    width: int,
    height: int,
    cutoff: float,
    far: float,
    k_max: int,
    affine_depth: bool = False,
) -> torch.Tensor:
    """Return per pixel the ``k_max`` nearest faces within ``cutoff`` pixels, ``[N, H, W, k_max]`` int32.

    Args:
        proj: projected vertices ``[N, V, 3]`` float64 as (u, v, z): pixel coordinates and camera depth.
        faces: ``[F, 3]`` int32, validated by the caller.
        face_skip: ``[N*F]`` int8, non-zero for faces that are never candidates (a vertex before the near plane).
        cutoff: the largest pixel-centre-to-triangle distance of a candidate, in pixels.
        far: candidates deeper than ``far`` (at the pixel's clamped barycentrics) are dropped.
        k_max: candidates kept per pixel, nearest first (ties by face id); -1 pads the rest.
        affine_depth: depth is affine in screen space (orthographic) instead of ``1 / z`` affine.

    Binning reuses the hard rasterizer's ``bin_count`` / ``bin_fill`` unchanged: each face is handed to them
    as a proxy triangle whose pixel bounding box is the face's box grown by ``cutoff`` (corners
    ``(u0, v0), (u1, v0), (u0, v1)`` of the grown box ``[u0, u1] x [v0, v1]``; never zero-area since
    ``cutoff > 0``, so zero-area faces are binned too).
    """
    ensure_init()
    device = proj.device
    N, V, _ = proj.shape
    F = faces.shape[0]
    T = N * F
    tiles_x = (width + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    tiles_y = (height + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    num_tiles = N * tiles_x * tiles_y

    tri = proj[:, faces.long()]  # [N, F, 3, 3]
    lo = tri[..., :2].amin(-2) - cutoff  # [N, F, 2]
    hi = tri[..., :2].amax(-2) + cutoff
    skip = face_skip.reshape(N, F).bool()
    lo = torch.where(skip[..., None], torch.zeros_like(lo), lo)
    hi = torch.where(skip[..., None], torch.ones_like(hi), hi)
    z = torch.zeros_like(lo[..., 0])
    proxy = torch.stack([torch.stack([lo[..., 0], lo[..., 1], z], -1),
                         torch.stack([hi[..., 0], lo[..., 1], z], -1),
                         torch.stack([lo[..., 0], hi[..., 1], z], -1)], -2).reshape(N * F * 3, 3).contiguous()
    proxy_faces = torch.arange(F * 3, dtype=torch.int32, device=device).reshape(F, 3)
    dummy_f64 = torch.zeros(1, 3, dtype=torch.float64, device=device)
    dummy_i32 = torch.zeros(1, dtype=torch.int32, device=device)
    ev_w = ef_w = as_warp(dummy_i32)
    extra_w = as_warp(dummy_f64)

    bbox = torch.empty(T, 4, dtype=torch.int32, device=device)
    counts = torch.zeros(num_tiles, dtype=torch.int32, device=device)
    bbox_w = as_warp(bbox)
    launch(rk.bin_count, T, [T, F, 3 * F, as_warp(proxy), as_warp(proxy_faces), as_warp(face_skip), extra_w,
                             ev_w, ef_w, width, height, tiles_x, tiles_y, 0, bbox_w, as_warp(counts)], device)
    offsets = torch.zeros(num_tiles + 1, dtype=torch.int32, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    total = int(offsets[-1])
    tile_list = torch.empty(max(total, 1), dtype=torch.int32, device=device)
    cursor = offsets[:-1].clone()
    launch(rk.bin_fill, T, [T, F, ev_w, ef_w, tiles_x, tiles_y, bbox_w, as_warp(cursor), as_warp(tile_list)], device)

    P = N * height * width
    out_face = torch.empty(P * k_max, dtype=torch.int32, device=device)
    scratch = torch.empty(P * k_max, dtype=torch.float64, device=device)
    launch_split(
        sk.soft_candidates, P,
        [T, F, V, as_warp(proj.reshape(N * V, 3).contiguous()), as_warp(faces), extra_w, bbox_w, as_warp(offsets),
         as_warp(tile_list), width, height, tiles_x, tiles_y, float(cutoff) ** 2, float(far), int(bool(affine_depth)),
         int(k_max), as_warp(out_face), as_warp(scratch)],
        device, min_chunk=1024,
    )
    return out_face.view(N, height, width, k_max)
