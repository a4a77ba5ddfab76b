"""Smoke test of ``benchmarks/path_cutouts.py`` (leaf cards through alpha): a tiny run prints lumigrad's rows with
finite figures, the cut-out cards let more light onto the floor than opaque ones, and the floor's gradient is
positive. No timings are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "path_cutouts.py"


def test_path_cutouts_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--size", "12", "--spp", "2", "--max-depth", "3", "--leaves", "8", "--repeats", "1",
                 "--no-mitsuba"])
    out = capsys.readouterr().out
    assert [r["what"].split(" (")[0] for r in rows] == ["forward, cards OPAQUE", "forward, cards MASK",
                                                        "forward, cards BLEND", "forward + floor colour gradient, "
                                                        "cards MASK"]
    for r in rows:
        assert f"| lumigrad | {r['what']} |" in out
        for key in ("seconds", "mib", "mean"):
            assert math.isfinite(float(r[key])), (key, r[key])
    assert rows[1]["mean"] > rows[0]["mean"] > 0 and rows[3]["mean"] > 0
