"""Ellipsoid phantoms for tomography: a 3D Shepp-Logan-like head, voxelised, and its exact line integrals.

A phantom is a list of :class:`Ellipsoid` s whose values add up where they overlap (the convention of Shepp and
Logan's head phantom). Because an ellipsoid's chord along any line has a closed form, the phantom's projections
are known exactly (:func:`phantom_line_integrals`): the ground truth that ``tomography.project`` is tested
against, and data for reconstructions that do not commit the "inverse crime" of simulating with the very
discretisation that reconstructs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from .._checks import check_positive_int
from ..cameras.camera import Camera
from .tomography import check_box, detector_rays

__all__ = ["Ellipsoid", "rotation_z", "shepp_logan_3d", "voxelize_phantom", "phantom_line_integrals"]


def rotation_z(angle: float) -> Tuple[Tuple[float, float, float], ...]:
    """The 3x3 rotation by ``angle`` radians about +z, as nested tuples (an :class:`Ellipsoid`'s ``rotation``)."""
    c, s = math.cos(angle), math.sin(angle)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid of constant added density: points ``x`` with ``|S^-1 R^T (x - centre)| <= 1``.

    Attributes:
        centre: ``(x, y, z)``, world units.
        semi_axes: ``(a, b, c)`` > 0, along the ellipsoid's own axes (the columns of ``rotation``).
        value: density added inside (may be negative, to carve out).
        rotation: 3x3 rotation matrix (rows of nested tuples), the ellipsoid's axes in world coordinates.
    """

    centre: Tuple[float, float, float]
    semi_axes: Tuple[float, float, float]
    value: float
    rotation: Tuple[Tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self):
        if len(self.centre) != 3 or not all(math.isfinite(float(v)) for v in self.centre):
            raise ValueError(f"centre must be three finite numbers; got {self.centre!r}")
        if len(self.semi_axes) != 3 or not all(math.isfinite(float(v)) and float(v) > 0 for v in self.semi_axes):
            raise ValueError(f"semi_axes must be three finite positive numbers; got {self.semi_axes!r}")
        if not math.isfinite(float(self.value)):
            raise ValueError(f"value must be finite; got {self.value!r}")
        R = torch.tensor(self.rotation, dtype=torch.float64)
        if R.shape != (3, 3) or float((R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max()) > 1e-6:
            raise ValueError(f"rotation must be a 3x3 orthonormal matrix; got {self.rotation!r}")

    def _frame(self, dtype, device):
        R = torch.tensor(self.rotation, dtype=dtype, device=device)
        c = torch.tensor(self.centre, dtype=dtype, device=device)
        inv_axes = 1.0 / torch.tensor(self.semi_axes, dtype=dtype, device=device)
        return R, c, inv_axes


def shepp_logan_3d(scale: float = 1.0) -> List[Ellipsoid]:
    """A 3D head phantom in ``[-1, 1]^3`` after the modified (high-contrast) Shepp-Logan phantom.

    Ten ellipsoids: skull (value 1), brain (-0.8, leaving 0.2), two tilted ventricles (-0.2, leaving 0) and
    seven small tumours and features (+0.1). Densities are the values times ``scale``; every point of the
    phantom has density in ``[0, 0.3 * scale]`` except the skull shell (``scale``).
    """
    t = math.radians(18.0)
    E = Ellipsoid
    return [E((0.0, 0.0, 0.0), (0.69, 0.92, 0.81), 1.0 * scale),
            E((0.0, -0.0184, 0.0), (0.6624, 0.874, 0.78), -0.8 * scale),
            E((0.22, 0.0, 0.0), (0.11, 0.31, 0.22), -0.2 * scale, rotation_z(-t)),
            E((-0.22, 0.0, 0.0), (0.16, 0.41, 0.28), -0.2 * scale, rotation_z(t)),
            E((0.0, 0.35, -0.15), (0.21, 0.25, 0.41), 0.1 * scale),
            E((0.0, 0.1, 0.25), (0.046, 0.046, 0.05), 0.1 * scale),
            E((0.0, -0.1, 0.25), (0.046, 0.046, 0.05), 0.1 * scale),
            E((-0.08, -0.605, 0.0), (0.046, 0.023, 0.05), 0.1 * scale),
            E((0.0, -0.606, 0.0), (0.023, 0.023, 0.02), 0.1 * scale),
            E((0.06, -0.605, 0.0), (0.023, 0.046, 0.02), 0.1 * scale)]


def _check_phantom(ellipsoids) -> Sequence[Ellipsoid]:
    if not isinstance(ellipsoids, (list, tuple)) or not all(isinstance(e, Ellipsoid) for e in ellipsoids):
        raise TypeError("ellipsoids must be a list of Ellipsoid")
    return ellipsoids


def voxelize_phantom(ellipsoids: Sequence[Ellipsoid], grid_shape: Tuple[int, int, int], box, *,
                     supersample: int = 2, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The phantom's mean density in each voxel of a ``grid_shape`` grid over ``box``.

    Each voxel averages ``supersample^3`` point samples on a regular sub-grid (partial-volume effect), so
    voxels cut by an ellipsoid's surface hold the fraction they contain (to ``~1 / supersample``).

    Args:
        ellipsoids: the phantom (e.g. :func:`shepp_logan_3d`).
        grid_shape: ``(D, H, W)``: voxels along z, y, x.
        box: ``[2, 3]`` box corners.
        supersample: samples per voxel per axis (>= 1).
        dtype: output dtype.

    Returns:
        ``[D, H, W]`` density in the layout of :mod:`lumigrad.volume.tomography`.

    **Differentiability:** none.
    """
    ellipsoids = _check_phantom(ellipsoids)
    if len(grid_shape) != 3 or not all(isinstance(n, int) and n >= 1 for n in grid_shape):
        raise ValueError(f"grid_shape must be three positive ints (D, H, W); got {grid_shape!r}")
    ss = check_positive_int(supersample, "supersample")
    box = check_box(box).to(torch.float64)
    D, H, W = grid_shape
    axes = []
    for n, a in ((W, 0), (H, 1), (D, 2)):
        fine = (torch.arange(n * ss, dtype=torch.float64) + 0.5) / (n * ss)
        axes.append(box[0, a] + (box[1, a] - box[0, a]) * fine)
    frames = [(e.value,) + e._frame(torch.float64, None) for e in ellipsoids]
    out = torch.empty(D, H, W, dtype=torch.float64)
    for k in range(D):  # one slab of voxels at a time bounds the memory to ~ H W ss^3 samples
        z, y, x = torch.meshgrid(axes[2][k * ss:(k + 1) * ss], axes[1], axes[0], indexing="ij")
        points = torch.stack([x, y, z], -1)
        total = torch.zeros(points.shape[:-1], dtype=torch.float64)
        for value, R, c, inv_axes in frames:
            u = ((points - c).reshape(-1, 3) @ R) * inv_axes  # 2D matmul: batched ones are slow on CPU
            total += value * ((u * u).sum(-1) <= 1.0).double().reshape(total.shape)
        out[k] = total.reshape(ss, H, ss, W, ss).mean(dim=(0, 2, 4))
    return out.to(dtype)


def phantom_line_integrals(ellipsoids: Sequence[Ellipsoid], camera: Camera) -> torch.Tensor:
    """Exact line integrals of the phantom along every detector ray of ``camera`` (no box, no voxels).

    For each ellipsoid the ray ``o + s d`` is mapped to the unit sphere's frame, ``u(s) = S^-1 R^T (o + s d - c)``;
    ``|u(s)|^2 = 1`` is a quadratic ``a s^2 + 2 b s + q = 0`` whose roots bound the chord,
    ``length = 2 sqrt(b^2 - a q) / a`` (clipped to ``s >= 0`` for cone-beam half-lines). The integral is
    ``sum value * length``.

    Args:
        ellipsoids: the phantom.
        camera: parallel- or cone-beam :class:`~lumigrad.Camera` (any batch).

    Returns:
        ``[*camera.batch_shape, H, W]`` in the camera's dtype.

    **Differentiability:** in the camera's ``K`` and ``world_to_cam`` (the chord is smooth wherever the ray is
    not tangent to an ellipsoid).

    Example:
        >>> from lumigrad.volume.tomography import circular_trajectory
        >>> cam = circular_trajectory(1, width=1, height=1, radius=3.0, dtype=torch.float64)
        >>> phantom_line_integrals([Ellipsoid((0., 0., 0.), (0.5, 0.5, 0.5), 2.0)], cam)  # 2 * diameter
        tensor([[[2.]]], dtype=torch.float64)
    """
    ellipsoids = _check_phantom(ellipsoids)
    origins, directions, whole = detector_rays(camera)
    total = torch.zeros(origins.shape[:-1], dtype=origins.dtype, device=origins.device)
    for e in ellipsoids:
        R, c, inv_axes = e._frame(origins.dtype, origins.device)
        uo = ((origins - c).reshape(-1, 3) @ R).reshape(origins.shape) * inv_axes
        ud = (directions.reshape(-1, 3) @ R).reshape(origins.shape) * inv_axes
        a = (ud * ud).sum(-1)
        b = (uo * ud).sum(-1)
        q = (uo * uo).sum(-1) - 1.0
        disc = b * b - a * q
        hit = disc > 0
        root = torch.sqrt(torch.where(hit, disc, torch.ones_like(disc)))  # no infinite gradient at tangency
        s0, s1 = (-b - root) / a, (-b + root) / a
        if not whole:
            s0, s1 = s0.clamp_min(0.0), s1.clamp_min(0.0)
        total = total + e.value * torch.where(hit, s1 - s0, torch.zeros_like(s0))
    return total
