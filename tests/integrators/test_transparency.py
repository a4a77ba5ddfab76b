"""Transparency in the raster integrator (glTF ``alphaMode``): BLEND layers composited front to back against a
hand-computed formula, gradients to alpha and colour (gradcheck), MASK discarding by the cutoff, independence
of submission order, and OPAQUE scenes unchanged."""

from __future__ import annotations

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import RasterIntegrator

F64 = torch.float64
BACKGROUND = torch.tensor([0.05, 0.1, 0.5], dtype=F64)


def _quad(z, half, shift=0.0, uv=False, **material):
    """A double-sided square at depth ``z`` (camera looks along +z), ``half`` wide, moved ``shift`` along x."""
    verts = torch.tensor([[-half + shift, -half, z], [half + shift, -half, z], [half + shift, half, z],
                          [-half + shift, half, z]], dtype=F64)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    extra = {}
    if uv:
        extra = dict(uv=torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=F64), uv_faces=faces)
    return lg.SceneMesh(verts, faces, lg.Material(**material), double_sided=True, **extra)


def _emitter(colour, alpha=1.0, **kw):
    """Material whose radiance is ``colour`` exactly without lights (black base colour, emission ``colour``)."""
    return dict(base_color_factor=torch.tensor([0.0, 0.0, 0.0, alpha], dtype=F64),
                emissive_factor=torch.tensor(colour, dtype=F64), **kw)


