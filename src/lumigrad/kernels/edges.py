"""Torch-facing wrapper of the antialias edge-finding kernel."""

from __future__ import annotations

import torch

from . import antialias_kernels as ak
from . import buffer_pool
from ._runtime import as_warp, ensure_init, launch, launch_split

import warp as wp


@torch.no_grad()
def find_silhouette_edges(face_ids: torch.Tensor, zbuf: torch.Tensor, verts_cam: torch.Tensor, faces: torch.Tensor,
                          adjacency: torch.Tensor, K: torch.Tensor, orthographic: bool = False) -> torch.Tensor:
    """Return edge records ``[N*H*W, 2]`` int32 for the (right, down) neighbour of every pixel.

    A record is ``face * 8 + edge * 2 + q_in`` (``q_in`` = 1 when the neighbour is the pixel the face covers)
    or -1 when no silhouette edge of a visible face separates the two pixel centres.

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
    codes = buffer_pool.take((N * H * W * 2,), torch.int32, device)  # every entry is written
    per = ak.CPU_PIXELS_PER_THREAD if device.type == "cpu" else 1
    launch_split(
        ak.find_edges, -(-N * H * W // per),
        [as_warp(face_ids.reshape(-1).contiguous()), as_warp(zbuf.reshape(-1).contiguous()),
         as_warp(normals, dtype=wp.vec3d), as_warp(dets), F, as_warp(faces), as_warp(adjacency), as_warp(intr),
         W, H, V, as_warp(vz, dtype=wp.vec3d), int(bool(orthographic)), N * H * W, per, as_warp(codes)],
        device, min_chunk=4096 // per, min_piece=16384 // per,  # fewer, larger ranges: each is a Warp launch
    )
    return codes.view(N * H * W, 2)
