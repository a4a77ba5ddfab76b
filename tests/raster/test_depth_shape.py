"""Depth has one shape, ``[..., H, W, 1]``, from ``rasterize``, ``render_geometry`` and ``render``'s AOV; the
shape change of ``Fragments.depth`` is announced once."""

import warnings

import pytest
import torch

import lumigrad as lg
import lumigrad.raster.fragments as fragments_module

F64 = torch.float64


def _scene_and_camera(batch=()):
    verts = torch.tensor([[-1.0, -1.0, 0.5], [1.0, -1.0, 0.0], [0.0, 1.0, 0.25], [1.2, 1.0, 0.8]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    scene = lg.Scene()
    scene.add_mesh("tri", lg.SceneMesh(verts, faces, double_sided=True))
    eye = torch.tensor([0.2, 0.1, -3.0], dtype=F64).expand(batch + (3,))
    cam = lg.Camera.look_at(eye, torch.zeros(3, dtype=F64), fov_y=0.7, width=12, height=10)
    return verts, faces, scene, cam


@pytest.mark.parametrize("batch", [(), (2,)])
def test_rasterize_render_geometry_and_render_agree_in_shape_and_values(batch):
    verts, faces, scene, cam = _scene_and_camera(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        frags = lg.rasterize(verts, faces, cam)
        depth = frags.depth
    geometry = lg.render_geometry(scene, cam, use_antialias=False)["depth"]
    aov = lg.render(scene, cam, aovs=("depth",), use_antialias=False).aovs["depth"]
    assert depth.shape == geometry.shape == aov.shape == batch + (10, 12, 1)
    assert frags.mask.sum() > 20 and (~frags.mask).sum() > 5  # covered and background pixels both seen
    torch.testing.assert_close(depth, geometry, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(depth, aov, rtol=1e-12, atol=1e-12)
    # The dense map is the compact rows scattered: covered pixels hold depth_covered, background 0.
    assert torch.equal(depth[..., 0][frags.mask], frags.depth_covered)
    assert float(depth[..., 0][~frags.mask].abs().max()) == 0.0


def test_depth_gradients_reach_the_vertices_through_the_new_shape():
    verts, faces, _, cam = _scene_and_camera()
    verts = verts.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        frags = lg.rasterize(verts, faces, cam)
        (frags.depth[..., 0] ** 2).sum().backward()
    assert verts.grad is not None and verts.grad.abs().sum() > 0


def test_the_shape_change_warns_once_per_process(monkeypatch):
    monkeypatch.setattr(fragments_module, "_depth_shape_announced", False)
    verts, faces, _, cam = _scene_and_camera()
    frags = lg.rasterize(verts, faces, cam)
    with pytest.warns(FutureWarning, match=r"Fragments.depth is now \[\.\.\., H, W, 1\].*depth\[\.\.\., 0\]"):
        frags.depth
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second read, of any Fragments, is silent
        frags.depth
        lg.rasterize(verts, faces, cam).depth
