"""Chi-square goodness-of-fit of a direction sampler against its density, in the manner of Mitsuba 3's
``ChiSquareTest`` (``mitsuba.chi2``) on the spherical domain.

Directions are binned on an equal-area grid of ``(cos theta, phi)`` in a given frame; the expected count of a
bin is ``N`` times the integral of the density over it (a tensor-product Gauss-Legendre rule on each bin).
Samples the sampler marks invalid (``pdf = 0``: below the horizon, missed the light) form one more cell whose
expected count is ``N`` times the density's missing mass ``1 - integral``. Cells expecting fewer than 5 samples
are pooled; a bin that expects nothing but received samples fails at once. The statistic's p-value comes from
the regularised upper incomplete gamma function and is compared with a significance level corrected for the
number of tests (Bonferroni: ``1 - (1 - level)^(1 / tests)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from ..conftest import save_failure_images

DT = torch.float64


@dataclass
class ChiSquareResult:
    p_value: float
    statistic: float
    dof: int
    observed: torch.Tensor  # [n_cos, n_phi]
    expected: torch.Tensor  # [n_cos, n_phi]
    invalid: Tuple[int, float]  # (observed, expected) samples with pdf = 0
    message: str = ""

    def passes(self, level: float = 0.01, tests: int = 1) -> bool:
        return not self.message and self.p_value >= 1 - (1 - level) ** (1 / tests)


def uniform_lobe_and_direction(n: int, seed: int):
    """``(u1 [n, 1], u2 [n, 2])`` uniform numbers of generator ``seed``: a BSDF sample's lobe and direction."""
    u = torch.rand(n, 3, generator=gen(seed), dtype=DT)
    return u[:, :1], u[:, 1:]


def bsdf_sampler(bsdf, make_si: Callable[[int], object], seed: int):
    """The ``sample_fn`` of :func:`chi2_sphere` for ``bsdf`` at ``make_si(n)``: its directions and validity."""
    def sample(n):
        s = bsdf.sample(make_si(n), *uniform_lobe_and_direction(n, seed))
        return s.wi, s.pdf[:, 0] > 0
    return sample


def bsdf_chi2(bsdf, make_si: Callable[[int], object], seed: int) -> ChiSquareResult:
    """:func:`chi2_sphere` of ``bsdf.sample`` against ``bsdf.pdf`` at ``make_si(n)`` on the fine grid the BSDF
    models' tests share (``GRID``, 30 x 60 cells, 12^2 quadrature points a cell)."""
    return chi2_sphere(bsdf_sampler(bsdf, make_si, seed), lambda d: bsdf.pdf(make_si(d.shape[0]), d)[:, 0],
                       frame=GRID, n_cos=30, n_phi=60, quad=12)


def frame_from_axis(axis: torch.Tensor) -> torch.Tensor:
    """``[3, 3]`` rows ``(t, b, n)``: an orthonormal frame whose ``n`` is ``axis``."""
    n = axis / axis.norm()
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=n.dtype) if abs(float(n[0])) < 0.9 else \
        torch.tensor([0.0, 1.0, 0.0], dtype=n.dtype)
    t = torch.linalg.cross(helper, n)
    t = t / t.norm()
    return torch.stack([t, torch.linalg.cross(n, t), n])


def _bin_directions(frame: torch.Tensor, n_cos: int, n_phi: int, quad: int, theta_bins: bool = False):
    """Gauss-Legendre nodes of every bin: world directions ``[n_cos, n_phi, q*q, 3]`` and weights
    ``[n_cos or 1, 1, q*q]`` (the weights sum to each bin's solid angle). Bins are uniform in ``cos theta``, or
    in ``theta`` with ``theta_bins`` (to align them with an equirectangular map's rows)."""
    x, w = np.polynomial.legendre.leggauss(quad)
    x, w = torch.tensor(x, dtype=DT), torch.tensor(w, dtype=DT)
    d_phi = 2 * math.pi / n_phi
    phi = (torch.arange(n_phi, dtype=DT)[:, None] + 0.5 * (x[None] + 1)) * d_phi  # [n_phi, q]
    if theta_bins:
        d_theta = math.pi / n_cos
        theta = math.pi - (torch.arange(n_cos, dtype=DT)[:, None] + 0.5 * (x[None] + 1)) * d_theta  # cos rising
        cos, jac = torch.cos(theta), torch.sin(theta) * (0.5 * d_theta)  # [n_cos, q]
    else:
        d_cos = 2.0 / n_cos
        cos = -1 + (torch.arange(n_cos, dtype=DT)[:, None] + 0.5 * (x[None] + 1)) * d_cos  # [n_cos, q]
        jac = torch.full_like(cos, 0.5 * d_cos)
    c = cos[:, None, :, None].expand(n_cos, n_phi, quad, quad)
    p = phi[None, :, None, :].expand(n_cos, n_phi, quad, quad)
    s = (1 - c * c).clamp_min(0).sqrt()
    local = torch.stack([s * torch.cos(p), s * torch.sin(p), c], -1).reshape(n_cos, n_phi, quad * quad, 3)
    weights = ((w * jac)[:, :, None] * w[None, None, :]).reshape(n_cos, 1, -1) * (0.5 * d_phi)
    return local @ frame, weights


