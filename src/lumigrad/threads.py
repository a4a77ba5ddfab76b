"""How many CPU threads lumigrad uses, and exactly what it does to PyTorch's and OpenMP's thread settings.

**The knob.** ``lumigrad.set_num_threads(n)`` (or the environment variable ``LUMIGRAD_NUM_THREADS=n``) runs
lumigrad's CPU kernels on ``n`` threads and sets PyTorch's intra-op pool to ``n`` threads as well. Without
it lumigrad chooses by itself (below). ``lumigrad.threads.info()`` says what is in effect and who chose it.

**Why.** lumigrad runs PyTorch ops and Warp kernels one after the other on the same cores. PyTorch's
intra-op pool is OpenMP (libgomp), whose worker threads by default *spin* for a while after every parallel
op, and every op waits until each of its threads has had a core. Beside other work, spinning threads take
cores from the threads doing the work, and a preempted team member stalls each op for a scheduler time
slice; lumigrad's kernel threads used to add to the crowd. On a 2-core machine shared with other processes,
the 128^2 raster forward took 155-435 ms instead of 8-24 ms and an ``inverse_materials`` fit step 1.7-4.5 s
instead of 0.1-0.3 s (``benchmarks/threads.py``; ``docs/benchmarks.md``, "Threads"). ``OMP_WAIT_POLICY=passive``
alone (OpenMP threads sleep instead of spinning) took the raster forward from 240 ms to 9 ms there; one
PyTorch thread does the same. The Warp kernels themselves were not slowed; the time went into PyTorch ops.

**What lumigrad does, and when** (each step only where you have not decided yourself):

1. *When* ``lumigrad`` *is imported, if no OpenMP runtime is loaded yet* (``import lumigrad`` before
   ``import torch``, as the ``lumigrad`` command does) *and* none of ``OMP_WAIT_POLICY``,
   ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME`` is set: it sets ``os.environ["OMP_WAIT_POLICY"] = "PASSIVE"`` before
   PyTorch loads OpenMP, so OpenMP threads sleep when idle. The variable stays set, so processes you start
   afterwards inherit it. Set ``OMP_WAIT_POLICY=active`` yourself to keep spinning threads. OpenMP reads the
   variable only when it loads, so this cannot be done once ``torch`` is imported.
2. *At the first lumigrad kernel launch on the CPU, once,* if you have not chosen PyTorch's thread count
   (neither ``OMP_NUM_THREADS`` nor ``MKL_NUM_THREADS`` is set, and ``torch.get_num_threads()`` is still
   PyTorch's own default, unchanged since lumigrad first loaded torch), it calls ``torch.set_num_threads``
   with: ``LUMIGRAD_NUM_THREADS`` if set; else **1** if OpenMP threads spin (step 1 could not apply); else
   the smaller of PyTorch's count and the CPUs this process may use (affinity mask and cgroup CPU quota;
   PyTorch's default ignores the quota). The change is logged at INFO level on the
   ``lumigrad.threads`` logger and shown by :func:`info`. It never changes afterwards on its own.
3. *Kernel threads, at every split launch:* ``set_num_threads(n)``, else ``LUMIGRAD_NUM_THREADS``, else the
   CPUs this process may use (affinity mask and cgroup CPU quota, at most 32) lowered to the CPUs other
   processes left free over the last 0.2 s (``/proc/stat`` minus this process's own CPU time; at least 1).
   Beside busy processes a launch is therefore not split: a helper thread must wait for a core and for the
   GIL to start its part, and splitting the 128^2 kernels over 2 threads beside about 2 busy cores made them
   1.3-4x slower than one thread. The calling thread works on its launch too and waits only for parts a
   helper has started, and a launch is not split below the smallest piece its kernel states worthwhile.

``set_num_threads(n)`` is an explicit request: it sets the kernel threads (used as they are, whatever the
load) *and* calls ``torch.set_num_threads(n)`` right away, whatever was set before; call
``torch.set_num_threads`` after it for a different PyTorch count (lumigrad then leaves that alone).
``set_num_threads(None)`` returns to the automatic choice: if the PyTorch count is still the one lumigrad
set, it is put back to what it was, and step 2 runs again at the next kernel launch. With spinning OpenMP
threads (step 1 did not apply) more than one PyTorch thread is slow on a busy machine whatever lumigrad
does, so ``set_num_threads(n > 1)`` then warns: set ``OMP_WAIT_POLICY=passive`` before starting Python.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import sys
import threading
import time
import warnings
from typing import Optional

__all__ = ["available_cpus", "get_num_threads", "info", "set_num_threads"]

ENV_VAR = "LUMIGRAD_NUM_THREADS"
MAX_THREADS = 1024  # refuse absurd requests (each kernel thread is an OS thread)
AUTO_CAP = 32  # automatic kernel threads: at most this many
_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_OPENMP_LIBS = ("libgomp", "libiomp", "libomp")

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- OpenMP wait policy (import time)
def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already in this process (it read its environment when it loaded)."""
    if "torch" in sys.modules:
        return True
    try:
        with open("/proc/self/maps") as f:
            return any(lib in line for line in f for lib in _OPENMP_LIBS)
    except OSError:  # not Linux: torch is the usual way OpenMP gets in
        return False


