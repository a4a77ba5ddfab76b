"""Point-light tables run their full blocks of four lights as explicit ``vec4d`` lanes
(``direct_lights_kernels._block``): the forward always, the backward on the CPU whether the lights, the points
(``_block_gradients``, the point's terms summed lane by lane) or both want gradients. Each against the float64
PyTorch reference at the tolerances of ``test_punctual``: a block holding the edge cases (a light at the point,
one inside ``min_distance``, one below the horizon, one opposite the viewer), sharp highlights, and gradchecks
of the light and of the point gradients."""

import pytest
import torch

from lumigrad.kernels.direct_lights import direct_lights
from lumigrad.shading import PunctualLights, SurfaceSample
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE

from .test_punctual import _close, _scene

DT = torch.float64


def _shade(xs, use_fused):
    si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4], metallic=xs[5])
    K = xs[6].shape[0]
    return shade_punctual_unchecked(si, PunctualLights(xs[6], torch.ones(K, dtype=torch.bool), xs[7]),
                                    use_fused=use_fused)


def _light_gradients(leaves, cot, wanted=(6, 7)):
    """Values and the gradients of the ``wanted`` leaves (default: the lights' vector, radiance) of the fused pass
    and of the reference."""
    out = []
    for use_fused in (True, False):
        xs = [t.detach().clone().requires_grad_(j in wanted) for j, t in enumerate(leaves)]
        y = _shade(xs, use_fused)
        out.append((y, torch.autograd.grad(y, [xs[j] for j in wanted], cot)))
    return out


def _edge_block(light_at_point: bool):
    """Two points and nine lights: the first block holds the edge cases of point 0 (a light at it, or an ordinary
    light instead where ``light_at_point`` is False), then an ordinary block and one remainder light."""
    position = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]], dtype=DT)
    normal = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.2, 1.0]], dtype=DT)
    wo = torch.tensor([[0.0, 0.6, 0.8], [0.1, -0.1, 1.0]], dtype=DT)
    vector = torch.tensor([[0.0, 0.0, 0.0] if light_at_point else [0.4, -0.3, 0.8], [0.0, 0.0, 1e-5],
                           [1.0, 0.0, -0.5], [0.0, -1.2, -1.6], [0.5, 0.4, 1.5], [-0.7, 0.2, 1.1],
                           [0.1, -0.9, 0.6], [1.3, 1.0, 2.0], [0.2, 0.3, 0.9]], dtype=DT)
    g = torch.Generator().manual_seed(7)
    leaves = [position, normal, wo, torch.rand(2, 3, generator=g, dtype=DT), torch.tensor([[0.4], [0.2]], dtype=DT),
              torch.tensor([[0.0], [0.6]], dtype=DT), vector, torch.rand(9, 3, generator=g, dtype=DT) + 0.5]
    return leaves, torch.randn(2, 3, generator=g, dtype=DT)


def test_edge_cases_inside_one_block_match_reference():
    """Two points; lights 0-3 (one block): at point 0, 1e-5 above it (inside ``min_distance``), below point 0's
    horizon, and exactly opposite point 0's view direction (``l = -v``: the half vector's clamp); lights 4-7
    ordinary; light 8 the remainder. Values and light gradients equal the reference's and are finite; the light
    at the point gets gradient 0 (the reference's is NaN there: its direction is 0 / 0)."""
    leaves, cot = _edge_block(light_at_point=True)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot)
    assert float(ref.detach().abs().max()) > 0.1
    _close(fused, ref, 1e-12, "value")
    for name, a, b in zip(("vector", "radiance"), gf, gr):
        assert bool(torch.isfinite(a).all()), name
        assert float(a[0].abs().max()) == 0.0, name
        assert float(b[1:].abs().max()) > 0, name
        _close(a[1:], b[1:], 1e-12, f"gradient of light {name}")


def test_sharp_highlights_match_reference():
    """``test_punctual``'s sharp-highlight scene with point lights only (K = 8: two blocks): values at 1e-12,
    light gradients at 1e-10 (that test's tolerances and reasons)."""
    position, normal, camera, material, lights, _ = _scene(K=8, seed=1, highlight=True)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance]
    cot = torch.randn(position.shape[0], 3, generator=torch.Generator().manual_seed(3), dtype=DT)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot)
    assert float(ref.detach().abs().max()) > 100.0  # the peaks are there
    _close(fused, ref, 1e-12, "value")
    for a, b in zip(gf, gr):
        _close(a, b, 1e-10, "light gradient")


