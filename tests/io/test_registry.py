"""io.load / io.save: one entry point that dispatches on suffix and folder layout; every shared asset loads."""

from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad import io

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not beside the checkout")


@needs_data
def test_every_shared_asset_loads_through_one_entry_point():
    loaded = {}
    for path in sorted(DATA.rglob("*")):
        suffix = path.suffix.lower()
        if path.is_file() and suffix in io.formats() and "masks" not in path.parts:
            if suffix == ".xml" and "include" in path.parts:
                continue  # Mitsuba <include> fragments are parts of a scene (they use its $parameters and ids)
            loaded[path.relative_to(DATA).as_posix()] = io.load(path)
    loaded["opensfm-berlin/reconstruction_example.json"] = io.load(DATA / "opensfm-berlin" / "reconstruction_example.json")
    kinds = {type(v).__name__ for v in loaded.values()}
    assert {"Mesh", "Scene", "Tensor", "OpenSfmReconstruction"} <= kinds, kinds
    assert isinstance(loaded["gltf-water-bottle/glTF/WaterBottle.gltf"], lg.Scene)
    if (DATA / "cornell-box-mitsuba3").exists():
        assert isinstance(loaded["cornell-box-mitsuba3/cornell_box.xml"], lg.Scene)
    assert loaded["envmap-venice-sunset/venice_sunset_1k.hdr"].shape[-1] == 3
    assert loaded["spot-cow/spot_triangulated.obj"].faces.shape == (5856, 3)


def test_save_then_load_round_trips(tmp_path):
    spot = lg.data.load_spot()
    io.save(tmp_path / "spot.obj", spot)
    back = io.load(tmp_path / "spot.obj")
    assert torch.equal(back.verts, spot.verts) and torch.equal(back.faces, spot.faces)
    assert torch.equal(back.uv_faces, spot.uv_faces)
    io.save(tmp_path / "spot.ply", (spot.verts, spot.faces))
    ply = io.load(tmp_path / "spot.ply")
    assert torch.equal(ply.verts, spot.verts) and torch.equal(ply.faces, spot.faces)
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh.from_mesh(spot))
    io.save(tmp_path / "spot.glb", scene)
    again = io.load(tmp_path / "spot.glb")
    assert isinstance(again, lg.Scene) and list(again.meshes) == ["spot"]
    image = torch.rand(5, 7, 3)
    io.save(tmp_path / "img.exr", image, pixel_type="float")
    assert torch.equal(io.load(tmp_path / "img.exr"), image)
    io.save(tmp_path / "img.png", image)
    assert (io.load(tmp_path / "img.png") - image).abs().max() <= 0.5 / 255 + 1e-6


def test_json_and_folder_dispatch(tmp_path):
    cam = lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=8, height=6)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", [cam], [tmp_path / "a.png"])
    assert isinstance(io.load(tmp_path / "transforms.json"), lg.io.NerfTransforms)
    lg.io.write_colmap(tmp_path / "sparse", {"a.png": cam})
    assert isinstance(io.load(tmp_path / "sparse"), lg.io.ColmapReconstruction)


def test_clear_errors_and_registration(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load(tmp_path / "missing.obj")
    (tmp_path / "a.xyz").write_text("1 2 3")
    with pytest.raises(ValueError, match="no reader for '.xyz'; lumigrad reads .*\\.obj"):
        io.load(tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="no writer for '.xyz'"):
        io.save(tmp_path / "b.xyz", torch.zeros(3))
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ValueError, match="neither a NeRF"):
        io.load(tmp_path / "c.json")
    with pytest.raises(TypeError, match="cannot write a str as a mesh"):
        io.save(tmp_path / "d.obj", "not a mesh")
    io.register_format(".xyz", "points, one per line", reader=lambda p: torch.tensor(
        [[float(v) for v in line.split()] for line in Path(p).read_text().splitlines()]))
    try:
        assert torch.equal(io.load(tmp_path / "a.xyz"), torch.tensor([[1.0, 2.0, 3.0]]))
        assert ".xyz" in io.formats()
    finally:
        io.registry._FORMATS.pop(".xyz")
    with pytest.raises(ValueError, match="lower case"):
        io.register_format("XYZ", "bad", reader=print)
