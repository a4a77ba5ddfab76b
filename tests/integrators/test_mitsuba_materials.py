"""Mitsuba's material models in the renderers (Beckmann microfacets, plastic, conductor, thin dielectric sheets): the
path tracer renders them (fused kernel and PyTorch transport), per part beside glTF parts, with gradients; the raster
shades them through the per-light BSDF (its fused light kernel is the glTF model's). The BSDFs themselves:
``tests/shading/test_beckmann.py``, ``test_plastic.py``, ``test_principled.py``, ``test_transmission.py``; the
kernels against their twins: ``tests/integrators/test_fused_paths.py``; against Mitsuba:
``tests/integrators/test_path_vs_mitsuba.py``."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.fused_adjoint import fused_adjoint_unsupported
from lumigrad.integrators.fused_paths import fused_unsupported, use_fused
from lumigrad.integrators.path import _trace_scene
from lumigrad.raytrace.transport import _materials
from lumigrad.shading import Material

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _scene(microfacet="beckmann", roughness=0.5):
    scene = lg.Scene()
    floor = torch.tensor([[-2.0, 0, -2], [-2, 0, 2], [2, 0, 2], [2, 0, -2]])
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(base_color_factor=torch.tensor([0.7, 0.6, 0.5, 1.0]),
                                                               metallic_factor=0.0, roughness_factor=0.6)))
    v, f = lg.geometry.icosphere(2)
    metal = Material(base_color_factor=torch.tensor([0.9, 0.7, 0.5, 1.0]), metallic_factor=1.0,
                     roughness_factor=torch.tensor(roughness), microfacet=microfacet)
    scene.add_mesh("ball", lg.SceneMesh(0.5 * v + torch.tensor([0.0, 0.5, 0.0]), f, metal))
    scene.add_light("bulb", lg.PointLight(torch.tensor([1.0, 2.0, -1.0]), torch.tensor(6.0)))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([-0.3, -1.0, 0.4]), torch.tensor(0.5)))
    return scene


CAMERA = dict(eye=[0.0, 1.2, -2.5], target=[0.0, 0.4, 0.0], fov_y=0.8, width=16, height=16)


def test_the_path_tracer_renders_beckmann_parts_on_the_kernel_opaque_and_refracting():
    scene = _scene()
    ts = _trace_scene(scene)
    assert fused_unsupported(ts) is None and use_fused(ts)  # (tests/integrators/test_fused_paths.py: the twins)
    glass = _scene()
    glass.meshes["ball"].material.transmission_factor = torch.tensor(1.0)
    assert fused_unsupported(_trace_scene(glass)) is None
    values = _materials(ts, torch.tensor([0, 1, 0, 1]), torch.zeros(4, 2))
    assert values["beckmann"][:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]  # per part: the floor GGX, the ball Beckmann
    assert "beckmann" not in _materials(_trace_scene(_scene("ggx")), torch.tensor([0, 1]), torch.zeros(2, 2))


def test_a_beckmann_ball_renders_unlike_a_ggx_one_and_has_roughness_gradients():
    cam = lg.Camera.look_at(**CAMERA)
    images = {}
    for microfacet in ("beckmann", "ggx"):
        scene = _scene(microfacet)
        rough = scene.meshes["ball"].material.roughness_factor.requires_grad_(True)
        out = lg.render(scene, cam, integrator="path", spp=64, max_depth=3, seed=1)
        out.rgb.sum().backward()
        assert torch.isfinite(out.rgb).all() and torch.isfinite(rough.grad) and float(rough.grad) != 0
        images[microfacet] = out.rgb.detach()
    assert float((images["beckmann"] - images["ggx"]).abs().mean()) > 0.01 * float(images["ggx"].mean())


def _raster_both_ways(scene, cam, param):
    """The raster's image and ``d sum / d param`` with its fused light kernel asked for and not: they must agree
    (a model the kernel lacks goes through the per-light BSDF either way); returns the first image and gradient."""
    images, grads = [], []
    for fused in (True, False):
        out = lg.render(scene, cam, fused_lights=fused)
        (g,) = torch.autograd.grad(out.rgb.sum(), param)
        images.append(out.rgb.detach())
        grads.append(g)
    torch.testing.assert_close(images[0], images[1])
    torch.testing.assert_close(grads[0], grads[1])
    assert math.isfinite(float(grads[0])) and float(grads[0]) != 0
    return images[0], grads[0]


def test_the_raster_shades_beckmann_through_the_per_light_bsdf():
    cam = lg.Camera.look_at(**CAMERA)
    scene = _scene()
    image, _ = _raster_both_ways(scene, cam, scene.meshes["ball"].material.roughness_factor.requires_grad_(True))
    with torch.no_grad():
        ggx = lg.render(_scene("ggx"), cam).rgb
    assert float((image - ggx).abs().max()) > 0.02 * float(ggx.max())


# ------------------------------------------------------------------------------------------------ plastic
def _plastic_scene():
    scene = _scene("ggx")
    scene.meshes["ball"].material = Material(base_color_factor=torch.tensor([0.6, 0.3, 0.2, 1.0]), metallic_factor=0.0,
                                             roughness_factor=torch.tensor(0.45), ior=1.49, plastic=True,
                                             microfacet="beckmann")
    return scene


def test_plastic_parts_render_in_both_renderers_with_gradients():
    """Mitsuba's plastic (``Material.plastic``): the fused path kernel renders it and the fused replay
    differentiates it (the PyTorch transport's points carry a table on plastic points, zeros on the floor's); the
    raster shades it through the per-light BSDF (its fused kernel is the glTF model's): both passes agree, and the
    roughness gets a gradient through the interface's tables from both replays."""
    scene = _plastic_scene()
    ts = _trace_scene(scene)
    assert fused_unsupported(ts) is None
    assert fused_adjoint_unsupported(ts, lg.Camera.look_at(**CAMERA)) is None
    values = _materials(ts, torch.tensor([0, 1]), torch.zeros(2, 2))
    assert values["plastic"][:, -1].tolist() == [0.0, 1.0]
    cam = lg.Camera.look_at(**CAMERA)
    rough = scene.meshes["ball"].material.roughness_factor.requires_grad_(True)
    for fused in (True, False):
        out = lg.render(scene, cam, integrator="path", spp=32, max_depth=3, seed=2, fused_adjoint=fused)
        (g,) = torch.autograd.grad(out.rgb.sum(), rough)
        assert torch.isfinite(out.rgb).all() and math.isfinite(float(g)) and float(g) != 0
    image, _ = _raster_both_ways(scene, cam, rough)
    with torch.no_grad():
        gltf = lg.render(_scene("ggx"), cam).rgb
    assert float((image - gltf).abs().max()) > 0.02 * float(gltf.max())


# ---------------------------------------------------------------------------------------------- conductor
CHROMIUM = ((4.36968, 2.9165, 1.6549), (5.20652, 4.23133, 3.7547))


def _conductor_scene():
    scene = _scene("ggx")
    scene.meshes["ball"].material = Material(base_color_factor=torch.tensor([0.62, 0.58, 0.62, 1.0]),
                                             roughness_factor=torch.tensor(0.4),
                                             conductor_eta=torch.tensor(CHROMIUM[0]),
                                             conductor_k=torch.tensor(CHROMIUM[1]))
    return scene


def test_conductor_parts_render_in_both_renderers_with_gradients():
    """Mitsuba's conductor (``Material.conductor_eta`` / ``conductor_k``): the fused path kernel renders it and
    the fused replay differentiates its base colour and roughness; its ``eta`` and ``k`` are differentiated by
    the PyTorch replay (the fused one refuses them, by name), and that gradient (``seed_grad = seed``) is the
    finite difference of the same estimator (the conductor's sampling and density do not depend on ``eta``: with
    one seed the estimate is a smooth function of it). The raster shades it through the per-light BSDF, both passes
    alike."""
    scene = _conductor_scene()
    cam = lg.Camera.look_at(**CAMERA)
    ts = _trace_scene(scene)
    assert fused_unsupported(ts) is None
    values = _materials(ts, torch.tensor([0, 1]), torch.zeros(2, 2))
    assert values["conductor"][:, -1].tolist() == [0.0, 1.0]
    m = scene.meshes["ball"].material
    rough = m.roughness_factor.requires_grad_(True)
    assert fused_adjoint_unsupported(_trace_scene(scene), cam) is None
    for fused in (True, False):
        out = lg.render(scene, cam, integrator="path", spp=32, max_depth=3, seed=2, fused_adjoint=fused)
        (g,) = torch.autograd.grad(out.rgb.sum(), rough)
        assert torch.isfinite(out.rgb).all() and math.isfinite(float(g)) and float(g) != 0
    rough.requires_grad_(False)
    eta = m.conductor_eta.requires_grad_(True)
    assert "conductor_eta" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    settings = dict(integrator="path", spp=16, max_depth=3, seed=3)
    (g,) = torch.autograd.grad(lg.render(scene, cam, **settings, seed_grad=3).rgb.mean(), eta)
    h, fd = 0.05, []  # (means in float64: float32 rounds a mean to 1e-7 of itself, 2 % of the 2 h difference)
    for c in range(3):
        with torch.no_grad():
            means = []
            for sign in (1, -1):
                m.conductor_eta = _eta_step(eta, c, sign * h)
                means.append(float(lg.render(scene, cam, **settings).rgb.double().mean()))
        fd.append((means[0] - means[1]) / (2 * h))
    m.conductor_eta = eta
    assert all(abs(x) > 1e-5 for x in fd), fd
    torch.testing.assert_close(g.double(), torch.tensor(fd, dtype=torch.float64), rtol=0.01, atol=1e-7)
    image, _ = _raster_both_ways(scene, cam, rough.requires_grad_(True))
    with torch.no_grad():
        gltf = lg.render(_scene("ggx"), cam).rgb
    assert float((image - gltf).abs().max()) > 0.02 * float(gltf.max())


def _eta_step(eta: torch.Tensor, channel: int, step: float) -> torch.Tensor:
    """``eta`` (detached) with ``step`` added to one channel."""
    out = eta.detach().clone()
    out[channel] += step
    return out


# ------------------------------------------------------------------------------- principled's other lobes
def _principled_scene(lobes):
    scene = _scene("ggx")
    scene.meshes["ball"].material = Material(base_color_factor=torch.tensor([0.6, 0.3, 0.2, 1.0]),
                                             metallic_factor=0.1, roughness_factor=torch.tensor(0.5), principled=True,
                                             principled_lobes=lobes)
    return scene


def test_principled_lobes_render_with_gradients():
    """Mitsuba's principled with its other lobes (``Material.principled_lobes``): the fused kernel renders the part
    and the fused replay declines it, saying why (the lobes' derivatives replay on PyTorch); the gradient of
    ``spec_tint``, ``sheen`` and ``flatness`` (which the sampling does not read: with ``seed_grad = seed`` the
    estimate is a smooth function of them) is the finite difference of the same estimator. The raster shades the
    lobes through the per-light BSDF, both passes alike."""
    lobes = torch.tensor([0.3, 0.6, 0.5, 0.8, 0.6, 0.4])
    scene = _principled_scene(lobes)
    cam = lg.Camera.look_at(**CAMERA)
    assert fused_unsupported(_trace_scene(scene)) is None
    assert "principled_lobes" in fused_adjoint_unsupported(_trace_scene(scene), cam)
    values = _materials(_trace_scene(scene), torch.tensor([0, 1]), torch.zeros(2, 2))
    assert values["principled_lobes"].tolist() == [[0.0] * 6, lobes.tolist()]
    m = scene.meshes["ball"].material
    leaf = m.principled_lobes.clone().requires_grad_(True)
    m.principled_lobes = leaf
    settings = dict(integrator="path", spp=16, max_depth=3, seed=5)
    (g,) = torch.autograd.grad(lg.render(scene, cam, **settings, seed_grad=5).rgb.mean(), leaf)
    h, fd = 0.02, {}
    for j in (0, 1, 5):  # spec_tint, sheen, flatness
        with torch.no_grad():
            means = []
            for sign in (1, -1):
                stepped = leaf.detach().clone()
                stepped[j] += sign * h
                m.principled_lobes = stepped
                means.append(float(lg.render(scene, cam, **settings).rgb.double().mean()))
        fd[j] = (means[0] - means[1]) / (2 * h)
    m.principled_lobes = leaf
    assert all(abs(v) > 1e-5 for v in fd.values()), fd
    torch.testing.assert_close(g[[0, 1, 5]].double(), torch.tensor([fd[0], fd[1], fd[5]], dtype=torch.float64),
                               rtol=0.01, atol=1e-7)
    assert math.isfinite(float(g[3])) and float(g[3]) != 0  # (the clearcoat's: its sampling moves with it)
    image, _ = _raster_both_ways(scene, cam, m.roughness_factor.requires_grad_(True))
    (g_raster,) = torch.autograd.grad(lg.render(scene, cam).rgb.sum(), leaf)
    assert bool(torch.isfinite(g_raster).all()) and bool((g_raster[[0, 1, 3, 5]] != 0).all())
    with torch.no_grad():
        plain = lg.render(_principled_scene(None), cam).rgb
    assert float((image - plain).abs().max()) > 0.02 * float(plain.max())


# ------------------------------------------------------------------------------------------- thin sheets
def _pane(tint, ior):
    """A thin tinted pane before a glowing board, lit from the camera's side."""
    f64 = torch.float64
    quad = torch.tensor([[0, 2, 1], [0, 3, 2]])
    square = lambda s, z: torch.tensor([[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]], dtype=f64)  # noqa: E731
    scene = lg.Scene()
    pane = Material(base_color_factor=torch.stack([tint, tint * 0.5 + 0.3, torch.tensor(0.8, dtype=f64),
                                                   torch.tensor(1.0, dtype=f64)]),
                    metallic_factor=0.0, roughness_factor=0.0, ior=ior, transmission_factor=1.0, thin_dielectric=True)
    scene.add_mesh("pane", lg.SceneMesh(square(0.6, 0.0), quad, pane))
    glow = Material(base_color_factor=torch.tensor([0.5, 0.5, 0.5, 1.0], dtype=f64), emissive_factor=torch.ones(3, dtype=f64),
                    metallic_factor=0.0, roughness_factor=1.0)
    scene.add_mesh("board", lg.SceneMesh(square(1.5, 1.0), quad, glow, double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 0.0, -2.0], dtype=f64), torch.tensor(3.0, dtype=f64)))
    cam = lg.Camera.look_at(torch.tensor([0.3, 0.2, -3.0], dtype=f64), torch.zeros(3, dtype=f64), fov_y=0.5, width=12,
                            height=12)
    return scene, cam


