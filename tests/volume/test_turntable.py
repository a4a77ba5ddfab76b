"""Turntable cameras on their circle looking at the box centre; the contact sheet's layout; GIF / PNG / MP4 writing
(through lumigrad.io.write_frames; lumigrad.volume.write_turntable is its deprecated alias)."""

import math
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from lumigrad.io import write_frames
from lumigrad.volume import camera_rays, image_strip, ray_aabb, turntable_cameras, write_turntable

BOX = torch.tensor([[-1.0, 0.0, 2.0], [3.0, 2.0, 4.0]])  # a 4 x 2 x 2 box around (1, 1, 3)
CENTRE = torch.tensor([1.0, 1.0, 3.0])
HALF_DIAGONAL = 0.5 * math.sqrt(4 ** 2 + 2 ** 2 + 2 ** 2)


def camera_centres(cams):
    R, t = cams.world_to_cam[..., :3, :3].double(), cams.world_to_cam[..., :3, 3].double()
    return -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # c = -R^T t


def test_cameras_stand_evenly_on_the_circle_and_look_at_the_centre():
    views, elevation, distance = 8, 25.0, 7.0
    cams = turntable_cameras(BOX, views=views, size=(32, 24), elevation_deg=elevation, distance=distance)
    assert tuple(cams.batch_shape) == (views,) and (cams.width, cams.height) == (32, 24)
    offset = camera_centres(cams) - CENTRE.double()
    assert torch.allclose(offset.norm(dim=-1), torch.full((views,), distance, dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(offset[:, 1] / distance, torch.full((views,), math.sin(math.radians(elevation)),
                                                               dtype=torch.float64), atol=1e-5)
    azimuth = torch.atan2(offset[:, 0], offset[:, 2])  # view 0 on +z, turning towards +x
    step = torch.remainder(azimuth.roll(-1) - azimuth, 2 * math.pi)
    assert torch.allclose(step, torch.full((views,), 2 * math.pi / views, dtype=torch.float64), atol=1e-5)
    assert abs(float(azimuth[0])) < 1e-5
    uv, depth = cams.project(CENTRE.expand(views, 1, 3))
    assert torch.allclose(uv[:, 0], torch.tensor([16.0, 12.0]).expand(views, 2), atol=1e-4)
    assert torch.allclose(depth[:, 0], torch.full((views,), distance), rtol=1e-5)
    above, _ = cams.project((CENTRE + torch.tensor([0.0, 0.1, 0.0])).expand(views, 1, 3))
    assert bool((above[:, 0, 1] < 12.0).all())  # world +y is shown upwards (smaller row)
    rays = camera_rays(cams)  # the batched camera feeds the volume renderer as it is
    assert rays.directions.shape == (views, 24, 32, 3)
    near, far, hit = ray_aabb(rays.origins[:, 12, 16], rays.directions[:, 12, 16], BOX.reshape(6))
    assert bool(hit.all()) and bool((far > near).all())  # the middle pixel's ray crosses the box


@pytest.mark.parametrize("size", [(32, 24), (24, 32)], ids=["wide", "tall"])
def test_default_distance_makes_the_bounding_sphere_fill_the_frame(size):
    fov_y = 40.0
    cams = turntable_cameras(BOX, views=3, size=size, fov_y_deg=fov_y)
    distance = float((camera_centres(cams)[0] - CENTRE.double()).norm())
    # the ray through the middle of the narrower side's edge grazes the sphere: its angle to the axis is
    # asin(r / distance)
    W, H = size
    edge = torch.tensor([[W / 2, 0.0]]) if W >= H else torch.tensor([[0.0, H / 2]])
    _, d = cams[0].ray_origins_directions(edge)
    angle = math.atan2(float(d[0, :2].norm()), float(d[0, 2]))
    assert angle == pytest.approx(math.asin(HALF_DIAGONAL / distance), rel=1e-5)
    # and the sphere's points all project inside the frame
    g = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
    surface = CENTRE + HALF_DIAGONAL * g / g.norm(dim=-1, keepdim=True)
    uv, _ = cams.project(surface.expand(3, -1, -1))
    assert float(uv[..., 0].min()) >= -1e-3 and float(uv[..., 0].max()) <= W + 1e-3
    assert float(uv[..., 1].min()) >= -1e-3 and float(uv[..., 1].max()) <= H + 1e-3


def test_another_up_axis():
    up = (0.0, 0.0, 2.0)
    cams = turntable_cameras(BOX, views=4, size=(16, 16), elevation_deg=0.0, up=up)
    offset = camera_centres(cams) - CENTRE.double()
    assert torch.allclose(offset[:, 2], torch.zeros(4, dtype=torch.float64), atol=1e-5)  # on the z = centre plane
    uv, _ = cams.project((CENTRE + torch.tensor([0.0, 0.0, 0.1])).expand(4, 1, 3))
    assert bool((uv[:, 0, 1] < 8.0).all())  # +z shown upwards
    assert turntable_cameras(BOX.double(), views=2, size=(8, 8)).dtype == torch.float64


@pytest.mark.parametrize("kwargs, error, needle", [
    (dict(views=0), ValueError, "views"),
    (dict(views=2.0), TypeError, "views"),
    (dict(size=(16,)), ValueError, "size"),
    (dict(size=(16, 0)), ValueError, "size"),
    (dict(elevation_deg=90.0), ValueError, "elevation_deg"),
    (dict(fov_y_deg=0.0), ValueError, "fov_y_deg"),
    (dict(fov_y_deg=180.0), ValueError, "fov_y_deg"),
    (dict(distance=-1.0), ValueError, "distance"),
    (dict(up=(0.0, 0.0, 0.0)), ValueError, "up"),
    (dict(up=(0.0, 1.0)), ValueError, "up"),
    (dict(aabb=[0.0, 0.0, 0.0]), ValueError, "aabb"),
])
def test_bad_camera_arguments_name_themselves(kwargs, error, needle):
    args = dict(aabb=BOX, views=4, size=(16, 16))
    args.update(kwargs)
    with pytest.raises(error, match=needle):
        turntable_cameras(args.pop("aabb"), **args)


def frames(n=5, h=2, w=3):
    """``n`` constant frames, frame k of value k / n (distinct after the 8-bit rounding)."""
    return (torch.arange(n, dtype=torch.float32) / n)[:, None, None, None].expand(n, h, w, 3).clone()


def test_image_strip_layout():
    images = frames()
    sheet = image_strip(images, columns=2)
    assert sheet.shape == (3 * 2, 2 * 3, 3)
    for k in range(5):
        r, c = divmod(k, 2)
        assert torch.equal(sheet[2 * r:2 * r + 2, 3 * c:3 * c + 3], images[k])
    assert torch.equal(sheet[4:6, 3:6], torch.zeros(2, 3, 3))  # the cell after the last image
    assert image_strip(images).shape == (2 * 2, 3 * 3, 3)  # default: ceil(sqrt(5)) = 3 columns
    assert image_strip(images, columns=9).shape == (2, 5 * 3, 3)  # capped at N: one row
    x = images.clone().requires_grad_()
    (image_strip(x, columns=2) * torch.arange(36.0).reshape(6, 6, 1)).sum().backward()
    assert torch.equal(x.grad[1, 0, 0], torch.full((3,), 3.0))  # image 1, pixel (0, 0) sits at sheet (0, 3)
    with pytest.raises(ValueError, match="images"):
        image_strip(images[0])
    with pytest.raises(ValueError, match="images"):
        image_strip(images[:0])
    with pytest.raises(ValueError, match="columns"):
        image_strip(images, columns=0)


def test_gif_has_one_frame_per_image(tmp_path):
    images = frames(6, 16, 16)
    with pytest.warns(FutureWarning, match="write_turntable is deprecated.*lumigrad.io.write_frames"):
        write_turntable(tmp_path / "spin.gif", images, fps=12)
    with Image.open(tmp_path / "spin.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (16, 16)
        assert gif.info["duration"] == 80  # 1 / 12 s rounded to GIF's 10 ms
        for k in range(6):
            gif.seek(k)
            got = np.asarray(gif.convert("RGB"))
            assert (got == round(255 * k / 6)).all()
    write_frames(tmp_path / "same.gif", images, fps=12)  # one code path: the same bytes
    assert (tmp_path / "same.gif").read_bytes() == (tmp_path / "spin.gif").read_bytes()


def test_png_is_the_contact_sheet_clamped_to_8_bits(tmp_path):
    images = frames(5, 4, 4) * 3 - 1  # values from -1 to 1.4: clamped
    with pytest.warns(FutureWarning):
        write_turntable(tmp_path / "sheet.PNG", images, columns=3)
        write_turntable(tmp_path / "square.png", images)  # default: the nearly square sheet, as before
    got = torch.from_numpy(np.array(Image.open(tmp_path / "sheet.PNG")))
    expect = image_strip((images.clamp(0, 1) * 255).round().to(torch.uint8), columns=3)
    assert torch.equal(got, expect)
    assert np.array(Image.open(tmp_path / "square.png")).shape == (8, 12, 3)  # ceil(sqrt(5)) = 3 columns


def _fake_imageio(monkeypatch, calls):
    fake = types.ModuleType("imageio")
    fake.v2 = types.ModuleType("imageio.v2")
    fake.v2.mimwrite = lambda path, frames, **kw: calls.append((path, frames, kw))
    monkeypatch.setitem(sys.modules, "imageio", fake)
    monkeypatch.setitem(sys.modules, "imageio.v2", fake.v2)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.ModuleType("imageio_ffmpeg"))


def test_mp4_goes_through_write_video(tmp_path, monkeypatch):
    """Since the writer is lumigrad.io.write_video's, an MP4 is H.264 in yuv420p (before: imageio's defaults)."""
    calls = []
    _fake_imageio(monkeypatch, calls)
    with pytest.warns(FutureWarning):
        write_turntable(tmp_path / "spin.mp4", frames(4, 8, 8), fps=24)
    (path, written, kw), = calls
    assert path.endswith("spin.mp4") and kw["fps"] == 24 and len(written) == 4
    assert kw["codec"] == "libx264" and kw["pixelformat"] == "yuv420p"
    assert written[1].dtype == np.uint8 and written[1].shape == (8, 8, 3) and (written[1] == 64).all()


def test_mp4_without_imageio_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio raises ImportError
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.warns(FutureWarning), pytest.raises(ImportError, match=r"pip install lumigrad\[video\].*\.gif"):
        write_turntable(tmp_path / "spin.mp4", frames())


@pytest.mark.parametrize("path, images, kwargs, error, needle", [
    ("a.webm", frames(), {}, ValueError, "path"),
    ("a.gif", frames() * float("nan"), {}, ValueError, "NaN"),
    ("a.gif", frames()[..., :2], {}, ValueError, "channels"),
    ("a.gif", frames()[0], {}, ValueError, "frames"),
    ("a.gif", frames()[:0], {}, ValueError, "frames"),
    ("a.gif", (frames() * 255).to(torch.uint8), {}, TypeError, "frames"),
    ("a.gif", frames(), {"fps": 0}, ValueError, "fps"),
    ("a.png", frames(), {"fps": 0}, ValueError, "fps"),
])
def test_bad_writer_arguments_name_themselves(tmp_path, path, images, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        write_frames(tmp_path / path, images, **kwargs)
    assert not (tmp_path / path).exists()
