"""The specular weight (glTF ``KHR_materials_specular``'s ``specularFactor``, ``SurfaceSample.specular``) in the
fused point-light kernels: every form (the native SIMD blocks and the Warp-language lanes on the CPU, the general
kernel of directional, spot and ranged lights, the last lights one by one) against the float64 PyTorch reference
at ``test_punctual``'s tolerances, values and gradients (the weight's own included), weights 0, 0.3 and 1 and
metallic 0, 1 and between mixed in one image; a gradcheck of the weighted kernel; the raster's gradient of
``Material.specular_factor`` through the kernel."""

import pytest
import torch

import lumigrad.kernels.direct_lights as direct_lights_module
import lumigrad.shading.deferred as deferred_module
from lumigrad.kernels.direct_lights import direct_lights
from lumigrad.shading import PunctualLights, SurfaceSample
from lumigrad.shading.deferred import shade_punctual_unchecked
from lumigrad.shading.lights import MIN_LIGHT_DISTANCE

from .test_punctual import TOL, _close, _scene

NAMES = ["position", "normal", "wo", "base_color", "roughness", "metallic", "specular", "light vector",
         "light radiance"]
LIGHTS = (7, 8)


@pytest.fixture(params=[True, False], ids=["native", "warp_lanes"])
def native(request, monkeypatch):
    """Both CPU forms of the point-light blocks: native SIMD, and the Warp-language lanes that CUDA runs."""
    monkeypatch.setitem(direct_lights_module.NATIVE_LANES, "cpu", request.param)
    return request.param


