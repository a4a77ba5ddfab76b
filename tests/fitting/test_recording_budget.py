"""The surface distance recorded on a time budget: always at a fit's first and last step, in between only while
the in-between recordings stay within their share of the elapsed time (a clock injected, no timing asserts)."""

import pytest
import torch

import lumigrad.fitting.run as run_module
from lumigrad.fitting import run_fit
from lumigrad.fitting.metrics import RecordingBudget
from tests.fitting.test_run import config, shape_config  # noqa: F401 (the fixture)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def replay(budget, clock, steps, step_seconds, record_seconds):
    """Run ``steps`` steps of ``step_seconds`` each, recording (``record_seconds``) when the budget says so."""
    recorded = []
    for step in range(steps):
        clock.now += step_seconds
        if budget.due(step, steps - 1):
            def measure():
                clock.now += record_seconds
                return step
            recorded.append(budget.spend(measure))
    return recorded


def test_a_short_fit_records_its_start_its_end_and_what_the_share_allows():
    clock = FakeClock()
    # steps of 0.25 s, a recording of 0.4 s, 10 %: step k is seen 0.25 k + 0.4 s after step 0 (its recording
    # included); the next in-between recording is due once 0 + 0.4 s <= 0.1 x elapsed, at k >= 14.4
    assert replay(RecordingBudget(0.1, clock), clock, 10, 0.25, 0.4) == [0, 9]
    clock = FakeClock()
    assert replay(RecordingBudget(0.1, clock), clock, 20, 0.25, 0.4) == [0, 15, 19]
    clock = FakeClock()
    # then 0.4 + 0.4 <= 0.1 x (0.25 k + 0.8): k >= 28.8
    assert replay(RecordingBudget(0.1, clock), clock, 40, 0.25, 0.4) == [0, 15, 29, 39]


def test_in_between_recordings_stay_within_the_share_and_a_long_fit_records_often():
    clock = FakeClock()
    budget = RecordingBudget(0.1, clock)
    recorded = replay(budget, clock, 1000, 0.2, 0.4)
    elapsed = clock.now
    assert budget.spent <= 0.1 * elapsed + 0.4  # the last in-between recording may overrun by its own cost
    assert budget.spent >= 0.1 * elapsed - 2 * 0.4  # and the budget is used, not starved
    assert recorded[0] == 0 and recorded[-1] == 999 and len(recorded) > 40
    gaps = [b - a for a, b in zip(recorded[1:-2], recorded[2:-1])]
    # evenly spread: a 0.4 s recording per 4 s (10 %) is one per 18 steps of 0.2 s (+ its own 0.4 s); the clock's
    # float sums land a step either side of the exact boundary
    assert set(gaps) <= {17, 18, 19} and sum(gaps) / len(gaps) == pytest.approx(18, abs=0.1)


def test_share_zero_records_start_and_end_only_and_bad_shares_are_refused():
    clock = FakeClock()
    assert replay(RecordingBudget(0.0, clock), clock, 50, 1.0, 0.0) == [0, 49]
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ValueError, match="share must be a fraction"):
            RecordingBudget(bad)


def test_the_fit_records_surface_distance_on_the_budget(config, tmp_path, monkeypatch):  # noqa: F811
    """A shape fit whose surface-distance recording costs 100 s of a fake clock: recorded at its first and last
    step only (every step is a candidate of record_every); the cheap parameter errors still at every step."""
    clock = FakeClock()
    real_shape_error = run_module.shape_error_pct

    def slow_shape_error(*args, **kwargs):
        clock.now += 100.0
        return real_shape_error(*args, **kwargs)

    monkeypatch.setattr(run_module, "RecordingBudget", lambda share: RecordingBudget(share, clock))
    monkeypatch.setattr(run_module, "shape_error_pct", slow_shape_error)
    run_fit(shape_config(config, tmp_path, 5), tmp_path / "shape")
    logs = torch.load(tmp_path / "shape" / "checkpoint" / "checkpoint.pt", weights_only=False)["logs"]
    assert [k for k, log in enumerate(logs) if "error/shape_error_pct" in log] == [0, 4]
    assert all("error/meshes.mesh.material.base_color_factor" in log for log in logs)  # cheap errors: every step
