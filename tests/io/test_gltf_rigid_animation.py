"""Rigid glTF node animation: meshes and cameras below animated (non-joint) nodes move in ``Scene.at``.

References are independent: the JSON and binary buffers are read with numpy (:class:`_Doc` of
``test_gltf_animation``) and the node matrices composed with plain 4x4 products at the keyframe times.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io.gltf import read_gltf

from ..conftest import SHARED_DATA
from .test_gltf_animation import _Doc, _need

BOX = SHARED_DATA / "gltf-box" / "glTF" / "Box.gltf"
CAMERAS = SHARED_DATA / "gltf-cameras" / "glTF" / "Cameras.gltf"


def _quat_xyzw(axis, angle):
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])


def _add_animation(doc, folder, channels, times):
    """Append an animation to ``doc`` whose data sits in a new ``anim.bin`` in ``folder``.

    ``channels``: ``[(node, path, values [K, C])]``, all sampled at ``times`` [K] (LINEAR)."""
    blobs = [np.asarray(times, np.float32)] + [np.asarray(v, np.float32) for _, _, v in channels]
    raw, views = b"", []
    for blob in blobs:
        views.append((len(raw), blob.nbytes))
        raw += blob.tobytes()
    (folder / "anim.bin").write_bytes(raw)
    doc.setdefault("buffers", []).append({"uri": "anim.bin", "byteLength": len(raw)})
    buffer = len(doc["buffers"]) - 1
    first_view, first_accessor = len(doc.setdefault("bufferViews", [])), len(doc.setdefault("accessors", []))
    for offset, length in views:
        doc["bufferViews"].append({"buffer": buffer, "byteOffset": offset, "byteLength": length})
    types = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}
    for k, blob in enumerate(blobs):
        acc = {"bufferView": first_view + k, "componentType": 5126, "count": len(blob),
               "type": types[1 if blob.ndim == 1 else blob.shape[1]]}
        if k == 0:
            acc.update(min=[float(blob.min())], max=[float(blob.max())])
        doc["accessors"].append(acc)
    doc.setdefault("animations", []).append({
        "name": "move",
        "samplers": [{"input": first_accessor, "output": first_accessor + 1 + c} for c in range(len(channels))],
        "channels": [{"sampler": c, "target": {"node": node, "path": path}}
                     for c, (node, path, _) in enumerate(channels)]})


def _hand_built(tmp_path):
    """A static Y-up root (matrix) > animated ``base`` > static scaled ``arm`` > animated ``crate`` (a mesh);
    a camera hangs from ``base`` through a static node; a second mesh ``still`` is not animated."""
    tri = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    (tmp_path / "tri.bin").write_bytes(tri.tobytes())
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0, 6]}],
        "nodes": [
            {"name": "root", "children": [1], "matrix": [1, 0, 0, 0, 0, 0, -1, 0, 0, 1, 0, 0, 0.5, 0, 0, 1]},
            {"name": "base", "children": [2, 4], "translation": [1, 0, 0]},
            {"name": "arm", "children": [3], "translation": [0, 2, 0], "scale": [1, 2, 1],
             "rotation": list(_quat_xyzw([1, 1, 0], 0.4))},
            {"name": "crate", "mesh": 0, "scale": [1, 1, 1]},
            {"name": "rig", "children": [5], "translation": [0, 0, 3], "rotation": list(_quat_xyzw([0, 1, 0], 0.3))},
            {"name": "eye", "camera": 0, "translation": [0, 0.5, 0]},
            {"name": "still", "mesh": 0, "translation": [0, 0, -2]},
        ],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.8, "aspectRatio": 1.5, "znear": 0.1}}],
        "buffers": [{"uri": "tri.bin", "byteLength": tri.nbytes}],
        "bufferViews": [{"buffer": 0, "byteLength": tri.nbytes}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]}],
    }
    times = [0.0, 1.0, 2.0]
    channels = [
        (1, "translation", [[1, 0, 0], [1, 1, 0], [0, 1, 2]]),
        (1, "rotation", [_quat_xyzw([0, 0, 1], a) for a in (0.0, 0.7, 1.9)]),
        (3, "rotation", [_quat_xyzw([1, 0, 1], a) for a in (0.2, -0.5, 1.1)]),
        (3, "scale", [[1, 1, 1], [2, 1, 0.5], [0.5, 0.5, 3]]),
    ]
    _add_animation(doc, tmp_path, channels, times)
    path = tmp_path / "rigid.gltf"
    path.write_text(json.dumps(doc))
    return path


def _reference_world_to_cam(c2w_gl):
    c2w = c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0])
    c2w[:3, :3] /= np.linalg.norm(c2w[:3, :3], axis=0, keepdims=True)
    return np.linalg.inv(c2w)


def test_hand_built_node_animation_moves_meshes_and_camera_at_every_keyframe(tmp_path):
    path = _hand_built(tmp_path)
    ref = _Doc(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rigid node animation is read, not noted as ignored
        scene = read_gltf(path, dtype=torch.float64)
    assert scene.rigid_nodes.names == ["base", "crate"] and scene.rigid_nodes.parents == [-1, 0]
    for key in range(3):
        overrides, t = ref.key_overrides(0, key)
        world = ref.world(overrides)
        posed = scene.at(t)
        np.testing.assert_allclose(posed.meshes["crate"].to_world.numpy(), world[3], atol=1e-5)
        np.testing.assert_allclose(posed.cameras["eye"].world_to_cam.numpy(), _reference_world_to_cam(world[5]),
                                   atol=1e-5)
        assert posed.meshes["still"] is scene.meshes["still"]  # not below an animated node: shared
        assert not np.allclose(world[3], ref.world({})[3]) or key == 0
    # at rest (t = 0 keys equal the file's rest values for base) the reader's transforms agree with the rig
    rest = scene.rigid_nodes.world()
    np.testing.assert_allclose(rest[1].numpy() @ scene.rigid_nodes.meshes["crate"][1].numpy(),
                               scene.meshes["crate"].to_world.numpy(), atol=1e-12)


def test_node_animation_between_keys_and_pickle(tmp_path):
    import pickle

    scene = read_gltf(_hand_built(tmp_path), dtype=torch.float64)
    # half-way between keys 0 and 1 the base's translation is the mean of (1, 0, 0) and (1, 1, 0); the crate
    # moves with the base, so its origin moves by the base's rotated offset: compare against two posed scenes
    half = scene.at(0.5).meshes["crate"].to_world
    overrides = {"base": {"translation": torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64),
                          "rotation": torch.tensor([np.cos(0.175), 0, 0, np.sin(0.175)], dtype=torch.float64)},
                 "crate": {"rotation": torch.tensor(np.r_[np.cos(-0.075), np.array([1, 0, 1]) / np.sqrt(2)
                                                          * np.sin(-0.075)], dtype=torch.float64),
                           "scale": torch.tensor([1.5, 1.0, 0.75], dtype=torch.float64)}}
    world = scene.rigid_nodes.world(overrides)
    # the file stores the keys in float32, the reference values above are exact
    np.testing.assert_allclose(half.numpy(), (world[1] @ scene.rigid_nodes.meshes["crate"][1]).numpy(), atol=1e-6)
    again = pickle.loads(pickle.dumps(scene))
    assert torch.allclose(again.at(1.5).meshes["crate"].to_world, scene.at(1.5).meshes["crate"].to_world)


def test_node_animation_is_differentiable_in_the_keyframe_values(tmp_path):
    scene = read_gltf(_hand_built(tmp_path), dtype=torch.float64)
    tracks = {(c.target, c.path): c.track for c in scene.animations["move"].channels}
    base_t, crate_s = tracks[("base", "translation")], tracks[("crate", "scale")]

    def posed(bt, cs):
        base_t.values, crate_s.values = bt, cs
        frame = scene.at(0.75)
        verts = frame.meshes["crate"].world_verts()
        return verts, frame.cameras["eye"].world_to_cam

    v0, v1 = base_t.values.clone().requires_grad_(), crate_s.values.clone().requires_grad_()
    assert torch.autograd.gradcheck(posed, (v0, v1))


def test_box_asset_with_an_added_node_animation(tmp_path):
    """Khronos' Box (a static matrix root above the mesh node) with a rotation + translation channel added to
    the mesh node: the box moves as the composed node matrices say."""
    _need(BOX)
    shutil.copy(BOX.parent / "Box0.bin", tmp_path / "Box0.bin")
    doc = json.loads(BOX.read_text())
    channels = [(1, "translation", [[0, 0, 0], [0.5, -1, 2], [3, 0, 1]]),
                (1, "rotation", [_quat_xyzw([0, 1, 0], a) for a in (0.0, 1.2, 2.5)])]
    _add_animation(doc, tmp_path, channels, [0.0, 0.5, 1.0])
    path = tmp_path / "Box.gltf"
    path.write_text(json.dumps(doc))
    ref = _Doc(path)
    scene = read_gltf(path, dtype=torch.float64)
    (name,) = scene.meshes
    for key in range(3):
        overrides, t = ref.key_overrides(0, key)
        np.testing.assert_allclose(scene.at(t).meshes[name].to_world.numpy(), ref.world(overrides)[1], atol=1e-5)


def test_cameras_asset_with_an_animated_camera_node(tmp_path):
    """Khronos' Cameras sample with its first camera node and the mesh node animated."""
    _need(CAMERAS)
    doc = json.loads(CAMERAS.read_text())
    for b in doc["buffers"]:
        shutil.copy(CAMERAS.parent / b["uri"], tmp_path / b["uri"])
    channels = [(1, "translation", [[0.5, 0.5, 3.0], [1.0, 0.0, 4.0]]),
                (1, "rotation", [_quat_xyzw([0, 1, 0], a) for a in (0.0, 0.6)]),
                (0, "rotation", [_quat_xyzw([1, 0, 0], a) for a in (-0.8, 0.4)])]
    _add_animation(doc, tmp_path, channels, [0.0, 1.0])
    path = tmp_path / "Cameras.gltf"
    path.write_text(json.dumps(doc))
    ref = _Doc(path)
    scene = read_gltf(path, dtype=torch.float64)
    moving, fixed = list(scene.cameras)
    for key in range(2):
        overrides, t = ref.key_overrides(0, key)
        world = ref.world(overrides)
        posed = scene.at(t)
        np.testing.assert_allclose(posed.cameras[moving].world_to_cam.numpy(), _reference_world_to_cam(world[1]),
                                   atol=1e-5)
        assert posed.cameras[fixed] is scene.cameras[fixed]
        (mesh,) = posed.meshes.values()
        np.testing.assert_allclose(mesh.to_world.numpy(), world[0], atol=1e-5)


