"""The path tracer (``integrator="path"`` / ``"direct"``): radiance against closed forms and the rasterizer,
and path-replay gradients against finite differences with the same random numbers."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material
from lumigrad.shading.envmap import envmap_lookup

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])


def _lambert(rgb, dtype=F64):
    """A pure Lambertian material: ior 1 gives the glTF coat no reflectance (f0 = 0)."""
    rgb = torch.as_tensor(rgb, dtype=dtype)
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=dtype)]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def _floor(size=2.0, y=0.0, dtype=F64):
    s = size
    return torch.tensor([[-s, y, -s], [s, y, -s], [s, y, s], [-s, y, s]], dtype=dtype)


def _top_camera(size=16, dtype=F64):
    return lg.Camera.look_at([0.0, 2.0, 0.01], [0.0, 0.0, 0.0], fov_y=0.6, width=size, height=size).to(dtype=dtype)


def _point_lit_floor(albedo=(0.5, 0.5, 0.5), intensity=4.0):
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_floor(), QUAD, _lambert(albedo)))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 1.0, 0.0], dtype=F64),
                                         torch.as_tensor(intensity, dtype=F64)))
    return scene


@pytest.mark.parametrize("integrator", ["path", "direct"])
def test_a_point_lit_floor_matches_the_rasterizer(integrator):
    """Direct light from a point light has a closed form, which the rasterizer evaluates at pixel centres;
    the path tracer jitters inside pixels, so compare smooth pixel averages."""
    scene, cam = _point_lit_floor(), _top_camera()
    traced = lg.render(scene, cam, integrator=integrator, spp=16).rgb
    raster = lg.render(scene, cam, use_antialias=False, background=0.0).rgb
    assert torch.allclose(traced.mean(), raster.mean(), rtol=5e-3)
    centre = (slice(6, 10), slice(6, 10))
    assert torch.allclose(traced[centre].mean(), raster[centre].mean(), rtol=5e-3)


def test_a_diffuse_floor_under_a_constant_sky_reflects_albedo_times_sky():
    """White furnace of a plane: every point sees the upper hemisphere of a uniform sky, so L = albedo x sky,
    by light sampling and BSDF sampling combined with MIS."""
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_floor(50.0), QUAD, _lambert((0.3, 0.6, 0.9))))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 2.0, dtype=F64)))
    image = lg.render(scene, _top_camera(), integrator="path", spp=32, max_depth=3).rgb
    expected = 2.0 * torch.tensor([0.3, 0.6, 0.9], dtype=F64)
    assert torch.allclose(image.reshape(-1, 3).mean(0), expected, rtol=0.02)


def test_rays_that_miss_see_the_environment_and_no_coverage():
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_floor(0.2), QUAD, _lambert((0.5, 0.5, 0.5))))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 0.7, dtype=F64)))
    out = lg.render(scene, _top_camera(), integrator="path", spp=4)
    assert torch.allclose(out.rgb[0, 0], torch.full((3,), 0.7, dtype=F64))
    assert out.alpha[0, 0, 0] == 0 and out.alpha[8, 8, 0] == 1
    hidden = lg.render(scene, _top_camera(), integrator="path", spp=4, hide_emitters=True)
    assert torch.all(hidden.rgb[0, 0] == 0)


@pytest.mark.parametrize("fused", [True, False])
def test_a_scene_of_nothing_but_the_sky_renders_it(fused):
    """No mesh, an environment map (a Mitsuba file with an ``envmap`` alone renders so): the same image, coverage
    and texel gradients as with a speck of a mesh behind the camera, in the map's float64, and near the map's
    lookup at the pixel centres; a scene with nothing at all is still refused."""
    g = torch.Generator().manual_seed(3)
    texels = torch.rand(8, 16, 3, generator=g, dtype=F64, requires_grad=True)
    cam = lg.Camera.look_at([0.0, 0.0, 0.0], [0.3, 0.2, 1.0], fov_y=1.0, width=8, height=6).to(dtype=F64)
    integrator = lg.integrators.PathIntegrator(max_depth=4, use_fused_kernel=fused)
    weights = torch.rand(6, 8, 3, generator=g, dtype=F64)
    images, grads = [], []
    for speck in (False, True):
        scene = lg.Scene()
        scene.add_light("sky", lg.EnvironmentLight(texels))
        scene.film = lg.Film(pixel_filter=lg.cameras.PixelFilter("tent", radius=1e-3))  # (near the centres)
        if speck:
            verts, faces = lg.geometry.icosphere(1, dtype=F64)
            scene.add_mesh("speck", lg.SceneMesh(verts * 0.01 + torch.tensor([0.0, 0.0, -5.0], dtype=F64), faces))
        out = lg.render(scene, cam, integrator=integrator, spp=16, seed=2)
        assert out.rgb.dtype == F64 and torch.all(out.alpha == 0)
        images.append(out.rgb)
        grads.append(torch.autograd.grad((out.rgb * weights).sum(), texels)[0])
    assert torch.equal(images[0], images[1]) and torch.equal(grads[0], grads[1])
    dirs = cam.rays(lg.conventions.pixel_centers(6, 8, dtype=F64).reshape(-1, 2)) @ cam.world_to_cam[:3, :3]
    at_centres = envmap_lookup(texels, dirs / dirs.norm(dim=-1, keepdim=True)).reshape(6, 8, 3)
    assert float((images[0] - at_centres).abs().max()) < 2e-3  # (the tent's samples lie near the centres)
    # each pixel's bilinear weights sum to 1 (up to the filter's normaliser: its adjoint splats w / Z per sample)
    assert abs(float(grads[0].sum()) - float(weights.sum())) < 1e-3 * float(weights.sum())
    with pytest.raises(ValueError, match="nothing to draw"):
        lg.render(lg.Scene(), cam, integrator=integrator)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_the_sky_alone_gives_empty_aovs_on_the_maps_device(device):
    """A sky-only scene's buffers: no surface anywhere (coverage 0, finite zeros), on the map's device (the empty
    triangle tables follow it there: a CUDA map with CPU tables failed the BVH's device check); and a frame in
    which no ray meets the scene's mesh (its buffers had raised in the material lookup of no rows)."""
    scene = lg.Scene()
    scene.add_light("sky", lg.EnvironmentLight(torch.rand(8, 16, 3, dtype=torch.float32, device=device)))
    cam = lg.Camera.look_at([0.0, 0.0, 0.0], [0.3, 0.2, 1.0], fov_y=1.0, width=8, height=6).to(device=device)
    for name in ("path", "direct"):
        out = lg.render(scene, cam, integrator=name, spp=2, aovs=("depth", "normal", "position", "albedo", "mask"))
        assert out.rgb.device.type == device and float(out.rgb.min()) > 0 and float(out.alpha.max()) == 0
        for key, buffer in out.aovs.items():
            assert bool(torch.isfinite(buffer).all()) and float(buffer.abs().max()) == 0, key
    verts, faces = lg.geometry.icosphere(1, device=device)  # behind the camera: no ray meets it (this raised too)
    scene.add_mesh("behind", lg.SceneMesh(verts + torch.tensor([0.0, 0.0, -5.0], device=device), faces))
    out = lg.render(scene, cam, integrator="path", spp=2, aovs=("depth", "albedo"))
    assert out.aovs["depth"].shape == (6, 8, 1) and out.aovs["albedo"].shape == (6, 8, 3)
    assert float(out.alpha.max()) == 0 and float(out.aovs["albedo"].abs().max()) == 0


def test_an_occluder_casts_a_shadow():
    scene = _point_lit_floor()
    blocker = _floor(0.3, y=0.5)
    scene.add_mesh("blocker", lg.SceneMesh(blocker, QUAD, _lambert((0.0, 0.0, 0.0)), double_sided=True))
    cam = lg.Camera.look_at([0.0, 2.0, 2.0], [0.0, 0.0, 0.0], fov_y=0.9, width=24, height=24).to(dtype=F64)
    lit = lg.render(_point_lit_floor(), cam, integrator="direct", spp=4).rgb
    shadowed = lg.render(scene, cam, integrator="direct", spp=4).rgb
    # The point below the light is in the blocker's shadow (and hidden by it); far corners are lit in both.
    assert shadowed.sum() < 0.8 * lit.sum()
    assert torch.allclose(shadowed[-1, 0], lit[-1, 0], rtol=1e-6)


def test_an_area_light_agrees_with_its_exact_irradiance():
    """A floor under a square lamp: by MIS of lamp and BSDF samples the pixel average approaches the average
    of albedo / pi x the exact polygon irradiance at the points the pixels see."""
    albedo = 0.8
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_floor(1.0), QUAD, _lambert((albedo,) * 3)))
    lamp = torch.tensor([[-0.3, 1.0, -0.3], [0.3, 1.0, -0.3], [0.3, 1.0, 0.3], [-0.3, 1.0, 0.3]], dtype=F64)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.tensor([5.0, 5.0, 5.0], dtype=F64)))
    cam = lg.Camera.look_at([0.0, 3.0, 0.001], [0.0, 0.0, 0.0], fov_y=0.5, width=8, height=8).to(dtype=F64)
    image = lg.render(scene, cam, integrator="direct", spp=256, hide_emitters=True).rgb
    # The points the pixel centres see (the whole image is floor), and their exact irradiance.
    out = lg.render(scene, cam, aovs=("position",), use_antialias=False)
    points = out.aovs["position"].reshape(-1, 3)
    normal = torch.tensor([0.0, 1.0, 0.0], dtype=F64).expand_as(points)
    # the lamp faces down (its triangles wind so that their normal is -y)
    E = lg.shading.polygon_irradiance(points, normal, lamp.flip(0), torch.tensor([5.0], dtype=F64))
    expected = albedo / math.pi * E.mean()
    assert torch.allclose(image.mean(), expected, rtol=0.03)


