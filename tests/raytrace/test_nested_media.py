"""Nested media (a material's ``exterior``, Mitsuba's rule of trusted tags) and the scene's medium (``Scene.medium``:
the camera and the lights in a fog).

Closed forms of pure absorbers (``sigma_s = 0``): a camera in a fog looking at a lamp at distance ``d`` sees
``exp(-sigma_a d) L``; a surface in the fog lit by a point light at ``r`` gets ``exp(-sigma_a r)`` more; a
directional light never reaches into an unbounded fog. Nested slabs at normal incidence against the slab formula
with the Fresnel terms of the outer boundary (the inner one index-matched), where the medium after each crossing is
the one the tags name; the gradient w.r.t. an exterior's ``sigma_a`` against the closed form's derivative.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

import lumigrad as lg
from lumigrad.raytrace.transport import PathAdjoint, sample_paths
from lumigrad.raytrace.volumetric import media_table
from lumigrad.shading import Material
from lumigrad.shading.medium import HomogeneousMedium

from .test_medium_transport import box, glass

F64 = torch.float64
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
R = 0.04  #: normal-incidence reflectance of the ior-1.5 boundary, ((1.5 - 1) / 2.5)^2


def absorber(sigma_a) -> HomogeneousMedium:
    sigma_a = torch.as_tensor(sigma_a, dtype=F64)
    return HomogeneousMedium(sigma_a, torch.zeros_like(sigma_a))


def _z_ok(samples: torch.Tensor, expected: torch.Tensor) -> bool:
    """The mean of ``samples [N, C]`` within 4 standard errors of ``expected [C]``."""
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])
    return bool(((mean - expected).abs() < 4 * se + 1e-9).all())


# ------------------------------------------------------------------------------------------- the scene's medium
def _fog_and_lamp(sigma_a: torch.Tensor, distance: float) -> tuple:
    scene = lg.Scene(medium=HomogeneousMedium(sigma_a, torch.zeros(3, dtype=F64)))
    s = 5.0
    lamp = torch.tensor([[-s, -s, 0.0], [s, -s, 0.0], [s, s, 0.0], [-s, s, 0.0]], dtype=F64)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.full((3,), 2.0, dtype=F64), two_sided=True))
    cam = lg.Camera.look_at([0.0, 0.0, -distance], [0.0, 0.0, 0.0], fov_y=0.02, width=8, height=8)
    return scene, cam


def test_a_camera_in_an_absorbing_fog_sees_a_lamp_dimmed_by_its_transmittance():
    """Camera rays start in ``Scene.medium``: a lamp (radiance 2) at distance 1.5 through a pure absorber of
    ``sigma_a = (0.5, 1, 2)`` has the expectation ``2 exp(-1.5 sigma_a)`` (in vacuum it would be 2). The free
    flight passes with probability ``mean_c Tr_c`` and weight ``Tr / mean Tr`` (spectral MIS), so the pixels are
    noisy: bound 4 standard errors (measured within 1.2). With ``seed_grad = seed`` the replay's gradient w.r.t.
    ``medium.sigma_a`` is the pass's score ``-t`` times each path's radiance: ``-1.5`` times the image (to the
    rays' spread in length, ``1 / cos`` of half the 0.02 rad field of view)."""
    sigma_a = torch.tensor([0.5, 1.0, 2.0], dtype=F64, requires_grad=True)
    scene, cam = _fog_and_lamp(sigma_a, 1.5)
    assert scene["medium.sigma_a"] is sigma_a
    img = lg.render(scene, cam, integrator="path", spp=256, max_depth=1, seed=3, seed_grad=3).rgb
    expected = 2.0 * torch.exp(-1.5 * sigma_a.detach())
    pixels = img.detach().reshape(-1, 3)
    assert _z_ok(pixels, expected), (pixels.mean(0), expected)
    img.mean((0, 1)).sum().backward()
    torch.testing.assert_close(sigma_a.grad, -1.5 * pixels.mean(0), rtol=1e-4, atol=0.0)
    with torch.no_grad():  # and without the fog, the lamp itself
        vacuum, _ = _fog_and_lamp(torch.zeros(3, dtype=F64), 1.5)
        vacuum.medium = None
        assert torch.allclose(lg.render(vacuum, cam, integrator="path", spp=4, max_depth=1).rgb,
                              torch.full((8, 8, 3), 2.0, dtype=F64))


FLOOR_Y, ORIGIN, LIGHT = -0.5, (0.0, 2.0, 0.0), (0.4, 0.3, 0.0)


def _fog_floor(sigma_a: torch.Tensor, light: str) -> lg.Scene:
    scene = lg.Scene(medium=HomogeneousMedium(sigma_a, torch.zeros(3, dtype=F64)))
    floor = torch.tensor([[-0.8, FLOOR_Y, -0.8], [-0.8, FLOOR_Y, 0.8], [0.8, FLOOR_Y, 0.8], [0.8, FLOOR_Y, -0.8]],
                         dtype=F64)
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(
        base_color_factor=torch.tensor([0.8, 0.6, 0.4, 1.0], dtype=F64), metallic_factor=0.0, roughness_factor=1.0)))
    if light == "point":
        scene.add_light("lamp", lg.PointLight(torch.tensor(LIGHT, dtype=F64), intensity=torch.tensor(2.0, dtype=F64)))
    elif light == "sky":
        scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3, dtype=F64)))
    else:
        scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.2], dtype=F64),
                                                   irradiance=torch.tensor(3.0, dtype=F64)))
    return scene


