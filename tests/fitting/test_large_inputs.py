"""``lumigrad fit`` for large inputs: ``[render] tile`` (each step rendered and differentiated tile by tile) gives
the untiled fit, ``[data] stream`` (photos decoded per step) gives the eager fit, and what neither can do is
refused by name."""

import pytest
import torch

import lumigrad as lg
from lumigrad.fitting import ConfigError, load_config, run_fit
from lumigrad.fitting.problem import build_problem
from lumigrad.fitting.streamed_targets import StreamedTargets
from lumigrad.fitting.view_evaluation import evaluate_views

SHAPE_AND_COLOUR = """
name = "tiles"
[scene]
file = "sphere.obj"
[[scene.lights]]
name = "key"
type = "point"
position = [2.0, 2.0, -2.0]
intensity = 6.0
[data]
views = 3
size = [27, 22]
[data.set]
"meshes.mesh.material.base_color_factor" = [0.7, 0.3, 0.2, 1.0]
"meshes.mesh.verts" = { scale = 1.15 }
[[optimize]]
name = "albedo"
params = "meshes.*.material.base_color_factor"
map = "sigmoid"
init = [0.5, 0.5, 0.5, 1.0]
lr = 0.1
[[optimize]]
name = "shape"
params = "meshes.*.verts"
lr = 0.01
[loss]
mse = 1.0
l1 = 0.2
laplacian = 0.5
mask = "alpha"
[fit]
steps = 6
views_per_step = 2
checkpoint_every = 100
"""


@pytest.fixture
def folder(tmp_path):
    verts, faces = lg.geometry.icosphere(2)
    lg.io.save(tmp_path / "sphere.obj", (verts, faces))
    return tmp_path


def _write(folder, text, name="fit.toml"):
    (folder / name).write_text(text)
    return folder / name


def test_a_tiled_fit_follows_the_untiled_one(folder):
    """Tiles of 10 px cut the 27 x 22 views (and the silhouettes) in 3 x 3 pieces; the fit moves the same way."""
    plain = run_fit(_write(folder, SHAPE_AND_COLOUR), folder / "plain")
    tiled = run_fit(_write(folder, SHAPE_AND_COLOUR + "[render]\ntile = 10\n", "tiled.toml"), folder / "tiled")
    a, b = plain.metrics, tiled.metrics
    assert b["psnr_final_db"] > b["psnr_initial_db"] + 1  # the fit works at all
    assert abs(a["psnr_final_db"] - b["psnr_final_db"]) < 1e-3
    assert a["psnr_initial_db"] == pytest.approx(b["psnr_initial_db"], abs=1e-4)  # one view at a time, float64 sums
    colour = "meshes.mesh.material.base_color_factor"
    torch.testing.assert_close(torch.tensor(b["parameters"][colour]["final"]),
                               torch.tensor(a["parameters"][colour]["final"]), rtol=0, atol=2e-5)
    verts = "meshes.mesh.verts"
    for key in ("mean", "min", "max"):
        assert b["parameters"][verts]["final"][key] == pytest.approx(a["parameters"][verts]["final"][key], abs=2e-5)


def test_tiled_step_gradients_equal_the_untiled_step(folder):
    """One step's parameter gradients with and without tiles, in float32: equal to summation order."""
    grads = []
    for extra in ("", "[render]\ntile = 8\n"):
        problem = build_problem(load_config(_write(folder, SHAPE_AND_COLOUR + extra)))
        loss, log = problem.loss(0)
        loss.backward()
        grads.append(([leaf.grad.clone() for g in problem.groups for leaf in problem.leaves(g)], float(loss), log))
    (plain, plain_loss, plain_log), (tiled, tiled_loss, tiled_log) = grads
    assert tiled_loss == pytest.approx(plain_loss, rel=1e-5)
    assert tiled_log.keys() == plain_log.keys()
    for key in plain_log:
        assert tiled_log[key] == pytest.approx(plain_log[key], rel=1e-5, abs=1e-9)
    for p, t in zip(plain, tiled):
        assert p.abs().max() > 0
        torch.testing.assert_close(t, p, rtol=1e-4, atol=1e-5 * float(p.abs().max()))


@pytest.mark.parametrize("loss, message", [("ssim = 1.0", "loss.ssim reads pixel neighbourhoods"),
                                           ("silhouette = 1.0", "loss.silhouette reads pixel")])
def test_tiles_refuse_terms_that_tiles_would_change(folder, loss, message):
    text = SHAPE_AND_COLOUR.replace("l1 = 0.2", loss) + "[render]\ntile = 10\n"
    with pytest.raises(ConfigError, match=message):
        build_problem(load_config(_write(folder, text)))


def test_tiles_refuse_a_time_axis_and_stream_refuses_synthetic_targets(folder):
    with pytest.raises(ConfigError, match="data.stream decodes photos"):
        load_config(_write(folder, SHAPE_AND_COLOUR.replace("[data]\n", "[data]\nstream = true\n")))
    with pytest.raises(ConfigError, match="render.tile"):
        build_problem(load_config(_write(folder, SHAPE_AND_COLOUR.replace("[data]\n", "[data]\nframes = 2\n")
                                         + "[render]\ntile = 10\n")))


# ------------------------------------------------------------------------------------------ streamed photos
def _photos(folder, count=5, size=(20, 16)):
    scene = lg.scene.scene_from_mesh(lg.io.load(folder / "sphere.obj"))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, -2.0]), torch.tensor(8.0)))
    scene.meshes["mesh"].material.base_color_factor = torch.tensor([0.7, 0.3, 0.2, 1.0])
    cams = [lg.Camera.look_at([3.0 * (k - 2) / 2, 0.5, -3.0], [0.0, 0.0, 0.0], width=size[0], height=size[1])
            for k in range(count)]
    paths = []
    for k, cam in enumerate(cams):
        paths.append(folder / f"photo{k}.png")
        lg.io.write_image(paths[-1], lg.render(scene, cam, background=0.0).rgba)
    lg.io.write_nerf_transforms(folder / "transforms.json", cams, paths)
    return paths


