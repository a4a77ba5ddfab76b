"""Shadow edges in a scene with a participating medium around everything (``Scene.medium``): the first-hit
boundary term carries the medium's transmittance on the camera ray and on the shadow ray, as the primal
integrand does. In a pure absorber (``sigma_s = 0``) that boundary term is the whole derivative of an unseen
occluder's shadow, so it must match central finite differences of the fogged renders."""

import torch

import lumigrad as lg
from lumigrad.integrators.path import _rays_through, _trace_scene
from lumigrad.raytrace.shadow_edge_connections import camera_path_vertices
from lumigrad.raytrace.shadow_edges import sample_shadow_edges, shadow_edge_jumps
from lumigrad.shading import HomogeneousMedium

from .test_shadow_edges import F64, SIZE, _scene, _unseen_occluder_case, _weights

CARD_AT = (-0.7, 0.6, 0.0)


def _fog(sigma_a=0.25, sigma_s=0.0):
    return HomogeneousMedium(torch.full((3,), sigma_a, dtype=F64), torch.full((3,), sigma_s, dtype=F64))


def _fogged_scene(offset, light, kind, fog):
    scene = _scene(offset, light, kind, CARD_AT)
    scene.medium = fog
    return scene


def _loss(offset, light, kind, fog, spp, seed=0, **kw):
    cam, _ = _unseen_occluder_case("point")
    image = lg.render(_fogged_scene(offset, light, kind, fog), cam, integrator="direct", spp=spp, seed=seed,
                      **kw).rgb
    return (image * _weights()).sum()


def _card_gradients(light, kind, fog, seeds, **kw):
    grads = []
    for s in seeds:
        offset = torch.zeros(2, dtype=F64, requires_grad=True)
        _loss(offset, light, kind, fog, 4, seed_grad=s, **kw).backward()
        grads.append(offset.grad.clone())
    return torch.stack(grads)


def _card_differences(light, kind, fog, spp, eps=0.03, seed=7):
    out = []
    for k in range(2):
        step = torch.zeros(2, dtype=F64)
        step[k] = eps
        up = _loss(step, light, kind, fog, spp, seed=seed)
        down = _loss(-step, light, kind, fog, spp, seed=seed)
        out.append(float((up - down) / (2 * eps)))
    return torch.tensor(out, dtype=F64)


def _jumps(fog):
    """The first-hit jumps of the same shadow-edge samples in vacuum and in ``fog`` (unseen card, point light)."""
    cam, light = _unseen_occluder_case("point")
    out = []
    for medium in (None, fog):
        scene = _fogged_scene(torch.zeros(2, dtype=F64), light, "point", medium)
        ts = _trace_scene(scene)
        gen = torch.Generator().manual_seed(3)
        samples = sample_shadow_edges(ts, cam.K.to(F64), cam.world_to_cam.to(F64), cam.near, SIZE, SIZE, 2000, gen)
        out.append((samples, shadow_edge_jumps(ts, samples, lambda uv: _rays_through(cam, uv, F64))))
    return cam, light, out


def test_a_shadow_edges_jump_in_fog_carries_the_camera_rays_and_the_shadow_rays_transmittance():
    """The same samples in vacuum and in a grey absorber: the jump is the vacuum's times
    ``exp(-sigma_t (|x* - camera| + |y - x*|))``, per sample (the jump's sides are eps pixels from ``x*``)."""
    fog = _fog(0.25)
    cam, light, ((samples, vacuum), (samples_fog, fogged)) = _jumps(fog)
    torch.testing.assert_close(samples_fog.points, samples.points)
    eye = torch.linalg.inv(cam.world_to_cam.to(F64))[:3, 3]
    x = samples.receivers
    length = (x - eye).norm(dim=-1) + (light - x).norm(dim=-1)
    lit = vacuum.abs().amax(-1) > 0
    assert int(lit.sum()) > 40
    want = vacuum * torch.exp(-0.25 * length)[:, None]
    torch.testing.assert_close(fogged[lit], want[lit], rtol=2e-3, atol=0.0)  # eps-pixel offsets of the sides
    assert bool((fogged[~lit] == 0).all())


def test_a_light_at_infinity_casts_no_shadow_edge_through_the_scenes_unbounded_fog():
    """A directional light in the scene's medium is reached through an infinite length (``Tr = 0``, as the
    primal's shadow rays): its jumps are 0."""
    cam, light = _unseen_occluder_case("directional")
    jumps = []
    for medium in (None, _fog(0.25)):
        ts = _trace_scene(_fogged_scene(torch.zeros(2, dtype=F64), light, "directional", medium))
        samples = sample_shadow_edges(ts, cam.K.to(F64), cam.world_to_cam.to(F64), cam.near, SIZE, SIZE, 1000,
                                      torch.Generator().manual_seed(1))
        jumps.append(shadow_edge_jumps(ts, samples, lambda uv: _rays_through(cam, uv, F64)))
    assert int((jumps[0].abs().amax(-1) > 0).sum()) > 20  # in vacuum the shadow's edges jump
    assert bool((jumps[1] == 0).all())


