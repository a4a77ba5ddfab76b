"""Benchmark: lumigrad's speed on an idle and on a busy CPU, with its thread settings (``lumigrad.threads``).

For each background load (``--loads``, default ``0 1 N``: that many CPU-bound busy-loop processes beside
the measurement, N = the CPUs available) and each setting below, a fresh Python process measures:

* ``raster fwd``: the 128^2 raster pipeline of ``lumigrad bench raster`` (Spot, rasterize -> interpolate ->
  trilinear texture -> antialias) under ``torch.no_grad``;
* ``raster fwd+bwd``: the same plus ``backward`` of the mean pixel (gradients to the vertices and texture);
* ``fit step``: one optimisation step of ``examples/configs/inverse_materials.toml`` (6 views of 64^2, the
  step ``lumigrad fit`` runs; the WaterBottle comes from ``../shared/data``; skipped if it is missing).

Each figure is the median of ``--repeats`` calls after one warm-up; each process runs ``--rounds`` times per
load (the settings interleaved, their order rotated each round) and the table shows the median over rounds,
so the settings of one load are compared under the same conditions. Settings:

* ``default``: ``import lumigrad`` first, nothing set (the ``lumigrad`` command; OpenMP threads wait
  passively, PyTorch keeps its threads);
* ``default, torch first``: ``import torch`` before ``import lumigrad``, nothing set (OpenMP threads spin, so
  lumigrad sets PyTorch to 1 thread at its first kernel);
* ``1 thread``: ``lumigrad.set_num_threads(1)``;
* ``before``: the behaviour of lumigrad before ``lumigrad.threads``, reproduced with ``import torch`` first
  and ``lumigrad.set_num_threads(N)``: spinning OpenMP threads, PyTorch and the kernels at N threads each
  whatever the load (the split launches themselves are the new ones: the calling thread takes part).

The load is reported as the busy processes started, the 1-minute load average, and the CPU time other
processes (not this benchmark's) used per second during that load's measurements ("others"), read from
``/proc/stat``: on a shared machine "idle" is only as idle as the neighbours allow. The workers run without
``LUMIGRAD_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``
and ``KMP_BLOCKTIME``, whatever the calling shell has.

    .venv/bin/python benchmarks/threads.py                     # about 13 minutes on 2 cores
    .venv/bin/python benchmarks/threads.py --rounds 1 --no-fit  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "inverse_materials.toml"
SETTINGS = {
    "default": "import lumigrad first, nothing set",
    "default, torch first": "import torch first, nothing set",
    "1 thread": "lumigrad.set_num_threads(1)",
    "before": "torch first + set_num_threads(N): the old behaviour",
}
METRICS = ("raster_fwd_ms", "raster_fwd_bwd_ms", "fit_step_ms")
HEADERS = ("raster fwd ms", "raster fwd+bwd ms", "fit step ms")
BUSY_LOOP = "while True:\n    pass\n"
# Settings that would override the defaults being measured; removed from the workers' environment.
CLEARED = ("LUMIGRAD_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
           "KMP_BLOCKTIME")


# ------------------------------------------------------------------------------------- the worker process
def worker(setting: str, repeats: int, fit: bool, size: int) -> dict:
    """Runs in a fresh process: imports in the order ``setting`` asks, applies it, times the three cases."""
    if setting == "default":
        import lumigrad as lg
        import torch
    else:
        import torch
        import lumigrad as lg
    if setting == "1 thread":
        lg.set_num_threads(1)
    elif setting == "before":
        lg.set_num_threads(lg.threads.available_cpus())
    from lumigrad.app.benchmarking import raster_pipeline, time_call

    mesh = lg.data.load_spot()
    cam = lg.Camera.look_at(eye=[2.0, 0.5, 2.0], target=[0.0, 0.1, 0.0], fov_y=0.7, width=size, height=size)

    pipeline = raster_pipeline(mesh, cam)

    def fwd():
        with torch.no_grad():
            pipeline(mesh.verts, mesh.texture)

    def fwd_bwd():
        verts = mesh.verts.detach().requires_grad_(True)
        texture = mesh.texture.detach().requires_grad_(True)
        pipeline(verts, texture).mean().backward()

    out = {"raster_fwd_ms": statistics.median(time_call(fwd, repeats, warmup=1)) * 1e3,
           "raster_fwd_bwd_ms": statistics.median(time_call(fwd_bwd, repeats, warmup=1)) * 1e3}
    if fit:
        from lumigrad.fitting import build_problem, load_config
        from lumigrad.fitting.run import _groups, _logged_loss  # the step lumigrad fit runs (as benchmarks/fit.py)
        from lumigrad.optim import Fit

        config = load_config(CONFIG)
        problem = build_problem(config)
        config.fit.record_every = 10 ** 9
        fitter = Fit(_logged_loss(problem), _groups(problem), steps=10 ** 6, clip_spikes=config.fit.clip_spikes)
        fitter.steps_done = int(0.9 * config.fit.steps)

        def step():
            fitter.steps = fitter.steps_done + 1
            fitter.run()

        out["fit_step_ms"] = statistics.median(time_call(step, repeats, warmup=1)) * 1e3
    out["info"] = lg.threads.info()
    return out


# ------------------------------------------------------------------------------------- load measurement
def _cpu_busy_s() -> float:
    """Seconds of CPU time all processes have used since boot (``/proc/stat``; 0 where it does not exist)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system (idle iowait) irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


