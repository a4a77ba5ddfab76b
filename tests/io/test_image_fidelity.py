"""Decoded images are bounded before allocation and keep what the file holds: 16-bit depth, alpha.

* A PNG of a few kilobytes that declares 13000 x 13000 pixels is refused from its header, before Pillow decodes
  a pixel, with one line naming the file (read_image, the registry, glTF textures). So are Radiance HDR and
  OpenEXR headers over the pixel budget, and Pillow's own decompression-bomb refusal.
* 16-bit PNGs (grey, grey + alpha, RGB, RGBA; every PNG row filter) are read as ``v / 65535`` exactly, never cut
  to 8 bits; a mode that cannot be read without loss is refused.
* EXR keeps alpha: RGBA written is RGBA read back, through write_exr / read_exr and io.save / io.load.
"""

import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import GltfError, read_exr, read_gltf, read_hdr, write_exr
from lumigrad.io import image as image_module
from lumigrad.io.image import decode_image, read_image, write_image
from lumigrad.limits import BudgetError, pixel_budget_override


# ------------------------------------------------------------------------------------------- PNG writing
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(row: bytes, prior: bytes, kind: int, bpp: int) -> bytes:
    """One scanline encoded with PNG filter ``kind`` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    out = bytearray([kind])
    for x, value in enumerate(row):
        a = row[x - bpp] if x >= bpp else 0
        b = prior[x]
        c = prior[x - bpp] if x >= bpp else 0
        predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
        out.append((value - predictor) % 256)
    return bytes(out)


def png_bytes(samples: np.ndarray, colour_type: int, bit_depth: int = 16, *, trns: bytes = b"") -> bytes:
    """A PNG of ``samples [H, W, C]`` written by hand, cycling through the five row filters."""
    height, width, channels = samples.shape
    raw = samples.astype(">u2" if bit_depth == 16 else "u1").reshape(height, -1).view(np.uint8)
    bpp = channels * bit_depth // 8
    prior = bytes(raw.shape[1])
    rows = []
    for r in range(height):
        row = raw[r].tobytes()
        rows.append(_filtered(row, prior, r % 5, bpp))
        prior = row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    extra = _chunk(b"tRNS", trns) if trns else b""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + _chunk(b"IEND", b""))


def huge_png(width: int = 13000, height: int = 13000) -> bytes:
    """A valid 1-bit PNG of ``width x height`` black pixels: about 20 KB, 21 MB of scanlines once inflated."""
    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + \
        packer.compress(row * (height % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def huge_png_bytes():
    return huge_png()


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Make any Pillow pixel decode fail the test: refusals must come from the header alone."""
    from PIL import ImageFile

    def load(self):
        raise AssertionError("Pillow was asked to decode the pixels of an image that should have been refused")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


