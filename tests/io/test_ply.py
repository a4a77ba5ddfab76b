"""read_ply / write_ply: round trips in every format, hand-written files, foreign elements, malformed files."""

import struct
import time

import numpy as np
import pytest
import torch

from lumigrad.io import PlyError, PlyMesh, read_ply, write_ply

FORMATS = [(False, "little"), (True, "little"), (True, "big")]


def _mesh(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(7, 3, generator=g, dtype=dtype)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 0, 3]])
    normals = torch.nn.functional.normalize(torch.randn(7, 3, generator=g, dtype=dtype), dim=-1)
    uv = torch.rand(7, 2, generator=g, dtype=dtype)
    return verts, faces, normals, uv


def _header(fmt, *lines):
    return ("ply\nformat " + fmt + " 1.0\ncomment test\n" + "\n".join(lines) + "\nend_header\n").encode()


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("binary, order", FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_uchar_colours(tmp_path, binary, order, dtype):
    verts, faces, normals, uv = _mesh(dtype)
    colors = torch.randint(0, 256, (7, 4), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    p = tmp_path / "m.ply"
    write_ply(p, verts, faces, normals=normals, colors=colors, uv=uv, binary=binary, byte_order=order)
    m = read_ply(p, dtype=dtype)
    assert isinstance(m, PlyMesh) and m.extra == {}
    assert m.verts.dtype == dtype and m.faces.dtype == torch.int64
    assert torch.equal(m.verts, verts) and torch.equal(m.faces, faces) and torch.equal(m.normals, normals)
    assert torch.equal(m.uv, uv)  # the t flip is undone exactly for these values
    assert m.vertex_colors.shape == (7, 4) and float(m.vertex_colors.min()) >= 0 and float(m.vertex_colors.max()) <= 1
    assert torch.equal((m.vertex_colors * 255).round().to(torch.uint8), colors)
    header = p.read_bytes().split(b"end_header")[0].decode()
    assert ("ascii" if not binary else f"binary_{order}_endian") in header
    assert ("double x" if dtype == torch.float64 else "float x") in header and "uchar red" in header


@pytest.mark.parametrize("binary, order", FORMATS)
def test_round_trip_float_colours_point_cloud_and_nan(tmp_path, binary, order):
    verts = torch.tensor([[0.1, float("nan"), 3.0], [1e-30, -2.5e20, float("inf")]])
    colors = torch.tensor([[0.25, 0.5, 0.123456789], [1.0, 0.0, 0.3]])
    p = tmp_path / "pc.ply"
    write_ply(p, verts, colors=colors, binary=binary, byte_order=order)
    m = read_ply(p)
    assert m.faces.shape == (0, 3) and m.normals is None and m.uv is None
    torch.testing.assert_close(m.verts, verts, rtol=0, atol=0, equal_nan=True)  # NaN / Inf kept as read
    assert torch.equal(m.vertex_colors, colors)


def test_float32_uv_flip_is_close_for_arbitrary_values(tmp_path):
    verts, faces, _, _ = _mesh()
    uv = torch.tensor([[1e-9, 0.3], [0.1, 1e-9], [0.7, 0.33333334], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [2.0, -1.0]])
    write_ply(tmp_path / "m.ply", verts, faces, uv=uv)
    torch.testing.assert_close(read_ply(tmp_path / "m.ply").uv, uv, rtol=0, atol=6e-8)


# ------------------------------------------------------------------------------------------ hand-written files
def test_ascii_quad_and_pentagon_fan_triangulated(tmp_path):
    text = _header("ascii", "element vertex 7", "property float x", "property float y", "property float z",
                   "property uchar red", "property uchar green", "property uchar blue", "property float quality",
                   "property float s", "property float t", "element face 3",
                   "property list uchar int vertex_indices", "property uchar flags")
    body = "".join(f"{i} {i * i} 0  {i * 10} 255 0 {i / 2} 0.25 0.75\n" for i in range(7))
    body += "4 0 1 2 3 9\n5 2 3 4 5 6 1\n3 6 5 4 0"  # no final newline
    p = tmp_path / "q.ply"
    p.write_bytes(text + body.encode())
    m = read_ply(p, dtype=torch.float64)
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [2, 3, 4], [2, 4, 5], [2, 5, 6], [6, 5, 4]]
    assert m.verts[:, 1].tolist() == [i * i for i in range(7)]
    assert m.vertex_colors.shape == (7, 3) and m.vertex_colors[3].tolist() == [30 / 255, 1.0, 0.0]
    assert m.uv[0].tolist() == [0.25, 0.25]  # t = 0.75 -> v = 1 - 0.75
    assert list(m.extra) == ["quality"] and m.extra["quality"].tolist() == [i / 2 for i in range(7)]
    assert m.extra["quality"].dtype == torch.float64


def _binary_with_edges(order, edge_first):
    """4 vertices (double, with an int 'label'), an 'edge' element with a list, 2 faces (ushort count, uint)."""
    vert_rows = [(float(i), float(-i), 0.5 * i, i * 7) for i in range(4)]
    head = ["element vertex 4", "property double x", "property double y", "property double z", "property int label"]
    edge_head = ["element edge 3", "property int vertex1", "property int vertex2",
                 "property list uchar float weights", "property uchar red"]
    face_head = ["element face 2", "property uchar flag", "property list ushort uint vertex_index",
                 "property double area"]
    vbytes = b"".join(struct.pack(order + "dddi", *r) for r in vert_rows)
    ebytes = b"".join(struct.pack(order + "iiB", i, i + 1, i) + struct.pack(order + "f" * i, *range(i))
                      + struct.pack("B", 9) for i in range(3))
    fbytes = struct.pack(order + "BHIIIId", 1, 4, 0, 1, 2, 3, 2.0) + struct.pack(order + "BHIIId", 0, 3, 3, 2, 1, 1.0)
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    if edge_first:
        return _header(fmt, *head, *edge_head, *face_head) + vbytes + ebytes + fbytes
    return _header(fmt, *head, *face_head, *edge_head) + vbytes + fbytes + ebytes


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("edge_first", [True, False])
def test_binary_with_foreign_element_and_big_endian_doubles(tmp_path, order, edge_first):
    p = tmp_path / "e.ply"
    p.write_bytes(_binary_with_edges(order, edge_first))
    m = read_ply(p, dtype=torch.float64)
    assert m.verts.tolist() == [[float(i), float(-i), 0.5 * i] for i in range(4)]
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [3, 2, 1]]
    assert m.extra["label"].tolist() == [0, 7, 14, 21] and m.extra["label"].dtype == torch.int64
    # Trailing garbage after the last element is tolerated; the offsets must still be right.
    p.write_bytes(_binary_with_edges(order, edge_first) + b"\0\0")
    assert read_ply(p).faces.shape == (3, 3)