def test_a_thin_sheets_tint_gets_its_gradient_through_its_delta_lobes():
    """The sheet's lobes are deltas (``eval`` 0): the replay differentiates their weights through
    ``delta_coefficient``; the tint's gradient matches central differences of the same paths (before, it was 0).
    (The ior's: ``tests/shading/test_transmission.py``; its central differences here flip lobes and need far more
    samples.)"""
    f64 = torch.float64

    def image(tint, **kw):
        scene, cam = _pane(tint, torch.tensor(1.5, dtype=f64))
        return lg.render(scene, cam, integrator="path", max_depth=4, **kw).rgb
    h = 0.01
    with torch.no_grad():
        fd = float(((image(torch.tensor(0.6 + h, dtype=f64), spp=64, seed=0) -
                     image(torch.tensor(0.6 - h, dtype=f64), spp=64, seed=0)) / (2 * h)).sum())
    tint = torch.tensor(0.6, dtype=f64, requires_grad=True)
    image(tint, spp=1, seed=1, spp_grad=64, seed_grad=0).sum().backward()
    assert fd > 1 and float(tint.grad) == pytest.approx(fd, rel=0.05)


# ------------------------------------------------------------------------------------------- normal maps
def test_a_bent_normal_sees_only_the_sky_above_its_surface():
    """A floor whose normal map tilts every normal by 60 degrees, white, under a uniform sky of radiance 1: it sees
    the sky above its own plane only (the sky view factor of a tilted plane), radiance ``(1 + cos 60) / 2 = 0.75``.
    Next-event estimation always kept to that side; BSDF samples that leave through the surface are now refused too
    (Mitsuba's normalmap rule): they leaked the sky below, 1-2 % more."""
    tilt = math.radians(60)
    texel = torch.tensor([math.sin(tilt), 0.0, math.cos(tilt)]) * 0.5 + 0.5
    material = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=1.0, specular_factor=0.0,
                        normal_texture=texel.expand(4, 4, 3).clone())
    floor = torch.tensor([[-2.0, 0, -2], [-2, 0, 2], [2, 0, 2], [2, 0, -2]])
    uv = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, material, uv=uv))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(8, 16, 3)))
    cam = lg.Camera.look_at([0.0, 3.0, -0.5], [0.0, 0.0, 0.0], fov_y=0.5, width=8, height=8)
    for settings in (dict(integrator="direct"), dict(integrator="path", max_depth=2)):
        with torch.no_grad():
            image = lg.render(scene, cam, spp=512, seed=3, **settings).rgb
        assert float(image.mean()) == pytest.approx(0.75, rel=0.01), settings


