"""Point-light tables on the CPU run their full blocks as explicit SIMD (``kernels/direct_lights_native.py``:
native C++ with clang vector types, two blocks at a time as 8 lanes, an odd last block as 4): the forward and the
backward for the lights', the points' or both gradients. Each width holds the edge cases (a light at the point,
one inside ``min_distance``, one below the horizon, one opposite the viewer) and is compared with the float64
PyTorch reference at ``test_punctual``'s tolerances; the Warp-language lanes that CUDA keeps are checked here on
the CPU too (``NATIVE_LANES`` off)."""

import warnings

import pytest
import torch

import lumigrad.kernels.direct_lights as direct_lights_module
from lumigrad.kernels.direct_lights import direct_lights
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE

from .test_punctual import _close, _scene
from .test_punctual_packed import NAMES, _light_gradients, _shade

DT = torch.float64
ALL = tuple(range(8))


def _edges(light_at_point: bool) -> list:
    """The four edge cases of point 0 (at the origin, normal +z, view ``(0, 0.6, 0.8)``): a light at it (or an
    ordinary light), 1e-5 above it, below its horizon, exactly opposite its view direction."""
    return [[0.0, 0.0, 0.0] if light_at_point else [0.4, -0.3, 0.8], [0.0, 0.0, 1e-5], [1.0, 0.0, -0.5],
            [0.0, -1.2, -1.6]]


def _fourteen_lights(light_at_point: bool):
    """Two points and 14 point lights: lights 0-7 run as one 8-lane step, the edge cases in its upper half
    (4-7); lights 8-11 the 4-lane last block, the edge cases again; lights 12-13 the remainder."""
    position = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]], dtype=DT)
    normal = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.2, 1.0]], dtype=DT)
    wo = torch.tensor([[0.0, 0.6, 0.8], [0.1, -0.1, 1.0]], dtype=DT)
    ordinary = [[0.5, 0.4, 1.5], [-0.7, 0.2, 1.1], [0.1, -0.9, 0.6], [1.3, 1.0, 2.0]]
    vector = torch.tensor(ordinary + _edges(light_at_point) + _edges(light_at_point) + ordinary[:2], dtype=DT)
    g = torch.Generator().manual_seed(11)
    leaves = [position, normal, wo, torch.rand(2, 3, generator=g, dtype=DT), torch.tensor([[0.4], [0.2]], dtype=DT),
              torch.tensor([[0.0], [0.6]], dtype=DT), vector, torch.rand(14, 3, generator=g, dtype=DT) + 0.5]
    return leaves, torch.randn(2, 3, generator=g, dtype=DT)


def _highlight_leaves(K: int, seed: int, dtype=DT):
    position, normal, camera, material, lights, _ = _scene(K=K, seed=seed, highlight=dtype == DT, dtype=dtype)
    return [position, normal, camera - position, material["base_color"], material["roughness"], material["metallic"],
            lights.vector, lights.radiance]


@pytest.fixture(params=[True, False], ids=["native", "warp_lanes"])
def native(request, monkeypatch):
    """Both CPU forms of the point-light blocks: native SIMD, and the Warp-language lanes that CUDA runs."""
    monkeypatch.setitem(direct_lights_module.NATIVE_LANES, "cpu", request.param)
    return request.param


@pytest.mark.parametrize("wanted", [ALL, (6, 7), (1, 3)], ids=["all", "lights", "points"])
def test_edge_cases_in_each_width_match_reference(native, wanted):
    """The edge cases (an ordinary light in place of the one at the point, whose reference gradient is NaN) in
    the 8-lane step and in the 4-lane block: values and the wanted gradients equal the reference's at 1e-12."""
    leaves, cot = _fourteen_lights(light_at_point=False)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, wanted)
    assert float(ref.detach().abs().max()) > 0.1
    _close(fused, ref, 1e-12, "value")
    for name, a, b in zip([NAMES[j] for j in wanted], gf, gr):
        assert float(b.abs().max()) > 0, name
        _close(a, b, 1e-12, f"gradient of {name}")


def test_light_at_the_point_in_each_width(native):
    """With lights 4 and 8 at point 0: everything finite, those lights get gradient 0 (the reference's is NaN),
    the other lights' and point 1's gradients equal the reference's."""
    leaves, cot = _fourteen_lights(light_at_point=True)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, ALL)
    _close(fused, ref, 1e-12, "value")
    others = [k for k in range(14) if k not in (4, 8)]
    for name, a, b in zip(NAMES, gf, gr):
        assert bool(torch.isfinite(a).all()), name
        if name.startswith("light"):
            assert float(a[[4, 8]].abs().max()) == 0.0, name
            _close(a[others], b[others], 1e-12, f"gradient of {name}")
        else:
            _close(a[1], b[1], 1e-12, f"gradient of {name}")


@pytest.mark.parametrize("K", [12, 14])
def test_sharp_highlights_match_reference(native, K):
    """``test_punctual``'s sharp-highlight scene with K point lights (12: one 8-lane step and a 4-lane block;
    14: and two remainder lights), every gradient wanted: values at 1e-12, gradients at 1e-10 (that test's
    tolerances and reasons)."""
    leaves = _highlight_leaves(K, seed=K)
    cot = torch.randn(leaves[0].shape[0], 3, generator=torch.Generator().manual_seed(K), dtype=DT)
    (fused, gf), (ref, gr) = _light_gradients(leaves, cot, ALL)
    assert float(ref.detach().abs().max()) > 100.0  # the peaks are there
    _close(fused, ref, 1e-12, "value")
    for name, a, b in zip(NAMES, gf, gr):
        _close(a, b, 1e-10, f"gradient of {name}")


