"""Volumetric path tracing: homogeneous interior media inside dielectric boundaries (``Material.interior``).

(a) a white furnace: a non-absorbing medium inside a lossless glass boundary is invisible; (b) a pure
absorber slab against the closed form of a glass slab; (d) path-replay gradients of ``sigma_a``, ``sigma_s``
and ``g`` against central finite differences with the same seed, the absorption gradient against the closed
form's derivative (float64), and the replayed weights' derivatives against the scores of the sampled events;
(e) bad input. The comparison with Mitsuba 3's ``volpath`` is in ``tests/integrators/test_path_vs_mitsuba.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material
from lumigrad.raytrace.transport import sample_paths
from lumigrad.shading.medium import HomogeneousMedium

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def glass(medium, dtype=torch.float32, ior=1.5) -> Material:
    """A smooth (``roughness 0``: GGX at its smallest alpha), white, fully transmitting boundary."""
    return Material(base_color_factor=torch.ones(4, dtype=dtype), metallic_factor=0.0, roughness_factor=0.0,
                    ior=ior, transmission_factor=1.0, interior=medium)


def box(half) -> tuple:
    """A closed axis-aligned box ``[-half, half]`` with outward (counter-clockwise) faces."""
    half = torch.as_tensor(half, dtype=torch.float64)
    corners = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float64)
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    faces = torch.tensor([t for q in quads for t in ([q[0], q[1], q[2]], [q[0], q[2], q[3]])])
    verts = corners * half
    v = verts[faces]
    n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    inward = (n * v.mean(1)).sum(-1) < 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return verts, faces


def test_a_non_absorbing_medium_in_a_white_furnace_is_invisible():
    """(a) A glass ball (ior 1.5, lossless) filled with a purely scattering medium (``sigma_a = 0``, spectral
    ``sigma_s``, ``g = 0.5``) under a constant white sky: every path ends in the sky with nothing absorbed,
    so every pixel's expectation is 1 (the classic unbiasedness check of the free-flight weights and the
    boundary crossings). Measured (16 x 16, 128 spp, Russian roulette, no depth limit): channel means within
    0.01 of 1, about one standard error; the bound is 4 standard errors of the image mean."""
    v, f = lg.geometry.icosphere(2)
    scene = lg.Scene()
    medium = HomogeneousMedium(torch.zeros(3), torch.tensor([2.0, 1.0, 0.5]), g=0.5)
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass(medium)))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=16, height=16)
    with torch.no_grad():
        img = lg.render(scene, cam, integrator="path", spp=128, max_depth=-1).rgb.double()
    pixels = img.reshape(-1, 3)
    mean = pixels.mean(0)
    stderr = pixels.std(0) / math.sqrt(pixels.shape[0])
    assert pixels.std(0).max() > 0  # the ball is there (its noise); the sky alone would be exactly 1
    assert ((mean - 1).abs() < 4 * stderr + 1e-3).all(), (mean.tolist(), stderr.tolist())


def test_a_pure_absorber_slab_transmits_as_the_closed_form():
    """(b) A glass slab (ior 1.5, thickness 1) of pure absorber ``sigma_a = (0.5, 1, 2)`` seen head-on (a narrow
    camera) against a constant white sky: a pixel sees the front reflection ``R`` and the light through the
    slab with every pair of internal reflections, ``R + (1 - R)^2 Tr / (1 - R Tr)`` with ``Tr = exp(-sigma_a)``
    and ``R = ((1.5 - 1) / 2.5)^2 = 0.04`` (with ior 1 it would be ``Tr``; lumigrad's rough-dielectric boundary
    degenerates at ior 1, so the index-matched case is not rendered). Measured (8 x 8, 1024 spp): within 0.0007
    of the closed form in every channel; at 4 x 4 and 256 spp the noise (correlated across channels: one
    sample serves all by spectral MIS) reached 0.03, hence the sample count. The bound is 0.006."""
    verts, faces = box([5.0, 5.0, 0.5])
    scene = lg.Scene()
    medium = HomogeneousMedium(torch.tensor([0.5, 1.0, 2.0]), torch.zeros(3))
    scene.add_mesh("slab", lg.SceneMesh(verts.float(), faces, glass(medium)))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    cam = lg.Camera.look_at([0.0, 0.0, -6.0], [0.0, 0.0, 0.0], fov_y=0.02, width=8, height=8)
    with torch.no_grad():
        img = lg.render(scene, cam, integrator="path", spp=1024, max_depth=-1).rgb.double()
    R = 0.04
    tr = torch.exp(-torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    expected = R + (1 - R) ** 2 * tr / (1 - R * tr)
    got = img.reshape(-1, 3).mean(0)
    assert torch.allclose(got, expected, atol=0.006), (got.tolist(), expected.tolist())


def _lit_ball(sigma_a, sigma_s, g, dtype=torch.float64) -> lg.Scene:
    """A glass ball (ior 1.5) of scattering medium in front of a two-sided square lamp (behind it)."""
    v, f = lg.geometry.icosphere(2)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(v.to(dtype), f, glass(HomogeneousMedium(sigma_a, sigma_s, g=g), dtype)))
    lamp = torch.tensor([[-1.5, -1.5, 2.0], [-1.5, 1.5, 2.0], [1.5, 1.5, 2.0], [1.5, -1.5, 2.0]], dtype=dtype)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.tensor([5.0, 5.0, 5.0], dtype=dtype), two_sided=True))
    return scene


@pytest.mark.slow
def test_medium_gradients_match_central_differences():
    """(d) ``d sum(image) / d (sigma_a, sigma_s, g)`` by path replay (the free-flight and phase weights'
    ratios, sampling detached) against central differences (step 0.05) of the same estimator with the same
    seed (float64 parameters). The two estimators differ per sample (the differences move the sampled
    distances and directions, the replay differentiates the weights) and agree in expectation, so both are
    averaged over four seeds. Measured (8 x 8, 256 spp, depth 12): replay (-310.0, -165.0, 185.2), differences
    (-302.3, -153.3, 182.5): within 8%; per seed the differences scatter by about 10% (step 0.02: 20%), the
    replay by 1-5%. The bound is 12% of each mean."""
    dtype = torch.float64
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.4, width=8, height=8)
    names = ("sigma_a", "sigma_s", "g")
    replay, fd = {n: 0.0 for n in names}, {n: 0.0 for n in names}
    seeds = (0, 1, 2, 3)
    for seed in seeds:
        base = {"sigma_a": torch.tensor([0.3], dtype=dtype), "sigma_s": torch.tensor([1.0], dtype=dtype),
                "g": torch.tensor(0.4, dtype=dtype)}
        kw = dict(integrator="path", spp=256, max_depth=12, seed=seed, seed_grad=seed)
        scene = _lit_ball(**base)
        params = scene.trainable("meshes.ball.material.interior.*")
        assert set(params) == {f"meshes.ball.material.interior.{k}" for k in names}
        lg.render(scene, cam, **kw).rgb.sum().backward()
        for name in names:
            h = 0.05
            sides = []
            for s in (1.0, -1.0):
                values = {k: v.detach().clone() for k, v in base.items()}
                values[name] = values[name] + s * h
                with torch.no_grad():
                    sides.append(lg.render(_lit_ball(**values), cam, **kw).rgb.sum().item())
            fd[name] += (sides[0] - sides[1]) / (2 * h) / len(seeds)
            replay[name] += params[f"meshes.ball.material.interior.{name}"].grad.item() / len(seeds)
    for name in names:
        assert abs(replay[name] - fd[name]) < 0.12 * abs(fd[name]), (name, replay[name], fd[name])


def test_scene_parameters_name_the_medium_and_validate_it():
    """The medium's tensors are scene parameters with kinds; a number ``g`` becomes a tensor."""
    scene = lg.Scene()
    v, f = lg.geometry.icosphere(1)
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass(HomogeneousMedium(torch.ones(3), torch.ones(3), g=0.3))))
    assert scene.param_info("meshes.ball.material.interior.sigma_a").kind == "medium_coefficient"
    assert scene.param_info("meshes.ball.material.interior.g").kind == "phase_asymmetry"
    assert isinstance(scene["meshes.ball.material.interior.g"], torch.Tensor)


