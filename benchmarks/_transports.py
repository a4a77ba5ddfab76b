"""Shared by the path-tracing benchmarks: a forward render on the fused kernel against the PyTorch transport."""

from __future__ import annotations

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call


def forward_by_transport(scene: lg.Scene, cam: lg.Camera, settings: dict, repeats: int) -> dict:
    """``{True: fused kernel, False: PyTorch transport}`` of ``lg.render(scene, cam, **settings)`` without a graph
    (``use_fused_kernel``): each ``dict(seconds=median of repeats, mib=peak memory of one call, image=rgb)``, after
    one warm-up call each (compiles, BVH), the two alternated call by call so that machine load falls on both."""
    calls = {}
    for fused in (True, False):
        def forward(fused=fused):
            with torch.no_grad():
                return lg.render(scene, cam, **settings, use_fused_kernel=fused).rgb
        calls[fused] = forward
    images = {k: fn() for k, fn in calls.items()}
    times = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            times[k] += time_call(fn, 1, warmup=0)
    return {k: dict(seconds=median(times[k]), mib=peak_memory(fn)[0], image=images[k]) for k, fn in calls.items()}
