"""SSIM and MS-SSIM against torchmetrics, an independent implementation.

torchmetrics reflect-pads the images and averages the SSIM map over the whole image (its contrast-structure
term over the 'valid' crop); lumigrad averages both over the 'valid' windows (the MATLAB reference). So the
comparison takes torchmetrics' full per-pixel map and crops the (window - 1) / 2 border: equal to 1e-12.
"""

import pytest
import torch
import torch.nn.functional as F

from lumigrad.losses import ms_ssim, ssim

tm = pytest.importorskip("torchmetrics.functional.image")

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, as both libraries use


def pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(*shape, generator=g, dtype=torch.float64)
    b = (a + 0.15 * torch.randn(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return a, b


def torchmetrics_valid_maps(x, y, data_range=1.0, reduce=True):
    """torchmetrics' SSIM and contrast-structure over the valid windows of ``[N, C, H, W]`` images: their means,
    or (``reduce=False``) one value per image."""
    _, full = tm.structural_similarity_index_measure(x, y, data_range=data_range, return_full_image=True,
                                                     reduction="none")
    _, cs = tm.structural_similarity_index_measure(x, y, data_range=data_range, return_contrast_sensitivity=True,
                                                   reduction="none")
    s = full[..., 5:-5, 5:-5].reshape(full.shape[0], -1).mean(-1)
    return (s.mean(), cs.mean()) if reduce else (s, cs)


@pytest.mark.parametrize("shape, data_range", [((2, 64, 80, 3), 1.0), ((1, 33, 47, 1), 1.0), ((3, 40, 40, 4), 255.0)])
def test_ssim_equals_torchmetrics_on_the_valid_windows(shape, data_range):
    a, b = pair(shape)
    a, b = a * data_range, b * data_range
    ours = ssim(a, b, data_range=data_range)
    theirs, _ = torchmetrics_valid_maps(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), data_range)
    assert float(ours) == pytest.approx(float(theirs), abs=1e-12)


def test_ms_ssim_equals_torchmetrics_scales_combined():
    a, b = pair((2, 192, 176, 3), seed=1)
    # one plane per image and channel, as lumigrad combines the scales per plane and then averages
    x, y = (t.permute(0, 3, 1, 2).reshape(-1, 1, 192, 176) for t in (a, b))
    value = torch.ones(x.shape[0], dtype=torch.float64)
    for j, w in enumerate(MS_SSIM_WEIGHTS):
        s, cs = torchmetrics_valid_maps(x, y, reduce=False)
        value = value * (s if j == len(MS_SSIM_WEIGHTS) - 1 else cs).clamp_min(1e-6) ** w
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    assert float(ms_ssim(a, b)) == pytest.approx(float(value.mean()), abs=1e-10)
    # torchmetrics' own MS-SSIM averages its last scale over the padded image: close, not equal
    assert float(ms_ssim(a, b)) == pytest.approx(float(tm.multiscale_structural_similarity_index_measure(
        b.permute(0, 3, 1, 2), a.permute(0, 3, 1, 2), data_range=1.0)), abs=5e-3)
