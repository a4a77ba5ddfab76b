"""Deprecated ``lumigrad.scene`` names of renderer-level functions, kept working for one release.

``lumigrad.scene.render``, ``lumigrad.scene.render_geometry`` and the modules ``lumigrad.scene.geometry_buffers``
and ``lumigrad.scene.gradient_check`` render, so they belong to the integrators, which sit above the scene: they
are now :func:`lumigrad.render`, :func:`lumigrad.render_geometry`, :mod:`lumigrad.integrators.geometry_buffers`
and :mod:`lumigrad.integrators.gradient_check`. The old names are attached to ``lumigrad.scene`` here, by the
integrators (which ``import lumigrad`` always imports), so no scene module imports the integrators. A call of an
old function, or a name read from an old module, warns with a ``FutureWarning`` naming the replacement. Remove
this module in the next minor release.
"""

from __future__ import annotations

import functools
import sys
import types
import warnings
from typing import Callable

from .. import scene
from . import geometry_buffers, gradient_check
from .dispatch import render
from .geometry_buffers import render_geometry

__all__ = ["attach"]


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed; use {new} instead", FutureWarning, stacklevel=3)


def _deprecated_function(function: Callable, old: str, new: str) -> Callable:
    @functools.wraps(function)
    def shim(*args, **kwargs):
        _warn(old, new)
        return function(*args, **kwargs)

    shim.__doc__ = f"Deprecated: use :func:`{new}` (same arguments).\n\n" + (function.__doc__ or "")
    shim.__qualname__ = shim.__name__ = old.rsplit(".", 1)[1]
    shim.__module__ = old.rsplit(".", 1)[0]
    return shim


def _deprecated_module(module: types.ModuleType, old: str) -> types.ModuleType:
    """A stand-in module named ``old`` whose public names are ``module``'s, each read with a warning."""
    alias = types.ModuleType(old, f"Deprecated: use :mod:`{module.__name__}` (the same names).")
    alias.__all__ = list(module.__all__)

    def __getattr__(name: str):
        if name not in module.__all__:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        _warn(f"{old}.{name}", f"{module.__name__}.{name}")
        return getattr(module, name)

    alias.__getattr__ = __getattr__
    return alias


def attach() -> None:
    """Give ``lumigrad.scene`` its old renderer-level names back, as deprecated aliases."""
    scene.render = _deprecated_function(render, "lumigrad.scene.render", "lumigrad.render")
    scene.render_geometry = _deprecated_function(render_geometry, "lumigrad.scene.render_geometry",
                                                 "lumigrad.render_geometry")
    for module in (geometry_buffers, gradient_check):
        old = f"{scene.__name__}.{module.__name__.rsplit('.', 1)[1]}"
        alias = _deprecated_module(module, old)
        sys.modules[old] = alias  # so that ``import lumigrad.scene.gradient_check`` finds it
        setattr(scene, old.rsplit(".", 1)[1], alias)
