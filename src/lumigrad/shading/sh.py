"""Real spherical harmonics (degrees 0 to 3) for lighting: basis, evaluation, projection, irradiance.

**Ordering.** Coefficient ``k = l^2 + l + m`` holds band ``l`` and order ``m = -l..l``; degree ``D`` uses
``K = (D + 1)^2`` coefficients (1, 4, 9, 16 for D = 0..3).

**Normalisation and signs.** Orthonormal real SH on the unit sphere (``integral Y_i Y_j dw = delta_ij``),
*with* the Condon-Shortley phase: the odd-``m`` functions carry a minus sign. This is the convention of
Sloan's "Stupid Spherical Harmonics Tricks" and of 3D Gaussian splatting (``sh_utils.py``), so 3DGS
coefficients (``f_dc`` then ``f_rest``) plug in directly (3DGS then adds 0.5 to the colour; we do not).
Ramamoorthi and Hanrahan's table omits the phase; multiply their coefficients with odd ``m``
(``k = 1, 3, 5, 7, 9, 11, 13, 15``) by -1 to convert. With unit ``(x, y, z)``::

    Y0          =  0.282095
    Y1..Y3      = -0.488603 y,  0.488603 z,  -0.488603 x
    Y4..Y8      =  1.092548 xy, -1.092548 yz, 0.315392 (3z^2 - 1), -1.092548 xz, 0.546274 (x^2 - y^2)
    Y9..Y15     = -0.590044 y(3x^2 - y^2), 2.890611 xyz, -0.457046 y(4z^2 - x^2 - y^2),
                   0.373176 z(2z^2 - 3x^2 - 3y^2), -0.457046 x(4z^2 - x^2 - y^2), 1.445306 z(x^2 - y^2),
                  -0.590044 x(x^2 - 3y^2)

**Frame.** The polynomials take world coordinates as they are, so the zonal (``m = 0``) functions are
symmetric about world **+z**, not about the up axis (+y). Nothing depends on that choice: each band is
closed under rotation, and irradiance (:func:`sh_irradiance`) is the same in any frame.

**Environment maps.** :func:`equirect_directions` fixes the equirectangular layout (world +y up);
:func:`sh_project_equirect` turns such a map into SH lighting.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .._checks import broadcast_batch, check_positive_int, check_tensor

__all__ = [
    "SH_COSINE_LOBE",
    "equirect_directions",
    "sh_basis",
    "sh_eval",
    "sh_irradiance",
    "sh_num_coeffs",
    "sh_project",
    "sh_project_equirect",
]

_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
_C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)

#: Per-band scale ``A_l`` of the Lambertian (clamped-cosine) convolution: ``E_lm = A_l * L_lm``.
#: Band 3 of the clamped cosine is exactly zero (all odd bands above 1 vanish).
SH_COSINE_LOBE = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0, 0.0)

_MAX_DEGREE = 3
_EPS = 1e-12


def sh_num_coeffs(degree: int) -> int:
    """Return ``(degree + 1)^2``, the number of SH coefficients up to ``degree`` (0..3).

    Example::

        >>> sh_num_coeffs(2), sh_num_coeffs(3)
        (9, 16)
    """
    return (_check_degree(degree) + 1) ** 2


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Evaluate the real SH basis ``Y_k(dirs)`` for ``k < (degree + 1)^2`` (ordering and signs: module doc).

    Args:
        dirs: directions, ``[..., 3]``, float, world space. They are normalised here, so any length works;
            a zero vector (e.g. a background pixel's normal) evaluates as the zero vector, where only
            ``Y0`` (and no other band) is non-zero. No error, no NaN.
        degree: highest band, 0 to 3.

    Returns:
        ``[..., (degree + 1)^2]`` basis values, dtype and device of ``dirs``.

    **Differentiability:** smooth in ``dirs`` (polynomials of the normalised direction; the gradient is
    tangent to the sphere, and zero at zero vectors).

    Example: straight along +z only the ``m = 0`` functions are non-zero::

        >>> [round(v, 6) for v in sh_basis(torch.tensor([0.0, 0.0, 2.0]), 1).tolist()]
        [0.282095, -0.0, 0.488603, -0.0]
    """
    check_tensor(dirs, "dirs", trailing=(3,), floating=True, finite=True)
    return _basis(_normalize(dirs), _check_degree(degree))


