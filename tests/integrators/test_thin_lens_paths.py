"""Depth of field in the path tracer: a thin-lens camera's image against Mitsuba 3's ``thinlens`` sensor, and the
gradients of ``aperture_radius``, ``focus_distance``, ``K`` and a light's position against finite differences
(the boundary term through the pinhole cameras of aperture points, ``integrators/path.py``'s ``_views``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import read_mitsuba_xml

from ..conftest import save_failure_images

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _mitsuba_peer as peer  # noqa: E402
import depth_of_field as dof_bench  # noqa: E402

#: Two emitting rectangles at different depths (the near one tilted, partly in front of the far one), seen through
#: a lens focused between them: every pixel's value is its rays' emitter, so the image's gradients are the
#: boundary term alone and their finite differences are cheap.
EMITTERS = """<scene version="3.0.0">
 <sensor type="thinlens" id="cam">
  <float name="fov" value="40"/><float name="aperture_radius" value="0.2"/><float name="focus_distance" value="4"/>
  <transform name="to_world"><lookat origin="0.3, 0.2, 4" target="0, 0, 0" up="0, 1, 0"/></transform>
  <film type="hdrfilm"><integer name="width" value="32"/><integer name="height" value="24"/><rfilter type="box"/></film>
 </sensor>
 <shape type="rectangle" id="far"><transform name="to_world"><scale value="0.8"/><translate x="0.3" z="-2"/></transform>
  <emitter type="area"><rgb name="radiance" value="1, 0.5, 0.2"/></emitter></shape>
 <shape type="rectangle" id="near"><transform name="to_world"><scale value="0.3"/><rotate z="1" angle="30"/>
  <translate x="-0.2" y="0.1" z="1.5"/></transform><emitter type="area"><rgb name="radiance" value="0.2, 0.6, 1"/>
  </emitter></shape>
