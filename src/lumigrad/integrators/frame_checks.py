"""The checks every integrator makes of a frame, once, at its boundary (docs/design.md, "Validation once").

:func:`frame_checks` queues, on the device, "finite" for every floating tensor of the scene and the camera,
"non-negative" for light strengths and colours and a thin lens's aperture, "positive" for its focus distance; a renderer reads the verdicts in a transfer it makes anyway
(the rasterizer: its tile count) or at once with ``flush()``. :func:`check_index_tables` checks the scene's
face tables against their vertex and uv tables (remembered per tensor version, so unchanged tables are read
once). Errors name the parameter.
"""

from __future__ import annotations

import torch

from .._checks import DeferredChecks, check_indices
from ..cameras.camera import Camera
from ..scene.params import NONNEGATIVE_KINDS
from ..scene.lights import AreaLight, EnvironmentLight
from ..scene.scene import Scene

__all__ = ["check_index_tables", "check_something_to_draw", "frame_checks"]


def frame_checks(scene: Scene, camera: Camera) -> DeferredChecks:
    """The frame's value checks, queued on the device: every floating tensor of the scene and the camera
    finite, light strengths and colours non-negative (tensors that passed before and have not changed since
    are not read again)."""
    checks = DeferredChecks()
    params = scene.parameters()
    named = {f"scene parameter {name}": value for name, value in params.items()}
    named.update({f"camera.{name}": value for name, value in camera.parameters().items()})
    checks.require_finite(named)
    nonnegative = {f"scene parameter {name}": value for name, value in params.items()
                   if scene.param_info(name).kind in NONNEGATIVE_KINDS}
    if camera.thin_lens:  # (an optimiser may have moved them since the camera was built)
        nonnegative["camera.aperture_radius"] = camera.aperture_radius
        checks.require_positive({"camera.focus_distance": camera.focus_distance})
    checks.require_nonnegative(nonnegative)
    return checks


def check_index_tables(scene: Scene) -> None:
    """The scene's face tables index their own vertices and uv: checked when the meshes and area lights were
    built, again here in case one changed since (a table is read once per version, not every frame)."""
    for group, members in (("meshes", scene.meshes), ("lights", scene.lights)):
        for name, obj in members.items():
            for faces, table in (("faces", "verts"), ("uv_faces", "uv")):
                idx, rows = getattr(obj, faces, None), getattr(obj, table, None)
                if isinstance(idx, torch.Tensor) and isinstance(rows, torch.Tensor):
                    check_indices(idx, f"{group}.{name}.{faces}", rows.shape[0])


def check_something_to_draw(scene: Scene) -> None:
    """Every renderer draws a mesh, an area light or the sky (an :class:`EnvironmentLight`); a scene of none of
    them is refused."""
    if not scene.meshes and not any(isinstance(l, (AreaLight, EnvironmentLight)) for l in scene.lights.values()):
        raise ValueError("scene has nothing to draw: add a mesh (scene.add_mesh), an area light or an environment "
                         "light")
