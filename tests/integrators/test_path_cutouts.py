"""Alpha in the path tracer (glTF ``alphaMode`` ``"MASK"`` and ``"BLEND"``): every ray passes the surfaces alpha
cuts out, camera, BSDF and shadow rays alike, on the fused kernel and the PyTorch transport, as the raster
integrator reads them; the ray queries' crossings one by one; gradients through a cut-out occluder."""

from __future__ import annotations

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import PathIntegrator, RasterIntegrator
from lumigrad.kernels.bvh import TriangleBVH
from lumigrad.raytrace.cutouts import cutout_tables

F32 = torch.float32
QUAD_FACES = torch.tensor([[0, 2, 1], [0, 3, 2]])
QUAD_UV = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _facing(z, half, **material) -> lg.SceneMesh:
    """A double-sided square at depth ``z`` facing the camera on -z, uv over it."""
    verts = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], dtype=F32)
    return lg.SceneMesh(verts, QUAD_FACES, lg.Material(**material), double_sided=True, uv=QUAD_UV,
                        uv_faces=QUAD_FACES)


def _level(y, half, **material) -> lg.SceneMesh:
    """A double-sided horizontal square at height ``y``, uv over it."""
    verts = torch.tensor([[-half, y, -half], [half, y, -half], [half, y, half], [-half, y, half]], dtype=F32)
    return lg.SceneMesh(verts, QUAD_FACES, lg.Material(**material), double_sided=True, uv=QUAD_UV,
                        uv_faces=QUAD_FACES)


def _glow(rgb, alpha=1.0, **kw) -> dict:
    """A material whose radiance is ``rgb`` whatever the light (black, emissive)."""
    return dict(base_color_factor=torch.tensor([0.0, 0.0, 0.0, alpha]), emissive_factor=torch.tensor(rgb), **kw)


def _half_cut() -> torch.Tensor:
    """An RGBA texture whose alpha is 0 on the left half (u < 0.5), 1 on the right."""
    tex = torch.ones(8, 8, 4)
    tex[:, :4, 3] = 0.0
    return tex


def _camera(size=16):
    return lg.Camera.look_at([0.0, 0.0, -2.0], [0.0, 0.0, 0.0], fov_y=1.0, width=size, height=size)


def _path(fused, depth, **kw):
    return PathIntegrator(max_depth=depth, use_fused_kernel=fused, **kw)


@pytest.mark.parametrize("fused", [True, False])
def test_a_masked_surface_shows_what_lies_behind_where_it_is_cut_out_as_the_raster_does(fused):
    scene = lg.Scene()
    scene.add_mesh("leaf", _facing(0.0, 0.6, **_glow([1.0, 0.0, 0.0], base_color_texture=_half_cut(),
                                                      alpha_mode="MASK")))
    scene.add_mesh("wall", _facing(1.0, 1.0, **_glow([0.0, 1.0, 0.0])))
    scene.film = lg.Film(pixel_filter=lg.cameras.PixelFilter("tent", radius=1e-3))  # (pixel centres, as the raster)
    cam = _camera()
    ours = lg.render(scene, cam, integrator=_path(fused, 1), spp=1).rgb
    raster = lg.render(scene, cam, integrator=RasterIntegrator(use_antialias=False)).rgb
    torch.testing.assert_close(ours, raster, atol=0.01, rtol=0)
    leaf = raster[5:11, 4:12]
    assert float(leaf[..., 0].mean()) > 0.3 and float(leaf[..., 1].mean()) > 0.3  # both show
    scene.meshes["leaf"].material.alpha_mode = "OPAQUE"
    opaque = lg.render(scene, cam, integrator=_path(fused, 1), spp=1).rgb
    assert float(opaque[5:11, 4:12, 1].max()) == 0.0  # the same leaf opaque hides the wall


@pytest.mark.parametrize("fused", [True, False])
def test_a_blended_surface_is_there_with_probability_alpha(fused):
    """Stochastic transparency: in expectation the raster's compositing ``a c + (1 - a) behind``."""
    scene = lg.Scene()
    scene.add_mesh("veil", _facing(0.0, 0.6, **_glow([1.0, 0.0, 0.0], alpha=0.3, alpha_mode="BLEND")))
    scene.add_mesh("wall", _facing(1.0, 1.0, **_glow([0.0, 1.0, 0.0])))
    cam = _camera()
    ours = lg.render(scene, cam, integrator=_path(fused, 1), spp=256, seed=3).rgb[4:12, 4:12].mean((0, 1))
    raster = lg.render(scene, cam).rgb[4:12, 4:12].mean((0, 1))
    torch.testing.assert_close(ours, raster, atol=0.01, rtol=0)  # (16384 decisions: std 0.004)


def _shadow_scene(alpha_mode="MASK", texture=None, alpha=1.0) -> lg.Scene:
    scene = lg.Scene()
    scene.add_mesh("floor", _level(-1.0, 3.0, base_color_factor=torch.tensor([0.8, 0.8, 0.8, 1.0]),
                                   metallic_factor=0.0, roughness_factor=1.0, specular_factor=0.0))  # Lambert
    scene.add_mesh("blind", _level(0.0, 0.5, base_color_factor=torch.tensor([0.2, 0.2, 0.2, alpha]),
                                   metallic_factor=0.0, roughness_factor=1.0, base_color_texture=texture,
                                   alpha_mode=alpha_mode))
    scene.add_light("bulb", lg.PointLight(torch.tensor([1.5, 2.0, 0.0]), 30.0))  # (the shadow falls aside)
    return scene


