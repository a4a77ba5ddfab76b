"""What a scene parameter is (``param_info``), the index behind O(1) access, and the ``Shape`` interface."""

import copy
import dataclasses
import pickle
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import lumigrad as lg
from lumigrad.scene import PARAM_KINDS, ParamInfo, Shape
from lumigrad.shading import Material


def _quad():
    verts = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    return verts, torch.tensor([[0, 2, 1], [0, 3, 2]])


def _scene():
    verts, faces = _quad()
    scene = lg.Scene()
    tex = torch.rand(4, 4, 3)
    scene.add_mesh("floor", lg.SceneMesh(verts, faces, Material(base_color_texture=tex), uv=verts[:, :2]))
    scene.add_light("key", lg.PointLight([0.0, 0.0, -2.0], 4.0))
    scene.add_light("spot", lg.SpotLight([0.0, 1.0, -2.0], [0.0, -1.0, 1.0]))
    scene.add_light("sun", lg.DirectionalLight([0.0, -1.0, 0.0], 2.0))
    scene.add_light("panel", lg.AreaLight(verts + torch.tensor([0.0, 0.0, -1.0]), faces))
    scene.add_light("sky", lg.EnvironmentLight(torch.ones(4, 8, 3)))
    scene.add_light("sh", lg.SHLight(torch.zeros(4, 3)))
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=16, height=12)
    scene.add_camera("main", lg.Camera(cam.K, cam.world_to_cam, 16, 12, distortion=torch.zeros(5)))
    scene.film = lg.Film(exposure=torch.tensor(0.5), white_balance=torch.ones(3))
    return scene


EXPECTED = {
    "meshes.floor.verts": ("vertices", "meshes", "floor", "mesh"),
    "meshes.floor.uv": ("uv", "meshes", "floor", "mesh"),
    "meshes.floor.to_world": ("to_world", "meshes", "floor", "mesh"),
    "meshes.floor.material.base_color_texture": ("texels", "meshes", "floor", "mesh"),
    "meshes.floor.material.roughness_factor": ("factor", "meshes", "floor", "mesh"),
    "lights.key.position": ("light_position", "lights", "key", "point"),
    "lights.key.intensity": ("light_intensity", "lights", "key", "point"),
    "lights.key.color": ("light_color", "lights", "key", "point"),
    "lights.spot.direction": ("light_direction", "lights", "spot", "spot"),
    "lights.spot.outer_angle": ("light_angle", "lights", "spot", "spot"),
    "lights.sun.irradiance": ("light_intensity", "lights", "sun", "directional"),
    "lights.panel.verts": ("vertices", "lights", "panel", "area"),
    "lights.panel.radiance": ("light_radiance", "lights", "panel", "area"),
    "lights.sky.texels": ("environment_texels", "lights", "sky", "environment"),
    "lights.sky.scale": ("light_intensity", "lights", "sky", "environment"),
    "lights.sh.coeffs": ("sh_coeffs", "lights", "sh", "sh"),
    "cameras.main.K": ("intrinsics", "cameras", "main", "camera"),
    "cameras.main.world_to_cam": ("world_to_cam", "cameras", "main", "camera"),
    "cameras.main.distortion": ("distortion", "cameras", "main", "camera"),
    "film.exposure": ("exposure", "film", "film", "film"),
    "film.white_balance": ("white_balance", "film", "film", "film"),
}


def test_param_info_tells_what_every_parameter_is():
    scene = _scene()
    for name, (kind, group, owner, owner_kind) in EXPECTED.items():
        info = scene.param_info(name)
        assert (info.kind, info.group, info.owner, info.owner_kind) == (kind, group, owner, owner_kind), name
        assert info.name == name and info.shape == tuple(scene[name].shape)
    for name in scene.parameters():  # every parameter has a documented kind
        assert scene.param_info(name).kind in PARAM_KINDS, name
    info = scene.param_info("cameras.main.K")
    assert info.obj is scene.cameras["main"] and info.attr == "K" and info.shape == (3, 3)
    assert scene.param_info("meshes.floor.verts").obj is scene.meshes["floor"]
    assert scene.param_info("meshes.floor.to_world").is_pose and not scene.param_info("cameras.main.K").is_pose
    with pytest.raises(KeyError, match="no scene parameter named 'meshes.floor.albedo'"):
        scene.param_info("meshes.floor.albedo")
    assert "lights.key.position" in scene and "lights.key.albedo" not in scene and 3 not in scene


def test_access_uses_the_index_not_a_traversal(monkeypatch):
    scene = _scene()
    names = list(scene.parameters())

    def traversal(self):
        raise AssertionError("scene[name] walked every parameter")

    monkeypatch.setattr(lg.Scene, "parameters", traversal)
    for name in names:
        value = scene[name]
        scene[name] = value.clone()
        assert scene.param_info(name).shape == tuple(value.shape)


