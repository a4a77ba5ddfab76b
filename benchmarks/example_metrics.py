"""Run every example fit config with a tiny step count under two source trees and compare their metrics.json.

Used to show that a refactoring leaves fits unchanged: each config in ``examples/configs`` runs in a fresh
process with ``PYTHONPATH`` set to each tree's ``src``; every number in the two ``metrics.json`` files
(except wall-clock ``seconds`` and the config path) must agree to ``--tol``. Prints one row per config.

    python benchmarks/example_metrics.py --before /path/to/main/src --after src --steps 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"seconds", "config"}
RUN = ("import sys; from lumigrad.fitting import run_fit; "
       "run_fit(sys.argv[1], sys.argv[2], steps=int(sys.argv[3]), overwrite=True)")


def run(src: Path, config: Path, out: Path, steps: int, reuse: bool = False, threads: int = 0) -> dict:
    if reuse and (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    env = dict(os.environ, PYTHONPATH=str(src))
    if threads:  # kernel threads otherwise follow the load, and a few reductions with them (float rounding)
        env["LUMIGRAD_NUM_THREADS"] = str(threads)
    subprocess.run([sys.executable, "-c", RUN, str(config), str(out), str(steps)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


def leaves(value, prefix=""):
    """``(key path, number)`` for every number in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in SKIP:
                yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from leaves(v, f"{prefix}[{k}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix, float(value)
    else:
        yield prefix, value


def compare(a: dict, b: dict):
    """``(largest absolute difference, keys that differ beyond tolerance or exist on one side only)``."""
    la, lb = dict(leaves(a)), dict(leaves(b))
    worst, missing = 0.0, sorted(set(la) ^ set(lb))
    for key in set(la) & set(lb):
        x, y = la[key], lb[key]
        if isinstance(x, float) and isinstance(y, float):
            if not (math.isnan(x) and math.isnan(y)):
                worst = max(worst, abs(x - y))
        elif x != y:
            missing.append(key)
    return worst, missing


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="src folder of the reference tree")
    p.add_argument("--after", type=Path, required=True, help="src folder of the tree under test")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--keep", type=Path, default=None, help="folder to keep the run folders in")
    p.add_argument("--threads", type=int, default=0, help="LUMIGRAD_NUM_THREADS for every run (default: unset)")
    p.add_argument("--reuse-before", action="store_true", help="reuse the reference runs already in --keep")
    args = p.parse_args(argv)
    configs = sorted((ROOT / "examples" / "configs").glob("*.[ty]*ml"))
    base = args.keep or Path(tempfile.mkdtemp(prefix="example-metrics-"))
    ok = True
    print("| config | metrics compared | largest abs difference | differing keys |")
    print("|---|---:|---:|---|")
    for config in configs:
        a = run(args.before.resolve(), config, base / "before" / config.stem, args.steps, args.reuse_before,
                args.threads)
        b = run(args.after.resolve(), config, base / "after" / config.stem, args.steps, threads=args.threads)
        worst, differing = compare(a, b)
        ok = ok and worst <= args.tol and not differing
        print(f"| {config.name} | {len(dict(leaves(a)))} | {worst:.3g} | {', '.join(differing) or '-'} |")
    print("same to", args.tol if ok else "NOT the same", f"(run folders in {base})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
