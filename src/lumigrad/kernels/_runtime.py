"""Warp runtime glue: initialisation, torch <-> warp views, and multi-threaded CPU launches.

Everything above ``kernels/`` sees only torch tensors. Warp's CPU backend runs one launch on one thread but
releases the GIL, so :func:`launch_split` cuts a launch into contiguous ranges and runs them from a small
thread pool, one range per core. CUDA launches go out whole on the tensor's current stream. How many threads,
and what happens to PyTorch's own thread count at the first CPU launch, is decided in :mod:`lumigrad.threads`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import torch
import warp as wp

from .. import threads as _threads

_threads.record_torch_baseline()  # the count as lumigrad found it; a later change is the user's

_init_lock = threading.Lock()
_initialised = False
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_compile_announced = False
_modules_checked: set = set()  # (Warp module name, device) whose cache state was looked at


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


def cache_dir() -> str:
    """Warp's kernel cache folder (``WARP_CACHE_PATH`` or ``warp.config.kernel_cache_dir`` sets it)."""
    ensure_init()
    return str(wp.config.kernel_cache_dir)


def needs_compile(module, device: str) -> bool:
    """Whether loading the Warp ``module`` on ``device`` (``"cpu"``, ``"cuda:0"``) will compile it: it is not
    loaded in this process and its binary for this device is not in the kernel cache. False when unsure (a
    Warp whose cache layout differs): the caller then merely stays quiet."""
    ensure_init()
    try:
        dev = wp.get_device(device)
        block_dim = 1 if dev.is_cpu else module.options["block_dim"]  # what a launch without block_dim loads
        if (dev.context, block_dim) in module.execs:
            return False
        folder = os.path.join(wp.config.kernel_cache_dir, module.get_module_identifier(block_dim))
        try:
            binary = module._get_compile_output_name(dev, block_dim=block_dim)  # Warp's own file name
            return not os.path.exists(os.path.join(folder, binary))
        except (AttributeError, TypeError):  # another Warp: any binary of the device's kind will do
            return not glob.glob(os.path.join(folder, "*.o" if dev.is_cpu else "*.[cp][ut][bx]*"))
    except Exception:  # noqa: BLE001 - a question about the cache must never break a launch
        return False


def announce_compile(kernel, device: str) -> None:
    """Before a launch: if Warp is about to compile ``kernel``'s module (a cold kernel cache), say so on stderr,
    once per process, with the cache folder. Each module is looked at once per device; afterwards this is a
    set lookup."""
    global _compile_announced
    if _compile_announced:
        return
    key = (kernel.module.name, device)
    if key in _modules_checked:
        return
    _modules_checked.add(key)
    if needs_compile(kernel.module, device):
        _compile_announced = True
        print(f"lumigrad: compiling kernels once (about 15 s on {device}); later runs reuse the cache at "
              f"{cache_dir()} (`lumigrad warmup` compiles them all ahead of time)", file=sys.stderr, flush=True)


def num_workers() -> int:
    """Threads for the next split CPU launch, the calling thread included (:func:`lumigrad.threads.launch_threads`:
    ``lumigrad.set_num_threads``, else ``LUMIGRAD_NUM_THREADS`` read on every call, else the CPUs available,
    fewer while other processes keep them busy)."""
    return _threads.launch_threads()


