"""Mitsuba's ``.serialized`` meshes: round trips through the writer (versions 3 and 4, single and double precision,
several meshes), refusals of malformed files, and (when Mitsuba 3 is importable) files read by Mitsuba itself."""

import struct
import zlib

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io.serialized import (SerializedError, SerializedMesh, read_serialized, serialized_mesh_count,
                                    write_serialized, write_serialized_shapes)

from ..conftest import mitsuba_scalar


def _tetra(dtype=torch.float32, scale=1.0) -> SerializedMesh:
    verts = scale * torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return SerializedMesh(verts=verts, faces=faces, name="tetra")


def test_one_mesh_with_every_attribute_round_trips_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    verts, uv = torch.rand(5, 3, generator=g), torch.rand(5, 2, generator=g)
    normals, colors = torch.rand(5, 3, generator=g), torch.rand(5, 3, generator=g)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4]])
    write_serialized(tmp_path / "m.serialized", verts, faces, normals=normals, uv=uv, colors=colors, name="thing")
    m = read_serialized(tmp_path / "m.serialized")
    assert m.name == "thing" and not m.face_normals
    for ours, stored in ((m.verts, verts), (m.uv, uv), (m.normals, normals), (m.vertex_colors, colors)):
        assert ours.dtype == torch.float32 and torch.equal(ours, stored)
    assert torch.equal(m.faces, faces) and torch.equal(m.uv_faces, faces) and m.faces.dtype == torch.int64
    assert lg.io.load(tmp_path / "m.serialized").name == "thing"  # the registry's reader


@pytest.mark.parametrize("version", [3, 4])
def test_several_meshes_by_index_in_both_versions_and_precisions(tmp_path, version):
    a, b = _tetra(), _tetra(torch.float64, scale=1.0 / 3.0)
    b.faces, b.name = b.faces[:2], "second"
    write_serialized_shapes(tmp_path / "m.serialized", [a, b, _tetra(scale=2.0)], version=version)
    assert serialized_mesh_count(tmp_path / "m.serialized") == 3
    first = read_serialized(tmp_path / "m.serialized", 0)
    second = read_serialized(tmp_path / "m.serialized", 1, dtype=torch.float64)
    third = read_serialized(tmp_path / "m.serialized", 2)
    assert torch.equal(first.verts, a.verts) and first.normals is None and first.uv is None
    assert torch.equal(second.verts, b.verts)  # double precision: 1/3 exactly as written
    assert second.faces.shape == (2, 3) and torch.equal(third.verts, 2.0 * a.verts)
    assert (first.name, second.name) == (("tetra", "second") if version == 4 else ("", ""))
    with pytest.raises(SerializedError, match="shape_index 3 is out of range .*3 meshes"):
        read_serialized(tmp_path / "m.serialized", 3)
    with pytest.raises(ValueError, match="shape_index must be an integer >= 0"):
        read_serialized(tmp_path / "m.serialized", -1)


def _raw(flags: int, body: bytes, version: int = 4, name: bytes = b"x\0") -> bytes:
    return struct.pack("<HH", 0x041C, version) + zlib.compress(struct.pack("<I", flags) + name + body)


@pytest.mark.parametrize("data, match", [
    (b"\x1c\x04", "truncated: no mesh header"),
    (struct.pack("<HH", 0x1234, 4) + b"\0" * 8, "not a Mitsuba serialized mesh"),
    (struct.pack("<HH", 0x041C, 5) + b"\0" * 8, "unsupported serialized version 5"),
    (struct.pack("<HH", 0x041C, 4) + b"not zlib at all", "corrupt compressed data"),
    (_raw(0x1000, struct.pack("<QQ", 3, 1) + np.zeros(9, "<f4").tobytes() + struct.pack("<3I", 0, 1, 7)),
     "triangle index 7 is out of range for 3 vertices"),
    (_raw(0x1000, struct.pack("<QQ", 1 << 40, 1) + np.zeros(9, "<f4").tobytes()), "positions claim .* more than the "
                                                                                  "mesh's .* compressed bytes"),
    (_raw(0x1000, struct.pack("<QQ", 3, 1) + np.zeros(3, "<f4").tobytes()), "truncated.*positions"),
    (_raw(0x1000, struct.pack("<QQ", 3, 1) + np.zeros(9, "<f4").tobytes() + b"\0" * 5), "stream ends inside the "
                                                                                         "triangles"),
    (_raw(0x1000, struct.pack("<QQ", 3000, 1) + np.random.default_rng(0).random(9000).astype("<f4").tobytes())
     [:2000], "file ends inside the positions"),
    (_raw(0x1000, b"", name=b"endless" * 20000), "name runs past"),
])
def test_malformed_files_are_refused_naming_the_file(tmp_path, data, match):
    path = tmp_path / "bad.serialized"
    path.write_bytes(data)
    with pytest.raises(SerializedError, match=match) as e:
        read_serialized(path)
    assert "bad.serialized" in str(e.value)


