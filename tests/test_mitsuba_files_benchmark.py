"""Smoke test of ``benchmarks/mitsuba_files.py``: a tiny run prints a row per case with finite figures (skipped
without Mitsuba 3). No timings are asserted."""

import math
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _mitsuba_peer as peer  # noqa: E402

_OK, _WHY = peer.available()


@pytest.mark.skipif(not _OK, reason=f"Mitsuba 3 unavailable: {_WHY}")
def test_mitsuba_files_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(BENCH / "mitsuba_files.py"))["main"]
    rows = main(["--size", "8", "--spp", "4", "--mitsuba-spp", "16", "--repeats", "1", "--cases", "roughconductor",
                 "spot"])
    out = capsys.readouterr().out
    assert [r["case"] for r in rows] == ["roughconductor", "spot"]
    assert rows[0]["microfacet"] == "beckmann"  # Mitsuba's default distribution, read as such
    for r in rows:
        assert f"| {r['case']} |" in out
        for key in ("rrmse", "rrmse_blocks", "mean_ratio", "seconds", "mitsuba_seconds"):
            assert math.isfinite(r[key]), (key, r[key])