def _down_onto_the_floor(sigma: float, light: str, n: int = 2048, seed: int = 5):
    """``(radiance [n, 3], d mean / d sigma_a [3])`` of rays straight down from ``ORIGIN`` onto the floor."""
    from lumigrad.integrators.path import _trace_scene
    sigma_a = torch.full((3,), sigma, dtype=F64, requires_grad=True)
    ts = _trace_scene(_fog_floor(sigma_a, light))
    o = torch.tensor(ORIGIN, dtype=F64).expand(n, 3).contiguous()
    d = torch.tensor((0.0, -1.0, 0.0), dtype=F64).expand(n, 3).contiguous()
    settings = dict(max_depth=2, rr_depth=2, seed=seed)  # the floor's light samples only
    with torch.no_grad():
        L = sample_paths(ts, o, d, **settings)
    adjoint = PathAdjoint(torch.full_like(L, 1.0 / n), L, [sigma_a])
    sample_paths(ts, o, d, adjoint=adjoint, **settings)
    return L, adjoint.grads[0]


def test_light_samples_of_surfaces_in_the_fog_cross_it():
    """A floor in the scene's fog (grey ``sigma_a = 0.8``), seen from 2.5 above, lit by a point light at ``r``:
    each path that reaches the floor (weight 1, probability ``Tr(2.5)``) gets the light's sample times
    ``Tr(r)``, so the mean is ``exp(-0.8 (2.5 + r))`` times the radiance without fog, and the replay's gradient
    is ``-(2.5 + r)`` times each path's radiance, exactly (to the rays' offsets, 1e-4). A directional light is
    at infinity, behind an unbounded fog: no light at all (``Tr = exp(-inf)``; a bounded medium's boundary blocks
    such rays, the scene's has none); nor does an environment light."""
    sigma = 0.8
    r = math.dist(LIGHT, (0.0, FLOOR_Y, 0.0))
    L0, _ = _down_onto_the_floor(0.0, "point")
    L, grad = _down_onto_the_floor(sigma, "point")
    assert float(L0.min()) > 0 and float(L.max()) > 0
    assert _z_ok(L, L0.mean(0) * math.exp(-sigma * (2.5 + r)))
    torch.testing.assert_close(grad, -(2.5 + r) * L.mean(0), rtol=1e-4, atol=0.0)
    for light in ("sun", "sky"):  # and the environment: neither its light samples nor escaping rays see it
        far0, _ = _down_onto_the_floor(0.0, light)
        far, far_grad = _down_onto_the_floor(sigma, light)
        assert float(far0.mean()) > 0.1  # lit without the fog
        assert far.abs().max() == 0 and far_grad.abs().max() == 0


