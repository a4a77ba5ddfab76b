"""Warp runtime glue: initialisation, torch <-> warp views, and multi-threaded CPU launches.

Everything above ``kernels/`` sees only torch tensors. Warp's CPU backend runs one launch on one thread but
releases the GIL, so :func:`launch_split` cuts a launch into contiguous ranges and runs them from a small
thread pool, one range per core. CUDA launches go out whole on the tensor's current stream.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import torch
import warp as wp

_init_lock = threading.Lock()
_initialised = False
_pool: ThreadPoolExecutor | None = None


def ensure_init() -> None:
    """Initialise Warp once, quietly."""
    global _initialised
    if _initialised:
        return
    with _init_lock:
        if not _initialised:
            wp.config.log_level = wp.LOG_ERROR
            if torch.cuda.is_available():
                wp.init()
            else:  # Warp's native code prints a CUDA-driver warning that means nothing on a CPU-only machine
                with _stderr_silenced():
                    wp.init()
            _initialised = True


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null for the duration (native code writes there directly)."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def num_workers() -> int:
    """Number of CPU threads used for split launches (``LUMIGRAD_NUM_THREADS`` overrides)."""
    env = os.environ.get("LUMIGRAD_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 32))


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=num_workers(), thread_name_prefix="lumigrad-kernel")
    return _pool


def warp_device(device: torch.device) -> str:
    """Map a torch device to Warp's device string."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    if device.type == "cpu":
        return "cpu"
    raise ValueError(f"lumigrad kernels run on CPU and CUDA; got tensors on {device}")


def as_warp(t: torch.Tensor, dtype=None):
    """Return a zero-copy Warp view of a contiguous torch tensor."""
    if not t.is_contiguous():
        raise RuntimeError("internal error: kernel input must be contiguous")
    return wp.from_torch(t.detach(), dtype=dtype)


def launch_split(kernel, count: int, inputs: Sequence, device: torch.device, min_chunk: int = 1) -> None:
    """Launch ``kernel`` over ``count`` work items, split into one contiguous range per CPU thread.

    The kernel's first two arguments must be ``(offset: int, end: int)``; item ``i`` of a range is
    ``offset + wp.tid()``. Work items must not write to shared locations (no cross-thread atomics on CPU).
    """
    if count <= 0:
        return
    if device.type == "cuda":
        launch(kernel, count, [0, count, *inputs], device)
        return
    ensure_init()
    dev = warp_device(device)
    workers = num_workers()
    chunks = max(1, min(workers, count // max(min_chunk, 1)))
    if chunks == 1:
        launch(kernel, count, [0, count, *inputs], device)
        return
    # More ranges than threads balances uneven work (tiles with many triangles); each range is contiguous.
    pieces = min(count, chunks * 4)
    bounds = [count * k // pieces for k in range(pieces + 1)]
    futures = [
        _get_pool().submit(wp.launch, kernel, dim=bounds[k + 1] - bounds[k],
                           inputs=[bounds[k], bounds[k + 1], *inputs], device=dev)
        for k in range(pieces) if bounds[k + 1] > bounds[k]
    ]
    for f in futures:
        f.result()


def launch_partitioned(kernel, count: int, inputs_for_part, parts: int, device: torch.device) -> None:
    """Launch ``kernel`` over ``count`` items cut into ``parts`` contiguous ranges, one per CPU thread.

    ``inputs_for_part(k)`` returns the inputs (after ``offset, end``) of part ``k``, so each part can write
    to private buffers (a kernel with atomics then needs no cross-thread atomics; the caller reduces).
    """
    ensure_init()
    dev = warp_device(device)
    bounds = [count * k // parts for k in range(parts + 1)]
    futures = [
        _get_pool().submit(wp.launch, kernel, dim=bounds[k + 1] - bounds[k],
                           inputs=[bounds[k], bounds[k + 1], *inputs_for_part(k)], device=dev)
        for k in range(parts) if bounds[k + 1] > bounds[k]
    ]
    for f in futures:
        f.result()


def launch(kernel, count: int, inputs: Sequence, device: torch.device) -> None:
    """Launch ``kernel`` over ``count`` items as one launch (for kernels that use atomics)."""
    ensure_init()
    if count <= 0:
        return
    dev = warp_device(device)
    if device.type == "cuda":
        stream = wp.stream_from_torch(torch.cuda.current_stream(device))
        wp.launch(kernel, dim=count, inputs=list(inputs), device=dev, stream=stream)
    else:
        wp.launch(kernel, dim=count, inputs=list(inputs), device=dev)
