"""glTF 2.0 writing: round trips through read_gltf, OBJ-style uv splitting, the GLB container, warnings."""

import json
import math
import struct
from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.io.gltf import read_gltf
from lumigrad.io.gltf_writer import write_gltf
from lumigrad.shading.material import Material

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ASSETS = {
    "BoxTextured.glb": DATA / "gltf-box-textured" / "glTF-Binary" / "BoxTextured.glb",
    "BoxTextured.gltf": DATA / "gltf-box-textured" / "glTF" / "BoxTextured.gltf",
    "TextureCoordinateTest": DATA / "gltf-texture-coordinate-test" / "glTF" / "TextureCoordinateTest.gltf",
    "Cameras": DATA / "gltf-cameras" / "glTF" / "Cameras.gltf",
}
SLOTS = ("base_color_texture", "metallic_roughness_texture", "normal_texture", "occlusion_texture", "emissive_texture")


def _assert_same_scene(a: lg.Scene, b: lg.Scene, *, image_atol: float = 0.5 / 255 + 1e-6):
    assert list(a.meshes) == list(b.meshes)
    for name, ma in a.meshes.items():
        mb = b.meshes[name]
        for attr in ("verts", "uv", "normals", "tangents", "to_world"):
            ta, tb = getattr(ma, attr), getattr(mb, attr)
            if attr == "normals" and ta is None:
                ta = lg.vertex_normals(ma.verts, ma.faces)
            assert (ta is None) == (tb is None), (name, attr)
            if ta is not None:
                assert torch.equal(ta.float(), tb.float()), (name, attr)
        assert torch.equal(ma.faces.long(), mb.faces.long()), name
        assert ma.double_sided == mb.double_sided, name
        for key in ("base_color_factor", "metallic_factor", "roughness_factor", "normal_scale", "occlusion_strength",
                    "emissive_factor", "ior", "transmission_factor", "specular_factor"):
            torch.testing.assert_close(getattr(ma.material, key).float(), getattr(mb.material, key).float(),
                                       rtol=1e-6, atol=1e-7, msg=f"{name}.{key}")
        for slot in SLOTS:
            ta, tb = getattr(ma.material, slot), getattr(mb.material, slot)
            assert (ta is None) == (tb is None), (name, slot)
            if ta is not None:
                assert ta.shape == tb.shape, (name, slot)
                assert (ta.clamp(0, 1) - tb).abs().max() <= image_atol, (name, slot)
        if any(getattr(ma.material, s) is not None for s in SLOTS):
            assert ma.material.wrap == mb.material.wrap
    assert list(a.cameras) == list(b.cameras)
    for name, ca in a.cameras.items():
        cb = b.cameras[name]
        assert (ca.width, ca.height, ca.projection) == (cb.width, cb.height, cb.projection)
        torch.testing.assert_close(ca.K.double(), cb.K.double(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ca.world_to_cam.double(), cb.world_to_cam.double(), rtol=1e-5, atol=1e-5)
        assert ca.near == pytest.approx(cb.near, rel=1e-6) and ca.far == pytest.approx(cb.far, rel=1e-6)
    assert list(a.lights) == list(b.lights)
    for name, la in a.lights.items():
        lb = b.lights[name]
        assert type(la) is type(lb)
        for key, ta in la.parameters().items():
            torch.testing.assert_close(ta.double(), getattr(lb, key).double(), rtol=1e-6, atol=1e-6,
                                       msg=f"{name}.{key}")
        assert getattr(la, "range", None) == getattr(lb, "range", None)


@pytest.mark.parametrize("asset", list(ASSETS))
@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_sample_assets_round_trip(asset, suffix, tmp_path):
    if not ASSETS[asset].exists():
        pytest.skip("../shared/data is not available")
    scene = read_gltf(ASSETS[asset])
    out = write_gltf(tmp_path / f"out{suffix}", scene)
    _assert_same_scene(scene, read_gltf(out))
    if suffix == ".gltf":  # buffer and images are external files next to it, by relative URI
        doc = json.loads(out.read_text())
        assert doc["buffers"][0]["uri"] == "out.bin" and (tmp_path / "out.bin").exists()
        for image in doc.get("images", []):
            assert (tmp_path / image["uri"]).exists()


def _synthetic_scene() -> lg.Scene:
    g = torch.Generator().manual_seed(0)
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    orm = torch.rand(16, 8, 3, generator=g)  # one occlusion-roughness-metallic image used by two slots
    material = Material(base_color_factor=torch.tensor([0.9, 0.5, 0.25, 1.0]), metallic_factor=torch.tensor(0.3),
                           roughness_factor=torch.tensor(0.7), base_color_texture=torch.rand(8, 8, 4, generator=g),
                           metallic_roughness_texture=orm, occlusion_texture=orm,
                           occlusion_strength=torch.tensor(0.5), normal_texture=torch.rand(8, 16, 3, generator=g),
                           normal_scale=torch.tensor(0.8), emissive_texture=torch.rand(4, 4, 3, generator=g) * 1.2,
                           emissive_factor=torch.tensor([3.0, 1.5, 0.0]), ior=torch.tensor(1.33), wrap="clamp")
    mirror = torch.diag(torch.tensor([-1.0, 2.0, 1.0, 1.0]))
    mirror[:3, 3] = torch.tensor([0.5, -1.0, 2.0])
    scene = lg.Scene()
    scene.add_mesh("quad", lg.SceneMesh(verts, faces, material, uv=uv, double_sided=True))
    scene.add_mesh("mirrored", lg.SceneMesh(verts, faces, Material(), to_world=mirror))
    w2c = lg.cameras.projection.look_at(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    scene.add_camera("persp", lg.Camera.from_fov(0.7, 640, 480, w2c, near=0.1, far=50.0))
    scene.add_camera("ortho", lg.Camera.orthographic(3.0, 640, 480, w2c, near=0.5, far=20.0))
    scene.add_light("point", lg.PointLight(torch.tensor([1.0, 2.0, 3.0]), 5.0, (1.0, 0.5, 0.25), range=10.0))
    direction = torch.nn.functional.normalize(torch.tensor([0.3, -1.0, 0.2]), dim=0)
    scene.add_light("spot", lg.SpotLight(torch.tensor([0.0, 3.0, 0.0]), direction, 20.0, (1.0, 1.0, 1.0), 0.2, 0.6))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([0.0, -1.0, 0.0]), 3.0, (1.0, 0.9, 0.8)))
    return scene


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_synthetic_scene_round_trips_materials_cameras_lights(suffix, tmp_path):
    scene = _synthetic_scene()
    out = write_gltf(tmp_path / f"scene{suffix}", scene)
    back = read_gltf(out, image_height=480)
    _assert_same_scene(scene, back)
    doc = _glb_json(out) if suffix == ".glb" else json.loads(out.read_text())
    assert len(doc["images"]) == 4  # the ORM tensor is written once
    quad = back.meshes["quad"].material
    assert quad.occlusion_texture is quad.metallic_roughness_texture
    assert set(doc["extensionsUsed"]) == {"KHR_lights_punctual", "KHR_materials_ior",
                                          "KHR_materials_emissive_strength"}
    assert doc["samplers"][0]["wrapS"] == doc["samplers"][0]["wrapT"] == 33071
    # the mirrored node renders its faces the same way round: world-space geometry per corner matches
    torch.testing.assert_close(back.meshes["mirrored"].world_verts()[back.meshes["mirrored"].faces],
                               scene.meshes["mirrored"].world_verts()[scene.meshes["mirrored"].faces])


