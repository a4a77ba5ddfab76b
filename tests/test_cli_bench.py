"""``lumigrad bench``: the table, --json, and clear errors for bad arguments (tiny sizes, one repeat)."""

import argparse
import json
import math

import pytest
import torch

from lumigrad.cli import bench
from lumigrad.cli import main as cli_main


def _parse(argv):
    parser = argparse.ArgumentParser(prog="lumigrad")
    bench.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _table_rows(text: str):
    """The data rows of the markdown table in ``text`` as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[1:-1] == [f" {t} " for _, t in bench.COLUMNS]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in lines[1:]]


def _check_numbers(cells):
    fwd, fwd_bwd, peak = (float(c) for c in cells[3:6])
    assert math.isfinite(fwd) and fwd > 0 and math.isfinite(fwd_bwd) and fwd_bwd > 0
    assert math.isfinite(peak) and peak >= 0


def test_raster_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = _parse(["bench", "raster", "--size", "16", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                   "--json", str(out)])
    assert bench.run(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("device: cpu") and f"torch {torch.__version__}" in text and "lumigrad " in text
    rows = _table_rows(text)
    assert [r[:3] for r in rows] == [["raster", "16", "5856"]]
    for r in rows:
        _check_numbers(r)
    doc = json.loads(out.read_text())
    assert doc["torch"] == torch.__version__ and doc["device"].startswith("cpu") and doc["repeats"] == 1
    assert [(r["name"], r["size"], r["faces"]) for r in doc["rows"]] == [("raster", 16, 5856)]
    for r in doc["rows"]:
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["peak_mib"] >= 0
        assert float(rows[doc["rows"].index(r)][3]) == pytest.approx(r["fwd_ms"], abs=0.01)


@pytest.mark.parametrize("which, sizes", [("soft", ["16", "20"]), ("scene", ["16"])])
def test_soft_and_scene_rows(capsys, which, sizes):
    args = _parse(["bench", which, "--size", *sizes, "--repeats", "1", "--warmup", "0", "--device", "auto"])
    assert bench.run(args) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[:3] for r in rows] == [[which, size, "5856"] for size in sizes]
    for r in rows:
        _check_numbers(r)


@pytest.mark.parametrize("argv, message", [
    (["--size", "0"], "--size must be between 1"),
    (["--size", "16", "99999"], "--size must be between 1"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--json", "/nonexistent-folder/x.json"], "does not exist"),
])
def test_bad_arguments_raise_value_error(argv, message):
    with pytest.raises(ValueError, match=message):
        bench.run(_parse(["bench", "raster", *argv]))


def test_cuda_without_cuda_is_a_cli_error(monkeypatch, capsys):
    """Through ``lumigrad.cli.main.main`` with ``bench`` registered: a one-line error and exit code 2."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    original = cli_main.build_parser

    def build_parser():
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "bench" not in sub.choices:  # until main.py registers it
            bench.add_parser(sub)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build_parser)
    assert cli_main.main(["bench", "raster", "--size", "16", "--repeats", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumigrad bench: error: --device cuda was requested but CUDA is not available")


def test_unknown_benchmark_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        _parse(["bench", "nope"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.cuda
def test_cuda_rows(capsys):
    assert bench.run(_parse(["bench", "all", "--size", "32", "--repeats", "1", "--device", "cuda"])) == 0
    text = capsys.readouterr().out
    assert text.startswith("device: cuda")
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["raster", "soft", "scene"]
    for r in rows:
        _check_numbers(r)


def _write(path, rows, device="cpu (test)"):
    path.write_text(json.dumps({"device": device, "torch": "x", "lumigrad": "y", "repeats": 3, "rows": rows}))
    return path


def _row(name, size, fwd, fwd_bwd):
    return {"name": name, "size": size, "faces": 5856, "fwd_ms": fwd, "fwd_bwd_ms": fwd_bwd, "peak_mib": 2.0,
            "peak_exact": True}


def test_compare_two_json_files_exits_4_past_the_tolerance(tmp_path, capsys):
    base = _write(tmp_path / "base.json", [_row("raster", 256, 10.0, 40.0), _row("soft", 256, 20.0, 50.0),
                                           _row("scene", 256, 7.0, 9.0)])
    now = _write(tmp_path / "now.json", [_row("raster", 256, 10.5, 60.0), _row("soft", 256, 19.0, 49.0),
                                         _row("raster", 512, 30.0, 90.0)])
    assert cli_main.main(["bench", "--compare", str(base), "--current", str(now)]) == bench.SLOWER_EXIT
    text = capsys.readouterr().out
    assert f"compared with {base} (cpu (test)):" in text
    assert "| raster | 256 | 10.00 | 10.50 | 1.05 | 40.00 | 60.00 | 1.50 | SLOWER |" in text
    assert "| soft | 256 | 20.00 | 19.00 | 0.95 | 50.00 | 49.00 | 0.98 | ok |" in text
    assert "only in the baseline (not compared): scene 256" in text
    assert "only in the current run (not compared): raster 512" in text
    assert "1 case(s) slower than 1.25x the baseline: raster 256" in text
    assert cli_main.main(["bench", "--compare", str(base), "--current", str(now), "--tolerance", "1.6"]) == 0
    assert "no case slower than 1.6x the baseline (2 compared)" in capsys.readouterr().out


def test_compare_after_a_run(tmp_path, capsys):
    base = _write(tmp_path / "base.json", [_row("raster", 16, 1e6, 1e6)])  # a baseline nothing can be slower than
    args = _parse(["bench", "raster", "--size", "16", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                   "--compare", str(base)])
    assert bench.run(args) == 0
    text = capsys.readouterr().out
    assert "| raster | 16 | 1000000.00 |" in text and text.rstrip().endswith("(1 compared)")


@pytest.mark.parametrize("content, extra, message", [
    (None, [], "no such file"),
    ("{not json", [], "not JSON"),
    ('{"rows": 3}', [], "'rows' list"),
    ('{"rows": [{"name": "raster", "size": "256"}]}', [], r"rows\[0\]"),
    ('{"rows": []}', ["--tolerance", "0.8"], "--tolerance"),
])
def test_compare_errors_name_the_argument(tmp_path, capsys, content, extra, message):
    path = tmp_path / "base.json"
    if content is not None:
        path.write_text(content)
    assert cli_main.main(["bench", "--compare", str(path), "--current", str(path)] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("lumigrad bench: error:") and __import__("re").search(message, err)


def test_current_needs_compare(tmp_path, capsys):
    assert cli_main.main(["bench", "--current", str(tmp_path / "x.json")]) == 2
    assert "--current needs --compare" in capsys.readouterr().err
