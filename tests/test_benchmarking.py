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


def _rows(*cases):
    return [{"name": n, "size": s, "faces": 5856, "fwd_ms": f, "fwd_bwd_ms": fb, "peak_mib": 1.0, "peak_exact": True}
            for n, s, f, fb in cases]


def test_compare_bench_rows_ratios_slower_and_one_sided_cases():
    from lumigrad.app.benchmarking import compare_bench_rows

    base = _rows(("raster", 256, 10.0, 40.0), ("soft", 256, 20.0, 50.0), ("scene", 512, 5.0, 8.0))
    now = _rows(("raster", 256, 12.0, 51.0), ("soft", 256, 25.5, 50.0), ("raster", 512, 30.0, 90.0))
    result = compare_bench_rows(base, now, 1.25)
    assert [(r["name"], r["size"]) for r in result["rows"]] == [("raster", 256), ("soft", 256)]
    raster, soft = result["rows"]
    assert raster["fwd_ms_base"] == 10.0 and raster["fwd_ms_now"] == 12.0
    assert raster["fwd_ms_ratio"] == pytest.approx(1.2) and raster["fwd_bwd_ms_ratio"] == pytest.approx(1.275)
    assert raster["slower"] and soft["slower"]  # fwd+bwd 1.275 > 1.25; soft fwd 1.275 > 1.25
    assert result["slower"] == [("raster", 256), ("soft", 256)]
    assert result["only_in_baseline"] == [("scene", 512)] and result["only_in_current"] == [("raster", 512)]
    relaxed = compare_bench_rows(base, now, 1.3)
    assert relaxed["slower"] == [] and not any(r["slower"] for r in relaxed["rows"])


def test_compare_bench_rows_skips_missing_values_and_rejects_bad_tolerance():
    from lumigrad.app.benchmarking import compare_bench_rows, format_comparison

    base = _rows(("raster", 64, 10.0, None))
    now = _rows(("raster", 64, 9.0, 30.0))
    result = compare_bench_rows(base, now, 1.25)
    row = result["rows"][0]
    assert row["fwd_ms_ratio"] == pytest.approx(0.9) and row["fwd_bwd_ms_ratio"] is None and not row["slower"]
    text = format_comparison(result, 1.25)
    assert "| raster | 64 | 10.00 | 9.00 | 0.90 | - | 30.00 | - | ok |" in text
    assert "no case slower than 1.25x the baseline (1 compared)" in text
    for bad in (0.9, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="tolerance"):
            compare_bench_rows(base, now, bad)


def test_time_call_cpu_clock_counts_work_not_sleep():
    """``clock="cpu"`` is the process's CPU time: a sleep costs (almost) none of it, busy work does."""
    import time as _time

    from lumigrad.app.benchmarking import time_call

    asleep = time_call(lambda: _time.sleep(0.05), 2, warmup=0, clock="cpu")
    assert all(t < 0.02 for t in asleep)
    assert all(t >= 0.045 for t in time_call(lambda: _time.sleep(0.05), 2, warmup=0))
    with pytest.raises(ValueError, match="clock"):
        time_call(lambda: None, 1, clock="gpu")
