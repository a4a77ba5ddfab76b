"""``lumigrad fit`` end to end on tiny problems: recovery, the output folder, resume, real-photo datasets and
the command line's exit codes."""

import json
import math

import pytest
import torch

import lumigrad as lg
from lumigrad.cli.main import main
from lumigrad.fitting import ConfigError, run_fit
from lumigrad.fitting.problem import Problem

CONFIG = """
name = "tiny"
[scene]
file = "sphere.obj"
[[scene.lights]]
name = "key"
type = "point"
position = [2.0, 2.0, -2.0]
intensity = 4.0
[[scene.lights]]
name = "fill"
type = "directional"
direction = [1.0, -1.0, 1.0]
intensity = 1.0
[data]
views = 3
size = 24
[data.set]
"meshes.mesh.material.base_color_factor" = [0.7, 0.3, 0.2, 1.0]
"lights.key.intensity" = 8.0
[[optimize]]
name = "albedo"
params = "meshes.*.material.base_color_factor"
map = "sigmoid"
init = [0.5, 0.5, 0.5, 1.0]
lr = 0.1
[[optimize]]
name = "light"
params = "lights.key.intensity"
map = "exp"
lr = 0.1
schedule = "cosine"
[loss]
mse = 1.0
l1 = 0.1
[fit]
steps = STEPS
checkpoint_every = 2
"""


@pytest.fixture
def config(tmp_path):
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))

    def make(steps=40, extra=""):
        p = tmp_path / "fit.toml"
        p.write_text(CONFIG.replace("STEPS", str(steps)) + extra)
        return p

    return make


def test_fit_recovers_albedo_and_light_and_writes_the_report(config, tmp_path):
    outcome = run_fit(config(80), tmp_path / "out")
    m = outcome.metrics
    albedo = m["parameters"]["meshes.mesh.material.base_color_factor"]
    light = m["parameters"]["lights.key.intensity"]
    # The known fill light separates albedo from the key light's intensity (under one light only their
    # product would be seen).
    assert m["psnr_final_db"] > m["psnr_initial_db"] + 10
    assert albedo["mean_abs_error"] < 0.05 * albedo["initial_mean_abs_error"]
    assert light["mean_abs_error"] < 0.05 * light["initial_mean_abs_error"]
    out = outcome.out_dir
    for name in ("report.html", "metrics.json", "config.toml", "images/views.png", "images/error.png",
                 "plots/loss.png", "plots/parameters.png", "assets/scene.glb", "checkpoint/checkpoint.pt"):
        assert (out / name).stat().st_size > 100, name
    assert json.loads((out / "metrics.json").read_text())["steps"] == 80
    html = (out / "report.html").read_text()
    assert "images/views.png" in html and "lights.key.intensity" in html and "assets/scene.glb" in html
    from ..test_report_html import _chromium, _chromium_run

    dom = _chromium_run(_chromium(), tmp_path, out / "report.html", "--dump-dom")  # every image shows
    assert 'data-images-loaded="4/4"' in dom
    scene = lg.io.load(out / "assets" / "scene.glb")  # the fitted scene opens again
    assert torch.allclose(scene.meshes["mesh"].material.base_color_factor,
                          torch.tensor(albedo["final"], dtype=torch.float32), atol=1e-5)


def interrupt(path, out, monkeypatch, at_step):
    """Run the fit of ``path`` into ``out`` and interrupt it (Ctrl-C) when step ``at_step`` starts."""
    loss = Problem.loss

    def interrupted(self, step):
        if step == at_step:
            raise KeyboardInterrupt
        return loss(self, step)

    monkeypatch.setattr(Problem, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fit(path, out)
    monkeypatch.setattr(Problem, "loss", loss)


def test_an_interrupted_fit_resumes_bit_for_bit(config, tmp_path, monkeypatch):
    whole = run_fit(config(6), tmp_path / "whole").metrics
    interrupt(config(6), tmp_path / "parts", monkeypatch, at_step=5)
    with pytest.raises(ConfigError, match="add --resume to continue it"):
        run_fit(config(6), tmp_path / "parts")
    resumed = run_fit(config(6), tmp_path / "parts", resume=True).metrics
    assert resumed["final_loss"] == whole["final_loss"]
    assert resumed["parameters"] == whole["parameters"]


def photo_config(config, tmp_path, steps):
    """The tiny config with its synthetic [data] replaced by a dataset of photos in transforms.json."""
    text = config(steps).read_text().replace("[data]\nviews = 3\nsize = 24", '[data]\ndataset = "transforms.json"')
    text = text[:text.index("[data.set]")] + text[text.index("[[optimize]]"):]
    (tmp_path / "photos.toml").write_text(text)
    return tmp_path / "photos.toml"


def test_fit_from_a_folder_of_photos_with_cameras(config, tmp_path):
    """Real-data path: photos + transforms.json, taken of a scene the fit does not see."""
    config(2)
    scene = lg.scene.scene_from_mesh(lg.io.load(tmp_path / "sphere.obj"))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, -2.0]), torch.tensor(8.0)))
    scene.add_light("fill", lg.DirectionalLight(torch.tensor([1.0, -1.0, 1.0]), torch.tensor(1.0)))
    scene.meshes["mesh"].material.base_color_factor = torch.tensor([0.7, 0.3, 0.2, 1.0])
    cams = [lg.Camera.look_at([3.0 * (k - 1), 0.5, -3.0], [0.0, 0.0, 0.0], width=20, height=20) for k in range(3)]
    paths = []
    for k, cam in enumerate(cams):
        paths.append(tmp_path / f"photo{k}.png")
        lg.io.write_image(paths[-1], lg.render(scene, cam, background=0.0)[..., :3])
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, paths)
    outcome = run_fit(photo_config(config, tmp_path, 80), tmp_path / "real")
    m = outcome.metrics
    assert m["synthetic_targets"] is False and m["views"] == 3 and m["image_size"] == [20, 20]
    assert m["psnr_final_db"] > m["psnr_initial_db"] + 10
    albedo = m["parameters"]["meshes.mesh.material.base_color_factor"]["final"]
    assert max(abs(a - b) for a, b in zip(albedo[:3], [0.7, 0.3, 0.2])) < 0.02  # 8-bit photos
    assert (outcome.out_dir / "report.html").exists()


