"""Pixel reconstruction filters (:mod:`lumigrad.cameras.pixel_filter`): Mitsuba's formulas, filter importance
sampling that is unbiased for the normalised filtered radiance (borders included), and the adjoint at film
points."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.cameras.pixel_filter import (FILTERS, PixelFilter, as_pixel_filter, axis_normalisers,
                                           filter_adjoint_at, sample_in_pixels)

F64 = torch.float64
KINDS = [PixelFilter(k) for k in FILTERS] + [PixelFilter("tent", radius=1.5), PixelFilter("gaussian", stddev=0.3),
                                              PixelFilter("mitchell", b=0.5, c=0.25), PixelFilter("lanczos", lobes=2)]


def _ids(f: PixelFilter) -> str:
    return f"{f.kind}-{f.radius:g}"


def test_the_filters_are_mitsubas():
    """Values of Mitsuba 3.9.1's ``rfilter`` plugins' ``eval`` at defaults (printed once from
    ``mi.load_dict({"type": kind}).eval(x)``): the same formulas and radii. Mitsuba's gaussian differs from
    ``exp`` by up to 4.2e-4 (its JIT's approximate exponential: at 0 it gives 0.999247, where
    ``1 - exp(-8)`` is 0.999665), hence the gaussians' tolerance."""
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 1.9, 2.5], dtype=F64)
    mitsuba = {
        "box": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "tent": [1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0],
        "gaussian": [0.999247, 0.882167, 0.606423, 0.324243, 0.13496, 0.010758, 0.000388, 0.0],
        "mitchell": [0.888889, 0.782118, 0.534722, 0.256076, 0.055556, -0.034722, -0.002945, 0.0],
        "catmullrom": [1.0, 0.867188, 0.5625, 0.226562, 0.0, -0.0625, -0.0045, 0.0],
        "lanczos": [1.0, 0.890067, 0.607927, 0.27019, 0.0, -0.135095, -0.02377, 0.024317],
    }
    radii = {"box": 0.5, "tent": 1.0, "gaussian": 2.0, "mitchell": 2.0, "catmullrom": 2.0, "lanczos": 3.0}
    for kind, values in mitsuba.items():
        f = PixelFilter(kind)
        assert f.radius == radii[kind]
        atol = 5e-4 if kind == "gaussian" else 2e-6
        torch.testing.assert_close(f.eval(x), torch.tensor(values, dtype=F64), atol=atol, rtol=0, msg=kind)
    # parameters as Mitsuba's: a tent of radius 1.5, a gaussian of stddev 0.3 (radius 1.2)
    torch.testing.assert_close(PixelFilter("tent", radius=1.5).eval(x)[:5],
                               torch.tensor([1.0, 0.833333, 0.666667, 0.5, 0.333333], dtype=F64), atol=2e-6, rtol=0)
    torch.testing.assert_close(PixelFilter("gaussian", stddev=0.3).eval(x)[:5],
                               torch.tensor([0.999264, 0.70658, 0.248928, 0.043621, 0.003538], dtype=F64),
                               atol=5e-4, rtol=0)


def _quadrature(f: PixelFilter, lo: float, hi: float, fn, n: int = 20001) -> float:
    x = torch.linspace(lo, hi, n, dtype=F64)
    y = f.eval(x) * fn(x)
    return float(torch.trapezoid(y, x))


@pytest.mark.parametrize("filt", KINDS, ids=_ids)
def test_the_normalisers_integrate_the_filter_over_the_film(filt):
    """``Z`` of each pixel of a 5-pixel film: the filter's integral over the part of its support on the film."""
    size = 5
    z = axis_normalisers(filt, size)
    for i in range(size):
        c = i + 0.5
        lo, hi = max(-filt.radius, -c), min(filt.radius, size - c)
        assert float(z[i]) == pytest.approx(_quadrature(filt, lo, hi, lambda x: torch.ones_like(x)), rel=1e-6,
                                            abs=1e-4)  # (the trapezoid rule at the box's jumps)