def test_gradients_and_float64_are_written_as_float32(tmp_path):
    verts = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    scene = lg.Scene()
    scene.add_mesh("m", lg.SceneMesh(verts, torch.tensor([[0, 1, 2], [2, 3, 4]])))
    back = read_gltf(write_gltf(tmp_path / "m.glb", scene))
    assert torch.equal(back.meshes["m"].verts, verts.detach().float())


def test_obj_style_uv_faces_are_split_per_corner(tmp_path):
    spot = lg.data.load_spot()
    assert not torch.equal(spot.uv_faces, spot.faces)
    mesh = lg.SceneMesh(spot.verts, spot.faces, Material(base_color_texture=spot.texture[::8, ::8].contiguous()),
                        uv=spot.uv, uv_faces=spot.uv_faces)
    scene = lg.Scene()
    scene.add_mesh("spot", mesh)
    back = read_gltf(write_gltf(tmp_path / "spot.glb", scene)).meshes["spot"]
    assert back.faces.shape == spot.faces.shape
    assert back.verts.shape[0] > spot.verts.shape[0]  # seams split
    assert torch.equal(back.verts[back.faces], spot.verts.float()[spot.faces])
    assert torch.equal(back.uv[back.faces], spot.uv.float()[spot.uv_faces])
    # normals stay smooth across uv seams: those of the unsplit mesh, per corner
    assert torch.equal(back.normals[back.faces], lg.vertex_normals(spot.verts, spot.faces).float()[spot.faces])


