"""The homogeneous medium and the Henyey-Greenstein phase function: chi-square of HG sampling for several g,
normalisation, mean cosine and sign convention, exponential distance sampling against its density (a 1D
chi-square with the escape cell) and its unbiasedness, gradients, bad input."""

import math

import numpy as np
import pytest
import torch

from lumigrad.shading import HenyeyGreenstein, HomogeneousMedium
from lumigrad.shading.henyey_greenstein import hg_eval, hg_sample

from .chi2 import assert_chi2, chi2_sphere, frame_from_axis, integrate_sphere

DT = torch.float64
WO = torch.tensor([0.2, -0.5, 0.7], dtype=DT) / math.sqrt(0.78)
G_VALUES = [-0.7, 0.0, 0.3, 0.9]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ HG
@pytest.mark.parametrize("g", G_VALUES)
def test_hg_sample_follows_its_pdf(g):
    hg = HenyeyGreenstein(g)

    def sample(n):
        s = hg.sample(WO.expand(n, 3), torch.rand(n, 2, generator=_gen(30 + G_VALUES.index(g)), dtype=DT))
        return s.wi, s.pdf[:, 0] > 0
    # The histogram's pole on the forward direction -wo, where the lobe is (the density depends on cos only).
    result = chi2_sphere(sample, lambda d: hg.pdf(WO.expand(d.shape[0], 3), d)[:, 0], frame=frame_from_axis(-WO),
                         n_cos=40, n_phi=20, quad=12)
    print(f"g = {g}: p = {result.p_value:.4f}, chi2 = {result.statistic:.1f}, dof = {result.dof}")
    assert result.invalid[0] == 0
    assert_chi2(result, f"hg-{g}", tests=len(G_VALUES) + 1)


def test_hg_chi2_rejects_a_wrong_g():
    hg = HenyeyGreenstein(0.5)

    def sample(n):
        return hg.sample(WO.expand(n, 3), torch.rand(n, 2, generator=_gen(35), dtype=DT)).wi, torch.ones(n, dtype=bool)
    result = chi2_sphere(sample, lambda d: hg_eval(WO.expand(d.shape[0], 3), d, 0.53)[:, 0],
                         frame=frame_from_axis(-WO), n_cos=40, n_phi=20, quad=12, samples=50_000)
    assert not result.passes(tests=len(G_VALUES) + 1)


@pytest.mark.parametrize("g", G_VALUES)
def test_hg_is_normalised_symmetric_and_its_mean_cosine_is_g(g):
    hg = HenyeyGreenstein(g)
    frame = frame_from_axis(-WO)
    mass = float(integrate_sphere(lambda d: hg.eval(WO.expand(d.shape[0], 3), d)[:, 0], frame, 200, 4, 16).sum())
    mean_cos = float(integrate_sphere(lambda d: hg.eval(WO.expand(d.shape[0], 3), d)[:, 0] * -(d @ WO), frame, 200,
                                      4, 16).sum())
    assert mass == pytest.approx(1.0, abs=1e-6) and mean_cos == pytest.approx(g, abs=1e-6)
    a, b = torch.nn.functional.normalize(torch.randn(2, 50, 3, generator=_gen(36), dtype=DT), dim=-1)
    torch.testing.assert_close(hg.eval(a, b), hg.eval(b, a), rtol=1e-14, atol=0)
    # The formula, with Mitsuba's sign: cos = wo . wi, forward scattering (g > 0) peaks at wi = -wo.
    cos = (a * b).sum(-1, keepdim=True)
    torch.testing.assert_close(hg.eval(a, b), (1 - g * g) / (4 * math.pi * (1 + g * g + 2 * g * cos) ** 1.5))
    if g > 0:
        assert float(hg.eval(WO, -WO)) > float(hg.eval(WO, WO))
        assert float(hg.eval(WO, -WO)) == pytest.approx((1 + g) / (4 * math.pi * (1 - g) ** 2))


