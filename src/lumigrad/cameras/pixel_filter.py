"""Pixel reconstruction filters of the Monte Carlo renderers: how a pixel weighs the radiance arriving around it.

A pixel ``(i, j)`` of a path-traced image is the filtered radiance ``I = integral w(x - c) L(x) dx / integral w``
over the film, ``c`` its centre and ``w(x, y) = f(x) f(y)`` a separable filter of radius ``r``. The filters are
Mitsuba 3's ``rfilter`` plugins, with its parameters and formulas (:meth:`PixelFilter.eval`): ``box`` (radius
0.5: the pixel's own square, lumigrad's default), ``tent`` (``radius``, default 1), ``gaussian`` (``stddev``,
default 0.5, cut at 4 standard deviations and lowered by its value there: Mitsuba's default filter),
``mitchell`` (Mitchell-Netravali, ``b = c = 1/3``, radius 2), ``catmullrom`` (``b = 0``, ``c = 1/2``) and
``lanczos`` (windowed sinc, ``lobes``, default 3). The last three have negative lobes.

Estimator: filter importance sampling. Each of a pixel's camera rays leaves from an offset drawn per axis with a
density ``p`` close to ``|f|`` (:func:`sample_in_pixels`: piecewise linear through ``|f|`` at :data:`KNOTS`
knots that split ``|f|``'s mass evenly, found on a table of 1024 bins of 16-point Gauss-Legendre; a sample costs
a few arithmetic operations and a square root, no search) and carries the weight ``f(x) f(y) / (p(x) p(y) Z)``, so
the mean of ``weight * L`` over the pixel's rays is unbiased for ``I`` whatever the table's accuracy (the weight
is 1 to about 1e-4 for a positive filter; signed for negative lobes). Mitsuba splats each
sample into every pixel within the radius and divides by the summed weights: a ratio estimator of the same
``I`` (biased at low spp, consistent), so converged images agree. As in Mitsuba (``sample_border`` false), rays
start only on the film: a pixel within ``r`` of the border integrates over the part of its support inside the
film, ``Z`` being ``integral f`` over that part (:func:`axis_normalisers`).

Gradients: a camera ray's radiance enters pixel ``q`` with ``weight / spp``; a visibility boundary crossing the
film at point ``p`` changes every pixel whose support holds ``p``, pixel ``q`` by ``w(p - c_q) / Z_q`` per unit
of radiance jump and edge length (:func:`filter_adjoint_at`, which edge sampling uses in place of "the pixel
under ``p``"). The box filter keeps lumigrad's earlier uniform jitter and weight 1 exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch

from ..kernels.filter_sampling import sample_filter_positions

__all__ = ["FILTERS", "PixelFilter", "as_pixel_filter", "axis_normalisers", "filter_adjoint_at", "sample_in_pixels",
           "sample_in_pixels_reference"]

#: The filters :class:`PixelFilter` evaluates (Mitsuba 3's ``rfilter`` plugin names).
FILTERS = ("box", "tent", "gaussian", "mitchell", "catmullrom", "lanczos")
#: Bins of the tabulated integrals of ``f`` and ``|f|`` over ``[-r, r]``, and Gauss-Legendre nodes per bin.
TABLE_BINS = 1024
_NODES = 16
#: Knot intervals of the sampling density (each holds ``1 / KNOTS`` of ``|f|``'s mass).
KNOTS = 4096
#: The widest filter radius accepted, in pixels (Mitsuba's filters reach 0.5 to 3; a pixel's adjoint gathers
#: ``(2 r + 1)^2`` neighbours).
MAX_RADIUS = 16.0
#: Values gathered at once by :func:`filter_adjoint_at` (points x taps x channels).
ADJOINT_TAPS = 1 << 22


@dataclass(frozen=True)
class PixelFilter:
    """A separable pixel reconstruction filter (see the module): ``kind`` one of :data:`FILTERS`.

    ``radius`` is the tent's (default 1) and is derived for the others (box 0.5, gaussian ``4 stddev``,
    mitchell and catmullrom 2, lanczos ``lobes``); ``stddev`` is the gaussian's, ``b`` and ``c`` Mitchell-
    Netravali's (catmullrom: 0 and 0.5), ``lobes`` the lanczos window's. Hashable and immutable.
    """

    kind: str = "box"
    radius: Optional[float] = None
    stddev: float = 0.5
    b: float = 1.0 / 3.0
    c: float = 1.0 / 3.0
    lobes: int = 3

    def __post_init__(self):
        if self.kind not in FILTERS:
            raise ValueError(f"pixel filter kind must be one of {', '.join(FILTERS)}; got {self.kind!r}")
        for name in ("stddev", "b", "c"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"pixel filter {name} must be a finite number; got {value!r}")
        if not self.stddev > 0:
            raise ValueError(f"pixel filter stddev must be positive; got {self.stddev!r}")
        if isinstance(self.lobes, bool) or not isinstance(self.lobes, int) or self.lobes < 1:
            raise ValueError(f"pixel filter lobes must be a positive int; got {self.lobes!r}")
        if self.radius is not None and self.kind != "tent":
            raise ValueError(f"a {self.kind} pixel filter's radius is fixed by its other parameters; give radius "
                             f"only to a tent")
        if self.kind == "catmullrom":
            object.__setattr__(self, "b", 0.0)
            object.__setattr__(self, "c", 0.5)
        derived = {"box": 0.5, "tent": 1.0 if self.radius is None else self.radius, "gaussian": 4.0 * self.stddev,
                   "mitchell": 2.0, "catmullrom": 2.0, "lanczos": float(self.lobes)}[self.kind]
        if isinstance(derived, bool) or not isinstance(derived, (int, float)) or not (math.isfinite(derived)
                                                                                     and derived > 0):
            raise ValueError(f"pixel filter radius must be a positive finite number; got {derived!r}")
        if derived > MAX_RADIUS:
            raise ValueError(f"pixel filter radius must be at most {MAX_RADIUS:g} pixels; the {self.kind} filter's "
                             f"is {derived:g}")
        object.__setattr__(self, "radius", float(derived))

    @property
    def is_box(self) -> bool:
        """Whether this is the box filter (each ray in its own pixel, weight 1)."""
        return self.kind == "box"

    @property
    def halo(self) -> int:
        """Neighbour pixels a pixel's support reaches on each side: ``ceil(radius - 1/2)``."""
        return max(0, math.ceil(self.radius - 0.5 - 1e-9))

    def eval(self, x: torch.Tensor) -> torch.Tensor:
        """The 1D filter ``f(x)`` (Mitsuba's ``eval``; 0 outside ``(-r, r)``), in ``x``'s dtype."""
        a = x.abs()
        r = self.radius
        if self.kind == "box":
            return (a < r).to(x.dtype)
        if self.kind == "tent":
            return (1.0 - a / r).clamp(min=0.0)
        if self.kind == "gaussian":
            alpha = -1.0 / (2.0 * self.stddev ** 2)
            return (torch.exp(alpha * a * a) - math.exp(alpha * r * r)).clamp(min=0.0)
        if self.kind in ("mitchell", "catmullrom"):
            b, c = self.b, self.c
            a2, a3 = a * a, a * a * a
            inner = ((12 - 9 * b - 6 * c) * a3 + (-18 + 12 * b + 6 * c) * a2 + (6 - 2 * b)) / 6
            outer = ((-b - 6 * c) * a3 + (6 * b + 30 * c) * a2 + (-12 * b - 48 * c) * a + (8 * b + 24 * c)) / 6
            return torch.where(a < 1, inner, torch.where(a < 2, outer, torch.zeros_like(a)))
        # lanczos: sinc(x) sinc(x / lobes) inside the radius
        return torch.where(a < r, torch.sinc(x) * torch.sinc(x / self.lobes), torch.zeros_like(x))