def test_cli_exit_codes_and_messages(config, tmp_path, capsys):
    assert main(["fit", str(config(2)), "-o", str(tmp_path / "ok"), "--no-progress"]) == 0
    assert "report:" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(config(2).read_text().replace("lr = 0.1", "lr = 0.1\nlearning_rate = 2"))
    assert main(["fit", str(bad), "-o", str(tmp_path / "bad"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optimize[0].learning_rate'" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["fit", str(tmp_path / "missing.toml"), "--no-progress"]) == 2
    assert "no such config file" in capsys.readouterr().err
    diverging = tmp_path / "nan.toml"
    diverging.write_text(config(5).read_text().replace('map = "exp"\nlr = 0.1', 'map = "exp"\nlr = 1e30'))
    assert main(["fit", str(diverging), "-o", str(tmp_path / "nan"), "--no-progress"]) == 3
    assert "the fit diverged" in capsys.readouterr().err


def test_photos_whose_size_disagrees_with_the_cameras_are_refused(config, tmp_path, capsys):
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=20, height=20)
    lg.io.write_image(tmp_path / "photo.png", torch.rand(24, 20, 3))
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", [cam], [tmp_path / "photo.png"])
    assert main(["fit", str(photo_config(config, tmp_path, 2)), "-o", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "photo.png is 20x24 pixels but its camera" in err and "is 20x20" in err


def test_photos_outside_the_dataset_folder_need_trust_paths(config, tmp_path, capsys):
    """transforms.json naming a photo in another folder: refused (one line, exit 2) unless --trust-paths."""
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=20, height=20)
    (tmp_path / "elsewhere").mkdir()
    lg.io.write_image(tmp_path / "elsewhere" / "photo.png", torch.rand(20, 20, 3))
    (tmp_path / "data").mkdir()
    lg.io.write_nerf_transforms(tmp_path / "data" / "transforms.json", [cam], [tmp_path / "elsewhere" / "photo.png"])
    cfg = photo_config(config, tmp_path, 1)
    cfg.write_text(cfg.read_text().replace('dataset = "transforms.json"', 'dataset = "data/transforms.json"'))
    args = ["fit", str(cfg), "-o", str(tmp_path / "o"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "outside" in err and len(err.splitlines()) == 1
    assert main(args + ["--trust-paths"]) == 0


def test_perceptual_and_adversarial_terms_run_and_resume(config, tmp_path, monkeypatch):
    path = tmp_path / "gan.toml"
    path.write_text(config(4).read_text().replace("mse = 1.0\nl1 = 0.1", "mse = 1.0\nperceptual = 0.1\nadversarial = 0.01"))
    whole = run_fit(path, tmp_path / "whole")
    checkpoint = torch.load(whole.out_dir / "checkpoint" / "checkpoint.pt", weights_only=False)
    assert {"loss/mse", "loss/perceptual", "loss/adversarial"} <= set(checkpoint["logs"][-1])
    assert "adversary" in checkpoint["extra"]  # the discriminator is saved with the fit
    interrupt(path, tmp_path / "parts", monkeypatch, at_step=3)
    resumed = run_fit(path, tmp_path / "parts", resume=True)
    assert resumed.metrics["parameters"] == whole.metrics["parameters"]


def shape_config(config, tmp_path, steps):
    """The tiny config with the sphere's vertices fitted too (large steps, silhouette and Laplacian terms)."""
    text = config(steps).read_text().replace('[[optimize]]\nname = "light"', '[[optimize]]\nname = "shape"\n'
                                             'params = "meshes.mesh.verts"\nmap = "large_steps"\nlr = 0.01\n\n'
                                             '[[optimize]]\nname = "light"')
    text = text.replace("mse = 1.0\nl1 = 0.1", "mse = 1.0\nsilhouette = 1.0\nlaplacian = 0.1")
    path = tmp_path / "shape.toml"
    path.write_text(text)
    return path


def test_shape_fit_reports_surface_distance_and_exports_obj_with_material(config, tmp_path):
    m = run_fit(shape_config(config, tmp_path, 3), tmp_path / "shape").metrics
    assert m["shape_error_pct_initial"] == pytest.approx(0.0, abs=0.2)  # the same sphere, up to sampling
    assert m["shape_error_pct_final"] < 5.0
    mesh = lg.io.load(tmp_path / "shape" / "assets" / "mesh.obj")
    assert mesh.faces.shape == (320, 3) and len(mesh.materials) == 1
    fitted = m["parameters"]["meshes.mesh.material.base_color_factor"]["final"]
    assert mesh.materials[0].base_color_factor.tolist() == pytest.approx(fitted, abs=1e-5)


def test_depth_and_normal_terms_add_to_the_silhouette(config, tmp_path):
    """A sphere flattens to its target: depth + normal terms on top of the silhouette do better than it alone."""
    squashed = lg.geometry.icosphere(2)[0] * torch.tensor([1.0, 0.6, 1.0])
    lg.io.save(tmp_path / "squashed.obj", (squashed, lg.geometry.icosphere(2)[1]))
    text = config(100).read_text()
    text = text[:text.index("[data.set]")].replace("[data]\n", '[data]\ntruth = "squashed.obj"\n') + '''[[optimize]]
name = "shape"
params = "meshes.mesh.verts"
map = "large_steps"
lr = 0.1
[fit]
steps = 100
record_every = 50
[loss]
silhouette = 1.0
'''
    errors = {}
    for name, extra in (("silhouette", ""), ("with-depth", "depth = 1.0\nnormal = 0.5\n")):
        (tmp_path / f"{name}.toml").write_text(text + extra)
        m = run_fit(tmp_path / f"{name}.toml", tmp_path / name).metrics
        errors[name] = (m["shape_error_pct_initial"], m["shape_error_pct_final"])
    # When written: 4.9 % -> 0.65 % with the silhouette alone, 0.29 % with depth and normals.
    assert errors["with-depth"][1] < 0.7 * errors["silhouette"][1] < 0.7 * 0.25 * errors["silhouette"][0]


def test_depth_maps_beside_photos_drive_a_shape_fit(config, tmp_path):
    """RGB-D-style data: photos with .npy depth maps; colour + depth flatten the sphere."""
    import numpy as np

    config(2)
    v, f = lg.geometry.icosphere(2)
    truth = lg.scene_from_mesh(lg.Mesh(v * torch.tensor([1.0, 0.6, 1.0]), f))  # the fit's default material
    truth.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, -2.0]), torch.tensor(4.0)))  # as in CONFIG
    truth.add_light("fill", lg.DirectionalLight(torch.tensor([1.0, -1.0, 1.0]), torch.tensor(1.0)))
    cams = [lg.Camera.look_at([3.0 * math.sin(a), 1.0, -3.0 * math.cos(a)], [0.0, 0.0, 0.0], width=24, height=24)
            for a in (0.0, 2.0, 4.0)]
    (tmp_path / "depth").mkdir()
    paths = []
    for k, cam in enumerate(cams):
        paths.append(tmp_path / f"view{k}.png")
        lg.io.write_image(paths[-1], lg.render(truth, cam, background=0.0)[..., :3])
        depth = lg.render_geometry(truth, cam, use_antialias=False)["depth"]  # a sensor: no edge blending
        np.save(tmp_path / "depth" / f"view{k}.npy", depth[..., 0].numpy())
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, paths)
    text = photo_config(config, tmp_path, 60).read_text()
    text = text[:text.index("[[optimize]]")] + '''[[optimize]]
name = "shape"
params = "meshes.mesh.verts"
map = "large_steps"
lr = 0.1
[loss]
mse = 1.0
depth = 1.0
[fit]
steps = 60
'''
    (tmp_path / "rgbd.toml").write_text(text.replace('dataset = "transforms.json"',
                                                     'dataset = "transforms.json"\ndepth_dir = "depth"'))
    m = run_fit(tmp_path / "rgbd.toml", tmp_path / "rgbd").metrics
    assert m["final_loss"] < 0.3 * m["initial_loss"]  # 0.127 -> 0.025 when written
    (tmp_path / "no-depth.toml").write_text(text)
    with pytest.raises(ConfigError, match="loss.depth with photos needs data.depth_dir"):
        run_fit(tmp_path / "no-depth.toml", tmp_path / "x")
    (tmp_path / "normal.toml").write_text(text.replace("depth = 1.0", "normal = 1.0"))
    assert "mse = 1.0\ndepth = 1.0" in text
    with pytest.raises(ConfigError, match="loss.normal needs normal targets"):
        run_fit(tmp_path / "normal.toml", tmp_path / "y")