def test_hg_sample_matches_mitsubas_inversion_and_has_weight_one():
    n = 1000
    u = torch.rand(n, 2, generator=_gen(37), dtype=DT)
    for g in (-0.95, -0.3, 0.01, 0.5, 0.99):
        s = hg_sample(WO.expand(n, 3), g, u)
        # Mitsuba's hg: sqr = (1 - g^2) / (1 - g + 2 g u), cos = (1 + g^2 - sqr^2) / (2 g), about the forward axis.
        sqr = (1 - g * g) / (1 - g + 2 * g * u[:, 0])
        mu = (1 + g * g - sqr * sqr) / (2 * g)
        torch.testing.assert_close(-(s.wi @ WO), mu, rtol=1e-9, atol=1e-9)
        assert bool((s.weight == 1).all())
        torch.testing.assert_close(s.pdf, hg_eval(WO.expand(n, 3), s.wi, g), rtol=1e-10, atol=0)
        torch.testing.assert_close(s.wi.norm(dim=-1), torch.ones(n, dtype=DT))
    # g = 0 needs no special case: cos is uniform, 2 u - 1.
    s = hg_sample(WO.expand(n, 3), 0.0, u)
    torch.testing.assert_close(-(s.wi @ WO), 2 * u[:, 0] - 1, rtol=0, atol=1e-12)


def test_gradcheck_hg_eval_in_g_and_directions():
    wo = torch.nn.functional.normalize(torch.randn(4, 3, generator=_gen(38), dtype=DT), dim=-1).requires_grad_(True)
    wi = torch.nn.functional.normalize(torch.randn(4, 3, generator=_gen(39), dtype=DT), dim=-1).requires_grad_(True)
    g = torch.tensor([[0.3], [-0.5], [0.8], [0.0]], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(hg_eval, (wo, wi, g))
    g1 = torch.tensor(0.4, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: HenyeyGreenstein(g).eval(wo.detach(), wi.detach()), (g1,))
    u = torch.rand(4, 2, generator=_gen(40), dtype=DT)
    assert torch.autograd.gradcheck(lambda g: hg_sample(wo.detach(), g, u)[::2], (g,))


# ------------------------------------------------------------------------------------------------ medium
def _medium(**kw):
    args = dict(sigma_a=torch.tensor([0.5, 0.1, 2.0], dtype=DT), sigma_s=torch.tensor([1.0, 0.3, 0.5], dtype=DT),
                g=0.4)
    args.update(kw)
    return HomogeneousMedium(**args)


def test_medium_coefficients_and_transmittance():
    m = _medium()
    torch.testing.assert_close(m.sigma_t, torch.tensor([1.5, 0.4, 2.5], dtype=DT))
    torch.testing.assert_close(m.albedo, torch.tensor([1 / 1.5, 0.75, 0.2], dtype=DT))
    t = torch.tensor([[0.0], [0.7], [3.0], [math.inf]], dtype=DT)
    tr = m.transmittance(t)
    torch.testing.assert_close(tr[:3], torch.exp(-m.sigma_t * t[:3]))
    assert tr[3].tolist() == [0.0, 0.0, 0.0] and m.channels == 3
    assert HomogeneousMedium(torch.tensor([0.0, 1.0]), torch.zeros(2)).transmittance(
        torch.tensor([[math.inf]])).tolist() == [[1.0, 0.0]]
    assert m.phase.g == 0.4 and isinstance(m.phase, HenyeyGreenstein)


def _counts_chi2(t, scattered, medium, t_max, bins=40):
    """1D chi-square of sampled distances against the spectral-MIS mixture: equal-width bins in
    ``1 - exp(-s t)`` (s the mean extinction) on [0, t_max), plus the escape cell."""
    st = medium.sigma_t
    s_mean = float(st.mean())
    edges_u = torch.linspace(0, 1 - math.exp(-s_mean * t_max), bins + 1, dtype=DT)
    edges = -torch.log1p(-edges_u) / s_mean
    edges[-1] = t_max
    cdf = (1 - torch.exp(-st[None] * edges[:, None])).mean(-1)  # P(t < edge)
    expected = (cdf[1:] - cdf[:-1]) * len(t)
    expected = torch.cat([expected, torch.tensor([(1 - cdf[-1]) * len(t)], dtype=DT)])
    idx = torch.bucketize(t[scattered], edges[1:-1], right=True)
    observed = torch.bincount(idx, minlength=bins).to(DT)
    observed = torch.cat([observed, torch.tensor([float((~scattered).sum())], dtype=DT)])
    stat = float(((observed - expected) ** 2 / expected).sum())
    dof = bins
    p = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=DT), torch.tensor(stat / 2, dtype=DT)))
    return p, stat, dof, float(expected.min())


