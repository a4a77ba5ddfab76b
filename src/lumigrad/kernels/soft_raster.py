"""Torch-facing wrappers of the soft rasterizer's kernels: candidate search (no autograd: the output is face ids;
:func:`find_candidates`, with :func:`find_candidates_reference` its plain twin) and the fused float32 aggregation
with its explicit backward (:func:`soft_aggregate`)."""

from __future__ import annotations

from typing import Optional

import torch

from . import raster_kernels as rk
from . import soft_raster_kernels as sk
from ._runtime import as_warp, ensure_init, launch, launch_partitioned, launch_split, num_workers


# Side of the square screen tiles of the candidate search: smaller tiles list fewer faces per pixel, larger ones
# bin faster (8: measured on the Spot cow and a 100k-face sphere at 256^2 and 512^2, docs/benchmarks.md).
SOFT_TILE = 8


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
    tile: int = SOFT_TILE,
    pixels_per_item: Optional[int] = None,
) -> torch.Tensor:
    """Return per pixel the ``k_max`` nearest faces within ``cutoff`` pixels, ``[N, H, W, k_max]`` int32.

    Arguments and result as :func:`find_candidates_reference` (the same ids in the same order, ties by face id);
    ``tile`` is the side of the screen tiles; ``pixels_per_item``: consecutive pixels of a tile one thread scans, one
    after the other (default: 1 on CUDA; on the CPU one thread per tile walks the tile's list face by face instead,
    ``soft_candidates_tiles``). Faster: each face gets a lower bound of its depth at any pixel
    (``soft_face_bounds``); faces bounded beyond ``far`` are dropped, the others are binned into ``tile x tile``
    tiles in increasing bound, and a pixel skips the rest of its tile's list once its ``k_max`` slots are full and
    the next bound exceeds its K-th depth (``soft_candidates_sorted``).
    """
    ensure_init()
    device = proj.device
    N, V, _ = proj.shape
    F = faces.shape[0]
    T = N * F
    tiles_x = (width + tile - 1) // tile
    tiles_y = (height + tile - 1) // tile
    num_tiles = N * tiles_x * tiles_y
    proj_w = as_warp(proj.reshape(N * V, 3).contiguous())
    faces_w = as_warp(faces)

    bbox = grown_boxes(proj, faces, face_skip, width, height, cutoff)[0]
    depth_lb = torch.empty(T, dtype=torch.float64, device=device)
    tile_count = torch.empty(T, dtype=torch.int32, device=device)
    launch_split(sk.soft_face_bounds, T,
                 [F, V, proj_w, faces_w, float(far), int(bool(affine_depth)), tile, as_warp(bbox), as_warp(depth_lb),
                  as_warp(tile_count)],
                 device, min_chunk=4096)
    order = torch.argsort(depth_lb, stable=True).to(torch.int32)
    total = int(tile_count.sum())
    counts = torch.zeros(num_tiles, dtype=torch.int32, device=device)
    launch(sk.soft_bin_count, T, [F, as_warp(bbox), tile, tiles_x, tiles_y, as_warp(counts)], device)
    offsets = torch.zeros(num_tiles + 1, dtype=torch.int32, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    cursor = offsets[:-1].clone()
    size = max(total, 1)
    entry_rank = torch.empty(size, dtype=torch.int32, device=device)
    entry_face = torch.empty(size, dtype=torch.int32, device=device)
    entry_lb = torch.empty(size, dtype=torch.float64, device=device)
    entry_bbox = torch.empty(size, 4, dtype=torch.int32, device=device)
    fill = [F, as_warp(order), as_warp(bbox), as_warp(depth_lb), tile, tiles_x, tiles_y, as_warp(cursor),
            as_warp(entry_rank), as_warp(entry_face), as_warp(entry_lb), as_warp(entry_bbox)]
    if device.type == "cpu":  # one thread over the ranks in order: every list comes out sorted
        launch(sk.soft_bin_fill, 1, [T, T] + fill, device)
    elif total > 0:  # one thread per rank, lists in any order: sort each list by rank
        launch(sk.soft_bin_fill, T, [1, T] + fill, device)
        entry_face, entry_lb, entry_bbox = sort_tile_lists(counts, entry_rank, T, entry_face, entry_lb, entry_bbox)

    P = N * height * width
    out_face = torch.empty(P * k_max, dtype=torch.int32, device=device)
    if device.type == "cpu" and pixels_per_item is None:
        _scan_tiles(proj_w, faces_w, offsets, entry_face, entry_lb, entry_bbox, N, F, V, width, height, tile, tiles_x,
                    tiles_y, cutoff, far, affine_depth, k_max, out_face)
        return out_face.view(N, height, width, k_max)
    span = pixels_per_item or 1  # (the CPU without pixels_per_item returned above)
    items = num_tiles * ((tile * tile + span - 1) // span)
    item_depth = torch.empty(items * k_max, dtype=torch.float64, device=device)
    launch_split(
        sk.soft_candidates_sorted, items,
        [F, V, proj_w, faces_w, as_warp(offsets), as_warp(entry_face), as_warp(entry_lb), as_warp(entry_bbox),
         width, height, tile, tiles_x, tiles_y, float(cutoff) ** 2, float(far), int(bool(affine_depth)), int(k_max),
         span, as_warp(out_face), as_warp(item_depth)],
        device, min_chunk=16,
    )
    return out_face.view(N, height, width, k_max)


# Tiles per launch of the CPU tile scan: bounds its scratch (K float64 sort keys and a count per pixel of the batch:
# 1024 tiles of 8 x 8 with K = 16 take 8.5 MiB).
SCAN_TILES_PER_LAUNCH = 1024


def _scan_tiles(proj_w, faces_w, offsets, entry_face, entry_lb, entry_bbox, N, F, V, width, height, tile, tiles_x,
                tiles_y, cutoff, far, affine_depth, k_max, out_face):
    """``soft_candidates_tiles`` over all tiles, in batches of ``SCAN_TILES_PER_LAUNCH`` (each split over threads)."""
    device = offsets.device
    num_tiles = N * tiles_x * tiles_y
    batch = min(num_tiles, SCAN_TILES_PER_LAUNCH)
    pixel_depth = torch.empty(batch * tile * tile * k_max, dtype=torch.float64, device=device)
    pixel_count = torch.empty(batch * tile * tile, dtype=torch.int32, device=device)
    common = [F, V, proj_w, faces_w, as_warp(offsets), as_warp(entry_face), as_warp(entry_lb), as_warp(entry_bbox),
              width, height, tile, tiles_x, tiles_y, float(cutoff) ** 2, float(far), int(bool(affine_depth)),
              int(k_max), as_warp(out_face), as_warp(pixel_depth), as_warp(pixel_count)]
    for first in range(0, num_tiles, batch):
        launch_split(sk.soft_candidates_tiles, min(batch, num_tiles - first), [first] + common, device, min_chunk=16)


def sort_tile_lists(counts: torch.Tensor, entry_rank: torch.Tensor, num_ranks: int, *columns: torch.Tensor):
    """Reorder the entries of each tile's list (``counts[i]`` consecutive entries for tile ``i``) by increasing
    ``entry_rank``; return ``columns`` (per-entry tensors) in that order."""
    entry_tile = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts.long())
    perm = torch.argsort(entry_tile * num_ranks + entry_rank[:entry_tile.shape[0]].long())
    return tuple(c[perm] for c in columns)


def grown_boxes(proj: torch.Tensor, faces: torch.Tensor, face_skip: torch.Tensor, width: int, height: int,
                cutoff: float):
    """Per face (view-major) the box of pixels whose centres lie within ``cutoff`` of the face's bounding box,
    ``[N*F, 4]`` int32 ``(x0, x1, y0, y1)`` (empty, ``x1 < x0``, for skipped faces), and the face counts of the
    hard rasterizer's ``TILE_SIZE`` tiles.

    The hard rasterizer's ``bin_count_range`` computes them, fed with a proxy triangle per face whose bounding box is the
    face's box grown by ``cutoff`` (corners ``(u0, v0), (u1, v0), (u0, v1)`` of the grown box ``[u0, u1] x
    [v0, v1]``; never zero-area since ``cutoff > 0``, so zero-area faces are binned too)."""
    ensure_init()
    device = proj.device
    N, V, _ = proj.shape
    F = faces.shape[0]
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
    tiles_x = (width + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    tiles_y = (height + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    dummy_i32 = as_warp(torch.zeros(1, dtype=torch.int32, device=device))
    bbox = torch.empty(N * F, 4, dtype=torch.int32, device=device)
    counts = torch.zeros(N * tiles_x * tiles_y, dtype=torch.int32, device=device)
    launch(rk.bin_count_range, N * F, [0, N * F, N * F, F, 3 * F, as_warp(proxy), as_warp(proxy_faces),
                                       as_warp(face_skip), 1,
                                       as_warp(torch.zeros(1, 3, dtype=torch.float64, device=device)), dummy_i32,
                                       dummy_i32, width, height, tiles_x, tiles_y, 0, as_warp(bbox), as_warp(counts)],
           device)
    return bbox, counts


@torch.no_grad()
def find_candidates_reference(
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

    Binning reuses the hard rasterizer's ``bin_count_range`` / ``bin_fill_range`` unchanged, on the faces' boxes grown by
    ``cutoff`` (:func:`grown_boxes`); each pixel then scans all faces listed in its ``TILE_SIZE`` tile.
    """
    ensure_init()
    device = proj.device
    N, V, _ = proj.shape
    F = faces.shape[0]
    T = N * F
    tiles_x = (width + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    tiles_y = (height + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    num_tiles = N * tiles_x * tiles_y

    bbox, counts = grown_boxes(proj, faces, face_skip, width, height, cutoff)
    ev_w = ef_w = as_warp(torch.zeros(1, dtype=torch.int32, device=device))
    extra_w = as_warp(torch.zeros(1, 3, dtype=torch.float64, device=device))
    bbox_w = as_warp(bbox)
    offsets = torch.zeros(num_tiles + 1, dtype=torch.int32, device=device)
    torch.cumsum(counts, 0, out=offsets[1:])
    total = int(offsets[-1])
    tile_list = torch.empty(max(total, 1), dtype=torch.int32, device=device)
    cursor = offsets[:-1].clone()
    launch(rk.bin_fill_range, T, [0, T, T, F, ev_w, ef_w, tiles_x, tiles_y, bbox_w, as_warp(cursor),
                                  as_warp(tile_list)], device)

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


class _SoftAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, uv, z, attrs, background, faces, ids, width, height, sigma, gamma, eps, near, far,
                affine_depth, record):
        ensure_init()
        dev = uv.device
        N, V = z.shape
        P = N * height * width
        k_max = ids.shape[-1]
        has_attrs = attrs is not None
        C = attrs.shape[-1] if has_attrs else 1
        attrs_f = attrs.reshape(N * V, C).contiguous() if has_attrs else uv.new_zeros(1, 1)
        bg_f = background.contiguous() if background is not None else uv.new_zeros(P if has_attrs else 1, C)
        silhouette = uv.new_empty(P)
        out = uv.new_empty(P, C) if has_attrs else uv.new_zeros(1, 1)
        log_t = uv.new_empty(P)
        top = uv.new_empty(P)
        denom = uv.new_empty(P)
        uv_f = uv.reshape(N * V, 2).contiguous()
        z_f = z.reshape(N * V).contiguous()
        ids_f = ids.reshape(-1)
        meta = (int(has_attrs), int(V), int(width), int(height), int(k_max), float(sigma), float(gamma), float(eps),
                float(far), float(far - near), int(bool(affine_depth)))
        pairs = _pair_record(ids_f, P, k_max) if record else [uv.new_zeros(1, dtype=torch.int32)] + \
            [uv.new_zeros(1)] * 3 + [uv.new_zeros(1, dtype=torch.int32)]
        launch_split(sk.soft_aggregate_forward, P,
                     [as_warp(uv_f), as_warp(z_f), as_warp(faces), as_warp(ids_f), as_warp(attrs_f), as_warp(bg_f),
                      *meta, as_warp(silhouette), as_warp(out), as_warp(log_t), as_warp(top), as_warp(denom),
                      int(bool(record)), *[as_warp(p) for p in pairs]],
                     dev, min_chunk=1024)
        ctx.save_for_backward(uv_f, z_f, faces, ids_f, attrs_f, out, log_t, top, denom, *pairs)
        ctx.meta = meta
        ctx.recorded = bool(record)
        ctx.shapes = (N, V, C, P, has_attrs, background is not None)
        return silhouette, (out if has_attrs else None)

    @staticmethod
    def backward(ctx, v_sil, v_out):
        if not ctx.recorded:  # soft_aggregate records whenever a backward can follow; the kernel needs the record
            raise RuntimeError("internal error: soft_aggregate's backward needs the forward's pair record (the forward "
                               "ran with grad mode off or with no input requiring grad)")
        uv_f, z_f, faces, ids_f, attrs_f, out, log_t, top, denom, *pairs = ctx.saved_tensors
        N, V, C, P, has_attrs, has_bg = ctx.shapes
        dev = uv_f.device
        want_geom = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        want_attrs = has_attrs and ctx.needs_input_grad[2]
        want_bg = has_attrs and has_bg and ctx.needs_input_grad[3]
        if v_sil is None:
            v_sil = uv_f.new_zeros(P)
        if v_out is None or not has_attrs:
            v_out = uv_f.new_zeros(P if has_attrs else 1, C)
        v_sil = v_sil.contiguous()
        v_out = v_out.contiguous()
        v_bg = uv_f.new_empty(P, C) if want_bg else uv_f.new_zeros(1, 1)
        args = [as_warp(uv_f), as_warp(z_f), as_warp(faces), as_warp(ids_f), as_warp(attrs_f), *ctx.meta,
                as_warp(out), as_warp(log_t), as_warp(top), as_warp(denom), *[as_warp(p) for p in pairs],
                as_warp(v_sil), as_warp(v_out),
                int(want_geom), int(want_attrs), int(want_bg)]
        size_uvz = (N * V if want_geom else 1, 3)
        size_attrs = (N * V if want_attrs else 1, C)
        parts = min(num_workers(), max(1, P // 4096))
        if dev.type == "cpu" and parts > 1 and (want_geom or want_attrs):
            # Atomics are not atomic across CPU threads: each thread scatters into its own buffers, then sum.
            bufs = [(uv_f.new_zeros(size_uvz), uv_f.new_zeros(size_attrs)) for _ in range(parts)]
            launch_partitioned(sk.soft_aggregate_backward, P,
                               lambda k: args + [as_warp(bufs[k][0]), as_warp(bufs[k][1]), as_warp(v_bg)],
                               parts, dev)
            v_uvz, v_attrs = bufs[0]
            for extra_uvz, extra_attrs in bufs[1:]:
                v_uvz += extra_uvz
                v_attrs += extra_attrs
        else:
            v_uvz = uv_f.new_zeros(size_uvz)
            v_attrs = uv_f.new_zeros(size_attrs)
            tail = [as_warp(v_uvz), as_warp(v_attrs), as_warp(v_bg)]
            if dev.type == "cpu" and (want_geom or want_attrs):
                launch(sk.soft_aggregate_backward, P, [0, P] + args + tail, dev)
            else:
                launch_split(sk.soft_aggregate_backward, P, args + tail, dev, min_chunk=1024)
        g_uv = v_uvz[:, :2].reshape(N, V, 2) if want_geom and ctx.needs_input_grad[0] else None
        g_z = v_uvz[:, 2].reshape(N, V) if want_geom and ctx.needs_input_grad[1] else None
        return (g_uv, g_z, v_attrs.reshape(N, V, C) if want_attrs else None, v_bg if want_bg else None) + \
            (None,) * 11


def _pair_record(ids_f: torch.Tensor, P: int, k_max: int):
    """Empty buffers for the forward's per-pair record (``soft_raster_kernels.py``): the slot offsets ``[P + 1]``
    int32 (each pixel's count of candidates, prefix-summed), then per pair ``x``, ``t[n]``, logit (float32) and
    flags (int32)."""
    offsets = torch.zeros(P + 1, dtype=torch.int32, device=ids_f.device)
    launch_split(sk.soft_pair_counts, P, [as_warp(ids_f), int(k_max), as_warp(offsets)], ids_f.device, min_chunk=4096)
    torch.cumsum(offsets, 0, out=offsets)
    pairs = max(int(offsets[-1]), 1)
    return [offsets] + [torch.empty(pairs, dtype=torch.float32, device=ids_f.device) for _ in range(3)] + \
        [torch.empty(pairs, dtype=torch.int32, device=ids_f.device)]


def soft_aggregate(uv: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, ids: torch.Tensor,
                   attrs: Optional[torch.Tensor], background: Optional[torch.Tensor], width: int, height: int,
                   sigma: float, gamma: float, eps: float, near: float, far: float, affine_depth: bool):
    """Fused soft coverage and aggregation over the candidates ``ids`` (float32), differentiable.

    Args:
        uv: ``[N, V, 2]`` float32 projected vertices (pixels). z: ``[N, V]`` float32 camera depths.
        faces: ``[F, 3]`` int32. ids: ``[N, H, W, K]`` int32 candidates from :func:`find_candidates`.
        attrs: ``[N, V, C]`` float32 or ``None``. background: ``[N * H * W, C]`` float32 or ``None`` (zeros).

    Returns ``(silhouette [N * H * W], attrs [N * H * W, C] or None)`` with the definitions of
    ``raster/soft.py``. Gradients reach ``uv``, ``z``, ``attrs`` and ``background``. Kept for the backward: the
    inputs, per-pixel tensors (the output attributes; log transmittance, max logit, softmax denominator; the pair
    offsets) and, when grad mode is on and an input requires grad, the forward's 16-byte record per (pixel,
    candidate) pair (``soft_raster_kernels.py``), from which the backward recomputes the rest bit for bit.
    """
    record = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (uv, z, attrs, background))
    return _SoftAggregate.apply(uv, z, attrs, background, faces, ids.contiguous(), width, height, sigma, gamma,
                                eps, near, far, affine_depth, record)
