#!/usr/bin/env python3
"""One-shot check of lumigrad on a CUDA machine: environment, the ``cuda`` tests, benchmarks, raw timings.

Run it as ``./dev gpu-check [--out DIR] [--quick]`` (no virtual environment is set up for it: the machine's own
``python3`` runs it, with ``src`` and ``$LUMIGRAD_WHEEL_SITE`` on ``PYTHONPATH``). Stages, each bounded in time
and each followed by a rewrite of the summary, so that a kill at any point still leaves one:

1. environment: GPU, driver, CUDA runtime, torch / warp / python versions, SM count, memory, ``warp.init()``;
2. tests: ``python -m pytest -m cuda ... tests`` (JUnit XML parsed into passed / failed / skipped lists);
3. bench: ``lumigrad bench all --device cuda`` at each ``--sizes`` (one process per size);
4. raw: rasterize a ~1M-triangle sphere at 1024^2 (forward, and forward + backward through interpolate and
   antialias), median of 5 after a warm-up, synchronised, with peak memory and face-id agreement with the CPU;
5. bench on the CPU at 256^2 for the CPU / GPU ratio.

Outputs under ``--out`` (default ``gpu-check-out/``): ``gpu_check.json``, ``gpu_check.md`` (printed at the
end), ``junit.xml``, ``bench_*.json`` and one log per stage. Exit code 0 when every stage ran and every test
passed, 1 when something failed or timed out, 2 when torch or warp cannot be imported or CUDA is unavailable.

Only the standard library is imported here; torch, warp and lumigrad are imported in child processes (this
file run with ``--worker``), so a hang or crash in CUDA cannot take the summary with it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESERVE_S = 8.0        # kept back from every stage's timeout for writing the summary
MIN_STAGE_S = 15.0     # a stage that would get less than this is skipped
LOG_TAIL_LINES = 40
FAILURE_LINES = 30

# stage -> (cap in seconds for the full run, cap for --quick); the overall --budget bounds them all
CAPS = {"environment": (60, 60), "tests": (260, 150), "bench": (110, 50), "raw": (70, 40), "bench_cpu": (60, 30),
        "scripts": (90, 45)}

#: Benchmark scripts run on the device after the built-in benchmarks (stdout kept as <name>.log): host syncs
#: of a frame, and the path tracer's time and memory by depth (lumigrad's rows only: Mitsuba's, on the CPU,
#: would take minutes of the stage's 90 s cap).
SCRIPTS = {"frame_syncs": ["benchmarks/frame_syncs.py", "--device", "{device}", "--size", "256", "1024"],
           "pathtrace": ["benchmarks/pathtrace.py", "--device", "{device}", "--size", "256", "--spp", "16",
                         "--depths", "2", "8", "--repeats", "2", "--no-mitsuba"]}

_current_child: list = [None]
_state: dict = {}


# ============================================================================================ utilities
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _child_env(extra: dict | None = None) -> dict:
    """The environment of every child: ``$LUMIGRAD_WHEEL_SITE`` (if it is a folder) and ``src`` first on
    PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    paths = []
    site = env.get("LUMIGRAD_WHEEL_SITE")
    if site and Path(site).is_dir():
        paths.append(str(Path(site).resolve()))
    paths.append(str(ROOT / "src"))
    paths += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    seen, ordered = set(), []
    for p in paths:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            ordered.append(p)
    env["PYTHONPATH"] = os.pathsep.join(ordered)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _run(cmd: list, timeout: float, log: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` in its own session with output appended to ``log``; kill the whole group on timeout."""
    start = time.monotonic()
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(shlex.quote(str(c)) for c in cmd)}   (timeout {timeout:.0f} s, {_now()})\n"
                 .encode())
        fh.flush()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env or _child_env(), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _current_child[0] = proc
        timed_out = False
        try:
            rc = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            rc = proc.returncode
        finally:
            _current_child[0] = None
        fh.write(f"[exit {rc}{', timed out' if timed_out else ''} after {time.monotonic() - start:.1f} s]\n".encode())
    return {"rc": rc, "timed_out": timed_out, "seconds": round(time.monotonic() - start, 2)}


def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM then SIGKILL to the process group this script started for ``proc``."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _py() -> list:
    return [sys.executable]


def _worker(kind: str, out_json: Path, args: argparse.Namespace, device: str, timeout: float, log: Path) -> dict:
    """Run this file as ``--worker kind`` and return ``{"run": ..., "result": json or None}``."""
    cmd = _py() + [str(Path(__file__).resolve()), "--worker", kind, "--result", str(out_json), "--device", device,
                   "--raw-faces", str(args.raw_faces), "--raw-size", str(args.raw_size), "--repeats",
                   str(args.repeats)]
    try:
        out_json.unlink()
    except OSError:
        pass
    run = _run(cmd, timeout, log)
    result = None
    if out_json.is_file():
        try:
            result = json.loads(out_json.read_text())
        except ValueError:
            result = None
    return {"run": run, "result": result}


# ============================================================================================ workers
def _write_json(path: Path, doc) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def worker_environment(result: Path, device: str) -> int:
    """Collect versions and device facts; written to ``result`` step by step (a crash keeps what was found)."""
    import contextlib
    import io

    info: dict = {"python": sys.version.split()[0], "python_executable": sys.executable,
                  "platform": platform.platform(), "cpu_count": os.cpu_count(),
                  "pythonpath": os.environ.get("PYTHONPATH", ""),
                  "wheel_site": os.environ.get("LUMIGRAD_WHEEL_SITE", "")}
    _write_json(result, info)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = (smi.stdout or smi.stderr).strip()
        full = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi_full"] = full.stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    _write_json(result, info)
    try:
        import torch
    except BaseException as exc:  # noqa: BLE001 - any import failure is the answer
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
        _write_json(result, info)
        return 0
    info["torch"] = torch.__version__
    info["torch_cuda_runtime"] = torch.version.cuda
    try:
        info["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:  # noqa: BLE001
        info["cudnn"] = f"unavailable: {exc}"
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["torch_threads"] = torch.get_num_threads()
    if info["cuda_available"]:
        info["cuda_device_count"] = torch.cuda.device_count()
        p = torch.cuda.get_device_properties(0)
        info["gpu_name"] = p.name
        info["compute_capability"] = f"{p.major}.{p.minor}"
        info["sm_count"] = p.multi_processor_count
        info["gpu_memory_gib"] = round(p.total_memory / 2 ** 30, 2)
        try:
            free, total = torch.cuda.mem_get_info(0)
            info["gpu_memory_free_gib"] = round(free / 2 ** 30, 2)
        except Exception:  # noqa: BLE001
            pass
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    _write_json(result, info)
    try:
        import warp as wp
    except BaseException as exc:  # noqa: BLE001
        info["warp_error"] = f"{type(exc).__name__}: {exc}"
        _write_json(result, info)
        return 0
    info["warp"] = wp.__version__
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            wp.init()
        info["warp_init"] = buf.getvalue().strip()
        info["warp_cuda_driver"] = ".".join(map(str, wp.get_cuda_driver_version() or ())) or None
        info["warp_cuda_toolkit"] = ".".join(map(str, wp.get_cuda_toolkit_version() or ())) or None
        info["warp_devices"] = [str(d) for d in wp.get_devices()]
        if wp.get_cuda_device_count() > 0:
            d = wp.get_cuda_device(0)
            info["warp_cuda_device"] = {"name": d.name, "arch": d.arch, "sm_count": d.sm_count,
                                        "total_memory_gib": round(d.total_memory / 2 ** 30, 2)}
        info["warp_kernel_cache"] = wp.config.kernel_cache_dir
    except BaseException as exc:  # noqa: BLE001
        info["warp_init"] = buf.getvalue().strip()
        info["warp_init_error"] = f"{type(exc).__name__}: {exc}"
    _write_json(result, info)
    try:
        import lumigrad

        info["lumigrad"] = lumigrad.__version__
        info["lumigrad_path"] = str(Path(lumigrad.__file__).parent)
    except BaseException as exc:  # noqa: BLE001
        info["lumigrad_error"] = f"{type(exc).__name__}: {exc}"
    try:
        from importlib import metadata

        info["packages"] = {}
        for name in ("numpy", "pillow", "pytest", "pytest-timeout", "hypothesis", "tqdm", "matplotlib", "pyyaml"):
            try:
                info["packages"][name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                info["packages"][name] = None
    except Exception:  # noqa: BLE001
        pass
    _write_json(result, info)
    return 0


def _sphere(num_faces: int, device):
    """A closed UV sphere with about ``num_faces`` triangles (``2 * slices * (stacks - 1)``), bumped a little."""
    import math

    import torch

    stacks = max(3, int(round(math.sqrt(num_faces / 4.0))))
    slices = 2 * stacks
    theta = torch.arange(1, stacks, dtype=torch.float64) * math.pi / stacks
    phi = torch.arange(slices, dtype=torch.float64) * 2 * math.pi / slices
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    r = 1.0 + 0.03 * torch.sin(7 * t) * torch.cos(5 * p)
    ring = torch.stack([r * torch.sin(t) * torch.cos(p), r * torch.cos(t), r * torch.sin(t) * torch.sin(p)], -1)
    verts = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring.reshape(-1, 3),
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)])
    last = verts.shape[0] - 1
    j = torch.arange(slices)
    jn = (j + 1) % slices
    idx = lambda i, jj: 1 + (i - 1) * slices + jj  # noqa: E731
    faces = [torch.stack([torch.zeros_like(j), idx(1, jn), idx(1, j)], -1)]
    i = torch.arange(1, stacks - 1)[:, None]
    a, b, c, d = idx(i, j), idx(i, jn), idx(i + 1, j), idx(i + 1, jn)
    faces.append(torch.stack([a, b, c], -1).reshape(-1, 3))
    faces.append(torch.stack([b, d, c], -1).reshape(-1, 3))
    faces.append(torch.stack([torch.full_like(j, last), idx(stacks - 1, j), idx(stacks - 1, jn)], -1))
    return verts.float().to(device), torch.cat(faces).to(device)


def worker_raw(result: Path, device: str, num_faces: int, size: int, repeats: int) -> int:
    """Rasterize a big sphere: forward (no grad) and forward + backward (interpolate + antialias), median ms."""
    import statistics

    import torch

    import lumigrad as lg

    dev = torch.device(device)
    out: dict = {"device": device, "size": size, "repeats": repeats}
    _write_json(result, out)
    t0 = time.perf_counter()
    verts, faces = _sphere(num_faces, dev)
    out.update(faces=int(faces.shape[0]), verts=int(verts.shape[0]), build_s=round(time.perf_counter() - t0, 3))
    cam = lg.Camera.look_at([0.0, 0.4, -2.7], [0.0, 0.0, 0.0], fov_y=0.9, width=size, height=size).to(dev)
    colours = ((verts + 1) / 2).detach()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn, warmup=2):
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        return round(statistics.median(times), 3), [round(x, 3) for x in times]

    def forward():
        with torch.no_grad():
            return lg.rasterize(verts, faces, cam)

    def forward_backward():
        v = verts.detach().requires_grad_(True)
        frags = lg.rasterize(v, faces, cam)
        image = lg.antialias(lg.interpolate(colours, frags, faces), frags, v, faces, cam)
        image.mean().backward()
        return v.grad

    t0 = time.perf_counter()
    frags = forward()
    sync()
    out["first_call_s"] = round(time.perf_counter() - t0, 3)  # includes kernel compilation / loading
    out["covered_pixels"] = int(frags.mask.sum())
    _write_json(result, out)
    out["rasterize_fwd_ms"], out["rasterize_fwd_all_ms"] = timed(forward)
    _write_json(result, out)
    forward_backward()
    out["raster_aa_fwd_bwd_ms"], out["raster_aa_fwd_bwd_all_ms"] = timed(forward_backward, warmup=1)
    _write_json(result, out)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        forward_backward()
        sync()
        out["raster_aa_fwd_bwd_peak_mib"] = round((torch.cuda.max_memory_allocated(dev) - base) / 2 ** 20, 1)
        _write_json(result, out)
    # the same frame on the CPU: how many pixels see another face
    t0 = time.perf_counter()
    cpu_frags = lg.rasterize(verts.cpu(), faces.cpu(), cam.to("cpu"))
    out["cpu_rasterize_s"] = round(time.perf_counter() - t0, 3)
    out["face_id_agreement_vs_cpu"] = round(float((cpu_frags.face_ids == frags.face_ids.cpu()).double().mean()), 6)
    _write_json(result, out)
    return 0


# ============================================================================================ stages
def _stage_timeout(name: str, args: argparse.Namespace, deadline: float) -> float:
    cap = CAPS[name][1 if args.quick else 0]
    return min(cap, deadline - time.monotonic() - RESERVE_S)


def stage_environment(args, out: Path, deadline: float, device: str) -> dict:
    timeout = _stage_timeout("environment", args, deadline)
    w = _worker("env", out / "environment.json", args, device, timeout, out / "environment.log")
    env = w["result"] or {}
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        if git.returncode == 0:
            env["git_commit"] = git.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                   timeout=10)
            env["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    if env.get("nvidia_smi_full"):
        (out / "nvidia-smi.txt").write_text(env["nvidia_smi_full"] + "\n")
    _state["environment"] = env
    run = w["run"]
    status = "ok" if run["rc"] == 0 and not run["timed_out"] else ("timeout" if run["timed_out"] else "failed")
    return {"status": status, "seconds": run["seconds"], "log": "environment.log",
            "note": "" if status == "ok" else _tail(out / "environment.log", 15)}


def _cuda_test_files() -> list:
    """Test files that mention the cuda marker (for --quick: saves collecting the whole suite)."""
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        try:
            if "mark.cuda" in path.read_text(errors="replace"):
                found.append(str(path.relative_to(ROOT)))
        except OSError:
            pass
    return found or ["tests"]


def _has_module(name: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({name!r}) else 1)"
    try:
        return subprocess.run(_py() + ["-c", code], env=_child_env(), timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def stage_tests(args, out: Path, deadline: float, device: str) -> dict:
    timeout = _stage_timeout("tests", args, deadline)
    notes = []
    if not _has_module("pytest"):
        _state["tests"] = {"error": "pytest is not importable"}
        return {"status": "failed", "seconds": 0.0, "note": "pytest is not importable (add it to the wheel site)"}
    junit = out / "junit.xml"
    try:
        junit.unlink()
    except OSError:
        pass
    targets = _cuda_test_files() if args.quick else ["tests"]
    cmd = _py() + ["-m", "pytest", "-m", "cuda", "-v", "--tb=short", "-p", "no:cacheprovider",
                   "--continue-on-collection-errors", f"--junitxml={junit}"]
    if _has_module("pytest_timeout"):
        per_test = int(min(300, max(60, timeout - 20)))
        cmd += ["--timeout", str(per_test)]
    else:
        notes.append("pytest-timeout is not installed: no per-test timeout")
    cmd += targets
    run = _run(cmd, timeout, out / "pytest.log")
    tests = _parse_junit(junit) if junit.is_file() else _parse_pytest_log(out / "pytest.log")
    tests["source"] = "junit.xml" if junit.is_file() else "pytest.log (no junit.xml: the run was cut short)"
    tests["rc"] = run["rc"]
    _state["tests"] = tests
    c = tests["counts"]
    if run["timed_out"]:
        status = "timeout"
    elif not c["failed"] and not c["errors"] and run["rc"] in (0, 1, 5):  # 1: only irrelevant collection errors
        status = "ok"
    else:
        status = "failed"
    if run["rc"] not in (0, 1, 5) and not run["timed_out"]:
        notes.append(f"pytest exit code {run['rc']}: " + _tail(out / "pytest.log", 10))
    return {"status": status, "seconds": run["seconds"], "log": "pytest.log", "note": "; ".join(notes),
            "command": " ".join(shlex.quote(str(x)) for x in cmd)}


def _case_id(case: ET.Element) -> str:
    cls, name = case.get("classname", ""), case.get("name", "")
    if not cls:
        return name
    parts = cls.split(".")
    # tests.cuda.test_x.TestClass -> tests/cuda/test_x.py::TestClass
    for k in range(len(parts), 0, -1):
        candidate = ROOT.joinpath(*parts[:k]).with_suffix(".py")
        if candidate.is_file():
            rest = parts[k:]
            return "::".join([str(candidate.relative_to(ROOT))] + rest + [name])
    return f"{cls}::{name}"


def _failure_text(el: ET.Element) -> dict:
    message = (el.get("message") or "").strip()
    text = (el.text or "").strip()
    return {"message": "\n".join(message.splitlines()[:FAILURE_LINES]),
            "traceback_tail": "\n".join(text.splitlines()[-FAILURE_LINES:])}


def _module_uses_cuda_marker(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split(".")).with_suffix(".py")
    try:
        return "mark.cuda" in path.read_text(errors="replace")
    except OSError:
        return True  # unknown: count it


def _parse_junit(path: Path) -> dict:
    """Passed / failed / errors / skipped test ids from JUnit XML. Collection errors are listed apart; they count
    as errors only for modules that use the cuda marker (a module that cannot be imported for want of an
    optional test package, e.g. hypothesis, has no cuda tests to lose)."""
    tests = {"passed": [], "failed": [], "errors": [], "skipped": [], "collection_errors": []}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        tests["parse_error"] = str(exc)
        root = None
    if root is not None:
        for case in root.iter("testcase"):
            cid = _case_id(case)
            failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
            if failure is not None:
                tests["failed"].append({"id": cid, **_failure_text(failure), "seconds": case.get("time")})
            elif error is not None and (error.get("message") or "").startswith("collection failure"):
                module = case.get("name", "")
                entry = {"id": cid, **_failure_text(error), "has_cuda_tests": _module_uses_cuda_marker(module)}
                tests["collection_errors"].append(entry)
                if entry["has_cuda_tests"]:
                    tests["errors"].append(entry)
            elif error is not None:
                tests["errors"].append({"id": cid, **_failure_text(error)})
            elif skipped is not None:
                tests["skipped"].append({"id": cid, "reason": (skipped.get("message") or "").strip()[:300]})
            else:
                tests["passed"].append(cid)
    tests["counts"] = {k: len(v) for k, v in tests.items() if isinstance(v, list)}
    return tests


_LOG_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def _parse_pytest_log(path: Path) -> dict:
    """Fallback when pytest was killed before writing JUnit: the ``-v`` lines written so far."""
    tests = {"passed": [], "failed": [], "errors": [], "skipped": []}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        m = _LOG_LINE.match(line)
        if not m:
            continue
        cid, what = m.groups()
        if what in ("PASSED", "XFAIL", "XPASS"):
            tests["passed"].append(cid)
        elif what == "FAILED":
            tests["failed"].append({"id": cid, "message": "(no details: the run was cut short)",
                                    "traceback_tail": ""})
        elif what == "ERROR":
            tests["errors"].append({"id": cid, "message": "(no details: the run was cut short)",
                                    "traceback_tail": ""})
        else:
            tests["skipped"].append({"id": cid, "reason": ""})
    tests["counts"] = {k: len(v) for k, v in tests.items()}
    return tests


_BENCH_SNIPPET = "import sys; from lumigrad.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _bench(args, out: Path, deadline: float, device: str, sizes: list, repeats: int, stage: str) -> dict:
    """``lumigrad bench all`` once per size (so that a timeout keeps the sizes already measured)."""
    budget = _stage_timeout(stage, args, deadline)
    end = time.monotonic() + budget
    rows, notes, header, seconds = [], [], {}, 0.0
    status = "ok"
    log = out / f"{stage}.log"
    for size in sizes:
        left = end - time.monotonic()
        if left < 5:
            notes.append(f"size {size}: skipped, stage time used up")
            status = "timeout"
            continue
        js = out / f"{stage}_{size}.json"
        cmd = _py() + ["-c", _BENCH_SNIPPET, "bench", "all", "--device", device, "--size", str(size), "--repeats",
                       str(repeats), "--json", str(js)]
        run = _run(cmd, left, log)
        seconds += run["seconds"]
        if run["timed_out"]:
            status = "timeout"
            notes.append(f"size {size}: timed out after {run['seconds']} s")
            continue
        if run["rc"] != 0 or not js.is_file():
            status = "failed"
            notes.append(f"size {size}: exit code {run['rc']}: " + _tail(log, 8))
            continue
        doc = json.loads(js.read_text())
        header = {k: v for k, v in doc.items() if k != "rows"}
        rows += doc.get("rows", [])
    merged = dict(header, rows=rows, sizes=sizes, device_requested=device)
    _write_json(out / f"{stage}.json", merged)
    _state.setdefault("bench", {})[stage] = merged
    return {"status": status, "seconds": round(seconds, 2), "log": log.name, "note": "; ".join(notes)}


def stage_raw(args, out: Path, deadline: float, device: str) -> dict:
    timeout = _stage_timeout("raw", args, deadline)
    w = _worker("raw", out / "raw.json", args, device, timeout, out / "raw.log")
    _state["raw"] = w["result"] or {}
    run = w["run"]
    status = "ok" if run["rc"] == 0 and not run["timed_out"] else ("timeout" if run["timed_out"] else "failed")
    return {"status": status, "seconds": run["seconds"], "log": "raw.log",
            "note": "" if status == "ok" else _tail(out / "raw.log", 12)}


def stage_scripts(args, out: Path, deadline: float, device: str) -> dict:
    """Each of :data:`SCRIPTS` with the stage's time split between them; their tables go into the summary."""
    timeout = _stage_timeout("scripts", args, deadline)
    results, end = {}, time.monotonic() + timeout
    for name, cmd in SCRIPTS.items():
        left = end - time.monotonic()
        if left < MIN_STAGE_S:
            results[name] = {"status": "skipped", "note": f"{left:.0f} s left"}
            continue
        run = _run(_py() + [c.format(device=device) for c in cmd], left, out / f"{name}.log")
        ok = run["rc"] == 0 and not run["timed_out"]
        results[name] = {"status": "ok" if ok else ("timeout" if run["timed_out"] else "failed"),
                         "seconds": run["seconds"], "output": _tail(out / f"{name}.log", 30)}
    _state["scripts"] = results
    bad = [k for k, v in results.items() if v["status"] != "ok"]
    return {"status": "ok" if not bad else "failed", "seconds": round(timeout - (end - time.monotonic()), 2),
            "note": ", ".join(f"{k}: {results[k]['status']}" for k in bad)}


# ============================================================================================ summary
def _md_table(header: list, rows: list) -> str:
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(x, digits=2) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return "" if x is None else str(x)


def _bench_rows(doc: dict) -> list:
    return [[r.get("name"), r.get("size"), r.get("faces"), _fmt(r.get("fwd_ms")), _fmt(r.get("fwd_bwd_ms")),
             _fmt(r.get("peak_mib"), 1)] for r in doc.get("rows", [])]


def _ratio_rows(gpu: dict, cpu: dict) -> list:
    by_key = {(r["name"], r["size"]): r for r in gpu.get("rows", [])}
    rows = []
    for r in cpu.get("rows", []):
        g = by_key.get((r["name"], r["size"]))
        if g and g.get("fwd_ms") and g.get("fwd_bwd_ms"):
            rows.append([r["name"], r["size"], _fmt(r["fwd_ms"]), _fmt(g["fwd_ms"]), _fmt(r["fwd_ms"] / g["fwd_ms"], 1),
                         _fmt(r["fwd_bwd_ms"]), _fmt(g["fwd_bwd_ms"]), _fmt(r["fwd_bwd_ms"] / g["fwd_bwd_ms"], 1)])
    return rows


def render_markdown(summary: dict) -> str:
    env = summary.get("environment", {})
    lines = ["# lumigrad GPU check", "",
             f"- status: **{summary['status']}**" + (f" ({summary['reason']})" if summary.get("reason") else ""),
             f"- started {summary['started']}, {summary['elapsed_s']:.0f} s of a {summary['budget_s']:.0f} s budget"
             + ("" if summary.get("finished") else " (still running or cut short)"),
             f"- device under test: `{summary['device']}`; command: `{summary['command']}`", ""]
    lines += ["## Environment", ""]
    keys = [("GPU", "gpu_name"), ("compute capability", "compute_capability"), ("SMs", "sm_count"),
            ("GPU memory GiB", "gpu_memory_gib"), ("nvidia-smi", "nvidia_smi"), ("CUDA driver (warp)", "warp_cuda_driver"),
            ("CUDA runtime (torch)", "torch_cuda_runtime"), ("CUDA toolkit (warp NVRTC)", "warp_cuda_toolkit"),
            ("cuDNN", "cudnn"), ("torch", "torch"), ("warp", "warp"), ("lumigrad", "lumigrad"), ("python", "python"),
            ("platform", "platform"), ("CPUs", "cpu_count"), ("git", "git_commit"), ("git dirty", "git_dirty"),
            ("TF32 matmul / cuDNN", None), ("PYTHONPATH", "pythonpath"), ("packages", "packages")]
    rows = []
    for label, key in keys:
        value = f"{env.get('tf32_matmul')} / {env.get('tf32_cudnn')}" if key is None else env.get(key)
        if value not in (None, "", "None / None"):
            rows.append([label, value if not isinstance(value, dict) else
                         ", ".join(f"{k} {v}" for k, v in value.items())])
    for key in ("torch_error", "warp_error", "warp_init_error", "lumigrad_error"):
        if env.get(key):
            rows.append([f"**{key}**", env[key]])
    lines += [_md_table(["what", "value"], rows) if rows else "(nothing recorded)", ""]
    if env.get("warp_init"):
        lines += ["`warp.init()`:", "", "```", env["warp_init"], "```", ""]
    lines += ["## Stages", ""]
    lines += [_md_table(["stage", "status", "seconds", "note"],
                        [[k, v.get("status"), v.get("seconds", ""), (v.get("note") or "")[:400]]
                         for k, v in summary["stages"].items()]), ""]
    tests = summary.get("tests")
    if tests and "counts" in tests:
        c = tests["counts"]
        lines += ["## Tests (`pytest -m cuda`)", "",
                  f"{c['passed']} passed, {c['failed']} failed, {c['errors']} errors, {c['skipped']} skipped "
                  f"(from {tests.get('source')})", ""]
        for kind in ("failed", "errors"):
            for f in tests[kind]:
                lines += [f"### {'FAILED' if kind == 'failed' else 'ERROR'} `{f['id']}`", "", "```",
                          f.get("message", ""), "```"]
                if f.get("traceback_tail"):
                    tail = "\n".join(f["traceback_tail"].splitlines()[-15:])
                    lines += ["<details><summary>traceback (end)</summary>", "", "```", tail, "```", "</details>"]
                lines.append("")
        irrelevant = [e for e in tests.get("collection_errors", []) if not e.get("has_cuda_tests")]
        if irrelevant:
            lines += [f"Modules without cuda tests that could not be collected ({len(irrelevant)}, not counted): "
                      + "; ".join(f"`{e['id']}`: {e['traceback_tail'].splitlines()[-1] if e['traceback_tail'] else ''}"
                                  for e in irrelevant), ""]
        if tests["skipped"]:
            reasons: dict = {}
            for s in tests["skipped"]:
                reasons[s["reason"] or "(no reason)"] = reasons.get(s["reason"] or "(no reason)", 0) + 1
            lines += ["Skipped: " + "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])),
                      ""]
    elif tests:
        lines += ["## Tests", "", f"not run: {tests.get('error')}", ""]
    bench = summary.get("bench", {})
    head = ["name", "size", "faces", "median ms fwd", "median ms fwd+bwd", "peak MiB"]
    for stage, title in (("bench", "Benchmarks (`lumigrad bench all`)"), ("bench_cpu", "Benchmarks on the CPU")):
        doc = bench.get(stage)
        if doc and doc.get("rows"):
            lines += [f"## {title}", "", f"device: {doc.get('device', doc.get('device_requested'))}, torch "
                      f"{doc.get('torch')}, lumigrad {doc.get('lumigrad')}, repeats {doc.get('repeats')}", "",
                      _md_table(head, _bench_rows(doc)), ""]
    if bench.get("bench") and bench.get("bench_cpu"):
        ratio = _ratio_rows(bench["bench"], bench["bench_cpu"])
        if ratio:
            lines += ["## CPU / GPU", "", _md_table(["name", "size", "CPU ms fwd", "GPU ms fwd", "x fwd",
                                                      "CPU ms fwd+bwd", "GPU ms fwd+bwd", "x fwd+bwd"], ratio), ""]
    raw = summary.get("raw")
    if raw:
        lines += ["## Raw timings", "",
                  f"UV sphere, {raw.get('faces', '?')} triangles at {raw.get('size')}^2 on `{raw.get('device')}`, median "
                  f"of {raw.get('repeats')} after a warm-up (synchronised):", ""]
        items = [("rasterize forward (no grad), ms", "rasterize_fwd_ms"),
                 ("rasterize + interpolate + antialias, forward + backward, ms", "raster_aa_fwd_bwd_ms"),
                 ("peak MiB of forward + backward", "raster_aa_fwd_bwd_peak_mib"),
                 ("covered pixels", "covered_pixels"), ("first call (incl. kernel load / compile), s", "first_call_s"),
                 ("face-id agreement with the CPU", "face_id_agreement_vs_cpu"), ("CPU rasterize, s", "cpu_rasterize_s")]
        lines += [_md_table(["what", "value"], [[k, raw[v]] for k, v in items if v in raw]), ""]
    for name, result in (summary.get("scripts") or {}).items():
        lines += [f"## `{' '.join(SCRIPTS[name][:1])}` ({result['status']})", "", "```",
                  result.get("output") or result.get("note", ""), "```", ""]
    lines += ["## Files", "", ", ".join(f"`{p}`" for p in summary.get("files", [])), ""]
    return "\n".join(lines)