def as_pixel_filter(spec: Union[None, str, dict, PixelFilter], name: str = "pixel_filter") -> PixelFilter:
    """A :class:`PixelFilter` from ``None`` (box), a kind (``"gaussian"``), a dict ``{"type": kind, ...}`` (a
    Mitsuba ``rfilter``'s properties: ``stddev``, ``radius``, ``B``, ``C``, ``lobes``) or a filter."""
    if spec is None:
        return PixelFilter()
    if isinstance(spec, PixelFilter):
        return spec
    if isinstance(spec, str):
        return PixelFilter(spec)
    if isinstance(spec, dict):
        props = dict(spec)
        kind = props.pop("type", props.pop("kind", None))
        if not isinstance(kind, str):
            raise ValueError(f"{name} needs a 'type' naming one of {', '.join(FILTERS)}; got {spec!r}")
        keys = {"stddev": "stddev", "radius": "radius", "b": "b", "c": "c", "B": "b", "C": "c", "lobes": "lobes"}
        reads = {"tent": ("radius",), "gaussian": ("stddev",), "mitchell": ("b", "c"),
                 "lanczos": ("lobes",)}.get(kind, ())
        unknown = sorted(k for k in props if keys.get(k) not in reads)
        if unknown:
            raise ValueError(f"{name} ({kind}) has unknown properties {unknown}; it reads "
                             f"{', '.join(reads) or 'none'}")
        values = {keys[k]: v for k, v in props.items()}
        lobes = values.get("lobes")
        if isinstance(lobes, float) and lobes.is_integer():
            values["lobes"] = int(lobes)
        return PixelFilter(kind, **values)
    raise TypeError(f"{name} must be None, a filter name, a dict or a PixelFilter; got {type(spec).__name__}")


