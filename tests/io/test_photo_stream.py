"""``read_dataset(..., lazy=True)``: a PhotoStream equal to eager loading, decoding per view, its cache bounded."""

import pytest
import torch

import lumigrad as lg
from lumigrad.io import PhotoStream, read_dataset


def _nerf_capture(folder, n=5, width=24, height=16, alpha_from=None):
    cams = [lg.Camera.look_at([float(k), 0.5, -3.0], [0.0, 0.0, 0.0], width=width, height=height) for k in range(n)]
    g = torch.Generator().manual_seed(3)
    names = [f"p{k}.png" for k in range(n)]
    for k, name in enumerate(names):
        channels = 4 if alpha_from is not None and k >= alpha_from else 3
        lg.io.write_image(folder / name, torch.rand(height, width, channels, generator=g))
    lg.io.write_nerf_transforms(folder / "transforms.json", cams, [folder / n for n in names])
    return folder


@pytest.mark.parametrize("scale", [1.0, 0.5, 1.5])
def test_stream_equals_eager_reading(tmp_path, scale):
    folder = _nerf_capture(tmp_path)
    eager = read_dataset(folder, scale=scale, dtype=torch.float64)
    stream = read_dataset(folder, scale=scale, dtype=torch.float64, lazy=True)
    assert isinstance(stream, PhotoStream) and len(stream) == len(eager)
    assert stream.names == eager.names and stream.paths == eager.paths and stream.source_size == eager.source_size
    assert (stream.camera.width, stream.camera.height) == (eager.camera.width, eager.camera.height)
    assert torch.equal(stream.camera.K, eager.camera.K)
    assert torch.equal(stream.camera.world_to_cam, eager.camera.world_to_cam)
    for k in range(len(eager)):
        assert torch.equal(stream[k], eager.images[k])
    images, camera = stream.views([3, 1, -1])
    assert torch.equal(images, eager.images[[3, 1, 4]])
    assert torch.equal(camera.K, eager.camera.K[[3, 1, 4]])
    assert torch.equal(stream.load_all().images, eager.images)


def test_views_subset_and_alpha_added_like_eager(tmp_path):
    folder = _nerf_capture(tmp_path, alpha_from=0)
    # first view with alpha, a later one without: the stream adds an opaque alpha as the eager reader does
    lg.io.write_image(folder / "p3.png", torch.rand(16, 24, 3))
    eager = read_dataset(folder, views=[4, 3, 0])
    stream = read_dataset(folder, views=[4, 3, 0], lazy=True)
    assert torch.equal(stream.load_all().images, eager.images) and eager.images.shape[-1] == 4


def test_alpha_after_an_opaque_first_view_is_refused(tmp_path):
    folder = _nerf_capture(tmp_path, alpha_from=2)
    stream = read_dataset(folder, lazy=True)
    stream[0]
    with pytest.raises(ValueError, match=r"p2.png has 4 channels but the stream's first view has 3"):
        stream[2]


def test_cache_stays_within_its_byte_bound(tmp_path, monkeypatch):
    folder = _nerf_capture(tmp_path, n=6)
    one = 16 * 24 * 3 * 4  # float32 bytes of one view
    stream = read_dataset(folder, lazy=True, cache_bytes=2 * one + one // 2)
    decoded = []
    original = PhotoStream._decode
    monkeypatch.setattr(PhotoStream, "_decode", lambda self, k: decoded.append(k) or original(self, k))
    for k in (0, 1, 2, 0, 3):
        stream[k]
        assert stream.cached_bytes <= stream.cache_bytes
    assert stream.cached_bytes == 2 * one
    assert decoded == [0, 1, 2, 0, 3]  # 0 was dropped when 2 came (least recently used)
    stream[0]
    assert decoded == [0, 1, 2, 0, 3]  # 0 and 3 are the two kept
    none = read_dataset(folder, lazy=True, cache_bytes=0)
    none[1]
    assert none.cached_bytes == 0


def test_wrong_photo_size_is_refused_before_decoding(tmp_path):
    folder = _nerf_capture(tmp_path)
    lg.io.write_image(folder / "p2.png", torch.rand(8, 8, 3))
    with pytest.raises(ValueError, match=r"p2.png is 8x8 pixels but its camera"):
        read_dataset(folder, lazy=True)


def test_bad_arguments(tmp_path):
    folder = _nerf_capture(tmp_path)
    with pytest.raises(ValueError, match="cache_bytes"):
        read_dataset(folder, lazy=True, cache_bytes=-1)
    stream = read_dataset(folder, lazy=True)
    with pytest.raises(IndexError, match="view index"):
        stream[5]
    with pytest.raises(ValueError, match="at least one view"):
        stream.views([])
