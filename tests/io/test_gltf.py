"""glTF 2.0 reading: the Khronos sample assets, orientation (UV / V-flip), containers and bad files."""

import base64
import json
import math
import struct
from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.io.gltf import GltfError, read_gltf

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TEXCOORD = DATA / "gltf-texture-coordinate-test" / "glTF" / "TextureCoordinateTest.gltf"
BOTTLE = DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf"
BOX = DATA / "gltf-box-textured"
CAMERAS = DATA / "gltf-cameras" / "glTF" / "Cameras.gltf"

needs_data = pytest.mark.skipif(not TEXCOORD.exists(), reason="../shared/data is not available")


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


@needs_data
def test_texture_coordinate_test_labels_read_the_right_way_round():
    """Each labelled quad must show its corner of the template image, upright and unmirrored.

    The expectation comes from the asset's README, independently of our uv convention: the quad named
    TopLeft sits at the upper left of the default view (camera on -z, +y up, so +x is on the left) and
    shows the upper-left 40 % of the template image.
    """
    scene = read_gltf(TEXCOORD)
    assert set(scene.meshes) == {"TopLeftNode", "TopRightNode", "BottomLeftNode", "BottomRightNode", "BackPlaneNode"}
    for mesh in scene.meshes.values():
        assert mesh.double_sided
    scene.add_light("sky", lg.SHLight(torch.tensor([[math.sqrt(4 * math.pi)] * 3])))
    for mesh in scene.meshes.values():
        mesh.material.metallic_factor = torch.tensor(0.0)
    size = 200
    cam = lg.Camera.orthographic(2.6, size, size, lg.cameras.projection.look_at(
        torch.tensor([0.0, 0.0, -4.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0])))
    image = lg.render(scene, cam)[..., :3].mean(-1)
    template = scene.meshes["TopLeftNode"].material.base_color_texture[..., :3].mean(-1)
    Ht, Wt = template.shape
    px = size / 2.6  # pixels per world unit

    def crop_image(x0, x1, y0, y1):  # world x spans (x0 > x1: +x is on the left), y up
        cols = (size / 2 - torch.tensor([x0, x1]) * px).round().long()
        rows = (size / 2 - torch.tensor([y1, y0]) * px).round().long()
        return image[rows[0] + 3:rows[1] - 3, cols[0] + 3:cols[1] - 3]

    quads = {"TopLeft": ((1.2, 0.2, 0.2, 1.2), (0.0, 0.4, 0.0, 0.4)),
             "TopRight": ((-0.2, -1.2, 0.2, 1.2), (0.6, 1.0, 0.0, 0.4)),
             "BottomLeft": ((1.2, 0.2, -1.2, -0.2), (0.0, 0.4, 0.6, 1.0)),
             "BottomRight": ((-0.2, -1.2, -1.2, -0.2), (0.6, 1.0, 0.6, 1.0))}
    for name, ((x0, x1, y0, y1), (u0, u1, v0, v1)) in quads.items():
        seen = crop_image(x0, x1, y0, y1)
        expected = template[int(v0 * Ht):int(v1 * Ht), int(u0 * Wt):int(u1 * Wt)]
        side = int(round(px))  # each quad is one world unit wide and high
        expected = torch.nn.functional.interpolate(expected[None, None], size=(side, side), mode="area")[0, 0]
        expected = expected[3:-3, 3:-3][: seen.shape[0], : seen.shape[1]]
        seen = seen[: expected.shape[0], : expected.shape[1]]
        upright = _correlation(seen, expected)
        for wrong in (expected.flip(0), expected.flip(1), expected.flip(0).flip(1)):
            assert upright > _correlation(seen, wrong) + 0.2, name
        assert upright > 0.8, (name, upright)


@needs_data
def test_water_bottle_reads_every_pbr_slot_and_renders_with_gradients():
    scene = read_gltf(BOTTLE)
    (name, mesh), = scene.meshes.items()
    m = mesh.material
    for slot in ("base_color_texture", "metallic_roughness_texture", "normal_texture", "occlusion_texture",
                 "emissive_texture"):
        assert getattr(m, slot).shape[:2] == (2048, 2048), slot
    assert m.occlusion_texture is m.metallic_roughness_texture  # one image, two slots
    assert torch.equal(m.emissive_factor, torch.ones(3))
    assert mesh.normals is not None and mesh.tangents is not None and mesh.uv is not None
    # The node turns the bottle half a turn about +y (quaternion xyzw (0, 1, 0, 0)).
    assert torch.allclose(mesh.to_world[:3, :3], torch.diag(torch.tensor([-1.0, 1.0, -1.0])), atol=1e-6)
    assert torch.allclose(mesh.normals.norm(dim=-1), torch.ones(mesh.normals.shape[0]), atol=1e-3)
    names = scene.parameters()
    assert f"meshes.{name}.material.roughness_factor" in names and f"meshes.{name}.to_world" in names
    params = scene.trainable(f"meshes.{name}.material.*_factor", f"meshes.{name}.material.base_color_texture")
    assert len(params) == 7  # base colour, metallic, roughness, emissive, transmission, specular factors; texels
    scene.add_light("key", lg.PointLight(torch.tensor([0.3, 0.3, -0.5]), 0.5))
    cam = lg.Camera.look_at([0.0, 0.0, -0.5], [0.0, 0.0, 0.0], width=48, height=48, fov_y=0.7)
    image = lg.render(scene, cam)
    assert torch.isfinite(image).all() and 0.1 < float(image[..., 3].detach().mean()) < 0.5
    image[..., :3].sum().backward()
    for key, value in params.items():
        if key.endswith("transmission_factor"):  # refraction is for ray tracing: the rasterizer ignores it
            assert value.grad is None
            continue
        assert value.grad is not None and torch.isfinite(value.grad).all(), key
    assert float(params[f"meshes.{name}.material.base_color_texture"].grad.abs().sum()) > 0
    assert float(params[f"meshes.{name}.material.roughness_factor"].grad.abs()) > 0


