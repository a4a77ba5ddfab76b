"""glTF: what lumigrad does not read is named in one warning per file; bad lights are refused; big trees are fast.

* unsupported extensions, morph target tangents, vertex colours, TEXCOORD_1,
  per-texture wrap modes, point / line primitives: one GltfWarning per file naming each (synthetic files and the
  Khronos sample models); files that use none of them read without a warning; an unsupported extension in
  ``extensionsRequired`` is an error.
* KHR_lights_punctual lights with a negative intensity or colour, a non-positive range or a spot cone outside
  ``0 <= inner <= outer <= pi/2`` are refused naming the light.
* World transforms of a 100,000-node chain (no recursion) and of deep / wide trees match a float64 reference.
"""

import base64
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch

from lumigrad.io import GltfError, read_gltf, write_gltf
from lumigrad.io.gltf import GltfWarning

from ..conftest import SHARED_DATA


def _buffer(*arrays) -> tuple:
    """A base64 buffer holding ``arrays`` back to back, and one (bufferView, accessor) pair per array."""
    data, views, accessors = b"", [], []
    for arr in arrays:
        kind = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}[arr.shape[1]]
        views.append({"buffer": 0, "byteOffset": len(data), "byteLength": arr.nbytes})
        accessors.append({"bufferView": len(views) - 1, "componentType": 5126, "count": arr.shape[0], "type": kind})
        data += arr.astype(np.float32).tobytes()
    uri = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
    buffers = [{"byteLength": len(data), "uri": uri}]
    return buffers, views, accessors


TRIANGLE = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)


def _png_uri() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 100, 50)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


PNG_2X2 = _png_uri()


