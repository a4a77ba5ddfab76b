"""Mitsuba 3 scene files: every element kind on small inline files, transforms against hand-computed matrices,
camera and environment-map conventions, refusals, the Cornell box, and (when Mitsuba 3 is importable) the
camera, transforms and environment map against Mitsuba itself."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import ConfinementError, MitsubaXmlError, MitsubaXmlWarning, read_mitsuba_xml
from lumigrad.io._spectra import spectrum_to_rgb
from lumigrad.io.mitsuba_xml import CONDUCTOR_ETA_K
from lumigrad.shading.envmap import envmap_lookup
from lumigrad.shading.image_formation import srgb_encode

from ..conftest import SHARED_DATA, mitsuba_scalar

CORNELL = SHARED_DATA / "cornell-box-mitsuba3" / "cornell_box.xml"
QUAD_OBJ = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n"


def _write(folder: Path, body: str, name: str = "scene.xml", version: str = "3.0.0") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0"?>\n<scene version="{version}">\n{body}\n</scene>\n')
    return path


def _read(path: Path, **kw):
    """The scene and the warnings read_mitsuba_xml gave."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        scene = read_mitsuba_xml(path, **kw)
    return scene, [str(w.message) for w in record if issubclass(w.category, MitsubaXmlWarning)]


def _scene(tmp_path: Path, body: str, **kw) -> lg.Scene:
    return _read(_write(tmp_path, body), **kw)[0]


def _f(x) -> list:
    return torch.as_tensor(x).double().tolist()


# --------------------------------------------------------------------------------------------- registry
def test_load_dispatches_xml_to_the_mitsuba_reader(tmp_path):
    path = _write(tmp_path, '<shape type="rectangle" id="quad"/>')
    scene = lg.io.load(path)
    assert isinstance(scene, lg.Scene) and list(scene.meshes) == ["quad"]
    assert lg.io.formats()[".xml"] == "Mitsuba 3 scene -> Scene (read)"
    assert "meshes.quad.verts" in scene.parameters() and "meshes.quad.to_world" in scene.parameters()


# ------------------------------------------------------------------------------------------- transforms
def _to_world(tmp_path, ops: str) -> np.ndarray:
    scene = _scene(tmp_path, f'<shape type="rectangle" id="q"><transform name="to_world">{ops}</transform></shape>',
                   dtype=torch.float64)
    return scene.meshes["q"].to_world.numpy()


def test_transform_operations_compose_in_document_order(tmp_path):
    # translate (1, 2, 3), then rotate 90 degrees about +y (x -> -z, z -> x), then scale 2: M = S R T
    M = _to_world(tmp_path, '<translate x="1" y="2" z="3"/><rotate y="1" angle="90"/><scale value="2"/>')
    expected = np.array([[0, 0, 2, 6], [0, 2, 0, 4], [-2, 0, 0, -2], [0, 0, 0, 1]], dtype=np.float64)
    np.testing.assert_allclose(M, expected, atol=1e-12)


