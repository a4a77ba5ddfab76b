"""Shadow edges beyond the first hit: the pool of camera-path vertices, the resampled choice of connections, and
the gradient of a shadow the camera sees only in a rough metal wall against central finite differences."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators.path import PathIntegrator, _rays_through, _trace_scene
from lumigrad.raytrace.shadow_edge_connections import _choose_vertices, camera_path_vertices
from lumigrad.raytrace.transport import surface_at
from lumigrad.shading import Material
from lumigrad.shading.transmission import bsdf_for

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
SIZE = 24


def _material(rgb, metallic=0.0, roughness=1.0):
    rgb = torch.as_tensor(rgb, dtype=F64)
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=F64)]), metallic_factor=metallic,
                    roughness_factor=roughness, ior=1.5 if metallic else 1.0)


def _scene(card_offset, light):
    """A grey floor (y = 0), a rough metal wall (z = -1, roughness 0.35) and a dark 0.6 x 0.6 card at height 2
    over ``(x, z) = (0, 1) + card_offset`` under a point light at ``light``: the card's shadow falls on the
    floor in front of the wall. :data:`CAMERA` looks down at the wall and sees neither the floor, nor the card,
    nor the card in the wall: the shadow only as the wall reflects it (paths camera -> wall -> floor ->
    light). With ``max_depth = 3`` the card's underside is black and nothing lies behind it seen from the wall,
    so the card's silhouette seen from the wall has no jump: the shadow is the only visibility that moves."""
    scene = lg.Scene()
    h = 2.5
    floor = torch.tensor([[-h, 0, -1.0], [h, 0, -1.0], [h, 0, 4.0], [-h, 0, 4.0]], dtype=F64)
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, _material((0.6, 0.6, 0.6))))
    wall = torch.tensor([[-h, 0, -1.0], [h, 0, -1.0], [h, 2.5, -1.0], [-h, 2.5, -1.0]], dtype=F64)
    scene.add_mesh("wall", lg.SceneMesh(wall, torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                        _material((0.9, 0.9, 0.9), metallic=1.0, roughness=0.35)))
    c = 0.3
    card = torch.tensor([[-c, 0, -c], [c, 0, -c], [c, 0, c], [-c, 0, c]], dtype=F64)
    shift = torch.stack([card_offset[0], torch.zeros((), dtype=F64), card_offset[1]]) + torch.tensor(
        [0.0, 2.0, 1.0], dtype=F64)
    scene.add_mesh("card", lg.SceneMesh(card + shift, QUAD, _material((0.2, 0.2, 0.2)), double_sided=True))
    scene.add_light("key", lg.PointLight(light, torch.tensor(10.0, dtype=F64)))
    return scene


CAMERA = lg.Camera.look_at([0.0, 2.0, 2.5], [0.0, 1.0, -1.0], fov_y=0.4, width=SIZE, height=SIZE).to(dtype=F64)
LIGHT = torch.tensor([0.0, 3.0, 1.0], dtype=F64)


def _weights():
    """A smooth per-pixel, per-channel weighting of the image (as tests/raytrace/test_shadow_edges.py)."""
    r = (torch.arange(SIZE, dtype=F64) + 0.5) / SIZE
    return 0.5 + r[None, :, None] + 0.4 * torch.sin(3 * r)[:, None, None] * torch.tensor([1.0, 0.5, -0.5], dtype=F64)


#: The finite differences' renders: float32 (the fused kernel: 10x the float64 twin's speed; its samples are not the
#: float64 twin's at the same seed: another draw of the same estimate), the same samples at both ends (one seed),
#: four seeds.
FD_DTYPE = torch.float32
FD_SEEDS = (7, 8, 9, 10)


def _loss(offset, light, spp, seed=0, dtype=F64, **kw):
    image = lg.render(_scene(offset, light).to(dtype=dtype), CAMERA.to(dtype=dtype), integrator="path", max_depth=3,
                      spp=spp, seed=seed, **kw).rgb
    return (image.to(F64) * _weights()).sum()


def _within_standard_errors(grads: torch.Tensor, fds: torch.Tensor, k: int):
    """``(fd, standard_error)`` of component ``k``: the mean of the finite differences ``fds [seeds, K]`` and the
    standard error of its difference from the mean of the gradients ``grads [passes, K]``."""
    return float(fds[:, k].mean()), math.hypot(float(grads[:, k].std()) / math.sqrt(grads.shape[0]),
                                               float(fds[:, k].std()) / math.sqrt(fds.shape[0]))


