"""Benchmark of the differentiable smoke of ``examples/18_smoke_from_video.py``: time per simulated + rendered
frame, forward and backward, and the peak memory of one forward + backward with and without checkpointing.

For each ``(frames, checkpoint_every)`` it runs the example's plume (``--grid``^3, ``--cameras`` cameras at
``--size`` px, one step and one render per camera per frame, mean squared error against the target video) and
reports the median of ``--repeats`` runs after one warm-up:

* ``fwd s/frame``: simulation + renders + loss, with the autograd graph (what a fit pays), per frame;
* ``bwd s/frame``: ``loss.backward()`` (with checkpointing: includes recomputing each segment), per frame;
* ``peak MiB``: growth of the peak RSS during one forward + backward
  (:func:`lumigrad.app.benchmarking.peak_memory`).

Usage::

    .venv/bin/python benchmarks/fluid.py                  # 24^3 grid, 2 x 48 px, 12 / 24 / 48 frames
    .venv/bin/python benchmarks/fluid.py --quick          # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import runpy
import time
from pathlib import Path

import lumigrad as lg  # noqa: F401  (before torch: lumigrad's thread settings)
import torch
from lumigrad.app.benchmarking import cpu_model, format_table, median, peak_memory

EXAMPLE = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "18_smoke_from_video.py"))

COLUMNS = [("frames", "frames"), ("ckpt", "checkpoint_every"), ("fwd", "fwd s/frame"), ("bwd", "bwd s/frame"),
           ("mem", "fwd+bwd peak MiB")]


def case(grid, frames, size, cameras, checkpoint_every):
    dx, source, dt, cams = EXAMPLE["smoke_setup"](grid, frames, size, cameras)
    sim = EXAMPLE["simulate_and_render"]
    with torch.no_grad():
        targets = sim(torch.tensor(EXAMPLE["TRUE_INFLOW"]), torch.tensor(EXAMPLE["TRUE_RATE"]), dx=dx,
                      source=source, dt=dt, cams=cams, frames=frames, checkpoint_every=0)
    v = torch.tensor(EXAMPLE["GUESS_INFLOW"], requires_grad=True)
    log_r = torch.tensor(math.log(EXAMPLE["GUESS_RATE"]), requires_grad=True)

    def run():
        t0 = time.perf_counter()
        loss = torch.stack(sim(v, log_r.exp(), dx=dx, source=source, dt=dt, cams=cams, frames=frames,
                               checkpoint_every=checkpoint_every, targets=targets)).mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        v.grad = log_r.grad = None
        return t1 - t0, t2 - t1

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=24)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 24, 48])
    parser.add_argument("--checkpoint-every", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="12^3 grid, 16 px, 4 / 8 frames, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.grid, args.size, args.frames, args.repeats = 12, 16, [4, 8], 1
    rows = []
    for frames in args.frames:
        for k in args.checkpoint_every:
            run = case(args.grid, frames, args.size, args.cameras, k)
            mem, exact = peak_memory(run)  # also the warm-up
            times = [run() for _ in range(args.repeats)]
            rows.append({"frames": frames, "ckpt": k if k else "off",
                         "fwd": median([t[0] for t in times]) / frames, "bwd": median([t[1] for t in times]) / frames,
                         "mem": mem if exact else f">= {mem:.0f}"})
            print(format_table(rows[-1:], COLUMNS, digits=3).splitlines()[-1], flush=True)
    print(f"\n{args.grid}^3 grid, {args.cameras} camera(s) at {args.size} px, median of {args.repeats}; "
          f"{cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__} {torch.get_num_threads()} threads, "
          f"{platform.system()}; load {os.getloadavg()[0]:.1f}\n")
    print(format_table(rows, COLUMNS, digits=3))


if __name__ == "__main__":
    main()