def integrate_sphere(pdf_fn: Callable[[torch.Tensor], torch.Tensor], frame: Optional[torch.Tensor] = None,
                     n_cos: int = 40, n_phi: int = 80, quad: int = 8, theta_bins: bool = False,
                     refine: int = 0) -> torch.Tensor:
    """``[n_cos, n_phi]`` integrals of ``pdf_fn(dirs [M, 3]) -> [M]`` over the bins of the sphere.

    With ``refine``, bins that straddle the edge of the density's support (some nodes zero, some not: a
    lamp's silhouette, where Gauss-Legendre converges slowly) are integrated again with ``refine`` nodes per
    axis."""
    frame = torch.eye(3, dtype=DT) if frame is None else frame
    dirs, weights = _bin_directions(frame, n_cos, n_phi, quad, theta_bins)
    values = pdf_fn(dirs.reshape(-1, 3)).reshape(n_cos, n_phi, -1)
    out = (values * weights).sum(-1)
    if refine:
        edge = ((values == 0).any(-1) & (values != 0).any(-1)).nonzero()
        if edge.shape[0]:
            fine_dirs, fine_weights = _bin_directions(frame, n_cos, n_phi, refine, theta_bins)
            picked = fine_dirs[edge[:, 0], edge[:, 1]]  # [E, refine^2, 3]
            w = fine_weights[edge[:, 0] if fine_weights.shape[0] > 1 else 0, 0]
            v = pdf_fn(picked.reshape(-1, 3)).reshape(picked.shape[:2])
            out[edge[:, 0], edge[:, 1]] = (v * w).sum(-1)
    return out


def chi2_sphere(sample_fn: Callable[[int], Tuple[torch.Tensor, torch.Tensor]],
                pdf_fn: Callable[[torch.Tensor], torch.Tensor], *, samples: int = 200_000,
                frame: Optional[torch.Tensor] = None, n_cos: int = 20, n_phi: int = 40, quad: int = 10,
                min_expected: float = 5.0, theta_bins: bool = False, refine: int = 0) -> ChiSquareResult:
    """Run the test: ``sample_fn(N) -> (dirs [N, 3], valid [N])``, ``pdf_fn(dirs [M, 3]) -> [M]``."""
    frame = torch.eye(3, dtype=DT) if frame is None else frame
    dirs, valid = sample_fn(samples)
    dirs, valid = dirs.detach().to(DT), valid.reshape(-1)
    local = dirs[valid] @ frame.T
    local = local / local.norm(dim=-1, keepdim=True)
    z = local[:, 2].clamp(-1, 1)
    if theta_bins:  # bin 0 holds theta near pi (cos = -1), as with cos bins
        i = ((math.pi - torch.acos(z)) / math.pi * n_cos).long().clamp(0, n_cos - 1)
    else:
        i = ((z + 1) / 2 * n_cos).long().clamp(0, n_cos - 1)
    j = (torch.remainder(torch.atan2(local[:, 1], local[:, 0]), 2 * math.pi) / (2 * math.pi) * n_phi).long()
    j = j.clamp(0, n_phi - 1)
    observed = torch.bincount(i * n_phi + j, minlength=n_cos * n_phi).to(DT).reshape(n_cos, n_phi)
    expected = integrate_sphere(lambda d: pdf_fn(d).reshape(-1).to(DT).detach(), frame, n_cos, n_phi, quad,
                                theta_bins, refine)
    expected = expected * samples
    invalid_obs = int((~valid).sum())
    invalid_exp = float(samples - expected.sum())
    obs = torch.cat([observed.reshape(-1), torch.tensor([float(invalid_obs)], dtype=DT)])
    exp = torch.cat([expected.reshape(-1), torch.tensor([max(invalid_exp, 0.0)], dtype=DT)])
    result = ChiSquareResult(1.0, 0.0, 0, observed, expected, (invalid_obs, invalid_exp))
    impossible = (exp < 1e-9 * samples) & (obs > 0)
    if bool(impossible.any()):
        k = int(impossible.nonzero()[0])
        where = "the invalid cell" if k == n_cos * n_phi else f"bin (cos {k // n_phi}, phi {k % n_phi})"
        result.message = f"{int(obs[k])} samples in {where}, where the pdf integrates to {float(exp[k]):.3g}"
        result.p_value = 0.0
        return result
    # Pool the cells that expect few samples, smallest first, into cells expecting at least min_expected.
    order = torch.argsort(exp)
    cells_exp, cells_obs = [], []
    pool_exp = pool_obs = 0.0
    for e, o in zip(exp[order].tolist(), obs[order].tolist()):
        if e >= min_expected:
            cells_exp.append(e)
            cells_obs.append(o)
            continue
        pool_exp, pool_obs = pool_exp + e, pool_obs + o
        if pool_exp >= min_expected:
            cells_exp.append(pool_exp)
            cells_obs.append(pool_obs)
            pool_exp = pool_obs = 0.0
    if pool_exp > 0 or pool_obs > 0:  # a last, small pool joins the smallest full cell
        if cells_exp:
            k = min(range(len(cells_exp)), key=cells_exp.__getitem__)
            cells_exp[k] += pool_exp
            cells_obs[k] += pool_obs
        else:
            cells_exp.append(pool_exp)
            cells_obs.append(pool_obs)
    e = torch.tensor(cells_exp, dtype=DT)
    o = torch.tensor(cells_obs, dtype=DT)
    stat = float(((o - e) ** 2 / e).sum())
    dof = len(cells_exp) - 1
    result.statistic, result.dof = stat, dof
    result.p_value = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=DT), torch.tensor(stat / 2, dtype=DT)))
    return result


