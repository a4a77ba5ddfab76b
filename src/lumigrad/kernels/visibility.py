"""Torch-facing wrapper of the raster visibility kernels (no autograd: the outputs are ids and depths)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import warp as wp

from .._checks import DeferredChecks
from . import raster_kernels as rk
from .projection_kernels import project_vertices
from ._runtime import ensure_init, launch_partitioned, launch_split, num_workers

CULL_MODES = {"none": 0, "back": 1, "front": 2}


#: ``raster_tiles`` defers back-facing triangles to a second pass and skips those hidden behind what the first
#: drew (the same output, fewer pixel tests); False draws every triangle in one pass (its twin, for tests).
SKIP_HIDDEN_TRIANGLES = True

#: Vertices / faces per thread below which the projection and near-plane kernels are not split.
_MIN_ITEMS_PER_THREAD = 16384


@torch.no_grad()
def project(verts_cam: torch.Tensor, K: torch.Tensor, orthographic: bool, eps: float = 1e-12,
            return_vertex_scale: bool = False):
    """Projected vertices ``[N, V, 3]`` float64 (u, v, z) of camera-frame vertices ``verts_cam [N, V, 3]`` (float32
    or float64, projected in float64) with intrinsics ``K [N, 3, 3]``: one kernel instead of a chain of full-size
    tensor ops, with the values of ``project_points`` (the same operations in the same order, float64).

    With ``return_vertex_scale`` also each vertex's power of two above its largest coordinate ``[N V]`` float64
    (``pow2_scale``, the input ``vertex_scale`` of ``kernels.surface.surface_at_covered``), made in the same pass."""
    ensure_init()
    N, V, _ = verts_cam.shape
    vc = verts_cam.detach().reshape(N * V, 3).to(torch.float64).contiguous()
    intr = K.detach().double().reshape(-1, 9).expand(N, 9).contiguous()
    proj = torch.empty(N * V, 3, dtype=torch.float64, device=vc.device)
    scale = torch.empty(N * V, dtype=torch.float64, device=vc.device)
    launch_split(project_vertices, N * V, [vc, intr, V, int(bool(orthographic)), wp.float64(eps), proj, scale],
                 vc.device, min_chunk=_MIN_ITEMS_PER_THREAD, min_piece=4 * _MIN_ITEMS_PER_THREAD)
    return (proj.view(N, V, 3), scale) if return_vertex_scale else proj.view(N, V, 3)


@torch.no_grad()
def near_plane_flags(proj: torch.Tensor, faces: torch.Tensor, near: float) -> torch.Tensor:
    """Per (view, face) ``[N F]`` int8: 0 with every corner of ``proj [N, V, 3]`` (u, v, z) at ``z >= near``, 1 with
    all corners before the near plane, 2 for faces crossing it (``faces [F, 3]`` int32)."""
    N, V, _ = proj.shape
    F = faces.shape[0]
    flags = torch.empty(N * F, dtype=torch.int8, device=proj.device)
    launch_split(rk.near_flags, N * F, [proj.reshape(N * V, 3), faces, F, V, wp.float64(near), flags], proj.device,
                 min_chunk=_MIN_ITEMS_PER_THREAD, min_piece=4 * _MIN_ITEMS_PER_THREAD)
    return flags


@torch.no_grad()
def find_visible(
    proj: torch.Tensor,
    faces: torch.Tensor,
    face_skip: Optional[torch.Tensor],
    extra_uvz: torch.Tensor,
    extra_view: torch.Tensor,
    extra_face: torch.Tensor,
    width: int,
    height: int,
    near: float,
    far: float,
    cull: str = "none",
    prev: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    affine_depth: bool = False,
    checks: Optional[DeferredChecks] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the nearest face id ``[N, H, W]`` int32 (-1 where empty) and its depth ``[N, H, W]`` float32.

    Args:
        proj: projected vertices ``[N, V, 3]`` float64 as (u, v, z): pixel coordinates and camera depth.
        faces: ``[F, 3]`` int32, validated by the caller.
        face_skip: ``[N*F]`` int8, non-zero for faces that must not be drawn from ``proj``; None when every face
            may be (no vertex before the near plane).
        extra_uvz: ``[E, 3, 3]`` float64 near-clipped triangles as (u, v, z) rows.
        extra_view, extra_face: ``[E]`` int32 view and face of each clipped triangle.
        prev: a previous layer's (face ids, depths); only fragments behind it are kept (depth peeling).
        affine_depth: interpolate depth linearly in screen space (orthographic cameras) instead of
            perspective-correctly (``1 / z`` linear in screen space).
        checks: the caller's pending value checks, read in the one transfer the kernel makes anyway (its
            tile count); a failed one raises there. Triangles with non-finite corners are never drawn, so
            the binning before that read is safe on unchecked input.
    """
    ensure_init()
    device = proj.device
    N, V, _ = proj.shape
    F = faces.shape[0]
    E = extra_uvz.shape[0]
    T = N * F + E
    tiles_x = (width + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    tiles_y = (height + rk.TILE_SIZE - 1) // rk.TILE_SIZE
    num_tiles = N * tiles_x * tiles_y

    # Kernel inputs are the tensors themselves (the launch helpers pack them); empty ones get a one-row stand-in.
    proj_rows = proj.reshape(N * V, 3)
    extra_rows = extra_uvz.reshape(E * 3, 3) if E else torch.zeros(1, 3, dtype=torch.float64, device=device)
    ev = extra_view if E else torch.zeros(1, dtype=torch.int32, device=device)
    ef = extra_face if E else torch.zeros(1, dtype=torch.int32, device=device)

    bbox = torch.empty(T, 4, dtype=torch.int32, device=device)
    # On the CPU the binning is cut into parts, one per thread, each counting into its own row of tile counts
    # (no cross-thread atomics); part k's entries of a tile follow those of parts 0..k-1, so the tile lists
    # hold their triangles in increasing order whatever the number of parts.
    parts = 1 if device.type == "cuda" else max(1, min(num_workers(), T // _MIN_ITEMS_PER_THREAD))
    counts = torch.zeros(parts, num_tiles, dtype=torch.int32, device=device)
    skip = face_skip if face_skip is not None else torch.zeros(1, dtype=torch.int8, device=device)
    count_args = [N * F, F, V, proj_rows, faces, skip, int(face_skip is not None), extra_rows, ev, ef, width,
                  height, tiles_x, tiles_y, CULL_MODES[cull], bbox]
    launch_partitioned(rk.bin_count_range, T, lambda k: [*count_args, counts[k]], parts, device)
    offsets = torch.zeros(num_tiles + 1, dtype=torch.int32, device=device)
    torch.cumsum(counts.sum(0, dtype=torch.int32) if parts > 1 else counts[0], 0, out=offsets[1:])
    total, = (checks if checks is not None else DeferredChecks()).read(offsets[-1])
    tile_list = torch.empty(max(total, 1), dtype=torch.int32, device=device)
    cursor = offsets[:-1] + (counts.cumsum(0, dtype=torch.int32) - counts)  # [parts, tiles]: where each part starts
    fill_args = [N * F, F, ev, ef, tiles_x, tiles_y, bbox]
    launch_partitioned(rk.bin_fill_range, T, lambda k: [*fill_args, cursor[k], tile_list], parts, device)

    out_face = torch.full((N * height * width,), -1, dtype=torch.int32, device=device)
    out_depth = torch.full((N * height * width,), float("inf"), dtype=torch.float32, device=device)
    if prev is None:
        prev_face, prev_depth, use_prev = out_face[:1], out_depth[:1], 0
    else:
        prev_face, prev_depth, use_prev = prev[0].reshape(-1).contiguous(), prev[1].reshape(-1).contiguous(), 1
    deferred = torch.empty(tile_list.shape[0], dtype=torch.int8, device=device)  # raster_tiles' second pass
    launch_split(
        rk.raster_tiles, num_tiles,
        [N * F, F, V, proj_rows, faces, extra_rows, ev, ef, bbox, offsets, tile_list,
         width, height, tiles_x, tiles_y, float(near), float(far), int(bool(affine_depth)), use_prev,
         prev_face, prev_depth, int(SKIP_HIDDEN_TRIANGLES), deferred, out_face, out_depth],
        device, min_chunk=16,  # a tile is heavy work, but a split of a handful of tiles costs more than it saves
        min_piece=64,  # 256^2 (256 tiles): 4 ranges, not 8 launches of 32 tiles
    )
    return out_face.view(N, height, width), out_depth.view(N, height, width)
