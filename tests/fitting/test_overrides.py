"""``lumigrad fit --set KEY=VALUE``: values read as TOML, dotted keys with list indices, the loader's "did you
mean" for misspelt keys, and the run folder's copy of the config holding the overridden values."""

import sys

import pytest

import lumigrad as lg
from lumigrad.cli.main import main
from lumigrad.fitting import ConfigError, load_config
from lumigrad.fitting.overrides import apply_overrides, parse_value, to_toml
from lumigrad.fitting.run_folder import config_identity

from .test_run import CONFIG, config  # noqa: F401 - config: the tiny fit's fixture (a maker of config files)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.mark.parametrize("text, value", [("50", 50), ("0.02", 0.02), ("true", True), ('"a b"', "a b"),
                                         ("[1, 2.5]", [1, 2.5]), ("adam", "adam"), ("cosine", "cosine"),
                                         ("1e-3", 1e-3), ("", "")])
def test_values_are_toml_and_bare_words_are_strings(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_dotted_keys_and_indices_set_values_and_leave_the_original_alone(config):
    raw = tomllib.loads(CONFIG.replace("STEPS", "40"))
    out = apply_overrides(raw, ["fit.steps=5", "optimize[0].lr=0.02", "scene.lights[0].position=[0, 1, 2]",
                                "render.spp=4", "fit.steps=6"])
    assert out["fit"]["steps"] == 6 and out["optimize"][0]["lr"] == 0.02  # the later --set wins
    assert out["scene"]["lights"][0]["position"] == [0, 1, 2] and out["render"] == {"spp": 4}
    assert raw["fit"]["steps"] == 40 and "render" not in raw


@pytest.mark.parametrize("item, message", [
    ("fit.learning_rate=0.1", "--set fit.learning_rate=0.1: fit.toml: unknown key 'fit.learning_rate'"),
    ("optimize[0].learning_rate=0.1", "unknown key 'optimize[0].learning_rate' (did you mean 'lr'?)"),
    ("fitt.steps=3", "--set fitt.steps=3: fit.toml: unknown key 'fitt' (did you mean 'fit'?)"),
    ("fit.steps=many", "--set fit.steps=many: fit.toml: fit.steps must be an integer >= 1"),
    ("fit.steps.x=1", "--set fit.steps.x: fit.steps is the value 40, not a table"),
    ("optimize[3].lr=1", "--set optimize[3].lr: optimize has 2 entries (indices 0 to 1)"),
    ("fit.steps", "--set 'fit.steps': expected KEY=VALUE"),
    ("fit..steps=1", "is not a dotted key"),
])
def test_mistakes_name_the_set_and_suggest_the_key(config, item, message):
    with pytest.raises(ConfigError) as info:
        load_config(config(), overrides=[item])
    assert message in str(info.value)


def test_toml_writer_round_trips_the_example_configs():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[2] / "examples" / "configs").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        assert tomllib.loads(to_toml(raw)) == raw, path.name
    odd = {"a b": "quote \" and \\ and \n", "x": {"inf": float("inf"), "t": [{"u": 1}, {"u": 2, "v": {"w": [1]}}]}}
    assert tomllib.loads(to_toml(odd)) == odd


def test_cli_set_is_recorded_in_the_run_folder_and_resumes_only_with_it(config, tmp_path, capsys):
    config, out = config(), tmp_path / "run"
    sets = ["--set", "fit.steps=2", "--set", "data.views=2", "--set", "optimize[0].lr=0.05"]
    assert main(["fit", str(config), "-o", str(out), "--no-progress", *sets]) == 0
    assert "tiny: 2 steps" in capsys.readouterr().out
    copy = out / "config.toml"
    text = copy.read_text()
    assert "#   data.views=2" in text  # the overrides, listed on top
    again = load_config(copy)  # the copy alone re-runs the same fit
    assert (again.fit.steps, again.data.views, again.optimize[0].lr) == (2, 2, 0.05)
    assert config_identity(again)["keys"] == config_identity(load_config(config, sets[1::2]))["keys"]
    # the checkpoint belongs to the overridden config: resuming without the overrides is a different config
    assert main(["fit", str(config), "-o", str(out), "--no-progress", "--resume"]) == 2
    assert "different configuration" in capsys.readouterr().err
    assert main(["fit", str(config), "-o", str(out), "--no-progress", "--resume", *sets]) == 0
