"""Deprecated file-reading constructors, kept working for one release.

``Mesh.from_obj`` and ``EnvironmentLight.from_file`` read files, which made the mesh and the lights (layers
below ``io``) import ``io``. The readers are now :func:`lumigrad.io.read_mesh` and
:func:`lumigrad.io.read_environment`; the old names are attached to the classes here, by ``io`` (which
``import lumigrad`` always imports), so ``mesh.py`` and ``scene/lights.py`` import nothing from ``io``. Each
call warns with a ``FutureWarning`` naming the replacement. Remove this module in the next minor release.

``lumigrad.volume.write_turntable`` wrote GIF / PNG / MP4 files with its own code (and its own MP4 settings), a
second copy of :mod:`lumigrad.io.video` that ``volume`` (below ``io``) could not share; it is attached to
``lumigrad.volume`` here as a deprecated alias of :func:`lumigrad.io.write_frames` (its ``.png`` default stays
the nearly square sheet, ``ceil(sqrt(N))`` columns).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from ..mesh import Mesh
from ..scene.lights import EnvironmentLight
from .environment import read_environment
from .obj import read_mesh
from .video import write_frames

__all__ = ["attach"]


def _deprecated(reader, old: str, new: str):
    @functools.wraps(reader)
    def shim(cls, *args, **kwargs):
        warnings.warn(f"{old} is deprecated and will be removed; use {new} instead", FutureWarning, stacklevel=2)
        return reader(*args, **kwargs)

    shim.__doc__ = f"Deprecated: use :func:`{new}` (same arguments).\n\n" + (reader.__doc__ or "")
    shim.__qualname__ = old
    return classmethod(shim)


def write_turntable(path, images: torch.Tensor, fps: float = 12.0, *, columns=None) -> None:
    """Deprecated: use :func:`lumigrad.io.write_frames` (``frames`` for ``images``; a ``.png`` sheet there
    defaults to one row, here to ``ceil(sqrt(N))`` columns as before)."""
    warnings.warn("lumigrad.volume.write_turntable is deprecated and will be removed; use lumigrad.io.write_frames "
                  "instead", FutureWarning, stacklevel=2)
    if columns is None and isinstance(images, torch.Tensor) and images.dim() == 4 and images.shape[0] > 0:
        columns = math.ceil(math.sqrt(images.shape[0]))
    write_frames(path, images, fps, columns=columns)


def attach() -> None:
    """Give ``Mesh`` and ``EnvironmentLight`` their old file-reading classmethods back, and ``lumigrad.volume``
    its ``write_turntable``, as deprecated aliases."""
    from .. import volume

    volume.write_turntable = write_turntable
    Mesh.from_obj = _deprecated(read_mesh, "Mesh.from_obj", "lumigrad.io.read_mesh")
    EnvironmentLight.from_file = _deprecated(read_environment, "EnvironmentLight.from_file",
                                             "lumigrad.io.read_environment")
