"""``lumigrad.threads``: the one thread knob sets both pools, follows ``LUMIGRAD_NUM_THREADS``, leaves the
user's own PyTorch setting alone, refuses bad values naming them, and 1 or N threads give the same images.
No timings here: ``benchmarks/threads.py`` measures them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import lumigrad as lg
from lumigrad import threads
from lumigrad.kernels import _runtime



@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Every test starts with the automatic choice (as if OpenMP waited passively, unless a test says
    otherwise); afterwards lumigrad's state and torch's thread count are put back as they were, so the tests
    that run later in this process see no difference."""
    saved_state = dict(vars(threads._state))
    saved_torch = torch.get_num_threads()
    monkeypatch.delenv("LUMIGRAD_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_WAIT_ENV", {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None,
                                               "KMP_BLOCKTIME": None})
    lg.set_num_threads(None)
    yield
    vars(threads._state).update(saved_state)
    torch.set_num_threads(saved_torch)


def _fresh_automatic(monkeypatch, *, spins: bool):
    """State as just after ``import lumigrad`` with nothing chosen by the user, OpenMP spinning or not."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(threads, "_TORCH_BASELINE", torch.get_num_threads())
    monkeypatch.setattr(threads, "_TORCH_DEFAULTS", set())
    monkeypatch.setattr(threads, "_WAIT_ENV", {"OMP_WAIT_POLICY": "ACTIVE" if spins else "PASSIVE",
                                               "GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None})
    threads._state.prepared = False


# --------------------------------------------------------------------------------------------- the knob
def test_set_num_threads_sets_kernel_threads_and_torch():
    lg.set_num_threads(1)
    assert lg.get_num_threads() == 1 and _runtime.num_workers() == 1 and torch.get_num_threads() == 1
    lg.set_num_threads(3)
    assert lg.get_num_threads() == 3 and _runtime.num_workers() == 3 and torch.get_num_threads() == 3
    info = lg.threads.info()
    assert info["kernel_threads"] == 3 and info["kernel_threads_source"] == "lumigrad.set_num_threads"
    assert info["torch_threads"] == 3 and info["torch_threads_source"].startswith("lumigrad")


def test_several_threads_with_spinning_openmp_warn(monkeypatch, recwarn):
    lg.set_num_threads(2)
    assert not [w for w in recwarn if "spin-wait" in str(w.message)]
    monkeypatch.setattr(threads, "_WAIT_ENV", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "KMP_BLOCKTIME": None})
    lg.set_num_threads(1)
    assert not [w for w in recwarn if "spin-wait" in str(w.message)]
    with pytest.warns(RuntimeWarning, match="OMP_WAIT_POLICY=passive"):
        lg.set_num_threads(2)
    assert torch.get_num_threads() == 2  # the explicit request is still honoured


def test_none_returns_to_automatic_and_restores_torch():
    before = torch.get_num_threads()
    lg.set_num_threads(before + 1)
    lg.set_num_threads(None)
    assert torch.get_num_threads() == before
    assert lg.get_num_threads() == min(threads.available_cpus(), threads.AUTO_CAP)
    assert lg.threads.info()["kernel_threads_source"].startswith("automatic")


def test_environment_variable_sets_kernel_threads(monkeypatch):
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", "3")
    assert lg.get_num_threads() == 3 and _runtime.num_workers() == 3
    assert lg.threads.info()["kernel_threads_source"] == "LUMIGRAD_NUM_THREADS"
    lg.set_num_threads(2)  # the call wins over the variable
    assert lg.get_num_threads() == 2
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", "")  # empty: as if unset
    lg.set_num_threads(None)
    assert lg.get_num_threads() == min(threads.available_cpus(), threads.AUTO_CAP)


def test_environment_variable_sets_torch_at_first_kernel(monkeypatch):
    _fresh_automatic(monkeypatch, spins=True)
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", "3")
    threads.prepare_cpu()
    assert torch.get_num_threads() == 3


def test_explicit_counts_are_used_as_they_are(monkeypatch):
    """An explicit count is not lowered by the load; only the automatic one follows the free CPUs."""
    monkeypatch.setattr(threads._free_cpus, "get", lambda: 0.0)  # as if other processes kept every CPU busy
    assert threads.launch_threads() == 1
    lg.set_num_threads(4)
    assert threads.launch_threads() == 4
    lg.set_num_threads(None)
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", "2")
    assert threads.launch_threads() == 2
    monkeypatch.delenv("LUMIGRAD_NUM_THREADS")
    monkeypatch.setattr(threads._free_cpus, "get", lambda: 64.0)
    assert threads.launch_threads() == min(threads.available_cpus(), threads.AUTO_CAP)


def test_free_cpus_subtract_other_processes_only(monkeypatch):
    """free = CPUs available - (CPU time of all processes - this process's own) / wall time, per window."""
    samples = iter([(10.0, 1.0), (11.0, 2.0), (13.5, 2.5)])  # (all processes' busy CPU s, this process's)
    free = threads._FreeCpus(clock=iter([0.0, 1.0, 1.1, 2.0]).__next__)
    monkeypatch.setattr(free, "_sample", lambda: next(samples))
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    assert free.get() is None  # no window yet
    assert free.get() == 4.0  # all the busy time was this process's own
    assert free.get() == 4.0  # within the window: not read again
    assert free.get() == 2.0  # others used 2 of the 4 CPUs


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (threads.MAX_THREADS + 1, ValueError),
                                        (True, TypeError), (2.0, TypeError), ("2", TypeError)])
