"""Smoke test of ``benchmarks/radiance_field_regularizers.py``: ``--quick`` (9 views of Spot at 16^2, 3 steps) prints
one row per regulariser with finite figures. No values are asserted (the benchmark measures them)."""

import math
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "radiance_field_regularizers.py"


@pytest.mark.slow
def test_quick_run_prints_a_row_per_regulariser(capsys):
    runpy.run_path(str(SCRIPT))["main"](["--quick"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    titles = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = [dict(zip(titles, (c.strip() for c in line.split("|")[1:-1]))) for line in lines[1:]]
    assert [r["regulariser"] for r in rows] == ["none", "distortion", "opacity entropy", "both", "depth"]
    for r in rows:
        for key in ("held-out PSNR dB", "floater opacity", "depth error % diag", "train PSNR dB"):
            assert math.isfinite(float(r[key])), (key, r)