def _gradients(seeds, **kw):
    """``[seeds, 2 + 3]``: the gradients (card x, z; light x, y, z) of backward passes with the ``seeds``."""
    out = []
    for s in seeds:
        offset, light = torch.zeros(2, dtype=F64).requires_grad_(), LIGHT.clone().requires_grad_()
        _loss(offset, light, 1, seed_grad=s, spp_grad=16, **kw).backward()
        out.append(torch.cat([offset.grad, light.grad]))
    return torch.stack(out)


def test_the_camera_sees_the_wall_alone():
    """The premise of the finite-difference test: every camera ray's first hit is the wall (so no shadow is
    seen at the first hit: the first-hit term is 0 for the card)."""
    ts = _trace_scene(_scene(torch.zeros(2, dtype=F64), LIGHT))
    pool = camera_path_vertices(ts, lambda uv: _rays_through(CAMERA, uv, F64), torch.ones(SIZE, SIZE, 3, dtype=F64),
                                3, 5, torch.Generator().manual_seed(0))
    wall_faces = (ts.face_part == 1).nonzero()[:, 0]
    assert len(pool) == SIZE * SIZE
    assert bool(torch.isin(pool.face, wall_faces).all())


def test_the_pool_holds_the_vertices_that_connect_with_their_path_weights():
    """One path per pixel with a non-zero adjoint; ``max_depth = 3`` keeps the first vertices (on the wall;
    weight: the pixel's adjoint), ``4`` also the second ones (on the floor; the adjoint times the wall's BSDF
    sample weight ``F G2 / G1``: grey as the wall, in (0, 1]), ``2`` none."""
    ts = _trace_scene(_scene(torch.zeros(2, dtype=F64), LIGHT))
    v = torch.zeros(SIZE, SIZE, 3, dtype=F64)
    v[5:9, 3:20] = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    rays = lambda uv: _rays_through(CAMERA, uv, F64)  # noqa: E731
    assert len(camera_path_vertices(ts, rays, v, 2, 5, torch.Generator().manual_seed(0))) == 0
    first = camera_path_vertices(ts, rays, v, 3, 5, torch.Generator().manual_seed(0))
    assert len(first) == 4 * 17
    assert torch.equal(first.weights, v[5:9, 3:20].reshape(-1, 3))
    two = camera_path_vertices(ts, rays, v, 4, 5, torch.Generator().manual_seed(0))
    assert len(two) > len(first)
    assert torch.equal(two.weights[:len(first)], first.weights)
    si, _, _, _ = surface_at(ts, two.face[len(first):], two.origins[len(first):], two.directions[len(first):])
    assert torch.allclose(si.position[:, 1], torch.zeros(len(two) - len(first), dtype=F64), atol=1e-9)  # floor
    ratio = two.weights[len(first):] / torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    assert torch.allclose(ratio, ratio[:, :1].expand(-1, 3), rtol=1e-9)
    assert bool(((ratio > 0) & (ratio <= 1)).all())