def test_no_connections_beyond_the_first_hit_in_a_scene_with_a_medium():
    """The deep term's pool is empty where a path can be in a medium (the scene's here; nothing transmits)."""
    cam, light = _unseen_occluder_case("point")
    v = torch.ones(SIZE, SIZE, 3, dtype=F64)
    sizes = []
    for medium in (None, _fog(0.25)):
        ts = _trace_scene(_fogged_scene(torch.zeros(2, dtype=F64), light, "point", medium))
        pool = camera_path_vertices(ts, lambda uv: _rays_through(cam, uv, F64), v, 4, 5,
                                    torch.Generator().manual_seed(0))
        sizes.append(len(pool))
    assert sizes[0] > 0 and sizes[1] == 0


def test_an_unseen_occluders_shadow_in_an_absorbing_fog_moves_like_finite_differences():
    """The card is out of frame in a pure absorber around everything (``sigma_a = 0.25``, camera and lamp in
    it): the whole gradient w.r.t. the card's position is the shadow's boundary term, attenuated over the
    camera ray and the shadow ray. Measured (8 gradient seeds; differences of 4 seeds at 1024 spp, eps 0.03):
    gradient (-19.40 +- 0.05, -13.89 +- 0.03), differences (-20.01 +- 0.04, -14.27 +- 0.07), the same ratio
    (0.97-0.98) as in vacuum (-65.5 vs -67.1, -46.9 vs -47.9), where part of it is the differences' step (eps
    0.003 gives -19.77, -14.21). Tolerance: three standard errors of the gradient's mean, 0.3 for one seed's
    differences (their spread over seeds), and 4 % of the differences for that shared ratio. Without the
    transmittance the boundary term is the vacuum's jump, over three times too large."""
    cam, light = _unseen_occluder_case("point")
    fog = _fog(0.25)
    grads = _card_gradients(light, "point", fog, seeds=tuple(range(10, 18)), shadow_edge_samples=3000)
    mean, se = grads.mean(0), grads.std(0) / grads.shape[0] ** 0.5
    fd = _card_differences(light, "point", fog, spp=1024)
    for k in range(2):
        assert abs(float(fd[k])) > 2
        assert abs(float(mean[k] - fd[k])) < 3 * float(se[k]) + 0.3 + 0.04 * abs(float(fd[k])), (k, mean, se, fd)


def test_a_shadow_inside_a_fog_filled_glass_box_gets_no_first_hit_jump():
    """Camera rays into a bounded medium first hit its glass: a shadow cast inside (the lamp, the card and the
    floor all in the box, ``interior`` a fog) is a hidden receiver for the first-hit term, every jump 0."""
    from .test_medium_transport import box, glass

    cam, _ = _unseen_occluder_case("point")
    light = torch.tensor([-0.5, 1.2, 0.0], dtype=F64)
    scene = _fogged_scene(torch.zeros(2, dtype=F64), light, "point", _fog(0.1))
    verts, faces = box((1.4, 1.4, 1.4))
    scene.add_mesh("box", lg.SceneMesh(verts, faces, glass(_fog(0.3), dtype=F64)))
    ts = _trace_scene(scene)
    samples = sample_shadow_edges(ts, cam.K.to(F64), cam.world_to_cam.to(F64), cam.near, SIZE, SIZE, 2000,
                                  torch.Generator().manual_seed(2))
    on_floor = samples.receivers[:, 1].abs() < 1e-6
    assert int(on_floor.sum()) > 20
    jumps = shadow_edge_jumps(ts, samples, lambda uv: _rays_through(cam, uv, F64))
    assert bool((jumps[on_floor] == 0).all())


def test_a_lamp_moving_in_an_absorbing_fog_moves_its_shadow_like_finite_differences():
    """The unseen card's shadow as the point lamp moves (pure absorber, ``sigma_a = 0.25``): the interior term
    (with the shadow rays' ``Tr`` differentiated in their length, ``-sigma_t Tr (y - x) / |y - x|``) and the
    shadow's boundary term must match central differences. Measured with the length's part added by hand, before
    the transport differentiated it (x, y): 25.21 + 4.27, -6.47 - 5.31 against differences 29.49, -11.70 (without
    the media's Tr in the jump: 39.05 + 4.27 in x). Tolerance as the card's test."""
    cam, light = _unseen_occluder_case("point")
    fog = _fog(0.25)
    zero = torch.zeros(2, dtype=F64)
    grads = []
    for s in range(10, 18):
        lamp = light.clone().requires_grad_()
        _loss(zero, lamp, "point", fog, 4, seed_grad=s, shadow_edge_samples=3000).backward()
        grads.append(lamp.grad.clone())
    grads = torch.stack(grads)
    mean, se = grads.mean(0), grads.std(0) / grads.shape[0] ** 0.5
    for k in range(2):
        step = torch.zeros(3, dtype=F64)
        step[k] = 0.03
        fd = float((_loss(zero, light + step, "point", fog, 1024, seed=7)
                    - _loss(zero, light - step, "point", fog, 1024, seed=7)) / 0.06)
        assert abs(float(mean[k]) - fd) < 3 * float(se[k]) + 0.3 + 0.04 * abs(fd), (k, float(mean[k]), fd)