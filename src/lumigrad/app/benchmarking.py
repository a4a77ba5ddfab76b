"""Timing, peak-memory and table helpers shared by ``lumigrad bench`` and the scripts in ``benchmarks/``.

Timings are wall-clock seconds with CUDA synchronised before the clock is read, so asynchronous kernels are
counted; peak memory is the growth of ``torch.cuda.max_memory_allocated`` on CUDA and of the process's peak
resident set size on CPU (Linux ``/proc/self/status``), the one implementation the benchmarks use.
"""

from __future__ import annotations

import gc
import math
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

__all__ = ["compare_bench_rows", "format_comparison", "format_table", "peak_memory", "peak_rss_growth",
           "read_bench_json", "time_call"]

Device = Union[str, torch.device, None]


def _sync(device: Device) -> None:
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1, sync: Device = None,
              clock: str = "wall") -> List[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` timed times; return the seconds of each call.

    Args:
        fn: the callable to time, without arguments.
        repeats: number of timed calls, >= 1.
        warmup: untimed calls first (caches, allocator, kernel compilation), >= 0.
        sync: the device the work runs on; for a CUDA device the clock is read only after
            ``torch.cuda.synchronize``, so the asynchronous kernels are included. ``None`` or CPU: no sync.
        clock: ``"wall"`` (``time.perf_counter``) or ``"cpu"``: the process's CPU time (``time.process_time``,
            all its threads summed, waiting for a core not counted), which other processes on a busy machine
            disturb far less; it does not see GPU work.

    Returns:
        ``repeats`` durations in seconds (wall-clock, or CPU time with ``clock="cpu"``). Example:
        ``time_call(lambda: time.sleep(0.01), 3)`` gives three values a little above ``0.01``.

    Raises:
        ValueError: ``repeats < 1``, ``warmup < 0`` or another ``clock``.
    """
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1; got {repeats!r}")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0; got {warmup!r}")
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu'; got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        fn()
    _sync(sync)
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        _sync(sync)
        times.append(now() - t0)
    return times


def _proc_status(key: str) -> int:
    """``key`` (e.g. ``VmHWM``) from ``/proc/self/status``, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def peak_rss_growth(fn: Callable, *args, **kwargs) -> Tuple[object, int, bool]:
    """Measure how far a call pushes the process's peak resident set size (RSS).

    Reads ``VmHWM`` (peak RSS) from ``/proc/self/status``. It first tries to reset the peak to the current RSS
    by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0); then the result is ``VmHWM_after -
    VmRSS_before``: the peak extra physical memory (native allocations, JIT buffers, Python objects alike)
    touched during the call. If the reset is refused, it is ``max(0, VmHWM_after - VmHWM_before)``, only the
    growth beyond the process's earlier peak (a lower bound). Pages freed and re-used inside the call are not
    double-counted; memory-mapped files that are read count too; GPU memory is not included. Where
    ``/proc/self/status`` does not exist (not Linux) the growth is reported as 0 and not exact.

    Args:
        fn: the callable to measure; ``*args`` / ``**kwargs`` are passed to it.

    Returns:
        ``(result, growth_bytes, exact)``; ``exact`` is False when the peak could not be reset.
    """
    gc.collect()
    return _rss_growth_collected(fn, *args, **kwargs)


def _rss_growth_collected(fn: Callable, *args, **kwargs) -> Tuple[object, int, bool]:
    """:func:`peak_rss_growth` after its garbage collection (a full collection of a process holding PyTorch
    takes a good fraction of a second: a caller that has just collected does not collect twice)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        exact, before = True, _proc_status("VmRSS")
    except OSError:
        try:
            exact, before = False, _proc_status("VmHWM")
        except OSError:
            return fn(*args, **kwargs), 0, False
    result = fn(*args, **kwargs)
    return result, max(0, _proc_status("VmHWM") - before), exact


def peak_memory(fn: Callable[[], object], device: Device = None) -> Tuple[float, bool]:
    """Peak extra memory of one call of ``fn``, in MiB, and whether the figure is exact.

    Args:
        fn: the callable to measure, without arguments.
        device: where the work runs. CUDA: growth of ``torch.cuda.max_memory_allocated`` over the memory
            allocated before the call (tensors only, not the allocator's cache). CPU / ``None``: growth of the
            peak resident set size (:func:`peak_rss_growth`), after glibc's ``malloc_trim`` so that heap
            pages freed by earlier runs are not silently re-used.

    Returns:
        ``(MiB, exact)``; ``exact`` is False when only a lower bound could be measured (see
        :func:`peak_rss_growth`).
    """
    gc.collect()
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20, True
    _malloc_trim()
    _, grow, exact = _rss_growth_collected(fn)
    return grow / 2**20, exact


_libc = None


def _malloc_trim() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc only; a no-op elsewhere)."""
    global _libc
    try:
        import ctypes

        _libc = _libc or ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def format_table(rows: Sequence[dict], columns: Sequence[Union[str, Tuple[str, str]]],
                 digits: int = 2) -> str:
    """Format ``rows`` as a markdown table.

    Args:
        rows: one dict per line.
        columns: the keys to show, in order; a ``(key, title)`` pair gives the column another title.
        digits: decimals of float values; ``None`` (or a missing key) shows ``-``, NaN shows ``nan``.

    Returns:
        The table, one line per row after the title and separator lines. Example:
        ``format_table([{"a": 1, "b": 2.5}], ["a", ("b", "B")])`` is ``"| a | B |\\n|---|---|\\n| 1 | 2.50 |"``.

    Raises:
        ValueError: ``columns`` is empty.
    """
    if not columns:
        raise ValueError("columns must name at least one column")
    keys = [c[0] if isinstance(c, tuple) else c for c in columns]
    titles = [c[1] if isinstance(c, tuple) else c for c in columns]

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> Optional[float]:
    """The median of ``values`` (None for an empty sequence)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return model


def raster_pipeline(mesh, camera) -> Callable:
    """The benchmarked raster pipeline of a textured mesh: ``fn(verts, texture) -> [..., H, W, C]`` image
    (rasterize with barycentric derivatives, interpolate uv with derivatives, trilinear texture, antialias)."""
    from ..raster import antialias, interpolate, rasterize
    from ..raster import texture as sample

    def pipeline(verts: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        frags = rasterize(verts, mesh.faces, camera, return_bary_derivs=True)
        uv, duv = interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
        color = sample(texture, uv, uv_derivs=duv, mask=frags.mask)
        return antialias(color, frags, verts, mesh.faces, camera)

    return pipeline


#: The timed columns of ``lumigrad bench`` rows that ``--compare`` checks, with their table titles.
TIMED_METRICS = (("fwd_ms", "fwd"), ("fwd_bwd_ms", "fwd+bwd"))


def read_bench_json(path, what: str = "--compare") -> dict:
    """The document ``lumigrad bench --json`` wrote at ``path``, checked enough to be compared.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or no ``rows`` list of objects that each have a ``name`` and an integer
            ``size`` (the message names ``what`` and the path).
    """
    import json
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file (write one with lumigrad bench --json PATH)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{what} {path}: expected an object with a 'rows' list, as lumigrad bench --json writes")
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str) or \
                isinstance(row.get("size"), bool) or not isinstance(row.get("size"), int):
            raise ValueError(f"{what} {path}: rows[{k}] needs a string 'name' and an integer 'size'; got {row!r}")
    return doc


def compare_bench_rows(baseline: Sequence[dict], current: Sequence[dict], tolerance: float) -> dict:
    """Compare two ``lumigrad bench`` row lists case by case (a case is ``(name, size)``).

    Args:
        baseline: the rows of the reference run.
        current: the rows of the run under review.
        tolerance: a case is slower when ``current / baseline`` of any timed metric (:data:`TIMED_METRICS`)
            exceeds it; finite and ``>= 1``.

    Returns:
        dict with ``rows`` (one per case in both, in ``current``'s order: ``name``, ``size`` and for each
        metric ``<metric>_base``, ``<metric>_now``, ``<metric>_ratio``, ``None`` where a side lacks a positive
        finite value; ``slower``: whether any ratio exceeds ``tolerance``), ``slower`` (the ``(name, size)``
        cases past the tolerance), ``only_in_baseline`` and ``only_in_current`` (cases present on one side,
        listed, never failing). Example: baseline ``fwd_ms = 10``, current ``12.9`` and tolerance 1.25 give
        ratio 1.29 and the case in ``slower``.

    Raises:
        ValueError: a NaN, infinite or < 1 ``tolerance``.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
            or tolerance < 1:
        raise ValueError(f"tolerance must be a finite number >= 1 (1.25 = 25% slower allowed); got {tolerance!r}")

    def key(row):
        return row["name"], row["size"]

    def positive(value):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return float(value) if ok else None

    base = {key(r): r for r in baseline}
    now = {key(r): r for r in current}
    rows, slower = [], []
    for case, row in now.items():
        if case not in base:
            continue
        out = {"name": case[0], "size": case[1], "slower": False}
        for metric, _ in TIMED_METRICS:
            b, c = positive(base[case].get(metric)), positive(row.get(metric))
            ratio = c / b if b is not None and c is not None else None
            out.update({f"{metric}_base": b, f"{metric}_now": c, f"{metric}_ratio": ratio})
            out["slower"] |= ratio is not None and ratio > tolerance
        rows.append(out)
        if out["slower"]:
            slower.append(case)
    return {"rows": rows, "slower": slower, "only_in_baseline": [c for c in base if c not in now],
            "only_in_current": [c for c in now if c not in base]}


def format_comparison(result: dict, tolerance: float) -> str:
    """The table and the verdict lines of :func:`compare_bench_rows`'s ``result``, as ``lumigrad bench
    --compare`` prints them (times in ms, ratios current / baseline, ``SLOWER`` past ``tolerance``)."""
    columns = [("name", "name"), ("size", "size")]
    for metric, title in TIMED_METRICS:
        columns += [(f"{metric}_base", f"{title} base ms"), (f"{metric}_now", f"{title} now ms"),
                    (f"{metric}_ratio", f"{title} ratio")]
    columns.append(("verdict", "verdict"))
    rows = [dict(r, verdict="SLOWER" if r["slower"] else "ok") for r in result["rows"]]
    lines = [format_table(rows, columns)]
    for label, cases in (("only in the baseline (not compared)", result["only_in_baseline"]),
                         ("only in the current run (not compared)", result["only_in_current"])):
        if cases:
            lines.append(f"{label}: " + ", ".join(f"{name} {size}" for name, size in cases))
    if result["slower"]:
        lines.append(f"{len(result['slower'])} case(s) slower than {tolerance:g}x the baseline: "
                     + ", ".join(f"{name} {size}" for name, size in result["slower"]))
    else:
        lines.append(f"no case slower than {tolerance:g}x the baseline ({len(result['rows'])} compared)")
    return "\n".join(lines)
