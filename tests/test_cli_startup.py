"""The ``lumigrad`` command starts without torch or Warp (help and argument errors answer at once), every command
takes the same ``--device``, ``lumigrad warmup`` readies the kernels, and a cold kernel cache is announced once.
No timings here: what is checked is which modules a command's help loads."""

import os
import subprocess
import sys

import pytest
import torch
import warp as wp

import lumigrad as lg
from lumigrad.cli.main import main
from lumigrad.kernels import _runtime

COMMANDS = ("render", "fit", "gradcheck", "demo", "bench", "warmup")
HEAVY = ("torch", "warp", "numpy")


def _env():
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lg.__file__)))  # the lumigrad under test
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _imported(args):
    """Run ``python -X importtime -m lumigrad ARGS``; return (exit code, stdout, top-level packages imported)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "lumigrad", *args], capture_output=True,
                          text=True, env=_env(), timeout=120)
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return proc.returncode, proc.stdout, names


@pytest.mark.parametrize("args", [["--help"]] + [[c, "--help"] for c in COMMANDS])
def test_help_imports_neither_torch_nor_warp(args):
    code, out, names = _imported(args)
    assert code == 0 and "usage: lumigrad" in out
    assert "lumigrad" in names  # the parse ran (importtime saw the package) ...
    assert not names & set(HEAVY), sorted(names & set(HEAVY))  # ... without the heavy libraries


def test_a_bad_device_is_refused_before_anything_loads():
    code, _, names = _imported(["render", "x.obj", "--device", "gpu"])
    assert code == 2 and not names & set(HEAVY)


def test_library_names_load_on_first_use():
    code = ("import sys, lumigrad as lg\n"
            "before = 'torch' in sys.modules or 'warp' in sys.modules\n"
            "from lumigrad import Camera\n"
            "print(before, lg.render.__module__, lg.io.__name__, 'rasterize' in dir(lg), 'Camera' in lg.__all__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "lumigrad.integrators.dispatch", "lumigrad.io", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        lg.not_a_name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
@pytest.mark.parametrize("command", [["render", "SCENE"], ["gradcheck", "SCENE", "lights.key.irradiance"],
                                     ["demo", "--steps", "1"], ["fit", "CONFIG"], ["warmup"]])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_every_command_refuses_cuda_without_cuda_in_one_line(tmp_path, capsys, command, device):
    verts, faces = lg.geometry.icosphere(1)
    lg.io.save(tmp_path / "ball.obj", (verts, faces))
    (tmp_path / "fit.toml").write_text("[scene]\nprimitive = 'icosphere'\n")
    args = [a.replace("SCENE", str(tmp_path / "ball.obj")).replace("CONFIG", str(tmp_path / "fit.toml"))
            for a in command]
    assert main(args + ["--device", device]) == 2
    err = capsys.readouterr().err
    assert f"error: --device {device} was requested but CUDA is not available" in err
    assert len(err.strip().splitlines()) == 1


def test_device_spelling_is_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["warmup", "--device", "cuda:x"])
    assert exit_info.value.code == 2
    assert "'cuda:x' is not a device: use cpu, cuda, cuda:N" in capsys.readouterr().err


def test_render_on_the_cpu_device(tmp_path, capsys):
    verts, faces = lg.geometry.icosphere(1)
    lg.io.save(tmp_path / "ball.obj", (verts, faces))
    out = tmp_path / "ball.png"
    assert main(["render", str(tmp_path / "ball.obj"), "-o", str(out), "--size", "16", "16", "--device", "cpu"]) == 0
    assert out.stat().st_size > 0


def test_warmup_readies_every_kernel_module(capsys):
    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert f"kernel cache: {wp.config.kernel_cache_dir}" in out
    for name in ("lumigrad.kernels.raster_kernels", "lumigrad.kernels.texture_kernels",
                 "lumigrad.kernels.antialias_kernels"):
        assert name in out
    from lumigrad.kernels.warmup import kernel_modules

    modules = kernel_modules()
    assert len(modules) >= 8 and f"{len(modules)} modules ready on cpu" in out
    assert not any(_runtime.needs_compile(m, "cpu") for m in modules)  # loaded now: nothing left to compile


@wp.kernel
def _double(offset: int, end: int, x: wp.array(dtype=float)):
    i = offset + wp.tid()
    x[i] = 2.0 * x[i]


def test_a_cold_kernel_cache_is_announced_once(tmp_path, monkeypatch, capfd):
    _runtime.ensure_init()
    module = _double.module
    monkeypatch.setattr(wp.config, "kernel_cache_dir", str(tmp_path))  # an empty cache: this module must compile
    monkeypatch.setattr(module, "execs", {})  # as in a new process
    monkeypatch.setattr(_runtime, "_compile_announced", False)
    monkeypatch.setattr(_runtime, "_modules_checked", set())
    assert _runtime.needs_compile(module, "cpu")
    x = torch.ones(4)
    _runtime.launch(_double, 4, [0, 4, _runtime.as_warp(x)], x.device)
    _runtime.launch(_double, 4, [0, 4, _runtime.as_warp(x)], x.device)
    assert torch.equal(x, torch.full((4,), 4.0))
    err = capfd.readouterr().err
    assert err.count("lumigrad: compiling kernels once") == 1 and str(tmp_path) in err
    assert not _runtime.needs_compile(module, "cpu")  # loaded
    monkeypatch.setattr(module, "execs", {})
    assert not _runtime.needs_compile(module, "cpu")  # a new process would find it in the cache
    monkeypatch.setattr(_runtime, "_compile_announced", False)
    monkeypatch.setattr(_runtime, "_modules_checked", set())
    _runtime.launch(_double, 4, [0, 4, _runtime.as_warp(x)], x.device)  # a warm cache: silent
    assert "compiling" not in capfd.readouterr().err


def test_torch_threads_the_user_sets_between_import_and_first_use_are_kept():
    """``import lumigrad`` no longer loads torch: a ``torch.set_num_threads`` before lumigrad's first use is still
    the user's choice, and lumigrad's first CPU kernel leaves it alone."""
    from .test_threads import TINY_RENDER, _python

    out = _python("import os, lumigrad, torch\ntorch.set_num_threads(3)\n" + TINY_RENDER
                  + "print(os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads(), "
                    "lumigrad.threads.info()['torch_threads_source'])", {})
    assert out.startswith("PASSIVE 3 user"), out
