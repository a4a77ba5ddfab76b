"""OpenSfM reader against hostile files: every key and type is checked, and each failure is one ValueError that
names the file and the key path (``reconstruction.json: [0].shots['img1'].rotation must be ...``).

Missing keys, wrong types, NaN / Infinity / overflowing numbers, unknown or unsupported projection types, shots
naming absent cameras, deeply nested JSON (a ValueError, not a RecursionError), and a hypothesis fuzz over
random JSON values put anywhere in a valid file and over byte mutations of it: only a clean read or a
ValueError naming the file may come out.
"""

import copy
import json
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumigrad.io import load
from lumigrad.io.opensfm import read_opensfm

SCALE = float(os.environ.get("LUMIGRAD_FUZZ_SCALE", "1"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.function_scoped_fixture],
                derandomize=SCALE == 1, database=None)


def _n(examples: int) -> int:
    return max(1, int(examples * SCALE))


def valid() -> list:
    """A small reconstruction: two perspective cameras, three shots, two points, a reference position."""
    return [{
        "cameras": {
            "v2 unknown unknown 640 480 perspective 0.9": {"projection_type": "perspective", "width": 640,
                                                          "height": 480, "focal": 0.9, "k1": 0.01, "k2": -0.002},
            "cam2": {"width": 100, "height": 200, "focal": 1.1},
        },
        "shots": {
            "img1": {"camera": "v2 unknown unknown 640 480 perspective 0.9", "rotation": [0.1, -0.2, 0.3],
                     "translation": [1.0, 2.0, 3.0], "gps_position": [0, 0, 0]},
            "img2": {"camera": "cam2", "rotation": [0, 0, 0], "translation": [0, 0, 1]},
            "img3": {"camera": "cam2", "rotation": [0.0, 3.0, 0.0], "translation": [0.5, 0, 1]},
        },
        "points": {"7": {"coordinates": [0.1, 0.2, 5.0], "color": [255, 128, 0]},
                   "10": {"coordinates": [-1, 0, 4], "color": [0.5, 0, 255.0]}},
        "reference_lla": {"latitude": 52.5, "longitude": 13.4, "altitude": 30.0},
    }]


