"""One default look (ACES tone mapping, then sRGB) for ``lumigrad render``'s PNG, the images ``lumigrad fit``
writes and ``lumigrad.preview``; the linear output beside it; ``lumigrad render --texture``."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.app.report import image_grid
from lumigrad.cli.main import main
from lumigrad.fitting.outputs import save_views
from lumigrad.shading.image_formation import display_encode, form_image, srgb_encode, tonemap
from tests.conftest import SHARED_DATA

SPOT = SHARED_DATA / "spot-cow"


def _pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).copy()


def test_display_encode_is_aces_then_srgb_and_has_a_gradient():
    x = torch.tensor([[[0.0, 0.02, 0.5], [1.0, 4.0, 100.0]]], dtype=torch.float64)
    assert torch.equal(display_encode(x), srgb_encode(tonemap(x, "aces")))
    assert torch.equal(display_encode(x), form_image(x, tone="aces", encode="srgb"))
    assert float(display_encode(x)[0, 0, 0]) == 0.0 and 0.9 < float(display_encode(x)[0, 1, 0]) < 0.91
    small = (torch.rand(1, 2, 2, 3, dtype=torch.float64) + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(display_encode, (small,))


def test_preview_returns_uint8_hwc_and_writes_the_same_png(tmp_path):
    linear = torch.linspace(0, 3, 5 * 4 * 3).reshape(5, 4, 3)
    shown = lg.preview(linear, tmp_path / "p.png")
    assert shown.dtype == np.uint8 and shown.shape == (5, 4, 3)
    assert np.array_equal(shown, display_encode(linear).mul(255).round().clamp(0, 255).to(torch.uint8).numpy())
    assert np.array_equal(_pixels(tmp_path / "p.png"), shown)
    rgba = torch.cat([linear, torch.full((5, 4, 1), 0.5)], -1)  # alpha is kept, not tone mapped
    assert np.array_equal(lg.preview(rgba)[..., :3], shown) and int(lg.preview(rgba)[0, 0, 3]) == 128
    with pytest.raises(ValueError, match="image"):
        lg.preview(torch.zeros(2, 2, 5))
    with pytest.raises(ValueError, match="NaN"):
        lg.preview(torch.full((2, 2, 3), float("nan")))


def test_render_fit_and_preview_show_one_linear_image_alike(tmp_path):
    """The same linear image: ``lumigrad render`` writes it (its .npy is the linear radiance of its .png),
    ``lumigrad fit`` shows it in views.png, and ``lumigrad.preview`` returns and writes it: the same bytes."""
    spot = tmp_path / "spot.obj"
    lg.io.save(spot, lg.data.load_spot())
    args = ["render", str(spot), "--size", "24", "20", "--exposure", "1.5"]
    assert main(args + ["-o", str(tmp_path / "r.png")]) == 0
    assert main(args + ["-o", str(tmp_path / "r.npy")]) == 0
    linear = torch.from_numpy(np.load(tmp_path / "r.npy"))
    assert linear.shape == (20, 24, 4) and linear.dtype == torch.float32
    assert float(linear[..., :3].max()) > 1.0  # exposure 1.5: HDR values, which the look compresses
    rgb = linear[..., :3]
    shown = lg.preview(rgb, tmp_path / "p.png")
    assert np.array_equal(_pixels(tmp_path / "r.png"), shown)
    assert (tmp_path / "p.png").read_bytes() == (tmp_path / "r.png").read_bytes()
    # the fit's views.png: one view, target = initial = final = the render, synthetic targets, linear film
    problem = SimpleNamespace(camera=[0], targets=rgb[None], truth=object(), scene=SimpleNamespace(film=lg.Film()))
    assert save_views(tmp_path / "views.png", problem, rgb[None], rgb[None]) == 1
    grid = _pixels(tmp_path / "views.png")
    assert grid.shape == image_grid(rgb[None].expand(3, -1, -1, -1), columns=1).shape
    for row in range(3):  # tiles below one another with a 2-pixel white border
        y = 2 + row * (20 + 2)
        assert np.array_equal(grid[y:y + 20, 2:2 + 24], shown)
    # a film that already encodes (or photo targets) is shown as it is, not encoded twice
    problem.scene.film = lg.Film(tone="reinhard", encode="srgb")
    save_views(tmp_path / "encoded.png", problem, rgb[None], rgb[None])
    assert _pixels(tmp_path / "encoded.png")[2, 2, 0] == round(min(float(rgb[0, 0, 0]), 1.0) * 255)


@pytest.mark.skipif(not (SPOT / "spot_texture.png").exists(), reason="../shared/data is not beside the checkout")
def test_render_texture_gives_an_obj_its_base_colour(tmp_path, capsys):
    obj, texture = SPOT / "spot_triangulated.obj", SPOT / "spot_texture.png"
    args = ["render", str(obj), "--size", "24", "24", "--azimuth", "60"]
    assert main(args + ["-o", str(tmp_path / "plain.png")]) == 0
    assert main(args + ["--texture", str(texture), "-o", str(tmp_path / "textured.png")]) == 0
    plain, textured = _pixels(tmp_path / "plain.png").astype(float), _pixels(tmp_path / "textured.png").astype(float)
    covered = plain.sum(-1) > plain[0, 0].sum() + 10  # the cow, brighter than the empty corner
    assert covered.sum() > 50
    # Spot's texture is mostly white with dark patches and a pink nose: coloured, varied pixels on the cow
    assert not np.array_equal(plain, textured)
    assert textured[covered].std(0).mean() > plain[covered].std(0).mean()
    capsys.readouterr()


def test_render_texture_errors_are_one_line(tmp_path, capsys):
    spot = lg.data.load_spot()
    lg.io.save(tmp_path / "spot.obj", spot)
    lg.io.write_obj(tmp_path / "bare.obj", spot.verts, spot.faces)  # no texture coordinates
    lg.io.write_image(tmp_path / "t.png", torch.rand(4, 4, 3))
    cases = [(["bare.obj", "--texture", "t.png"], "--texture needs texture coordinates, and"),
             (["spot.obj", "--texture", "missing.png"], "--texture missing.png: no such image file")]
    for files, message in cases:
        argv = ["render", str(tmp_path / files[0]), "--texture", str(tmp_path / files[2]), "--size", "8", "8",
                "-o", str(tmp_path / "x.png")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message.replace("missing.png", str(tmp_path / "missing.png")) in err and err.count("\n") == 1
