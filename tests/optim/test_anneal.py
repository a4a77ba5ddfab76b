"""Annealing schedules: ends, monotonicity, hold, bad input."""

import pytest

from lumigrad.optim.anneal import SoftRasterSchedule, anneal


@pytest.mark.parametrize("kind", ["geometric", "linear", "cosine"])
def test_schedules_run_from_start_to_end_monotonically(kind):
    values = [anneal(s, 100, 8.0, 0.5, kind) for s in range(101)]
    assert values[0] == pytest.approx(8.0) and values[-1] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_geometric_halves_in_equal_steps_and_hold_keeps_the_end():
    assert anneal(25, 100, 16.0, 1.0) == pytest.approx(8.0)
    assert anneal(80, 100, 16.0, 1.0, hold=0.2) == pytest.approx(1.0)
    assert anneal(40, 100, 16.0, 1.0, hold=0.2) == pytest.approx(4.0)
    sigma, gamma = SoftRasterSchedule()(0, 10)
    assert (sigma, gamma) == pytest.approx((16.0, 1e-2))
    assert SoftRasterSchedule()(10, 10) == pytest.approx((0.25, 1e-4))


def test_bad_input():
    with pytest.raises(ValueError, match="positive"):
        anneal(0, 10, 0.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        anneal(0, 10, 1.0, 2.0, "step")
    with pytest.raises(ValueError, match="total"):
        anneal(0, 0, 1.0, 2.0)
    with pytest.raises(ValueError, match="hold"):
        anneal(0, 10, 1.0, 2.0, hold=1.0)
