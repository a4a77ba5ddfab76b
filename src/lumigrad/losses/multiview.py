"""Multi-view consistency: reproject pixels between cameras through depth, warp images, compare them.

Use this when several views of one scene are rendered (or predicted) together and should agree with each other:
depth from one view, carried into another view, must land on the same colour there (photometric consistency),
and the depth it arrives with must match that view's own depth (geometric consistency). It supervises depth
maps and camera poses without ground truth (self-supervised multi-view stereo, pose refinement, regularising
per-view depth predictions).

Depth is lumigrad's camera-frame ``z`` (docs/conventions.md), which is what ``rasterize(...).depth`` returns:
the rasterizer intersects each pixel's ray ``K^-1 (u, v, 1)`` (whose ``z`` is 1) with the triangle, so the ray
parameter is the camera-frame depth, not the Euclidean distance along the ray. A pixel ``(u, v)`` with depth
``z`` is the camera-frame point ``origin + z * direction`` from :meth:`Camera.ray_origins_directions` (for a
pinhole ``z K^-1 (u, v, 1)``). Pixel centres are at ``(j + 0.5, i + 0.5)``. Depth maps are accepted as
``[..., H, W]`` or with the trailing channel that ``rasterize(...).depth`` and ``render_geometry(...)["depth"]``
have, ``[..., H, W, 1]``; the depths returned are ``[..., H, W]``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .._checks import check_choice, check_tensor
from ..cameras import Camera
from ..conventions import pixel_centers

__all__ = ["WarpResult", "multiview_consistency_loss", "reproject", "warp_to_view"]


def _check_camera(camera, name: str, batch: torch.Size, H: Optional[int] = None, W: Optional[int] = None,
                  size_of: str = "") -> None:
    if not isinstance(camera, Camera):
        raise TypeError(f"{name} must be a lumigrad.cameras.Camera; got {type(camera).__name__}")
    if tuple(camera.batch_shape) not in ((), tuple(batch)):
        raise ValueError(f"{name} must be a single camera or have batch shape {tuple(batch)} (the batch dims of "
                         f"{size_of}); got batch shape {tuple(camera.batch_shape)}")
    if H is not None and (camera.height, camera.width) != (H, W):
        raise ValueError(f"{size_of} is {H} x {W} pixels but {name} is {camera.height} x {camera.width} "
                         f"(height x width); they must match")


def _drop_channel(depth, H: int, W: int):
    """A depth ``[..., H, W, 1]`` (``rasterize(...).depth``, ``render_geometry(...)["depth"]``) as ``[..., H, W]``;
    any other tensor (or object) as it came."""
    if isinstance(depth, torch.Tensor) and depth.dim() >= 3 and tuple(depth.shape[-3:]) == (H, W, 1):
        return depth[..., 0]
    return depth


def reproject(depth_src: torch.Tensor, camera_src: Camera, camera_dst: Camera) -> Tuple[torch.Tensor, torch.Tensor]:
    """Carry every pixel of a source view, at its depth, into a destination camera.

    Pixel ``(i, j)`` of the source (centre ``(j + 0.5, i + 0.5)``) with depth ``z`` is lifted to the camera-frame
    point ``o + z d`` (``(o, d) = camera_src.ray_origins_directions(uv)``, ``d_z = 1``), mapped to the world with
    the inverse of ``camera_src.world_to_cam`` (``x_w = R^T (x_c - t)``) and projected with ``camera_dst.project``.

    Example (two identical cameras: every pixel maps onto its own centre):
        >>> cam = Camera.look_at(eye=torch.tensor([0., 0., -3.]), target=torch.zeros(3), width=4, height=3)
        >>> uv, z = reproject(torch.full((3, 4), 2.0), cam, cam)
        >>> [round(a, 4) for a in uv[1, 2].tolist()], round(float(z[0, 0]), 4)
        ([2.5, 1.5], 2.0)

    Args:
        depth_src: camera-frame z-depth ``[..., H, W]`` (or ``[..., H, W, 1]``) of the source view (``H, W`` = ``camera_src``'s
            height and width), float.
        camera_src: the source camera(s): unbatched, or batch shape equal to ``depth_src``'s leading dims.
        camera_dst: the destination camera(s), same rule (its image size may differ).

    Returns:
        ``(uv, depth)``: pixel positions ``[..., H, W, 2]`` in the destination image (may lie outside it) and
        the destination camera-frame z-depth ``[..., H, W]`` of the lifted points (``<= 0``: behind it).

    Raises:
        TypeError / ValueError: ``depth_src`` is not a float ``[..., H, W]`` tensor on the cameras' device, a
            camera is not a ``Camera``, or batch shapes or the image size do not match.

    **Differentiability:** smooth in ``depth_src`` and in both cameras' ``K``, ``world_to_cam`` (and
    distortion). Invalid depths are not masked here (see :func:`warp_to_view`).
    """
    if isinstance(camera_src, Camera):
        depth_src = _drop_channel(depth_src, camera_src.height, camera_src.width)
    check_tensor(depth_src, "depth_src", trailing=(None, None), floating=True)
    H, W = depth_src.shape[-2:]
    batch = depth_src.shape[:-2]
    _check_camera(camera_src, "camera_src", batch, H, W, "depth_src")
    _check_camera(camera_dst, "camera_dst", batch)
    for name, cam in (("camera_src", camera_src), ("camera_dst", camera_dst)):
        if cam.device != depth_src.device:
            raise ValueError(f"{name} is on {cam.device} but depth_src is on {depth_src.device}; move them to one "
                             "device")
    dtype = torch.promote_types(depth_src.dtype, camera_src.dtype)
    uv = pixel_centers(H, W, device=depth_src.device, dtype=dtype).expand(batch + (H, W, 2))
    origins, dirs = camera_src.ray_origins_directions(uv)
    p_cam = (origins + depth_src[..., None].to(dtype) * dirs).reshape(batch + (H * W, 3))
    w2c = camera_src.world_to_cam
    R, t = w2c[..., :3, :3], w2c[..., None, :3, 3]
    p_world = (p_cam - t) @ R  # row vectors: (x_c - t)^T R = (R^T (x_c - t))^T
    uv_dst, z_dst = camera_dst.project(p_world)
    return uv_dst.reshape(batch + (H, W, 2)), z_dst.reshape(batch + (H, W))


class WarpResult(NamedTuple):
    """What :func:`warp_to_view` returns; every field is on the target view's pixel grid ``[..., H, W]``."""

    image: torch.Tensor  #: the source image sampled at the reprojected positions, ``[..., H, W, C]``
    depth: torch.Tensor  #: z-depth of the target's points in the source camera, ``[..., H, W]``
    sampled_depth: torch.Tensor  #: the source's own depth map sampled at the same positions, ``[..., H, W]``
    valid: torch.Tensor  #: bool ``[..., H, W]``: inside the source image, in front of it and not occluded