@pytest.mark.parametrize("ops,expected", [
    ('<matrix value="1 0 0 5  0 1 0 6  0 0 1 7  0 0 0 1"/>',  # row-major
     [[1, 0, 0, 5], [0, 1, 0, 6], [0, 0, 1, 7], [0, 0, 0, 1]]),
    ('<matrix value="0 -1 0  1 0 0  0 0 1"/>', [[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    ('<scale x="2" z="3"/>', [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]),
    ('<scale value="1, 2, 3"/>', [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]),
    ('<translate value="4 5 6"/>', [[1, 0, 0, 4], [0, 1, 0, 5], [0, 0, 1, 6], [0, 0, 0, 1]]),
    ('<rotate value="0, 0, 1" angle="90"/>', [[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    ('<rotate x="1" angle="-90"/>', [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]),
    # looking down -z from (1, 2, 3) with +y up: columns left = up x dir = -x, up = +y, dir = -z, origin
    ('<lookat origin="1, 2, 3" target="1, 2, 2" up="0, 1, 0"/>',
     [[-1, 0, 0, 1], [0, 1, 0, 2], [0, 0, -1, 3], [0, 0, 0, 1]]),
])
def test_each_transform_operation_against_a_hand_computed_matrix(tmp_path, ops, expected):
    np.testing.assert_allclose(_to_world(tmp_path, ops), np.asarray(expected, dtype=np.float64), atol=1e-12)


def test_bad_transforms_are_refused_naming_the_line(tmp_path):
    with pytest.raises(MitsubaXmlError, match=r"scene\.xml:4: <matrix> needs 16 \(or 9\) numbers"):
        _scene(tmp_path, '<shape type="rectangle">\n<transform name="to_world"><matrix value="1 2 3"/></transform>'
                         '</shape>')
    with pytest.raises(MitsubaXmlError, match="unknown transform operation <shear>"):
        _scene(tmp_path, '<shape type="rectangle"><transform name="to_world"><shear/></transform></shape>')
    with pytest.raises(MitsubaXmlError, match="up is parallel"):
        _scene(tmp_path, '<shape type="rectangle"><transform name="to_world">'
                         '<lookat origin="0,0,0" target="0,1,0" up="0,1,0"/></transform></shape>')


# ------------------------------------------------------------------------ defaults, references, names
def test_defaults_substitution_and_parameter_overrides(tmp_path):
    path = _write(tmp_path, '<default name="r" value="0.25"/><default name="w" value="40"/>'
                            '<shape type="sphere" id="s"><float name="radius" value="$r"/></shape>'
                            '<sensor type="perspective"><film type="hdrfilm"><integer name="width" value="$w"/>'
                            '<integer name="height" value="$w"/></film></sensor>')
    scene, _ = _read(path)
    assert float(scene.meshes["s"].verts.norm(dim=-1).max()) == pytest.approx(0.25, rel=1e-6)
    assert scene.cameras["sensor"].width == 40
    scene, _ = _read(path, parameters={"w": 24})
    assert scene.cameras["sensor"].width == 24 and scene.metadata["parameters"] == {"w": "24", "r": "0.25"}
    bad = _write(tmp_path, '<shape type="sphere"><float name="radius" value="$missing"/></shape>', "bad.xml")
    with pytest.raises(MitsubaXmlError, match=r"bad\.xml:3: <float name='radius'> uses \$missing, which is not "
                                              "defined"):
        read_mitsuba_xml(bad)


def test_references_share_one_material_forward_and_named(tmp_path):
    scene = _scene(tmp_path, '''
        <shape type="rectangle" id="a"><ref id="red"/></shape>
        <shape type="cube" id="b"><ref name="bsdf" id="red"/></shape>
        <bsdf type="diffuse" id="red"><rgb name="reflectance" value="0.8, 0.1, 0.1"/></bsdf>''')
    assert scene.meshes["a"].material is scene.meshes["b"].material  # one BSDF, one Material, as in Mitsuba
    assert _f(scene.meshes["a"].material.base_color_factor) == pytest.approx([0.8, 0.1, 0.1, 1.0])


def test_cyclic_references_and_unknown_ids_are_refused(tmp_path):
    with pytest.raises(MitsubaXmlError, match=r"cyclic <ref>: <bsdf type='twosided' id='a'> -> "
                                              r"<bsdf type='twosided' id='b'> -> <bsdf type='twosided' id='a'>"):
        _scene(tmp_path, '<bsdf type="twosided" id="a"><ref id="b"/></bsdf>'
                         '<bsdf type="twosided" id="b"><ref id="a"/></bsdf>')
    with pytest.raises(MitsubaXmlError, match=r"scene\.xml:4: <ref id='nowhere'> names no object"):
        _scene(tmp_path, '<shape type="cube">\n<ref id="nowhere"/></shape>')
    with pytest.raises(MitsubaXmlError, match="id 'x' is also used at"):
        _scene(tmp_path, '<bsdf type="diffuse" id="x"/><bsdf type="diffuse" id="x"/>')


def test_shape_names_ids_file_stems_types_and_repeats(tmp_path):
    (tmp_path / "floor.obj").write_text(QUAD_OBJ)
    scene = _scene(tmp_path, '''
        <shape type="obj"><string name="filename" value="floor.obj"/></shape>
        <shape type="obj"><string name="filename" value="floor.obj"/></shape>
        <shape type="rectangle"/>
        <shape type="rectangle" id="rectangle"/>
        <shape type="sphere" id="my.ball"/>''')
    # the explicit id "rectangle" keeps its name; the unnamed rectangle before it gets "rectangle-1"
    assert list(scene.meshes) == ["floor", "floor-1", "rectangle-1", "rectangle", "my_ball"]


# ---------------------------------------------------------------------------------------------- shapes
def _world_normals(mesh: lg.SceneMesh) -> torch.Tensor:
    v = mesh.world_verts()[mesh.faces]
    n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n / n.norm(dim=-1, keepdim=True)


def _signed_volume(mesh: lg.SceneMesh) -> float:
    v = mesh.world_verts().double()[mesh.faces]
    return float(torch.linalg.det(v).sum() / 6)


def test_rectangle_cube_sphere_disk_and_flip_normals(tmp_path):
    scene = _scene(tmp_path, '''
        <shape type="rectangle" id="rect"/>
        <shape type="rectangle" id="flipped"><boolean name="flip_normals" value="true"/></shape>
        <shape type="cube" id="cube"/>
        <shape type="sphere" id="ball"><point name="center" x="1" y="2" z="3"/><float name="radius" value="0.5"/>
        </shape>
        <shape type="disk" id="disk"/>''', sphere_subdivisions=2, disk_segments=16)
    rect = scene.meshes["rect"]
    assert _f(rect.verts) == [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]
    assert _f(rect.uv) == [[0, 0], [1, 0], [1, 1], [0, 1]]  # Mitsuba's uv = (x + 1) / 2, (y + 1) / 2
    assert torch.allclose(_world_normals(rect), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(_world_normals(scene.meshes["flipped"]), torch.tensor([0.0, 0.0, -1.0]))
    cube = scene.meshes["cube"]
    assert cube.verts.shape == (24, 3) and cube.faces.shape == (12, 3) and cube.uv.shape == (24, 2)
    assert _signed_volume(cube) == pytest.approx(8.0)  # [-1, 1]^3, wound outwards
    ball = scene.meshes["ball"]
    assert ball.verts.shape == (162, 3) and ball.uv is None
    assert torch.allclose((ball.verts - torch.tensor([1.0, 2.0, 3.0])).norm(dim=-1), torch.tensor(0.5))
    assert _signed_volume(ball) > 0
    disk = scene.meshes["disk"]
    assert disk.faces.shape == (16, 3) and torch.allclose(_world_normals(disk), torch.tensor([0.0, 0.0, 1.0]))


def test_obj_and_ply_texture_coordinates_and_face_normals(tmp_path):
    (tmp_path / "quad.obj").write_text(QUAD_OBJ)
    (tmp_path / "tri.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                                      "property float z\nproperty float u\nproperty float v\nelement face 1\n"
                                      "property list uchar int vertex_indices\nend_header\n0 0 0 0.1 0.25\n"
                                      "1 0 0 0.9 0.25\n0 1 0 0.1 0.75\n3 0 1 2\n")
    scene = _scene(tmp_path, '''
        <shape type="obj" id="flipped"><string name="filename" value="quad.obj"/></shape>
        <shape type="obj" id="as_stored"><string name="filename" value="quad.obj"/>
            <boolean name="flip_tex_coords" value="false"/></shape>
        <shape type="obj" id="flat"><string name="filename" value="quad.obj"/>
            <boolean name="face_normals" value="true"/></shape>
        <shape type="ply" id="tri"><string name="filename" value="tri.ply"/></shape>''')
    flipped, stored = scene.meshes["flipped"], scene.meshes["as_stored"]
    # Mitsuba flips an OBJ's v by default (as lumigrad's reader does) and keeps a PLY's as stored
    assert _f(flipped.uv[flipped.uv_faces[0]]) == [[0, 1], [1, 1], [1, 0]]
    assert _f(stored.uv[stored.uv_faces[0]]) == [[0, 0], [1, 0], [1, 1]]
    assert _f(scene.meshes["tri"].uv.flatten()) == pytest.approx([0.1, 0.25, 0.9, 0.25, 0.1, 0.75])
    flat = scene.meshes["flat"]
    assert flat.verts.shape == (6, 3) and _f(flat.faces) == [[0, 1, 2], [3, 4, 5]] and flat.uv.shape == (6, 2)


# ---------------------------------------------------------------------------------------------- BSDFs
def _material(tmp_path, bsdf: str, **kw):
    scene = _scene(tmp_path, f'<shape type="rectangle" id="m">{bsdf}</shape>', **kw)
    return scene.meshes["m"].material, scene.meshes["m"].double_sided


def _factors(m) -> dict:
    return {"base": _f(m.base_color_factor)[:3], "metallic": float(m.metallic_factor),
            "roughness": float(m.roughness_factor), "ior": float(m.ior), "transmission": float(m.transmission_factor),
            "specular": float(m.specular_factor)}


@pytest.mark.parametrize("bsdf,expected", [
    ('<bsdf type="diffuse"><rgb name="reflectance" value="0.2, 0.4, 0.6"/></bsdf>',
     {"base": [0.2, 0.4, 0.6], "metallic": 0.0, "roughness": 1.0, "transmission": 0.0, "specular": 0.0}),
    ('<bsdf type="diffuse"><spectrum name="reflectance" value="0.3"/></bsdf>', {"base": [0.3, 0.3, 0.3]}),
    ('<bsdf type="diffuse"><float name="reflectance" value="0.7"/></bsdf>', {"base": [0.7, 0.7, 0.7]}),
    ('<bsdf type="roughconductor"><string name="material" value="Au"/><float name="alpha" value="0.04"/></bsdf>',
     {"base": [0.966678, 0.802009, 0.324121], "metallic": 1.0, "roughness": 0.2}),  # (Au's eta, k head-on)
    ('<bsdf type="conductor"/>', {"base": [1.0, 1.0, 1.0], "metallic": 1.0, "roughness": 0.0, "specular": 1.0}),
    # F0 = ((eta - 1)^2 + k^2) / ((eta + 1)^2 + k^2): eta 2, k 0 -> 1/9; eta 1, k 2 -> 1/2; eta 0, k 1 -> 1
    ('<bsdf type="conductor"><rgb name="eta" value="2, 1, 0"/><rgb name="k" value="0, 2, 1"/></bsdf>',
     {"base": [1 / 9, 0.5, 1.0]}),
    ('<bsdf type="roughplastic"><rgb name="diffuse_reflectance" value="0.1, 0.2, 0.3"/>'
     '<float name="alpha" value="0.25"/></bsdf>',
     {"base": [0.1, 0.2, 0.3], "metallic": 0.0, "roughness": 0.5, "ior": 1.49 / 1.000277, "specular": 1.0}),
    ('<bsdf type="plastic"><float name="int_ior" value="1.6"/><float name="ext_ior" value="1.0"/></bsdf>',
     {"base": [0.5, 0.5, 0.5], "roughness": 0.0, "ior": 1.6}),
    ('<bsdf type="dielectric"/>', {"transmission": 1.0, "metallic": 0.0, "roughness": 0.0, "ior": 1.5046 / 1.000277}),
    ('<bsdf type="thindielectric"><string name="int_ior" value="water"/><string name="ext_ior" value="vacuum"/>'
     '</bsdf>', {"transmission": 1.0, "ior": 1.333}),
    ('<bsdf type="roughdielectric"><float name="alpha" value="0.09"/><string name="int_ior" value="diamond"/>'
     '</bsdf>', {"transmission": 1.0, "roughness": 0.3, "ior": 2.419 / 1.000277}),
    ('<bsdf type="principled"><rgb name="base_color" value="0.9, 0.8, 0.7"/><float name="metallic" value="0.25"/>'
     '<float name="roughness" value="0.4"/><float name="spec_trans" value="0.5"/><float name="eta" value="1.33"/>'
     '</bsdf>', {"base": [0.9, 0.8, 0.7], "metallic": 0.25, "roughness": 0.4, "transmission": 0.5, "ior": 1.33}),
])
def test_bsdfs_become_metallic_roughness_materials(tmp_path, bsdf, expected):
    material, double_sided = _material(tmp_path, bsdf)
    got = _factors(material)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert not double_sided


@pytest.mark.parametrize("bsdf, eta, k", [
    ('<bsdf type="roughconductor"><string name="material" value="Au"/></bsdf>', (0.14304, 0.37531, 1.44205),
     (3.98300, 2.38556, 1.60336)),
    ('<bsdf type="conductor"><rgb name="eta" value="2, 1, 0"/><rgb name="k" value="0, 2, 1"/></bsdf>', (2, 1, 0),
     (0, 2, 1)),
    ('<bsdf type="conductor"/>', (0, 0, 0), (1, 1, 1)),  # Mitsuba's "none": eta 0, k 1, a perfect mirror
    ('<bsdf type="conductor"><rgb name="eta" value="0.5, 0.6, 0.7"/></bsdf>', (0.5, 0.6, 0.7), (1, 1, 1)),
    ('<bsdf type="twosided"><bsdf type="roughconductor"><string name="material" value="Cr"/></bsdf></bsdf>',
     (4.36967, 2.91651, 1.65490), (5.20655, 4.23131, 3.75470)),
])
def test_conductors_are_mitsubas_conductor_model(tmp_path, bsdf, eta, k):
    """A conductor's ``eta`` and ``k`` (given, Mitsuba's defaults 0 and 1, or its named material's RGB values)
    become the material's: Mitsuba's exact Fresnel curve (:mod:`lumigrad.shading.conductor`)."""
    material, _ = _material(tmp_path, bsdf)
    assert material.conductor_eta.tolist() == pytest.approx(list(eta), abs=1e-6)
    assert material.conductor_k.tolist() == pytest.approx(list(k), abs=1e-6)
    assert not material.plastic and not material.principled


def test_a_conductor_with_a_material_and_eta_is_refused_and_a_channel_without_interface_is_black(tmp_path):
    """Mitsuba refuses a named material beside ``eta`` / ``k``, and so does the reader; a channel of ``eta`` 1 and
    ``k`` 0 (no interface: Mitsuba renders it black) becomes a black channel with a mirror's curve, noted."""
    with pytest.raises(MitsubaXmlError, match="sets both a material and eta / k"):
        _material(tmp_path, '<bsdf type="conductor"><string name="material" value="Au"/><rgb name="eta" '
                            'value="0.2, 0.9, 1.1"/></bsdf>')
    path = _write(tmp_path, '<shape type="rectangle" id="m"><bsdf type="conductor"><rgb name="eta" value="1, 2, 1.5"/>'
                            '<rgb name="k" value="0, 1, 0"/></bsdf></shape>')
    scene, notes = _read(path)
    m = scene.meshes["m"].material
    assert _f(m.base_color_factor)[0] == 0.0 and _f(m.base_color_factor)[1] == pytest.approx(2 / 10)
    assert m.conductor_eta.tolist() == [0.0, 2.0, 1.5] and m.conductor_k.tolist() == [1.0, 1.0, 0.0]
    assert "eta near 1 and k near 0" in notes[0]


def test_a_principleds_other_lobes_are_read_as_numbers(tmp_path):
    """``spec_tint``, ``sheen``, ``sheen_tint``, ``clearcoat``, ``clearcoat_gloss`` and ``flatness`` become
    ``Material.principled_lobes`` (in that order); a tint or gloss alone changes nothing (Mitsuba's lobes are off);
    a texture or a value outside [0, 1] is refused naming the element; with ``spec_trans`` (the glTF model) they
    are named in the warning."""
    m, _ = _material(tmp_path, '<bsdf type="principled"><float name="sheen" value="0.5"/><float name="clearcoat" '
                               'value="1"/><float name="clearcoat_gloss" value="0.3"/><float name="flatness" '
                               'value="0.25"/></bsdf>')
    assert m.principled and m.principled_lobes.tolist() == pytest.approx([0.0, 0.5, 0.0, 1.0, 0.3, 0.25])
    m, _ = _material(tmp_path, '<bsdf type="principled"><float name="sheen_tint" value="0.5"/><float '
                               'name="clearcoat_gloss" value="0.9"/></bsdf>')
    assert m.principled and m.principled_lobes is None
    with pytest.raises(MitsubaXmlError, match="textured sheen"):
        _material(tmp_path, '<bsdf type="principled"><texture type="checkerboard" name="sheen"/></bsdf>')
    with pytest.raises(MitsubaXmlError, match=r"must lie in \[0, 1\]"):
        _material(tmp_path, '<bsdf type="principled"><float name="clearcoat" value="1.5"/></bsdf>')
    path = _write(tmp_path, '<shape type="rectangle" id="m"><bsdf type="principled"><float name="spec_trans" '
                            'value="0.5"/><float name="sheen" value="0.5"/></bsdf></shape>')
    scene, notes = _read(path)
    assert scene.meshes["m"].material.principled_lobes is None
    assert "principled sheen (not modelled with spec_trans)" in notes[0]


def test_the_named_conductors_reflect_what_mitsuba_reflects_head_on():
    """The table of Mitsuba's named conductors gives each the reflectance head-on that Mitsuba 3.9.1's RGB
    variants give it (recorded to 4 decimals when the reader took only that)."""
    recorded = {"Ag": (0.9748, 0.9575, 0.9063), "Al": (0.9280, 0.9178, 0.9189), "Au": (0.9667, 0.8020, 0.3241),
                "Cr": (0.6876, 0.6491, 0.6870), "Cu": (0.9520, 0.6198, 0.5106), "AlSb": (1.0000, 0.3733, 0.4479),
                "W": (0.5746, 0.4778, 0.4331), "none": (1.0, 1.0, 1.0)}
    for name, f0 in recorded.items():
        eta, k = (np.asarray(v) for v in CONDUCTOR_ETA_K[name])
        assert (((eta - 1) ** 2 + k ** 2) / ((eta + 1) ** 2 + k ** 2)).tolist() == pytest.approx(f0, abs=6e-5), name
    assert len(CONDUCTOR_ETA_K) == 38


@pytest.mark.parametrize("bsdf, microfacet", [
    ('<bsdf type="roughconductor"/>', "beckmann"),  # Mitsuba's default distribution
    ('<bsdf type="roughconductor"><string name="distribution" value="ggx"/></bsdf>', "ggx"),
    ('<bsdf type="roughplastic"/>', "beckmann"),
    ('<bsdf type="roughdielectric"><string name="distribution" value="beckmann"/></bsdf>', "beckmann"),
    ('<bsdf type="roughdielectric"><string name="distribution" value="ggx"/></bsdf>', "ggx"),
    ('<bsdf type="conductor"/>', "ggx"),  # smooth: a mirror whatever the lobe
    ('<bsdf type="principled"/>', "ggx"),  # Mitsuba's principled is GGX's
    ('<bsdf type="diffuse"/>', "ggx"),
])
def test_the_rough_bsdfs_distribution_becomes_the_materials_microfacet(tmp_path, bsdf, microfacet):
    material, _ = _material(tmp_path, bsdf)
    assert material.microfacet == microfacet


def test_plastics_are_mitsubas_plastic_model(tmp_path):
    for kind in ("plastic", "roughplastic"):
        material = _material(tmp_path, f'<bsdf type="{kind}"/>')[0]
        assert material.plastic and float(material.metallic_factor) == 0.0, kind
    for kind in ("diffuse", "roughconductor", "dielectric", "principled"):
        assert not _material(tmp_path, f'<bsdf type="{kind}"/>')[0].plastic, kind
    scene, warned = _read(_write(tmp_path, '<shape type="cube"><bsdf type="plastic"><boolean name="nonlinear" '
                                           'value="true"/></bsdf></shape>'))
    assert any("nonlinear" in w for w in warned)


def test_principled_is_mitsubas_principled_model_unless_it_transmits(tmp_path):
    material = _material(tmp_path, '<bsdf type="principled"><rgb name="base_color" value="0.6, 0.3, 0.2"/><float '
                                   'name="metallic" value="0.2"/><float name="roughness" value="0.3"/></bsdf>')[0]
    assert material.principled and not material.plastic
    expected = {"base": [0.6, 0.3, 0.2], "metallic": 0.2, "roughness": 0.3, "ior": 1.5, "transmission": 0.0}
    got = _factors(material)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key
    for kind in ("diffuse", "roughconductor", "roughplastic", "dielectric"):
        assert not _material(tmp_path, f'<bsdf type="{kind}"/>')[0].principled, kind
    # Mitsuba's specular weight is an eta: normal-incidence reflectance 0.08 specular (0.5 is eta 1.5)
    for specular in (0.5, 0.2, 1.0):
        m = _material(tmp_path, f'<bsdf type="principled"><float name="specular" value="{specular}"/></bsdf>')[0]
        eta = float(m.ior)
        assert ((eta - 1) / (eta + 1)) ** 2 == pytest.approx(0.08 * specular, rel=1e-5)
    # a transmitting principled keeps the glTF approximation, and the warning says so
    scene, notes = _read(_write(tmp_path, '<shape type="cube"><bsdf type="principled"><float name="spec_trans" '
                                          'value="0.7"/></bsdf></shape>'))
    glass = next(iter(scene.meshes.values())).material
    assert not glass.principled and float(glass.transmission_factor) == pytest.approx(0.7)
    assert _f(glass.base_color_factor)[:3] == pytest.approx([0.5, 0.5, 0.5])  # (a partial one: as read)
    assert any("principled spec_trans" in w for w in notes)
    # a principled glass (spec_trans 1, not metallic): Mitsuba tints each crossing by sqrt(base_color)
    glass = _material(tmp_path, '<bsdf type="principled"><rgb name="base_color" value="0.25, 0.64, 0.81"/>'
                                '<float name="spec_trans" value="1"/></bsdf>')[0]
    assert not glass.principled and float(glass.transmission_factor) == 1.0
    assert _f(glass.base_color_factor)[:3] == pytest.approx([0.5, 0.8, 0.9], rel=1e-6)
    with pytest.raises(MitsubaXmlError, match="sets both eta and specular"):
        _material(tmp_path, '<bsdf type="principled"><float name="eta" value="1.4"/>'
                            '<float name="specular" value="0.5"/></bsdf>')


def test_a_thindielectric_is_a_thin_sheet_and_the_others_are_solid(tmp_path):
    assert _material(tmp_path, '<bsdf type="thindielectric"/>')[0].thin_dielectric
    for kind in ("dielectric", "roughdielectric", "plastic", "diffuse"):
        assert not _material(tmp_path, f'<bsdf type="{kind}"/>')[0].thin_dielectric, kind


def test_the_smooth_bsdfs_have_dirac_specular_lobes_and_the_rough_ones_not(tmp_path):
    """Mitsuba's smooth ``conductor``, ``plastic``, ``dielectric`` and ``thindielectric`` (also inside
    ``twosided``, ``normalmap`` and ``mask``) get ``Material.delta_specular`` (delta lights never meet their
    specular lobes); the rough ones, ``diffuse`` and ``principled`` do not."""
    for kind in ("conductor", "plastic", "dielectric", "thindielectric"):
        assert _material(tmp_path, f'<bsdf type="{kind}"/>')[0].delta_specular, kind
    assert _material(tmp_path, '<bsdf type="twosided"><bsdf type="conductor"/></bsdf>')[0].delta_specular
    assert _material(tmp_path, '<bsdf type="mask"><float name="opacity" value="0.5"/><bsdf type="plastic"/></bsdf>'
                     )[0].delta_specular
    lg.io.write_image(tmp_path / "n.png", torch.tensor([[[0.6, 0.5, 1.0], [0.5, 0.4, 1.0]]]))
    mapped = _material(tmp_path, '<bsdf type="normalmap"><texture type="bitmap" name="normalmap"><string '
                                 'name="filename" value="n.png"/><boolean name="raw" value="true"/></texture>'
                                 '<bsdf type="plastic"/></bsdf>')[0]
    assert mapped.delta_specular and mapped.mitsuba_normal_map and mapped.plastic
    for kind in ("roughconductor", "roughplastic", "roughdielectric", "diffuse", "principled"):
        assert not _material(tmp_path, f'<bsdf type="{kind}"/>')[0].delta_specular, kind


def test_an_unknown_distribution_is_refused(tmp_path):
    with pytest.raises(MitsubaXmlError, match="distribution must be 'beckmann' or 'ggx'; got 'phong'"):
        _material(tmp_path, '<bsdf type="roughconductor"><string name="distribution" value="phong"/></bsdf>')


def test_a_shape_without_a_bsdf_gets_mitsubas_default_lambertian_diffuse(tmp_path):
    material, _ = _material(tmp_path, "")
    assert _factors(material) == {"base": [0.5, 0.5, 0.5], "metallic": 0.0, "roughness": 1.0, "ior": 1.5,
                                  "transmission": 0.0, "specular": 0.0}


def test_twosided_sets_double_sided_and_wraps_the_inner_material(tmp_path):
    material, double_sided = _material(tmp_path, '<bsdf type="twosided"><bsdf type="roughconductor">'
                                                 '<float name="alpha" value="0.16"/></bsdf></bsdf>')
    assert double_sided and float(material.metallic_factor) == 1.0
    assert float(material.roughness_factor) == pytest.approx(0.4)


def test_bitmap_textures_srgb_raw_and_linear_files(tmp_path):
    image = torch.tensor([[[0.0, 0.2, 0.4], [0.6, 0.8, 1.0]]]).repeat(2, 1, 1)
    lg.io.write_image(tmp_path / "tex.png", image)
    lg.io.write_exr(tmp_path / "tex.exr", image * 0.5, pixel_type="float")
    stored = lg.io.read_image(tmp_path / "tex.png")
    scene = _scene(tmp_path, '''
        <shape type="rectangle" id="srgb"><bsdf type="diffuse"><texture type="bitmap" name="reflectance">
            <string name="filename" value="tex.png"/><string name="wrap_mode" value="clamp"/></texture></bsdf></shape>
        <shape type="rectangle" id="raw"><bsdf type="diffuse"><texture type="bitmap" name="reflectance">
            <string name="filename" value="tex.png"/><boolean name="raw" value="true"/></texture></bsdf></shape>
        <shape type="rectangle" id="exr"><bsdf type="diffuse"><texture type="bitmap" name="reflectance">
            <string name="filename" value="tex.exr"/></texture></bsdf></shape>''')
    srgb = scene.meshes["srgb"].material
    assert torch.equal(srgb.base_color_texture, stored) and srgb.wrap == "clamp"  # sRGB-encoded, as stored
    assert _f(srgb.base_color_factor) == [1.0, 1.0, 1.0, 1.0]
    # raw (linear) values and linear EXR texels are encoded once; lumigrad's base colour decodes them back
    torch.testing.assert_close(scene.meshes["raw"].material.base_color_texture, srgb_encode(stored))
    torch.testing.assert_close(scene.meshes["exr"].material.base_color_texture, srgb_encode(image * 0.5))


_CHECKER = ('<texture type="checkerboard" name="reflectance"><rgb name="color0" value="0.8, 0.3, 0.1"/>'
            '<rgb name="color1" value="0.1, 0.2, 0.7"/><transform name="to_uv"><scale x="3" y="2"/>'
            '<translate x="0.2" y="0.1"/></transform></texture>')


def test_checkerboard_textures_and_to_uv_transforms(tmp_path):
    """A ``checkerboard`` becomes one repeated period of sRGB-encoded texels (``color0`` where both fractional
    parts are on the same side of 0.5), its ``to_uv`` moves the texture coordinates of the shapes that use it
    (a bitmap's too); a ``to_uv`` that mixes in z and a nested texture are refused."""
    from lumigrad.io.mitsuba_xml import CHECKER_TEXELS

    scene = _scene(tmp_path, f'''
        <bsdf type="diffuse" id="checks">{_CHECKER}</bsdf>
        <shape type="rectangle" id="a"><ref id="checks"/></shape>
        <shape type="rectangle" id="b"><ref id="checks"/><transform name="to_world"><translate z="1"/></transform>
        </shape>
        <shape type="rectangle" id="c"><bsdf type="diffuse"><texture type="checkerboard" name="reflectance"/>
        </bsdf></shape>''')
    a, b, c = (scene.meshes[k] for k in "abc")
    tex = a.material.base_color_texture
    assert tex.shape == (CHECKER_TEXELS, CHECKER_TEXELS, 3) and a.material.wrap == "repeat"
    n = CHECKER_TEXELS // 2
    colour0, colour1 = torch.tensor([0.8, 0.3, 0.1]), torch.tensor([0.1, 0.2, 0.7])
    decoded = lg.shading.image_formation.srgb_decode(tex.double())
    for (i, j), colour in {(0, 0): colour0, (n + 3, n + 7): colour0, (2, n + 1): colour1, (n, 0): colour1}.items():
        torch.testing.assert_close(decoded[i, j].float(), colour, atol=1e-5, rtol=1e-5)
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    moved = corners * torch.tensor([3.0, 2.0], dtype=torch.float64) + torch.tensor([0.2, 0.1], dtype=torch.float64)
    torch.testing.assert_close(a.uv.double(), moved)
    torch.testing.assert_close(b.uv.double(), moved)
    torch.testing.assert_close(c.uv.double(), corners)  # no to_uv
    lg.io.write_image(tmp_path / "tex.png", torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(0)))
    bitmap = _scene(tmp_path, '<shape type="rectangle"><bsdf type="diffuse"><texture type="bitmap" '
                              'name="reflectance"><string name="filename" value="tex.png"/><transform name="to_uv">'
                              '<scale x="2"/><translate y="0.5"/></transform></texture></bsdf></shape>')
    torch.testing.assert_close(bitmap.meshes["rectangle"].uv.double(), corners * torch.tensor(
        [2.0, 1.0], dtype=torch.float64) + torch.tensor([0.0, 0.5], dtype=torch.float64))
    default = lg.shading.image_formation.srgb_decode(c.material.base_color_texture.double())
    assert default[0, 0].tolist() == pytest.approx([0.4] * 3) and default[n, 0].tolist() == pytest.approx([0.2] * 3)
    with pytest.raises(MitsubaXmlError, match="to_uv must map texture coordinates"):
        _scene(tmp_path, '<shape type="rectangle"><bsdf type="diffuse"><texture type="checkerboard" '
                         'name="reflectance"><transform name="to_uv"><rotate x="1" angle="30"/></transform>'
                         '</texture></bsdf></shape>')
    with pytest.raises(MitsubaXmlError, match="color0 must be a colour"):
        _scene(tmp_path, '<shape type="rectangle"><bsdf type="diffuse"><texture type="checkerboard" '
                         'name="reflectance"><texture type="checkerboard" name="color0"/></texture></bsdf></shape>')


def test_a_normalmap_becomes_its_materials_normal_texture(tmp_path):
    """``normalmap`` around a BSDF: that BSDF's material with ``normal_texture`` (the bitmap as stored with ``raw``),
    scale 1, tangents of Mitsuba's frame (``dp/du``, handedness +1), ``twosided`` around it still double-sided; a
    ``normalmap`` without its texture or BSDF, and textures of one material with different ``to_uv``, are
    refused."""
    stored = torch.tensor([[[0.2, 0.7, 0.92], [0.5, 0.51, 1.0]]])
    lg.io.write_image(tmp_path / "n.png", stored)
    normal = ('<texture type="bitmap" name="normalmap"><string name="filename" value="n.png"/>'
              '<boolean name="raw" value="true"/>{}</texture>')
    scene = _scene(tmp_path, f'''<shape type="rectangle"><bsdf type="twosided"><bsdf type="normalmap">
        {normal.format("")}<bsdf type="roughconductor"/></bsdf></bsdf></shape>''')
    mesh = scene.meshes["rectangle"]
    m = mesh.material
    assert mesh.double_sided and float(m.metallic_factor) == 1.0 and m.microfacet == "beckmann"
    torch.testing.assert_close(m.normal_texture.float(), torch.round(stored * 255) / 255, atol=2e-6, rtol=0)
    assert float(m.normal_scale) == 1.0
    assert mesh.tangents is not None and bool((mesh.tangents[:, 3] == 1).all())
    torch.testing.assert_close(mesh.tangents[:, :3].double(), torch.tensor([[1.0, 0.0, 0.0]] * 4, dtype=torch.float64))
    with pytest.raises(MitsubaXmlError, match="needs a <texture"):
        _scene(tmp_path, '<shape type="rectangle"><bsdf type="normalmap"><bsdf type="diffuse"/></bsdf></shape>')
    with pytest.raises(MitsubaXmlError, match="needs one nested <bsdf>"):
        _scene(tmp_path, f'<shape type="rectangle"><bsdf type="normalmap">{normal.format("")}</bsdf></shape>')
    moved = normal.format('<transform name="to_uv"><scale x="2"/></transform>')
    with pytest.raises(MitsubaXmlError, match="different to_uv"):
        _scene(tmp_path, f'''<shape type="rectangle"><bsdf type="normalmap">{moved}<bsdf type="diffuse">
            <texture type="bitmap" name="reflectance"><string name="filename" value="n.png"/></texture></bsdf>
            </bsdf></shape>''')
    both = _scene(tmp_path, f'''<shape type="rectangle"><bsdf type="normalmap">{moved}<bsdf type="diffuse"/></bsdf>
        </shape>''').meshes["rectangle"]
    assert float(both.uv[:, 0].max()) == 2.0  # a normal map's own to_uv moves the coordinates


def test_texture_on_a_shape_without_texture_coordinates_is_refused(tmp_path):
    lg.io.write_image(tmp_path / "tex.png", torch.rand(2, 2, 3))
    with pytest.raises(MitsubaXmlError, match="<shape type='sphere'> has no texture coordinates"):
        _scene(tmp_path, '<shape type="sphere"><bsdf type="diffuse"><texture type="bitmap" name="reflectance">'
                         '<string name="filename" value="tex.png"/></texture></bsdf></shape>')


def test_an_ior_below_one_and_unknown_names_are_refused(tmp_path):
    with pytest.raises(MitsubaXmlError, match="int_ior / ext_ior = 1.0 / 1.333 is below 1"):
        _material(tmp_path, '<bsdf type="dielectric"><float name="int_ior" value="1.0"/>'
                            '<string name="ext_ior" value="water"/></bsdf>')
    with pytest.raises(MitsubaXmlError, match="int_ior 'unobtainium' is not a known material"):
        _material(tmp_path, '<bsdf type="dielectric"><string name="int_ior" value="unobtainium"/></bsdf>')
    with pytest.raises(MitsubaXmlError, match="conductor material 'Kryptonite' is not known"):
        _material(tmp_path, '<bsdf type="conductor"><string name="material" value="Kryptonite"/></bsdf>')


# -------------------------------------------------------------------------------------------- emitters
def test_point_spot_directional_constant_and_area_emitters(tmp_path):
    scene = _scene(tmp_path, '''
        <emitter type="point" id="bulb"><point name="position" x="1" y="2" z="3"/>
            <rgb name="intensity" value="10, 5, 1"/></emitter>
        <emitter type="point"><transform name="to_world"><translate x="-1"/></transform></emitter>
        <emitter type="spot" id="spot"><float name="cutoff_angle" value="30"/><float name="beam_width" value="20"/>
            <transform name="to_world"><lookat origin="0, 5, 0" target="0, 0, 0" up="0, 0, 1"/></transform></emitter>
        <emitter type="directional" id="sun"><vector name="direction" x="0" y="-2" z="0"/>
            <rgb name="irradiance" value="3, 3, 3"/></emitter>
        <emitter type="constant" id="sky"><rgb name="radiance" value="0.1, 0.2, 0.3"/></emitter>
        <shape type="rectangle" id="lamp">
            <transform name="to_world"><scale value="0.5"/><rotate x="1" angle="180"/><translate y="4"/></transform>
            <emitter type="area"><rgb name="radiance" value="5, 6, 7"/></emitter></shape>''')
    assert list(scene.lights) == ["bulb", "point", "spot", "sun", "sky", "lamp"] and not scene.meshes
    bulb = scene.lights["bulb"]
    assert _f(bulb.position) == [1, 2, 3] and float(bulb.intensity) == 1.0 and _f(bulb.color) == [10, 5, 1]
    assert _f(scene.lights["point"].position) == [-1, 0, 0]
    spot = scene.lights["spot"]
    assert _f(spot.position) == [0, 5, 0] and _f(spot.direction) == pytest.approx([0, -1, 0])
    assert float(spot.outer_angle) == pytest.approx(math.radians(30)) and \
        float(spot.inner_angle) == pytest.approx(math.radians(20))
    sun = scene.lights["sun"]
    assert _f(sun.direction) == [0, -1, 0] and _f(sun.color) == [3, 3, 3]
    sky = scene.lights["sky"]
    assert isinstance(sky, lg.EnvironmentLight) and torch.allclose(sky.texels, torch.tensor([0.1, 0.2, 0.3]))
    lamp = scene.lights["lamp"]
    assert isinstance(lamp, lg.AreaLight) and _f(lamp.radiance) == [5, 6, 7]
    # world triangles: the quad halved, turned to face down, 4 up; it emits from its front (now -y? no: -z)
    assert _f(lamp.verts[0]) == pytest.approx([-0.5, 4.5, 0.0], abs=1e-6)
    v = lamp.verts[lamp.faces[0]]
    n = torch.linalg.cross(v[1] - v[0], v[2] - v[0])
    assert _f(n / n.norm()) == pytest.approx([0, 0, -1], abs=1e-6)


def _env(tmp_path, H=8, W=16) -> torch.Tensor:
    """A map whose red is its row index (linear across rows), green 1 in column 3 only, blue 1."""
    texels = torch.zeros(H, W, 3)
    texels[..., 0] = torch.arange(H, dtype=torch.float32)[:, None]
    texels[:, 3, 1] = 1.0
    texels[..., 2] = 1.0
    lg.io.write_exr(tmp_path / "sky.exr", texels, pixel_type="float")
    return texels


def _direction(u: float, v: float) -> torch.Tensor:
    """The direction at equirect coordinates (u, v) of both layouts: u = atan2(x, -z) / 2 pi, v = acos(y) / pi."""
    theta, phi = math.pi * v, 2 * math.pi * u
    return torch.tensor([math.sin(theta) * math.sin(phi), math.cos(theta), -math.sin(theta) * math.cos(phi)],
                        dtype=torch.float64)


def _texel_direction(i, j, H, W) -> torch.Tensor:
    """The centre of lumigrad's texel (i, j): u = (j + 0.5) / W, v = (i + 0.5) / H."""
    return _direction((j + 0.5) / W, (i + 0.5) / H)


def test_envmap_rows_move_from_mitsubas_poles_to_lumigrads_row_centres(tmp_path):
    _env(tmp_path)
    scene = _scene(tmp_path, '<emitter type="envmap" id="sky"><string name="filename" value="sky.exr"/>'
                             '<float name="scale" value="2"/></emitter>', env_size=None)
    sky = scene.lights["sky"]
    assert sky.texels.shape == (8, 16, 3) and float(sky.scale) == 2.0
    # Mitsuba's row i lies at v = i / 7; lumigrad's row i at v = (i + 0.5) / 8, where Mitsuba reads 7 (i + 0.5) / 8
    assert _f(sky.texels[:, 0, 0]) == pytest.approx([7 * (i + 0.5) / 8 for i in range(8)], abs=1e-6)
    assert _f(sky.texels[:, 3, 1]) == pytest.approx([1.0] * 8) and float(sky.texels[:, 2, 1].max()) == 0.0
    # Mitsuba's texel (2, 3) is at u = 3.5 / 16, v = 2 / 7: lumigrad reads the same value there
    value = envmap_lookup(sky.texels.double(), _direction(3.5 / 16, 2 / 7))
    assert _f(value) == pytest.approx([2.0, 1.0, 1.0], abs=1e-6)


def test_envmap_rotation_maps_a_known_direction_to_the_same_texel(tmp_path):
    _env(tmp_path)
    scene = _scene(tmp_path, '<emitter type="envmap" id="sky"><string name="filename" value="sky.exr"/>'
                             '<transform name="to_world"><rotate y="1" angle="90"/></transform></emitter>',
                   env_size=None)
    sky = scene.lights["sky"].texels
    # Mitsuba looks a world direction d up at to_world^-1 d: its texel (2, 3), in the local direction d_l, is seen
    # in the world at R d_l. A 90 degree turn about +y (x -> -z, z -> x) moves u by -1/4: column 3 -> 15.
    R = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    world = R @ _direction(3.5 / 16, 2 / 7)
    assert _f(envmap_lookup(sky.double(), world)) == pytest.approx([2.0, 1.0, 1.0], abs=1e-6)
    assert _f(sky[:, 15, 1]) == pytest.approx([1.0] * 8) and float(sky[:, 3, 1].max()) == pytest.approx(0.0)


def test_envmap_is_area_averaged_to_env_size(tmp_path):
    _env(tmp_path)
    sky = _scene(tmp_path, '<emitter type="envmap" id="sky"><string name="filename" value="sky.exr"/></emitter>',
                 env_size=(4, 8)).lights["sky"]
    assert sky.texels.shape == (4, 8, 3)
    assert _f(sky.texels[:, 1, 1]) == pytest.approx([0.5] * 4)  # columns 2 and 3 averaged


def test_envmap_files_other_than_hdr_and_exr_are_refused(tmp_path):
    lg.io.write_image(tmp_path / "sky.png", torch.rand(4, 8, 3))
    with pytest.raises(MitsubaXmlError, match="environment maps must be .hdr or .exr; got sky.png"):
        _scene(tmp_path, '<emitter type="envmap"><string name="filename" value="sky.png"/></emitter>')


# --------------------------------------------------------------------------------------------- sensors
def _camera(tmp_path, sensor_body: str, width=64, height=48, **kw) -> lg.Camera:
    scene = _scene(tmp_path, f'''<sensor type="perspective" id="cam">{sensor_body}
        <film type="hdrfilm"><integer name="width" value="{width}"/><integer name="height" value="{height}"/></film>
        </sensor>''', **kw)
    return scene.cameras["cam"]


def test_camera_frame_a_point_ahead_lands_in_the_centre_and_up_left_in_the_upper_left(tmp_path):
    # Mitsuba's camera at (0, 0, 5) looking at the origin with +y up: world +x is on the image's left
    cam = _camera(tmp_path, '<float name="fov" value="60"/><transform name="to_world">'
                            '<lookat origin="0, 0, 5" target="0, 0, 0" up="0, 1, 0"/></transform>')
    uv, depth = cam.project(torch.tensor([[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0], [0.5, -0.5, 0.0]]))
    assert _f(uv[0]) == pytest.approx([32.0, 24.0], abs=1e-4) and float(depth[0]) == pytest.approx(5.0)
    # Mitsuba's camera +x ("left") is up x dir = -x here: world -x is on the image's left, +y is up
    assert uv[1, 0] < 32 and uv[1, 1] < 24
    assert uv[2, 0] > 32 and uv[2, 1] > 24
    # fov 60 along x (the default axis): a point tan(30 deg) * 5 to the camera's right is on the right edge
    uv, _ = cam.project(torch.tensor([[5 * math.tan(math.radians(30)), 0.0, 0.0]]))
    assert float(uv[0, 0]) == pytest.approx(64.0, abs=1e-3)


@pytest.mark.parametrize("axis,half_x", [
    ("x", math.tan(math.radians(25))), ("y", math.tan(math.radians(25)) * 64 / 48),
    ("smaller", math.tan(math.radians(25)) * 64 / 48), ("larger", math.tan(math.radians(25))),
    ("diagonal", math.tan(math.radians(25)) * 0.8)])  # 64 x 48: the diagonal is 80, x is 0.8 of it
def test_fov_axes(tmp_path, axis, half_x):
    cam = _camera(tmp_path, f'<float name="fov" value="50"/><string name="fov_axis" value="{axis}"/>')
    assert float(cam.K[0, 0]) == pytest.approx(32 / half_x, rel=1e-6)
    assert float(cam.K[1, 1]) == float(cam.K[0, 0])


def test_crop_principal_point_clip_and_focal_length(tmp_path):
    scene = _scene(tmp_path, '''<sensor type="perspective" id="cam">
        <float name="near_clip" value="0.5"/><float name="far_clip" value="50"/>
        <float name="principal_point_offset_x" value="0.25"/>
        <film type="hdrfilm"><integer name="width" value="100"/><integer name="height" value="50"/>
            <integer name="crop_offset_x" value="10"/><integer name="crop_width" value="20"/>
            <integer name="crop_offset_y" value="5"/><integer name="crop_height" value="30"/></film></sensor>''')
    cam = scene.cameras["cam"]
    assert (cam.width, cam.height, cam.near, cam.far) == (20, 30, 0.5, 50.0)
    # focal_length 50mm (the default) is a diagonal fov of 2 atan(43.27 / 100) on a 2:1 film
    half_x = math.hypot(36, 24) / 100 / math.sqrt(1 + 1 / 4)
    assert float(cam.K[0, 0]) == pytest.approx(50 / half_x, rel=1e-5)
    assert _f(cam.K[:2, 2]) == pytest.approx([50 - 25 - 10, 25 - 5])


def test_camera_with_scale_is_refused_and_metadata_records_integrator_sampler_film(tmp_path):
    with pytest.raises(MitsubaXmlError, match="camera's to_world must be a rotation and a translation"):
        _camera(tmp_path, '<transform name="to_world"><scale value="2"/></transform>')
    scene = _scene(tmp_path, '''<integrator type="path"><integer name="max_depth" value="8"/>
        <boolean name="hide_emitters" value="true"/></integrator>
        <sensor type="perspective"><sampler type="independent"><integer name="sample_count" value="64"/></sampler>
        <film type="hdrfilm"><string name="pixel_format" value="rgb"/><rfilter type="gaussian"/></film></sensor>''')
    assert scene.metadata["integrator"] == {"type": "path", "max_depth": 8, "hide_emitters": True}
    assert scene.metadata["sensors"]["sensor"] == {
        "type": "perspective", "sampler": {"type": "independent", "sample_count": 64},
        "film": {"type": "hdrfilm", "pixel_format": "rgb", "rfilter": {"type": "gaussian"}}}
    assert (scene.cameras["sensor"].width, scene.cameras["sensor"].height) == (768, 576)  # Mitsuba's film default


def test_mitsuba_render_settings_render_the_file_as_mitsuba_would(tmp_path):
    """``mitsuba_render_settings``: the first sensor (or the one named, with its film's filter), the integrator
    mapped (``volpath`` -> path) with its ``max_depth`` or Mitsuba's default (no limit for ``path``, 6 for
    ``prb``), ``hide_emitters``, the sampler's ``sample_count`` (4 without one); ``lg.render(scene, **settings)``
    renders; what Mitsuba would not render is refused."""
    from lumigrad.cameras.pixel_filter import PixelFilter
    from lumigrad.io import mitsuba_render_settings

    sensors = ('<sensor type="perspective" id="a"><transform name="to_world"><lookat origin="2, 2, -3" '
               'target="0, 0, 0"/></transform><sampler type="independent"><integer name="sample_count" value="3"/>'
               '</sampler><film type="hdrfilm"><integer name="width" value="8"/><integer name="height" value="6"/>'
               '<rfilter type="box"/></film></sensor>'
               '<sensor type="perspective" id="b"><film type="hdrfilm"><integer name="width" value="5"/>'
               '<integer name="height" value="4"/></film></sensor>')
    lamp = '<emitter type="constant"/>'
    scene = _scene(tmp_path, '<integrator type="volpath"><integer name="max_depth" value="3"/><boolean '
                             'name="hide_emitters" value="true"/></integrator><shape type="cube"/>' + lamp + sensors)
    settings = mitsuba_render_settings(scene)
    assert settings == {"camera": scene.cameras["a"], "integrator": "path", "spp": 3, "max_depth": 3,
                        "hide_emitters": True}
    assert scene.film.pixel_filter == PixelFilter("box")
    out = lg.render(scene, **settings)
    assert out.rgb.shape == (6, 8, 3) and float(out.rgb.max()) > 0
    other = mitsuba_render_settings(scene, "b")
    assert other["camera"] is scene.cameras["b"] and other["spp"] == 4
    assert scene.film.pixel_filter == PixelFilter("gaussian")  # b's film names no rfilter: Mitsuba's default
    prb = _scene(tmp_path, '<integrator type="prb"/><shape type="cube"/>' + sensors)
    assert mitsuba_render_settings(prb)["max_depth"] == 6
    path = _scene(tmp_path, '<integrator type="path"/><shape type="cube"/>' + sensors)
    assert mitsuba_render_settings(path)["max_depth"] == -1
    with pytest.raises(ValueError, match="not one of the file's: a, b"):
        mitsuba_render_settings(scene, "c")
    with pytest.raises(ValueError, match="no <integrator>"):
        mitsuba_render_settings(_scene(tmp_path, '<shape type="cube"/>' + sensors))
    with pytest.raises(ValueError, match="max_depth 0"):
        mitsuba_render_settings(_scene(tmp_path, '<integrator type="path"><integer name="max_depth" value="0"/>'
                                                 '</integrator><shape type="cube"/>' + sensors))
    with pytest.raises(ValueError, match="no Mitsuba sensor"):
        mitsuba_render_settings(lg.Scene())


def test_the_films_rfilter_becomes_the_scenes_pixel_filter(tmp_path):
    """A sensor's ``<rfilter>`` (type and properties) is the scene film's pixel filter; a film without one, or no
    sensor, gets Mitsuba's default (``gaussian``, stddev 0.5); an unknown property names the element; a second
    sensor filtering differently and ``sample_border`` are noted."""
    from lumigrad.cameras.pixel_filter import PixelFilter

    def sensor(film_body: str) -> str:
        return f'<sensor type="perspective"><film type="hdrfilm">{film_body}</film></sensor>'

    assert _scene(tmp_path, sensor("")).film.pixel_filter == PixelFilter("gaussian")
    assert _scene(tmp_path, '<shape type="cube"/>').film.pixel_filter == PixelFilter("gaussian")
    assert _scene(tmp_path, sensor('<rfilter type="box"/>')).film.pixel_filter == PixelFilter("box")
    tent = _scene(tmp_path, sensor('<rfilter type="tent"><float name="radius" value="1.5"/></rfilter>'))
    assert tent.film.pixel_filter == PixelFilter("tent", radius=1.5)
    narrow = _scene(tmp_path, sensor('<rfilter type="gaussian"><float name="stddev" value="0.25"/></rfilter>'))
    assert narrow.film.pixel_filter.radius == 1.0
    mitchell = _scene(tmp_path, sensor('<rfilter type="mitchell"><float name="B" value="0.5"/>'
                                       '<float name="C" value="0.25"/></rfilter>'))
    assert mitchell.film.pixel_filter == PixelFilter("mitchell", b=0.5, c=0.25)
    with pytest.raises(MitsubaXmlError, match=r"scene\.xml:3: <rfilter type='gaussian'>.*unknown properties"):
        _scene(tmp_path, sensor('<rfilter type="gaussian"><float name="sigma" value="1"/></rfilter>'))
    with pytest.raises(MitsubaXmlError, match="<rfilter type='sinc'>.*pixel filter kind"):
        _scene(tmp_path, sensor('<rfilter type="sinc"/>'))
    with pytest.raises(MitsubaXmlError, match="has 2 rfilters"):
        _scene(tmp_path, sensor('<rfilter type="box"/><rfilter type="tent"/>'))
    with pytest.raises(MitsubaXmlError, match=r"unknown properties \['B'\]; it reads none"):
        _scene(tmp_path, sensor('<rfilter type="catmullrom"><float name="B" value="0.2"/></rfilter>'))
    lanczos = _scene(tmp_path, sensor('<rfilter type="lanczos"><float name="lobes" value="2"/></rfilter>'))
    assert lanczos.film.pixel_filter == PixelFilter("lanczos", lobes=2)
    shared, notes = _read(_write(tmp_path, '<rfilter type="tent" id="rf"/>' + sensor('<ref id="rf"/>')))
    assert shared.film.pixel_filter == PixelFilter("tent") and not any("top-level" in n for n in notes), notes
    scene, notes = _read(_write(tmp_path, sensor('<rfilter type="box"/><boolean name="sample_border" value="true"/>')
                                + '<sensor type="perspective" id="two"/>'))
    assert scene.film.pixel_filter == PixelFilter("box")
    assert any("sample_border" in n and "filter differently" in n for n in notes), notes


# --------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("body,match", [
    ('<bsdf type="hair" id="h"/>', r"scene\.xml:3: <bsdf type='hair' id='h'>: BSDF type 'hair' is not supported"),
    ('<shape type="bsplinecurve"/>', r"scene\.xml:3: <shape type='bsplinecurve'>: shape type 'bsplinecurve' is "),
    ('<emitter type="projector"/>', "emitter type 'projector' is not supported"),
    ('<sensor type="radiancemeter"/>', "sensor type 'radiancemeter' is not supported"),
    ('<shape type="cube"><bsdf type="diffuse"><texture type="mesh_attribute" name="reflectance"/></bsdf></shape>',
     "texture type 'mesh_attribute' is not supported"),
    ('<medium type="homogeneous"/>', "a top-level <medium> needs an id"),
    ('<volume type="gridvolume"/>', "lumigrad does not read <volume>"),
    ('<shape type="cube"><medium type="heterogeneous" name="interior"/></shape>',
     "medium type 'heterogeneous' is not supported"),
    ('<sensor type="perspective" id="a"><medium type="homogeneous"/></sensor><sensor type="perspective" id="b"/>',
     r"<sensor type='perspective' id='b'>: the file's sensors are in different media"),
    ('<shape type="cube"><medium type="homogeneous" name="exterior"/><medium type="homogeneous" name="exterior"/>'
     '</shape>', "has 2 exterior media; a shape has one"),
    ('<shape type="cube"><medium type="homogeneous" name="inside"/></shape>', "must be named 'interior'"),
    ('<shape type="cube"><medium type="homogeneous" name="interior"><phase type="rayleigh"/></medium></shape>',
     "phase type 'rayleigh' is not supported"),
    ('<shape type="cube"><medium type="homogeneous" name="interior"><float name="sigma_s" value="-1"/></medium>'
     '</shape>', "sigma_s must be >= 0"),
    ('<shape type="cube"><medium type="homogeneous" name="interior"><phase type="hg"><float name="g" value="1"/>'
     '</phase></medium></shape>', r"g must be a finite number in \(-1.0, 1.0\)"),
    ('<camera/>', r"unknown element <camera> in <scene>"),
    ('<shape type="cube"><colour name="x"/></shape>', r"unknown element <colour> inside <shape type='cube'>"),
])
def test_unknown_plugins_and_elements_name_the_element_type_and_line(tmp_path, body, match):
    with pytest.raises(MitsubaXmlError, match=match):
        _scene(tmp_path, body)


@pytest.mark.parametrize("spectrum,match", [
    ('<spectrum name="reflectance" filename="white.spd"/>', "spectra from files and spectrum plugins are not"),
    ('<spectrum name="reflectance" type="blackbody"><float name="temperature" value="5000"/></spectrum>',
     "spectra from files and spectrum plugins"),
    ('<spectrum name="reflectance" value="500:0.5, 400:0.5"/>', "wavelengths must increase"),
])
def test_spectra_from_files_and_plugins_are_refused(tmp_path, spectrum, match):
    with pytest.raises(MitsubaXmlError, match=match):
        _material(tmp_path, f'<bsdf type="diffuse">{spectrum}</bsdf>')


def test_inline_spectra_convert_as_mitsubas_rgb_variants_do():
    # values printed by mitsuba.spectrum_list_to_srgb (Mitsuba 3.9, scalar_rgb)
    assert spectrum_to_rgb([400, 500, 600, 700], [0.78] * 4, reflectance=True).tolist() == \
        pytest.approx([0.776368, 0.779809, 0.776029], abs=2e-6)
    assert spectrum_to_rgb([400, 500, 600, 700], [0, 8, 15.6, 18.4], reflectance=False).tolist() == \
        pytest.approx([20.7108, 10.8546, 2.77115], rel=1e-5)


@pytest.mark.parametrize("prolog", [
    '<!DOCTYPE scene [<!ENTITY a "aaaa">]>',
    '<!DOCTYPE scene SYSTEM "file:///etc/passwd">',
    '<!doctype scene>',
])
def test_doctype_and_entities_are_refused_before_parsing(tmp_path, prolog):
    path = tmp_path / "evil.xml"
    path.write_text(f'<?xml version="1.0"?>\n{prolog}\n<scene version="3.0.0"><shape type="cube"/></scene>')
    with pytest.raises(MitsubaXmlError, match=r"evil\.xml:2: a <!(DOCTYPE|ENTITY)> declaration is refused"):
        read_mitsuba_xml(path)


def test_doctype_hidden_from_the_byte_scan_is_refused_by_the_parser(tmp_path):
    path = tmp_path / "utf16.xml"
    path.write_bytes('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE scene [<!ENTITY a "b">]>\n'
                     '<scene version="3.0.0"/>'.encode("utf-16"))
    with pytest.raises(MitsubaXmlError, match="DTD and entity declarations are refused"):
        read_mitsuba_xml(path)


def test_deep_nesting_is_refused_before_it_recurses(tmp_path):
    path = tmp_path / "deep.xml"
    path.write_text('<scene version="3.0.0">' + '<bsdf type="twosided">' * 5000 + '</bsdf>' * 5000 + '</scene>')
    with pytest.raises(MitsubaXmlError, match=r"deep\.xml:1: elements nested more than 64 deep"):
        read_mitsuba_xml(path)


def test_malformed_xml_names_the_line(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text('<scene version="3.0.0">\n<shape type="cube">\n</scene>')
    with pytest.raises(MitsubaXmlError, match=r"bad\.xml:3: not well-formed XML \(mismatched tag"):
        read_mitsuba_xml(path)


def test_missing_files_and_files_outside_the_folder(tmp_path):
    inner = tmp_path / "scenes"
    (tmp_path / "outside.obj").write_text(QUAD_OBJ)
    path = _write(inner, '<shape type="obj">\n<string name="filename" value="nothere.obj"/></shape>')
    with pytest.raises(FileNotFoundError, match=r"scene\.xml:3 <shape type='obj'>: obj filename 'nothere.obj' does "
                                                "not exist") as info:
        read_mitsuba_xml(path)
    assert isinstance(info.value, MitsubaXmlError)
    path = _write(inner, '<shape type="obj" id="o"><string name="filename" value="../outside.obj"/></shape>')
    with pytest.raises(ConfinementError, match="points outside the file's folder") as info:
        read_mitsuba_xml(path)
    assert isinstance(info.value, MitsubaXmlError)
    assert read_mitsuba_xml(path, trust_paths=True).meshes["o"].verts.shape == (4, 3)
    assert lg.io.load(path, trust_paths=True).meshes["o"].faces.shape == (2, 3)
    with pytest.raises(ConfinementError):
        lg.io.load(path)


def test_includes_resolve_against_the_main_folder_refuse_cycles_and_escapes(tmp_path):
    (tmp_path / "geometry").mkdir()
    (tmp_path / "geometry" / "quad.obj").write_text(QUAD_OBJ)
    _write(tmp_path, '<bsdf type="diffuse" id="white"/>', "parts/bsdfs.xml")
    # names inside an included file are relative to the main file's folder, as in the Cornell box
    _write(tmp_path, '<include filename="parts/bsdfs.xml"/><shape type="obj" id="quad">'
                     '<string name="filename" value="geometry/quad.obj"/><ref id="white"/></shape>', "parts/shapes.xml")
    scene = _scene(tmp_path, '<include filename="parts/shapes.xml"/>')
    assert list(scene.meshes) == ["quad"]
    _write(tmp_path, '<include filename="b.xml"/>', "a.xml")
    _write(tmp_path, '<include filename="a.xml"/>', "b.xml")
    with pytest.raises(MitsubaXmlError, match="cyclic <include>: a.xml -> b.xml -> a.xml"):
        read_mitsuba_xml(tmp_path / "a.xml")
    with pytest.raises(ConfinementError):
        _scene(tmp_path / "parts", '<include filename="../a.xml"/>')


def test_old_versions_get_mitsubas_camel_case_upgrade(tmp_path):
    path = _write(tmp_path, '''<sensor type="perspective" id="cam"><float name="fov" value="40"/>
        <string name="fovAxis" value="y"/><transform name="toWorld"><lookAt origin="0,0,1" target="0,0,0" up="0,1,0"/>
        </transform><film type="hdrfilm"><integer name="width" value="20"/><integer name="height" value="10"/></film>
        </sensor><shape type="rectangle" id="r"><bsdf type="plastic"><float name="intIOR" value="1.7"/>
        <srgb name="diffuseReflectance" value="0.5, 0.25, 0.125"/></bsdf></shape>''', version="0.6.0")
    scene, notes = _read(path)
    assert notes == []
    assert float(scene.cameras["cam"].K[1, 1]) == pytest.approx(5 / math.tan(math.radians(20)), rel=1e-6)
    assert _f(scene.cameras["cam"].world_to_cam[2, :3]) == pytest.approx([0, 0, -1])
    m = scene.meshes["r"].material
    assert float(m.ior) == pytest.approx(1.7 / 1.000277) and _f(m.base_color_factor)[:3] == [0.5, 0.25, 0.125]


def test_what_is_not_read_is_named_in_one_warning(tmp_path):
    path = _write(tmp_path, '''
        <emitter type="area" id="unused"/>
        <shape type="rectangle" id="lamp"><bsdf type="diffuse"/><emitter type="area"/></shape>
        <shape type="rectangle" id="r"><bsdf type="principled"><float name="clearcoat" value="1"/>
            <float name="diff_trans" value="0.5"/></bsdf><float name="mystery" value="3"/></shape>''')
    scene, notes = _read(path)
    assert len(notes) == 1
    for part in ["the BSDF of an emitting shape (it becomes an AreaLight only) (<shape type='rectangle' id='lamp'> at "
                 "scene.xml:5)", "principled diff_trans (not modelled)",
                 "property 'mystery' of shape 'rectangle' (<shape type='rectangle' id='r'> at scene.xml:6)",
                 "area emitters that no shape uses (<emitter type='area' id='unused'> at scene.xml:4)"]:
        assert part in notes[0], part
    assert list(scene.lights) == ["lamp"] and list(scene.meshes) == ["r"]


# ------------------------------------------------------------------------------------------ Cornell box
needs_cornell = pytest.mark.skipif(not CORNELL.exists(), reason="shared/data/cornell-box-mitsuba3 is not available")


@needs_cornell
def test_cornell_box_loads_and_renders():
    scene, notes = _read(CORNELL)
    assert list(scene.meshes) == ["floor", "ceiling", "back_wall", "right_wall", "left_wall", "short_block",
                                  "tall_block"]
    assert list(scene.lights) == ["light"] and isinstance(scene.lights["light"], lg.AreaLight)
    light = scene.lights["light"]
    assert _f(light.radiance) == pytest.approx([20.7108, 10.8546, 2.77115], rel=1e-4)  # the spectral lamp in sRGB
    assert float(light.verts[:, 1].min()) == pytest.approx(548.7)  # light.obj at y = 548.8, translated by -0.1
    v = light.verts[light.faces[0]]
    assert float(torch.linalg.cross(v[1] - v[0], v[2] - v[0])[1]) < 0  # it shines down
    white, red, green = (scene.meshes[n].material.base_color_factor[:3] for n in ("floor", "left_wall", "right_wall"))
    assert float(red[0]) > 5 * float(red[1]) and float(green[1]) > 3 * float(green[0])
    assert _f(white) == pytest.approx([0.735, 0.736, 0.736], abs=2e-3)
    cam = scene.cameras["sensor"]
    assert (cam.width, cam.height, cam.near, cam.far) == (256, 256, 10.0, 2800.0)
    # fov 39.3077 degrees on the smaller axis of a square film
    assert float(cam.K[0, 0]) == pytest.approx(128 / math.tan(math.radians(39.3077 / 2)), rel=1e-6)
    uv, depth = cam.project(torch.tensor([[278.0, 273.0, 0.0]]))
    assert _f(uv[0]) == pytest.approx([128.0, 128.0]) and float(depth[0]) == pytest.approx(800.0)
    assert scene.metadata["integrator"] == {"type": "volpathmis", "max_depth": 6}
    assert scene.metadata["sensors"]["sensor"]["sampler"] == {"type": "stratified", "sample_count": 256}
    assert notes and "the BSDF of an emitting shape" in notes[0]
    out = lg.render(scene, scene.cameras["sensor"], integrator="raster")
    assert out.rgb.shape == (256, 256, 3) and bool(torch.isfinite(out.rgb).all())
    assert float(out.rgb.mean()) > 0 and float(out.alpha.mean()) > 0.9
    # the red wall is on the left of the image, the green one on the right
    left, right = out.rgb[128, 5], out.rgb[128, 250]
    assert float(left[0]) > float(left[1]) and float(right[1]) > float(right[0])


@needs_cornell
def test_cornell_box_parameters_override_the_defaults():
    scene, _ = _read(CORNELL, parameters={"width": 64, "height": 48, "spp": 4})
    cam = scene.cameras["sensor"]
    assert (cam.width, cam.height) == (64, 48)
    assert scene.metadata["sensors"]["sensor"]["sampler"]["sample_count"] == 4


# ----------------------------------------------------------------------------------- against Mitsuba 3
def _mitsuba():
    return mitsuba_scalar()


def test_camera_projection_matches_mitsuba(tmp_path):
    mi = _mitsuba()
    sensor = '''<sensor type="perspective" id="cam"><float name="fov" value="50"/>
        <string name="fov_axis" value="{axis}"/><float name="principal_point_offset_x" value="0.1"/>
        <float name="principal_point_offset_y" value="-0.05"/>
        <transform name="to_world"><lookat origin="1, 2, 3" target="0, 0.2, 0" up="0, 1, 0"/>
        <rotate z="1" angle="10"/><translate x="0.5"/></transform>
        <film type="hdrfilm"><integer name="width" value="64"/><integer name="height" value="48"/></film></sensor>'''
    points = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, -0.2], [-0.4, 0.5, 0.2], [0.2, -0.3, 0.4]], dtype=torch.float64)
    for axis in ("x", "y", "diagonal", "smaller"):
        path = _write(tmp_path, sensor.format(axis=axis))
        cam = read_mitsuba_xml(path, dtype=torch.float64).cameras["cam"]
        uv, _ = cam.project(points)
        ref = mi.load_file(str(path)).sensors()[0]
        for p, ours in zip(points.tolist(), uv.tolist()):
            it = mi.Interaction3f()
            it.p = mi.Point3f(*p)
            ds, _ = ref.sample_direction(it, mi.Point2f(0.5, 0.5))
            assert ours == pytest.approx([float(ds.uv[0]), float(ds.uv[1])], abs=2e-3), (axis, p)


_ORTHO = ('<sensor type="orthographic" id="cam"><transform name="to_world"><scale x="1.5" y="0.8"/>'
          '<lookat origin="1, 2, -3" target="0, 0.2, 0" up="0, 1, 0"/></transform><film type="hdrfilm">'
          '<integer name="width" value="40"/><integer name="height" value="30"/></film></sensor>')


def test_an_orthographic_sensor_sees_its_scaled_square(tmp_path):
    """Mitsuba's ``orthographic`` sees camera x in ``[-1, 1]`` and y in ``[-1 / aspect, 1 / aspect]`` across the
    film, scaled by its ``to_world``'s scale: 40 pixels over 3 world units in x, over 1.6 in y."""
    cam = _scene(tmp_path, _ORTHO, dtype=torch.float64).cameras["cam"]
    assert cam.projection == "orthographic"
    assert float(cam.K[0, 0]) == pytest.approx(40 / 3.0) and float(cam.K[1, 1]) == pytest.approx(40 / 1.6)
    assert (float(cam.K[0, 2]), float(cam.K[1, 2])) == (20.0, 15.0)
    scene = _scene(tmp_path, _ORTHO + '<shape type="rectangle"><transform name="to_world"><scale value="0.2"/>'
                             '<translate y="0.2"/></transform><emitter type="area"><rgb name="radiance" value="1"/>'
                             '</emitter></shape>')
    out = lg.render(scene, scene.cameras["cam"], integrator="path", spp=1)
    assert out.rgb.shape == (30, 40, 3)


def test_an_orthographic_sensors_rays_are_mitsubas(tmp_path):
    mi = _mitsuba()
    path = _write(tmp_path, _ORTHO)
    sensor = mi.load_file(str(path)).sensors()[0]
    cam = read_mitsuba_xml(path, dtype=torch.float64).cameras["cam"]
    c2w = torch.linalg.inv(cam.world_to_cam)
    forward = c2w[:3, 2].numpy()
    for sx, sy in ((0.5, 0.5), (0.1, 0.2), (0.9, 0.75), (0.0, 1.0)):
        ray, _ = sensor.sample_ray(0.0, 0.5, mi.Point2f(sx, sy), mi.Point2f(0.5, 0.5))
        origin = np.array([float(c) for c in ray.o])
        u, v = sx * 40, sy * 30
        ours = (c2w @ torch.tensor([(u - float(cam.K[0, 2])) / float(cam.K[0, 0]),
                                    (v - float(cam.K[1, 2])) / float(cam.K[1, 1]), 0.0, 1.0], dtype=torch.float64))
        offset = origin - ours[:3].numpy()
        lateral = offset - np.dot(offset, forward) * forward  # (Mitsuba's rays start at the near clip plane)
        assert np.abs(lateral).max() < 1e-5, (sx, sy)
        assert [float(c) for c in ray.d] == pytest.approx(forward.tolist(), abs=1e-6)


_THIN_LENS = ('<sensor type="thinlens" id="cam"><float name="fov" value="45"/><float name="aperture_radius" value="0.3"/>'
              '<float name="focus_distance" value="2.5"/><transform name="to_world"><lookat origin="1, 2, -3" '
              'target="0, 0.2, 0" up="0, 1, 0"/></transform><film type="hdrfilm"><integer name="width" value="40"/>'
              '<integer name="height" value="30"/></film></sensor>')


def test_a_thinlens_sensors_rays_are_mitsubas(tmp_path):
    """Each of Mitsuba's thin-lens rays (film sample, aperture sample) is lumigrad's ray of that pixel and the
    mirrored aperture sample (Mitsuba's camera x and y point the other way: its concentric disk point is ours
    mirrored through the centre)."""
    mi = _mitsuba()
    path = _write(tmp_path, _THIN_LENS)
    sensor = mi.load_file(str(path)).sensors()[0]
    cam = read_mitsuba_xml(path, dtype=torch.float64).cameras["cam"]
    assert cam.thin_lens and float(cam.aperture_radius) == 0.3 and float(cam.focus_distance) == 2.5
    c2w = torch.linalg.inv(cam.world_to_cam)
    for (sx, sy), (ax, ay) in zip(((0.5, 0.5), (0.1, 0.2), (0.9, 0.75), (0.3, 0.95)),
                                  ((0.5, 0.5), (0.9, 0.3), (0.2, 0.6), (0.05, 0.99))):
        ray, _ = sensor.sample_ray(0.0, 0.5, mi.Point2f(sx, sy), mi.Point2f(ax, ay))
        uv = torch.tensor([sx * 40, sy * 30], dtype=torch.float64)
        o, d = cam.ray_origins_directions(uv, torch.tensor([1 - ax, 1 - ay], dtype=torch.float64))
        o_w, d_w = (c2w[:3, :3] @ o + c2w[:3, 3]).numpy(), (c2w[:3, :3] @ d).numpy()
        d_w = d_w / np.linalg.norm(d_w)
        assert [float(c) for c in ray.d] == pytest.approx(d_w.tolist(), abs=1e-5), ((sx, sy), (ax, ay))
        offset = np.array([float(c) for c in ray.o]) - o_w  # (Mitsuba's rays start at the near clip plane)
        assert np.abs(offset - np.dot(offset, d_w) * d_w).max() < 1e-5, ((sx, sy), (ax, ay))


def test_a_thinlens_sensor_needs_its_aperture_and_focuses_at_the_far_clip_by_default(tmp_path):
    with pytest.raises(MitsubaXmlError, match="aperture_radius"):
        _scene(tmp_path, _THIN_LENS.replace('<float name="aperture_radius" value="0.3"/>', ''))
    cam = _scene(tmp_path, _THIN_LENS.replace('<float name="focus_distance" value="2.5"/>',
                                              '<float name="far_clip" value="50"/>')).cameras["cam"]
    assert float(cam.focus_distance) == 50.0 and float(cam.aperture_radius) == pytest.approx(0.3)


def test_shape_transforms_match_mitsuba(tmp_path):
    mi = _mitsuba()
    path = _write(tmp_path, '''<shape type="rectangle" id="r"><transform name="to_world">
        <scale x="2" y="0.5"/><rotate value="1, 1, 0" angle="33"/><translate value="1 -2 3"/>
        <lookat origin="0.5, 1, -2" target="0, 0, 1"/><matrix value="1 0 0.2 0  0 1 0 0.1  0 0 1 0  0 0 0 1"/>
        </transform></shape>''')
    ours = read_mitsuba_xml(path, dtype=torch.float64).meshes["r"].world_verts()
    params = mi.traverse(mi.load_file(str(path)).shapes()[0])
    if "vertex_positions" in params:
        theirs = torch.tensor(np.array(params["vertex_positions"]), dtype=torch.float64).reshape(-1, 3)
    else:  # an analytic rectangle: its corners through its to_world
        M = torch.tensor(np.array(params["to_world"].matrix), dtype=torch.float64)
        corners = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=torch.float64)
        theirs = corners @ M[:3, :3].T + M[:3, 3]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_envmap_matches_mitsuba_in_world_directions(tmp_path):
    mi = _mitsuba()
    texels = torch.rand(8, 16, 3, generator=torch.Generator().manual_seed(1)) + 0.05
    lg.io.write_exr(tmp_path / "sky.exr", texels, pixel_type="float")
    path = _write(tmp_path, '<emitter type="envmap" id="sky"><string name="filename" value="sky.exr"/>'
                            '<transform name="to_world"><rotate y="1" angle="90"/></transform></emitter>')
    ours = read_mitsuba_xml(path, env_size=None, dtype=torch.float64).lights["sky"]
    emitter = mi.load_file(str(path)).emitters()[0]
    for i, j in [(2, 3), (5, 11), (1, 8), (6, 0), (0, 5), (7, 15)]:
        d = _texel_direction(i, j, 8, 16)  # lumigrad's texel centres, where the resampled map is exact
        si = mi.SurfaceInteraction3f()
        si.wi = mi.Vector3f(*(-d).tolist())
        theirs = [float(c) for c in emitter.eval(si)]
        assert _f(envmap_lookup(ours.texels, d)) == pytest.approx(theirs, rel=1e-4, abs=1e-5), (i, j)


def test_spot_and_point_emitters_match_mitsuba_at_points(tmp_path):
    """The irradiance a ``spot`` (its linear edge in the angle, the beam width's full cone, the cutoff) and a
    ``point`` deliver at points in and around the cone: lumigrad's light samples against Mitsuba's own
    ``sample_direction`` weights."""
    mi = _mitsuba()
    path = _write(tmp_path, '''
        <emitter type="spot"><float name="cutoff_angle" value="35"/><float name="beam_width" value="12"/>
            <rgb name="intensity" value="3, 2, 1"/>
            <transform name="to_world"><lookat origin="0.3, 2, -0.1" target="0.5, 0, 0.2" up="0, 0, 1"/></transform>
        </emitter>
        <emitter type="spot"><transform name="to_world"><rotate x="1" angle="90"/><translate y="1"/></transform>
        </emitter>
        <emitter type="point"><point name="position" x="-1" y="1.5" z="0.5"/><rgb name="intensity" value="2, 1, 1"/>
        </emitter>''')
    ours = list(read_mitsuba_xml(path, dtype=torch.float64).lights.values())
    theirs = mi.load_file(str(path)).emitters()
    g = torch.Generator().manual_seed(3)
    points = torch.cat([torch.rand(200, 3, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.2, 3.0])
                        - torch.tensor([1.0, 0.1, 1.2])])
    lit = 0
    for light, emitter in zip(ours, theirs):
        L = light.samples(points)[0].L
        for p, value in zip(points.tolist(), L.tolist()):
            it = mi.Interaction3f()
            it.p = mi.Point3f(*p)
            _, weight = emitter.sample_direction(it, mi.Point2f(0.5, 0.5))
            assert value == pytest.approx([float(c) for c in weight], rel=1e-4, abs=1e-6), (type(light), p)
            lit += value[0] > 0
    assert 100 < lit < 500  # points inside, on the edge of and outside the cones


