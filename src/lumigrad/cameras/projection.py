"""Functional camera maths in lumigrad's OpenCV convention (see ``lumigrad.conventions``).

Two projections share the intrinsics ``K`` (see docs/conventions.md, "Orthographic cameras"):

* ``"perspective"`` (pinhole): ``(u, v, 1) ~ K (x/z, y/z, 1)``; every pixel ray starts at the camera centre.
* ``"orthographic"``: ``(u, v, 1) = K (x, y, 1)``, no division (``fx``, ``fy`` are pixels per world unit);
  pixel rays are parallel to +z and start at ``(x, y, 0)``.

In both, ``K^-1 (u, v, 1) = (x, y, 1)`` (:func:`pixel_rays`) describes the pixel's ray: its direction
through the centre (perspective) or its origin's ``(x, y)`` (orthographic).

All functions are differentiable in every tensor argument and broadcast over leading batch dims.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_number, check_positive_int
from ..conventions import compose_world_to_cam

PROJECTIONS = ("perspective", "orthographic")


def pow2_scale(largest: torch.Tensor) -> torch.Tensor:
    """The power of two ``2^e >= largest`` (elementwise, ``1`` where ``largest`` is 0), detached.

    Dividing by it is exact in binary floating point (no rounding, so results that are homogeneous in the
    scaled values come out bit-identical) and brings every value below 1 in magnitude, so that products of a
    few of them cannot overflow.
    """
    exponent = torch.frexp(largest.detach()).exponent  # largest = mantissa * 2^e, mantissa in [0.5, 1)
    return torch.ldexp(torch.ones_like(largest), exponent)


def check_fov(fov_y) -> float:
    """Return ``fov_y`` (radians) as a float, or raise ``ValueError`` unless it is finite and in ``(0, pi)``."""
    value = check_number(fov_y, "fov_y")
    if not 0 < value < math.pi:
        raise ValueError(f"fov_y must be a vertical field of view in radians in (0, pi), i.e. between 0 and 180 "
                         f"degrees exclusive; got {value}")
    return value


def transform_points(points: torch.Tensor, world_to_cam: torch.Tensor) -> torch.Tensor:
    """Map world points ``[..., P, 3]`` to the camera frame with ``world_to_cam [..., 4, 4]``: ``R x + t``."""
    R = world_to_cam[..., :3, :3]
    t = world_to_cam[..., None, :3, 3]
    return points @ R.transpose(-1, -2) + t


def project_points(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-12, *,
                   projection: str = "perspective") -> torch.Tensor:
    """Project camera-frame points ``[..., P, 3]`` to pixels ``[..., P, 2]`` with intrinsics ``K [..., 3, 3]``.

    ``u = fx x/z + s y/z + cx``, ``v = fy y/z + cy``. Points at ``z = 0`` are projected with ``z = eps``.
    With ``projection="orthographic"`` this is :func:`project_points_orthographic` (``eps`` is unused).

    Example: with ``K = [[100, 0, 32], [0, 100, 24], [0, 0, 1]]`` the point ``(0, 0, 5)`` lands at ``(32, 24)``,
    the centre of pixel row 23.5 -> the corner between rows 23 and 24.
    """
    if projection == "orthographic":
        return project_points_orthographic(points_cam, K)
    if projection != "perspective":
        raise ValueError(f"projection must be one of {PROJECTIONS}; got {projection!r}")
    z = points_cam[..., 2]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    x = points_cam[..., 0] / z
    y = points_cam[..., 1] / z
    k = K[..., None, :, :]
    u = k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2]
    v = k[..., 1, 1] * y + k[..., 1, 2]
    return torch.stack([u, v], dim=-1)


def project_points_orthographic(points_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Project camera-frame points ``[..., P, 3]`` orthographically to pixels ``[..., P, 2]`` with ``K [..., 3, 3]``.

    ``u = fx x + s y + cx``, ``v = fy y + cy``: depth ``z`` plays no part, ``fx`` and ``fy`` are pixels per world
    unit. Example: with ``K = [[10, 0, 32], [0, 10, 24], [0, 0, 1]]`` the point ``(1, -0.5, 7)`` lands at
    ``(42, 19)``, whatever its depth.
    """
    k = K[..., None, :, :]
    x = points_cam[..., 0]
    y = points_cam[..., 1]
    u = k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2]
    v = k[..., 1, 1] * y + k[..., 1, 2]
    return torch.stack([u, v], dim=-1)