def test_light_below_an_animated_node_is_named_in_the_warning(tmp_path):
    path = _hand_built(tmp_path)
    doc = json.loads(path.read_text())
    doc["extensionsUsed"] = ["KHR_lights_punctual"]
    doc["extensions"] = {"KHR_lights_punctual": {"lights": [{"type": "point"}]}}
    doc["nodes"][2]["extensions"] = {"KHR_lights_punctual": {"light": 0}}
    path.write_text(json.dumps(doc))
    with pytest.warns(lg.io.gltf.GltfWarning, match="lights below animated nodes .*light arm"):
        read_gltf(path)


def test_morphed_mesh_on_an_animated_node_is_morphed_then_moved(tmp_path):
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    delta = np.full((3, 3), 0.5, np.float32)
    (tmp_path / "t.bin").write_bytes(pos.tobytes() + delta.tobytes())
    doc = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"name": "m", "mesh": 0}],
           "meshes": [{"weights": [1.0], "primitives": [{"attributes": {"POSITION": 0},
                                                         "targets": [{"POSITION": 1}]}]}],
           "buffers": [{"uri": "t.bin", "byteLength": 72}],
           "bufferViews": [{"buffer": 0, "byteLength": 36}, {"buffer": 0, "byteOffset": 36, "byteLength": 36}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0],
                          "max": [1, 1, 0]}, {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC3"}]}
    _add_animation(doc, tmp_path, [(0, "translation", [[0, 0, 0], [0, 0, 5]])], [0.0, 1.0])
    (tmp_path / "m.gltf").write_text(json.dumps(doc))
    scene = read_gltf(tmp_path / "m.gltf", dtype=torch.float64)
    assert isinstance(scene.meshes["m"], lg.SkinnedMesh) and scene.rigid_nodes.names == ["m"]
    expected = pos + delta + np.array([0, 0, 5.0])
    np.testing.assert_allclose(scene.at(1.0).meshes["m"].world_verts().numpy(), expected, atol=1e-12)
