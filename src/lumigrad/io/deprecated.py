"""Deprecated file-reading constructors, kept working for one release.

``Mesh.from_obj`` and ``EnvironmentLight.from_file`` read files, which made the mesh and the lights (layers
below ``io``) import ``io``. The readers are now :func:`lumigrad.io.read_mesh` and
:func:`lumigrad.io.read_environment`; the old names are attached to the classes here, by ``io`` (which
``import lumigrad`` always imports), so ``mesh.py`` and ``scene/lights.py`` import nothing from ``io``. Each
call warns with a ``FutureWarning`` naming the replacement. Remove this module in the next minor release.
"""

from __future__ import annotations

import functools
import warnings

from ..mesh import Mesh
from ..scene.lights import EnvironmentLight
from .environment import read_environment
from .obj import read_mesh

__all__ = ["attach"]


def _deprecated(reader, old: str, new: str):
    @functools.wraps(reader)
    def shim(cls, *args, **kwargs):
        warnings.warn(f"{old} is deprecated and will be removed; use {new} instead", FutureWarning, stacklevel=2)
        return reader(*args, **kwargs)

    shim.__doc__ = f"Deprecated: use :func:`{new}` (same arguments).\n\n" + (reader.__doc__ or "")
    shim.__qualname__ = old
    return classmethod(shim)


def attach() -> None:
    """Give ``Mesh`` and ``EnvironmentLight`` their old file-reading classmethods back, as deprecated aliases."""
    Mesh.from_obj = _deprecated(read_mesh, "Mesh.from_obj", "lumigrad.io.read_mesh")
    EnvironmentLight.from_file = _deprecated(read_environment, "EnvironmentLight.from_file",
                                             "lumigrad.io.read_environment")