def pixel_rays(K: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Return ``K^-1 (u, v, 1) = (x, y, 1)`` ``[..., 3]`` for pixel positions ``uv [..., 2]``.

    For a perspective camera this is the camera-frame ray direction (``z = 1``) through the pixel. For an
    orthographic camera it is not a direction: the pixel's ray starts at ``(x, y, 0)`` and runs along +z
    (:func:`pixel_ray_origins_directions`).

    ``K`` must broadcast against ``uv[..., 0]`` after adding two trailing dims (``K [..., 1, 1, 3, 3]`` for
    images). Inverse of :func:`project_points` for points at depth 1:
    ``y = (v - cy) / fy``, ``x = (u - cx - s y) / fx``.
    """
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy, s = K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - s * y) / fx
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def pixel_ray_origins_directions(K: torch.Tensor, uv: torch.Tensor, projection: str = "perspective"):
    """Camera-frame rays ``(origins [..., 3], directions [..., 3])`` through pixel positions ``uv [..., 2]``.

    With ``(x, y, 1) = K^-1 (u, v, 1)`` (:func:`pixel_rays`, same broadcasting of ``K``):

    * ``"perspective"``: origin ``(0, 0, 0)``, direction ``(x, y, 1)``;
    * ``"orthographic"``: origin ``(x, y, 0)``, direction ``(0, 0, 1)``.

    Directions have ``z = 1`` in both, so ``origin + z * direction`` is the point at depth ``z``.
    Differentiable in ``K`` and ``uv``.
    """
    xy1 = pixel_rays(K, uv)
    if projection == "perspective":
        return torch.zeros_like(xy1), xy1
    if projection != "orthographic":
        raise ValueError(f"projection must be one of {PROJECTIONS}; got {projection!r}")
    zero = torch.zeros_like(xy1[..., 2:])
    return torch.cat([xy1[..., :2], zero], -1), torch.cat([zero, zero, torch.ones_like(zero)], -1)


def lift_orthographic(points_cam: torch.Tensor) -> torch.Tensor:
    """Lift camera-frame points ``[..., 3]`` onto the plane ``z = 1``: ``(x, y, z) -> (x, y, 1)``.

    This turns the perspective ray-edge forms into the orthographic ones. For a perspective camera the side of
    the line ``a -> b`` on which the ray of pixel ``d = K^-1 (u, v, 1)`` passes is ``d . (a x b)``. For an
    orthographic camera, ``d = (x, y, 1)`` and the ray starts at ``(x, y, 0)`` and runs along +z; the Pluecker
    side product of that ray with the line is ``d . (a' x b')`` with the lifted ``a' = (a_x, a_y, 1)``:

    ``a' x b' = (a_y - b_y, b_x - a_x, a_x b_y - a_y b_x)``, the 2D edge function of the edge in the xy-plane.

    So barycentric and edge forms built from lifted vertices are exact for orthographic cameras (they are then
    affine in the pixel position); depth must still come from the unlifted ``z``. Differentiable.
    """
    return torch.cat([points_cam[..., :2], torch.ones_like(points_cam[..., 2:])], -1)


def K_inverse(K: torch.Tensor) -> torch.Tensor:
    """Inverse ``[..., 3, 3]`` of intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` from those five entries.

    Only ``fx, fy, cx, cy, s`` receive gradients: the fixed entries of ``K`` are not parameters, so an
    optimiser stepping on ``K`` keeps it a valid intrinsic matrix.
    """
    fx, fy, cx, cy, s = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy), zero, 1 / fy, -cy / fy, zero, zero, one]
    return torch.stack(rows, -1).reshape(fx.shape + (3, 3))


def rays_at_pixels(K: torch.Tensor, index: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """:func:`pixel_rays` ``[P, 3]`` (z = 1) of the centres of pixels given as flat indices into ``[N, H, W]``.

    ``K`` is ``[N, 3, 3]``; pixel ``index`` lies in view ``index // (H W)``. Differentiable in ``K``. (For an
    orthographic camera the result is ``K^-1 (u, v, 1) = (x, y, 1)``: the ray's origin, not its direction.)
    """
    view = index // (height * width)
    pix = index % (height * width)
    uv = torch.stack([(pix % width).to(K.dtype) + 0.5, (pix // width).to(K.dtype) + 0.5], -1)
    return pixel_rays(K[view], uv)


def K_from_fov(fov_y: float, width: int, height: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Build ``K [3, 3]`` from a vertical field of view (radians), square pixels, centred principal point.

    ``fx = fy = (height / 2) / tan(fov_y / 2)``. ``fov_y`` must lie in ``(0, pi)``: a pinhole camera has no
    field of view of 0 (infinite focal length) or of 180 degrees or more (focal length 0 or negative).

    Raises:
        ValueError: ``fov_y`` is not a finite number in ``(0, pi)``, or ``width`` / ``height`` not positive.
    """
    fov_y = check_fov(fov_y)
    check_positive_int(width, "width")
    check_positive_int(height, "height")
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def K_orthographic(view_height: float, width: int, height: int, *, dtype=torch.float32,
                   device=None) -> torch.Tensor:
    """Build ``K [3, 3]`` of an orthographic camera whose image spans ``view_height`` world units vertically.

    Square pixels (``fx = fy = height / view_height`` pixels per world unit), centred principal point. The
    image then spans ``view_height * width / height`` units horizontally.
    """
    view_height = check_number(view_height, "view_height", lo=0.0, lo_open=True)
    check_positive_int(width, "width")
    check_positive_int(height, "height")
    f = height / view_height
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"view_height={view_height} gives a focal length of {f} pixels per unit; use a view height "
                         "between 1e-300 and 1e300 world units")
    return torch.tensor([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Return ``world_to_cam [..., 4, 4]`` for cameras at ``eye`` looking at ``target``.

    ``up [..., 3]`` is the world direction that should appear upwards in the image (the camera's -y).
    Differentiable in ``eye`` and ``target``.
    """
    z = target - eye
    if bool((z.detach().abs().amax(-1) == 0).any()):
        raise ValueError("look_at: eye and target coincide; the viewing direction target - eye must be non-zero")
    # Divide by a power of two >= the largest component first (exact, so ordinary inputs give bit-identical
    # results), so that eyes far out (1e20 in float32, where |z|^2 would overflow) still give a unit direction.
    z = z / pow2_scale(z.detach().abs().amax(-1, keepdim=True))
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    up = up / pow2_scale(up.detach().abs().amax(-1, keepdim=True))
    x = torch.linalg.cross(-up.expand_as(z), z)
    xn = x.norm(dim=-1, keepdim=True)
    if bool((xn < 1e-9).any()):
        raise ValueError("look_at: up is parallel to the viewing direction (target - eye); choose another up")
    x = x / xn
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], dim=-2)
    t = -(R @ eye[..., None])[..., 0]
    return compose_world_to_cam(R, t)