@pytest.fixture(autouse=True)
def kernel_calls(monkeypatch):
    """The weights the fused kernel was called with (``shade_punctual`` once fell back to PyTorch for them)."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("specular"))
        return direct_lights(*args, **kwargs)

    monkeypatch.setattr(deferred_module, "direct_lights", spy)
    return calls


def _weighted_scene(K: int, points_only: bool, dtype, seed=0):
    """``_scene``'s points with weights 0, 0.3 and 1 in turn and metallic 0, 1 or random in turn; ``points_only``:
    all lights point lights (the blocks' kernels), else ``_scene``'s mix with directional lights (the general
    kernel). Returns the leaves in :data:`NAMES` order and the lights' kinds."""
    position, normal, camera, material, lights, _ = _scene(P=300, K=K, dtype=dtype, seed=seed)
    P = position.shape[0]
    specular = torch.tensor([0.0, 0.3, 1.0], dtype=dtype).repeat(P // 3 + 1)[:P, None]
    metallic = material["metallic"].clone()
    metallic[0::3] = 0.0
    metallic[1::3] = torch.where(torch.arange(P)[1::3, None] % 2 == 0, 1.0, metallic[1::3])
    is_point = torch.ones(K, dtype=torch.bool) if points_only else lights.is_point
    leaves = [position, normal, camera - position, material["base_color"], material["roughness"], metallic, specular,
              lights.vector, lights.radiance]
    return leaves, is_point


def _shade(xs, is_point, use_fused, specular_f0=None, spot=False):
    si = SurfaceSample(position=xs[0], normal=xs[1], wo=xs[2], base_color=xs[3], roughness=xs[4], metallic=xs[5],
                       specular=xs[6], specular_f0=specular_f0)
    K = xs[7].shape[0]
    lights = PunctualLights(xs[7], is_point, xs[8])
    if spot:  # every other point light a spot, ranges on all: the general kernel with its cone and window
        like = {"dtype": xs[7].dtype, "device": xs[7].device}
        on = is_point & (torch.arange(K, device=is_point.device) % 2 == 0)
        lights = PunctualLights(xs[7], is_point, xs[8], range=torch.full((K,), 6.0, **like), is_spot=on,
                                spot_direction=torch.tensor([[0.0, 0.0, -1.0]], **like).expand(K, 3),
                                inner_angle=torch.full((K,), 0.5, **like), outer_angle=torch.full((K,), 1.2, **like))
    return shade_punctual_unchecked(si, lights, use_fused=use_fused)


def _compare(calls, leaves, is_point, dtype, wanted=tuple(range(9)), specular_f0=None, spot=False, device="cpu"):
    """The fused pass in ``dtype`` on ``device`` against the float64 reference on the CPU, same inputs: values,
    then the gradients of the ``wanted`` leaves; ``calls`` (:func:`kernel_calls`) shows that the kernel ran with
    the weights."""
    calls.clear()
    cot = torch.randn(leaves[0].shape[0], leaves[3].shape[1], generator=torch.Generator().manual_seed(3),
                      dtype=torch.float64)
    runs = []
    for use_fused, cast, dev in ((True, dtype, device), (False, torch.float64, "cpu")):
        xs = [t.detach().to(dev, cast).requires_grad_(j in wanted) for j, t in enumerate(leaves)]
        y = _shade(xs, is_point.to(dev), use_fused, None if specular_f0 is None else specular_f0.to(dev, cast), spot)
        assert y.device.type == dev
        grads = torch.autograd.grad(y, [xs[j] for j in wanted], cot.to(dev, y.dtype))
        runs.append((y.cpu(), [g.cpu() for g in grads]))
    (fused, grads), (ref, ref_grads) = runs
    assert len(calls) == 1 and calls[0] is not None and calls[0].shape == (leaves[0].shape[0], 1)
    assert fused.dtype == dtype and float(ref.detach().abs().max()) > 0.1
    _close(fused, ref, TOL[dtype], "value")
    for j, a, b in zip(wanted, grads, ref_grads):
        assert a.dtype == dtype
        _close(a, b, TOL[dtype], f"gradient of {NAMES[j]}")
    return ref


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("K", [14, 3], ids=["blocks", "remainder"])
def test_point_lights_with_weights_match_reference(native, kernel_calls, dtype, K):
    """14 point lights (an 8-lane step, a 4-lane block and two one by one; the Warp-language lanes: three blocks
    and the two) or 3 (one by one only)."""
    leaves, is_point = _weighted_scene(K, True, dtype)
    ref = _compare(kernel_calls, leaves, is_point, dtype)
    # the weight matters: with it set to 1 the image differs
    no_weight = [t if j != 6 else torch.ones_like(t) for j, t in enumerate(leaves)]
    assert float((_shade(no_weight, is_point, False).double() - ref.detach()).abs().max()) > 1e-3


@pytest.mark.parametrize("wanted", [LIGHTS, (3, 5, 6)], ids=["lights", "points"])
def test_only_some_gradients_asked_for(native, kernel_calls, wanted):
    """The backward kernels that generate only the lights' or only the points' gradients."""
    leaves, is_point = _weighted_scene(9, True, torch.float64, seed=1)
    _compare(kernel_calls, leaves, is_point, torch.float64, wanted=wanted)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_directional_spot_and_ranged_lights_with_weights_match_reference(kernel_calls, dtype):
    """The general kernel: directional lights among the point lights, spots and range windows, and a coloured
    ``specular_f0`` (which the weight scales)."""
    leaves, is_point = _weighted_scene(9, False, dtype, seed=2)
    specular_f0 = torch.rand(leaves[0].shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=dtype) * 0.3
    _compare(kernel_calls, leaves, is_point, dtype, specular_f0=specular_f0)
    _compare(kernel_calls, leaves, is_point, dtype, spot=True)


@pytest.mark.parametrize("points_only", [True, False], ids=["point_lights", "general"])
def test_point_terms_summed_in_registers_with_weights(kernel_calls, monkeypatch, points_only):
    """The backward CUDA runs (a point's per-light terms summed in registers, not in a scratch row), on the CPU."""
    monkeypatch.setitem(direct_lights_module.PACKED_LANES, "cpu", False)
    leaves, is_point = _weighted_scene(9, points_only, torch.float64, seed=4)
    _compare(kernel_calls, leaves, is_point, torch.float64)


def test_weight_one_gives_the_unweighted_kernel_to_rounding():
    """A weight of 1 everywhere: the weighted kernels equal the kernels without a weight (to the last bits: the
    extra terms are ``0 m5`` and ``(1 - F0) m5`` from ``f90 = 1``)."""
    leaves, is_point = _weighted_scene(14, True, torch.float64, seed=3)
    ones = [t if j != 6 else torch.ones_like(t) for j, t in enumerate(leaves)]
    weighted = _shade(ones, is_point, True)
    si = SurfaceSample(position=ones[0], normal=ones[1], wo=ones[2], base_color=ones[3], roughness=ones[4],
                       metallic=ones[5])
    plain = shade_punctual_unchecked(si, PunctualLights(ones[7], is_point, ones[8]))
    assert float((weighted - plain).abs().max()) <= 1e-15 * float(plain.abs().max())


def test_gradcheck_weighted_kernel_float64(native):
    """gradcheck of every input, the weight included, through 14 point lights (an 8-lane step, a 4-lane block and
    two one by one) at four of :func:`_weighted_scene`'s lit points (past the grazing ones), one of each weight
    0, 0.3 and 1 and metallic 0, 1 and between."""
    leaves, is_point = _weighted_scene(14, True, torch.float64)
    lit = _shade(leaves, is_point, False).abs().sum(-1) > 0.05
    rest = torch.arange(lit.shape[0]) % 3
    picks = [int(torch.nonzero(lit & (torch.arange(lit.shape[0]) > 40) & (rest == k))[j]) for k, j in
             ((0, 0), (1, 0), (1, 1), (2, 0))]
    points = [t[picks] for t in leaves[:7]]
    assert sorted(points[6].flatten().tolist()) == [0.0, 0.3, 0.3, 1.0]
    assert float(points[5].min()) == 0.0 and float(points[5].max()) == 1.0
    f0 = 0.04 + 0.1 * torch.rand(4, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    inputs = [t.clone().requires_grad_(True) for t in points[:6] + [f0, points[6]] + leaves[7:]]

    def fn(*xs):
        return direct_lights(*xs[:7], xs[8], is_point, xs[9], MIN_LIGHT_DISTANCE, specular=xs[7])

    assert bool((fn(*inputs).abs().sum(-1) > 0.05).all())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_weights_on_cuda_match_the_reference(kernel_calls, dtype):
    """The weighted kernels on a CUDA device (the Warp-language lanes, the point's terms summed in registers, the
    light gradients with atomics): point lights, then the general kernel with spots and ranges."""
    leaves, is_point = _weighted_scene(9, True, dtype, seed=5)
    _compare(kernel_calls, leaves, is_point, dtype, device="cuda")
    leaves, is_point = _weighted_scene(9, False, dtype, seed=5)
    _compare(kernel_calls, leaves, is_point, dtype, spot=True, device="cuda")


def test_raster_differentiates_the_material_weight_with_the_kernel(kernel_calls, monkeypatch):
    """``lumigrad.render`` of a ball lit by two point lights, ``Material.specular_factor`` 0.3 and metallic 0.2
    wanting gradients: the fused kernel (called with the weight) against the PyTorch reference (the kernel's
    dtypes emptied), image and ``d/d`` the factors at float32's tolerance."""
    import lumigrad as lg
    from lumigrad.shading import Material

    verts, faces = lg.geometry.icosphere(2)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=24, height=24, fov_y=0.6)

    def render():
        factors = [torch.tensor(v, requires_grad=True) for v in (0.3, 0.2, 0.4)]
        material = Material(base_color_factor=torch.tensor([0.6, 0.5, 0.4, 1.0]), specular_factor=factors[0],
                            metallic_factor=factors[1], roughness_factor=factors[2])
        scene = lg.Scene()
        scene.add_mesh("ball", lg.SceneMesh(verts, faces, material))
        scene.add_light("key", lg.PointLight(torch.tensor([1.0, 1.5, -2.0]), 6.0))
        scene.add_light("fill", lg.PointLight(torch.tensor([-1.5, 0.5, -1.0]), 2.0))
        image = lg.render(scene, cam).rgb
        return image, torch.autograd.grad((image * torch.linspace(0.5, 1.5, image.numel()).view(image.shape)).sum(),
                                          factors)

    image, grads = render()
    assert len(kernel_calls) == 1 and kernel_calls[0] is not None
    monkeypatch.setattr(deferred_module, "KERNEL_DTYPES", ())
    ref_image, ref_grads = render()
    assert len(kernel_calls) == 1  # the reference ran on PyTorch
    _close(image, ref_image, 1e-5, "image")
    for name, a, b in zip(("specular_factor", "metallic_factor", "roughness_factor"), grads, ref_grads):
        assert float(b.abs()) > 1e-3, name
        _close(a, b, 1e-5, f"gradient of {name}")
