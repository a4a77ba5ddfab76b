"""``lumigrad fit`` draws its random numbers (the views of a step, the discriminator's initial weights) from its
own generators, never from torch's global RNG: two fits in one process with the same seed are bit-identical
whatever else uses the global RNG, and a fit leaves the global RNG as it found it."""

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import load_config, run_fit
from lumigrad.fitting.problem import Problem, build_problem
from lumigrad.fitting.run import make_fit
from lumigrad.optim import read_checkpoint

CONFIG = """
name = "rng"
[scene]
file = "sphere.obj"
[[scene.lights]]
name = "key"
type = "point"
position = [2.0, 2.0, -2.0]
intensity = 4.0
[data]
views = 4
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
[loss]
mse = 1.0
adversarial = 0.01
[fit]
steps = 5
views_per_step = 2
seed = 5
"""

STEPS = 5


@pytest.fixture
def config(tmp_path):
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))
    path = tmp_path / "rng.toml"
    path.write_text(CONFIG)
    return path


def _disturb(step: int) -> None:
    """What other code in the process might do to torch's global RNG between two steps of a fit."""
    torch.manual_seed(1000 + step)
    torch.rand(17)


def _outcome(fit, problem):
    return fit.losses, fit.logs, {n: problem.scene[n].detach().clone() for n in problem.optimised_names()}


def _same(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2].keys() == b[2].keys() and all(torch.equal(a[2][n], b[2][n]) for n in a[2])


def test_two_interleaved_fits_equal_one_alone_whatever_uses_the_global_rng(config):
    alone_problem = build_problem(load_config(config))
    alone = make_fit(alone_problem)
    alone.run()
    want = _outcome(alone, alone_problem)
    assert len(want[0]) == STEPS

    # two fits of the same config and seed in one process, stepped alternately, the global RNG reseeded and
    # drawn from before every step: each must be the fit above, bit for bit
    problems = [build_problem(load_config(config)) for _ in range(2)]
    fits = [make_fit(p) for p in problems]
    for step in range(STEPS):
        for fit in fits:
            _disturb(step)
            fit.steps = step + 1
            fit.run()
    for fit, problem in zip(fits, problems):
        _same(_outcome(fit, problem), want)


def test_run_fit_neither_reads_nor_changes_the_global_rng(config, tmp_path, monkeypatch):
    whole = run_fit(config, tmp_path / "whole")
    want = read_checkpoint(whole.out_dir / "checkpoint" / "checkpoint.pt")

    loss = Problem.loss

    def disturbed(self, step):
        _disturb(step)
        return loss(self, step)

    torch.manual_seed(77)
    before = torch.get_rng_state()
    again = run_fit(config, tmp_path / "undisturbed")
    assert torch.equal(torch.get_rng_state(), before)  # not seeded, not drawn from
    assert again.metrics["parameters"] == whole.metrics["parameters"]

    monkeypatch.setattr(Problem, "loss", disturbed)
    disturbed_run = run_fit(config, tmp_path / "disturbed")
    got = read_checkpoint(disturbed_run.out_dir / "checkpoint" / "checkpoint.pt")
    assert got["losses"] == want["losses"] and got["logs"] == want["logs"]
    for name, tensors in want["params"].items():
        assert all(torch.equal(a, b) for a, b in zip(tensors, got["params"][name]))
    assert torch.equal(got["rng"]["ranks"][0]["generator"], want["rng"]["ranks"][0]["generator"])
    assert got["rng"]["ranks"][0]["torch"] is None  # the global RNG is no part of a lumigrad fit's state