def test_a_broken_end_of_file_dictionary_is_refused(tmp_path):
    path = tmp_path / "m.serialized"
    write_serialized_shapes(path, [_tetra(), _tetra()])
    data = bytearray(path.read_bytes())
    data[-4:] = struct.pack("<I", 1000)
    path.write_bytes(bytes(data))
    with pytest.raises(SerializedError, match="claims 1000 meshes"):
        read_serialized(path, 1)
    data[-4:] = struct.pack("<I", 2)
    data[-12:-4] = struct.pack("<Q", 1 << 40)
    path.write_bytes(bytes(data))
    with pytest.raises(SerializedError, match="offset .* outside"):
        read_serialized(path, 1)


def test_the_writer_refuses_what_the_format_cannot_hold(tmp_path):
    mesh = _tetra()
    with pytest.raises(ValueError, match="meshes is empty"):
        write_serialized_shapes(tmp_path / "m.serialized", [])
    with pytest.raises(ValueError, match="version must be 3 or 4"):
        write_serialized_shapes(tmp_path / "m.serialized", [mesh], version=2)
    with pytest.raises(ValueError, match="faces holds index 9"):
        write_serialized(tmp_path / "m.serialized", mesh.verts, torch.tensor([[0, 1, 9]]))
    for name in ("a\0b", "x" * 70000):
        with pytest.raises(ValueError, match="no NUL and at most"):
            write_serialized(tmp_path / "m.serialized", mesh.verts, mesh.faces, name=name)
    with pytest.raises(ValueError, match="uv_faces must equal faces"):
        write_serialized_shapes(tmp_path / "m.serialized", [SerializedMesh(
            verts=mesh.verts, faces=mesh.faces, uv=torch.zeros(4, 2), uv_faces=mesh.faces.flip(-1))])


@pytest.mark.parametrize("version", [3, 4])
def test_mitsuba_reads_the_writers_files_as_lumigrad_does(tmp_path, version):
    mi = mitsuba_scalar()
    g = torch.Generator().manual_seed(3)
    a = SerializedMesh(verts=torch.rand(6, 3, generator=g), faces=torch.tensor([[0, 1, 2], [3, 4, 5], [1, 3, 5]]),
                       uv=torch.rand(6, 2, generator=g), normals=torch.nn.functional.normalize(
                           torch.rand(6, 3, generator=g), dim=-1), name="a")
    b = SerializedMesh(verts=torch.rand(4, 3, generator=g, dtype=torch.float64), faces=torch.tensor([[0, 1, 2],
                                                                                                       [0, 2, 3]]))
    write_serialized_shapes(tmp_path / "m.serialized", [a, b, a], version=version)
    for k in (0, 1, 2):
        ours = read_serialized(tmp_path / "m.serialized", k)
        params = mi.traverse(mi.load_dict({"type": "serialized", "filename": str(tmp_path / "m.serialized"),
                                           "shape_index": k}))
        theirs = lambda key, w: torch.tensor(np.array(params[key]), dtype=torch.float32).reshape(-1, w)  # noqa: E731
        torch.testing.assert_close(theirs("vertex_positions", 3), ours.verts, rtol=0, atol=0)
        assert torch.equal(torch.tensor(np.array(params["faces"]), dtype=torch.int64).reshape(-1, 3), ours.faces)
        if k != 1:
            torch.testing.assert_close(theirs("vertex_texcoords", 2), ours.uv, rtol=0, atol=0)
            torch.testing.assert_close(theirs("vertex_normals", 3), ours.normals, rtol=1e-6, atol=1e-6)


def test_a_large_mesh_reads_in_linear_time_and_saving_keeps_what_it_holds(tmp_path):
    """Reading inflates bounded slices of one mesh's own bytes (a 1M-vertex file took seconds when each step
    copied the whole remaining input); ``save`` of a loaded mesh writes its normals, coordinates and name."""
    import time

    g = torch.Generator().manual_seed(5)
    verts = torch.rand(1_000_000, 3, generator=g)
    faces = torch.randint(0, 1_000_000, (500_000, 3), generator=g)
    write_serialized_shapes(tmp_path / "big.serialized", [SerializedMesh(verts, faces, name="big"), _tetra()])
    start = time.perf_counter()
    big = read_serialized(tmp_path / "big.serialized")
    seconds = time.perf_counter() - start
    assert torch.equal(big.verts, verts) and torch.equal(big.faces, faces)
    assert seconds < 30.0  # (about 0.3 s here: a generous bound against a quadratic reader, not a timing test)
    small = read_serialized(tmp_path / "big.serialized", 1)
    lg.io.save(tmp_path / "copy.serialized", SerializedMesh(small.verts, small.faces, normals=small.verts.clone(),
                                                             uv=small.verts[:, :2].clone(), name="keep"))
    back = lg.io.load(tmp_path / "copy.serialized")
    assert back.name == "keep" and torch.equal(back.normals, small.verts) and torch.equal(back.uv, small.verts[:, :2])