def test_a_checkerboard_floor_renders_as_in_mitsuba(tmp_path):
    """The same file rendered by both (``direct``, a diffuse rectangle with a transformed ``checkerboard`` under a
    constant sky of radiance 1, so each pixel shows its albedo): the cells' colours, places and orientation.
    The cells' edges inside pixels are the only noise. Measured: rrmse 0.013 at 1024 spp against Mitsuba's 4096
    (means within 0.01 %); 4 x 4 blocks 0.004."""
    mi = _mitsuba()
    path = _write(tmp_path, f'''<integrator type="direct"/>
        <sensor type="perspective"><float name="fov" value="45"/>
            <transform name="to_world"><lookat origin="0.3, 2.5, -2" target="0, 0, 0" up="0, 1, 0"/></transform>
            <sampler type="independent"><integer name="sample_count" value="4096"/></sampler>
            <film type="hdrfilm"><integer name="width" value="32"/><integer name="height" value="32"/>
            <rfilter type="box"/></film></sensor>
        <emitter type="constant"><rgb name="radiance" value="1"/></emitter>
        <shape type="rectangle"><transform name="to_world"><rotate x="1" angle="-90"/><scale value="1.5"/>
            </transform><bsdf type="twosided"><bsdf type="diffuse">{_CHECKER}</bsdf></bsdf></shape>''')
    theirs = np.array(mi.render(mi.load_file(str(path)), seed=0), dtype=np.float64)[..., :3]
    scene = read_mitsuba_xml(path)
    settings = {**lg.io.mitsuba_render_settings(scene), "spp": 1024}
    with torch.no_grad():
        ours = lg.render(scene, **settings).rgb.double().numpy()
    err = float(np.sqrt(np.mean((ours - theirs) ** 2)) / np.mean(theirs))
    assert err < 0.02, err
    plain_path = tmp_path / "plain.xml"
    plain_path.write_text(path.read_text().replace('<transform name="to_uv">', '<transform name="unused">'))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MitsubaXmlWarning)  # (the unused transform is named)
        plain = read_mitsuba_xml(plain_path)
    with torch.no_grad():
        moved = lg.render(plain, **{**lg.io.mitsuba_render_settings(plain), "spp": 64}).rgb.double().numpy()
    assert float(np.sqrt(np.mean((moved - theirs) ** 2)) / np.mean(theirs)) > 0.2  # to_uv matters here