</scene>"""

#: Three diffuse objects at depths 2.5, 4 (in focus) and 5.5 on a floor, under a point light and a uniform sky
#: (``benchmarks/depth_of_field.py``'s scene), 48 x 36, path depth 4.
OBJECTS = dof_bench.OBJECTS.format(width=48, height=36, depth=4)


def _load(tmp_path: Path, text: str, name: str = "scene.xml") -> lg.Scene:
    path = tmp_path / name
    path.write_text(text)
    return read_mitsuba_xml(path)


def test_a_closed_aperture_renders_the_pinhole_image(tmp_path):
    scene = _load(tmp_path, OBJECTS)
    cam = next(iter(scene.cameras.values()))
    closed = cam.replace(aperture_radius=torch.tensor(0.0))
    pinhole = cam.replace(aperture_radius=None, focus_distance=None)
    a = lg.render(scene, closed, integrator="path", spp=4, max_depth=3).rgb
    b = lg.render(scene, pinhole, integrator="path", spp=4, max_depth=3).rgb
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_the_focal_plane_is_sharp_and_the_rest_blurs_by_the_circle_of_confusion(tmp_path):
    """An emitter in the focal plane renders as through a pinhole; one nearer the camera spreads its light (its
    total unchanged) over a border as wide as its circle of confusion, ``fx * 2 a |1/f - 1/z|`` pixels."""
    scene = _load(tmp_path, EMITTERS)
    cam = scene.cameras["cam"]
    pinhole = cam.replace(aperture_radius=None, focus_distance=None)
    del scene.lights["near"]
    focused = cam.replace(focus_distance=torch.tensor(6.0))  # the far rectangle is 6 in front of the camera
    sharp = lg.render(scene, focused, integrator="path", spp=256, max_depth=1).rgb
    ref = lg.render(scene, pinhole, integrator="path", spp=256, max_depth=1).rgb
    assert float((sharp - ref).abs().mean()) < 0.01 * float(ref.mean())
    blurred = lg.render(scene, cam.replace(focus_distance=torch.tensor(1.5)), integrator="path", spp=256,
                        max_depth=1).rgb
    assert float(blurred.sum()) == pytest.approx(float(ref.sum()), rel=0.01)  # the same light, spread
    fx = float(cam.K[0, 0])
    coc = fx * 2 * 0.2 * abs(1 / 1.5 - 1 / 6.0)  # pixels
    row = ref[12, :, 0]
    partial = lambda r: int(((r > 0.02) & (r < 0.98)).sum())  # noqa: E731  (pixels neither off nor fully lit)
    assert partial(row) <= 2, partial(row)
    assert 2 * math.floor(coc) - 2 <= partial(blurred[12, :, 0]) <= 2 * math.ceil(coc) + 2, (partial(blurred[12, :, 0]), coc)


@pytest.mark.slow
def test_depth_of_field_matches_mitsuba(tmp_path):
    """Mitsuba's ``thinlens`` render of the file (4096 spp, ``path``, depth 4) against lumigrad's (512 spp):
    relative RMSE below 2 % per pixel, and at least 3x below the same scene's pinhole render's."""
    ok, why = peer.available()
    if not ok:
        pytest.skip(f"Mitsuba 3 unavailable: {why}")
    peer.use_variant()
    mi = peer._load()[0]
    path = tmp_path / "scene.xml"
    path.write_text(OBJECTS)
    scene = read_mitsuba_xml(path)
    cam = next(iter(scene.cameras.values()))
    with torch.no_grad():
        ours = lg.render(scene, cam, integrator="path", spp=512, max_depth=4).rgb.double().numpy()
        pinhole = lg.render(scene, cam.replace(aperture_radius=None, focus_distance=None), integrator="path",
                            spp=512, max_depth=4).rgb.double().numpy()
    ref = np.array(mi.render(mi.load_file(str(path)), spp=4096, seed=0), dtype=np.float64)[..., :3]
    error = float(np.sqrt(np.mean((ours - ref) ** 2)) / np.mean(ref))
    pinhole_error = float(np.sqrt(np.mean((pinhole - ref) ** 2)) / np.mean(ref))
    if error > 0.02:
        save_failure_images("thin_lens_vs_mitsuba", lumigrad=torch.from_numpy(ours), mitsuba=torch.from_numpy(ref))
    assert error < 0.02, error
    assert pinhole_error > 3 * error, (pinhole_error, error)  # the blur is what agrees


def _emitter_loss(scene: lg.Scene, cam: lg.Camera, weights: torch.Tensor, spp: int, seed: int, **kw):
    return (lg.render(scene, cam, integrator="path", max_depth=1, spp=spp, seed=seed, **kw).rgb * weights).sum()


def _mean_and_error(values) -> tuple:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


@pytest.mark.parametrize("name, step", [("aperture_radius", 0.03), ("focus_distance", 0.2), ("cx", 0.3),
                                        ("light_x", 0.02)])
def test_gradients_through_the_lens_match_finite_differences(tmp_path, name, step):
    """Six 64-spp gradients against central differences of 4096-spp renders (the same random numbers on both
    sides) at three seeds: within three combined standard errors plus 3 %. Only the boundary term sees these
    (emitters of constant radiance), through :data:`~lumigrad.integrators.path.LENS_EDGE_VIEWS` aperture points'
    pinhole cameras."""
    scene = _load(tmp_path, EMITTERS)
    cam = scene.cameras["cam"]
    weights = torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(0))
    verts = scene["lights.near.verts"].detach().clone()

    def setup(value: torch.Tensor):
        if name in ("aperture_radius", "focus_distance"):
            return cam.replace(**{name: getattr(cam, name).detach() + value})
        if name == "cx":
            return cam.replace(K=cam.K.detach() + value * torch.tensor([[0, 0, 1.0], [0, 0, 0], [0, 0, 0]]))
        scene["lights.near.verts"] = verts + value * torch.tensor([1.0, 0, 0])
        return cam

    grads = []
    for seed in range(6):
        delta = torch.zeros((), requires_grad=True)
        _emitter_loss(scene, setup(delta), weights, 64, seed).backward()
        grads.append(float(delta.grad))
    fd = []
    for seed in range(3):
        plus = float(_emitter_loss(scene, setup(torch.tensor(step)), weights, 4096, 10 + seed))
        minus = float(_emitter_loss(scene, setup(torch.tensor(-step)), weights, 4096, 10 + seed))
        fd.append((plus - minus) / (2 * step))
    g, g_err = _mean_and_error(grads)
    f, f_err = _mean_and_error(fd)
    assert abs(f) > 5 * f_err  # a gradient to check
    assert abs(g - f) <= 3 * math.hypot(g_err, f_err) + 0.03 * abs(f), (g, g_err, f, f_err)


def test_value_gradients_through_a_lens_take_the_fused_replay_and_equal_the_pytorch_replay(tmp_path):
    scene = _load(tmp_path, dof_bench.OBJECTS.format(width=32, height=24, depth=4).replace(
        '<emitter type="constant"><rgb name="radiance" value="0.8"/></emitter>', ''))
    cam = next(iter(scene.cameras.values()))
    name = next(k for k in scene.parameters() if k.endswith("base_color_factor"))
    grads = []
    for fused in (True, False):
        value = scene[name].detach().clone().requires_grad_(True)
        scene[name] = value
        lg.render(scene, cam, integrator="path", spp=4, seed=1, max_depth=3, edge_samples=0, shadow_edge_samples=0,
                  fused_adjoint=fused).rgb.mean().backward()
        grads.append(value.grad)
    assert float(grads[1].abs().max()) > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-9)


def test_a_lens_an_optimiser_broke_is_refused_by_name(tmp_path):
    scene = _load(tmp_path, EMITTERS)
    cam = scene.cameras["cam"]
    cam.focus_distance = torch.tensor(-1.0)
    with pytest.raises(ValueError, match="camera.focus_distance must be positive"):
        lg.render(scene, cam, integrator="path", spp=1)
    cam.focus_distance, cam.aperture_radius = torch.tensor(4.0), torch.tensor(-0.1)
    with pytest.raises(ValueError, match="aperture_radius must be non-negative"):
        lg.render(scene, cam, integrator="path", spp=1)
    cam.aperture_radius = torch.tensor(float("nan"))
    with pytest.raises(ValueError, match="aperture_radius contains NaN"):
        lg.render(scene, cam, integrator="path", spp=1)


def test_buffers_of_a_thin_lens_render(tmp_path):
    scene = _load(tmp_path, EMITTERS)
    out = lg.render(scene, scene.cameras["cam"], integrator="path", spp=4, aovs=("depth", "mask"))
    assert out.aovs["depth"].shape == (24, 32, 1) and bool(torch.isfinite(out.aovs["depth"]).all())


@pytest.mark.slow
def test_the_focus_and_the_aperture_are_recovered_from_the_blur(tmp_path):
    """``examples/20_focus_from_defocus.py`` at reduced size (30 steps, 48 x 36, 8 spp): the focus distance
    from 7 to within 5 % of 4, the aperture radius from 0.12 to within 15 % of 0.25."""
    import runpy

    example = runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "20_focus_from_defocus.py"))
    out = example["main"](["--steps", "30", "--size", "48", "--spp", "8", "--target-spp", "128",
                           "--out", str(tmp_path / "out")])
    assert abs(out["focus"] - example["TRUE_FOCUS"]) < 0.05 * example["TRUE_FOCUS"], out["focus"]
    assert abs(out["aperture"] - example["TRUE_APERTURE"]) < 0.15 * example["TRUE_APERTURE"], out["aperture"]
    assert (tmp_path / "out" / "final.png").exists()


def _shadow_scene(tmp_path: Path, aperture):
    """OBJECTS without its sky at 32 x 24, and its camera with ``aperture`` (None: the pinhole)."""
    scene = _load(tmp_path, OBJECTS.replace('<emitter type="constant"><rgb name="radiance" value="0.8"/></emitter>', '')
                  .replace('value="48"', 'value="32"').replace('value="36"', 'value="24"'))
    cam = next(iter(scene.cameras.values()))
    if aperture is None:
        return scene, cam.replace(aperture_radius=None, focus_distance=None)
    return scene, cam.replace(aperture_radius=torch.tensor(aperture))


@pytest.mark.parametrize("max_depth", [2, 3])
def test_shadow_edges_through_a_closed_lens_are_the_pinholes(tmp_path, max_depth):
    """A lens of radius 1e-6 is a pinhole: the light position's gradient without the primary edges (the
    interior and shadow-edge terms; at depth 3 also the shadow edges seen beyond the first hit, whose camera
    paths the aperture points share pixel by pixel) must be the pinhole's, each through its 8 pinhole views."""
    weights = torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(0))
    means = {}
    for aperture in (None, 1e-6):
        scene, cam = _shadow_scene(tmp_path, aperture)
        name = next(k for k in scene.parameters() if k.startswith("lights") and k.endswith("position"))
        base = scene[name].detach().clone()
        grads = []
        for seed in range(4):
            delta = torch.zeros((), requires_grad=True)
            scene[name] = base + delta * torch.tensor([1.0, 0, 0])
            image = lg.render(scene, cam, integrator="path", max_depth=max_depth, spp=16, seed=seed, edge_samples=0,
                              shadow_edge_samples=4000).rgb
            (image * weights).sum().backward()
            grads.append(float(delta.grad))
        means[aperture] = _mean_and_error(grads)
    (pinhole, e_p), (lens, e_l) = means[None], means[1e-6]
    assert abs(lens - pinhole) <= 3 * math.hypot(e_p, e_l) + 0.05 * abs(pinhole), means


