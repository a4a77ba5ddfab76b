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


def test_trial_lenses_go_through_the_fold_safe_lens_map():
    """The example's default: a trial k1, k2 that would fold the lens inside the image is scaled back into the
    valid lenses (the ``lens`` map of ``lumigrad fit``) instead of failing the render; a valid lens is kept."""
    import torch

    from lumigrad.cameras.lens_cover import check_lens_folds

    example = runpy.run_path(str(EXAMPLE))
    w2c, focal, k_true = example["true_cameras"](32)
    focal = torch.tensor(focal)
    assert torch.equal(example["fold_safe"](32, focal, k_true, w2c), k_true)
    folding = torch.tensor([-1.5, 0.0])
    with pytest.raises(ValueError, match="folds"):
        check_lens_folds(example["make_cameras"](32, focal, folding, w2c))
    safe = example["fold_safe"](32, focal, folding, w2c)
    check_lens_folds(example["make_cameras"](32, focal, safe, w2c))
    assert -1.5 < float(safe[0]) < -0.1 and float(safe[1]) == 0.0  # scaled towards 0, not to 0
    metrics = example["main"](["--iterations", "2", "--size", "32"])
    assert "folding_steps_projected" in metrics and metrics["iterations"] == 2
