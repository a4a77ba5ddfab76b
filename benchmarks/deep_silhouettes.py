"""The boundary term of silhouettes seen beyond the first hit on the Cornell box's lamp height (issue 14).

d mean pixel / d lamp height of :mod:`pathtrace`'s Cornell box (forward ``--spp``, ``rr_depth = max_depth``,
``max_depth`` 8) with ``deep_silhouette_samples`` ``--samples`` (default None: as many as ``edge_samples``) and 0, the same seeds (forward ``s``, backward
``s + 1``): their difference is the term's estimate alone (its draws have their own streams), to compare with the
finite differences of the light of bounces 3-8 (+0.0062, docs/benchmarks.md "Visibility gradient at equal
error"). Prints a table of per-seed values and the process CPU seconds of one forward + backward call each way
(run it with ``OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1`` for one thread).

    python benchmarks/deep_silhouettes.py --size 128 --seeds 8
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import lumigrad as lg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pathtrace import camera, cornell_box  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--samples", type=int, default=None, help="deep_silhouette_samples (default: None, as many as edge_samples)")
    args = p.parse_args()
    cam = camera(args.size)
    lamp_y = torch.tensor(0.99, requires_grad=True)
    scene = cornell_box(torch.tensor([0.7, 0.7, 0.7]), None, lamp_y)
    print(f"lumigrad {lg.__version__} | {torch.get_num_threads()} threads | {args.size}^2, {args.spp} spp, "
          f"max_depth {args.depth}, deep_silhouette_samples {args.samples or 'as edge_samples'}")
    print("| seed | gradient with the term | without | difference | CPU s with | CPU s without |")
    print("|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.seeds):
        out = []
        for samples in (args.samples, 0):
            lamp_y.grad = None
            start = time.process_time()
            lg.render(scene, cam, integrator="path", spp=args.spp, max_depth=args.depth, rr_depth=args.depth,
                      seed=seed, deep_silhouette_samples=samples).rgb.mean().backward()
            out.append((float(lamp_y.grad), time.process_time() - start))
        rows.append((out[0][0] - out[1][0], out[0][1], out[1][1]))
        print(f"| {seed} | {out[0][0]:.5f} | {out[1][0]:.5f} | {rows[-1][0]:+.5f} | {out[0][1]:.2f} | "
              f"{out[1][1]:.2f} |", flush=True)
    diff = [r[0] for r in rows]
    se = statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    timed = rows[1:] or rows  # seed 0 compiles
    print(f"\nthe term: {statistics.mean(diff):+.5f} +- {se:.5f} (standard error over {len(diff)} seeds); median CPU s "
          f"with {statistics.median(r[1] for r in timed):.2f}, without {statistics.median(r[2] for r in timed):.2f}")


if __name__ == "__main__":
    main()
