"""Smoke: a density carried by an incompressible velocity, pushed up by buoyancy and fed by an inflow source.

One step (:func:`smoke_step`), in the order of Stam's "Stable Fluids" and Fedkiw et al.'s "Visual Simulation
of Smoke"::

    inflow   density += dt * inflow_rate * source;  velocity += source * (inflow_velocity - velocity)
    buoyancy velocity += dt * buoyancy * density * up
    CFL      max |velocity| * dt / dx <= cfl_limit, else FluidInstabilityError naming the step
    advect   velocity = velocity(x - dt velocity)           (self-advection, lumigrad.fluid.advection)
    project  velocity = P velocity                          (divergence-free, lumigrad.fluid.projection)
    CFL      checked again on the projected velocity
    advect   density  = density(x - dt velocity)

:func:`simulate_smoke` runs many steps with ``torch.utils.checkpoint`` per segment of ``checkpoint_every``
steps: only the segment boundaries' states (and what ``observe`` returns per step, e.g. rendered frames) are
kept for the backward pass; each segment is recomputed when the gradient reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence, Union

import torch
from torch.utils.checkpoint import checkpoint

from .._checks import check_choice, check_number, check_positive_int, check_tensor
from .advection import advect_unchecked
from .grid import grid_positions, spatial_dims
from .projection import DEFAULT_MAX_ITERS, DEFAULT_TOL, project_unchecked

__all__ = ["FluidInstabilityError", "SmokeParams", "SmokeRun", "SmokeState", "simulate_smoke", "smoke_step",
           "sphere_source"]

Scalar = Union[float, torch.Tensor]

#: Default Courant limit: the most grid cells a velocity may carry the smoke in one step.
DEFAULT_CFL_LIMIT = 2.0


class FluidInstabilityError(ValueError):
    """A step's velocity broke the CFL limit or the state stopped being finite (the message names the step)."""


class SmokeState(NamedTuple):
    """``density [*S]`` (>= 0) and ``velocity [*S, d]`` on one grid (layout: :mod:`lumigrad.fluid.grid`)."""

    density: torch.Tensor
    velocity: torch.Tensor


class SmokeRun(NamedTuple):
    """What :func:`simulate_smoke` returns: the final ``state`` and one ``frames`` entry per step (``observe``'s
    output, or the density after the step)."""

    state: SmokeState
    frames: List


@dataclass
class SmokeParams:
    """Physical parameters of :func:`smoke_step`; the tensor ones can require gradients.

    Attributes:
        source: ``[*S]`` inflow weights in ``[0, 1]`` (e.g. :func:`sphere_source`).
        inflow_velocity: ``[d]`` velocity the source imposes (world units per time).
        inflow_rate: density added per unit time where ``source`` is 1 (scalar or 0-d tensor).
        buoyancy: upward acceleration per unit density (scalar or 0-d tensor).
        dx: vertex spacing in world units.
        up: buoyancy direction as ``d`` component numbers (default ``+y``, glTF's up).
        scheme: ``"semi_lagrangian"`` or ``"maccormack"`` advection.
        pressure_tol, pressure_iters: the projection's CG tolerance and cap (:func:`~lumigrad.fluid.project`).
        cfl_limit: largest allowed ``max |u| dt / dx``.
    """

    source: torch.Tensor
    inflow_velocity: torch.Tensor
    inflow_rate: Scalar = 1.0
    buoyancy: Scalar = 0.0
    dx: float = 1.0
    up: Optional[Sequence[float]] = None
    scheme: str = "semi_lagrangian"
    pressure_tol: float = DEFAULT_TOL
    pressure_iters: int = DEFAULT_MAX_ITERS
    cfl_limit: float = DEFAULT_CFL_LIMIT


def sphere_source(shape: Sequence[int], center: Sequence[float], radius: float, *, softness: float = 1.0,
                  dtype=torch.float32, device=None) -> torch.Tensor:
    """A soft ball of inflow weights ``[*shape]`` in ``[0, 1]``: 1 inside ``radius`` (in vertex units) of
    ``center`` (index coordinates ``(x, y[, z])``), falling linearly to 0 over ``softness`` vertices."""
    shape = tuple(check_positive_int(n, "shape") for n in shape)
    if len(shape) not in (2, 3) or len(center) != len(shape):
        raise ValueError(f"shape must have 2 or 3 sizes and center as many coordinates; got {shape}, {center}")
    radius = check_number(radius, "radius", lo=0.0, lo_open=True)
    softness = check_number(softness, "softness", lo=0.0, lo_open=True)
    pos = grid_positions(shape, dtype=dtype, device=device)
    dist = torch.linalg.vector_norm(pos - torch.tensor(center, dtype=dtype, device=device), dim=-1)
    return ((radius + softness - dist) / softness).clamp(0.0, 1.0)


