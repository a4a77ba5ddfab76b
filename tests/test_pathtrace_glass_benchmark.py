"""Smoke test of ``benchmarks/pathtrace_glass.py`` (a rough glass ball on the fused kernel and on the PyTorch
transport): a tiny run prints lumigrad's rows with finite figures, both transports estimate the same image and the
IOR gradient is finite. No timings are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pathtrace_glass.py"


def test_pathtrace_glass_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--size", "10", "--spp", "2", "--max-depth", "4", "--repeats", "1", "--no-mitsuba"])
    out = capsys.readouterr().out
    assert [r["what"].split(" (")[0] for r in rows] == ["forward, fused kernel", "forward, PyTorch transport",
                                                        "forward + IOR gradient", "forward + sky texels' gradient",
                                                        "forward + sky texels' gradient"]
    for r in rows:
        assert f"| lumigrad | {r['what']} |" in out
        for key in ("seconds", "mib", "mean"):
            assert math.isfinite(float(r[key])), (key, r[key])
    fused, torch_ = rows[0]["mean"], rows[1]["mean"]
    assert fused > 0 and abs(fused - torch_) <= 1e-3 * torch_
    assert abs(rows[3]["mean"] - rows[4]["mean"]) <= 1e-4 * abs(rows[4]["mean"])  # (the two replays' sums)
