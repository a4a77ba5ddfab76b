"""Every example runs with a tiny step count; the README's code block runs as written."""

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
TINY_ARGS = {"01_render_spot.py": ["--size", "64"], "02_fit_camera_pose.py": ["--steps", "2", "--size", "48"]}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path)] + TINY_ARGS.get(path.name, []))
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()


def test_every_example_has_tiny_arguments():
    assert {p.name for p in EXAMPLES} == set(TINY_ARGS)


def test_camera_pose_example_converges():
    module = runpy.run_path(str(ROOT / "examples" / "02_fit_camera_pose.py"))
    assert module["main"](["--steps", "120", "--size", "96"]) < 0.5


def test_readme_code_block_runs():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["verts"].grad is not None and scope["verts"].grad.abs().sum() > 0