def _two_walls(albedo, intensity, sky=None):
    scene = lg.Scene()
    wall = torch.tensor([[-2.0, 0, -1], [2, 0, -1], [2, 3, -1], [-2, 3, -1]], dtype=F64)
    scene.add_mesh("floor", lg.SceneMesh(_floor(), QUAD, _lambert(albedo), double_sided=True))
    scene.add_mesh("wall", lg.SceneMesh(wall, QUAD, _lambert((0.8, 0.2, 0.2)), double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 1.0, 0.0], dtype=F64), intensity))
    if sky is not None:
        scene.add_light("sky", lg.EnvironmentLight(sky))
    return scene


def test_path_replay_gradients_match_finite_differences_with_the_same_samples():
    """With the backward pass on the forward's samples (seed_grad = seed), the estimate is a differentiable
    function of the parameters that do not move visibility: its gradient equals central differences."""
    cam = lg.Camera.look_at([0.0, 2.0, 3.0], [0.0, 0.5, 0.0], fov_y=0.9, width=16, height=16).to(dtype=F64)
    albedo = torch.tensor([0.5, 0.6, 0.7], dtype=F64, requires_grad=True)
    intensity = torch.tensor(4.0, dtype=F64, requires_grad=True)
    sky = torch.rand(4, 8, 3, generator=torch.Generator().manual_seed(0), dtype=F64).requires_grad_(True)
    kw = dict(integrator="path", spp=4, seed=3, max_depth=4, seed_grad=3)

    def loss(a, i, s):
        return lg.render(_two_walls(a, i, s), cam, **kw).rgb.square().sum()

    loss(albedo, intensity, sky).backward()
    eps = 1e-5
    for k in range(3):
        step = torch.zeros(3, dtype=F64)
        step[k] = eps
        fd = (loss(albedo.detach() + step, intensity.detach(), sky.detach())
              - loss(albedo.detach() - step, intensity.detach(), sky.detach())) / (2 * eps)
        assert torch.allclose(albedo.grad[k], fd, rtol=5e-3), (k, albedo.grad[k], fd)
    fd = (loss(albedo.detach(), intensity.detach() + eps, sky.detach())
          - loss(albedo.detach(), intensity.detach() - eps, sky.detach())) / (2 * eps)
    assert torch.allclose(intensity.grad, fd, rtol=5e-3)
    texel = (1, 3, 0)
    step = torch.zeros_like(sky)
    step[texel] = eps
    fd = (loss(albedo.detach(), intensity.detach(), sky.detach() + step)
          - loss(albedo.detach(), intensity.detach(), sky.detach() - step)) / (2 * eps)
    assert torch.allclose(sky.grad[texel], fd, rtol=2e-2, atol=1e-6)


