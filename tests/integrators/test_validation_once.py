"""Validation once, at the boundary: one render waits for the device only where the pipeline must.

A value check (finite, index range) reads a verdict back from the tensor's device, which on CUDA is a host
sync. The raster integrator validates a frame's scene at its boundary and rides those verdicts on the
rasterizer's own read (its tile count); the frame's other syncs are the compactions that size their output by
the data. Here the syncs are counted as they pass PyTorch's dispatcher on the CPU
(:func:`lumigrad.app.host_syncs.count_host_syncs`); ``tests/cuda/test_sync_free.py`` counts the real ones on
a GPU.
"""

import pytest
import torch

import lumigrad as lg
from lumigrad import _checks
from lumigrad.app.host_syncs import count_host_syncs
from lumigrad.kernels.visibility import find_visible

#: Host syncs of one raster frame of one mesh, forward and backward (and of its geometry AOVs alone): the visibility
#: kernel's tile count, the one read that carries the frame's queued checks, the covered pixels and the silhouette
#: edges. (Before validation moved to the boundary: 33; 5 until the fused surface kernel (kernels/surface.py) took
#: over the barycentric recomputation, whose PyTorch twin sized its covered rows on the host.)
FRAME_SYNCS = 4
#: With several meshes shading reads how many pixels each mesh covers: one more.
FRAME_SYNCS_MESHES = 5


def syncs(fn):
    """Host syncs of ``fn`` as a GPU would see them (counted at PyTorch's dispatcher on the CPU), by site."""
    return count_host_syncs(fn, "cpu")


def check_syncs(sites):
    """The syncs caused by checks, other than the one read that carries the queued verdicts."""
    return [s for s in sites if "_checks.py" in s and not s.endswith(" read")]


def _scene(spot, *, lights=("point",)):
    scene = lg.Scene()
    verts = spot.verts.detach().clone().requires_grad_(True)
    material = lg.shading.Material(base_color_texture=spot.texture.clone(), roughness_factor=torch.tensor(0.6))
    scene.add_mesh("spot", lg.SceneMesh(verts, spot.faces.clone(), material, uv=spot.uv.clone(),
                                        uv_faces=spot.uv_faces.clone()))  # the tests change them in place
    if "point" in lights:
        scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0]), 8.0))
    if "spot" in lights:
        scene.add_light("rim", lg.SpotLight(torch.tensor([-2.0, 1.0, 2.0]), torch.tensor([1.0, -0.5, -1.0]), 6.0))
    if "sun" in lights:
        scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, -0.3]), 1.5))
    return scene, verts


def _camera(size=48):
    return lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=size, height=size)


@pytest.mark.parametrize("lights", [("point",), ("point", "spot", "sun")])
def test_a_frame_syncs_only_to_size_its_compactions(spot, lights):
    scene, verts = _scene(spot, lights=lights)
    cam = _camera()
    lg.render(scene, cam).rgb.mean().backward()  # first frame: tables checked and remembered
    verts.grad = None
    sites = syncs(lambda: lg.render(scene, cam).rgb.mean().backward())
    assert sum(sites.values()) == FRAME_SYNCS and not check_syncs(sites), sites
    assert verts.grad is not None and torch.isfinite(verts.grad).all()


def test_an_optimisation_step_keeps_the_frame_syncs(spot):
    """A parameter changed in place by an optimiser is checked again (its version moved), in the same read."""
    scene, verts = _scene(spot)
    cam = _camera()
    opt = torch.optim.Adam([verts], lr=1e-3)
    for step in range(3):
        opt.zero_grad()
        sites = syncs(lambda: lg.render(scene, cam).rgb.mean().backward())
        opt.step()
        if step:
            assert sum(sites.values()) == FRAME_SYNCS and not check_syncs(sites), sites


def test_several_meshes_add_one_sync_and_keep_their_caches(spot):
    scene, verts = _scene(spot)
    ico_verts, ico_faces = lg.geometry.icosphere(1)
    scene.add_mesh("ball", lg.SceneMesh(ico_verts * 0.3 + torch.tensor([0.5, 0.6, 0.0]), ico_faces))
    cam = _camera()
    lg.render(scene, cam).rgb.mean().backward()
    verts.grad = None
    sites = syncs(lambda: lg.render(scene, cam).rgb.mean().backward())
    assert sum(sites.values()) == FRAME_SYNCS_MESHES and not check_syncs(sites), sites
    faces = scene.meshes["ball"].faces
    faces[0] = faces[0].flip(0)  # in place: the merged table and its edge adjacency are built again
    image = lg.render(scene, cam).rgb
    assert torch.isfinite(image).all()


def test_geometry_aovs_sync_without_checks(spot):
    scene, _ = _scene(spot)
    cam = _camera()
    raster = lg.integrators.get_integrator("raster")
    raster.render_aovs(scene, cam, ("depth", "normal", "mask"))
    sites = syncs(lambda: raster.render_aovs(scene, cam, ("depth", "normal", "mask")))
    assert sum(sites.values()) == FRAME_SYNCS and not check_syncs(sites), sites


@pytest.mark.parametrize("where", ["verts", "uv", "material.roughness_factor", "material.base_color_texture"])
def test_a_non_finite_scene_parameter_is_named(spot, where):
    scene, _ = _scene(spot)
    lg.render(scene, _camera())
    name = f"meshes.spot.{where}"
    with torch.no_grad():
        scene.parameters()[name].view(-1)[0] = float("nan")  # in place, after construction
    with pytest.raises(ValueError, match=f"scene parameter {name} contains NaN or Inf"):
        lg.render(scene, _camera())


