"""``[output] tensorboard = true`` in a ``lumigrad fit`` configuration: live event files in ``OUT/tensorboard/``."""

import sys
import types

import pytest
import torch

from lumigrad.fitting import ConfigError, run_fit

from ..optim.test_tensorboard import RecordingWriter, read_events
from .test_run import config  # noqa: F401  (the tiny fit of test_run, as a fixture)

LIVE = "\n[output]\ntensorboard = true\n"


@pytest.fixture
def recording_writers(monkeypatch):
    """``torch.utils.tensorboard.SummaryWriter`` replaced by :class:`RecordingWriter` (no package needed)."""
    made = []

    def make(log_dir, purge_step=None):
        made.append(RecordingWriter(log_dir, purge_step))
        return made[-1]

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=make))
    return made


def test_fit_writes_losses_parameter_errors_and_previews(config, tmp_path, recording_writers):  # noqa: F811
    outcome = run_fit(config(6, LIVE), tmp_path / "out")
    (writer,) = recording_writers
    assert writer.log_dir == str(tmp_path / "out" / "tensorboard") and writer.purge_step == 0
    tags = {tag for tag, _, _ in writer.scalars}
    assert {"loss/total", "loss/mse", "loss/l1", "lr/albedo", "lr/light", "error/lights.key.intensity",
            "error/meshes.mesh.material.base_color_factor"} <= tags
    totals = [v for tag, v, _ in writer.scalars if tag == "loss/total"]
    assert len(totals) == 6 and totals[-1] < totals[0]
    errors = [(s, v) for tag, v, s in writer.scalars if tag == "error/lights.key.intensity"]
    final = outcome.metrics["parameters"]["lights.key.intensity"]
    assert errors[0][0] == 0 and errors[-1][0] == 5 and errors[-1][1] == pytest.approx(final["mean_abs_error"], rel=0.2)
    steps = [step for tag, _, step, _ in writer.images if tag == "views/0"]
    assert steps[0] == 0 and steps[-1] == 5
    image = writer.images[0][1]
    assert image.shape == (24, 48, 3) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert writer.closed == 1


def test_real_event_files(config, tmp_path):  # noqa: F811
    pytest.importorskip("tensorboard")
    run_fit(config(4, LIVE), tmp_path / "out")
    scalars, images = read_events(tmp_path / "out" / "tensorboard")
    assert [s for s, _ in scalars["loss/total"]] == [0, 1, 2, 3]
    assert "error/lights.key.intensity" in scalars
    assert images["views/0"][0] == (0, 48, 24)


def test_missing_package_is_a_config_error_naming_the_extra(config, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"fit.toml: output.tensorboard = true needs the tensorboard package: "
                                          r"pip install 'lumigrad\[tensorboard\]'"):
        run_fit(config(4, LIVE), tmp_path / "out")
    assert not (tmp_path / "out" / "tensorboard").exists()


def test_off_by_default(config, tmp_path, recording_writers):  # noqa: F811
    run_fit(config(2), tmp_path / "out")
    assert recording_writers == [] and not (tmp_path / "out" / "tensorboard").exists()