def test_gradients_of_an_area_lamp_and_its_radiance():
    cam = lg.Camera.look_at([0.0, 3.0, 0.001], [0.0, 0.0, 0.0], fov_y=0.5, width=8, height=8).to(dtype=F64)
    lamp = torch.tensor([[-0.3, 1.0, -0.3], [0.3, 1.0, -0.3], [0.3, 1.0, 0.3], [-0.3, 1.0, 0.3]], dtype=F64)
    radiance = torch.tensor([5.0, 4.0, 3.0], dtype=F64, requires_grad=True)

    def loss(r):
        scene = lg.Scene()
        scene.add_mesh("floor", lg.SceneMesh(_floor(1.0), QUAD, _lambert((0.8,) * 3)))
        scene.add_light("lamp", lg.AreaLight(lamp, QUAD, r))
        return lg.render(scene, cam, integrator="path", spp=4, seed=1, seed_grad=1, max_depth=3).rgb.sum()

    loss(radiance).backward()
    eps = 1e-5
    for k in range(3):
        step = torch.zeros(3, dtype=F64)
        step[k] = eps
        fd = (loss(radiance.detach() + step) - loss(radiance.detach() - step)) / (2 * eps)
        assert torch.allclose(radiance.grad[k], fd, rtol=1e-3), (k, radiance.grad[k], fd)


