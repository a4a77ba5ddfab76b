"""Image losses: masked MSE / L1, PSNR, SSIM and MS-SSIM vs float64 loop references, hand values, gradcheck."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.losses import l1_loss, ms_ssim, ms_ssim_loss, mse_loss, psnr, ssim, ssim_loss

DT = torch.float64
C1, C2 = 0.01 ** 2, 0.03 ** 2


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


# ------------------------------------------------------------------ float64 loop references (independent code)


def _window_ref(window, sigma):
    r = (window - 1) / 2
    w = [[math.exp(-((u - r) ** 2 + (v - r) ** 2) / (2 * sigma ** 2)) for v in range(window)] for u in range(window)]
    total = sum(map(sum, w))
    return [[x / total for x in row] for row in w]


def _stats_ref(x, y, window, sigma, c1=C1, c2=C2):
    """Mean SSIM and mean contrast-structure of two 2-D lists by explicit window sums per output pixel."""
    g = _window_ref(window, sigma)
    H, W = len(x), len(x[0])
    s_sum = cs_sum = 0.0
    n = 0
    for i in range(H - window + 1):
        for j in range(W - window + 1):
            mx = my = sxx = syy = sxy = 0.0
            for u in range(window):
                for v in range(window):
                    a, b, w = x[i + u][j + v], y[i + u][j + v], g[u][v]
                    mx += w * a
                    my += w * b
            for u in range(window):
                for v in range(window):
                    a, b, w = x[i + u][j + v] - mx, y[i + u][j + v] - my, g[u][v]
                    sxx += w * a * a
                    syy += w * b * b
                    sxy += w * a * b
            cs = (2 * sxy + c2) / (sxx + syy + c2)
            lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            s_sum += lum * cs
            cs_sum += cs
            n += 1
    return s_sum / n, cs_sum / n


def _ssim_ref(x, y, window=11, sigma=1.5):
    """``x, y [H, W, C]`` tensors -> mean over channels of the loop SSIM."""
    vals = [_stats_ref(x[..., c].tolist(), y[..., c].tolist(), window, sigma)[0] for c in range(x.shape[-1])]
    return sum(vals) / len(vals)


def _pool_ref(x):
    H, W = len(x) // 2, len(x[0]) // 2
    return [[(x[2 * i][2 * j] + x[2 * i + 1][2 * j] + x[2 * i][2 * j + 1] + x[2 * i + 1][2 * j + 1]) / 4
             for j in range(W)] for i in range(H)]


def _ms_ssim_ref(x, y, weights, window, sigma):
    vals = []
    for c in range(x.shape[-1]):
        a, b = x[..., c].tolist(), y[..., c].tolist()
        out = 1.0
        for j, w in enumerate(weights):
            s, cs = _stats_ref(a, b, window, sigma)
            out *= max(s if j == len(weights) - 1 else cs, 1e-6) ** w
            a, b = _pool_ref(a), _pool_ref(b)
        vals.append(out)
    return sum(vals) / len(vals)


# ------------------------------------------------------------------------------------------------ MSE / L1 / PSNR


def test_mse_l1_hand_values_and_identity():
    p = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]], dtype=DT)  # [1, 2, 2]
    t = torch.zeros_like(p)
    torch.testing.assert_close(mse_loss(p, t), torch.tensor(6 / 4, dtype=DT))
    torch.testing.assert_close(l1_loss(p, t), torch.tensor(4 / 4, dtype=DT))
    x = _rand(2, 5, 6, 3)
    assert float(mse_loss(x, x)) == 0.0 and float(l1_loss(x, x)) == 0.0
    assert float(ssim_loss(x[:, :, :, :], x, window=5)) == pytest.approx(0.0, abs=1e-12)


def test_masks_select_and_weight_pixels():
    p, t = _rand(2, 5, 6, 3), _rand(2, 5, 6, 3, seed=1)
    m = _rand(5, 6, seed=2) > 0.5
    sel = m.expand(2, 5, 6)
    for fn, err in ((mse_loss, (p - t) ** 2), (l1_loss, (p - t).abs())):
        want = err[sel].mean()
        torch.testing.assert_close(fn(p, t, mask=m), want)
        torch.testing.assert_close(fn(p, t, mask=m.double()), want)
        torch.testing.assert_close(fn(p, t, mask=m.double()[..., None]), want)  # [H, W, 1]
        # soft weights, per-image masks
        w = _rand(2, 5, 6, seed=3)
        torch.testing.assert_close(fn(p, t, mask=w), (err * w[..., None]).sum() / (3 * w.sum()))
        # all-ones mask is the plain mean
        torch.testing.assert_close(fn(p, t, mask=torch.ones(5, 6, dtype=DT)), fn(p, t))


def test_empty_mask_gives_zero_and_finite_grad():
    p = _rand(4, 4, 2).requires_grad_()
    t = _rand(4, 4, 2, seed=1)
    for fn in (mse_loss, l1_loss):
        loss = fn(p, t, mask=torch.zeros(4, 4, dtype=DT))
        assert float(loss.detach()) == 0.0
        (g,) = torch.autograd.grad(loss, p)
        assert torch.equal(g, torch.zeros_like(g))
    assert math.isinf(float(psnr(p.detach(), t, mask=torch.zeros(4, 4, dtype=DT))))


def test_psnr_values():
    t = torch.zeros(1, 3, 4, 3)
    out = psnr(torch.full_like(t, 0.1), t)
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr(torch.full_like(t, 25.5), t, max_value=255)) == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(float(psnr(t, t)))
    p, q = _rand(2, 4, 5, 3), _rand(2, 4, 5, 3, seed=1)
    torch.testing.assert_close(psnr(p, q), -10 * torch.log10(((p - q) ** 2).mean()))
    m = torch.tensor([[1.0] * 5] + [[0.0] * 5] * 3, dtype=DT)
    torch.testing.assert_close(psnr(p, q, mask=m), -10 * torch.log10(((p - q)[:, :1] ** 2).mean()))


def test_mse_l1_gradcheck():
    p = _rand(2, 3, 4, 2).requires_grad_()
    t = (p.detach() + 0.1 + 0.3 * _rand(2, 3, 4, 2, seed=1) * torch.sign(_randn(2, 3, 4, 2, seed=2)))
    t = t.requires_grad_()  # |p - t| >= 0.1: away from the L1 kink
    w = _rand(3, 4, seed=3)
    assert gradcheck(lambda a, b: mse_loss(a, b, mask=w), (p, t))
    assert gradcheck(lambda a, b: l1_loss(a, b, mask=w), (p, t))
    assert gradcheck(lambda a, b: mse_loss(a, b), (p, t))
    assert gradcheck(lambda a, b: l1_loss(a, b), (p, t))


# ---------------------------------------------------------------------------------------------------------- SSIM


def test_ssim_matches_loop_reference():
    x, y = _rand(13, 13, 2), _rand(13, 13, 2, seed=1)
    y = 0.6 * x + 0.4 * y  # correlated, so the map is not near 0
    torch.testing.assert_close(ssim(x, y), torch.tensor(_ssim_ref(x, y), dtype=DT), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ssim(x, y, window=5, sigma=1.0),
                               torch.tensor(_ssim_ref(x, y, 5, 1.0), dtype=DT), rtol=1e-12, atol=1e-12)
    # float32 input: float32 output, close to the float64 reference
    s32 = ssim(x.float(), y.float())
    assert s32.dtype == torch.float32
    assert abs(float(s32) - _ssim_ref(x, y)) < 1e-5


def test_ssim_constant_shift_closed_form():
    # y = x + c: equal variances and cov = var, so the structure term is exactly 1 and
    # SSIM = mean over windows of (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1)
    c = 0.2
    assert float(ssim(torch.full((11, 11, 1), 0.5, dtype=DT), torch.full((11, 11, 1), 0.5 + c, dtype=DT))) == \
        pytest.approx((2 * 0.5 * 0.7 + C1) / (0.25 + 0.49 + C1), abs=1e-14)
    x = _rand(14, 13, 1)
    g = _window_ref(11, 1.5)
    want = []
    for i in range(4):
        for j in range(3):
            mu = sum(g[u][v] * float(x[i + u, j + v, 0]) for u in range(11) for v in range(11))
            want.append((2 * mu * (mu + c) + C1) / (mu ** 2 + (mu + c) ** 2 + C1))
    assert float(ssim(x, x + c)) == pytest.approx(sum(want) / len(want), abs=1e-12)


def test_ssim_identity_symmetry_batch():
    x, y = _rand(2, 3, 12, 14, 3), _rand(2, 3, 12, 14, 3, seed=1)
    torch.testing.assert_close(ssim(x, x), torch.tensor(1.0, dtype=DT))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    per = torch.stack([ssim(x[i, j, ..., c:c + 1], y[i, j, ..., c:c + 1])
                       for i in range(2) for j in range(3) for c in range(3)])
    torch.testing.assert_close(ssim(x, y), per.mean())
    torch.testing.assert_close(ssim_loss(x, y), 1 - ssim(x, y))
    # data_range scales the constants: ssim(255 x, 255 y, L=255) == ssim(x, y, L=1)
    torch.testing.assert_close(ssim(255 * x, 255 * y, data_range=255.0), ssim(x, y))


def test_ssim_gradcheck():
    x = _rand(1, 9, 8, 2).requires_grad_()
    y = (0.7 * x.detach() + 0.3 * _rand(1, 9, 8, 2, seed=1)).requires_grad_()
    assert gradcheck(lambda a, b: ssim(a, b, window=5, sigma=1.0), (x, y))
    x1 = _rand(12, 11, 1, seed=2).requires_grad_()
    y1 = (0.5 * x1.detach() + 0.5 * _rand(12, 11, 1, seed=3)).requires_grad_()
    assert gradcheck(lambda a, b: ssim(a, b), (x1, y1))


# ------------------------------------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_matches_loop_reference():
    x = _rand(22, 21, 2)
    y = 0.7 * x + 0.3 * _rand(22, 21, 2, seed=1)
    w = (0.2, 0.3, 0.5)
    got = ms_ssim(x, y, weights=w, window=5, sigma=1.0)
    torch.testing.assert_close(got, torch.tensor(_ms_ssim_ref(x, y, w, 5, 1.0), dtype=DT), rtol=1e-12, atol=1e-12)
    # one scale is plain SSIM
    torch.testing.assert_close(ms_ssim(x, y, weights=(1.0,), window=5, sigma=1.0), ssim(x, y, window=5, sigma=1.0))


def test_ms_ssim_identity_symmetry_and_noise_monotone():
    x = _rand(176, 180, 2)
    torch.testing.assert_close(ms_ssim(x, x), torch.tensor(1.0, dtype=DT))
    assert float(ms_ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-12)
    noise = _randn(176, 180, 2, seed=1)
    vals = [float(ms_ssim(x, x + s * noise)) for s in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)]
    assert all(a > b for a, b in zip(vals, vals[1:])), vals
    y = x + 0.1 * noise
    torch.testing.assert_close(ms_ssim(x, y), ms_ssim(y, x))
    torch.testing.assert_close(ms_ssim_loss(x, y), 1 - ms_ssim(x, y))


def test_ms_ssim_clamps_negative_scales():
    x = _rand(44, 44, 1)
    y = 1 - x  # anti-correlated: cs < 0 at the finest scale
    out = ms_ssim(x, y, weights=(0.5, 0.3, 0.2))
    assert torch.isfinite(out) and 0 < float(out) < 1e-2
    xg = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(ms_ssim(xg, y, weights=(0.5, 0.3, 0.2)), xg)
    assert torch.isfinite(g).all()


def test_ms_ssim_gradcheck():
    x = _rand(48, 48, 1).requires_grad_()
    y = (0.7 * x.detach() + 0.3 * _rand(48, 48, 1, seed=1)).requires_grad_()
    w = torch.tensor([0.0448, 0.2856, 0.3001])
    w = tuple((w / w.sum()).tolist())
    assert gradcheck(lambda a, b: ms_ssim(a, b, weights=w), (x, y), fast_mode=True)
    xs = _rand(10, 11, 1, seed=2).requires_grad_()
    ys = (0.6 * xs.detach() + 0.4 * _rand(10, 11, 1, seed=3)).requires_grad_()
    assert gradcheck(lambda a, b: ms_ssim(a, b, weights=(0.4, 0.6), window=5, sigma=1.0), (xs, ys))


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_input():
    x = _rand(12, 12, 1)
    with pytest.raises(ValueError, match="same shape"):
        mse_loss(x, _rand(12, 12, 2))
    with pytest.raises(TypeError, match="target must have a floating dtype"):
        l1_loss(x, torch.zeros(12, 12, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="pred contains NaN"):
        ssim(torch.full_like(x, float("nan")), x)
    with pytest.raises(ValueError, match=r"pred must have shape \[\.\.\., \?, \?, \?\]"):
        ssim(x[..., 0], x[..., 0])
    with pytest.raises(ValueError, match="H, W >= 11"):
        ssim(x[:10], x[:10])
    with pytest.raises(ValueError, match="H, W >= 176"):
        ms_ssim(x, x)
    with pytest.raises(ValueError, match="H, W >= 20"):
        ms_ssim(x, x, weights=(0.5, 0.3, 0.2), window=5)
    with pytest.raises(ValueError, match="window must be a positive odd int"):
        ssim(x, x, window=4)
    with pytest.raises(ValueError, match="sigma"):
        ssim(x, x, sigma=0.0)
    with pytest.raises(ValueError, match="weights"):
        ms_ssim(x, x, weights=())
    with pytest.raises(ValueError, match="mask must have shape"):
        mse_loss(x, x, mask=torch.ones(12, 11, dtype=DT))
    with pytest.raises(ValueError, match="non-negative"):
        mse_loss(x, x, mask=-torch.ones(12, 12, dtype=DT))
    with pytest.raises(ValueError, match="max_value"):
        psnr(x, x, max_value=0)


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "psnr", "ssim_loss", "ms_ssim_loss"])
def test_channels_first_images_are_refused_with_the_fix(loss):
    import lumigrad.losses as L

    nchw = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"looks like channels-first \[N, C, H, W\].*permute\(0, 2, 3, 1\)"):
        getattr(L, loss)(nchw, nchw)
    nhwc = nchw.permute(0, 2, 3, 1)
    with pytest.raises(ValueError, match="target has shape"):
        getattr(L, loss)(nhwc, nchw)
