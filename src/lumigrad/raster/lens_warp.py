"""Resample a pinhole render through a lens distortion map: the second half of rendering through a lens.

Distortion is applied per pixel, not per vertex: every output pixel (sample) of the distorted camera is
turned into its undistorted ray (:meth:`Camera.rays`, Newton inverse with implicit gradients), projected into
the pinhole cover image (:func:`lumigrad.cameras.pinhole_cover`) and read there bilinearly. Straight 3D lines
therefore bend exactly as the distortion model says, however large the triangles are.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .._checks import check_channels, check_number, check_positive_int, check_tensor
from ..limits import check_pixel_samples
from ..cameras.camera import Camera
from ..cameras.lens_cover import pinhole_cover
from ..kernels.lens import lens_grid


def lens_sample_grid(pinhole: Camera, camera: Camera, samples: int = 1) -> torch.Tensor:
    """Pinhole-image pixel positions ``[..., H, W, samples^2, 2]`` seen by each sample of ``camera``'s pixels.

    Samples sit on a regular ``samples x samples`` grid inside each pixel (the centre for ``samples = 1``).
    Differentiable in both cameras' ``K`` and in ``camera.distortion`` (then built with autograd from
    :meth:`Camera.rays`); when none of them needs a gradient, one fused float64 kernel computes it.

    Raises:
        lumigrad.limits.BudgetError: views x H x W x ``samples^2`` exceeds the pixel budget.
    """
    if not isinstance(camera, Camera) or not isinstance(pinhole, Camera):
        raise TypeError("pinhole and camera must be lumigrad.Camera objects")
    _check_samples(samples, camera)
    return _lens_sample_grid(pinhole, camera, samples)


def _check_samples(samples, camera: Camera) -> None:
    """``samples`` is a positive int and views x H x W x samples^2 reads fit the pixel budget."""
    check_positive_int(samples, "samples")
    views = len(camera)
    check_pixel_samples(views * camera.height * camera.width * samples * samples,
                        f"samples={samples} ({samples}^2 reads per pixel) x {camera.width}x{camera.height} pixels x "
                        f"{views} view(s)")


def _lens_sample_grid(pinhole: Camera, camera: Camera, samples: int) -> torch.Tensor:
    H, W = camera.height, camera.width
    dtype, device = camera.dtype, camera.device
    needs_grad = torch.is_grad_enabled() and (camera.K.requires_grad or pinhole.K.requires_grad or (
        camera.distortion is not None and camera.distortion.requires_grad))
    if camera.distortion is not None and not needs_grad:
        # The grid depends on the intrinsics and the lens only: with no gradient wanted for them (fits of
        # geometry, pose, texture through a fixed lens) one fused kernel computes it.
        K, _ = camera.flat()
        Kp = pinhole.K.expand(camera.batch_shape + (3, 3)).reshape(-1, 3, 3)
        coeffs = camera.distortion.expand(camera.batch_shape + camera.distortion.shape[-1:])
        grid, status = lens_grid(K, Kp, coeffs.reshape(-1, coeffs.shape[-1]), camera.distortion_model, W, H,
                                 samples)
        if bool((status != 0).any()):
            raise ValueError("camera.distortion cannot be inverted at some pixels (the lens folds inside the "
                             "image); see lumigrad.cameras.check_lens_folds")
        return grid.to(dtype).reshape(camera.batch_shape + (H, W, samples * samples, 2))
    offsets = (torch.arange(samples, dtype=dtype, device=device) + 0.5) / samples
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    sub = torch.stack([ox.reshape(-1), oy.reshape(-1)], -1)  # [S, 2]
    rows = torch.arange(H, dtype=dtype, device=device)
    cols = torch.arange(W, dtype=dtype, device=device)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    uv = torch.stack([u, v], -1)[:, :, None, :] + sub  # [H, W, S, 2]
    uv = uv.expand(camera.batch_shape + uv.shape)
    rays = camera.rays(uv)  # [..., H, W, S, 3], undistorted, z = 1
    Kp = pinhole.K.expand(camera.batch_shape + (3, 3)).reshape(camera.batch_shape + (1, 1, 1, 3, 3))
    up = Kp[..., 0, 0] * rays[..., 0] + Kp[..., 0, 1] * rays[..., 1] + Kp[..., 0, 2]
    vp = Kp[..., 1, 1] * rays[..., 1] + Kp[..., 1, 2]
    return torch.stack([up, vp], -1)


def distort_image(image: torch.Tensor, pinhole: Camera, camera: Camera, *, samples: int = 1) -> torch.Tensor:
    """Resample ``image``, rendered by the pinhole camera ``pinhole``, into the distorted camera ``camera``.

    Args:
        image: ``[..., H', W', C]`` float, rendered with ``pinhole`` (usually :func:`pinhole_cover` of
            ``camera``); its batch dims are ``camera``'s.
        pinhole: the undistorted camera ``image`` was rendered with (same pose; size ``H' x W'``).
        camera: the distorted camera (``camera.distortion`` may be ``None``: then this is a plain
            reprojection between two pinhole cameras with the same pose).
        samples: ``samples x samples`` bilinear reads per output pixel, averaged (a box filter; use it when the
            pinhole image is supersampled).

    Returns:
        ``[..., H, W, C]``: the image as ``camera`` sees it.

    Cost: one Newton solve per sample (a few iterations) and one bilinear read; O(H W samples^2).

    Raises:
        ValueError: wrong shapes, NaN / Inf in ``image``, zero channels, mixed devices.
        lumigrad.limits.BudgetError: views x H x W x ``samples^2`` exceeds the pixel budget.

    **Differentiability:** w.r.t. ``image`` (bilinear weights), ``camera.distortion`` and both cameras' ``K``
    (through the sample positions: the implicit-function gradient of the undistortion times the image's
    bilinear slope). ``pinhole.K`` from :func:`pinhole_cover` tracks ``camera.K``, so for small distortion
    the intrinsics gradient flows mainly through the renderer's own analytic path.
    """
    if not isinstance(camera, Camera) or not isinstance(pinhole, Camera):
        raise TypeError("pinhole and camera must be lumigrad.Camera objects")
    _check_samples(samples, camera)
    if pinhole.distortion is not None:
        raise ValueError("pinhole must be an undistorted camera (distortion=None); build it with pinhole_cover")
    _check_image(image, pinhole, camera)
    check_tensor(image, "image", finite=True)
    return _distort_image(image, pinhole, camera, samples)


def _check_image(image, pinhole: Camera, camera: Camera) -> None:
    """Shapes and devices of ``distort_image``'s ``image`` (no host sync)."""
    check_tensor(image, "image", trailing=(pinhole.height, pinhole.width, None), floating=True)
    check_channels(image, "image", "[..., H', W', C]")
    if pinhole.device != camera.device or image.device != camera.device:
        raise ValueError(f"image, pinhole and camera must be on one device; got {image.device}, {pinhole.device} "
                         f"and {camera.device}")
    batch = camera.batch_shape
    if tuple(image.shape[:-3]) != tuple(batch):
        raise ValueError(f"image must have batch dims {tuple(batch)} (the camera's); got {tuple(image.shape[:-3])}")


