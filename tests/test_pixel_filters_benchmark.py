"""Smoke test of ``benchmarks/pixel_filters.py``: a tiny run prints a row per filter with finite figures (and,
with Mitsuba installed, Mitsuba's rows and the image agreement). No timings are asserted."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pixel_filters.py"


def test_pixel_filters_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--size", "12", "--spp", "2", "--max-depth", "3", "--repeats", "1", "--filters", "box", "gaussian",
                 "--check-size", "8", "--check-spp", "16"])
    out = capsys.readouterr().out
    ours = [r for r in rows if r.get("renderer") == "lumigrad"]
    assert [r["filter"] for r in ours] == ["box", "gaussian"]
    for r in ours:
        assert f"| lumigrad | {r['filter']} |" in out
        for key in ("seconds", "mib", "mean"):
            assert math.isfinite(float(r[key])), (key, r[key])
        assert r["mean"] > 0
    for r in rows:
        if "rrmse" in r:
            assert math.isfinite(r["rrmse"]) and math.isfinite(r["box_rrmse"])
