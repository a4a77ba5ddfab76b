"""Autograd glue for the fused surface kernels (``surface_kernels``): barycentrics, depth and their screen-space
derivatives at covered pixels, recomputed from the visible faces' camera-frame corners and ``K^-1``, with an
explicit backward to both. Inputs are validated by ``lumigrad.rasterize``."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import surface_kernels as sk
from ._runtime import ensure_init, launch_partitioned, launch_split, num_workers

#: dtypes the kernels are compiled for.
KERNEL_DTYPES = (torch.float32, torch.float64)

_MIN_PIXELS_PER_THREAD = 4096
#: A split launch is not cut into ranges smaller than this (each range costs a Warp launch's argument packing).
_MIN_PIXELS_PER_LAUNCH = 16384
#: Consecutive covered pixels per work item of the surface forward kernel (which reuses a face's forms along them).
_PIXELS_PER_RUN = 16


def surface_at_covered(verts_cam: torch.Tensor, kinv: torch.Tensor, faces: torch.Tensor, covered: torch.Tensor,
                       face_ids: torch.Tensor, height: int, width: int, orthographic: bool, with_derivs: bool,
                       vertex_scale: Optional[torch.Tensor] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Barycentrics ``[P, 3]``, depth ``[P]`` and (``with_derivs``) ``d bary / d(u, v)`` ``[P, 3, 2]`` of the
    faces ``face_ids.reshape(-1)[covered]`` at the centres of the covered pixels ``covered [P]`` (flat indices
    into ``[N, H, W]``), differentiable w.r.t. ``verts_cam [N, V, 3]`` and ``kinv [N, 3, 3]`` (same dtype,
    float32 or float64). ``faces`` is ``[F, 3]`` int32. ``vertex_scale [N V]`` float64, each vertex's power of
    two above its largest coordinate, when the caller has it already (``visibility.project`` makes it);
    otherwise computed here."""
    bary, depth, derivs = _Surface.apply(verts_cam, kinv, faces, covered, face_ids, height, width,
                                         bool(orthographic), bool(with_derivs), vertex_scale)
    return bary, depth, (derivs.reshape(-1, 3, 2) if with_derivs else None)


def _vertex_scale(verts_cam: torch.Tensor) -> torch.Tensor:
    """The power of two above each vertex's largest coordinate ``[N V]`` float64 (cameras.projection.pow2_scale,
    which lies above this layer); a face takes its corners' largest."""
    flat = verts_cam.detach().reshape(-1, 3)
    return torch.ldexp(torch.ones(flat.shape[0], dtype=torch.float64, device=flat.device),
                       torch.frexp(flat.abs().amax(-1)).exponent)


def _inputs(verts_cam, vertex_scale, kinv, faces, covered, face_ids, height, width, orthographic):
    N, V, _ = verts_cam.shape
    flat = verts_cam.detach().reshape(N * V, 3).contiguous()
    return [flat, vertex_scale, faces, kinv.detach().reshape(-1, 9).contiguous(), covered, face_ids.reshape(-1),
            V, height * width, width, int(orthographic)]


