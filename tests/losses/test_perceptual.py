"""Perceptual losses: zero on identical images, monotone in blur and noise, structure over brightness,
gradcheck, the VGG16 state-dict layout and the offline-weights error."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from lumigrad.losses import PerceptualLoss, VGG16Features, perceptual_loss, pyramid_features

DT = torch.float64
H = W = 48


def _test_image(seed=0):
    """A deterministic RGB image in [0.1, 0.9] with smooth shading, edges, stripes and fine texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H, dtype=DT), torch.linspace(0, 1, W, dtype=DT), indexing="ij")
    img = torch.stack([0.5 + 0.25 * torch.sin(12 * xx + 3 * yy),
                       0.4 + 0.25 * ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.08).to(DT),
                       0.5 + 0.2 * torch.sign(torch.sin(20 * yy))], -1)
    img = img + 0.1 * torch.rand(H, W, 3, generator=g, dtype=DT) - 0.05
    return img.clamp(0.1, 0.9)[None]


def _blur(x, sigma):
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    n, h, w, c = x.shape
    p = F.pad(x.permute(0, 3, 1, 2).reshape(-1, 1, h, w), (r, r, r, r), mode="replicate")
    p = F.conv2d(F.conv2d(p, k.view(1, 1, -1, 1)), k.view(1, 1, 1, -1))
    return p.reshape(n, c, h, w).permute(0, 2, 3, 1)


def _noise(seed=1):
    return torch.randn(1, H, W, 3, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_identical_images_give_zero():
    x = _test_image()
    assert float(perceptual_loss(x, x)) == 0.0
    assert float(perceptual_loss(x[..., :1], x[..., :1])) == 0.0
    assert float(PerceptualLoss()(x, x)) == 0.0


def test_monotone_in_blur_strength():
    x = _test_image()
    vals = [float(perceptual_loss(x, _blur(x, s))) for s in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)]
    assert all(b > a for a, b in zip(vals, vals[1:])), vals
    assert vals[0] > 0


def test_monotone_in_noise_level():
    x, n = _test_image(), _noise()
    vals = [float(perceptual_loss(x, x + s * n)) for s in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)]
    assert all(b > a for a, b in zip(vals, vals[1:])), vals


@pytest.mark.parametrize("grey", [False, True])
def test_structure_costs_more_than_brightness_shift_of_same_mse(grey):
    x = _test_image()
    if grey:
        x = x[..., :1]
    n = _noise()[..., : x.shape[-1]]
    for y in (_blur(x, 1.5), x + 0.05 * n):
        mse = float(((y - x) ** 2).mean())
        shifted = x + math.sqrt(mse)  # a global brightness offset with exactly the same MSE
        torch.testing.assert_close(((shifted - x) ** 2).mean(), torch.tensor(mse, dtype=DT))
        structural, brightness = float(perceptual_loss(x, y)), float(perceptual_loss(x, shifted))
        assert structural > 10 * brightness, (structural, brightness)
    # the structure features alone ignore the offset exactly (oriented filters are zero-mean)
    for (sa, _), (sb, _) in zip(pyramid_features(x), pyramid_features(x + 0.1)):
        torch.testing.assert_close(sa, sb)


def test_batch_dims_and_module_match_functional():
    x = torch.cat([_test_image(0), _test_image(1)])
    y = _blur(x, 1.0)
    per = torch.stack([perceptual_loss(x[i:i + 1], y[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(perceptual_loss(x, y), per.mean())
    torch.testing.assert_close(perceptual_loss(x.reshape(1, 2, H, W, 3), y.reshape(1, 2, H, W, 3)), per.mean())
    torch.testing.assert_close(PerceptualLoss(levels=2)(x, y), perceptual_loss(x, y, levels=2))
    assert perceptual_loss(x.float(), y.float()).dtype == torch.float32


def test_levels_adapt_to_small_images():
    assert len(pyramid_features(torch.rand(1, 8, 8, 3))) == 1
    assert len(pyramid_features(torch.rand(1, 40, 70, 1))) == 3
    assert len(pyramid_features(torch.rand(1, 256, 256, 3), levels=4)) == 4


def test_gradcheck_tiny():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 8, 8, 3, generator=g, dtype=DT).requires_grad_()
    y = torch.rand(1, 8, 8, 3, generator=g, dtype=DT).requires_grad_()
    assert gradcheck(lambda a, b: perceptual_loss(a, b), (x, y))
    # identical inputs: zero, finite gradient
    (gx,) = torch.autograd.grad(perceptual_loss(x, x.detach()), x)
    assert torch.isfinite(gx).all() and float(gx.abs().max()) < 1e-12


def _save_random_vgg(path, whole_model=True):
    torch.manual_seed(0)
    net = VGG16Features()
    state = net.state_dict() if whole_model else net.features.state_dict()
    if whole_model:  # torchvision's full vgg16 also has a classifier, which must be ignored
        state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return net


def test_vgg16_state_dict_layout_matches_torchvision():
    keys = list(VGG16Features().state_dict())
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert keys == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    sd = VGG16Features().state_dict()
    assert tuple(sd["features.0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["features.28.weight"].shape) == (512, 512, 3, 3)


@pytest.mark.parametrize("whole_model", [True, False])
def test_vgg16_loads_local_state_dict_and_runs(tmp_path, whole_model):
    path = tmp_path / "vgg16.pth"
    net = _save_random_vgg(path, whole_model)
    loss = PerceptualLoss("vgg16", weights=path)
    torch.testing.assert_close(loss.vgg.features[28].weight, net.features[28].weight)
    assert not any(p.requires_grad for p in loss.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 16, 20, 3, generator=g).requires_grad_()
    y = torch.rand(2, 16, 20, 3, generator=g)
    val = loss(x, y)
    assert val.ndim == 0 and float(val.detach()) > 0 and float(loss(y, y)) < 1e-6
    val.backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    torch.testing.assert_close(perceptual_loss(x, y, "vgg16", weights=str(path)), val)
    assert float(loss(y[..., :1], y[..., :1])) < 1e-6  # grey images are repeated to RGB
    with pytest.raises(ValueError, match="H, W >= 16"):
        loss(x[:, :8], y[:, :8])


def test_vgg16_missing_weights_message(tmp_path):
    for make in (lambda: perceptual_loss(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3), "vgg16"),
                 lambda: PerceptualLoss("vgg16")):
        with pytest.raises(ValueError, match="cannot download") as err:
            make()
        assert "weights=" in str(err.value) and "state dict" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist.*cannot download"):
        PerceptualLoss("vgg16", weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a torchvision VGG16 state dict"):
        PerceptualLoss("vgg16", weights=bad)


def test_bad_input():
    x = torch.rand(1, 16, 16, 3)
    with pytest.raises(ValueError, match="C = 1"):
        perceptual_loss(torch.rand(1, 16, 16, 4), torch.rand(1, 16, 16, 4))
    with pytest.raises(ValueError, match="same shape"):
        perceptual_loss(x, torch.rand(1, 16, 15, 3))
    with pytest.raises(ValueError, match="features"):
        perceptual_loss(x, x, features="alexnet")
    with pytest.raises(ValueError, match="weights is only used"):
        perceptual_loss(x, x, weights="vgg.pth")
    with pytest.raises(ValueError, match="y contains NaN"):
        perceptual_loss(x, torch.full_like(x, float("nan")))
    with pytest.raises(TypeError, match="x must have a floating"):
        perceptual_loss(x.long(), x)
    with pytest.raises(ValueError, match="levels"):
        perceptual_loss(x, x, levels=0)