class _Table:
    """Integrals of the filter over ``[-r, r]`` (float64, CPU): ``f``'s cumulative in :data:`TABLE_BINS` bins
    (Gauss-Legendre), and the sampling map: :data:`KNOTS` + 1 knots ``x_k`` splitting ``|f|``'s mass in equal
    parts, ``|f|`` at each (the sampling density is linear between them)."""

    def __init__(self, filt: PixelFilter):
        self.filt, self.r = filt, filt.radius
        self.h = 2.0 * self.r / TABLE_BINS
        self.edges = -self.r + self.h * torch.arange(TABLE_BINS + 1, dtype=torch.float64)
        nodes, weights = np.polynomial.legendre.leggauss(_NODES)
        self.nodes = torch.as_tensor(nodes, dtype=torch.float64)
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        x = self.edges[:-1, None] + (self.nodes[None] + 1.0) * (0.5 * self.h)
        f = filt.eval(x)
        mass = (f.abs() * self.weights).sum(-1) * (0.5 * self.h)  # [bins] integral of |f| per bin
        signed = (f * self.weights).sum(-1) * (0.5 * self.h)
        zero = torch.zeros(1, dtype=torch.float64)
        cdf = torch.cat([zero, mass.cumsum(0)])  # [bins + 1]
        self.signed = torch.cat([zero, signed.cumsum(0)])
        # knots at equal steps of the cumulative (linear inside a bin), ends exactly -r and r
        target = cdf[-1] * torch.arange(KNOTS + 1, dtype=torch.float64) / KNOTS
        k = (torch.searchsorted(cdf, target, right=True) - 1).clamp(0, TABLE_BINS - 1)
        m = mass[k]
        t = torch.where(m > 0, (target - cdf[k]) / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(m))
        knots = self.edges[k] + t.clamp(0.0, 1.0) * self.h
        knots[0], knots[-1] = -self.r, self.r
        self.knots = torch.cummax(knots, 0).values
        self.width = (self.knots[1:] - self.knots[:-1])  # [KNOTS] (0 where a knot interval holds no mass)
        self.ends = filt.eval(self.knots).abs()  # [KNOTS + 1] |f| at the knots: the density's shape in an interval

    def integral(self, x: torch.Tensor) -> torch.Tensor:
        """``integral_{-r}^{x} f`` (the full bins from the table, the partial one by Gauss-Legendre)."""
        x = x.clamp(-self.r, self.r)
        k = ((x + self.r) / self.h).floor().long().clamp(0, TABLE_BINS - 1)
        lo = self.edges[k]
        half = 0.5 * (x - lo)
        nodes = lo[..., None] + (self.nodes + 1.0) * half[..., None]
        return self.signed[k] + (self.filt.eval(nodes) * self.weights).sum(-1) * half

    def knot_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The sampling density's cumulative at ``x``, in units of knot intervals (0 at ``-r``, :data:`KNOTS` at
        ``r``): in interval ``k``, the trapezoid's ``(d0 t + (d1 - d0) t^2 / 2) / ((d0 + d1) / 2)`` at
        ``t = (x - x_k) / width_k``."""
        x = x.clamp(-self.r, self.r)
        k = (torch.searchsorted(self.knots, x, right=True) - 1).clamp(0, KNOTS - 1)
        w = self.width[k]
        t = torch.where(w > 0, (x - self.knots[k]) / torch.where(w > 0, w, torch.ones_like(w)), torch.zeros_like(w))
        d0, d1 = self.ends[k], self.ends[k + 1]
        s = d0 + d1
        c = torch.where(s > 0, (2 * d0 * t + (d1 - d0) * t * t) / torch.where(s > 0, s, torch.ones_like(s)), t)
        return k + c.clamp(0.0, 1.0)


@functools.lru_cache(maxsize=32)
def _table(filt: PixelFilter) -> _Table:
    return _Table(filt)


def _axis_limits(filt: PixelFilter, index: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Offsets ``[a, b]`` from pixel ``index``'s centre that its support keeps on a film of ``size`` pixels."""
    centre = index.to(torch.float64) + 0.5
    return (-centre).clamp(min=-filt.radius), (size - centre).clamp(max=filt.radius)


