"""Spot lights and ranged point lights in the fused pass (``shade_punctual``) against the PyTorch reference
(``shade_direct`` of ``PunctualLights.samples``): values and gradients to every light parameter (positions,
directions, intensities, ranges, cone angles), the G-buffer and the material; gradcheck; bad input."""

import math

import pytest
import torch

from lumigrad.kernels.direct_lights import SpotCones, direct_lights
from lumigrad.shading import PunctualLights, SurfaceSample, shade_punctual
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE, spot_cone

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
NAMES = ["position", "normal", "wo", "base_color", "roughness", "metallic", "light vector", "light radiance",
         "range", "spot direction", "inner angle", "outer angle"]


def _scene(P=500, dtype=torch.float64, seed=0):
    """Points around the origin under 8 lights: 0 point, 1 point with a range that cuts some points off,
    2 wide spot, 3 narrow spot with range, 4 spot inside ``min_distance`` of point 5, 5 directional,
    6 spot with a band under glTF's 0.001 clamp, 7 ranged point far away (dark everywhere)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    position = torch.randn(P, 3, generator=g, dtype=torch.float64) * 0.5
    normal = torch.randn(P, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.0, 1.5], dtype=torch.float64)
    camera = torch.tensor([0.2, -0.1, 3.0], dtype=torch.float64)
    material = {"base_color": r(P, 3), "roughness": r(P, 1) * 0.9 + 0.05, "metallic": r(P, 1)}
    material["roughness"][: P // 20] = 0.01  # below sqrt(ALPHA_MIN): the clamp
    vector = torch.tensor([[0.5, 0.3, 2.0], [-0.4, 0.2, 1.2], [0.0, 0.0, 2.5], [0.3, -0.2, 1.5],
                           [0.0, 0.0, 0.0], [0.2, -0.3, -1.0], [-0.5, 0.5, 2.0], [5.0, 5.0, 5.0]],
                          dtype=torch.float64)
    vector[4] = position[5] + torch.tensor([0.0, 3e-5, 4e-5], dtype=torch.float64)
    is_point = torch.tensor([True, True, True, True, True, False, True, True])
    is_spot = torch.tensor([False, False, True, True, True, False, True, False])
    spot_direction = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.1, 0.0, -1.0], [-0.2, 0.1, -1.0],
                                   [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.5, -0.5, -2.0], [0.0, 0.0, 1.0]],
                                  dtype=torch.float64)
    inner = torch.tensor([0.0, 0.0, 0.2, 0.05, 0.0, 0.0, 0.3, 0.0], dtype=torch.float64)
    outer = torch.tensor([0.0, 0.0, 0.7, 0.3, 1.2, 0.0, 0.3005, 0.0], dtype=torch.float64)
    rng = torch.tensor([math.inf, 1.6, math.inf, 2.2, math.inf, math.inf, math.inf, 3.0], dtype=torch.float64)
    radiance = r(8, 3) * 3 + 0.5
    cast = lambda t: t.to(dtype)  # noqa: E731
    lights = PunctualLights(cast(vector), is_point, cast(radiance), range=cast(rng), is_spot=is_spot,
                            spot_direction=cast(spot_direction), inner_angle=cast(inner), outer_angle=cast(outer))
    return cast(position), cast(normal), cast(camera), {k: cast(v) for k, v in material.items()}, lights


def _close(a, b, tol, what):
    scale = max(1.0, float(b.detach().abs().max()))
    err = float((a.detach().double() - b.detach().double()).abs().max())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} x {scale:.3g}"


def _shade(xs, lights, use_fused, mask=None):
    si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4], metallic=xs[5])
    packed = lights._replace(vector=xs[6], radiance=xs[7], range=xs[8], spot_direction=xs[9], inner_angle=xs[10],
                             outer_angle=xs[11])
    return shade_punctual_unchecked(si, packed, mask=mask, use_fused=use_fused)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spot_and_ranged_lights_match_reference(dtype):
    """The fused kernel in ``dtype`` against the float64 reference on the same (rounded) inputs."""
    position, normal, camera, material, lights = _scene(dtype=dtype)
    mask = torch.rand(position.shape[0], generator=torch.Generator().manual_seed(4)) > 0.2
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance, lights.range, lights.spot_direction,
              lights.inner_angle, lights.outer_angle]
    fused_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]
    fused, ref = _shade(fused_leaves, lights, True, mask), _shade(ref_leaves, lights, False, mask)
    assert fused.dtype == dtype
    _close(fused, ref, TOL[dtype], "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ga = torch.autograd.grad(fused, fused_leaves, cot.to(dtype))
    gb = torch.autograd.grad(ref, ref_leaves, cot)
    for name, a, b in zip(NAMES, ga, gb):
        assert a.dtype == dtype
        _close(a, b, TOL[dtype], f"gradient of {name}")
        if float(b.abs().max()) > 0:
            cos = torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten(), dim=0)
            assert float(cos) > 1 - 1e-6, name
    # every light kind lit something and every light parameter got a gradient where it should
    per_light = [float(s.L.abs().max()) for s in lights.samples(position.double())]
    assert all(v > 0 for v in per_light[:7]) and per_light[7] == 0.0
    v_range, v_inner, v_outer = gb[8], gb[10], gb[11]
    assert float(v_range[1].abs()) > 0 and float(v_range[3].abs()) > 0 and float(v_range[0].abs()) == 0
    assert float(v_inner[2].abs()) > 0 and float(v_outer[3].abs()) > 0 and float(v_outer[0].abs()) == 0


def test_spot_light_values_by_hand():
    """One spot straight above a point, the point on the axis (full intensity) and one at the cone's middle."""
    dt = torch.float64
    position = torch.tensor([[0.0, 0.0, 0.0], [math.tan(0.3), 0.0, 0.0]], dtype=dt)
    normal = torch.tensor([[0.0, 0.0, 1.0]] * 2, dtype=dt)
    camera = torch.tensor([0.0, 0.0, 2.0], dtype=dt)
    material = {"base_color": torch.ones(2, 1, dtype=dt), "roughness": torch.ones(2, 1, dtype=dt),
                "metallic": torch.zeros(2, 1, dtype=dt), "specular_f0": torch.zeros(2, 1, dtype=dt)}
    lights = PunctualLights.of(spots=[(torch.tensor([0.0, 0.0, 1.0], dtype=dt), torch.tensor([0.0, 0.0, -1.0], dtype=dt),
                                       torch.tensor([2.0], dtype=dt), 0.2, 0.4)])
    out = shade_punctual(position, normal, camera, material, lights)
    # f0 = 0 and roughness 1: f = 1 / pi + D V (m5 weighted); compare with the reference, and check the cone
    # factor: at 0.3 rad, cd = cos 0.3, a = ((cos 0.3 - cos 0.4) / (cos 0.2 - cos 0.4))^2
    ref = shade_punctual(position, normal, camera, material, lights, use_fused=False)
    _close(out, ref, 1e-12, "value")
    a = ((math.cos(0.3) - math.cos(0.4)) / (math.cos(0.2) - math.cos(0.4))) ** 2
    plain = shade_punctual(position, normal, camera, material, lights._replace(is_spot=torch.tensor([False])))
    assert abs(float(out[0, 0]) - float(plain[0, 0])) < 1e-14
    assert abs(float(out[1, 0]) - a * float(plain[1, 0])) < 1e-12 * float(plain[1, 0])


