"""examples/make_nerf_dataset.py: rendered views read back with read_nerf_transforms, poses, intrinsics, alpha."""

import json
import runpy
from pathlib import Path

import torch

import lumigrad as lg

ROOT = Path(__file__).resolve().parents[2]


def test_dataset_round_trips_through_read_nerf_transforms(tmp_path, capsys):
    """Nine 32^2 views of the embedded Spot (the WaterBottle's 2048^2 textures take ~25 s to load and decode on
    first render; the script's default): the json's cameras equal the rendered ones, the PNGs equal the
    renders to 8 bits, alpha is 0 where the object is absent, covered pixels match the renderer's film, the
    folder reads with read_dataset, and every 8th view is held out."""
    script = runpy.run_path(str(ROOT / "examples" / "make_nerf_dataset.py"))
    out = tmp_path / "data"
    result = script["main"](["--views", "9", "--size", "32", "--asset", "spot", "--out", str(out)])
    assert "9 views" in capsys.readouterr().out
    data = lg.io.read_nerf_transforms(out / "transforms.json")
    assert len(data.cameras) == 9
    cams = result["cameras"]
    for i, cam in enumerate(data.cameras):
        assert (cam.width, cam.height) == (32, 32) and cam.distortion is None
        torch.testing.assert_close(cam.K, cams.K.double(), rtol=0, atol=0)
        torch.testing.assert_close(cam.world_to_cam, cams[i].world_to_cam.double(), rtol=0, atol=1e-6)
        image = lg.io.read_image(data.image_paths[i])
        assert image.shape == (32, 32, 4)
        torch.testing.assert_close(image, result["rgba"][i].clamp(0, 1), rtol=0, atol=0.5 / 255 + 1e-6)
        alpha = image[..., 3]
        assert float(alpha[0, 0]) == 0.0 and float(alpha.max()) == 1.0  # a corner is background
        assert torch.equal(alpha == 0, result["rgba"][i][..., 3] < 0.5 / 255)
    # Fully covered pixels are what the renderer's own film gives (straight alpha changes only the edges).
    scene = script["load_scene"](Path("spot"))
    scene.add_light("env", lg.EnvironmentLight(script["environment"](), prefilter_size=(16, 32), visible=False))
    scene.film = lg.Film(tone="reinhard", encode="srgb")
    with torch.no_grad():
        direct = lg.render(scene, cams[:2], background=0.0).rgba
    inside = direct[..., 3] == 1
    assert int(inside.sum()) > 50
    torch.testing.assert_close(result["rgba"][:2][inside], direct[inside], rtol=0, atol=1e-5)
    dataset = lg.io.read_dataset(out / "transforms.json")
    assert dataset.images.shape == (9, 32, 32, 4)
    meta = json.loads((out / "transforms.json").read_text())
    assert meta["holdout_every"] == 8 and len(meta["aabb"]) == 2
    test = lg.io.read_nerf_transforms(out / "transforms_test.json")
    train = lg.io.read_nerf_transforms(out / "transforms_train.json")
    assert test.file_paths == ["images/r_000.png", "images/r_008.png"]
    assert len(train.file_paths) == 7 and "images/r_001.png" in train.file_paths
