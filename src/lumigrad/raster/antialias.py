"""Analytic antialiasing of silhouette and occlusion edges: the source of visibility gradients.

Method (after Laine et al. 2020, "Modular Primitives for High-Performance Differentiable Rendering"): for
every pair of horizontally or vertically adjacent pixels whose visible faces differ, a kernel finds the
silhouette edge of the front face that passes between the two pixel centres (against the background or
against another surface behind it). PyTorch then computes where the edge crosses the segment between the
centres, ``t`` in [0, 1] measured from the covered pixel, and treats each pixel as a unit-wide box along
that segment. Each edge is blended along one axis only: horizontal pixel pairs for edges closer to
vertical, vertical pairs for the others (so a pixel is never blended twice for one edge, and the 1D
coverage equals the exact box coverage while the edge crosses the pixel's two far sides): if the face reaches past the midpoint (``t > 1/2``) the other pixel takes on ``t - 1/2`` of the
covered pixel's colour, otherwise the covered pixel takes on ``1/2 - t`` of the other's. The result is
continuous in the edge position, so its derivative w.r.t. the edge's vertices (and the camera) is the
visibility gradient that plain rasterization lacks.

Orthographic cameras use the same steps on vertices lifted to ``z = 1``: the edge function of the ray of
pixel ``p`` (origin ``(x, y, 0)`` with ``(x, y, 1) = K^-1 p``, direction +z) and the edge ``a -> b`` is the 2D
edge function ``w = (a_y - b_y) x + (b_x - a_x) y + (a x b)_z = (x, y, 1) . (a' x b')``, again linear in
``p``; an edge is a straight line in screen space and ``t`` is where it crosses the segment between the
pixel centres.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .._checks import check_channels, check_face_ids, check_tensor
from ..cameras.camera import Camera
from ..cameras.projection import lift_orthographic, pow2_scale, rays_at_pixels
from ..kernels import buffer_pool
from ..kernels.edges import find_silhouette_edges
from .fragments import Fragments
from .rasterize import PreparedMesh, prepare_mesh
from .topology import edge_adjacency


def antialias(
    color: torch.Tensor,
    frags: Fragments,
    verts: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
) -> torch.Tensor:
    """Blend colours across silhouette edges by their analytic sub-pixel position.

    Args:
        color: ``[..., H, W, C]`` shaded image (any channels), usually computed from ``frags``.
        frags: the :func:`lumigrad.rasterize` output that ``color`` was computed from.
        verts, faces, camera: the same geometry and camera (perspective or orthographic) that were rasterized.

    Returns:
        ``[..., H, W, C]`` antialiased image. Pixels away from silhouettes are unchanged.

    Raises:
        TypeError / ValueError: as :func:`rasterize` for the geometry; ``color`` not of shape
            ``[..., H, W, C]`` with ``C >= 1``, or containing NaN / Inf (a NaN would spread to the neighbours
            it is blended with).

    Silhouette edges are mesh boundary edges, non-manifold edges, and edges between a face seen from the
    front and one seen from the back in that view; edges between two front faces (a continuous surface)
    are left alone. Both kinds of visibility edge are handled: a surface against the background, and a
    surface in front of another surface (of the same or another mesh).

    **Differentiability:** w.r.t. ``color`` (linear), and w.r.t. ``verts`` and the camera's ``K`` and
    ``world_to_cam`` through the edge crossing positions: moving a silhouette by a fraction of a pixel
    changes the output continuously, giving gradients that agree with finite differences of the output.
    Interpenetrating surfaces (intersection lines) get no visibility gradient.

    Example: a vertical silhouette at ``u = 3.75`` between a white pixel (column 3, centre 3.5, covered) and
    a black one (column 4, centre 4.5) gives ``t = 0.25``, so the white pixel becomes
    ``1 - (0.5 - 0.25) = 0.75`` and the black one stays 0.
    """
    if not isinstance(frags, Fragments):
        raise TypeError(f"frags must be lumigrad Fragments from rasterize(); got {type(frags).__name__}")
    mesh = prepare_mesh(verts, faces, camera)
    check_tensor(color, "color", trailing=(None, None, None), floating=True, device=verts.device)
    H, W = frags.height, frags.width
    if (camera.height, camera.width) != (H, W):
        raise ValueError(f"frags are {H}x{W} but camera is {camera.height}x{camera.width}")
    if color.shape[:-1] != frags.face_ids.shape:
        raise ValueError(f"color must have shape {tuple(frags.face_ids.shape) + ('C',)}; got {tuple(color.shape)}")
    check_channels(color, "color", "[..., H, W, C]")
    check_tensor(color, "color", finite=True)
    if frags.batch_shape != mesh.batch_shape:
        raise ValueError(f"frags have batch dims {tuple(frags.batch_shape)} but verts/camera give "
                         f"{tuple(mesh.batch_shape)}")
    check_face_ids(frags.face_ids, faces, num_faces=frags.num_faces)
    return antialias_prepared(color, frags, mesh, faces)


def antialias_prepared(color: torch.Tensor, frags: Fragments, mesh: PreparedMesh, faces: torch.Tensor) -> torch.Tensor:
    """:func:`antialias` on inputs already validated (``mesh`` from :func:`prepare_mesh` of ``faces``, ``frags``
    rasterized from it, ``color [..., H, W, C]`` computed from them): no checks, for pipelines that validate
    once (``faces`` is the tensor given to ``prepare_mesh``, whose edge adjacency is cached)."""
    return blend_crossings(color, silhouette_crossings(frags, mesh, faces))


def silhouette_crossings(frags: Fragments, mesh: PreparedMesh,
                         faces: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The silhouette edges between neighbouring pixels of ``frags`` (validated inputs, as
    :func:`antialias_prepared`): ``(p_in, p_out, t)``, flat indices of the covered and the uncovered pixel of
    each crossing and where the edge crosses between their centres, or ``None`` when there is no edge.
    Found once, they blend any number of buffers drawn from the same fragments (:func:`blend_crossings`)."""
    H, W = frags.height, frags.width
    N = mesh.num_views
    adjacency = edge_adjacency(faces, mesh.verts.shape[-2])
    verts_cam = mesh.verts_cam
    codes = find_silhouette_edges(frags.face_ids.reshape(N, H, W), frags.zbuf.reshape(N, H, W), verts_cam,
                                  mesh.faces_i32, adjacency, mesh.K, orthographic=mesh.orthographic)
    found = (codes.reshape(-1) >= 0).nonzero()[:, 0]  # 2 * pixel + direction (a 1D nonzero: cheaper than 2D)
    if found.numel() == 0:
        return None
    rows, direction = found // 2, found % 2
    code = codes.reshape(-1)[found].long()
    face = code >> 3
    edge = (code >> 1) & 3
    q_in = (code & 1).bool()
    neighbour = rows + torch.where(direction == 0, 1, W)
    p_in = torch.where(q_in, neighbour, rows)
    p_out = torch.where(q_in, rows, neighbour)
    t = edge_crossing(mesh, verts_cam, face, edge, p_in, p_out)
    return p_in, p_out, t