def _from_above(size=16):
    return lg.Camera.look_at([0.0, 4.0, -0.01], [0.0, -1.0, 0.0], fov_y=0.9, width=size, height=size)


@pytest.mark.parametrize("fused", [True, False])
def test_shadow_rays_pass_cut_out_surfaces_in_the_path_tracer_and_the_rasters_shadows(fused):
    cam = _from_above()
    scene = _shadow_scene(texture=_half_cut())
    scene.film = lg.Film(pixel_filter=lg.cameras.PixelFilter("tent", radius=1e-3))  # (pixel centres, as the raster)
    ours = lg.render(scene, cam, integrator=_path(fused, 2), spp=4).rgb
    raster = lg.render(scene, cam, integrator=RasterIntegrator(shadows=True, use_antialias=False)).rgb
    torch.testing.assert_close(ours, raster, atol=0.01, rtol=0.02)  # (direct light only: the same sum)
    assert int((raster[..., 0] < 0.01).sum()) >= 6  # (the opaque half's shadow, seen past the cut half)
    # a blind cut out everywhere casts no shadow and is not seen: the floor alone
    gone = _shadow_scene(alpha=0.0)
    alone = _shadow_scene()
    del alone.meshes["blind"]
    torch.testing.assert_close(lg.render(gone, cam, integrator=_path(fused, 2), spp=4).rgb,
                               lg.render(alone, cam, integrator=_path(fused, 2), spp=4).rgb, atol=1e-6, rtol=1e-5)
    shadowed = lg.render(_shadow_scene(alpha_mode="OPAQUE"), cam, integrator=_path(fused, 2), spp=4).rgb
    assert float(shadowed.sum()) < float(ours.sum()) - 1.0  # the opaque blind's shadow is darker


@pytest.mark.parametrize("fused", [True, False])
def test_gradients_reach_the_floor_through_a_blended_blind(fused):
    """Direct light only: each path's radiance is linear in the floor's albedo, so ``d mean / d albedo`` is the
    mean over the albedo, path by path, through the blind's stochastic shadow and the camera's view past it."""
    scene = _shadow_scene(alpha_mode="BLEND", alpha=0.4)
    albedo = torch.tensor([0.8, 0.8, 0.8], requires_grad=True)
    scene.meshes["floor"].material.base_color_factor = torch.cat([albedo, torch.ones(1)])
    blind = scene.meshes["blind"].material  # black, no coat: only the floor shows
    blind.base_color_factor, blind.specular_factor = torch.tensor([0.0, 0.0, 0.0, 0.4]), torch.tensor(0.0)
    img = lg.render(scene, _from_above(), integrator=_path(fused, 2, seed_grad=2), spp=8, seed=2).rgb  # (its paths)
    img.mean().backward()
    expected = img.detach().mean() / 0.8 / 3.0  # each channel's share of the mean
    torch.testing.assert_close(albedo.grad, expected.expand(3), rtol=1e-4, atol=1e-7)