# ---------------------------------------------------------------------------------------------- nested media
def _nested(outer: HomogeneousMedium, inner: HomogeneousMedium, inner_exterior, tagged: bool = True) -> tuple:
    """A glass slab (ior 1.5, ``[-5, 5]^2 x [-0.5, 0.5]``) filled with ``outer``, around an index-matched core
    (``[-4, 4]^2 x [-0.25, 0.25]``) of ``inner`` whose exterior is ``inner_exterior`` (``tagged=False``: the core
    tags no medium at all), under a white sky; a narrow camera looks through both at normal incidence."""
    scene = lg.Scene()
    v, f = box([5.0, 5.0, 0.5])
    scene.add_mesh("jar", lg.SceneMesh(v, f, glass(outer, F64)))
    v, f = box([4.0, 4.0, 0.25])
    core = Material(base_color_factor=torch.ones(4, dtype=F64), metallic_factor=0.0, roughness_factor=0.0, ior=1.0,
                    transmission_factor=1.0, interior=inner if tagged else None,
                    exterior=inner_exterior if tagged else None)
    scene.add_mesh("core", lg.SceneMesh(v, f, core))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3, dtype=F64)))
    cam = lg.Camera.look_at([0.0, 0.0, -6.0], [0.0, 0.0, 0.0], fov_y=0.02, width=8, height=8)
    return scene, cam


