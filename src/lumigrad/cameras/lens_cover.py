"""Pinhole cameras that cover a distorted camera's image: the first half of rendering through a lens.

A rasterizer draws straight lines straight, so a distorted image is made by rendering an undistorted
(pinhole) image that sees every ray of the distorted one and resampling it through the distortion map
(:func:`lumigrad.distort_image`). This module picks that pinhole camera: same pose, focal lengths scaled by
``supersample``, and an image size and principal point that enclose the undistorted image border.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_number
from ..limits import check_pixel_samples
from .camera import Camera
from .distortion import fold_radius
from .projection import pixel_rays


def _border_pixels(width: int, height: int, step: float, dtype, device) -> torch.Tensor:
    """Points ``[P, 2]`` along the image's outer border (pixel edges, not centres), corners included."""
    nu = max(2, int(math.ceil(width / step)) + 1)
    nv = max(2, int(math.ceil(height / step)) + 1)
    u = torch.linspace(0, width, nu, dtype=dtype, device=device)
    v = torch.linspace(0, height, nv, dtype=dtype, device=device)
    top = torch.stack([u, torch.zeros_like(u)], -1)
    bottom = torch.stack([u, torch.full_like(u, float(height))], -1)
    left = torch.stack([torch.zeros_like(v), v], -1)
    right = torch.stack([torch.full_like(v, float(width)), v], -1)
    return torch.cat([top, bottom, left, right])


def check_lens_folds(camera: Camera) -> None:
    """Raise ``ValueError`` if the camera's radial distortion folds inside its image.

    The image corners' distorted normalized radius must stay below the largest radius the radial model
    reaches before it stops growing (:func:`lumigrad.cameras.distortion.fold_radius`); beyond it two
    directions map to one pixel, or none, and the image cannot be undistorted.
    """
    if camera.distortion is None:
        return
    K, _ = camera.flat()
    corners = torch.tensor([[0.0, 0.0], [camera.width, 0.0], [0.0, camera.height],
                            [camera.width, camera.height]], dtype=K.dtype, device=K.device)
    rays = pixel_rays(K.detach()[:, None], corners[None])  # [N, 4, 3]
    radius = rays[..., :2].norm(dim=-1).amax(-1)  # [N]
    coeffs = camera.distortion.expand(camera.batch_shape + camera.distortion.shape[-1:])
    limit = fold_radius(coeffs.reshape(-1, coeffs.shape[-1]), camera.distortion_model)
    bad = radius >= limit
    if bool(bad.any()):
        view = int(bad.nonzero()[0, 0])
        raise ValueError(f"camera.distortion folds the image: the radial model reaches at most normalized radius "
                         f"{float(limit[view]):.3f} (it stops growing there, or the lens would see beyond 90 degrees "
                         f"off-axis), but the image corners need {float(radius[view]):.3f} (camera {view}); check the "
                         "coefficients and the focal length")


@torch.no_grad()
def _undistorted_extent(camera: Camera):
    """Per view, the range of ``fx x + s y`` and ``fy y`` over the undistorted image border: ``[N, 4]``."""
    K, _ = camera.flat()
    border = _border_pixels(camera.width, camera.height, 2.0, K.dtype, K.device)
    uv = border.expand(camera.batch_shape + border.shape)
    rays = camera.rays(uv).reshape(-1, border.shape[0], 3)  # [N, P, 3] undistorted, z = 1
    a = K[:, None, 0, 0] * rays[..., 0] + K[:, None, 0, 1] * rays[..., 1]
    b = K[:, None, 1, 1] * rays[..., 1]
    return torch.stack([a.amin(-1), a.amax(-1), b.amin(-1), b.amax(-1)], -1)


