"""Hostile JSON and COLMAP files (issue 12, items 7 and 9): one-line ValueErrors naming the file, never a
RecursionError, a traceback from deep inside a parser, an echo of the file's text, or a silent identity pose."""

import json
import math
import struct
import subprocess
import sys
import textwrap

import pytest
import torch

import lumigrad as lg
from lumigrad import io
from lumigrad.io import GltfError
from lumigrad.io._paths import MAX_JSON_DEPTH, json_depth, parse_json, short_text
from lumigrad.io.colmap import read_colmap, write_colmap
from lumigrad.io.gltf import read_gltf
from lumigrad.io.nerf import read_nerf_transforms

MARKER = "s3cret-MARKER-7f3a"


def _one_line_value_error(fn, *fragments):
    """``fn()`` raises a ValueError (not RecursionError) whose one-line message holds every fragment."""
    with pytest.raises(ValueError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text and len(text) < 600, text
    for fragment in fragments:
        assert fragment in text, text
    assert MARKER not in text
    return text


# ------------------------------------------------------------------------------------------------- JSON
@pytest.mark.parametrize("text", [
    "[" * 100_000,
    "{\"a\": " * 50_000,
    "{\"frames\": [{\"file_path\": \"a.png\", \"transform_matrix\": " + "[" * 5000 + "]" * 5000 + "}]}",
    "{\"frames\": []," + "\"x\": " + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}",
])
def test_deeply_nested_json_is_one_value_error_naming_the_file(tmp_path, text):
    p = tmp_path / "transforms.json"
    p.write_text(text)
    _one_line_value_error(lambda: read_nerf_transforms(p), str(p), "nested")
    _one_line_value_error(lambda: io.load(p), str(p), "nested")
    _one_line_value_error(lambda: lg.io.read_dataset(p), str(p), "nested")
    g = tmp_path / "deep.gltf"
    g.write_text(text)
    with pytest.raises(GltfError, match="nested"):
        read_gltf(g)


