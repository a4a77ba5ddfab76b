"""Property-based fuzzing of the OBJ and MTL readers with hypothesis.

Inputs: (a) random bytes, (b) OBJ text built from plausible lines with corrupted tokens (huge, negative and zero
indices, NaN / Inf / overflowing numbers, odd unicode, missing or broken ``mtllib`` files, undefined
``usemtl``), (c) MTL text built the same way (bad numbers, map options, missing / broken / directory textures).

The contract: a reader either succeeds, returning finite tensors with in-range indices that ``lumigrad.Mesh``
and ``scene_from_mesh`` accept, or raises :class:`lumigrad.io.ObjError` (``MtlError`` is one) whose message
names the file. Any other exception is a bug in the reader. 2,000 cases, about 30-40 s on one (shared) core.
"""

import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lumigrad as lg
from lumigrad.io.image import write_image
from lumigrad.io.mtl import read_mtl
from lumigrad.io.obj import ObjError, read_obj, read_obj_with_materials
from lumigrad.scene import scene_from_mesh
from lumigrad.shading import Material

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True, database=None)

# ---------------------------------------------------------------------------------------------- tokens
WEIRD = ["", "nan", "-nan", "inf", "-inf", "1e999", "-1e999", "3e38", "1e300", "0x10", "1_0", "١٢", "½", "\u00a0",
         "é", "\U0001f600", "--1", "1e", ".", "-", "+", "0", "-0", "00", "1.5.2", "\x00", "\x0b", "/", "//", "#"]
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-10, 10).map(lambda x: f"{x:.3g}"),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(WEIRD),
    st.text(max_size=4),
)
small_index = st.one_of(st.integers(-6, 8), st.integers(-10**25, 10**25), st.sampled_from([0, -0, 1, -1]))
index_token = st.one_of(small_index.map(str), st.sampled_from(WEIRD))
corner = st.one_of(
    index_token,
    st.tuples(index_token, index_token).map("/".join),
    st.tuples(index_token, index_token).map(lambda t: f"{t[0]}//{t[1]}"),
    st.tuples(index_token, index_token, index_token).map("/".join),
)
names = st.one_of(st.sampled_from(["a", "b", "c d", "default", "light", "", "é", "#x", "a#b"]), st.text(max_size=6))


def _line(tag, parts):
    return " ".join([tag] + list(parts))


def _tagged(tag, values):
    return st.tuples(st.just(tag), values).map(lambda t: _line(*t))


# Corrupted lines: every token may be wrong.
bad_obj_lines = st.one_of(
    _tagged("v", st.lists(numbers, max_size=8)),
    _tagged("vt", st.lists(numbers, max_size=4)),
    _tagged("vn", st.lists(numbers, max_size=3)),
    _tagged("f", st.lists(corner, max_size=7)),
    _tagged("mtllib", st.sampled_from(["missing.mtl", "tex.png", ".", "..", "/", "lib.mtl x", "a" * 300, "dir",
                                       "\x00", "/dev/null"])),
    _tagged("usemtl", names),
    st.sampled_from(["o thing", "g a b", "s off", "s 1", "# comment", "", "   ", "l 1 2", "p 1", "mtllib",
                     "usemtl", "f", "v", "vt"]),
    st.text(max_size=20),
)
# Plausible lines: the files start with 4 positions and 4 texture coordinates, so these indices mostly resolve.
good_float = st.floats(-2, 2).map(repr)
good_index = st.sampled_from(["1", "2", "3", "4", "-1", "-2", "-3", "-4"])
good_obj_lines = st.one_of(
    _tagged("v", st.lists(good_float, min_size=3, max_size=3)),
    _tagged("v", st.lists(st.floats(0, 1).map(repr), min_size=6, max_size=6)),  # with a vertex colour
    _tagged("vt", st.lists(st.floats(0, 1).map(repr), min_size=2, max_size=3)),
    _tagged("f", st.lists(good_index, min_size=3, max_size=5)),
    _tagged("f", st.lists(st.tuples(good_index, good_index).map("/".join), min_size=3, max_size=5)),
    _tagged("usemtl", st.sampled_from(["a", "b", "c d"])),
    st.sampled_from(["mtllib lib.mtl", "o thing", "g group", "s off", "# comment"]),
)


def _mutated(good, bad, max_size):
    """Lists of ``good`` lines with up to 2 ``bad`` ones inserted at random places (0 bad half the time)."""
    def insert(t):
        lines, inserts = t
        lines = list(lines)
        for position, line in inserts:
            lines.insert(position % (len(lines) + 1), line)
        return lines

    return st.tuples(st.lists(good, max_size=max_size),
                     st.lists(st.tuples(st.integers(0, max_size), bad), max_size=2)).map(insert)