def test_gradcheck_spot_and_range_float64():
    g = torch.Generator().manual_seed(1)
    P, C = 4, 2
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    position = torch.randn(P, 3, generator=g, dtype=torch.float64) * 0.2
    normal = torch.nn.functional.normalize(torch.tensor([[0.1, 0.2, 1.0]], dtype=torch.float64) + 0.2 * r(P, 3), dim=-1)
    wo = torch.nn.functional.normalize(torch.tensor([[0.0, 0.3, 1.0]], dtype=torch.float64) + 0.2 * r(P, 3), dim=-1)
    vector = torch.tensor([[0.5, 0.2, 2.0], [-0.1, 0.1, 1.5], [0.3, 0.1, 0.9]], dtype=torch.float64)
    is_point = torch.tensor([1, 1, 1], dtype=torch.int32)
    is_spot = torch.tensor([False, True, True])
    axis = torch.tensor([[0.0, 0.0, 1.0], [0.1, -0.1, -1.0], [-0.2, 0.0, -1.0]], dtype=torch.float64)
    scale, offset = spot_cone(torch.tensor([0.0, 0.05, 0.1], dtype=torch.float64),
                              torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64))
    inv_range = torch.tensor([1 / 2.5, 0.0, 1 / 1.6], dtype=torch.float64)
    inputs = (position, normal, wo, r(P, C), r(P, 1) * 0.7 + 0.2, r(P, 1), r(P, C) * 0.1, vector, r(3, C) + 0.5,
              inv_range, axis, scale, offset)
    leaves = [t.clone().requires_grad_(True) for t in inputs]

    def fn(*xs):
        return direct_lights(*xs[:8], is_point, xs[8], MIN_LIGHT_DISTANCE, light_inv_range=xs[9],
                             spot=SpotCones(is_spot, xs[10], xs[11], xs[12]))

    assert float(fn(*leaves).detach().abs().min()) > 0  # every point lit: the cones and ranges are inside their ramps
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_packing_spots_and_ranges():
    dt = torch.float64
    lights = PunctualLights.of(points=[(torch.tensor([0.0, 2.0, 0.0], dtype=dt), torch.tensor([4.0], dtype=dt), 3.0)],
                               spots=[(torch.tensor([0.0, 1.0, 0.0], dtype=dt), torch.tensor([0.0, -1.0, 0.0], dtype=dt),
                                       torch.tensor([2.0], dtype=dt), 0.2, 0.4)],
                               directionals=[(torch.tensor([0.0, -1.0, 0.0], dtype=dt), torch.tensor([3.0], dtype=dt))])
    assert lights.is_point.tolist() == [True, True, False] and lights.is_spot.tolist() == [False, True, False]
    assert lights.range.tolist() == [3.0, math.inf, math.inf]
    assert lights.inner_angle[1].item() == 0.2 and lights.outer_angle[1].item() == 0.4
    # window (1 - (2 / 3)^4) / 2^2 for the point, the spot on its axis: 2 / 1^2, the sun: 3
    got = [s.L.item() for s in lights.validate().samples(torch.zeros(3, dtype=dt))]
    assert got == pytest.approx([(1 - (2 / 3) ** 4) * 4 / 4, 2.0, 3.0], rel=1e-15)


