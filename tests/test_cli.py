"""The ``lumigrad`` command line: demo end to end with a tiny step count, help, and user errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lumigrad as lg
from lumigrad.cli.main import main


def test_demo_writes_images_plot_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--steps", "3", "--views", "2", "--size", "48", "--texture-size", "16", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    for name in ("target.png", "initial.png", "final.png", "error.png", "texture.png", "loss.png", "metrics.json"):
        assert (out / name).stat().st_size > 100, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["rotation_error_deg"] < 15.0


def test_demo_default_output_folder_is_under_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--steps", "1", "--views", "1", "--size", "32", "--texture-size", "8", "--no-progress"]) == 0
    folders = list((tmp_path / "lumigrad-out").iterdir())
    assert len(folders) == 1 and (folders[0] / "final.png").exists()
    assert str(folders[0]) in capsys.readouterr().out


def test_bad_arguments_give_one_line_and_exit_2(capsys):
    assert main(["demo", "--steps", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--steps must be positive" in err and "Traceback" not in err


def test_help_and_console_script():
    result = subprocess.run([sys.executable, "-m", "lumigrad.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    result = subprocess.run([sys.executable, "-m", "lumigrad.cli.main", "demo", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--steps" in result.stdout


def test_render_writes_png_and_linear_exr(tmp_path, capsys):
    import lumigrad as lg

    spot = lg.data.load_spot()
    lg.io.save(tmp_path / "spot.obj", spot)
    assert main(["render", str(tmp_path / "spot.obj"), "-o", str(tmp_path / "spot.png"), "--size", "48", "40"]) == 0
    image = lg.io.load(tmp_path / "spot.png")
    assert image.shape == (40, 48, 3) and 0.05 < float(image.mean()) < 0.9
    # the cow seen from behind its right flank (azimuth 150): no highlight in the outline's partly covered pixels,
    # which the premultiplication bound below needs
    assert main(["render", str(tmp_path / "spot.obj"), "-o", str(tmp_path / "spot.exr"), "--size", "32", "32",
                 "--exposure", "1", "--azimuth", "150"]) == 0
    linear = lg.io.load(tmp_path / "spot.exr")
    assert linear.shape == (32, 32, 4) and float(linear[..., :3].max()) > 0
    alpha = linear[..., 3]  # coverage: the cow is opaque, the corners are empty, its outline partly covered
    assert float(alpha.max()) == 1.0 and float(alpha[0, 0]) == 0.0 and bool(((alpha > 0) & (alpha < 1)).any())
    assert bool((linear[..., :3] <= alpha[..., None] * linear[..., :3].max() + 1e-3).all())  # premultiplied
    assert "wrote" in capsys.readouterr().out


def test_render_time_poses_the_animation(tmp_path, capsys):
    import lumigrad as lg
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "gltf-cesium-man" / "glTF" / "CesiumMan.gltf"
    if not path.exists():
        pytest.skip("shared data not present")
    images = {}
    for t in ("0.25", "1.0", "2.0", "5.0"):  # the walk lasts 2 s: 5.0 is clamped to its last keyframe
        out = tmp_path / f"t{t}.exr"
        assert main(["render", str(path), "--time", t, "--animation", "animation0", "-o", str(out),
                     "--size", "32", "32"]) == 0
        images[t] = lg.io.load(out)
    assert float((images["0.25"] - images["1.0"]).abs().max()) > 0.1
    assert float((images["2.0"] - images["5.0"]).abs().max()) == 0.0
    assert main(["render", str(path), "--animation", "run", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["render", str(path), "--time", "nan", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no animation named 'run'" in err and "it has animation0" in err and "--time must be a finite" in err


def test_render_user_errors_are_one_line(tmp_path, capsys):
    assert main(["render", str(tmp_path / "missing.glb")]) == 2
    assert main(["render", str(tmp_path / "missing.glb"), "--camera", "x"]) == 2
    (tmp_path / "a.xyz").write_text("")
    assert main(["render", str(tmp_path / "a.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.count("lumigrad render: error:") == 3 and "Traceback" not in err
    assert "no such file" in err and "no reader for '.xyz'" in err


def test_render_integrator_option_takes_the_registered_names(tmp_path, capsys):
    import torch

    import lumigrad as lg
    from lumigrad.integrators import Integrator, RenderOutput, register_integrator, unregister_integrator

    class Half(Integrator):
        def render(self, scene, camera, *, aovs=(), spp=1, seed=0):
            alpha = torch.ones(camera.batch_shape + (camera.height, camera.width, 1))
            return RenderOutput(0.5 * alpha.expand(alpha.shape[:-1] + (3,)), alpha)

    lg.io.save(tmp_path / "ball.obj", lg.geometry.icosphere(1))
    register_integrator("half", Half)
    try:
        assert main(["render", str(tmp_path / "ball.obj"), "-o", str(tmp_path / "half.exr"), "--size", "8", "6",
                     "--integrator", "half"]) == 0
    finally:
        unregister_integrator("half")
    image = lg.io.load(tmp_path / "half.exr")
    assert image.shape == (6, 8, 4) and torch.allclose(image, torch.tensor([0.5, 0.5, 0.5, 1.0]).expand(6, 8, 4))
    assert main(["render", str(tmp_path / "ball.obj"), "-o", str(tmp_path / "r.png"), "--size", "8", "6",
                 "--integrator", "raster"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(tmp_path / "ball.obj"), "--integrator", "half"])  # unregistered again
    assert exit_info.value.code == 2 and "invalid choice: 'half'" in capsys.readouterr().err


def test_render_with_the_path_tracer(tmp_path, capsys):
    import lumigrad as lg

    lg.io.save(tmp_path / "ball.obj", lg.geometry.icosphere(1))
    out = tmp_path / "ball.exr"
    assert main(["render", str(tmp_path / "ball.obj"), "-o", str(out), "--size", "12", "10", "--integrator", "path",
                 "--spp", "4", "--max-depth", "3", "--seed", "2"]) == 0
    image = lg.io.load(out)
    assert image.shape == (10, 12, 4) and image[5, 6, :3].min() > 0  # lit by the default sky and key light
    assert main(["render", str(tmp_path / "ball.obj"), "-o", str(out), "--spp", "4"]) == 2
    assert "--spp must be a positive int (1 for integrator raster)" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "ball.obj"), "-o", str(out), "--max-depth", "2"]) == 2


def test_render_takes_a_mitsuba_files_pixel_filter_and_pixel_filter_overrides_it(tmp_path, capsys):
    """A Mitsuba file without an ``<rfilter>`` renders with Mitsuba's default gaussian (the same image as
    ``--pixel-filter gaussian``, not the box's); an unknown name is a usage error."""
    import numpy as np

    (tmp_path / "s.xml").write_text('<scene version="3.0.0"><shape type="cube"/><emitter type="point">'
                                    '<point name="position" x="2" y="3" z="-4"/><rgb name="intensity" value="20"/>'
                                    '</emitter><sensor type="perspective"><transform name="to_world">'
                                    '<lookat origin="3, 2, -4" target="0, 0, 0" up="0, 1, 0"/></transform>'
                                    '<film type="hdrfilm"/></sensor></scene>')
    images = {}
    for name, extra in (("default", []), ("gaussian", ["--pixel-filter", "gaussian"]),
                        ("box", ["--pixel-filter", "box"])):
        out = tmp_path / f"{name}.npy"
        assert main(["render", str(tmp_path / "s.xml"), "-o", str(out), "--size", "10", "8", "--integrator", "path",
                     "--spp", "4", "--max-depth", "2"] + extra) == 0
        images[name] = np.load(out)
    assert images["default"][..., :3].max() > 0
    assert np.array_equal(images["default"], images["gaussian"])
    assert not np.array_equal(images["default"], images["box"])
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(tmp_path / "s.xml"), "--integrator", "path", "--pixel-filter", "sinc"])
    assert exit_info.value.code == 2 and "invalid choice: 'sinc'" in capsys.readouterr().err