# ------------------------------------------------------------------------------------------- the budget
def test_huge_png_is_refused_from_its_header_naming_the_file(tmp_path, huge_png_bytes, no_pixel_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png_bytes)
    assert path.stat().st_size < 40_000
    with pytest.raises(BudgetError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "13000x13000" in message and "budget" in message and "\n" not in message
    with pytest.raises(BudgetError, match="bomb.png: image is 13000x13000"):  # through the registry too
        lg.io.load(path)


def test_huge_png_texture_in_gltf_is_refused_before_decoding(tmp_path, huge_png_bytes, no_pixel_decoding):
    doc = _textured_gltf("data:image/png;base64," + base64.b64encode(huge_png_bytes).decode())
    path = tmp_path / "bomb.gltf"
    path.write_text(json.dumps(doc))
    with pytest.raises(GltfError) as info:
        read_gltf(path)
    assert isinstance(info.value, BudgetError)
    assert f"{path}: images[0]: image is 13000x13000 pixels" in str(info.value)


def test_the_textures_of_one_gltf_share_the_budget(tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (300, 200)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    doc = _textured_gltf(uri)
    doc["images"].append({"uri": uri})
    doc["textures"].append({"source": 1})
    doc["materials"][0]["emissiveTexture"] = {"index": 1}
    path = tmp_path / "two.gltf"
    path.write_text(json.dumps(doc))
    with pixel_budget_override(2 * 300 * 200):
        scene = read_gltf(path)
    assert scene.meshes["tri"].material.emissive_texture.shape == (200, 300, 3)
    with pixel_budget_override(2 * 300 * 200 - 1):  # each image fits, the two together do not
        with pytest.raises(BudgetError, match=r"two.gltf: the textures decoded up to images\[1\] \(300x200\) hold "
                                              "120000 pixels"):
            read_gltf(path)


def test_pillow_decompression_bomb_error_is_one_line_naming_the_file(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "small.png"
    Image.new("RGB", (30, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses above twice this
    with pytest.raises(BudgetError) as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: ") and "MAX_IMAGE_PIXELS" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_budget_can_be_raised_for_genuine_images(tmp_path):
    path = tmp_path / "wide.png"
    write_image(path, torch.rand(20, 50, 3))
    with pixel_budget_override(999):
        with pytest.raises(BudgetError, match="wide.png: image is 50x20 pixels"):
            read_image(path)
    with pixel_budget_override(1000):
        assert read_image(path).shape == (20, 50, 3)


def test_hdr_and_exr_headers_over_the_budget_are_refused_before_allocating(tmp_path):
    hdr = tmp_path / "big.hdr"
    hdr.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 13000 +X 13000\n" + bytes(64))
    with pytest.raises(BudgetError, match="big.hdr: declared size 13000x13000 .*over lumigrad's budget"):
        read_hdr(hdr)
    exr = tmp_path / "small.exr"
    write_exr(exr, torch.rand(6, 8, 4))
    with pixel_budget_override(47):
        with pytest.raises(BudgetError, match="small.exr: declared size 8x6 .*over lumigrad's budget of 47"):
            read_exr(exr)
        assert read_exr(exr, max_pixels=48).shape == (6, 8, 4)  # an explicit max_pixels is the override
    with pixel_budget_override(48):
        assert read_exr(exr).shape == (6, 8, 4)


# ------------------------------------------------------------------------------------- 16 bits per channel
# values that differ from their neighbours by less than 1/255: an 8-bit read merges them
FINE = np.array([0, 1, 2, 255, 256, 257, 32767, 32768, 65279, 65534, 65535], dtype=np.int64)


def _samples(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.choice(FINE, size=(height, width, channels))
    values[0, 0] = FINE[:channels] if channels <= len(FINE) else 0
    return values


@pytest.mark.parametrize("colour_type,channels", [(0, 1), (4, 2), (2, 3), (6, 4)],
                         ids=["grey", "grey+alpha", "rgb", "rgba"])
def test_16_bit_pngs_keep_their_depth_with_every_row_filter(colour_type, channels):
    samples = _samples(7, 5, channels, colour_type)  # 7 rows: every one of the 5 filters is used
    out = decode_image(png_bytes(samples, colour_type), "test.png")
    expected = (samples / 65535.0).astype(np.float32)
    if channels <= 2:  # grey (+ alpha) is read as RGB (A), as 8-bit grey images are
        expected = np.concatenate([np.repeat(expected[..., :1], 3, -1), expected[..., 1:]], -1)
    assert out.dtype == np.float32 and out.shape == (7, 5, 3 if channels in (1, 3) else 4)
    np.testing.assert_array_equal(out, expected)
    # the values below 1/255 apart are still apart
    assert len(np.unique(out[..., 0])) == len(np.unique(samples[..., 0]))


def test_8_bit_pngs_are_unchanged():
    samples = np.random.default_rng(3).integers(0, 256, size=(6, 4, 4))
    out = decode_image(png_bytes(samples, 6, bit_depth=8), "rgba8.png")
    np.testing.assert_array_equal(out, (samples / 255.0).astype(np.float32))


def test_pillow_written_16_bit_grey_png_is_read_exactly(tmp_path):
    from PIL import Image

    values = np.array([[0, 1, 257, 65535], [12345, 12346, 40000, 40001]], dtype=np.uint16)
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)  # mode I;16
    out = read_image(path)
    assert out.shape == (2, 4, 3)
    torch.testing.assert_close(out[..., 0], torch.from_numpy(values.astype(np.float32) / 65535), rtol=0, atol=0)


def test_16_bit_transparent_colour_becomes_alpha():
    samples = _samples(3, 4, 3, 7)
    samples[1, 2] = [257, 1, 65534]
    out = decode_image(png_bytes(samples, 2, trns=struct.pack(">3H", 257, 1, 65534)), "key.png")
    assert out.shape == (3, 4, 4)
    alpha = np.ones((3, 4), np.float32)
    alpha[(samples == [257, 1, 65534]).all(-1)] = 0
    np.testing.assert_array_equal(out[..., 3], alpha)
    np.testing.assert_array_equal(out[..., :3], (samples / 65535.0).astype(np.float32))


def test_a_16_bit_png_that_cannot_be_read_losslessly_is_refused(monkeypatch):
    samples = _samples(3, 4, 3, 1)
    # pretend this Pillow lacks the raw mode that hands over the low bytes
    monkeypatch.setitem(image_module._SIXTEEN_BIT_PNG, "RGB;16B", ("RGB;16B", "RGB;16Q", 3))
    with pytest.raises(ValueError, match="rgb16.png: this Pillow cannot hand over 16-bit PNG samples.*refuses to "
                                         "cut them to 8 bits"):
        decode_image(png_bytes(samples, 2), "rgb16.png")


def test_32_bit_integer_images_beyond_16_bits_are_refused(tmp_path):
    from PIL import Image

    path = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)
    with pytest.raises(ValueError, match="int32.tif: 32-bit integer image with values in \\[0, 70000\\]"):
        read_image(path)
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(path)
    torch.testing.assert_close(read_image(path)[0, :, 0], torch.tensor([0.0, 1.0]), rtol=0, atol=0)


def test_corrupt_png_is_one_value_error_naming_it(tmp_path):
    data = png_bytes(_samples(4, 4, 3, 2), 2)
    path = tmp_path / "cut.png"
    path.write_bytes(data[:-30])
    with pytest.raises(ValueError, match="cut.png: not a readable image"):
        read_image(path)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_write_image_16_bit_round_trip_is_exact(tmp_path, channels):
    image = torch.rand(5, 7, channels, dtype=torch.float64)
    path = tmp_path / "out16.png"
    write_image(path, image, bit_depth=16)
    back = read_image(path)
    stored = torch.round(image * 65535) / 65535
    if channels <= 2:
        stored = torch.cat([stored[..., :1].expand(5, 7, 3), stored[..., 1:]], -1)
    torch.testing.assert_close(back, stored.float(), rtol=0, atol=0)


def test_16_bit_gltf_texture_keeps_its_depth(tmp_path):
    samples = _samples(4, 4, 4, 11)
    doc = _textured_gltf("data:image/png;base64," + base64.b64encode(png_bytes(samples, 6)).decode())
    path = tmp_path / "tex16.gltf"
    path.write_text(json.dumps(doc))
    texture = read_gltf(path, dtype=torch.float64).meshes["tri"].material.base_color_texture
    torch.testing.assert_close(texture, torch.from_numpy((samples / 65535.0).astype(np.float32)).double(),
                               rtol=0, atol=0)


# ----------------------------------------------------------------------------------------- channels kept
@pytest.mark.parametrize("pixel_type", ["half", "float"])
def test_exr_keeps_alpha(tmp_path, pixel_type):
    rgba = torch.tensor([[[0.25, 0.5, 1.0, 0.0], [2.0, 4.0, 8.0, 0.5]],
                         [[0.125, 3.0, 16.0, 1.0], [0.0, 0.0, 0.0, 0.75]]])
    path = tmp_path / "rgba.exr"
    write_exr(path, rgba, pixel_type=pixel_type)
    torch.testing.assert_close(read_exr(path), rgba, rtol=0, atol=0)
    lg.io.save(tmp_path / "saved.exr", rgba)
    torch.testing.assert_close(lg.io.load(tmp_path / "saved.exr"), rgba, rtol=0, atol=0)


def test_write_image_keeps_or_refuses_channels(tmp_path):
    la = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    write_image(tmp_path / "la.png", la)
    torch.testing.assert_close(read_image(tmp_path / "la.png"), torch.tensor([[[0.0, 0, 0, 1], [1, 1, 1, 0]]]))
    with pytest.raises(ValueError, match="rgba.jpg: JPEG has no alpha channel"):
        write_image(tmp_path / "rgba.jpg", torch.rand(4, 4, 4))
    with pytest.raises(ValueError, match="C in 1..4; got \\(4, 4, 5\\)"):
        write_image(tmp_path / "five.png", torch.rand(4, 4, 5))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "nan.png", torch.full((2, 2, 3), float("nan")))
    with pytest.raises(ValueError, match="bit_depth=16 is written as PNG only"):
        write_image(tmp_path / "x.jpg", torch.rand(2, 2, 3), bit_depth=16)
    assert not (tmp_path / "rgba.jpg").exists() and not (tmp_path / "five.png").exists()


# ------------------------------------------------------------------------------------------------ helpers
def _textured_gltf(uri: str) -> dict:
    """One textured triangle named ``tri`` whose base colour texture is the image at ``uri``."""
    data = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32).tobytes() + \
        np.array([[0, 0], [1, 0], [0, 1]], np.float32).tobytes()
    return {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"name": "tri", "mesh": 0}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "material": 0}]}],
            "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
            "textures": [{"source": 0}], "images": [{"uri": uri}],
            "buffers": [{"byteLength": len(data),
                         "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()}],
            "bufferViews": [{"buffer": 0, "byteLength": 36}, {"buffer": 0, "byteOffset": 36, "byteLength": 24}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
                          {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC2"}]}
