"""``[render]`` in fit configs: the integrator and its settings, checked key by key with one-line errors, and
used for the fitted scene and the synthetic targets; the library's own calls raise no FutureWarning."""

import warnings

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import ConfigError, build_problem, load_config, run_fit
from lumigrad.integrators import Integrator, RenderOutput, register_integrator, unregister_integrator

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
LOSS = 1.0
[fit]
steps = 2
"""


@pytest.fixture
def write(tmp_path):
    verts, faces = lg.geometry.icosphere(1)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))

    def make(render="", loss="mse"):
        p = tmp_path / "fit.toml"
        p.write_text(BASE.replace("LOSS", loss) + render)
        return p

    return make


class Grey(Integrator):
    """Uniform grey everywhere; no AOVs but ``mask``."""

    aov_names = ("mask",)

    def __init__(self, *, level: float = 0.5):
        if not isinstance(level, (int, float)) or isinstance(level, bool):
            raise TypeError(f"level must be a number; got {type(level).__name__}")
        self.level = float(level)

    def render(self, scene, camera, *, aovs=(), spp=1, seed=0):
        shape = camera.batch_shape + (camera.height, camera.width)
        alpha = torch.ones(shape + (1,), dtype=camera.dtype)
        return RenderOutput(self.level * alpha.expand(shape + (3,)), alpha, {a: alpha for a in aovs})


@pytest.fixture
def grey():
    register_integrator("grey", Grey)
    yield
    unregister_integrator("grey")


def test_render_table_defaults_and_settings(write):
    assert load_config(write()).render == lg.fitting.config.RenderConfig("raster", {})
    cfg = load_config(write('[render]\nintegrator = "raster"\nuse_antialias = false\nlens_samples = 2\n'))
    assert cfg.render.integrator == "raster" and cfg.render.settings == {"use_antialias": False, "lens_samples": 2}


@pytest.mark.parametrize("table, message", [
    ("antialias = false", "unknown key 'render.antialias' (did you mean 'use_antialias'?)"),
    ("use_antialias = 1", "render.use_antialias = 1: use_antialias must be a bool; got int"),
    ("lens_samples = 0", "render.lens_samples = 0: lens_samples must be positive; got 0"),
    ("lens_supersample = -1.0", "render.lens_supersample = -1.0: lens_supersample must be"),
    ('integrator = "bidir"', "render.integrator must be one of 'direct', 'path', 'raster'"),
    ('spp = 4', "integrator 'raster' renders one sample per pixel centre: spp and target_spp must be 1"),
    ('integrator = "path"\nspp = 0', "render.spp must be"),
    ('integrator = "path"\nmax_depth = 0', "max_depth must be a positive int or -1"),
    ("background = 0.5", "render.background is set by fit.background; remove it from [render]"),
])
def test_render_table_mistakes_are_one_line_naming_the_key(write, table, message):
    with pytest.raises(ConfigError) as err:
        load_config(write("[render]\n" + table + "\n"))
    text = str(err.value)
    assert text.startswith("fit.toml: ") and message in text and "\n" not in text


def test_a_registered_integrator_is_chosen_by_the_config(write, grey):
    cfg = load_config(write('[render]\nintegrator = "grey"\nlevel = 0.25\n'))
    assert cfg.render.settings == {"level": 0.25}
    with pytest.raises(ConfigError, match=r"render.level = 'x': level must be a number"):
        load_config(write('[render]\nintegrator = "grey"\nlevel = "x"\n'))
    with pytest.raises(ConfigError, match=r"unknown key 'render.use_antialias'; known keys: integrator, level"):
        load_config(write('[render]\nintegrator = "grey"\nuse_antialias = false\n'))
    problem = build_problem(cfg)
    assert torch.equal(problem.targets[..., :3], torch.full((2, 16, 16, 3), 0.25))  # truth rendered by it too
    with pytest.raises(ConfigError, match=r"loss.depth needs the AOVs depth, normal, mask, and render.integrator "
                                          r"'grey' does not give depth, normal"):
        build_problem(load_config(write('[render]\nintegrator = "grey"\n', loss="depth")))


def test_render_settings_reach_the_fitted_scene_and_the_targets(write):
    plain = build_problem(load_config(write()))
    hard = build_problem(load_config(write("[render]\nuse_antialias = false\n")))
    scene, camera = hard.scene, hard.camera
    expected = lg.render(scene, camera, background=torch.tensor(0.0), use_antialias=False).rgba
    assert torch.equal(hard.render_views(), expected)
    assert not torch.equal(plain.render_views(), expected)  # antialiased silhouettes by default
    with torch.no_grad():
        truth = lg.render(hard.truth, camera, background=torch.tensor(0.0), use_antialias=False).rgba
    assert torch.equal(hard.targets, truth)


def test_depth_terms_use_hard_buffers_from_the_same_render(write):
    problem = build_problem(load_config(write(loss="depth")))
    geometry = lg.render_geometry(problem.truth, problem.camera, use_antialias=False)
    assert torch.equal(problem.target_geometry, torch.cat([geometry["depth"], geometry["normal"]], -1))
    loss, terms = problem.loss(0)
    assert float(loss.detach()) == 0.0 and terms == {"loss/depth": 0.0}  # the same shape as the truth: no depth error


def test_the_library_itself_raises_no_future_warning(write, tmp_path):
    from lumigrad.cli.main import main

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        run_fit(write(loss="mse = 1.0\ndepth"), tmp_path / "out")
        lg.io.save(tmp_path / "ball.obj", lg.geometry.icosphere(1))
        assert main(["render", str(tmp_path / "ball.obj"), "-o", str(tmp_path / "ball.png"), "--size", "16",
                     "16"]) == 0
        assert main(["gradcheck", str(tmp_path / "ball.obj"), "meshes.mesh.verts", "--size", "16",
                     "16", "--samples", "2"]) in (0, 1)


@pytest.mark.slow
def test_a_fit_through_the_path_tracer_recovers_albedo_and_light(tmp_path):
    """``[render] integrator = "path"``: targets at ``target_spp``, each step at ``spp`` with a seed of its
    own, gradients by path replay."""
    from .test_run import CONFIG

    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))
    path = tmp_path / "fit.toml"
    path.write_text(CONFIG.replace("STEPS", "60").replace("size = 24", "size = 16")
                    + '[render]\nintegrator = "direct"\nspp = 2\ntarget_spp = 32\n')
    outcome = run_fit(path, tmp_path / "out")
    m = outcome.metrics
    albedo = m["parameters"]["meshes.mesh.material.base_color_factor"]
    light = m["parameters"]["lights.key.intensity"]
    assert albedo["mean_abs_error"] < 0.3 * albedo["initial_mean_abs_error"]
    assert light["mean_abs_error"] < 0.3 * light["initial_mean_abs_error"]