MITSUBA_FILE = """<scene version="3.0.0">
  <integrator type="{kind}"><integer name="max_depth" value="3"/><boolean name="hide_emitters" value="true"/>
  </integrator>
  <shape type="cube"><bsdf type="diffuse"><rgb name="reflectance" value="0.2, 0.5, 0.7"/></bsdf></shape>
  <shape type="rectangle"><transform name="to_world"><rotate x="1" angle="90"/><translate y="3"/></transform>
    <emitter type="area"><rgb name="radiance" value="5"/></emitter></shape>
  <sensor type="perspective" id="cam"><transform name="to_world"><lookat origin="3, 2, -4" target="0, 0, 0"
    up="0, 1, 0"/></transform><sampler type="independent"><integer name="sample_count" value="8"/></sampler>
    <film type="hdrfilm"><integer name="width" value="12"/><integer name="height" value="9"/></film></sensor>
</scene>"""


def test_render_of_a_mitsuba_file_takes_its_sensor_integrator_and_samples(tmp_path, capsys):
    """Without options, a Mitsuba file renders as Mitsuba would: its first sensor at its film's size, its
    integrator (``path``, also for ``volpath`` and ``prb``) with its ``max_depth`` and ``hide_emitters``, its
    sampler's ``sample_count``, its film's filter: the image of ``lg.render`` with those settings. Options still
    override; an integrator lumigrad lacks falls back to the path tracer with a note."""
    import numpy as np
    import torch

    import lumigrad as lg

    path = tmp_path / "s.xml"
    path.write_text(MITSUBA_FILE.format(kind="volpath"))
    out = tmp_path / "out.npy"
    assert main(["render", str(path), "-o", str(out)]) == 0
    image = np.load(out)
    scene = lg.io.load(path)
    with torch.no_grad():
        want = lg.render(scene, scene.cameras["cam"], integrator="path", spp=8, max_depth=3, hide_emitters=True,
                         seed=0)
    assert image.shape == (9, 12, 4)
    np.testing.assert_array_equal(image[..., :3], want.rgb.numpy())
    assert main(["render", str(path), "-o", str(out), "--integrator", "raster"]) == 0
    assert not np.array_equal(np.load(out)[..., :3], image[..., :3])
    assert main(["render", str(path), "-o", str(out), "--max-depth", "2", "--spp", "2", "--size", "6", "4"]) == 0
    assert np.load(out).shape == (4, 6, 4)
    path.write_text(MITSUBA_FILE.format(kind="aov"))
    assert main(["render", str(path), "-o", str(out)]) == 0
    assert "integrator 'aov' is not one lumigrad has; using the path tracer" in capsys.readouterr().err