_CYLINDER = ('<shape type="cylinder"><point name="p0" x="0.2" y="-0.3" z="0.1"/><point name="p1" x="0.5" y="0.8" '
             'z="-0.4"/><float name="radius" value="0.4"/><transform name="to_world"><rotate x="1" angle="30"/>'
             '<translate x="0.3"/></transform></shape>')


def test_a_cylinder_is_an_open_tube_with_outward_normals(tmp_path):
    """``cylinder``: every vertex at ``radius`` from the axis between ``p0`` and ``p1``, faces and vertex normals
    outward, no caps, texture coordinates ``(phi / 2 pi, z)``; a zero-length axis is refused."""
    m = _scene(tmp_path, _CYLINDER, dtype=torch.float64, disk_segments=32).meshes["cylinder"]
    p0, p1 = torch.tensor([0.2, -0.3, 0.1], dtype=torch.float64), torch.tensor([0.5, 0.8, -0.4], dtype=torch.float64)
    axis = (p1 - p0) / (p1 - p0).norm()
    rel = m.verts - p0
    along = rel @ axis
    radial = rel - along[:, None] * axis
    torch.testing.assert_close(radial.norm(dim=-1), torch.full((m.verts.shape[0],), 0.4, dtype=torch.float64))
    assert sorted(set(torch.round(along / (p1 - p0).norm(), decimals=9).tolist())) == [0.0, 1.0]  # no caps
    torch.testing.assert_close(m.normals, radial / 0.4)
    e1, e2 = m.verts[m.faces[:, 1]] - m.verts[m.faces[:, 0]], m.verts[m.faces[:, 2]] - m.verts[m.faces[:, 0]]
    centre = m.verts[m.faces].mean(1) - p0
    outward = (torch.linalg.cross(e1, e2) * (centre - (centre @ axis)[:, None] * axis)).sum(-1)
    assert bool((outward > 0).all()) and m.faces.shape[0] == 64
    assert m.uv[:, 1].unique().tolist() == [0.0, 1.0] and float(m.uv[:, 0].max()) == 1.0
    with pytest.raises(MitsubaXmlError, match="p0 != p1"):
        _scene(tmp_path, '<shape type="cylinder"><point name="p1" x="0" y="0" z="0"/></shape>')


