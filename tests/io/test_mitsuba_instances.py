"""Mitsuba scene files with ``serialized`` shapes and ``shapegroup`` / ``instance`` instancing: names, transforms,
refusals, and (when Mitsuba 3 is importable) the world-space geometry against Mitsuba's own ray intersections."""

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import MitsubaXmlError, read_mitsuba_xml
from lumigrad.io.serialized import SerializedMesh, write_serialized_shapes

from ..conftest import mitsuba_scalar
from .test_mitsuba_xml import _read, _scene, _write

TETRA = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
TETRA_FACES = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _serialized(folder, name="m.serialized"):
    """Two meshes: a unit tetrahedron named ``tetra`` (with normals and texture coordinates) and an unnamed pair
    of its faces at a third of the size."""
    normals = torch.nn.functional.normalize(TETRA - 0.25, dim=-1)
    write_serialized_shapes(folder / name, [
        SerializedMesh(verts=TETRA, faces=TETRA_FACES, normals=normals, uv=TETRA[:, :2], name="tetra"),
        SerializedMesh(verts=TETRA / 3.0, faces=TETRA_FACES[:2])])
    return folder / name


def test_serialized_shapes_by_index_named_by_the_file_with_face_normals(tmp_path):
    _serialized(tmp_path)
    scene, warned = _read(_write(tmp_path, '''
        <shape type="serialized"><string name="filename" value="m.serialized"/></shape>
        <shape type="serialized"><string name="filename" value="m.serialized"/>
            <integer name="shape_index" value="1"/><boolean name="face_normals" value="true"/></shape>
        <shape type="serialized" id="again"><string name="filename" value="m.serialized"/>
            <transform name="to_world"><translate x="3"/></transform></shape>'''), dtype=torch.float64)
    assert sorted(scene.meshes) == ["again", "m", "tetra"] and not warned
    tetra, pair, again = scene.meshes["tetra"], scene.meshes["m"], scene.meshes["again"]
    assert torch.equal(tetra.verts, TETRA) and torch.equal(tetra.faces, TETRA_FACES)
    torch.testing.assert_close(tetra.normals, torch.nn.functional.normalize(TETRA - 0.25, dim=-1))
    assert torch.equal(tetra.uv, TETRA[:, :2])  # Mitsuba's coordinates, lumigrad's origin: as stored
    assert pair.normals is None and pair.faces.shape == (2, 3) and pair.verts.shape == (6, 3)  # flat: unwelded
    torch.testing.assert_close(pair.verts, (TETRA / 3.0)[TETRA_FACES[:2]].reshape(-1, 3))
    assert again.to_world[0, 3] == 3.0


@pytest.mark.parametrize("body, match", [
    ('<shape type="serialized"/>', "needs a <string name=\"filename\">"),
    ('<shape type="serialized"><string name="filename" value="m.serialized"/><integer name="shape_index" '
     'value="2"/></shape>', "shape_index 2 is out of range"),
    ('<shape type="serialized"><string name="filename" value="m.serialized"/><integer name="shape_index" '
     'value="-1"/></shape>', "shape_index must be >= 0"),
    ('<shape type="serialized"><string name="filename" value="bad.serialized"/></shape>', "not a Mitsuba serialized"),
    ('<shape type="shapegroup" id="g"><shape type="cube"/></shape><shape type="instance"/>', "exactly one shapegroup"),
    ('<shape type="cube" id="c"/><shape type="instance"><ref id="c"/></shape>', "exactly one shapegroup"),
    ('<shape type="shapegroup" id="g"/><shape type="instance"><ref id="g"/></shape>', "holds no shapes"),
    ('<shape type="shapegroup" id="g"><shape type="shapegroup"><shape type="cube"/></shape></shape>'
     '<shape type="instance"><ref id="g"/></shape>', "nested instancing"),
    ('<shape type="shapegroup" id="g"><shape type="cube"><emitter type="area"><rgb name="radiance" value="1"/>'
     '</emitter></shape></shape><shape type="instance"><ref id="g"/></shape>', "instanced emitters"),
])
def test_bad_serialized_shapes_and_instances_are_refused_naming_the_element(tmp_path, body, match):
    _serialized(tmp_path)
    (tmp_path / "bad.serialized").write_bytes(b"\x00\x01\x02\x03\x04\x05\x06\x07")
    with pytest.raises(MitsubaXmlError, match=match):
        _scene(tmp_path, body)


_GROUP = '''
    <bsdf type="diffuse" id="red"><rgb name="reflectance" value="0.8, 0.1, 0.1"/></bsdf>
    <shape type="shapegroup" id="pair">
        <shape type="serialized"><string name="filename" value="m.serialized"/><ref id="red"/>
            <transform name="to_world"><rotate z="1" angle="20"/><translate y="0.5"/></transform></shape>
        <shape type="cube" id="box"><transform name="to_world"><scale value="0.25"/><translate x="2"/></transform>
        </shape>
    </shape>
    <shape type="instance" id="left"><ref id="pair"/>
        <transform name="to_world"><rotate y="1" angle="35"/><scale value="1.5"/><translate x="-2" z="1"/></transform>
    </shape>
    <shape type="instance"><ref id="pair"/><transform name="to_world"><translate z="-1"/></transform></shape>
    <shape type="instance"><ref id="pair"/><transform name="to_world"><matrix value="0.8 0 0.1 0.5  0 1.2 0 -1
        0 0 1 0.3  0 0 0 1"/></transform></shape>'''