def test_a_mitsuba_file_seen_through_a_thin_lens_renders_with_the_path_tracer(tmp_path, capsys):
    """A file without an integrator renders with the rasterizer, unless its sensor has a thin lens, which only
    the path tracer renders; asked for the rasterizer, the error names the lens."""
    import numpy as np

    body = MITSUBA_FILE.format(kind="path")
    body = body[:body.index("  <integrator")] + body[body.index("</integrator>") + len("</integrator>\n"):]
    path = tmp_path / "s.xml"
    path.write_text(body.replace('<sensor type="perspective" id="cam">', '<sensor type="thinlens" id="cam">'
                                 '<float name="aperture_radius" value="0.2"/><float name="focus_distance" value="5"/>'))
    out = tmp_path / "out.npy"
    assert main(["render", str(path), "-o", str(out)]) == 0
    assert np.load(out).shape == (9, 12, 4) and float(np.load(out)[..., 3].max()) > 0
    assert main(["render", str(path), "-o", str(out), "--integrator", "raster"]) == 2
    assert "thin lens" in capsys.readouterr().err


def test_mitsuba_defaults_where_the_file_is_silent_and_bad_values_name_the_file(tmp_path, capsys, monkeypatch):
    """A Mitsuba file's integrator without ``max_depth`` takes Mitsuba's default (no limit for ``path``, 6 for
    ``prb``), a sensor without a sampler Mitsuba's 4 samples, ``--camera`` of a second sensor its own film
    filter; ``max_depth`` 0 or a fractional ``sample_count`` is an error naming the file; ``gradcheck`` keeps its
    small framing camera and sample count."""
    import lumigrad as lg
    import lumigrad.integrators.dispatch as dispatch

    seen = []
    real = dispatch.render

    def spy(scene, camera, **kw):
        seen.append((camera.width, camera.height, scene.film.pixel_filter.kind, kw.get("spp"), kw.get("max_depth")))
        return real(scene, camera, **kw)

    monkeypatch.setattr(lg, "render", spy)
    body = MITSUBA_FILE.replace('<integer name="max_depth" value="3"/>', "")
    path = tmp_path / "s.xml"
    path.write_text(body.format(kind="path").replace(
        '<sampler type="independent"><integer name="sample_count" value="8"/></sampler>', "").replace(
        "</scene>", '<sensor type="perspective" id="other"><film type="hdrfilm"><integer name="width" value="6"/>'
        '<integer name="height" value="5"/><rfilter type="tent"/></film></sensor></scene>'))
    assert main(["render", str(path), "-o", str(tmp_path / "a.npy")]) == 0
    assert seen[-1] == (12, 9, "gaussian", 4, -1)
    assert main(["render", str(path), "-o", str(tmp_path / "b.npy"), "--camera", "other"]) == 0
    assert seen[-1] == (6, 5, "tent", 4, -1)
    path.write_text(body.format(kind="prb"))
    assert main(["render", str(path), "-o", str(tmp_path / "c.npy")]) == 0
    assert seen[-1] == (12, 9, "gaussian", 8, 6)
    path.write_text(MITSUBA_FILE.format(kind="path").replace('value="3"', 'value="0"'))
    assert main(["render", str(path), "-o", str(tmp_path / "d.npy")]) == 2
    assert "s.xml: the file's integrator has max_depth 0" in capsys.readouterr().err
    path.write_text(MITSUBA_FILE.format(kind="path").replace('<integer name="sample_count" value="8"/>',
                                                             '<float name="sample_count" value="2.5"/>'))
    assert main(["render", str(path), "-o", str(tmp_path / "e.npy")]) == 2
    assert "s.xml: the file's sensor's sample_count must be an integer >= 1; got 2.5" in capsys.readouterr().err
    path.write_text(MITSUBA_FILE.format(kind="path"))
    import lumigrad.integrators.gradient_check as gc

    real_check = gc.check_scene_gradient

    def check_spy(scene, camera, param, **kw):
        seen.append((camera.width, camera.height, kw.get("integrator"), kw.get("spp"), kw.get("max_depth")))
        return real_check(scene, camera, param, **kw)

    monkeypatch.setattr(gc, "check_scene_gradient", check_spy)
    main(["gradcheck", str(path), "meshes.cube.material.base_color_factor", "--samples", "1"])
    assert seen[-1] == (48, 48, "path", 16, 3)  # the framing camera and gradcheck's spp; the file's integrator