def _glb_json(path: Path) -> dict:
    raw = path.read_bytes()
    size, kind = struct.unpack_from("<II", raw, 12)
    return json.loads(raw[20:20 + size])


def assert_valid_glb(path: Path) -> dict:
    """Check the GLB container and every buffer view / accessor bound of ``path``; return its JSON document."""
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", raw, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(raw))
    pos, chunks = 12, []
    while pos < len(raw):
        assert pos % 4 == 0
        size, kind = struct.unpack_from("<II", raw, pos)
        assert size % 4 == 0
        chunks.append((kind, raw[pos + 8:pos + 8 + size]))
        pos += 8 + size
    assert pos == len(raw)
    assert [k for k, _ in chunks] == [0x4E4F534A, 0x004E4942]  # JSON then one BIN
    doc = json.loads(chunks[0][1])
    binary = chunks[1][1]
    assert doc["asset"]["version"] == "2.0"
    assert len(doc["buffers"]) == 1 and "uri" not in doc["buffers"][0]
    assert doc["buffers"][0]["byteLength"] <= len(binary)
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
        assert view["byteOffset"] + view["byteLength"] <= doc["buffers"][view["buffer"]]["byteLength"]
    sizes = {5126: 4, 5125: 4, 5123: 2, 5121: 1}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
    for acc in doc["accessors"]:
        view = doc["bufferViews"][acc["bufferView"]]
        assert acc.get("byteOffset", 0) + acc["count"] * sizes[acc["componentType"]] * widths[acc["type"]] \
            <= view["byteLength"]
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            pos_acc = doc["accessors"][prim["attributes"]["POSITION"]]
            assert len(pos_acc["min"]) == len(pos_acc["max"]) == 3
    return doc


def test_glb_container_is_valid(tmp_path):
    doc = assert_valid_glb(write_gltf(tmp_path / "scene.glb", _synthetic_scene()))
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            assert doc["accessors"][prim["indices"]]["componentType"] == 5123  # small meshes: uint16