def sh_eval(dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Evaluate an SH expansion: ``out[..., c] = sum_k coeffs[..., k, c] * Y_k(dirs)``.

    Args:
        dirs: directions, ``[..., 3]``, float, world space, normalised here (see :func:`sh_basis`).
        coeffs: SH coefficients, ``[..., K, C]`` with ``K`` in (1, 4, 9, 16) (the degree follows from ``K``);
            usually ``[K, C]`` shared by all directions, or with batch dims broadcastable against ``dirs``.

    Returns:
        ``[..., C]`` values (radiance when ``coeffs`` are radiance coefficients).

    **Differentiability:** linear in ``coeffs``, smooth in ``dirs``.

    Example: a constant radiance 2 has ``c0 = 2 * sqrt(4 pi)``; it evaluates to 2 everywhere::

        >>> c = torch.tensor([[2.0 * math.sqrt(4.0 * math.pi)]])
        >>> round(sh_eval(torch.tensor([1.0, 0.0, 0.0]), c).item(), 6)
        2.0
    """
    check_tensor(dirs, "dirs", trailing=(3,), floating=True, finite=True)
    degree = _coeffs_degree(coeffs, dirs)
    basis = _basis(_normalize(dirs), degree)
    broadcast_batch(basis.shape[:-1], "dirs", coeffs.shape[:-2], "coeffs")
    return (basis[..., None, :] @ coeffs)[..., 0, :]


def sh_irradiance(normals: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Compute Lambertian irradiance ``E(n) = integral L(w) max(n . w, 0) dw`` from SH radiance coefficients.

    The clamped cosine is zonal, so the convolution scales band ``l`` by ``A_l`` (Ramamoorthi & Hanrahan
    2001, :data:`SH_COSINE_LOBE`)::

        E(n) = sum_{l, m} A_l * L_lm * Y_lm(n),    A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4, A_3 = 0

    The outgoing radiance of a Lambertian surface is then ``albedo / pi * E``. With degree 2 (9
    coefficients) the clamped cosine is truncated after band 2; for a single distant light of power ``P``
    that truncation errs by at most about ``0.094 P`` (at ``n . w = 0``), typically much less for smooth
    lighting; band 3 adds nothing (``A_3 = 0``).

    Args:
        normals: surface normals, ``[..., 3]``, float, world space, normalised here (zero vectors allowed:
            see :func:`sh_basis`).
        coeffs: radiance SH coefficients, ``[..., K, C]``, ``K`` in (1, 4, 9, 16), e.g. from
            :func:`sh_project_equirect`.

    Returns:
        ``[..., C]`` irradiance.

    **Differentiability:** linear in ``coeffs``, smooth in ``normals``.

    Example: constant radiance ``L = 1`` gives ``E = pi`` for every normal::

        >>> c = torch.tensor([[math.sqrt(4.0 * math.pi)]])
        >>> round(sh_irradiance(torch.tensor([0.0, 1.0, 0.0]), c).item(), 6) == round(math.pi, 6)
        True
    """
    check_tensor(normals, "normals", trailing=(3,), floating=True, finite=True)
    degree = _coeffs_degree(coeffs, normals)
    scale = torch.cat([torch.full((2 * l + 1,), SH_COSINE_LOBE[l], dtype=coeffs.dtype, device=coeffs.device)
                       for l in range(degree + 1)])
    return sh_eval(normals, coeffs * scale[:, None])


def sh_project(
    dirs: torch.Tensor,
    values: torch.Tensor,
    degree: int,
    weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Project samples of a function on the sphere into SH coefficients by quadrature.

    ``coeffs[..., k, c] = sum_n weights[..., n] * Y_k(dirs[..., n]) * values[..., n, c]``, an estimate of
    ``integral f(w) Y_k(w) dw``. The ``weights`` are the solid angles of the samples (quadrature weights;
    they should sum to ``4 pi``). Without ``weights`` the samples are taken as uniformly distributed on the
    sphere (Monte Carlo): every weight is ``4 pi / N``.

    To project a function ``fn``, sample it: ``d, w = equirect_directions(H, W)`` then
    ``sh_project(d.reshape(-1, 3), fn(d).reshape(H * W, -1), degree, w.reshape(-1))``.

    Args:
        dirs: sample directions, ``[..., N, 3]``, float, normalised here.
        values: function values at the samples, ``[..., N, C]``, float (radiance for lighting).
        degree: highest band, 0 to 3.
        weights: optional solid angle of each sample, ``[..., N]``, float.

    Returns:
        ``[..., (degree + 1)^2, C]`` coefficients (batch dims of ``dirs``, ``values`` and ``weights``
        broadcast).

    **Differentiability:** linear in ``values`` and ``weights``, smooth in ``dirs``.

    Example: one sample with weight ``4 pi`` of the constant 1 gives ``c0 = 4 pi * Y0 = sqrt(4 pi)``::

        >>> c = sh_project(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[1.0]]), 0, torch.tensor([4 * math.pi]))
        >>> round(c.item(), 6) == round(math.sqrt(4 * math.pi), 6)
        True
    """
    degree = _check_degree(degree)
    check_tensor(dirs, "dirs", trailing=(None, 3), floating=True, finite=True)
    device = dirs.device
    check_tensor(values, "values", trailing=(None, None), floating=True, finite=True, device=device)
    n = dirs.shape[-2]
    if values.shape[-2] != n:
        raise ValueError(f"values must have shape [..., N, C] with N = {n} (one value per direction); "
                         f"got {tuple(values.shape)}")
    broadcast_batch(dirs.shape[:-2], "dirs", values.shape[:-2], "values")
    basis = _basis(_normalize(dirs), degree)  # [..., N, K]
    if weights is None:
        basis = basis * (4.0 * math.pi / max(n, 1))
    else:
        check_tensor(weights, "weights", trailing=(n,), floating=True, finite=True, device=device)
        broadcast_batch(dirs.shape[:-2], "dirs", weights.shape[:-1], "weights")
        basis = basis * weights[..., None]
    return basis.transpose(-1, -2) @ values


def equirect_directions(
    H: int,
    W: int,
    *,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the world direction and the exact solid angle of every pixel of an equirectangular map.

    Layout (world **+y up**, the same as Mitsuba 3's ``envmap`` emitter with an identity ``to_world``): pixel
    (row ``i``, column ``j``) has its centre at ``u = (j + 0.5) / W``, ``v = (i + 0.5) / H`` and::

        phi = 2 pi u,  theta = pi v   (theta from +y)
        d   = (sin(phi) sin(theta),  cos(theta),  -cos(phi) sin(theta))

    So row 0 (``v = 0``) is the top of the sky (+y) and the last row the ground (-y); along a row,
    ``u = 0`` looks along -z, ``u = 1/4`` along +x, ``u = 1/2`` along +z (the image centre) and ``u = 3/4``
    along -x. Inverse: ``u = atan2(d_x, -d_z) / (2 pi) mod 1``, ``v = acos(d_y) / pi``.

    The solid angle of row ``i`` is exact: ``(2 pi / W) * (cos(pi i / H) - cos(pi (i + 1) / H))``; the
    solid angles sum to ``4 pi`` (up to rounding).

    Args:
        H: rows (latitude), positive int.
        W: columns (longitude), positive int.
        dtype: floating dtype of the outputs.
        device: device of the outputs.

    Returns:
        ``(dirs [H, W, 3], solid_angles [H, W])``, unit directions and steradians.

    **Differentiability:** no tensor inputs; constants.

    Example: a 2 x 4 map: the pixel centre of row 0, column 2 is at ``u = 5/8`` (``phi = 5 pi / 4``),
    ``theta = pi / 4``::

        >>> d, w = equirect_directions(2, 4, dtype=torch.float64)
        >>> [round(v, 4) for v in d[0, 2].tolist()], round(w.sum().item() / math.pi, 6)
        ([-0.5, 0.7071, 0.5], 4.0)
    """
    H = check_positive_int(H, "H")
    W = check_positive_int(W, "W")
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(f"dtype must be a floating dtype; got {dtype}")
    calc = torch.float64
    theta = (torch.arange(H, dtype=calc, device=device) + 0.5) * (math.pi / H)
    phi = (torch.arange(W, dtype=calc, device=device) + 0.5) * (2.0 * math.pi / W)
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    sp, cp = torch.sin(phi)[None, :], torch.cos(phi)[None, :]
    dirs = torch.stack(torch.broadcast_tensors(sp * st, ct, -cp * st), dim=-1)
    edges = torch.cos(torch.arange(H + 1, dtype=calc, device=device) * (math.pi / H))
    solid = ((edges[:-1] - edges[1:]) * (2.0 * math.pi / W))[:, None].expand(H, W)
    return dirs.to(dtype), solid.to(dtype).contiguous()