def test_a_cylinder_lies_on_mitsubas_with_its_normals_and_texture_coordinates(tmp_path):
    mi = _mitsuba()
    path = _write(tmp_path, _CYLINDER)
    ours = read_mitsuba_xml(path, dtype=torch.float64).meshes["cylinder"]
    theirs = mi.load_file(str(path))
    world = ours.world_verts()
    normals = torch.nn.functional.normalize(ours.normals @ ours.to_world[:3, :3].T, dim=-1)
    hits = 0
    for i in range(0, world.shape[0], 7):
        p, n = world[i].numpy(), normals[i].numpy()
        si = theirs.ray_intersect(mi.Ray3f(mi.Point3f(*(p + 0.5 * n)), mi.Vector3f(*(-n))))
        if not np.isfinite(float(si.t)):
            continue  # on the rim, a ray may slip past in float32
        hits += 1
        assert float(si.t) == pytest.approx(0.5, abs=1e-4)
        assert [float(c) for c in si.n] == pytest.approx(n.tolist(), abs=1e-4)
        u = float(ours.uv[i, 0])
        assert min(abs(float(si.uv[0]) - u), 1 - abs(float(si.uv[0]) - u)) < 1e-4  # (the seam: 0 and 1)
        assert float(si.uv[1]) == pytest.approx(float(ours.uv[i, 1]), abs=1e-4)
    assert hits > 10


