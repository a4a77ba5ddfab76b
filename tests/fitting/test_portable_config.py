"""The configuration copied into a run folder re-runs as it is: from any folder, the same files, the same steps."""

import json
from pathlib import Path

import pytest
import yaml

from lumigrad.fitting import run_fit
from lumigrad.fitting.config import load_config
from lumigrad.fitting.run_folder import config_identity, portable_config_text
from tests.fitting.test_run import config  # noqa: F401 (the fixture)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "configs"


def test_the_copied_config_refits_from_another_folder_with_the_same_data(config, tmp_path, monkeypatch):  # noqa: F811
    source = config(40, extra='\n[output]\ndir = "runs/first"   # relative to this file\n')
    first = run_fit(source, steps=3)  # --steps 3: the copy must say so to reproduce the run
    run = tmp_path / "runs" / "first"
    assert first.out_dir.resolve() == run.resolve()
    copy = run / "config.toml"
    text = copy.read_text()
    assert f'file = "{tmp_path / "sphere.obj"}"' in text and f'dir = "{run}"   # relative to this file' in text
    assert "steps = 3" in text and "lr = 0.1" in text  # the rest as written, comments kept
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = load_config(Path("..") / copy.relative_to(tmp_path))
    assert again.scene.file.resolve() == (tmp_path / "sphere.obj").resolve()
    assert again.fit.steps == 3
    original = load_config(source)
    original.fit.steps = 3
    assert config_identity(again) == config_identity(original)  # one configuration: a resume accepts either
    second = run_fit(Path("..") / copy.relative_to(tmp_path), "second")  # both relative to this other folder
    for key in ("steps", "initial_loss", "final_loss", "psnr_initial_db", "psnr_final_db", "views", "image_size"):
        assert second.metrics[key] == first.metrics[key], key
    assert second.metrics["parameters"] == first.metrics["parameters"]


def test_yaml_copies_and_keys_the_file_left_out(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ball.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    path = tmp_path / "c.yaml"
    path.write_text("# a comment\nscene:\n  file: data/ball.obj  # the ball\n"
                    "optimize:\n  - params: meshes.*.verts\n    lr: 0.01\nloss:\n  mse: 1.0\n")
    cfg = load_config(path)
    cfg.fit.steps = 7  # --steps 7, and the file has no [fit] table
    text = portable_config_text(cfg)
    parsed = yaml.safe_load(text)
    assert parsed["scene"]["file"] == str(tmp_path / "data" / "ball.obj") and parsed["fit"] == {"steps": 7}
    assert "# a comment" in text and "# the ball" in text
    assert parsed["optimize"] == [{"params": "meshes.*.verts", "lr": 0.01}]
    cfg.fit.steps = load_config(path).fit.steps  # nothing to change: the text as it is, but for the path
    assert portable_config_text(cfg) == path.read_text().replace("data/ball.obj", json.dumps(
        str(tmp_path / "data" / "ball.obj")))


def test_absolute_and_home_paths_are_left_alone(tmp_path):
    mesh = tmp_path / "m.obj"
    mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[scene]\nfile = "{mesh}"\n[[optimize]]\nparams = "meshes.*.verts"\nlr = 0.01\n'
                    '[loss]\nmse = 1.0\n')
    assert portable_config_text(load_config(path)) == path.read_text()


@pytest.mark.parametrize("name", ["reconstruction.toml", "camera_calibration.yaml"])
def test_the_example_configs_copy_to_files_that_parse_to_the_same_fit(name, tmp_path):
    source = load_config(EXAMPLES / name)
    (tmp_path / name).write_text(portable_config_text(source))
    copy = load_config(tmp_path / name)
    for field in ("file", "texture"):
        a, b = getattr(copy.scene, field), getattr(source.scene, field)
        assert (a is None and b is None) or a.resolve() == b.resolve()
    assert (copy.data.truth is None and source.data.truth is None) or (
        copy.data.truth.resolve() == source.data.truth.resolve())
    assert config_identity(copy) == config_identity(source)
