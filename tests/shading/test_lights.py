"""Punctual lights: hand-checked values (inverse square, spot cone, range window), gradcheck, bad input."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.shading.lights import MIN_LIGHT_DISTANCE, directional_light, point_light, spot_light

DT = torch.float64


def _t(*v, grad=False):
    return torch.tensor(v, dtype=DT, requires_grad=grad)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- point light


def test_point_inverse_square_law():
    pos = _t(0.0, 0.0, 0.0)
    intensity = _t(3.0, 6.0)
    for d in (0.5, 1.0, 2.0, 7.0):
        x = torch.tensor([[d, 0.0, 0.0], [0.0, -d, 0.0]], dtype=DT)
        s = point_light(x, pos, intensity)
        torch.testing.assert_close(s.L, (intensity / d**2).expand(2, 2), rtol=1e-14, atol=0)
        torch.testing.assert_close(s.wi, torch.tensor([[-1.0, 0, 0], [0, 1.0, 0]], dtype=DT), rtol=0, atol=1e-15)
        torch.testing.assert_close(s.distance, torch.full((2,), d, dtype=DT))
    # doubling the distance quarters L
    a = point_light(_t(1.0, 1.0, 1.0), pos, intensity).L
    b = point_light(_t(2.0, 2.0, 2.0), pos, intensity).L
    torch.testing.assert_close(a / b, torch.full((2,), 4.0, dtype=DT))


def test_point_wi_is_unit_and_shapes_broadcast():
    x = torch.randn(4, 5, 3, generator=_gen(), dtype=DT)
    s = point_light(x, _t(0.3, 2.0, -1.0), _t(1.0, 2.0, 3.0))
    assert s.wi.shape == (4, 5, 3) and s.L.shape == (4, 5, 3) and s.distance.shape == (4, 5)
    torch.testing.assert_close(s.wi.norm(dim=-1), torch.ones(4, 5, dtype=DT))
    # one light per batch element
    pos = torch.randn(4, 1, 3, generator=_gen(1), dtype=DT)
    s2 = point_light(x, pos, _t(1.0))
    assert s2.L.shape == (4, 5, 1)
    torch.testing.assert_close(s2.distance, (pos - x).norm(dim=-1))


def test_point_range_window_gltf():
    pos = _t(0.0, 0.0, 0.0)
    x = torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]], dtype=DT)
    s = point_light(x, pos, _t(1.0), range=2.0)
    # glTF: clamp(1 - (d / range)^4, 0, 1) / d^2
    torch.testing.assert_close(s.L[:, 0], _t((1 - 0.5**4) / 1.0, 0.0, 0.0))


def test_point_at_the_light_is_finite():
    pos = _t(0.5, 0.5, 0.5, grad=True)
    x = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5 + 1e-7]], dtype=DT, requires_grad=True)
    intensity = _t(2.0, grad=True)
    s = point_light(x, pos, intensity)
    assert torch.isfinite(s.L).all() and torch.isfinite(s.wi).all()
    torch.testing.assert_close(s.L[:, 0], torch.full((2,), 2.0 / MIN_LIGHT_DISTANCE**2, dtype=DT))
    torch.testing.assert_close(s.distance, torch.full((2,), MIN_LIGHT_DISTANCE, dtype=DT))
    assert float(s.wi[1].detach().norm()) < 1e-2  # shorter than 1 inside the clamp, zero at the light
    (s.L.sum() + s.wi.sum() + s.distance.sum()).backward()
    for g in (pos.grad, x.grad, intensity.grad):
        assert g is not None and torch.isfinite(g).all()


def test_zero_intensity_gives_zero_light_and_finite_gradients():
    x = torch.randn(3, 3, generator=_gen(2), dtype=DT, requires_grad=True)
    pos = _t(0.0, 3.0, 0.0, grad=True)
    intensity = _t(0.0, 0.0, grad=True)
    for s in (point_light(x, pos, intensity),
              spot_light(x, pos, _t(0.0, -1.0, 0.0), intensity, 0.1, 0.5),
              directional_light(x, _t(0.0, -1.0, 0.0), intensity)):
        assert torch.equal(s.L, torch.zeros_like(s.L))
        s.L.sum().backward()
    for g in (x.grad, pos.grad, intensity.grad):
        assert g is not None and torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------- spot light


def _spot_at_angle(angle, inner=0.2, outer=0.5, d=2.0, intensity=4.0):
    """L of a spot at the origin shining along +z, seen from a point at distance d, `angle` off axis."""
    x = torch.tensor([[d * math.sin(a), 0.0, d * math.cos(a)] for a in angle], dtype=DT)
    return spot_light(x, _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 3.0), _t(intensity), inner, outer).L[:, 0]


def test_spot_cone_values_by_hand():
    inner, outer, d, intensity = 0.2, 0.5, 2.0, 4.0
    angles = [0.0, 0.1, 0.2, 0.35, 0.45, 0.5, 0.6, 1.5]
    L = _spot_at_angle(angles, inner, outer, d, intensity)
    full = intensity / d**2
    # inside the inner cone: the full point-light value; outside the outer cone: 0
    torch.testing.assert_close(L[:3], torch.full((3,), full, dtype=DT))
    torch.testing.assert_close(L[5:], torch.zeros(3, dtype=DT), rtol=0, atol=1e-14)
    # in between: glTF's ((cos a - cos outer) / (cos inner - cos outer))^2
    for k in (3, 4):
        t = (math.cos(angles[k]) - math.cos(outer)) / (math.cos(inner) - math.cos(outer))
        assert abs(float(L[k]) - full * t * t) < 1e-12
        assert 0 < float(L[k]) < full


def test_spot_falloff_is_monotone_and_continuous():
    angles = torch.linspace(0.0, 0.7, 141, dtype=DT).tolist()
    L = _spot_at_angle(angles)
    assert bool((L[1:] <= L[:-1] + 1e-15).all())
    assert float((L[1:] - L[:-1]).abs().max()) < 0.05 * float(L[0])  # no jump at either cone edge


def test_linear_spot_cone_values_by_hand():
    """Mitsuba's ``spot`` edge: full inside ``inner`` (its beam width), 0 beyond ``outer`` (its cutoff), a ramp
    in the angle between."""
    inner, outer, d, intensity = 0.2, 0.5, 2.0, 4.0
    angles = [0.0, 0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 1.5]
    x = torch.tensor([[d * math.sin(a), 0.0, d * math.cos(a)] for a in angles], dtype=DT)
    L = spot_light(x, _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 3.0), _t(intensity), inner, outer, falloff="linear").L[:, 0]
    full = intensity / d**2
    expected = [full * min(max((outer - a) / (outer - inner), 0.0), 1.0) for a in angles]
    torch.testing.assert_close(L, torch.tensor(expected, dtype=DT), rtol=1e-9, atol=1e-12)
    assert 0 < float(L[3]) < full and abs(float(L[3]) - full * 2 / 3) < 1e-9  # linear, not glTF's square
    glTF = _spot_at_angle([0.3], inner, outer, d, intensity)
    assert abs(float(glTF) - float(L[3])) > 0.05 * full  # glTF: 0.576 of full


def test_a_linear_spot_with_equal_angles_has_a_hard_edge():
    x = torch.tensor([[math.sin(a), 0.0, math.cos(a)] for a in (0.29, 0.31)], dtype=DT)
    L = spot_light(x, _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 1.0), _t(1.0), 0.3, 0.3, falloff="linear").L[:, 0]
    assert L.tolist() == [1.0, 0.0]


def test_spot_range_and_inverse_square():
    s1 = spot_light(_t(0.0, 0.0, 1.0), _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 1.0), _t(1.0), 0.1, 0.3)
    s2 = spot_light(_t(0.0, 0.0, 3.0), _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 1.0), _t(1.0), 0.1, 0.3)
    torch.testing.assert_close(s1.L / s2.L, _t(9.0))
    s3 = spot_light(_t(0.0, 0.0, 3.0), _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 1.0), _t(1.0), 0.1, 0.3, range=2.5)
    assert float(s3.L) == 0.0
    torch.testing.assert_close(s1.wi, _t(0.0, 0.0, -1.0))


# ------------------------------------------------------------------------------------------ directional light


def test_directional_is_constant():
    x = torch.randn(6, 3, generator=_gen(3), dtype=DT) * 100
    s = directional_light(x, _t(1.0, -2.0, 2.0), _t(0.5, 1.0, 2.0))
    torch.testing.assert_close(s.wi, _t(-1.0, 2.0, -2.0).div(3.0).expand(6, 3))
    torch.testing.assert_close(s.L, _t(0.5, 1.0, 2.0).expand(6, 3))
    assert torch.isinf(s.distance).all() and s.distance.shape == (6,)


# ------------------------------------------------------------------------------------------------ gradcheck


def test_gradcheck_point():
    x = torch.randn(2, 3, generator=_gen(4), dtype=DT, requires_grad=True)
    pos = _t(0.3, 2.0, -1.0, grad=True)
    intensity = _t(1.0, 2.0, grad=True)
    rng = torch.tensor(4.0, dtype=DT, requires_grad=True)
    assert gradcheck(lambda *a: tuple(point_light(*a)), (x, pos, intensity))
    assert gradcheck(lambda x, p, i, r: tuple(point_light(x, p, i, range=r)), (x, pos, intensity, rng))


@pytest.mark.parametrize("falloff", ["gltf", "linear"])
def test_gradcheck_spot(falloff):
    # points spread over the cone: inside inner, in the soft band, outside
    x = torch.tensor([[0.05, 0.0, 2.0], [0.6, 0.1, 2.0], [0.8, -0.3, 1.9], [3.0, 0.0, 1.0]], dtype=DT,
                     requires_grad=True)
    pos = _t(0.0, 0.1, 0.0, grad=True)
    direction = _t(0.1, 0.0, 1.0, grad=True)
    intensity = _t(1.0, 3.0, grad=True)
    inner = torch.tensor(0.15, dtype=DT, requires_grad=True)
    outer = torch.tensor(0.5, dtype=DT, requires_grad=True)
    rng = torch.tensor(5.0, dtype=DT, requires_grad=True)
    s = spot_light(x, pos, direction, intensity, inner, outer, falloff=falloff)
    L = s.L.detach()
    assert float(L[0, 0]) > 0 and 0 < float(L[1, 0]) < float(L[0, 0]) * 0.9 and float(L[3, 0]) == 0
    fn = lambda *a: tuple(spot_light(*a[:6], range=a[6], falloff=falloff))  # noqa: E731
    assert gradcheck(fn, (x, pos, direction, intensity, inner, outer, rng))
    # angles do get gradients in the band
    s.L.sum().backward()
    assert float(inner.grad) != 0 and float(outer.grad) != 0


def test_the_linear_spot_has_finite_gradients_on_its_axis():
    """``acos`` is vertical at the axis: its input is kept inside ``1 - 1e-6``, so the gradient is finite."""
    on_axis = torch.tensor([[0.0, 0.0, 2.0]], dtype=DT, requires_grad=True)
    inner0 = torch.tensor(0.0, dtype=DT, requires_grad=True)
    s = spot_light(on_axis, _t(0.0, 0.0, 0.0), _t(0.0, 0.0, 1.0), _t(1.0), inner0, 0.5, falloff="linear")
    s.L.sum().backward()
    assert torch.isfinite(on_axis.grad).all() and torch.isfinite(inner0.grad)


def test_gradcheck_directional():
    x = torch.randn(2, 3, generator=_gen(5), dtype=DT)
    direction = _t(0.2, -1.0, 0.3, grad=True)
    irradiance = _t(1.0, 2.0, grad=True)
    assert gradcheck(lambda d, e: tuple(directional_light(x, d, e)[:2]), (direction, irradiance))


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: point_light(torch.zeros(2, 3), torch.ones(3), torch.tensor([1.0, -1.0])), "intensity must be non-neg"),
    (lambda: point_light(torch.zeros(2, 3), torch.tensor([1.0, float("nan"), 0.0]), torch.ones(3)),
     "position contains NaN"),
    (lambda: point_light(torch.full((2, 3), float("nan")), torch.ones(3), torch.ones(3)), "x contains NaN"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(3), torch.tensor([float("inf")])), "intensity contains"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(2), torch.ones(3)), r"position must have shape \[\.\.\., 3\]"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(3), torch.ones(3), range=0.0), "range must be positive"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(3), torch.ones(3), range=float("nan")), "range contains"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(4, 3), torch.ones(3)), "position"),
    (lambda: point_light(torch.zeros(2, 3), torch.ones(3), torch.ones(3), min_distance=0.0), "min_distance"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), torch.zeros(3), torch.ones(3)),
     "direction must have non-zero length"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), torch.ones(3), falloff="mitsuba"),
     "falloff must be one of"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), torch.ones(3), 0.5, 0.2),
     "inner_angle must be <= outer_angle"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), torch.ones(3), -0.1, 0.2), "inner_angle"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), torch.ones(3), 0.1, 2.0), "outer_angle"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), torch.ones(3), 0.1, float("nan")),
     "outer_angle contains NaN"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), torch.tensor([0.0, float("nan"), 1.0]), torch.ones(3)),
     "direction contains NaN"),
    (lambda: spot_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3), -torch.ones(3)), "intensity"),
    (lambda: directional_light(torch.zeros(2, 3), torch.zeros(3), torch.ones(3)), "direction must have non-zero"),
    (lambda: directional_light(torch.zeros(2, 3), torch.ones(3), -torch.ones(3)), "irradiance must be non-neg"),
    (lambda: directional_light(torch.zeros(2, 3), torch.ones(3), torch.tensor([float("nan")])),
     "irradiance contains NaN"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        point_light([0.0, 0.0, 0.0], torch.ones(3), torch.ones(3))
    with pytest.raises(TypeError, match="intensity must have a floating dtype"):
        point_light(torch.zeros(3), torch.ones(3), torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="inner_angle must be a float"):
        spot_light(torch.zeros(3), torch.ones(3), -torch.ones(3), torch.ones(3), "wide", 0.5)