def test_instances_copy_the_groups_shapes_with_composed_transforms_and_names(tmp_path):
    _serialized(tmp_path)
    scene, warned = _read(_write(tmp_path, _GROUP + '<shape type="shapegroup" id="unused"><shape type="cube"/>'
                                                    '</shape>'), dtype=torch.float64)
    assert sorted(scene.meshes) == ["instance-1-box", "instance-1-tetra", "instance-box", "instance-tetra",
                                    "left-box", "left-tetra"]
    assert any("shapegroups that no instance uses" in w and "unused" in w for w in warned)
    assert not any("property" in w for w in warned)  # (each instance's copy read its shapes' properties)
    left, plain = scene.meshes["left-tetra"], scene.meshes["instance-tetra"]
    assert left.material is plain.material and float(left.material.base_color_factor[0]) == pytest.approx(0.8)
    assert torch.equal(left.verts, plain.verts)  # the same local vertices (copies); the instance is in to_world
    c, s = np.cos(np.radians(20.0)), np.sin(np.radians(20.0))
    child = np.array([[c, -s, 0, 0], [s, c, 0, 0.5], [0, 0, 1, 0], [0, 0, 0, 1]])  # rotate z 20, then translate y
    parent = np.eye(4)
    parent[2, 3] = -1.0
    np.testing.assert_allclose(plain.to_world.numpy(), parent @ child, atol=1e-12)
    matrix = np.array([[0.8, 0, 0.1, 0.5], [0, 1.2, 0, -1], [0, 0, 1, 0.3], [0, 0, 0, 1]])
    np.testing.assert_allclose(scene.meshes["instance-1-tetra"].to_world.numpy(), matrix @ child, atol=1e-12)
    box = scene.meshes["instance-box"].world_verts()
    torch.testing.assert_close(box.mean(0), torch.tensor([2.0, 0.0, -1.0], dtype=torch.float64))
    assert float(box[:, 0].max() - box[:, 0].min()) == pytest.approx(0.5)
    out = lg.render(scene, lg.Camera.look_at([0.0, 1.0, -6.0], [0.0, 0.0, 0.0], fov_y=0.9, width=24, height=24),
                    integrator="path", spp=2, max_depth=2)
    assert torch.isfinite(out.rgb).all()


def _hits(scene: lg.Scene, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Closest-hit distances (inf on a miss) of the rays against every mesh's world triangles (Moller-Trumbore,
    float64)."""
    tris = np.concatenate([m.world_verts().detach().numpy()[m.faces.numpy()] for m in scene.meshes.values()])
    v0, e1, e2 = tris[:, 0], tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    out = np.full(len(origins), np.inf)
    for i, (o, d) in enumerate(zip(origins, directions)):
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = o - v0
        u = np.einsum("ij,ij->i", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        good = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
        if good.any():
            out[i] = t[good].min()
    return out


def test_instances_lie_where_mitsuba_puts_them(tmp_path):
    mi = mitsuba_scalar()
    _serialized(tmp_path)
    path = _write(tmp_path, _GROUP)
    ours = read_mitsuba_xml(path, dtype=torch.float64)
    theirs = mi.load_file(str(path))
    rng = np.random.default_rng(5)
    tris = np.concatenate([m.world_verts().numpy()[m.faces.numpy()] for m in ours.meshes.values()])
    pick = tris[rng.integers(0, len(tris), 300)]
    b = rng.dirichlet(np.ones(3), 300)
    targets = np.einsum("ij,ijk->ik", b, pick) + rng.normal(0.0, 0.05, (300, 3))  # on or near the triangles
    origins = np.tile(np.array([[0.3, 0.4, -7.0]]), (300, 1))
    directions = targets - origins
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    ours_t = _hits(ours, origins, directions)
    theirs_t = np.array([float(theirs.ray_intersect(mi.Ray3f(mi.Point3f(*o), mi.Vector3f(*d))).t)
                         for o, d in zip(origins, directions)])
    both = np.isfinite(ours_t) & np.isfinite(theirs_t)
    assert both.sum() > 200  # the rays see the instances
    np.testing.assert_allclose(ours_t[both], theirs_t[both], rtol=1e-5, atol=1e-5)
    assert (np.isfinite(ours_t) != np.isfinite(theirs_t)).mean() < 0.02  # (edge grazes in float32 only)


def test_instance_names_make_way_for_explicit_ids(tmp_path):
    """A top-level shape whose id is what an instance's copy would be called keeps it; the copy takes ``-1``."""
    scene = _scene(tmp_path, '''<shape type="shapegroup" id="g"><shape type="cube" id="box"/></shape>
        <shape type="instance" id="i1"><ref id="g"/></shape>
        <shape type="rectangle" id="i1-box"/>''')
    assert sorted(scene.meshes) == ["i1-box", "i1-box-1"]
    assert scene.meshes["i1-box"].faces.shape[0] == 2 and scene.meshes["i1-box-1"].faces.shape[0] == 12
