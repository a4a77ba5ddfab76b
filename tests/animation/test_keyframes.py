import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.animation import Animation, Channel, KeyframeTrack, sample_track

D = torch.float64


def _t(*v):
    return torch.tensor(v, dtype=D)


def test_step_spec_example():
    tr = KeyframeTrack(_t(0.0, 1.0, 3.0), _t([0.0, 0, 0], [1, 2, 3], [5, 5, 5]), "STEP", "translation")
    got = sample_track(tr, _t(-1.0, 0.0, 0.99, 1.0, 2.9, 3.0, 10.0))
    want = _t([0.0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 2, 3], [1, 2, 3], [5, 5, 5], [5, 5, 5])
    assert torch.equal(got, want)


def test_linear_spec_example_and_clamping():
    tr = KeyframeTrack(_t(1.0, 2.0, 4.0), _t([0.0, 0, 0], [2, 0, 0], [2, 4, 0]), "LINEAR", "translation")
    got = sample_track(tr, _t(0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0))
    want = _t([0.0, 0, 0], [0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 2, 0], [2, 4, 0], [2, 4, 0])
    assert torch.allclose(got, want)


def test_linear_rotation_uses_slerp_and_renormalises():
    q90 = _t(math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4))
    tr = KeyframeTrack(_t(0.0, 2.0), torch.stack([_t(1.0, 0, 0, 0), q90]), "LINEAR", "rotation")
    got = sample_track(tr, 0.5)  # a quarter of the way: 22.5 degrees about z
    assert torch.allclose(got, _t(math.cos(math.pi / 16), 0, 0, math.sin(math.pi / 16)))
    # lerp would give a different direction: (1 - .25) q0 + .25 q1, normalised
    lerp = 0.75 * _t(1.0, 0, 0, 0) + 0.25 * q90
    assert not torch.allclose(got, lerp / lerp.norm(), atol=1e-4)


def test_cubicspline_hand_computed():
    # keys at t=0 and t=2 with values 0 and 1, out-tangent 3 at key 0, in-tangent -1 at key 1
    values = _t([[9.0], [0.0], [3.0]], [[-1.0], [1.0], [7.0]])
    tr = KeyframeTrack(_t(0.0, 2.0), values, "CUBICSPLINE", "weights")
    s, td = 0.25, 2.0
    want = ((2 * s ** 3 - 3 * s ** 2 + 1) * 0.0 + td * (s ** 3 - 2 * s ** 2 + s) * 3.0
            + (-2 * s ** 3 + 3 * s ** 2) * 1.0 + td * (s ** 3 - s ** 2) * -1.0)
    assert torch.allclose(sample_track(tr, 0.5), _t(want))
    assert torch.allclose(sample_track(tr, 0.0), _t(0.0)) and torch.allclose(sample_track(tr, 2.0), _t(1.0))
    assert torch.allclose(sample_track(tr, 5.0), _t(1.0)) and torch.allclose(sample_track(tr, -5.0), _t(0.0))
    # derivative at t=0 is the out-tangent (the tangents are per second: dv/dt = b_0)
    t = torch.tensor(1e-7, dtype=D, requires_grad=True)
    sample_track(tr, t).sum().backward()
    assert abs(float(t.grad) - 3.0) < 1e-5


def test_cubicspline_rotation_renormalised():
    q = torch.zeros(2, 3, 4, dtype=D)
    q[:, 1, 0] = 1
    q[1, 1] = _t(0.0, 1, 0, 0)
    tr = KeyframeTrack(_t(0.0, 1.0), q, "CUBICSPLINE", "rotation")
    assert torch.allclose(sample_track(tr, 0.5).norm(), torch.tensor(1.0, dtype=D))


def test_single_key_and_batched_times():
    tr = KeyframeTrack(_t(0.5), _t([1.0, 2.0]), "LINEAR", "weights")
    out = sample_track(tr, torch.zeros(3, 2, dtype=D))
    assert out.shape == (3, 2, 2) and torch.allclose(out, _t(1.0, 2.0).expand(3, 2, 2))


