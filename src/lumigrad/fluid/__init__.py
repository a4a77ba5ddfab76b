"""Differentiable smoke on a grid (issue 16, fluid motion): semi-Lagrangian / MacCormack advection, pressure
projection by conjugate gradients with an adjoint backward, buoyancy and inflow, checkpointed simulation, and
emission-absorption renders of the density through the volume renderer. See docs/fluid.md."""

from .advection import AdvectionScheme, advect
from .grid import grid_positions, sample_grid, sample_grid_ref, spatial_dims
from .projection import PressureSolve, divergence, pressure_gradient, project, project_ref, project_with_info
from .render import DensityGridField, render_density
from .smoke import (FluidInstabilityError, SmokeParams, SmokeRun, SmokeState, simulate_smoke, smoke_step,
                    sphere_source)

__all__ = ["AdvectionScheme", "DensityGridField", "FluidInstabilityError", "PressureSolve", "SmokeParams",
           "SmokeRun", "SmokeState", "advect", "divergence", "grid_positions", "pressure_gradient", "project",
           "project_ref", "project_with_info", "render_density", "sample_grid", "sample_grid_ref",
           "simulate_smoke", "smoke_step", "spatial_dims", "sphere_source"]
