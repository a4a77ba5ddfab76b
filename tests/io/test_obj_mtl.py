"""OBJ + MTL materials: read_mtl / write_mtl, read_obj_with_materials, write_obj(materials=...), Mesh materials,
scene_from_mesh; the shared Cornell boxes."""

import math
import warnings

import pytest
import torch

import lumigrad as lg
from lumigrad import io
from lumigrad.io.image import read_image, write_image
from lumigrad.io.mtl import MtlError, read_mtl, write_mtl
from lumigrad.io.obj import ObjError, read_obj, read_obj_with_materials, write_obj
from lumigrad.scene import scene_from_mesh
from lumigrad.shading import Material

from ..conftest import SHARED_DATA

DT = torch.float64
CORNELL = SHARED_DATA / "cornell-box-obj"
CORNELL_OBJS = sorted(CORNELL.glob("*.obj")) if CORNELL.is_dir() else []
needs_cornell = pytest.mark.skipif(not CORNELL_OBJS, reason="../shared/data is missing")


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _expected_from_text(obj_path):
    """Per-triangle material names and the MTL's Kd / Ke per material, parsed independently of lumigrad."""
    names, current = [], None
    for line in obj_path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "usemtl":
            current = parts[1]
        elif parts and parts[0] == "f":
            names += [current] * (len(parts) - 3)
    mtl = obj_path.with_suffix(".mtl")
    kd, ke, block = {}, {}, None
    for line in mtl.read_text().splitlines():
        parts = line.split("#")[0].split()
        if parts and parts[0] == "newmtl":
            block = parts[1]
        elif parts and parts[0] in ("Kd", "Ke"):
            (kd if parts[0] == "Kd" else ke)[block] = [float(x) for x in parts[1:4]]
    return names, kd, ke


# ---------------------------------------------------------------------------------------------- Cornell boxes
@needs_cornell
@pytest.mark.parametrize("path", CORNELL_OBJS, ids=[p.name for p in CORNELL_OBJS])
def test_cornell_boxes_materials_and_face_ids(path):
    d = read_obj_with_materials(path, dtype=DT)
    names, kd, ke = _expected_from_text(path)
    assert d.material_names == ["leftWall", "rightWall", "floor", "ceiling", "backWall", "shortBox", "tallBox",
                                "light"]
    assert len(d.materials) == 8 and d.mtllibs == [path.with_suffix(".mtl")]
    assert d.faces.shape == (36, 3) and d.face_materials.shape == (36,) and d.face_materials.dtype == torch.int64
    assert [d.material_names[k] for k in d.face_materials.tolist()] == names
    m = dict(zip(d.material_names, d.materials))
    # Diffuse walls: Kd read exactly, alpha 1, dielectric, roughness from Ns 10: sqrt(2 / 12).
    for wall in ("leftWall", "rightWall", "floor"):
        assert m[wall].base_color_factor.tolist() == kd[wall] + [1.0]
        assert float(m[wall].metallic_factor) == 0.0
        assert float(m[wall].roughness_factor) == pytest.approx(math.sqrt(2 / 12), abs=1e-15)
    assert m["leftWall"].base_color_factor.tolist()[:3] == ([1.0, 0.065, 0.05] if "Original" in path.name
                                                            else [0.63, 0.065, 0.05])
    assert float(m["leftWall"].ior) == 1.5 and float(m["floor"].ior) == 1.0
    # The light is emissive; nothing else is.
    assert m["light"].emissive_factor.tolist() == ke["light"] == [17.0, 12.0, 4.0]
    assert all(float(m[n].emissive_factor.abs().max()) == 0 for n in d.material_names if n != "light")
    if "Mirror" in path.name:  # Kd 0.01, Ks 0.95, Ns 1000, illum 5 -> a smooth metal coloured Ks
        assert m["tallBox"].base_color_factor.tolist() == [0.95, 0.95, 0.95, 1.0]
        assert float(m["tallBox"].metallic_factor) == 1.0
        assert float(m["tallBox"].roughness_factor) == pytest.approx(math.sqrt(2 / 1002), abs=1e-15)


