"""``lumigrad fit`` over several processes (``torchrun``, gloo on CPU): equivalence with one process, faults,
restarts, bad input and timeouts. Each test starts real processes (about 10-25 s each on two cores)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.cli.main import main

from ..fitting.test_run import CONFIG
from .launch import FAULTS, ROOT, torchrun, two_nodes

#: Smaller images (and targets) than the examples' own: the sharding under test is per view, not per pixel.
SMALLER = {"camera_calibration": ["--set", "data.size=48"], "reconstruction": ["--set", "data.size=40"],
           "path_traced_light": ["--set", "data.size=24", "--set", "render.target_spp=16"]}


def write_config(folder, *, views=5, steps=6, per_step=3, name="fit.toml", extra=""):
    """tests/fitting/test_run.py's tiny sphere fit with ``views`` views, ``per_step`` of them per step and the
    ranks' parameters compared after every step."""
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(folder / "sphere.obj", (verts, faces))
    path = folder / name
    path.write_text(CONFIG.replace("views = 3", f"views = {views}").replace("STEPS", str(steps))
                    + f"views_per_step = {per_step}\nsync_check_every = 1\n" + extra)
    return path


def checkpoint_parameters(out):
    ckpt = torch.load(out / "checkpoint" / "checkpoint.pt", weights_only=True)
    return ckpt["params"], ckpt["losses"]


def assert_close(a, b, rtol, what):
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=rtol, atol=rtol), f"{what}: {name} {a[name]} vs {b[name]}"


def test_two_processes_with_an_odd_view_subset_match_one_process(tmp_path):
    """3 random views of 5 per step over 2 ranks (shares of 2 and 1, weighted): the same views in the same order
    as one process, the same steps; the ranks' parameters are checked bit-identical after every step."""
    config = write_config(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["fit", str(config), "-o", str(one), "--no-progress"]) == 0
    run = torchrun(["fit", str(config), "-o", str(two), "--no-progress"])
    assert run.returncode == 0, run.stdout + run.stderr
    p1, m1 = final_parameters_summary(one)
    p2, m2 = final_parameters_summary(two)
    assert m2["processes"] == 2 and m2["steps"] == m1["steps"] == 6
    assert_close(p1, p2, 1e-5, "final parameters")
    (c1, l1), (c2, l2) = checkpoint_parameters(one), checkpoint_parameters(two)
    assert torch.allclose(torch.tensor(l1), torch.tensor(l2), rtol=1e-5)
    log = (two / "report.html").read_text()
    assert "[rank 1]" in log and "rank 1 of 2" in log  # the report merges both ranks' logs
    assert (two / "run.rank1.log").exists()


