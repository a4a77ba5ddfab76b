"""One process of ``benchmarks/scale.py``: time the steps of a ``lumigrad fit`` config (and the gradient
all-reduce alone) in a fit over ``WORLD_SIZE`` processes started by ``torchrun``; rank 0 writes JSON to argv[2].

Not for direct use: ``python benchmarks/scale.py`` starts it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from lumigrad.fitting import build_problem, load_config
from lumigrad.fitting.ranks import prepare_ranks
from lumigrad.fitting.run import make_fit
from lumigrad.optim import init_distributed, launched_by_torchrun


def main(config_path: str, out_path: str, steps: int, views_per_step: int) -> None:
    config = load_config(config_path)
    config.fit.record_every = 10 ** 9
    config.fit.coarse_to_fine = [(0.0, 1.0)]  # full resolution at every timed step
    config.fit.views_per_step = views_per_step
    config.fit.steps = steps + 2
    problem = build_problem(config)
    strategy = init_distributed() if launched_by_torchrun() else None
    if strategy is not None:
        prepare_ranks(problem, strategy, lambda message: None)
    fit = make_fit(problem, strategy=strategy)
    times = []
    for step in range(config.fit.steps):
        fit.steps = step + 1
        if strategy is not None:
            strategy.barrier()
        t0 = time.perf_counter()
        fit.run()
        times.append(time.perf_counter() - t0)
    params = fit._all_params
    numel = sum(p.numel() for p in params)
    reduce_ms = None
    if strategy is not None:
        buffer = torch.zeros(numel)
        reduce_times = []
        for _ in range(22):
            strategy.barrier()
            t0 = time.perf_counter()
            torch.distributed.all_reduce(buffer)
            reduce_times.append(time.perf_counter() - t0)
        reduce_ms = statistics.median(reduce_times[2:]) * 1e3
    if strategy is None or strategy.is_main:
        Path(out_path).write_text(json.dumps({
            "step_ms": statistics.median(times[2:]) * 1e3, "parameters": numel,
            "bytes": sum(p.numel() * p.element_size() for p in params), "allreduce_ms": reduce_ms,
            "views": len(problem.camera), "size": [problem.camera.width, problem.camera.height]}))
    if strategy is not None:
        strategy.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
