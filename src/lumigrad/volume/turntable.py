"""A turntable of a fitted volume: cameras circling the box, a contact sheet of the frames, an animation file.

Render the views with any renderer (e.g. ``camera_rays`` -> samples -> ``composite`` per view), stack the images
``[N, H, W, 3]`` and write them with :func:`lumigrad.io.write_frames` (``.gif``, ``.mp4``, ``.png`` contact sheet;
files are ``io``'s job, a layer above this one; ``lumigrad.volume.write_turntable`` is its deprecated alias).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from .._checks import check_number, check_positive_int, check_tensor
from ..cameras import Camera
from ..shading.image_layout import image_strip
from .fields.aabb import AabbLike, as_aabb

__all__ = ["turntable_cameras", "image_strip"]


def turntable_cameras(aabb: AabbLike, *, views: int = 24, size: Tuple[int, int] = (256, 256),
                      elevation_deg: float = 20.0, fov_y_deg: float = 40.0, distance: Optional[float] = None,
                      up: Sequence[float] = (0.0, 1.0, 0.0)) -> Camera:
    """Perspective cameras evenly spaced on a circle around the box centre's ``up`` axis, looking at the centre.

    View ``k`` sits at azimuth ``phi_k = 2 pi k / views`` and elevation ``theta`` above the plane through the
    centre perpendicular to ``up``::

        eye_k = centre + distance * (cos(theta) (cos(phi_k) e1 + sin(phi_k) e2) + sin(theta) u)

    with ``u = up / |up|``, ``e1`` the world +z axis made perpendicular to ``u`` (the +x axis when ``up`` is
    along z) and ``e2 = u x e1``. For the default ``up = +y`` (lumigrad's world up, ``lumigrad.conventions``)
    view 0 is on the +z side and the views turn from +z towards +x. ``up`` is shown upwards in every image.

    Args:
        aabb: the box, ``[2, 3]`` or ``[6]`` (world units); the cameras look at its centre.
        views: number of cameras ``N`` (>= 1).
        size: image ``(W, H)`` in pixels.
        elevation_deg: elevation of the circle above the centre, degrees in ``(-90, 90)`` (the name says the
            unit; negative looks from below).
        fov_y_deg: vertical field of view, degrees in ``(0, 180)``.
        distance: distance from the centre to every camera (world units, > 0). Default: the bounding sphere of
            the box (radius ``r`` = half its diagonal) exactly fills the frame, touching the frame's narrower
            sides: ``distance = r / sin(a)`` with ``a`` the smaller of the vertical and horizontal half fields of
            view (the sphere's silhouette is the cone of half-angle ``asin(r / distance)``).
        up: the turntable axis and the world direction shown upwards, 3 numbers, non-zero.

    Returns:
        A :class:`lumigrad.Camera` with batch shape ``[N]``, float32 (float64 when ``aabb`` is a float64 tensor),
        on the box's device; index it (``cams[k]``) for one view.

    Raises:
        TypeError / ValueError: naming the argument (``views``, ``size``, ``elevation_deg``, ``fov_y_deg``,
            ``distance``, ``up``, ``aabb``).

    Example: for the box ``[-1, 1]^3`` with ``size=(32, 32)``, ``fov_y_deg=60`` the bounding sphere has radius
    ``sqrt(3)`` and the cameras stand ``sqrt(3) / sin(30 deg) = 3.464`` from the origin; the origin projects to
    the image centre ``(16, 16)`` in every view.

    **Differentiability:** none (the poses are constants built from numbers).
    """
    box = as_aabb(aabb)
    check_positive_int(views, "views")
    width, height = _size(size)
    elevation = math.radians(check_number(elevation_deg, "elevation_deg", lo=-90.0, hi=90.0, lo_open=True,
                                          hi_open=True))
    fov_y = math.radians(check_number(fov_y_deg, "fov_y_deg", lo=0.0, hi=180.0, lo_open=True, hi_open=True))
    axis = _unit_up(up)
    lo, hi = box[0].double(), box[1].double()
    centre = (lo + hi) / 2
    if distance is None:
        half_y = fov_y / 2
        half_x = math.atan(width / height * math.tan(half_y))
        distance = 0.5 * float((hi - lo).norm()) / math.sin(min(half_x, half_y))
    else:
        distance = check_number(distance, "distance", lo=0.0, lo_open=True)
    e1 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    if float(torch.linalg.cross(axis, e1).norm()) < 1e-6:
        e1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    e1 = e1 - (e1 @ axis) * axis
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(axis, e1)
    phi = 2 * math.pi * torch.arange(views, dtype=torch.float64) / views
    ring = torch.cos(phi)[:, None] * e1 + torch.sin(phi)[:, None] * e2
    direction = math.cos(elevation) * ring + math.sin(elevation) * axis
    eye = centre + distance * direction  # [N, 3]
    dtype, dev = box.dtype, box.device
    return Camera.look_at(eye.to(dev, dtype), centre.expand_as(eye).to(dev, dtype), axis.to(dev, dtype),
                          fov_y=fov_y, width=width, height=height)


def _size(size) -> Tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size must be (W, H), two positive ints; got {size!r}")
    return check_positive_int(size[0], "size[0] (W)"), check_positive_int(size[1], "size[1] (H)")


def _unit_up(up) -> torch.Tensor:
    try:
        axis = torch.as_tensor(up, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"up must be 3 numbers; got {up!r}") from None
    check_tensor(axis, "up", trailing=(3,), max_dims=1, finite=True)
    norm = float(axis.norm())
    if norm == 0:
        raise ValueError("up must be a non-zero vector; got (0, 0, 0)")
    return axis / norm