@needs_cornell
@pytest.mark.parametrize("path", CORNELL_OBJS, ids=[p.name for p in CORNELL_OBJS])
def test_cornell_box_mesh_and_scene_from_mesh(path):
    mesh = lg.io.read_mesh(path)
    assert len(mesh.materials) == 8 and mesh.face_materials.shape == (36,)
    scene = scene_from_mesh(mesh, name="box")
    used = sorted(set(mesh.face_materials.tolist()))
    assert list(scene.meshes) == [f"box_{mesh.material_names[k]}" for k in used]
    assert sum(sm.faces.shape[0] for sm in scene.meshes.values()) == mesh.faces.shape[0]
    for k in used:
        sm = scene.meshes[f"box_{mesh.material_names[k]}"]
        assert sm.material is mesh.materials[k] and sm.double_sided
        # Compact re-indexing: every vertex is used, and the triangles are the original ones, in order.
        assert sorted(set(sm.faces.reshape(-1).tolist())) == list(range(sm.verts.shape[0]))
        torch.testing.assert_close(sm.verts[sm.faces], mesh.verts[mesh.faces[mesh.face_materials == k]], rtol=0,
                                   atol=0)
    light = scene.meshes["box_light"]
    assert light.material.emissive_factor.tolist() == [17.0, 12.0, 4.0] and light.faces.shape[0] == 2


def test_scene_from_mesh_without_materials_and_with_texture():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], requires_grad=True)
    faces = torch.tensor([[0, 1, 3], [0, 3, 2]])
    plain = scene_from_mesh(lg.Mesh(verts, faces), name="quad", double_sided=False)
    (sm,) = plain.meshes.values()
    assert list(plain.meshes) == ["quad"] and not sm.double_sided
    assert sm.material.base_color_factor.tolist() == pytest.approx([0.8, 0.8, 0.8, 1.0])
    assert float(sm.material.metallic_factor) == 0.0 and sm.material.base_color_texture is None
    tex = torch.rand(4, 4, 3)
    uv = torch.rand(5, 2)
    uv_faces = torch.tensor([[4, 1, 3], [0, 3, 2]])
    textured = scene_from_mesh(lg.Mesh(verts, faces, uv, uv_faces, tex))
    assert textured.meshes["mesh"].material.base_color_texture is tex
    assert textured.meshes["mesh"].material.base_color_factor.tolist() == [1.0] * 4
    # Two materials; the texture fills the base-colour slot of the one without; names are sanitised.
    red = Material(base_color_factor=torch.tensor([1.0, 0, 0, 1]))
    own = Material(base_color_texture=torch.zeros(2, 2, 3))
    mesh = lg.Mesh(verts, faces, uv, uv_faces, tex, [red, own], torch.tensor([1, 0]), ["red paint.1", "own"])
    scene = scene_from_mesh(mesh)
    assert list(scene.meshes) == ["mesh_red_paint_1", "mesh_own"]
    r = scene.meshes["mesh_red_paint_1"]
    assert r.material.base_color_texture is tex and mesh.materials[0].base_color_texture is None
    assert scene.meshes["mesh_own"].material is own
    # uv compacted along with the vertices; gradients flow back to the mesh's verts.
    assert r.uv.shape == (3, 2) and torch.equal(r.uv[r.uv_faces], uv[uv_faces[1:]])
    r.verts.sum().backward()
    assert verts.grad.tolist() == [[1.0] * 3, [0.0] * 3, [1.0] * 3, [1.0] * 3]


