"""Benchmark: data-parallel ``lumigrad fit`` on 1 and 2 processes (one thread each), and the speed-up model.

For each config (default: reconstruction and camera calibration) the script starts ``torchrun`` with 1 and 2
processes (``OMP_NUM_THREADS=1``, gloo), times the median fit step at full resolution (render of the rank's
views, loss, backward, gradient all-reduce, optimiser step) and, alone, one all-reduce of the parameters'
gradient buffer. It also times one process with half the views per step, which splits a step into the part
that shards over processes (per view) and the part every process repeats (optimiser, parameter maps,
regularisers):

    t(v views) = v * c + f          c: seconds per view, f: fixed seconds per step

The model of docs/design.md ("Fits across processes") then predicts the step time on N processes,
``t_N = (V / N) * c + f + allreduce(N)``, and prints it beside the measurement for N = 2.

    ./dev bench scale
    ./dev bench scale --steps 8 examples/configs/reconstruction.toml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lumigrad.app.benchmarking import format_table

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_scale_worker.py")
DEFAULT = ("reconstruction.toml", "camera_calibration.yaml")
#: Ring all-reduce on N devices (docs/design.md): 2 (N - 1) messages of latency ALPHA, 2 (N - 1) / N of the
#: gradient bytes over a link of BETA bytes/s. NVLink-class figures, an assumption stated with the output.
ALPHA_S, BETA_BYTES_S = 20e-6, 100e9


def ring_allreduce_ms(n: int, nbytes: float) -> float:
    return 0.0 if n == 1 else (2 * (n - 1) * ALPHA_S + 2 * (n - 1) / n * nbytes / BETA_BYTES_S) * 1e3


def predicted_speedup(n: int, views: int, per_view_ms: float, fixed_ms: float, nbytes: float) -> float:
    """Step time on 1 process over the model's step time on n: ``(V/n) c + f + allreduce(n)``."""
    return (views * per_view_ms + fixed_ms) / (views / n * per_view_ms + fixed_ms + ring_allreduce_ms(n, nbytes))


def run(config: Path, nproc: int, steps: int, views_per_step: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, OMP_NUM_THREADS="1", LUMIGRAD_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   str(WORKER), str(config), str(out), str(steps), str(views_per_step)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(ROOT))
        if done.returncode != 0:
            raise RuntimeError(f"{config.name} on {nproc} process(es) failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def bench(config: Path, steps: int) -> dict:
    full = run(config, 1, steps, 0)
    views = full["views"]
    half = run(config, 1, steps, views // 2)
    two = run(config, 2, steps, 0)
    per_view = (full["step_ms"] - half["step_ms"]) / (views - views // 2)
    fixed = full["step_ms"] - views * per_view
    predicted = views / 2 * per_view + fixed + two["allreduce_ms"]
    return {"config": config.name, "views": views, "size": "x".join(map(str, full["size"])),
            "grad KiB": full["bytes"] / 1024, "1 proc ms": full["step_ms"], "2 procs ms": two["step_ms"],
            "speed-up": full["step_ms"] / two["step_ms"], "efficiency": full["step_ms"] / two["step_ms"] / 2,
            "ms/view": per_view, "fixed ms": fixed, "all-reduce ms": two["allreduce_ms"],
            "model 2 procs ms": predicted,
            "model S(4)": predicted_speedup(min(4, views), views, per_view, fixed, full["bytes"]),
            "model S(8)": predicted_speedup(min(8, views), views, per_view, fixed, full["bytes"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs (default: reconstruction, calibration)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per run (after 2 warm-up steps)")
    args = parser.parse_args(argv)
    configs = args.configs or [ROOT / "examples" / "configs" / name for name in DEFAULT]
    rows = [bench(path, args.steps) for path in configs]
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores, load average {load:.1f} at the end; gloo, one thread per process; "
          f"median of {args.steps} steps")
    print(format_table(rows, ["config", "views", "size", "grad KiB", "1 proc ms", "2 procs ms", "speed-up",
                              "efficiency", "ms/view", "fixed ms", "all-reduce ms", "model 2 procs ms",
                              "model S(4)", "model S(8)"]))
    print(f"model S(N): the same per-view and fixed costs on N devices, a ring all-reduce with {ALPHA_S * 1e6:.0f} "
          f"us latency per message and {BETA_BYTES_S / 1e9:.0f} GB/s links (docs/design.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