def test_unrepresentable_lights_and_cameras_warn_and_are_skipped(tmp_path):
    scene = _synthetic_scene()
    scene.add_light("sky", lg.SHLight(torch.tensor([[math.sqrt(4 * math.pi)] * 3])))
    scene.add_light("panel", lg.AreaLight(torch.eye(3), torch.tensor([[0, 1, 2]])))
    w2c = torch.eye(4)
    scene.add_camera("batch", lg.Camera.from_fov(0.7, 64, 48, w2c.expand(2, 4, 4)))
    K = torch.tensor([[60.0, 0.0, 30.0], [0.0, 50.0, 20.0], [0.0, 0.0, 1.0]])
    scene.add_camera("skewed", lg.Camera(K, w2c, 64, 48))
    scene.lights["spot"].falloff = "linear"
    scene.meshes["quad"].material.microfacet = "beckmann"
    scene.meshes["quad"].material.transmission_factor = torch.tensor(0.5)
    scene.meshes["quad"].material.thin_dielectric = True
    scene.meshes["quad"].material.plastic = True
    v, f = scene.meshes["quad"].verts, scene.meshes["quad"].faces
    scene.add_mesh("gold", lg.SceneMesh(v, f, lg.shading.Material(conductor_eta=torch.tensor([0.14, 0.38, 1.44]),
                                                                   conductor_k=torch.tensor([3.98, 2.39, 1.6]),
                                                                   roughness_factor=0.0, delta_specular=True)))
    scene.add_mesh("brushed", lg.SceneMesh(v, f, lg.shading.Material(principled=True, roughness_aspect=0.5)))
    with pytest.warns(UserWarning) as record:
        out = write_gltf(tmp_path / "scene.glb", scene)
    messages = " ".join(str(w.message) for w in record)
    assert "is Mitsuba's conductor (Material.conductor_eta)" in messages
    assert "has Dirac specular lobes (Material.delta_specular), which glTF cannot mark" in messages
    assert "has an anisotropic lobe (Material.roughness_aspect), which glTF's core model cannot hold" in messages
    for expected in ("'sky' is a SHLight", "'panel' is a AreaLight", "'batch' is a batch", "principal point",
                     "fx = 60 != fy = 50", "spot light 'spot' has the 'linear' falloff",
                     "materials[0] has the 'beckmann' microfacet distribution",
                     "materials[0] is a thin dielectric sheet", "materials[0] is Mitsuba's plastic"):
        assert expected in messages
    back = read_gltf(out)
    assert back.lights["spot"].falloff == "gltf"
    assert "sky" not in back.lights and "panel" not in back.lights and "batch" not in back.cameras
    assert "skewed" in back.cameras
    assert back.cameras["skewed"].K[1, 1].item() == pytest.approx(50.0 * 512 / 48, rel=1e-5)  # fy kept


def test_cameras_false_and_bad_suffix(tmp_path):
    back = read_gltf(write_gltf(tmp_path / "scene.gltf", _synthetic_scene(), cameras=False))
    assert not back.cameras and set(back.lights) == {"point", "spot", "sun"}
    with pytest.raises(ValueError, match="must end in .glb or .gltf"):
        write_gltf(tmp_path / "scene.obj", _synthetic_scene())


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_transmission_round_trips_through_khr_materials_transmission(suffix, tmp_path):
    glass = Material(base_color_factor=torch.tensor([0.9, 1.0, 0.95, 1.0]), metallic_factor=torch.tensor(0.0),
                     roughness_factor=torch.tensor(0.1), ior=torch.tensor(1.5046), transmission_factor=torch.tensor(0.75))
    scene = lg.Scene()
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    scene.add_mesh("glass", lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), glass))
    scene.add_mesh("opaque", lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), Material()))
    out = write_gltf(tmp_path / f"glass{suffix}", scene)
    doc = _glb_json(out) if suffix == ".glb" else json.loads(out.read_text())
    assert doc["materials"][0]["extensions"]["KHR_materials_transmission"] == {"transmissionFactor": 0.75}
    assert "extensions" not in doc["materials"][1]  # transmission 0 (the default) writes no extension
    assert "KHR_materials_transmission" in doc["extensionsUsed"]
    back = read_gltf(out)
    _assert_same_scene(scene, back)
    assert float(back.meshes["glass"].material.transmission_factor) == 0.75


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_specular_factor_round_trips_through_khr_materials_specular(suffix, tmp_path):
    matte = Material(base_color_factor=torch.tensor([0.8, 0.2, 0.1, 1.0]), metallic_factor=torch.tensor(0.0),
                     specular_factor=torch.tensor(0.0))
    satin = Material(metallic_factor=torch.tensor(0.0), specular_factor=torch.tensor(0.375))
    scene = lg.Scene()
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for name, material in (("matte", matte), ("satin", satin), ("plain", Material())):
        scene.add_mesh(name, lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), material))
    out = write_gltf(tmp_path / f"specular{suffix}", scene)
    doc = _glb_json(out) if suffix == ".glb" else json.loads(out.read_text())
    assert doc["materials"][0]["extensions"]["KHR_materials_specular"] == {"specularFactor": 0.0}
    assert doc["materials"][1]["extensions"]["KHR_materials_specular"] == {"specularFactor": 0.375}
    assert "extensions" not in doc["materials"][2]  # specular 1 (the default) writes no extension
    assert "KHR_materials_specular" in doc["extensionsUsed"]
    back = read_gltf(out)
    _assert_same_scene(scene, back)
    for name, value in (("matte", 0.0), ("satin", 0.375), ("plain", 1.0)):
        assert float(back.meshes[name].material.specular_factor) == value