def _midpoints(lo: float, hi: float, cut: float = None, n: int = 1200):
    """Midpoints and widths of ``n`` cells over ``[lo, hi]``, a cell edge at ``cut`` (the test image's step)."""
    edges = torch.linspace(lo, hi, n + 1, dtype=F64)
    if cut is not None and lo < cut < hi:
        edges = torch.cat([edges, torch.tensor([cut], dtype=F64)]).sort().values
    return 0.5 * (edges[1:] + edges[:-1]), edges[1:] - edges[:-1]


@pytest.mark.parametrize("filt", KINDS, ids=_ids)
def test_weighted_samples_estimate_the_filtered_value(filt):
    """The mean of ``weight * g(uv)`` over many samples of a pixel equals ``integral w g / integral w`` over the
    film (the pixel's filtered value of a test image ``g`` with a sharp edge and a slope), at the border (pixel 0)
    and inside; stratified numbers so that the check is tight. Signed weights (negative lobes) converge more
    slowly: at 1024^2 strata their mean is 1 to 0.3 % (mitchell at the corner pixel: estimate 0.25649 against
    0.25717), at 3000^2 to 0.05 % (0.25744), hence 0.5 % for them."""
    H, W = 3, 6
    n = 1024
    grid = (torch.arange(n, dtype=F64) + 0.5) / n
    u = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)

    def g(x, y):
        return torch.where(x > 2.3, 1.0 + 0.3 * y, 0.2 + 0.1 * x)

    for row, col in ((0, 0), (1, 2), (2, 5)):
        uv, weight = sample_in_pixels(filt, torch.tensor(row), torch.tensor(col), H, W, u)
        assert uv[:, 0].min() >= 0 and uv[:, 0].max() <= W and uv[:, 1].min() >= 0 and uv[:, 1].max() <= H
        estimate = float((weight * g(uv[:, 0], uv[:, 1])).mean())
        # the reference: a 2D quadrature over the support on the film
        cx, cy = col + 0.5, row + 0.5
        xs, dx = _midpoints(max(0.0, cx - filt.radius), min(W, cx + filt.radius), cut=2.3)
        ys, dy = _midpoints(max(0.0, cy - filt.radius), min(H, cy + filt.radius))
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        w = filt.eval(X - cx) * filt.eval(Y - cy) * dx[None, :] * dy[:, None]
        num, den = (w * g(X, Y)).sum(), w.sum()
        tolerance = 1e-3 if filt.kind in ("box", "tent", "gaussian") else 5e-3
        assert estimate == pytest.approx(float(num / den), rel=tolerance, abs=tolerance), (filt, row, col)


@pytest.mark.parametrize("filt", KINDS[1:], ids=_ids)
def test_each_axis_maps_u_onto_the_support_with_the_weights_density(filt):
    """Exactness, not statistics: per axis ``u -> x`` is monotone from the support's start on the film to its end,
    and the weight is ``f(x) / Z`` times the map's derivative ``dx/du`` (the reciprocal of the density the
    samples have), so ``E[weight g(x)] = integral f g / Z`` for any ``g``, at interior and border pixels."""
    from lumigrad.cameras.pixel_filter import _sample_axis

    size = 7
    u = torch.rand(200000, generator=torch.Generator().manual_seed(4), dtype=F64).sort().values  # (a regular grid
    # lands exactly on knots, where the map has kinks)
    for index in (0, 1, 3, 6):
        x, weight = _sample_axis(filt, torch.full_like(u, index, dtype=torch.long), size, u)
        c = index + 0.5
        lo, hi = max(-filt.radius, -c), min(filt.radius, size - c)
        ends, _ = _sample_axis(filt, torch.tensor([index, index]), size, torch.tensor([0.0, 1.0], dtype=F64))
        assert bool((x[1:] >= x[:-1]).all()) and torch.allclose(ends, torch.tensor([lo, hi], dtype=F64), atol=1e-9)
        h = 1e-9
        idx = torch.full_like(u, index, dtype=torch.long)
        dx_du = (_sample_axis(filt, idx, size, u + h)[0] - _sample_axis(filt, idx, size, u - h)[0]) / (2 * h)
        want = filt.eval(x) * dx_du / axis_normalisers(filt, size)[index]
        err = (weight - want).abs()
        # a difference straddling a knot (a kink of the map) is off: a few samples in 200000
        assert float((err > 1e-4 * (1 + want.abs())).double().mean()) < 1e-4, (index, float(err.max()))
        # the integral of the weight over u is 1 (here a Monte Carlo mean: within 4 standard errors)
        assert float(weight.mean()) == pytest.approx(1.0, abs=4 * float(weight.std()) / len(u) ** 0.5 + 1e-6), index