@pytest.mark.parametrize("fmt, pack", [("binary_little_endian", "<"), ("binary_big_endian", ">"), ("ascii", None)])
def test_all_scalar_types_and_aliases(tmp_path, fmt, pack):
    types = [("char", "b", -5), ("uchar", "B", 200), ("short", "h", -300), ("ushort", "H", 60000),
             ("int", "i", -70000), ("uint", "I", 4000000000), ("float", "f", 1.5), ("double", "d", -2.25),
             ("int8", "b", 5), ("uint8", "B", 6), ("int16", "h", 7), ("uint16", "H", 8), ("int32", "i", 9),
             ("uint32", "I", 10), ("float32", "f", 0.5), ("float64", "d", 0.125)]
    lines = ["element vertex 2", "property float x", "property float y", "property float z"]
    lines += [f"property {t} p_{t}" for t, _, _ in types]
    lines += ["element face 1", "property list int8 int16 vertex_indices"]
    rows = [(float(i), 0.0, 1.0, *[v for _, _, v in types]) for i in range(2)]
    if pack is None:
        body = "".join(" ".join(repr(x) for x in r) + "\n" for r in rows).encode() + b"3 0 1 1\n"
    else:
        code = pack + "fff" + "".join(c for _, c, _ in types)
        body = b"".join(struct.pack(code, *r) for r in rows) + struct.pack(pack + "bhhh", 3, 0, 1, 1)
    p = tmp_path / "t.ply"
    p.write_bytes(_header(fmt, *lines) + body)
    m = read_ply(p, dtype=torch.float64)
    assert m.faces.tolist() == [[0, 1, 1]]
    for t, _, v in types:
        assert m.extra[f"p_{t}"].tolist() == [v, v], t