def test_the_pool_draws_its_camera_rays_by_the_films_pixel_filter():
    """With a pixel filter, a pixel's path leaves from a point drawn by the filter (``sample_in_pixels`` of the
    generator's first numbers) and its vertex weights carry the filter weight (signed, for Mitchell's lobes)."""
    from lumigrad.cameras.pixel_filter import PixelFilter, sample_in_pixels

    ts = _trace_scene(_scene(torch.zeros(2, dtype=F64), LIGHT))
    v = torch.zeros(SIZE, SIZE, 3, dtype=F64)
    v[5:9, 3:20] = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    seen = []

    def rays(uv):
        seen.append(uv)
        return _rays_through(CAMERA, uv, F64)

    filt = PixelFilter("mitchell")
    first = camera_path_vertices(ts, rays, v, 3, 5, torch.Generator().manual_seed(0), filt)
    pixel = (v != 0).any(-1).nonzero()
    u = torch.rand(pixel.shape[0], 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    uv, weight = sample_in_pixels(filt, pixel[:, 0], pixel[:, 1], SIZE, SIZE, u)
    assert torch.equal(seen[0], uv)
    assert float((uv - (pixel.flip(-1) + 0.5)).abs().max()) > 0.5  # beyond the pixel: the filter's reach
    assert bool((weight < 0).any())
    torch.testing.assert_close(first.weights, v[5:9, 3:20].reshape(-1, 3) * weight[:, None], rtol=0, atol=0)


def test_the_resampled_connections_estimate_the_sum_over_the_pool_without_bias():
    """The choice of connections (pool vertices drawn by their weight, resampled by their BSDF towards the
    receiver): the mean of ``sum factor`` over many draws equals ``sum_i weights_i f_i |cos_i|`` over the pool,
    computed exactly, within four standard errors."""
    ts = _trace_scene(_scene(torch.zeros(2, dtype=F64), LIGHT))
    v = 0.5 + torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    pool = camera_path_vertices(ts, lambda uv: _rays_through(CAMERA, uv, F64), v, 3, 5,
                                torch.Generator().manual_seed(0))
    si, _, _, _ = surface_at(ts, pool.face, pool.origins, pool.directions)
    x_star = torch.tensor([[0.3, 0.0, 1.2], [-0.8, 0.0, 0.4]], dtype=F64)  # on the floor
    weight_of = pool.weights.abs().sum(-1)
    prob = weight_of / weight_of.sum()
    exact = []
    for x in x_star:
        w = x - si.position
        w = w / w.norm(dim=-1, keepdim=True)
        exact.append((pool.weights * bsdf_for(si).eval(si, w) * (si.normal * w).sum(-1, keepdim=True).abs()).sum(0))
    exact = torch.stack(exact)
    gen = torch.Generator().manual_seed(2)
    draws = []
    for _ in range(400):
        s, _, factor = _choose_vertices(x_star, si, pool.weights, prob, 32, 4, gen)
        draws.append(torch.zeros(2, 3, dtype=F64).index_add(0, s, factor))
    draws = torch.stack(draws)
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(draws.shape[0])
    assert bool(((mean - exact).abs() < 4 * se).all()), (mean, exact, se)
    assert bool((se < 0.05 * exact.abs()).all())  # the comparison means something


def test_deep_shadow_edges_must_be_a_bool():
    with pytest.raises(TypeError, match="deep_shadow_edges"):
        PathIntegrator(deep_shadow_edges=1)


@pytest.mark.slow
def test_a_shadow_seen_only_in_a_rough_mirror_moves_like_finite_differences():
    """The card's shadow seen only in the wall (:func:`_scene`): the gradient w.r.t. the card's x and z and the
    light's x, y and z (mean of 32 backward passes at 16 spp) against central differences (1024 spp, step
    0.03, mean of seeds 7 to 10), within three standard errors of their difference (the spread over the
    backward seeds and that of the mean of the differences) plus 2 %. Measured: -39.4 +- 2.5, 90.2 +- 3.5,
    37.2 +- 1.7, -60.4 +- 0.8, -47.9 +- 2.3 against -39.4, 89.0, 37.2, -59.4, -47.5. Without the deep term (the first
    hit's alone, as on main) the card gets no gradient at all and the light's is far off.
    Measured: see docs/benchmarks.md, "Shadow edges beyond the first hit (issue 14), branch deepshadow"."""
    plain = _gradients(range(100, 104), deep_shadow_edges=False).mean(0)
    assert plain[:2].abs().max() == 0  # the first hit sees no shadow: nothing else moves with the card
    grads = _gradients(range(100, 132))
    fds = []
    for seed in FD_SEEDS:
        fd = []
        for k in range(5):
            step = torch.zeros(5, dtype=F64)
            step[k] = 0.03
            up = _loss(step[:2], LIGHT + step[2:], 1024, seed=seed, dtype=FD_DTYPE)
            down = _loss(-step[:2], LIGHT - step[2:], 1024, seed=seed, dtype=FD_DTYPE)
            fd.append(float((up - down) / 0.06))
        fds.append(fd)
    fds = torch.tensor(fds, dtype=F64)
    for k in range(5):
        fd, standard_error = _within_standard_errors(grads, fds, k)
        tol = 3 * standard_error + 0.02 * abs(fd)
        assert abs(float(grads[:, k].mean()) - fd) < tol, (k, float(grads[:, k].mean()), fd, tol)
        assert abs(float(plain[k]) - fd) > 2 * tol, (k, float(plain[k]), fd, tol)


def _ceiling_scene(light):
    """A grey floor, a white ceiling at height 2.5 and a dark 0.6 x 0.6 card at height 0.8 under a point light
    at ``light``: :data:`CEILING_CAMERA` sees the ceiling alone, lit directly and by the floor, on which the card
    casts its shadow (paths camera -> ceiling -> floor -> light)."""
    scene = lg.Scene()
    h = 3.0
    scene.add_mesh("floor", lg.SceneMesh(torch.tensor([[-h, 0, -h], [h, 0, -h], [h, 0, h], [-h, 0, h]], dtype=F64),
                                         QUAD, _material((0.6, 0.6, 0.6))))
    scene.add_mesh("ceiling", lg.SceneMesh(torch.tensor([[-h, 2.5, -h], [h, 2.5, -h], [h, 2.5, h], [-h, 2.5, h]],
                                                        dtype=F64), torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                           _material((0.8, 0.8, 0.8))))
    c = 0.3
    card = torch.tensor([[-c, 0.8, -c], [c, 0.8, -c], [c, 0.8, c], [-c, 0.8, c]], dtype=F64)
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, _material((0.2, 0.2, 0.2)), double_sided=True))
    scene.add_light("key", lg.PointLight(light, torch.tensor(5.0, dtype=F64)))
    return scene