@functools.lru_cache(maxsize=64)
def axis_normalisers(filt: PixelFilter, size: int) -> torch.Tensor:
    """``Z [size]`` float64 (CPU; cached: do not modify): ``integral f`` over the part of each pixel's support on a
    film of ``size`` pixels."""
    t = _table(filt)
    a, b = _axis_limits(filt, torch.arange(size), size)
    z = t.integral(b) - t.integral(a)
    if not bool((z > 1e-6 * (t.integral(torch.tensor(filt.radius, dtype=torch.float64)))).all()):
        raise ValueError(f"pixel filter {filt} integrates to {float(z.min()):.3g} over a pixel of a {size}-pixel film "
                         f"(its negative lobes cancel its positive one there): its pixels would be undefined")
    return z


@functools.lru_cache(maxsize=64)
def _axis_ranges(filt: PixelFilter, size: int) -> torch.Tensor:
    """``[size, 5]`` per pixel of a film of ``size`` (float64, CPU; cached): where its support's part on the film
    starts and how long it is in knot intervals of the sampling density (``lo``, ``span``), ``span / Z``, and the
    offsets ``a, b`` that part spans."""
    t = _table(filt)
    a, b = _axis_limits(filt, torch.arange(size), size)
    lo = t.knot_cdf(a)
    span = t.knot_cdf(b) - lo
    return torch.stack([lo, span, span / axis_normalisers(filt, size), a, b], -1)


