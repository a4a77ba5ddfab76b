"""Fuzz read_ply and read_gltf: random and mutated files either read cleanly or raise PlyError / GltfError.

Any other exception (IndexError, KeyError, TypeError, struct.error, OverflowError, MemoryError, numpy or torch
errors, UnicodeDecodeError) or a hang is a bug in the reader. Successful reads must give int64 faces in range.
The regression tests at the end pin each crash the fuzzer found, with a minimal readable input.
"""

import base64
import copy
import io
import json
import os
import re
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumigrad.io import GltfError, PlyError, read_gltf, read_ply, write_ply

# LUMIGRAD_FUZZ_SCALE=20 runs 20x the examples with fresh random seeds (a deeper search than CI's fixed one).
SCALE = float(os.environ.get("LUMIGRAD_FUZZ_SCALE", "1"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=SCALE == 1, database=None)


def _n(examples: int) -> int:
    return max(1, int(examples * SCALE))


# ------------------------------------------------------------------------------------------------ helpers
def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _check_ply(path: Path):
    """Read ``path``; only success or PlyError (with the file named) is allowed."""
    try:
        mesh = read_ply(path)
    except PlyError as e:
        assert str(path) in str(e)
        return None
    V = mesh.verts.shape[0]
    assert mesh.verts.shape == (V, 3)
    assert mesh.faces.dtype == torch.int64 and mesh.faces.dim() == 2 and mesh.faces.shape[1] == 3
    if mesh.faces.numel():
        assert int(mesh.faces.min()) >= 0 and int(mesh.faces.max()) < V
    for t in (mesh.normals, mesh.colors, mesh.uv, *mesh.extra.values()):
        assert t is None or t.shape[0] == V
    return mesh


def _check_gltf(path: Path):
    """Read ``path``; only success or GltfError (with the file named) is allowed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scene = read_gltf(path)
    except GltfError as e:
        assert str(path) in str(e)
        return None
    for mesh in scene.meshes.values():
        V = mesh.verts.shape[0]
        assert mesh.faces.dtype == torch.int64 and mesh.faces.shape[1:] == (3,)
        if mesh.faces.numel():
            assert int(mesh.faces.min()) >= 0 and int(mesh.faces.max()) < V
    return scene


def _mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for kind, where, value in ops:
        if not buf:
            buf = bytearray(value)
            continue
        at = where % (len(buf) + 1)
        if kind == "flip":
            buf[at % len(buf)] ^= value[0] or 1
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = value
        else:  # delete a slice
            del buf[at:at + len(value)]
    return bytes(buf)


byte_ops = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete"]),
                              st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)


# ------------------------------------------------------------------------------------------------ PLY
FORMATS = ["ascii", "binary_little_endian", "binary_big_endian"]
TYPES = ["char", "uchar", "short", "ushort", "int", "uint", "float", "double", "int8", "uint32", "float64",
         "bogus", "list"]
COUNTS = ["0", "1", "-1", "-5", "7", "255", "65536", "2147483648", "99999999999999999999999", "1e3", "x", ""]


@st.composite
def ply_files(draw):
    """A valid PLY from write_ply (random mesh and format) or a hand-written header with random lists."""
    V = draw(st.integers(0, 6))
    g = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    verts = torch.randn(V, 3, generator=g, dtype=dtype)
    faces = torch.randint(0, V, (draw(st.integers(0, 4)), 3), generator=g) if V else None
    kw = {}
    if draw(st.booleans()):
        kw["normals"] = torch.randn(V, 3, generator=g, dtype=dtype)
    if draw(st.booleans()):
        kw["colors"] = (torch.randint(0, 256, (V, draw(st.sampled_from([3, 4]))), generator=g, dtype=torch.uint8)
                        if draw(st.booleans()) else torch.rand(V, 3, generator=g, dtype=dtype))
    if draw(st.booleans()):
        kw["uv"] = torch.rand(V, 2, generator=g, dtype=dtype)
    binary, order = draw(st.sampled_from([(False, "little"), (True, "little"), (True, "big")]))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.ply"
        write_ply(p, verts, faces, binary=binary, byte_order=order, **kw)
        return p.read_bytes()


def _mutate_header(data: bytes, edits) -> bytes:
    """Apply ``(line number, kind, value)`` edits to the header lines (counts, types, format, keywords)."""
    end = data.find(b"end_header\n")
    if end < 0:
        return data
    lines, body = data[:end].decode("ascii").split("\n")[:-1], data[end:]
    for lineno, kind, value in edits:
        k = lineno % len(lines)
        parts = lines[k].split()
        if kind == "count" and parts and parts[0] == "element":
            parts[-1] = value
        elif kind == "type" and len(parts) >= 3 and parts[0] == "property":
            parts[min(1 if parts[1] != "list" else 1 + lineno % 3, len(parts) - 2)] = value
        elif kind == "format" and parts and parts[0] == "format":
            parts[1] = value
        elif kind == "name" and parts:
            parts[-1] = value
        elif kind == "drop":
            parts = []
        elif kind == "dup":
            lines.insert(k, lines[k])
            continue
        lines[k] = " ".join(parts)
    return ("\n".join(lines) + "\n").encode("ascii") + body


header_edits = st.lists(st.one_of(
    st.tuples(st.integers(0, 40), st.just("count"), st.sampled_from(COUNTS)),
    st.tuples(st.integers(0, 40), st.just("type"), st.sampled_from(TYPES)),
    st.tuples(st.integers(0, 40), st.just("format"), st.sampled_from(FORMATS + ["binary", "ascii2"])),
    st.tuples(st.integers(0, 40), st.just("name"), st.sampled_from(["x", "y", "vertex", "face", "vertex_indices",
                                                                     "vertex_index", "s", "red", "nx"])),
    st.tuples(st.integers(0, 40), st.sampled_from(["drop", "dup"]), st.just("")),
), min_size=1, max_size=3)


PLY_PREFIXES = [b"", b"ply\n", b"ply\nformat ascii 1.0\n",
                b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
                b"property float z\nend_header\n"]


@settings(max_examples=_n(400), **SETTINGS)
@given(data=st.binary(max_size=300), prefix=st.sampled_from(PLY_PREFIXES))
def test_ply_random_bytes(data, prefix):
    with tempfile.TemporaryDirectory() as d:
        _check_ply(_write(Path(d), "r.ply", prefix + data))


@settings(max_examples=_n(500), **SETTINGS)
@given(base=ply_files(), ops=byte_ops)
def test_ply_byte_mutations(base, ops):
    with tempfile.TemporaryDirectory() as d:
        _check_ply(_write(Path(d), "m.ply", _mutate(base, ops)))


@settings(max_examples=_n(600), **SETTINGS)
@given(base=ply_files(), edits=header_edits, more=st.one_of(st.none(), byte_ops))
def test_ply_header_mutations(base, edits, more):
    data = _mutate_header(base, edits)
    if more is not None:
        data = _mutate(data, more)
    with tempfile.TemporaryDirectory() as d:
        _check_ply(_write(Path(d), "h.ply", data))


@settings(max_examples=_n(100), **SETTINGS)
@given(base=ply_files())
def test_ply_valid_files_read_finite(base):
    with tempfile.TemporaryDirectory() as d:
        mesh = _check_ply(_write(Path(d), "v.ply", base))
    assert mesh is not None
    assert torch.isfinite(mesh.verts).all()
    for t in (mesh.normals, mesh.colors, mesh.uv):
        assert t is None or torch.isfinite(t).all()


# ------------------------------------------------------------------------------------------------ glTF
def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10).save(out, format="PNG")
    return out.getvalue()


def _gltf_doc():
    """A small glTF document exercising every reader path, and its binary buffer."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    nrm = np.tile(np.array([[0, 0, 1]], np.float32), (4, 1))
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    idx = np.array([0, 1, 2, 0, 2, 3], np.uint16)
    sparse_idx = np.array([1], np.uint8)
    sparse_val = np.array([[2, 0, 0]], np.float32)
    png = _png()
    chunks = [pos.tobytes(), nrm.tobytes(), uv.tobytes(), idx.tobytes() + b"\0\0", sparse_idx.tobytes() + b"\0" * 3,
              sparse_val.tobytes(), png]
    views, blob = [], b""
    for c in chunks:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(c)})
        blob += c + b"\0" * (-len(c) % 4)
    views[3]["byteLength"] = idx.nbytes
    views[4]["byteLength"] = 1
    views[6]["byteLength"] = len(png)
    views[1]["byteStride"] = 12
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0, 2, 3]}],
        "nodes": [
            {"name": "quad", "mesh": 0, "translation": [0, 0, 1], "rotation": [0, 0, 0, 1], "scale": [1, 1, 1],
             "children": [1]},
            {"name": "quad2", "mesh": 1, "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]},
            {"name": "cam", "camera": 0, "translation": [0, 0, 5]},
            {"name": "lamp", "translation": [1, 2, 3], "extensions": {"KHR_lights_punctual": {"light": 0}}},
        ],
        "meshes": [
            {"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3,
                             "material": 0, "mode": 4}]},
            {"primitives": [{"attributes": {"POSITION": 4}, "mode": 6}]},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 3, "componentType": 5123, "count": 6, "type": "SCALAR"},
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
             "sparse": {"count": 1, "indices": {"bufferView": 4, "componentType": 5121},
                        "values": {"bufferView": 5}}},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 0.5, 0.5, 1], "metallicFactor": 0.0,
                                                "roughnessFactor": 0.5, "baseColorTexture": {"index": 0}},
                       "normalTexture": {"index": 0, "scale": 1.0}, "emissiveFactor": [0, 0, 0],
                       "doubleSided": True}],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"wrapS": 33071}],
        "images": [{"bufferView": 6, "mimeType": "image/png"}],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.8, "aspectRatio": 1.5, "znear": 0.1,
                                                            "zfar": 100}}],
        "extensions": {"KHR_lights_punctual": {"lights": [{"type": "spot", "color": [1, 1, 1], "intensity": 2.0,
                                                           "spot": {"innerConeAngle": 0.1,
                                                                    "outerConeAngle": 0.5}}]}},
    }
    return doc, blob