def test_positive_filters_weigh_every_sample_about_one():
    """Filter importance sampling of a positive filter: the weights ``f / (p Z)`` are 1 up to the density's
    piecewise-linear fit of ``f`` (measured standard deviation: 0.009 for the gaussian, whose cut-off is where the
    fit is worst, 0.001 for the tent), never negative."""
    u = torch.rand(20000, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for kind in ("tent", "gaussian"):
        _, weight = sample_in_pixels(PixelFilter(kind), torch.tensor(4), torch.tensor(4), 9, 9, u)
        assert float(weight.min()) >= 0 and float(weight.std()) < 0.02, kind
        assert float(weight.mean()) == pytest.approx(1.0, abs=0.002), kind


def test_the_box_filter_is_the_old_jitter():
    """Box: ``centre + u - 1/2`` and weight 1, bit for bit (the images of earlier versions are unchanged)."""
    u = torch.rand(7, 2, generator=torch.Generator().manual_seed(1))
    uv, weight = sample_in_pixels(PixelFilter(), torch.tensor(2), torch.tensor(3), 5, 5, u)
    assert torch.equal(uv, torch.tensor([3.0, 2.0]) + u) and torch.equal(weight, torch.ones(7))


@pytest.mark.parametrize("filt", [PixelFilter("gaussian"), PixelFilter("tent"), PixelFilter("lanczos")], ids=_ids)
def test_the_adjoint_at_a_point_is_the_pixels_filter_weights(filt):
    """``filter_adjoint_at`` of a one-hot image at pixel ``q`` is ``w(p - c_q) / Z_q``; over an image of ones it
    sums each pixel's share; off the film it is 0."""
    H, W = 6, 7
    points = torch.tensor([[3.2, 2.9], [0.1, 0.4], [6.95, 5.5], [-0.2, 3.0], [3.0, 6.01]], dtype=F64)
    zx, zy = axis_normalisers(filt, W), axis_normalisers(filt, H)
    for q in ((2, 3), (0, 0), (5, 6), (3, 1)):
        v = torch.zeros(H, W, 1, dtype=F64)
        v[q] = 1.0
        got = filter_adjoint_at(filt, v, points)[:, 0]
        cx, cy = q[1] + 0.5, q[0] + 0.5
        want = filt.eval(points[:, 0] - cx) * filt.eval(points[:, 1] - cy) / (zx[q[1]] * zy[q[0]])
        want[3:] = 0.0  # off the film
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-9, msg=str(q))


