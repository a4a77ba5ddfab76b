"""The raster integrator's AOVs: each buffer against the functional ops, colour unchanged by asking for them,
``render_aovs`` = ``render(...).aovs``, and lens cameras resampling buffers like colour."""

from __future__ import annotations

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import AOV_DOCS, RasterIntegrator
from lumigrad.integrators.raster import _punctual

F64 = torch.float64


def _textured_quad_and_ball(dtype=F64):
    """A textured, double-sided quad (uv) behind a red single-sided ball: two meshes, two materials."""
    scene = lg.Scene()
    quad = torch.tensor([[-2.0, -2.0, 1.0], [2.0, -2.0, 1.0], [2.0, 2.0, 1.0], [-2.0, 2.0, 1.0]], dtype=dtype)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=dtype)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    texture = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    scene.add_mesh("quad", lg.SceneMesh(quad, faces, lg.shading.Material(base_color_texture=texture), uv=uv,
                                        uv_faces=faces, double_sided=True))
    verts, ball_faces = lg.geometry.icosphere(2, dtype=dtype)
    scene.add_mesh("ball", lg.SceneMesh(0.7 * verts, ball_faces, lg.shading.Material(
        base_color_factor=torch.tensor([0.9, 0.1, 0.1, 1.0], dtype=dtype))))
    scene.add_light("key", lg.PointLight(torch.tensor([1.0, 2.0, -3.0], dtype=dtype), 10.0))
    return scene


def _camera(width=40, height=32, dtype=F64, **kw):
    return lg.Camera.look_at(torch.tensor([0.5, 0.4, -3.5], dtype=dtype), torch.zeros(3, dtype=dtype), fov_y=0.9,
                             width=width, height=height, **kw)


def test_every_aov_is_documented_and_shaped():
    scene, cam = _textured_quad_and_ball(), _camera()
    out = lg.render(scene, cam, aovs=RasterIntegrator.aov_names)
    assert set(RasterIntegrator.aov_names) <= set(AOV_DOCS)
    channels = {"depth": 1, "normal": 3, "position": 3, "uv": 2, "albedo": 3, "mask": 1}
    for name, c in channels.items():
        assert out.aovs[name].shape == (32, 40, c) and out.aovs[name].dtype == F64, name
    assert out.aovs["face_id"].shape == (32, 40) and out.aovs["face_id"].dtype == torch.int32


def test_hard_aovs_agree_with_the_functional_ops():
    scene, cam = _textured_quad_and_ball(), _camera()
    out = lg.render(scene, cam, aovs=RasterIntegrator.aov_names, use_antialias=False)
    quad, ball = scene.meshes["quad"], scene.meshes["ball"]
    verts = torch.cat([quad.verts, ball.verts])
    faces = torch.cat([quad.faces, ball.faces + 4])
    frags = lg.rasterize(verts, faces, cam)  # double-sided quad: nothing culled
    covered = frags.mask
    assert torch.equal(out.aovs["face_id"], frags.face_ids)
    assert torch.equal(out.aovs["mask"][..., 0], covered.to(F64)) and torch.equal(out.alpha, out.aovs["mask"])
    position = lg.interpolate(verts, frags, faces)
    assert torch.allclose(out.aovs["position"], position * covered[..., None])
    cam_z = (position @ cam.world_to_cam[2, :3] + cam.world_to_cam[2, 3]) * covered
    assert torch.allclose(out.aovs["depth"][..., 0], cam_z, atol=1e-12)
    assert torch.allclose(out.aovs["depth"], lg.render_geometry(scene, cam, use_antialias=False)["depth"])
    on_quad = covered & (frags.face_ids < 2)
    on_ball = frags.face_ids >= 2
    assert on_quad.sum() > 100 and on_ball.sum() > 100
    uv = lg.interpolate(quad.uv, frags, torch.cat([quad.uv_faces, quad.uv_faces[:1].expand(ball.faces.shape[0], 3)]))
    assert torch.allclose(out.aovs["uv"][on_quad], uv[on_quad]) and float(out.aovs["uv"][on_ball].abs().max()) == 0
    red = torch.tensor([0.9, 0.1, 0.1], dtype=F64)
    assert torch.allclose(out.aovs["albedo"][on_ball], red.expand(int(on_ball.sum()), 3))
    # base colour textures are sRGB-encoded, decoded texel by texel before filtering; magnified: mip level 0
    linear = lg.texture(lg.shading.srgb_decode(quad.material.base_color_texture), uv, filter="bilinear")
    assert torch.allclose(out.aovs["albedo"][on_quad], linear[on_quad], atol=1e-12)
    normal = out.aovs["normal"][on_ball]
    assert torch.allclose(normal.norm(dim=-1), torch.ones(len(normal), dtype=F64))
    assert float(out.aovs["normal"][~covered].abs().max()) == 0


