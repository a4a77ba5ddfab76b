"""examples/14_deforming_avatar.py at reduced size: the joint fit of a (gauge-fixed, non-rigid) deformation and a
camera trajectory from frames must improve the held-out frames and the camera poses (full-size figures:
docs/sequences.md)."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "14_deforming_avatar.py"


@pytest.mark.slow
def test_joint_fit_improves_held_out_frames_and_camera(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("deforming_avatar", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "argv", ["14", "--steps", "40", "--size", "32", "--frames", "6",
                                      "--out", str(tmp_path / "out")])
    r = example.main()
    assert r["psnr_final"] > r["psnr_initial"] + 6.0, r
    print(r)
    # the camera carries every rigid motion (--gauge rigid, the default), so the fit recovers it
    assert r["final"]["rotation_deg"] < 0.7 * r["initial"]["rotation_deg"], r
    assert r["final"]["centre_pct"] < 0.8 * r["initial"]["centre_pct"], r
    assert (tmp_path / "out" / "images" / "sequence.png").is_file()
    assert (tmp_path / "out" / "assets" / "sequence.gif").is_file()
