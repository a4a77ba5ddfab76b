"""examples/14_deforming_avatar.py at reduced size: the joint fit of a deformation and a camera trajectory from
frames must improve the held-out frames (the full-size figures, camera and vertex errors: docs/sequences.md)."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "14_deforming_avatar.py"


@pytest.mark.slow
def test_joint_fit_improves_held_out_frames(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("deforming_avatar", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "argv", ["14", "--steps", "40", "--size", "32", "--frames", "6",
                                      "--out", str(tmp_path / "out")])
    r = example.main()
    assert r["psnr_final"] > r["psnr_initial"] + 6.0, r
    print(r)  # camera and vertex errors are reported, not asserted: the joint fit does not reduce them (docs)
    assert (tmp_path / "out" / "images" / "sequence.png").is_file()
    assert (tmp_path / "out" / "assets" / "sequence.gif").is_file()