def test_asking_for_aovs_leaves_colour_bit_for_bit_unchanged():
    scene, cam = _textured_quad_and_ball(torch.float32), _camera(dtype=torch.float32)
    plain = lg.render(scene, cam).rgba
    for settings in ({}, {"use_aov_antialias": False}):
        out = lg.render(scene, cam, aovs=RasterIntegrator.aov_names, **settings)
        assert torch.equal(out.rgba, plain)
    hard = lg.render(scene, cam, aovs=("depth", "normal", "mask"), use_aov_antialias=False)
    geometry = lg.render_geometry(scene, cam, use_antialias=False)
    assert all(torch.equal(hard.aovs[k], geometry[k]) for k in geometry)


def test_render_aovs_gives_the_same_buffers_without_shading():
    scene, cam = _textured_quad_and_ball(), _camera()
    for aa in (True, False):
        integrator = RasterIntegrator(use_antialias=aa)
        alone = integrator.render_aovs(scene, cam, RasterIntegrator.aov_names)
        full = integrator.render(scene, cam, aovs=RasterIntegrator.aov_names).aovs
        assert list(alone) == list(full)
        for name in full:
            assert torch.equal(alone[name], full[name]), name


def test_antialiased_aovs_blend_silhouettes_and_carry_visibility_gradients():
    scene, cam = _textured_quad_and_ball(), _camera()
    soft = lg.render(scene, cam, aovs=("mask", "face_id"))
    hard = lg.render(scene, cam, aovs=("mask", "face_id"), use_aov_antialias=False)
    fractional = (soft.aovs["mask"] > 0) & (soft.aovs["mask"] < 1)
    assert fractional.sum() > 10 and torch.equal(soft.alpha, soft.aovs["mask"])
    assert torch.equal(soft.aovs["face_id"], hard.aovs["face_id"])  # indices are never blended
    offset = torch.zeros(3, dtype=F64, requires_grad=True)
    ball = scene.meshes["ball"]
    ball.verts = ball.verts + offset
    depth = lg.render(scene, cam, aovs=("depth",)).aovs["depth"]
    (grad,) = torch.autograd.grad(depth.sum(), offset)
    assert float(grad.abs().sum()) > 0 and torch.isfinite(grad).all()


def test_albedo_is_differentiable_in_the_material():
    scene, cam = _textured_quad_and_ball(), _camera()
    factor = scene.meshes["ball"].material.base_color_factor.clone().requires_grad_(True)
    scene.meshes["ball"].material.base_color_factor = factor
    out = lg.render(scene, cam, aovs=("albedo", "face_id"), use_antialias=False)
    (grad,) = torch.autograd.grad(out.aovs["albedo"].sum(), factor)
    ball_pixels = float((out.aovs["face_id"] >= 2).sum())
    assert torch.allclose(grad, torch.tensor([ball_pixels] * 3 + [0.0], dtype=F64))


def test_lens_cameras_resample_aovs_like_colour():
    scene = _textured_quad_and_ball(torch.float32)
    base = _camera(dtype=torch.float32)
    cam = lg.Camera(base.K, base.world_to_cam, base.width, base.height,
                    distortion=torch.tensor([-0.2, 0.05, 0.0, 0.0, 0.0]))
    names = ("depth", "normal", "mask", "face_id")
    out = lg.render(scene, cam, aovs=names, lens_supersample=1.5)
    pinhole = lg.pinhole_cover(cam, supersample=1.5)
    cover = lg.render(scene, pinhole, aovs=names)
    assert torch.equal(out.rgba, lg.distort_image(cover.rgba, pinhole, cam))
    for name in ("depth", "normal", "mask"):
        assert torch.equal(out.aovs[name], lg.distort_image(cover.aovs[name], pinhole, cam)), name
    ids = lg.raster.distort_index_image(cover.aovs["face_id"], pinhole, cam)
    assert torch.equal(out.aovs["face_id"], ids) and out.aovs["face_id"].shape == (32, 40)
    inside = out.aovs["mask"][..., 0] > 0.999
    assert inside.sum() > 200 and bool((out.aovs["face_id"][inside] >= 0).all())
    assert torch.equal(out.rgba, lg.render(scene, cam, lens_supersample=1.5).rgba)
    only = RasterIntegrator(lens_supersample=1.5).render_aovs(scene, cam, ("face_id",))
    assert torch.equal(only["face_id"], ids)