def test_scene_from_mesh_validates():
    mesh = lg.Mesh(torch.eye(3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="name 'a.b'"):
        scene_from_mesh(mesh, name="a.b")
    with pytest.raises(TypeError, match="lumigrad.Mesh"):
        scene_from_mesh((mesh.verts, mesh.faces))
    twins = lg.Mesh(torch.eye(3).repeat(2, 1), torch.tensor([[0, 1, 2], [3, 4, 5]]), materials=[Material()] * 2,
                    face_materials=torch.tensor([0, 1]), material_names=["a b", "a.b"])
    assert list(scene_from_mesh(twins).meshes) == ["mesh_a_b", "mesh_a_b_2"]


# ------------------------------------------------------------------------------------------------- read_mtl
def test_read_mtl_mapping(tmp_path):
    p = _write(tmp_path, "m.mtl", "# c\nnewmtl a\nKd 0.5 0.25 0.125 # inline\nNs 198\nd 0.5\nKe 1 2 3\nNi 1.33\n"
                                  "illum 2\nKa 1 1 1\nPe 0.3\n"
                                  "newmtl b b\nKd 0.2\nNs 10\nPr 0.3\nPm 0.7\nTr 0.25\n"
                                  "newmtl mirror\nKd 0 0 0\nKs 0.9 0.8 0.7\nillum 3\n"
                                  "newmtl plain\n")
    m = read_mtl(p, dtype=DT)
    assert list(m) == ["a", "b b", "mirror", "plain"]
    a = m["a"]
    assert a.base_color_factor.tolist() == [0.5, 0.25, 0.125, 0.5] and a.base_color_factor.dtype == DT
    assert float(a.roughness_factor) == pytest.approx(0.1, abs=1e-15)  # sqrt(2 / 200)
    assert float(a.metallic_factor) == 0.0 and a.emissive_factor.tolist() == [1, 2, 3] and float(a.ior) == 1.33
    b = m["b b"]
    assert b.base_color_factor.tolist() == [0.2, 0.2, 0.2, 0.75]
    assert float(b.roughness_factor) == 0.3 and float(b.metallic_factor) == 0.7  # Pr wins over Ns
    assert m["mirror"].base_color_factor.tolist() == [0.9, 0.8, 0.7, 1.0] and float(m["mirror"].metallic_factor) == 1
    plain = m["plain"]
    assert plain.base_color_factor.tolist() == pytest.approx([0.8, 0.8, 0.8, 1.0])
    assert float(plain.roughness_factor) == 1.0 and float(plain.metallic_factor) == 0.0 and float(plain.ior) == 1.5
    assert not any(x.has_textures() for x in m.values())


def test_read_mtl_texture_options_and_channels(tmp_path):
    g = torch.Generator().manual_seed(0)
    rgba = torch.rand(4, 6, 4, generator=g)
    write_image(tmp_path / "kd.png", rgba)
    write_image(tmp_path / "alpha.png", torch.rand(4, 6, 1, generator=g))
    write_image(tmp_path / "rough.png", torch.rand(4, 6, 1, generator=g))
    write_image(tmp_path / "metal.png", torch.rand(2, 3, 1, generator=g))  # resized to the roughness map
    normal = torch.rand(3, 3, 3, generator=g)
    (tmp_path / "tex").mkdir()
    write_image(tmp_path / "tex" / "n.png", normal)
    write_image(tmp_path / "grey bump.png", torch.rand(3, 3, 1, generator=g))
    p = _write(tmp_path, "m.mtl",
               "newmtl a\nKd 1 1 1\n"
               "map_Kd -s 1 1 1 -o 0.5 -blendu on -clamp on kd.png\n"
               "map_d -imfchan m alpha.png\n"
               "map_Pr -mm 0 1 rough.png\nmap_Pm metal.png\n"
               "map_Bump -bm 0.25 -texres 512 tex\\n.png\n"
               "newmtl b\nbump -bm 2 grey bump.png\nmap_Ks kd.png\nmap_Ke -o 1 2 kd.png\n")
    with pytest.warns(UserWarning) as record:
        m = read_mtl(p)
    messages = " | ".join(str(w.message) for w in record)
    assert "map_Ks ignored" in messages and "height map" in messages
    a, b = m["a"], m["b"]
    assert a.wrap == "clamp" and b.wrap == "repeat"
    bc = a.base_color_texture
    assert bc.shape == (4, 6, 4)
    torch.testing.assert_close(bc[..., :3], rgba[..., :3], rtol=0, atol=0.5 / 255 + 1e-7)
    torch.testing.assert_close(bc[..., 3:], read_image(tmp_path / "alpha.png")[..., :1], rtol=0, atol=0)
    mr = a.metallic_roughness_texture
    assert mr.shape == (4, 6, 3) and float(a.roughness_factor) == 1.0 and float(a.metallic_factor) == 0.0
    torch.testing.assert_close(mr[..., 1:2], read_image(tmp_path / "rough.png")[..., :1], rtol=0, atol=0)
    torch.testing.assert_close(a.normal_texture, normal, rtol=0, atol=0.5 / 255 + 1e-7)
    assert float(a.normal_scale) == 0.25
    assert b.normal_texture is None and b.base_color_texture is None
    assert b.emissive_texture.shape == (4, 6, 3) and b.emissive_factor.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("text, lineno, what", [
    ("Kd 1 1 1\n", 1, "before any newmtl"),
    ("newmtl a\nKd 1 1\n", 2, "1 or 3 values"),
    ("newmtl a\nKd 1 nan 1\n", 2, "finite"),
    ("newmtl a\n\nPr 1.5\n", 3, r"Pr must lie in \[0.0, 1.0\]"),
    ("newmtl a\nd -0.1\n", 2, "d must lie"),
    ("newmtl a\nNs x\n", 2, "Ns is not a number"),
    ("newmtl a\nmap_Kd missing.png\n", 2, "texture 'missing.png' not found"),
    ("newmtl a\nmap_Kd -bm\n", 2, "needs 1 value"),
    ("newmtl a\nmap_Kd -s 1 1 1\n", 2, "needs a file name"),
    ("newmtl\n", 1, "needs a material name"),
    ("newmtl a\nillum two\n", 2, "illum needs one integer"),
])
def test_read_mtl_errors_name_file_and_line(tmp_path, text, lineno, what):
    p = _write(tmp_path, "bad.mtl", text)
    with pytest.raises(MtlError, match=rf"bad\.mtl:{lineno}:.*{what}") as info:
        read_mtl(p)
    assert isinstance(info.value, ObjError) and isinstance(info.value, ValueError)


def test_read_mtl_undecodable_texture_and_warnings(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MtlError, match=r"x\.mtl:2: cannot read texture"):
        read_mtl(_write(tmp_path, "x.mtl", "newmtl a\nmap_Kd broken.png\n"))
    with pytest.warns(UserWarning, match="unknown MTL statements frobnicate"):
        read_mtl(_write(tmp_path, "y.mtl", "newmtl a\nfrobnicate 1\n"))
    with pytest.warns(UserWarning, match="Ni 0.001 < 1 ignored"):
        assert float(read_mtl(_write(tmp_path, "z.mtl", "newmtl a\nNi 0.001\n"))["a"].ior) == 1.5
    with pytest.warns(UserWarning, match="defined again"):
        assert read_mtl(_write(tmp_path, "w.mtl", "newmtl a\nKd 1 0 0\nnewmtl a\nKd 0 1 0\n"))["a"] \
            .base_color_factor.tolist() == [0, 1, 0, 1]


# ------------------------------------------------------------------------------------------------ write_mtl
def _textured_materials(dtype):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.rand(*s, generator=g, dtype=dtype)  # noqa: E731
    a = Material(base_color_factor=torch.tensor([0.9, 0.5, 0.25, 0.75], dtype=dtype),
                 metallic_factor=torch.tensor(0.3, dtype=dtype), roughness_factor=torch.tensor(0.6, dtype=dtype),
                 base_color_texture=r(5, 4, 4), metallic_roughness_texture=r(3, 5, 3), normal_texture=r(4, 4, 3),
                 normal_scale=torch.tensor(0.5, dtype=dtype), occlusion_texture=r(2, 2, 1),
                 emissive_factor=torch.tensor([0.1, 0.2, 0.3], dtype=dtype), emissive_texture=r(3, 3, 3),
                 ior=torch.tensor(1.45, dtype=dtype), wrap="clamp")
    b = Material(base_color_factor=torch.tensor([0.1, 0.2, 0.3, 1.0], dtype=dtype),
                 metallic_factor=torch.tensor(1.0, dtype=dtype), roughness_factor=torch.tensor(0.0, dtype=dtype))
    return {"textured": a, "smooth metal": b}


def _assert_same_material(got, want, tex_atol=0.5 / 255 + 1e-6):
    for name in ("base_color_factor", "metallic_factor", "roughness_factor", "emissive_factor", "ior",
                 "normal_scale"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert got.wrap == want.wrap
    for slot in ("base_color_texture", "normal_texture", "emissive_texture"):
        w = getattr(want, slot)
        assert (getattr(got, slot) is None) == (w is None), slot
        if w is not None:
            torch.testing.assert_close(getattr(got, slot), w, rtol=0, atol=tex_atol)
    if want.metallic_roughness_texture is not None:
        torch.testing.assert_close(got.metallic_roughness_texture[..., 1:],
                                   want.metallic_roughness_texture[..., 1:], rtol=0, atol=tex_atol)
    if want.occlusion_texture is not None:
        torch.testing.assert_close(got.occlusion_texture, want.occlusion_texture, rtol=0, atol=tex_atol)


@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_write_mtl_round_trip(tmp_path, dtype):
    materials = _textured_materials(dtype)
    write_mtl(tmp_path / "lib.mtl", materials)
    text = (tmp_path / "lib.mtl").read_text()
    assert "newmtl smooth metal\n" in text and "map_Kd -clamp on lib_0_base_color.png" in text
    assert "norm -clamp on -bm 0.5 lib_0_normal.png" in text and "Ns 1000000.0" in text
    assert "Ns 3.55555" in text  # 2 / 0.6^2 - 2
    got = read_mtl(tmp_path / "lib.mtl", dtype=dtype)
    assert list(got) == list(materials)
    for name in materials:
        _assert_same_material(got[name], materials[name])


def test_write_mtl_validates(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        write_mtl(tmp_path / "a.mtl", [Material()])
    with pytest.raises(TypeError, match=r"materials\['a'\] must be"):
        write_mtl(tmp_path / "a.mtl", {"a": "red"})
    for bad in ("", " a", "a#b", "a\nb", "a  b"):
        with pytest.raises(ValueError, match="cannot be written"):
            write_mtl(tmp_path / "a.mtl", {bad: Material()})
    with pytest.raises(ValueError, match="mirror"):
        write_mtl(tmp_path / "a.mtl", {"m": Material(base_color_texture=torch.zeros(2, 2, 3), wrap="mirror")})


def test_write_mtl_warns_about_what_it_cannot_write(tmp_path):
    """A Lambertian (``specular_factor`` 0, Mitsuba's ``diffuse``) or a transmitting material loses those values in
    MTL: the writer says so, naming the material and the field; a core glTF material writes silently."""
    with pytest.warns(UserWarning, match=r"materials\['lambert'\]: specular_factor has no MTL"):
        write_mtl(tmp_path / "a.mtl", {"lambert": Material(specular_factor=0.0)})
    with pytest.warns(UserWarning, match="transmission_factor"):
        write_mtl(tmp_path / "b.mtl", {"glass": Material(transmission_factor=1.0)})
    with pytest.warns(UserWarning, match=r"materials\['shiny'\]: plastic \(Mitsuba's model\) has no MTL"):
        write_mtl(tmp_path / "e.mtl", {"shiny": Material(plastic=True)})
    with pytest.warns(UserWarning, match=r"materials\['gold'\]: conductor \(Mitsuba's model\) has no MTL"):
        write_mtl(tmp_path / "f.mtl", {"gold": Material(conductor_eta=torch.tensor([0.14, 0.38, 1.44]),
                                                        conductor_k=torch.tensor([3.98, 2.39, 1.6]))})
    with pytest.warns(UserWarning, match=r"materials\['mirror'\]: delta_specular \(Dirac specular lobes\) has no MTL"):
        write_mtl(tmp_path / "g.mtl", {"mirror": Material(conductor_eta=torch.tensor([0.14, 0.38, 1.44]),
                                                          conductor_k=torch.tensor([3.98, 2.39, 1.6]),
                                                          roughness_factor=0.0, delta_specular=True)})
    with pytest.warns(UserWarning, match=r"materials\['satin'\]: roughness_aspect \(an anisotropic lobe\) has no MTL"):
        write_mtl(tmp_path / "h.mtl", {"satin": Material(principled=True, roughness_aspect=0.5)})
    with pytest.warns(UserWarning, match=r"materials\['metal'\]: microfacet 'beckmann' has no MTL statement"):
        write_mtl(tmp_path / "d.mtl", {"metal": Material(microfacet="beckmann")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_mtl(tmp_path / "c.mtl", {"plain": Material()})
    assert read_mtl(tmp_path / "a.mtl")["lambert"].specular_factor.item() == 1.0


# ------------------------------------------------------------------------------------- OBJ with materials
@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_write_obj_with_materials_textured_round_trip(tmp_path, dtype):
    materials = _textured_materials(dtype)
    g = torch.Generator().manual_seed(2)
    verts = torch.rand(7, 3, generator=g, dtype=dtype)
    faces = torch.randint(0, 7, (9, 3), generator=g)
    uv = torch.rand(11, 2, generator=g, dtype=dtype)
    uv_faces = torch.randint(0, 11, (9, 3), generator=g)
    face_materials = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0, 0])
    write_obj(tmp_path / "m.obj", verts, faces, uv=uv, uv_faces=uv_faces, materials=materials,
              face_materials=face_materials)
    text = (tmp_path / "m.obj").read_text()
    assert text.count("usemtl ") == 5 and "mtllib m.mtl\n" in text and (tmp_path / "m.mtl").is_file()
    d = read_obj_with_materials(tmp_path / "m.obj", dtype=dtype)
    for got, want in ((d.verts, verts), (d.faces, faces), (d.uv, uv), (d.uv_faces, uv_faces),
                      (d.face_materials, face_materials)):
        assert got.dtype == want.dtype and torch.equal(got, want)
    assert d.material_names == list(materials) and d.vertex_colors is None
    for got, want in zip(d.materials, materials.values()):
        _assert_same_material(got, want)
    # read_obj keeps its 4-tuple contract on the same file.
    assert all(torch.equal(a, b) for a, b in zip(read_obj(tmp_path / "m.obj", dtype=dtype), (verts, faces, uv,
                                                                                             uv_faces)))
    # A list of materials with names, and the Mesh / registry path.
    mesh = lg.Mesh(verts, faces, uv, uv_faces, None, list(materials.values()), face_materials, ["t", "s"])
    io.save(tmp_path / "reg.obj", mesh)
    back = io.load(tmp_path / "reg.obj")
    assert isinstance(back, lg.Mesh) and back.material_names == ["t", "s"]
    assert torch.equal(back.face_materials, face_materials) and back.materials[0].wrap == "clamp"


def test_write_obj_material_arguments_validate(tmp_path):
    verts, faces = torch.eye(3), torch.tensor([[0, 1, 2]])
    p = tmp_path / "x.obj"
    with pytest.raises(ValueError, match="without materials"):
        write_obj(p, verts, faces, face_materials=torch.tensor([0]))
    with pytest.raises(ValueError, match="face_materials holds index 1"):
        write_obj(p, verts, faces, materials=[Material()], face_materials=torch.tensor([1]))
    with pytest.raises(ValueError, match="face_materials must have shape"):
        write_obj(p, verts, faces, materials=[Material()], face_materials=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="1 names for 2 materials"):
        write_obj(p, verts, faces, materials=[Material()] * 2, material_names=["a"])
    with pytest.raises(TypeError, match="must be a lumigrad.shading.Material"):
        write_obj(p, verts, faces, materials={"a": 1})
    write_obj(p, verts, faces, materials=[Material()])  # default: every face uses material 0
    d = read_obj_with_materials(p)
    assert d.material_names == ["material_0"] and d.face_materials.tolist() == [0]


def test_negative_indices_quads_separate_uv_with_materials(tmp_path):
    _write(tmp_path, "lib.mtl", "newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\nnewmtl unused\n")
    p = _write(tmp_path, "q.obj",
               "mtllib lib.mtl\n"
               "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\n"
               "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\n"
               "f 1/1 2/2 3/3\n"  # before any usemtl -> the default material
               "o thing\ng group\nusemtl blue\nf -4/-5 -3/-4 -2/-3 -1/-2\n"  # a quad, negative indices
               "usemtl red\nf 1/5 3/3 4/4 # comment\nusemtl blue\nf 2/1 3/2 4/5\n")
    d = read_obj_with_materials(p, dtype=DT)
    assert d.faces.tolist() == [[0, 1, 2], [0, 1, 2], [0, 2, 3], [0, 2, 3], [1, 2, 3]]
    assert d.uv_faces.tolist() == [[0, 1, 2], [0, 1, 2], [0, 2, 3], [4, 2, 3], [0, 1, 4]]
    assert d.material_names == ["red", "blue", "unused", "default"]
    assert d.face_materials.tolist() == [3, 1, 1, 0, 1]
    assert d.materials[3].base_color_factor.tolist() == pytest.approx([0.8, 0.8, 0.8, 1.0])
    assert d.materials[0].base_color_factor.tolist() == [1, 0, 0, 1]
    assert d.vertex_colors.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    assert d.uv[0].tolist() == [0.0, 1.0]  # v flipped to the top-left origin, as read_obj
    mesh = lg.io.read_mesh(p)
    assert mesh.material_names == d.material_names and torch.equal(mesh.face_materials, d.face_materials)


def test_mixed_vertex_colours_and_no_usemtl(tmp_path):
    _write(tmp_path, "lib.mtl", "newmtl red\nKd 1 0 0\n")
    p = _write(tmp_path, "c.obj", "mtllib lib.mtl\nv 0 0 0 1 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    d = read_obj_with_materials(p)
    assert d.vertex_colors is None and d.materials is None and d.face_materials is None
    assert d.mtllibs == [tmp_path / "lib.mtl"]


def test_missing_mtllib_and_undefined_material_raise(tmp_path):
    p = _write(tmp_path, "m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n\nmtllib absent.mtl\nusemtl a\nf 1 2 3\n")
    with pytest.raises(ObjError, match=r"m\.obj:5: material library 'absent.mtl' not found"):
        read_obj_with_materials(p)
    with pytest.raises(ObjError, match=r"m\.obj:5: material library"):
        lg.io.read_mesh(p)
    assert read_obj(p)[1].tolist() == [[0, 1, 2]]  # geometry alone still reads
    assert lg.io.read_mesh(p, materials=False).materials is None
    _write(tmp_path, "lib.mtl", "newmtl b\n")
    q = _write(tmp_path, "n.obj", "mtllib lib.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl a\nf 1 2 3\n")
    with pytest.raises(ObjError, match=r"n\.obj:5: usemtl 'a' names a material that is not defined"):
        read_obj_with_materials(q)
    r = _write(tmp_path, "o.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl a\nf 1 2 3\n")
    with pytest.raises(ObjError, match=r"o\.obj:4: usemtl 'a'.*no mtllib"):
        read_obj_with_materials(r)
    s = _write(tmp_path, "p.obj", "mtllib bad.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    _write(tmp_path, "bad.mtl", "newmtl a\nKd 1 x 1\n")
    with pytest.raises(MtlError, match=r"bad\.mtl:2:"):
        read_obj_with_materials(s)


def test_non_finite_numbers_raise(tmp_path):
    p = _write(tmp_path, "m.obj", "v 0 0 0\nv 1 nan 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ObjError, match=r"m\.obj:2: v: NaN or Inf"):
        read_obj(p)


# -------------------------------------------------------------------------------------------- Mesh fields
def test_mesh_material_fields_validate_and_move():
    verts, faces = torch.eye(3).repeat(2, 1), torch.tensor([[0, 1, 2], [3, 4, 5]])
    mats = [Material(), Material(base_color_texture=torch.rand(2, 2, 3))]
    with pytest.raises(ValueError, match="without face_materials"):
        lg.Mesh(verts, faces, materials=mats)
    with pytest.raises(ValueError, match="without materials"):
        lg.Mesh(verts, faces, face_materials=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="face_materials holds index 2"):
        lg.Mesh(verts, faces, materials=mats, face_materials=torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="int64"):
        lg.Mesh(verts, faces, materials=mats, face_materials=torch.tensor([0, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match="face_materials must have shape"):
        lg.Mesh(verts, faces, materials=mats, face_materials=torch.tensor([0]))
    with pytest.raises(TypeError, match=r"materials\[0\]"):
        lg.Mesh(verts, faces, materials=["red"], face_materials=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="unique"):
        lg.Mesh(verts, faces, materials=mats, face_materials=torch.tensor([0, 1]), material_names=["a", "a"])
    mesh = lg.Mesh(verts, faces, materials=mats, face_materials=torch.tensor([0, 1]))
    assert mesh.material_names == ["material_0", "material_1"]
    moved = mesh.to(dtype=DT)
    assert moved.materials[1].base_color_texture.dtype == DT and moved.materials[0].ior.dtype == DT
    assert moved.face_materials.dtype == torch.int64 and mesh.materials[0].ior.dtype == torch.float32


def test_read_obj_ignores_materials_without_warnings(tmp_path):
    p = _write(tmp_path, "m.obj", "mtllib x.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl q\nf 1 2 3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_obj(p)[1].tolist() == [[0, 1, 2]]


def test_deprecated_file_constructors_warn_and_match_the_io_readers(tmp_path):
    """``Mesh.from_obj`` / ``EnvironmentLight.from_file`` moved to ``lumigrad.io`` (lower layers read no files);
    the old names still work for one release, with a FutureWarning naming the replacement."""
    from lumigrad.data import spot_paths
    from lumigrad.io import read_environment, read_mesh, write_hdr

    obj, tex = spot_paths()
    with pytest.warns(FutureWarning, match="lumigrad.io.read_mesh"):
        old = lg.Mesh.from_obj(obj, materials=False)
    new = read_mesh(obj, materials=False)
    assert torch.equal(old.verts, new.verts) and torch.equal(old.faces, new.faces)
    write_hdr(tmp_path / "sky.hdr", torch.rand(8, 16, 3))
    with pytest.warns(FutureWarning, match="lumigrad.io.read_environment"):
        env = lg.EnvironmentLight.from_file(tmp_path / "sky.hdr", size=(4, 8), visible=False)
    assert torch.equal(env.texels, read_environment(tmp_path / "sky.hdr", size=(4, 8)).texels)
    assert env.visible is False