def _distort_image(image: torch.Tensor, pinhole: Camera, camera: Camera, samples: int) -> torch.Tensor:
    """:func:`distort_image` on checked inputs."""
    batch = camera.batch_shape
    grid = _lens_sample_grid(pinhole, camera, samples).to(image.dtype)  # [..., H, W, S, 2]
    H, W, C = camera.height, camera.width, image.shape[-1]
    S = samples * samples
    n = 1
    for size in batch:
        n *= size
    # grid_sample's align_corners=False maps -1 / +1 to the outer pixel edges, i.e. pixel coordinate 0 / W'.
    size = torch.tensor([pinhole.width, pinhole.height], dtype=image.dtype, device=image.device)
    norm = (grid.reshape(n, H, W * S, 2) / size) * 2 - 1
    src = image.reshape(n, pinhole.height, pinhole.width, C).permute(0, 3, 1, 2)
    out = F.grid_sample(src, norm, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.permute(0, 2, 3, 1).reshape(n, H, W, S, C).mean(-2)
    return out.reshape(batch + (H, W, C))


def distort_index_image(ids: torch.Tensor, pinhole: Camera, camera: Camera, *, fill: int = -1) -> torch.Tensor:
    """Read an index image ``ids [..., H', W']`` of the pinhole cover at the cover pixel nearest to each
    distorted pixel's centre ray (``fill`` where the ray leaves the cover): the lens resampling of buffers that
    must not be blended, such as face ids.

    Args:
        ids: ``[..., H', W']`` integer image rendered with ``pinhole``; its batch dims are ``camera``'s.
        pinhole, camera: as :func:`distort_image`.
        fill: the value outside the cover.

    Returns:
        ``[..., H, W]`` of ``ids``' dtype. Not differentiable (indices).

    Example:
        >>> cam = Camera.look_at([0., 0., -3.], [0., 0., 0.], width=4, height=2)
        >>> ids = torch.arange(8, dtype=torch.int32).reshape(2, 4)
        >>> distort_index_image(ids, cam, cam).tolist()  # no distortion: every pixel reads itself
        [[0, 1, 2, 3], [4, 5, 6, 7]]
    """
    if not isinstance(camera, Camera) or not isinstance(pinhole, Camera):
        raise TypeError("pinhole and camera must be lumigrad.Camera objects")
    check_tensor(ids, "ids", trailing=(pinhole.height, pinhole.width), floating=False)
    if tuple(ids.shape[:-2]) != tuple(camera.batch_shape):
        raise ValueError(f"ids must have batch dims {tuple(camera.batch_shape)} (the camera's); got "
                         f"{tuple(ids.shape[:-2])}")
    _check_samples(1, camera)
    with torch.no_grad():
        grid = _lens_sample_grid(pinhole, camera, 1)[..., 0, :]  # [..., H, W, 2] cover pixel positions
    col, row = grid[..., 0].floor().long(), grid[..., 1].floor().long()
    inside = (col >= 0) & (col < pinhole.width) & (row >= 0) & (row < pinhole.height)
    index = row.clamp(0, pinhole.height - 1) * pinhole.width + col.clamp(0, pinhole.width - 1)
    flat = ids.reshape(ids.shape[:-2] + (-1,))
    picked = torch.gather(flat, -1, index.reshape(index.shape[:-2] + (-1,))).reshape(index.shape)
    return torch.where(inside, picked, torch.full_like(picked, fill))


def render_through_lens(render: Callable[[Camera], torch.Tensor], camera: Camera, *, supersample: float = 1.0,
                        samples: int = 1) -> torch.Tensor:
    """Render ``[..., H, W, C]`` as the distorted ``camera`` sees it, with any pinhole renderer.

    ``render(pinhole_camera)`` must return a channel-last image for that camera (for example
    ``rasterize -> interpolate -> texture -> antialias``). Without distortion it is called with ``camera``
    itself. Otherwise it is called with :func:`pinhole_cover` (``supersample`` pinhole pixels per pixel) and
    the result is resampled with :func:`distort_image` (``samples x samples`` reads per pixel).

    Raises:
        lumigrad.limits.BudgetError: before ``render`` is called, when the pinhole cover (``supersample^2``
            pixels per pixel) or the resampling (``samples^2`` reads per pixel) exceeds the pixel budget.

    **Differentiability:** whatever ``render`` gives, plus :func:`distort_image`'s gradients (distortion
    coefficients, intrinsics).

    Example:
        >>> import lumigrad as lg
        >>> cam = lg.Camera.look_at([0., 0., -3.], [0., 0., 0.], width=32, height=24,
        ...                         distortion=torch.tensor([-0.2, 0.05, 0., 0., 0.]))
        >>> verts = torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]])
        >>> draw = lambda c: lg.rasterize(verts, torch.tensor([[0, 1, 2]]), c).mask[..., None].float()
        >>> render_through_lens(draw, cam).shape
        torch.Size([24, 32, 1])
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    if not callable(render):
        raise TypeError(f"render must be a callable taking a Camera; got {type(render).__name__}")
    check_positive_int(samples, "samples")
    check_number(supersample, "supersample", lo=0.0, lo_open=True)
    if camera.distortion is None:
        return render(camera)
    _check_samples(samples, camera)  # before rendering the cover; pinhole_cover checks supersample
    pinhole = pinhole_cover(camera, supersample=supersample)
    image = render(pinhole)
    _check_image(image, pinhole, camera)  # the renderer's own output: shapes only, no per-frame NaN sync
    return _distort_image(image, pinhole, camera, samples)
