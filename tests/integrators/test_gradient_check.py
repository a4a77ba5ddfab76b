"""check_scene_gradient and `lumigrad gradcheck`: agreement on correct gradients, detection of wrong ones."""

import pytest
import torch

import lumigrad as lg
from lumigrad.cli.main import main
from lumigrad.integrators.gradient_check import check_scene_gradient

from ..conftest import uv_sphere


def _scene():
    verts, faces = uv_sphere(10, 20, dtype=torch.float32)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, lg.shading.Material(roughness_factor=0.5, metallic_factor=0.0)))
    scene.add_light("key", lg.PointLight([2.0, 2.0, -3.0], 10.0))
    cam = lg.Camera.look_at([0.0, 0.3, -3.0], [0.0, 0.0, 0.0], width=32, height=32, fov_y=0.8)
    return scene, cam


@pytest.mark.parametrize("name", ["lights.key.position", "meshes.ball.material.roughness_factor",
                                  "meshes.ball.verts", "meshes.ball.to_world"])
def test_scene_gradients_agree_with_finite_differences(name):
    scene, cam = _scene()
    before = scene[name]
    result = check_scene_gradient(scene, cam, name, samples=6)
    # Measured (float32 render, step 1e-3): cosine >= 0.99997, largest relative error 0.05 (roughness).
    assert result.cosine > 0.999 and result.max_relative_error < 0.1, result.table()
    assert scene[name] is before  # the scene is left as it was


def test_a_wrong_gradient_is_detected():
    scene, cam = _scene()

    class Wrong(torch.autograd.Function):  # flips the gradient's sign on the way back
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return -g

    light = scene.lights["key"]
    light.samples = lambda x: [lg.shading.point_light(x, Wrong.apply(light.position), light.intensity * light.color)]
    result = check_scene_gradient(scene, cam, "lights.key.position", samples=3)
    assert result.cosine < -0.99


def test_bad_input():
    scene, cam = _scene()
    with pytest.raises(ValueError, match="no scene parameter named 'lights.sun.position'"):
        check_scene_gradient(scene, cam, "lights.sun.position")
    with pytest.raises(ValueError, match="samples"):
        check_scene_gradient(scene, cam, "lights.key.position", samples=0)


def test_cli_gradcheck(tmp_path, capsys):
    spot = lg.data.load_spot()
    lg.io.save(tmp_path / "spot.obj", spot)
    assert main(["gradcheck", str(tmp_path / "spot.obj"), "lights.key.irradiance", "--size", "24", "24",
                 "--samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "agree" in out and "cosine similarity" in out
    assert main(["gradcheck", str(tmp_path / "spot.obj"), "--list"]) == 0
    assert "meshes.mesh.verts" in capsys.readouterr().out
    assert main(["gradcheck", str(tmp_path / "spot.obj"), "meshes.nope.verts"]) == 2
    assert main(["gradcheck", str(tmp_path / "spot.obj")]) == 2
    err = capsys.readouterr().err
    assert "no scene parameter named 'meshes.nope.verts'" in err and "--list" in err and "Traceback" not in err
