"""render_sequence: frames of a (static, posed or callable) scene along a camera trajectory, per integrator."""

import math

import pytest
import torch
from torch import nn

import lumigrad as lg
from lumigrad.cameras import PoseTrajectory, SplineTrajectory
from lumigrad.conventions import invert_rigid
from lumigrad.geometry import BasisDeformation
from lumigrad.scene import VolumeShape, deformed_scene

F64 = torch.float64


def _quad_scene(dtype=torch.float32):
    verts = torch.tensor([[-0.6, -0.6, 0], [0.6, -0.6, 0], [0.6, 0.6, 0], [-0.6, 0.6, 0]], dtype=dtype)
    scene = lg.Scene()
    scene.add_mesh("quad", lg.SceneMesh(verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 0.0, -3.0], dtype=dtype), 10.0))
    return scene


def _trajectory(width=16, height=16, dtype=torch.float32):
    """A camera sliding along x at constant velocity, looking along +z at the quad."""
    eyes = torch.tensor([[-0.6 + 0.3 * k, 0.0, -3.0] for k in range(5)], dtype=dtype)
    w2c = lg.Camera.look_at(eyes, eyes + torch.tensor([0.0, 0, 1], dtype=dtype), fov_y=0.7).world_to_cam
    K = lg.Camera.look_at([0.0, 0, -3], [0.0, 0, 0], fov_y=0.7, width=width, height=height).K.to(dtype)
    return SplineTrajectory(w2c, K, width, height, t_start=0.0, dt=0.5)


def test_raster_static_scene_moving_camera_matches_single_renders_and_has_gradients():
    scene, traj = _quad_scene(), _trajectory()
    times = [0.0, 0.4, 1.0]
    out = lg.render_sequence(scene, traj, times, aovs=("depth",))
    assert out.rgb.shape == (3, 16, 16, 3) and out.alpha.shape == (3, 16, 16, 1)
    assert out.aovs["depth"].shape == (3, 16, 16, 1)
    for k, t in enumerate(times):
        torch.testing.assert_close(out.rgb[k], lg.render(scene, traj.camera_at(t)).rgb)
    # the quad drifts across the image as the camera slides: the frames differ
    assert (out.alpha[0] - out.alpha[2]).abs().sum() > 1
    out.rgb.sum().backward()
    assert traj.parameters()["centres"].grad.abs().sum() > 0


def test_raster_callable_scene_and_camera_batch():
    rest = _quad_scene()
    deform = BasisDeformation(4, 2, (0.0, 1.0))
    with torch.no_grad():
        deform.basis[1, :, 1] = 0.2  # the quad moves up at t=0, down at t=1
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0, -3]] * 2), torch.zeros(2, 3), fov_y=0.7, width=16, height=16)
    out = lg.render_sequence(lambda t: deformed_scene(rest, deform, t), cams, [0.0, 1.0])
    assert out.rgb.shape == (2, 16, 16, 3)
    # image y is down: at t=0 the quad is higher in the image
    rows = torch.arange(16.0)[:, None]
    centroid = [(out.alpha[k, ..., 0] * rows).sum() / out.alpha[k, ..., 0].sum() for k in range(2)]
    assert centroid[0] < centroid[1] - 1
    out.rgb.sum().backward()
    assert deform.basis.grad[1].abs().sum() > 0


def test_a_scene_with_at_is_posed_per_time():
    class Posed(lg.Scene):
        def at(self, t):
            s = _quad_scene()
            s.meshes["quad"].to_world = torch.eye(4)
            s.meshes["quad"].to_world[0, 3] = float(t)
            return s

    scene = Posed()
    cam = lg.Camera.look_at([0.0, 0, -3], [0.0, 0, 0], fov_y=0.7, width=16, height=16)
    out = lg.render_sequence(scene, cam, [0.0, 0.5])
    torch.testing.assert_close(out.rgb[1], lg.render(scene.at(0.5), cam).rgb)
    assert (out.alpha[0] - out.alpha[1]).abs().sum() > 1


def test_path_integrator_frames_use_per_frame_seeds():
    scene, traj = _quad_scene(), _trajectory(12, 12)
    out = lg.render_sequence(scene, traj, [0.5, 0.5], integrator="path", spp=2, seed=7, max_depth=2)
    assert out.rgb.shape == (2, 12, 12, 3)
    torch.testing.assert_close(out.rgb[0], lg.render(scene, traj.camera_at(0.5), integrator="path", spp=2,
                                                     seed=7, max_depth=2).rgb)
    torch.testing.assert_close(out.rgb[1], lg.render(scene, traj.camera_at(0.5), integrator="path", spp=2,
                                                     seed=8, max_depth=2).rgb)