def test_orthographic_depth_is_the_camera_z():
    verts = torch.tensor([[-1.0, -1.0, 0.5], [1.0, -1.0, 0.5], [1.0, 1.0, 0.5], [-1.0, 1.0, 0.5]], dtype=F64)
    scene = lg.Scene()
    scene.add_mesh("quad", lg.SceneMesh(verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), double_sided=True))
    w2c = lg.Camera.look_at(torch.tensor([0.0, 0.0, -2.0], dtype=F64), torch.zeros(3, dtype=F64)).world_to_cam
    cam = lg.Camera.orthographic(3.0, 16, 16, w2c)
    out = lg.render(scene, cam, aovs=("depth", "normal", "mask"), use_antialias=False)
    inside = out.aovs["mask"][..., 0] > 0
    assert inside.sum() > 50
    assert torch.allclose(out.aovs["depth"][inside], torch.full((int(inside.sum()), 1), 2.5, dtype=F64))
    toward = torch.tensor([0.0, 0.0, -1.0], dtype=F64).expand(int(inside.sum()), 3)
    assert torch.allclose(out.aovs["normal"][inside], toward)


def _images_and_gradients(scene, params, settings, aovs=()):
    """Per entry of ``settings``: the image and the gradients of a weighted sum of it (plus the AOVs') w.r.t.
    ``params``."""
    cam = _camera()
    weights = torch.rand(cam.height, cam.width, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    images, grads = [], []
    for kw in settings:
        out = lg.render(scene, cam, aovs=aovs, **kw)
        ((out.rgb * weights).sum() + sum(out.aovs[a].sum() for a in aovs)).backward()
        grads.append([torch.zeros_like(t) if t.grad is None else t.grad.clone() for t in params])
        images.append(out.rgb.detach())
        for t in params:
            t.grad = None
    return images, grads


@pytest.mark.parametrize("shadows", [False, True])
def test_checkpointed_shading_gives_the_same_image_and_gradients(shadows):
    scene = _textured_quad_and_ball()
    scene.add_light("fill", lg.PointLight(torch.tensor([-2.0, 1.0, -2.0], dtype=F64), 3.0))
    scene.add_light("sky", lg.SHLight(torch.rand(9, 3, generator=torch.Generator().manual_seed(2), dtype=F64)))
    params = [t for t in scene.parameters().values() if t.is_floating_point()]
    for t in params:
        t.requires_grad_(True)
    images, grads = _images_and_gradients(scene, params, [dict(checkpoint_shading=c, shadows=shadows) for c in
                                                          (False, True)], aovs=("albedo",))
    torch.testing.assert_close(images[1], images[0], rtol=0, atol=0)
    assert sum(float(g.abs().sum()) for g in grads[0]) > 0
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)


def test_checkpoint_shading_must_be_a_bool():
    with pytest.raises(TypeError, match="checkpoint_shading must be a bool"):
        RasterIntegrator(checkpoint_shading=1)


def test_fused_lights_give_the_reference_image_and_gradients():
    """Point, ranged point, spot and directional lights in one fused pass (default) against the per-light
    PyTorch reference."""
    scene = _textured_quad_and_ball()
    scene.add_light("fill", lg.PointLight(torch.tensor([-2.0, 1.0, -2.0], dtype=F64), 3.0,
                                          torch.tensor([1.0, 0.8, 0.6], dtype=F64)))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.3, -1.0, 0.8], dtype=F64), 2.0))
    scene.add_light("near", lg.PointLight(torch.tensor([0.0, 0.0, -1.5], dtype=F64), 1.0, range=4.0))
    scene.add_light("spot", lg.SpotLight(torch.tensor([0.0, 2.0, -2.0], dtype=F64),
                                         torch.tensor([0.0, -1.0, 1.0], dtype=F64), 5.0, inner_angle=0.1,
                                         outer_angle=0.5))
    packed, rest = _punctual(list(scene.lights.values()))
    assert rest == [] and packed.vector.shape[0] == 5 and packed.is_spot.tolist() == [False] * 3 + [True, False]
    params = [t for t in scene.parameters().values() if t.is_floating_point()]
    for t in params:
        t.requires_grad_(True)
    images, grads = _images_and_gradients(scene, params, [dict(fused_lights=f) for f in (True, False)])
    torch.testing.assert_close(images[0], images[1], rtol=1e-12, atol=1e-12)
    light_grads = [g for t, g in zip(params, grads[1]) if any(t is p for p in
                   (scene.lights["fill"].position, scene.lights["sun"].direction, scene.lights["key"].intensity,
                    scene.lights["spot"].direction, scene.lights["spot"].outer_angle,
                    scene.lights["near"].position))]
    assert len(light_grads) == 6 and all(float(g.abs().max()) > 0 for g in light_grads)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="fused_lights must be a bool"):
        RasterIntegrator(fused_lights="yes")


