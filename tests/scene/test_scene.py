"""Scene container: parameter names, one-call training, replacing tensors, bad input."""

from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material


def _quad(z=0.0):
    verts = torch.tensor([[-1.0, -1, z], [1, -1, z], [1, 1, z], [-1, 1, z]])
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # front faces towards -z (counter-clockwise seen from -z)
    return verts, faces


def _scene():
    verts, faces = _quad()
    tex = torch.rand(4, 4, 3)
    material = Material(base_color_texture=tex, metallic_roughness_texture=tex, roughness_factor=0.5)
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(verts, faces, material, uv=verts[:, :2] * 0.5 + 0.5))
    scene.add_light("key", lg.PointLight([0.0, 0.0, -2.0], 4.0))
    scene.add_camera("main", lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=16, height=16))
    return scene


def test_parameter_names_follow_the_scene_structure():
    scene = _scene()
    names = scene.parameters()
    for expected in ("meshes.floor.verts", "meshes.floor.uv", "meshes.floor.to_world",
                     "meshes.floor.material.roughness_factor", "meshes.floor.material.base_color_texture",
                     "lights.key.position", "lights.key.intensity", "lights.key.color", "cameras.main.K",
                     "cameras.main.world_to_cam"):
        assert expected in names, expected
    assert "meshes.floor.faces" not in names  # indices are not parameters
    assert scene["meshes.floor.material.roughness_factor"] is scene.meshes["floor"].material.roughness_factor


def test_trainable_marks_matches_once_and_returns_them():
    scene = _scene()
    params = scene.trainable("meshes.*.material.*_texture", "lights.key.position")
    # base colour and metallic-roughness share one tensor: returned once, under its first name.
    assert list(params) == ["meshes.floor.material.base_color_texture", "lights.key.position"]
    assert all(p.requires_grad and p.is_leaf for p in params.values())
    assert not scene["meshes.floor.verts"].requires_grad
    image = lg.render(scene)
    image.sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params.values())
    opt = torch.optim.Adam(params.values(), lr=1e-2)  # no duplicate-parameter complaint
    opt.step()


def test_setitem_swaps_a_tensor_in_and_checks_its_shape():
    scene = _scene()
    raw = torch.zeros((), requires_grad=True)
    scene["meshes.floor.material.roughness_factor"] = torch.sigmoid(raw)  # a re-parameterised value
    lg.render(scene).sum().backward()
    assert raw.grad is not None and float(raw.grad) != 0
    with pytest.raises(ValueError, match="shape"):
        scene["lights.key.position"] = torch.zeros(2)
    with pytest.raises(KeyError, match="no scene parameter named 'lights.nope.position'"):
        scene["lights.nope.position"] = torch.zeros(3)
    with pytest.raises(KeyError, match="matches 'film.\\*'"):
        scene.trainable("film.*")
    with pytest.raises(ValueError, match="at least one"):
        scene.trainable()


def test_trainable_replaces_a_non_leaf_by_a_leaf_copy():
    scene = _scene()
    scene["lights.key.intensity"] = torch.tensor(2.0) * torch.ones((), requires_grad=True)
    params = scene.trainable("lights.key.intensity")
    assert params["lights.key.intensity"].is_leaf and scene["lights.key.intensity"] is params["lights.key.intensity"]


