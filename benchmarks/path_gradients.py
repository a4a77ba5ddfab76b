"""Path tracer gradients against central finite differences, over seeds: the spread behind the thresholds.

Runs every case of ``tests/integrators/test_path_gradients.py`` (the battery's table) with reference seeds
``0 .. seeds - 1`` (pilots ``500 ..``) and backward seeds ``1000 ..`` (see that module for the scenes, the
reference ``D_fd``, the projections ``f(W) = sum(W * D_fd)`` and ``g(W) = d/dtheta sum(W * I)`` on ``W = sign(D_pilot)``
and ``W = 1``, and the error ``max over W of |g - f| / max(|f(sign)|, |f(ones)|)``), and prints a markdown table:
per case ``f`` and ``g`` of seed 0 on the sign weight, seed 0's error, the mean and largest error over the seeds,
the test's threshold and the shortest time of one measurement (CPU, under whatever load the machine has), with
every seed's numbers in HTML comments above its row.

Usage: ``python benchmarks/path_gradients.py [--seeds 8] [--cases name ...]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integrators.test_path_gradients import CASES, measure  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="reference seeds 0 .. seeds - 1")
    parser.add_argument("--cases", nargs="*", default=None, help="case names (default: all)")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if args.cases is None or c.name in args.cases]
    print("| case | parameter | FD f(sign) | lumigrad g(sign) | error | mean / max error over seeds | threshold | "
          "time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        errors, first, seconds = [], None, []
        for seed in range(args.seeds):
            start = time.perf_counter()
            m = measure(case, seed)
            seconds.append(time.perf_counter() - start)
            errors.append(m.error)
            first = first or m
            print(f"<!-- {case.name} seed {seed}: " + ", ".join(
                f"{k} fd {m.fd[k]:.5g} ours {m.ours[k]:.5g} err {m.errors[k]:.4f}" for k in m.fd) + " -->",
                flush=True)
        print(f"| {case.name} | {case.parameter} | {first.fd['sign']:.4g} | {first.ours['sign']:.4g} | "
              f"{first.error:.4f} | {sum(errors) / len(errors):.4f} / {max(errors):.4f} | {case.threshold} | "
              f"{min(seconds):.1f} |", flush=True)


if __name__ == "__main__":
    main()