@pytest.mark.parametrize("t_max", [1.5, 6.0])
def test_distance_sampling_follows_the_spectral_mis_density(t_max):
    m = _medium()
    n = 200_000
    u = torch.rand(n, 1, generator=_gen(41), dtype=DT)
    s = m.sample_distance(u, t_max=torch.full((n, 1), t_max, dtype=DT))
    scattered = s.t[:, 0] < t_max
    p, stat, dof, e_min = _counts_chi2(s.t[:, 0], scattered, m, t_max)
    escaped = float((~scattered).double().mean())
    print(f"t_max {t_max}: p = {p:.4f}, chi2 = {stat:.1f}, dof = {dof}, escaped {escaped:.4f}")
    assert e_min > 5 and p > 0.01 / 3
    # The returned pdf is the mixture's density at events and the escape probability at the surface.
    st = m.sigma_t
    tr = torch.exp(-st * s.t)
    torch.testing.assert_close(s.pdf[scattered], (st * tr).mean(-1, keepdim=True)[scattered])
    torch.testing.assert_close(s.pdf[~scattered], tr.mean(-1, keepdim=True)[~scattered])
    assert bool((s.t[~scattered] == t_max).all())


def test_distance_sampling_is_unbiased_in_every_channel():
    m = _medium()
    n = 400_000
    t_max = 2.0
    u = torch.rand(n, 1, generator=_gen(42), dtype=DT)
    s = m.sample_distance(u, t_max=torch.full((n, 1), t_max, dtype=DT))
    scattered = (s.t < t_max)
    st, ss = m.sigma_t, m.sigma_s
    # int_0^tmax sigma_s Tr dt and Tr(t_max), per channel.
    want_event = ss / st * (1 - torch.exp(-st * t_max))
    want_pass = torch.exp(-st * t_max)
    for est, want in ((s.weight * scattered, want_event), (s.weight * ~scattered, want_pass)):
        mean, err = est.mean(0), est.std(0) / math.sqrt(n)
        assert bool(((mean - want).abs() < 4 * err + 1e-4).all()), (mean, want, err)
    # A caller-chosen uniform channel estimates the same thing.
    channel = torch.randint(0, 3, (n, 1), generator=_gen(43))
    s2 = m.sample_distance(torch.rand(n, 1, generator=_gen(44), dtype=DT), channel=channel,
                           t_max=torch.full((n, 1), t_max, dtype=DT))
    mean = (s2.weight * (s2.t < t_max)).mean(0)
    assert bool(((mean - want_event).abs() < 4 * (s2.weight * (s2.t < t_max)).std(0) / math.sqrt(n) + 1e-4).all())


def test_grey_medium_is_plain_exponential_sampling():
    m = HomogeneousMedium(torch.tensor([0.5] * 3, dtype=DT), torch.tensor([1.5] * 3, dtype=DT))
    u = torch.rand(1000, 1, generator=_gen(45), dtype=DT)
    s = m.sample_distance(u)
    torch.testing.assert_close(s.weight, torch.full((1000, 3), 0.75, dtype=DT))  # albedo, exactly
    torch.testing.assert_close(s.pdf, 2.0 * torch.exp(-2.0 * s.t))
    # One number picks the channel and the distance: t follows the inverse CDF of the fraction.
    frac = u * 3 - (u * 3).floor()
    torch.testing.assert_close(s.t, -torch.log1p(-frac) / 2.0)


