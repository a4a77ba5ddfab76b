"""write_gltf_animation: a fitted animation written into a copy of the source glTF (mesh and skin kept)."""

import json
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lumigrad.animation import (forward_kinematics, linear_blend_skinning, normalize_skin_weights,
                                skin_matrices)
from lumigrad.conventions import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_matrix
from lumigrad.io import read_gltf, write_gltf_animation
from lumigrad.io.gltf import GltfError

from .test_gltf_writer import assert_valid_glb

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CESIUM = DATA / "gltf-cesium-man" / "glTF" / "CesiumMan.gltf"
needs_cesium = pytest.mark.skipif(not CESIUM.exists(),
                                  reason="../shared/data/gltf-cesium-man is not beside the checkout")
J = 19  # CesiumMan's skin joints


def _motion(T: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    times = torch.linspace(0.0, 1.0, T, dtype=torch.float64)
    R = axis_angle_to_matrix(0.6 * torch.randn(T, J, 3, generator=g, dtype=torch.float64))
    root = 0.1 * torch.randn(T, 3, generator=g, dtype=torch.float64)
    return times, R, root


def _document(path: Path):
    """(JSON, the single buffer's bytes) of a written .glb or .gltf."""
    raw = path.read_bytes()
    if raw[:4] == b"glTF":
        size = struct.unpack_from("<I", raw, 12)[0]
        doc = json.loads(raw[20:20 + size])
        blob = raw[20 + size + 8:]
    else:
        doc = json.loads(raw)
        blob = (path.parent / doc["buffers"][0]["uri"]).read_bytes()
    return doc, blob


def _accessor(doc, blob, index):
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    start = view["byteOffset"] + acc.get("byteOffset", 0)
    return np.frombuffer(blob, "<f4", acc["count"] * width, start).reshape(acc["count"], width)


@needs_cesium
@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_channels_hold_the_rotations_as_xyzw_and_the_root_translation(suffix, tmp_path):
    times, R, root = _motion()
    out = write_gltf_animation(CESIUM, tmp_path / f"fit{suffix}", times, R, translations={0: root}, name="fit")
    doc, blob = _document(out)
    if suffix == ".glb":
        assert_valid_glb(out)
    joints = doc["skins"][0]["joints"]
    (anim,) = doc["animations"]  # the source's own animation is dropped
    assert anim["name"] == "fit"
    by_target = {(c["target"]["node"], c["target"]["path"]): anim["samplers"][c["sampler"]] for c in anim["channels"]}
    assert len(by_target) == J + 1
    for j, node in enumerate(joints):
        sampler = by_target[(node, "rotation")]
        assert sampler["interpolation"] == "LINEAR"
        t = _accessor(doc, blob, sampler["input"])[:, 0]
        np.testing.assert_allclose(t, times.numpy(), atol=1e-7)
        assert doc["accessors"][sampler["input"]]["min"] == [0.0] and doc["accessors"][sampler["input"]]["max"] == [1.0]
        xyzw = torch.from_numpy(_accessor(doc, blob, sampler["output"]).astype(np.float64))
        wxyz = xyzw[:, [3, 0, 1, 2]]
        torch.testing.assert_close(quaternion_to_matrix(wxyz), R[:, j], atol=1e-6, rtol=0)
        assert bool(((wxyz[1:] * wxyz[:-1]).sum(-1) >= 0).all())  # sign-continuous: slerp takes the short way
    root_t = _accessor(doc, blob, by_target[(joints[0], "translation")]["output"])
    np.testing.assert_allclose(root_t, root.numpy(), atol=1e-7)


@needs_cesium
@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_mesh_skin_and_texture_are_kept(suffix, tmp_path):
    times, R, _ = _motion()
    out = write_gltf_animation(CESIUM, tmp_path / f"fit{suffix}", times, matrix_to_quaternion(R))
    source = json.loads(CESIUM.read_text())
    doc, _ = _document(out)
    for key in ("nodes", "skins", "meshes", "materials", "textures", "scenes"):
        assert doc[key] == source[key], key
    assert "uri" not in doc["images"][0] and doc["images"][0]["mimeType"] == "image/jpeg"
    a, b = read_gltf(CESIUM), read_gltf(out)
    for (na, ma), (nb, mb) in zip(a.meshes.items(), b.meshes.items()):
        assert torch.equal(ma.verts, mb.verts) and torch.equal(ma.faces, mb.faces) and torch.equal(ma.uv, mb.uv)
        assert torch.equal(ma.material.base_color_texture, mb.material.base_color_texture)


@needs_cesium
def test_a_subset_of_joints_and_per_joint_translations(tmp_path):
    times, R, _ = _motion(T=3)
    trans = torch.randn(3, 2, 3, dtype=torch.float64)
    out = write_gltf_animation(CESIUM, tmp_path / "fit.glb", times, R[:, [4, 7]], joints=[4, 7], translations=trans,
                               keep_animations=True)
    doc = assert_valid_glb(out)
    assert len(doc["animations"]) == 2 and len(doc["animations"][1]["channels"]) == 4


@needs_cesium
def test_bad_input_names_the_argument(tmp_path):
    times, R, root = _motion(T=3)
    out = tmp_path / "fit.glb"
    with pytest.raises(ValueError, match="out_path"):
        write_gltf_animation(CESIUM, tmp_path / "fit.obj", times, R)
    with pytest.raises(ValueError, match="strictly increasing"):
        write_gltf_animation(CESIUM, out, torch.tensor([0.0, 0.5, 0.5]), R)
    with pytest.raises(ValueError, match="times must be >= 0"):
        write_gltf_animation(CESIUM, out, times - 1, R)
    with pytest.raises(ValueError, match="times contains NaN"):
        write_gltf_animation(CESIUM, out, torch.tensor([0.0, math.nan, 1.0]), R)
    with pytest.raises(ValueError, match="rotations must have T = 2"):
        write_gltf_animation(CESIUM, out, times[:2], R)
    with pytest.raises(ValueError, match="rotations must be rotation matrices"):
        write_gltf_animation(CESIUM, out, times, 2 * R)
    with pytest.raises(ValueError, match="zero quaternion"):
        write_gltf_animation(CESIUM, out, times, torch.zeros(3, J, 4))
    with pytest.raises(ValueError, match="rotations contains NaN"):
        write_gltf_animation(CESIUM, out, times, torch.full((3, J, 4), math.nan))
    with pytest.raises(ValueError, match="pass joints="):
        write_gltf_animation(CESIUM, out, times, R[:, :3])
    with pytest.raises(ValueError, match="joints must hold"):
        write_gltf_animation(CESIUM, out, times, R[:, :2], joints=[0, 19])
    with pytest.raises(ValueError, match="repeated"):
        write_gltf_animation(CESIUM, out, times, R[:, :2], joints=[1, 1])
    with pytest.raises(ValueError, match="translations"):
        write_gltf_animation(CESIUM, out, times, R, translations=root)
    with pytest.raises(ValueError, match="skin must be"):
        write_gltf_animation(CESIUM, out, times, R, skin=1)
    with pytest.raises(GltfError):
        write_gltf_animation(tmp_path / "missing.gltf", out, times, R)
    assert not out.exists()


@needs_cesium
@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_round_trip_through_the_gltf_animation_loader(suffix, tmp_path):
    """Written, read back by read_gltf and sampled at the frame times: the same local rotations and root
    translation (to 1e-6), and the posed mesh of Scene.at equals the mesh posed by the written values."""
    _, R, root = _motion(T=6, seed=3)
    times = torch.tensor([0.0, 0.125, 0.25, 0.5, 0.75, 1.5], dtype=torch.float64)  # exact in float32
    out = write_gltf_animation(CESIUM, tmp_path / f"fit{suffix}", times, R, translations={0: root}, name="fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader's notes on CesiumMan's float32-rounded skin weights
        scene = read_gltf(out, dtype=torch.float64)
    assert list(scene.animations) == ["fit"]
    (mesh,) = scene.meshes.values()
    names = mesh.skeleton.names[:J]
    sampled = scene.animations["fit"].sample(times)
    for j, name in enumerate(names):
        torch.testing.assert_close(quaternion_to_matrix(sampled[name]["rotation"]), R[:, j], atol=1e-6, rtol=0)
    torch.testing.assert_close(sampled[names[0]]["translation"], root, atol=1e-6, rtol=0)
    for k in (0, 3):  # Scene.at poses the skinned mesh from the same values
        posed = scene.at(float(times[k])).meshes[next(iter(scene.meshes))].verts
        sk = mesh.skeleton
        rot = quaternion_to_matrix(sk.rest_rotation).clone()
        rot[:J] = R[k]
        trans = sk.rest_translation.clone()
        trans[0] = root[k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weights = normalize_skin_weights(mesh.skin_weights)
        mats = skin_matrices(sk, forward_kinematics(sk, rot, trans))
        expect = linear_blend_skinning(mesh.verts, mesh.joints, weights, mats)
        torch.testing.assert_close(posed, expect, atol=1e-6, rtol=0)