def sh_project_equirect(env: torch.Tensor, degree: int) -> torch.Tensor:
    """Project an equirectangular environment map into SH radiance coefficients.

    Uses the layout of :func:`equirect_directions` (world +y up, row 0 at +y) and treats every texel as
    constant radiance over its pixel on the sphere::

        coeffs[..., k, c] = sum_{i, j} env[..., i, j, c] * integral_{pixel (i, j)} Y_k(w) dw

    The pixel integrals use a 2 x 2 Gauss-Legendre rule in ``(cos(theta), phi)`` per pixel, which is exact
    for the zonal (``m = 0``) parts and, summed over a row, for the ``phi`` dependence: a uniform map gives
    exactly ``c0 = sqrt(4 pi) * L`` and zero for every other coefficient (for ``W >= 4``), so a uniform sky
    lights a Lambertian surface with exactly ``E = pi L``. The result feeds :func:`sh_eval` (band-limited
    radiance along a direction) and :func:`sh_irradiance` (diffuse lighting; degree 2 is the classic
    9-coefficient choice).

    Args:
        env: radiance map, ``[..., H, W, C]``, float, channel-last, linear (not sRGB-encoded).
        degree: highest band, 0 to 3.

    Returns:
        ``[..., (degree + 1)^2, C]`` coefficients, dtype and device of ``env``.

    **Differentiability:** linear in ``env`` (every texel gets a gradient).

    Example: a uniform map of radiance 1 gives ``c0 = sqrt(4 pi)`` and nothing else::

        >>> c = sh_project_equirect(torch.ones(8, 16, 1, dtype=torch.float64), 2)
        >>> round(c[0, 0].item(), 6) == round(math.sqrt(4 * math.pi), 6), float(c[1:].abs().max()) < 1e-12
        (True, True)
    """
    check_tensor(env, "env", trailing=(None, None, None), floating=True, finite=True)
    degree = _check_degree(degree)
    H, W, C = env.shape[-3:]
    weights = _equirect_pixel_integrals(H, W, degree, env.device).to(env.dtype)  # [H W, K]
    return weights.transpose(0, 1) @ env.reshape(*env.shape[:-3], H * W, C)


