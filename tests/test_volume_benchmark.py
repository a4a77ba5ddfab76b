"""Smoke test of ``benchmarks/volume_training.py`` (radiance-field training and rendering rays/s): a tiny run
prints the table with one row per occupancy setting, finite positive figures, and fewer samples per ray with
the occupancy grid than without. No timings are asserted (``benchmarks/`` measures them)."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "volume_training.py"


def _rows(text: str):
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    titles = [c.strip() for c in lines[0].split("|")[1:-1]]
    return [dict(zip(titles, (c.strip() for c in line.split("|")[1:-1]))) for line in lines[1:]]


def test_volume_training_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    text = main(["--rays", "128", "--steps", "64", "--small", "12", "--large", "16", "--pretrain", "25",
                 "--repeats", "1"])
    assert text in capsys.readouterr().out
    assert "load average" in text and "rays a training step" in text
    rows = _rows(text)
    assert [(r["occupancy grid"], r["steps/diagonal"]) for r in rows] == [("on", "64"), ("off", "64")]
    for r in rows:
        for key in ("train samples/ray", "train ms/step", "train krays/s", "render samples/ray 12^2",
                    "render krays/s 12^2", "render krays/s 16^2"):
            value = float(r[key])
            assert math.isfinite(value) and value > 0, (key, r[key])
        for key in ("train peak MiB", "render peak MiB 16^2"):
            assert r[key] == "-" or float(r[key]) >= 0
    on, off = rows
    assert float(on["render samples/ray 12^2"]) < float(off["render samples/ray 12^2"])
    assert float(on["train samples/ray"]) < float(off["train samples/ray"])
    assert "occupancy grid refresh" in text
