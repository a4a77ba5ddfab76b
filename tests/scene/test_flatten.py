"""``scene.flatten()``: one world-space triangle table for the rasterizer, a BVH and the metrics."""

import torch

import lumigrad as lg
from lumigrad.conventions import compose_world_to_cam, axis_angle_to_matrix
from lumigrad.shading import Material


def _quad(z=0.0):
    verts = torch.tensor([[-1.0, -1, z], [1, -1, z], [1, 1, z], [-1, 1, z]])
    return verts, torch.tensor([[0, 2, 1], [0, 3, 2]])


def _scene():
    scene = lg.Scene()
    verts, faces = _quad()
    shared = Material(roughness_factor=torch.tensor(0.3))
    pose = compose_world_to_cam(axis_angle_to_matrix(torch.tensor([0.0, 0.3, 0.0])), torch.tensor([0.5, 0.0, 1.0]))
    scene.add_mesh("a", lg.SceneMesh(verts, faces, shared, uv=verts[:, :2], to_world=pose))
    scene.add_mesh("b", lg.SceneMesh(verts[:3] * 2, faces[:1], shared))  # no uv, same material
    scene.add_mesh("c", lg.SceneMesh(verts, faces, Material(metallic_factor=torch.tensor(0.5)), double_sided=True))
    scene.add_light("panel", lg.AreaLight(verts + torch.tensor([0.0, 2.0, 0.0]), faces, radiance=(2.0, 2.0, 2.0)))
    scene.add_light("key", lg.PointLight([0.0, 0.0, -2.0]))
    return scene


def test_flatten_merges_the_shapes_in_world_space():
    scene = _scene()
    flat = scene.flatten()
    assert flat.part_names == ["meshes.a", "meshes.b", "meshes.c"]
    assert flat.verts.shape == (11, 3) and flat.faces.shape == (5, 3) and flat.normals is None
    torch.testing.assert_close(flat.verts[:4], scene.meshes["a"].world_verts())
    assert torch.equal(flat.faces[2:3], scene.meshes["b"].faces[:1] + 4)
    assert torch.equal(flat.faces[3:], scene.meshes["c"].faces + 7)
    assert flat.face_part.tolist() == [0, 0, 1, 2, 2]
    assert flat.face_material.tolist() == [0, 0, 0, 1, 1]  # a and b share one material
    assert flat.materials[0] is scene.meshes["a"].material and len(flat.materials) == 2
    # texture coordinates: a's own, one zero coordinate for b (which has none), one for c
    assert flat.uv.shape == (6, 2) and torch.equal(flat.uv[:4], scene.meshes["a"].uv)
    assert flat.uv_faces[2].tolist() == [4, 4, 4]
    assert [p.first_face for p in flat.parts] == [0, 2, 3] and [p.double_sided for p in flat.parts] == \
        [False, False, True]


def test_flatten_with_emitters_and_normals():
    scene = _scene()
    flat = scene.flatten(emitters=True, normals=True)
    assert flat.part_names[-1] == "lights.panel" and flat.parts[-1].source is scene.lights["panel"]
    emitter = flat.parts[-1].material
    assert emitter.emissive_factor.tolist() == [2.0, 2.0, 2.0] and emitter.base_color_factor[:3].tolist() == [0, 0, 0]
    assert flat.normals.shape == flat.verts.shape
    n = flat.normals[:4] / flat.normals[:4].norm(dim=-1, keepdim=True)
    expected = lg.vertex_normals(scene.meshes["a"].world_verts(), scene.meshes["a"].faces)
    torch.testing.assert_close(n, expected / expected.norm(dim=-1, keepdim=True))


def test_flatten_is_differentiable_and_empty_scenes_flatten_to_nothing():
    scene = _scene()
    params = scene.trainable("meshes.a.verts", "meshes.a.to_world")
    scene.flatten().verts.sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params.values())
    empty = lg.Scene().flatten()
    assert empty.verts.shape == (0, 3) and empty.faces.shape == (0, 3) and empty.parts == []


def test_render_draws_the_flattened_table():
    scene = _scene()
    scene.lights.pop("key")
    cam = lg.Camera.look_at([0.0, 1.0, -6.0], [0.0, 0.5, 0.0], width=24, height=24)
    image = lg.render(scene, cam, background=0.0)
    assert image.shape == (24, 24, 4) and float(image[..., 3].sum()) > 0
    assert float(image[..., :3].max()) > 0  # the emitter is drawn