def test_gradcheck_light_gradients_of_a_block():
    g = torch.Generator().manual_seed(2)
    P, C = 3, 3
    r = lambda *s: torch.rand(*s, generator=g, dtype=DT)  # noqa: E731
    normal = torch.nn.functional.normalize(torch.tensor([[0.1, 0.2, 1.0]], dtype=DT) + 0.2 * r(P, 3), dim=-1)
    wo = torch.nn.functional.normalize(torch.tensor([[0.0, 0.3, 1.0]], dtype=DT) + 0.2 * r(P, 3), dim=-1)
    points = (torch.randn(P, 3, generator=g, dtype=DT) * 0.3, normal, wo, r(P, C), r(P, 1) * 0.7 + 0.2, r(P, 1),
              r(P, C) * 0.1)
    vector = torch.tensor([[0.5, 0.2, 2.0], [-0.4, 0.1, 1.5], [0.3, 0.1, 0.9], [0.0, -0.6, 1.2]], dtype=DT)
    leaves = [vector.requires_grad_(True), (r(4, C) + 0.5).requires_grad_(True)]

    def fn(vec, radiance):
        return direct_lights(*points, vec, torch.ones(4, dtype=torch.int32), radiance, MIN_LIGHT_DISTANCE)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


NAMES = ("position", "normal", "wo", "base_color", "roughness", "metallic", "light vector", "light radiance")


@pytest.mark.parametrize("wanted", [tuple(range(8)), (1, 3)], ids=["points_and_lights", "points_only"])
def test_edge_cases_inside_one_block_point_gradients_match_reference(wanted):
    """The edge-case block with an ordinary light in place of the one at the point (whose reference gradient is
    NaN): the point gradients (with the lights', or only the normal's and base colour's: no light gradients
    generated) equal the reference's at 1e-12."""
    leaves, cot = _edge_block(light_at_point=False)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, wanted)
    _close(fused, ref, 1e-12, "value")
    for name, a, b in zip([NAMES[j] for j in wanted], gf, gr):
        assert float(b.abs().max()) > 0, name
        _close(a, b, 1e-12, f"gradient of {name}")


def test_light_at_the_point_leaves_point_gradients_finite():
    """With the light at point 0: every point gradient finite; point 1's (for which that light is an ordinary
    one) equal the reference's."""
    leaves, cot = _edge_block(light_at_point=True)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, tuple(range(8)))
    for name, a, b in zip(NAMES[:6], gf, gr):
        assert bool(torch.isfinite(a).all()), name
        _close(a[1], b[1], 1e-12, f"gradient of {name}")


def test_sharp_highlights_point_gradients_match_reference():
    """The sharp-highlight scene with point lights only (K = 9: two blocks and a remainder light), every
    gradient wanted: values at 1e-12, gradients at 1e-10 (``test_punctual``'s tolerances)."""
    position, normal, camera, material, lights, _ = _scene(K=9, seed=0, highlight=True)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance]
    cot = torch.randn(position.shape[0], 3, generator=torch.Generator().manual_seed(4), dtype=DT)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, tuple(range(8)))
    assert float(ref.detach().abs().max()) > 100.0
    _close(fused, ref, 1e-12, "value")
    for name, a, b in zip(NAMES, gf, gr):
        _close(a, b, 1e-10, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_points_point_gradients_match_reference(dtype):
    """``test_punctual``'s scene as point lights only (two blocks), points in ``dtype``: every gradient against
    the float64 reference on the same rounded inputs at 1e-5 (float32) or 1e-12 (float64)."""
    position, normal, camera, material, lights, _ = _scene(K=8, seed=2, dtype=dtype)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance]
    cot = torch.randn(position.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=DT)
    fx = [t.detach().clone().requires_grad_(True) for t in leaves]
    rx = [t.detach().double().requires_grad_(True) for t in leaves]
    fused, ref = _shade(fx, True), _shade(rx, False)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    _close(fused, ref, tol, "value")
    for name, a, b in zip(NAMES, torch.autograd.grad(fused, fx, cot.to(dtype)), torch.autograd.grad(ref, rx, cot)):
        assert a.dtype == dtype, name
        _close(a, b, tol, f"gradient of {name}")


def test_gradcheck_point_gradients_of_a_block():
    g = torch.Generator().manual_seed(5)
    P, C = 3, 3
    r = lambda *s: torch.rand(*s, generator=g, dtype=DT)  # noqa: E731
    normal = torch.tensor([[0.1, 0.2, 1.0]], dtype=DT) + 0.2 * r(P, 3)
    wo = torch.tensor([[0.0, 0.3, 1.0]], dtype=DT) + 0.2 * r(P, 3)
    points = [torch.randn(P, 3, generator=g, dtype=DT) * 0.3, normal, wo, r(P, C), r(P, 1) * 0.7 + 0.2, r(P, 1),
              r(P, C) * 0.1]
    vector = torch.tensor([[0.5, 0.2, 2.0], [-0.4, 0.1, 1.5], [0.3, 0.1, 0.9], [0.0, -0.6, 1.2]], dtype=DT)
    leaves = [t.requires_grad_(True) for t in points + [vector, r(4, C) + 0.5]]

    def fn(*xs):
        return direct_lights(*xs[:8], torch.ones(4, dtype=torch.int32), xs[8], MIN_LIGHT_DISTANCE)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)