def test_bad_counts_are_refused_naming_the_argument(bad, error):
    with pytest.raises(error, match=r"^n must be"):
        lg.set_num_threads(bad)
    assert lg.threads.info()["kernel_threads_source"].startswith("automatic")  # nothing changed


@pytest.mark.parametrize("bad", ["abc", "0", "-2", "1.5", "4 threads", "99999"])
def test_bad_environment_values_are_refused_naming_the_variable(monkeypatch, bad):
    monkeypatch.setenv("LUMIGRAD_NUM_THREADS", bad)
    with pytest.raises(ValueError, match=r"^LUMIGRAD_NUM_THREADS must be"):
        lg.get_num_threads()


# -------------------------------------------------------------------- torch's count: automatic vs the user's
def test_spinning_openmp_gets_one_torch_thread_at_first_kernel(monkeypatch):
    _fresh_automatic(monkeypatch, spins=True)
    threads.prepare_cpu()
    assert torch.get_num_threads() == 1
    assert "spin" in lg.threads.info()["torch_threads_source"]
    threads.prepare_cpu()  # once only: a later change of the user's stays
    torch.set_num_threads(2)
    threads.prepare_cpu()
    assert torch.get_num_threads() == 2
    assert lg.threads.info()["torch_threads_source"].startswith("user")


def test_passive_openmp_keeps_torch_threads_within_the_cpus(monkeypatch):
    torch.set_num_threads(2)
    _fresh_automatic(monkeypatch, spins=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    threads.prepare_cpu()
    assert torch.get_num_threads() == 2  # fewer threads than CPUs: kept
    torch.set_num_threads(3)
    _fresh_automatic(monkeypatch, spins=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    threads.prepare_cpu()
    assert torch.get_num_threads() == 2  # more threads than CPUs (a cgroup quota): lowered


def test_users_torch_set_num_threads_is_respected(monkeypatch):
    _fresh_automatic(monkeypatch, spins=True)
    torch.set_num_threads(2 if threads._TORCH_BASELINE != 2 else 3)  # the user's choice, after import
    chosen = torch.get_num_threads()
    threads.prepare_cpu()
    assert torch.get_num_threads() == chosen
    assert lg.threads.info()["torch_threads_source"] == "user (torch.set_num_threads was called)"


def test_users_torch_set_num_threads_before_import_is_respected(monkeypatch):
    _fresh_automatic(monkeypatch, spins=True)
    monkeypatch.setattr(threads, "_TORCH_DEFAULTS", {torch.get_num_threads() + 1})  # not a count torch picks
    chosen = torch.get_num_threads()
    threads.prepare_cpu()
    assert torch.get_num_threads() == chosen


@pytest.mark.parametrize("var", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_openmp_environment_is_respected(monkeypatch, var):
    _fresh_automatic(monkeypatch, spins=True)
    monkeypatch.setenv(var, str(torch.get_num_threads()))
    chosen = torch.get_num_threads()
    threads.prepare_cpu()
    assert torch.get_num_threads() == chosen
    assert lg.threads.info()["torch_threads_source"] == f"user ({var} is set)"


def _python(code: str, env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "LUMIGRAD_NUM_THREADS")}
    env.update(env_extra)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(lg.__file__)))  # the lumigrad under test
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


