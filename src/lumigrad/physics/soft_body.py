"""A soft body for system identification: a Newton FEM tetrahedral grid (stable neo-Hookean tets, Smith et al. 2018, of
``add_soft_grid``) dropped on a ground plane, plus the outward-oriented triangle mesh of its surface whose vertices
are the simulated particles, so that :func:`lumigrad.render` of ``(particle_q[t], surface_faces)`` is a frame of the
video with gradients flowing back to the particle positions and, through :func:`simulate`, to the stiffness.

Stiffness is exposed as Young's modulus E (Pa) at a fixed Poisson ratio; :func:`lame_parameters` maps it to the
Lame parameters (mu, lambda) that Newton's tetrahedra read from ``model.tet_materials``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .._checks import check_number, check_positive_int
from ._newton import require_newton
from .system import PhysicsSystem


@dataclass
class SoftBody:
    """A dropped FEM soft body.

    Attributes:
        system: The :class:`PhysicsSystem` (output ``particle_q``) to pass to :func:`simulate`.
        surface_faces: ``[F, 3]`` int64 triangles over the particles, counter-clockwise seen from outside.
        poisson_ratio: The fixed Poisson ratio nu used by :meth:`tet_materials`.
        damping: The per-tet viscous damping (``tet_materials[:, 2]``), kept fixed.
        tet_count: Number of tetrahedra.
    """

    system: PhysicsSystem
    surface_faces: torch.Tensor
    poisson_ratio: float
    damping: float
    tet_count: int

    def tet_materials(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        """The ``model.tet_materials`` parameter ``[tets, 3]`` (mu, lambda, damping) for a scalar Young's modulus.

        Args:
            youngs_modulus: scalar tensor, Pa (> 0).

        Returns:
            ``[tet_count, 3]`` tensor, same dtype as ``youngs_modulus``.

        **Differentiability:** differentiable in ``youngs_modulus`` (mu and lambda are linear in E).
        """
        if not isinstance(youngs_modulus, torch.Tensor) or youngs_modulus.numel() != 1:
            raise ValueError(f"youngs_modulus must be a scalar tensor; got {getattr(youngs_modulus, 'shape', youngs_modulus)}")
        mu, lam = lame_parameters(youngs_modulus.reshape(()), self.poisson_ratio)
        damping = torch.full((), self.damping, dtype=youngs_modulus.dtype, device=youngs_modulus.device)
        return torch.stack([mu, lam, damping]).expand(self.tet_count, 3)


def lame_parameters(youngs_modulus, poisson_ratio: float):
    """Lame parameters of an isotropic material: ``mu = E / (2 (1 + nu))``, ``lambda = E nu / ((1 + nu)(1 - 2 nu))``.

    Args:
        youngs_modulus: E in Pa, a float or tensor.
        poisson_ratio: nu in (-1, 0.5).

    Returns:
        ``(mu, lambda)``, each like ``youngs_modulus``. Example: E = 2.6, nu = 0.3 gives (1.0, 1.5).

    **Differentiability:** linear in ``youngs_modulus``.
    """
    nu = check_number(poisson_ratio, "poisson_ratio", lo=-1.0, hi=0.5, lo_open=True, hi_open=True)
    return youngs_modulus / (2.0 * (1.0 + nu)), youngs_modulus * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))


def drop_soft_box(*, cells: Sequence[int] = (2, 2, 2), cell_size: float = 0.1, drop_height: float = 0.05,
                  tilt: float = 0.3, youngs_modulus: float = 4.0e3, poisson_ratio: float = 0.3,
                  particle_mass: float = 0.1, damping: float = 0.0, contact_ke: float = 1.0e3,
                  contact_kd: float = 10.0, contact_mu: float = 0.5, particle_radius: float = 0.005,
                  device: str = "cpu") -> SoftBody:
    """Build a box of FEM tetrahedra (5 per cell), tilted about +x and released ``drop_height`` above the floor.

    Newton's world is +z up with gravity -9.81 m/s^2 along z; the floor is the plane z = 0. The contact between the
    particles and the floor is Newton's penalty "soft contact" (normal stiffness ``contact_ke``, damping
    ``contact_kd``, Coulomb friction ``contact_mu``).

    Args:
        cells: cells along x, y, z (each >= 1).
        cell_size: edge of a cubic cell, m.
        drop_height: height of the lowest corner above the floor at release, m (>= 0).
        tilt: rotation about +x at release, radians (a tilted box lands on an edge and wobbles).
        youngs_modulus, poisson_ratio: the material at build time (the value passed to :func:`simulate` through
            :meth:`SoftBody.tet_materials` overrides it).
        particle_mass: mass of each grid particle, kg.
        damping: viscous damping of the tets (Newton's ``k_damp``).
        contact_ke, contact_kd, contact_mu: floor contact stiffness, damping and friction.
        particle_radius: contact radius of each particle, m.
        device: Warp device.

    Returns:
        A :class:`SoftBody`.
    """
    newton, wp = require_newton()
    if len(cells) != 3:
        raise ValueError(f"cells must have 3 entries; got {list(cells)}")
    nx, ny, nz = (check_positive_int(c, "cells") for c in cells)
    cell_size = check_number(cell_size, "cell_size", lo=0.0, lo_open=True)
    drop_height = check_number(drop_height, "drop_height", lo=0.0)
    tilt = check_number(tilt, "tilt")
    youngs_modulus = check_number(youngs_modulus, "youngs_modulus", lo=0.0, lo_open=True)
    particle_mass = check_number(particle_mass, "particle_mass", lo=0.0, lo_open=True)
    mu, lam = lame_parameters(youngs_modulus, poisson_ratio)
    builder = newton.ModelBuilder()
    builder.default_particle_radius = check_number(particle_radius, "particle_radius", lo=0.0, lo_open=True)
    # the lowest corner after the tilt about +x: rotating (y, z) = (0, 0) .. (ny, nz) cells by tilt
    corners = np.array([[y, z] for y in (0, ny * cell_size) for z in (0, nz * cell_size)])
    lowest = (corners[:, 0] * math.sin(tilt) + corners[:, 1] * math.cos(tilt)).min()
    origin = wp.vec3(-0.5 * nx * cell_size, -0.5 * ny * cell_size * math.cos(tilt), drop_height - lowest)
    builder.add_soft_grid(pos=origin, rot=wp.quat_from_axis_angle(wp.vec3(1.0, 0.0, 0.0), tilt),
                          vel=wp.vec3(0.0, 0.0, 0.0), dim_x=nx, dim_y=ny, dim_z=nz, cell_x=cell_size,
                          cell_y=cell_size, cell_z=cell_size, density=particle_mass / cell_size ** 3, k_mu=mu,
                          k_lambda=lam, k_damp=check_number(damping, "damping", lo=0.0))
    builder.add_ground_plane(cfg=newton.ModelBuilder.ShapeConfig(ke=contact_ke, kd=contact_kd, mu=contact_mu))
    model = builder.finalize(device=device, requires_grad=True)
    model.soft_contact_ke, model.soft_contact_kd, model.soft_contact_mu = contact_ke, contact_kd, contact_mu
    collision = newton.CollisionPipeline(model, broad_phase="explicit", soft_contact_gap=0.001, requires_grad=True)
    system = PhysicsSystem(model, collision=collision, output="particle_q")
    faces = torch.from_numpy(model.tri_indices.numpy().astype(np.int64))
    return SoftBody(system, outward_faces(torch.from_numpy(model.particle_q.numpy()), faces), float(poisson_ratio),
                    float(damping), int(model.tet_count))


def outward_faces(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Flip the triangles of a closed, star-shaped surface so each normal points away from the centroid.

    Args:
        verts: ``[V, 3]`` positions. faces: ``[F, 3]`` int64 indices.

    Returns:
        ``[F, 3]`` int64, counter-clockwise seen from outside.
    """
    a, b, c = verts[faces].unbind(1)
    normal = torch.linalg.cross(b - a, c - a)
    inward = (normal * ((a + b + c) / 3 - verts.mean(0))).sum(-1) < 0
    return torch.where(inward[:, None], faces[:, [0, 2, 1]], faces)