def _slab(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    """The pixel of a slab under a white sky whose first crossing (front to back) transmits ``first`` and every
    later crossing ``then``: ``R + (1 - R)^2 first / (1 - R then)`` (the front reflection, then light through the
    back face after ``k`` round trips, ``(1 - R) first (R then)^k (1 - R)``)."""
    return R + (1 - R) ** 2 * first / (1 - R * then)


S1, S2, S3 = (0.5, 1.0, 2.0), (0.2, 0.4, 0.1), (1.0, 0.3, 0.6)


def test_a_shared_medium_around_a_core_is_one_medium_and_an_untagged_core_keeps_it():
    """The core's exterior is the slab's interior (the same object): a path leaving the core is back in the
    slab's medium, so every crossing transmits ``exp(-0.5 s1 - 0.5 s2)`` (the classic slab with the mean
    absorption). A core that tags no medium (Mitsuba's rule: no transition) leaves the path in the slab's
    medium all through: ``exp(-s1)``. Bound 4 standard errors (8 x 8, 256 spp; measured within 1.5)."""
    s1, s2 = absorber(S1), absorber(S2)
    a1, a2 = s1.sigma_a, s2.sigma_a
    for tagged, tr in ((True, torch.exp(-0.5 * a1 - 0.5 * a2)), (False, torch.exp(-a1))):
        scene, cam = _nested(s1, s2, s1, tagged=tagged)
        with torch.no_grad():
            img = lg.render(scene, cam, integrator="path", spp=256, max_depth=-1).rgb
        pixels = img.reshape(-1, 3)
        assert _z_ok(pixels, _slab(tr, tr)), (tagged, pixels.mean(0), _slab(tr, tr))


def test_nested_media_follow_the_tags_and_the_exterior_gets_its_gradient():
    """Tags that disagree with the geometry are trusted (as Mitsuba trusts them): the core's exterior is a third
    absorber ``s3``, not the slab's ``s1``. The first crossing is ``s1`` over 0.25, the core's ``s2`` over 0.5,
    then ``s3`` over 0.25; every later one (after a reflection inside, which keeps the medium) ``s3`` over 0.5 and
    ``s2`` over 0.5. Image: 4 standard errors of the slab formula with those transmittances (measured within
    0.5). Gradient w.r.t. ``s3`` (the exterior's ``sigma_a``, a scene parameter) by path replay against the
    formula's derivative: measured within 0.6 % per channel (8 x 8, 256 spp, float64); bound 3 %."""
    sigma_3 = torch.tensor(S3, dtype=F64)
    scene, cam = _nested(absorber(S1), absorber(S2), absorber(sigma_3))
    a3 = scene.trainable("meshes.core.material.exterior.sigma_a")["meshes.core.material.exterior.sigma_a"]
    img = lg.render(scene, cam, integrator="path", spp=256, max_depth=-1).rgb
    a1, a2 = torch.tensor(S1, dtype=F64), torch.tensor(S2, dtype=F64)
    x = sigma_3.clone().requires_grad_(True)
    expected = _slab(torch.exp(-0.25 * a1 - 0.5 * a2 - 0.25 * x), torch.exp(-0.5 * x - 0.5 * a2))
    assert _z_ok(img.detach().reshape(-1, 3), expected.detach()), (img.detach().reshape(-1, 3).mean(0), expected)
    img.mean((0, 1)).sum().backward()
    (d_expected,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(a3.grad, d_expected, rtol=0.03), (a3.grad, d_expected)


def test_an_exterior_left_out_is_the_scenes_medium():
    """A glass ball of absorber in a scattering fog holding the camera and a lamp: the ball with no ``exterior``
    renders exactly as the ball whose exterior is the fog itself (the same random numbers)."""
    fog = HomogeneousMedium(torch.tensor([0.05, 0.1, 0.15]), torch.tensor([0.3, 0.2, 0.1]), g=torch.tensor(0.2))
    inside = HomogeneousMedium(torch.tensor([0.5, 1.0, 1.5]), torch.zeros(3))
    images = []
    for exterior in (None, fog):
        scene = lg.Scene(medium=fog)
        v, f = lg.geometry.icosphere(1)
        ball = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=0.0, ior=1.5,
                        transmission_factor=1.0, interior=inside, exterior=exterior)
        scene.add_mesh("ball", lg.SceneMesh(v, f, ball))
        lamp = torch.tensor([[-1.0, 2.0, -1.0], [1.0, 2.0, -1.0], [1.0, 2.0, 1.0], [-1.0, 2.0, 1.0]])
        scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.full((3,), 5.0), two_sided=True))
        cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=6, height=6)
        with torch.no_grad():
            images.append(lg.render(scene, cam, integrator="path", spp=8, max_depth=6).rgb)
    assert images[0].abs().sum() > 0
    assert torch.equal(images[0], images[1])


def test_the_media_table_indexes_interiors_then_exteriors_then_the_scenes_medium():
    """The example of :func:`media_table`, and a scene medium shared with an exterior (one index)."""
    water, stone, fog = absorber([0.1]), absorber([0.2]), absorber([0.3])
    jar = Material(transmission_factor=1.0, interior=water)
    marble = Material(transmission_factor=1.0, interior=stone, exterior=water)
    plain = Material()
    table = media_table([jar, marble, plain], None)
    assert table.media[0] is jar.interior and table.media[1] is marble.interior and table.start == -1
    assert len(table.media) == 3 and table.media[2] is None  # water is one medium (one copy with a tensor g)
    assert table.interior.tolist() == [0, 1, -1] and table.exterior.tolist() == [-1, 0, -1]
    assert table.boundary.tolist() == [True, True, False]
    jar = Material(transmission_factor=1.0, interior=water, exterior=fog)
    table = media_table([jar, marble, plain], jar.exterior)  # (Scene.medium keeps the same copy of fog)
    assert table.start == 3 and table.media[3] is jar.exterior and len(table.media) == 4
    assert table.exterior.tolist() == [3, 0, 3]  # the plain part's: never used, it is no boundary