def smoke_step(state: SmokeState, params: SmokeParams, dt: float, *, step: int = 0) -> SmokeState:
    """Advance ``state`` by ``dt`` (module doc for the order of operations).

    Args:
        state: :class:`SmokeState` (density ``[*S]``, velocity ``[*S, d]``, floating, finite).
        params: :class:`SmokeParams` on the same grid.
        dt: time step, ``> 0``.
        step: the step's index, named by a :class:`FluidInstabilityError`.

    Returns:
        the new :class:`SmokeState`.

    Raises:
        ValueError / TypeError: inconsistent shapes, dtypes or settings (naming the argument).
        FluidInstabilityError: ``max |u| dt / dx > params.cfl_limit`` or a non-finite state at this step.

    **Differentiability:** w.r.t. the state, ``source``, ``inflow_velocity``, ``inflow_rate`` and ``buoyancy``
    (advection: piecewise smooth in the velocity; projection: adjoint solve). ``dt`` and ``dx`` are constants.
    """
    _check_state(state, "state")
    _check_params(params, state)
    dt = check_number(dt, "dt", lo=0.0, lo_open=True)
    return smoke_step_unchecked(state, params, dt, step)


def smoke_step_unchecked(state: SmokeState, params: SmokeParams, dt: float, step: int = 0) -> SmokeState:
    """:func:`smoke_step` without argument checks (the stability checks still run)."""
    density, velocity = state
    d = velocity.shape[-1]
    source = params.source.to(density.dtype)
    density = density + dt * params.inflow_rate * source
    inflow = torch.as_tensor(params.inflow_velocity, dtype=velocity.dtype, device=velocity.device)
    velocity = velocity + source[..., None] * (inflow - velocity)
    up = _up(params, d, velocity)
    velocity = velocity + (dt * params.buoyancy) * density[..., None] * up
    _check_stable(velocity, dt, params, step, "after inflow and buoyancy")
    velocity = advect_unchecked(velocity, velocity, dt, params.dx, params.scheme)
    velocity = project_unchecked(velocity, params.pressure_tol, params.pressure_iters).velocity
    _check_stable(velocity, dt, params, step, "after advection and projection")
    density = advect_unchecked(density, velocity, dt, params.dx, params.scheme)
    _check_finite(density, step, "density")
    _check_finite(velocity, step, "velocity")
    return SmokeState(density, velocity)


def simulate_smoke(initial: SmokeState, params: SmokeParams, steps: int, dt: float, *,
                   checkpoint_every: Optional[int] = None,
                   observe: Optional[Callable[[int, SmokeState], object]] = None) -> SmokeRun:
    """Run ``steps`` smoke steps from ``initial``.

    Args:
        initial: :class:`SmokeState` at time 0.
        params: :class:`SmokeParams`.
        steps: number of steps, ``>= 1``.
        dt: time step, ``> 0``.
        checkpoint_every: steps per ``torch.utils.checkpoint`` segment (``None`` or 0: no checkpointing, every
            intermediate is stored). With ``k``, the backward pass holds ``steps / k`` boundary states plus one
            segment's intermediates, and recomputes each segment once.
        observe: ``observe(step, state)`` called after each step (``step`` from 1), inside the segment, so
            that its intermediates (e.g. a render) are recomputed rather than stored; its outputs are collected
            in :attr:`SmokeRun.frames`. ``None`` collects the densities.

    Returns:
        :class:`SmokeRun`.

    Raises:
        ValueError / TypeError: bad arguments (naming them); :class:`FluidInstabilityError` naming the step.

    **Differentiability:** as :func:`smoke_step`, through every step; ``observe``'s outputs are differentiable
    w.r.t. the state and parameters. Checkpointing changes memory and time, not the gradient.
    """
    _check_state(initial, "initial")
    _check_params(params, initial)
    steps = check_positive_int(steps, "steps")
    dt = check_number(dt, "dt", lo=0.0, lo_open=True)
    k = 0 if checkpoint_every is None else checkpoint_every
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"checkpoint_every must be None or an int >= 0; got {checkpoint_every!r}")
    look = observe if observe is not None else (lambda step, state: state.density)
    if observe is not None and not callable(observe):
        raise TypeError(f"observe must be callable (step, state) -> output; got {type(observe).__name__}")

    def segment(first: int, count: int, density: torch.Tensor, velocity: torch.Tensor):
        state = SmokeState(density, velocity)
        seen = []
        for n in range(first, first + count):
            state = smoke_step_unchecked(state, params, dt, n)
            seen.append(look(n, state))
        return state.density, state.velocity, seen

    state, frames = initial, []
    size = steps if k == 0 else k
    for first in range(1, steps + 1, size):
        count = min(size, steps + 1 - first)
        if k == 0:
            density, velocity, seen = segment(first, count, *state)
        else:
            density, velocity, seen = checkpoint(segment, first, count, *state, use_reentrant=False)
        state = SmokeState(density, velocity)
        frames.extend(seen)
    return SmokeRun(state, frames)


