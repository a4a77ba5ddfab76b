"""read_obj on the embedded Spot and on small hand-written files; Mesh.vertex_normals; load_spot."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.data import load_spot, spot_paths
from lumigrad.io import ObjError, read_obj, write_obj

from ..conftest import SHARED_DATA, uv_sphere

DT = torch.float64


def _write(tmp_path, text, name="m.obj"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------------------ Spot
def test_spot_counts_and_uv_flip():
    obj, _ = spot_paths()
    verts, faces, uv, uv_faces = read_obj(obj)
    assert verts.shape == (2930, 3) and verts.dtype == torch.float32
    assert faces.shape == (5856, 3) and faces.dtype == torch.int64
    assert uv.shape == (3225, 2) and uv_faces.shape == (5856, 3) and uv_faces.dtype == torch.int64
    assert int(faces.min()) == 0 and int(faces.max()) == 2929
    assert int(uv_faces.min()) == 0 and int(uv_faces.max()) == 3224
    # Compare with the raw text: first v, first vt (v flipped to the top-left origin), first f (1-based).
    lines = obj.read_text().splitlines()
    first_v = next(ln for ln in lines if ln.startswith("v "))
    first_vt = next(ln for ln in lines if ln.startswith("vt "))
    first_f = next(ln for ln in lines if ln.startswith("f "))
    last_vt = [ln for ln in lines if ln.startswith("vt ")][-1]
    x, y, z = (float(t) for t in first_v.split()[1:4])
    assert verts[0].tolist() == pytest.approx([x, y, z], abs=1e-7)
    for row, line in ((0, first_vt), (-1, last_vt)):
        u, v = (float(t) for t in line.split()[1:3])
        assert uv[row].tolist() == pytest.approx([u, 1.0 - v], abs=1e-7)
        assert float(uv[row, 1]) != pytest.approx(v, abs=1e-3)  # the flip is not a no-op for this line
    corners = [c.split("/") for c in first_f.split()[1:]]
    assert faces[0].tolist() == [int(c[0]) - 1 for c in corners]
    assert uv_faces[0].tolist() == [int(c[1]) - 1 for c in corners]


def test_spot_float64_dtype():
    obj, _ = spot_paths()
    verts, _, uv, _ = read_obj(obj, dtype=DT)
    assert verts.dtype == DT and uv.dtype == DT


def test_load_spot():
    spot = load_spot()
    assert isinstance(spot, lg.Mesh)
    assert spot.verts.shape == (2930, 3) and spot.faces.shape == (5856, 3)
    assert spot.uv.shape == (3225, 2) and spot.uv_faces.shape == (5856, 3)
    assert spot.texture.shape == (1024, 1024, 3) and spot.texture.is_floating_point()
    assert float(spot.texture.min()) >= 0 and float(spot.texture.max()) <= 1 and float(spot.texture.std()) > 0.05
    # A closed, consistently wound (outward) surface: the signed volume is positive and every edge has 2 faces.
    v0, v1, v2 = spot.verts.double()[spot.faces].unbind(1)
    volume = float((v0 * torch.linalg.cross(v1, v2)).sum() / 6)
    assert volume > 0
    e = torch.cat([spot.faces[:, [0, 1]], spot.faces[:, [1, 2]], spot.faces[:, [2, 0]]])
    directed = set(map(tuple, e.tolist()))
    assert len(directed) == e.shape[0] and all((b, a) in directed for a, b in directed)


# ------------------------------------------------------------------------------------------ small hand files
def test_triangle_with_uv_and_normals(tmp_path):
    p = _write(tmp_path, "# a comment\n\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0.25\nvt 0 1\n"
                         "vn 0 0 1\nf 1/1/1 2/2/1 3/3/1\n")
    verts, faces, uv, uv_faces = read_obj(p)
    assert verts.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    assert faces.tolist() == [[0, 1, 2]] and uv_faces.tolist() == [[0, 1, 2]]
    assert uv.tolist() == [[0.0, 1.0], [1.0, 0.75], [0.0, 0.0]]


def test_v_slash_slash_vn_has_no_uv(tmp_path):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1\n")
    verts, faces, uv, uv_faces = read_obj(p)
    assert faces.tolist() == [[0, 1, 2]] and uv is None and uv_faces is None


def test_v_slash_vt_form_and_separate_indices(tmp_path):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\nvt 0.5 0.5\n"
                         "f 1/5 2/2 4/4\nf 1/1 4/4 3/3\n")
    _, faces, uv, uv_faces = read_obj(p)
    assert faces.tolist() == [[0, 1, 3], [0, 3, 2]]
    assert uv_faces.tolist() == [[4, 1, 3], [0, 3, 2]]
    assert uv.shape == (5, 2)


def test_mixed_faces_with_and_without_uv_drop_uv(tmp_path):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                         "f 1/1 2/2 3/3\nf 2 4 3\n")
    _, faces, uv, uv_faces = read_obj(p)
    assert faces.shape == (2, 3) and uv is None and uv_faces is None


def test_quads_and_polygons_are_fan_triangulated(tmp_path):
    p = _write(tmp_path, "".join(f"v {i} {i * i} 0\n" for i in range(7)) +
               "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\n"
               "f 1/1 2/2 3/3 4/4\n"      # quad -> 2 triangles
               "f 3/1 4/2 5/3 6/4 7/5\n")  # pentagon -> 3 triangles
    _, faces, _, uv_faces = read_obj(p)
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [2, 3, 4], [2, 4, 5], [2, 5, 6]]
    assert uv_faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [0, 3, 4]]


def test_negative_indices_are_relative_to_what_is_defined_so_far(tmp_path):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf -3/-3 -2/-2 -1/-1\n"
                         "v 1 1 0\nvt 1 1\nf -3/-1 -1/-2 -2/-3\nf 1/1 -1/-1 3/3\n")
    _, faces, _, uv_faces = read_obj(p)
    assert faces.tolist() == [[0, 1, 2], [1, 3, 2], [0, 3, 2]]
    assert uv_faces.tolist() == [[0, 1, 2], [3, 2, 1], [0, 3, 2]]


def test_extra_fields_are_tolerated(tmp_path):
    # A 4th (w) position coordinate and a 3rd (w) texture coordinate are ignored; so are unknown statements.
    p = _write(tmp_path, "mtllib x.mtl\no thing\ng group\nv 0 0 0 1\nv 1 0 0 1\nv 0 1 0 1\nvt 0 0 0\nvt 1 0 0\n"
                         "vt 0 1 0\nusemtl m\ns off\nf 1/1 2/2 3/3\n")
    verts, faces, uv, _ = read_obj(p)
    assert verts.shape == (3, 3) and faces.tolist() == [[0, 1, 2]] and uv.tolist()[2] == [0.0, 0.0]


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("text, lineno, what", [
    ("v 0 0 0\nv 1 0\n", 2, "3 coordinates"),
    ("v 0 0 0\nv 1 0 zero\n", 2, "v: value 3 is not a number"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0.5\n", 4, "2 values"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n", 4, "corner 3: the vertex index is not an integer"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\n\n# c\nf 1 2\n", 6, "at least 3"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/a 2 3\n", 4, "corner 1: the texture coordinate index is not an integer"),
])
def test_malformed_lines_raise_with_line_number(tmp_path, text, lineno, what):
    p = _write(tmp_path, text)
    with pytest.raises(ObjError, match=rf"m\.obj:{lineno}:") as info:
        read_obj(p)
    assert what in str(info.value)
    assert isinstance(info.value, ValueError)
    bad_line = text.rstrip("\n").split("\n")[lineno - 1]
    assert bad_line not in str(info.value)  # the message names the line; it never quotes it


@pytest.mark.parametrize("face, lineno, what", [
    ("f 1 2 4", 4, "vertex index 4 out of range"),
    ("f 0 1 2", 4, "vertex index 0"),
    ("f -4 1 2", 4, "vertex index -4 out of range"),
    ("f 1/1 2/2 3/3", 4, "texture coordinate index 1 out of range"),
])
def test_out_of_range_indices_raise(tmp_path, face, lineno, what):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nv 0 1 0\n" + face + "\n")
    with pytest.raises(ObjError, match=rf"m\.obj:{lineno}:.*{what}"):
        read_obj(p)


def test_forward_reference_raises(tmp_path):
    p = _write(tmp_path, "v 0 0 0\nv 1 0 0\nf 1 2 3\nv 0 1 0\n")
    with pytest.raises(ObjError, match=r"m\.obj:3:.*vertex index 3 out of range"):
        read_obj(p)


@pytest.mark.parametrize("text", ["", "# nothing\n", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "vt 0 0\n"])
def test_no_geometry_raises(tmp_path, text):
    with pytest.raises(ObjError, match="no vertices or faces"):
        read_obj(_write(tmp_path, text))


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_obj(tmp_path / "absent.obj")


# --------------------------------------------------------------------------------------------- vertex normals
def _cube_with_face_centres():
    """Unit cube [-1, 1]^3, each square split into 4 outward triangles around its centre: 8 + 6 vertices."""
    corners = [[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]
    verts = list(corners)
    faces = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            centre = [0.0, 0.0, 0.0]
            centre[axis] = sign
            c = len(verts)
            verts.append(centre)
            ring = [i for i, p in enumerate(corners) if p[axis] == sign]
            # Order the 4 corners counter-clockwise seen from outside (around the outward axis).
            u, w = [(a) for a in range(3) if a != axis]
            ring.sort(key=lambda i: math.atan2(corners[i][w], corners[i][u]) * (sign if axis != 1 else -sign))
            for k in range(4):
                faces.append([c, ring[k], ring[(k + 1) % 4]])
    return torch.tensor(verts, dtype=DT), torch.tensor(faces)


def test_cube_normals_are_outward_unit_diagonals():
    verts, faces = _cube_with_face_centres()
    v0, v1, v2 = verts[faces].unbind(1)
    n = torch.linalg.cross(v1 - v0, v2 - v0)
    assert ((n * (v0 + v1 + v2)).sum(-1) > 0).all(), "test cube must be wound outward"
    normals = lg.Mesh(verts, faces).vertex_normals()
    torch.testing.assert_close(normals[:8], verts[:8] / math.sqrt(3), rtol=0, atol=1e-15)
    torch.testing.assert_close(normals[8:], verts[8:], rtol=0, atol=1e-15)


def test_sphere_normals_point_outward_with_unit_length():
    verts, faces = uv_sphere(16, 32)
    normals = lg.vertex_normals(verts, faces)
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(verts.shape[0], dtype=DT), rtol=0, atol=1e-14)
    radial = verts / verts.norm(dim=-1, keepdim=True)
    cos = (normals * radial).sum(-1)
    assert float(cos.min()) > 0.999
    # The poles are symmetric: exactly radial.
    torch.testing.assert_close(normals[[0, -1]], radial[[0, -1]], rtol=0, atol=1e-14)
    # Scale-invariant, and batched verts give per-batch normals.
    both = lg.vertex_normals(torch.stack([verts, 3 * verts]), faces)
    torch.testing.assert_close(both[0], normals, rtol=0, atol=1e-14)
    torch.testing.assert_close(both[1], normals, rtol=0, atol=1e-14)


def test_vertex_normals_isolated_and_degenerate():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [2, 2, 2]], dtype=DT, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [4, 4, 1]])  # vertex 3 unused, vertex 4 only in a zero-area face
    n = lg.vertex_normals(verts, faces)
    torch.testing.assert_close(n[:3], torch.tensor([[0.0, 0, 1]] * 3, dtype=DT), rtol=0, atol=0)
    assert (n[3:] == 0).all()
    n.sum().backward()
    assert torch.isfinite(verts.grad).all() and (verts.grad[3] == 0).all()


def test_vertex_normals_gradcheck():
    verts, faces = uv_sphere(3, 5)
    verts = (verts + 0.05 * torch.randn(verts.shape, generator=torch.Generator().manual_seed(0), dtype=DT))
    torch.autograd.gradcheck(lambda v: lg.vertex_normals(v, faces), (verts.requires_grad_(),), eps=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------------------------ write_obj
def _same(a, b):
    assert a is None and b is None or (a.dtype == b.dtype and torch.equal(a, b))


@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_write_obj_round_trip_with_uv(tmp_path, dtype):
    verts, faces = uv_sphere(4, 6, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(verts.shape[0] + 5, 2, generator=g, dtype=dtype)
    uv_faces = torch.randint(0, uv.shape[0], faces.shape, generator=g)
    write_obj(tmp_path / "w.obj", verts, faces, uv=uv, uv_faces=uv_faces)
    got = read_obj(tmp_path / "w.obj", dtype=dtype)
    for a, b in zip(got, (verts, faces, uv, uv_faces)):
        _same(a, b)
    first_f = next(ln for ln in (tmp_path / "w.obj").read_text().splitlines() if ln.startswith("f "))
    assert first_f.split()[1] == f"{int(faces[0, 0]) + 1}/{int(uv_faces[0, 0]) + 1}"


def test_write_obj_uv_per_vertex_normals_and_plain(tmp_path):
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    faces = torch.tensor([[0, 1, 3], [0, 3, 2]], dtype=torch.int32)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.25]])
    write_obj(tmp_path / "a.obj", verts, faces, uv=uv, normals=torch.tensor([[0.0, 0, 1]] * 4))
    text = (tmp_path / "a.obj").read_text()
    assert "vt 1.0 0.75" in text and "vn 0.0 0.0 1.0" in text and "f 1/1/1 2/2/2 4/4/4" in text
    v, f, t, tf = read_obj(tmp_path / "a.obj")
    assert torch.equal(v, verts) and f.tolist() == faces.tolist() and torch.equal(t, uv) and tf.tolist() == f.tolist()
    write_obj(tmp_path / "b.obj", verts, faces, normals=torch.tensor([[0.0, 0, 1]] * 4))
    assert "f 1//1 2//2 4//4" in (tmp_path / "b.obj").read_text()
    write_obj(tmp_path / "c.obj", verts, faces)
    assert "f 1 2 4\n" in (tmp_path / "c.obj").read_text()
    v, f, t, tf = read_obj(tmp_path / "c.obj")
    assert torch.equal(v, verts) and f.tolist() == faces.tolist() and t is None and tf is None


def test_write_obj_validates_arguments(tmp_path):
    verts, faces = uv_sphere(3, 4)
    with pytest.raises(ValueError, match="faces holds index"):
        write_obj(tmp_path / "x.obj", verts, faces + verts.shape[0])
    with pytest.raises(ValueError, match="uv_faces was given without uv"):
        write_obj(tmp_path / "x.obj", verts, faces, uv_faces=faces)
    with pytest.raises(ValueError, match="one row per vertex"):
        write_obj(tmp_path / "x.obj", verts, faces, uv=torch.zeros(2, 2, dtype=DT))
    with pytest.raises(ValueError, match="uv_faces holds index"):
        write_obj(tmp_path / "x.obj", verts, faces, uv=torch.zeros(2, 2, dtype=DT), uv_faces=faces)
    with pytest.raises(ValueError, match="normals must have shape"):
        write_obj(tmp_path / "x.obj", verts, faces, normals=torch.zeros(1, 3, dtype=DT))
    with pytest.raises(TypeError, match="faces must have an integer dtype"):
        write_obj(tmp_path / "x.obj", verts, faces.double())


SHARED_OBJS = sorted(SHARED_DATA.rglob("*.obj")) if SHARED_DATA.is_dir() else []


@pytest.mark.skipif(not SHARED_OBJS, reason="../shared/data is missing")
@pytest.mark.parametrize("path", SHARED_OBJS, ids=[p.name for p in SHARED_OBJS])
def test_shared_objs_round_trip(tmp_path, path):
    got = read_obj(path)  # uv and uv_faces are None for files without texture coordinates (the Cornell boxes)
    verts, faces, uv, uv_faces = got
    write_obj(tmp_path / "rt.obj", verts, faces, uv=uv, uv_faces=uv_faces)
    for a, b in zip(read_obj(tmp_path / "rt.obj"), got):
        _same(a, b)
