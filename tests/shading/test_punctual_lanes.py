"""The fused pass runs ``LANES`` lights per step and the last ``K mod LANES`` one by one: where a light sits
(which lane, which block, the remainder) must not change its light's share, values or gradients."""

import pytest
import torch

from lumigrad.kernels import direct_lights_kernels as dk

from .test_punctual_spot_range import NAMES, TOL, _close, _scene, _shade

LIGHT_FIELDS = range(6, 12)  # the light parameters of ``_shade``'s inputs, one row per light


def _inputs(dtype, order):
    position, normal, camera, material, lights = _scene(P=300, dtype=dtype)
    wo = camera - position
    xs = [position, normal, wo, material["base_color"], material["roughness"], material["metallic"],
          lights.vector, lights.radiance, lights.range, lights.spot_direction, lights.inner_angle,
          lights.outer_angle]
    xs = [x[order] if j in LIGHT_FIELDS else x for j, x in enumerate(xs)]
    lights = lights._replace(is_point=lights.is_point[order], is_spot=lights.is_spot[order])
    return [x.detach().clone().requires_grad_() for x in xs], lights


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_light_order_across_lanes_and_remainder_does_not_matter(dtype):
    assert dk.LANES == 4  # the orders below put each kind of light in a block's lane and in the remainder
    K = 7  # one block of 4 and a remainder of 3
    orders = [torch.arange(K), torch.tensor([6, 5, 4, 3, 2, 1, 0]), torch.tensor([3, 0, 6, 1, 5, 2, 4])]
    cot = torch.randn(300, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    results = []
    for order in orders:
        xs, lights = _inputs(dtype, order)
        out = _shade(xs, lights, use_fused=True)
        grads = torch.autograd.grad(out, xs, cot)
        inverse = torch.argsort(order)
        grads = [g[inverse] if j in LIGHT_FIELDS else g for j, g in enumerate(grads)]
        results.append((out, grads))
    out0, grads0 = results[0]
    assert float(out0.detach().abs().max()) > 0.1  # the lights light the points
    for out, grads in results[1:]:
        _close(out, out0, TOL[dtype], "value")
        for name, g, g0 in zip(NAMES, grads, grads0):
            _close(g, g0, TOL[dtype], f"gradient of {name}")
