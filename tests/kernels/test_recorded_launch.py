"""`_runtime.warp_launch`: CPU launches replay a launch recorded once per (kernel, thread) with arguments packed
from torch tensors; results must equal those of `wp.launch` with `wp.from_torch` arrays, bit for bit."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch
import warp as wp

from lumigrad.kernels import _runtime


@wp.kernel
def _affine(offset: int, end: int, x: wp.array(dtype=wp.float32), p: wp.array(dtype=wp.vec3d),
            scale: wp.float64, shift: int, flags: wp.array(dtype=wp.int8), out: wp.array2d(dtype=wp.float64)):
    i = offset + wp.tid()
    q = p[i] * scale
    out[i, 0] = wp.float64(x[i]) * q[0] + wp.float64(shift)
    out[i, 1] = q[1] + q[2] + wp.float64(flags[i])


@wp.kernel
def _twice(offset: int, end: int, x: wp.array(dtype=Any), out: wp.array(dtype=Any)):
    i = offset + wp.tid()
    out[i] = x[i] + x[i]


for _dtype in (wp.float32, wp.float64):
    wp.overload(_twice, [int, int, wp.array(dtype=_dtype), wp.array(dtype=_dtype)])


@wp.kernel
def _add_vector(offset: int, end: int, s: wp.vec3, out: wp.array(dtype=wp.float32)):
    i = offset + wp.tid()
    out[i] = s[0] * 100.0 + s[1] * 10.0 + s[2]


@wp.kernel
def _fill_squares(offset: int, end: int, out: wp.array(dtype=wp.float32)):
    i = offset + wp.tid()
    out[i] = float(i % 7) * float(i % 7)


@wp.struct
class _Pair:
    a: float
    b: float


@wp.kernel
def _add_pair(offset: int, end: int, p: _Pair, out: wp.array(dtype=wp.float32)):
    i = offset + wp.tid()
    out[i] = p.a + p.b


def _inputs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    p = torch.randn(n, 3, generator=g, dtype=torch.float64)
    flags = torch.randint(-3, 4, (n,), generator=g, dtype=torch.int8)
    return x, p, flags


def _with_warp_launch(n: int, x, p, flags, scale: float, shift: int):
    out = torch.zeros(n, 2, dtype=torch.float64)
    wp.launch(_affine, dim=n, inputs=[0, n, wp.from_torch(x), wp.from_torch(p, dtype=wp.vec3d), wp.float64(scale),
                                      shift, wp.from_torch(flags), wp.from_torch(out)], device="cpu")
    return out


def _with_runtime(n: int, x, p, flags, scale: float, shift: int):
    out = torch.zeros(n, 2, dtype=torch.float64)
    _runtime.launch(_affine, n, [0, n, x, p, wp.float64(scale), shift, flags, out], torch.device("cpu"))
    return out


def test_replayed_launches_equal_wp_launch_and_reuse_one_recording():
    _runtime.ensure_init()
    first = None
    for n, seed, scale, shift in ((37, 0, 0.5, 3), (1000, 1, -2.25, -7), (5, 2, 1e-300, 0)):
        x, p, flags = _inputs(n, seed)
        expected = _with_warp_launch(n, x, p, flags, scale, shift)
        assert torch.equal(_with_runtime(n, x, p, flags, scale, shift), expected)
        rec = _runtime._recorded.launches[_affine]
        first = first or rec
        assert rec is first  # new sizes, buffers and scalars: the same recorded launch, re-parameterised


def test_wp_arrays_and_the_switch_give_the_same_results(monkeypatch):
    x, p, flags = _inputs(64, 3)
    expected = _with_warp_launch(64, x, p, flags, 3.0, 1)
    out = torch.zeros(64, 2, dtype=torch.float64)
    _runtime.launch(_affine, 64, [0, 64, _runtime.as_warp(x), _runtime.as_warp(p, wp.vec3d), wp.float64(3.0), 1,
                                  flags, _runtime.as_warp(out)], torch.device("cpu"))
    assert torch.equal(out, expected)
    monkeypatch.setattr(_runtime, "RECORDED_LAUNCHES", False)
    assert torch.equal(_with_runtime(64, x, p, flags, 3.0, 1), expected)


def test_generic_kernels_replay_one_recording_per_overload():
    for dtype in (torch.float32, torch.float64, torch.float32):
        x = torch.arange(10, dtype=dtype) / 3
        out = torch.empty_like(x)
        _runtime.launch(_twice, 10, [0, 10, x, out], x.device)
        assert torch.equal(out, x + x)
    keys = [k for k in _runtime._recorded.launches if isinstance(k, tuple) and k[0] is _twice]
    assert len(keys) == 2


def test_inputs_it_does_not_pack_fail_as_before():
    x, p, flags = _inputs(8, 4)
    out = torch.zeros(8, 2, dtype=torch.float64)
    cpu = torch.device("cpu")
    with pytest.raises(RuntimeError, match="dtype"):  # float64 where the kernel takes float32: Warp's own error
        _runtime.launch(_affine, 8, [0, 8, x.double(), p, wp.float64(1.0), 0, flags, out], cpu)
    with pytest.raises(RuntimeError, match="contiguous"):
        _runtime.launch(_affine, 8, [0, 8, x, p, wp.float64(1.0), 0, flags, torch.zeros(2, 8).double().t()], cpu)
    with pytest.raises(RuntimeError, match="unable to pack"):  # a float for an int parameter
        _runtime.launch(_affine, 8, [0, 8, x, p, wp.float64(1.0), 0.5, flags, out], cpu)
    with pytest.raises(RuntimeError, match="arguments"):
        _runtime.launch(_affine, 8, [0, 8, x, p, wp.float64(1.0), 0, flags], cpu)
    expected = _with_warp_launch(8, x, p, flags, 1.0, 0)
    assert torch.equal(_with_runtime(8, x, p, flags, 1.0, 0), expected)  # still fine afterwards


def test_each_thread_replays_its_own_recording():
    x, p, flags = _inputs(500, 5)
    expected = _with_warp_launch(500, x, p, flags, 2.0, 4)
    results, recs = [], []

    def work():
        for _ in range(20):
            results.append(_with_runtime(500, x, p, flags, 2.0, 4))
        recs.append(_runtime._recorded.launches[_affine])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 60 and all(torch.equal(r, expected) for r in results)
    assert len({id(r) for r in recs}) == 3


def test_a_warp_without_the_launch_internals_falls_back_to_wp_launch(monkeypatch):
    """A Warp release whose recorded launches lack an internal this uses (here ``module_exec``) gets the
    results of ``wp.launch``, and recording is switched off instead of failing every launch."""
    x, p, flags = _inputs(37, 5)
    expected = _with_warp_launch(37, x, p, flags, 0.5, 2)

    class WithoutInternals:
        def __init__(self, rec):
            self.kernel = rec.kernel

        def __getattr__(self, name):
            raise AttributeError(f"'Launch' object has no attribute {name!r}")

    real_launch = wp.launch

    def launch(*args, record_cmd=False, **kwargs):
        rec = real_launch(*args, record_cmd=record_cmd, **kwargs)
        return WithoutInternals(rec) if record_cmd else rec

    monkeypatch.setattr(_runtime.wp, "launch", launch)
    monkeypatch.setattr(_runtime, "RECORDED_LAUNCHES", True)
    monkeypatch.setattr(_runtime, "_INTERNALS_CHECKED", False)
    monkeypatch.setattr(_runtime._recorded, "launches", {})
    monkeypatch.setattr(_runtime, "_packers", {})
    assert torch.equal(_with_runtime(37, x, p, flags, 0.5, 2), expected)
    assert _runtime.RECORDED_LAUNCHES is False
    assert torch.equal(_with_runtime(37, x, p, flags, 0.5, 2), expected)


def test_vector_parameters_go_through_wp_launch_and_its_checks():
    """A vec3 parameter is not packed as a scalar: a vector gives wp.launch's result, a bare float its error."""
    out = torch.zeros(3)
    _runtime.launch(_add_vector, 3, [0, 3, wp.vec3(1.0, 2.0, 3.0), out], torch.device("cpu"))
    _runtime.launch(_add_vector, 3, [0, 3, wp.vec3(4.0, 5.0, 6.0), out], torch.device("cpu"))
    assert out.tolist() == [456.0] * 3
    with pytest.raises(RuntimeError, match="vec3"):
        _runtime.launch(_add_vector, 3, [0, 3, 7.0, out], torch.device("cpu"))
    assert _runtime.RECORDED_LAUNCHES