def test_a_batch_of_lenses_sharing_one_pose_renders_each_view_its_own(tmp_path):
    """A focus stack: one pose, two focus distances (per-view lens tensors broadcast against an unbatched pose);
    each view equals its own unbatched render, and each focus distance gets its own gradient."""
    scene = _load(tmp_path, EMITTERS)
    cam = scene.cameras["cam"]
    focus = torch.tensor([1.5, 6.0], requires_grad=True)
    stack = cam.replace(aperture_radius=cam.aperture_radius.expand(2), focus_distance=focus)
    assert stack.batch_shape == (2,) and stack.world_to_cam.shape == (4, 4)
    image = lg.render(scene, stack, integrator="path", max_depth=1, spp=16).rgb
    assert image.shape == (2, 24, 32, 3)
    (image * torch.rand(2, 24, 32, 3, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert focus.grad is not None and bool((focus.grad != 0).all())
    with torch.no_grad():
        for k, f in enumerate((1.5, 6.0)):
            single = lg.render(scene, cam.replace(focus_distance=torch.tensor(f)), integrator="path", max_depth=1,
                               spp=256).rgb
            wide = lg.render(scene, stack.replace(focus_distance=focus.detach()), integrator="path", max_depth=1,
                             spp=256).rgb[k]
            blocks = lambda x: torch.nn.functional.avg_pool2d(x.permute(2, 0, 1)[None], 4)  # noqa: E731
            assert float((blocks(single) - blocks(wide)).abs().mean()) < 0.02 * float(single.mean()), k
