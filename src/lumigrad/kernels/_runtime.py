"""Warp runtime glue: initialisation, torch <-> warp views, and multi-threaded CPU launches.

Everything above ``kernels/`` sees only torch tensors. Warp's CPU backend runs one launch on one thread but
releases the GIL, so :func:`launch_split` cuts a launch into contiguous ranges and runs them from a small
thread pool, one range per core. CUDA launches go out whole on the tensor's current stream. How many threads,
and what happens to PyTorch's own thread count at the first CPU launch, is decided in :mod:`lumigrad.threads`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import torch
import warp as wp

from .. import threads as _threads

_log = logging.getLogger(__name__)

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


#: Whether CPU launches replay a launch recorded once per (kernel, thread), with the arguments packed by
#: :func:`warp_launch` (False: every launch goes through ``wp.launch``; the benchmarks time both).
RECORDED_LAUNCHES = True


class _Unpacked(Exception):
    """An argument :func:`warp_launch` does not pack itself; that launch goes through ``wp.launch``."""


def _torch_dtype_of(scalar_type):
    return {wp.float32: torch.float32, wp.float64: torch.float64, wp.int32: torch.int32, wp.int64: torch.int64,
            wp.int8: torch.int8, wp.int16: torch.int16, wp.uint8: torch.uint8, wp.bool: torch.bool}.get(scalar_type)


@functools.lru_cache(maxsize=None)
def _array_descriptor_type():
    """Warp's array descriptor class (what ``wp.from_torch(t, return_ctype=True)`` returns)."""
    return type(wp.from_torch(torch.zeros(1), return_ctype=True))


def _array_packer(arg_type):
    """The packer of a ``wp.array`` parameter: a contiguous CPU torch tensor of the parameter's dtype (the trailing
    dims of a vector or matrix dtype included) or a ``wp.array`` of exactly its dtype, as Warp's array descriptor."""
    dtype, ndim = arg_type.dtype, arg_type.ndim
    scalar = getattr(dtype, "_wp_scalar_type_", dtype)
    torch_dtype = _torch_dtype_of(scalar)
    if torch_dtype is None:
        return None
    inner = tuple(getattr(dtype, "_shape_", ()))
    dims, itemsize = ndim + len(inner), ctypes.sizeof(scalar._type_)
    array_t = _array_descriptor_type()

    def pack(value):
        if type(value) is torch.Tensor:
            if (value.dtype is not torch_dtype or value.dim() != dims or value.device.type != "cpu"
                    or not value.is_contiguous() or (inner and tuple(value.shape[ndim:]) != inner)):
                raise _Unpacked
            return array_t(value.data_ptr(), 0, ndim, value.shape, [s * itemsize for s in value.stride()[:ndim]])
        if type(value) is wp.array and value.dtype is dtype and value.ndim == ndim and value.device.is_cpu:
            return value.__ctype__()
        raise _Unpacked

    return pack


_PACKED_SCALARS = (wp.bool, wp.int8, wp.uint8, wp.int16, wp.uint16, wp.int32, wp.uint32, wp.int64, wp.uint64,
                   wp.float32, wp.float64)


def _scalar_packer(arg_type):
    """The packer of a scalar parameter: the value ``wp.launch`` would convert (a Warp scalar of the parameter's
    type gives its ``.value``)."""
    if arg_type not in _PACKED_SCALARS:
        return None  # half floats, vectors, matrices (which also have a ``_type_``) and other types: wp.launch

    def pack(value):
        return value.value if type(value) is arg_type else value

    return pack


def _argument_packers(rec):
    """One packer per parameter of the recorded launch ``rec``, or None when a parameter is not one
    :func:`warp_launch` packs (structs, indexed arrays, half floats): that kernel then always goes through
    ``wp.launch``. An array parameter is one Warp packed as a plain array descriptor when recording."""
    packers = []
    for arg, packed in zip(rec.kernel.adj.args, rec.params[1:]):
        if wp.types.is_array(arg.type):
            packer = _array_packer(arg.type) if type(packed) is _array_descriptor_type() else None
        else:
            packer = _scalar_packer(arg.type)
        if packer is None:
            return None
        packers.append(packer)
    return packers


_packers: dict = {}  # concrete kernel -> its packers, or False
_recorded = threading.local()  # .launches: {kernel or (generic kernel, input dtypes): wp.Launch or False}


