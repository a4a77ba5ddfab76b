"""lumigrad.app.benchmarking: time_call, peak_memory / peak_rss_growth and format_table."""

import time

import pytest
import torch

from lumigrad.app.benchmarking import format_table, median, peak_memory, peak_rss_growth, time_call


def test_time_call_counts_and_warms_up():
    calls = []
    times = time_call(lambda: (calls.append(1), time.sleep(0.002)), 3, warmup=2)
    assert len(calls) == 5 and len(times) == 3
    assert all(t >= 0.0015 for t in times)


@pytest.mark.parametrize("repeats, warmup", [(0, 1), (2, -1), (1.5, 0), (True, 0)])
def test_time_call_rejects_bad_counts(repeats, warmup):
    with pytest.raises(ValueError, match="repeats|warmup"):
        time_call(lambda: None, repeats, warmup=warmup)


def test_peak_memory_sees_a_touched_allocation():
    # peak_rss_growth alone may see 0: the allocator can serve the 64 MiB from freed pages that are still
    # resident (after earlier tests). peak_memory hands those back first (malloc_trim), so it must see them.
    result, grow, _ = peak_rss_growth(lambda: torch.ones(16 * 2**20).sum())  # 64 MiB, every page written
    assert float(result) == 16 * 2**20 and grow >= 0
    mib, exact = peak_memory(lambda: torch.ones(16 * 2**20).sum(), "cpu")
    if exact:
        assert mib >= 48
    assert mib >= 0


@pytest.mark.cuda
def test_peak_memory_cuda():
    mib, exact = peak_memory(lambda: torch.ones(16 * 2**20, device="cuda").sum(), "cuda")
    assert exact and mib >= 63.9
    assert len(time_call(lambda: torch.ones(1000, device="cuda").sum(), 2, sync="cuda")) == 2


def test_format_table():
    text = format_table([{"a": 1, "b": 2.5}, {"a": "x", "b": None}, {"a": 3, "b": float("nan")}], ["a", ("b", "B")])
    assert text.splitlines() == ["| a | B |", "|---|---|", "| 1 | 2.50 |", "| x | - |", "| 3 | nan |"]
    with pytest.raises(ValueError, match="columns"):
        format_table([], [])


def test_median():
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0]) == 2.5 and median([]) is None
