"""``lumigrad fit`` under hostile checkpoints, shared run folders, faults and hostile configs: no code execution,
no mixed results, one line and exit 2 for every mistake, exit 3 for every divergence (issue 12, items 1, 3, 6,
7 and 9)."""

import errno
import os
import time

import pytest
import torch

from lumigrad.cli.main import main
from lumigrad.fitting import ConfigError, run_fit
from lumigrad.fitting.run_folder import RunFolder
from lumigrad.optim import CheckpointError, Fit, ParamGroup, read_checkpoint

from .test_run import CONFIG, config  # noqa: F401 (the fixture)


def fit_cli(capsys, *argv):
    """Run ``lumigrad fit ARGV --no-progress``; return (exit code, stderr)."""
    code = main(["fit", *map(str, argv), "--no-progress"])
    err = capsys.readouterr().err
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------------ 1. checkpoints


class _Planted:
    """A pickle that runs a shell command when loaded with ``weights_only=False``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_checkpoint_does_not_run_code_on_resume(config, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit_cli(capsys, config(2), "-o", out)[0] == 0
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "payload": _Planted(marker)}, out / "checkpoint" / "checkpoint.pt")
    code, err = fit_cli(capsys, config(2), "-o", out, "--resume")
    assert code == 2 and not marker.exists()
    assert "not a readable lumigrad checkpoint" in one_line(err)
    # the library path too
    p = torch.zeros(3, requires_grad=True)
    fit = Fit(lambda step: p.sum(), {"p": ParamGroup([p], lr=0.1)}, steps=2, checkpoint_dir=out / "checkpoint",
              resume=True)
    with pytest.raises(CheckpointError, match="not a readable lumigrad checkpoint"):
        fit.run()
    assert not marker.exists()


def _tiny_fit(folder, steps=3, **kw):
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    return Fit(lambda step: (p ** 2).sum(), {"p": ParamGroup([p], lr=0.1)}, steps=steps, checkpoint_dir=folder,
               checkpoint_every=1, **kw), p


def test_corrupt_truncated_empty_and_foreign_checkpoints_are_one_line_errors(tmp_path):
    fit, _ = _tiny_fit(tmp_path / "good", metadata={"config": {"sha256": "x", "keys": {}}})
    fit.run()
    good = (tmp_path / "good" / "checkpoint.pt").read_bytes()
    assert read_checkpoint(tmp_path / "good" / "checkpoint.pt")["metadata"]["config"]["sha256"] == "x"
    cases = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "garbage": b"\x00\x01not a zip at all" * 10,
    }
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "checkpoint.pt").write_bytes(data)
        fit, _ = _tiny_fit(folder, resume=True)
        with pytest.raises(CheckpointError) as info:
            fit.run()
        assert str(folder / "checkpoint.pt") in str(info.value) and "\n" not in str(info.value), name

    def planted(name, state):
        folder = tmp_path / name
        folder.mkdir()
        torch.save(state, folder / "checkpoint.pt")
        fit, p = _tiny_fit(folder, resume=True)
        before = p.detach().clone()
        with pytest.raises(CheckpointError) as info:
            fit.run()
        assert torch.equal(p.detach(), before), "a refused checkpoint must not change the parameters"
        return str(info.value)

    real = torch.load(tmp_path / "good" / "checkpoint.pt", weights_only=True)
    assert "not a lumigrad Fit checkpoint" in planted("foreign", [1, 2, 3])
    assert "'steps_done' must be an int" in planted("wrong_type", {**real, "steps_done": "3"})
    assert "'losses' must be a list of floats" in planted("bad_losses", {**real, "losses": ["x"] * 3})
    assert "holds 3 losses" in planted("inconsistent", {**real, "steps_done": 7})
    nan = {**real, "params": {"p": [torch.tensor([float("nan"), 0.0])]}}
    assert "NaN or Inf" in planted("nan", nan)
    shape = {**real, "params": {"p": [torch.zeros(5)]}}
    assert "shape [2]" in planted("shape", shape)
    bad_optimizer = {**real, "optimizers": {"p": {"state": {}, "param_groups": "nope"}}}
    assert "optimiser or extra state does not fit" in planted("optimizer", bad_optimizer)


def test_truncated_and_empty_checkpoints_exit_2_from_the_cli(config, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit_cli(capsys, config(2), "-o", out)[0] == 0
    ckpt = out / "checkpoint" / "checkpoint.pt"
    data = ckpt.read_bytes()
    for content in (data[:100], b""):
        ckpt.write_bytes(content)
        code, err = fit_cli(capsys, config(2), "-o", out, "--resume")
        assert code == 2 and str(ckpt) in one_line(err)


# ------------------------------------------------------------------------------------------ 3. run folders


def test_a_second_fit_into_a_folder_in_use_stops_at_once(config, tmp_path, capsys):
    out = tmp_path / "run"
    with RunFolder(out):  # another fit holds the folder
        t0 = time.perf_counter()
        code, err = fit_cli(capsys, config(2), "-o", out)
        assert time.perf_counter() - t0 < 30
    assert code == 2 and f"pid {os.getpid()}" in one_line(err) and "in use by another lumigrad fit" in err
    assert not (out / "metrics.json").exists()
    # released: the folder can be used again
    assert fit_cli(capsys, config(2), "-o", out)[0] == 0


def test_the_lock_is_exclusive_across_processes(tmp_path):
    import subprocess
    import sys

    script = ("import sys, time; from lumigrad.fitting.run_folder import RunFolder\n"
              "with RunFolder(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"in use by another lumigrad fit \\(pid {child.pid}\\)"):
            with RunFolder(tmp_path / "run"):
                pass
        child.kill()  # kill -9: the operating system releases the lock
        child.wait(10)
        with RunFolder(tmp_path / "run"):
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_finished_results_are_not_silently_replaced(config, tmp_path, capsys):
    out = tmp_path / "run"
    assert fit_cli(capsys, config(2), "-o", out)[0] == 0
    (out / "checkpoint" / "checkpoint.pt").unlink()  # even without its checkpoint, the results stay
    code, err = fit_cli(capsys, config(2), "-o", out)
    assert code == 2 and "holds the results of an earlier fit" in one_line(err)
    assert fit_cli(capsys, config(2), "-o", out, "--overwrite")[0] == 0


def test_resume_refuses_another_config_and_steps_and_force_is_recorded(config, tmp_path, capsys):
    out = tmp_path / "run"
    # the copy names the mesh by its absolute path, so that it re-runs from any folder
    original = config(4).read_text().replace('file = "sphere.obj"', f'file = "{tmp_path / "sphere.obj"}"')
    assert fit_cli(capsys, config(4), "-o", out)[0] == 0
    changed = config(4, extra="").read_text().replace("lr = 0.1\n[[optimize]]", "lr = 0.3\n[[optimize]]")
    path = tmp_path / "fit.toml"
    path.write_text(changed)
    code, err = fit_cli(capsys, path, "-o", out, "--resume")
    assert code == 2 and "optimize[0].lr (checkpoint 0.1, now 0.3)" in one_line(err) and "--force" in err
    code, err = fit_cli(capsys, config(4), "-o", out, "--resume", "--steps", "6")
    assert code == 2 and "fit.steps (checkpoint 4, now 6)" in one_line(err)
    assert (out / "config.toml").read_text() == original  # the run's config copy is kept
    assert fit_cli(capsys, config(4), "-o", out, "--resume", "--steps", "6", "--force")[0] == 0
    log = (out / "run.log").read_text()
    assert ("--force: resuming a checkpoint that was written for a different configuration: "
            "fit.steps (checkpoint 4, now 6)") in log
    assert (out / "config.toml").read_text() == original and (out / "config.resumed-1.toml").exists()
    assert read_checkpoint(out / "checkpoint" / "checkpoint.pt")["steps_done"] == 6
    assert fit_cli(capsys, config(4), "-o", out, "--force")[0] == 2  # --force goes with --resume


def test_a_killed_run_does_not_adopt_another_runs_checkpoint(config, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    from .test_run import interrupt

    interrupt(config(6), out, monkeypatch, at_step=3)  # run A, killed
    other = tmp_path / "other.toml"
    other.write_text(config(6).read_text().replace("intensity = 4.0", "intensity = 5.0"))
    assert fit_cli(capsys, other, "-o", out, "--overwrite")[0] == 0  # run B takes the folder over, on purpose
    code, err = fit_cli(capsys, config(6), "-o", out, "--resume")  # A resumed afterwards
    assert code == 2 and "scene.lights[0].intensity (checkpoint 5.0, now 4.0)" in one_line(err)


def test_resume_without_a_checkpoint_says_so_and_stale_temporaries_go(config, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = fit_cli(capsys, config(2), "-o", out, "--resume")
    assert code == 2 and "has no checkpoint to resume" in one_line(err)
    (out / "checkpoint").mkdir(parents=True)
    stale = out / "checkpoint" / ".checkpoint.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert fit_cli(capsys, config(2), "-o", out)[0] == 0
    assert not stale.exists() and "stale temporary" in (out / "run.log").read_text()


# ------------------------------------------------------------------------------------------ 7. faults


def test_an_output_path_that_is_a_file_is_refused_before_rendering(config, tmp_path, capsys, monkeypatch):
    target = tmp_path / "a_file"
    target.write_text("x")
    import lumigrad.fitting.run as run_module

    monkeypatch.setattr(run_module, "build_problem", lambda *a: pytest.fail("built the problem"))
    code, err = fit_cli(capsys, config(2), "-o", target)
    assert code == 2 and "is an existing file" in one_line(err)


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(config, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    import lumigrad.optim.fit as fit_module

    real_save, calls = torch.save, []

    def save(obj, f, *a, **kw):
        calls.append(1)
        if len(calls) > 1:  # the first checkpoint fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device", str(out / "checkpoint"))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(fit_module.torch, "save", save)
    code, err = fit_cli(capsys, config(6), "-o", out)
    assert code == 2 and "No space left on device" in one_line(err)
    monkeypatch.setattr(fit_module.torch, "save", real_save)
    assert read_checkpoint(out / "checkpoint" / "checkpoint.pt")["steps_done"] == 2
    assert not list((out / "checkpoint").glob("*.tmp"))
    assert fit_cli(capsys, config(6), "-o", out, "--resume")[0] == 0


def test_a_diverged_resumed_fit_still_exits_3(config, tmp_path, capsys):
    text = config(20).read_text().replace('map = "exp"\nlr = 0.1', 'optimizer = "sgd"\nlr = 1e9')
    text = text.replace("checkpoint_every = 2", "checkpoint_every = 1\nclip_spikes = 1e6")
    path = tmp_path / "diverge.toml"
    path.write_text(text)
    out = tmp_path / "run"
    code, err = fit_cli(capsys, path, "-o", out)
    assert code == 3 and "the fit diverged" in err
    assert read_checkpoint(out / "checkpoint" / "checkpoint.pt")["steps_done"] >= 1
    code, err = fit_cli(capsys, path, "-o", out, "--resume")
    assert code == 3 and "left its valid range" in err


# ------------------------------------------------------------------------------------------ 6, 9. configs


def test_a_yaml_alias_bomb_is_refused_fast(tmp_path, capsys):
    bomb = ["name: bomb", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 9):
        prev = chr(ord("a") + k - 1)
        bomb.append(f"{chr(ord('a') + k)}: &{chr(ord('a') + k)} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},"
                    f"*{prev},*{prev},*{prev}]")
    bomb.append("scene: *i")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n")
    assert path.stat().st_size < 1024
    t0 = time.perf_counter()
    code, err = fit_cli(capsys, path)
    assert time.perf_counter() - t0 < 10
    assert code == 2 and "YAML anchors (&name) are not allowed" in one_line(err)
    assert len(err) < 500


def test_quoted_values_in_config_errors_are_bounded(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text("name: x\nscene:\n  radius: [" + ", ".join(["1"] * 50000) + "]\n")
    code, err = fit_cli(capsys, path)
    assert code == 2 and "scene" in one_line(err) and len(err) < 600


@pytest.mark.parametrize("line, match", [
    ("background = nan", "background must be"),
    ("background = inf", "background must be"),
    ("background = [true, false, true]", "background must be"),
    ("background = -1.0", "background must be"),
    ("seed = 100000000000000000000000000000", "seed must be an integer >= 0 and <= 9223372036854775807"),
])
def test_bad_fit_settings_are_one_line_errors(config, tmp_path, capsys, line, match):
    path = config(2, extra="")
    path.write_text(path.read_text().replace("checkpoint_every = 2", f"checkpoint_every = 2\n{line}"))
    code, err = fit_cli(capsys, path, "-o", tmp_path / "o")
    assert code == 2 and match in one_line(err)


@pytest.mark.parametrize("init, match", [
    ("1.5", "outside map 'sigmoid''s domain (in [0, 1]), e.g. 1.5"),
    ("-0.2", "outside map 'sigmoid''s domain"),
    ("[0.5, 0.5]", "does not broadcast to the parameter's (4,)"),
    ("[[0.5, 0.5, 0.5, 1.0], [0.5, 0.5, 0.5, 1.0]]", "does not broadcast to the parameter's (4,)"),
    ("{ scale = [1.0, 1.0, 1.0, 1.0, 1.0] }", "init.scale has shape (5,)"),
    ("{ noise = inf }", "noise must be a finite number"),
    ("{ noise = 0.1, seed = 100000000000000000000000 }", "seed must be an integer in [0, 2^63)"),
    ('"big"', "must be a number or a nested list"),
])
def test_bad_init_is_one_line_error(config, tmp_path, capsys, init, match):
    path = config(2)
    path.write_text(path.read_text().replace("init = [0.5, 0.5, 0.5, 1.0]", f"init = {init}"))
    code, err = fit_cli(capsys, path, "-o", tmp_path / "o")
    assert code == 2 and match in one_line(err)


def test_exp_map_refuses_a_negative_start_and_scalars_refuse_lists(config, tmp_path, capsys):
    path = config(2)
    path.write_text(path.read_text().replace('map = "exp"\n', 'map = "exp"\ninit = -1.0\n'))
    code, err = fit_cli(capsys, path, "-o", tmp_path / "o")
    assert code == 2 and "outside map 'exp''s domain (>= 0)" in one_line(err)
    path.write_text(config(2).read_text().replace('map = "exp"\n', 'map = "exp"\ninit = [1.0, 2.0, 3.0]\n'))
    code, err = fit_cli(capsys, path, "-o", tmp_path / "o2")
    assert code == 2 and "does not broadcast" in one_line(err)


def test_views_times_size_is_budgeted_before_rendering(config, tmp_path, capsys):
    path = config(2)
    path.write_text(path.read_text().replace("views = 3\nsize = 24", "views = 100000\nsize = 4096"))
    t0 = time.perf_counter()
    code, err = fit_cli(capsys, path, "-o", tmp_path / "o")
    assert time.perf_counter() - t0 < 30
    assert code == 2 and "pixel samples" in one_line(err) and "LUMIGRAD_MAX_PIXELS" in err