def test_homogeneous_interiors_become_material_media(tmp_path):
    """A shape's ``interior``: Mitsuba 3's ``sigma_t``, ``albedo``, ``scale`` (by reference) or Mitsuba 0.6's
    ``sigma_a``, ``sigma_s`` (inline), with an ``hg`` phase; each shape gets its own material."""
    scene, warned = _read(_write(tmp_path, '''
        <medium type="homogeneous" id="milk"><rgb name="sigma_t" value="1, 2, 4"/><float name="scale" value="2"/>
            <rgb name="albedo" value="0.9, 0.8, 0.5"/><phase type="hg"><float name="g" value="0.5"/></phase></medium>
        <bsdf type="dielectric" id="glass"><float name="int_ior" value="1.33"/></bsdf>
        <shape type="sphere" id="ball"><ref id="glass"/><ref name="interior" id="milk"/></shape>
        <shape type="cube" id="box"><ref id="glass"/><medium type="homogeneous" name="interior">
            <rgb name="sigma_a" value="0.1"/><rgb name="sigma_s" value="0.5"/></medium></shape>
        <shape type="cube" id="plain"><ref id="glass"/></shape>'''))
    assert warned == []  # everything read
    ball, box, plain = (scene.meshes[n].material for n in ("ball", "box", "plain"))
    assert ball.interior.sigma_a.tolist() == pytest.approx([0.2, 0.8, 4.0])
    assert ball.interior.sigma_s.tolist() == pytest.approx([1.8, 3.2, 4.0])
    assert float(ball.interior.g) == 0.5
    assert box.interior.sigma_a.tolist() == pytest.approx([0.1] * 3) and float(box.interior.g) == 0.0
    assert plain.interior is None and float(ball.ior) == pytest.approx(1.33 / 1.000277)  # int_ior / air
    assert "meshes.ball.material.interior.g" in scene.parameters()