_OPENMP_WAS_LOADED = _openmp_loaded()
_PASSIVE_SET_HERE = False
if not _OPENMP_WAS_LOADED and not any(os.environ.get(k) for k in _WAIT_VARS):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _PASSIVE_SET_HERE = True
# What the OpenMP runtime saw (or, if it was loaded before lumigrad, most likely saw) when it loaded.
_WAIT_ENV = {k: os.environ.get(k) for k in _WAIT_VARS}

# torch is imported on first need (``import lumigrad`` and the ``lumigrad`` command's --help stay fast): when
# lumigrad's kernels load (:func:`record_torch_baseline`) or any function here needs it.
_TORCH_BASELINE: Optional[int] = None  # torch's count when lumigrad first loaded it (or at import, if loaded)


def _torch():
    """The ``torch`` module, imported now if need be; the first call records PyTorch's thread count."""
    global _TORCH_BASELINE
    import torch

    if _TORCH_BASELINE is None:
        _TORCH_BASELINE = torch.get_num_threads()
    return torch


def record_torch_baseline() -> None:
    """Remember PyTorch's thread count as lumigrad found it (once; later calls do nothing). Called when the
    kernel runtime loads, so a ``torch.set_num_threads`` of the user's after that counts as their choice."""
    _torch()


if _OPENMP_WAS_LOADED and "torch" in sys.modules:
    record_torch_baseline()  # torch came first: its count as it is now is the one the user left


def openmp_spins() -> bool:
    """Whether PyTorch's OpenMP threads spin-wait between ops (``OMP_WAIT_POLICY`` etc. as it loaded)."""
    policy = (_WAIT_ENV["OMP_WAIT_POLICY"] or "").strip().lower()
    if policy == "passive":
        return False
    if policy == "active":
        return True
    for key in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        if (_WAIT_ENV[key] or "").strip() == "0":
            return False
    return True


