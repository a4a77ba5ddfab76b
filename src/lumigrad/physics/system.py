"""PhysicsSystem: what the torch bridge simulates (a finalized Newton model, its solver and contact pipeline), and
the resolution of parameter names such as ``"model.shape_material_mu"`` into the Newton arrays they drive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ._newton import require_newton

#: State arrays carried from step to step (the adjoint of each flows back across checkpoints).
CARRIED_STATE_ARRAYS = ("particle_q", "particle_qd", "body_q", "body_qd")
OWNERS = ("model", "state", "control")


@dataclass
class PhysicsSystem:
    """A Newton simulation the bridge can run forward and differentiate.

    Args:
        model: A finalized ``newton.Model`` built with ``builder.finalize(requires_grad=True)``.
        solver: A differentiable Newton solver; default ``newton.solvers.SolverSemiImplicit(model)``.
        collision: A ``newton.CollisionPipeline`` run before every step (outside the tape: contact detection is
            treated as piecewise constant), or None for a contact-free system.
        output: The state array returned per step: ``"body_q"`` (rigid transforms, 7 floats each: position, then
            quaternion ``x, y, z, w`` as Warp stores it) or ``"particle_q"`` (positions).
        initial_state: The state at step 0; default ``model.state()``.
        control: The control; default ``model.control()``.
    """

    model: Any
    solver: Any = None
    collision: Any = None
    output: str = "body_q"
    initial_state: Any = None
    control: Any = None
    _contacts: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        newton, _ = require_newton()
        if self.solver is None:
            self.solver = newton.solvers.SolverSemiImplicit(self.model)
        if self.initial_state is None:
            self.initial_state = self.model.state()
        if self.control is None:
            self.control = self.model.control()
        if self.output not in CARRIED_STATE_ARRAYS or getattr(self.initial_state, self.output, None) is None:
            present = [n for n in CARRIED_STATE_ARRAYS if getattr(self.initial_state, n, None) is not None]
            raise ValueError(f"output must name a state array the model has, one of {present}; got {self.output!r}")

    # -- contacts ------------------------------------------------------------------------------------------------
    def contacts(self, slot: int):
        """The contact buffer number ``slot`` (allocated once, reused); None when the system has no collision."""
        if self.collision is None:
            return None
        while len(self._contacts) <= slot:
            self._contacts.append(self.collision.contacts())
        return self._contacts[slot]

    def release_contacts(self, keep: int = 1):
        """Free the contact buffers beyond the first ``keep`` (a backward allocates one per step of a segment)."""
        del self._contacts[keep:]

    def collide(self, state, slot: int):
        """Run contact detection on ``state`` into buffer ``slot`` and return it (None without collision)."""
        contacts = self.contacts(slot)
        if contacts is not None:
            self.collision.collide(state, contacts)
        return contacts

    # -- states --------------------------------------------------------------------------------------------------
    def new_state(self, requires_grad: bool = False):
        return self.model.state(requires_grad=requires_grad)

    def copy_state(self, source, requires_grad: bool = False):
        state = self.new_state(requires_grad)
        state.assign(source)
        return state


@dataclass(frozen=True)
class Parameter:
    """One named parameter: the owner (model/state/control), the array attribute, whether it is a per-step schedule,
    and the numpy shape of one value."""

    name: str
    owner: str
    attr: str
    schedule: bool
    shape: Tuple[int, ...]
    dtype: Any


def resolve_parameters(system: PhysicsSystem, params: Dict[str, torch.Tensor], steps: int) -> Dict[str, Parameter]:
    """Check every ``params`` entry against the system and describe it.

    A name is ``"OWNER.ATTRIBUTE"`` with OWNER one of model, state, control. A tensor of the array's shape (as
    ``array.numpy()`` has it, e.g. ``[n, 3]`` for n vec3) is a constant: a model/control value for the whole run, or
    for ``state.*`` the initial value. A tensor with an extra leading axis of length ``steps`` is a per-step schedule,
    written before each step (for ``state.body_f`` / ``state.particle_f``: external forces added that step).

    Raises:
        TypeError / ValueError: naming the offending ``params`` entry.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> torch.Tensor, got {type(params).__name__}")
    resolved = {}
    owners = {"model": system.model, "state": system.initial_state, "control": system.control}
    for name, value in params.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"params[{name!r}] must be a torch.Tensor, got {type(value).__name__}")
        owner, _, attr = str(name).partition(".")
        if owner not in OWNERS or not attr:
            raise ValueError(f"params key {name!r} must be 'model.X', 'state.X' or 'control.X'")
        array = getattr(owners[owner], attr, None)
        if array is None or not hasattr(array, "numpy"):
            raise ValueError(f"params key {name!r}: the {owner} has no array {attr!r}")
        shape = tuple(array.numpy().shape)
        if tuple(value.shape) == shape:
            schedule = False
        elif tuple(value.shape) == (steps,) + shape:
            schedule = True
        else:
            raise ValueError(f"params[{name!r}] must have shape {list(shape)} (constant) or {[steps] + list(shape)} "
                             f"(per-step schedule), got {list(value.shape)}")
        if owner == "model" and not schedule and not array.requires_grad:
            raise ValueError(f"params[{name!r}]: model.{attr} has no gradient buffer; finalize the model with "
                             "builder.finalize(requires_grad=True)")
        if not torch.isfinite(value).all():
            raise ValueError(f"params[{name!r}] has non-finite entries")
        resolved[name] = Parameter(name, owner, attr, schedule, shape, array.dtype)
    return resolved


def to_numpy(value: torch.Tensor) -> np.ndarray:
    return value.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