# ------------------------------------------------------------------------------------------- the scene's API
def test_the_scenes_medium_is_a_parameter_that_survives_copies_and_poses():
    fog = HomogeneousMedium(torch.ones(3), torch.full((3,), 0.5), g=0.3)
    scene = lg.Scene(medium=fog)
    assert set(k for k in scene.parameters() if k.startswith("medium.")) == {"medium.sigma_a", "medium.sigma_s",
                                                                          "medium.g"}
    assert scene.param_info("medium.sigma_a").kind == "medium_coefficient"
    assert scene.param_info("medium.g").kind == "phase_asymmetry"
    assert isinstance(scene.medium.g, torch.Tensor) and float(scene.medium.g) == pytest.approx(0.3)
    trained = scene.trainable("medium.*")
    assert set(trained) == {"medium.sigma_a", "medium.sigma_s", "medium.g"}
    scene["medium.sigma_a"] = torch.full((3,), 2.0)
    assert scene.medium.sigma_a.tolist() == [2.0, 2.0, 2.0]
    for other in (copy.deepcopy(scene), pickle.loads(pickle.dumps(scene)), scene.at(0.0)):
        assert other.medium is not None and other["medium.sigma_a"].tolist() == [2.0, 2.0, 2.0]
    scene.medium = None
    assert not any(k.startswith("medium.") for k in scene.parameters())
    with pytest.raises(KeyError):
        scene["medium.sigma_a"]
    with pytest.raises(TypeError, match="medium must be a HomogeneousMedium"):
        scene.medium = "fog"
    with pytest.raises(TypeError, match="exterior must be a HomogeneousMedium"):
        Material(exterior="fog")
    m = Material(transmission_factor=1.0, exterior=HomogeneousMedium(torch.ones(3), torch.ones(3), g=0.1))
    assert set(m.media_parameters()) == {"exterior.sigma_a", "exterior.sigma_s", "exterior.g"}


def test_media_out_of_range_are_refused_by_the_renderer_naming_them():
    v, f = lg.geometry.icosphere(1)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=4, height=4)
    scene = lg.Scene(medium=HomogeneousMedium(torch.ones(2), torch.ones(2)))
    scene.add_mesh("ball", lg.SceneMesh(v, f))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    with pytest.raises(ValueError, match="medium.sigma_a / sigma_s have 2 channels"):
        lg.render(scene, cam, integrator="path", spp=1)
    scene.medium = HomogeneousMedium(torch.ones(3), torch.ones(3))
    scene["medium.sigma_s"] = torch.tensor([-1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="medium.sigma_s"):
        lg.render(scene, cam, integrator="path", spp=1)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(v, f, Material(transmission_factor=1.0,
                                                       exterior=HomogeneousMedium(torch.ones(3), torch.ones(3)))))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    scene["meshes.ball.material.exterior.g"] = torch.tensor(1.5)
    with pytest.raises(ValueError, match="ball.material.exterior.g must lie in"):
        lg.render(scene, cam, integrator="path", spp=1)


def test_the_fused_kernel_leaves_scenes_in_a_medium_to_pytorch():
    from lumigrad.integrators.fused_paths import fused_unsupported
    from lumigrad.integrators.path import _trace_scene

    scene = _fog_floor(torch.ones(3, dtype=F64), "point")
    scene = lg.Scene(meshes={"floor": scene.meshes["floor"]}, lights=dict(scene.lights),
                     medium=HomogeneousMedium(torch.ones(3), torch.zeros(3)))
    scene.meshes["floor"] = lg.SceneMesh(scene.meshes["floor"].verts.float(), QUAD)
    scene.lights["lamp"] = lg.PointLight(torch.tensor(LIGHT), intensity=torch.tensor(2.0))
    assert "medium" in fused_unsupported(_trace_scene(scene))
    scene.medium = None
    assert fused_unsupported(_trace_scene(scene)) is None