TINY_RENDER = textwrap.dedent("""
    v = torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    f = torch.tensor([[0, 1, 2]])
    cam = lumigrad.Camera.look_at([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], fov_y=1.0, width=8, height=8)
    before = torch.get_num_threads()
    lumigrad.rasterize(v, f, cam)
""")


def test_import_order_decides_openmp_wait_policy():
    """lumigrad imported first: OpenMP waits passively and torch keeps its threads; the user's policy stays."""
    out = _python("import os, lumigrad, torch\n" + TINY_RENDER
                  + "print(os.environ.get('OMP_WAIT_POLICY'), before == torch.get_num_threads())", {})
    assert out == "PASSIVE True"
    out = _python("import os, lumigrad\nprint(os.environ.get('OMP_WAIT_POLICY'), "
                  "lumigrad.threads.info()['openmp_wait'])", {"OMP_WAIT_POLICY": "active"})
    assert out.startswith("active spinning")


def test_torch_first_gets_one_torch_thread_at_first_kernel():
    out = _python("import os, torch, lumigrad\n" + TINY_RENDER
                  + "print(os.environ.get('OMP_WAIT_POLICY'), before, torch.get_num_threads())", {})
    policy, before, after = out.split()
    assert policy == "None" and int(after) == 1, out


# ------------------------------------------------------------------------------------ the split launches
def test_every_range_runs_once_and_errors_reach_the_caller(monkeypatch):
    calls, fail_at = [], [None]

    def fake_launch(kernel, dim, inputs, device):
        calls.append((inputs[0], inputs[1], dim))
        if inputs[0] == fail_at[0]:
            raise RuntimeError(f"range {inputs[0]} failed")

    monkeypatch.setattr(_runtime, "warp_launch", fake_launch)
    jobs = [(10, [10 * k, 10 * k + 10]) for k in range(8)]
    _runtime._SharedRanges("kernel", jobs, "cpu").run(2)
    assert sorted(calls) == [(10 * k, 10 * k + 10, 10) for k in range(8)]
    calls.clear()
    fail_at[0] = 30
    with pytest.raises(RuntimeError, match="range 30 failed"):
        _runtime._SharedRanges("kernel", jobs, "cpu").run(2)
    assert (30, 40, 10) in calls and len(calls) == len(set(calls))  # no range twice


def _raster_pipeline(size: int, grad: bool):
    mesh = lg.data.load_spot()
    cam = lg.Camera.look_at(eye=[2.0, 0.5, 2.0], target=[0.0, 0.1, 0.0], fov_y=0.7, width=size, height=size)
    verts = mesh.verts.detach().clone().requires_grad_(grad)
    texture = mesh.texture.detach().clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        frags = lg.rasterize(verts, mesh.faces, cam, return_bary_derivs=True)
        uv, duv = lg.interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
        color = lg.texture(texture, uv, uv_derivs=duv, mask=frags.mask)
        image = lg.antialias(color, frags, verts, mesh.faces, cam)
    out = {"image": image.detach()}
    out.update({k: getattr(frags, k).detach() for k in ("face_ids", "covered", "bary_covered", "depth_covered",
                                                        "bary_derivs_covered", "zbuf")})
    if grad:
        (image * torch.linspace(0, 1, image.numel()).reshape(image.shape)).sum().backward()
        out["v_verts"], out["v_texture"] = verts.grad, texture.grad
    return out


def test_one_and_several_threads_give_identical_raster_forward():
    """192^2 is large enough that every split kernel (tiles, edges, texture samples) is cut into ranges."""
    lg.set_num_threads(1)
    one = _raster_pipeline(192, grad=False)
    lg.set_num_threads(3)
    many = _raster_pipeline(192, grad=False)
    for key in one:
        assert torch.equal(one[key], many[key]), key


def test_one_and_several_threads_give_the_same_gradients():
    """The texture backward sums per-thread tables, so texel gradients may differ in the last bits."""
    lg.set_num_threads(1)
    one = _raster_pipeline(192, grad=True)
    lg.set_num_threads(2)
    many = _raster_pipeline(192, grad=True)
    assert torch.equal(one["image"], many["image"])
    torch.testing.assert_close(many["v_verts"], one["v_verts"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(many["v_texture"], one["v_texture"], rtol=1e-5, atol=1e-6)
