"""Filtered back-projection: the analytic CT reconstruction that gradient-based recovery is compared against.

* Parallel beam (orthographic cameras): each detector row is a 1D projection of one slice; rows are
  ramp-filtered (:func:`ramp_filter`) and smeared back over the volume,
  ``f(x) = (pi / V) sum_v q_v(u_v(x), v_v(x))`` (Kak & Slaney, *Principles of Computerized Tomographic Imaging*,
  ch. 3), for ``V`` views spread uniformly over ``pi`` or ``2 pi``.
* Cone beam (pinhole cameras, circular source orbit of radius ``D``): Feldkamp-Davis-Kress (FDK). Detector
  coordinates are scaled to the rotation axis (``a = D x_n``, ``b = D y_n``, with ``(x_n, y_n, 1) = K^-1 (u, v,
  1)``), pre-weighted by ``D / sqrt(D^2 + a^2 + b^2)``, ramp-filtered along rows, and back-projected with the
  distance weight ``(D / z)^2`` (``z`` the voxel's depth in the view), ``f(x) = (pi / V) sum_v (D/z)^2 q_v``,
  for ``V`` views spread uniformly over ``2 pi``. Exact in the orbit's plane, approximate off it (the cone-beam
  artefacts grow with the cone angle).

Both assume detector rows perpendicular to the rotation axis (as :func:`~lumigrad.volume.tomography.
circular_trajectory` makes them) and equally spaced views; nothing here checks the angles.
"""

from __future__ import annotations

import math
from typing import Literal, Tuple

import torch

from .._checks import check_choice, check_tensor
from ..cameras.camera import Camera
from .tomography import check_box

__all__ = ["ramp_filter", "filtered_backprojection", "voxel_centres"]

WINDOWS = ("ram-lak", "shepp-logan", "cosine", "hann")


def ramp_filter(projections: torch.Tensor, spacing: float,
                window: Literal["ram-lak", "shepp-logan", "cosine", "hann"] = "ram-lak") -> torch.Tensor:
    """Convolve each row (last dim) with the band-limited ramp filter ``|omega|``, in Fourier space.

    The filter is the FFT of the spatial Ram-Lak kernel sampled at the detector spacing ``tau``
    (``h[0] = 1 / (4 tau^2)``, ``h[k] = -1 / (pi k tau)^2`` for odd ``k``, 0 for even ``k``), which, unlike a
    sampled ``|omega|``, has the correct zero-frequency value. Rows are zero-padded to a power of two
    ``>= 2 W`` (no wrap-around), multiplied by the window, and the result is scaled by ``tau`` (the
    convolution integral's measure). Windows (``f`` in cycles per sample, ``|f| <= 1/2``): ``"ram-lak"`` 1,
    ``"shepp-logan"`` ``sinc(f)``, ``"cosine"`` ``cos(pi f)``, ``"hann"`` ``(1 + cos(2 pi f)) / 2``.

    Args:
        projections: ``[..., W]`` line integrals along detector rows, float.
        spacing: detector pixel spacing ``tau`` in world units (> 0).
        window: apodisation of the ramp (trades resolution for noise).

    Returns:
        filtered rows ``[..., W]``, same dtype.

    **Differentiability:** linear in ``projections``, differentiable.

    Example:
        >>> q = ramp_filter(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), 1.0)
        >>> [round(v, 4) for v in q.tolist()]   # an impulse gives the kernel: 1/4, -1/pi^2, 0, -1/(9 pi^2)
        [0.25, -0.1013, 0.0, -0.0113]
    """
    check_tensor(projections, "projections", min_dims=1, floating=True)
    check_choice(window, "window", WINDOWS)
    if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a finite positive number; got {spacing!r}")
    n = projections.shape[-1]
    N = 1 << max(1, (2 * n - 1).bit_length())
    k = torch.fft.fftfreq(N, d=1.0 / N, dtype=torch.float64)  # integer offsets 0, 1, ..., -1
    h = torch.zeros(N, dtype=torch.float64)
    h[0] = 1.0 / (4 * spacing ** 2)
    odd = k.remainder(2) == 1
    h[odd] = -1.0 / (math.pi * k[odd] * spacing) ** 2
    H = torch.fft.fft(h).real
    f = torch.fft.fftfreq(N, dtype=torch.float64)
    if window == "shepp-logan":
        H = H * torch.sinc(f)
    elif window == "cosine":
        H = H * torch.cos(math.pi * f)
    elif window == "hann":
        H = H * 0.5 * (1 + torch.cos(2 * math.pi * f))
    spectrum = torch.fft.fft(projections.to(torch.float64), n=N, dim=-1)
    out = torch.fft.ifft(spectrum * H.to(projections.device), dim=-1).real[..., :n] * spacing
    return out.to(projections.dtype)


def voxel_centres(grid_shape: Tuple[int, int, int], box: torch.Tensor) -> torch.Tensor:
    """World positions of the voxel centres of a grid filling ``box``.

    Args:
        grid_shape: ``(D, H, W)``.
        box: ``[2, 3]`` tensor ``[lo, hi]``.

    Returns:
        ``[D, H, W, 3]`` (x, y, z): ``lo + (i + 0.5, j + 0.5, k + 0.5) * (hi - lo) / (W, H, D)``.

    **Differentiability:** in ``box``.
    """
    D, H, W = grid_shape
    axes = [box[0, a] + (box[1, a] - box[0, a]) * (torch.arange(n, dtype=box.dtype, device=box.device) + 0.5) / n
            for a, n in ((0, W), (1, H), (2, D))]
    z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return torch.stack([x, y, z], -1)


