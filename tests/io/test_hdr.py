"""Radiance .hdr reading: the shared Poly Haven maps, round trips, and malformed files refused clearly."""

import pytest
import torch

from lumigrad.io.hdr import read_hdr, write_hdr

from ..conftest import SHARED_DATA

VENICE = SHARED_DATA / "envmap-venice-sunset" / "venice_sunset_1k.hdr"
STUDIO = SHARED_DATA / "envmap-studio-small-03" / "studio_small_03_1k.hdr"
needs_data = pytest.mark.skipif(not VENICE.exists(), reason="shared/data is not beside the checkout")


@needs_data
@pytest.mark.parametrize("path,mean,peak", [(VENICE, 0.46, 2496.0), (STUDIO, 1.88, 3355.0)])
def test_shared_maps_load_with_their_documented_statistics(path, mean, peak):
    image = read_hdr(path)
    assert image.shape == (512, 1024, 3) and image.dtype == torch.float32
    assert bool(torch.isfinite(image).all()) and float(image.min()) >= 0
    # The figures their SOURCE.md states (channel mean, and the brightest pixel's channel mean).
    assert float(image.mean()) == pytest.approx(mean, rel=0.02)
    assert float(image.mean(-1).max()) == pytest.approx(peak, rel=0.01)


@needs_data
def test_venice_sun_is_in_the_upper_half():
    # Orientation check: row 0 is the top of the map, so the low sun is above the horizon row (256).
    image = read_hdr(VENICE)
    row = int(image.mean(-1).flatten().argmax()) // 1024
    assert row < 256


def test_round_trip_keeps_eight_bits_of_mantissa(tmp_path):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(5, 9, 3, generator=g) * torch.logspace(-3, 3, 9)[None, :, None]
    image[0, 0] = 0
    write_hdr(tmp_path / "x.hdr", image)
    back = read_hdr(tmp_path / "x.hdr")
    assert back.shape == image.shape
    peak = image.max(-1, keepdim=True).values
    assert float(((back - image).abs() / peak.clamp_min(1e-30)).max()) < 1 / 128
    assert torch.equal(back[0, 0], torch.zeros(3))


def _rle_file(tmp_path, scanline: bytes, width=8, height=1):
    path = tmp_path / "rle.hdr"
    path.write_bytes(f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode() + scanline)
    return path


def test_run_length_scanlines_decode(tmp_path):
    # Width 8: R = run of 8 x 128, G = 8 literals, B = run of 8 x 0, E = run of 8 x 129 (2^(129-136) = 1/128).
    line = bytes([2, 2, 0, 8, 136, 128, 8, 0, 16, 32, 48, 64, 80, 96, 112, 136, 0, 136, 129])
    image = read_hdr(_rle_file(tmp_path, line))
    torch.testing.assert_close(image[0, :, 0], torch.full((8,), 1.0))
    torch.testing.assert_close(image[0, :, 1], torch.arange(0, 128, 16, dtype=torch.float32) / 128)
    assert float(image[0, :, 2].abs().max()) == 0


@pytest.mark.parametrize("content,message", [
    (b"P6\n8 8\n255\n", "not a Radiance"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_xyze\n\n-Y 1 +X 8\n", "unsupported"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n+Y 1 +X 8\n", "resolution"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 100000 +X 100000\n", "declared size 100000x100000 .*over lumigrad.s budget"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 8\n" + bytes([2, 2, 0, 8, 136, 1]), "truncated|bad"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 3\n" + bytes(12), "truncated"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n" + bytes([2, 2, 0, 8, 200, 1]), "bad run"),
])
def test_malformed_files_are_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "bad.hdr"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_hdr(path)


@needs_data
def test_truncated_real_file(tmp_path):
    path = tmp_path / "cut.hdr"
    path.write_bytes(VENICE.read_bytes()[:300_000])
    with pytest.raises(ValueError, match="truncated"):
        read_hdr(path)


def test_write_refuses_bad_images(tmp_path):
    with pytest.raises(ValueError, match="image"):
        write_hdr(tmp_path / "x.hdr", torch.zeros(4, 4))
    with pytest.raises(ValueError, match="NaN"):
        write_hdr(tmp_path / "x.hdr", torch.full((2, 2, 3), float("nan")))