@needs_data
def test_box_textured_gltf_and_glb_agree():
    a = read_gltf(BOX / "glTF" / "BoxTextured.gltf")
    b = read_gltf(BOX / "glTF-Binary" / "BoxTextured.glb")
    assert list(a.meshes) == list(b.meshes)
    for name in a.meshes:
        ma, mb = a.meshes[name], b.meshes[name]
        assert ma.verts.shape == (24, 3) and ma.faces.shape == (12, 3)
        for attr in ("verts", "faces", "uv", "normals", "to_world"):
            assert torch.equal(getattr(ma, attr), getattr(mb, attr)), attr
        assert torch.equal(ma.material.base_color_texture, mb.material.base_color_texture)
        assert float(ma.material.metallic_factor) == 0.0
        # The parent node's matrix turns local +y into world -z (column-major in the file).
        assert torch.allclose(ma.to_world[:3, :3], torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]))


@needs_data
def test_cameras_look_down_their_local_minus_z():
    scene = read_gltf(CAMERAS, image_height=64)
    persp, ortho = scene.cameras.values()
    assert persp.projection == "perspective" and ortho.projection == "orthographic"
    assert (persp.width, persp.height) == (64, 64)
    centre = torch.tensor([[0.5, 0.5, 0.0]])
    for cam in (persp, ortho):
        uv, depth = cam.project(centre)
        assert torch.allclose(uv, torch.tensor([[32.0, 32.0]]), atol=1e-4) and float(depth) == pytest.approx(3.0)
    # yfov 0.7: a point tan(0.35) * depth to the right lands on the right edge; xmag 1: one unit right does.
    uv, _ = persp.project(torch.tensor([[0.5 + 3 * math.tan(0.35), 0.5, 0.0]]))
    assert float(uv[0, 0]) == pytest.approx(64.0, abs=1e-3)
    uv, _ = ortho.project(torch.tensor([[1.5, 0.5, 0.0], [0.5, 1.5, 0.0]]))
    assert torch.allclose(uv, torch.tensor([[64.0, 32.0], [32.0, 0.0]]), atol=1e-4)
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, 0.0, -1.0])))
    for name in scene.cameras:
        assert float(lg.render(scene, name)[..., 3].sum()) > 100


def _write_gltf(tmp_path, doc, buffer: bytes, glb=False):
    if glb:
        doc["buffers"] = [{"byteLength": len(buffer)}]
        js = json.dumps(doc).encode()
        js += b" " * (-len(js) % 4)
        buffer += b"\0" * (-len(buffer) % 4)
        body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(buffer), 0x004E4942) + buffer
        path = tmp_path / "t.glb"
        path.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)
    else:
        doc["buffers"] = [{"byteLength": len(buffer),
                           "uri": "data:application/octet-stream;base64," + base64.b64encode(buffer).decode()}]
        path = tmp_path / "t.gltf"
        path.write_text(json.dumps(doc))
    return path


def _fan_doc():
    """A unit square as a triangle fan with interleaved (strided) positions + uvs, a sparse override,
    a TRS node under a matrix node, and a KHR spot light."""
    import numpy as np

    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    inter = np.concatenate([pos, uv], 1).astype(np.float32).tobytes()  # stride 20
    idx = np.array([0, 1, 2, 3], np.uint16).tobytes()
    sparse_idx = np.array([2], np.uint8).tobytes()
    sparse_val = np.array([[2, 2, 0]], np.float32).tobytes()
    buffer = inter + idx + sparse_idx + b"\0\0\0" + sparse_val
    o_idx, o_si, o_sv = len(inter), len(inter) + 8, len(inter) + 12
    doc = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_lights_punctual"],
        "extensions": {"KHR_lights_punctual": {"lights": [
            {"type": "spot", "color": [1, 0.5, 0.25], "intensity": 3, "spot": {"outerConeAngle": 0.5}}]}},
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(inter), "byteStride": 20},
                        {"buffer": 0, "byteOffset": o_idx, "byteLength": 8},
                        {"buffer": 0, "byteOffset": o_si, "byteLength": 1},
                        {"buffer": 0, "byteOffset": o_sv, "byteLength": 12}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
             "sparse": {"count": 1, "indices": {"bufferView": 2, "componentType": 5121},
                        "values": {"bufferView": 3}}},
            {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 1, "componentType": 5123, "count": 4, "type": "SCALAR"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "mode": 6}]}],
        "nodes": [{"name": "parent", "matrix": [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 1, 0, 0, 1], "children": [1, 2]},
                  {"name": "square.child", "mesh": 0, "translation": [0, 0, 1],
                   "rotation": [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)]},
                  {"name": "lamp", "translation": [0, 0, 5],
                   "extensions": {"KHR_lights_punctual": {"light": 0}}}],
        "scenes": [{"nodes": [0]}],
    }
    return doc, buffer


