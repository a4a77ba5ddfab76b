"""Integrators: every renderer behind one small protocol, chosen by name.

``lumigrad.render(scene, camera, integrator="raster", aovs=(...), **settings)`` returns a
:class:`RenderOutput` (``rgb``, ``alpha``, ``aovs`` by name). :class:`Integrator` is the protocol,
:func:`register_integrator` adds a renderer under a name, :func:`get_integrator` builds one with its settings.
The raster pipeline (:class:`RasterIntegrator`, ``"raster"``) is the first; the path tracer (``"path"``,
``"direct"``) the second, the ray-marched radiance field (``"volume"``) the third; see docs/design.md, "Integrators".
"""

from .base import (AOV_DOCS, Integrator, RenderOutput, get_integrator, integrator_names, integrator_settings,
                   register_integrator, unregister_integrator)
from .dispatch import render, resolve_camera
from .sequence import render_sequence
from .tiled import render_tiled, tile_windows, tiled_loss
from .raster import GEOMETRY_AOVS, RasterIntegrator
from .path import DirectIntegrator, PathIntegrator
from .volume import VolumeIntegrator
from .geometry_buffers import render_geometry
from .neural_shading import NeuralShader, shade_gbuffer

from . import deprecated as _deprecated

_deprecated.attach()

__all__ = ["render_sequence", "AOV_DOCS", "DirectIntegrator", "GEOMETRY_AOVS", "NeuralShader", "shade_gbuffer", "Integrator", "PathIntegrator", "RasterIntegrator", "RenderOutput", "VolumeIntegrator", "get_integrator", "integrator_names",
           "integrator_settings", "register_integrator", "render", "render_geometry", "render_tiled", "resolve_camera", "tile_windows", "tiled_loss",
           "unregister_integrator"]