def _glb(doc, blob: bytes) -> bytes:
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    blob = blob + b"\0" * (-len(blob) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(blob), 0x004E4942) + blob
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def _save_gltf(folder: Path, doc, blob: bytes, container: str) -> Path:
    """Write ``doc`` + ``blob`` as ``.glb``, ``.gltf`` with a data URI, or ``.gltf`` with ``m.bin`` beside it."""
    doc = copy.deepcopy(doc)
    buffers = doc.get("buffers") if isinstance(doc, dict) else None
    target = buffers[0] if isinstance(buffers, list) and buffers and isinstance(buffers[0], dict) else None
    if container == "glb":
        return _write(folder, "m.glb", _glb(doc, blob))
    (folder / "m.bin").write_bytes(blob)
    if target is not None and "uri" not in target:
        target["uri"] = ("data:application/octet-stream;base64," + base64.b64encode(blob).decode()
                         if container == "data" else "m.bin")
    return _write(folder, "m.gltf", json.dumps(doc).encode())


def test_gltf_fuzz_base_document_reads():
    doc, blob = _gltf_doc()
    with tempfile.TemporaryDirectory() as d:
        for container in ("glb", "data", "file"):
            scene = _check_gltf(_save_gltf(Path(d), doc, blob, container))
            assert scene is not None and set(scene.meshes) == {"quad", "quad2"}
            assert set(scene.cameras) == {"cam"} and set(scene.lights) == {"lamp"}
            for mesh in scene.meshes.values():
                assert torch.isfinite(mesh.verts).all() and torch.isfinite(mesh.to_world).all()