class _Surface(torch.autograd.Function):
    @staticmethod
    def forward(ctx, verts_cam, kinv, faces, covered, face_ids, height, width, orthographic, with_derivs,
                vertex_scale):
        ensure_init()
        P = covered.shape[0]
        dev, dt = verts_cam.device, verts_cam.dtype
        bary = torch.empty(P, 3, dtype=dt, device=dev)
        depth = torch.empty(P, dtype=dt, device=dev)
        derivs = torch.empty(P if with_derivs else 1, 6, dtype=dt, device=dev)
        if vertex_scale is None:
            vertex_scale = _vertex_scale(verts_cam)
        args = _inputs(verts_cam, vertex_scale, kinv, faces, covered, face_ids, height, width, orthographic)
        runs = (P + _PIXELS_PER_RUN - 1) // _PIXELS_PER_RUN
        launch_split(sk.surface_forward, runs, args + [int(with_derivs), P, _PIXELS_PER_RUN, bary, depth, derivs], dev,
                     min_chunk=_MIN_PIXELS_PER_THREAD // _PIXELS_PER_RUN,
                     min_piece=_MIN_PIXELS_PER_LAUNCH // _PIXELS_PER_RUN)
        ctx.save_for_backward(verts_cam, kinv, faces, covered, face_ids)
        ctx.vertex_scale = vertex_scale  # detached, read again by the backward (not recomputed)
        ctx.shape = (height, width, orthographic)
        ctx.set_materialize_grads(False)  # outputs without a cotangent arrive as None and cost nothing
        if not with_derivs:
            ctx.mark_non_differentiable(derivs)
        return bary, depth, derivs

    @staticmethod
    def backward(ctx, g_bary, g_depth, g_derivs):
        verts_cam, kinv, faces, covered, face_ids = ctx.saved_tensors
        want_verts, want_kinv = ctx.needs_input_grad[:2]
        if not (want_verts or want_kinv) or (g_bary is None and g_depth is None and g_derivs is None):
            return (None,) * 10
        height, width, orthographic = ctx.shape
        P = covered.shape[0]
        N, V, _ = verts_cam.shape
        dev, dt = verts_cam.device, verts_cam.dtype
        def given(g, k):  # a cotangent as [P, k] rows, or a one-row stand-in the kernel never reads
            return verts_cam.new_zeros(1, k) if g is None else g.to(dt).reshape(P, k).contiguous()

        args = _inputs(verts_cam, ctx.vertex_scale, kinv, faces, covered, face_ids, height, width, orthographic)
        args += [given(g_bary, 3), int(g_bary is not None), given(g_depth, 1).reshape(-1),
                 int(g_depth is not None), given(g_derivs, 6), int(g_derivs is not None),
                 int(want_verts), int(want_kinv)]
        # Float64 accumulators; on CPU one set per thread (each thread adds only into its own), summed here.
        parts = 1 if dev.type == "cuda" else max(1, min(num_workers(), P // _MIN_PIXELS_PER_THREAD))
        d_vc = torch.zeros(parts, N * V if want_verts else 1, 3, dtype=torch.float64, device=dev)
        d_kinv = torch.zeros(parts, N if want_kinv else 1, 9, dtype=torch.float64, device=dev)
        runs = (P + _PIXELS_PER_RUN - 1) // _PIXELS_PER_RUN
        _launch_accumulating(sk.surface_backward, runs, args + [P, _PIXELS_PER_RUN], [d_vc, d_kinv], parts, dev)
        g_vc = d_vc.sum(0).to(dt).reshape(N, V, 3) if want_verts else None
        g_kinv = d_kinv.sum(0).to(kinv.dtype).reshape(kinv.shape) if want_kinv else None
        return (g_vc, g_kinv) + (None,) * 8



def interpolate_covered(attrs: torch.Tensor, faces: torch.Tensor, covered: torch.Tensor, face_ids: torch.Tensor,
                        pixels_per_view: int, bary: torch.Tensor, derivs: Optional[torch.Tensor],
                        attrs_per_view: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Dense ``[N H W, C]`` interpolation ``sum_k bary[i, k] attrs[corner_k]`` at the covered pixels (zero
    elsewhere) and, given ``derivs [P, 3, 2]``, its screen-space derivatives ``[N H W, C, 2]``.

    ``attrs [R, C]`` is the attribute table (float32 or float64; the outputs take its dtype), ``faces [F, 3]``
    int32 indices into one view's rows, ``attrs_per_view`` the rows per view of a batched table flattened to
    ``[N A, C]`` (0 for one table shared by every view); ``face_ids`` the flat ``[N H W]`` int32 face ids and
    ``covered [P]`` the flat indices of the covered pixels. Differentiable w.r.t. ``attrs``, ``bary``, ``derivs``.
    """
    with_derivs = derivs is not None
    flat_derivs = derivs.reshape(-1, 6) if with_derivs else bary.new_zeros(1, 6)
    out, dout = _Interpolate.apply(attrs, bary, flat_derivs, faces, covered, face_ids, pixels_per_view,
                                   attrs_per_view, with_derivs)
    return out, (dout.reshape(-1, attrs.shape[1], 2) if with_derivs else None)


class _Interpolate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, attrs, bary, derivs, faces, covered, face_ids, pixels_per_view, attrs_per_view, with_derivs):
        ensure_init()
        P, C = covered.shape[0], attrs.shape[1]
        total = face_ids.shape[0]
        out = attrs.new_zeros(total, C)
        dout = attrs.new_zeros(total if with_derivs else 1, 2 * C)
        args = _interp_inputs(attrs, faces, covered, face_ids, pixels_per_view, attrs_per_view, bary, derivs)
        launch_split(sk.interpolate_forward, P, args + [int(with_derivs), out, dout],
                     attrs.device, min_chunk=_MIN_PIXELS_PER_THREAD,
                     min_piece=_MIN_PIXELS_PER_LAUNCH)
        ctx.save_for_backward(attrs, bary, derivs, faces, covered, face_ids)
        ctx.views = (pixels_per_view, attrs_per_view, with_derivs)
        ctx.set_materialize_grads(False)
        if not with_derivs:
            ctx.mark_non_differentiable(dout)
        return out, dout

    @staticmethod
    def backward(ctx, g_out, g_dout):
        attrs, bary, derivs, faces, covered, face_ids = ctx.saved_tensors
        pixels_per_view, attrs_per_view, with_derivs = ctx.views
        want_attrs = ctx.needs_input_grad[0]
        want_bary = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        if g_dout is not None and not with_derivs:
            g_dout = None
        if not (want_attrs or want_bary) or (g_out is None and g_dout is None):
            return (None,) * 9
        P = covered.shape[0]
        dev, dt = attrs.device, attrs.dtype
        given = lambda g: attrs.new_zeros(1, 1) if g is None else g.to(dt).contiguous()  # noqa: E731
        g_bary = torch.empty_like(bary) if want_bary else bary.new_zeros(1, 3)
        g_derivs = (torch.zeros_like(derivs) if want_bary and g_dout is not None and with_derivs
                    else bary.new_zeros(1, 6))
        args = _interp_inputs(attrs, faces, covered, face_ids, pixels_per_view, attrs_per_view, bary, derivs)
        args += [given(g_out), int(g_out is not None), given(g_dout), int(g_dout is not None),
                 int(want_bary), int(want_attrs), g_bary, g_derivs]
        parts = 1 if dev.type == "cuda" else max(1, min(num_workers(), P // _MIN_PIXELS_PER_THREAD))
        g_attrs = torch.zeros(parts, attrs.shape[0] if want_attrs else 1, attrs.shape[1], dtype=torch.float64,
                              device=dev)
        _launch_accumulating(sk.interpolate_backward, P, args, [g_attrs], parts, dev)
        g_derivs_out = g_derivs if (want_bary and g_dout is not None and with_derivs) else None
        return (g_attrs.sum(0).to(dt) if want_attrs else None, g_bary if want_bary else None, g_derivs_out,
                None, None, None, None, None, None)


def _interp_inputs(attrs, faces, covered, face_ids, pixels_per_view, attrs_per_view, bary, derivs):
    return [attrs.detach().contiguous(), faces, covered, face_ids, pixels_per_view, attrs_per_view,
            bary.detach().contiguous(), derivs.detach().contiguous()]


def _launch_accumulating(kernel, count: int, args: list, buffers: list, parts: int, device: torch.device) -> None:
    """Launch ``kernel(offset, end, *args, *buffers)`` over ``count`` items; ``buffers`` are ``[parts, ...]``
    accumulators, part ``k`` of the launch adding (atomically) only into ``buffer[k]``."""
    if count > 0:
        launch_partitioned(kernel, count, lambda k: [*args, *(b[k] for b in buffers)], parts, device)