def test_a_linear_falloff_spot_is_shaded_through_its_own_samples():
    """Mitsuba's spot edge (``falloff="linear"``) is not glTF's packed cone: the fused pass leaves the light to its
    ``samples``, so both passes give its image (not the glTF cone's)."""
    scene = _textured_quad_and_ball()
    spot = lg.SpotLight(torch.tensor([0.0, 2.0, -2.0], dtype=F64), torch.tensor([0.0, -1.0, 1.0], dtype=F64), 40.0,
                        inner_angle=0.1, outer_angle=0.5, falloff="linear")
    scene.add_light("spot", spot)
    packed, rest = _punctual(list(scene.lights.values()))
    assert rest == [spot]
    params = [spot.position, spot.outer_angle]
    for t in params:
        t.requires_grad_(True)
    images, grads = _images_and_gradients(scene, params, [dict(fused_lights=f) for f in (True, False)])
    torch.testing.assert_close(images[0], images[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[0], grads[1]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert all(float(g.abs().max()) > 0 for g in grads[0])
    spot.falloff = "gltf"
    gltf, _ = _images_and_gradients(scene, params, [dict(fused_lights=True)])
    del scene.lights["spot"]
    with torch.no_grad():
        unlit = lg.render(scene, _camera()).rgb
    spot_share = float((images[0] - unlit).abs().max())
    assert float((gltf[0] - images[0]).abs().max()) > 0.01 * spot_share > 0  # (measured 0.026: the curves are close)


def test_a_scene_of_nothing_but_the_sky_renders_it():
    """No mesh, no area light, an environment map: the raster draws the background alone, the same image and
    texel gradients as with a speck of a mesh in front of the camera but outside its view, alpha 0, empty buffers
    (``face_id`` -1); through a distorted camera each pixel's own ray (the path tracer's image at the pixel centres:
    a drawn scene's background is resampled from the pinhole cover instead); a hidden sky shows the background
    colour; a scene with nothing at all is still refused."""
    g = torch.Generator().manual_seed(5)
    texels = torch.rand(8, 16, 3, generator=g, dtype=F64, requires_grad=True)
    weights = torch.rand(6, 8, 3, generator=g, dtype=F64)
    cam = lg.Camera.look_at([0.0, 0.0, 0.0], [0.3, 0.2, 1.0], fov_y=1.0, width=8, height=6).to(dtype=F64)
    images, grads = [], []
    for speck in (False, True):
        scene = lg.Scene()
        scene.add_light("sky", lg.EnvironmentLight(texels))
        if speck:
            verts, faces = lg.geometry.icosphere(1, dtype=F64)
            scene.add_mesh("speck", lg.SceneMesh(verts * 0.01 + torch.tensor([-1.5, 0.0, 1.0], dtype=F64), faces))
        out = lg.render(scene, cam, aovs=("depth", "normal", "mask", "face_id"))
        assert out.rgb.dtype == F64 and out.rgb.shape == (6, 8, 3) and torch.all(out.alpha == 0)
        assert torch.all(out.aovs["face_id"] == -1) and out.aovs["face_id"].dtype == torch.int32
        assert all(float(out.aovs[k].abs().max()) == 0 for k in ("depth", "normal", "mask"))
        images.append(out.rgb)
        grads.append(torch.autograd.grad((out.rgb * weights).sum(), texels)[0])
    torch.testing.assert_close(images[0], images[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    assert float(grads[0].abs().sum()) > 0
    distorted = lg.Camera(cam.K, cam.world_to_cam, 8, 6, distortion=torch.tensor([0.3, -0.05, 0.0, 0.0, 0.0],
                                                                                  dtype=F64))
    scene = lg.Scene()
    scene.add_light("sky", lg.EnvironmentLight(texels.detach()))
    raster = lg.render(scene, distorted).rgb
    scene.film = lg.Film(pixel_filter=lg.cameras.PixelFilter("tent", radius=1e-3))  # (samples near the centres)
    path = lg.render(scene, distorted, integrator="path", spp=4, seed=1).rgb
    assert float((raster - path).abs().max()) < 2e-3 and float((raster - lg.render(scene, cam).rgb).abs().max()) > 0.02
    scene = lg.Scene()
    scene.add_light("sky", lg.EnvironmentLight(texels.detach(), visible=False))
    out = lg.render(scene, cam, background=torch.tensor([0.1, 0.2, 0.3], dtype=F64))
    torch.testing.assert_close(out.rgb, torch.tensor([0.1, 0.2, 0.3], dtype=F64).expand(6, 8, 3))
    assert lg.render(scene, cam, aovs=("mask",)).aovs["mask"].shape == (6, 8, 1)
    assert RasterIntegrator().render_aovs(scene, cam, ("uv", "face_id"))["uv"].shape == (6, 8, 2)
    with pytest.raises(ValueError, match="nothing to draw"):
        lg.render(lg.Scene(), cam)
