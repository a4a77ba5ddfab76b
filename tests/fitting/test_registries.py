"""A new parameter map, loss term and light type are each one registration: this file defines all three, as a
plugin module would, and a fit config uses them (the validation messages list them too)."""

from dataclasses import dataclass
from typing import Dict, List

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import ConfigError, build_problem, load_config, run_fit
from lumigrad.fitting.losses import LOSS_TERMS, register_loss_term
from lumigrad.fitting.parameterize import MAPS, Parameterization, register_map
from lumigrad.scene import LIGHT_TYPES, Setting, register_light_type
from lumigrad.shading.lights import LightSample, directional_light


# ------------------------------------------------------------------------------ the three new entries
@dataclass
class OverheadLight:
    """A distant light shining straight down with irradiance ``power`` (white)."""

    power: torch.Tensor

    def parameters(self) -> Dict[str, torch.Tensor]:
        return {"power": self.power}

    def samples(self, x: torch.Tensor) -> List[LightSample]:
        down = torch.tensor([0.0, -1.0, 0.0], dtype=x.dtype, device=x.device)
        return [directional_light(x, down, self.power[..., None] * torch.ones(3, dtype=x.dtype, device=x.device))]


def softplus_map(request) -> Parameterization:
    """``value = softplus(u)``, for positive parameters; the leaf starts at ``softplus^-1(start)``."""
    leaf = torch.log(torch.expm1(request.start.clamp_min(1e-6))).requires_grad_(True)
    return Parameterization(request.names, [leaf], lambda: torch.nn.functional.softplus(leaf))


CALLS = []


def mean_brightness(x) -> torch.Tensor:
    """How far the renders' mean colour is from the targets'."""
    CALLS.append(x.rgb.shape)
    return (x.rgb.mean() - x.target_rgb.mean()).abs()


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_map("softplus", softplus_map, kinds=("light_intensity",), suits="light strengths")
    register_loss_term("mean_brightness", mean_brightness)
    register_light_type("overhead", OverheadLight, param_kinds={"power": "light_intensity"},
                        settings={"power": Setting(default=1.0, low=0.0)},
                        from_settings=lambda s: OverheadLight(torch.tensor(s["power"])))
    yield
    MAPS.unregister("softplus")
    LOSS_TERMS.unregister("mean_brightness")
    LIGHT_TYPES.unregister("overhead")


CONFIG = """
name = "plugins"
[scene]
file = "sphere.obj"
default_lights = false
[[scene.lights]]
name = "top"
type = "overhead"
power = 1.0
[data]
views = 2
size = 16
[data.set]
"lights.top.power" = 3.0
[[optimize]]
name = "light"
params = "lights.top.power"
map = "softplus"
lr = 0.2
[loss]
mse = 1.0
mean_brightness = 0.5
[fit]
steps = 6
checkpoint_every = 6
"""


@pytest.fixture
def config_path(tmp_path):
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))

    def make(text=CONFIG):
        p = tmp_path / "fit.toml"
        p.write_text(text)
        return p

    return make


def test_a_fit_uses_a_new_map_loss_term_and_light_type(config_path, tmp_path):
    config = load_config(config_path())
    assert config.loss == {"mse": 1.0, "mean_brightness": 0.5}
    problem = build_problem(config)
    light = problem.scene.lights["top"]
    assert isinstance(light, OverheadLight) and isinstance(problem.truth.lights["top"], OverheadLight)
    info = problem.scene.param_info("lights.top.power")
    assert (info.kind, info.owner_kind) == ("light_intensity", "overhead")
    (leaf,) = problem.leaves("light")
    assert float(torch.nn.functional.softplus(leaf.detach())) == pytest.approx(1.0)  # the map's leaf
    CALLS.clear()
    outcome = run_fit(config, tmp_path / "out")
    assert len(CALLS) >= 6  # the term ran every step
    power = outcome.metrics["parameters"]["lights.top.power"]
    assert power["true"] == 3.0 and power["mean_abs_error"] < power["initial_mean_abs_error"]


@pytest.mark.parametrize("change, message", [
    (('map = "softplus"', 'map = "tanh"'), "optimize[0].map must be one of 'identity', 'sigmoid', 'exp', "
                                           "'large_steps', 'pose', 'intrinsics', 'unit', 'lens', 'softplus'; "
                                           "got 'tanh'"),
    (('type = "overhead"', 'type = "ring"'), "scene.lights[0].type must be one of 'point', 'spot', 'directional', "
                                             "'overhead'; got 'ring'"),
    (("mean_brightness = 0.5", "mean_brightnes = 0.5"), "unknown key 'loss.mean_brightnes' (did you mean "
                                                        "'mean_brightness'?)"),
    (("power = 1.0", "power = -1.0"), "scene.lights[0].power must be a finite number >= 0.0; got -1.0"),
    (("power = 1.0", "power = 1.0\ndirection = [0.0, -1.0, 0.0]"), "unknown key 'scene.lights[0].direction'"),
    (('type = "overhead"\npower = 1.0', 'type = "point"'), "scene.lights[0] of type 'point' needs 'position'"),
])
def test_config_validation_lists_the_registered_choices(config_path, change, message):
    with pytest.raises(ConfigError) as info:
        load_config(config_path(CONFIG.replace(*change)))
    assert message in str(info.value)


def test_a_map_refuses_parameters_of_other_kinds(config_path):
    text = CONFIG.replace('params = "lights.top.power"', 'params = "meshes.*.material.roughness_factor"')
    with pytest.raises(ConfigError, match="map 'softplus' is for light strengths; 'meshes.mesh.material"):
        build_problem(load_config(config_path(text)))


def test_registrations_are_checked():
    with pytest.raises(ValueError, match="map 'softplus' is already registered"):
        register_map("softplus", softplus_map)
    with pytest.raises(ValueError, match="'brightness' is not a parameter kind"):
        register_map("other", softplus_map, kinds=("brightness",))
    with pytest.raises(ValueError, match="needs 'colour' is not one of alpha, depth, normal"):
        register_loss_term("other", mean_brightness, needs=("colour",))
    with pytest.raises(ValueError, match="OverheadLight is already registered as light type 'overhead'"):
        register_light_type("overhead2", OverheadLight)
    with pytest.raises(ValueError, match="settings and from_settings go together"):
        register_light_type("other", type("Other", (), {}), settings={"power": Setting()})
    with pytest.raises(KeyError, match="unknown loss term 'nope'; choose one of 'mse'"):
        LOSS_TERMS["nope"]