def test_bad_spot_and_range_input():
    position, normal, camera, material, lights = _scene(P=16)
    with pytest.raises(ValueError, match="lights.range must be positive"):
        shade_punctual(position, normal, camera, material, lights._replace(range=-lights.range))
    with pytest.raises(ValueError, match="glTF spot limits"):
        shade_punctual(position, normal, camera, material,
                       lights._replace(inner_angle=lights.outer_angle + 0.1))
    with pytest.raises(ValueError, match="spot_direction of a spot light must have non-zero length"):
        shade_punctual(position, normal, camera, material,
                       lights._replace(spot_direction=torch.zeros_like(lights.spot_direction)))
    with pytest.raises(ValueError, match="need lights.is_spot"):
        shade_punctual(position, normal, camera, material, lights._replace(is_spot=None))
    with pytest.raises(ValueError, match="marks a directional light"):
        shade_punctual(position, normal, camera, material, lights._replace(is_spot=torch.ones(8, dtype=torch.bool)))
    with pytest.raises(ValueError, match="NaN"):
        shade_punctual(position, normal, camera, material,
                       lights._replace(inner_angle=lights.inner_angle * math.nan))
    one, two = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="light 0 range must be a single value"):
        PunctualLights.of(points=[(one, torch.ones(3), two)])
    with pytest.raises(ValueError, match="light 0 outer angle must be a single value"):
        PunctualLights.of(spots=[(one, -one, torch.ones(3), 0.1, two)])


def test_only_the_gradients_asked_for_are_computed_and_they_are_unchanged():
    """The backward skips the point gradients when only the lights need them and the reverse; what it computes
    equals the all-gradients run bit for bit."""
    position, normal, camera, material, lights = _scene(P=200)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance, lights.range, lights.spot_direction,
              lights.inner_angle, lights.outer_angle]
    cot = torch.randn(200, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def grads(which):
        xs = [t.detach().clone().requires_grad_(k in which) for k, t in enumerate(leaves)]
        out = _shade(xs, lights, True)
        return torch.autograd.grad(out, [xs[k] for k in which], cot)

    everything = grads(range(12))
    for part in (range(6), range(6, 12), [0], [7]):
        for k, g in zip(part, grads(part)):
            assert torch.equal(g, everything[k]), NAMES[k]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spot_and_ranged_lights_on_cuda_match_the_reference(dtype):
    """The kernels on a CUDA device (light gradients summed per 256 points with atomics) against the float64
    reference on the CPU."""
    position, normal, camera, material, lights = _scene(P=3000, dtype=dtype)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance, lights.range, lights.spot_direction,
              lights.inner_angle, lights.outer_angle]
    fused_leaves = [t.detach().cuda().requires_grad_(True) for t in leaves]
    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]
    on_cuda = lights._replace(is_point=lights.is_point.cuda(), is_spot=lights.is_spot.cuda())
    fused, ref = _shade(fused_leaves, on_cuda, True), _shade(ref_leaves, lights, False)
    assert fused.device.type == "cuda"
    _close(fused.cpu(), ref, TOL[dtype], "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for name, a, b in zip(NAMES, torch.autograd.grad(fused, fused_leaves, cot.to(dtype).cuda()),
                          torch.autograd.grad(ref, ref_leaves, cot)):
        _close(a.cpu(), b, TOL[dtype], f"gradient of {name}")
