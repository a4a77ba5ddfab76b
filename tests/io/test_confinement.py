"""One confinement rule for every reader (issue 12, item 2): files named inside a file stay inside its folder.

Each test plants a file outside the input's folder whose content carries a secret marker, points a hostile
reference at it (absolute path, ``../`` escape, symbolic link, FIFO) and checks that the reader refuses it
with a :class:`ConfinementError` (also the reader's own error type), that the marker reaches no exception or
warning text, and that ``trust_paths=True`` is the explicit opt-in that reads it.
"""

import base64
import json
import os
import struct
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad import io
from lumigrad.io import ConfinementError, GltfError, MtlError, ObjError
from lumigrad.io.colmap import read_colmap, write_colmap
from lumigrad.io.dataset import read_dataset, read_depth_maps
from lumigrad.io.gltf import read_gltf
from lumigrad.io.image import write_image
from lumigrad.io.mtl import read_mtl
from lumigrad.io.nerf import read_nerf_transforms, write_nerf_transforms
from lumigrad.io.obj import read_obj_with_materials

MARKER = "s3cret-MARKER-7f3a"
# Looks like /etc/passwd, with the marker in every line and in a statement an MTL reader understands.
SECRET_TEXT = (f"root:x:0:0:{MARKER}:/root:/bin/bash\n"
               f"daemon:x:1:1:{MARKER}:/usr/sbin:/usr/sbin/nologin\n"
               f"newmtl {MARKER}-name\nKd {MARKER} 1 1\n")
TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX symlinks")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")


@pytest.fixture
def tree(tmp_path):
    """``outside/`` with a secret text file and a secret image; ``scene/`` is the downloaded folder."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mtl").write_text(SECRET_TEXT)
    (outside / "secret.txt").write_text(SECRET_TEXT)
    write_image(outside / "outside.png", torch.full((2, 2, 3), 0.25))
    scene = tmp_path / "scene"
    scene.mkdir()
    write_image(scene / "inside.png", torch.full((2, 2, 3), 0.75))
    return tmp_path


def _collect(fn):
    """Run ``fn``; return ``(result or None, exception or None, [warning texts])``."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            return fn(), None, [str(w.message) for w in record]
        except Exception as exc:  # noqa: BLE001  the test inspects it
            return None, exc, [str(w.message) for w in record]


def _assert_refused(fn, *types, name=None):
    """``fn()`` raises a ConfinementError that is also each of ``types``; nothing planted leaks."""
    result, exc, texts = _collect(fn)
    assert exc is not None, f"not refused; returned {result!r}"
    assert isinstance(exc, ConfinementError) and isinstance(exc, ValueError), repr(exc)
    for t in types:
        assert isinstance(exc, t), repr(exc)
    for text in [str(exc)] + texts:
        assert MARKER not in text and "root:x:0:0" not in text, text
    if name is not None:
        assert name in str(exc), str(exc)
    assert "trust_paths=True" in str(exc) or "regular file" in str(exc)
    return exc


def _obj(folder: Path, mtllib: str, name: str = "m.obj") -> Path:
    p = folder / name
    p.write_text(f"mtllib {mtllib}\n{TRIANGLE}usemtl a\nf 1/1 2/2 3/3\n")
    return p


# ------------------------------------------------------------------------------------------------ OBJ / MTL
def test_mtllib_etc_passwd_is_refused_without_echoing_it(tree):
    p = _obj(tree / "scene", "/etc/passwd")
    exc = _assert_refused(lambda: read_obj_with_materials(p), ObjError, name="/etc/passwd")
    assert f"{p}:1:" in str(exc)  # the OBJ file and the line
    _assert_refused(lambda: lg.io.read_mesh(p), ObjError)
    _assert_refused(lambda: io.load(p), ObjError)
    # The geometry alone reads: read_obj follows no file names.
    assert io.read_obj(p)[1].tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "dotdot-deep", "two-libraries"])
def test_mtllib_outside_the_folder_is_refused(tree, kind):
    secret = tree / "outside" / "secret.mtl"
    mtllib = {"absolute": str(secret), "dotdot": "../outside/secret.mtl",
              "dotdot-deep": "sub/../../outside/secret.mtl", "two-libraries": "lib.mtl ../outside/secret.mtl"}[kind]
    (tree / "scene" / "lib.mtl").write_text("newmtl a\nKd 1 0 0\n")
    p = _obj(tree / "scene", mtllib)
    _assert_refused(lambda: read_obj_with_materials(p), ObjError)