@pytest.mark.parametrize("glb", [False, True])
def test_synthetic_file_fan_strides_sparse_transforms_and_lights(tmp_path, glb):
    doc, buffer = _fan_doc()
    scene = read_gltf(_write_gltf(tmp_path, doc, buffer, glb=glb))
    mesh = scene.meshes["square_child"]
    assert torch.equal(mesh.faces, torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert torch.equal(mesh.verts[2], torch.tensor([2.0, 2.0, 0.0]))  # the sparse override
    assert torch.equal(mesh.uv[1], torch.tensor([1.0, 1.0]))  # read through the interleaved stride
    # world = parent (scale 2, shift +x) @ child (quarter turn about z, shift +z): (1, 0, 0) -> (1, 2, 2).
    assert torch.allclose(mesh.world_verts()[1], torch.tensor([1.0, 2.0, 2.0]), atol=1e-6)
    spot = scene.lights["lamp"]
    assert isinstance(spot, lg.SpotLight)
    assert torch.allclose(spot.position, torch.tensor([1.0, 0.0, 10.0]))
    assert torch.allclose(spot.direction, torch.tensor([0.0, 0.0, -1.0]))
    assert float(spot.intensity) == 3.0 and float(spot.outer_angle) == 0.5


def test_strips_alternate_winding(tmp_path):
    from lumigrad.io.gltf import _triangles
    import numpy as np

    tri = _triangles(np.arange(5), 5)
    assert tri.tolist() == [[0, 1, 2], [2, 1, 3], [2, 3, 4]]


def test_bad_files(tmp_path):
    doc, buffer = _fan_doc()
    good = _write_gltf(tmp_path, doc, buffer, glb=True).read_bytes()
    bad = tmp_path / "bad.glb"
    for cut in (10, 30, len(good) - 5):
        bad.write_bytes(good[:cut])
        with pytest.raises(GltfError, match="bad.glb"):
            read_gltf(bad)
    with pytest.raises(GltfError, match="cannot read"):
        read_gltf(tmp_path / "missing.gltf")
    cases = [
        (lambda d: d["asset"].update(version="1.0"), "version"),
        (lambda d: d.update(extensionsRequired=["KHR_draco_mesh_compression"]), "unsupported extensions"),
        (lambda d: d["meshes"][0]["primitives"][0].update(indices=7), r"accessors\[7\]"),
        (lambda d: d["accessors"][0].update(count=40), "reads"),
        (lambda d: d["bufferViews"][1].update(byteOffset=10_000), "past the end"),
        (lambda d: d["nodes"][1].update(children=[0]), "cycle"),
    ]
    for mutate, message in cases:
        doc, buffer = _fan_doc()
        mutate(doc)
        with pytest.raises(GltfError, match=message):
            read_gltf(_write_gltf(tmp_path, doc, buffer))
    doc, buffer = _fan_doc()
    doc["buffers"] = [{"byteLength": len(buffer), "uri": "nowhere.bin"}]
    (tmp_path / "ext.gltf").write_text(json.dumps(doc))
    with pytest.raises(GltfError, match="nowhere.bin"):
        read_gltf(tmp_path / "ext.gltf")


def test_uris_outside_the_folder_and_oversized_buffers_are_refused(tmp_path):
    doc, buffer = _fan_doc()
    (tmp_path / "sub").mkdir()
    (tmp_path / "secret.bin").write_bytes(buffer)
    for uri, message in (("../secret.bin", "outside the file's folder"), ("/etc/passwd", "only relative paths"),
                         ("http://example.com/a.bin", "only relative paths")):
        doc["buffers"] = [{"byteLength": len(buffer), "uri": uri}]
        (tmp_path / "sub" / "t.gltf").write_text(json.dumps(doc))
        with pytest.raises(GltfError, match=message):
            read_gltf(tmp_path / "sub" / "t.gltf")
    (tmp_path / "sub" / "small.bin").write_bytes(buffer)
    doc["buffers"] = [{"byteLength": 10**12, "uri": "small.bin"}]  # refused from the file size, before reading
    (tmp_path / "sub" / "t.gltf").write_text(json.dumps(doc))
    with pytest.raises(GltfError, match="declares 1000000000000 bytes"):
        read_gltf(tmp_path / "sub" / "t.gltf")