def test_bad_input():
    verts, faces = _quad()
    with pytest.raises(ValueError, match="meshes name 'a.b'"):
        lg.Scene().add_mesh("a.b", lg.SceneMesh(verts, faces))
    with pytest.raises(ValueError, match="faces is empty"):
        lg.SceneMesh(verts, faces[:0])
    with pytest.raises(ValueError, match="faces"):
        lg.SceneMesh(verts, faces + 10)
    with pytest.raises(ValueError, match="normals"):
        lg.SceneMesh(verts, faces, normals=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="to_world"):
        lg.SceneMesh(verts, faces, to_world=torch.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        lg.SceneMesh(verts * float("nan"), faces)
    with pytest.raises(ValueError, match="wrap"):
        Material(wrap="tile")
    scene = lg.Scene()
    with pytest.raises(ValueError, match="nothing to draw"):
        lg.render(scene, lg.Camera.look_at([0.0, 0, -3], [0.0, 0, 0], width=8, height=8))
    scene.add_mesh("q", lg.SceneMesh(verts, faces))
    cam = lg.Camera.look_at([0.0, 0, -3], [0.0, 0, 0], width=8, height=8)
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    scene.add_light("sky2", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    with pytest.raises(ValueError, match="at most one EnvironmentLight; it has sky, sky2"):
        lg.render(scene, cam)
    del scene.lights["sky2"]
    with pytest.raises(ValueError, match="exactly one camera"):
        lg.render(scene)
    with pytest.raises(ValueError, match="camera 'side' is not in the scene"):
        lg.render(scene, "side")


def _cast_scene(dtype):
    """A textured card under two point lights, one light's intensity the card's roughness tensor (shared), built
    in ``dtype``."""
    f64 = torch.float64
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]], dtype=dtype)
    texture = torch.rand(4, 4, 3, dtype=f64, generator=torch.Generator().manual_seed(0)).to(dtype)
    shared = torch.tensor(0.5, dtype=dtype)
    material = Material(base_color_factor=torch.ones(4, dtype=dtype), base_color_texture=texture,
                        roughness_factor=shared, metallic_factor=torch.tensor(0.0, dtype=dtype),
                        ior=torch.tensor(1.5, dtype=dtype))
    scene = lg.Scene()
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=dtype)
    scene.add_mesh("card", lg.SceneMesh(verts, torch.tensor([[0, 2, 1], [0, 3, 2]]), material, uv=uv))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 0.0, -2.0], dtype=dtype), torch.tensor(4.0, dtype=dtype)))
    scene.add_light("fill", lg.PointLight(torch.tensor([0.5, 0.5, -2.0], dtype=dtype), shared))
    return scene


def test_to_casts_every_floating_parameter_and_keeps_shared_tensors_shared():
    """``Scene.to(dtype=)``: every floating-point parameter (mesh, material, texture, light) cast, the face indices
    kept integral, a tensor shared by two names still one tensor; the cast scene renders exactly as the same scene
    built in float32 (the fused kernel); a non-float dtype is refused by name."""
    scene = _cast_scene(torch.float64)
    assert scene.to(dtype=torch.float32) is scene
    params = scene.parameters()
    assert all(t.dtype == torch.float32 for t in params.values()), {k: t.dtype for k, t in params.items()}
    assert params["meshes.card.material.roughness_factor"] is params["lights.fill.intensity"]
    assert scene.meshes["card"].faces.dtype == torch.int64
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.8, width=8, height=8)
    image = lg.render(scene, cam, integrator="direct", spp=16, seed=3).rgb
    native = lg.render(_cast_scene(torch.float32), cam, integrator="direct", spp=16, seed=3).rgb
    assert image.dtype == torch.float32 and float(image.mean()) > 0.01 and torch.equal(image, native)
    with pytest.raises(TypeError, match="dtype"):
        scene.to(dtype=torch.int32)


SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "gltf-cesium-man").exists(), reason="../shared/data is not beside the checkout")
def test_to_casts_what_skinned_and_morphed_meshes_hold_beyond_their_parameters():
    """Morph targets and skeletons' rest poses are not parameters but are posed with them: ``to(dtype=)`` casts
    them too, so a cast glTF scene flattens and poses in the new dtype (a morph cube's deltas left float32 made a
    float64 scene fail to flatten)."""
    cube = lg.io.load(SHARED / "gltf-animated-morph-cube" / "glTF" / "AnimatedMorphCube.gltf")
    for dtype in (torch.float64, torch.float32):
        cube.to(dtype=dtype)
        assert cube.flatten().verts.dtype == dtype and cube.at(0.5).flatten().verts.dtype == dtype
        assert next(iter(cube.meshes.values())).morph_deltas.dtype == dtype
    man = lg.io.load(SHARED / "gltf-cesium-man" / "glTF" / "CesiumMan.gltf").to(dtype=torch.float64)
    mesh = next(iter(man.meshes.values()))
    assert mesh.skeleton.rest_rotation.dtype == torch.float64 and mesh.skeleton.inverse_bind.dtype == torch.float64
    assert mesh.joints.dtype in (torch.int32, torch.int64) and man.flatten().verts.dtype == torch.float64