def test_the_queries_cross_masked_surfaces_one_by_one_and_measure_t_from_the_origin():
    """Three masked squares at z = 1, 2, 3 (alpha 0.2, 0.2, 0.9 with cutoff 0.5) and an opaque one at 4: a ray
    along +z from the origin hits the third; with t_max 2.5 nothing; shadow rays likewise; a BLEND square
    answers a ray the same way every time."""
    meshes = [_facing(z, 1.0, base_color_factor=torch.tensor([1.0, 1.0, 1.0, a]), alpha_mode="MASK")
              for z, a in ((1.0, 0.2), (2.0, 0.2), (3.0, 0.9))]
    meshes.append(_facing(4.0, 1.0))
    verts = torch.cat([m.verts for m in meshes])
    faces = torch.cat([m.faces + 4 * k for k, m in enumerate(meshes)])
    face_part = torch.arange(4).repeat_interleave(2)
    uv_faces = torch.cat([QUAD_FACES + 4 * k for k in range(4)])
    tables = cutout_tables(verts, faces, QUAD_UV.repeat(4, 1), uv_faces, face_part, [m.material for m in meshes])
    bvh = TriangleBVH(verts, faces)
    o = torch.tensor([[0.1, 0.2, 0.0], [0.1, 0.2, 0.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])  # (t in multiples of d)
    face, t, bary = bvh.closest_hit(o, d, cutouts=tables)
    assert face.tolist() == [4, 4] or face.tolist() == [5, 5]  # the third square's triangles
    torch.testing.assert_close(t, torch.tensor([3.0, 1.5]), atol=1e-5, rtol=0)
    plain, t_plain, _ = bvh.closest_hit(o, d)
    assert plain.tolist() in ([0, 0], [1, 1]) and t_plain.tolist() == pytest.approx([1.0, 0.5])
    assert bvh.closest_hit(o, d, t_max=torch.tensor([2.5, 1.25]), cutouts=tables)[0].tolist() == [-1, -1]
    assert bvh.occluded(o, d, torch.tensor([2.5, 1.25]), cutouts=tables).tolist() == [False, False]
    assert bvh.occluded(o, d, torch.tensor([3.5, 1.75]), cutouts=tables).tolist() == [True, True]
    assert bvh.occluded(o, d, torch.tensor([2.5, 1.25])).tolist() == [True, True]  # (opaque without the table)
    meshes[0].material.alpha_mode = "BLEND"  # alpha 0.2: some rays pass, each always the same way
    tables = cutout_tables(verts, faces, QUAD_UV.repeat(4, 1), uv_faces, face_part, [m.material for m in meshes])
    g = torch.Generator().manual_seed(0)
    many = torch.cat([torch.rand(4000, 2, generator=g) - 0.5, torch.zeros(4000, 1)], -1)
    ahead = torch.tensor([[0.0, 0.0, 1.0]]).expand(4000, 3).contiguous()
    first = bvh.closest_hit(many, ahead, cutouts=tables)[0]
    assert torch.equal(first, bvh.closest_hit(many, ahead, cutouts=tables)[0])
    stopped = (first <= 1).float().mean()
    assert abs(float(stopped) - 0.2) < 0.03


def test_blend_gradients_replayed_on_pytorch_retrace_the_pytorch_primals_paths():
    """A blended surface's choice hashes the ray's float bits, so a PyTorch replay (visibility gradients, or
    ``fused_adjoint=False``) takes the primal from the PyTorch transport too: the gradient is the all-PyTorch
    route's, bit for bit (a fused primal's paths part from the replay's at ~10 % of paths, a 0.5 % bias)."""
    grads = []
    for fused in (True, False):
        scene = _shadow_scene(alpha_mode="BLEND", alpha=0.4)
        albedo = torch.tensor([0.8, 0.8, 0.8], requires_grad=True)
        scene.meshes["floor"].material.base_color_factor = torch.cat([albedo, torch.ones(1)])
        it = _path(fused, 3, seed_grad=5, fused_adjoint=False, edge_samples=0, shadow_edge_samples=0)
        lg.render(scene, _from_above(), integrator=it, spp=4, seed=2).rgb.mean().backward()
        grads.append(albedo.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=0)


def test_blend_choices_follow_the_render_seed():
    meshes = [_facing(1.0, 1.0, base_color_factor=torch.tensor([1.0, 1.0, 1.0, 0.3]), alpha_mode="BLEND"),
              _facing(2.0, 1.0)]
    verts = torch.cat([m.verts for m in meshes])
    faces = torch.cat([m.faces + 4 * k for k, m in enumerate(meshes)])
    tables = cutout_tables(verts, faces, QUAD_UV.repeat(2, 1), faces, torch.arange(2).repeat_interleave(2),
                           [m.material for m in meshes])
    bvh = TriangleBVH(verts, faces)
    o = torch.tensor([[0.1, 0.2, 0.0]]).expand(2000, 3).contiguous()  # one ray, 2000 times
    d = torch.tensor([[0.0, 0.0, 1.0]]).expand(2000, 3).contiguous()
    seen = []
    for seed in range(40):
        tables.reseed(seed)
        face = bvh.closest_hit(o, d, cutouts=tables)[0]
        assert bool((face == face[0]).all())  # (one ray, one choice)
        seen.append(int(face[0]) <= 1)
        tables.reseed(seed)
        assert torch.equal(face, bvh.closest_hit(o, d, cutouts=tables)[0])
    assert 5 <= sum(seen) <= 20  # the veil (alpha 0.3) stops the ray in about 12 of 40 seeds


def test_the_rasters_shadow_rays_pass_mask_cut_outs_only():
    """A blended blind casts its full shadow in the raster (one random choice per pixel would be noise), and
    a masked one cut out everywhere casts none."""
    cam = _from_above()
    raster = RasterIntegrator(shadows=True, use_antialias=False)
    blended = lg.render(_shadow_scene(alpha_mode="BLEND", alpha=0.5), cam, integrator=raster).rgb
    opaque = lg.render(_shadow_scene(alpha_mode="OPAQUE"), cam, integrator=raster).rgb
    shadow = opaque[..., 0] < 0.01
    assert int(shadow.sum()) >= 6 and float(blended[..., 0][shadow].max()) < 0.01
    gone = lg.render(_shadow_scene(alpha=0.0), cam, integrator=raster).rgb
    assert float(gone[..., 0][shadow].min()) > 0.1


def test_alpha_on_a_mediums_boundary_is_refused():
    scene = lg.Scene()
    scene.add_mesh("fog", _facing(1.0, 1.0, alpha_mode="MASK", transmission_factor=1.0,
                                  interior=lg.shading.HomogeneousMedium(sigma_a=0.1, sigma_s=0.5)))
    with pytest.raises(ValueError, match="alpha_mode 'MASK' bounds a medium"):
        lg.render(scene, _camera(4), integrator="path", spp=1)
