"""Physics through NVIDIA Newton, bridged to torch autograd (optional extra: ``pip install lumigrad[physics]``).

``simulate(system, params, steps, dt, checkpoint_every=k)`` runs a Newton model (rigid bodies, particles, springs,
soft bodies; penalty contacts) forward and returns the per-step body transforms or particle positions as a torch
tensor; its backward recomputes k-step segments from checkpoints on a ``wp.Tape`` so memory stays O(steps/k + k).
Importing this package does not import Newton; building a :class:`PhysicsSystem` does.
"""

from ._newton import INSTALL_HINT, require_newton
from .poses import body_q_to_matrices
from .simulate import PhysicsInstabilityError, simulate
from .builders import spring_pair, thrown_body
from .lit_scene import lit_scene
from .soft_body import SoftBody, drop_soft_box, lame_parameters
from .system import PhysicsSystem

__all__ = ["INSTALL_HINT", "PhysicsInstabilityError", "PhysicsSystem", "body_q_to_matrices", "lit_scene", "require_newton",
           "simulate", "spring_pair", "thrown_body", "SoftBody", "drop_soft_box", "lame_parameters"]