def test_exterior_media_and_the_sensors_medium_are_read(tmp_path):
    """A shape's ``exterior`` (inline or by reference) becomes its material's ``exterior``, the sensor's medium
    (any name, as Mitsuba reads it) ``scene.medium``; a medium referenced twice is one object (so the water
    inside the glass and around the marble is one set of parameters). With a sensor medium, a shape with an
    interior but no exterior is named in the warning (Mitsuba enters vacuum leaving it, lumigrad the sensor's
    medium)."""
    scene, warned = _read(_write(tmp_path, '''
        <medium type="homogeneous" id="fog"><rgb name="sigma_t" value="0.1"/><rgb name="albedo" value="0.5"/></medium>
        <medium type="homogeneous" id="water"><rgb name="sigma_a" value="0.1, 0.2, 0.3"/>
            <rgb name="sigma_s" value="0"/></medium>
        <bsdf type="dielectric" id="glass"><float name="int_ior" value="1.33"/></bsdf>
        <shape type="cube" id="jar"><ref id="glass"/><ref name="interior" id="water"/><ref name="exterior" id="fog"/>
        </shape>
        <shape type="sphere" id="marble"><ref id="glass"/><ref name="exterior" id="water"/>
            <medium type="homogeneous" name="interior"><rgb name="sigma_t" value="2"/></medium></shape>
        <shape type="cube" id="ice"><ref id="glass"/><ref name="interior" id="water"/></shape>
        <sensor type="perspective"><ref id="fog"/></sensor>'''))
    jar, marble, ice = (scene.meshes[n].material for n in ("jar", "marble", "ice"))
    assert scene.medium is jar.exterior and jar.interior is marble.exterior is ice.interior
    assert scene.medium.sigma_a.tolist() == pytest.approx([0.05] * 3)
    assert marble.exterior.sigma_a.tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert marble.interior.sigma_s.tolist() == pytest.approx([1.5] * 3) and ice.exterior is None
    assert {"medium.sigma_a", "meshes.marble.material.exterior.sigma_a"} <= set(scene.parameters())
    assert len(warned) == 1 and "interior but no exterior" in warned[0] and "id='ice'" in warned[0]
    assert "id='jar'" not in warned[0] and "id='marble'" not in warned[0]


def test_an_unused_medium_is_named_in_the_warning(tmp_path):
    _, warned = _read(_write(tmp_path, '<medium type="homogeneous" id="fog"/><shape type="cube"/>'))
    assert len(warned) == 1 and "media that no shape uses (<medium type='homogeneous' id='fog'>" in warned[0]
