"""Fused shading of many point / directional lights (``shade_punctual``) against the PyTorch reference
(``shade_direct`` of the lights' samples): values and gradients, grazing and back-facing lights, gradcheck."""

import math

import pytest
import torch

from lumigrad.kernels.direct_lights import direct_lights
from lumigrad.shading import PunctualLights, SurfaceSample, shade_punctual
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE

# float64: the kernels compute in float64 like the reference; float32: both round, differently.
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _scene(P=400, K=6, C=3, dtype=torch.float64, seed=0, mask=False, highlight=False):
    """``highlight``: three quarters of the normals turned to within 1e-7..1e-1 radians of the half vector of
    one point light and the camera, roughness 0.08 (alpha 6.4e-3): sharp highlights, where ``1 - (n.h)^2``
    computed from ``n.h`` cancels. Sharper lobes are not compared at 1e-12: near ``alpha = 1e-3`` the value's
    own condition number (``d ln D / d angle`` up to ``2 / alpha``) turns the different rounding of the two
    sides' normalisations into ~1e-12 (``tests/shading/test_brdf.py`` checks the twin there against mpmath)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    position = torch.randn(P, 3, generator=g, dtype=torch.float64) * 0.5
    normal = torch.randn(P, 3, generator=g, dtype=torch.float64)
    normal[: P // 8, 2] = 0.0  # some normals perpendicular to z
    camera = torch.tensor([0.2, -0.1, 3.0], dtype=torch.float64)
    # a few grazing views: the normal almost perpendicular to the view direction
    wo = camera - position[: P // 10]
    side = torch.linalg.cross(wo, torch.randn(wo.shape, generator=g, dtype=torch.float64))  # seeded: one scene
    normal[: P // 10] = side / side.norm(dim=-1, keepdim=True) + 1e-4 * wo / wo.norm(dim=-1, keepdim=True)
    material = {"base_color": r(P, C), "roughness": r(P, 1), "metallic": r(P, 1)}
    material["roughness"][:P // 20] = 0.01  # below sqrt(ALPHA_MIN): the clamp
    vectors = torch.randn(K, 3, generator=g, dtype=torch.float64) * 1.5
    vectors[0] = position[5] + torch.tensor([0.0, 0.0, 1e-5], dtype=torch.float64)  # inside min_distance
    is_point = torch.tensor([k % 3 != 2 for k in range(K)])
    if highlight:  # the points after the first quarter (which keeps back-facing and grazing ones)
        unit = lambda t: t / t.norm(dim=-1, keepdim=True)  # noqa: E731
        x = position[P // 4:]
        half = unit(unit(vectors[1] - x) + unit(camera - x))  # light 1 is a point light
        tilt = unit(torch.linalg.cross(half, torch.randn(x.shape, generator=g, dtype=torch.float64)))
        angle = 10.0 ** (-7.0 + 6.0 * r(x.shape[0], 1))
        normal[P // 4:] = half * torch.cos(angle) + tilt * torch.sin(angle)
        material["roughness"][P // 4:] = 0.08
    radiance = r(K, C) * 3
    mask_t = (r(P) > 0.3) if mask else None
    cast = lambda t: t.to(dtype)  # noqa: E731
    lights = PunctualLights(cast(vectors), is_point, cast(radiance))
    return cast(position), cast(normal), cast(camera), {k: cast(v) for k, v in material.items()}, lights, mask_t


def _leaves(position, normal, camera, material, lights):
    leaves = [position, normal, camera, material["base_color"], material["roughness"], material["metallic"],
              lights.vector, lights.radiance]
    return [t.detach().clone().requires_grad_(True) for t in leaves]


def _shade(leaves, is_point, use_fused, mask=None, **extra):
    position, normal, camera, c, rough, metal, vector, radiance = leaves
    material = {"base_color": c, "roughness": rough, "metallic": metal, **extra}
    return shade_punctual(position, normal, camera, material, PunctualLights(vector, is_point, radiance),
                          mask=mask, use_fused=use_fused)


def _close(a, b, tol, what):
    scale = max(1.0, float(b.detach().abs().max()))
    err = float((a.detach().double() - b.detach().double()).abs().max())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} x {scale:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("use_mask", [False, True])
def test_fused_matches_reference_values_and_gradients(dtype, use_mask, seed=0):
    """The fused kernel in ``dtype`` against the float64 PyTorch reference on the same (rounded) inputs.

    The reference runs in float64 on the float32 inputs too; the kernel computes in float64 and rounds its
    results to float32."""
    position, normal, camera, material, lights, mask = _scene(dtype=dtype, mask=use_mask, seed=seed)
    wo = camera - position
    leaves = [position, normal, wo, material["base_color"], material["roughness"], material["metallic"],
              lights.vector, lights.radiance]
    fused_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]

    def shade(xs, use_fused):
        si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4],
                           metallic=xs[5])
        return shade_punctual_unchecked(si, PunctualLights(xs[6], lights.is_point, xs[7]), mask=mask,
                                        use_fused=use_fused)

    fused, ref = shade(fused_leaves, True), shade(ref_leaves, False)
    assert fused.dtype == dtype and fused.shape == ref.shape
    assert float(ref.detach().abs().max()) > 0.1 and bool((ref == 0).any())  # lit pixels and pixels facing away
    _close(fused, ref, TOL[dtype], "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    names = ["position", "normal", "wo", "base_color", "roughness", "metallic", "light vector", "light radiance"]
    for name, a, b in zip(names, torch.autograd.grad(fused, fused_leaves, cot.to(dtype)),
                          torch.autograd.grad(ref, ref_leaves, cot)):
        assert a.dtype == dtype
        _close(a, b, TOL[dtype], f"gradient of {name}")
        cos = torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten(), dim=0)
        assert float(cos) > 1 - 1e-6, name


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_matches_reference_near_sharp_highlights(seed):
    """Three quarters of the points within 1e-7..1e-1 radians of a sharp highlight (roughness 0.08): values at
    1e-12 (a kernel or twin forming ``1 - (n.h)^2`` from ``n.h`` is off by up to ~1e-11 there); gradients at
    1e-10, since near such peaks the twin's own gradient moves by up to ~6e-12 when the inputs move by 2 ulp
    (measured), so no two roundings of it agree to 1e-12."""
    position, normal, camera, material, lights, _ = _scene(seed=seed, highlight=True)
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"],
              material["metallic"], lights.vector, lights.radiance]
    fused_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    ref_leaves = [t.detach().clone().requires_grad_(True) for t in leaves]

    def shade(xs, use_fused):
        si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4],
                           metallic=xs[5])
        return shade_punctual_unchecked(si, PunctualLights(xs[6], lights.is_point, xs[7]), use_fused=use_fused)

    fused, ref = shade(fused_leaves, True), shade(ref_leaves, False)
    assert float(ref.detach().abs().max()) > 100.0  # the peaks are there
    _close(fused, ref, 1e-12, "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(fused, fused_leaves, cot), torch.autograd.grad(ref, ref_leaves, cot)):
        _close(a, b, 1e-10, "gradient")


def test_public_op_matches_reference_with_camera_position():
    position, normal, camera, material, lights, mask = _scene(P=100, mask=True)
    fl = _leaves(position, normal, camera, material, lights)
    rl = _leaves(position, normal, camera, material, lights)
    fused, ref = _shade(fl, lights.is_point, True, mask), _shade(rl, lights.is_point, False, mask)
    _close(fused, ref, 1e-12, "value")
    for a, b in zip(torch.autograd.grad(fused.sum(), fl), torch.autograd.grad(ref.sum(), rl)):
        _close(a, b, 1e-12, "gradient")


def test_grazing_and_back_facing_lights_give_zero_and_finite_gradients():
    dt = torch.float64
    position = torch.zeros(3, 3, dtype=dt)
    normal = torch.tensor([[0.0, 0.0, 1.0]] * 3, dtype=dt)
    camera = torch.tensor([0.0, 0.0, 2.0], dtype=dt)
    # light 0 below the horizon, light 1 exactly on it, light 2 a hair above it (grazing)
    vector = torch.tensor([[1.0, 0.0, -0.5], [1.0, 0.0, 0.0], [1.0, 0.0, 1e-7]], dtype=dt)
    material = {"base_color": torch.full((3, 3), 0.5, dtype=dt), "roughness": torch.full((3, 1), 0.3, dtype=dt),
                "metallic": torch.zeros(3, 1, dtype=dt)}
    for k in range(3):
        leaves = _leaves(position, normal, camera, material,
                         PunctualLights(vector[k:k + 1], torch.tensor([True]), torch.ones(1, 3, dtype=dt)))
        out = _shade(leaves, torch.tensor([True]), True)
        grads = torch.autograd.grad(out.sum(), leaves)
        assert all(bool(torch.isfinite(gr).all()) for gr in grads)
        if k < 2:
            assert float(out.detach().abs().max()) == 0.0 and all(float(gr.abs().max()) == 0.0 for gr in grads)
        else:
            assert 0 < float(out.detach().max()) < 1e-6


def test_specular_f0_ior_and_one_channel_lights_match_reference():
    position, normal, camera, material, lights, _ = _scene(P=64, K=3)
    lights = lights._replace(radiance=lights.radiance[:, :1].contiguous())
    for extra in ({"ior": torch.rand(64, 1, dtype=torch.float64) + 1.1},
                  {"specular_f0": torch.rand(64, 3, dtype=torch.float64)}):
        extra_f = {k: v.clone().requires_grad_(True) for k, v in extra.items()}
        extra_r = {k: v.clone().requires_grad_(True) for k, v in extra.items()}
        fl = _leaves(position, normal, camera, material, lights)
        rl = _leaves(position, normal, camera, material, lights)
        fused = _shade(fl, lights.is_point, True, **extra_f)
        ref = _shade(rl, lights.is_point, False, **extra_r)
        _close(fused, ref, 1e-12, "value")
        ga = torch.autograd.grad(fused.sum(), fl + list(extra_f.values()))
        gb = torch.autograd.grad(ref.sum(), rl + list(extra_r.values()))
        for a, b in zip(ga, gb):
            _close(a, b, 1e-12, "gradient")


def test_gradcheck_fused_kernel_float64():
    g = torch.Generator().manual_seed(1)
    P, K, C = 4, 3, 2
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    position = torch.randn(P, 3, generator=g, dtype=torch.float64) * 0.3
    normal = torch.nn.functional.normalize(torch.tensor([[0.1, 0.2, 1.0]], dtype=torch.float64) + 0.2 * r(P, 3), dim=-1)
    wo = torch.nn.functional.normalize(torch.tensor([[0.0, 0.3, 1.0]], dtype=torch.float64) + 0.2 * r(P, 3), dim=-1)
    inputs = (position, normal, wo, r(P, C), r(P, 1) * 0.7 + 0.2, r(P, 1), r(P, C) * 0.1,
              torch.tensor([[0.5, 0.2, 2.0], [-0.4, 0.1, 1.5], [0.3, 0.1, 0.9]], dtype=torch.float64))
    is_point = torch.tensor([1, 1, 0], dtype=torch.int32)
    inputs[7][2] = inputs[7][2] / inputs[7][2].norm()
    radiance = r(K, C) + 0.5
    leaves = [t.clone().requires_grad_(True) for t in inputs + (radiance,)]

    def fn(*xs):
        return direct_lights(*xs[:8], is_point, xs[8], MIN_LIGHT_DISTANCE)

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_forced_reference_and_bad_input():
    position, normal, camera, material, lights, _ = _scene(P=16, K=2)
    with pytest.raises(TypeError, match="lights must be a PunctualLights"):
        shade_punctual(position, normal, camera, material, [lights])
    with pytest.raises(ValueError, match="lights.radiance must be non-negative"):
        shade_punctual(position, normal, camera, material, lights._replace(radiance=-lights.radiance))
    with pytest.raises(ValueError, match="non-zero length"):
        shade_punctual(position, normal, camera, material,
                       lights._replace(vector=torch.zeros(2, 3, dtype=torch.float64),
                                       is_point=torch.tensor([True, False])))
    with pytest.raises(ValueError, match="2 channels"):
        shade_punctual(position, normal, camera, material, lights._replace(radiance=lights.radiance[:, :2]))
    with pytest.raises(ValueError, match="NaN"):
        shade_punctual(position, normal * math.nan, camera, material, lights)


def test_packing_lights():
    lights = PunctualLights.of(points=[(torch.tensor([0.0, 2.0, 0.0]), torch.tensor([4.0]))],
                               directionals=[(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([3.0]))])
    assert lights.is_point.tolist() == [True, False]
    assert [s.L.tolist() for s in lights.samples(torch.zeros(3))] == [[1.0], [3.0]]
    with pytest.raises(ValueError, match="at least one"):
        PunctualLights.of()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_on_cuda_matches_the_reference_there(dtype):
    """The kernels on a CUDA device (light gradients summed per 256 points with atomics) against the float64
    reference on the same inputs."""
    position, normal, camera, material, lights, mask = _scene(P=3000, K=9, dtype=dtype, mask=True)
    wo = camera - position
    leaves = [position, normal, wo, material["base_color"], material["roughness"], material["metallic"],
              lights.vector, lights.radiance]
    fused_leaves = [t.detach().cuda().requires_grad_(True) for t in leaves]
    ref_leaves = [t.detach().double().requires_grad_(True) for t in leaves]

    def shade(xs, use_fused, m, is_point):
        si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4],
                           metallic=xs[5])
        return shade_punctual_unchecked(si, PunctualLights(xs[6], is_point, xs[7]), mask=m, use_fused=use_fused)

    fused = shade(fused_leaves, True, mask.cuda(), lights.is_point.cuda())
    ref = shade(ref_leaves, False, mask, lights.is_point)
    assert fused.device.type == "cuda"
    _close(fused.cpu(), ref, TOL[dtype], "value")
    cot = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(fused, fused_leaves, cot.to(dtype).cuda()),
                    torch.autograd.grad(ref, ref_leaves, cot)):
        _close(a.cpu(), b, TOL[dtype], "gradient")


def test_no_covered_pixel_and_many_channels():
    position, normal, camera, material, lights, _ = _scene(P=8, K=2)
    leaves = _leaves(position, normal, camera, material, lights)
    out = _shade(leaves, lights.is_point, True, mask=torch.zeros(8, dtype=torch.bool))
    assert out.shape == (8, 3) and float(out.detach().abs().max()) == 0.0
    assert all(float(g.abs().max()) == 0.0 for g in torch.autograd.grad(out.sum(), leaves))
    # more channels than the kernel takes: the reference runs
    material5 = dict(material, base_color=torch.rand(8, 5, dtype=torch.float64))
    lights5 = lights._replace(radiance=torch.rand(2, 5, dtype=torch.float64))
    fused = shade_punctual(position, normal, camera, material5, lights5)
    ref = shade_punctual(position, normal, camera, material5, lights5, use_fused=False)
    assert fused.shape == (8, 5) and torch.equal(fused, ref)