def warp_launch(kernel, count: int, inputs: Sequence, dev: str) -> None:
    """One Warp launch of ``kernel`` over ``count`` items on ``dev`` (a Warp device string); ``inputs`` may hold
    torch tensors (contiguous, of the parameter's dtype), ``wp.array`` s and scalars.

    On the CPU this replays a launch recorded once per (kernel, thread) (``wp.launch(..., record_cmd=True)``;
    a generic kernel once per overload) after setting its parameters from descriptors built here: Warp's own
    packing (``wp.from_torch``, ``pack_arg``) costs tens of microseconds a launch under the GIL, more than a small
    kernel runs. The kernel and its inputs are the same, so the results are bit-identical. Anything else (CUDA,
    an input of another type or dtype, a module reloaded since the recording) takes ``wp.launch``, which also
    raises its usual errors.
    """
    if not (dev == "cpu" and RECORDED_LAUNCHES and _replay_recorded(kernel, count, inputs, dev)):
        _warp_launch_unrecorded(kernel, count, inputs, dev)


_LAUNCH_INTERNALS = ("module_exec", "params", "bounds", "set_param_at_index_from_ctype", "set_dim", "launch")


def _has_launch_internals(rec, kernel, dev: str) -> bool:
    """Whether the recorded launch ``rec`` has what :func:`_replay_recorded` uses (checked once, on the first
    recording: a Warp release without them turns recording off for the process and keeps ``wp.launch``)."""
    global RECORDED_LAUNCHES, _INTERNALS_CHECKED
    if _INTERNALS_CHECKED:
        return True
    try:
        ok = all(hasattr(rec, name) for name in _LAUNCH_INTERNALS) and rec.module_exec is kernel.module.load(dev, 1)
    except (AttributeError, TypeError):  # Module.load of another signature
        ok = False
    if not ok:
        RECORDED_LAUNCHES = False
        _log.debug("recorded CPU launches off: Warp %s's recorded launches lack what they need", wp.__version__)
    _INTERNALS_CHECKED = True
    return ok


_INTERNALS_CHECKED = False
_record_lock = threading.Lock()


def _replay_recorded(kernel, count: int, inputs: Sequence, dev: str) -> bool:
    """Launch ``kernel`` by replaying this thread's recording of it (recorded now if need be); False when this
    launch must go through ``wp.launch`` instead (nothing was launched)."""
    launches = getattr(_recorded, "launches", None)
    if launches is None:
        launches = _recorded.launches = {}
    # a generic kernel: one recording per overload, which the arrays' dtypes and the scalars' types pick
    key = (kernel, tuple(getattr(v, "dtype", type(v)) for v in inputs)) if kernel.is_generic else kernel
    rec = launches.get(key)
    if rec is None or (rec is not False and rec.module_exec is not kernel.module.load(dev, 1)):  # recompiled
        with _record_lock:  # one thread at a time loads the module and records (threads racing to load it crashed)
            rec = wp.launch(kernel, dim=count, inputs=_as_warp_inputs(kernel, inputs), device=dev, record_cmd=True)
            if not _has_launch_internals(rec, kernel, dev):
                return False
            packers = _packers.get(rec.kernel)
            if packers is None:
                packers = _packers[rec.kernel] = _argument_packers(rec) or False
            launches[key] = rec = rec if packers else False
    if rec is False or len(inputs) != len(rec.kernel.adj.args):
        return False
    try:
        for i, (pack, v) in enumerate(zip(_packers[rec.kernel], inputs)):
            rec.set_param_at_index_from_ctype(i, pack(v))
    except (_Unpacked, TypeError, ValueError):  # an input packed otherwise: wp.launch converts it (or raises)
        return False
    if rec.bounds.size != count:
        rec.set_dim(count)
    rec.launch()
    return True


def _as_warp_inputs(kernel, inputs: Sequence) -> list:
    """``inputs`` with each torch tensor as a ``wp.array`` view; the trailing dims of a tensor given for an array
    of vectors or matrices become its elements."""
    args = kernel.adj.args
    out = []
    for i, v in enumerate(inputs):
        if isinstance(v, torch.Tensor):
            dtype = args[i].type.dtype if i < len(args) and wp.types.is_array(args[i].type) else None
            v = as_warp(v, dtype if hasattr(dtype, "_shape_") else None)
        out.append(v)
    return out


def _warp_launch_unrecorded(kernel, count: int, inputs: Sequence, dev: str, stream=None) -> None:
    wp.launch(kernel, dim=count, inputs=_as_warp_inputs(kernel, inputs), device=dev, stream=stream)


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
                warp_launch(self.kernel, dim, inputs, self.dev)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                with self.cond:
                    self.error = self.error or exc
            finally:
                with self.cond:
                    self.finished += 1
                    self.cond.notify_all()

    def run(self, helpers: int) -> None:
        module = getattr(self.kernel, "module", None)
        if helpers > 0 and module is not None:  # loaded here, by one thread: threads loading it at once crashed
            with _record_lock:
                module.load(self.dev, 1)
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
        _warp_launch_unrecorded(kernel, count, inputs, dev, wp.stream_from_torch(torch.cuda.current_stream(device)))
    else:
        _threads.prepare_cpu()
        warp_launch(kernel, count, inputs, dev)