def test_decorrelated_gradients_are_unbiased_on_average():
    """With seed_grad independent of the forward, gradients of a linear loss average to the true gradient."""
    cam = lg.Camera.look_at([0.0, 2.0, 3.0], [0.0, 0.5, 0.0], fov_y=0.9, width=8, height=8).to(dtype=F64)
    grads = []
    for seed in range(16):
        albedo = torch.tensor([0.5, 0.6, 0.7], dtype=F64, requires_grad=True)
        lg.render(_two_walls(albedo, 4.0), cam, integrator="path", spp=16, seed=seed, max_depth=4).rgb.sum().backward()
        grads.append(albedo.grad)
    reference = torch.zeros(3, dtype=F64)
    eps = 1e-4
    for k in range(3):
        step = torch.zeros(3, dtype=F64)
        step[k] = eps
        base = torch.tensor([0.5, 0.6, 0.7], dtype=F64)
        total = 0.0
        for seed in range(16):
            kw = dict(integrator="path", spp=16, seed=100 + seed, max_depth=4)
            total += (lg.render(_two_walls(base + step, 4.0), cam, **kw).rgb.sum()
                      - lg.render(_two_walls(base - step, 4.0), cam, **kw).rgb.sum()) / (2 * eps)
        reference[k] = total / 16
    assert torch.allclose(torch.stack(grads).mean(0), reference, rtol=0.05)


def test_bad_settings_and_scenes_are_refused():
    scene, cam = _point_lit_floor(), _top_camera()
    with pytest.raises(ValueError, match="max_depth must be a positive int or -1"):
        lg.render(scene, cam, integrator="path", max_depth=0)
    with pytest.raises(ValueError, match="spp"):
        lg.render(scene, cam, integrator="path", spp=0)
    with pytest.raises(ValueError, match="has no AOV"):
        lg.render(scene, cam, integrator="path", aovs=("face_id",))
    scene.add_light("sh", lg.SHLight(torch.zeros(9, 3, dtype=F64)))
    with pytest.raises(ValueError, match="SHLight"):
        lg.render(scene, cam, integrator="path")
    scene = _point_lit_floor()
    with torch.no_grad():
        scene.meshes["floor"].verts[0, 0] = float("nan")
    with pytest.raises(ValueError, match="scene parameter meshes.floor.verts contains NaN"):
        lg.render(scene, cam, integrator="path")


def test_unlimited_depth_ends_by_russian_roulette():
    scene, cam = _point_lit_floor(), _top_camera(8)
    image = lg.render(scene, cam, integrator="path", spp=2, max_depth=-1, rr_depth=1).rgb
    assert torch.isfinite(image).all() and image.mean() > 0


