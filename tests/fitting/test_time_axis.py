"""``lumigrad fit`` over time: targets at animation times, keyframe values as fit parameters, the outputs."""

import json
from pathlib import Path

import pytest
import torch

from lumigrad.cli.main import main
from lumigrad.fitting import ConfigError, build_problem, load_config, run_fit
from lumigrad.fitting.problem import Problem

RIGGED = Path(__file__).resolve().parents[3] / "shared" / "data" / "gltf-rigged-simple" / "glTF" / "RiggedSimple.gltf"
pytestmark = pytest.mark.skipif(not RIGGED.exists(), reason="needs ../shared/data beside the checkout")

CONFIG = f"""
[scene]
file = "{RIGGED.as_posix()}"
[data]
views = 2
size = 24
frames = 3
[[optimize]]
params = "animations.animation0.*.rotation"
map = "unit"
init = {{ noise = 0.15, seed = 1 }}
lr = 0.02
[loss]
mse = 1.0
silhouette = 1.0
[fit]
steps = STEPS
checkpoint_every = 3
views_per_step = 4
"""


def write(tmp_path, steps=4, old="", new=""):
    p = tmp_path / "anim.toml"
    p.write_text(CONFIG.replace("STEPS", str(steps)).replace(old, new))
    return p


@pytest.mark.parametrize("old, new, message", [
    ("frames = 3", "times = [0.5, 0.2]", "data.times must be a non-empty list of at most 10000 strictly increasing"),
    ("frames = 3", "times = []", "data.times must be a non-empty list"),
    ("frames = 3", "times = [-1.0, 0.5]", "data.times must be a non-empty list"),
    ("frames = 3", "times = 'soon'", "data.times must be a list of some finite numbers"),
    ("frames = 3", "frames = 0", "data.frames must be an integer >= 1"),
    ("frames = 3", "frames = 3\ntimes = [0.0]", "data.times and data.frames both say when the targets are"),
    ("frames = 3", "animation = 'walk'", "data.animation = 'walk' needs data.times or data.frames"),
])
def test_bad_time_keys_name_the_key(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path, old=old, new=new))


