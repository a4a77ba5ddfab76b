"""World-space rays from a :class:`~lumigrad.cameras.Camera` and their clipping to an axis-aligned box.

Rays come from the camera's own :meth:`~lumigrad.cameras.Camera.ray_origins_directions`, so lens distortion
and orthographic projection work; they are moved to world space with ``x_w = R^T (x_c - t)`` and their
directions normalised, so that the ray parameter ``t`` is a world distance.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .._checks import check_number, check_tensor
from ..cameras import Camera
from ..conventions import pixel_centers

__all__ = ["Rays", "camera_rays", "ray_aabb"]


class Rays(NamedTuple):
    """World rays: ``origins [..., 3]`` and unit ``directions [..., 3]``."""

    origins: torch.Tensor
    directions: torch.Tensor


def _to_world(camera: Camera, o_c: torch.Tensor, d_c: torch.Tensor, lead: int) -> Rays:
    """Camera-frame rays with ``lead`` sample dims after the camera's batch dims, to unit world rays."""
    w2c = camera.world_to_cam
    R = w2c[..., :3, :3].reshape(w2c.shape[:-2] + (1,) * lead + (3, 3))
    t = w2c[..., :3, 3].reshape(w2c.shape[:-2] + (1,) * lead + (3,))
    o = ((o_c - t)[..., None, :] @ R)[..., 0, :]  # x_w = R^T (x_c - t), as a row vector times R
    d = (d_c[..., None, :] @ R)[..., 0, :]
    return Rays(o, d / torch.linalg.vector_norm(d, dim=-1, keepdim=True))


