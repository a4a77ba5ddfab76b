"""The thin-lens camera (``cameras/thin_lens.py``, ``Camera(aperture_radius=, focus_distance=)``): its rays, the
pinhole camera of each aperture point, validation and the renderers that refuse it."""

from __future__ import annotations

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras import Camera
from lumigrad.cameras.thin_lens import disk_points, lens_rays, pinhole_through
from lumigrad.scene.params import NONNEGATIVE_KINDS

from ..conftest import camera_at


def _lens_camera(**kw) -> Camera:
    return camera_at((0.4, -0.3, -3.0), size=(40, 30), aperture_radius=kw.pop("aperture_radius", 0.25),
                     focus_distance=kw.pop("focus_distance", 2.5), **kw)


def test_disk_points_are_uniform_in_area_and_mirror_through_the_centre():
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(200_000, 2, generator=gen, dtype=torch.float64)
    p = disk_points(u)
    r2 = (p ** 2).sum(-1)
    assert float(r2.max()) <= 1 + 1e-12
    # uniform in area: r^2 uniform on [0, 1], the angle uniform
    hist = torch.histc(r2, bins=10, min=0, max=1) / len(r2)
    assert float((hist - 0.1).abs().max()) < 0.005
    angle = torch.histc(torch.atan2(p[:, 1], p[:, 0]), bins=8, min=-math.pi, max=math.pi) / len(r2)
    assert float((angle - 0.125).abs().max()) < 0.005
    # the antithetic twin of u is the point mirrored through the centre (the boundary terms pair them)
    torch.testing.assert_close(disk_points(1 - u[:100]), -p[:100], atol=1e-12, rtol=0)
    # continuous: neighbouring samples stay neighbours (no jump across the wedges' borders)
    step = disk_points(u[:1000] + 1e-7) - p[:1000]
    assert float(step.norm(dim=-1).max()) < 1e-5


def test_every_point_of_a_lens_ray_projects_to_its_pixel_in_that_aperture_points_pinhole():
    cam = _lens_camera()
    gen = torch.Generator().manual_seed(1)
    uv = torch.rand(64, 2, generator=gen, dtype=torch.float64) * torch.tensor([40.0, 30.0], dtype=torch.float64)
    lens = torch.rand(64, 2, generator=gen, dtype=torch.float64)
    o, d = cam.ray_origins_directions(uv, lens)
    assert float(o[:, 2].abs().max()) == 0 and float((d[:, 2] - 1).abs().max()) == 0
    assert float(o[:, :2].norm(dim=-1).max()) <= 0.25 + 1e-12
    # every aperture point's ray meets the pixel's pinhole ray on the focal plane
    torch.testing.assert_close(o + 2.5 * d, 2.5 * cam.rays(uv), atol=1e-12, rtol=0)
    R, t = cam.world_to_cam[:3, :3], cam.world_to_cam[:3, 3]
    for k in range(8):
        pinhole = cam.through_lens(lens[k])
        assert not pinhole.thin_lens
        points = torch.stack([o[k] + z * d[k] for z in (0.3, 1.0, 2.5, 9.0)])
        uv_back, depth = pinhole.project(((points - t) @ R)[None])
        torch.testing.assert_close(uv_back[0], uv[k].expand(4, 2), atol=1e-9, rtol=0)


def test_batched_thin_lenses_give_each_view_its_own_aperture_and_focus():
    base = _lens_camera()
    cam = Camera(base.K.expand(2, 3, 3), base.world_to_cam.expand(2, 4, 4), 40, 30,
                 aperture_radius=torch.tensor([0.1, 0.3], dtype=torch.float64), focus_distance=2.0)
    assert cam.batch_shape == (2,) and cam.thin_lens
    uv = torch.full((2, 5, 2), 7.0, dtype=torch.float64)
    lens = torch.tensor([[[1.0, 0.5]] * 5] * 2, dtype=torch.float64)  # the aperture's rim, +x
    o, _ = cam.ray_origins_directions(uv, lens)
    assert o[:, 0, 0].tolist() == pytest.approx([0.1, 0.3])
    assert float(cam[1].aperture_radius) == pytest.approx(0.3) and float(cam[1].focus_distance) == 2.0
    assert cam.through_lens(torch.rand(2, 2, dtype=torch.float64)).K.shape == (2, 3, 3)
    assert cam.through_lens(torch.rand(2, dtype=torch.float64)).world_to_cam.shape == (2, 4, 4)