CEILING_CAMERA = lg.Camera.look_at([0.0, 1.5, 2.0], [0.0, 2.5, 0.5], fov_y=0.5, width=SIZE,
                                   height=SIZE).to(dtype=F64)
CEILING_LIGHT = torch.tensor([0.0, 1.5, 0.0], dtype=F64)


def _ceiling_loss(light, spp, seed=0, dtype=F64, **kw):
    image = lg.render(_ceiling_scene(light).to(dtype=dtype), CEILING_CAMERA.to(dtype=dtype), integrator="path",
                      max_depth=3, spp=spp, seed=seed, **kw).rgb
    return (image.to(F64) * _weights()).sum()


@pytest.mark.slow
def test_a_shadow_that_changes_the_light_bounced_onto_a_ceiling_moves_like_finite_differences():
    """The camera sees only the ceiling (:func:`_ceiling_scene`; the card stays put, so nothing but the shadow's
    visibility moves with the light): the light's x, y, z gradient (32 backward passes at 16 spp) against central
    differences (1024 spp, step 0.03, mean of seeds 7 to 10) within four standard errors of their difference.
    Measured: 218.8 +- 0.6, 1715.5 +- 0.8, 777.1 +- 0.9 against 217.8 / 218.1 / 217.8 / 217.4, 1717.6 / 1716.4 /
    1716.1 / 1717.6, 775.7 / 776.6 / 776.7 / 777.3;
    without the deep term 216.9, 1677.5, 764.1 (the shadow's share is small here, but many standard errors)."""
    first = camera_path_vertices(_trace_scene(_ceiling_scene(CEILING_LIGHT)),
                                 lambda uv: _rays_through(CEILING_CAMERA, uv, F64),
                                 torch.ones(SIZE, SIZE, 3, dtype=F64), 3, 5, torch.Generator().manual_seed(0))
    assert len(first) == SIZE * SIZE and bool((first.face >= 2).all() & (first.face <= 3).all())  # the ceiling
    grads, plain = [], []
    for s in range(100, 132):
        for deep, out in ((True, grads), (False, plain)):
            if not deep and s >= 104:
                continue
            light = CEILING_LIGHT.clone().requires_grad_()
            _ceiling_loss(light, 1, seed_grad=s, spp_grad=16, deep_shadow_edges=deep).backward()
            out.append(light.grad)
    grads, plain = torch.stack(grads), torch.stack(plain).mean(0)
    fds = torch.tensor([[float((_ceiling_loss(CEILING_LIGHT + step, 1024, seed, dtype=FD_DTYPE)
                                - _ceiling_loss(CEILING_LIGHT - step, 1024, seed, dtype=FD_DTYPE)) / 0.06)
                         for step in 0.03 * torch.eye(3, dtype=F64)] for seed in FD_SEEDS], dtype=F64)
    for k in range(3):
        fd, standard_error = _within_standard_errors(grads, fds, k)
        assert abs(float(grads[:, k].mean()) - fd) < 4 * standard_error, (k, float(grads[:, k].mean()), fd)
        if k == 1:  # the height: the shadow's share is largest
            assert abs(float(plain[k]) - fd) > 16 * standard_error, (k, float(plain[k]), fd)