def _glowing_card(to_world):
    """An emissive card (radiance 1) in the plane z = 0 in front of black: with max_depth 1 a pixel's value is
    the fraction of it the card covers."""
    scene = lg.Scene()
    card = torch.tensor([[-0.6, -0.4, 0.0], [0.5, -0.4, 0.0], [0.5, 0.45, 0.0], [-0.6, 0.45, 0.0]], dtype=F64)
    glow = Material(base_color_factor=torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64),
                    emissive_factor=torch.ones(3, dtype=F64))
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, glow, double_sided=True, to_world=to_world))
    return scene, card


def _column_weighted_loss(image):
    columns = torch.arange(image.shape[-2], dtype=image.dtype) + 0.5
    return (image[..., 0] * columns).sum()


def _expected_column_derivative(card, cam):
    """d/ds of sum over pixels of (column centre x coverage) when the card moves by s along +x: its vertical
    edges sweep whole columns, the left one taking coverage from its column, the right one adding to its own."""
    uv = lg.cameras.projection.project_points(lg.cameras.projection.transform_points(card, cam.world_to_cam),
                                              cam.K)
    left, right = uv[:, 0].min(), uv[:, 0].max()
    height = uv[:, 1].max() - uv[:, 1].min()
    du_ds = cam.K[0, 0] * cam.world_to_cam[0, 0] / 4.0  # u = fx x_c / z_c + cx, z_c = 4, x_c = R[0] . X + t_0
    return height * (right.floor() - left.floor()) * du_ds


@pytest.mark.parametrize("moving", ["object", "camera"])
def test_edge_sampling_gives_the_silhouette_gradient(moving):
    s = torch.tensor(0.0, dtype=F64, requires_grad=True)
    eye = torch.tensor([0.0, 0.0, -4.0], dtype=F64)
    shift = torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)])
    if moving == "object":
        to_world = torch.eye(4, dtype=F64).index_put((torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3])), shift)
        cam = lg.Camera.look_at(eye, torch.zeros(3, dtype=F64), fov_y=0.5, width=32, height=32)
    else:  # the camera moves the other way: the same image motion
        to_world = None
        cam = lg.Camera.look_at(eye - shift, -shift, fov_y=0.5, width=32, height=32)
    scene, card = _glowing_card(to_world)
    image = lg.render(scene, cam, integrator="path", spp=4, max_depth=1, edge_samples=20000).rgb
    _column_weighted_loss(image).backward()
    expected = _expected_column_derivative(card, cam.to(dtype=F64)).detach()
    assert torch.allclose(s.grad, expected, rtol=0.03), (s.grad, expected)
    no_edges = torch.tensor(0.0, dtype=F64, requires_grad=True)
    moved = torch.eye(4, dtype=F64).index_put((torch.tensor([0]), torch.tensor([3])), no_edges.reshape(1))
    scene, _ = _glowing_card(moved)
    cam = lg.Camera.look_at(eye, torch.zeros(3, dtype=F64), fov_y=0.5, width=32, height=32)
    _column_weighted_loss(lg.render(scene, cam, integrator="path", spp=4, max_depth=1, edge_samples=0).rgb).backward()
    assert no_edges.grad is None or no_edges.grad.abs() < 1e-9  # the interior alone sees no motion here


