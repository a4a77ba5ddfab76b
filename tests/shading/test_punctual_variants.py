"""The fused pass is generated per case (``direct_lights_kernels.forward_kernel`` / ``backward_kernel``): tables
of point lights only run kernels without the directional, range and cone terms, and the backward generates only
the gradients asked for. Each case against the float64 PyTorch reference; a directional light never reads the
shading point's position."""

import pytest
import torch

from lumigrad.kernels import direct_lights as direct_lights_module
from lumigrad.kernels.direct_lights import direct_lights
from lumigrad.shading import PunctualLights, SurfaceSample
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE

from .test_punctual import TOL, _close, _scene

NAMES = ["position", "normal", "wo", "base_color", "roughness", "metallic", "light vector", "light radiance"]
POINT, LIGHT = range(6), range(6, 8)


def _leaves(dtype, K, point_lights_only, C=3):
    position, normal, camera, material, lights, _ = _scene(K=K, C=C, dtype=dtype, seed=2)
    is_point = torch.ones(K, dtype=torch.bool) if point_lights_only else lights.is_point
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance]
    return leaves, is_point


def _shade(xs, is_point, use_fused):
    si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4], metallic=xs[5])
    return shade_punctual_unchecked(si, PunctualLights(xs[6], is_point, xs[7]), use_fused=use_fused)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("point_lights_only", [True, False])
@pytest.mark.parametrize("wanted", ["all", "point", "light"])
@pytest.mark.parametrize("K", [1, 9])
def test_each_kernel_case_matches_reference(dtype, point_lights_only, wanted, K):
    """Values, and the gradients that are asked for (the others are None), against the reference in float64:
    point lights only or mixed with directional ones; gradients to the points, to the lights or to both; one
    light (the remainder only) and two blocks plus a remainder; C = 3 and the tolerances of ``test_punctual``."""
    leaves, is_point = _leaves(dtype, K, point_lights_only)
    grad_of = {"all": range(8), "point": POINT, "light": LIGHT}[wanted]
    fused_x = [t.detach().clone().requires_grad_(j in grad_of) for j, t in enumerate(leaves)]
    ref_x = [t.detach().double().requires_grad_(j in grad_of) for j, t in enumerate(leaves)]
    fused, ref = _shade(fused_x, is_point, True), _shade(ref_x, is_point, False)
    assert float(ref.detach().abs().max()) > 0.1  # the lights light the points
    _close(fused, ref, TOL[dtype], "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    wanted_fused = [fused_x[j] for j in grad_of]
    wanted_ref = [ref_x[j] for j in grad_of]
    for j, a, b in zip(grad_of, torch.autograd.grad(fused, wanted_fused, cot.to(dtype)),
                       torch.autograd.grad(ref, wanted_ref, cot)):
        assert a.dtype == dtype
        assert float(b.abs().max()) > 0, NAMES[j]  # a real gradient is compared
        _close(a, b, TOL[dtype], f"gradient of {NAMES[j]}")


@pytest.mark.parametrize("C", [1, 2, 4])
def test_other_channel_counts_match_reference(C):
    """C = 1, 2 and 4 (4: every entry of the kernels' 4-channel vectors in use); the kernels are built per
    channel count and the forward always computes and stores 4."""
    leaves, is_point = _leaves(torch.float64, 6, True, C=C)
    fused_x = [t.detach().clone().requires_grad_() for t in leaves]
    ref_x = [t.detach().clone().requires_grad_() for t in leaves]
    fused, ref = _shade(fused_x, is_point, True), _shade(ref_x, is_point, False)
    assert fused.shape[-1] == C
    _close(fused, ref, 1e-12, "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for name, a, b in zip(NAMES, torch.autograd.grad(fused, fused_x, cot), torch.autograd.grad(ref, ref_x, cot)):
        _close(a, b, 1e-12, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_directional_light_does_not_read_the_position(dtype):
    """Directional lights only: a NaN position changes neither the value nor any gradient of its point (the
    position's gradient is 0 there), and leaves the other points alone."""
    leaves, _ = _leaves(dtype, 5, False)
    position, normal, wo, base_color, roughness, metallic, vector, radiance = leaves
    is_point = torch.zeros(5, dtype=torch.bool)
    f0 = torch.full_like(base_color, 0.04)
    vector = vector / vector.norm(dim=-1, keepdim=True)
    broken = position.clone()
    broken[7] = float("nan")

    def run(pos):
        xs = [t.detach().clone().requires_grad_() for t in (pos, normal, wo, base_color, roughness, metallic, f0,
                                                             vector, radiance)]
        out = direct_lights(*xs[:8], is_point, xs[8], MIN_LIGHT_DISTANCE)
        cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        return out, torch.autograd.grad(out, xs, cot.to(dtype))

    out, grads = run(broken)
    out0, grads0 = run(position)
    assert float(out0[7].detach().abs().max()) > 0  # the point is lit
    assert torch.equal(out, out0)
    for g, g0 in zip(grads, grads0):
        assert bool(torch.isfinite(g).all())
        assert torch.equal(g, g0)
    assert bool((grads[0] == 0).all())  # nothing depends on the position


@pytest.mark.parametrize("point_lights_only", [True, False])
def test_point_terms_summed_in_registers_match_reference(point_lights_only, monkeypatch):
    """The backward CUDA runs (a point's per-light terms summed in registers, not lane by lane in a scratch
    row), here on the CPU: gradients against the reference, K = 9 (two blocks and a remainder)."""
    monkeypatch.setitem(direct_lights_module.PACKED_LANES, "cpu", False)
    leaves, is_point = _leaves(torch.float64, 9, point_lights_only)
    fused_x = [t.detach().clone().requires_grad_() for t in leaves]
    ref_x = [t.detach().clone().requires_grad_() for t in leaves]
    fused, ref = _shade(fused_x, is_point, True), _shade(ref_x, is_point, False)
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for name, a, b in zip(NAMES, torch.autograd.grad(fused, fused_x, cot), torch.autograd.grad(ref, ref_x, cot)):
        assert float(b.abs().max()) > 0, name
        _close(a, b, 1e-12, f"gradient of {name}")
