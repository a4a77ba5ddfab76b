"""Smoke test of ``benchmarks/pathtrace_bvh_engine.py`` (path-traced scenes by BVH engine): a tiny run prints
one row per engine with finite positive figures and leaves the engine threshold as it found it. No timings
are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

from lumigrad.kernels import bvh as bvh_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pathtrace_bvh_engine.py"


def _rows(text: str):
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    titles = [c.strip() for c in lines[0].split("|")[1:-1]]
    return [dict(zip(titles, (c.strip() for c in line.split("|")[1:-1]))) for line in lines[1:]]


def test_pathtrace_bvh_engine_benchmark_tiny_run(capsys):
    limit = bvh_module.OWN_BVH_MAX_FACES
    main = runpy.run_path(str(SCRIPT))["main"]
    text = main(["--meshes", "6x4", "--size", "8", "--spp", "1", "--depth", "3", "--repeats", "1"])
    assert text in capsys.readouterr().out
    rows = _rows(text)
    assert [(r["mesh"], r["engine"]) for r in rows] == [("6x4", "own"), ("6x4", "warp")]
    assert {r["triangles (mesh + walls)"] for r in rows} == {str(2 * 6 * 3 + 10)}
    for r in rows:
        for key in ("build ms", "refit ms", "render s", "ns / path"):
            assert math.isfinite(float(r[key])) and float(r[key]) >= 0, (key, r[key])
    assert bvh_module.OWN_BVH_MAX_FACES == limit