BAD_VALUES = [None, True, False, -1, 0, 1, 2, 3, 4, 5, 6, 7, 100, 2 ** 31, 2 ** 40, 2 ** 70, -(2 ** 63), 0.5, -0.0,
              float("nan"), float("inf"), -float("inf"), 1e308, "", "x", "SCALAR", "VEC3", "MAT4", "../m.bin",
              "/etc/passwd", "file:///etc/passwd", "http://example.com/a.bin", "..%2Fm.bin", "data:,abc",
              "data:application/octet-stream;base64,!!!", "data:application/octet-stream;base64,AAAA", "m.bin",
              "missing.bin", "C:\\x.bin", [], [0], [1, 2], [None], [float("nan")] * 4, ["a"] * 16, [0.0] * 16,
              [[0]], {}, {"a": 1}, {"index": 0}, 5120, 5121, 5122, 5123, 5125, 5126, 5124, 10497, 33071]


def _paths(obj, prefix=()):
    """Every key path in a JSON tree (dict keys and list positions), containers included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            yield from _paths(v, prefix + (k,))


BASE_DOC, BASE_BLOB = _gltf_doc()
BASE_PATHS = list(_paths(BASE_DOC))[1:]
EXTRA_KEYS = ["byteStride", "byteOffset", "sparse", "normalized", "uri", "min", "max", "extensionsRequired",
              "children", "matrix", "sampler", "texCoord", "KHR_texture_transform", "range", "bufferView", "mode",
              "indices", "material", "camera", "mesh", "scene", "scenes", "nodes", "extensions"]


def _set(doc, path, value):
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


@st.composite
def gltf_edits(draw):
    """1-3 JSON edits: replace the value at a path, delete it, or add a key to a dict on the path."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(BASE_PATHS))
        kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        value = draw(st.one_of(st.sampled_from(BAD_VALUES), st.integers(-10, 2 ** 33)))
        edits.append((path, kind, value, draw(st.sampled_from(EXTRA_KEYS))))
    return edits