def camera_rays(camera: Camera, pixels: Optional[torch.Tensor] = None) -> Rays:
    """World rays through pixel centres of ``camera``: all pixels, or the flat ``pixels`` indices.

    Args:
        camera: a :class:`~lumigrad.cameras.Camera` (any batch shape; perspective or orthographic; distortion
            allowed).
        pixels: ``None`` for every pixel, or an int tensor ``[N]`` of flat indices into
            ``(*camera.batch_shape, H, W)`` in row-major order (view, row, column), e.g. a random batch of
            training pixels drawn over all views.

    Returns:
        :class:`Rays` with ``origins`` and unit ``directions`` of shape ``[*batch, H, W, 3]`` (all pixels) or
        ``[N, 3]``, in the camera's dtype and device. Pixel (row i, col j) is sampled at its centre
        ``(j + 0.5, i + 0.5)``.

    Example: a perspective camera at the origin looking down +z gives, at the image centre, origin ``(0, 0, 0)``
    and direction ``(0, 0, 1)``.

    **Differentiability:** differentiable in the camera's ``K``, ``world_to_cam`` and ``distortion``.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad Camera; got {type(camera).__name__}")
    camera.require_pinhole("the volume renderer")
    H, W = camera.height, camera.width
    batch = tuple(camera.batch_shape)
    if pixels is None:
        uv = pixel_centers(H, W, device=camera.device, dtype=camera.dtype).expand(batch + (H, W, 2))
        o_c, d_c = camera.ray_origins_directions(uv)
        return _to_world(camera, o_c, d_c, 2)
    check_tensor(pixels, "pixels", trailing=(None,), max_dims=1, floating=False, device=camera.device)
    views = 1
    for b in batch:
        views *= b
    total = views * H * W
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= total):
        raise ValueError(f"pixels must be flat indices in [0, {total}) (views x H x W = {views} x {H} x {W}); "
                         f"got values in [{int(pixels.min())}, {int(pixels.max())}]")
    pixels = pixels.long()
    if pixels.numel() == 0:
        empty = torch.zeros(0, 3, dtype=camera.dtype, device=camera.device)
        return Rays(empty, empty.clone())
    view, pix = pixels // (H * W), pixels % (H * W)
    uv = torch.stack([(pix % W).to(camera.dtype) + 0.5, (pix // W).to(camera.dtype) + 0.5], -1)  # [N, 2]
    if not batch:
        o_c, d_c = camera.ray_origins_directions(uv)
        return _to_world(camera, o_c, d_c, 1)
    # one call per view present (pixels sorted by view, then put back in their order)
    flat = camera if len(batch) == 1 else _flattened(camera, views)
    order = torch.sort(view, stable=True).indices
    present, sizes = torch.unique_consecutive(view[order], return_counts=True)
    parts_o, parts_d, begin = [], [], 0
    for v, n in zip(present.tolist(), sizes.tolist()):
        one = flat[v]
        o_c, d_c = one.ray_origins_directions(uv[order[begin:begin + n]])
        rays = _to_world(one, o_c, d_c, 1)
        parts_o.append(rays.origins)
        parts_d.append(rays.directions)
        begin += n
    inverse = torch.empty_like(order).index_copy_(0, order, torch.arange(order.shape[0], device=order.device))
    return Rays(torch.cat(parts_o).index_select(0, inverse), torch.cat(parts_d).index_select(0, inverse))


def _flattened(camera: Camera, views: int) -> Camera:
    """``camera`` with its batch dims flattened to one (``views`` cameras)."""
    batch = tuple(camera.batch_shape)
    K = camera.K.expand(batch + (3, 3)).reshape(views, 3, 3)
    w2c = camera.world_to_cam.expand(batch + camera.world_to_cam.shape[-2:]).reshape(
        (views,) + camera.world_to_cam.shape[-2:])
    dist = None
    if camera.distortion is not None:
        n = camera.distortion.shape[-1]
        dist = camera.distortion.expand(batch + (n,)).reshape(views, n)
    return camera.replace(K=K, world_to_cam=w2c, distortion=dist)


def ray_aabb(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor, near: float = 0.0):
    """Clip rays to an axis-aligned box (slab method).

    Args:
        origins: ``[..., 3]`` ray origins.
        directions: ``[..., 3]`` ray directions (need not be unit; ``t`` is in their units).
        aabb: ``[6]`` box ``(x_min, y_min, z_min, x_max, y_max, z_max)``, with min < max per axis.
        near: smallest ``t`` kept (``>= 0``): the part of a ray before it is clipped away.

    Returns:
        ``(t_near [...], t_far [...], hit [...] bool)``: the ray is inside the box for ``t`` in
        ``[t_near, t_far]`` with ``t_near >= near``; rays that miss the box (or whose box part lies before
        ``near``) have ``hit = False`` and ``t_near = t_far = 0``, so samplers give them no samples. A direction
        component of 0 is handled exactly (the ray is inside that slab or misses it).

    Example: origin ``(0, 0, -2)``, direction ``(0, 0, 1)``, unit box ``[-1, 1]^3`` -> ``t_near = 1``,
    ``t_far = 3``, ``hit = True``.

    **Differentiability:** ``t_near`` and ``t_far`` are differentiable (piecewise) in ``origins``,
    ``directions`` and ``aabb``; ``hit`` is boolean.
    """
    check_tensor(origins, "origins", trailing=(3,), floating=True, finite=True)
    check_tensor(directions, "directions", trailing=(3,), floating=True, finite=True, device=origins.device)
    if directions.shape != origins.shape:
        raise ValueError(f"directions must have the shape of origins {tuple(origins.shape)}; "
                         f"got {tuple(directions.shape)}")
    check_tensor(aabb, "aabb", trailing=(6,), max_dims=1, floating=True, finite=True, device=origins.device)
    if bool((aabb[3:] <= aabb[:3]).any()):
        raise ValueError(f"aabb must be (x_min, y_min, z_min, x_max, y_max, z_max) with min < max; "
                         f"got {aabb.tolist()}")
    near = check_number(near, "near", lo=0.0)
    dt = torch.promote_types(origins.dtype, directions.dtype)
    o, d, box = origins.to(dt), directions.to(dt), aabb.to(dt)
    lo, hi = box[:3], box[3:]
    flat = d == 0
    safe = torch.where(flat, torch.ones_like(d), d)
    t1, t2 = (lo - o) / safe, (hi - o) / safe
    inside = (o >= lo) & (o <= hi)
    inf = torch.full_like(d, float("inf"))
    t_lo = torch.where(flat, torch.where(inside, -inf, inf), torch.minimum(t1, t2))
    t_hi = torch.where(flat, torch.where(inside, inf, -inf), torch.maximum(t1, t2))
    t_near = t_lo.amax(-1).clamp_min(near)
    t_far = t_hi.amin(-1)
    hit = t_far > t_near
    zero = torch.zeros_like(t_near)
    return torch.where(hit, t_near, zero), torch.where(hit, t_far, zero), hit