def write_summary(summary: dict, out: Path) -> None:
    summary["elapsed_s"] = round(time.monotonic() - summary["_t0"], 1)
    summary["environment"] = _state.get("environment", {})
    summary["tests"] = _state.get("tests")
    summary["bench"] = _state.get("bench", {})
    summary["raw"] = _state.get("raw")
    summary["scripts"] = _state.get("scripts")
    try:
        summary["files"] = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    except OSError:
        summary["files"] = []
    doc = {k: v for k, v in summary.items() if not k.startswith("_")}
    try:
        _write_json(out / "gpu_check.json", doc)
        md = out / "gpu_check.md"
        tmp = md.with_name(md.name + ".tmp")
        tmp.write_text(render_markdown(doc) + "\n")
        os.replace(tmp, md)
    except Exception as exc:  # noqa: BLE001 - the summary must never be what stops the run
        print(f"gpu-check: could not write the summary: {exc}", file=sys.stderr)


# ============================================================================================ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./dev gpu-check", description=(
        "Check lumigrad on a CUDA machine in one bounded run: environment, `pytest -m cuda`, `lumigrad bench` on "
        "CUDA and the CPU, raw raster timings. Writes OUT/gpu_check.json and OUT/gpu_check.md."))
    p.add_argument("--out", type=Path, default=Path("gpu-check-out"), help="output folder (default: gpu-check-out)")
    p.add_argument("--quick", action="store_true",
                   help="shorter run: only the test files that use the cuda marker, bench at 256 only with 3 repeats, "
                        "the raw timing on 250k triangles at 512^2; default budget 240 s")
    p.add_argument("--budget", type=float, default=None, help="total wall-clock seconds (default 420, --quick 240)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                   help="bench image sizes on the GPU (default 256 512 1024; --quick 256)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 5, --quick 3)")
    p.add_argument("--raw-faces", type=int, default=None,
                   help="triangles of the raw-timing sphere (default 1000000, --quick 250000)")
    p.add_argument("--raw-size", type=int, default=None, help="raw-timing image size (default 1024, --quick 512)")
    p.add_argument("--skip", nargs="+", default=[], choices=["tests", "bench", "raw", "bench_cpu", "scripts"],
                   help="stages to leave out")
    p.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)  # dry run of the plumbing on a CPU
    p.add_argument("--worker", choices=["env", "raw"], help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    return p


def _defaults(args: argparse.Namespace) -> None:
    q = args.quick
    args.budget = args.budget if args.budget is not None else (240.0 if q else 420.0)
    args.sizes = args.sizes or ([256] if q else [256, 512, 1024])
    args.repeats = args.repeats or (3 if q else 5)
    args.raw_faces = args.raw_faces or (250_000 if q else 1_000_000)
    args.raw_size = args.raw_size or (512 if q else 1024)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        _defaults(args)
        if args.worker == "env":
            return worker_environment(args.result, args.device)
        return worker_raw(args.result, args.device, args.raw_faces, args.raw_size, args.repeats)
    _defaults(args)
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    out.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.allow_cpu else "cuda"
    t0 = time.monotonic()
    deadline = t0 + args.budget
    summary = {"_t0": t0, "started": _now(), "finished": None, "budget_s": args.budget, "status": "running",
               "device": device, "command": " ".join(["./dev gpu-check"] + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
               "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "stages": {}}

    def on_signal(signum, frame):  # noqa: ARG001
        child = _current_child[0]
        if child is not None:
            _kill(child)
        summary["status"] = "killed"
        summary["reason"] = f"signal {signum} after {time.monotonic() - t0:.0f} s"
        write_summary(summary, out)
        print(f"gpu-check: killed by signal {signum}; partial summary in {out / 'gpu_check.md'}", file=sys.stderr)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    write_summary(summary, out)

    def stage(name, fn, *extra):
        left = deadline - time.monotonic() - RESERVE_S
        if left < MIN_STAGE_S:
            summary["stages"][name] = {"status": "skipped", "note": f"budget used up ({left:.0f} s left)"}
        else:
            summary["stages"][name] = {"status": "running"}
            write_summary(summary, out)
            try:
                summary["stages"][name] = fn(args, out, deadline, *extra)
            except Exception as exc:  # noqa: BLE001 - one stage's bug must not cost the others
                summary["stages"][name] = {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
        write_summary(summary, out)
        return summary["stages"][name]

    stage("environment", stage_environment, device)
    env = _state.get("environment", {})
    problem = None
    if "torch" not in env:
        problem = f"torch cannot be imported ({env.get('torch_error', 'no answer from the environment probe')})"
    elif "warp" not in env:
        problem = f"warp cannot be imported ({env.get('warp_error', 'no answer from the environment probe')})"
    elif env.get("warp_init_error"):
        problem = f"warp.init() failed ({env['warp_init_error']})"
    elif not env.get("cuda_available") and not args.allow_cpu:
        problem = (f"torch.cuda.is_available() is False (torch {env.get('torch')}, CUDA runtime "
                   f"{env.get('torch_cuda_runtime')}, nvidia-smi: {str(env.get('nvidia_smi', '?')).splitlines()[0][:120]})")
    if problem:
        summary.update(status="cannot run", reason=problem, finished=_now())
        write_summary(summary, out)
        print(f"gpu-check: cannot run: {problem}; summary in {out / 'gpu_check.md'}", file=sys.stderr)
        return 2

    if "tests" not in args.skip:
        stage("tests", stage_tests, device)
    if "bench" not in args.skip:
        stage("bench", lambda a, o, d: _bench(a, o, d, device, a.sizes, a.repeats, "bench"))
    if "raw" not in args.skip:
        stage("raw", stage_raw, device)
    if "bench_cpu" not in args.skip:
        cpu_size = 256 if 256 in args.sizes else min(args.sizes)
        stage("bench_cpu", lambda a, o, d: _bench(a, o, d, "cpu", [cpu_size], max(2, a.repeats - 2), "bench_cpu"))
    if "scripts" not in args.skip:
        stage("scripts", stage_scripts, device)

    tests = _state.get("tests") or {}
    failed = (tests.get("counts", {}).get("failed", 0) + tests.get("counts", {}).get("errors", 0)) if tests else 0
    bad = [k for k, v in summary["stages"].items() if v.get("status") not in ("ok",)]
    summary["status"] = "ok" if not bad and not failed else "problems"
    if bad or failed:
        summary["reason"] = ", ".join(([f"{failed} failing tests"] if failed else []) +
                                      [f"{k}: {summary['stages'][k]['status']}" for k in bad])
    summary["finished"] = _now()
    write_summary(summary, out)
    try:
        print((out / "gpu_check.md").read_text())
    except OSError:
        pass
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