def test_a_non_finite_light_or_camera_is_named(spot):
    scene, _ = _scene(spot)
    with torch.no_grad():
        scene.lights["key"].position[1] = float("inf")
    with pytest.raises(ValueError, match="scene parameter lights.key.position contains NaN or Inf"):
        lg.render(scene, _camera())
    scene, _ = _scene(spot)
    cam = _camera()
    with torch.no_grad():
        cam.K[0, 0] = float("nan")
    with pytest.raises(ValueError, match="camera.K contains NaN or Inf"):
        lg.render(scene, cam)


def test_a_non_finite_background_is_named(spot):
    scene, _ = _scene(spot)
    background = torch.tensor([0.1, float("nan"), 0.2])
    with pytest.raises(ValueError, match="background contains NaN or Inf"):
        lg.render(scene, _camera(), background=background)


def test_faces_changed_after_construction_are_caught(spot):
    """The scene's face tables are checked again when they change (in place: their version moves)."""
    scene, _ = _scene(spot)
    lg.render(scene, _camera())
    faces = scene.meshes["spot"].faces
    faces[0, 0] = spot.verts.shape[0] + 5
    with pytest.raises(ValueError, match=r"meshes.spot.faces holds index \d+, outside the valid range"):
        lg.render(scene, _camera())


def test_the_public_ops_still_validate_every_call(spot):
    cam = _camera()
    verts = spot.verts.clone()
    verts[3, 1] = float("nan")
    with pytest.raises(ValueError, match="verts contains NaN or Inf"):
        lg.rasterize(verts, spot.faces, cam)
    frags = lg.rasterize(spot.verts, spot.faces, cam)
    colours = torch.rand(spot.verts.shape[0], 3)
    colours[0, 0] = float("inf")
    with pytest.raises(ValueError, match="attrs contains NaN or Inf"):
        lg.interpolate(colours, frags, spot.faces)
    with pytest.raises(ValueError, match="frags refer to face"):
        lg.interpolate(colours.nan_to_num(), frags, spot.faces[:10])


def test_index_verdicts_are_remembered_per_version():
    faces = torch.tensor([[0, 1, 2], [2, 1, 3]])
    _checks.check_indices(faces, "faces", 4)
    assert not syncs(lambda: _checks.check_indices(faces, "faces", 4))
    with pytest.raises(ValueError, match="outside the valid range"):
        _checks.check_indices(faces, "faces", 3)  # another bound is another check
    faces[1, 2] = 7  # in place: the version moves
    with pytest.raises(ValueError, match="holds index 7"):
        _checks.check_indices(faces, "faces", 4)
    with torch.inference_mode():
        frozen = torch.tensor([[0, 1, 2]])
    _checks.check_indices(frozen, "faces", 3)  # inference tensors have no version: checked, not remembered
    with pytest.raises(ValueError):
        _checks.check_indices(frozen, "faces", 2)


def test_deferred_checks_read_with_a_value_and_raise_the_first_failure():
    checks = _checks.DeferredChecks()
    checks.require_finite({"a": torch.ones(3), "b": torch.tensor([1.0, float("nan")])})
    checks.add(torch.tensor(True), lambda: (_ for _ in ()).throw(ValueError("second")))
    with pytest.raises(ValueError, match="^b contains NaN or Inf values$"):
        checks.read(torch.tensor(5))
    assert len(checks) == 0  # the queue is emptied by the read
    checks.require_finite({"c": torch.zeros(2)})
    assert checks.read(torch.tensor(7), torch.tensor(0.5)) == [7, 0.5]
    checks.flush()  # nothing queued: no read


def test_passed_finiteness_is_remembered_until_the_tensor_changes():
    x = torch.ones(4)
    checks = _checks.DeferredChecks()
    checks.require_finite({"x": x})
    checks.flush()
    checks.require_finite({"x": x})
    assert len(checks) == 0  # known finite, unchanged
    x[0] = float("nan")
    checks.require_finite({"x": x})
    with pytest.raises(ValueError, match="x contains NaN"):
        checks.flush()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300])
def test_the_binning_kernel_skips_non_finite_triangles(bad):
    """Before the deferred checks are read, the kernels run on unchecked input: a triangle with a NaN, Inf or
    overflowing corner must be skipped, never binned into memory outside the tile grid."""
    proj = torch.tensor([[[2.0, 2.0, 1.0], [12.0, 2.0, 1.0], [2.0, 12.0, 1.0],
                          [bad, 3.0, 1.0], [14.0, 14.0, 1.0], [3.0, 14.0, 1.0]]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [3, 5, 4]], dtype=torch.int32)
    skip = torch.zeros(2, dtype=torch.int8)
    none = torch.zeros(0, dtype=torch.int32)
    face_ids, depth = find_visible(proj, faces, skip, torch.zeros(0, 3, 3, dtype=torch.float64), none, none,
                                   16, 16, 0.01, 100.0)
    assert set(face_ids.unique().tolist()) == {-1, 0}  # the good triangle is drawn, the bad one never
    assert torch.isfinite(depth[face_ids >= 0]).all()