def _camera(size=16):
    return lg.Camera.look_at(torch.tensor([0.0, 0.0, -2.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=1.0,
                             width=size, height=size)


def _coverage(mesh, cam):
    return lg.rasterize(mesh.verts, mesh.faces, cam).mask[..., None].to(F64)


def test_two_layer_blend_composite_matches_the_hand_computed_formula():
    c_front, a_front, c_back = [0.9, 0.2, 0.4], 0.3, [0.1, 0.6, 0.2]
    front = _quad(1.0, 0.5, shift=-0.2, **_emitter(c_front, a_front, alpha_mode="BLEND"))
    back = _quad(2.0, 0.7, shift=0.6, **_emitter(c_back))
    scene = lg.Scene()
    scene.add_mesh("front", front)
    scene.add_mesh("back", back)
    cam = _camera()
    out = lg.render(scene, cam, background=BACKGROUND, use_antialias=False)
    f, b = _coverage(front, cam), _coverage(back, cam)
    # the three cases: front over back, front over background, back alone (and background alone)
    for case in ((1, 1), (1, 0), (0, 1), (0, 0)):
        assert bool(((f[..., 0] == case[0]) & (b[..., 0] == case[1])).any()), case
    behind = b * torch.tensor(c_back, dtype=F64) + (1 - b) * BACKGROUND
    expected = f * a_front * torch.tensor(c_front, dtype=F64) + (1 - f * a_front) * behind
    assert torch.allclose(out.rgb, expected, rtol=0, atol=1e-6)
    assert torch.allclose(out.alpha, 1 - (1 - f * a_front) * (1 - b), rtol=0, atol=1e-6)


def test_three_layers_and_max_layers():
    colours, alphas = ([0.9, 0.2, 0.4], [0.2, 0.8, 0.3]), (0.3, 0.6)
    scene = lg.Scene()
    scene.add_mesh("near", _quad(1.0, 0.6, **_emitter(colours[0], alphas[0], alpha_mode="BLEND")))
    scene.add_mesh("mid", _quad(1.5, 0.6, **_emitter(colours[1], alphas[1], alpha_mode="BLEND")))
    scene.add_mesh("wall", _quad(3.0, 5.0, **_emitter([0.1, 0.6, 0.2])))
    cam = _camera(8)
    c = [torch.tensor(v, dtype=F64) for v in (*colours, [0.1, 0.6, 0.2])]
    a1, a2 = alphas
    centre = lambda out: out.rgb[4, 4]  # noqa: E731
    full = lg.render(scene, cam, background=BACKGROUND, use_antialias=False)
    assert torch.allclose(centre(full), a1 * c[0] + (1 - a1) * a2 * c[1] + (1 - a1) * (1 - a2) * c[2], atol=1e-12)
    assert float(full.alpha[4, 4]) == 1.0
    two = lg.render(scene, cam, background=BACKGROUND, use_antialias=False, max_layers=2)  # the wall is not drawn
    assert torch.allclose(centre(two), a1 * c[0] + (1 - a1) * a2 * c[1] + (1 - a1) * (1 - a2) * BACKGROUND,
                          atol=1e-12)
    assert float(two.alpha[4, 4]) == pytest.approx(1 - (1 - a1) * (1 - a2), abs=1e-12)


def test_blend_is_differentiable_in_alpha_and_colour_gradcheck():
    cam = _camera(5)
    light = lg.PointLight(torch.tensor([0.5, -1.0, -2.0], dtype=F64), 6.0)

    def render(front_rgba, front_emission, back_rgba):
        scene = lg.Scene()
        scene.add_mesh("front", _quad(1.0, 0.35, shift=-0.1, **dict(
            base_color_factor=front_rgba, emissive_factor=front_emission, alpha_mode="BLEND",
            metallic_factor=torch.tensor(0.0, dtype=F64), roughness_factor=torch.tensor(0.6, dtype=F64))))
        scene.add_mesh("back", _quad(2.0, 0.6, shift=0.3, base_color_factor=back_rgba,
                                     metallic_factor=torch.tensor(0.0, dtype=F64)))
        scene.add_light("key", light)
        return lg.render(scene, cam, background=BACKGROUND).rgba

    inputs = (torch.tensor([0.7, 0.3, 0.2, 0.4], dtype=F64, requires_grad=True),
              torch.tensor([0.1, 0.2, 0.05], dtype=F64, requires_grad=True),
              torch.tensor([0.2, 0.5, 0.8, 1.0], dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-8)
    v_front = torch.autograd.grad(render(*inputs)[..., :3].sum(), inputs[0])[0]
    assert float(v_front[3].abs()) > 0  # the front alpha moves the image


def test_mask_shows_the_surface_behind_where_alpha_is_below_the_cutoff():
    # 8x8 texels in 2x2 blocks of 4x4: alpha 0.9 on the diagonal blocks, 0.2 on the others.
    block = torch.tensor([[0.9, 0.2], [0.2, 0.9]], dtype=F64).repeat_interleave(4, 0).repeat_interleave(4, 1)
    texture = torch.cat([torch.ones(8, 8, 3, dtype=F64), block[..., None]], -1)
    c_front, c_back = torch.tensor([0.9, 0.2, 0.4], dtype=F64), torch.tensor([0.1, 0.6, 0.2], dtype=F64)
    alpha_factor = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64, requires_grad=True)
    emission = c_front.clone().requires_grad_(True)
    scene = lg.Scene()
    scene.add_mesh("leaves", _quad(1.0, 0.6, uv=True, base_color_factor=alpha_factor, emissive_factor=emission,
                                   base_color_texture=texture, alpha_mode="MASK", alpha_cutoff=0.5))
    scene.add_mesh("wall", _quad(2.0, 5.0, **_emitter(c_back.tolist())))
    cam = _camera(32)
    out = lg.render(scene, cam, background=BACKGROUND, aovs=("uv", "face_id"), use_antialias=False)
    uv = out.aovs["uv"]
    on_quad = (out.aovs["face_id"] >= 0) & (out.aovs["face_id"] < 2)  # AOVs show the nearest layer: the quad
    texel = (uv * 8).floor()
    inside_block = on_quad & ((uv * 8 - 0.5 - 4 * (texel // 4) - 1.5).abs() < 1.0).all(-1)  # away from block borders
    kept = ((texel // 4).sum(-1) % 2) == 0  # diagonal blocks
    assert bool((inside_block & kept).any()) and bool((inside_block & ~kept).any())
    shown_front, shown_back = out.rgb[inside_block & kept], out.rgb[inside_block & ~kept]
    assert torch.allclose(shown_front, c_front.expand_as(shown_front), rtol=0, atol=1e-12)
    assert torch.allclose(shown_back, c_back.expand_as(shown_back), rtol=0, atol=1e-12)
    assert torch.equal(out.alpha, torch.ones_like(out.alpha))  # the wall covers what the mask discards
    v_alpha, v_emission = torch.autograd.grad(out.rgb.sum(), (alpha_factor, emission), allow_unused=True)
    assert v_alpha is None or float(v_alpha[3]) == 0.0  # the cutoff is a step: no gradient w.r.t. alpha
    assert bool((v_emission > 0).all())  # kept fragments pass colour gradients


def test_blend_does_not_depend_on_submission_order():
    layers = [("near", _quad(1.0, 0.5, shift=-0.2, **_emitter([0.9, 0.2, 0.4], 0.3, alpha_mode="BLEND"))),
              ("mid", _quad(1.4, 0.5, shift=0.2, **_emitter([0.2, 0.8, 0.3], 0.5, alpha_mode="BLEND"))),
              ("wall", _quad(2.5, 0.8, **_emitter([0.1, 0.6, 0.2])))]
    cam = lg.Camera.look_at(torch.tensor([0.3, 0.2, -2.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=1.0,
                            width=24, height=20)
    images = []
    for order in (layers, layers[::-1], [layers[1], layers[2], layers[0]]):
        scene = lg.Scene()
        for name, mesh in order:
            scene.add_mesh(name, lg.SceneMesh(mesh.verts, mesh.faces.flip(0), mesh.material, double_sided=True))
        images.append(lg.render(scene, cam, background=BACKGROUND).rgba)
    for image in images[1:]:
        assert torch.allclose(image, images[0], rtol=0, atol=1e-12)


def test_opaque_results_are_unchanged_by_alpha_modes_that_keep_everything():
    """BLEND with alpha 1 and MASK with alpha above the cutoff give the opaque image (antialiased too)."""
    light = lg.PointLight(torch.tensor([0.5, -1.0, -2.0], dtype=F64), 6.0)
    cam = _camera(12)
    images = []
    for kw in ({}, dict(alpha_mode="BLEND"), dict(alpha_mode="MASK", alpha_cutoff=0.9)):
        scene = lg.Scene()
        scene.add_mesh("front", _quad(1.0, 0.4, shift=-0.1,
                                      base_color_factor=torch.tensor([0.7, 0.3, 0.2, 1.0], dtype=F64), **kw))
        scene.add_mesh("back", _quad(2.0, 0.6, shift=0.3, base_color_factor=torch.tensor([0.2, 0.5, 0.8, 1.0],
                                                                                          dtype=F64)))
        scene.add_light("key", light)
        images.append(lg.render(scene, cam, background=BACKGROUND).rgba)
    for image in images[1:]:
        assert torch.allclose(image, images[0], rtol=0, atol=1e-12)


def test_max_layers_is_validated():
    with pytest.raises(ValueError, match="max_layers must be positive; got 0"):
        RasterIntegrator(max_layers=0)
    with pytest.raises(TypeError, match="max_layers must be an int; got float"):
        RasterIntegrator(max_layers=2.0)


def test_batched_views_composite_each_view_as_alone():
    scene = lg.Scene()
    scene.add_mesh("near", _quad(1.0, 0.5, shift=-0.2, **_emitter([0.9, 0.2, 0.4], 0.3, alpha_mode="BLEND")))
    scene.add_mesh("wall", _quad(2.5, 0.8, **_emitter([0.1, 0.6, 0.2])))
    eyes = torch.tensor([[0.0, 0.0, -2.0], [0.6, -0.3, -2.5]], dtype=F64)
    both = lg.render(scene, lg.Camera.look_at(eyes, torch.zeros(2, 3, dtype=F64), fov_y=1.0, width=10, height=8),
                     background=BACKGROUND).rgba
    for view in range(2):
        alone = lg.render(scene, lg.Camera.look_at(eyes[view], torch.zeros(3, dtype=F64), fov_y=1.0, width=10,
                                                   height=8), background=BACKGROUND).rgba
        assert torch.allclose(both[view], alone, rtol=0, atol=1e-12)