@pytest.mark.parametrize("kwargs, name", [
    (dict(sigma_a=torch.tensor([-0.1]), sigma_s=torch.tensor([1.0])), "sigma_a"),
    (dict(sigma_a=torch.tensor([0.1]), sigma_s=torch.tensor([-1.0])), "sigma_s"),
    (dict(sigma_a=torch.tensor([float("nan")]), sigma_s=torch.tensor([1.0])), "sigma_a"),
    (dict(sigma_a=torch.tensor([0.1]), sigma_s=torch.tensor([1.0]), g=1.0), "g"),
    (dict(sigma_a=torch.tensor([0.1]), sigma_s=torch.tensor([1.0]), g=-1.5), "g"),
    (dict(sigma_a=torch.tensor([0.1]), sigma_s=torch.tensor([1.0]), g=float("nan")), "g"),
])
def test_bad_media_are_refused_naming_the_argument(kwargs, name):
    """(e) Negative or NaN coefficients, ``|g| >= 1`` or NaN ``g``: errors naming the argument."""
    with pytest.raises(ValueError, match=name):
        HomogeneousMedium(**kwargs)


def test_an_interior_must_be_a_medium():
    with pytest.raises(TypeError, match="interior"):
        glass("fog")


def test_media_optimised_out_of_range_are_refused_by_the_renderer():
    """A medium's tensors changed after construction (an optimiser's step) are checked every frame: negative
    coefficients and ``|g| >= 1`` raise errors naming the scene parameter."""
    v, f = lg.geometry.icosphere(1)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=4, height=4)
    for name, value in (("sigma_s", torch.tensor([-0.5, 1.0, 1.0])), ("g", torch.tensor(1.2))):
        scene = lg.Scene()
        scene.add_mesh("ball", lg.SceneMesh(v, f, glass(HomogeneousMedium(torch.ones(3), torch.ones(3)))))
        scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
        scene[f"meshes.ball.material.interior.{name}"] = value
        with pytest.raises(ValueError, match=f"interior.{name}"):
            lg.render(scene, cam, integrator="path", spp=1)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass(HomogeneousMedium(torch.ones(2), torch.ones(2)))))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    with pytest.raises(ValueError, match="interior.sigma_a / sigma_s have 2 channels"):
        lg.render(scene, cam, integrator="path", spp=1)