def _up(params: SmokeParams, d: int, like: torch.Tensor) -> torch.Tensor:
    if params.up is None:
        return like.new_tensor([0.0, 1.0, 0.0][:d])
    up = like.new_tensor(list(params.up))
    return up / torch.linalg.vector_norm(up)


def _check_stable(velocity: torch.Tensor, dt: float, params: SmokeParams, step: int, where: str) -> None:
    _check_finite(velocity, step, "velocity")
    speed = float(torch.linalg.vector_norm(velocity.detach(), dim=-1).max())
    courant = speed * dt / params.dx
    if courant > params.cfl_limit:
        raise FluidInstabilityError(
            f"step {step}: CFL number max|u| dt / dx = {courant:.3g} exceeds cfl_limit {params.cfl_limit:g} "
            f"({where}; max |u| = {speed:.3g}); reduce dt, the inflow velocity or the buoyancy")


def _check_finite(x: torch.Tensor, step: int, name: str) -> None:
    if not bool(torch.isfinite(x.detach()).all()):
        raise FluidInstabilityError(f"step {step}: the {name} is no longer finite (the simulation blew up)")


def _check_state(state, name: str) -> None:
    if not isinstance(state, SmokeState):
        if isinstance(state, tuple) and len(state) == 2:
            state = SmokeState(*state)
        else:
            raise TypeError(f"{name} must be a SmokeState(density, velocity); got {type(state).__name__}")
    d = spatial_dims(state.velocity, f"{name}.velocity")
    check_tensor(state.velocity, f"{name}.velocity", floating=True, finite=True)
    check_tensor(state.density, f"{name}.density", floating=True, finite=True, device=state.velocity.device)
    if tuple(state.density.shape) != tuple(state.velocity.shape[:d]):
        raise ValueError(f"{name}.density must have shape {tuple(state.velocity.shape[:d])} (the velocity's grid); "
                         f"got {tuple(state.density.shape)}")
    if state.density.dtype != state.velocity.dtype:
        raise TypeError(f"{name}.density and {name}.velocity must share a dtype; got {state.density.dtype} and "
                        f"{state.velocity.dtype}")
    if state.density.numel() and float(state.density.detach().min()) < 0:
        raise ValueError(f"{name}.density must be >= 0; got min {float(state.density.detach().min()):.3g}")


def _check_params(params, state) -> None:
    if not isinstance(params, SmokeParams):
        raise TypeError(f"params must be a SmokeParams; got {type(params).__name__}")
    density, velocity = state
    d = velocity.shape[-1]
    check_tensor(params.source, "params.source", floating=True, finite=True, device=density.device)
    if tuple(params.source.shape) != tuple(density.shape):
        raise ValueError(f"params.source must have the grid's shape {tuple(density.shape)}; got "
                         f"{tuple(params.source.shape)}")
    inflow = params.inflow_velocity
    if not isinstance(inflow, torch.Tensor):
        inflow = torch.as_tensor(inflow, dtype=velocity.dtype)
    check_tensor(inflow, "params.inflow_velocity", trailing=(d,), max_dims=1, floating=True, finite=True)
    for name in ("inflow_rate", "buoyancy"):
        value = getattr(params, name)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"params.{name} must be a scalar; got shape {tuple(value.shape)}")
            check_tensor(value, f"params.{name}", floating=True, finite=True)
        else:
            check_number(value, f"params.{name}")
    check_number(params.dx, "params.dx", lo=0.0, lo_open=True)
    check_choice(params.scheme, "params.scheme", ("semi_lagrangian", "maccormack"))
    check_number(params.pressure_tol, "params.pressure_tol", lo=0.0, lo_open=True)
    check_positive_int(params.pressure_iters, "params.pressure_iters")
    check_number(params.cfl_limit, "params.cfl_limit", lo=0.0, lo_open=True)
    if params.up is not None:
        if len(params.up) != d or not any(float(c) != 0 for c in params.up):
            raise ValueError(f"params.up must be {d} numbers, not all zero; got {params.up!r}")