def test_a_lit_card_over_a_floor_moves_like_finite_differences():
    """Silhouette gradient of a shaded card against a shaded floor (occlusion edges), by edge sampling, against
    central differences of well-converged renders. The light sits at the eye, so the card's shadow hides behind
    it (shadow edges, secondary visibility: tests/raytrace/test_shadow_edges.py)."""
    def scene_for(s):
        scene = lg.Scene()
        floor = torch.tensor([[-3, 0, -3], [3, 0, -3], [3, 0, 3], [-3, 0, 3]], dtype=F64)
        scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, _lambert((0.3, 0.5, 0.7)), double_sided=True))
        card = torch.tensor([[-0.5, 0.5, -0.5], [0.5, 0.5, -0.5], [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5]], dtype=F64)
        pose = torch.eye(4, dtype=F64).index_put((torch.tensor([0]), torch.tensor([3])), s.reshape(1))
        scene.add_mesh("card", lg.SceneMesh(card, QUAD, _lambert((0.9, 0.8, 0.1)), double_sided=True, to_world=pose))
        scene.add_light("key", lg.PointLight(torch.tensor([0.0, 3.0, -3.0], dtype=F64), torch.tensor(20.0, dtype=F64)))
        return scene

    cam = lg.Camera.look_at(torch.tensor([0.0, 3.0, -3.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.6,
                            width=24, height=24)
    weight = (torch.arange(24, dtype=F64) + 0.5)[None, :, None]

    def loss(s, spp, **kw):
        return (lg.render(scene_for(s), cam, integrator="direct", spp=spp, **kw).rgb * weight).sum()

    s = torch.tensor(0.0, dtype=F64, requires_grad=True)
    loss(s, 4, edge_samples=20000).backward()
    eps = 0.05
    fd = (loss(torch.tensor(eps, dtype=F64), 512) - loss(torch.tensor(-eps, dtype=F64), 512)) / (2 * eps)
    assert torch.allclose(s.grad, fd, rtol=0.03), (s.grad, fd)


def test_the_rasterizer_casts_shadows_with_shadow_rays():
    """``shadows=True``: the hybrid raster renderer matches the path tracer's direct light with an occluder."""
    scene = _point_lit_floor()
    scene.lights["key"].position = torch.tensor([0.3, 1.0, 0.2], dtype=F64)
    scene.add_mesh("blocker", lg.SceneMesh(_floor(0.3, y=0.5), QUAD, _lambert((0.0, 0.0, 0.0)), double_sided=True))
    cam = lg.Camera.look_at([0.0, 2.0, 2.0], [0.0, 0.0, 0.0], fov_y=0.9, width=24, height=24).to(dtype=F64)
    plain = lg.render(scene, cam, use_antialias=False, background=0.0).rgb
    shadowed = lg.render(scene, cam, use_antialias=False, background=0.0, shadows=True).rgb
    traced = lg.render(scene, cam, integrator="direct", spp=64).rgb
    assert shadowed.sum() < 0.9 * plain.sum()
    assert torch.allclose(shadowed.mean(), traced.mean(), rtol=0.02)
    dark = shadowed.sum(-1) == 0
    assert dark.any() and torch.allclose(traced[dark].mean(), torch.zeros((), dtype=F64), atol=0.02)


def test_a_glass_ball_in_a_white_furnace_disappears():
    """A lossless dielectric (transmission 1, white, nearly smooth) under a uniform sky neither adds nor removes
    light: every pixel that sees the ball shows the sky's radiance (refraction, reflection, total internal
    reflection and Russian roulette together conserve energy)."""
    v, f = lg.geometry.icosphere(3)
    scene = lg.Scene()
    glass = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=0.05, ior=1.5,
                     transmission_factor=torch.tensor(1.0, requires_grad=True))
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 1.0)))
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.5, width=16, height=16)
    out = lg.render(scene, cam, integrator="path", spp=32, max_depth=32)
    inside = out.alpha[..., 0] == 1
    assert inside.sum() > 100
    assert torch.allclose(out.rgb[inside].mean(0), torch.ones(3), atol=0.01)
    out.rgb.mean().backward()
    assert torch.isfinite(glass.transmission_factor.grad)


def test_light_position_gradients_by_path_replay():
    """A point light's position (through next-event estimation) against central differences, without
    occluders (moving shadow edges: tests/raytrace/test_shadow_edges.py)."""
    cam = lg.Camera.look_at([0.0, 2.0, 3.0], [0.0, 0.5, 0.0], fov_y=0.9, width=12, height=12).to(dtype=F64)
    position = torch.tensor([0.3, 1.0, 0.2], dtype=F64, requires_grad=True)

    def loss(p):
        scene = _point_lit_floor()
        scene.lights["key"].position = p
        return lg.render(scene, cam, integrator="direct", spp=4, seed=5, seed_grad=5).rgb.square().sum()

    loss(position).backward()
    eps = 1e-5
    for k in range(3):
        step = torch.zeros(3, dtype=F64)
        step[k] = eps
        fd = (loss(position.detach() + step) - loss(position.detach() - step)) / (2 * eps)
        assert torch.allclose(position.grad[k], fd, rtol=1e-3, atol=1e-6), (k, position.grad[k], fd)