def test_trust_paths_reads_an_absolute_mtllib_and_still_echoes_nothing(tree):
    lib = tree / "outside" / "lib.mtl"
    lib.write_text(f"newmtl a\nKd 0 1 0\nmap_Kd {tree / 'outside' / 'outside.png'}\n")
    p = _obj(tree / "scene", str(lib))
    _assert_refused(lambda: read_obj_with_materials(p), ObjError)
    d = read_obj_with_materials(p, trust_paths=True)
    assert d.mtllibs == [lib.resolve()] and d.material_names[0] == "a"
    assert d.materials[0].base_color_texture.shape == (2, 2, 3)
    mesh = io.load(p, trust_paths=True)
    assert mesh.materials[0].base_color_texture is not None
    # A trusted mtllib that is really some other text file: parsed, but its content never reaches a message.
    q = _obj(tree / "scene", str(tree / "outside" / "secret.txt"), "q.obj")
    _, exc, texts = _collect(lambda: read_obj_with_materials(q, trust_paths=True))
    assert isinstance(exc, MtlError)
    assert f"secret.txt:4: Kd: Kd value 1 is not a number" in str(exc)
    for text in [str(exc)] + texts:
        assert MARKER not in text and "root:x" not in text and "daemon" not in text, text


@pytest.mark.parametrize("statement", [
    "map_Kd {abs}", "map_Kd ../outside/outside.png", "map_Kd -bm 1 ../outside/outside.png",
    "map_Kd -s 1 1 1 -o 0.5 -clamp on {abs}", "norm -bm 0.5 ../outside/outside.png", "bump ../outside/outside.png",
    "map_Bump -bm 2 {abs}", "map_d ..\\outside\\outside.png", "map_Pr ../outside/outside.png",
    "map_Pm {abs}", "map_Ke ../outside/outside.png", "map_ao ../outside/outside.png", "map_Ks {abs}",
])
def test_mtl_texture_outside_the_folder_is_refused(tree, statement):
    line = statement.format(abs=tree / "outside" / "outside.png")
    mtl = tree / "scene" / "m.mtl"
    mtl.write_text(f"newmtl a\nKd 1 1 1\n{line}\n")
    exc = _assert_refused(lambda: read_mtl(mtl), MtlError, ObjError)
    assert f"{mtl}:3:" in str(exc)
    # Through the OBJ as well, and accepted when trusted.
    p = _obj(tree / "scene", "m.mtl")
    _assert_refused(lambda: read_obj_with_materials(p), MtlError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_mtl(mtl, trust_paths=True)["a"] is not None


def test_ignored_statements_name_no_file_that_is_read(tree):
    # disp / refl / decal are understood and ignored: nothing is opened, so nothing is refused either.
    mtl = tree / "scene" / "m.mtl"
    mtl.write_text(f"newmtl a\ndisp /etc/passwd\nrefl -type sphere ../outside/secret.txt\nmap_Kd inside.png\n")
    m = read_mtl(mtl)["a"]
    assert m.base_color_texture.shape == (2, 2, 3)


@needs_symlinks
def test_symlinks_inside_the_folder_that_point_outside_are_refused(tree):
    scene = tree / "scene"
    os.symlink(tree / "outside" / "secret.mtl", scene / "linked.mtl")
    os.symlink(tree / "outside" / "outside.png", scene / "linked.png")
    os.symlink(tree / "outside", scene / "linked_dir")
    os.symlink(scene / "inside.png", scene / "alias.png")  # a link that stays inside is fine
    p = _obj(scene, "linked.mtl")
    _assert_refused(lambda: read_obj_with_materials(p), ObjError, name="linked.mtl")
    for texture in ("linked.png", "linked_dir/outside.png"):
        mtl = scene / "t.mtl"
        mtl.write_text(f"newmtl a\nmap_Kd {texture}\n")
        _assert_refused(lambda: read_mtl(mtl), MtlError)
    mtl.write_text("newmtl a\nmap_Kd alias.png\n")
    assert read_mtl(mtl)["a"].base_color_texture.shape == (2, 2, 3)
    mtl.write_text("newmtl a\nmap_Kd linked.png\n")
    assert read_mtl(mtl, trust_paths=True)["a"].base_color_texture.shape == (2, 2, 3)
    # A link loop is an error naming the file, not a hang or a RuntimeError.
    os.symlink(scene / "loop_b.png", scene / "loop_a.png")
    os.symlink(scene / "loop_a.png", scene / "loop_b.png")
    mtl.write_text("newmtl a\nmap_Kd loop_a.png\n")
    with pytest.raises(MtlError, match="t.mtl:2"):
        read_mtl(mtl)


@needs_fifo
def test_fifo_and_folder_textures_are_refused_without_blocking(tree):
    scene = tree / "scene"
    os.mkfifo(scene / "fifo.png")
    (scene / "dir.png").mkdir()
    mtl = scene / "m.mtl"
    for name, kind in (("fifo.png", "FIFO"), ("dir.png", "folder")):
        mtl.write_text(f"newmtl a\nmap_Kd {name}\n")
        start = time.monotonic()
        exc = _assert_refused(lambda: read_mtl(mtl, trust_paths=True), MtlError)
        assert kind in str(exc) and time.monotonic() - start < 5
    p = _obj(scene, "fifo.png")
    _assert_refused(lambda: read_obj_with_materials(p), ObjError)


def test_errors_and_warnings_never_quote_the_line(tree):
    scene = tree / "scene"
    cases = {
        f"v 0 0 {MARKER}\n": "m.obj:1: v: value 3 is not a number",
        f"{TRIANGLE}f 1 2 {MARKER}\n": "corner 3: the vertex index is not an integer",
        f"{TRIANGLE}f 1/{MARKER} 2 3\n": "corner 1: the texture coordinate index is not an integer",
    }
    for text, expected in cases.items():
        (scene / "m.obj").write_text(text)
        _, exc, texts = _collect(lambda: read_obj_with_materials(scene / "m.obj"))
        assert isinstance(exc, ObjError) and expected in str(exc), str(exc)
        assert all(MARKER not in t for t in [str(exc)] + texts)
    mtl_cases = {
        f"newmtl a\nNs {MARKER}\n": "m.mtl:2: Ns: Ns is not a number",
        f"newmtl a\nKd 1 {MARKER} 1\n": "m.mtl:2: Kd: Kd value 2 is not a number",
        f"newmtl a\nillum {MARKER}\n": "m.mtl:2: illum: illum needs one integer",
        f"newmtl a\nmap_Kd -bm {MARKER} x.png\n": "m.mtl:2: map_Kd: map option -bm is not a number",
        f"Kd {MARKER}\n": "m.mtl:1: Kd: statement before any newmtl",
    }
    for text, expected in mtl_cases.items():
        (scene / "m.mtl").write_text(text)
        _, exc, texts = _collect(lambda: read_mtl(scene / "m.mtl"))
        assert isinstance(exc, MtlError) and expected in str(exc), str(exc)
        assert all(MARKER not in t for t in [str(exc)] + texts)
    # Unknown statements: the warning names identifier-like keywords and line numbers, never other text.
    (scene / "m.mtl").write_text(f"newmtl a\nfrobnicate {MARKER}\n{MARKER}:x:0:0\nKd 1 1 1\n")
    result, exc, texts = _collect(lambda: read_mtl(scene / "m.mtl"))
    assert exc is None and len(texts) == 1
    assert "unknown MTL statements frobnicate (lines 2, 3)" in texts[0] and MARKER not in texts[0]


# ---------------------------------------------------------------------------------------------------- glTF
def _textured_gltf(folder: Path, image_uri: str, buffer_uri=None) -> Path:
    """A one-triangle glTF whose material's base colour texture is ``image_uri``."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes()
    uv = np.array([[0, 0], [1, 0], [0, 1]], np.float32).tobytes()
    data = pos + uv
    doc = {
        "asset": {"version": "2.0"},
        "buffers": [{"byteLength": len(data),
                     "uri": buffer_uri or "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 36},
                        {"buffer": 0, "byteOffset": 36, "byteLength": 24}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [0, 0, 0], "max": [1, 1, 0]},
                      {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC2"}],
        "images": [{"uri": image_uri}],
        "textures": [{"source": 0}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "material": 0}]}],
        "nodes": [{"mesh": 0, "name": "tri"}],
        "scenes": [{"nodes": [0]}],
    }
    p = folder / "t.gltf"
    p.write_text(json.dumps(doc))
    if buffer_uri is not None and not buffer_uri.startswith(("/", "..")) and "://" not in buffer_uri:
        (folder / buffer_uri).write_bytes(data)
    return p


@needs_fifo
def test_gltf_image_uri_naming_a_fifo_returns_at_once(tree):
    scene = tree / "scene"
    os.mkfifo(scene / "fifo.png")
    p = _textured_gltf(scene, "fifo.png")
    box = {}
    worker = threading.Thread(target=lambda: box.update(out=_collect(lambda: read_gltf(p))), daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader before failing, so the test run itself does not hang
        fd = os.open(scene / "fifo.png", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(5)
        pytest.fail("read_gltf blocked on a FIFO")
    assert time.monotonic() - start < 10
    _, exc, texts = box["out"]
    assert isinstance(exc, ConfinementError) and isinstance(exc, GltfError), repr(exc)
    assert "FIFO" in str(exc) and "images[0]" in str(exc)
    # Trusting the paths does not make a FIFO readable.
    _assert_refused(lambda: read_gltf(p, trust_paths=True), GltfError)


@needs_symlinks
def test_gltf_uris_outside_the_folder_symlinks_and_trust(tree):
    scene = tree / "scene"
    outside_png = tree / "outside" / "outside.png"
    for uri in (str(outside_png), "../outside/outside.png", "file://" + str(outside_png), "sub/../../outside/x.png",
                "..%2Foutside%2Foutside.png"):
        _assert_refused(lambda: read_gltf(_textured_gltf(scene, uri)), GltfError)
    os.symlink(outside_png, scene / "link.png")
    _assert_refused(lambda: read_gltf(_textured_gltf(scene, "link.png")), GltfError, name="link.png")
    # The buffer too: a link to a file outside is refused, as for images.
    (tree / "outside" / "secret.bin").write_bytes(b"\0" * 60)
    os.symlink(tree / "outside" / "secret.bin", scene / "buf.bin")
    _assert_refused(lambda: read_gltf(_textured_gltf(scene, "inside.png", buffer_uri="buf.bin")), GltfError)
    # trust_paths=True reads the absolute and the linked image.
    for uri in (str(outside_png), "link.png"):
        s = read_gltf(_textured_gltf(scene, uri), trust_paths=True)
        (mesh,) = s.meshes.values()
        torch.testing.assert_close(mesh.material.base_color_texture[..., :3], torch.full((2, 2, 3), 0.25),
                                   atol=1 / 255, rtol=0)
    s = io.load(_textured_gltf(scene, str(outside_png)), trust_paths=True)
    assert len(s.meshes) == 1
    _assert_refused(lambda: io.load(_textured_gltf(scene, str(outside_png))), GltfError)


# ---------------------------------------------------------------------------------------------------- NeRF
def _transforms(folder: Path, file_path, **extra) -> Path:
    p = folder / "transforms.json"
    frame = {"file_path": file_path, "transform_matrix": torch.eye(4).tolist()}
    p.write_text(json.dumps({"camera_angle_x": 0.9, "frames": [frame], **extra}))
    return p


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "sneaky"])
def test_nerf_file_path_outside_the_folder_is_refused(tree, kind):
    scene = tree / "scene"
    file_path = {"dotdot": "../outside/outside.png", "absolute": str(tree / "outside" / "outside.png"),
                 "sneaky": "./images/../../outside/outside.png"}[kind]
    (scene / "images").mkdir()
    p = _transforms(scene, file_path)  # no w / h: the reader would open the image for its size
    exc = _assert_refused(lambda: read_nerf_transforms(p), name="frames[0].file_path")
    assert str(p) in str(exc)
    _assert_refused(lambda: io.load(p))
    _assert_refused(lambda: read_dataset(p))
    rec = read_nerf_transforms(p, trust_paths=True)
    assert (rec.cameras[0].width, rec.cameras[0].height) == (2, 2)
    data = read_dataset(p, trust_paths=True)
    assert data.images.shape == (1, 2, 2, 3)


@needs_symlinks
def test_nerf_blender_style_names_and_links(tree):
    scene = tree / "scene"
    (scene / "train").mkdir()
    os.symlink(tree / "outside" / "outside.png", scene / "train" / "r_0.png")
    p = _transforms(scene, "./train/r_0")  # the ".png" that is added must be confined as well
    _assert_refused(lambda: read_nerf_transforms(p))
    (scene / "train" / "r_0.png").unlink()
    write_image(scene / "train" / "r_0.png", torch.zeros(3, 4, 3))
    rec = read_nerf_transforms(p)
    assert rec.image_paths == [scene / "train" / "r_0.png"] and rec.cameras[0].width == 4


# -------------------------------------------------------------------------------------- COLMAP and datasets
def _colmap_project(root: Path, names, binary=False) -> Path:
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=2, height=2).to(dtype=torch.float64)
    model = root / "sparse" / "0"
    write_colmap(model, {n: cam for n in names}, binary=binary)
    (root / "images").mkdir(exist_ok=True)
    return model


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "a/../../b.png"])
def test_colmap_image_names_that_escape_are_refused(tree, binary, name):
    model = _colmap_project(tree / "scene", [name], binary)
    exc = _assert_refused(lambda: read_colmap(model), name="image name")
    assert ("images.bin" if binary else "images.txt") in str(exc)
    _assert_refused(lambda: read_dataset(tree / "scene"))
    assert list(read_colmap(model, trust_paths=True).cameras) == [name]


@needs_symlinks
def test_colmap_dataset_photo_links_outside_are_refused_and_trusted_on_request(tree):
    scene = tree / "scene"
    _colmap_project(scene, ["a.png", "sub/b.png"])
    write_image(scene / "images" / "a.png", torch.zeros(2, 2, 3))
    (scene / "images" / "sub").mkdir()
    os.symlink(tree / "outside" / "outside.png", scene / "images" / "sub" / "b.png")
    _assert_refused(lambda: read_dataset(scene), name="b.png")
    data = read_dataset(scene, trust_paths=True)
    assert data.names == ["a.png", "sub/b.png"]
    torch.testing.assert_close(data.images[1], torch.full((2, 2, 3), 0.25), atol=1 / 255, rtol=0)


def test_colmap_dataset_does_not_look_for_images_above_the_project(tree):
    # An images/ folder above the project (here: tree/images) is not the project's photo folder.
    (tree / "images").mkdir()
    write_image(tree / "images" / "a.png", torch.zeros(2, 2, 3))
    scene = tree / "scene"
    _colmap_project(scene, ["a.png"])
    (scene / "images").rmdir()
    with pytest.raises(FileNotFoundError, match="the photo of view 'a.png' is missing"):
        read_dataset(scene)


@needs_symlinks
def test_depth_maps_that_link_outside_are_refused(tree):
    scene = tree / "scene"
    write_image(scene / "a.png", torch.zeros(2, 2, 3))
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=2, height=2)
    write_nerf_transforms(scene / "transforms.json", [cam], [scene / "a.png"])
    data = read_dataset(scene)
    (scene / "depth").mkdir()
    np.save(tree / "outside" / "a.npy", np.ones((2, 2), np.float32))
    os.symlink(tree / "outside" / "a.npy", scene / "depth" / "a.npy")
    _assert_refused(lambda: read_depth_maps(data, scene / "depth"))
    assert read_depth_maps(data, scene / "depth", trust_paths=True).shape == (1, 2, 2, 1)


def test_writer_output_reads_back_inside_the_folder(tree):
    # What lumigrad writes beside its images reads back without trust_paths.
    scene = tree / "scene"
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=2, height=2)
    write_nerf_transforms(scene / "transforms.json", [cam], [scene / "inside.png"])
    assert read_dataset(scene / "transforms.json").images.shape == (1, 2, 2, 3)
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2]])
    material = lg.shading.Material(base_color_texture=torch.full((2, 2, 3), 0.5))
    io.write_obj(scene / "w.obj", verts, faces, uv=verts[:, :2], materials=[material])
    d = read_obj_with_materials(scene / "w.obj")
    assert d.materials[0].base_color_texture.shape == (2, 2, 3)


def test_a_photo_name_that_is_not_an_image_is_refused(tree):
    scene = tree / "scene"
    (scene / "images").mkdir()
    (scene / "images" / "a.obj").write_text(TRIANGLE + "f 1 2 3\n")
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=2, height=2).to(dtype=torch.float64)
    write_colmap(scene / "sparse" / "0", {"a.obj": cam})
    with pytest.raises(ValueError, match="the photo of view 'a.obj' is a.obj, not an image file"):
        read_dataset(scene)


# ------------------------------------------------------------------------------------------------ the CLI
def test_cli_render_confines_and_trust_paths_opts_in(tree, capsys):
    """``lumigrad render`` refuses an OBJ whose MTL lies outside its folder (one line, exit 2, no secret
    quoted); ``--trust-paths`` is the opt-in, and ``lumigrad.io.read_mesh(trust_paths=True)`` is the Python one."""
    from lumigrad.cli.main import main

    (tree / "outside" / "ok.mtl").write_text("newmtl a\nKd 0.2 0.4 0.6\n")
    obj = _obj(tree / "scene", str(tree / "outside" / "ok.mtl"))
    out = tree / "scene" / "r.png"
    assert main(["render", str(obj), "-o", str(out), "--size", "16", "16"]) == 2
    err = capsys.readouterr().err
    # (the quoted path is cut to 80 characters, so a long temporary folder may cut "outside" off: the reason is
    # what the line must say)
    assert err.startswith("lumigrad render: error:") and "is an absolute path" in err and MARKER not in err
    with pytest.raises(ConfinementError):
        lg.io.read_mesh(obj)
    assert lg.io.read_mesh(obj, trust_paths=True).material_names == ["a"]
    assert main(["render", str(obj), "-o", str(out), "--size", "16", "16", "--trust-paths"]) == 0
    assert out.is_file()