@functools.lru_cache(maxsize=16)
def _knots_on(filt: PixelFilter, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = _table(filt)
    return t.knots.to(device), t.width.to(device), t.ends.to(device)


def _sample_axis(filt: PixelFilter, index: torch.Tensor, size: int, u: torch.Tensor):
    """Offsets from the centres of pixels ``index`` (long) for uniform ``u`` (float64, on ``index``'s device) and
    their weights ``f / (p Z)``: ``u`` maps linearly onto the pixel's range of the knot cumulative (each knot
    interval equally likely), then inside the interval by the inverse of a trapezoid density through ``|f|`` at its
    two knots (``p = ((1 - t) d0 + t d1) / ((d0 + d1) / 2) / (width span)`` per unit length)."""
    knots, width, ends = _knots_on(filt, u.device)
    lo, span, span_over_z, a, b = _axis_ranges(filt, size).to(u.device)[index].unbind(-1)
    y = torch.addcmul(lo, u, span)
    k = y.floor().long().clamp_(0, KNOTS - 1)
    v = (y - k).clamp_(0.0, 1.0)
    d0, d1 = ends[k], ends[k + 1]
    s = d0 + d1
    # the trapezoid's inverse cumulative without cancellation: t = v s / (d0 + sqrt(d0^2 + v (d1^2 - d0^2)))
    root = d0 + torch.sqrt((d0 * d0 + v * (d1 * d1 - d0 * d0)).clamp(min=0.0))
    t = torch.where(root > 0, v * s / torch.where(root > 0, root, torch.ones_like(root)), v).clamp_(0.0, 1.0)
    w = width[k]
    x = torch.minimum(torch.maximum(torch.addcmul(knots[k], t, w), a), b)
    shape = torch.where(s > 0, 2.0 * ((1.0 - t) * d0 + t * d1) / torch.where(s > 0, s, torch.ones_like(s)),
                        torch.ones_like(s))  # the density relative to the interval's mean
    weight = filt.eval(x) * w * span_over_z / torch.where(shape > 0, shape, torch.ones_like(shape))
    return x, torch.where(shape > 0, weight, torch.zeros_like(weight))


def sample_in_pixels(filt: PixelFilter, rows: torch.Tensor, cols: torch.Tensor, height: int, width: int,
                     u: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Film positions ``uv [..., 2]`` (column, row: pixel ``(i, j)`` spans ``[j, j + 1] x [i, i + 1]``) of camera
    rays for pixels ``rows, cols`` (broadcast to ``u[..., 0]``'s shape) and their weights ``[...]``, from uniform
    numbers ``u [..., 2]`` in ``[0, 1)``: filter importance sampling (see the module). The box filter gives
    ``centre + u - 1/2`` and weight 1 exactly. Computed in float64 by a Warp kernel on ``u``'s device
    (:mod:`lumigrad.kernels.filter_sampling`; :func:`sample_in_pixels_reference` is its PyTorch twin); returned in
    ``u``'s dtype.
    Not differentiable (positions on the film, not scene parameters)."""
    dtype, device = u.dtype, u.device
    shape = u.shape[:-1]
    rows = torch.broadcast_to(rows, shape).to(device)
    cols = torch.broadcast_to(cols, shape).to(device)
    if filt.is_box:
        uv = torch.stack([cols.to(dtype), rows.to(dtype)], -1) + u
        return uv, torch.ones(shape, dtype=dtype, device=device)
    knots, width_k, ends = _knots_on(filt, device)
    uv, weight = sample_filter_positions(u.detach().reshape(-1, 2), rows.reshape(-1), cols.reshape(-1),
                                         _axis_ranges(filt, width), _axis_ranges(filt, height), knots, width_k, ends,
                                         filt.kind, filt.radius, filt.stddev, filt.b, filt.c, filt.lobes)
    return uv.reshape(shape + (2,)).to(dtype), weight.reshape(shape).to(dtype)


def sample_in_pixels_reference(filt: PixelFilter, rows: torch.Tensor, cols: torch.Tensor, height: int, width: int,
                               u: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_in_pixels` in PyTorch (float64, the kernel's reference; box filters too)."""
    shape = u.shape[:-1]
    rows = torch.broadcast_to(rows, shape).to(u.device).reshape(-1)
    cols = torch.broadcast_to(cols, shape).to(u.device).reshape(-1)
    u64 = u.detach().to(torch.float64)
    if filt.is_box:
        uv = torch.stack([cols.to(torch.float64), rows.to(torch.float64)], -1) + u64.reshape(-1, 2)
        return uv.reshape(shape + (2,)), torch.ones(shape, dtype=torch.float64, device=u.device)
    x, wx = _sample_axis(filt, cols, width, u64[..., 0].reshape(-1))
    y, wy = _sample_axis(filt, rows, height, u64[..., 1].reshape(-1))
    uv = torch.stack([cols.to(torch.float64) + x, rows.to(torch.float64) + y], -1) + 0.5
    return uv.reshape(shape + (2,)), (wx * wy).reshape(shape)


def filter_adjoint_at(filt: PixelFilter, v_image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``sum_q w(p - c_q) / Z_q * v_image[q]`` ``[N, C]``: the image adjoint ``v_image [H, W, C]`` seen by film
    points ``points [N, 2]`` (column, row; detached), over the pixels ``q`` whose support holds ``p``. A point off
    the film gets 0 (no ray starts there). For the box filter: the pixel under the point."""
    H, W, C = v_image.shape
    p = points.detach()
    col, row = p[:, 0].floor().long(), p[:, 1].floor().long()
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (p[:, 0] < W) & (p[:, 1] < H)
    out = v_image.new_zeros(p.shape[0], C)
    if filt.is_box:
        keep = inside.nonzero()[:, 0]
        return out.index_copy(0, keep, v_image[row[keep], col[keep]])
    # pixel floor(p) + k holds p in its support only for -floor(r + 1/2) <= k <= ceil(r + 1/2) - 1
    k = torch.arange(-math.floor(filt.radius + 0.5), math.ceil(filt.radius + 0.5), device=p.device)
    p64 = p.to(torch.float64)

    def axis(coord, index, size):
        q = index[:, None] + k[None]  # [N, K] candidate pixels
        ok = (q >= 0) & (q < size)
        z = axis_normalisers(filt, size).to(p.device)  # (raises where a pixel's filter integrates to ~0)
        f = filt.eval(coord[:, None] - (q.to(torch.float64) + 0.5)) / z[q.clamp(0, size - 1)]
        return q.clamp(0, size - 1), torch.where(ok, f, torch.zeros_like(f))

    qx, fx = axis(p64[:, 0], col, W)
    qy, fy = axis(p64[:, 1], row, H)
    step = max(1, ADJOINT_TAPS // (k.numel() ** 2 * max(C, 1)))  # points at a time: bounded memory
    for s in range(0, p.shape[0], step):
        e = min(p.shape[0], s + step)
        w = (fy[s:e, :, None] * fx[s:e, None, :]).to(v_image.dtype)  # [n, Ky, Kx]
        taps = v_image[qy[s:e, :, None], qx[s:e, None, :]]  # [n, Ky, Kx, C]
        out[s:e] = (w[..., None] * taps).sum((1, 2))
    return torch.where(inside[:, None], out, torch.zeros_like(out))
