"""OpenSfM reconstruction import: a real 3-photo capture with solved cameras and radial distortion."""

import numpy as np
import pytest
import torch

from lumigrad.conventions import axis_angle_to_matrix
from lumigrad.io.opensfm import lla_to_topocentric, read_opensfm

from ..conftest import SHARED_DATA

BERLIN = SHARED_DATA / "opensfm-berlin" / "reconstruction_example.json"
pytestmark = pytest.mark.skipif(not BERLIN.exists(), reason="shared data not present")


def _pixels(camera, points):
    return camera.project(points)


def test_cameras_and_points_load():
    rec = read_opensfm(BERLIN)
    assert sorted(rec.shots) == ["01.jpg", "02.jpg", "03.jpg"]
    assert rec.points.shape == (1430, 3) and rec.colors.shape == (1430, 3)
    cam = rec.shots["01.jpg"]
    assert (cam.width, cam.height) == (3264, 2448)
    assert abs(float(cam.K[0, 0]) - 0.8696658484855359 * 3264) < 1e-9
    assert float(cam.K[0, 2]) == 1632.0 and float(cam.K[1, 2]) == 1224.0
    assert cam.distortion_model == "opencv" and torch.allclose(
        cam.distortion, torch.tensor([0.08851464962037196, -0.2324428377906099, 0, 0, 0], dtype=torch.float64))


def test_points_land_in_the_images_as_the_reconstruction_says():
    # Every solved point lies in front of all three cameras; all of them are seen inside images 01 and 02
    # and 68 % inside 03 (the sparse points come from features matched in the first two).
    rec = read_opensfm(BERLIN)
    fractions = {}
    for name, shot in rec.shots.items():
        uv, z = _pixels(shot, rec.points)
        assert (z > 0).all()
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < 3264) & (uv[:, 1] >= 0) & (uv[:, 1] < 2448)
        fractions[name] = float(inside.double().mean())
    assert fractions["01.jpg"] == 1.0 and fractions["02.jpg"] == 1.0
    assert abs(fractions["03.jpg"] - 0.681) < 0.005


def test_projection_matches_opensfm_formula_written_independently():
    rec = read_opensfm(BERLIN)
    import json

    raw = json.loads(BERLIN.read_text())[0]
    cam = next(iter(raw["cameras"].values()))
    for name, shot in rec.shots.items():
        s = raw["shots"][name]
        R = axis_angle_to_matrix(torch.tensor(s["rotation"], dtype=torch.float64)).numpy()
        X = rec.points.numpy() @ R.T + np.array(s["translation"])
        x, y = X[:, 0] / X[:, 2], X[:, 1] / X[:, 2]
        r2 = x * x + y * y
        d = 1 + cam["k1"] * r2 + cam["k2"] * r2 * r2
        size = max(cam["width"], cam["height"])
        u = cam["focal"] * d * x * size + cam["width"] / 2   # OpenSfM normalized -> our pixels (+0.5 centres)
        v = cam["focal"] * d * y * size + cam["height"] / 2
        uv, _ = _pixels(shot, rec.points)
        np.testing.assert_allclose(uv.numpy(), np.stack([u, v], -1), rtol=0, atol=1e-8)


def test_topocentric_origin_and_axes():
    ref = (52.5, 13.4, 10.0)
    assert np.allclose(lla_to_topocentric(*ref, ref), (0, 0, 0), atol=1e-6)
    east, north, up = lla_to_topocentric(52.5, 13.4 + 1e-4, 10.0, ref)
    assert 6.7 < east < 6.8 and abs(north) < 0.01  # 1e-4 degree of longitude at 52.5 N is about 6.77 m
    assert abs(lla_to_topocentric(52.5, 13.4, 15.0, ref)[2] - 5.0) < 1e-6
