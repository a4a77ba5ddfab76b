"""The ``lumigrad`` command line: demo end to end with a tiny step count, help, and user errors."""

import json
import subprocess
import sys

import pytest

from lumigrad.cli.main import main


def test_demo_writes_images_plot_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--steps", "3", "--views", "2", "--size", "48", "--texture-size", "16", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    for name in ("target.png", "initial.png", "final.png", "error.png", "texture.png", "loss.png", "metrics.json"):
        assert (out / name).stat().st_size > 100, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["rotation_error_deg"] < 15.0


def test_demo_default_output_folder_is_under_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--steps", "1", "--views", "1", "--size", "32", "--texture-size", "8", "--no-progress"]) == 0
    folders = list((tmp_path / "lumigrad-out").iterdir())
    assert len(folders) == 1 and (folders[0] / "final.png").exists()
    assert str(folders[0]) in capsys.readouterr().out


def test_bad_arguments_give_one_line_and_exit_2(capsys):
    assert main(["demo", "--steps", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--steps must be positive" in err and "Traceback" not in err


def test_help_and_console_script():
    result = subprocess.run([sys.executable, "-m", "lumigrad.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    result = subprocess.run([sys.executable, "-m", "lumigrad.cli.main", "demo", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--steps" in result.stdout
