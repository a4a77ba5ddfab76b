"""Edge sampling of primary visibility: the boundary term of the pixel integrals' derivative.

A pixel's value is the integral of the radiance ``f`` over its area. Where ``f`` jumps across a silhouette
(a triangle edge whose faces turn different ways to the camera, or a boundary edge), moving the edge changes
the integral by the jump times how far the edge moves: for a scene parameter ``theta``

    d I / d theta (boundary) = int_edges (f_minus - f_plus) (n . d p / d theta) dl

with ``p`` the edge point in pixel coordinates, ``n`` the edge's screen normal and ``f_minus`` / ``f_plus``
the radiance just behind / ahead of it along ``n`` (Li et al. 2018, "Differentiable Monte Carlo ray tracing
through edge sampling", as redner does). :func:`sample_primary_edges` draws points on the silhouette edges
with density proportional to their projected length; the caller estimates ``f_minus - f_plus`` by tracing
one path on each side (with the same random numbers, so their noise largely cancels: antithetic samples) and
differentiates the surrogate ``sum_s c_s (n_s . p_s(theta)) / pdf_s`` with ``c_s`` the detached weight. Edges
hidden behind other surfaces need no test: both sides then see the occluder and the difference vanishes.
Secondary visibility (shadow edges) is not sampled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras.projection import project_points, transform_points
from ..raster.topology import edge_adjacency

__all__ = ["EdgeSamples", "sample_primary_edges"]


@dataclass
class EdgeSamples:
    """Points on silhouette edges of one view.

    Attributes:
        points: ``[S, 2]`` pixel coordinates (differentiable w.r.t. the vertices and the camera).
        normals: ``[S, 2]`` unit screen normals of the edges (detached).
        inv_pdf: ``[S]`` the reciprocal density per unit edge length in pixels (the total projected length of
            the silhouette edges, divided by the number of samples).
    """

    points: torch.Tensor
    normals: torch.Tensor
    inv_pdf: torch.Tensor


def sample_primary_edges(verts: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                         near: float, width: int, height: int, num_samples: int, generator: torch.Generator,
                         orthographic: bool = False) -> EdgeSamples:
    """``num_samples`` points on the silhouette edges of ``faces`` over world ``verts`` seen by one pinhole
    camera (``K [3, 3]``, ``world_to_cam [4, 4]``), uniformly by projected length (stratified); edges with an
    end behind the near plane are left out. Unchecked (the integrator validated the scene)."""
    device, dtype = verts.device, verts.dtype
    cam = transform_points(verts, world_to_cam)  # [V, 3], differentiable
    uv = project_points(cam, K, projection="orthographic" if orthographic else "perspective")
    with torch.no_grad():
        f = faces.long()
        v = cam.detach()[f]  # [F, 3, 3] camera frame
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        to_eye = torch.tensor([0.0, 0.0, -1.0], dtype=dtype, device=device) if orthographic else -v[:, 0]
        facing = (normal * to_eye).sum(-1) > 0  # [F]
        across = edge_adjacency(faces, verts.shape[0]).long()  # [F, 3], -1 boundary, -2 non-manifold
        F = f.shape[0]
        own = torch.arange(F, device=device)[:, None].expand(F, 3)
        other = across.clamp_min(0)
        silhouette = (across < 0) | (facing[own] != facing[other])
        keep = silhouette & ((across < 0) | (other > own))  # each shared edge once
        a = f.gather(1, torch.arange(3, device=device).expand(F, 3))[keep]
        b = f.gather(1, ((torch.arange(3, device=device) + 1) % 3).expand(F, 3))[keep]
        in_front = (cam.detach()[a, 2] > near) & (cam.detach()[b, 2] > near)
        a, b = a[in_front], b[in_front]
        length = (uv.detach()[b] - uv.detach()[a]).norm(dim=-1)
        total = float(length.sum()) if length.numel() else 0.0
    if total <= 0 or num_samples <= 0:
        empty = torch.zeros(0, 2, dtype=dtype, device=device)
        return EdgeSamples(empty, empty, torch.zeros(0, dtype=dtype, device=device))
    with torch.no_grad():
        # Stratified along the edges laid end to end: sample k lies in the k-th of num_samples equal stretches
        # of the total length, so every edge gets its share of samples up to one (no multinomial noise in how
        # many land on each edge, which dominates the variance when edges' terms cancel).
        cumulative = torch.cumsum(length, 0)
        at = (torch.arange(num_samples, device=device, dtype=dtype)
              + torch.rand(num_samples, generator=generator, device=device, dtype=dtype)) * (total / num_samples)
        pick = torch.searchsorted(cumulative, at, right=True).clamp(max=length.shape[0] - 1)
        start = cumulative[pick] - length[pick]
        s = ((at - start) / length[pick].clamp_min(1e-30)).clamp(0, 1)[:, None]
        d = (uv.detach()[b[pick]] - uv.detach()[a[pick]])
        n = torch.stack([-d[:, 1], d[:, 0]], -1) / d.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    points = uv[a[pick]] + s * (uv[b[pick]] - uv[a[pick]])
    inv_pdf = torch.full((num_samples,), total / num_samples, dtype=dtype, device=device)
    return EdgeSamples(points, n, inv_pdf)