def test_hostile_scenes_give_finite_images_and_gradients():
    cam = _top_camera(8)
    # no light at all, and a degenerate (zero-area) triangle among the faces
    verts = torch.cat([_floor(), torch.tensor([[0.0, 0.5, 0.0], [1.0, 0.5, 0.0], [2.0, 0.5, 0.0]], dtype=F64)])
    faces = torch.cat([QUAD, torch.tensor([[4, 5, 6]])])
    albedo = torch.tensor([0.5, 0.5, 0.5], dtype=F64, requires_grad=True)
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(verts, faces, _lambert(albedo)))
    out = lg.render(scene, cam, integrator="path", spp=2)
    assert torch.all(out.rgb == 0)
    out.rgb.sum().backward()
    assert torch.all(albedo.grad == 0)
    # one blinding texel in the sky: fireflies, but finite
    sky = torch.full((8, 16, 3), 0.1, dtype=F64)
    sky[2, 3] = 1e30
    scene.add_light("sky", lg.EnvironmentLight(sky))
    image = lg.render(scene, cam, integrator="path", spp=2).rgb
    assert torch.isfinite(image).all()


def test_the_mitsuba_cornell_box_loads_and_path_traces():
    """``../shared/data/cornell-box-mitsuba3``: read from its XML (spectra converted as Mitsuba's RGB mode does)
    and path traced from its own sensor, scaled down: the lamp is the brightest thing, the walls bleed colour."""
    from pathlib import Path

    from lumigrad.fitting.problem import scale_camera

    xml = Path(__file__).resolve().parents[3] / "shared" / "data" / "cornell-box-mitsuba3" / "cornell_box.xml"
    if not xml.exists():
        pytest.skip("the shared Cornell box is not beside the checkout")
    with pytest.warns(Warning):
        scene = lg.io.load(xml)
    cam = scale_camera(scene.cameras["sensor"], 0.125)
    image = lg.render(scene, cam, integrator="path", spp=8, max_depth=6).rgb
    assert image.shape == (32, 32, 3) and torch.isfinite(image).all()
    left, right = image[12:20, 1:4].mean((0, 1)), image[12:20, -4:-1].mean((0, 1))
    assert left[0] > 2 * left[1] and right[1] > 2 * right[0]  # red wall on the left, green on the right
    assert image[2:4, 12:20].max() > 5 * image.mean()  # the lamp under the ceiling


def test_first_hit_aovs_match_the_rasterizer_and_carry_gradients():
    """Depth, normal, position, albedo and mask of the first hit, as the rasterizer gives them (inside the
    silhouette, where a pixel's jittered rays all see the same smooth surface)."""
    scene, cam = _point_lit_floor(), _top_camera()
    names = ("depth", "normal", "position", "albedo", "mask")
    traced = lg.render(scene, cam, integrator="path", spp=64, aovs=names).aovs
    raster = lg.render(scene, cam, aovs=names, use_antialias=False, background=0.0).aovs
    for name in names:
        assert traced[name].shape == raster[name].shape, name
        assert torch.allclose(traced[name][4:12, 4:12], raster[name][4:12, 4:12], atol=0.02), name
    verts = scene.meshes["floor"].verts.detach().clone().requires_grad_(True)
    scene.meshes["floor"].verts = verts
    lg.render(scene, cam, integrator="path", spp=2, aovs=("depth",)).aovs["depth"].sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0


