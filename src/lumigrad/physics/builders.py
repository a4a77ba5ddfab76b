"""Small ready-made Newton systems: a rigid body thrown onto a floor, a damped spring between two particles."""

from __future__ import annotations

from typing import Sequence

from .._checks import check_choice, check_number
from ._newton import require_newton
from .system import PhysicsSystem


def thrown_body(shape: str = "box", *, half_extent: float = 0.1, height: float = 0.5, density: float = 1000.0,
                contact_stiffness: float = 1.0e4, contact_damping: float = 10.0, friction: float = 0.5,
                friction_stiffness: float = 100.0) -> PhysicsSystem:
    """A rigid box or sphere starting at rest ``height`` above a floor (plane y = 0, +y up), with penalty contacts.

    Args:
        shape: ``"box"`` (half sizes ``half_extent``) or ``"sphere"`` (radius ``half_extent``).
        half_extent: Half size / radius in metres; for a box also three half sizes ``(hx, hy, hz)``.
        height: Initial height of the centre in metres.
        density: kg / m^3.
        contact_stiffness: Normal penalty stiffness ``ke`` (N/m) of both shapes (the pair uses their mean).
        contact_damping: Normal damping ``kd`` (N s/m); with ``ke`` and the mass it sets the restitution.
        friction: Coulomb coefficient ``mu``.
        friction_stiffness: Tangential damping ``kf`` (N s/m) below the Coulomb limit.

    Returns:
        A :class:`PhysicsSystem` with output ``body_q`` (one body) and a collision pipeline. Parameters the bridge
        can drive: ``state.body_qd`` ``[1, 6]`` (linear velocity, angular velocity), ``model.shape_material_mu`` /
        ``_kd`` / ``_ke`` / ``_kf`` ``[2]`` (body shape, floor), ``state.body_f`` schedules ``[steps, 1, 6]``.
    """
    newton, wp = require_newton()
    shape = check_choice(shape, "shape", ("box", "sphere"))
    extents = tuple(half_extent) if isinstance(half_extent, (tuple, list)) else (half_extent,) * 3
    if len(extents) != 3 or (shape == "sphere" and len(set(extents)) != 1):
        raise ValueError(f"half_extent must be a number (or three for a box); got {half_extent!r}")
    hx, hy, hz = (check_number(e, "half_extent", lo=0.0, lo_open=True) for e in extents)
    for name, value in (("contact_stiffness", contact_stiffness), ("density", density)):
        check_number(value, name, lo=0.0, lo_open=True)
    for name, value in (("contact_damping", contact_damping), ("friction", friction),
                        ("friction_stiffness", friction_stiffness)):
        check_number(value, name, lo=0.0)
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
    cfg = newton.ModelBuilder.ShapeConfig(ke=contact_stiffness, kd=contact_damping, kf=friction_stiffness,
                                          mu=friction, density=density)
    body = builder.add_body(xform=wp.transform(wp.vec3(0.0, float(height), 0.0), wp.quat_identity()))
    if shape == "box":
        builder.add_shape_box(body, hx=hx, hy=hy, hz=hz, cfg=cfg)
    else:
        builder.add_shape_sphere(body, radius=hx, cfg=cfg)
    builder.add_ground_plane(cfg=cfg)
    model = builder.finalize(requires_grad=True)
    collision = newton.CollisionPipeline(model, broad_phase="explicit", requires_grad=True)
    return PhysicsSystem(model, collision=collision, output="body_q")


def spring_pair(*, stiffness: float = 50.0, damping: float = 0.5, rest_length: float = 0.5,
                positions: Sequence[Sequence[float]] = ((0.0, 1.0, 0.0), (0.6, 1.2, 0.0)),
                masses: Sequence[float] = (1.0, 0.5)) -> PhysicsSystem:
    """Two particles joined by a damped spring, under gravity, no contacts: a smooth system for gradient tests.

    Args:
        stiffness: Spring stiffness (N/m). damping: spring damping (N s/m). rest_length: metres.
        positions: Initial positions of the two particles. masses: their masses (kg).

    Returns:
        A :class:`PhysicsSystem` with output ``particle_q`` (``[2, 3]`` per step). Parameters: ``state.particle_qd``
        ``[2, 3]``, ``model.spring_stiffness`` ``[1]``, ``model.spring_damping`` ``[1]``, ``state.particle_f``
        schedules ``[steps, 2, 3]``.
    """
    newton, wp = require_newton()
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
    for p, m in zip(positions, masses):
        builder.add_particle(pos=wp.vec3(*map(float, p)), vel=wp.vec3(0.0, 0.0, 0.0), mass=float(m), radius=0.01)
    builder.add_spring(0, 1, ke=float(stiffness), kd=float(damping), control=0.0)
    model = builder.finalize(requires_grad=True)
    model.spring_rest_length.assign([float(rest_length)])
    model.particle_grid = None  # no particle-particle contact: two particles, and it would corrupt gradients
    return PhysicsSystem(model, output="particle_q")