def assert_chi2(result: ChiSquareResult, name: str, *, level: float = 0.01, tests: int = 1) -> None:
    """Fail with the statistic and p-value, writing observed / expected histograms under test-artifacts."""
    if result.passes(level, tests):
        return
    out = save_failure_images(f"chi2-{name}", observed=result.observed, expected=result.expected,
                              difference=(result.observed - result.expected).abs())
    raise AssertionError(f"chi-square test of {name} failed: {result.message or ''} p = {result.p_value:.3g} "
                         f"(chi2 = {result.statistic:.1f}, dof = {result.dof}; invalid samples observed "
                         f"{result.invalid[0]}, expected {result.invalid[1]:.1f}); histograms in {out}")


# ------------------------------------------------------------------------------------ a tilted test frame
DT = torch.float64
NORMAL = torch.tensor([0.3, -0.2, 0.9], dtype=DT) / math.sqrt(0.94)  # tilted: frames are not the identity
FRAME = frame_from_axis(NORMAL)
# The histogram's pole on the surface's horizon: lobes around +-n fall where the (cos theta, phi) bins are smallest
# and most regular, so the quadrature of the expected counts resolves sharp lobes.
GRID = FRAME[[1, 2, 0]]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def upper_directions(count, seed):
    """Two sets ``[count, 3]`` of random unit directions above the local z = 0 plane (polar angles 0.05-1.45):
    views and lights for comparing a BSDF's values with Mitsuba's."""
    g = gen(seed)
    theta = torch.rand(count, 2, generator=g, dtype=DT) * 1.4 + 0.05
    phi = torch.rand(count, 2, generator=g, dtype=DT) * 2 * math.pi
    return [torch.stack([theta[:, k].sin() * phi[:, k].cos(), theta[:, k].sin() * phi[:, k].sin(), theta[:, k].cos()],
                        -1) for k in (0, 1)]


def direction(theta, phi=0.7):
    """World direction at polar angle ``theta`` from NORMAL (azimuth ``phi`` in FRAME; ``theta > pi / 2``:
    inside)."""
    local = torch.tensor([math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)],
                         dtype=DT)
    return local @ FRAME


def assert_pdf_mass_and_weights(bsdf, make_si: Callable[[int], object], seed: int = 9, n: int = 40_000) -> None:
    """``bsdf.pdf`` at ``make_si(d)`` integrates over the sphere to one less the share of samples ``bsdf.sample``
    returns invalid (``pdf = 0``: a reflection through the surface ...), never above one; and each valid sample's
    weight is ``eval |n.wi| / pdf`` (``NORMAL`` the surface's normal)."""
    mass = float(integrate_sphere(lambda d: bsdf.pdf(make_si(d.shape[0]), d)[:, 0], FRAME, 80, 120, 12).sum())
    s = bsdf.sample(make_si(n), *uniform_lobe_and_direction(n, seed))
    lost = float((s.pdf == 0).double().mean())
    assert mass <= 1 + 2e-3 and abs(mass + lost - 1) < 4 * math.sqrt(max(lost * (1 - lost), 1 / n) / n) + 3e-3
    ok = s.pdf[:, 0] > 0
    torch.testing.assert_close(s.weight[ok], (bsdf.eval(make_si(n), s.wi) * (s.wi @ NORMAL).abs()[:, None] /
                                              s.pdf)[ok])