def _write(tmp_path, data, name="reconstruction.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_the_valid_file_reads(tmp_path):
    rec = read_opensfm(_write(tmp_path, valid()))
    assert sorted(rec.shots) == ["img1", "img2", "img3"]
    cam = rec.shots["img1"]
    assert (cam.width, cam.height) == (640, 480) and float(cam.K[0, 0]) == pytest.approx(0.9 * 640)
    assert torch.allclose(cam.distortion, torch.tensor([0.01, -0.002, 0, 0, 0], dtype=torch.float64))
    assert rec.points.tolist() == [[-1.0, 0.0, 4.0], [0.1, 0.2, 5.0]]  # ids sorted as strings: "10" < "7"
    assert rec.colors[1].tolist() == [1.0, 128 / 255, 0.0]
    assert rec.reference_lla == (52.5, 13.4, 30.0)
    rec32 = read_opensfm(_write(tmp_path, valid()), dtype=torch.float32)
    assert rec32.points.dtype == torch.float32 and rec32.shots["img2"].K.dtype == torch.float32


def _set(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


DELETE = object()
CAM = "v2 unknown unknown 640 480 perspective 0.9"
CAM_PATH = f"[0].cameras[{CAM!r}]"

CASES = [
    # (where in the file, new value, expected message after "reconstruction.json: ")
    ([0, "shots", "img1", "rotation"], "abc",
     "[0].shots['img1'].rotation must be a list of 3 finite numbers; got 'abc'"),
    ([0, "shots", "img1", "rotation"], [1, 2],
     "[0].shots['img1'].rotation must be a list of 3 finite numbers; got [1, 2]"),
    ([0, "shots", "img1", "rotation"], [1, True, 2], "[0].shots['img1'].rotation must be a list of 3 finite numbers"),
    ([0, "shots", "img1", "rotation"], [1, float("nan"), 2], "[0].shots['img1'].rotation must be a list of 3 finite "
                                                            "numbers; got [1, nan, 2]"),
    ([0, "shots", "img2", "translation"], [1, 2, float("inf")], "[0].shots['img2'].translation must be a list of 3 "
                                                               "finite numbers"),
    ([0, "shots", "img2", "translation"], [1, 2, 10 ** 400], "[0].shots['img2'].translation must be a list of 3"),
    ([0, "shots", "img2", "translation"], DELETE, "[0].shots['img2'] has no 'translation'"),
    ([0, "shots", "img1", "camera"], DELETE, "[0].shots['img1'] has no 'camera'"),
    ([0, "shots", "img1", "camera"], 3, "[0].shots['img1'].camera must be a string naming a camera; got 3"),
    ([0, "shots", "img1", "camera"], "nope", "[0].shots['img1'].camera 'nope' is not a key of [0].cameras"),
    ([0, "shots", "img3"], [1, 2], "[0].shots['img3'] must be an object; got [1, 2]"),
    ([0, "shots"], [], "[0].shots must be an object; got []"),
    ([0, "cameras"], DELETE, "[0] has no 'cameras'"),
    ([0, "points"], DELETE, "[0] has no 'points'"),
    ([0, "cameras", "cam2"], "x", "[0].cameras['cam2'] must be an object; got 'x'"),
    ([0, "cameras", "cam2", "projection_type"], "fisheye", "[0].cameras['cam2'].projection_type is OpenSfM's "
                                                          "'fisheye'; only 'perspective' cameras are read"),
    ([0, "cameras", "cam2", "projection_type"], "pinhole-ish", "[0].cameras['cam2'].projection_type is an unknown "
                                                              "'pinhole-ish'"),
    ([0, "cameras", "cam2", "projection_type"], ["perspective"], "[0].cameras['cam2'].projection_type must be a "
                                                                 "string"),
    ([0, "cameras", "cam2", "width"], DELETE, "[0].cameras['cam2'] has no 'width'"),
    ([0, "cameras", "cam2", "width"], "640", "[0].cameras['cam2'].width must be a positive integer; got '640'"),
    ([0, "cameras", "cam2", "width"], 0, "[0].cameras['cam2'].width must be a positive integer; got 0"),
    ([0, "cameras", "cam2", "height"], 12.5, "[0].cameras['cam2'].height must be a positive integer; got 12.5"),
    ([0, "cameras", "cam2", "focal"], -1, "[0].cameras['cam2'].focal must be a positive finite number; got -1"),
    ([0, "cameras", "cam2", "focal"], None, "[0].cameras['cam2'].focal must be a positive finite number; got None"),
    ([0, "cameras", "cam2", "focal"], 1e308, "[0].cameras['cam2']: focal * max(width, height) = inf is not finite"),
    ([0, "cameras", CAM, "k1"], "0.1", f"{CAM_PATH}.k1 must be a finite number; got '0.1'"),
    ([0, "points", "7", "coordinates"], [1, 2], "[0].points['7'].coordinates must be a list of 3 finite numbers"),
    ([0, "points", "10", "color"], [0, 0, 256], "[0].points['10'].color must be a list of 3 numbers in [0, 255]"),
    ([0, "points", "10", "color"], DELETE, "[0].points['10'] has no 'color'"),
    ([0, "points", "10"], None, "[0].points['10'] must be an object; got None"),
    ([0, "reference_lla", "latitude"], 91, "[0].reference_lla.latitude must be a number in [-90, 90]; got 91"),
    ([0, "reference_lla", "longitude"], "13", "[0].reference_lla.longitude must be a number in [-180, 180]"),
    ([0, "reference_lla", "altitude"], DELETE, "[0].reference_lla has no 'altitude'"),
    ([0, "reference_lla"], 5, "[0].reference_lla must be an object; got 5"),
    ([0], "rec", "[0] must be an object; got 'rec'"),
]


@pytest.mark.parametrize("where,value,message", CASES, ids=[f"{i}-{'.'.join(map(str, c[0][1:]))}"
                                                            for i, c in enumerate(CASES)])
def test_bad_fields_are_named_with_their_key_path(tmp_path, where, value, message):
    data = valid()
    _set(data, where, value)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError) as info:
        read_opensfm(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text


def test_reference_lla_is_optional(tmp_path):
    data = valid()
    del data[0]["reference_lla"]
    assert read_opensfm(_write(tmp_path, data)).reference_lla == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("content,message", [
    ("", "not valid JSON (Expecting value"),
    ("{\"a\": 1}", "expected a non-empty list of reconstructions; got {'a': 1}"),
    ("[]", "expected a non-empty list of reconstructions; got []"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON for lumigrad: nested"),
    ("[{\"cameras\": {}, \"shots\": {}, \"points\": {}}]" + "x", "not valid JSON"),
    ("[" + "9" * 5000 + "]", "not valid JSON"),
    (b"\xff\xfe[".decode("latin-1"), "not valid JSON"),
], ids=["empty", "object", "empty-list", "deep", "trailing", "huge-int", "not-utf8"])
def test_files_that_are_not_reconstructions(tmp_path, content, message):
    path = tmp_path / "reconstruction.json"
    path.write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    with pytest.raises(ValueError) as info:
        read_opensfm(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_deeply_nested_values_inside_a_valid_file_are_a_value_error(tmp_path):
    text = json.dumps(valid()).replace("[0.1, -0.2, 0.3]", "[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match="reconstruction.json: not valid JSON for lumigrad: nested"):
        read_opensfm(_write(tmp_path, text))


def test_index_and_arguments(tmp_path):
    path = _write(tmp_path, valid() + valid())
    assert sorted(read_opensfm(path, index=1).shots) == ["img1", "img2", "img3"]
    with pytest.raises(ValueError, match="reconstruction.json: index 2 is out of range; the file holds 2 "
                                         "reconstructions"):
        read_opensfm(path, index=2)
    with pytest.raises(ValueError, match="index -1 is out of range"):
        read_opensfm(path, index=-1)
    with pytest.raises(TypeError, match="index must be an int; got str"):
        read_opensfm(path, index="0")
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        read_opensfm(path, dtype=torch.int64)
    with pytest.raises(FileNotFoundError, match="missing.json: no such file"):
        read_opensfm(tmp_path / "missing.json")


def test_the_registry_reaches_the_same_checks(tmp_path):
    data = valid()
    data[0]["shots"]["img1"]["rotation"] = "abc"
    with pytest.raises(ValueError, match=r"reconstruction.json: \[0\].shots\['img1'\].rotation must be"):
        load(_write(tmp_path, data))


# -------------------------------------------------------------------------------------------------- fuzz
def _check(path):
    """Only a clean read or a one-line ValueError naming the file may come out."""
    try:
        rec = read_opensfm(path)
    except ValueError as e:
        assert str(e).startswith(f"{path}: "), str(e)
        assert "\n" not in str(e)
        return
    for cam in rec.shots.values():
        assert torch.isfinite(cam.K).all() and torch.isfinite(cam.world_to_cam).all()
    assert torch.isfinite(rec.points).all() and ((rec.colors >= 0) & (rec.colors <= 1)).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30) | st.text(max_size=6) |
    st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(["perspective", "fisheye", "cam2", "img1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    """Every key path into ``value`` (dict keys and list positions)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(valid()) if p]


@settings(max_examples=_n(400), **SETTINGS)
@given(edits=st.lists(st.tuples(st.sampled_from(ALL_PATHS), st.one_of(json_values, st.just(DELETE))),
                      min_size=1, max_size=3))
def test_fuzz_random_values_anywhere(tmp_path, edits):
    data = copy.deepcopy(valid())
    for where, value in edits:
        try:
            _set(data, list(where), value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed or replaced the parent
            pass
    _check(_write(tmp_path, json.dumps(data, allow_nan=True), "fuzz.json"))


@settings(max_examples=_n(300), **SETTINGS)
@given(ops=st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete"]), st.integers(0, 1 << 12),
                              st.binary(min_size=1, max_size=6)), min_size=1, max_size=4))
def test_fuzz_byte_mutations(tmp_path, ops):
    buf = bytearray(json.dumps(valid()).encode())
    for kind, at, value in ops:
        at %= len(buf) + 1
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= value[0] or 1
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = value
        else:
            del buf[at:at + len(value)]
    path = tmp_path / "bytes.json"
    path.write_bytes(bytes(buf))
    _check(path)


def test_real_capture_still_reads():
    from ..conftest import SHARED_DATA

    path = SHARED_DATA / "opensfm-berlin" / "reconstruction_example.json"
    if not path.exists():
        pytest.skip("shared data not present")
    rec = read_opensfm(path)
    assert len(rec.shots) == 3 and rec.points.shape == (1430, 3) and math.isfinite(rec.reference_lla[0])
