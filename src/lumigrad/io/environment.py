"""Environment maps from files: an equirectangular ``.hdr`` / ``.exr`` image into an :class:`EnvironmentLight`."""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from ..scene.lights import EnvironmentLight
from ..shading.envmap import check_env_size
from .exr import read_exr
from .hdr import read_hdr

__all__ = ["read_environment"]


def read_environment(path: str | os.PathLike, *, size: Optional[Tuple[int, int]] = (32, 64),
                     **kw) -> EnvironmentLight:
    """Read an equirectangular ``.hdr`` (Radiance RGBE) or ``.exr`` (OpenEXR) map as an :class:`EnvironmentLight`.

    (This was ``EnvironmentLight.from_file``, which still works with a ``FutureWarning``: lights, like every
    layer below ``io``, do not read files.)

    Args:
        path: the ``.hdr`` or ``.exr`` file in lumigrad's equirectangular layout (see
            :class:`lumigrad.EnvironmentLight`): Mitsuba's direction mapping with row ``i`` centred at ``v = (i +
            0.5) / H``. Texels are read as stored; a map written for Mitsuba's ``envmap`` (first and last rows on
            the poles) is half a row off near the poles: load it through a Mitsuba scene file
            (:func:`lumigrad.io.read_mitsuba_xml` resamples it).
        size: ``(H, W)`` the map is area-averaged down to; ``None`` keeps it as stored.
        **kw: passed to the :class:`EnvironmentLight` constructor (``scale``, ``visible``, ...).

    Returns:
        the light; a single-channel (Y) map becomes grey RGB, channels past the third are dropped.

    Raises:
        ValueError: ``path`` is not a ``.hdr`` / ``.exr`` file, or ``size`` is not a valid map size (checked
            before the file is read).
    """
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix not in ("hdr", "exr"):
        raise ValueError(f"path must name a .hdr or .exr environment map; got {path}")
    if size is not None:
        size = check_env_size(size, "size")  # before the file is read and resampled
    texels = (read_hdr if suffix == "hdr" else read_exr)(path)
    texels = texels[..., :3] if texels.shape[-1] >= 3 else texels[..., :1].expand(-1, -1, 3)  # Y: grey
    if size is not None and tuple(texels.shape[:2]) != tuple(size):
        texels = torch.nn.functional.interpolate(texels.permute(2, 0, 1)[None], size=tuple(size),
                                                 mode="area")[0].permute(1, 2, 0).contiguous()
    return EnvironmentLight(texels, **kw)
