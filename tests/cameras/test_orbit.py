"""``cameras.orbit_cameras``: PyTorch3D's ``look_at_view_transform`` placement as lumigrad cameras."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.conventions import pytorch3d_to_world_to_cam


def pytorch3d_look_at_view_transform(dist, elev, azim):
    """PyTorch3D's documented formulas (renderer/cameras.py), written out here without PyTorch3D: eye on the
    sphere, R with columns (x, y, z) = (cross(up, z), cross(z, x), normalize(at - eye)), T = -R^T eye."""
    e, a = math.radians(elev), math.radians(azim)
    eye = torch.tensor([dist * math.cos(e) * math.sin(a), dist * math.sin(e), dist * math.cos(e) * math.cos(a)],
                       dtype=torch.float64)
    z = torch.nn.functional.normalize(-eye, dim=0)
    x = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), z), dim=0)
    y = torch.nn.functional.normalize(torch.linalg.cross(z, x), dim=0)
    R = torch.stack([x, y, z], dim=1)
    T = -(R.T @ eye)
    return R, T


@pytest.mark.parametrize("dist, elev, azim", [(2.7, 0.0, 0.0), (3.0, 25.0, 40.0), (1.5, -30.0, 200.0)])
def test_matches_pytorch3d_placement(dist, elev, azim):
    R, T = pytorch3d_look_at_view_transform(dist, elev, azim)
    expected = pytorch3d_to_world_to_cam(R[None], T[None])[0]
    camera = lg.cameras.orbit_cameras(dist, elev, azim, dtype=torch.float64)
    assert torch.allclose(camera.world_to_cam, expected, atol=1e-10)


def test_batched_radians_and_gradients():
    azim = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    cams = lg.cameras.orbit_cameras(2.0, 0.3, azim, degrees=False, dtype=torch.float64, width=8, height=8)
    assert cams.world_to_cam.shape == (3, 4, 4)
    cams.world_to_cam[..., :3, 3].sum().backward()
    assert azim.grad is not None and torch.isfinite(azim.grad).all()


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="dist must be finite and > 0"):
        lg.cameras.orbit_cameras(0.0)
    with pytest.raises(ValueError, match="broadcast"):
        lg.cameras.orbit_cameras(1.0, [0.0, 1.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="up axis"):
        lg.cameras.orbit_cameras(1.0, 90.0, 0.0)


@pytest.mark.parametrize("dist, elev, azim, eye", [
    (2.0, 0.0, 0.0, (0.0, 0.0, 2.0)),  # azim 0: on +z
    (2.0, 0.0, 90.0, (2.0, 0.0, 0.0)),  # azim 90: on +x
    (2.0, 30.0, 0.0, (0.0, 1.0, 3.0 ** 0.5)),  # elev 30: y = 2 sin 30, z = 2 cos 30
    (4.0, -45.0, 180.0, (0.0, -(8.0 ** 0.5), -(8.0 ** 0.5))),  # below, behind
])
def test_camera_centres_by_hand(dist, elev, azim, eye):
    camera = lg.cameras.orbit_cameras(dist, elev, azim, dtype=torch.float64)
    R, t = camera.world_to_cam[:3, :3], camera.world_to_cam[:3, 3]
    assert torch.allclose(-R.T @ t, torch.tensor(eye, dtype=torch.float64), atol=1e-12)
    # it looks at the origin: the camera-frame origin of the world lies on +z (the optical axis), dist ahead
    assert torch.allclose(t, torch.tensor([0.0, 0.0, dist], dtype=torch.float64), atol=1e-12)
    # and world up (+y) points up in the image (-y of the OpenCV camera frame)
    assert float((R @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))[1]) < 0
