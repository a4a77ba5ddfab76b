"""``io.save("x.obj" | "x.ply", scene)``: the scene's meshes merged in world space, with materials for OBJ."""

import pytest
import torch

import lumigrad as lg


def two_mesh_scene():
    verts, faces = lg.geometry.icosphere(1)
    scene = lg.Scene()
    red = lg.Material(base_color_factor=[0.8, 0.1, 0.1, 1.0], roughness_factor=0.4)
    blue = lg.Material(base_color_factor=[0.1, 0.2, 0.9, 1.0], metallic_factor=0.5)
    moved = torch.eye(4)
    moved[:3, 3] = torch.tensor([2.0, 0.5, -1.0])
    scene.add_mesh("left", lg.SceneMesh(verts, faces, red))
    scene.add_mesh("right", lg.SceneMesh(verts * 0.5, faces, blue, to_world=moved))
    return scene, verts, faces


def test_obj_of_a_scene_holds_every_mesh_in_world_space_with_its_material(tmp_path):
    scene, verts, faces = two_mesh_scene()
    lg.io.save(tmp_path / "scene.obj", scene)
    mesh = lg.io.load(tmp_path / "scene.obj")
    expected = torch.cat([verts, verts * 0.5 + torch.tensor([2.0, 0.5, -1.0])])
    assert torch.allclose(mesh.verts, expected, atol=1e-6)
    assert torch.equal(mesh.faces, torch.cat([faces, faces + len(verts)]))
    assert list(mesh.material_names) == ["meshes.left", "meshes.right"]
    assert torch.equal(mesh.face_materials, torch.repeat_interleave(torch.tensor([0, 1]), len(faces)))
    read = {name: m for name, m in zip(mesh.material_names, mesh.materials)}
    assert torch.allclose(read["meshes.right"].base_color_factor[:3], torch.tensor([0.1, 0.2, 0.9]))


def test_ply_of_a_scene_and_an_empty_scene(tmp_path):
    scene, verts, _ = two_mesh_scene()
    lg.io.save(tmp_path / "scene.ply", scene)
    assert lg.io.load(tmp_path / "scene.ply").verts.shape == (2 * len(verts), 3)
    with pytest.raises(ValueError, match="no triangle shapes"):
        lg.io.save(tmp_path / "empty.obj", lg.Scene())
