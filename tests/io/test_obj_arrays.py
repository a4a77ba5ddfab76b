"""The OBJ reader's numpy fast path (``_obj_arrays``) against its line-by-line reader, which is the spec."""

from __future__ import annotations

import random

import pytest
import torch

from lumigrad.io import _obj_arrays as obj_arrays
from lumigrad.io import obj as obj_module
from lumigrad.io._obj_arrays import parse_obj_arrays
from lumigrad.io.obj import read_obj, read_obj_with_materials


def _random_obj(rng: random.Random, style: str, crlf: bool) -> str:
    lines, nv, nvt = ["# made by a test", "o thing", "mtllib m.mtl"], 0, 0
    for block in range(3):
        for _ in range(rng.randint(3, 6)):
            lines.append(f"v {rng.uniform(-2, 2)!r} {rng.uniform(-2, 2):.3e} {rng.randint(-3, 3)}")
            nv += 1
            lines.append(f"vt {rng.random()!r} .5")
            nvt += 1
            lines.append("vn 0 0 1")
        lines.append("")
        lines.append(f"usemtl {'red' if block % 2 else 'blue'}")
        for _ in range(rng.randint(1, 5)):
            n = rng.choice([3, 3, 4, 5])
            corners = []
            for _ in range(n):
                v = rng.randint(1, nv)
                t = rng.randint(1, nvt)
                v = v if rng.random() < 0.5 else v - nv - 1  # negative: relative to the end so far
                t = t if rng.random() < 0.5 else t - nvt - 1
                corners.append({"v": f"{v}", "v/vt": f"{v}/{t}", "v//vn": f"{v}//1", "v/vt/vn": f"{v}/{t}/1"}[style])
            lines.append("f\t" + "  ".join(corners) + ("  # a face" if rng.random() < 0.3 else ""))
    return ("\r\n" if crlf else "\n").join(lines) + "\n"


@pytest.mark.parametrize("style", ["v", "v/vt", "v//vn", "v/vt/vn"])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("chunk", [None, 40])
def test_fast_path_equals_line_reader(tmp_path, monkeypatch, style, crlf, chunk):
    """Random files (polygons, negative indices, comments, usemtl, vn) read alike; ``chunk`` scans a few lines at
    a time, so faces refer to vertices and materials of earlier chunks."""
    if chunk is not None:
        monkeypatch.setattr(obj_arrays, "CHUNK_BYTES", chunk)
    rng = random.Random(len(style) * 10 + crlf)
    (tmp_path / "m.mtl").write_text("newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n")
    for trial in range(5):
        path = tmp_path / f"mesh{trial}.obj"
        path.write_bytes(_random_obj(rng, style, crlf).encode())
        assert parse_obj_arrays(path.read_bytes(), True) is not None  # the fast path is taken
        fast = read_obj_with_materials(path, dtype=torch.float64)
        fast_plain = read_obj(path)
        with monkeypatch.context() as m:
            m.setattr(obj_module, "parse_obj_arrays", lambda data, with_materials: None)
            slow = read_obj_with_materials(path, dtype=torch.float64)
            slow_plain = read_obj(path)
        for name in ("verts", "faces", "uv", "uv_faces", "face_materials", "vertex_colors"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert (a is None) == (b is None), name
            if a is not None:
                assert a.dtype == b.dtype and torch.equal(a, b), name
        assert fast.material_names == slow.material_names
        for a, b in zip(fast_plain, slow_plain):
            assert (a is None and b is None) or torch.equal(a, b)
        assert (fast.uv is not None) == (style in ("v/vt", "v/vt/vn"))


def test_vertex_colours_and_fan(tmp_path):
    path = tmp_path / "c.obj"
    path.write_text("v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\nf 1 2 3 4\n")
    assert parse_obj_arrays(path.read_bytes(), True) is not None
    d = read_obj_with_materials(path)
    assert d.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert d.vertex_colors[3].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("text", [
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n",          # index out of range
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 0\n",          # index 0
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n",            # two corners
    "v 0 0 0\nv 1 0 0\nv 0 1 nan\nf 1 2 3\n",        # NaN
    "v 0 0 0\nv 1 0 0\nv 0 1 1e999\nf 1 2 3\n",      # Inf
    "v 0 0 0\nv 1 0 0\nv 0 1\nf 1 2 3\n",            # short vertex
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3.0\n",        # not an integer
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/1 2/1 3/1\n",    # no vt defined
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2/1 3\n",        # mixed corner styles
    "v 0 0 0\n v 1 0 0\nv 0 1 0\nf 1 2 3\n",         # indented statement
    "v 0 0 0\rv 1 0 0\rv 0 1 0\rf 1 2 3\r",          # old Mac line ends
])
def test_unusual_or_malformed_files_take_the_line_reader(tmp_path, text):
    assert parse_obj_arrays(text.encode(), False) is None


def test_malformed_file_message_names_the_line(tmp_path):
    path = tmp_path / "bad.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n# comment\nf 1 2 7\n")
    with pytest.raises(obj_module.ObjError, match=r"bad.obj:5: f: vertex index 7 out of range"):
        read_obj(path)


def test_mutated_files_read_alike_or_fail_alike(tmp_path, monkeypatch):
    """Random byte edits of a small file: the fast path gives the line reader's tensors, or its message."""
    base = (b"# c\nv 0 0 0\nv 1 0 0\nv 1 1 0 0.5 0.5 0.5\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\ng x\n"
            b"f 1/1/1 2/2/1 3/3/1\nf -4/-3/1 -2/-1/1 -1/-1/1 2/2/1\n")
    path = tmp_path / "m.obj"
    real = obj_module.parse_obj_arrays

    def outcome(fast: bool, data: bytes):
        monkeypatch.setattr(obj_module, "parse_obj_arrays", real if fast else (lambda source, with_materials: None))
        path.write_bytes(data)
        try:
            return ("ok",) + tuple(None if t is None else t.tolist() for t in read_obj(path))
        except obj_module.ObjError as exc:
            return ("error", str(exc))

    rng = random.Random(1)
    read = 0
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            k, c = rng.randrange(len(data)), rng.choice(b"0123456789.-+ /\n\t\r#vtfne")
            if rng.random() < 0.5:
                data[k] = c
            else:
                data.insert(k, c)
        line_reader = outcome(False, bytes(data))
        assert outcome(True, bytes(data)) == line_reader, bytes(data)
        read += line_reader[0] == "ok"
    assert read > 50  # many edits leave a valid file, so both outcomes are exercised