def pinhole_cover(camera: Camera, *, supersample: float = 1.0, margin: int = 2,
                  max_scale: float = 4.0) -> Camera:
    """Return the pinhole camera (no distortion) whose image contains every ray of ``camera``'s image.

    Args:
        camera: a (batched) :class:`Camera`; without distortion it is returned scaled by ``supersample``.
        supersample: pinhole pixels per distorted pixel near the image centre (focal lengths scale by it).
        margin: extra pinhole pixels on every side, so that bilinear resampling never reads past the border.
        max_scale: refuse covers wider or taller than ``max_scale * supersample`` times the distorted image
            (a very wide-angle lens, e.g. a fisheye near 180 degrees, cannot be covered by one pinhole image).

    Returns:
        a :class:`Camera` with the same ``world_to_cam``, ``near`` and ``far``,
        ``K' = diag(supersample, supersample, 1) K`` plus a constant shift of the principal point (rounded so
        that pinhole pixels keep a fixed sub-pixel phase against the camera's pixels), and an image size
        shared by all views of the batch.

    Raises:
        ValueError: if the distortion folds inside the image (see :func:`check_lens_folds`) or the cover would
            exceed ``max_scale``.
        lumigrad.limits.BudgetError: the cover (views x its pixels, at least ``supersample^2`` per pixel of
            ``camera``) exceeds the pixel budget; checked before anything is allocated.

    **Differentiability:** ``K'`` is differentiable in ``K`` (the shift is a constant), so a pipeline that
    renders through ``K'`` and resamples with :func:`lumigrad.distort_image` sends intrinsics gradients
    through the renderer's analytic geometry and silhouette gradients; ``world_to_cam`` is shared.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    supersample = check_number(supersample, "supersample", lo=0.0, lo_open=True)
    max_scale = check_number(max_scale, "max_scale", lo=0.0, lo_open=True)
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"margin must be a non-negative integer; got {margin!r}")
    views = len(camera)
    # Before anything is allocated: the cover has at least supersample^2 pixels per pixel of the camera.
    check_pixel_samples(views * (supersample * camera.width) * (supersample * camera.height),
                        f"pinhole_cover with supersample={supersample} is {supersample:g}^2 x {camera.width}x"
                        f"{camera.height} pixels x {views} view(s)")
    if camera.projection != "perspective":
        raise ValueError(f"pinhole_cover needs a perspective camera; got projection={camera.projection!r} "
                         "(orthographic cameras have no lens distortion to resample)")
    check_lens_folds(camera)
    if camera.distortion is None:
        K = camera.flat()[0].detach()
        ext = torch.stack([-K[:, 0, 2], camera.width - K[:, 0, 2], -K[:, 1, 2], camera.height - K[:, 1, 2]], -1)
    else:
        ext = _undistorted_extent(camera)  # [N, 4] relative to the principal point
    s = float(supersample)
    K = camera.K.expand(camera.batch_shape + (3, 3))
    c = K.detach().reshape(-1, 3, 3)[:, :2, 2]  # [N, 2] current principal points
    # The pinhole principal point is s * c + shift. The shift is rounded so that pinhole pixel centres keep
    # one fixed phase against the distorted camera's (scaled) pixel grid: a continuously sliding shift would
    # change the resampling's sub-pixel phase from one parameter value to the next and add a jitter to the
    # image that no gradient accounts for. It then only jumps by whole pixels, which the image ignores.
    phase = (0.5 - 0.5 * s) % 1.0
    need = margin - s * torch.stack([ext[:, 0], ext[:, 2]], -1) - s * c  # smallest allowed shift [N, 2]
    shift = torch.ceil(need - phase) + phase
    low = s * c + shift  # the new principal point, at least margin + s * (-min extent)
    width = int(math.ceil(float((low[:, 0] + s * ext[:, 1]).max()) + margin))
    height = int(math.ceil(float((low[:, 1] + s * ext[:, 3]).max()) + margin))
    if width > max_scale * s * camera.width or height > max_scale * s * camera.height:
        raise ValueError(f"the lens sees too wide a field for one pinhole image: the cover would be {width}x{height} "
                         f"pixels for a {camera.width}x{camera.height} image at supersample {s} (max_scale="
                         f"{max_scale}); lower the distortion or raise max_scale")
    check_pixel_samples(views * width * height, f"pinhole_cover with supersample={s} is {width}x{height} pixels x "
                                                f"{views} view(s)")
    scale = torch.tensor([[s, s, s], [s, s, s], [1.0, 1.0, 1.0]], dtype=K.dtype, device=K.device)
    offset = torch.zeros(camera.batch_shape + (3, 3), dtype=K.dtype, device=K.device)
    offset[..., 0, 2] = shift[:, 0].reshape(camera.batch_shape)
    offset[..., 1, 2] = shift[:, 1].reshape(camera.batch_shape)
    return Camera(K=K * scale + offset, world_to_cam=camera.world_to_cam, width=width, height=height,
                  near=camera.near, far=camera.far)