def test_gradcheck_wrt_values():
    g = torch.Generator().manual_seed(0)
    times = _t(0.0, 0.7, 1.5, 2.0)
    ts = _t(0.3, 0.7, 1.1, 1.9, 3.0)
    lin = torch.randn(4, 3, generator=g, dtype=D, requires_grad=True)
    assert gradcheck(lambda v: sample_track(KeyframeTrack(times, v, "LINEAR", "translation"), ts), (lin,))
    cub = torch.randn(4, 3, 2, generator=g, dtype=D, requires_grad=True)
    assert gradcheck(lambda v: sample_track(KeyframeTrack(times, v, "CUBICSPLINE", "weights"), ts), (cub,))
    quat = torch.randn(4, 4, generator=g, dtype=D)
    quat = (quat / quat.norm(dim=-1, keepdim=True)).requires_grad_(True)
    assert gradcheck(lambda v: sample_track(KeyframeTrack(times, v, "LINEAR", "rotation"), ts), (quat,))
    cq = torch.randn(4, 3, 4, generator=g, dtype=D, requires_grad=True)
    assert gradcheck(lambda v: sample_track(KeyframeTrack(times, v, "CUBICSPLINE", "rotation"), ts), (cq,))
    step = torch.randn(4, 3, generator=g, dtype=D, requires_grad=True)
    assert gradcheck(lambda v: sample_track(KeyframeTrack(times, v, "STEP", "scale"), ts), (step,))


def test_bad_tracks_name_the_track():
    with pytest.raises(ValueError, match="walk/ch2: times must be strictly increasing; times\\[2\\]"):
        KeyframeTrack(_t(0.0, 1.0, 1.0), torch.zeros(3, 3, dtype=D), "LINEAR", "translation", name="walk/ch2")
    with pytest.raises(ValueError, match="hop: times must be strictly increasing"):
        KeyframeTrack(_t(1.0, 0.0), torch.zeros(2, 3, dtype=D), name="hop")
    with pytest.raises(ValueError, match="interpolation"):
        KeyframeTrack(_t(0.0), torch.zeros(1, 3, dtype=D), "CUBIC", "translation")
    with pytest.raises(ValueError, match="values"):
        KeyframeTrack(_t(0.0, 1.0), torch.zeros(2, 3, dtype=D), "LINEAR", "rotation")
    with pytest.raises(ValueError, match="values"):
        KeyframeTrack(_t(0.0, 1.0), torch.zeros(2, 3, dtype=D), "CUBICSPLINE", "translation")
    with pytest.raises(ValueError, match="at least one"):
        KeyframeTrack(torch.zeros(0, dtype=D), torch.zeros(0, 3, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        KeyframeTrack(_t(0.0, float("nan")), torch.zeros(2, 3, dtype=D))
    tr = KeyframeTrack(_t(0.0, 1.0), torch.zeros(2, 3, dtype=D))
    with pytest.raises(ValueError, match="NaN"):
        sample_track(tr, float("nan"))


def test_animation_sample_and_duration():
    a = Animation("walk", [
        Channel("hip", KeyframeTrack(_t(0.0, 2.0), _t([0.0, 0, 0], [2, 0, 0]), "LINEAR", "translation")),
        Channel("hip", KeyframeTrack(_t(0.0, 3.0), _t([1.0, 0, 0, 0], [1, 0, 0, 0]), "LINEAR", "rotation")),
        Channel("face", KeyframeTrack(_t(1.0), _t([0.5, 0.25]), "STEP", "weights")),
    ])
    assert a.duration == 3.0 and a.targets == ["hip", "face"]
    s = a.sample(1.0)
    assert torch.allclose(s["hip"]["translation"], _t(1.0, 0, 0))
    assert set(s["hip"]) == {"translation", "rotation"} and torch.allclose(s["face"]["weights"], _t(0.5, 0.25))
    with pytest.raises(ValueError, match="two channels"):
        Animation("x", [Channel("a", KeyframeTrack(_t(0.0), _t([0.0, 0, 0]))),
                        Channel("a", KeyframeTrack(_t(1.0), _t([0.0, 0, 0])))])
    with pytest.raises(ValueError, match="does not match"):
        Channel("a", KeyframeTrack(_t(0.0), _t([0.0, 0, 0])), path="scale")