# ------------------------------------------------------------------------------------------ anisotropic lobes
def _brushed_scene(aspect=3.0, turned=False, principled=False, glass=False):
    """A brushed floor (an anisotropic conductor, principled or, with ``glass``, rough glass of ``aspect``; its
    tangents along x, or along the frame's ``t = n x s`` when ``turned``) under a point and a directional light, with
    a glTF ball."""
    scene = _scene("ggx")
    floor = scene.meshes["floor"]
    tangent = torch.tensor([0.0, 0.0, -1.0, 1.0]) if turned else torch.tensor([1.0, 0.0, 0.0, 1.0])
    kind = dict(principled=True, metallic_factor=0.7) if principled else dict(
        conductor_eta=torch.tensor(CHROMIUM[0]), conductor_k=torch.tensor(CHROMIUM[1]))
    if glass:
        kind = dict(transmission_factor=1.0, metallic_factor=0.0, ior=1.5)
    m = Material(base_color_factor=torch.tensor([0.6, 0.55, 0.5, 1.0]), roughness_factor=torch.tensor(0.35),
                 roughness_aspect=torch.tensor(aspect), **kind)
    scene.add_mesh("floor", lg.SceneMesh(floor.verts, floor.faces, m, tangents=tangent.expand(4, 4).clone()))
    return scene


