"""simulate: a Newton simulation as one torch autograd op, with checkpointed backward.

The forward runs the solver without a tape, keeps the output array of every step (what the caller renders) and a
full state copy every ``checkpoint_every`` steps. The backward walks the segments in reverse: it rebuilds a segment
from its checkpoint on a ``wp.Tape`` (contacts re-detected identically, outside the tape), seeds the adjoints with
the incoming torch gradient of the segment's outputs plus the adjoint carried from the later segment, runs the tape
backward and collects the parameters' gradients. Only one segment is ever on a tape: memory is O(steps / k + k)
states instead of O(steps).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from .._checks import check_number, check_positive_int
from ._newton import require_newton
from .system import CARRIED_STATE_ARRAYS, Parameter, PhysicsSystem, resolve_parameters, to_numpy


class PhysicsInstabilityError(RuntimeError):
    """The simulation blew up (non-finite or exploding state); the message names the step and suggests a fix."""


def simulate(system: PhysicsSystem, params: Dict[str, torch.Tensor], steps: int, dt: float, *,
             checkpoint_every: Optional[int] = None, blowup_limit: float = 1.0e4) -> torch.Tensor:
    """Simulate ``steps`` steps of ``system`` from torch parameters; differentiable in every parameter.

    Args:
        system: The :class:`PhysicsSystem` (Newton model, solver, optional collision pipeline, output array).
        params: ``{"OWNER.ATTRIBUTE": tensor}``, OWNER in model/state/control, e.g. ``"state.body_qd"`` (initial
            velocity ``[bodies, 6]``: linear then angular), ``"model.shape_material_mu"`` (friction per shape),
            ``"model.shape_material_kd"`` (contact damping, which sets the restitution), ``"model.body_mass"``
            (remember ``body_inv_mass`` is what the integrator reads), ``"model.spring_stiffness"``. A tensor of the
            array's shape is a constant (an initial value for ``state.*``); with an extra leading axis of length
            ``steps`` it is a per-step schedule written before each step (``state.body_f`` / ``state.particle_f``
            schedules are external forces, e.g. controls). Values are cast to float32, Newton's precision.
        steps: Number of solver steps (>= 1).
        dt: Step length in seconds (> 0).
        checkpoint_every: Steps per checkpointed segment k; None keeps the whole run on one tape (k = steps).
        blowup_limit: A state entry whose magnitude exceeds this (or any non-finite entry) stops the forward with
            :class:`PhysicsInstabilityError` naming the step.

    Returns:
        ``[steps + 1, *shape]`` float tensor of ``system.output`` per step (row 0 the initial state), e.g.
        ``[steps + 1, bodies, 7]`` for ``body_q`` (position, quaternion x, y, z, w) or ``[steps + 1, n, 3]`` for
        ``particle_q``. Its dtype is the first parameter's (float32 when there is none).

    Raises:
        TypeError / ValueError: bad arguments, naming them. PhysicsInstabilityError: the run blew up.

    **Differentiability:** gradients flow to every tensor in ``params`` through Warp's adjoint of the solver,
    segment by segment; checkpointed and non-checkpointed backward give the same gradient (the recomputation is
    deterministic). Contact detection (which pairs touch, the contact points in body frames) is piecewise constant
    and not differentiated; the penalty forces are. The gradient is of the float32 simulation, checked against
    central finite differences of the same simulation (tests/physics).
    """
    if not isinstance(system, PhysicsSystem):
        raise TypeError(f"system must be a PhysicsSystem, got {type(system).__name__}")
    steps = check_positive_int(steps, "steps")
    dt = check_number(dt, "dt", lo=0.0, lo_open=True)
    k = steps if checkpoint_every is None else check_positive_int(checkpoint_every, "checkpoint_every")
    blowup_limit = check_number(blowup_limit, "blowup_limit", lo=0.0, lo_open=True)
    resolved = resolve_parameters(system, params, steps)
    names = list(params)
    dtype = params[names[0]].dtype if names and params[names[0]].is_floating_point() else torch.float32
    return _Simulate.apply(system, resolved, steps, dt, min(k, steps), blowup_limit, dtype, names,
                           *[params[n] for n in names])


class _Simulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, system, resolved, steps, dt, k, blowup_limit, dtype, names, *values):
        run = _Run(system, resolved, dict(zip(names, values)), steps, dt, k, blowup_limit)
        outputs = run.forward()
        ctx.run = run
        ctx.names = names
        ctx.dtype = dtype
        return torch.from_numpy(outputs).to(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.run.backward(to_numpy(grad_out))
        ctx.run = None
        return (None,) * 8 + tuple(None if grads.get(n) is None else torch.from_numpy(grads[n]).to(ctx.dtype)
                                   for n in ctx.names)


class _Run:
    """One forward (and its backward) of a system with fixed parameter values."""

    def __init__(self, system, resolved, values, steps, dt, k, blowup_limit):
        self.newton, self.wp = require_newton()
        self.system, self.resolved, self.steps, self.dt, self.k = system, resolved, steps, dt, k
        self.blowup_limit = blowup_limit
        self.values = {n: to_numpy(v) for n, v in values.items()}
        self.needs_grad = {n: bool(v.requires_grad) for n, v in values.items()}
        self.checkpoints = {}

    # -- parameter plumbing ----------------------------------------------------------------------------------------
    def _owner(self, param: Parameter, state=None):
        return {"model": self.system.model, "control": self.system.control, "state": state}[param.owner]

    def _set_constants(self, state):
        """Write constant model/control values (in place) and the initial values of ``state.*`` into ``state``."""
        for name, p in self.resolved.items():
            if not p.schedule:
                getattr(self._owner(p, state), p.attr).assign(self.values[name])

    def _apply_schedules(self, state, step, taped_copies=None):
        """Write step ``step`` of every schedule. With ``taped_copies`` (a dict), model/control schedules get a fresh
        gradient-carrying array per step (so the tape keeps each step's value); they are recorded there."""
        for name, p in self.resolved.items():
            if not p.schedule:
                continue
            owner = self._owner(p, state)
            value = self.values[name][step]
            if p.owner == "state" or taped_copies is None:
                getattr(owner, p.attr).assign(value)
            else:
                fresh = self.wp.array(value, dtype=p.dtype, requires_grad=True)
                setattr(owner, p.attr, fresh)
                taped_copies[(name, step)] = fresh

    def _step(self, state_in, state_out, slot, step, taped_copies=None):
        state_in.clear_forces()
        self._apply_schedules(state_in, step, taped_copies)
        return self.system.collide(state_in, slot)

    # -- forward ---------------------------------------------------------------------------------------------------
    def forward(self) -> np.ndarray:
        system = self.system
        originals = self._save_schedule_arrays()
        try:
            current = system.copy_state(system.initial_state)
            self._set_constants(current)
            nxt = system.new_state()
            out = np.empty((self.steps + 1,) + tuple(getattr(current, system.output).numpy().shape), np.float32)
            out[0] = getattr(current, system.output).numpy()
            self._check_finite(current, 0)
            for i in range(self.steps):
                if i % self.k == 0:
                    self.checkpoints[i] = system.copy_state(current)
                contacts = self._step(current, nxt, 0, i)
                system.solver.step(current, nxt, system.control, contacts, self.dt)
                self._check_finite(nxt, i + 1)
                out[i + 1] = getattr(nxt, system.output).numpy()
                current, nxt = nxt, current
        finally:
            self._restore_schedule_arrays(originals)
        return out

    def _check_finite(self, state, step):
        for attr in CARRIED_STATE_ARRAYS:
            array = getattr(state, attr, None)
            if array is None or array.shape[0] == 0:
                continue
            values = array.numpy()
            finite = np.isfinite(values).all()
            if not finite or np.abs(values).max() > self.blowup_limit:
                what = "non-finite" if not finite else f"larger than blowup_limit={self.blowup_limit:g}"
                raise PhysicsInstabilityError(
                    f"simulation became unstable at step {step} of {self.steps} (t = {step * self.dt:.4g} s): "
                    f"state.{attr} is {what}. The explicit integrator is unstable for this time step: reduce dt "
                    f"(now {self.dt:g}; try {self.dt / 4:g}), or soften the stiffest spring / contact stiffness.")

    def _save_schedule_arrays(self):
        return {(p.owner, p.attr): getattr(self._owner(p), p.attr)
                for p in self.resolved.values() if p.schedule and p.owner != "state"}

    def _restore_schedule_arrays(self, originals):
        for (owner, attr), array in originals.items():
            setattr(self.system.model if owner == "model" else self.system.control, attr, array)

    # -- backward --------------------------------------------------------------------------------------------------
    def backward(self, grad_out: np.ndarray) -> Dict[str, np.ndarray]:
        wp, system = self.wp, self.system
        grads = {n: np.zeros(self.values[n].shape, np.float32) for n in self.resolved}
        constants = [(n, p) for n, p in self.resolved.items() if p.owner != "state" and not p.schedule]
        carried = None
        originals = self._save_schedule_arrays()
        try:
            # the constants as they were in the forward (another simulate() may have rewritten the model since)
            scratch = system.new_state()
            self._set_constants(scratch)
            for start in sorted(self.checkpoints, reverse=True):
                stop = min(start + self.k, self.steps)
                states = [system.copy_state(self.checkpoints[start], requires_grad=True)]
                states += [system.new_state(requires_grad=True) for _ in range(stop - start)]
                copies = {}
                tape = wp.Tape()
                for i in range(start, stop):
                    s_in, s_out = states[i - start], states[i - start + 1]
                    contacts = self._step(s_in, s_out, i - start, i, copies)
                    with tape:
                        system.solver.step(s_in, s_out, system.control, contacts, self.dt)
                for _, p in constants:
                    getattr(self._owner(p), p.attr).grad.zero_()
                for i in range(start + 1, stop + 1):
                    seed = getattr(states[i - start], system.output).grad
                    seed.assign(seed.numpy() + grad_out[i])
                if carried is not None:
                    for attr, g in carried.items():
                        seed = getattr(states[-1], attr).grad
                        seed.assign(seed.numpy() + g)
                tape.backward()
                for name, p in constants:
                    grads[name] += getattr(self._owner(p), p.attr).grad.numpy()
                for name, p in self.resolved.items():
                    if not p.schedule:
                        continue
                    for i in range(start, stop):
                        array = copies.get((name, i)) if p.owner != "state" else getattr(states[i - start], p.attr)
                        grads[name][i] = array.grad.numpy()
                carried = {a: getattr(states[0], a).grad.numpy().copy() for a in CARRIED_STATE_ARRAYS
                           if getattr(states[0], a, None) is not None and getattr(states[0], a).shape[0] > 0}
                tape.reset()
                self._restore_schedule_arrays(originals)
        finally:
            self._restore_schedule_arrays(originals)
            system.release_contacts()
        carried[system.output] = carried[system.output] + grad_out[0]
        for name, p in self.resolved.items():
            if p.owner == "state" and not p.schedule:
                grads[name] = carried.get(p.attr, np.zeros_like(grads[name]))
        for name, g in grads.items():
            if not np.isfinite(g).all():
                raise PhysicsInstabilityError(
                    f"the gradient of {name!r} is non-finite: the adjoint blew up (stiff contact or spring); "
                    f"reduce dt (now {self.dt:g}) or shorten the differentiated window")
        return grads