def filtered_backprojection(projections: torch.Tensor, camera: Camera, box, grid_shape: Tuple[int, int, int], *,
                            window: Literal["ram-lak", "shepp-logan", "cosine", "hann"] = "ram-lak",
                            centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Reconstruct a ``[D, H, W]`` density from line integrals: parallel-beam FBP or cone-beam FDK.

    Orthographic cameras get parallel-beam FBP, pinhole cameras FDK (see the module docstring for the formulas
    and their assumptions: equally spaced views over ``pi`` or ``2 pi`` for parallel beam, ``2 pi`` for cone
    beam; rows perpendicular to the rotation axis).

    Args:
        projections: line integrals ``p = -log(I / I0)`` ``[V, H, W]`` (one per view of ``camera``), finite.
        camera: the views, a :class:`~lumigrad.Camera` batched over ``[V]`` with one ``fx`` for all views.
        box: ``[2, 3]`` corners of the reconstructed box.
        grid_shape: ``(D, H, W)`` voxels (z, y, x).
        window: ramp-filter window (:func:`ramp_filter`).
        centre: a point on the rotation axis (cone beam: the source-to-axis distance ``D`` of each view is the
            depth of this point in it).

    Returns:
        ``density [D, H, W]`` in ``projections``' dtype (may have small negative values: FBP is linear and
        unconstrained).

    Raises:
        ValueError: ``projections`` not ``[V, H, W]`` matching the camera, NaN / Inf, no views.

    **Differentiability:** linear in ``projections`` and differentiable; not in the camera's intrinsic ``fx``
    (read as a number for the filter spacing).
    """
    check_tensor(projections, "projections", trailing=(None, None, None), max_dims=3, floating=True)
    if projections.shape[0] == 0:
        raise ValueError("projections holds no views (shape [0, H, W]); filtered back-projection needs at least one")
    if not bool(torch.isfinite(projections).all()):
        raise ValueError("projections contains NaN or Inf values")
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    V = projections.shape[0]
    if tuple(camera.batch_shape) != (V,) or projections.shape[1:] != (camera.height, camera.width):
        raise ValueError(f"projections must have shape [V, H, W] = [{', '.join(map(str, camera.batch_shape))}, "
                         f"{camera.height}, {camera.width}] (one image per camera view); got "
                         f"{tuple(projections.shape)}")
    if len(grid_shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in grid_shape):
        raise ValueError(f"grid_shape must be three positive ints (D, H, W); got {grid_shape!r}")
    check_choice(window, "window", WINDOWS)
    cam = camera.to(dtype=projections.dtype)
    box = check_box(box, like=projections)
    K, _ = cam.flat()
    fx = K[:, 0, 0]
    if float((fx - fx[0]).abs().max()) > 1e-6 * float(fx[0]):
        raise ValueError("camera views must share one focal length fx (the filter's detector spacing)")
    fx0 = float(fx[0])
    points = voxel_centres(tuple(grid_shape), box).reshape(1, -1, 3).expand(V, -1, 3)
    uv, depth = cam.project(points)  # [V, P, 2], [V, P]
    if cam.projection == "orthographic":
        q = ramp_filter(projections, 1.0 / fx0, window)
        weight = torch.ones_like(depth)
    else:
        c = torch.as_tensor(centre, dtype=projections.dtype, device=projections.device)
        check_tensor(c, "centre", trailing=(3,), max_dims=1, floating=True, finite=True)
        dist = cam.project(c.expand(V, 1, 3))[1]  # [V, 1]: source-to-axis distance D per view
        if bool((dist <= 0).any()):
            raise ValueError("centre lies behind a camera; FDK needs the rotation axis in front of every source")
        H, W = cam.height, cam.width
        j = torch.arange(W, dtype=projections.dtype, device=projections.device) + 0.5
        i = torch.arange(H, dtype=projections.dtype, device=projections.device) + 0.5
        a = (j - K[:, 0, 2, None]) / K[:, 0, 0, None] * dist  # [V, W], no skew
        b = (i - K[:, 1, 2, None]) / K[:, 1, 1, None] * dist  # [V, H]
        D = dist[:, :, None]
        pre = D / torch.sqrt(D * D + a[:, None, :] ** 2 + b[:, :, None] ** 2)
        q = ramp_filter(projections * pre, float(dist.mean()) / fx0, window)
        weight = (dist / depth.clamp_min(1e-12)) ** 2
    size = torch.tensor([cam.width, cam.height], dtype=uv.dtype, device=uv.device)
    grid = (uv / size * 2 - 1)[:, None]  # [V, 1, P, 2]; align_corners=False: pixel centres at (j + 0.5)
    samples = torch.nn.functional.grid_sample(q[:, None], grid, mode="bilinear", padding_mode="zeros",
                                              align_corners=False)[:, 0, 0]  # [V, P]
    density = (samples * weight).sum(0) * (math.pi / V)
    return density.reshape(tuple(grid_shape))