class _Ball(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("aabb", torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(8.0)))

    def density(self, p):
        return torch.where(p.norm(dim=-1) < 0.5, self.log_sigma.exp(), torch.zeros(()))

    def forward(self, p, d):
        return self.density(p), torch.tensor([0.9, 0.4, 0.1]).expand(p.shape[:-1] + (3,))


def test_volume_integrator_sequence_has_gradients():
    scene = lg.Scene()
    ball = _Ball()
    scene.add_shape("ball", VolumeShape(ball))
    traj = _trajectory(12, 12)
    out = lg.render_sequence(scene, traj, [0.0, 1.0], integrator="volume")
    assert out.rgb.shape == (2, 12, 12, 3) and out.alpha.max() > 0.5
    torch.testing.assert_close(out.alpha[1], lg.render(scene, traj.camera_at(1.0), integrator="volume").alpha)
    out.alpha.sum().backward()
    assert ball.log_sigma.grad.abs() > 0


def test_pose_trajectory_and_camera_list():
    scene = _quad_scene()
    traj = _trajectory()
    w2c = traj.world_to_cam([0.0, 0.5, 1.0]).detach()
    frames = PoseTrajectory(w2c, traj.K, 16, 16, times=[0.0, 0.5, 1.0])
    a = lg.render_sequence(scene, frames, [0.0, 0.5, 1.0]).rgb
    b = lg.render_sequence(scene, [frames.camera_at(t) for t in (0.0, 0.5, 1.0)], [0.0, 0.5, 1.0]).rgb
    torch.testing.assert_close(a, b)


def test_bad_input():
    scene, traj = _quad_scene(), _trajectory()
    with pytest.raises(ValueError, match="at least one"):
        lg.render_sequence(scene, traj, [])
    with pytest.raises(ValueError, match="finite"):
        lg.render_sequence(scene, traj, [float("nan")])
    with pytest.raises(TypeError, match="times"):
        lg.render_sequence(scene, traj, "0.5")
    with pytest.raises(ValueError, match=r"times\[1\] must be a finite number; got inf"):
        lg.render_sequence(scene, traj, [0.0, float("inf")])
    with pytest.raises(TypeError, match=r"times\[0\] must be a real number; got NoneType"):
        lg.render_sequence(scene, traj, [None])
    with pytest.raises(ValueError, match=r"times must be a 1-D tensor \(or 0-D\); got shape \(2, 2\)"):
        lg.render_sequence(scene, traj, torch.zeros(2, 2))
    with pytest.raises(TypeError, match="cameras"):
        lg.render_sequence(scene, object(), [0.0])
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0, -3]] * 3), torch.zeros(3, 3), width=16, height=16)
    with pytest.raises(ValueError, match="batch shape"):
        lg.render_sequence(scene, cams, [0.0, 1.0])
    with pytest.raises(TypeError, match="scene"):
        lg.render_sequence(42, traj, [0.0])
    with pytest.raises(TypeError, match=r"scene\(t\)"):
        lg.render_sequence(lambda t: None, traj, [0.0])
    with pytest.raises(ValueError, match="integrator"):
        lg.render_sequence(scene, traj, [0.0], integrator="nope")


def test_trajectory_gradient_of_a_sequence_loss_matches_finite_differences():
    scene, traj = _quad_scene(F64), _trajectory(20, 20, F64)
    target = torch.linspace(0, 1, 2 * 20 * 20 * 4, dtype=F64).reshape(2, 20, 20, 4)

    def loss():
        return (lg.render_sequence(scene, traj, [0.3, 0.8]).rgba - target).pow(2).sum()

    loss().backward()
    g = traj.centres.grad[2, 0].item()  # x of a control centre that moves both frames
    h = 1e-4
    vals = []
    for s in (h, -2 * h):
        with torch.no_grad():
            traj.centres[2, 0] += s
        vals.append(loss().item())
    with torch.no_grad():
        traj.centres[2, 0] += h
    fd = (vals[0] - vals[1]) / (2 * h)
    assert abs(fd) > 1e-2 and abs(g - fd) < 0.05 * abs(fd)