def test_gradcheck_with_the_path_tracer(tmp_path, capsys):
    import lumigrad as lg

    lg.io.save(tmp_path / "ball.obj", lg.geometry.icosphere(1))
    assert main(["gradcheck", str(tmp_path / "ball.obj"), "meshes.mesh.material.base_color_factor", "--integrator",
                 "path", "--spp", "4", "--samples", "3", "--size", "12", "12"]) == 0
    assert "agree" in capsys.readouterr().out
    assert main(["gradcheck", str(tmp_path / "ball.obj"), "lights.key.irradiance", "--integrator", "direct",
                 "--size", "12", "12"]) == 0


CAMERAS_GLTF = Path(__file__).resolve().parents[2] / "shared" / "data" / "gltf-cameras" / "glTF" / "Cameras.gltf"


@pytest.mark.skipif(not CAMERAS_GLTF.exists(), reason="../shared/data is not beside the checkout")
def test_render_defaults_see_the_front_resize_file_cameras_and_create_the_folder(tmp_path, capsys):
    """Cameras.gltf (one single-sided quad facing +z) rendered all black from the old framing camera, which sat
    behind it; --size was ignored for file cameras; -o into a missing folder failed."""
    out = tmp_path / "new" / "folder" / "front.png"
    assert main(["render", str(CAMERAS_GLTF), "-o", str(out), "--size", "32", "24"]) == 0
    image = lg.io.load(out)
    assert image.shape == (24, 32, 3) and float(image.max()) > 0.05
    assert "warning" not in capsys.readouterr().err
    assert main(["render", str(CAMERAS_GLTF), "--camera", "camera1", "-o", str(tmp_path / "c.png"),
                 "--size", "40", "30"]) == 0
    assert lg.io.load(tmp_path / "c.png").shape == (30, 40, 3)
    assert main(["render", str(CAMERAS_GLTF), "--azimuth", "180", "-o", str(tmp_path / "back.png"),
                 "--size", "16", "16"]) == 0
    assert "no pixel of the 16 x 16 image sees the scene's geometry" in capsys.readouterr().err


