"""Smoke test of ``benchmarks/depth_of_field.py`` (a thin-lens camera in the path tracer, its focus and aperture
gradients against finite differences): a tiny run without Mitsuba prints lumigrad's rows with finite figures, the
thin lens and the pinhole camera render about the same mean pixel, and the gradient rows carry a gradient, its
standard error and a finite-difference reference. No timings are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "depth_of_field.py"


def test_depth_of_field_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--size", "16", "--spp", "2", "--repeats", "1", "--grad-seeds", "2", "--fd-seeds", "2",
                 "--fd-spp", "16", "--no-mitsuba"])
    out = capsys.readouterr().out
    assert [r["what"] for r in rows] == ["forward, thin lens", "forward, pinhole",
                                         "forward + gradient, d loss / d focus_distance",
                                         "forward + gradient, d loss / d aperture_radius"]
    assert "16x12, 2 spp, depth 4" in out and "Mitsuba: skipped (--no-mitsuba)" in out
    for r in rows:
        assert r["renderer"] == "lumigrad" and f"| lumigrad | {r['what']} |" in out
        for key in ("seconds", "mib"):
            assert math.isfinite(float(r[key])) and r[key] >= 0, (key, r[key])
    assert all(r["rel_rmse"] is None for r in rows[:2])  # no Mitsuba reference to compare with
    lens, pinhole = rows[0]["mean"], rows[1]["mean"]
    assert lens > 0 and abs(lens - pinhole) <= 0.1 * pinhole  # the blur moves light, it does not make or lose it
    for r in rows[2:]:
        for key in ("grad", "grad_err", "fd", "fd_err", "fd_step"):
            assert math.isfinite(r[key]), (r["what"], key, r[key])
        assert r["grad_err"] >= 0 and r["fd_err"] >= 0 and r["fd_step"] > 0
        assert r["seconds"] == rows[2]["seconds"]  # one call gives both gradients
