"""Compile (or load from Warp's kernel cache) every Warp module of lumigrad ahead of time: ``lumigrad warmup``.

Warp compiles a module the first time one of its kernels is launched on a device and keeps the binary in its
kernel cache; later processes load it from there in milliseconds. :func:`warm_up` does that for all of
lumigrad's modules at once, so the first render or fit does not stop for the compiler.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass
from typing import List

import torch
import warp as wp

from . import _runtime
from ._runtime import cache_dir

__all__ = ["ModuleLoad", "cache_dir", "kernel_modules", "warm_up"]


@dataclass
class ModuleLoad:
    """One Warp module made ready on a device: ``status`` is ``"compiled"`` (the cache lacked it) or ``"cached"``."""

    name: str
    kernels: int
    status: str


def kernel_modules() -> List["wp.Module"]:
    """The Warp modules of ``lumigrad.kernels`` that define kernels (every submodule imported first)."""
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__, __package__ + "."):
        importlib.import_module(info.name)
    modules = [wp.get_module(info.name) for info in pkgutil.iter_modules(package.__path__, __package__ + ".")]
    return [m for m in modules if m.kernels]


def warm_up(device="cpu") -> tuple:
    """Compile or load every lumigrad Warp module on ``device`` (a ``torch.device`` or its name).

    Returns:
        ``(loads, seconds)``: a :class:`ModuleLoad` per module, and the wall time it took.
    """
    device = torch.device(device)
    dev = _runtime.warp_device(device)
    modules = kernel_modules()
    loads = [ModuleLoad(m.name, len(m.kernels), "compiled" if _runtime.needs_compile(m, dev) else "cached")
             for m in modules]
    start = time.perf_counter()
    block_dim = 1 if device.type == "cpu" else None  # what a launch loads: CPU launches run one thread per item
    wp.force_load(device=dev, modules=modules, block_dim=block_dim)
    return loads, time.perf_counter() - start