def test_the_adjoint_of_many_points_of_a_wide_filter_goes_in_chunks(monkeypatch):
    """Memory stays bounded for wide filters: the gather runs a few points at a time, with the same result."""
    import lumigrad.cameras.pixel_filter as pf

    filt = PixelFilter("gaussian", stddev=2.0)
    v = torch.randn(20, 30, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    points = torch.rand(500, 2, generator=torch.Generator().manual_seed(2), dtype=F64) * torch.tensor([30.0, 20.0],
                                                                                                     dtype=F64)
    whole = filter_adjoint_at(filt, v, points)
    monkeypatch.setattr(pf, "ADJOINT_TAPS", 17 * 17 * 3 * 7)  # 7 points at a time
    torch.testing.assert_close(filter_adjoint_at(filt, v, points), whole, rtol=0, atol=0)


def test_the_box_adjoint_is_the_pixel_under_the_point():
    v = torch.arange(12, dtype=F64).reshape(3, 4, 1)
    points = torch.tensor([[0.5, 0.5], [3.99, 2.01], [4.0, 1.0], [1.0, -0.01]], dtype=F64)
    assert filter_adjoint_at(PixelFilter(), v, points)[:, 0].tolist() == [0.0, 11.0, 0.0, 0.0]


def test_specs_and_bad_input():
    assert as_pixel_filter(None) == PixelFilter("box")
    assert as_pixel_filter("gaussian") == PixelFilter("gaussian")
    assert as_pixel_filter({"type": "gaussian", "stddev": 0.25}).radius == 1.0
    assert as_pixel_filter({"type": "mitchell", "B": 0.5, "C": 0.25}) == PixelFilter("mitchell", b=0.5, c=0.25)
    assert PixelFilter("catmullrom").b == 0.0 and PixelFilter("catmullrom").c == 0.5
    assert PixelFilter("gaussian").halo == 2 and PixelFilter("box").halo == 0 and PixelFilter("tent").halo == 1
    with pytest.raises(ValueError, match="pixel filter kind"):
        PixelFilter("sinc")
    with pytest.raises(ValueError, match="stddev"):
        PixelFilter("gaussian", stddev=0.0)
    with pytest.raises(ValueError, match="stddev"):
        PixelFilter("gaussian", stddev=math.nan)
    with pytest.raises(ValueError, match="radius"):
        PixelFilter("tent", radius=-1.0)
    with pytest.raises(ValueError, match="radius"):
        PixelFilter("gaussian", radius=2.0)
    with pytest.raises(ValueError, match="lobes"):
        PixelFilter("lanczos", lobes=0)
    with pytest.raises(ValueError, match="at most 16 pixels; the lanczos filter's is 1000"):
        PixelFilter("lanczos", lobes=1000)
    with pytest.raises(ValueError, match="at most 16 pixels"):
        PixelFilter("gaussian", stddev=5.0)
    with pytest.raises(ValueError, match="unknown properties"):
        as_pixel_filter({"type": "gaussian", "sigma": 1.0})
    with pytest.raises(ValueError, match="'type'"):
        as_pixel_filter({"stddev": 1.0})
    with pytest.raises(TypeError, match="pixel_filter"):
        as_pixel_filter(3)
    import lumigrad as lg

    film = lg.Film()
    assert film.pixel_filter == PixelFilter("box")
    film.pixel_filter = "gaussian"  # set later: converted and checked too
    assert film.pixel_filter == PixelFilter("gaussian")
    with pytest.raises(ValueError, match="film pixel_filter"):
        film.pixel_filter = {"type": "gaussian", "sigma": 2}


def _kernel_vs_twin(device: str):
    from lumigrad.cameras.pixel_filter import sample_in_pixels_reference

    gen = torch.Generator().manual_seed(6)
    H, W = 5, 11
    u = torch.rand(H, W, 8, 2, generator=gen, dtype=F64).to(device)
    rows = torch.arange(H, device=device)[:, None, None]
    cols = torch.arange(W, device=device)[None, :, None]
    for filt in KINDS[1:]:
        uv, weight = sample_in_pixels(filt, rows, cols, H, W, u)
        uv_ref, weight_ref = sample_in_pixels_reference(filt, rows, cols, H, W, u)
        assert uv.device.type == weight.device.type == torch.device(device).type
        torch.testing.assert_close(uv, uv_ref, atol=1e-12, rtol=0, msg=str(filt))
        torch.testing.assert_close(weight, weight_ref, atol=1e-11, rtol=1e-11, msg=str(filt))


def test_the_sampling_kernel_matches_its_pytorch_twin():
    """The Warp kernel (:mod:`lumigrad.kernels.filter_sampling`) against ``sample_in_pixels_reference`` on every
    pixel of a small film (borders included): measured within 4e-14 (positions) and 6e-13 (weights)."""
    _kernel_vs_twin("cpu")


@pytest.mark.cuda
def test_the_sampling_kernel_matches_its_pytorch_twin_on_cuda():
    _kernel_vs_twin("cuda")