def _equirect_pixel_integrals(H: int, W: int, degree: int, device) -> torch.Tensor:
    """``integral_{pixel} Y_k dw`` for every pixel of an ``H x W`` equirect map, ``[H W, K]``, float64.

    2 x 2 Gauss-Legendre in ``(t = cos(theta), phi)`` over each pixel: the pixel's solid angle times the mean of
    the basis at the four nodes.
    """
    calc = torch.float64
    edges = torch.cos(torch.arange(H + 1, dtype=calc, device=device) * (math.pi / H))  # t, from +1 down to -1
    solid = (edges[:-1] - edges[1:]) * (2.0 * math.pi / W)  # [H]
    nodes = (0.5 - 0.5 / math.sqrt(3.0), 0.5 + 0.5 / math.sqrt(3.0))  # on [0, 1], weights 1/2 each
    total = torch.zeros(H * W, (degree + 1) ** 2, dtype=calc, device=device)
    for a in nodes:
        t = (edges[:-1] + a * (edges[1:] - edges[:-1]))[:, None]
        st = (1.0 - t * t).clamp_min(0.0).sqrt()
        for b in nodes:
            phi = ((torch.arange(W, dtype=calc, device=device) + b) * (2.0 * math.pi / W))[None, :]
            d = torch.stack(torch.broadcast_tensors(torch.sin(phi) * st, t, -torch.cos(phi) * st), dim=-1)
            total += _basis(d.reshape(-1, 3), degree)
    return total * (solid[:, None].expand(H, W).reshape(-1, 1) / 4.0)


# --------------------------------------------------------------------------------------------------------------
# helpers


def _check_degree(degree) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise TypeError(f"degree must be an int; got {type(degree).__name__}")
    if not 0 <= degree <= _MAX_DEGREE:
        raise ValueError(f"degree must be in [0, {_MAX_DEGREE}]; got {degree}")
    return degree


def _coeffs_degree(coeffs: torch.Tensor, like: torch.Tensor) -> int:
    check_tensor(coeffs, "coeffs", trailing=(None, None), floating=True, finite=True, device=like.device)
    K = coeffs.shape[-2]
    degree = math.isqrt(K) - 1
    if (degree + 1) ** 2 != K or degree > _MAX_DEGREE:
        raise ValueError(f"coeffs must have shape [..., K, C] with K in (1, 4, 9, 16); got {tuple(coeffs.shape)}")
    return degree


def _normalize(d: torch.Tensor) -> torch.Tensor:
    """``d / |d|``, with zero vectors mapped to zero and finite gradients everywhere."""
    n2 = (d * d).sum(-1, keepdim=True)
    return d / n2.clamp_min(_EPS * _EPS).sqrt()


def _basis(d: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis of unit (or zero) directions ``d [..., 3]`` -> ``[..., (degree + 1)^2]``."""
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (2.0 * zz - xx - yy), _C2[3] * xz, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * xy * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)