def warp_to_view(image_src: torch.Tensor, depth_src: torch.Tensor, camera_src: Camera, depth_tgt: torch.Tensor,
                 camera_tgt: Camera, occlusion_tolerance: float = 0.01) -> WarpResult:
    """Warp a source view's image into a target view through the target's depth (backward warping).

    Each target pixel is reprojected into the source camera with its depth (:func:`reproject`); the source image
    and depth are sampled there bilinearly (``grid_sample``, ``align_corners=False``, so pixel centres sit at
    ``(j + 0.5, i + 0.5)``). A target pixel is **valid** when

    * its target depth is finite and ``> 0``;
    * it lands inside the source image, between its outermost pixel centres (``0.5 <= u <= W_src - 0.5``,
      ``0.5 <= v <= H_src - 0.5``, where bilinear sampling interpolates rather than repeats the border), and in
      front of the source camera (depth ``> camera_src.near``);
    * it is not occluded there: the sampled source depth ``d_s`` is finite, ``> 0`` and
      ``|depth - d_s| <= occlusion_tolerance * d_s``. Near depth edges, bilinear sampling mixes foreground and
      background depths, which fails this test, so edge pixels are dropped too (conservatively).

    Args:
        image_src: source image ``[..., H_s, W_s, C]``, float.
        depth_src: source z-depth ``[..., H_s, W_s]`` (or ``[..., H_s, W_s, 1]``), float; ``<= 0`` or non-finite marks background.
        camera_src: source camera(s), unbatched or with batch shape ``[...]``.
        depth_tgt: target z-depth ``[..., H, W]`` (or ``[..., H, W, 1]``), float, same leading dims; ``<= 0`` / non-finite is background.
        camera_tgt: target camera(s), unbatched or with batch shape ``[...]``.
        occlusion_tolerance: relative depth disagreement still counted as the same surface (``>= 0``).

    Returns:
        :class:`WarpResult` ``(image [..., H, W, C], depth [..., H, W], sampled_depth [..., H, W], valid)``.

    Raises:
        TypeError / ValueError: misshapen or mismatched tensors or cameras, non-finite ``image_src``, or a
            negative ``occlusion_tolerance``.

    **Differentiability:** ``image`` is differentiable in ``image_src`` and, through the sampling positions, in
    ``depth_tgt`` and both cameras; ``sampled_depth`` in ``depth_src`` too (bilinear weights are piecewise
    linear in the position). ``valid`` is a constant (computed from detached values).
    """
    check_tensor(image_src, "image_src", trailing=(None, None, None), floating=True, finite=True)
    depth_src = _drop_channel(depth_src, *image_src.shape[-3:-1])
    if isinstance(camera_tgt, Camera):
        depth_tgt = _drop_channel(depth_tgt, camera_tgt.height, camera_tgt.width)
    check_tensor(depth_src, "depth_src", trailing=(None, None), floating=True, device=image_src.device)
    check_tensor(depth_tgt, "depth_tgt", trailing=(None, None), floating=True, device=image_src.device)
    if isinstance(occlusion_tolerance, bool) or not isinstance(occlusion_tolerance, (int, float)) or \
            not occlusion_tolerance >= 0:
        raise ValueError(f"occlusion_tolerance must be a non-negative number; got {occlusion_tolerance!r}")
    Hs, Ws, C = image_src.shape[-3:]
    if tuple(depth_src.shape) != tuple(image_src.shape[:-1]):
        raise ValueError(f"depth_src must have shape [..., H, W] = {tuple(image_src.shape[:-1])} (image_src without "
                         f"channels); got {tuple(depth_src.shape)}")
    batch = depth_tgt.shape[:-2]
    if tuple(image_src.shape[:-3]) != tuple(batch):
        raise ValueError(f"image_src and depth_tgt must have the same leading dims; got {tuple(image_src.shape[:-3])}"
                         f" and {tuple(batch)}")
    _check_camera(camera_src, "camera_src", batch, Hs, Ws, "image_src")
    _check_camera(camera_tgt, "camera_tgt", batch, depth_tgt.shape[-2], depth_tgt.shape[-1], "depth_tgt")
    tgt_ok = torch.isfinite(depth_tgt) & (depth_tgt > 0)
    # background pixels are lifted at depth 1 (and marked invalid below): NaN / Inf must not reach the maths,
    # where they would turn the zero gradient of an unused pixel into NaN
    uv, z = reproject(torch.where(tgt_ok, depth_tgt, torch.ones_like(depth_tgt)), camera_tgt, camera_src)
    H, W = depth_tgt.shape[-2:]
    n = 1
    for s in batch:
        n *= s
    dtype = uv.dtype
    depth_s = depth_src.to(dtype)
    src_ok = torch.isfinite(depth_s) & (depth_s > 0)
    depth_s = torch.where(src_ok, depth_s, torch.zeros_like(depth_s))  # background samples as 0 (fails the test)
    planes = torch.cat([image_src.to(dtype), depth_s[..., None]], -1).reshape(n, Hs, Ws, C + 1).permute(0, 3, 1, 2)
    scale = torch.tensor([2.0 / Ws, 2.0 / Hs], dtype=dtype, device=uv.device)
    grid = (uv * scale - 1).reshape(n, H, W, 2)
    grid = torch.where(torch.isfinite(grid), grid, torch.full_like(grid, -2.0))  # stray points: outside, invalid
    sampled = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sampled = sampled.permute(0, 2, 3, 1).reshape(batch + (H, W, C + 1))
    image, d_s = sampled[..., :C], sampled[..., C]
    with torch.no_grad():
        u, v = uv.detach().unbind(-1)
        zd, dsd = z.detach(), d_s.detach()
        valid = tgt_ok.clone()
        valid &= (u >= 0.5) & (u <= Ws - 0.5) & (v >= 0.5) & (v <= Hs - 0.5) & (zd > camera_src.near)
        valid &= (dsd > 0) & ((zd - dsd).abs() <= occlusion_tolerance * dsd)
    return WarpResult(image.to(image_src.dtype), z, d_s, valid)