def test_the_index_follows_the_scene_as_it_changes():
    scene = _scene()
    verts, faces = _quad()
    scene.meshes["wall"] = lg.SceneMesh(verts * 2, faces)  # straight into the collection
    assert scene.param_info("meshes.wall.verts").obj is scene.meshes["wall"]
    other = lg.SceneMesh(verts * 3, faces)
    scene.meshes["wall"] = other  # replaced
    assert scene["meshes.wall.verts"] is other.verts
    camera = scene.cameras.pop("main")  # removed and put back, as the fit's report does
    assert "cameras.main.K" not in scene
    scene.cameras["main"] = camera
    assert scene["cameras.main.K"] is camera.K
    del scene.lights["key"]
    assert "lights.key.position" not in scene and "lights.key.position" not in scene.parameters()
    scene.film = lg.Film(exposure=torch.tensor(1.5))
    assert float(scene["film.exposure"]) == 1.5 and "film.white_balance" not in scene
    scene.meshes["wall"].normals = torch.tensor([[0.0, 0.0, -1.0]]).expand(4, 3)  # an attribute set directly
    assert scene.param_info("meshes.wall.normals").kind == "normals"
    scene.meshes["floor"].material = Material(roughness_factor=torch.tensor(0.25))  # a new material
    assert float(scene["meshes.floor.material.roughness_factor"]) == 0.25
    assert "meshes.floor.material.base_color_texture" not in scene
    scene.lights = scene.lights  # assigning a collection to itself keeps it
    assert "lights.sun.irradiance" in scene
    scene.lights = {"lamp": lg.PointLight([0.0, 2.0, 0.0])}
    assert [n for n in scene.parameters() if n.startswith("lights.")] == \
        ["lights.lamp.position", "lights.lamp.intensity", "lights.lamp.color"]
    assert set(scene.parameters()) == {n for n in scene.parameters() if n in scene}
    with pytest.raises(TypeError, match="camera must be a lumigrad.Camera"):
        scene.cameras["bad"] = "camera"
    with pytest.raises(ValueError, match="meshes name 'a.b'"):
        scene.meshes["a.b"] = other


def test_copies_and_pickles_keep_their_own_index():
    scene = _scene()
    for twin in (copy.deepcopy(scene), pickle.loads(pickle.dumps(scene))):
        assert list(twin.parameters()) == list(scene.parameters())
        twin["lights.key.intensity"] = torch.tensor(9.0)
        assert float(scene["lights.key.intensity"]) == 4.0 and float(twin["lights.key.intensity"]) == 9.0
        assert twin.param_info("lights.key.intensity").obj is twin.lights["key"]
        twin.add_light("fill", lg.PointLight([1.0, 0.0, 0.0]))
        assert "lights.fill.position" in twin and "lights.fill.position" not in scene


def test_metadata_is_a_plain_dict_copied_and_pickled_but_never_a_parameter():
    scene = _scene()
    assert scene.metadata == {}
    scene.metadata["integrator"] = {"type": "path", "max_depth": 6}
    for twin in (copy.deepcopy(scene), pickle.loads(pickle.dumps(scene))):
        assert twin.metadata == {"integrator": {"type": "path", "max_depth": 6}}
    assert not any("metadata" in name or "integrator" in name for name in scene.parameters())
    assert lg.Scene(metadata={"sampler": {"sample_count": 4}}).metadata == {"sampler": {"sample_count": 4}}


@dataclass
class _Disk(Shape):
    """A shape that is not made of triangles (as a Gaussian cloud or a neural field will be)."""

    group: ClassVar[str] = "disks"
    kind: ClassVar[str] = "disk"
    centre: torch.Tensor
    radius: torch.Tensor

    def parameter_kinds(self):
        return {"centre": "other", "radius": "other"}


def test_a_new_kind_of_shape_plugs_in_with_its_own_parameters():
    scene = _scene()
    disk = scene.add_shape("lid", _Disk(torch.zeros(3), torch.tensor(0.5)))
    assert scene.shapes["disks"] == {"lid": disk} and list(scene.shapes) == ["meshes", "disks"]
    assert scene["disks.lid.radius"] is disk.radius
    info = scene.param_info("disks.lid.radius")
    assert (info.group, info.owner, info.owner_kind, info.kind) == ("disks", "lid", "disk", "other")
    names = list(scene.parameters())
    assert names.index("disks.lid.centre") < names.index("lights.key.position")  # shapes come first
    scene["disks.lid.radius"] = torch.tensor(0.75)
    assert float(disk.radius) == 0.75
    assert scene.flatten().part_names == ["meshes.floor"]  # no triangles: not in the flattening
    params = scene.trainable("disks.*")
    assert all(p.requires_grad for p in params.values())
    with pytest.raises(TypeError, match="must implement lumigrad.scene.Shape"):
        scene.add_shape("x", torch.zeros(3))
    with pytest.raises(TypeError, match="disks holds shapes"):
        scene.shapes["disks"]["y"] = lg.SceneMesh(*_quad())
    with pytest.raises(TypeError, match="mesh must be a SceneMesh"):
        scene.add_mesh("z", disk)


def test_param_info_is_a_plain_record():
    info = ParamInfo("cameras.v.K", "intrinsics", "cameras", "v", "camera", "K", (3, 3))
    assert info == ParamInfo("cameras.v.K", "intrinsics", "cameras", "v", "camera", "K", (3, 3), obj=object())
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.kind = "factor"  # frozen