def _write(tmp_path, doc, name="model.gltf"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _read_warnings(path, **kw):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        scene = read_gltf(path, **kw)
    return scene, [w for w in record if issubclass(w.category, UserWarning)]


def _everything_ignored() -> dict:
    """A file using every feature lumigrad ignores, each on a readable triangle."""
    buffers, views, accessors = _buffer(TRIANGLE, np.ones((3, 4), np.float32), np.zeros((3, 2), np.float32),
                                        TRIANGLE * 0.1)
    prim = {"attributes": {"POSITION": 0}, "material": 0}
    return {
        "asset": {"version": "2.0"}, "scenes": [{"nodes": [0, 1, 2, 3]}],
        "extensionsUsed": ["KHR_materials_sheen", "KHR_texture_transform", "KHR_lights_punctual"],
        "nodes": [{"name": "skinned", "mesh": 0}, {"name": "morphed", "mesh": 1},
                  {"name": "coloured", "mesh": 2}, {"name": "joint"}],
        "skins": [{"joints": [3]}],
        "animations": [{"channels": [], "samplers": []}, {"channels": [], "samplers": []}],
        "meshes": [
            {"primitives": [dict(prim)]},
            {"primitives": [dict(prim, targets=[{"POSITION": 3, "TANGENT": 1}]), dict(prim, targets=[{"POSITION": 3}]),
                            dict(prim, targets=[{"POSITION": 3}])], "weights": [0.5]},
            {"primitives": [{"attributes": {"POSITION": 0, "COLOR_0": 1, "TEXCOORD_0": 2, "TEXCOORD_1": 2},
                             "material": 1},
                            {"attributes": {"POSITION": 0}, "mode": 1}]},
        ],
        "materials": [
            {"name": "glass", "alphaMode": "BLEND",
             "extensions": {"KHR_materials_sheen": {"sheenColorFactor": [1.0, 1.0, 1.0]}}},
            {"name": "leaves", "alphaMode": "MASK", "alphaCutoff": 0.3,
             "pbrMetallicRoughness": {"baseColorTexture": {
                 "index": 0, "texCoord": 1, "extensions": {"KHR_texture_transform": {"scale": [2, 2]}}}},
             "emissiveTexture": {"index": 1}},
        ],
        "textures": [{"source": 0, "sampler": 0}, {"source": 0, "sampler": 1}],
        "samplers": [{"wrapS": 10497, "wrapT": 10497}, {"wrapS": 33071, "wrapT": 33648}],
        "images": [{"uri": PNG_2X2}],
        "buffers": buffers, "bufferViews": views, "accessors": accessors,
    }


def test_everything_ignored_is_named_in_one_warning(tmp_path):
    path = _write(tmp_path, _everything_ignored())
    scene, record = _read_warnings(path)
    assert len(record) == 1, [str(w.message) for w in record]
    assert record[0].category is GltfWarning
    message = str(record[0].message)
    assert message.startswith(f"{path}: lumigrad ignores ")
    for part in ["morph target TANGENT deltas of primitives without TANGENT (meshes[1].primitives[0].targets[0])",
                 "extensions KHR_materials_sheen, KHR_texture_transform",
                 "vertex colours COLOR_0 (meshes[2].primitives[0])",
                 "TEXCOORD_1 and above (read with TEXCOORD_0) (material 'leaves' base_color_texture)",
                 "per-texture wrap modes (the first texture's is used) (material 'leaves' repeat/clamp)",
                 "wrapT different from wrapS (wrapS is used) (samplers[1] clamp/mirror)",
                 "point and line primitives (skipped) (meshes[2].primitives[1] (mode 1))"]:
        assert part in message, part
    assert "KHR_lights_punctual" not in message  # read, so not named
    assert "alphaMode" not in message  # read since issue 18
    assert "skins" not in message and "animations" not in message  # read since issue 16
    assert "\n" not in message
    # what is read is still there
    assert sorted(scene.meshes) == ["coloured", "morphed", "morphed-1", "morphed-2", "skinned"]


def test_an_extension_used_without_being_declared_is_named(tmp_path):
    doc = _everything_ignored()
    del doc["extensionsUsed"]
    doc["nodes"][3]["extensions"] = {"EXT_mesh_gpu_instancing": {"attributes": {}}}
    doc["nodes"][3]["extras"] = {"extensions": {"NOT_AN_EXTENSION": {}}}  # extras are not extensions
    _, record = _read_warnings(_write(tmp_path, doc))
    message = str(record[0].message)
    assert "extensions EXT_mesh_gpu_instancing, KHR_materials_sheen, KHR_texture_transform;" in message
    assert "NOT_AN_EXTENSION" not in message


def test_many_places_of_one_feature_are_counted_not_listed(tmp_path):
    buffers, views, accessors = _buffer(TRIANGLE, np.ones((3, 4), np.float32))
    prim = {"attributes": {"POSITION": 0, "COLOR_0": 1}}
    doc = {"asset": {"version": "2.0"}, "nodes": [{"mesh": 0}], "meshes": [{"primitives": [prim] * 5}],
           "buffers": buffers, "bufferViews": views, "accessors": accessors}
    _, record = _read_warnings(_write(tmp_path, doc))
    assert len(record) == 1
    assert ("vertex colours COLOR_0 (meshes[0].primitives[0], meshes[0].primitives[1], meshes[0].primitives[2], "
            "... 5 in all)") in str(record[0].message)


def test_unsupported_required_extension_is_an_error(tmp_path):
    doc = _everything_ignored()
    doc["extensionsRequired"] = ["KHR_texture_transform"]
    with pytest.raises(GltfError, match="model.gltf: requires unsupported extensions \\['KHR_texture_transform'\\]"):
        read_gltf(_write(tmp_path, doc))


def test_unknown_alpha_mode_is_refused(tmp_path):
    doc = _everything_ignored()
    doc["materials"][0]["alphaMode"] = "SOMETIMES"
    with pytest.raises(GltfError, match=r"materials\[0\].alphaMode must be OPAQUE, MASK or BLEND; got 'SOMETIMES'"):
        read_gltf(_write(tmp_path, doc))


def test_alpha_mode_and_cutoff_are_read_into_the_material(tmp_path):
    doc = _everything_ignored()
    scene, _ = _read_warnings(_write(tmp_path, doc))
    materials = {m.material.alpha_mode: m.material for m in scene.meshes.values()}
    assert sorted(materials) == ["BLEND", "MASK"]
    assert materials["MASK"].alpha_cutoff == pytest.approx(0.3)
    assert materials["BLEND"].alpha_cutoff == 0.5  # glTF's default


def test_negative_alpha_cutoff_is_refused(tmp_path):
    doc = _everything_ignored()
    doc["materials"][1]["alphaCutoff"] = -0.1
    with pytest.raises(GltfError, match=r"materials\[1\].alphaCutoff must be >= 0; got -0.1"):
        read_gltf(_write(tmp_path, doc))


def test_files_using_only_what_is_read_give_no_warning(tmp_path):
    buffers, views, accessors = _buffer(TRIANGLE, np.zeros((3, 2), np.float32))
    doc = {"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_materials_ior"],
           "nodes": [{"mesh": 0}], "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1},
                                                                "material": 0}]}],
           "materials": [{"alphaMode": "OPAQUE", "extensions": {"KHR_materials_ior": {"ior": 1.4}},
                          "pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
           "textures": [{"source": 0}], "images": [{"uri": PNG_2X2}],
           "buffers": buffers, "bufferViews": views, "accessors": accessors}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = read_gltf(_write(tmp_path, doc))
    assert abs(float(scene.meshes["node0"].material.ior) - 1.4) < 1e-6


@pytest.mark.parametrize("name", ["gltf-animated-morph-cube/glTF/AnimatedMorphCube.gltf",
                                  "gltf-box/glTF/Box.gltf", "gltf-box-textured/glTF-Binary/BoxTextured.glb",
                                  "gltf-cameras/glTF/Cameras.gltf", "gltf-water-bottle/glTF/WaterBottle.gltf",
                                  "gltf-cesium-man/glTF/CesiumMan.gltf", "gltf-rigged-simple/glTF/RiggedSimple.gltf",
                                  "gltf-rigged-simple/glTF-Binary/RiggedSimple.glb"])
def test_khronos_samples_read_in_full_give_no_warning(name):
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip("shared data not present")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_gltf(path)


# --------------------------------------------------------------------------------------------------- lights
def _light_file(tmp_path, light: dict):
    doc = {"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_lights_punctual"],
           "extensions": {"KHR_lights_punctual": {"lights": [light]}},
           "nodes": [{"name": "lamp", "translation": [0, 2, 0],
                      "extensions": {"KHR_lights_punctual": {"light": 0}}}]}
    return _write(tmp_path, doc, "lights.gltf")