def test_nproc_flag_launches_torchrun(tmp_path, capsys):
    config = write_config(tmp_path, steps=2, per_step=0, views=2)
    assert main(["fit", str(config), "-o", str(tmp_path / "run"), "--nproc", "2", "--no-progress"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["processes"] == 2


def test_a_rank_killed_mid_fit_restarts_and_ends_identical(tmp_path):
    """Rank 1 SIGKILLs itself at step 5 on the first attempt; ``torchrun --max-restarts 1`` restarts both
    ranks, which resume from the checkpoint of step 4 and end bit-identical to an uninterrupted run."""
    config = write_config(tmp_path, steps=8)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run = torchrun(["fit", str(config), "-o", str(straight), "--no-progress"], script=FAULTS)
    assert run.returncode == 0, run.stdout + run.stderr
    run = torchrun(["fit", str(config), "-o", str(killed), "--no-progress"], script=FAULTS,
                   torchrun_args=["--max-restarts=1"], env={"LUMIGRAD_TEST_FAULT": "kill:1:5"})
    assert run.returncode == 0, run.stdout + run.stderr
    log = (killed / "run.log").read_text()
    assert "restarted by torchrun" in log and "resumed from step 4" in log
    (a, la), (b, lb) = checkpoint_parameters(straight), checkpoint_parameters(killed)
    assert la == lb
    for name in a:
        for x, y in zip(a[name], b[name]):
            assert torch.equal(x, y), name


def test_ranks_with_different_configs_stop_with_one_message(tmp_path):
    write_config(tmp_path, name="fit0.toml")
    write_config(tmp_path, name="fit1.toml", extra="\n# another comment\n", steps=7)
    run = torchrun(["fit", str(tmp_path / "fit{rank}.toml"), "-o", str(tmp_path / "run"), "--no-progress"],
                   script=FAULTS)
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert text.count("the ranks disagree on the configuration") == 2, text[-3000:]


def test_ranks_with_different_data_stop(tmp_path):
    for rank, intensity in ((0, 8.0), (1, 9.0)):
        folder = tmp_path / f"d{rank}"
        folder.mkdir()
        write_config(folder)
        text = (folder / "fit.toml").read_text().replace('"lights.key.intensity" = 8.0',
                                                         f'"lights.key.intensity" = {intensity}')
        # the same parsed keys would differ too: make the configs equal and the data differ instead
        (folder / "fit.toml").write_text(text)
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "d1" / "sphere.obj", (verts * 1.1, faces))
    (tmp_path / "d1" / "fit.toml").write_text((tmp_path / "d0" / "fit.toml").read_text())
    run = torchrun(["fit", str(tmp_path / "d{rank}" / "fit.toml"), "-o", str(tmp_path / "run"), "--no-progress"],
                   script=FAULTS)
    assert run.returncode != 0
    assert (run.stdout + run.stderr).count("the ranks disagree on the target images") == 2


def test_ranks_fitting_different_scenes_to_the_same_targets_stop(tmp_path):
    """The same config and targets (rendered from one truth.obj) but another starting mesh on rank 1."""
    verts, faces = lg.geometry.icosphere(2)
    for rank in (0, 1):
        folder = tmp_path / f"d{rank}"
        folder.mkdir()
        write_config(folder)
        text = (folder / "fit.toml").read_text().replace("[data]\n", '[data]\ntruth = "truth.obj"\n', 1)
        (folder / "fit.toml").write_text(text)
        lg.io.save(folder / "truth.obj", (verts, faces))
        lg.io.save(folder / "sphere.obj", (verts * (1.0 + 0.05 * rank), faces))
    run = torchrun(["fit", str(tmp_path / "d{rank}" / "fit.toml"), "-o", str(tmp_path / "run"), "--no-progress"],
                   script=FAULTS)
    assert run.returncode != 0
    assert (run.stdout + run.stderr).count("the ranks disagree on the scene being fitted") == 2


def test_more_ranks_than_views_per_step_is_a_config_error(tmp_path):
    config = write_config(tmp_path, per_step=1)
    run = torchrun(["fit", str(config), "-o", str(tmp_path / "run"), "--no-progress"])
    assert run.returncode != 0  # torchrun exits 1 when a worker fails; each rank printed the config error
    text = run.stdout + run.stderr
    assert text.count("every process needs at least one view") == 2, text[-3000:]


def test_a_hanging_rank_times_out_instead_of_dead_locking(tmp_path):
    config = write_config(tmp_path)
    started = time.monotonic()
    run = torchrun(["fit", str(config), "-o", str(tmp_path / "run"), "--no-progress", "--dist-timeout", "5"],
                   script=FAULTS, env={"LUMIGRAD_TEST_FAULT": "hang:1:2"}, timeout=240)
    assert run.returncode != 0
    assert time.monotonic() - started < 200
    assert "timed out" in (run.stdout + run.stderr).lower() or "timeout" in (run.stdout + run.stderr).lower()


def test_a_desynchronised_rank_is_caught(tmp_path):
    config = write_config(tmp_path)
    run = torchrun(["fit", str(config), "-o", str(tmp_path / "run"), "--no-progress"], script=FAULTS,
                   env={"LUMIGRAD_TEST_FAULT": "desync:1:2"})
    assert run.returncode != 0
    assert (run.stdout + run.stderr).count("differ from rank 0's") >= 2


def test_ranks_logging_different_values_stop_with_one_message(tmp_path):
    """A rank that logs a value the others do not stops every rank with RankMismatchError (before, the
    vectors of different lengths met in one gloo all-reduce, which aborted the process)."""
    config = write_config(tmp_path)
    run = torchrun(["fit", str(config), "-o", str(tmp_path / "run"), "--no-progress"], script=FAULTS,
                   env={"LUMIGRAD_TEST_FAULT": "extralog:1:2"})
    text = run.stdout + run.stderr
    assert run.returncode != 0
    assert text.count("the ranks logged different values this step") >= 2, text[-3000:]
    assert "fault/extra" in text and "terminate called" not in text and "Aborted" not in text


def test_ranks_agree_when_the_shape_error_is_recorded(tmp_path):
    """The shape error's recording budget runs on each rank's own clock: rank 1's allows an in-between
    recording at step 1 that rank 0's may not. The ranks agree (any rank due: all record) and end as one
    process does. This was the reconstruction example's rare abort in CI."""
    path = ROOT / "examples" / "configs" / "reconstruction.toml"
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--steps", "3", "--no-progress", *SMALLER["reconstruction"]]
    assert main(["fit", str(path), "-o", str(one), *args]) == 0
    run = torchrun(["fit", str(path), "-o", str(two), *args], script=FAULTS, env={"LUMIGRAD_TEST_FAULT": "budget:1:1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert_close(final_parameters_summary(one)[0], final_parameters_summary(two)[0], 1e-5, "parameters")
    logs = torch.load(two / "checkpoint" / "checkpoint.pt", weights_only=True)["logs"]
    assert "error/shape_error_pct" in logs[1]


def test_a_rank_diverging_alone_in_a_shape_fit_stops_every_rank(tmp_path):
    """Rank 1's loss raises FitDivergedError at step 1 of a fit that records the shape error: the ranks agree on
    that recording before the loss, so the divergence's collectives meet each other and both ranks stop with it
    (agreeing after the loss, rank 0's agreement met rank 1's divergence check and both waited forever)."""
    path = ROOT / "examples" / "configs" / "reconstruction.toml"
    run = torchrun(["fit", str(path), "-o", str(tmp_path / "run"), "--steps", "3", "--no-progress",
                    *SMALLER["reconstruction"]], script=FAULTS, env={"LUMIGRAD_TEST_FAULT": "diverge:1:1"}, timeout=150)
    text = run.stdout + run.stderr
    assert run.returncode != 0
    assert text.count("hold NaN values (injected)") >= 2, text[-3000:]


def test_two_nodes_through_a_rendezvous_on_localhost(tmp_path):
    config = write_config(tmp_path, steps=4)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["fit", str(config), "-o", str(one), "--no-progress"]) == 0
    runs = two_nodes(["fit", str(config), "-o", str(two), "--no-progress"])
    assert all(r.returncode == 0 for r in runs), "\n".join(r.stdout[-2000:] for r in runs)
    assert_close(final_parameters_summary(one)[0], final_parameters_summary(two)[0], 1e-5, "two nodes")


EXAMPLE_CONFIGS = [p for p in sorted((ROOT / "examples" / "configs").glob("*.[ty]*ml"))
                   if 'integrator = "volume"' not in p.read_text()]
MONTE_CARLO = ("path_traced_light",)  # its shards draw other (equally distributed) samples than one process


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=[p.stem for p in EXAMPLE_CONFIGS])
def test_each_example_config_on_two_processes_matches_one(path, tmp_path):
    """Three steps of every example config (radiance fields run in one process) on 1 and 2 processes: the same
    parameters to 1e-5 (rasterised configs) or 1e-3 (a path-traced config: each rank renders its views with
    its own samples, so the two fits agree in expectation and differ by Monte Carlo noise)."""
    if not (ROOT.parent / "shared" / "data").exists() and "shared/data" in path.read_text():
        pytest.skip("the config reads ../shared/data, which is not beside the checkout")
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--steps", "3", "--no-progress", *SMALLER.get(path.stem, [])]
    assert main(["fit", str(path), "-o", str(one), *args]) == 0
    run = torchrun(["fit", str(path), "-o", str(two), *args])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (p1, m1), (p2, m2) = final_parameters_summary(one), final_parameters_summary(two)
    rtol = 1e-3 if path.stem in MONTE_CARLO else 1e-5
    assert_close(p1, p2, rtol, path.name)
    if path.stem not in MONTE_CARLO:
        assert m2["final_loss"] == pytest.approx(m1["final_loss"], rel=1e-4)


def final_parameters_summary(out):
    """Final parameters from metrics.json; large ones are summarised there (mean, min, max)."""
    metrics = json.loads((out / "metrics.json").read_text())
    values = {}
    for name, entry in metrics["parameters"].items():
        final = entry["final"]
        if isinstance(final, dict):
            final = [final["mean"], final["min"], final["max"]]
        values[name] = torch.tensor(final, dtype=torch.float64).reshape(-1)
    return values, metrics


def test_own_loop_example_on_two_processes_prints_the_one_process_result(tmp_path):
    """examples/19: a user's ``Fit`` loop with ``DistributedStrategy``; 2 processes end where 1 process does."""
    script = ROOT / "examples" / "19_data_parallel_own_loop.py"
    args = ["--size", "24", "--steps", "6"]
    one = torchrun(args, nproc=1, script=script)
    two = torchrun(args, nproc=2, script=script)
    # a rank's own message (e.g. "terminate called ...") comes before torchrun's summary in stderr
    assert one.returncode == 0 and two.returncode == 0, two.stdout[-2000:] + two.stderr[:3000]
    result = [line for line in one.stdout.splitlines() if line.startswith("albedo")]
    assert result and result == [line for line in two.stdout.splitlines() if line.startswith("albedo")]
    assert "2 process(es)" in two.stdout


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_destroy_process_group_joins_the_gloo_threads():
    """A group joined by ``init_distributed`` is really torn down by ``destroy_process_group`` even after an
    optimiser imported PyTorch's compiler stack (which otherwise keeps the group, and its gloo threads, alive
    into interpreter shutdown, where freeing a finished collective aborted a rank about once in 15 runs)."""
    run = torchrun([], script=Path(__file__).with_name("teardown_threads.py"))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.count("gloo threads after destroy_process_group: []") == 2, run.stdout


def test_radiance_field_fit_shards_rays(tmp_path):
    """A radiance-field config: each rank renders its share of every step's rays (the hash table's sparse
    gradient is all-reduced too); 2 processes train like one (same rays per step; the jitter of the samples
    along each ray comes from a stream per rank, so the two agree in distribution, not bit for bit)."""
    import runpy

    maker = runpy.run_path(str(ROOT / "examples" / "make_nerf_dataset.py"))
    maker["main"](["--views", "9", "--size", "16", "--asset", "spot", "--out", str(tmp_path / "nerf_data")])
    (tmp_path / "examples" / "configs").mkdir(parents=True)
    config = tmp_path / "examples" / "configs" / "radiance_field.toml"
    config.write_text((ROOT / "examples" / "configs" / "radiance_field.toml").read_text()
                      .replace("rays_per_step = 4096", "rays_per_step = 257"))
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["fit", str(config), "-o", str(one), "--steps", "20", "--no-progress"]) == 0
    run = torchrun(["fit", str(config), "-o", str(two), "--steps", "20", "--no-progress"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    m1, m2 = (json.loads((p / "metrics.json").read_text()) for p in (one, two))
    assert m2["processes"] == 2 and m2["steps"] == 20
    assert abs(m1["train_psnr_db"] - m2["train_psnr_db"]) < 1.0, (m1["train_psnr_db"], m2["train_psnr_db"])
    assert "[rank 1]" in (two / "report.html").read_text()
