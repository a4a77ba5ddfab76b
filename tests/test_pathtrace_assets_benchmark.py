"""Smoke test of ``benchmarks/pathtrace_assets.py`` (glTF assets path-traced on the fused kernel and on the PyTorch
transport): a tiny run of the normal-mapped WaterBottle prints both engines' rows with finite figures, the two
transports estimate the same image, and both replays the same gradient. No timings are asserted."""

import math
import runpy
from pathlib import Path

import pytest

from .conftest import SHARED_DATA

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pathtrace_assets.py"
BOTTLE = SHARED_DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf"


@pytest.mark.skipif(not BOTTLE.exists(), reason="../shared/data is not beside the checkout")
def test_pathtrace_assets_benchmark_tiny_run(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    rows = main(["--size", "12", "--spp", "2", "--max-depth", "3", "--repeats", "1", "--env-step", "16",
                 "--what", "forward", "gradient"])
    out = capsys.readouterr().out
    assert [(r["what"], r["engine"]) for r in rows] == [
        ("forward", "fused kernel"), ("forward", "PyTorch transport"),
        ("base colour gradient", "fused replay"), ("base colour gradient", "PyTorch replay")]
    for r in rows:
        assert f"| WaterBottle | {r['what']} | {r['engine']} |" in out
        for key in ("seconds", "mib", "mean", "diff"):
            assert math.isfinite(float(r[key])), (key, r[key])
    forward = rows[:2]
    assert forward[0]["mean"] > 0 and abs(forward[0]["mean"] - forward[1]["mean"]) <= 1e-3 * forward[1]["mean"]
    gradient = rows[2:]
    assert gradient[0]["mean"] > 0 and abs(gradient[0]["mean"] - gradient[1]["mean"]) <= 1e-3 * gradient[1]["mean"]
