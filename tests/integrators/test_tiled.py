"""Tiled rendering: ``Camera.crop`` windows stitched equal the full render (pinhole and through a lens), and
``render_tiled``'s accumulated parameter gradients equal the untiled ones with silhouettes crossing tile
borders (the one-pixel halo carries antialiasing across them)."""

from __future__ import annotations

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import tile_windows

F64 = torch.float64


def _scene(requires_grad=True):
    """A red ball in front of a grey wall, lit by two point lights; verts, colour and a light's position need grad."""
    scene = lg.Scene()
    verts, faces = lg.geometry.icosphere(2, dtype=F64)
    ball = (0.8 * verts + torch.tensor([0.1, -0.05, 0.0], dtype=F64)).requires_grad_(requires_grad)
    colour = torch.tensor([0.9, 0.2, 0.1, 1.0], dtype=F64, requires_grad=requires_grad)
    scene.add_mesh("ball", lg.SceneMesh(ball, faces, lg.shading.Material(base_color_factor=colour)))
    wall = torch.tensor([[-1.6, -1.2, 1.5], [1.2, -1.2, 1.5], [1.2, 1.4, 1.5], [-1.6, 1.4, 1.5]], dtype=F64)
    scene.add_mesh("wall", lg.SceneMesh(wall, torch.tensor([[0, 1, 2], [0, 2, 3]]), double_sided=True))
    light = torch.tensor([1.0, 2.0, -3.0], dtype=F64, requires_grad=requires_grad)
    scene.add_light("key", lg.PointLight(light, 10.0))
    scene.add_light("fill", lg.PointLight(torch.tensor([-2.0, 0.5, -2.0], dtype=F64), 4.0))
    return scene, (ball, colour, light)


