"""Environment lighting for the rasterizer: equirectangular lookups and split-sum image-based lighting.

The map layout is :func:`lumigrad.shading.sh.equirect_directions`'s (world +y up; the same direction to
(u, v) map as Mitsuba 3's ``envmap`` with an identity ``to_world``, but rows centred on their latitudes where
Mitsuba puts the first and last rows on the poles: :func:`lumigrad.io.read_mitsuba_xml` resamples once). For rasterized (deferred) shading, glossy environment reflections use the
split-sum approximation (Karis 2013): the radiance pre-filtered with the GGX lobe around the mirror direction
(:func:`prefilter_ggx`, one map per roughness level) times a directional-albedo term ``F0 A + B`` from a
table over ``(n.v, roughness)`` (:func:`split_sum_lut`). Diffuse lighting comes from the irradiance in
spherical harmonics (:func:`lumigrad.shading.sh.sh_irradiance`).

Everything is differentiable in the map's texels (the filters are linear in them), which is what recovering
an environment from images needs.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from .._checks import check_channels, check_number, check_positive_int, check_tensor
from ..limits import check_pixel_samples
from .brdf import ggx_distribution, smith_ggx_correlated_visibility
from .sh import equirect_directions


def direction_to_equirect(dirs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Map unit directions ``[..., 3]`` to equirectangular coordinates ``(u, v) [..., 2]`` in [0, 1).

    ``u = atan2(d_x, -d_z) / (2 pi) mod 1``, ``v = acos(d_y) / pi`` (inverse of ``equirect_directions``).
    At the poles ``u`` is arbitrary; its gradient there is zero rather than NaN.
    """
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(eps)
    x, y, z = d.unbind(-1)
    ring = x * x + z * z
    safe = ring > 1e-12
    u = torch.atan2(torch.where(safe, x, torch.zeros_like(x)), torch.where(safe, -z, torch.ones_like(z)))
    u = torch.remainder(u / (2 * math.pi), 1.0)
    v = torch.acos(y.clamp(-1 + 1e-7, 1 - 1e-7)) / math.pi
    return torch.stack([u, v], -1)