def test_normal_maps_shade_as_in_the_rasterizer():
    """A floor whose normal map tilts its normals (smoothly, so pixel averages and pixel centres agree): the
    path tracer's direct light equals the rasterizer's, and differs clearly from the unmapped floor; the
    normal texels get gradients by path replay."""
    H = 8
    v = (torch.arange(H, dtype=F64) + 0.5) / H
    tilt = 0.4 * torch.sin(2 * math.pi * v)[:, None].expand(H, H)
    normal_texels = torch.stack([0.5 + 0.5 * tilt, 0.5 + 0.25 * tilt.T, torch.ones(H, H, dtype=F64)], -1)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=F64)

    def scene(texels):
        material = Material(base_color_factor=torch.tensor([0.6, 0.6, 0.6, 1.0], dtype=F64), metallic_factor=0.0,
                            roughness_factor=1.0, ior=1.0, normal_texture=texels)
        s = lg.Scene()
        s.add_mesh("floor", lg.SceneMesh(_floor(), QUAD, material, uv=uv, uv_faces=QUAD))
        s.add_light("key", lg.PointLight(torch.tensor([0.3, 1.0, 0.2], dtype=F64), torch.tensor(4.0, dtype=F64)))
        return s

    cam = _top_camera()
    traced = lg.render(scene(normal_texels), cam, integrator="direct", spp=16).rgb
    raster = lg.render(scene(normal_texels), cam, use_antialias=False, background=0.0).rgb
    flat = lg.render(_point_lit_floor(albedo=(0.6, 0.6, 0.6)), cam, use_antialias=False, background=0.0).rgb
    blocks = lambda img: img[..., 0].reshape(4, 4, 4, 4).mean((1, 3))  # 4 x 4 pixel blocks
    assert (blocks(raster) - blocks(flat)).abs().max() > 0.05 * blocks(flat).mean()  # the map matters
    assert torch.allclose(blocks(traced), blocks(raster), rtol=0.02)
    texels = normal_texels.clone().requires_grad_()
    lg.render(scene(texels), cam, integrator="direct", spp=2).rgb.sum().backward()
    assert torch.isfinite(texels.grad).all() and texels.grad.abs().sum() > 0


def test_a_medium_with_a_plain_number_g_assigned_after_the_material_renders():
    """``HomogeneousMedium(g=0.0)`` keeps ``g`` a Python number; set as a material's ``interior`` after the
    material was built (no conversion), the path tracer's check of ``|g| < 1`` read it as a tensor and raised
    AttributeError."""
    from lumigrad.shading import HomogeneousMedium, Material
    medium = HomogeneousMedium(sigma_a=torch.tensor([0.1, 0.1, 0.1]), sigma_s=torch.tensor([1.0, 1.0, 1.0]))
    assert not isinstance(medium.g, torch.Tensor)
    scene = lg.Scene()
    v = torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    scene.add_mesh("slab", lg.SceneMesh(v, torch.tensor([[0, 2, 1], [0, 3, 2]]), Material(transmission_factor=1.0)))
    scene.meshes["slab"].material.interior = medium
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0])))
    cam = lg.Camera.look_at([0.0, 2.0, 0.01], [0.0, 0.0, 0.0], fov_y=0.6, width=4, height=4)
    out = lg.render(scene, cam, integrator="path", spp=2, max_depth=3)
    assert torch.isfinite(out.rgb).all()


@pytest.mark.parametrize("kind", ["gaussian", "mitchell", "lanczos"])
def test_wide_pixel_filters_keep_coverage_and_aovs_normalised(kind):
    """With a pixel filter, alpha and the AOVs are the mean over the rays the filter placed (unweighted): a quad
    filling the view gives coverage exactly 1 and its depth exactly, where weighing by the filter's (signed)
    weights gave coverage in [-0.8, 1.9] at 4 spp; the colour keeps the weights (``test_pixel_filter*``)."""
    quad = torch.tensor([[-5.0, -5.0, 0.0], [5.0, -5.0, 0.0], [5.0, 5.0, 0.0], [-5.0, 5.0, 0.0]])
    scene = lg.Scene()
    scene.add_mesh("wall", lg.SceneMesh(quad, torch.tensor([[0, 1, 2], [0, 2, 3]]), Material(), double_sided=True))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, 0.0, 1.0])))
    scene.film = lg.Film(pixel_filter=kind)
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.5, width=8, height=6)
    out = lg.render(scene, cam, integrator="direct", spp=4, aovs=("depth", "mask"))
    assert torch.equal(out.alpha, torch.ones_like(out.alpha))
    assert torch.equal(out.aovs["mask"], torch.ones_like(out.aovs["mask"]))
    torch.testing.assert_close(out.aovs["depth"], torch.full_like(out.aovs["depth"], 3.0), atol=1e-5, rtol=0)