def _apply_edits(doc, edits):
    doc = copy.deepcopy(doc)
    for path, kind, value, key in edits:
        try:
            parent = doc
            for k in path[:-1]:
                parent = parent[k]
            last = path[-1]
            if kind == "replace":
                parent[last] = copy.deepcopy(value)
            elif kind == "delete":
                if isinstance(parent, dict):
                    parent.pop(last, None)
                else:
                    parent[last] = None
            elif isinstance(parent, dict):
                parent[key] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit changed the shape of the tree
    return doc


@settings(max_examples=_n(1200), **SETTINGS)
@given(edits=gltf_edits(), container=st.sampled_from(["glb", "data", "file"]))
def test_gltf_json_mutations(edits, container):
    doc = _apply_edits(BASE_DOC, edits)
    with tempfile.TemporaryDirectory() as d:
        _check_gltf(_save_gltf(Path(d), doc, BASE_BLOB, container))


@settings(max_examples=_n(300), **SETTINGS)
@given(ops=byte_ops, container=st.sampled_from(["glb", "blob"]))
def test_gltf_byte_mutations(ops, container):
    with tempfile.TemporaryDirectory() as d:
        if container == "glb":
            _check_gltf(_write(Path(d), "m.glb", _mutate(_glb(BASE_DOC, BASE_BLOB), ops)))
        else:  # the binary buffer is damaged (or truncated) but the JSON is intact
            _check_gltf(_save_gltf(Path(d), BASE_DOC, _mutate(BASE_BLOB, ops), "file"))


@settings(max_examples=_n(300), **SETTINGS)
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".glb", ".gltf"]),
       prefix=st.sampled_from([b"", b"glTF", b"glTF\x02\x00\x00\x00", b'{"asset": {"version": "2.0"}, ']))
def test_gltf_random_bytes(data, suffix, prefix):
    with tempfile.TemporaryDirectory() as d:
        _check_gltf(_write(Path(d), "r" + suffix, prefix + data))