def test_gradcheck_transmittance_and_distance_sampling_in_the_coefficients():
    t = torch.tensor([[0.3], [1.2], [2.5]], dtype=DT, requires_grad=True)

    def fn(sigma_a, sigma_s, t):
        return HomogeneousMedium(sigma_a, sigma_s, g=0.2).transmittance(t)
    sa = torch.tensor([0.5, 0.1, 2.0], dtype=DT, requires_grad=True)
    ss = torch.tensor([1.0, 0.3, 0.5], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (sa, ss, t))
    u = torch.tensor([[0.1], [0.5], [0.93]], dtype=DT)
    t_max = torch.full((3, 1), 1.0, dtype=DT)

    def sample(sigma_a, sigma_s):
        s = HomogeneousMedium(sigma_a, sigma_s).sample_distance(u, t_max=t_max)
        return s.t, s.weight, s.pdf
    assert torch.autograd.gradcheck(sample, (sa, ss))


def test_medium_and_phase_bad_input_raises_naming_the_argument():
    ok = dict(sigma_a=torch.tensor([0.5, 0.1]), sigma_s=torch.tensor([1.0, 0.3]))
    with pytest.raises(ValueError, match="sigma_a must be >= 0"):
        HomogeneousMedium(**dict(ok, sigma_a=torch.tensor([-0.1, 0.1])))
    with pytest.raises(ValueError, match="sigma_s must be >= 0"):
        HomogeneousMedium(**dict(ok, sigma_s=-1.0))
    with pytest.raises(ValueError, match="sigma_s contains NaN"):
        HomogeneousMedium(**dict(ok, sigma_s=torch.tensor([math.nan, 1.0])))
    with pytest.raises(ValueError, match="sigma_a and sigma_s must have the same channels"):
        HomogeneousMedium(**dict(ok, sigma_s=torch.ones(3)))
    with pytest.raises(ValueError, match="sigma_a must have shape"):
        HomogeneousMedium(**dict(ok, sigma_a=torch.ones(2, 2)))
    with pytest.raises(TypeError, match="sigma_a must be a tensor"):
        HomogeneousMedium(**dict(ok, sigma_a=[0.5, 0.1]))
    for g in (1.0, -1.0, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="g must be"):
            HomogeneousMedium(**ok, g=g)
        with pytest.raises(ValueError, match="g must"):
            HenyeyGreenstein(torch.tensor(g))
    with pytest.raises(ValueError, match="g must lie in"):
        HenyeyGreenstein(torch.tensor([[0.5], [1.0]]))
    with pytest.raises(TypeError, match="g must be a real number"):
        HenyeyGreenstein("0.5")
    m = HomogeneousMedium(**ok)
    with pytest.raises(ValueError, match="channel"):
        m.sample_distance(torch.rand(2, 1), channel=torch.tensor([[0], [2]]))
    with pytest.raises(ValueError, match="u must have shape"):
        m.sample_distance(torch.rand(2))
    with pytest.raises(ValueError, match="t must have shape"):
        m.transmittance(torch.rand(2, 2))
    with pytest.raises(ValueError, match="u must have shape"):
        HenyeyGreenstein(0.3).sample(torch.rand(2, 3), torch.rand(2, 3))


def test_an_absorbing_only_medium_never_scatters_a_path_on():
    m = HomogeneousMedium(torch.tensor([1.0], dtype=DT), torch.tensor([0.0], dtype=DT))
    s = m.sample_distance(torch.rand(100, 1, generator=_gen(46), dtype=DT), t_max=torch.full((100, 1), 1.0, dtype=DT))
    scattered = s.t[:, 0] < 1.0
    assert bool((s.weight[scattered] == 0).all()) and bool((s.weight[~scattered] == 1).all())
    assert np.isclose(float((~scattered).double().mean()), math.exp(-1), atol=0.15)
