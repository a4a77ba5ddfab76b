"""Smoke test of ``benchmarks/mitsuba_random_scenes.py``: a tiny run of each kind prints a row per seed with
finite figures (skipped without Mitsuba 3); the scene generator's files all load in lumigrad. No agreement is
asserted at these sample counts (the renders against Mitsuba are ``tests/integrators/test_path_vs_mitsuba.py``'s)."""

import math
import runpy
import sys
import warnings
from pathlib import Path

import pytest

import lumigrad as lg

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import _mitsuba_peer as peer  # noqa: E402

_OK, _WHY = peer.available()


def test_the_generated_files_load(tmp_path):
    """Forty scenes of each kind: every file lumigrad's reader takes (none refused) and names its shapes; the
    anisotropic kind's floors are anisotropic."""
    bench = runpy.run_path(str(BENCH / "mitsuba_random_scenes.py"))
    bench["write_assets"](tmp_path)
    for kind in ("materials", "sensors", "anisotropic"):
        for seed in range(40):
            text, description = bench["scene_xml"](seed, kind, 16)
            path = tmp_path / f"{kind}_{seed}.xml"
            path.write_text(text)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scene = lg.io.load(path)
            assert "floor" in scene.meshes and scene.lights, description
            if kind == "anisotropic":  # (every BSDF an anisotropic one but a medium's glass)
                assert scene.meshes["floor"].material.roughness_aspect is not None, description
            assert lg.io.mitsuba_render_settings(scene)["camera"] is not None


@pytest.mark.skipif(not _OK, reason=f"Mitsuba 3 unavailable: {_WHY}")
@pytest.mark.parametrize("kind", ["materials", "sensors", "anisotropic"])
def test_mitsuba_random_scenes_benchmark_tiny_run(capsys, kind):
    main = runpy.run_path(str(BENCH / "mitsuba_random_scenes.py"))["main"]
    rows = main(["--kind", kind, "--seeds", "0", "2", "--spp", "4", "--mitsuba-spp", "8"])
    out = capsys.readouterr().out
    assert [r["seed"] for r in rows] == [0, 1]
    for r in rows:
        assert "error" not in r, r
        assert f"| {r['seed']} | {r['scene']} |" in out
        for key in ("rrmse_blocks", "noise_blocks", "mean_ratio"):
            assert math.isfinite(r[key]), (key, r[key])