@pytest.mark.parametrize("light,message", [
    ({"type": "spot", "name": "key", "intensity": -5.0}, r"lights\[0\] \('key'\): intensity must be >= 0; got -5.0"),
    ({"type": "point", "intensity": -1}, r"lights\[0\]: intensity must be >= 0; got -1.0"),
    ({"type": "directional", "name": "sun", "color": [1, -0.5, 1]}, r"lights\[0\] \('sun'\): color must not be "
                                                                     "negative"),
    ({"type": "point", "range": 0}, r"lights\[0\]: range must be > 0; got 0.0"),
    ({"type": "spot", "name": "cone", "spot": {"innerConeAngle": 0.9, "outerConeAngle": 0.5}},
     r"lights\[0\] \('cone'\): spot needs 0 <= innerConeAngle <= outerConeAngle <= pi/2 and outerConeAngle > 0; "
     r"got innerConeAngle=0.9, outerConeAngle=0.5"),
    ({"type": "spot", "spot": {"innerConeAngle": -0.1, "outerConeAngle": 0.5}},
     r"lights\[0\]: spot .*innerConeAngle=-0.1"),
    ({"type": "spot", "spot": {"outerConeAngle": 2.0}}, r"lights\[0\]: spot .*outerConeAngle=2.0"),
    ({"type": "spot", "spot": {"innerConeAngle": 0.0, "outerConeAngle": 0.0}},
     r"lights\[0\]: spot .*outerConeAngle=0.0"),
], ids=["spot-negative", "point-negative", "negative-colour", "zero-range", "inner-above-outer", "negative-inner",
        "outer-beyond-right-angle", "zero-cone"])