def test_the_lens_survives_copies_and_is_a_scene_parameter():
    cam = _lens_camera()
    for copy in (cam.resized(20, 15), cam.crop(3, 4, 10, 10), cam.to(dtype=torch.float32), cam.replace(near=0.1)):
        assert copy.thin_lens and float(copy.aperture_radius) == pytest.approx(0.25)
        assert float(copy.focus_distance) == pytest.approx(2.5)
    assert cam.to(dtype=torch.float32).aperture_radius.dtype == torch.float32
    assert set(cam.parameters()) == {"K", "world_to_cam", "aperture_radius", "focus_distance"}
    assert not cam.replace(aperture_radius=None, focus_distance=None).thin_lens
    scene = lg.Scene()
    scene.add_camera("main", cam)
    info = scene.param_info("cameras.main.aperture_radius")
    assert info.kind == "aperture" and info.kind in NONNEGATIVE_KINDS
    assert scene.param_info("cameras.main.focus_distance").kind == "focus_distance"
    scene["cameras.main.focus_distance"] = torch.tensor(4.0, dtype=torch.float64)
    assert float(scene.cameras["main"].focus_distance) == 4.0


@pytest.mark.parametrize("kw, match", [
    (dict(aperture_radius=0.1), "both aperture_radius and focus_distance"),
    (dict(focus_distance=2.0), "both aperture_radius and focus_distance"),
    (dict(aperture_radius=-0.1, focus_distance=2.0), "aperture_radius must be >= 0"),
    (dict(aperture_radius=0.1, focus_distance=0.0), "focus_distance must be > 0"),
    (dict(aperture_radius=float("nan"), focus_distance=2.0), "aperture_radius"),
    (dict(aperture_radius=0.1, focus_distance=float("inf")), "focus_distance"),
    (dict(aperture_radius=0.1, focus_distance=2.0, projection="orthographic"), "orthographic"),
    (dict(aperture_radius=0.1, focus_distance=2.0, distortion=torch.zeros(5, dtype=torch.float64)), "distortion"),
])
def test_bad_lenses_are_refused_by_name(kw, match):
    base = _lens_camera()
    with pytest.raises(ValueError, match=match):
        Camera(base.K, base.world_to_cam, 40, 30, **kw)


def test_bad_lens_types_are_refused():
    base = _lens_camera()
    with pytest.raises(ValueError, match="aperture_radius"):  # 3 apertures for 2 views
        Camera(base.K.expand(2, 3, 3), base.world_to_cam, 40, 30, aperture_radius=torch.zeros(3, dtype=torch.float64),
               focus_distance=2.0)
    with pytest.raises(TypeError, match="aperture_radius"):
        Camera(base.K, base.world_to_cam, 40, 30, aperture_radius="wide", focus_distance=2.0)
    with pytest.raises(TypeError, match="focus_distance"):
        Camera(base.K, base.world_to_cam, 40, 30, aperture_radius=0.1,
               focus_distance=torch.tensor(2.0, dtype=torch.float16))
    with pytest.raises(TypeError, match="aperture_radius is torch.float32 but K is torch.float64"):
        Camera(base.K, base.world_to_cam, 40, 30, aperture_radius=torch.tensor(0.1), focus_distance=2.0)
    with pytest.raises(ValueError, match="lens samples"):
        base.ray_origins_directions(torch.zeros(3, 2, dtype=torch.float64))


def test_renderers_without_depth_of_field_refuse_a_thin_lens():
    cam = _lens_camera()
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="thin lens.*rasterize"):
        lg.rasterize(verts, faces, cam)
    with pytest.raises(ValueError, match="thin lens.*soft_rasterize"):
        lg.soft_rasterize(verts, faces, cam)
    from lumigrad.volume.rays import camera_rays
    with pytest.raises(ValueError, match="thin lens.*volume"):
        camera_rays(cam)


def test_lens_maths_gradcheck():
    gen = torch.Generator().manual_seed(2)
    d = torch.cat([torch.rand(4, 2, generator=gen, dtype=torch.float64) - 0.5, torch.ones(4, 1, dtype=torch.float64)],
                  -1).requires_grad_(True)
    lens = torch.rand(4, 2, generator=gen, dtype=torch.float64)
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    f = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d, a, f: lens_rays(d, lens, a.expand(4), f.expand(4)), (d, a, f))
    cam = _lens_camera()
    K = cam.K.clone().requires_grad_(True)
    w2c = cam.world_to_cam.clone().requires_grad_(True)
    point = torch.tensor([0.1, -0.05], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda K, w, p, f: pinhole_through(K, w, p, f), (K, w2c, point, f))


def test_exchange_formats_keep_or_name_the_lens(tmp_path):
    from lumigrad.io import camera_to_pytorch3d, stack_cameras, write_colmap

    cam = _lens_camera()
    stacked = stack_cameras([cam, cam.replace(focus_distance=torch.tensor(5.0, dtype=torch.float64))])
    assert stacked.thin_lens and stacked.focus_distance.tolist() == [2.5, 5.0]
    with pytest.raises(ValueError, match="thin lens"):
        stack_cameras([cam, cam.replace(aperture_radius=None, focus_distance=None)])
    with pytest.raises(ValueError, match="thin lens"):
        camera_to_pytorch3d(cam)
    with pytest.warns(UserWarning, match="thin lens"):
        write_colmap(tmp_path / "colmap", {"a.png": cam})