def test_an_absorbing_interior_round_trips_through_khr_materials_volume(tmp_path):
    """An interior medium's absorption is written as ``KHR_materials_volume`` and read back; scattering,
    which glTF cannot hold, is dropped with a warning."""
    from lumigrad.shading.medium import HomogeneousMedium

    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    scene = lg.Scene()
    medium = HomogeneousMedium(torch.tensor([0.5, 1.0, 2.0]), torch.zeros(3))
    scene.add_mesh("glass", lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), Material(
        metallic_factor=0.0, transmission_factor=1.0, interior=medium)))
    out = write_gltf(tmp_path / "volume.gltf", scene)
    doc = json.loads(out.read_text())
    assert "KHR_materials_volume" in doc["extensionsUsed"]
    back = read_gltf(out).meshes["glass"].material.interior
    assert back.sigma_a.tolist() == pytest.approx([0.5, 1.0, 2.0], rel=1e-6)
    assert back.sigma_s.tolist() == [0.0, 0.0, 0.0]
    scene.meshes["glass"].material.interior = HomogeneousMedium(torch.tensor([0.5]), torch.tensor([1.0]), g=0.3)
    with pytest.warns(UserWarning, match=r"materials\[0\] has a scattering interior medium"):
        write_gltf(tmp_path / "scatter.gltf", scene)


def test_an_exterior_medium_and_the_scenes_medium_warn_naming_the_field(tmp_path):
    """glTF holds neither a material's ``exterior`` nor the scene's ``medium``: each is dropped with a warning
    that names it, and the rest is written (the interior's absorption too)."""
    from lumigrad.shading.medium import HomogeneousMedium

    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fog = HomogeneousMedium(torch.tensor([0.1]), torch.tensor([0.0]))
    scene = lg.Scene()
    scene.add_mesh("glass", lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), Material(
        metallic_factor=0.0, transmission_factor=1.0, interior=HomogeneousMedium(torch.tensor([0.5]),
                                                                                 torch.tensor([0.0])),
        exterior=fog)))
    scene.medium = fog
    with pytest.warns(UserWarning) as record:
        out = write_gltf(tmp_path / "media.gltf", scene)
    messages = [str(r.message) for r in record]
    assert any("materials[0] has an exterior medium (Material.exterior)" in m for m in messages), messages
    assert any("Scene.medium" in m for m in messages), messages
    back = read_gltf(out).meshes["glass"].material
    assert back.interior.sigma_a.tolist() == pytest.approx([0.5] * 3, rel=1e-6)
    assert back.exterior is None


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_alpha_modes_round_trip(suffix, tmp_path):
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    scene = lg.Scene()
    for name, kw in (("leaves", dict(alpha_mode="MASK", alpha_cutoff=0.25)), ("glass", dict(alpha_mode="BLEND")),
                     ("wall", {})):
        scene.add_mesh(name, lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]), Material(
            base_color_factor=torch.tensor([0.5, 0.5, 0.5, 0.4]), **kw)))
    out = write_gltf(tmp_path / f"alpha{suffix}", scene)
    doc = _glb_json(out) if suffix == ".glb" else json.loads(out.read_text())
    assert doc["materials"][0]["alphaMode"] == "MASK" and doc["materials"][0]["alphaCutoff"] == 0.25
    assert doc["materials"][1]["alphaMode"] == "BLEND" and "alphaCutoff" not in doc["materials"][1]
    assert "alphaMode" not in doc["materials"][2]  # OPAQUE, the default, is not written
    back = read_gltf(out)
    _assert_same_scene(scene, back)
    for name in scene.meshes:
        a, b = scene.meshes[name].material, back.meshes[name].material
        assert (a.alpha_mode, a.alpha_cutoff) == (b.alpha_mode, b.alpha_cutoff), name