# ----------------------------------------------------------------------------------------- CPU counting
def _cgroup_cpu_limit() -> Optional[float]:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cfs_quota_us``), or None if unlimited."""
    limits = []
    try:
        with open("/proc/self/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, path = entry
        if controllers == "":  # cgroup v2: the quota may be set on this group or any ancestor
            parts = [p for p in path.split("/") if p]
            for depth in range(len(parts), -1, -1):
                base = "/sys/fs/cgroup/" + "/".join(parts[:depth])
                try:
                    with open(os.path.join(base, "cpu.max")) as f:
                        quota, period = (f.read().split() + ["100000"])[:2]
                except OSError:
                    continue
                if quota != "max" and float(period) > 0:
                    limits.append(float(quota) / float(period))
        elif "cpu" in controllers.split(","):  # cgroup v1
            for base in (f"/sys/fs/cgroup/{controllers}{path}", f"/sys/fs/cgroup/cpu{path}",
                         f"/sys/fs/cgroup/{controllers}", "/sys/fs/cgroup/cpu"):
                try:
                    with open(os.path.join(base, "cpu.cfs_quota_us")) as f:
                        quota = float(f.read())
                    with open(os.path.join(base, "cpu.cfs_period_us")) as f:
                        period = float(f.read())
                except (OSError, ValueError):
                    continue
                if quota > 0 and period > 0:
                    limits.append(quota / period)
                break
    return min(limits) if limits else None


def available_cpus() -> int:
    """The number of CPUs this process may use: its affinity mask, lowered by a cgroup CPU quota (rounded up).

    Example: on a 64-core machine inside a container limited to ``--cpus=2.5``, this is 3.
    """
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    limit = _recent_cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit - 1e-9)))
    return max(1, cpus)


#: Seconds a read cgroup quota is reused: reading it opens several files (about 0.1 ms), and every split kernel
#: launch asks (four times per raster frame); a quota changed while running takes effect within this time.
CGROUP_RECHECK_SECONDS = 1.0
_cgroup_reading = [float("-inf"), None]  # [time.monotonic() of the read, the limit]


def _recent_cgroup_cpu_limit() -> Optional[float]:
    """:func:`_cgroup_cpu_limit`, read again at most every ``CGROUP_RECHECK_SECONDS``."""
    now = time.monotonic()
    if now - _cgroup_reading[0] >= CGROUP_RECHECK_SECONDS:
        _cgroup_reading[:] = [now, _cgroup_cpu_limit()]
    return _cgroup_reading[1]


def _torch_default_candidates() -> set:
    """The counts PyTorch may choose by itself when ``OMP_NUM_THREADS`` is unset: physical cores or logical
    CPUs, of the whole machine or of the affinity mask (versions and platforms differ). Empty if unknown."""
    cpus = os.cpu_count()
    counts = {cpus} if cpus else set()
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if allowed:
        counts.add(len(allowed))
    root = "/sys/devices/system/cpu"
    try:
        cores, cores_allowed = set(), set()
        for name in os.listdir(root):
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            with open(f"{root}/{name}/topology/physical_package_id") as f:
                package = f.read().strip()
            with open(f"{root}/{name}/topology/core_id") as f:
                core = (package, f.read().strip())
            cores.add(core)
            if allowed is None or int(name[3:]) in allowed:
                cores_allowed.add(core)
        counts |= {len(cores), len(cores_allowed)}
    except (OSError, ValueError):
        pass
    return {c for c in counts if c}


# ------------------------------------------------------------------------------------------------ state
class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requested: Optional[int] = None  # set_num_threads(n)
        self.torch_set: Optional[int] = None  # what lumigrad last passed to torch.set_num_threads
        self.torch_before: Optional[int] = None  # torch's count before lumigrad first changed it
        self.torch_reason = "not changed by lumigrad"
        self.prepared = False  # step 2 done (or not needed)


_state = _State()
_TORCH_DEFAULTS = _torch_default_candidates()


def _check_count(value, name: str) -> int:
    """``value`` as an int in ``[1, MAX_THREADS]``, or TypeError / ValueError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer or None; got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive integer or None; got {type(value).__name__} {value!r}") from None
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{name} must be between 1 and {MAX_THREADS}; got {n}")
    return n


def _env_threads() -> Optional[int]:
    """``LUMIGRAD_NUM_THREADS`` as a count, None if unset or empty; ValueError naming it if malformed."""
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not text.isdigit():
        raise ValueError(f"{ENV_VAR} must be a positive integer; got {raw[:40]!r}")
    n = int(text)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{ENV_VAR} must be between 1 and {MAX_THREADS}; got {n}")
    return n


def kernel_threads() -> int:
    """Threads for one split CPU kernel launch: ``set_num_threads``, else ``LUMIGRAD_NUM_THREADS`` (read on
    every call), else :func:`available_cpus` capped at 32."""
    if _state.requested is not None:
        return _state.requested
    env = _env_threads()
    if env is not None:
        return env
    return min(available_cpus(), AUTO_CAP)