def run_one(setting: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", setting, "--repeats", str(args.repeats),
           "--size", str(args.size)] + ([] if args.fit else ["--no-fit"])
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {setting!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_load(busy: int, args: argparse.Namespace, settings: list) -> dict:
    """Starts ``busy`` busy-loop processes, runs every setting ``args.rounds`` times, stops them."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)
        t0, busy0, kids0, load0 = time.perf_counter(), _cpu_busy_s(), _children_cpu_s(), os.getloadavg()[0]
        results = {s: [] for s in settings}
        for r in range(args.rounds):
            order = settings[r % len(settings):] + settings[:r % len(settings)]
            for s in order:
                res = run_one(s, args)
                results[s].append(res)
                print(f"  busy={busy} round {r + 1}: {s:22s} "
                      + " ".join(f"{res[m]:8.1f}" for m in METRICS if m in res), flush=True)
        load1 = os.getloadavg()[0]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    wall = time.perf_counter() - t0
    others = max(0.0, (_cpu_busy_s() - busy0) - (_children_cpu_s() - kids0)) / wall
    return {"busy": busy, "loadavg": (load0, load1), "others": others, "results": results}


def table(levels: list, settings: list, fit: bool) -> str:
    metrics = [m for m in METRICS if fit or m != "fit_step_ms"]
    heads = [h for m, h in zip(METRICS, HEADERS) if m in metrics]
    base = {}
    lines = ["| setting | busy procs | load avg | others | " + " | ".join(heads) + " | slowdown vs 0 busy |",
             "|---|---:|---|---:|" + "---:|" * len(heads) + "---|"]
    for level in levels:
        for s in settings:
            med = {m: statistics.median(r[m] for r in level["results"][s]) for m in metrics}
            if level["busy"] == 0:
                base[s] = med
            slow = ", ".join(f"{med[m] / base[s][m]:.1f}x" for m in metrics) if s in base else "-"
            la = level["loadavg"]
            lines.append(f"| {s} | {level['busy']} | {la[0]:.1f}-{la[1]:.1f} | {level['others']:.2f} | "
                         + " | ".join(f"{med[m]:.1f}" for m in metrics) + f" | {slow} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, nargs="+", default=None, metavar="K",
                    help="busy-loop processes beside the measurement (default: 0 1 N, N = CPUs available)")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--rounds", type=int, default=3, help="processes per setting and load (default 3)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per process, after a warm-up (default 5)")
    ap.add_argument("--size", type=int, default=128, help="raster image side (default 128)")
    ap.add_argument("--no-fit", dest="fit", action="store_false", help="skip the inverse_materials fit step")
    ap.add_argument("--worker", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1 or args.size < 8:
        ap.error("--rounds and --repeats must be >= 1, --size >= 8")
    if args.fit and not CONFIG.exists():
        print(f"note: {CONFIG} is missing; no fit step")
        args.fit = False
    if args.fit and args.worker is None:
        data = (CONFIG.parent / "../../../shared/data/gltf-water-bottle").resolve()
        if not data.exists():
            print(f"note: the fit step needs {data} (the shared data folder); no fit step")
            args.fit = False
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats, args.fit, args.size)))
        return 0

    from lumigrad.app.benchmarking import cpu_model
    from lumigrad.threads import available_cpus

    cpus = available_cpus()
    loads = args.loads if args.loads is not None else sorted({0, 1, cpus})

    model = cpu_model()
    print(f"{cpus} CPUs available ({model}); loads {loads}; {args.rounds} rounds x {args.repeats} repeats")
    levels = []
    for busy in loads:
        levels.append(measure_load(busy, args, list(args.settings)))
    first = levels[0]["results"][args.settings[0]][0]["info"]
    print()
    print(table(levels, list(args.settings), args.fit))
    print(f"\n{args.size}^2 raster (Spot), inverse_materials fit step; median over {args.rounds} processes of the "
          f"median of {args.repeats} calls after a warm-up. 'others': CPU-seconds per second used by processes "
          f"other than this benchmark during that load's runs. 'default' in effect: {first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
