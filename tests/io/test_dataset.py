"""``read_dataset``: photos and cameras from NeRF, COLMAP, OpenSfM and glTF layouts, with size checks."""

import pytest
import torch

import lumigrad as lg
from lumigrad.io import read_dataset

from ..conftest import SHARED_DATA

BERLIN = SHARED_DATA / "opensfm-berlin" / "reconstruction_example.json"


def cameras(n=3, width=20, height=16):
    return [lg.Camera.look_at([float(k), 0.5, -3.0], [0.0, 0.0, 0.0], width=width, height=height) for k in range(n)]


def photos(folder, names, width=20, height=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(len(names), height, width, 3, generator=g)
    for name, image in zip(names, images):
        lg.io.write_image(folder / name, image)
    return images


def test_nerf_folder_gives_stacked_images_and_a_batched_camera(tmp_path):
    cams = cameras()
    images = photos(tmp_path, ["a.png", "b.png", "c.png"])
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, [tmp_path / n for n in ("a.png", "b.png", "c.png")])
    for path in (tmp_path, tmp_path / "transforms.json"):
        data = read_dataset(path)
        assert data.images.shape == (3, 16, 20, 3) and len(data) == 3 and len(data.camera) == 3
        assert torch.allclose(data.images, images, atol=0.5 / 255)
        assert torch.allclose(data.camera.world_to_cam[1], cams[1].world_to_cam, atol=1e-6)
    sub = read_dataset(tmp_path, views=[2, 0])
    assert sub.names == [data.names[2], data.names[0]]


def test_colmap_project_with_images_folder(tmp_path):
    cams = cameras()
    names = ["p0.png", "p1.png", "p2.png"]
    (tmp_path / "images").mkdir()
    photos(tmp_path / "images", names)
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    lg.io.write_colmap(tmp_path / "sparse" / "0", {n: c.to(dtype=torch.float64) for n, c in zip(names, cams)})
    data = read_dataset(tmp_path)
    assert data.names == names and data.images.shape == (3, 16, 20, 3)
    assert torch.allclose(data.camera.K[0], cams[0].K, atol=1e-5)


def test_gltf_cameras_name_their_photos(tmp_path):
    scene = lg.Scene()
    verts, faces = lg.geometry.icosphere(1)
    scene.add_mesh("ball", lg.SceneMesh(verts, faces))
    for name, cam in zip(("front", "side"), cameras(2)):
        scene.add_camera(name, cam)
    lg.io.write_gltf(tmp_path / "rig.glb", scene)
    photos(tmp_path, ["front.png", "side.jpg"])
    data = read_dataset(tmp_path / "rig.glb")
    assert sorted(data.names) == ["front", "side"] and data.images.shape == (2, 16, 20, 3)


def test_scale_resizes_photos_and_cameras_together(tmp_path):
    cams = cameras(1, 40, 32)
    photos(tmp_path, ["a.png"], 40, 32)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, [tmp_path / "a.png"])
    full, half = read_dataset(tmp_path), read_dataset(tmp_path, scale=0.5)
    assert half.images.shape == (1, 16, 20, 3) and (half.camera.width, half.camera.height) == (20, 16)
    assert torch.allclose(half.camera.K[..., :2, :], full.camera.K[..., :2, :] * 0.5)
    # A world point lands on the same place of the picture, in pixels of each resolution.
    point = torch.tensor([[0.1, 0.2, 0.3]])
    assert torch.allclose(half.camera.project(point)[0], full.camera.project(point)[0] * 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="scale must be a number in"):
        read_dataset(tmp_path, scale=0)


def test_photo_of_the_wrong_size_missing_or_corrupt(tmp_path):
    cams = cameras(2)
    photos(tmp_path, ["a.png"])
    photos(tmp_path, ["b.png"], width=16, height=20)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, [tmp_path / "a.png", tmp_path / "b.png"])
    with pytest.raises(ValueError, match=r"b.png is 16x20 pixels but its camera .* is 20x16"):
        read_dataset(tmp_path)
    (tmp_path / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="the photo of view .* is missing"):
        read_dataset(tmp_path)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="b.png: not a readable image"):
        read_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        read_dataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="views must be a non-empty list"):
        read_dataset(tmp_path, views=[5])