class _FreeCpus:
    """CPUs left free by other processes, measured over the last ``WINDOW`` seconds or more.

    From ``/proc/stat`` (CPU time all processes used) minus this process's own CPU time (``os.times``):
    ``free = available_cpus() - others``. Updated at most every ``WINDOW`` seconds, so one read of
    ``/proc/stat`` (tens of microseconds) per window. None until a first window has passed, or where
    ``/proc/stat`` does not exist.
    """

    WINDOW = 0.2

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.last: Optional[tuple] = None  # (clock time, all processes' busy CPU s, this process's CPU s)
        self.free: Optional[float] = None

    @staticmethod
    def _sample() -> Optional[tuple]:
        """(CPU seconds all processes used since boot, CPU seconds this process used), or None."""
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields[:3]) + sum(fields[5:8])) / _CLK_TCK  # user nice system, irq softirq steal
        t = os.times()
        return busy, t.user + t.system

    def get(self) -> Optional[float]:
        now = self.clock()
        if self.last is not None and now - self.last[0] < self.WINDOW:
            return self.free
        with self.lock:
            if self.last is not None and now - self.last[0] < self.WINDOW:
                return self.free
            sample = self._sample()
            if sample is None:
                return None
            if self.last is not None:
                others = max(0.0, (sample[0] - self.last[1]) - (sample[1] - self.last[2])) / (now - self.last[0])
                self.free = max(0.0, available_cpus() - others)
            self.last = (now, *sample)
            return self.free


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_free_cpus = _FreeCpus()


def launch_threads() -> int:
    """Threads for the next split CPU launch (the calling thread included).

    An explicit count (``set_num_threads`` or ``LUMIGRAD_NUM_THREADS``) is used as it is. The automatic
    count is the CPUs available, lowered to the CPUs other processes have left free over the last 0.2 s
    (rounded; at least 1): beside busy processes a launch is not split, because threads that wait for a
    core (and for Python's GIL, which each of them needs to start its part) cost more than they bring.
    """
    if _state.requested is not None:
        return _state.requested
    env = _env_threads()
    if env is not None:
        return env
    n = min(available_cpus(), AUTO_CAP)
    free = _free_cpus.get()
    if free is not None:
        n = max(1, min(n, int(free + 0.5)))
    return n


def long_launch_threads() -> int:
    """Threads for a CPU launch long enough (seconds: the fused path tracer's) that a helper thread waiting
    for a core costs nothing beside its share of the work: an explicit count as :func:`launch_threads`, else
    the CPUs available (at most ``AUTO_CAP``), busy or not. The launch's ranges are shared, so a helper that
    starts late only takes what is left."""
    return kernel_threads()


def get_num_threads() -> int:
    """The number of threads lumigrad's CPU kernels use: the count of :func:`set_num_threads`, else of
    ``LUMIGRAD_NUM_THREADS``, else the CPUs available (then fewer while other processes keep CPUs busy)."""
    return kernel_threads()


