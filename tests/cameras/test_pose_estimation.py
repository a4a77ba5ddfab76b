"""Pose from one image (``examples/02_pose_from_one_image.py``): the Spot cow's 6-DoF pose is recovered from
one 128 x 128 image, starting 20 degrees and 10% of the camera-to-cow distance away, to within 0.5 degrees
and 1% of the distance, from the textured RGB image and from the silhouette alone."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "02_pose_from_one_image.py"


@pytest.fixture(scope="module")
def pose_example():
    return runpy.run_path(str(EXAMPLE))


@pytest.mark.slow
@pytest.mark.parametrize("mode, seed", [("rgb", 0), ("rgb", 1), ("rgb", 2), ("silhouette", 0), ("silhouette", 1)])
def test_pose_from_one_image_converges(pose_example, mode, seed, tmp_path):
    m = pose_example["main"](["--mode", mode, "--seed", str(seed), "--steps", "120", "--out", str(tmp_path)])
    assert m["initial_rotation_error_deg"] == pytest.approx(20.0, abs=1e-3), "the fit must start 20 degrees away"
    assert m["initial_translation_error"] == pytest.approx(0.10, abs=1e-4), "and 10% of the distance away"
    assert m["rotation_error_deg"] < 0.5, f"{m}; images in {tmp_path}"
    assert m["translation_error"] < 0.01, f"{m}; images in {tmp_path}"
    assert m["camera_center_error"] < 0.01, f"{m}; images in {tmp_path}"  # the same pose as a camera position