@settings(max_examples=_n(200), **SETTINGS)
@given(doc=st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.floats() | st.text(max_size=4),
                        lambda c: st.lists(c, max_size=3) | st.dictionaries(
                            st.sampled_from(["asset", "version", "scenes", "nodes", "meshes", "accessors", "buffers",
                                             "bufferViews", "primitives", "attributes", "POSITION", "mesh", "scene",
                                             "extensionsRequired", "children", "materials"]), c, max_size=4),
                        max_leaves=20))
def test_gltf_random_json(doc):
    with tempfile.TemporaryDirectory() as d:
        _check_gltf(_write(Path(d), "j.gltf", json.dumps(doc).encode()))


# ------------------------------------------------------------------------------------------------ regressions
# One minimal input per crash the fuzzer found; each used to raise something other than PlyError / GltfError.
def test_regression_ply_duplicate_property_name(tmp_path):
    """Two vertex properties named ``y`` (types char and float) were read into one column: OverflowError."""
    path = _write(tmp_path, "dup.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
                  b"property char y\nproperty float y\nend_header\n" + struct.pack("<fbf", 0.0, 1, 2.0))
    with pytest.raises(PlyError, match="already has a property 'y'"):
        read_ply(path)


def test_regression_ply_float_face_index_nan(tmp_path):
    """A ``float`` face list holding NaN was cast to int64 (RuntimeWarning) and reported as index -2^63."""
    path = _write(tmp_path, "nan.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                  b"property float z\nelement face 1\nproperty list uchar float vertex_indices\nend_header\n"
                  b"0 0 0\n1 0 0\n0 1 0\n3 0 1 nan\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PlyError, match=r"face vertex index nan is out of range \[0, 3\) or not a whole number"):
            read_ply(path)


def test_regression_ply_signalling_nan_reads_without_warning(tmp_path):
    """A signalling-NaN float raised RuntimeWarning on the float64 conversion; NaN is read as stored."""
    snan = struct.pack(">I", 0x7F800001)
    path = _write(tmp_path, "snan.ply", b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty float x\n"
                  b"property float y\nproperty float z\nend_header\n" + snan * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isnan(read_ply(path).verts).all()


def _tiny_gltf():
    """One triangle: POSITION in a base64 data URI."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    return {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"name": "tri", "mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
            "bufferViews": [{"buffer": 0, "byteLength": 36}],
            "buffers": [{"byteLength": 36, "uri": "data:application/octet-stream;base64," +
                         base64.b64encode(pos).decode()}]}


def _edit(path: str, value):
    """An edit setting the dotted ``path`` (list positions as numbers) of the tiny document to ``value``."""
    def apply(doc):
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return doc
    return apply


def _chain(n):
    """Nodes 0..n-1, each listing the next one twice as a child: 2^n paths through a DAG (used to hang)."""
    def apply(doc):
        doc["nodes"] = [{"children": [k + 1, k + 1]} for k in range(n - 1)] + [{"mesh": 0}]
        return doc
    return apply


GLTF_REGRESSIONS = [  # (what used to crash, edit of the tiny document, part of the expected message)
    ("top-level JSON array: AttributeError", lambda doc: [doc], "top-level JSON value must be an object"),
    ("asset is a string: AttributeError", _edit("asset", "2.0"), "asset must be an object"),
    ("extensionsRequired holds a list: TypeError (unhashable)", _edit("extensionsRequired", [["x"]]),
     "extensionsRequired must be a list of strings"),
    ("scenes is a string: AttributeError", _edit("scenes", "x"), "scenes must be an array"),
    ("scene nodes is null: TypeError", _edit("scenes.0.nodes", None), "scenes[0].nodes must be an array"),
    ("node name is a number: TypeError", _edit("nodes.0.name", 5), "nodes[0].name must be a string"),
    ("node translation is null: ValueError from SceneMesh", _edit("nodes.0.translation", None),
     "nodes[0].translation must be a list of 3 finite numbers"),
    ("node matrix has NaN: plain ValueError from SceneMesh", _edit("nodes.0.matrix", [float("nan")] * 16),
     "nodes[0].matrix must be a list of 16 finite numbers"),
    ("node children form a DAG with 2^40 paths: hang", _chain(40), "reached twice"),
    ("componentType is a list: TypeError (unhashable)", _edit("accessors.0.componentType", [5126]),
     "accessors[0] has componentType"),
    ("accessor count is a string: ValueError from int()", _edit("accessors.0.count", "x"),
     "accessors[0].count must be a non-negative integer"),
    ("accessor count is Infinity: OverflowError", _edit("accessors.0.count", float("inf")),
     "accessors[0].count must be a non-negative integer"),
    ("accessor without bufferView declares 2^40 zeros: MemoryError", lambda doc: _edit("accessors.0", {
        "componentType": 5126, "count": 2 ** 40, "type": "VEC3"})(doc), "no bufferView and declares"),
    ("negative byteOffset: ValueError from numpy", _edit("bufferViews.0.byteOffset", -8),
     "bufferViews[0].byteOffset must be a non-negative integer"),
    ("negative byteStride: strided read outside the buffer", _edit("bufferViews.0.byteStride", -12),
     "bufferViews[0].byteStride must be a non-negative integer"),
    ("buffer uri is a number: AttributeError", _edit("buffers.0.uri", 5), "buffers[0].uri must be a string"),
    ("invalid base64: binascii.Error", _edit("buffers.0.uri", "data:application/octet-stream;base64,A"),
     "invalid base64"),
    ("uri with a NUL byte: ValueError from the path", _edit("buffers.0.uri", "a%00b.bin"), "only relative paths"),
    ("sparse without indices: KeyError", _edit("accessors.0.sparse", {"count": 1, "values": {"bufferView": 0}}),
     "sparse has no 'indices'"),
    ("POSITION is a SCALAR accessor: plain ValueError from SceneMesh", _edit("accessors.0.type", "SCALAR"),
     "components per element; expected 3"),
    ("camera without yfov: KeyError", lambda doc: {**doc, "nodes": [{"mesh": 0}, {"camera": 0}],
                                                     "scenes": [{"nodes": [0, 1]}],
                                                     "cameras": [{"type": "perspective", "perspective": {}}]},
     "cameras[0].perspective has no 'yfov'"),
    ("orthographic ymag 0: ZeroDivisionError", lambda doc: {**doc, "nodes": [{"camera": 0}], "scenes": [{"nodes": [0]}],
                                                           "cameras": [{"type": "orthographic", "orthographic": {
                                                               "xmag": 1, "ymag": 0}}]}, "positive xmag and ymag"),
    ("material baseColorFactor is a string: TypeError from torch", lambda doc: {
        **_edit("meshes.0.primitives.0.material", 0)(doc), "materials": [{"pbrMetallicRoughness": {
            "baseColorFactor": "red"}}]}, "baseColorFactor must be a list of 4 finite numbers"),
    ("light intensity is a string: plain ValueError from float()", lambda doc: {
        **doc, "nodes": [{"mesh": 0, "extensions": {"KHR_lights_punctual": {"light": 0}}}],
        "extensions": {"KHR_lights_punctual": {"lights": [{"type": "point", "intensity": "x"}]}}},
     "lights[0].intensity must be a finite number"),
]


@pytest.mark.parametrize("what, edit, message", GLTF_REGRESSIONS, ids=[r[0].split(":")[0] for r in GLTF_REGRESSIONS])
def test_regression_gltf(tmp_path, what, edit, message):
    path = _write(tmp_path, "t.gltf", json.dumps(edit(_tiny_gltf())).encode())
    with pytest.raises(GltfError, match=re.escape(message)):
        read_gltf(path)


def test_regression_tiny_gltf_reads(tmp_path):
    scene = read_gltf(_write(tmp_path, "t.gltf", json.dumps(_tiny_gltf()).encode()))
    assert scene.meshes["tri"].faces.tolist() == [[0, 1, 2]]
