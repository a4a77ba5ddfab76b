"""Benchmark: what one ``lumigrad fit`` costs, per example configuration.

For each config in ``examples/configs`` (or those given): the set-up time (loading the scene and data,
rendering synthetic targets, parameterising the unknowns: ``lumigrad.fitting.build_problem``), then the
median wall time of one optimisation step at the config's full resolution (render every view, the loss
terms, backward, one optimiser step for each group; the every-50th-step error records are not included)
over ``--repeats`` steps after one warm-up, with the peak memory of one step, and the time
of the output folder (images, plots, GLB/OBJ assets, report). The full-fit results (how well each recovers
its unknowns) are in ``docs/fit.md``.

No peer column: no other tool runs these configuration files; the renderer itself is compared with
Mitsuba 3 in ``benchmarks/raster.py``.

    ./dev bench fit
    ./dev bench fit --repeats 3 examples/configs/reconstruction.toml
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lumigrad.app.benchmarking import format_table, peak_memory, time_call
from lumigrad.fitting import build_problem, load_config
from lumigrad.fitting.run import _groups, _logged_loss  # the same step as lumigrad fit
from lumigrad.optim import Fit

ROOT = Path(__file__).resolve().parents[1]


def bench(path: Path, repeats: int) -> dict:
    config = load_config(path)
    t0 = time.perf_counter()
    problem = build_problem(config)
    setup = time.perf_counter() - t0
    config.fit.record_every = 10 ** 9  # no error records (spaced out over a whole fit, not per step)
    fit = Fit(_logged_loss(problem), _groups(problem), steps=10 ** 6, clip_spikes=config.fit.clip_spikes)
    fit.steps_done = int(0.9 * config.fit.steps)  # late steps: full resolution after any coarse-to-fine

    def one_step():
        fit.steps = fit.steps_done + 1
        fit.run()

    step_ms = statistics.median(time_call(one_step, repeats, warmup=1)) * 1e3
    peak, exact = peak_memory(one_step)
    from lumigrad.fitting.outputs import write_outputs
    from lumigrad.fitting.run import _metrics
    from lumigrad.optim.fit import FitResult

    with torch.no_grad():
        images = problem.render_views()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = FitResult(list(fit.losses), list(fit.logs), fit.steps_done)
        write_outputs(Path(out), problem, result, _metrics(problem, result, images, images, 0.0), images, images)
        report = time.perf_counter() - t0
    cam = problem.camera
    return {"config": path.name, "views": len(cam), "size": f"{cam.width}x{cam.height}",
            "unknowns": sum(leaf.numel() for g in problem.groups for leaf in problem.leaves(g)),
            "setup s": setup, "step ms": step_ms, "peak MiB": peak if exact else f">= {peak:.0f}",
            "report s": report}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs (default: examples/configs/*)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    configs = args.configs or sorted((ROOT / "examples" / "configs").glob("*.[ty]*ml"))
    rows = [bench(p, args.repeats) for p in configs]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu; median of {args.repeats} steps")
    print(format_table(rows, ["config", "views", "size", "unknowns", "setup s", "step ms", "peak MiB", "report s"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
