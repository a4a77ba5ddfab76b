"""Smoke test of ``benchmarks/pathtrace_bvh_engine.py`` (path-traced scenes by BVH engine): a tiny run prints
one row per engine (the own BVH with its SIMD lanes, its tree alone, Warp's) with finite positive figures and
leaves the engine thresholds as it found them. No timings
are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

from lumigrad.kernels import bvh as bvh_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pathtrace_bvh_engine.py"


def test_pathtrace_bvh_engine_benchmark_tiny_run(capsys):
    limits = bvh_module.OWN_BVH_MAX_FACES, bvh_module.LANES_MAX_FACES
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--meshes", "6x4", "--size", "8", "--spp", "1", "--depth", "3", "--repeats", "1"])
    out = capsys.readouterr().out
    assert [(r["mesh"], r["tris"], r["engine"]) for r in rows] == [("6x4", 46, "lanes"), ("6x4", 46, "own"),
                                                                     ("6x4", 46, "warp")]
    for r in rows:
        assert f"| 6x4 | 46 | {r['engine']} | {r['build']} | {r['refit']} |" in out
        for key in ("build", "refit", "render", "ns"):
            assert math.isfinite(float(r[key])) and float(r[key]) >= 0, (key, r[key])
    assert (bvh_module.OWN_BVH_MAX_FACES, bvh_module.LANES_MAX_FACES) == limits