def _camera(width=37, height=29, **kw):
    return lg.Camera.look_at(torch.tensor([0.3, 0.2, -3.5], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.8,
                             width=width, height=height, **kw)


def _stitch(scene, camera, tile, halo, **settings):
    """The full image assembled from crops rendered with a halo and cut back."""
    rows = []
    image = torch.zeros(camera.height, camera.width, 4, dtype=F64)
    for x0, y0, w, h in tile_windows(camera.width, camera.height, tile):
        hx0, hy0 = max(0, x0 - halo), max(0, y0 - halo)
        hx1, hy1 = min(camera.width, x0 + w + halo), min(camera.height, y0 + h + halo)
        out = lg.render(scene, camera.crop(hx0, hy0, hx1 - hx0, hy1 - hy0), **settings).rgba
        image[y0:y0 + h, x0:x0 + w] = out[y0 - hy0:y0 - hy0 + h, x0 - hx0:x0 - hx0 + w]
        rows.append(out)
    return image


@pytest.mark.parametrize("distortion", [None, (-0.12, 0.03, 0.002, -0.001, 0.0)])
def test_stitched_crops_equal_the_full_render(distortion):
    dist = None if distortion is None else torch.tensor(distortion, dtype=F64)
    scene, _ = _scene(requires_grad=False)
    cam = _camera(distortion=dist)
    full = lg.render(scene, cam).rgba
    assert 0.2 < float(full[..., 3].mean()) < 1.0  # the wall and the ball's silhouette are both in view
    stitched = _stitch(scene, cam, tile=8, halo=1)
    torch.testing.assert_close(stitched, full, rtol=1e-10, atol=1e-10)


def test_without_a_halo_antialiasing_differs_at_tile_borders():
    """The halo is needed: a silhouette crossing a tile border blends across it."""
    scene, _ = _scene(requires_grad=False)
    cam = _camera()
    full = lg.render(scene, cam).rgba
    assert (_stitch(scene, cam, tile=8, halo=0) - full).abs().max() > 1e-3


def _mse(out, target, pixels):
    return ((out.rgb - target[..., :3]) ** 2).sum() / pixels + (out.alpha - target[..., 3:]).abs().sum() / pixels


@pytest.mark.parametrize("distortion", [None, (-0.12, 0.03, 0.002, -0.001, 0.0)])
def test_tiled_gradients_equal_untiled(distortion):
    dist = None if distortion is None else torch.tensor(distortion, dtype=F64)
    cam = _camera(distortion=dist)
    target = torch.rand(cam.height, cam.width, 4, generator=torch.Generator().manual_seed(3), dtype=F64)
    pixels = cam.height * cam.width
    scene, params = _scene()
    full_loss = _mse(lg.render(scene, cam), target, pixels)
    full_loss.backward()
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    loss, image = lg.render_tiled(scene, cam, lambda out, t: _mse(out, t, pixels), target, tile=8,
                                  return_image=True)
    torch.testing.assert_close(loss, full_loss.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(image.rgba, lg.render(scene, cam).rgba.detach(), rtol=1e-10, atol=1e-10)
    for p, g in zip(params, expected):
        assert g.abs().max() > 0
        # ~1e-5 relative is the brief; float64 gives much tighter agreement (summation order only)
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-12 * float(g.abs().max()))


def test_tiled_gradients_through_a_shared_parameterisation():
    """Scene tensors computed from a leaf (verts = base + offset) share one upstream graph between tiles."""
    cam = _camera()
    pixels = cam.height * cam.width
    scene, (ball, _, _) = _scene(requires_grad=False)
    offset = torch.zeros(3, dtype=F64, requires_grad=True)
    scene.meshes["ball"].verts = ball + offset
    lg.render(scene, cam).alpha.sum().div(pixels).backward()
    expected = offset.grad.clone()
    offset.grad = None
    lg.render_tiled(scene, cam, lambda out, t: out.alpha.sum() / pixels, tile=9)
    assert expected.abs().max() > 0
    torch.testing.assert_close(offset.grad, expected, rtol=1e-9, atol=1e-14)


def test_aovs_background_image_and_face_ids_are_cut_per_tile():
    scene, _ = _scene(requires_grad=False)
    cam = _camera()
    background = torch.rand(cam.height, cam.width, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    full = lg.render(scene, cam, aovs=("depth", "face_id"), background=background)
    _, image = lg.render_tiled(scene, cam, lambda out, t: out.rgb.sum(), tile=10, aovs=("depth", "face_id"),
                               background=background, return_image=True)
    torch.testing.assert_close(image.rgb, full.rgb, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(image.aovs["depth"], full.aovs["depth"], rtol=1e-10, atol=1e-10)
    assert torch.equal(image.aovs["face_id"], full.aovs["face_id"])


def test_render_tiled_refuses_bad_arguments():
    scene, _ = _scene(requires_grad=False)
    cam = _camera()
    with pytest.raises(TypeError, match="loss_fn must be a callable"):
        lg.render_tiled(scene, cam, None)
    with pytest.raises(TypeError, match="0-dim tensor"):
        lg.render_tiled(scene, cam, lambda out, t: out.rgb, tile=16)
    with pytest.raises(ValueError, match="halo"):
        lg.render_tiled(scene, cam, lambda out, t: out.rgb.sum(), halo=-1)
    with pytest.raises(ValueError, match="target"):
        lg.render_tiled(scene, cam, lambda out, t: out.rgb.sum(), torch.zeros(4, 4, 3, dtype=F64))


def test_tiled_loss_backward_equals_the_untiled_gradient():
    """``tiled_loss`` returns the loss; its backward gives the untiled gradients (as ``render_tiled`` fills)."""
    cam = _camera()
    target = torch.rand(cam.height, cam.width, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    pixels = cam.height * cam.width
    scene, params = _scene()
    full_loss = _mse(lg.render(scene, cam), target, pixels)
    full_loss.backward()
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    loss = lg.tiled_loss(scene, cam, lambda out, t: _mse(out, t, pixels), target, tile=8)
    assert all(p.grad is None for p in params)  # nothing written before backward
    torch.testing.assert_close(loss.detach(), full_loss.detach(), rtol=1e-12, atol=0)
    (2.0 * loss).backward()  # an ordinary loss tensor: scaled, summed with others...
    for p, g in zip(params, expected):
        assert g.abs().max() > 0
        torch.testing.assert_close(p.grad, 2.0 * g, rtol=1e-9, atol=1e-12 * float(g.abs().max()))


def test_tiled_loss_through_a_parameterisation_and_a_derived_camera():
    """Scene tensors computed from leaves: the gradient stops at them per tile and the map is traversed once by
    the backward; a camera computed from the scene's (indexed, resized) counts once with ``inputs``."""
    cam = _camera()
    pixels = cam.height * cam.width
    scene, (ball, _, _) = _scene(requires_grad=False)
    offset = torch.zeros(3, dtype=F64, requires_grad=True)
    focal = torch.ones((), dtype=F64, requires_grad=True)
    scene.meshes["ball"].verts = ball + offset
    K = cam.K * torch.stack([focal, focal, torch.ones((), dtype=F64)])[:, None]
    scene.add_camera("views", lg.Camera(K[None], cam.world_to_cam[None], cam.width, cam.height))
    def seen():
        return scene.cameras["views"][torch.tensor([0])].resized(30, 24)

    (lg.render(scene, seen()).alpha.sum() / pixels).backward(retain_graph=True)  # the scene keeps K = f(focal)
    expected = offset.grad.clone(), focal.grad.clone()
    offset.grad = focal.grad = None
    loss = lg.tiled_loss(scene, seen(), lambda out, t: out.alpha.sum() / pixels, tile=7,
                         inputs=list(scene.parameters().values()))
    loss.backward()
    for got, want in zip((offset.grad, focal.grad), expected):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-14)


def test_tiled_loss_refuses_bad_inputs():
    scene, _ = _scene(requires_grad=False)
    with pytest.raises(TypeError, match=r"inputs\[0\]"):
        lg.tiled_loss(scene, _camera(), lambda out, t: out.rgb.sum(), inputs=[1.0])
    with pytest.raises(TypeError, match="scene must be"):
        lg.tiled_loss(None, _camera(), lambda out, t: out.rgb.sum())
    loss = lg.tiled_loss(scene, _camera(), lambda out, t: out.rgb.sum(), tile=16)
    assert not loss.requires_grad and float(loss) > 0  # nothing to differentiate: the plain total