def test_bad_lights_are_refused_naming_them(tmp_path, light, message):
    with pytest.raises(GltfError, match="lights.gltf: KHR_lights_punctual." + message):
        read_gltf(_light_file(tmp_path, light))


def test_valid_spot_cones_are_read(tmp_path):
    for inner, outer in ((0.0, math.pi / 2), (0.4, 0.4), (0.1, 0.7)):
        scene = read_gltf(_light_file(tmp_path, {"type": "spot", "intensity": 0.0,
                                                 "spot": {"innerConeAngle": inner, "outerConeAngle": outer}}))
        light = scene.lights["lamp"]
        assert (float(light.inner_angle), float(light.outer_angle)) == pytest.approx((inner, outer))


# -------------------------------------------------------------------------------------- node hierarchies
def _reference_worlds(doc: dict) -> dict:
    """Float64 world transforms by a plain parent-first loop, written independently of the reader."""
    nodes = doc["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    out = {}
    for i in range(len(nodes)):  # parents come first in these test files
        n = nodes[i]
        T = np.eye(4)
        if "matrix" in n:
            T = np.array(n["matrix"], dtype=np.float64).reshape(4, 4).T
        else:
            x, y, z, w = n.get("rotation", [0, 0, 0, 1])
            q = np.array([w, x, y, z]) / np.linalg.norm([w, x, y, z])
            w, x, y, z = q
            R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                          [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                          [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
            T[:3, :3] = R * np.array(n.get("scale", [1, 1, 1]))[None, :]
            T[:3, 3] = n.get("translation", [0, 0, 0])
        out[i] = out[parent[i]] @ T if i in parent else T
    return out


def _with_triangle(doc: dict, mesh_nodes) -> dict:
    buffers, views, accessors = _buffer(TRIANGLE)
    for i in mesh_nodes:
        doc["nodes"][i]["mesh"] = 0
        doc["nodes"][i]["name"] = f"n{i}"
    doc.update(asset={"version": "2.0"}, meshes=[{"primitives": [{"attributes": {"POSITION": 0}}]}],
               buffers=buffers, bufferViews=views, accessors=accessors)
    return doc


def test_a_100000_node_chain_reads_without_recursion_and_sums_its_translations(tmp_path):
    n = 100_000
    nodes = [{"translation": [1.0, float(i % 3), -0.5], "children": [i + 1]} for i in range(n)]
    del nodes[-1]["children"]
    doc = _with_triangle({"scenes": [{"nodes": [0]}], "nodes": nodes}, [n // 2, n - 1])
    scene = read_gltf(_write(tmp_path, doc, "chain.gltf"), dtype=torch.float64)
    expected_last = [float(n), float(sum(i % 3 for i in range(n))), -0.5 * n]
    last = scene.meshes[f"n{n - 1}"].to_world
    assert last[:3, 3].tolist() == expected_last  # exact: every partial sum is an integer or half-integer
    assert torch.equal(last[:3, :3], torch.eye(3, dtype=torch.float64))
    middle = scene.meshes[f"n{n // 2}"].to_world
    assert middle[:3, 3].tolist() == [n // 2 + 1.0, float(sum(i % 3 for i in range(n // 2 + 1))),
                                      -0.5 * (n // 2 + 1)]


def test_deep_chain_with_rotations_scales_and_matrices_matches_the_reference(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    nodes = []
    for i in range(n):
        if i % 7 == 3:
            angle = rng.uniform(-0.1, 0.1)
            M = np.eye(4)
            M[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
            M[:3, 3] = rng.uniform(-0.01, 0.01, 3)
            node = {"matrix": M.T.reshape(-1).tolist()}
        else:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            half = rng.uniform(-0.05, 0.05)
            node = {"rotation": [*(axis * math.sin(half)).tolist(), math.cos(half)],
                    "translation": rng.uniform(-0.01, 0.01, 3).tolist()}
            if i % 5 == 0:
                node["scale"] = rng.uniform(0.999, 1.001, 3).tolist()
        nodes.append(node)
    for i in range(n - 1):
        nodes[i]["children"] = [i + 1]
    mesh_nodes = [0, 1, 999, 2000, n - 1]
    doc = _with_triangle({"scenes": [{"nodes": [0]}], "nodes": nodes}, mesh_nodes)
    scene = read_gltf(_write(tmp_path, doc, "deep.gltf"), dtype=torch.float64)
    reference = _reference_worlds(doc)
    for i in mesh_nodes:
        np.testing.assert_allclose(scene.meshes[f"n{i}"].to_world.numpy(), reference[i], rtol=0, atol=1e-11)


def test_wide_tree_and_instanced_mesh(tmp_path):
    n = 50_000  # one root with 50,000 children; 501 of them instance the same mesh
    nodes = [{"translation": [0.0, 0.0, 5.0], "scale": [2.0, 2.0, 2.0], "children": list(range(1, n + 1))}]
    nodes += [{"translation": [float(i), 0.0, 0.0]} for i in range(n)]
    with_mesh = list(range(1, n + 1, 100)) + [n]
    doc = _with_triangle({"scenes": [{"nodes": [0]}], "nodes": nodes}, with_mesh)
    scene = read_gltf(_write(tmp_path, doc, "wide.gltf"), dtype=torch.float64)
    assert len(scene.meshes) == len(with_mesh)
    for i in (1, 101, with_mesh[len(with_mesh) // 3], n):
        mesh = scene.meshes[f"n{i}"]
        assert mesh.to_world[:3, 3].tolist() == [2.0 * (i - 1), 0.0, 5.0]
        assert mesh.to_world[0, 0] == 2.0
    a, b = scene.meshes["n1"].verts, scene.meshes["n101"].verts  # decoded once, but each mesh owns its tensor
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_bad_hierarchies_are_still_refused(tmp_path):
    nodes = [{"children": [1]}, {"children": [2]}, {"children": [0]}]
    with pytest.raises(GltfError, match=r"nodes\[0\] is reached twice"):
        read_gltf(_write(tmp_path, {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": nodes}))
    nodes = [{"children": [1]}, {"translation": [1e308, 0, 0], "children": [2]}, {"translation": [1e308, 0, 0]}]
    with pytest.raises(GltfError, match=r"nodes\[2\] has a world transform with NaN or Inf entries"):
        read_gltf(_write(tmp_path, {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": nodes}))
    nodes = [{"children": [1]}, {"rotation": [0, 0, 0, 0]}]
    with pytest.raises(GltfError, match=r"nodes\[1\].rotation is a zero quaternion"):
        read_gltf(_write(tmp_path, {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": nodes}))
    nodes = [{"children": [1]}, {"translation": [1, "x", 0]}]
    with pytest.raises(GltfError, match=r"nodes\[1\].translation must be a list of 3 finite numbers"):
        read_gltf(_write(tmp_path, {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": nodes}))
    nodes = [{"children": 1}]
    with pytest.raises(GltfError, match=r"nodes\[0\].children must be an array"):
        read_gltf(_write(tmp_path, {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": nodes}))


@pytest.mark.parametrize("doc", [{"scenes": [{"nodes": []}]}, {}, {"nodes": []}, {"nodes": [{}, {"children": []}]}],
                         ids=["empty-scene", "no-nodes", "empty-nodes", "nodes-without-content"])
def test_files_without_content_read_as_empty_scenes(tmp_path, doc):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = read_gltf(_write(tmp_path, dict(doc, asset={"version": "2.0"})))
    assert not scene.meshes and not scene.cameras and not scene.lights


def _transmission_doc(extension: dict) -> dict:
    buffers, views, accessors = _buffer(TRIANGLE, np.zeros((3, 2), np.float32))
    return {"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_materials_transmission"],
            "extensionsRequired": ["KHR_materials_transmission"],
            "nodes": [{"name": "pane", "mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "material": 0}]}],
            "materials": [{"name": "glass", "pbrMetallicRoughness": {"metallicFactor": 0.0},
                           "extensions": {"KHR_materials_transmission": extension}}],
            "textures": [{"source": 0}], "images": [{"uri": PNG_2X2}],
            "buffers": buffers, "bufferViews": views, "accessors": accessors}


def test_khr_materials_transmission_factor_is_read(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read in full: required, and no warning
        scene = read_gltf(_write(tmp_path, _transmission_doc({"transmissionFactor": 0.9})))
    assert float(scene.meshes["pane"].material.transmission_factor) == pytest.approx(0.9)
    doc = _transmission_doc({})
    scene = read_gltf(_write(tmp_path, doc))
    assert float(scene.meshes["pane"].material.transmission_factor) == 0.0  # the extension's default


def test_khr_materials_transmission_texture_is_named_and_its_factor_kept(tmp_path):
    doc = _transmission_doc({"transmissionFactor": 0.5, "transmissionTexture": {"index": 0}})
    scene, record = _read_warnings(_write(tmp_path, doc))
    assert [str(w.message) for w in record] == [
        f"{tmp_path / 'model.gltf'}: lumigrad ignores transmissionTexture (transmissionFactor is used alone) "
        "(material 'glass')"]
    assert float(scene.meshes["pane"].material.transmission_factor) == pytest.approx(0.5)


@pytest.mark.parametrize("factor", [1.5, -0.1, "0.5"])
def test_khr_materials_transmission_factor_out_of_range_is_refused(tmp_path, factor):
    with pytest.raises(GltfError, match=r"materials\[0\]\.extensions\.KHR_materials_transmission\.transmissionFactor"):
        read_gltf(_write(tmp_path, _transmission_doc({"transmissionFactor": factor})))


def _specular_doc(extension: dict) -> dict:
    doc = _transmission_doc({})
    doc["extensionsUsed"] = ["KHR_materials_specular"]
    doc["extensionsRequired"] = ["KHR_materials_specular"]
    doc["materials"][0]["extensions"] = {"KHR_materials_specular": extension}
    return doc


def test_khr_materials_specular_factor_is_read(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read in full: required, and no warning
        scene = read_gltf(_write(tmp_path, _specular_doc({"specularFactor": 0.25,
                                                         "specularColorFactor": [1.0, 1.0, 1.0]})))
    assert float(scene.meshes["pane"].material.specular_factor) == 0.25
    assert "meshes.pane.material.specular_factor" in scene.parameters()
    scene = read_gltf(_write(tmp_path, _specular_doc({})))
    assert float(scene.meshes["pane"].material.specular_factor) == 1.0  # the extension's default
    scene = read_gltf(_write(tmp_path, _transmission_doc({})))
    assert float(scene.meshes["pane"].material.specular_factor) == 1.0  # no extension: the core glTF coat


def test_khr_materials_specular_colour_and_textures_are_named_and_the_factor_kept(tmp_path):
    doc = _specular_doc({"specularFactor": 0.5, "specularColorFactor": [1.0, 0.5, 0.5],
                         "specularTexture": {"index": 0}})
    scene, record = _read_warnings(_write(tmp_path, doc))
    assert [str(w.message) for w in record] == [
        f"{tmp_path / 'model.gltf'}: lumigrad ignores KHR_materials_specular.specularColorFactor (white is used: "
        "F0 from ior alone) (material 'glass'); KHR_materials_specular.specularTexture (specularFactor is used "
        "alone) (material 'glass')"]
    assert float(scene.meshes["pane"].material.specular_factor) == 0.5
    doc = _specular_doc({"specularColorTexture": {"index": 0}})
    scene, record = _read_warnings(_write(tmp_path, doc))
    assert [str(w.message) for w in record] == [
        f"{tmp_path / 'model.gltf'}: lumigrad ignores KHR_materials_specular.specularColorTexture (white is used: "
        "F0 from ior alone) (material 'glass')"]


def test_khr_materials_specular_negative_colour_is_refused(tmp_path):
    with pytest.raises(GltfError, match=r"materials\[0\]\.extensions\.KHR_materials_specular\.specularColorFactor "
                                        r"must be >= 0"):
        read_gltf(_write(tmp_path, _specular_doc({"specularColorFactor": [1.0, -0.5, 1.0]})))


def test_khr_materials_specular_colour_is_warned_about_and_dropped_on_a_round_trip(tmp_path):
    """Read (the colour named in the warning), written (the factor only) and read again (same factor, no
    warning: nothing left that lumigrad does not model)."""
    doc = _specular_doc({"specularFactor": 0.25, "specularColorFactor": [0.5, 1.0, 1.0]})
    with pytest.warns(GltfWarning, match=r"KHR_materials_specular\.specularColorFactor"):
        scene = read_gltf(_write(tmp_path, doc))
    out = write_gltf(tmp_path / "again.gltf", scene)
    written = json.loads(out.read_text())["materials"][0]["extensions"]["KHR_materials_specular"]
    assert written == {"specularFactor": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_gltf(out)
    assert float(back.meshes["pane"].material.specular_factor) == 0.25


@pytest.mark.parametrize("factor", [1.5, -0.1, "0.5"])
def test_khr_materials_specular_factor_out_of_range_is_refused(tmp_path, factor):
    with pytest.raises(GltfError, match=r"materials\[0\]\.extensions\.KHR_materials_specular\.specularFactor"):
        read_gltf(_write(tmp_path, _specular_doc({"specularFactor": factor})))


def _volume_doc(volume: dict) -> dict:
    doc = _transmission_doc({"transmissionFactor": 1.0})
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_materials_transmission", "KHR_materials_volume"]
    doc["materials"][0]["extensions"]["KHR_materials_volume"] = volume
    return doc


def test_khr_materials_volume_absorption_becomes_an_interior_medium(tmp_path):
    """``sigma_a = -ln(attenuationColor) / attenuationDistance``, no scattering; thin-walled (thickness 0) or
    unattenuated volumes have none; a zero colour channel is read as 1e-6."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read in full: required, and no warning
        scene = read_gltf(_write(tmp_path, _volume_doc({"thicknessFactor": 0.5, "attenuationDistance": 2.0,
                                                        "attenuationColor": [0.5, 0.25, 1.0]})))
    medium = scene.meshes["pane"].material.interior
    assert medium.sigma_a.tolist() == pytest.approx([math.log(2) / 2, math.log(4) / 2, 0.0])
    assert medium.sigma_s.tolist() == [0.0, 0.0, 0.0]
    assert "meshes.pane.material.interior.sigma_a" in scene.parameters()
    for volume in ({"attenuationDistance": 2.0, "attenuationColor": [0.5, 0.5, 0.5]},  # thickness 0: thin
                   {"thicknessFactor": 1.0, "attenuationColor": [0.5, 0.5, 0.5]},  # infinite distance
                   {"thicknessFactor": 1.0, "attenuationDistance": 2.0}):  # white
        assert read_gltf(_write(tmp_path, _volume_doc(volume))).meshes["pane"].material.interior is None
    black = read_gltf(_write(tmp_path, _volume_doc({"thicknessFactor": 1.0, "attenuationDistance": 1.0,
                                                     "attenuationColor": [0.0, 1.0, 1.0]})))
    assert black.meshes["pane"].material.interior.sigma_a[0].item() == pytest.approx(-math.log(1e-6))


@pytest.mark.parametrize("volume, field", [({"thicknessFactor": -1.0}, "thicknessFactor"),
                                           ({"thicknessFactor": 1.0, "attenuationDistance": 0.0}, "attenuationDistance"),
                                           ({"thicknessFactor": 1.0, "attenuationColor": [1.5, 1, 1]},
                                            "attenuationColor"),
                                           ({"thicknessFactor": 1.0, "attenuationColor": [1, 1]}, "attenuationColor")])
def test_khr_materials_volume_out_of_range_is_refused(tmp_path, volume, field):
    with pytest.raises(GltfError, match=rf"materials\[0\]\.extensions\.KHR_materials_volume\.{field}"):
        read_gltf(_write(tmp_path, _volume_doc(volume)))
