"""Smoke test of ``benchmarks/visibility_gradient_error.py`` (the lamp-height gradient's error and cost against
finite differences, lumigrad beside Mitsuba): a tiny run of each mode prints its rows with finite figures, the
summary's arithmetic is checked on made-up records, and the profile's parts nest inside their callers. No
timings or gradient values are asserted (``benchmarks/`` measures them)."""

import json
import math
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "visibility_gradient_error.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT))


def test_summary_arithmetic(bench):
    records = [{"config": "a", "value": v, "wall": w, "cpu": c, "first": i == 0}
               for i, (v, w, c) in enumerate([(1.0, 9.0, 9.0), (2.0, 1.0, 2.0), (4.0, 3.0, 4.0)])]
    records.append({"config": "b", "value": 0.5, "wall": 1.0, "cpu": 1.0, "first": True})
    rows = bench["summarise"](records, 2.0)
    a, b = rows
    assert a["config"] == "a" and a["n"] == 3 and b["n"] == 1
    assert a["wall"] == 2.0 and a["cpu"] == 3.0  # the first (compiling) call left out of the medians
    assert a["mean"] == pytest.approx(7 / 3) and a["std"] == pytest.approx(math.sqrt(7 / 3))
    assert a["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert a["efficiency"] == pytest.approx(1 / (3.0 * 5 / 3))
    assert b["cpu"] == 1.0 and b["rmse"] == pytest.approx(1.5) and math.isnan(b["std"])


def test_parse_config(bench):
    parse = bench["parse_config"]
    assert parse("lumigrad:spp_grad=4,edge_samples=0") == {"renderer": "lumigrad", "spp_grad": 4, "edge_samples": 0,
                                                           "depth": 8, "spp": 16}
    assert parse("mitsuba:depth=2")["integrator"] == "direct_projective"
    assert parse("mitsuba:spp=64")["integrator"] == "prb_projective"
    assert parse("mitsuba:spp=64")["guiding"] == "none"
    with pytest.raises(ValueError, match="edge_samples"):
        parse("mitsuba:edge_samples=4")
    with pytest.raises(ValueError, match="lumigrad"):
        parse("redner:spp=4")


def test_tiny_run_lumigrad(bench, tmp_path, capsys):
    log = tmp_path / "runs.jsonl"
    out = bench["main"](["--size", "8", "--reference", "lumigrad", "--ref-spp", "2", "--ref-seeds", "2",
                         "--ref-depth", "2", "--configs", "lumigrad:depth=2,spp=2,spp_grad=1",
                         "lumigrad:depth=2,spp=2,spp_grad=1,shadow_edge_samples=0", "--seeds", "2",
                         "--reference-value", "0.178", "--jsonl", str(log)])
    text = capsys.readouterr().out
    mean, se = out["references"]["lumigrad"]
    assert math.isfinite(mean) and se >= 0
    assert len(out["rows"]) == 2
    for row in out["rows"]:
        assert f"| {row['config']} | 2 |" in text
        assert all(math.isfinite(row[k]) and row[k] >= 0 for k in ("wall", "cpu", "std", "rmse"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["reference"] * 2 + ["gradient"] * 4
    # the table of the file is the run's
    again = bench["main"](["--table", str(log), "--reference-value", "0.178"])["rows"]
    assert [(r["config"], r["mean"], r["rmse"]) for r in again] == [(r["config"], r["mean"], r["rmse"])
                                                                    for r in out["rows"]]


def test_profile_nests(bench, capsys):
    prof = bench["main"](["--profile", "--size", "8", "--configs", "lumigrad:depth=2,spp=2,spp_grad=1"])["profiles"][0]
    text = capsys.readouterr().out
    for key in ("forward render", "backward", "backward/replay (sample_paths)", "backward/primary edges",
                "backward/shadow edges", "backward/primary edges/sample_primary_edges"):
        assert key in prof.seconds, key
        assert f"| {'. ' * key.count('/')}{key.rsplit('/', 1)[-1]} |" in text
    for key, seconds in prof.seconds.items():
        if "/" in key:
            assert seconds <= prof.seconds[key.rsplit("/", 1)[0]] + 1e-9, key
    # the wrappers are gone afterwards
    import lumigrad.integrators.path as path
    assert path._Run._edges.__name__ == "_edges"


def test_tiny_run_mitsuba(bench, capsys):
    import sys
    sys.path.insert(0, str(SCRIPT.parent))
    import _mitsuba_peer as peer
    ok, why = peer.available()
    if not ok:
        pytest.skip(why)
    out = bench["main"](["--size", "8", "--reference", "mitsuba", "--ref-spp", "4", "--ref-seeds", "2",
                         "--ref-sampler", "multijitter", "--configs", "mitsuba:depth=2,spp=2",
                         "mitsuba:depth=3,spp=2,sppi=0", "--seeds", "2", "--reference-value", "0.178"])
    assert math.isfinite(out["references"]["mitsuba"][0])
    assert [r["config"] for r in out["rows"]] == [
        "mitsuba:depth=2,spp=2,integrator=direct_projective,guiding=none",
        "mitsuba:depth=3,spp=2,sppi=0,integrator=prb_projective,guiding=none"]
    assert all(math.isfinite(r["rmse"]) for r in out["rows"])


def test_reference_minus_depth_is_the_difference(bench):
    """``--ref-minus-depth``: the difference of the two depths' finite differences, seed by seed."""
    args = ["--size", "8", "--reference", "lumigrad", "--ref-spp", "2", "--ref-seeds", "2"]
    deep = bench["main"](args + ["--ref-depth", "3"])["references"]["lumigrad"][0]
    shallow = bench["main"](args + ["--ref-depth", "2"])["references"]["lumigrad"][0]
    both = bench["main"](args + ["--ref-depth", "3", "--ref-minus-depth", "2"])["references"]["lumigrad"][0]
    assert both == pytest.approx(deep - shallow, rel=1e-9, abs=1e-9)
