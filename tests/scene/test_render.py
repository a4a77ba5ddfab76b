"""render(scene, camera): agreement with the functional pipeline, batching, sidedness, lights, film, lens."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material, envmap_lookup, form_image, sample_material, shade_direct, shade_environment
from lumigrad.shading.lights import point_light

from ..conftest import uv_sphere


def _sphere(n=12, radius=1.0):
    return uv_sphere(n, 2 * n, radius, dtype=torch.float32)


def _camera(n=1, size=24):
    angles = torch.arange(n) * 1.1
    eye = torch.stack([3 * torch.sin(angles), 0.4 * torch.ones(n), -3 * torch.cos(angles)], -1)
    return lg.Camera.look_at(eye, torch.zeros(n, 3), torch.tensor([0.0, 1.0, 0.0]), width=size, height=size,
                             fov_y=0.9)


def test_render_matches_the_functional_pipeline():
    verts, faces = _sphere()
    material = Material(base_color_factor=[0.8, 0.5, 0.3, 1.0], roughness_factor=0.4, metallic_factor=0.2)
    sh = torch.zeros(9, 3)
    sh[0] = 0.3
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, material))
    scene.add_light("key", lg.PointLight([2.0, 2.0, -2.0], 6.0, [1.0, 0.9, 0.8]))
    scene.add_light("sky", lg.SHLight(sh))
    cam = _camera()[0]
    image = lg.render(scene, cam, background=0.25)

    frags = lg.rasterize(verts, faces, cam, cull="back")
    position = lg.interpolate(verts, frags, faces)
    normal = lg.interpolate(lg.vertex_normals(verts, faces), frags, faces)
    m = sample_material(material, shape=frags.mask.shape)
    m["ior"] = material.ior
    eye = -cam.world_to_cam[:3, :3].T @ cam.world_to_cam[:3, 3]
    lights = [point_light(position, torch.tensor([2.0, 2.0, -2.0]), 6.0 * torch.tensor([1.0, 0.9, 0.8]))]
    rgb = shade_direct(position, normal, eye, m, lights, mask=frags.mask) + shade_environment(
        position, normal, eye, m, sh_coeffs=sh, mask=frags.mask)
    cover = frags.mask[..., None].float()
    expected = lg.antialias(torch.cat([rgb * cover + 0.25 * (1 - cover), cover], -1), frags, verts, faces, cam)
    assert torch.allclose(image, expected, atol=1e-5)


def test_batched_cameras_equal_one_render_per_camera():
    verts, faces = _sphere(8)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, Material(roughness_factor=0.6, metallic_factor=0.0)))
    scene.add_light("key", lg.DirectionalLight([-1.0, -1.0, 1.0], 2.0))
    cams = _camera(3)
    batch = lg.render(scene, cams)
    assert batch.shape == (3, 24, 24, 4)
    for k in range(3):
        assert torch.allclose(batch[k], lg.render(scene, cams[k]), atol=1e-6)


def test_single_sided_meshes_are_culled_from_behind_double_sided_ones_are_lit():
    verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])  # front faces towards +z
    behind = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=16, height=16)
    scene = lg.Scene()
    scene.add_mesh("quad", lg.SceneMesh(verts, faces, Material(metallic_factor=0.0, roughness_factor=1.0)))
    scene.add_light("key", lg.PointLight([0.0, 0.0, -2.0], 4.0))  # on the back side
    assert float(lg.render(scene, behind)[..., 3].sum()) == 0
    scene.meshes["quad"].double_sided = True
    image = lg.render(scene, behind)
    assert float(image[8, 8, 3]) == 1 and float(image[8, 8, 0]) > 0.1  # the flipped normal faces the light


def test_area_light_is_drawn_and_lights_like_a_small_lamp():
    floor = torch.tensor([[-2.0, 0, -2], [2, 0, -2], [2, 0, 2], [-2, 0, 2]])
    floor_faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # facing +y
    s = 0.05
    lamp = torch.tensor([[-s, 1.0, -s], [s, 1.0, -s], [s, 1.0, s], [-s, 1.0, s]])
    lamp_faces = torch.tensor([[0, 1, 2], [0, 2, 3]])  # facing -y, towards the floor
    material = Material(base_color_factor=[0.7, 0.7, 0.7, 1.0], metallic_factor=0.0, roughness_factor=1.0)
    radiance = torch.tensor([300.0, 200.0, 100.0])
    cam = lg.Camera.look_at([0.0, 2.5, -2.5], [0.0, 0.0, 0.0], width=32, height=32, fov_y=0.9)

    def scene_with(light):
        scene = lg.Scene()
        scene.add_mesh("floor", lg.SceneMesh(floor, floor_faces, material))
        scene.add_light("lamp", light)
        return scene

    area = lg.render(scene_with(lg.AreaLight(lamp, lamp_faces, radiance)), cam)
    # Equivalent point light: intensity along the normal = radiance x area, falling off with cos at the lamp.
    point = lg.render(scene_with(lg.PointLight([0.0, 1.0, 0.0], 1.0, radiance * (2 * s) ** 2)), cam)
    lit = point[..., 3] > 0
    floor_px = lit & (point[..., 0] > 0.2 * float(point[..., 0].max()))
    ratio = area[..., :3][floor_px] / point[..., :3][floor_px]
    # The point light lacks the lamp's cosine; away from straight below, the area light is dimmer by cos.
    assert float(ratio.max()) == pytest.approx(1.0, abs=0.02) and float(ratio.min()) > 0.3
    # The lamp itself is drawn with its radiance where it covers a pixel (seen from above: its back).
    from_below = lg.Camera.look_at([0.0, 0.0, -0.01], [0.0, 1.0, 0.0], width=16, height=16, fov_y=0.5)
    scene = scene_with(lg.AreaLight(lamp, lamp_faces, radiance))
    seen = lg.render(scene, from_below)
    assert torch.allclose(seen[8, 8, :3], radiance)
    params = scene.trainable("lights.lamp.*")
    lg.render(scene, cam)[..., :3].sum().backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in params.values())


def test_environment_background_and_lighting():
    verts, faces = _sphere(8, 0.5)
    env = torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(0)) + 0.1
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, Material(roughness_factor=0.3, metallic_factor=1.0)))
    scene.add_light("env", lg.EnvironmentLight(env, prefilter_size=(8, 16)))
    cam = _camera(size=20)[0]
    image = lg.render(scene, cam)
    # Background pixels show the map along each pixel's ray.
    uv = lg.conventions.pixel_centers(20, 20)
    d = cam.rays(uv)
    d_world = d @ cam.world_to_cam[:3, :3]
    expected = envmap_lookup(env, d_world)
    background = image[..., 3] == 0
    assert torch.allclose(image[..., :3][background], expected[background], atol=1e-5)
    texels = scene.trainable("lights.env.texels")["lights.env.texels"]
    lg.render(scene, cam, background=0.0)[..., :3].sum().backward()
    assert float(texels.grad.abs().sum()) > 0 and torch.isfinite(texels.grad).all()


def test_film_applies_image_formation_and_lens_distortion_goes_through_the_lens():
    verts, faces = _sphere(8)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, Material(metallic_factor=0.0)))
    scene.add_light("key", lg.DirectionalLight([0.0, -1.0, 1.0], 3.0))
    cam = _camera()[0]
    linear = lg.render(scene, cam)
    scene.film = lg.Film(exposure=torch.tensor(0.5), encode="srgb", tone="reinhard")
    encoded = lg.render(scene, cam)
    assert torch.allclose(encoded[..., :3], form_image(linear[..., :3], exposure=0.5, tone="reinhard", encode="srgb"))
    assert torch.equal(encoded[..., 3], linear[..., 3])
    scene.film = lg.Film()
    bent = lg.Camera(cam.K, cam.world_to_cam, 24, 24, distortion=torch.tensor([-0.2, 0.0, 0.0, 0.0, 0.0]))
    image = lg.render(scene, bent)
    # Barrel distortion pulls the sphere towards the centre: less coverage than the pinhole image.
    assert image.shape == linear.shape and 0 < float(image[..., 3].sum()) < float(linear[..., 3].sum())


def test_transform_gradient_matches_finite_differences():
    """An image loss w.r.t. the mesh's to_world translation, smooth shading and silhouettes both (float64)."""
    verts, faces = _sphere(10)
    verts = verts.double()
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, Material(base_color_factor=torch.tensor(
        [0.9, 0.6, 0.3, 1.0], dtype=torch.float64), roughness_factor=0.5, metallic_factor=0.0)))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, -3.0], dtype=torch.float64), 10.0))
    cam = _camera(size=24)[0].to(dtype=torch.float64)
    weights = torch.rand(24, 24, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss(shift):
        T = torch.eye(4, dtype=torch.float64)
        T = T + torch.zeros(4, 4, dtype=torch.float64).index_put((torch.arange(3), torch.full((3,), 3)), shift)
        scene["meshes.ball.to_world"] = T
        return (lg.render(scene, cam, background=0.1) * weights).sum()

    shift = torch.tensor([0.05, -0.03, 0.02], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(shift), shift)
    h = 1e-4
    with torch.no_grad():
        fd = torch.stack([(loss(shift + h * e) - loss(shift - h * e)) / (2 * h)
                          for e in torch.eye(3, dtype=torch.float64)])
    assert torch.allclose(grad, fd, rtol=2e-3, atol=1e-3 * float(fd.abs().max())), (grad, fd)


def test_environment_light_from_hdr_and_exr_files(tmp_path):
    from lumigrad.io import write_exr, write_hdr

    texels = torch.rand(16, 32, 3, generator=torch.Generator().manual_seed(2)) * 4
    write_exr(tmp_path / "sky.exr", texels, pixel_type="float")
    write_hdr(tmp_path / "sky.hdr", texels)
    exr = lg.io.read_environment(tmp_path / "sky.exr", size=None)
    assert torch.equal(exr.texels, texels)
    small = lg.io.read_environment(tmp_path / "sky.hdr", size=(8, 16), visible=False)
    assert small.texels.shape == (8, 16, 3) and not small.visible
    # RGBE keeps 8 bits of mantissa against the largest channel of a texel: <= 4 / 256 here.
    assert torch.allclose(small.texels, texels.reshape(8, 2, 16, 2, 3).mean((1, 3)), rtol=0, atol=4 / 256)
    write_exr(tmp_path / "grey.exr", texels[..., :1])
    assert lg.io.read_environment(tmp_path / "grey.exr", size=None).texels.shape == (16, 32, 3)
    with pytest.raises(ValueError, match="hdr or .exr"):
        lg.io.read_environment(tmp_path / "sky.png")