def test_an_unknown_animation_or_a_late_time_is_one_line_naming_the_key(tmp_path, capsys):
    bad = write(tmp_path, old="frames = 3", new="frames = 3\nanimation = 'walk'")
    assert main(["fit", str(bad), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "data.animation = 'walk' is not an animation of the scene; it has 'animation0'" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(ConfigError, match=r"data.times holds 9 s, past the end of animation 'animation0' \(2.08"):
        build_problem(load_config(write(tmp_path, old="frames = 3", new="times = [0.0, 9.0]")))


def test_photo_datasets_take_no_times(tmp_path):
    (tmp_path / "transforms.json").write_text("{}")
    photos = write(tmp_path, old="views = 2\nsize = 24", new='dataset = "transforms.json"')
    with pytest.raises(ConfigError, match="data.frames describes synthetic targets and cannot be combined with "
                                          "data.dataset"):
        load_config(photos)


def test_keyframe_values_are_named_parameters_listed_by_gradcheck(capsys):
    assert main(["gradcheck", str(RIGGED), "--list"]) == 0
    out = capsys.readouterr().out
    for joint in ("node2", "node3"):
        for path, shape in (("rotation", "(3, 4)"), ("translation", "(3, 3)"), ("scale", "(3, 3)")):
            line = next(line for line in out.splitlines() if line.startswith(f"animations.animation0.{joint}.{path} "))
            assert line.split(None, 1)[1].strip() == shape


def test_gradcheck_at_a_time_agrees_for_keyframe_rotations(capsys):
    """Posed at t = 1 s, key 1 of node3 (the bend) moves the image; autograd agrees with central differences
    (a step small enough not to cross the tube's self-occlusion edges)."""
    args = ["gradcheck", str(RIGGED), "animations.animation0.node3.rotation", "--time", "1.0", "--eps", "1e-4",
            "--samples", "6"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "agree" in out and "DISAGREE" not in out
    assert main(["gradcheck", str(RIGGED), "animations.animation0.node3.rotation", "--animation", "run"]) == 2
    assert "no animation named 'run'" in capsys.readouterr().err


def test_targets_are_views_times_pairs_of_the_posed_truth(tmp_path):
    problem = build_problem(load_config(write(tmp_path, old="frames = 3", new="times = [0.0, 1.0]")))
    axis = problem.time_axis
    assert axis.animation == "animation0" and axis.times.tolist() == [0.0, 1.0] and len(axis) == 4
    assert problem.targets.shape == (4, 24, 24, 4)
    posed = problem.truth.at(1.0)
    from lumigrad import render

    seen = render(posed, problem.truth.cameras["views"], background=torch.tensor(0.0)).rgba
    torch.testing.assert_close(problem.targets[2:], seen)
    assert not torch.allclose(problem.targets[:2], seen)
    with torch.no_grad():  # a sorted subset of pairs renders the same pixels as the whole set
        whole = problem.render_output(problem.camera).rgba
        part = problem.render_output(problem.camera, pairs=torch.tensor([1, 2, 3])).rgba
    torch.testing.assert_close(part, whole[1:])


def test_the_unit_map_keeps_keyframe_rotations_unit_and_gradients_reach_them(tmp_path):
    problem = build_problem(load_config(write(tmp_path)))
    name = "animations.animation0.node3.rotation"
    assert problem.scene.param_info(name).kind == "keyframe_rotation"
    assert not torch.equal(problem.scene[name], problem.truth[name])  # init perturbed it
    torch.testing.assert_close(problem.scene[name].norm(dim=-1), torch.ones(3))
    loss, _ = problem.loss(0)
    loss.backward()
    leaf = problem.leaves("group0")[1]
    assert leaf.grad is not None and bool(leaf.grad.abs().sum() > 0)


def test_a_short_fit_lowers_the_joint_angle_error_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    whole = run_fit(write(tmp_path, steps=20), tmp_path / "whole")
    m = whole.metrics
    assert m["joint_angle_error_deg_final"] < 0.8 * m["joint_angle_error_deg_initial"]
    assert m["keyframe_angle_error_deg_final"] < m["keyframe_angle_error_deg_initial"]
    assert m["parameters"]["animations.animation0.node3.rotation"]["angle_error_deg"] >= 0
    assert m["psnr_final_db"] > m["psnr_initial_db"] + 3
    out = whole.out_dir
    for rel in ("images/over_time.png", "assets/over_time.gif", "assets/animation.glb", "assets/scene.glb"):
        assert (out / rel).is_file(), rel
    assert "Over time" in (out / "report.html").read_text()
    from lumigrad.io.registry import load

    exported = load(out / "assets" / "animation.glb")
    track = next(c.track for c in exported.animations["animation0"].channels
                 if c.target == "node3" and c.path == "rotation")
    fitted = torch.tensor(m["parameters"]["animations.animation0.node3.rotation"]["final"]).reshape(3, 4)
    torch.testing.assert_close(track.values.abs(), fitted.abs().to(track.values), atol=1e-5, rtol=0)

    short = run_fit(write(tmp_path, steps=6), tmp_path / "short").metrics
    calls = {"n": 0}
    loss = Problem.loss

    def interrupted(self, step):
        calls["n"] += 1
        if step == 4:
            raise KeyboardInterrupt
        return loss(self, step)

    monkeypatch.setattr(Problem, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fit(write(tmp_path, steps=6), tmp_path / "parts")
    monkeypatch.setattr(Problem, "loss", loss)
    resumed = run_fit(write(tmp_path, steps=6), tmp_path / "parts", resume=True).metrics
    assert resumed["final_loss"] == short["final_loss"] and resumed["parameters"] == short["parameters"]
    assert json.loads((tmp_path / "parts" / "metrics.json").read_text())["times"] == short["times"]
