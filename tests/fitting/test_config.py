"""``lumigrad fit`` configurations: every mistake is a ConfigError naming the file and the key."""

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import ConfigError, build_problem, load_config


def write(tmp_path, text, name="fit.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def sphere_obj(tmp_path):
    verts, faces = lg.geometry.icosphere(1)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))
    return tmp_path / "sphere.obj"


BASE = """
[scene]
file = "sphere.obj"
[data]
views = 2
size = 16
[[optimize]]
params = "meshes.*.material.base_color_factor"
map = "sigmoid"
lr = 0.05
[loss]
mse = 1.0
"""


def test_a_good_config_parses_with_defaults(tmp_path, sphere_obj):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.data.synthetic and cfg.data.size == (16, 16) and cfg.fit.steps == 200
    assert cfg.optimize[0].name == "group0" and cfg.optimize[0].optimizer == "adam"
    assert cfg.loss == {"mse": 1.0} and cfg.scene.file == sphere_obj


def test_the_scenes_pixel_filter_reaches_the_film(tmp_path, sphere_obj):
    """``[scene] pixel_filter`` sets the film's filter of the fitted scene (the path tracer's); a name that is
    not a filter names the key."""
    with_filter = lambda name: BASE.replace('file = "sphere.obj"', f'file = "sphere.obj"\npixel_filter = "{name}"')  # noqa
    cfg = load_config(write(tmp_path, with_filter("tent")))
    assert cfg.scene.pixel_filter == "tent"
    assert build_problem(cfg).scene.film.pixel_filter == lg.cameras.PixelFilter("tent")
    assert build_problem(load_config(write(tmp_path, BASE))).scene.film.pixel_filter.is_box
    with pytest.raises(ConfigError, match="scene.pixel_filter must be one of 'box', 'tent', 'gaussian'"):
        load_config(write(tmp_path, with_filter("gauss")))


def test_yaml_and_toml_give_the_same_config(tmp_path, sphere_obj):
    yaml_text = """
scene: {file: sphere.obj}
data: {views: 2, size: 16}
optimize:
  - {params: "meshes.*.material.base_color_factor", map: sigmoid, lr: 0.05}
loss: {mse: 1.0}
"""
    a, b = load_config(write(tmp_path, BASE)), load_config(write(tmp_path, yaml_text, "fit.yaml"))
    assert (a.scene, a.data, a.optimize, a.loss, a.fit) == (b.scene, b.data, b.optimize, b.loss, b.fit)


@pytest.mark.parametrize("change, message", [
    (("[fit]", "[fit]\nstep = 3"), "unknown key 'fit.step' (did you mean 'steps'?)"),
    (("lr = 0.05", "lr = 'fast'"), "optimize[0].lr must be a finite number > 0.0; got 'fast'"),
    (("lr = 0.05", "lr = -1"), "optimize[0].lr must be a finite number > 0.0"),
    (("lr = 0.05\n", ""), "optimize[0].lr is required"),
    (("lr = 0.05", "learning_rate = 0.05"), "optimize[0].lr is required (the table has 'learning_rate': did you "
                                            "mean 'lr'?)"),
    (("[fit]", "[fit]\niterations = 3"), "unknown key 'fit.iterations' (did you mean 'steps'?)"),
    (('map = "sigmoid"', 'map = "tanh"'), "optimize[0].map must be one of 'identity'"),
    (("mse = 1.0", "ssim = 0.0"), "[loss] needs at least one image term"),
    (('file = "sphere.obj"', 'file = "missing.obj"'), "missing.obj, which does not exist"),
    (("size = 16", "size = [16]"), "data.size must be a positive pixel count or [width, height]"),
    (("[loss]", "[fit]\ncoarse_to_fine = [[0.5, 0.5]]\n[loss]"), "fit.coarse_to_fine must be"),
])
def test_mistakes_name_the_key(tmp_path, sphere_obj, change, message):
    text = BASE + "[fit]\nsteps = 3\n" if change[0] == "[fit]" else BASE
    text = text.replace(*change)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value) and "fit.toml" in str(info.value)


def test_unparsable_files_and_suffixes(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[scene\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n", "fit.yaml"))
    with pytest.raises(ConfigError, match="is a .toml, .yaml or .yml file"):
        load_config(write(tmp_path, "{}", "fit.json"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nothing.toml")


def test_unknown_parameters_list_what_the_scene_has(tmp_path, sphere_obj):
    cfg = load_config(write(tmp_path, BASE.replace("meshes.*.material.base_color_factor", "meshes.*.albedo")))
    with pytest.raises(ConfigError, match=r"no scene parameter matches 'meshes.\*.albedo'.*the scene has \d+ "
                                          r"parameters: meshes"):
        build_problem(cfg)
    cfg = load_config(write(tmp_path, BASE.replace("meshes.*.material.base_color_factor",
                                                   "meshes.mesh.material.base_colour_factor")))
    with pytest.raises(ConfigError) as info:
        build_problem(cfg)
    message = str(info.value)
    assert "did you mean 'meshes.mesh.material.base_color_factor'" in message
    assert "cameras.views.world_to_cam" in message  # every name is listed, the camera's too
    cfg = load_config(write(tmp_path, BASE + '[data.set]\n"lights.sun.intensity" = 2.0\n'))
    with pytest.raises(ConfigError, match="data.set names 'lights.sun.intensity', which the true scene does not"):
        build_problem(cfg)


def test_a_parameter_in_two_groups_and_maps_that_do_not_fit(tmp_path, sphere_obj):
    twice = BASE + '[[optimize]]\nname = "again"\nparams = "meshes.*.material.*"\nlr = 0.1\n'
    with pytest.raises(ConfigError, match="in both"):
        build_problem(load_config(write(tmp_path, twice)))
    wrong = BASE.replace('map = "sigmoid"', 'map = "pose"')
    with pytest.raises(ConfigError, match="map 'pose' is for rigid transforms"):
        build_problem(load_config(write(tmp_path, wrong)))


def test_silhouette_needs_masks_in_the_photos(tmp_path, sphere_obj):
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=16, height=16)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", [cam], [tmp_path / "view0.png"])
    lg.io.write_image(tmp_path / "view0.png", torch.rand(16, 16, 3))
    text = BASE.replace("views = 2\nsize = 16", 'dataset = "transforms.json"').replace("mse = 1.0",
                                                                                        "mse = 1.0\nsilhouette = 1.0")
    with pytest.raises(ConfigError, match="loss.silhouette needs target masks"):
        build_problem(load_config(write(tmp_path, text)))
    with pytest.raises(ConfigError, match="data.views describes synthetic targets"):
        load_config(write(tmp_path, BASE.replace("views = 2", 'dataset = "transforms.json"\nviews = 2')))