def test_json_nesting_is_bounded_before_parsing_even_with_a_raised_recursion_limit(tmp_path):
    # With a raised recursion limit, json.loads of deep input overflows the C stack (a segfault); the depth
    # check runs first, so the reader still answers with one line. Run in a child: a crash must not take
    # the test session down.
    p = tmp_path / "deep.json"
    p.write_text("[" * 1_000_000)
    code = textwrap.dedent(f"""
        import sys
        sys.setrecursionlimit(10**7)
        from lumigrad.io._paths import parse_json
        try:
            parse_json(open({str(p)!r}, "rb").read(), source="deep.json")
        except ValueError as exc:
            print("REFUSED", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "REFUSED deep.json: not valid JSON for lumigrad: nested" in out.stdout, out


def test_json_depth_ignores_brackets_in_strings_and_is_linear():
    assert json_depth('{"a": "[[[[{{{{", "b": ["]]]", {"c": "\\"[["}]}') == 3
    assert json_depth('"unterminated [[[[') == 0
    assert json_depth("[" * 1000) == 1000
    assert parse_json(json.dumps({"a": "[" * 70, "b": [{"c": "{" * 70}]}), source="s", max_depth=3) == \
        {"a": "[" * 70, "b": [{"c": "{" * 70}]}
    with pytest.raises(ValueError, match=r"s: not valid JSON \(Expecting value: line 1 column 1"):
        parse_json(b"", source="s")
    with pytest.raises(ValueError, match="s: not valid JSON \\(not UTF-8"):
        parse_json(b"\xff\xfe[", source="s")
    assert parse_json("\ufeff[1]".encode(), source="s") == [1]
    with pytest.raises(ValueError, match="s: not valid JSON for lumigrad \\(Exceeds the limit"):
        parse_json("[" + "7" * 5000 + "]", source="s")


def test_short_text_is_cheap_and_safe():
    assert short_text("x" * 10**7).endswith("...") and len(short_text("x" * 10**7)) == 80
    assert short_text([[1]] * 10**6) == "a list of 1000000 items"
    assert short_text("\x1b[31mred") == repr("\x1b[31mred")  # control characters are escaped

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert short_text(Hostile()) == "a Hostile"


@pytest.mark.parametrize("frame_update, top, fragment", [
    ({"file_path": ["a.png"]}, {}, "file_path must be a string; got an array"),
    ({"file_path": 7}, {}, "file_path must be a string; got a number"),
    ({}, {"w": 1e400, "h": 4}, "w must be finite"),
    ({}, {"w": "wide", "h": 4}, "w must be a number; got a string that is not one"),
    ({}, {"w": [[MARKER]], "h": 4}, "w must be a number; got an array"),
    ({}, {"w": 4.5, "h": 4}, "w must be a positive whole number of pixels"),
    ({}, {"w": 0, "h": 4}, "w must be a positive whole number of pixels"),
    ({}, {"w": True, "h": 4}, "w must be a number; got a boolean"),
    ({}, {"w": 4, "h": 4, "fl_x": MARKER}, "fl_x must be a number"),
    ({}, {"w": 4, "h": 4, "camera_model": {"x": 1}}, "camera_model must be a string; got an object"),
    ({"transform_matrix": [["a"] * 4] * 4}, {"w": 4, "h": 4}, "transform_matrix is not a numeric matrix"),
    ({"transform_matrix": [[[[[1]]]]] * 4}, {"w": 4, "h": 4}, "transform_matrix must be a finite 4x4"),
])
def test_nerf_fields_of_the_wrong_type_name_the_file_and_frame(tmp_path, frame_update, top, fragment):
    p = tmp_path / "transforms.json"
    frame = {"file_path": "a.png", "transform_matrix": torch.eye(4).tolist(), **frame_update}
    p.write_text(json.dumps({"camera_angle_x": 0.9, **top, "frames": [frame]}))
    _one_line_value_error(lambda: read_nerf_transforms(p), f"{p}: frames[0]", fragment)


def test_registry_json_errors_name_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_bytes(b"\xff\xfe\x00")
    _one_line_value_error(lambda: io.load(p), str(p), "not UTF-8")
    p.write_text("{\"frames\": [1, 2")
    _one_line_value_error(lambda: io.load(p), str(p), "not valid JSON")


# ------------------------------------------------------------------------------------------------- COLMAP
CAMERAS = "1 PINHOLE 64 48 50 50 32 24\n"
POINTS = "1 0 0 0 10 20 30 0.5\n"


def _text_model(folder, cameras=CAMERAS, images="1 1 0 0 0 0 0 5 1 a.png\n\n", points=POINTS):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(cameras)
    (folder / "images.txt").write_text(images)
    (folder / "points3D.txt").write_text(points)
    return folder


def _binary_model(folder, qvec, tvec=(0.0, 0.0, 5.0), camera_id=1, name=b"a.png", params=(50.0, 50.0, 32.0, 24.0)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.bin").write_bytes(struct.pack("<QiiQQ", 1, 1, 1, 64, 48) + struct.pack("<4d", *params))
    (folder / "images.bin").write_bytes(struct.pack("<Qi7di", 1, 1, *qvec, *tvec, camera_id) + name + b"\0"
                                        + struct.pack("<Q", 0))
    (folder / "points3D.bin").write_bytes(struct.pack("<Q", 0))
    return folder


@pytest.mark.parametrize("qvec", ["0 0 0 0", "0.0 -0.0 0 0", "nan 0 0 0", "inf 0 0 0", "1e-300 0 0 0"])
def test_colmap_zero_or_non_finite_quaternion_is_refused(tmp_path, qvec):
    m = _text_model(tmp_path / "t", images=f"# header\n1 {qvec} 0 0 5 1 a.png\n\n")
    _one_line_value_error(lambda: read_colmap(m), f"{m / 'images.txt'}:2", "a.png")
    q = [float(v) for v in qvec.split()]
    b = _binary_model(tmp_path / "b", q)
    _one_line_value_error(lambda: read_colmap(b), f"{b / 'images.bin'} (image record 0, image_id 1)")


def test_colmap_unnormalised_quaternions_still_read_as_their_rotation(tmp_path):
    m = _text_model(tmp_path / "t", images="1 2 0 0 0 0 0 5 1 a.png\n\n")
    torch.testing.assert_close(read_colmap(m).cameras["a.png"].world_to_cam[:3, :3], torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("binary", [False, True])
def test_colmap_image_with_an_unknown_camera_names_both_files(tmp_path, binary):
    if binary:
        m = _binary_model(tmp_path / "b", [1.0, 0, 0, 0], camera_id=7)
        fragments = ("images.bin (image record 0", "camera_id 7", "cameras.bin does not define")
    else:
        m = _text_model(tmp_path / "t", images="1 1 0 0 0 0 0 5 7 a.png\n\n")
        fragments = ("images.txt:1", "camera_id 7", "cameras.txt does not define")
    _one_line_value_error(lambda: read_colmap(m), *fragments)


@pytest.mark.parametrize("files, fragment", [
    ({"cameras": f"1 PINHOLE 64 {MARKER} 50 50 32 24\n"}, "cameras.txt:1: malformed camera line: HEIGHT is not"),
    ({"cameras": f"1 PINHOLE 64 48 50 {MARKER} 32 24\n"}, "cameras.txt:1: malformed camera line: parameter 2 is not"),
    ({"cameras": f"1 {MARKER} 64 48 50\n"}, "cameras.txt:1: unknown camera model"),
    ({"cameras": f"{MARKER}\n"}, "cameras.txt:1: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'; got 1 fields"),
    ({"cameras": "1 PINHOLE 64 48 nan 50 32 24\n"}, "cameras.txt:1: camera parameters must be finite"),
    ({"cameras": "1 PINHOLE 0 48 50 50 32 24\n"}, "cameras.txt:1: camera width and height must be at least 1"),
    ({"images": f"1 1 0 0 0 0 0 {MARKER} 1 a.png\n\n"}, "images.txt:1: malformed image line: TZ is not a number"),
    ({"images": f"{MARKER} x\n"}, "images.txt:1: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'; got 2"),
    ({"images": "1 1 0 0 0 0 nan 5 1 a.png\n\n"}, "images.txt:1: image 'a.png' has a non-finite qvec or tvec"),
    ({"images": f"1 1 0 0 0 0 0 5 1 a.png\n1 2 {MARKER}\n"}, "images.txt:2: malformed keypoint line: value 3"),
    ({"images": "1 1 0 0 0 0 0 5 1 a.png\nnan 2 -1\n"}, "images.txt:2: keypoint positions must be finite"),
    ({"points": f"1 0 0 {MARKER} 10 20 30 0.5\n"}, "points3D.txt:1: malformed point line: Z is not a number"),
    ({"points": "1 0 0 0 10 20 300 0.5\n"}, "points3D.txt:1: R G B must lie in [0, 255]"),
    ({"points": "1 0 inf 0 10 20 30 0.5\n"}, "points3D.txt:1: X Y Z must be finite"),
    ({"points": "99999999999999999999999 0 0 0 10 20 30 0.5\n"}, "points3D.txt: a point3D id does not fit"),
])
def test_colmap_text_errors_name_the_file_and_line_and_quote_nothing(tmp_path, files, fragment):
    kw = {k: v for k, v in files.items()}
    m = _text_model(tmp_path / "m", **kw)
    text = _one_line_value_error(lambda: read_colmap(m), fragment)
    assert str(m) in text


def test_colmap_undecodable_text_and_binary_names_the_file(tmp_path):
    m = _text_model(tmp_path / "t", images="1 1 0 0 0 0 0 5 1 a.png\n\n")
    (m / "images.txt").write_bytes(b"# ok\n1 1 0 0 0 0 0 5 1 \xff\xfe.png\n\n")
    _one_line_value_error(lambda: read_colmap(m), f"{m / 'images.txt'}:2: not UTF-8")
    b = _binary_model(tmp_path / "b", [1.0, 0, 0, 0], name=b"\xff\xfe.png")
    _one_line_value_error(lambda: read_colmap(b), f"{b / 'images.bin'}: the name of image record 0 is not UTF-8")
    c = _binary_model(tmp_path / "c", [1.0, 0, 0, 0], params=(50.0, math.nan, 32.0, 24.0))
    _one_line_value_error(lambda: read_colmap(c), f"{c / 'cameras.bin'} (camera record 0, camera_id 1)", "finite")


def test_colmap_round_trip_is_unchanged(tmp_path):
    cam = lg.Camera.look_at([0.0, 1.0, -3.0], [0.0, 0.0, 0.0], width=8, height=6).to(dtype=torch.float64)
    for binary in (False, True):
        write_colmap(tmp_path / str(binary), {"sub/a.png": cam}, binary=binary)
        got = read_colmap(tmp_path / str(binary)).cameras["sub/a.png"]
        torch.testing.assert_close(got.world_to_cam, cam.world_to_cam)