def test_ushort_colours_and_vertex_index_name(tmp_path):
    lines = ["element vertex 3", "property float x", "property float y", "property float z", "property ushort red",
             "property ushort green", "property ushort blue", "element face 1", "property list uchar int vertex_index"]
    p = tmp_path / "c.ply"
    p.write_bytes(_header("ascii", *lines) + b"0 0 0 65535 0 0\n1 0 0 0 65535 0\n0 1 0 0 0 0\n3 0 1 2\n")
    m = read_ply(p)
    assert m.vertex_colors.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]] and m.faces.tolist() == [[0, 1, 2]]


# ------------------------------------------------------------------------------------------------ errors
def _tri_binary():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    return verts, torch.tensor([[0, 1, 2]])


@pytest.mark.parametrize("cut", [10, 40, 95, 110, 130, -1])  # inside the header, vertices, face count, indices
def test_truncated_binary_raises(tmp_path, cut):
    verts, faces = _tri_binary()
    full = tmp_path / "full.ply"
    write_ply(full, verts, faces, colors=torch.zeros(3, 3, dtype=torch.uint8))
    data = full.read_bytes()
    assert len(data) > 130
    p = tmp_path / "cut.ply"
    p.write_bytes(data[:cut])
    with pytest.raises(PlyError, match=r"cut\.ply: .*(truncated|corrupt)"):
        read_ply(p)