def test_a_bad_argument_raises_and_leaves_recording_on():
    """A user's wrong argument (a float for a struct) raises as wp.launch does; later launches still replay."""
    out = torch.zeros(2)
    pair = _Pair()
    pair.a, pair.b = 1.5, 2.0
    _runtime.launch(_add_pair, 2, [0, 2, pair, out], torch.device("cpu"))
    assert out.tolist() == [3.5, 3.5]
    with pytest.raises(Exception):
        _runtime.launch(_add_pair, 2, [0, 2, 1.0, out], torch.device("cpu"))
    assert _runtime.RECORDED_LAUNCHES
    x, p, flags = _inputs(9, 7)
    assert torch.equal(_with_runtime(9, x, p, flags, 2.0, 1), _with_warp_launch(9, x, p, flags, 2.0, 1))


def test_tensors_off_the_cpu_are_not_packed_as_host_pointers(monkeypatch):
    """A meta tensor (no storage) given to a recorded kernel gets wp.launch's error, not a write through a null
    pointer (which crashed the process)."""
    monkeypatch.setattr(_runtime, "RECORDED_LAUNCHES", True)
    x, p, flags = _inputs(8, 8)
    _with_runtime(8, x, p, flags, 1.0, 0)  # recorded
    out = torch.zeros(8, 2, dtype=torch.float64, device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        _runtime.launch(_affine, 8, [0, 8, x, p, wp.float64(1.0), 0, flags, out], torch.device("cpu"))


def test_threads_record_one_at_a_time(monkeypatch):
    """The first launch of a kernel in each thread records it; recordings (which load the kernel's module) run
    one at a time: two threads loading a module at once crashed the process (2-thread rasterize, 6 of 8 runs)."""
    monkeypatch.setattr(_runtime, "RECORDED_LAUNCHES", True)
    real_launch, active, most = wp.launch, [0], [0]
    lock = threading.Lock()

    def launch(*args, record_cmd=False, **kwargs):
        if record_cmd:
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.05)  # long enough for the other thread to take its range and record too
        try:
            return real_launch(*args, record_cmd=record_cmd, **kwargs)
        finally:
            if record_cmd:
                with lock:
                    active[0] -= 1

    monkeypatch.setattr(_runtime.wp, "launch", launch)
    out = torch.zeros(1 << 16)
    _runtime.launch_split(_fill_squares, out.numel(), [out], torch.device("cpu"), workers=2)
    i = torch.arange(out.numel()) % 7
    assert torch.equal(out, (i * i).float())
    assert most[0] == 1
