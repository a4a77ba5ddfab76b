"""write_video (MP4 / GIF) and write_strip: files written and read back with their frame count and size."""

import sys

import pytest
import torch

from lumigrad.io import frames_to_uint8, read_video, write_strip, write_video


def _frames(T=4, H=10, W=14):
    t = torch.arange(T, dtype=torch.float32)[:, None, None, None]
    x = torch.linspace(0, 1, W)[None, None, :, None]
    y = torch.linspace(0, 1, H)[None, :, None, None]
    return torch.cat([(x + 0.2 * t).clamp(0, 1).expand(T, H, W, 1), y.expand(T, H, W, 1),
                      (t / T).expand(T, H, W, 1)], -1)


def test_gif_round_trip(tmp_path):
    frames = _frames()
    write_video(tmp_path / "seq.gif", frames, fps=8)
    back = read_video(tmp_path / "seq.gif")
    assert back.shape == (4, 10, 14, 3)
    # palette quantisation keeps colours close
    assert (back.float() - frames_to_uint8(frames).float()).abs().mean() < 6


def test_mp4_round_trip_pads_odd_sizes(tmp_path):
    pytest.importorskip("imageio")
    pytest.importorskip("imageio_ffmpeg")
    frames = _frames(5, 11, 15)
    write_video(tmp_path / "seq.mp4", frames, fps=10)
    back = read_video(tmp_path / "seq.mp4")
    assert back.shape == (5, 12, 16, 3)
    assert (back[:, :11, :15].float() - frames_to_uint8(frames).float()).abs().mean() < 12  # lossy H.264


def test_mp4_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.raises(ImportError, match=r"lumigrad\[video\]"):
        write_video(tmp_path / "seq.mp4", _frames())


def test_strip_layout_and_conversion(tmp_path):
    frames = _frames(3, 4, 5)
    sheet = write_strip(tmp_path / "strip.png", frames)
    assert sheet.shape == (4, 15, 3) and (tmp_path / "strip.png").exists()
    from PIL import Image

    with Image.open(tmp_path / "strip.png") as im:
        assert im.size == (15, 4)
    torch.testing.assert_close(sheet[:, 5:10], frames_to_uint8(frames)[1])
    assert write_strip(tmp_path / "grid.png", frames, columns=2).shape == (8, 10, 3)


def test_tone_and_encode_and_channels():
    hdr = torch.full((1, 2, 2, 3), 3.0)
    assert int(frames_to_uint8(hdr)[0, 0, 0, 0]) == 255
    assert int(frames_to_uint8(hdr, tone="reinhard")[0, 0, 0, 0]) == round(255 * 0.75)
    grey = torch.full((1, 2, 2, 1), 0.5)
    assert frames_to_uint8(grey).shape == (1, 2, 2, 3)
    rgba = torch.cat([torch.ones(1, 2, 2, 3), torch.full((1, 2, 2, 1), 0.5)], -1)
    assert int(frames_to_uint8(rgba)[0, 0, 0, 0]) == 128
    assert int(frames_to_uint8(grey, encode="srgb")[0, 0, 0, 0]) == 188


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        write_video(tmp_path / "seq.avi", _frames())
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "seq.gif", _frames(), fps=0)
    with pytest.raises(ValueError, match="channels"):
        write_video(tmp_path / "seq.gif", torch.zeros(2, 3, 3, 2))
    with pytest.raises(ValueError, match="NaN"):
        write_video(tmp_path / "seq.gif", torch.full((1, 2, 2, 3), float("nan")))
    with pytest.raises(TypeError, match="frames"):
        write_video(tmp_path / "seq.gif", torch.zeros(1, 2, 2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="tone"):
        write_video(tmp_path / "seq.gif", _frames(), tone="filmic")
    with pytest.raises(ValueError, match="png"):
        write_strip(tmp_path / "strip.jpg", _frames())