def test_absorption_gradient_matches_the_closed_form():
    """(d) The float64 reference: ``d pixel / d sigma_a`` of the absorbing glass slab of (b) by path replay
    (only the surface-passing weight ``Tr / P`` carries it) against the derivative of the closed form,
    ``-(1 - R)^2 Tr / (1 - R Tr)^2`` (thickness 1). Measured (8 x 8, 256 spp, float64): within 0.8% per
    channel (0.5% at 1024 spp: the noise, and the boundary's tiny GGX roughness); the bound is 3%."""
    dtype = torch.float64
    verts, faces = box([5.0, 5.0, 0.5])
    sigma_a = torch.tensor([0.5, 1.0, 2.0], dtype=dtype, requires_grad=True)
    scene = lg.Scene()
    medium = HomogeneousMedium(sigma_a, torch.zeros(3, dtype=dtype))
    scene.add_mesh("slab", lg.SceneMesh(verts, faces, glass(medium, dtype)))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3, dtype=dtype)))
    cam = lg.Camera.look_at([0.0, 0.0, -6.0], [0.0, 0.0, 0.0], fov_y=0.02, width=8, height=8)
    lg.render(scene, cam, integrator="path", spp=256, max_depth=-1).rgb.mean((0, 1)).sum().backward()
    R = 0.04
    tr = torch.exp(-sigma_a.detach())
    expected = -(1 - R) ** 2 * tr / (1 - R * tr) ** 2
    assert torch.allclose(sigma_a.grad, expected, rtol=0.03), (sigma_a.grad.tolist(), expected.tolist())


def test_the_replayed_weights_carry_the_score_of_the_sampled_events():
    """The ratios the adjoint pass back-propagates, at fixed (detached) samples, in float64: the free-flight
    ratio's derivative is the score of the sampled event, ``d log(sigma_s Tr(t)) = (1 / sigma_s - t) dsigma_s -
    t dsigma_a`` at a scattering event and ``d log Tr(t_max) = -t_max (dsigma_a + dsigma_s)`` at the surface;
    the phase ratio's is ``d log p_g(wo, wi) / dg`` (central differences of ``hg_eval`` at the sampled ``wi``)."""
    from lumigrad.raytrace.volumetric import free_flight, scatter_vertex
    from lumigrad.shading.henyey_greenstein import hg_eval

    dtype = torch.float64
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(6, 1, generator=gen, dtype=dtype)
    t_max = torch.tensor([0.3, 1.0, 2.0, 0.5, float("inf"), 1.5], dtype=dtype)
    medium = torch.tensor([0, 0, 0, -1, 0, 0])
    sigma_a = torch.tensor([0.2, 0.5, 1.0], dtype=dtype, requires_grad=True)
    sigma_s = torch.tensor([1.0, 0.7, 0.3], dtype=dtype, requires_grad=True)
    ff = free_flight([HomogeneousMedium(sigma_a, sigma_s)], medium, t_max, u, C=3, differentiable=True)
    assert ff.scattered.any() and (~ff.scattered).any()
    for c in range(3):
        da, ds = torch.autograd.grad(ff.ratio[:, c].sum(), (sigma_a, sigma_s), retain_graph=True)
        t = ff.t[:, 0]
        ev = ff.scattered
        expect_a = (-t).sum()
        expect_s = torch.where(ev, 1 / sigma_s[c].detach() - t, -t).sum()
        assert torch.allclose(da[c], expect_a) and torch.allclose(ds[c], expect_s), (c, da, ds)
        assert da.abs()[[k for k in range(3) if k != c]].max() == 0  # a channel's weight needs only its own

    x = torch.randn(5, 3, generator=gen, dtype=dtype)
    wo = torch.nn.functional.normalize(torch.randn(5, 3, generator=gen, dtype=dtype), dim=-1)
    u_phase = torch.rand(5, 2, generator=gen, dtype=dtype)
    g = torch.tensor(0.4, dtype=dtype, requires_grad=True)
    m = HomogeneousMedium(torch.ones(3, dtype=dtype), torch.ones(3, dtype=dtype), g=g)
    _, wi, pdf, ratio = scatter_vertex([m], [], None, torch.zeros(5, dtype=torch.long), x, wo, u_phase,
                                       torch.zeros(5, 0, dtype=dtype), C=3, nee=False, differentiable=True,
                                       methods=[])
    assert torch.allclose(pdf, hg_eval(wo, wi, 0.4)) and torch.allclose(ratio, torch.ones_like(ratio))
    (dg,) = torch.autograd.grad(ratio.sum(), g)
    h = 1e-6
    fd = ((hg_eval(wo, wi, 0.4 + h).log() - hg_eval(wo, wi, 0.4 - h).log()) / (2 * h)).sum()
    assert torch.allclose(dg, fd, rtol=1e-6), (dg.item(), fd.item())