obj_texts = _mutated(good_obj_lines, bad_obj_lines, 25)
mtl_maps = ["map_Kd", "map_Ks", "map_d", "map_Bump", "bump", "norm", "map_Pr", "map_Pm", "map_Ke", "map_ao",
            "map_kd", "MAP_KD"]
map_options = st.one_of(
    st.sampled_from(["-s 1 1 1", "-o 0.5", "-clamp on", "-clamp off", "-bm 0.3", "-bm", "-bm nan", "-mm 0 1",
                     "-mm 0", "-imfchan r", "-blendu on", "-texres 512", "-t 1 2 3 4", "-unknown", "-s", "-o x"]),
    st.text(max_size=6),
)
texture_name = st.sampled_from(["bad.png", "missing.png", ".", "dir", "/", "tex.png extra", "TEX.PNG",
                                "..\\tex.png", "a" * 300, "\x00", "/dev/null", "/proc/self/status"])
bad_mtl_lines = st.one_of(
    _tagged("newmtl", names),
    st.tuples(st.sampled_from(["Kd", "Ks", "Ke", "Ka", "kd", "KE"]), st.lists(numbers, max_size=4))
    .map(lambda t: _line(*t)),
    st.tuples(st.sampled_from(["Kd", "Ke"]), st.sampled_from(["spectral x.rfl", "xyz 1 1 1"])).map(lambda t: _line(*t)),
    st.tuples(st.sampled_from(["Ns", "Ni", "d", "Tr", "Pr", "Pm", "Pe", "illum", "sharpness"]),
              st.lists(numbers, max_size=2)).map(lambda t: _line(*t)),
    st.tuples(st.sampled_from(mtl_maps), st.lists(map_options, max_size=3), texture_name)
    .map(lambda t: _line(t[0], t[1] + [t[2]])),
    st.text(max_size=20),
)
good_mtl_lines = st.one_of(
    _tagged("newmtl", st.sampled_from(["a", "b", "c d", "e"])),
    st.tuples(st.sampled_from(["Kd", "Ks", "Ke"]), st.lists(st.floats(0, 1).map(repr), min_size=3, max_size=3))
    .map(lambda t: _line(*t)),
    st.tuples(st.sampled_from(["Ns", "Ni", "d", "Tr", "Pr", "Pm"]), st.floats(0, 1).map(repr))
    .map(lambda t: _line(*t)),
    _tagged("Ns", st.floats(0, 1e4).map(repr)), _tagged("Ni", st.floats(1, 3).map(repr)),
    st.tuples(st.sampled_from(mtl_maps), st.lists(st.sampled_from(["-s 1 1 1", "-o 0.5 0.5", "-clamp on", "-bm 0.3",
                                                                   "-mm 0 1", "-imfchan r", "-blendu on"]),
                                                  max_size=2), st.sampled_from(["tex.png", "grey.png"]))
    .map(lambda t: _line(t[0], t[1] + [t[2]])),
    st.sampled_from(["d -halo 0.5", "# comment", "", "illum 2", "illum 5", "Ka 1 1 1", "frobnicate 1 2"]),
)
mtl_texts = _mutated(good_mtl_lines, bad_mtl_lines, 15)
PREFIX_OBJ = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\n"
PREFIX_MTL = "newmtl a\nnewmtl b\nnewmtl c d\n"