@pytest.mark.parametrize("principled", [False, True])
def test_anisotropic_parts_render_in_both_renderers_in_their_tangents_frame(principled):
    """An anisotropic floor (``Material.roughness_aspect``): the fused kernel renders it (its replay declines,
    naming it: the gradients replay on PyTorch); in both renderers (the raster's per-light shading, the path
    tracer's direct light from delta lights, both deterministic) turning the tangent a quarter turn is the inverse
    aspect, exactly, and the image differs from the isotropic lobe's."""
    cam = lg.Camera.look_at(**CAMERA)
    ts = _trace_scene(_brushed_scene(principled=principled))
    assert use_fused(ts) and "roughness_aspect" in fused_adjoint_unsupported(ts, cam)
    for kw in (dict(), dict(integrator="path", spp=4, max_depth=2, seed=1)):
        with torch.no_grad():
            a = lg.render(_brushed_scene(3.0, principled=principled), cam, **kw).rgb
            b = lg.render(_brushed_scene(1 / 3.0, turned=True, principled=principled), cam, **kw).rgb
            iso = lg.render(_brushed_scene(1.0, principled=principled), cam, **kw).rgb
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert float((a - iso).abs().amax()) > 0.05 * float(iso.amax()), kw


@pytest.mark.parametrize("glass", [False, True])
def test_the_aspects_gradient_is_the_finite_difference_of_the_same_estimator(glass):
    """``d mean / d roughness_aspect`` by the PyTorch replay (``seed_grad = seed``) of direct light from delta
    lights (depth 2: the estimate is a smooth function of the aspect at one seed) is its central difference, a
    conductor's and a rough glass's (its reflection lobe); and the conductor's reaches the raster's image too (the
    raster shades glass as an opaque surface: no transmitting fraction for the aspect to shape)."""
    scene = _brushed_scene(2.0, glass=glass)
    cam = lg.Camera.look_at(**CAMERA)
    aspect = scene.meshes["floor"].material.roughness_aspect.requires_grad_(True)
    assert scene.parameters()["meshes.floor.material.roughness_aspect"] is aspect
    settings = dict(integrator="path", spp=8, max_depth=2, seed=4)
    (g,) = torch.autograd.grad(lg.render(scene, cam, **settings, seed_grad=4).rgb.mean(), aspect)
    h, means = 0.02, []
    with torch.no_grad():
        for sign in (1, -1):
            scene.meshes["floor"].material.roughness_aspect = torch.tensor(2.0 + sign * h)
            means.append(float(lg.render(scene, cam, **settings).rgb.double().mean()))
    fd = (means[0] - means[1]) / (2 * h)
    assert abs(fd) > 1e-5
    assert float(g) == pytest.approx(fd, rel=0.01)
    scene.meshes["floor"].material.roughness_aspect = aspect
    image = lg.render(scene, cam).rgb
    if glass:
        assert not image.requires_grad
        return
    (g_raster,) = torch.autograd.grad(image.mean(), aspect)
    assert math.isfinite(float(g_raster)) and float(g_raster) != 0