def blend_crossings(color: torch.Tensor,
                    crossings: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Blend ``color [..., H, W, C]`` across the edges found by :func:`silhouette_crossings` (the second half of
    :func:`antialias_prepared`); ``None`` returns ``color`` unchanged.

    The values and gradients of :func:`blend_crossings_reference`, with an explicit backward: autograd through
    the reference's two gathers would zero-fill and add a full image per gather, where the backward here copies
    the image's cotangent once and touches only the pixels on either side of an edge.
    """
    if crossings is None:
        return color
    p_in, p_out, t = crossings
    flat = color.reshape(-1, color.shape[-1])
    return _Blend.apply(flat, p_in, p_out, t).reshape(color.shape)


def blend_crossings_reference(color: torch.Tensor,
                              crossings: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The definition of :func:`blend_crossings` in plain PyTorch (autograd through it): each crossing moves
    ``max(t - 1/2, 0)`` of the covered pixel's colour difference into the uncovered pixel and ``max(1/2 - t, 0)``
    the other way, from the colours before blending."""
    if crossings is None:
        return color
    p_in, p_out, t = crossings
    flat = color.reshape(-1, color.shape[-1])
    c_in = flat[p_in]
    c_out = flat[p_out]
    reach_out = (t - 0.5).clamp_min(0)[:, None]  # the face spills into the uncovered pixel
    reach_in = (0.5 - t).clamp_min(0)[:, None]  # the uncovered side spills into the covered pixel
    delta = torch.zeros_like(flat)
    delta = delta.index_add(0, p_out, reach_out.to(flat.dtype) * (c_in - c_out))
    delta = delta.index_add(0, p_in, reach_in.to(flat.dtype) * (c_out - c_in))
    return (flat + delta).reshape(color.shape)


def _reaches(t: torch.Tensor, dtype: torch.dtype):
    """``max(t - 1/2, 0)`` and ``max(1/2 - t, 0)`` as ``[K, 1]`` columns of ``dtype``, and where each passes a
    gradient (``clamp_min``'s rule: at and above the bound)."""
    out, inn = t - 0.5, 0.5 - t
    return (out.clamp_min(0)[:, None].to(dtype), inn.clamp_min(0)[:, None].to(dtype), out >= 0, inn >= 0)


class _Blend(torch.autograd.Function):
    """``out = flat`` plus, per crossing ``k``, ``r_out (c_in - c_out)`` at ``p_out`` and ``r_in (c_out - c_in)`` at
    ``p_in`` (``c = flat[p]``, ``r`` from :func:`_reaches`)."""

    @staticmethod
    def forward(ctx, flat, p_in, p_out, t):
        reach_out, reach_in, _, _ = _reaches(t.detach(), flat.dtype)
        diff = flat[p_in] - flat[p_out]  # c_in - c_out
        out = _pooled_copy(flat)  # the image; a pooled buffer: no fresh pages on the CPU
        out.index_add_(0, p_out, reach_out * diff)
        out.index_add_(0, p_in, reach_in * -diff)
        # The colour differences, not the image: all the backward reads of the colours (for t's gradient).
        ctx.save_for_backward(diff if ctx.needs_input_grad[3] else None, p_in, p_out, t)
        ctx.dtype = flat.dtype
        return out

    @staticmethod
    def backward(ctx, g):
        diff, p_in, p_out, t = ctx.saved_tensors
        want_flat, want_t = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
        reach_out, reach_in, pass_out, pass_in = _reaches(t.detach(), ctx.dtype)
        g_in, g_out = g[p_in], g[p_out]
        g_flat = g_t = None
        if want_flat:
            a = reach_out * g_out - reach_in * g_in  # d out / d c_in, summed over the two pixels it reaches
            g_flat = _pooled_copy(g)
            g_flat.index_add_(0, p_in, a)
            g_flat.index_add_(0, p_out, -a)
        if want_t:
            g_t = (pass_out.to(g.dtype) * (g_out * diff).sum(-1) + pass_in.to(g.dtype) * (g_in * diff).sum(-1))
            g_t = g_t.to(t.dtype)
        return g_flat, None, None, g_t


def _pooled_copy(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``x`` in a buffer from ``kernels.buffer_pool``."""
    return buffer_pool.take(x.shape, x.dtype, x.device).copy_(x)


def edge_crossing(mesh, verts_cam, face, edge, p_in, p_out) -> torch.Tensor:
    """Position ``t`` in [0, 1] where edge ``edge`` of ``face`` crosses the segment from pixel ``p_in``'s
    centre to ``p_out``'s: ``t = w_in / (w_in - w_out)`` with ``w(d) = d . (a x b)`` for the edge's
    camera-frame endpoints ``a``, ``b`` and pixel rays ``d = K^-1 (u, v, 1)``. Orthographic cameras use the
    endpoints lifted to ``z = 1`` (:func:`~lumigrad.cameras.projection.lift_orthographic`), which makes ``w`` the
    2D edge function in the xy-plane (``d`` is then the ray's origin). Differentiable in the vertices and the
    camera.
    """
    H, W = mesh.camera.height, mesh.camera.width
    V = verts_cam.shape[1]
    view = p_in // (H * W)
    d_in = rays_at_pixels(mesh.K, p_in, H, W)
    d_out = rays_at_pixels(mesh.K, p_out, H, W)
    corner_a = mesh.faces[face, edge]
    corner_b = mesh.faces[face, (edge + 1) % 3]
    flat = verts_cam.reshape(-1, 3)
    a = flat[view * V + corner_a]
    b = flat[view * V + corner_b]
    # Divide each edge by a power of two >= its largest coordinate (exact; see face_pixel_table): w_in and
    # w_out scale alike, so t is unchanged, and the cross product cannot overflow.
    scale = pow2_scale(torch.maximum(a.detach().abs().amax(-1), b.detach().abs().amax(-1)))[:, None]
    a, b = a / scale, b / scale
    if mesh.orthographic:
        a, b = lift_orthographic(a), lift_orthographic(b)
        # The rays' origins (x, y) scale with the lifted endpoints.
        xy_scale = torch.cat([scale, scale, torch.ones_like(scale)], -1)
        d_in, d_out = d_in / xy_scale, d_out / xy_scale
    n = torch.linalg.cross(a, b)
    w_in = (d_in * n).sum(-1)
    w_out = (d_out * n).sum(-1)
    denom = w_in - w_out
    denom = torch.where(denom.abs() > 0, denom, torch.ones_like(denom))
    return (w_in / denom).clamp(0, 1)