def envmap_lookup(env: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Radiance ``[..., C]`` of the equirectangular map ``env [H, W, C]`` in directions ``dirs [..., 3]``.

    Bilinear, wrapping around in longitude and clamped at the poles.
    **Differentiability:** w.r.t. ``env`` (bilinear weights) and ``dirs``.
    """
    check_tensor(env, "env", trailing=(None, None, None), max_dims=3, floating=True, finite=True)
    _check_env_layout(env)
    check_tensor(dirs, "dirs", trailing=(3,), floating=True, finite=True, device=env.device)
    return envmap_lookup_unchecked(env, dirs)


def envmap_lookup_unchecked(env: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """:func:`envmap_lookup` on validated inputs (no value reads: for per-frame shading of a checked map)."""
    H, W, C = env.shape
    uv = direction_to_equirect(dirs.to(env.dtype))
    # Pad one column on each side so that bilinear reads wrap in longitude.
    padded = torch.cat([env[:, -1:], env, env[:, :1]], 1).permute(2, 0, 1)[None]  # [1, C, H, W + 2]
    gx = (uv[..., 0] * W + 1) / (W + 2) * 2 - 1
    gy = uv[..., 1] * 2 - 1
    grid = torch.stack([gx, gy], -1).reshape(1, -1, 1, 2)
    out = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, :, 0].T.reshape(dirs.shape[:-1] + (C,))


def prefilter_ggx(env: torch.Tensor, roughness: Sequence[float], size: tuple = (32, 64)) -> torch.Tensor:
    """Pre-filter ``env [H, W, C]`` with the GGX lobe for each roughness: ``[R, h, w, C]`` maps.

    Output texel with direction ``r`` (taken as normal = view = reflection, the split-sum assumption) holds
    ``sum_l L(l) D(h) (n.l) dw / sum_l D(h) (n.l) dw`` over the input texels ``l`` above the horizon, with
    ``h = normalize(r + l)`` and the input's exact solid angles. Brute force over all input texels, so use a
    small input (it is averaged down to ``2 size`` first). Roughness 0 is a plain resample.

    Raises:
        ValueError: ``env`` not ``[H, W, C]`` with texels and channels, NaN / Inf, ``size`` not two positive
            ints, a roughness outside ``[0, 1]`` or an empty ``roughness`` list.
        lumigrad.limits.BudgetError: the filter matrix (``size`` texels x input texels) exceeds the budget.

    **Differentiability:** linear in ``env`` (gradients reach every texel); not in ``roughness``.
    """
    check_tensor(env, "env", trailing=(None, None, None), max_dims=3, floating=True, finite=True)
    _check_env_layout(env)
    h, w = check_env_size(size, "size")
    roughness = _check_roughness(roughness)
    src_h, src_w = (2 * h, 2 * w) if env.shape[0] > 2 * h else tuple(env.shape[:2])
    # The filter is a dense [h w, src texels] matrix per roughness: budget its entries before allocating.
    check_pixel_samples(h * w * src_h * src_w, f"prefilter_ggx: size=({h}, {w}) output texels x {src_h}x{src_w} "
                                               "input texels")
    src = env
    if env.shape[0] > 2 * h:
        src = F.adaptive_avg_pool2d(env.permute(2, 0, 1)[None], (2 * h, 2 * w))[0].permute(1, 2, 0)
    l_dirs, l_area = equirect_directions(src.shape[0], src.shape[1], dtype=env.dtype, device=env.device)
    l_dirs, l_area = l_dirs.reshape(-1, 3), l_area.reshape(-1)
    radiance = src.reshape(-1, src.shape[-1])
    r_dirs, _ = equirect_directions(h, w, dtype=env.dtype, device=env.device)
    r_dirs = r_dirs.reshape(-1, 3)
    # Shared by every roughness: n.l with n = r, and n.h = sqrt((1 + n.l) / 2) (cosine of the half angle).
    n_dot_l = r_dirs @ l_dirs.T
    cos = n_dot_l.clamp_min(0)
    n_dot_h = ((1 + n_dot_l) / 2).clamp_min(0).sqrt()
    maps = []
    for rough in roughness:
        if rough <= 0:
            maps.append(envmap_lookup(env, r_dirs).reshape(h, w, -1))
            continue
        alpha = max(rough * rough, 1e-3)
        weight = ggx_distribution(n_dot_h, torch.tensor(alpha, dtype=env.dtype, device=env.device)) * cos * l_area
        maps.append(((weight @ radiance) / weight.sum(-1, keepdim=True).clamp_min(1e-30)).reshape(h, w, -1))
    return torch.stack(maps)


_LUT_SAMPLES = 64  # quadrature samples per axis of each split-sum table cell


@lru_cache(maxsize=4)
def _lut_table(n: int, samples: int, dtype: torch.dtype):
    """``[n, n, 2]`` table of (A, B) over ``(n.v, roughness)`` at cell centres.

    Stratified importance sampling of the half vector by ``D (n.h)``: with ``cos^2 theta_h = (1 - xi) /
    (1 + (alpha^2 - 1) xi)`` the estimate of ``∫ D V (n.l) F dl`` is the mean of ``4 V (n.l) (v.h) / (n.h)``
    times the Fresnel part, split into ``(1 - Fc)`` (A) and ``Fc = (1 - v.h)^5`` (B).
    """
    nv = ((torch.arange(n, dtype=torch.float64) + 0.5) / n)[:, None, None, None]
    rough = ((torch.arange(n, dtype=torch.float64) + 0.5) / n)[None, :, None, None]
    xi = ((torch.arange(samples, dtype=torch.float64) + 0.5) / samples)[None, None, :, None]
    phi = ((torch.arange(samples, dtype=torch.float64) + 0.5) / samples * 2 * math.pi)[None, None, None, :]
    alpha = (rough * rough).clamp_min(1e-3)
    cos_h = ((1 - xi) / (1 + (alpha * alpha - 1) * xi)).sqrt()
    sin_h = (1 - cos_h * cos_h).clamp_min(0).sqrt()
    vx, vz = (1 - nv * nv).sqrt(), nv  # n = +z, v in the xz-plane
    v_dot_h = vx * sin_h * torch.cos(phi) + vz * cos_h
    l_z = 2 * v_dot_h * cos_h - vz  # n.l of l = reflect(-v, h)
    valid = (l_z > 0) & (v_dot_h > 0)
    V = smith_ggx_correlated_visibility(vz.expand_as(l_z), l_z.clamp_min(1e-6), alpha.expand_as(l_z))
    base = torch.where(valid, 4 * V * l_z * v_dot_h / cos_h, torch.zeros_like(l_z))
    fc = (1 - v_dot_h.clamp(0, 1)) ** 5
    table = torch.stack([(base * (1 - fc)).mean((-1, -2)), (base * fc).mean((-1, -2))], -1)
    return table.to(dtype)


def check_env_size(size, name: str) -> Tuple[int, int]:
    """``size`` as ``(height, width)`` of an equirectangular map: two positive ints whose product (its texels)
    fits the pixel budget; errors name ``name`` (e.g. ``"environment_size"``)."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"{name} must be (height, width) in texels; got {size!r}"[:200])
    h, w = size
    check_positive_int(h, f"{name}[0] (height)")
    check_positive_int(w, f"{name}[1] (width)")
    check_pixel_samples(h * w, f"{name}=({h}, {w}) is {h}x{w} texels")
    return h, w


def _check_env_layout(env: torch.Tensor) -> None:
    if env.shape[0] == 0 or env.shape[1] == 0:
        raise ValueError(f"env must have at least one texel; got shape {tuple(env.shape)}")
    check_channels(env, "env", "[H, W, C]")


def _check_roughness(roughness) -> List[float]:
    if isinstance(roughness, torch.Tensor):
        roughness = roughness.reshape(-1).tolist()
    if isinstance(roughness, (str, bytes)) or not hasattr(roughness, "__iter__"):
        raise TypeError(f"roughness must be a sequence of floats; got {type(roughness).__name__}")
    values = [check_number(r, "roughness", lo=0.0, hi=1.0) for r in roughness]
    if not values:
        raise ValueError("roughness is empty: give at least one roughness level in [0, 1]")
    return values


def split_sum_lut(n_dot_v: torch.Tensor, roughness: torch.Tensor, resolution: int = 32) -> torch.Tensor:
    """Split-sum directional albedo terms ``(A, B) [..., 2]``: ``∫ f_spec (n.l) dl = F0 A + B`` (Schlick F).

    Bilinear in a ``resolution^2`` table computed once by quadrature with the same GGX ``D`` and Smith ``V``
    as :func:`lumigrad.shading.cook_torrance`. **Differentiability:** w.r.t. ``n_dot_v`` and ``roughness``
    (piecewise linear).
    """
    check_positive_int(resolution, "resolution")
    check_pixel_samples(resolution * resolution * _LUT_SAMPLES * _LUT_SAMPLES,
                        f"split_sum_lut: resolution={resolution} ({resolution}^2 cells x {_LUT_SAMPLES}^2 samples)")
    table = _lut_table(resolution, _LUT_SAMPLES, torch.float64).to(dtype=n_dot_v.dtype, device=n_dot_v.device)
    grid = torch.stack([roughness.expand_as(n_dot_v) * 2 - 1, n_dot_v.clamp(0, 1) * 2 - 1], -1)
    out = F.grid_sample(table.permute(2, 0, 1)[None], grid.reshape(1, -1, 1, 2), mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out[0, :, :, 0].T.reshape(n_dot_v.shape + (2,))