PHOTOS = """
name = "photos"
[scene]
file = "sphere.obj"
[[scene.lights]]
name = "key"
type = "point"
position = [2.0, 2.0, -2.0]
intensity = 8.0
[data]
dataset = "transforms.json"
[[optimize]]
name = "albedo"
params = "meshes.*.material.base_color_factor"
map = "sigmoid"
init = [0.5, 0.5, 0.5, 1.0]
lr = 0.1
[loss]
mse = 1.0
mask = "alpha"
[fit]
steps = 8
views_per_step = 2
checkpoint_every = 100
"""


def test_a_streamed_fit_equals_the_eager_fit(folder):
    """The same photos, decoded per step through a cache that holds two of the five: the same fit, bit for bit."""
    _photos(folder)
    eager = run_fit(_write(folder, PHOTOS), folder / "eager")
    image_bytes = 20 * 16 * 4 * 4
    streamed_text = PHOTOS.replace("[data]\n", f"[data]\nstream = true\ncache_mb = {2 * image_bytes / 2 ** 20}\n")
    streamed = run_fit(_write(folder, streamed_text, "streamed.toml"), folder / "streamed")
    colour = "meshes.mesh.material.base_color_factor"
    a, b = eager.metrics, streamed.metrics
    assert b["parameters"][colour]["final"] == a["parameters"][colour]["final"]
    assert b["final_loss"] == a["final_loss"]
    assert b["psnr_final_db"] == pytest.approx(a["psnr_final_db"], abs=1e-4)
    assert b["psnr_final_db"] > b["psnr_initial_db"] + 5
    assert (streamed.out_dir / "images" / "views.png").exists()


def test_streamed_targets_index_like_the_tensor_and_digest_the_files(folder):
    paths = _photos(folder, count=4)
    eager = lg.io.read_dataset(folder / "transforms.json")
    stream = StreamedTargets(lg.io.read_dataset(folder / "transforms.json", lazy=True, cache_bytes=0))
    assert stream.shape == eager.images.shape and len(stream) == 4 and stream.dtype == eager.images.dtype
    for key in (2, -1, slice(1, 3), torch.tensor([3, 0]), [1, 1], torch.tensor([True, False, True, False]),
                (slice(None, 2), Ellipsis, slice(None, 3)), (Ellipsis, 3)):
        assert torch.equal(stream[key], eager.images[key]), key
    with pytest.raises(IndexError, match="view indices"):
        stream[[0, 4]]
    digest = stream.digest()
    assert digest == StreamedTargets(lg.io.read_dataset(folder / "transforms.json", lazy=True)).digest()
    data = bytearray(paths[1].read_bytes())
    data[-20] ^= 1  # a changed byte in a photo (its IEND chunk's CRC region: decodes or not, the digest differs)
    paths[1].write_bytes(bytes(data))
    assert StreamedTargets(lg.io.read_dataset(folder / "transforms.json", lazy=True)).digest() != digest


def test_views_one_at_a_time_give_the_batch_metrics(folder):
    problem = build_problem(load_config(_write(folder, SHAPE_AND_COLOUR)))
    images, metrics = evaluate_views(problem)
    assert images.shape[0] == 3
    problem.config.render.tile = 10
    tiled_images, tiled_metrics = evaluate_views(problem)
    torch.testing.assert_close(tiled_images, images, rtol=0, atol=1e-6)
    assert tiled_metrics["psnr_db"] == pytest.approx(metrics["psnr_db"], abs=1e-4)
    assert tiled_metrics["mean_abs_error"] == pytest.approx(metrics["mean_abs_error"], rel=1e-5)


# ------------------------------------------------------------------------------------------ shares of ranks
def _step_gradients(folder, text, rank=0, world_size=1):
    problem = build_problem(load_config(_write(folder, text)))
    problem.rank, problem.world_size = rank, world_size
    loss, _ = problem.loss(0)
    loss.backward()
    return [leaf.grad.clone() for g in problem.groups for leaf in problem.leaves(g)], problem


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("tile", [0, 8])
def test_ranks_average_to_the_one_process_gradient(folder, masked, tile):
    """Two ranks' weighted losses (emulated in one process: rank / world_size set by hand, gradients averaged as
    the all-reduce does) give the one-process gradient, with masked means pooled over views of unequal masks."""
    text = SHAPE_AND_COLOUR.replace("views = 3", "views = 5").replace("views_per_step = 2", "views_per_step = 3")
    text = text.replace("{ scale = 1.15 }", "{ scale = [1.6, 0.6, 0.5] }")  # a flat truth: masks differ by view
    text = text if masked else text.replace('mask = "alpha"\n', "")
    text += f"[render]\ntile = {tile}\n" if tile else ""
    one, problem = _step_gradients(folder, text)
    if masked:
        sums = problem.view_mask_sums(problem.camera)
        assert float(sums.max() / sums.min()) > 1.05  # unequal masks: weighting by views would be wrong
    ranks = [_step_gradients(folder, text, rank, 2)[0] for rank in (0, 1)]
    for g, g0, g1 in zip(one, *ranks):
        assert g.abs().max() > 0
        torch.testing.assert_close((g0 + g1) / 2, g, rtol=1e-4, atol=1e-6 * float(g.abs().max()))