@pytest.mark.parametrize("cut", [-2, -9, -40])
def test_truncated_ascii_raises(tmp_path, cut):
    verts, faces = _tri_binary()
    write_ply(tmp_path / "a.ply", verts, faces, binary=False)
    data = (tmp_path / "a.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:cut])
    with pytest.raises(PlyError, match=r"cut\.ply: .*(truncated|corrupt)"):
        read_ply(tmp_path / "cut.ply")


def test_truncated_variable_length_face_list_raises(tmp_path):
    p = tmp_path / "v.ply"
    head = _header("binary_little_endian", "element vertex 3", "property float x", "property float y",
                   "property float z", "element face 2", "property list uchar int vertex_indices")
    body = struct.pack("<9f", *range(9)) + struct.pack("<B3i", 3, 0, 1, 2) + struct.pack("<B2i", 200, 0, 1)
    p.write_bytes(head + body)
    with pytest.raises(PlyError, match=r"v\.ply: truncated in element 'face' row 1"):
        read_ply(p)


@pytest.mark.parametrize("header, what", [
    (b"PLY\nformat ascii 1.0\nend_header\n", "not a PLY file"),
    (b"solid stl\n", "not a PLY file"),
    (b"ply\nformat ascii 1.0\nelement vertex 0\n", "no 'end_header'"),
    (b"ply\nelement vertex 0\nend_header\n", "no 'format' line"),
    (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "unknown format"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float16 x\nend_header\n0\n", "unknown type 'float16'"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list float int x\nend_header\n0\n", "integer type"),
    (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", "property before any element"),
    (b"ply\nformat ascii 1.0\nelement vertex -1\nend_header\n", "negative element count"),
    (b"ply\nformat ascii 1.0\nelement vertex x\nend_header\n", "not an integer"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x y\nend_header\n", "expected 'property"),
    (b"ply\nformat ascii 1.0\nvertices 3\nend_header\n", "unknown header keyword"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n",
     "needs scalar properties x, y and z"),
    (b"ply\nformat ascii 1.0\nelement point 1\nproperty float x\nend_header\n1\n", "no 'vertex' element"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
     b"1 2 zz\n", "'zz' is not a number"),
])
def test_bad_headers_raise(tmp_path, header, what):
    p = tmp_path / "h.ply"
    p.write_bytes(header)
    with pytest.raises(PlyError, match=r"h\.ply") as info:
        read_ply(p)
    assert what in str(info.value) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_face_index_raises(tmp_path, binary, bad):
    verts, _ = _tri_binary()
    p = tmp_path / "o.ply"
    write_ply(p, verts, torch.tensor([[0, 1, 2]]), binary=binary)
    data = p.read_bytes()
    if binary:
        data = data[:-4] + struct.pack("<i", bad)
    else:
        data = data.replace(b"3 0 1 2\n", f"3 0 1 {bad}\n".encode())
    p.write_bytes(data)
    with pytest.raises(PlyError, match=rf"o\.ply: face vertex index {bad} is out of range \[0, 3\)"):
        read_ply(p)


def test_face_with_two_corners_raises(tmp_path):
    p = tmp_path / "f.ply"
    p.write_bytes(_header("ascii", "element vertex 3", "property float x", "property float y", "property float z",
                          "element face 1", "property list uchar int vertex_indices") + b"0 0 0\n1 0 0\n0 1 0\n2 0 1\n")
    with pytest.raises(PlyError, match="face 0 has 2 corners"):
        read_ply(p)


@pytest.mark.parametrize("fmt", ["ascii", "binary_little_endian", "binary_big_endian"])
@pytest.mark.parametrize("element", ["vertex", "face", "edge"])
def test_absurd_counts_fail_fast(tmp_path, fmt, element):
    counts = {"vertex": 3, "face": 1, "edge": 0}
    counts[element] = 10 ** 12
    head = _header(fmt, f"element vertex {counts['vertex']}", "property float x", "property float y",
                   "property float z", f"element edge {counts['edge']}", "property int a",
                   f"element face {counts['face']}", "property list uchar int vertex_indices")
    p = tmp_path / "big.ply"
    p.write_bytes(head + b"\0" * (1024 - len(head)))
    start = time.perf_counter()
    with pytest.raises(PlyError, match=r"big\.ply: the header declares .* but only \d+ follow the header"):
        read_ply(p)
    assert time.perf_counter() - start < 0.5


def test_element_with_rows_but_no_properties_raises(tmp_path):
    p = tmp_path / "n.ply"
    p.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement junk 1000000000000\nend_header\n")
    with pytest.raises(PlyError, match="no properties"):
        read_ply(p)


def test_write_ply_validates_arguments(tmp_path):
    verts, faces = _tri_binary()
    with pytest.raises(ValueError, match=r"faces holds index 3"):
        write_ply(tmp_path / "x.ply", verts, torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"verts must have shape"):
        write_ply(tmp_path / "x.ply", verts[:, :2])
    with pytest.raises(ValueError, match=r"colors must have shape"):
        write_ply(tmp_path / "x.ply", verts, colors=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"normals must have shape"):
        write_ply(tmp_path / "x.ply", verts, normals=torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"faces must have an integer dtype"):
        write_ply(tmp_path / "x.ply", verts, faces.float())
    with pytest.raises(ValueError, match=r"byte_order"):
        write_ply(tmp_path / "x.ply", verts, byte_order="middle")


def test_large_mixed_polygon_mesh_is_fast(tmp_path):
    # 20k triangles and quads interleaved: the variable-length path.
    n = 20000
    verts = np.random.default_rng(0).standard_normal((4 * n, 3)).astype("<f4")
    body = bytearray(verts.tobytes())
    for i in range(n):
        if i % 2:
            body += struct.pack("<B4i", 4, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3)
        else:
            body += struct.pack("<B3i", 3, 4 * i, 4 * i + 1, 4 * i + 2)
    head = _header("binary_little_endian", f"element vertex {4 * n}", "property float x", "property float y",
                   "property float z", f"element face {n}", "property list uchar int vertex_indices")
    (tmp_path / "l.ply").write_bytes(head + bytes(body))
    m = read_ply(tmp_path / "l.ply")
    assert m.faces.shape == (n // 2 + 2 * (n // 2), 3) and m.faces[-1].tolist() == [4 * n - 4, 4 * n - 2, 4 * n - 1]
    assert torch.equal(m.verts, torch.from_numpy(verts.astype("f4")))


def test_obj_and_ply_readers_return_one_mesh_record(tmp_path):
    """OBJ and PLY give the same record (``MeshData``), with the same meaning per field, so a PLY with
    per-vertex uv has ``uv_faces = faces``; ``PlyMesh.colors`` still reads, with a FutureWarning."""
    from lumigrad.io import MeshData, ObjData, read_obj_with_materials, write_obj

    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    write_ply(tmp_path / "t.ply", verts, faces, uv=uv, colors=torch.rand(3, 3))
    write_obj(tmp_path / "t.obj", verts, faces, uv=uv, uv_faces=faces)
    ply, obj = read_ply(tmp_path / "t.ply"), read_obj_with_materials(tmp_path / "t.obj")
    assert PlyMesh is MeshData and ObjData is MeshData
    assert type(ply) is MeshData and type(obj) is MeshData
    for m in (ply, obj):
        assert torch.equal(m.faces, faces) and torch.equal(m.uv_faces, faces)
        torch.testing.assert_close(m.uv, uv)
    with pytest.warns(FutureWarning, match="vertex_colors"):
        assert ply.colors is ply.vertex_colors


def _random_mixed_element(rng, order, rows):
    """Bytes and ASCII text of ``rows`` rows of an element with a scalar, two lists of varying length (one with
    a signed count type) and a trailing scalar; returns (props as header lines, binary body, ascii body)."""
    props = ["property ushort flag", "property list uchar int vertex_indices", "property float weight",
             "property list short double texcoord"]
    binary, text = bytearray(), []
    for _ in range(rows):
        flag, m, w, t = int(rng.integers(0, 60000)), int(rng.integers(3, 7)), float(rng.standard_normal()), \
            int(rng.integers(0, 5))
        idx = rng.integers(0, 10, m)
        tex = rng.standard_normal(t)
        binary += struct.pack(f"{order}HB{m}if", flag, m, *idx.tolist(), np.float32(w))
        binary += struct.pack(f"{order}h{t}d", t, *tex.tolist())
        text.append(" ".join([str(flag), str(m), *map(str, idx.tolist()), repr(float(np.float32(w))), str(t),
                              *map(repr, tex.tolist())]))
    return props, bytes(binary), "\n".join(text) + "\n"


@pytest.mark.parametrize("seed", range(4))
def test_variable_length_rows_parse_as_the_row_by_row_reader(seed):
    """The vectorised parse of rows with lists of varying lengths (pointer doubling) against the row-by-row
    parser, binary (both byte orders) and ASCII, on random elements; a truncated body falls back to the row
    parser's error."""
    from lumigrad.io import ply

    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 300))
    for order, fmt in (("<", "binary_little_endian"), (">", "binary_big_endian"), (None, "ascii")):
        lines, binary, text = _random_mixed_element(np.random.default_rng(seed), order or "<", rows)
        header = _header(fmt, f"element face {rows}", *lines)
        _, elements, start = ply._parse_header(header + (binary if order else text.encode()), "x.ply")
        el = elements[0]
        if order:
            data = header + binary
            fast, end = ply._read_binary(data, start, el, order, "x.ply")
            slow, slow_end = ply._binary_rows(data, start, el, order, "x.ply", rows)
        else:
            tokens = text.split()
            fast, end = ply._read_ascii(tokens, 0, el, "x.ply")
            slow, slow_end = ply._ascii_rows(tokens, 0, el, "x.ply", rows)
        assert end == slow_end
        for p in el.props:
            if p.count_dtype is None:
                np.testing.assert_array_equal(fast[p.name], slow[p.name])
            else:
                np.testing.assert_array_equal(fast[p.name][0], slow[p.name][0])
                np.testing.assert_array_equal(fast[p.name][1], slow[p.name][1])
        if order:
            with pytest.raises(PlyError, match="truncated"):
                ply._read_binary(header + binary[:-3], start, el, order, "x.ply")


def test_a_million_mixed_faces_read_without_a_row_loop(tmp_path, monkeypatch):
    """The row-by-row parser is not used for a well-formed file with triangles and quads interleaved."""
    from lumigrad.io import ply

    n = 1 << 20
    rng = np.random.default_rng(1)
    quads = rng.random(n) < 0.5
    counts = np.where(quads, 4, 3)
    record = np.zeros(n, dtype=[("c", "u1"), ("i", "<i4", (4,))])
    record["c"] = counts
    record["i"] = np.arange(4 * n).reshape(n, 4) % 8
    raw = record.tobytes()
    keep = np.ones((n, 17), dtype=bool)
    keep[~quads, 13:] = False  # triangles: drop the fourth index
    body = np.frombuffer(raw, np.uint8).reshape(n, 17)[keep].tobytes()
    verts = np.zeros((8, 3), "<f4")
    head = _header("binary_little_endian", "element vertex 8", "property float x", "property float y",
                   "property float z", f"element face {n}", "property list uchar int vertex_indices")
    (tmp_path / "m.ply").write_bytes(head + verts.tobytes() + body)
    row_by_row = ply._binary_rows

    def first_row_only(data, pos, el, order, path, rows):
        assert rows == 1, "the row-by-row parser read the whole element"
        return row_by_row(data, pos, el, order, path, rows)

    monkeypatch.setattr(ply, "_binary_rows", first_row_only)
    m = read_ply(tmp_path / "m.ply")
    assert m.faces.shape == (int(counts.sum()) - 2 * n, 3)
    assert m.faces[0].tolist() == record["i"][0, :3].tolist()  # a fan starts with the polygon's first three
