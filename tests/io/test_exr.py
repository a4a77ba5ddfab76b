"""OpenEXR reading and writing: round trips, files written by the OpenEXR library, malformed files refused."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lumigrad.io.exr import read_exr, write_exr

DATA = Path(__file__).parent / "data"
# Written by the OpenEXR library 3.5.3 (PyPI `OpenEXR`), not by write_exr: R = x + 8y, G = 4^-x,
# B = -0.125 (y + 1) except B[0, 0] = 60000; 8x6, HALF, one ZIP chunk of 88 compressed bytes.
ZIP_FIXTURE = DATA / "openexr_8x6_rgb_half_zip.exr"
PIZ_FIXTURE = DATA / "openexr_8x6_rgb_half_piz.exr"  # the same pixels with PIZ compression
# Luminance Y, 5x20 HALF, RLE, DECREASING_Y line order: rows 0-9 are 0.5, row y >= 10 is 100 (x + 1) + y.
RLE_FIXTURE = DATA / "openexr_5x20_y_half_rle_decreasing.exr"


def _fixture_expected() -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    blue = -0.125 * (y + 1)
    blue[0, 0] = 60000.0
    return torch.stack([x + 8 * y, 4.0 ** -x, blue], -1)


def _test_image(H, W, C, pixel_type, seed=0):
    g = torch.Generator().manual_seed(seed)
    if pixel_type == "half":
        scale = torch.logspace(-4, 4, W)  # 1e-4 .. 1e4 across the columns
    else:
        scale = torch.logspace(-30, 30, W)
    image = torch.rand(H, W, C, generator=g) * scale[None, :, None]
    image[H // 2] = 0.25  # runs, for RLE
    image[0, 0, 0] = 6e4 if pixel_type == "half" else 3e38
    image[-1, -1, -1] = -2.5
    if W > 1:
        image[0, 1, 0] = 1e-7 if pixel_type == "half" else 1e-40  # subnormal in either type
    return image


def _stored(image, pixel_type):
    return image.half().float() if pixel_type == "half" else image


@pytest.mark.parametrize("compression", ["none", "rle", "zips", "zip"])
@pytest.mark.parametrize("pixel_type", ["half", "float"])
@pytest.mark.parametrize("C", [1, 3, 4])
def test_round_trip_is_exact_in_the_stored_precision(tmp_path, compression, pixel_type, C):
    for H, W in [(17, 5), (1, 1), (35, 9)]:  # 35 rows: two full ZIP chunks and a partial one
        image = _test_image(H, W, C, pixel_type, seed=H)
        write_exr(tmp_path / "x.exr", image, compression=compression, pixel_type=pixel_type)
        back = read_exr(tmp_path / "x.exr")
        assert back.shape == (H, W, C) and back.dtype == torch.float32
        assert torch.equal(back, _stored(image, pixel_type)), (H, W)


def test_compression_pays_on_smooth_images_and_accepts_any_device_and_dtype(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 48), indexing="ij")
    image = torch.stack([x, y, x * y], -1).double()
    sizes = {}
    for compression in ["none", "rle", "zips", "zip"]:
        write_exr(tmp_path / f"{compression}.exr", image, compression=compression)
        sizes[compression] = (tmp_path / f"{compression}.exr").stat().st_size
        assert torch.equal(read_exr(tmp_path / f"{compression}.exr"), image.half().float())
    assert sizes["zip"] < sizes["zips"] < sizes["none"] and sizes["rle"] < sizes["none"]


def test_openexr_library_zip_fixture_reads_exactly():
    image = read_exr(ZIP_FIXTURE)
    assert image.shape == (6, 8, 3) and image.dtype == torch.float32
    assert torch.equal(image, _fixture_expected())
    assert float(image[0, 7, 1]) == 2.0 ** -14  # smallest normal half, row 0 is the file's first scanline


def test_openexr_library_rle_luminance_fixture_with_decreasing_line_order():
    image = read_exr(RLE_FIXTURE)
    assert image.shape == (20, 5, 1)
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(5.0), indexing="ij")
    assert torch.equal(image[..., 0], torch.where(y < 10, 0.5, 100 * (x + 1) + y))


@pytest.fixture
def no_openexr(monkeypatch):
    """Make ``import OpenEXR`` fail, as where the ``exr`` extra is not installed."""
    monkeypatch.setitem(sys.modules, "OpenEXR", None)


def test_piz_without_the_bindings_names_the_extra(no_openexr):
    with pytest.raises(ImportError, match=r"openexr_8x6_rgb_half_piz\.exr: reading PIZ compression needs the "
                                          r"OpenEXR bindings: pip install 'lumigrad\[exr\]'"):
        read_exr(PIZ_FIXTURE)


def test_piz_fixture_through_the_bindings():
    pytest.importorskip("OpenEXR")
    assert torch.equal(read_exr(PIZ_FIXTURE), _fixture_expected())
    assert torch.equal(read_exr(PIZ_FIXTURE), read_exr(ZIP_FIXTURE))


def _openexr_file(OpenEXR, path, planes: dict, compression, tile=None, window=None):
    header = {"compression": compression, "type": OpenEXR.scanlineimage}
    if tile is not None:
        description = OpenEXR.TileDescription()
        description.xSize, description.ySize, description.mode = tile[0], tile[1], OpenEXR.ONE_LEVEL
        header.update(type=OpenEXR.tiledimage, tiles=description)
    if window is not None:
        header["dataWindow"] = tuple(np.array(corner, dtype=np.int32) for corner in window)
    with OpenEXR.File(header, planes) as exr:
        exr.write(str(path))
    return path


@pytest.mark.parametrize("kind", ["piz", "dwaa", "pxr24 float", "b44", "tiled zip", "tiled piz"])
def test_files_only_the_bindings_read_come_back_equal(tmp_path, kind):
    """PIZ, DWAA, PXR24, B44 and tiled files written by the OpenEXR library, read back through the backend:
    equal to what was written, in the stored precision. The lossy ones are run where they are exact: DWAA on
    channels it keeps losslessly (A, Z), B44 on constant 4x4 HALF blocks, PXR24 compared with its 24-bit float
    rounding."""
    OpenEXR = pytest.importorskip("OpenEXR")
    pixel_type = "half" if kind in ("piz", "tiled zip", "tiled piz") else "float"
    image = _test_image(13, 11, 4, pixel_type)
    if kind == "b44":  # lossy on varying HALF blocks; flat 4x4 blocks are stored exactly
        image = torch.full((12, 8, 4), 0.375)
        pixel_type = "half"
    numpy_type = np.float16 if pixel_type == "half" else np.float32
    names = "AZ" if kind == "dwaa" else "RGBA"  # DWA stores R, G, B, Y lossily (a DCT); other channels losslessly
    image = image[..., :len(names)]
    planes = {k: image[..., c].numpy().astype(numpy_type) for c, k in enumerate(names)}
    codes = {"piz": OpenEXR.PIZ_COMPRESSION, "dwaa": OpenEXR.DWAA_COMPRESSION, "pxr24 float": None,
             "b44": OpenEXR.B44_COMPRESSION, "tiled zip": OpenEXR.ZIP_COMPRESSION, "tiled piz": OpenEXR.PIZ_COMPRESSION}
    if kind == "pxr24 float":  # PXR24 rounds FLOAT to 24 bits: compare with that rounding instead
        codes[kind] = OpenEXR.PXR24_COMPRESSION
    tile = (4, 3) if kind.startswith("tiled") else None
    path = _openexr_file(OpenEXR, tmp_path / "x.exr", planes, codes[kind], tile)
    got = read_exr(path)
    expected = _stored(image, pixel_type)
    assert got.shape == image.shape and got.dtype == torch.float32
    if kind == "pxr24 float":
        bits = expected.numpy().view(np.uint32)
        rounded = ((bits.astype(np.uint64) + 0x80) & 0xFFFFFF00).astype(np.uint32)  # to the nearest 24-bit float
        assert np.array_equal(got.numpy().view(np.uint32), rounded)
    else:
        assert torch.equal(got, expected)


def test_bindings_keep_channel_selection_budget_and_data_window(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    depth = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
    planes = {"Y": depth * 0.5, "Z": depth}
    path = _openexr_file(OpenEXR, tmp_path / "y.exr", planes, OpenEXR.PIZ_COMPRESSION,
                         window=((2, 3), (6, 8)))  # x 2..6, y 3..8: 5 x 6 pixels, offset from the origin
    got = read_exr(path)
    assert got.shape == (6, 5, 1)  # Y only: Z is dropped, as by the numpy reader
    assert torch.equal(got[..., 0], torch.from_numpy(depth * 0.5))
    with pytest.raises(ValueError, match="declared size 5x6 exceeds max_pixels=29"):
        read_exr(path, max_pixels=29)  # checked on the header, before the bindings allocate


def test_numpy_reader_never_asks_for_the_bindings(tmp_path, no_openexr):
    image = _test_image(9, 7, 3, "half")
    for compression in ["none", "rle", "zips", "zip"]:
        write_exr(tmp_path / "x.exr", image, compression=compression)
        assert torch.equal(read_exr(tmp_path / "x.exr"), image.half().float())
    assert torch.equal(read_exr(ZIP_FIXTURE), _fixture_expected())


def _attribute(name: str, type_name: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _handmade_exr(path, channels: dict, *, window=None, compression=0) -> Path:
    """An uncompressed scanline file built here byte by byte: ``channels`` maps name -> (type code, [H, W])."""
    names = sorted(channels)
    H, W = next(iter(channels.values()))[1].shape
    x0, y0 = window or (0, 0)
    dtypes = {0: "<u4", 1: "<f2", 2: "<f4"}
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", channels[n][0], 0, 1, 1) for n in names) + b"\0"
    box = struct.pack("<4i", x0, y0, x0 + W - 1, y0 + H - 1)
    header = struct.pack("<II", 20000630, 2) + _attribute("channels", "chlist", chlist) \
        + _attribute("compression", "compression", bytes([compression])) + _attribute("dataWindow", "box2i", box) \
        + _attribute("displayWindow", "box2i", struct.pack("<4i", 0, 0, 99, 99)) \
        + _attribute("lineOrder", "lineOrder", b"\0") + _attribute("owner", "string", b"lumigrad tests") + b"\0"
    chunks = [struct.pack("<i", y0 + row) + b"".join(np.asarray(channels[n][1][row], dtypes[channels[n][0]]).tobytes()
                                                      for n in names) for row in range(H)]
    chunks = [c[:4] + struct.pack("<i", len(c) - 4) + c[4:] for c in chunks]
    offsets = np.cumsum([len(header) + 8 * H] + [len(c) for c in chunks[:-1]]).astype("<u8")
    Path(path).write_bytes(header + offsets.tobytes() + b"".join(chunks))
    return Path(path)


def test_channel_selection_mixed_pixel_types_and_offset_data_window(tmp_path):
    ramp = np.arange(12, dtype=np.float64).reshape(3, 4)
    # R, G, B, A chosen in that order; Z and a layer channel dropped; UINT and HALF and FLOAT mixed.
    path = _handmade_exr(tmp_path / "rgba.exr", {"A": (1, ramp + 0.5), "B": (2, -ramp), "G": (0, ramp * 1000),
                                                 "R": (1, ramp / 4), "Z": (2, ramp + 7), "diffuse.R": (1, ramp)},
                         window=(10, 20))
    image = read_exr(path)
    assert image.shape == (3, 4, 4)  # the data window's pixels, not the 100x100 display window
    expected = np.stack([ramp / 4, ramp * 1000, -ramp, ramp + 0.5], -1)
    assert torch.equal(image, torch.from_numpy(expected).float())
    # Y with A gives [Y, A]; a file with neither RGB nor Y gives every channel alphabetically.
    image = read_exr(_handmade_exr(tmp_path / "ya.exr", {"Y": (2, ramp), "A": (1, ramp / 8)}))
    assert torch.equal(image, torch.from_numpy(np.stack([ramp, ramp / 8], -1)).float())
    image = read_exr(_handmade_exr(tmp_path / "zv.exr", {"depth.V": (2, ramp), "Z": (2, -ramp)}))
    assert torch.equal(image, torch.from_numpy(np.stack([-ramp, ramp], -1)).float())  # "Z" < "depth.V"


def test_nan_and_inf_pixels_are_kept_as_stored(tmp_path):
    values = np.array([[np.nan, np.inf, -np.inf, 1.0]])
    image = read_exr(_handmade_exr(tmp_path / "nan.exr", {"Y": (1, values)}))
    assert torch.isnan(image[0, 0, 0]) and image[0, 1, 0] == float("inf") and image[0, 2, 0] == -float("inf")


def test_a_compressed_file_may_store_a_chunk_raw(tmp_path):
    # A ZIPS file whose chunks did not compress: each chunk's size equals the uncompressed size.
    image = _test_image(3, 4, 3, "float")
    write_exr(tmp_path / "x.exr", image, compression="none", pixel_type="float")
    data = bytearray((tmp_path / "x.exr").read_bytes())
    at = data.index(b"compression\0compression\0") + 28
    assert data[at] == 0
    data[at] = 2  # ZIPS: one scanline per chunk, like NONE
    (tmp_path / "x.exr").write_bytes(bytes(data))
    assert torch.equal(read_exr(tmp_path / "x.exr"), image)


def _patched(tmp_path, data: bytes, at: int, value: bytes) -> Path:
    path = tmp_path / "bad.exr"
    path.write_bytes(data[:at] + value + data[at + len(value):])
    return path


def _header_value(data: bytes, name: bytes) -> int:
    """Offset of the value of header attribute ``name``."""
    at = data.index(name + b"\0")
    return data.index(b"\0", at + len(name) + 1) + 5


def test_truncated_at_every_point_is_refused(tmp_path):
    data = ZIP_FIXTURE.read_bytes()
    path = tmp_path / "cut.exr"
    escaped = []
    for n in range(len(data)):  # in the magic, version, header, offset table, chunk header and chunk data
        path.write_bytes(data[:n])
        try:
            read_exr(path)
            escaped.append((n, "no error"))
        except ValueError as exc:
            if f"{path}: truncated" not in str(exc):
                escaped.append((n, str(exc)))
    assert not escaped


@pytest.mark.parametrize("how,message", [
    ("magic", "not an OpenEXR file"),
    ("version", "unsupported OpenEXR file version 3"),
    ("multipart", "multi-part OpenEXR files are not supported"),
    ("deep", "deep .* not supported"),
    ("huge", "declared size 2000000000x6 .*over lumigrad.s budget"),
    ("empty", "is empty"),
    ("code", "compression code 42 is not supported"),
    ("missing", "required attribute 'channels' is missing"),
    ("subsampled", "subsampled"),
    ("pixel type", "unknown pixel type 7"),
    ("offset into header", "bad offset 8 for chunk 0"),
    ("offset past end", "truncated: chunk 0 at offset .* past the end"),
    ("chunk y", "holds scanline y=5; expected y=0"),
    ("chunk size", "declares 99999 bytes"),
    ("wider window", "decompresses to 288 bytes; expected 324"),
    ("zlib", "corrupt zlib data|decompresses to"),
])
def test_malformed_files_are_refused_with_a_clear_message(tmp_path, how, message):
    data = ZIP_FIXTURE.read_bytes()
    window = _header_value(data, b"dataWindow")
    table = _header_value(data, b"type") + len(b"scanlineimage") + 1  # the header ends with 'type', then a null
    chunk = struct.unpack_from("<Q", data, table)[0]
    patches = {
        "magic": (0, b"\x76\x2f\x31\x02"),
        "version": (4, b"\x03"),
        "multipart": (5, b"\x10"),
        "deep": (5, b"\x08"),
        "huge": (window + 8, struct.pack("<i", 2_000_000_000 - 1)),
        "empty": (window + 8, struct.pack("<i", -5)),
        "code": (_header_value(data, b"compression"), b"\x2a"),
        "missing": (data.index(b"channels"), b"chAnnels"),
        "subsampled": (_header_value(data, b"channels") + 2 + 8, struct.pack("<i", 2)),
        "pixel type": (_header_value(data, b"channels") + 2, struct.pack("<i", 7)),
        "offset into header": (table, struct.pack("<Q", 8)),
        "offset past end": (table, struct.pack("<Q", 10_000)),
        "chunk y": (chunk, struct.pack("<i", 5)),
        "chunk size": (chunk + 4, struct.pack("<i", 99999)),
        "wider window": (window + 8, struct.pack("<i", 8)),  # 9 columns declared, 8 stored
        "zlib": (chunk + 8 + 20, b"\xff\x00\xff\x00"),
    }
    at, value = patches[how]
    with pytest.raises(ValueError, match="bad.exr: .*" + message):
        read_exr(_patched(tmp_path, data, at, value))


@pytest.mark.parametrize("how,needs", [("tiled", "a tiled image"), ("dwab", "DWAB compression")])
def test_files_for_the_bindings_name_the_extra_when_missing(tmp_path, no_openexr, how, needs):
    data = ZIP_FIXTURE.read_bytes()
    at, value = {"tiled": (5, b"\x02"), "dwab": (_header_value(data, b"compression"), b"\x09")}[how]
    with pytest.raises(ImportError, match=f"bad.exr: reading {needs} needs the OpenEXR bindings: "
                                          r"pip install 'lumigrad\[exr\]'"):
        read_exr(_patched(tmp_path, data, at, value))


def test_max_pixels_is_checked_before_reading_pixels():
    with pytest.raises(ValueError, match="declared size 8x6 exceeds max_pixels=47"):
        read_exr(ZIP_FIXTURE, max_pixels=47)
    assert read_exr(ZIP_FIXTURE, max_pixels=48).shape == (6, 8, 3)


def test_random_corruption_never_escapes_as_another_error(tmp_path):
    data = ZIP_FIXTURE.read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "fuzz.exr"
    for _ in range(300):
        corrupt = bytearray(data)
        for at in rng.integers(0, len(data), size=rng.integers(1, 4)):
            corrupt[at] = int(rng.integers(0, 256))
        path.write_bytes(bytes(corrupt))
        try:
            image = read_exr(path)
        except (ValueError, ImportError) as exc:  # ImportError: a byte now asks for the missing bindings
            assert "fuzz.exr" in str(exc)
        else:
            assert image.dim() == 3 and image.dtype == torch.float32


def test_write_refuses_bad_images(tmp_path):
    path = tmp_path / "x.exr"
    with pytest.raises(ValueError, match=r"image must have shape"):
        write_exr(path, torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"C in \(1, 3, 4\); got \(4, 4, 2\)"):
        write_exr(path, torch.zeros(4, 4, 2))
    with pytest.raises(ValueError, match="must not be empty"):
        write_exr(path, torch.zeros(0, 4, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_exr(path, torch.full((2, 2, 3), float("nan")))
    with pytest.raises(ValueError, match="beyond the half range .*use pixel_type='float'"):
        write_exr(path, torch.full((2, 2, 3), 1e5))
    with pytest.raises(ValueError, match="beyond the float range"):
        write_exr(path, torch.full((2, 2, 3), 1e300, dtype=torch.float64), pixel_type="float")
    with pytest.raises(ValueError, match="compression must be one of"):
        write_exr(path, torch.zeros(2, 2, 3), compression="piz")
    with pytest.raises(ValueError, match="pixel_type must be"):
        write_exr(path, torch.zeros(2, 2, 3), pixel_type="uint")
    with pytest.raises(TypeError, match="floating dtype"):
        write_exr(path, torch.zeros(2, 2, 3, dtype=torch.int32))
    assert not path.exists()


def test_cross_check_with_the_openexr_library(tmp_path):
    """Both directions against the reference implementation; skipped where `OpenEXR` is not installed."""
    OpenEXR = pytest.importorskip("OpenEXR")
    if not hasattr(OpenEXR, "File"):
        pytest.skip("needs the OpenEXR >= 3.3 Python API")
    codes = {"none": OpenEXR.NO_COMPRESSION, "rle": OpenEXR.RLE_COMPRESSION, "zips": OpenEXR.ZIPS_COMPRESSION,
             "zip": OpenEXR.ZIP_COMPRESSION}
    image = _test_image(37, 21, 4, "half")
    for compression, code in codes.items():
        write_exr(tmp_path / "ours.exr", image, compression=compression)
        with OpenEXR.File(str(tmp_path / "ours.exr"), separate_channels=True) as exr:
            channels = exr.channels()
            theirs = np.stack([channels[k].pixels.astype(np.float32) for k in "RGBA"], -1)
        assert np.array_equal(theirs, image.half().float().numpy()), compression
        planes = {k: image[..., c].numpy().astype(np.float16) for c, k in enumerate("RGBA")}
        with OpenEXR.File({"compression": code, "type": OpenEXR.scanlineimage}, planes) as exr:
            exr.write(str(tmp_path / "theirs.exr"))
        assert torch.equal(read_exr(tmp_path / "theirs.exr"), image.half().float()), compression
