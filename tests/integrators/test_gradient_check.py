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
    with pytest.raises(ValueError, match="directions must be an integer >= 0"):
        check_scene_gradient(scene, cam, "lights.key.position", directions=-1)
    with pytest.raises(ValueError, match="precision"):
        check_scene_gradient(scene, cam, "lights.key.position", precision="half")


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


@pytest.mark.parametrize("plant", ["sign", "scale", "zero_one"])
@pytest.mark.parametrize("name", ["lights.key.position", "meshes.ball.verts", "meshes.ball.material.base_color_factor"])
def test_planted_wrong_gradients_fail(monkeypatch, plant, name):
    """A sign flip, a 30 % scale or one zeroed entry (the largest) of the autograd gradient is caught."""
    from lumigrad.integrators import gradient_check as gc

    true_gradient = gc._autograd_gradient

    def planted(loss, leaf):
        grad = true_gradient(loss, leaf).clone()
        if plant == "sign":
            return -grad
        if plant == "scale":
            return 1.3 * grad
        grad.view(-1)[int(grad.abs().argmax())] = 0.0
        return grad

    scene, cam = _scene()
    # inside its domain: at a clamp bound (the default colour 1) a zero derivative is a valid one-sided one
    scene["meshes.ball.material.base_color_factor"] = torch.tensor([0.7, 0.5, 0.3, 1.0])
    assert check_scene_gradient(scene, cam, name, samples=6).passed  # the true gradient passes
    monkeypatch.setattr(gc, "_autograd_gradient", planted)
    result = check_scene_gradient(scene, cam, name, samples=6)
    assert not result.passed and result.reasons(), result.table()


def test_float32_texture_entries_are_checked_in_float64_and_agree():
    """The failure that motivated the rework: texel checks of a float32 scene gave finite differences of exactly 0."""
    verts, faces = uv_sphere(10, 20, dtype=torch.float32)
    uv = torch.stack([torch.atan2(verts[:, 2], verts[:, 0]) / (2 * torch.pi) + 0.5, verts[:, 1] * 0.5 + 0.5], -1)
    texture = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0))
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, lg.Material(base_color_texture=texture), uv=uv))
    scene.add_light("key", lg.PointLight([2.0, 2.0, -3.0], 10.0))
    cam = lg.Camera.look_at([0.0, 0.3, -3.0], [0.0, 0.0, 0.0], width=32, height=32, fov_y=0.8)
    result = check_scene_gradient(scene, cam, "meshes.ball.material.base_color_texture", samples=8)
    assert result.precision == "float64" and result.passed, result.table()
    assert float(result.numeric.abs().max()) > 0 and scene["meshes.ball.material.base_color_texture"].dtype == torch.float32


def test_a_factor_at_its_bound_is_checked_one_sided():
    """metallic = 1 sits on the clamp: central differences see half the slope; autograd's one-sided value agrees
    with the inward difference."""
    scene, cam = _scene()
    scene["meshes.ball.material.metallic_factor"] = torch.tensor(1.0)
    result = check_scene_gradient(scene, cam, "meshes.ball.material.metallic_factor")
    assert result.passed, result.table()


def test_a_parameter_the_render_ignores_agrees_at_zero():
    scene, cam = _scene()
    result = check_scene_gradient(scene, cam, "meshes.ball.material.occlusion_strength")
    assert result.passed and float(result.analytic.abs().max()) == 0.0


def _glossy_ball_under_a_sky():
    verts, faces = uv_sphere(10, 20, dtype=torch.float32)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, lg.shading.Material(roughness_factor=0.4, metallic_factor=0.5)))
    sky = torch.linspace(0.2, 1.0, 8)[:, None, None].expand(8, 16, 3).clone()
    scene.add_light("sky", lg.EnvironmentLight(sky))
    return scene, lg.Camera.look_at([0.0, 0.3, -3.0], [0.0, 0.0, 0.0], width=16, height=16, fov_y=0.8)


def test_monte_carlo_gradients_are_compared_over_seeds(monkeypatch):
    """With ``seeds``, the means of independent path-traced estimates are compared (each entry and direction within
    ``rtol`` or Student's t at 99.9 % of standard errors): a glossy lobe's roughness, whose sampling moves with it,
    agrees; a 1.5x gradient is caught; and the differences are central ones (choosing the one-sided difference
    nearer autograd, right at a deterministic kink, would pull a noisy difference toward any gradient). Measured
    (16 seeds of 32 spp): autograd -35.58, differences -37.29 +- 1.81; planted -53.37, 7.3 standard errors off."""
    from lumigrad.integrators import gradient_check as gc

    name = "meshes.ball.material.roughness_factor"
    settings = dict(samples=1, integrator="path", spp=32, max_depth=2, seeds=16)
    scene, cam = _glossy_ball_under_a_sky()
    result = check_scene_gradient(scene, cam, name, **settings)
    assert result.passed, result.table()
    assert result.seeds == 16 and result.standard_errors is not None and float(result.standard_errors[0]) > 0
    assert result.z == pytest.approx(4.073)
    assert result.steps[0] == pytest.approx(4e-3)  # 1e-2 of the entry's scale over seeds
    assert "std. err." in result.table()
    true_gradient = gc._autograd_gradient
    monkeypatch.setattr(gc, "_autograd_gradient", lambda loss, leaf: 1.5 * true_gradient(loss, leaf))
    planted = check_scene_gradient(*_glossy_ball_under_a_sky(), name, **settings)
    assert not planted.passed and "4.07 standard errors" in " ".join(planted.reasons()), planted.table()
    assert torch.equal(planted.numeric, result.numeric)  # (the differences do not depend on autograd's value)
    with pytest.raises(ValueError, match="seeds > 1 needs a Monte Carlo integrator"):
        check_scene_gradient(scene, cam, name, seeds=2)
    with pytest.raises(ValueError, match="seeds"):
        check_scene_gradient(scene, cam, name, integrator="path", seeds=0)


def test_cli_gradcheck_over_seeds_on_a_mitsuba_principled_file(tmp_path, capsys):
    """`lumigrad gradcheck --seeds N` on a Mitsuba file's principled sphere (its roughness moves the lobes'
    sampling): the means of N estimates, a standard-error column, and the verdict."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import mitsuba_files

    path = tmp_path / "principled.xml"
    path.write_text(mitsuba_files.scene_xml("principled", 12, 16))
    args = ["gradcheck", str(path), "meshes.sphere.material.roughness_factor", "--samples", "1", "--size", "12",
            "12", "--spp", "16", "--max-depth", "3"]
    assert main(args + ["--seeds", "8"]) == 0
    out = capsys.readouterr().out
    assert "means of 8 seeds" in out and "std. err." in out and "agree" in out
