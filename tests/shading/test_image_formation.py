"""Image formation: sRGB and gamma encoding, tone mapping, exposure, white balance, vignetting."""

import math

import pytest
import torch

from lumigrad.shading.image_formation import (form_image, gamma_encode, srgb_decode, srgb_encode, tonemap,
                                              vignetting_falloff)

DT = torch.float64


def _K(f=20.0, cx=8.0, cy=6.0):
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=DT)


def test_srgb_known_values_round_trip_and_monotonic():
    x = torch.tensor([0.0, 0.001, _knee := 0.0031308, 0.18, 0.5, 1.0, 2.0], dtype=DT)
    y = srgb_encode(x)
    # IEC 61966-2-1 reference points: 0.18 -> 0.4614, 0.5 -> 0.7354, 1 -> 1.
    torch.testing.assert_close(y[[0, 3, 4, 5]], torch.tensor([0.0, 0.46135, 0.73536, 1.0], dtype=DT), atol=5e-5,
                               rtol=0)
    assert float(y[1]) == pytest.approx(0.01292)
    torch.testing.assert_close(srgb_decode(y), x, atol=1e-12, rtol=0)
    dense = torch.linspace(0, 1.5, 2001, dtype=DT)
    assert bool((srgb_encode(dense).diff() > 0).all())
    # The two branches meet continuously at the knee.
    assert abs(float(srgb_encode(torch.tensor(_knee + 1e-12, dtype=DT)) - 12.92 * _knee)) < 1e-6


@pytest.mark.parametrize("fn", [srgb_encode, srgb_decode, lambda x: tonemap(x, "reinhard"),
                                lambda x: tonemap(x, "aces"), lambda x: gamma_encode(x, 2.2)])
def test_gradcheck_and_finite_gradients_at_zero(fn):
    x = torch.tensor([0.02, 0.1, 0.4, 0.9], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(fn, (x,))
    z = torch.tensor([0.0, -0.5], dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(fn(z).sum(), z)
    assert bool(torch.isfinite(g).all())


def test_tonemap_ranges():
    x = torch.logspace(-3, 3, 50, dtype=DT)
    for op in ("reinhard", "aces"):
        y = tonemap(x, op)
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        assert bool((y.diff() >= 0).all())
    assert float(tonemap(torch.tensor(1.0, dtype=DT))) == 0.5


def test_vignetting_falloff_by_hand_and_gradcheck():
    K = _K()
    f = vignetting_falloff(K, 12, 16, torch.tensor([-0.3, 0.05], dtype=DT))
    assert f.shape == (12, 16, 1)
    # Pixel (row 6, col 8) has its centre at (8.5, 6.5): r^2 = (0.5^2 + 0.5^2) / 20^2.
    r2 = 0.5 / 400
    assert float(f[6, 8, 0]) == pytest.approx(1 - 0.3 * r2 + 0.05 * r2 * r2)
    corner_r2 = (7.5**2 + 5.5**2) / 400
    assert float(f[0, 0, 0]) == pytest.approx(1 - 0.3 * corner_r2 + 0.05 * corner_r2**2)
    K1 = K.clone().requires_grad_(True)
    c = torch.tensor([-0.3, 0.05, 0.01], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(lambda K, c: vignetting_falloff(K, 3, 4, c), (K1, c))


def test_form_image_skips_everything_by_default_and_composes_in_order():
    g = torch.Generator().manual_seed(0)
    hdr = torch.rand(2, 12, 16, 3, generator=g, dtype=DT) * 3
    assert torch.equal(form_image(hdr), hdr)
    gains = torch.tensor([1.2, 1.0, 0.8], dtype=DT)
    out = form_image(hdr, exposure=-1.0, white_balance=gains, vignetting=torch.tensor([-0.2], dtype=DT), K=_K(),
                     tone="reinhard", encode="srgb")
    by_hand = hdr * 0.5 * gains * vignetting_falloff(_K(), 12, 16, torch.tensor([-0.2], dtype=DT))
    torch.testing.assert_close(out, srgb_encode(by_hand / (1 + by_hand)))
    # Per-image exposure broadcasts over the batch.
    per = form_image(hdr, exposure=torch.tensor([0.0, 1.0], dtype=DT))
    torch.testing.assert_close(per[1], hdr[1] * 2)


def test_form_image_gradients_reach_every_parameter():
    hdr = torch.rand(1, 6, 8, 3, dtype=DT, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    ev = torch.tensor(0.3, dtype=DT, requires_grad=True)
    gains = torch.tensor([1.1, 0.9, 1.0], dtype=DT, requires_grad=True)
    vig = torch.tensor([-0.2, 0.02], dtype=DT, requires_grad=True)
    K = _K(8.0, 4.0, 3.0).requires_grad_(True)
    torch.autograd.gradcheck(lambda h, e, w, v, k: form_image(h, exposure=e, white_balance=w, vignetting=v, K=k,
                                                             tone="aces", encode="srgb"),
                             (hdr, ev, gains, vig, K))


def test_bad_input_names_the_argument():
    img = torch.ones(4, 4, 3)
    with pytest.raises(ValueError, match="white_balance"):
        form_image(img, white_balance=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="white_balance"):
        form_image(img, white_balance=torch.ones(4))
    with pytest.raises(ValueError, match="K"):
        form_image(img, vignetting=torch.tensor([0.1]))
    with pytest.raises(ValueError, match="encode"):
        form_image(img, encode="rec709")
    with pytest.raises(ValueError, match="gamma"):
        gamma_encode(img, 0.0)
    with pytest.raises(ValueError, match="exposure"):
        form_image(img, exposure=float("nan"))
    with pytest.raises(ValueError, match="coeffs"):
        vignetting_falloff(_K(), 4, 4, torch.zeros(4))
    assert math.isfinite(float(form_image(img * 0, encode="gamma").sum()))