def _get_pool(size: int) -> ThreadPoolExecutor:
    """A pool of at least ``size`` helper threads (the calling thread is one more). It only grows: threads are
    started when work is first submitted to them and sleep while idle."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            old = _pool
            _pool, _pool_size = ThreadPoolExecutor(max_workers=size, thread_name_prefix="lumigrad-kernel"), size
            if old is not None:
                old.shutdown(wait=False)  # its threads finish the work already submitted, then exit
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


class _SharedRanges:
    """Ranges of one launch, taken one at a time by the calling thread and by helper threads.

    The caller works too and waits only for ranges a helper has already taken, so a helper that the OS has
    not scheduled yet (a busy machine) costs nothing: the caller does its share, and a helper that starts late
    finds nothing left. A failed range stops the others from being taken; the caller re-raises its error.
    """

    def __init__(self, kernel, jobs: list, dev: str):
        self.kernel, self.jobs, self.dev = kernel, jobs, dev  # jobs: [(dim, inputs)]
        self.taken = 0
        self.finished = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def work(self) -> None:
        while True:
            with self.cond:
                if self.taken >= len(self.jobs) or self.error is not None:
                    return
                k = self.taken
                self.taken += 1
            dim, inputs = self.jobs[k]
            try:
                wp.launch(self.kernel, dim=dim, inputs=inputs, device=self.dev)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                with self.cond:
                    self.error = self.error or exc
            finally:
                with self.cond:
                    self.finished += 1
                    self.cond.notify_all()

    def run(self, helpers: int) -> None:
        pool = _get_pool(helpers) if helpers > 0 else None
        for _ in range(min(helpers, len(self.jobs) - 1)):
            pool.submit(self.work)
        self.work()
        with self.cond:
            self.cond.wait_for(lambda: self.finished == self.taken)
            if self.error is not None:
                raise self.error


def launch_split(kernel, count: int, inputs: Sequence, device: torch.device, min_chunk: int = 1,
                 workers: Optional[int] = None, min_piece: int = 1) -> None:
    """Launch ``kernel`` over ``count`` work items, split into contiguous ranges run by up to
    ``workers`` threads (default ``num_workers()``; the caller included).

    The kernel's first two arguments must be ``(offset: int, end: int)``; item ``i`` of a range is
    ``offset + wp.tid()``. Work items must not write to shared locations (no cross-thread atomics on CPU).
    A launch of fewer than ``2 * min_chunk`` items is not split. A split launch is cut into up to 4 ranges
    per thread (balancing uneven work), but none smaller than ``min_piece`` items unless that leaves fewer
    ranges than threads: each range is one Warp launch, whose argument packing (tens of microseconds, under
    the GIL) a small range would not repay.
    """
    if count <= 0:
        return
    if device.type == "cuda":
        launch(kernel, count, [0, count, *inputs], device)
        return
    ensure_init()
    _threads.prepare_cpu()
    dev = warp_device(device)
    announce_compile(kernel, dev)
    workers = num_workers() if workers is None else max(1, int(workers))
    chunks = max(1, min(workers, count // max(min_chunk, 1)))
    if chunks == 1:
        launch(kernel, count, [0, count, *inputs], device)
        return
    # More ranges than threads balances uneven work (tiles with many triangles); each range is contiguous.
    pieces = max(chunks, min(count // max(min_piece, 1), chunks * 4))
    bounds = [count * k // pieces for k in range(pieces + 1)]
    jobs = [(bounds[k + 1] - bounds[k], [bounds[k], bounds[k + 1], *inputs])
            for k in range(pieces) if bounds[k + 1] > bounds[k]]
    _SharedRanges(kernel, jobs, dev).run(chunks - 1)


def launch_partitioned(kernel, count: int, inputs_for_part, parts: int, device: torch.device) -> None:
    """Launch ``kernel`` over ``count`` items cut into ``parts`` contiguous ranges, run by up to ``parts``
    threads (the caller included).

    ``inputs_for_part(k)`` returns the inputs (after ``offset, end``) of part ``k``, so each part can write
    to private buffers (a kernel with atomics then needs no cross-thread atomics; the caller reduces). One
    part is one :func:`launch` (on CUDA, on PyTorch's current stream).
    """
    if parts <= 1:
        launch(kernel, count, [0, count, *inputs_for_part(0)], device)
        return
    ensure_init()
    if device.type == "cpu":
        _threads.prepare_cpu()
    dev = warp_device(device)
    announce_compile(kernel, dev)
    bounds = [count * k // parts for k in range(parts + 1)]
    jobs = [(bounds[k + 1] - bounds[k], [bounds[k], bounds[k + 1], *inputs_for_part(k)])
            for k in range(parts) if bounds[k + 1] > bounds[k]]
    _SharedRanges(kernel, jobs, dev).run(min(num_workers(), len(jobs)) - 1)


def launch(kernel, count: int, inputs: Sequence, device: torch.device) -> None:
    """Launch ``kernel`` over ``count`` items as one launch (for kernels that use atomics)."""
    ensure_init()
    if count <= 0:
        return
    dev = warp_device(device)
    announce_compile(kernel, dev)
    if device.type == "cuda":
        stream = wp.stream_from_torch(torch.cuda.current_stream(device))
        wp.launch(kernel, dim=count, inputs=list(inputs), device=dev, stream=stream)
    else:
        _threads.prepare_cpu()
        wp.launch(kernel, dim=count, inputs=list(inputs), device=dev)