@pytest.mark.skipif(not BERLIN.exists(), reason="../shared/data is not beside the checkout")
def test_real_capture_opensfm_berlin_at_one_sixteenth():
    data = read_dataset(BERLIN, scale=1 / 16)
    assert data.names == ["01.jpg", "02.jpg", "03.jpg"]
    assert data.images.shape == (3, 153, 204, 3) and data.camera.distortion.shape == (3, 5)
    assert 0.05 < float(data.images.mean()) < 0.95


def test_depth_maps_beside_photos_in_three_formats(tmp_path):
    import numpy as np
    from PIL import Image

    from lumigrad.io import read_depth_maps

    cams = cameras(3, 20, 16)
    names = ["a.png", "b.png", "c.png"]
    photos(tmp_path, names)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cams, [tmp_path / n for n in names])
    depth = torch.rand(3, 16, 20, generator=torch.Generator().manual_seed(1)) * 4 + 1
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "a.npy", depth[0].numpy())
    lg.io.write_exr(tmp_path / "depth" / "b.exr", depth[1, ..., None].expand(16, 20, 3).contiguous())
    Image.fromarray((depth[2] * 1000).round().numpy().astype(np.uint16)).save(tmp_path / "depth" / "c.png")  # mm
    data = read_dataset(tmp_path)
    got = read_depth_maps(data, tmp_path / "depth", depth_scale=1.0)
    assert got.shape == (3, 16, 20, 1)
    assert torch.allclose(got[0, ..., 0], depth[0]) and torch.allclose(got[1, ..., 0], depth[1], rtol=1e-3)
    assert torch.allclose(got[2, ..., 0] * 0.001, depth[2], atol=6e-4)  # 16-bit millimetres: depth_scale=0.001
    half = read_depth_maps(read_dataset(tmp_path, scale=0.5), tmp_path / "depth")
    assert half.shape == (3, 8, 10, 1) and set(half[0].flatten().tolist()) <= set(depth[0].flatten().tolist())
    np.save(tmp_path / "depth" / "a.npy", depth[0, :8].numpy())
    with pytest.raises(ValueError, match="a.npy has shape \\(8, 20\\) but its photo is 20x16"):
        read_depth_maps(data, tmp_path / "depth")
    (tmp_path / "depth" / "a.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no depth map for a.png"):
        read_depth_maps(data, tmp_path / "depth")


def test_a_depth_map_is_sized_from_its_header_before_it_is_decoded(tmp_path, monkeypatch):
    """A few-kB PNG or .npy that would decode to a 6000^2 array is refused by its header: nothing is decoded."""
    import numpy as np
    from PIL import Image

    from lumigrad.io import read_depth_maps

    names = ["a.png"]
    photos(tmp_path, names)
    lg.io.write_nerf_transforms(tmp_path / "transforms.json", cameras(1, 20, 16), [tmp_path / n for n in names])
    data = read_dataset(tmp_path)
    (tmp_path / "depth").mkdir()
    Image.new("I;16", (6000, 6000)).save(tmp_path / "depth" / "a.png")
    assert (tmp_path / "depth" / "a.png").stat().st_size < 200_000
    decoded = []
    monkeypatch.setattr(np, "asarray", lambda *a, **k: decoded.append(1) or np.array(*a, **k))
    with pytest.raises(ValueError, match="a.png has shape \\(6000, 6000\\) but its photo is 20x16"):
        read_depth_maps(data, tmp_path / "depth")
    assert not decoded
    (tmp_path / "depth" / "a.png").unlink()
    np.lib.format.open_memmap(tmp_path / "depth" / "a.npy", mode="w+", dtype=np.float32, shape=(2000, 2000)).flush()
    with pytest.raises(ValueError, match="a.npy has shape \\(2000, 2000\\) but its photo is 20x16"):
        read_depth_maps(data, tmp_path / "depth")