# ------------------------------------------------------------------------------------------------ checks
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder per module with the files fuzzed text may refer to: a colour and a grey texture, a broken PNG,
    a sub-folder. Each example overwrites ``m.obj`` / ``lib.mtl`` there (a fresh folder per example would
    spend most of the budget creating and deleting folders)."""
    tmp = tmp_path_factory.mktemp("fuzz_obj")
    write_image(tmp / "tex.png", torch.linspace(0, 1, 12).reshape(2, 2, 3))
    write_image(tmp / "grey.png", torch.linspace(0, 1, 4).reshape(2, 2, 1))
    (tmp / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp / "dir").mkdir()
    return tmp


def _check_material(m: Material) -> None:
    assert isinstance(m, Material)
    for name, t in m.parameters().items():
        assert torch.isfinite(t).all(), name


def _check_obj(path: Path, d) -> None:
    V, F = d.verts.shape[0], d.faces.shape[0]
    assert d.verts.shape == (V, 3) and V > 0 and F > 0 and torch.isfinite(d.verts).all()
    assert d.faces.shape == (F, 3) and d.faces.dtype == torch.int64
    assert int(d.faces.min()) >= 0 and int(d.faces.max()) < V
    assert (d.uv is None) == (d.uv_faces is None)
    if d.uv is not None:
        assert torch.isfinite(d.uv).all() and d.uv_faces.shape == (F, 3)
        assert int(d.uv_faces.min()) >= 0 and int(d.uv_faces.max()) < d.uv.shape[0]
    if d.vertex_colors is not None:
        assert d.vertex_colors.shape == (V, 3) and torch.isfinite(d.vertex_colors).all()
    if d.materials is not None:
        assert d.face_materials.shape == (F,) and len(d.material_names) == len(d.materials)
        assert int(d.face_materials.min()) >= 0 and int(d.face_materials.max()) < len(d.materials)
        for m in d.materials:
            _check_material(m)
    mesh = lg.Mesh(d.verts, d.faces, d.uv, d.uv_faces, None, d.materials, d.face_materials, d.material_names)
    scene = scene_from_mesh(mesh)
    assert sum(sm.faces.shape[0] for sm in scene.meshes.values()) == F


def _expect_ok_or_obj_error(fn, path: Path, error_file: Path = None):
    """``fn(path)``; an ObjError must name ``path`` (or the MTL file it read); anything else propagates."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(path)
    except ObjError as exc:
        assert str(path) in str(exc) or (error_file is not None and str(error_file) in str(exc)), str(exc)
        return None


def _run_obj(tmp: Path, obj: Path) -> None:
    plain = _expect_ok_or_obj_error(read_obj, obj)
    rich = _expect_ok_or_obj_error(read_obj_with_materials, obj, error_file=tmp / "lib.mtl")
    if plain is not None:
        verts, faces, uv, uv_faces = plain
        assert torch.isfinite(verts).all() and int(faces.min()) >= 0 and int(faces.max()) < verts.shape[0]
        if uv is not None:
            assert torch.isfinite(uv).all() and int(uv_faces.max()) < uv.shape[0]
    event(f"read_obj: {'ok' if plain is not None else 'ObjError'}")
    if rich is not None:
        event("read_obj_with_materials: ok, " + ("no materials" if rich.materials is None else "textured" if any(
            m.has_textures() for m in rich.materials) else "materials"))
        _check_obj(obj, rich)
        assert plain is not None and all(torch.equal(a, b) for a, b in zip(plain, (rich.verts, rich.faces)))


def _run_mtl(mtl: Path) -> None:
    got = _expect_ok_or_obj_error(read_mtl, mtl)
    event("read_mtl: " + ("MtlError" if got is None else "textured" if any(m.has_textures() for m in got.values())
                          else "ok"))
    if got is not None:
        assert isinstance(got, dict)
        for m in got.values():
            _check_material(m)


# ------------------------------------------------------------------------------------------------- tests
@settings(max_examples=500, **SETTINGS)
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(folder, data):
    for name in ("m.obj", "lib.mtl"):
        (folder / name).write_bytes(data)
    _run_obj(folder, folder / "m.obj")
    _run_mtl(folder / "lib.mtl")


@settings(max_examples=900, **SETTINGS)
@given(obj=obj_texts, mtl=st.one_of(st.none(), mtl_texts, st.lists(good_mtl_lines, max_size=8)),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_fuzz_structured_obj(folder, obj, mtl, newline):
    # Most of the time, start with geometry and usable materials so that later lines are reached.
    text = newline.join(obj)
    if len(obj) % 4:
        text = PREFIX_OBJ + "mtllib lib.mtl\nusemtl a\n" * (len(obj) % 4 != 3) + "f 1/1 2/2 3/3\n" + text
    (folder / "m.obj").write_text(text, encoding="utf-8", errors="surrogatepass")
    lib = folder / "lib.mtl"
    if mtl is None:
        lib.unlink(missing_ok=True)
    else:
        lib.write_text(PREFIX_MTL * (len(mtl) % 4 != 3) + "\n".join(mtl), encoding="utf-8", errors="surrogatepass")
    _run_obj(folder, folder / "m.obj")


@settings(max_examples=600, **SETTINGS)
@given(mtl=mtl_texts, start=st.booleans())
def test_fuzz_structured_mtl(folder, mtl, start):
    text = (PREFIX_MTL if start else "") + "\n".join(mtl)
    (folder / "lib.mtl").write_text(text, encoding="utf-8", errors="surrogatepass")
    _run_mtl(folder / "lib.mtl")
