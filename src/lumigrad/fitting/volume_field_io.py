"""Save a fitted radiance field and load it back (``OUT/assets/field.pt`` of a volume fit).

The file holds plain data only (settings, box, tensors), so :func:`load_field` reads it with
``torch.load(weights_only=True)``: loading a field never runs code from the file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from ..volume.fields.nerf import NerfField
from ..volume.occupancy import OccupancyGrid
from ..scene.volume_shape import VolumeShape

__all__ = ["FIELD_FORMAT", "field_settings", "load_field", "save_field"]

FIELD_FORMAT = "lumigrad-radiance-field-1"

#: Defaults of a fit's field where they differ from :class:`NerfField`'s: a CPU-sized hash table with dense
#: gradients (at 2^17 rows a level, dense Adam steps faster on the CPU than SparseAdam, whose coalescing of the
#: sparse gradient cost 0.22 s a step: 1.13 against 1.60 s a step, 4096 rays) and the truncated exponential
#: density.
FIT_FIELD_DEFAULTS = {"log2_table_size": 17, "max_resolution": 512, "sparse": False, "density_kind": "exp"}


def field_settings(config, aabb=None) -> Dict:
    """The :class:`NerfField` keyword arguments of a volume fit's ``[field]`` table. With the exponential
    density and no ``density_bias`` given, the initial density is one over the box diagonal (``aabb [6]``): an
    optical depth of about 1 across the box, as instant-ngp starts in its unit cube, whatever the scene's units."""
    settings = dict(FIT_FIELD_DEFAULTS)
    settings.update(config.field)
    if settings["density_kind"] == "exp" and "density_bias" not in settings and aabb is not None:
        box = torch.as_tensor(aabb, dtype=torch.float64).reshape(6)
        settings["density_bias"] = -math.log(float(torch.linalg.vector_norm(box[3:] - box[:3])))
    return settings


def save_field(path: Union[str, os.PathLike], trainer) -> Path:
    """Write the trainer's field (settings, box, weights) and occupancy grid to ``path``."""
    path = Path(path)
    occ = trainer.occupancy
    state = {
        "format": FIELD_FORMAT,
        "settings": field_settings(trainer.config, trainer.data.aabb.cpu()),
        "aabb": trainer.data.aabb.detach().cpu().reshape(6).tolist(),
        "weights": {k: v.detach().cpu() for k, v in trainer.field.state_dict().items()},
        "occupancy": None if occ is None else {
            "resolution": occ.resolution, "levels": occ.levels, "threshold": occ.threshold,
            "state": {k: v.detach().cpu() for k, v in occ.state_dict().items()}},
        "step_size": float(trainer.step_size),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_field(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu"
               ) -> Tuple[VolumeShape, float]:
    """Read a field written by :func:`save_field`.

    Returns:
        ``(VolumeShape(field, occupancy), step_size)``: add the shape to a :class:`~lumigrad.Scene` and render it
        with ``integrator="volume", step_size=step_size``.

    Raises:
        ValueError: not a lumigrad field file, or one whose weights do not fit its settings.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such field file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable field file ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FIELD_FORMAT:
        raise ValueError(f"{path}: not a lumigrad radiance-field file (format {FIELD_FORMAT!r})")
    aabb = torch.tensor(state["aabb"], dtype=torch.float32).reshape(2, 3)
    try:
        field = NerfField(aabb, **state["settings"])
        field.load_state_dict(state["weights"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: the weights do not fit the field's settings ({str(exc)[:200]})") from None
    occupancy: Optional[OccupancyGrid] = None
    if state.get("occupancy"):
        o = state["occupancy"]
        occupancy = OccupancyGrid(aabb, o["resolution"], o["levels"], threshold=o["threshold"])
        occupancy.load_state_dict(o["state"])
    shape = VolumeShape(field.to(device), None if occupancy is None else occupancy.to(device))
    return shape, float(state["step_size"])