def test_float32_points_match_reference():
    """Points in float32, 14 point lights: values and every gradient against the float64 reference on the same
    rounded inputs at 1e-5 (the arithmetic stays float64)."""
    leaves = _highlight_leaves(14, seed=3, dtype=torch.float32)
    cot = torch.randn(leaves[0].shape[0], 3, generator=torch.Generator().manual_seed(6), dtype=DT)
    fx = [t.detach().clone().requires_grad_(True) for t in leaves]
    rx = [t.detach().double().requires_grad_(True) for t in leaves]
    fused, ref = _shade(fx, True), _shade(rx, False)
    assert fused.dtype == torch.float32
    _close(fused, ref, 1e-5, "value")
    for name, a, b in zip(NAMES, torch.autograd.grad(fused, fx, cot.float()), torch.autograd.grad(ref, rx, cot)):
        assert a.dtype == torch.float32, name
        _close(a, b, 1e-5, f"gradient of {name}")


def test_gradcheck_both_widths():
    """gradcheck of every input through 12 point lights (an 8-lane step and a 4-lane block)."""
    g = torch.Generator().manual_seed(9)
    P, C, K = 2, 3, 12
    r = lambda *s: torch.rand(*s, generator=g, dtype=DT)  # noqa: E731
    normal = torch.tensor([[0.1, 0.2, 1.0]], dtype=DT) + 0.2 * r(P, 3)
    wo = torch.tensor([[0.0, 0.3, 1.0]], dtype=DT) + 0.2 * r(P, 3)
    points = [torch.randn(P, 3, generator=g, dtype=DT) * 0.3, normal, wo, r(P, C), r(P, 1) * 0.7 + 0.2, r(P, 1),
              r(P, C) * 0.1]
    vector = torch.randn(K, 3, generator=g, dtype=DT) * 0.5 + torch.tensor([0.0, 0.0, 1.5], dtype=DT)
    leaves = [t.requires_grad_(True) for t in points + [vector, r(K, C) + 0.5]]

    def fn(*xs):
        return direct_lights(*xs[:8], torch.ones(K, dtype=torch.int32), xs[8], MIN_LIGHT_DISTANCE)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_native_build_failure_falls_back_to_warp_lanes(monkeypatch):
    """Should Warp's CPU compiler refuse the native C++ (another Warp version), the first launch fails while
    building, the Warp-language lanes run instead with a warning, and later calls use them directly."""
    import lumigrad.kernels.direct_lights_kernels as dk
    import lumigrad.kernels.direct_lights_native as native_module

    monkeypatch.setitem(direct_lights_module.NATIVE_LANES, "cpu", True)
    monkeypatch.setattr(native_module, "_PRELUDE", native_module._PRELUDE + "\nthis is not C++;\n")
    caches = (native_module.block_radiance_native, native_module.block_gradients_native, dk.forward_kernel,
              dk.backward_kernel)
    for cache in caches:
        cache.cache_clear()
    try:
        leaves, cot = _fourteen_lights(light_at_point=False)
        with pytest.warns(RuntimeWarning, match="did not build"):
            (fused, gf), (ref, gr) = _light_gradients(leaves, cot, ALL)
        assert not direct_lights_module.NATIVE_LANES["cpu"]
        _close(fused, ref, 1e-12, "value")
        for name, a, b in zip(NAMES, gf, gr):
            _close(a, b, 1e-12, f"gradient of {name}")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second attempt
            _light_gradients(leaves, cot, ALL)
    finally:
        for cache in caches:
            cache.cache_clear()


@pytest.mark.parametrize("weighted", [False, True])
def test_the_kernel_factories_decide_where_native_blocks_run(weighted):
    """Asking for the native kernel where a case has no native blocks (a general table; the points' gradients
    with the registers' sums, CUDA's choice; no gradient asked for) gives the kernel without it, the same object,
    so ``direct_lights`` states no condition of its own; where there are blocks, a different kernel."""
    import lumigrad.kernels.direct_lights_kernels as dk

    assert dk.forward_kernel(False, 3, True, weighted) is dk.forward_kernel(False, 3, False, weighted)
    assert dk.forward_kernel(True, 3, True, weighted) is not dk.forward_kernel(True, 3, False, weighted)
    for point_only, want_point, want_light, packed in ((False, True, True, True), (True, True, False, False),
                                                       (True, False, False, True)):
        flags = (point_only, 3, want_point, want_light, False, packed)
        assert dk.backward_kernel(*flags, True, weighted) is dk.backward_kernel(*flags, False, weighted)
    for want_point, want_light, packed in ((True, True, True), (False, True, False), (True, False, True)):
        flags = (True, 3, want_point, want_light, False, packed)
        assert dk.backward_kernel(*flags, True, weighted) is not dk.backward_kernel(*flags, False, weighted)


def test_the_backward_reuses_the_forwards_light_table(monkeypatch):
    """The padded light table is built once, by the forward; the backward takes the saved one."""
    builds = []
    build = direct_lights_module._light_table
    monkeypatch.setattr(direct_lights_module, "_light_table", lambda *a: builds.append(1) or build(*a))
    leaves, cot = _fourteen_lights(light_at_point=False)
    (fused, grads), (ref, ref_grads) = _light_gradients(leaves, cot, ALL)
    assert len(builds) == 1
    for name, a, b in zip(NAMES, grads, ref_grads):
        _close(a, b, 1e-12, f"gradient of {name}")