def _pairs(pairs, n: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    if pairs is None:
        idx = [(i, j) for i in range(n) for j in range(n) if i != j]
        if not idx:
            raise ValueError("multiview_consistency_loss needs at least 2 views for the default pairs; got 1")
        p = torch.tensor(idx, dtype=torch.long, device=device)
    else:
        try:
            p = torch.as_tensor(pairs, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"pairs must be a sequence of (i, j) view indices or an int tensor [P, 2]; got "
                            f"{pairs!r}") from None
        if p.dtype.is_floating_point or p.dtype == torch.bool or p.dim() != 2 or p.shape[-1] != 2 or p.shape[0] == 0:
            raise ValueError(f"pairs must hold at least one (i, j) pair of integer view indices, shape [P, 2]; got "
                             f"shape {tuple(p.shape)} and dtype {p.dtype}")
        p = p.long()
        if int(p.min()) < 0 or int(p.max()) >= n:
            raise ValueError(f"pairs holds view index {int(p.min()) if int(p.min()) < 0 else int(p.max())}, outside "
                             f"[0, {n}) for {n} views")
    return p[:, 0], p[:, 1]


def multiview_consistency_loss(images: torch.Tensor, depths: torch.Tensor, cameras: Camera,
                               pairs: Optional[Union[Sequence[Tuple[int, int]], torch.Tensor]] = None,
                               occlusion_tolerance: float = 0.01, kind: Literal["l1", "l2"] = "l1",
                               depth_weight: float = 0.0) -> torch.Tensor:
    """Penalise disagreement between views: colours (and optionally depths) carried from one view to another.

    For each pair ``(i, j)`` view ``j``'s image is warped into view ``i`` through ``i``'s depth
    (:func:`warp_to_view`), and over the valid pixels (inside ``j``, in front of it, not occluded; see there)

    ``loss = sum_valid e_photo / n_valid + depth_weight * sum_valid e_depth / n_valid``

    with ``e_photo = mean_c |I_i - warp(I_j)|`` (``"l1"``) or ``mean_c (I_i - warp(I_j))^2`` (``"l2"``), and the
    relative geometric error ``e_depth = |z_ij - d_j| / d_j`` between the depth ``z_ij`` of view ``i``'s point in
    camera ``j`` and ``j``'s own depth ``d_j`` there. Sums run over all pairs and pixels; no valid pixel gives 0.
    Since occluded pixels are those whose ``e_depth`` exceeds ``occlusion_tolerance``, the depth term only
    refines surfaces that already roughly agree; it does not pull far-off depths together.

    Args:
        images: ``[N, H, W, C]`` float images of ``N`` views.
        depths: ``[N, H, W]`` (or ``[N, H, W, 1]``) camera-frame z-depths (``<= 0`` / non-finite: background, never valid).
        cameras: a ``Camera`` with batch shape ``[N]`` and image size ``W x H``.
        pairs: ``(i, j)`` view pairs (target ``i``, source ``j``) as a sequence or an int tensor ``[P, 2]``;
            default all ordered pairs with ``i != j``.
        occlusion_tolerance: relative depth tolerance of the occlusion test (``>= 0``).
        kind: ``"l1"`` or ``"l2"`` photometric error.
        depth_weight: weight of the depth-consistency term (``>= 0``; 0 turns it off).

    Returns:
        Scalar tensor in ``images``' dtype.

    Raises:
        TypeError / ValueError: misshapen tensors, a camera batch or size that does not match, bad ``pairs``
            (out of range, wrong shape), unknown ``kind``, or a negative ``occlusion_tolerance`` / ``depth_weight``.

    **Differentiability:** differentiable in ``images``, ``depths`` (through the sampling positions, and
    through ``d_j`` in the depth term) and the cameras' ``K`` / ``world_to_cam``; which pixels count is decided
    without gradients. ``"l1"`` uses the subgradient 0 at exact ties; bilinear sampling is piecewise smooth.
    """
    check_choice(kind, "kind", ("l1", "l2"))
    check_tensor(images, "images", trailing=(None, None, None, None), max_dims=4, floating=True, finite=True)
    depths = _drop_channel(depths, *images.shape[-3:-1])
    check_tensor(depths, "depths", trailing=(None, None, None), max_dims=3, floating=True, device=images.device)
    if tuple(depths.shape) != tuple(images.shape[:-1]):
        raise ValueError(f"depths must have shape [N, H, W] = {tuple(images.shape[:-1])} (images without channels); "
                         f"got {tuple(depths.shape)}")
    if isinstance(depth_weight, bool) or not isinstance(depth_weight, (int, float)) or not depth_weight >= 0:
        raise ValueError(f"depth_weight must be a non-negative number; got {depth_weight!r}")
    N, H, W, _ = images.shape
    if not isinstance(cameras, Camera):
        raise TypeError(f"cameras must be a lumigrad.cameras.Camera; got {type(cameras).__name__}")
    if tuple(cameras.batch_shape) != (N,):
        raise ValueError(f"cameras must have batch shape [N] = ({N},) for {N} views; got "
                         f"{tuple(cameras.batch_shape)}")
    if (cameras.height, cameras.width) != (H, W):
        raise ValueError(f"images are {H} x {W} pixels but cameras are {cameras.height} x {cameras.width}")
    I, J = _pairs(pairs, N, images.device)
    warp = warp_to_view(images[J], depths[J], cameras[J], depths[I], cameras[I], occlusion_tolerance)
    work = torch.promote_types(warp.image.dtype, torch.float32)
    diff = images[I].to(work) - warp.image.to(work)
    e_photo = (diff.abs() if kind == "l1" else diff * diff).mean(-1)
    w = warp.valid.to(work)
    total = w.sum()
    loss = (e_photo * w).sum()
    if depth_weight > 0:
        d_j = torch.where(warp.valid, warp.sampled_depth, torch.ones_like(warp.sampled_depth))
        e_depth = (warp.depth - d_j).abs() / d_j
        loss = loss + depth_weight * (e_depth * w).sum()
    return (loss / total.clamp_min(1) * (total > 0)).to(images.dtype)