def _user_chose_torch() -> Optional[str]:
    """Why PyTorch's thread count is the user's choice, or None if it is still a default lumigrad may change."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(key):
            return f"{key} is set"
    current = _torch().get_num_threads()
    expected = _state.torch_set if _state.torch_set is not None else _TORCH_BASELINE
    if current != expected:
        return "torch.set_num_threads was called"
    if _state.torch_set is None and _TORCH_DEFAULTS and _TORCH_BASELINE not in _TORCH_DEFAULTS:
        return "torch.set_num_threads was called before lumigrad was imported"
    return None


def _set_torch(n: int, reason: str) -> None:
    if _state.torch_before is None:
        _state.torch_before = _torch().get_num_threads()
    if _torch().get_num_threads() != n:
        _torch().set_num_threads(n)
        _log.info("lumigrad set torch.set_num_threads(%d): %s", n, reason)
    _state.torch_set = n
    _state.torch_reason = reason


def prepare_cpu() -> None:
    """Step 2 of the module docstring: called by the kernel runtime before every CPU launch; acts once."""
    if _state.prepared:
        return
    with _state.lock:
        if _state.prepared:
            return
        try:
            if _user_chose_torch() is None:
                env = _env_threads()
                if env is not None:
                    _set_torch(env, f"{ENV_VAR}={env}")
                elif openmp_spins():
                    _set_torch(1, "OpenMP threads spin-wait (OMP_WAIT_POLICY was not passive when torch loaded)")
                else:
                    cpus = available_cpus()
                    if _torch().get_num_threads() > cpus:
                        _set_torch(cpus, f"only {cpus} CPUs are available to this process")
        finally:
            _state.prepared = True


def set_num_threads(n: Optional[int]) -> None:
    """Use ``n`` CPU threads for lumigrad's kernels and for PyTorch's intra-op pool; None: choose automatically.

    ``n`` overrides ``LUMIGRAD_NUM_THREADS``. It calls ``torch.set_num_threads(n)`` now (a process-wide
    setting); a later ``torch.set_num_threads`` of yours wins and lumigrad leaves it alone. With ``None``,
    kernel threads follow ``LUMIGRAD_NUM_THREADS`` or the CPUs available, and PyTorch's count, if it is still
    the one lumigrad set, goes back to its earlier value before lumigrad decides again at the next kernel
    launch. The whole policy is in the docstring of :mod:`lumigrad.threads`.

    Args:
        n: a positive integer (at most 1024), or None.

    Raises:
        TypeError: ``n`` is not an integer (``True``, ``2.0`` and ``"2"`` are refused).
        ValueError: ``n`` is below 1 or above 1024.

    Warns:
        RuntimeWarning: ``n > 1`` while PyTorch's OpenMP threads spin-wait (see the module docstring).

    Example:
        >>> import lumigrad, torch
        >>> lumigrad.set_num_threads(1)   # one thread for everything: reproducible timings, quiet machine
        >>> lumigrad.get_num_threads(), torch.get_num_threads()
        (1, 1)
    """
    with _state.lock:
        if n is None:
            _state.requested = None
            if _state.torch_set is not None and _torch().get_num_threads() == _state.torch_set:
                _torch().set_num_threads(_state.torch_before)
            _state.torch_set = None
            _state.torch_before = None
            _state.torch_reason = "not changed by lumigrad"
            _state.prepared = False
            return
        count = _check_count(n, "n")
        _state.requested = count
        _set_torch(count, f"lumigrad.set_num_threads({count})")
        _state.prepared = True
    if count > 1 and openmp_spins():
        warnings.warn(f"lumigrad.set_num_threads({count}) gives torch {count} threads whose OpenMP threads spin-wait "
                      "(torch was imported before lumigrad, OMP_WAIT_POLICY unset): on a busy machine that can be "
                      "many times slower than 1 thread. Set OMP_WAIT_POLICY=passive before starting Python.",
                      RuntimeWarning, stacklevel=2)


def info() -> dict:
    """What is in effect: kernel threads and their source, CPUs available, PyTorch's threads and who set them,
    and whether OpenMP threads spin. For bug reports and benchmark headers."""
    with _state.lock:
        if _state.requested is not None:
            source = "lumigrad.set_num_threads"
        elif os.environ.get(ENV_VAR, "").strip():
            source = ENV_VAR
        else:
            source = "automatic (CPUs available)"
        user = _user_chose_torch()
        # lumigrad's count still in effect (set after any environment variable was read: an explicit request)
        if _state.torch_set is not None and _torch().get_num_threads() == _state.torch_set:
            torch_source = f"lumigrad ({_state.torch_reason})"
        elif user is not None:
            torch_source = f"user ({user})"
        else:
            torch_source = "torch default" + ("" if _state.prepared else " (lumigrad decides at its first CPU kernel)")
        if _PASSIVE_SET_HERE:
            wait = "passive (OMP_WAIT_POLICY set by lumigrad before torch loaded)"
        elif openmp_spins():
            wait = "spinning (OMP_WAIT_POLICY was not passive when torch loaded)"
        else:
            wait = "passive (from the environment)"
        return {"kernel_threads": kernel_threads(), "kernel_threads_source": source,
                "available_cpus": available_cpus(), "torch_threads": _torch().get_num_threads(),
                "torch_threads_source": torch_source, "openmp_wait": wait}
