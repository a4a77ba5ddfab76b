"""``lumigrad fit`` with ``[render] integrator = "volume"``: a radiance field trained on a transforms.json folder
(no [scene]), held-out PSNR in metrics.json, the report, the saved field, bit-exact resume, config errors."""

import json
import runpy
from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import run_fit
from lumigrad.fitting.config import ConfigError, load_config
from lumigrad.fitting.volume_config import VolumeFitConfig
from lumigrad.fitting.volume_field_io import load_field
from lumigrad.fitting.volume_fit import VolumeTrainer

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
name = "tiny radiance field"
[data]
dataset = "data/transforms.json"
holdout_every = 8
[render]
integrator = "volume"
steps_per_diagonal = 64
[field]
num_levels = 4
log2_table_size = 12
max_resolution = 64
hidden_dim = 16
color_hidden_dim = 16
sh_degree = 2
[occupancy]
resolution = 16
update_every = 2
warmup_steps = 4
[fit]
steps = STEPS
rays_per_step = 256
eval_every = 3
checkpoint_every = 2
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Nine 24^2 RGBA views of the embedded Spot (views 0 and 8 held out)."""
    folder = tmp_path_factory.mktemp("nerf")
    script = runpy.run_path(str(ROOT / "examples" / "make_nerf_dataset.py"))
    script["main"](["--views", "9", "--size", "24", "--asset", "spot", "--out", str(folder / "data")])
    return folder


def write_config(dataset: Path, steps: int, extra: str = "", name: str = "fit.toml") -> Path:
    path = dataset / name
    path.write_text(CONFIG.replace("STEPS", str(steps)) + extra)
    return path


def test_fit_writes_holdout_psnr_report_and_field(dataset, tmp_path):
    config = load_config(write_config(dataset, 6))
    assert isinstance(config, VolumeFitConfig)
    outcome = run_fit(config, tmp_path / "run")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m == json.loads(json.dumps(outcome.metrics))
    assert m["integrator"] == "volume" and m["steps"] == 6
    assert (m["train_views"], m["holdout_views"]) == (7, 2)
    assert 5.0 < m["holdout_psnr_db"] < 60.0 and 5.0 < m["train_psnr_db"] < 60.0
    assert [c["step"] for c in m["holdout_curve"]] == [3, 6]
    assert m["samples_per_ray"] > 0 and 0 < m["occupied_fraction"] <= 1
    for f in ("report.html", "images/holdout.png", "plots/psnr.png", "plots/loss.png", "assets/field.pt",
              "checkpoint/checkpoint.pt", "config.toml", "images/turntable.png", "assets/turntable.gif"):
        assert (tmp_path / "run" / f).is_file(), f
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Held-out views" in html and "PSNR against training time" in html and "Turntable" in html
    if m["mesh_faces"]:  # six steps rarely make a surface dense enough; when they do it is written
        assert lg.io.load(tmp_path / "run" / "assets" / "density.ply").faces.shape[0] == m["mesh_faces"]
    # The saved field renders what the fit's own evaluation renders.
    shape, step = load_field(tmp_path / "run" / "assets" / "field.pt")
    scene = lg.Scene()
    scene.add_shape("field", shape)
    data = lg.io.read_dataset(dataset / "data" / "transforms.json")
    with torch.no_grad():
        out = lg.render(scene, data.camera[0], integrator="volume", step_size=step, background=1.0)
    target = data.images[0]
    target = target[..., :3] * target[..., 3:] + (1 - target[..., 3:])
    psnr = -10 * torch.log10(((out.rgb.clamp(0, 1) - target) ** 2).mean())
    held = json.loads((tmp_path / "run" / "metrics.json").read_text())["holdout_psnr_db"]
    assert abs(float(psnr) - held) < 3.0  # one of the two held-out views against their mean


def test_an_interrupted_fit_resumes_bit_for_bit(dataset, tmp_path, monkeypatch):
    path = write_config(dataset, 6)
    whole = run_fit(path, tmp_path / "whole").metrics
    loss = VolumeTrainer.loss

    def interrupted(self, step):
        if step == 5:
            raise KeyboardInterrupt
        return loss(self, step)

    monkeypatch.setattr(VolumeTrainer, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fit(path, tmp_path / "parts")
    monkeypatch.setattr(VolumeTrainer, "loss", loss)
    resumed = run_fit(path, tmp_path / "parts", resume=True).metrics
    assert resumed["final_loss"] == whole["final_loss"]
    assert resumed["holdout_psnr_db"] == whole["holdout_psnr_db"]
    a = torch.load(tmp_path / "whole" / "assets" / "field.pt", weights_only=True)["weights"]
    b = torch.load(tmp_path / "parts" / "assets" / "field.pt", weights_only=True)["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_runs_a_volume_config(dataset, tmp_path, capsys):
    from lumigrad.cli.main import main

    path = write_config(dataset, 2, name="cli.toml")
    assert main(["fit", str(path), "-o", str(tmp_path / "cli"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "held-out PSNR" in out and "report:" in out


@pytest.mark.parametrize("extra, message", [
    ("[scene]\nfile = \"x.obj\"\n", "takes no \\[scene\\]"),
    ("[[optimize]]\nparams = \"x\"\nlr = 0.1\n", "takes no \\[optimize\\]"),
    ("[loss]\nmse = 0.0\n", "needs an image term"),
    ("[loss]\nmsee = 1.0\n", "did you mean 'mse'"),
    ("[output]\ndir = \"o\"\n[fields]\nx = 1\n", "unknown key 'fields'"),
])
def test_config_errors_name_the_key(dataset, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(dataset, 2, extra, name="bad.toml"))


@pytest.mark.parametrize("old, new, message", [
    ("holdout_every = 8", "holdout_every = 1", "holdout_every"),
    ("holdout_every = 8", "holdout_every = 8\naabb = [[0, 0, 0], [0, 1, 1]]", "data.aabb"),
    ('dataset = "data/transforms.json"', 'dataset = "nope/transforms.json"', "does not exist"),
    ("num_levels = 4", "num_levels = 99", "field.num_levels"),
    ("rays_per_step = 256", "rays_per_step = 0", "fit.rays_per_step"),
    ("[fit]", "[fit]\nbackground = \"green\"", "fit.background"),
])
def test_config_values_are_checked(dataset, old, new, message):
    path = dataset / "bad.toml"
    path.write_text(CONFIG.replace("STEPS", "2").replace(old, new))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("frames"), "frames"),
    (lambda d: d["frames"][1].update(transform_matrix=[[1, 0], [0, 1]]), "transform_matrix"),
    (lambda d: d["frames"][2].update(file_path="images/missing"), "missing"),
])
def test_malformed_transforms_json_is_a_config_error_naming_the_item(dataset, tmp_path, damage, message):
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(dataset / "data", folder)
    meta = json.loads((folder / "transforms.json").read_text())
    damage(meta)
    (folder / "transforms.json").write_text(json.dumps(meta))
    path = tmp_path / "fit.toml"
    path.write_text(CONFIG.replace("STEPS", "2"))
    with pytest.raises(ConfigError, match=message):
        run_fit(path, tmp_path / "out")


def test_regularisers_appear_in_the_log(dataset, tmp_path):
    path = write_config(dataset, 2, "[loss]\nmse = 1.0\ndistortion = 0.01\nopacity_entropy = 0.001\n",
                        name="reg.toml")
    outcome = run_fit(path, tmp_path / "reg")
    ckpt = torch.load(tmp_path / "reg" / "checkpoint" / "checkpoint.pt", weights_only=False)
    log = ckpt["logs"][-1]
    assert {"loss/mse", "loss/distortion", "loss/opacity_entropy"} <= set(log)
    assert log["loss/distortion"] > 0 and outcome.metrics["holdout_psnr_db"] > 0
