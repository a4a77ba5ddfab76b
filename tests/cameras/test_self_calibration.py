"""Self-calibration by rendering (examples/03_self_calibration.py) must converge: focal < 0.5%, k within 0.01."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "03_self_calibration.py"


@pytest.mark.slow
def test_focal_and_radial_distortion_are_recovered():
    metrics = runpy.run_path(str(EXAMPLE))["main"](["--iterations", "40"])
    assert metrics["initial_focal_error_pct"] >= 8.0
    assert metrics["focal_error_pct"] < 0.5, metrics
    assert metrics["k1_error"] < 0.01, metrics
    assert metrics["k2_error"] < 0.01, metrics