def test_an_index_matched_boundary_passes_light_straight_through():
    """ior 1: the boundary neither bends nor reflects (a delta pass-through), so an empty glass ball is invisible
    exactly, and one filled with a non-absorbing medium disappears in a white furnace (the boundary degenerated
    to black before: the rough formulas' half vector vanishes)."""
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=12, height=12)
    for interior, spp in ((None, 4), (HomogeneousMedium(torch.zeros(3), torch.tensor([2.0, 1.0, 0.5]), g=0.5), 128)):
        scene = lg.Scene()
        v, f = lg.geometry.icosphere(2)
        m = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=0.3, ior=1.0,
                     transmission_factor=1.0, interior=interior)
        scene.add_mesh("ball", lg.SceneMesh(v, f, m))
        scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
        img = lg.render(scene, cam, integrator="path", spp=spp, max_depth=-1).rgb
        if interior is None:
            assert torch.allclose(img, torch.ones_like(img), atol=1e-5)
        else:
            mean = img.reshape(-1, 3).mean(0)
            sem = img.reshape(-1, 3).std(0) / (img.shape[0] * img.shape[1]) ** 0.5
            assert ((mean - 1).abs() < 4 * sem + 0.01).all(), (mean, sem)


def _fog_lamp_pixels(light_sampling: str, seed: int, spp: int = 512):
    """A lamp inside a fog-filled, index-matched box, seen from outside: per pixel, the mean radiance (channel
    sum) of ``spp`` paths of the PyTorch transport and its squared standard error."""
    from lumigrad.integrators.path import _camera_rays, _trace_scene
    scene = lg.Scene()
    v, f = box(1.0)
    fog = HomogeneousMedium(torch.full((3,), 0.3), torch.full((3,), 1.5), g=0.0)
    scene.add_mesh("fog", lg.SceneMesh(v.float(), f, Material(
        base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=0.3, ior=1.0,
        transmission_factor=1.0, interior=fog)))
    lamp = torch.tensor([[-0.6, 0.5, -0.6], [0.6, 0.5, -0.6], [0.6, 0.5, 0.6], [-0.6, 0.5, 0.6]])
    scene.add_light("lamp", lg.AreaLight(lamp, torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.full((3,), 4.0),
                                         two_sided=True))
    cam = lg.Camera.look_at([0.0, 0.0, -3.5], [0.0, 0.0, 0.0], fov_y=0.7, width=6, height=6)
    o, d = _camera_rays(cam, spp, seed, torch.float32)
    L = sample_paths(_trace_scene(scene, light_sampling), o, d, max_depth=4, rr_depth=4, seed=seed,
                     hide_emitters=True)
    L = L.double().sum(-1).reshape(-1, spp)
    return L.mean(1), L.var(1) / spp


def test_medium_vertices_sample_lights_by_the_strategy_their_emission_is_weighed_with():
    """Scattering vertices in a medium sample an area light by the integrator's strategy, the one whose density
    weighs the emission their phase samples find (the two MIS weights must add to 1): the image equals the
    solid-angle one within its standard errors (the image mean: -1.8 standard errors; with the phase vertices
    sampling by solid angle under an area-sampling integrator it was +7.7). The lamp is close to every vertex in
    the box, so ``"auto"`` would sample by solid angle everywhere: ``"area"`` is the case to check."""
    mean_s, se2_s = _fog_lamp_pixels("solid_angle", seed=3)
    mean_a, se2_a = _fog_lamp_pixels("area", seed=4)
    se2 = se2_s + se2_a
    assert float(mean_s.mean()) > 0.05
    diff = float((mean_a - mean_s).mean())
    assert abs(diff) < 4 * math.sqrt(float(se2.sum())) / mean_s.numel(), (diff, math.sqrt(float(se2.sum())) / 36)
