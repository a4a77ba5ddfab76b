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

**Lens distortion.** Through a distorting lens an edge's image is a curve ``q = D(p)``, the distortion map of
the pinhole image ``p`` of the edge (a segment). Points are drawn on the segments as without distortion and
mapped by ``D``; the curve's tangent at a point is ``J t`` (``J = dD/dp`` in pixels, ``t`` the segment's unit
tangent), so its unit normal is ``perp(J t) / |J t|`` and its length element ``|J t|`` times the segment's:
the density per unit curve length is the segment's divided by ``|J t|``. ``q`` stays a differentiable function
of the vertices, the pose, ``K`` and the distortion coefficients, so silhouettes give gradients to all of
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ..cameras.distortion import distort, distortion_jacobian
from ..cameras.projection import project_points, transform_points
from ..raster.topology import welded_edges, welded_positions

__all__ = ["EdgeSamples", "lens_map", "sample_primary_edges"]


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
                         orthographic: bool = False, distortion: Optional[torch.Tensor] = None,
                         distortion_model: str = "opencv") -> EdgeSamples:
    """``num_samples`` points on the silhouette edges of ``faces`` over world ``verts`` seen by one camera
    (``K [3, 3]``, ``world_to_cam [4, 4]``, optional lens ``distortion`` coefficients of ``distortion_model``;
    perspective only with distortion), uniformly by pinhole-projected length (stratified) and mapped through the
    lens (see the module); edges with an end behind the near plane are left out. Unchecked (the integrator
    validated the scene)."""
    device, dtype = verts.device, verts.dtype
    # [V, 3], differentiable; a seam's copies of a position share its gradient
    cam = transform_points(welded_positions(verts, faces), world_to_cam)
    uv = project_points(cam, K, projection="orthographic" if orthographic else "perspective")
    with torch.no_grad():
        f = faces.long()
        v = cam.detach()[f]  # [F, 3, 3] camera frame
        normal = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        to_eye = torch.tensor([0.0, 0.0, -1.0], dtype=dtype, device=device) if orthographic else -v[:, 0]
        facing = (normal * to_eye).sum(-1) > 0  # [F]
        # every edge once, by position: a seam of split vertices is one edge between its two faces
        edges = welded_edges(verts, faces)
        # silhouettes, and seams (a normal, uv or material may change there: the shading may jump; one hidden or
        # seen from behind costs samples, not bias: both its sides see the same)
        keep = (edges.other < 0) | (facing[edges.own] != facing[edges.other.clamp_min(0)]) | edges.seam
        a, b = edges.a[keep], edges.b[keep]
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
    if distortion is None:
        return EdgeSamples(points, n, inv_pdf)
    return _through_lens(points, d, K, distortion.to(dtype), distortion_model, inv_pdf)


def _through_lens(points: torch.Tensor, direction: torch.Tensor, K: torch.Tensor, coeffs: torch.Tensor, model: str,
                  inv_pdf: torch.Tensor) -> EdgeSamples:
    """Pinhole edge points (pixels) mapped through the lens, with the curve's normals and densities."""
    q, n, stretch, valid = lens_map(points, direction, K, coeffs, model)
    keep = valid.nonzero()[:, 0]
    return EdgeSamples(q[keep], n[keep], (inv_pdf * stretch)[keep])


def lens_map(points: torch.Tensor, tangents: torch.Tensor, K: torch.Tensor, coeffs: torch.Tensor, model: str):
    """Points of curves in the pinhole image (pixels ``[S, 2]``, differentiable) and their tangents (``[S, 2]``,
    any length) mapped through a lens: ``(q [S, 2]`` differentiable in the points, ``K`` and ``coeffs``, the
    curves' unit normals there ``[S, 2]``, the stretch ``|J t|`` of unit length ``[S]`` and ``valid [S]``, the
    points inside the radius where the radial model folds (beyond it a point's image is not where the camera
    sees it: drop those); all but ``q`` detached). The normal is ``perp(J t)``, so it keeps the side that
    ``perp(t)`` points to."""
    K2, centre = K[:2, :2], K[:2, 2]
    xy = torch.linalg.solve_triangular(K2, (points - centre).T, upper=True).T  # normalized pinhole coordinates
    full = coeffs.expand(xy.shape[:-1] + coeffs.shape[-1:])
    q = distort(xy, full, model) @ K2.T + centre
    with torch.no_grad():
        J = K2 @ distortion_jacobian(xy, full, model) @ torch.linalg.inv(K2)
        t = tangents / tangents.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        tangent = (J @ t[..., None])[..., 0]
        stretch = tangent.norm(dim=-1)
        n = torch.stack([-tangent[:, 1], tangent[:, 0]], -1) / stretch.clamp_min(1e-30)[:, None]
        valid = xy.norm(dim=-1) < _fold_start(coeffs.detach(), model)
    return q, n, stretch, valid


def _fold_start(coeffs: torch.Tensor, model: str, max_radius: float = 20.0, samples: int = 4096) -> float:
    """The undistorted normalized radius where the radial model stops growing (``inf`` if it does not before
    ``max_radius``); tangential terms ignored, as :func:`lumigrad.cameras.distortion.fold_radius` does."""
    c = coeffs.double().clone()
    if model == "opencv":
        c[2:4] = 0
    r = torch.linspace(0, max_radius, samples, dtype=torch.float64, device=coeffs.device)
    rd = distort(torch.stack([r, torch.zeros_like(r)], -1), c.expand(samples, -1), model)[:, 0]
    falling = (rd[1:] - rd[:-1] <= 0).nonzero()
    return float(r[int(falling[0, 0])]) if falling.numel() else math.inf