def test_render_a_mitsuba_file_of_nothing_but_an_environment_map(tmp_path, capsys):
    """An ``envmap`` alone renders the sky through the file's path tracer, without the warning about geometry
    no pixel sees (there is none); a file whose only geometry, a lamp, is behind the camera still gets it."""
    sky = torch.linspace(0.1, 1.0, 8, dtype=torch.float64)[:, None, None].expand(8, 16, 3).contiguous()
    lg.io.write_exr(tmp_path / "sky.exr", sky)
    (tmp_path / "sky.xml").write_text('''<?xml version="1.0"?>
<scene version="3.0.0"><integrator type="path"/>
<sensor type="perspective"><float name="fov" value="60"/><sampler type="independent"><integer name="sample_count"
 value="4"/></sampler><film type="hdrfilm"><integer name="width" value="12"/><integer name="height" value="8"/></film>
</sensor><emitter type="envmap"><string name="filename" value="sky.exr"/></emitter></scene>''')
    assert main(["render", str(tmp_path / "sky.xml"), "-o", str(tmp_path / "sky_out.exr")]) == 0
    image = lg.io.load(tmp_path / "sky_out.exr")
    assert image.shape[:2] == (8, 12) and float(image[..., :3].min()) > 0.05
    assert "warning" not in capsys.readouterr().err
    (tmp_path / "lamp.xml").write_text("""<?xml version="1.0"?>
<scene version="3.0.0"><integrator type="path"/>
<sensor type="perspective"><transform name="to_world"><lookat origin="0, 0, 0" target="0, 0, -1" up="0, 1, 0"/>
</transform><film type="hdrfilm"><integer name="width" value="8"/><integer name="height" value="8"/></film></sensor>
<shape type="rectangle"><transform name="to_world"><translate z="5"/></transform><emitter type="area"><rgb
 name="radiance" value="1"/></emitter></shape></scene>""")
    assert main(["render", str(tmp_path / "lamp.xml"), "-o", str(tmp_path / "lamp.exr"), "--spp", "1"]) == 0
    assert "no pixel of the 8 x 8 image sees" in capsys.readouterr().err  # a lamp behind the camera: still said
