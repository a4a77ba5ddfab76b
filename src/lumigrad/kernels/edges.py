"""Torch-facing wrapper of the antialias edge-finding kernel."""

from __future__ import annotations

from typing import Tuple

import torch

from . import antialias_kernels as ak
from . import buffer_pool
from ._runtime import as_warp, ensure_init, launch, launch_split

import warp as wp


@torch.no_grad()
def find_silhouette_edges(face_ids: torch.Tensor, zbuf: torch.Tensor, verts_cam: torch.Tensor, faces: torch.Tensor,
                          adjacency: torch.Tensor, K: torch.Tensor,
                          orthographic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the silhouette edges between neighbouring pixels as ``(found, records)``: ``found [E]`` int64, the
    indices ``2 * pixel + direction`` (direction 0: the right neighbour, 1: the lower one; pixel ``n * H * W +
    y * W + x``) in increasing order, and ``records [E]`` int32 their edge records.

    A record is ``face * 8 + edge * 2 + q_in`` (``q_in`` = 1 when the neighbour is the pixel the face covers);
    pairs that no silhouette edge of a visible face separates are not listed.

    Args:
        face_ids: ``[N, H, W]`` int32 visible faces; zbuf: ``[N, H, W]`` float32 kernel depths.
        verts_cam: ``[N, V, 3]`` camera-frame vertices; faces, adjacency: ``[F, 3]`` int32.
        K: ``[N, 3, 3]`` intrinsics.
        orthographic: the camera projects orthographically (rays along +z from ``(x, y, 0)``); the edge tests
            then run on the lifted vertices ``(x, y, 1)`` (see ``antialias_kernels``).
    """
    ensure_init()
    N, H, W = face_ids.shape
    V = verts_cam.shape[1]
    device = face_ids.device
    intr = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 0, 1]], -1).double().contiguous()
    vz = verts_cam.detach().double().reshape(-1, 3).contiguous()
    vc = torch.cat([vz[:, :2], torch.ones_like(vz[:, 2:])], -1) if orthographic else vz
    F = faces.shape[0]
    normals = torch.empty(N * F, 3, 3, dtype=torch.float64, device=device)  # per (view, face): 3 edge normals
    dets = torch.empty(N * F, dtype=torch.float64, device=device)
    launch(ak.face_setup, N * F, [as_warp(vc, dtype=wp.vec3d), as_warp(faces), F, V,
                                  as_warp(normals, dtype=wp.vec3d), as_warp(dets)], device)
    per = ak.PIXELS_PER_ITEM
    runs = -(-N * H * W // per)
    # Whole runs of 2 * per records (the kernel writes the pixels' records; the tail stays -1).
    codes = buffer_pool.take((runs, 2 * per), torch.int32, device)
    codes.view(-1)[2 * N * H * W:] = -1
    run_found = torch.empty(runs, dtype=torch.int8, device=device)
    launch_split(
        ak.find_edges, runs,
        [as_warp(face_ids.reshape(-1).contiguous()), as_warp(zbuf.reshape(-1).contiguous()),
         as_warp(normals, dtype=wp.vec3d), as_warp(dets), F, as_warp(faces), as_warp(adjacency), as_warp(intr),
         W, H, V, as_warp(vz, dtype=wp.vec3d), int(bool(orthographic)), N * H * W, as_warp(codes.view(-1)),
         as_warp(run_found)],
        device, min_chunk=4096 // per, min_piece=16384 // per,  # fewer, larger ranges: each one is a Warp launch
    )
    # Runs with a record, then the records within them: the same increasing order as a scan of all records.
    with_edges = run_found.nonzero()[:, 0]
    block = codes[with_edges]
    row, col = (block >= 0).nonzero(as_tuple=True)
    return with_edges[row] * (2 * per) + col, block[row, col]
