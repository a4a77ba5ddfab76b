"""Input encodings for field MLPs: frequency (positional) encoding of points and spherical harmonics of directions.

The SH encoding reuses :func:`lumigrad.shading.sh.sh_basis` (real, orthonormal, Condon-Shortley phase, ordering
``k = l^2 + l + m``) for bands 0..3 and adds band 4 here in the same convention, so degree 4 gives the 25
functions of instant-ngp's / nerfstudio's SH direction encoding (up to the sign convention stated there).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..._checks import check_positive_int, check_tensor
from ...shading.sh import sh_basis

__all__ = ["FrequencyEncoding", "SHEncoding", "frequency_encode", "sh_encode"]

MAX_SH_DEGREE = 4

# band 4, m = -4..4, polynomials of the unit direction (x, y, z) with Condon-Shortley phase (odd m negative)
_C4 = (2.5033429417967046, -1.7701307697799304, 0.9461746957575601, -0.6690465435572892, 0.10578554691520431,
       -0.6690465435572892, 0.47308734787878004, -1.7701307697799304, 0.6258357354491761)


def frequency_encode(x: torch.Tensor, num_frequencies: int, include_input: bool = True) -> torch.Tensor:
    """NeRF positional encoding: ``[x, sin(2^k pi x), cos(2^k pi x) for k < num_frequencies]``.

    Per frequency the layout is ``sin`` of all ``D`` inputs, then ``cos`` of all ``D`` inputs; frequencies in
    increasing order, after the input itself when ``include_input``.

    Args:
        x: ``[..., D]`` float, finite (for points, usually unit-cube or ``[-1, 1]`` coordinates).
        num_frequencies: ``K >= 1``.
        include_input: prepend ``x``.

    Returns:
        ``[..., D * (2 K + include_input)]``.

    **Differentiability:** smooth in ``x``.

    Example::

        >>> [round(v, 6) for v in frequency_encode(torch.tensor([1 / 6]), 2).tolist()]  # x, sin/cos(pi/6, pi/3)
        [0.166667, 0.5, 0.866025, 0.866025, 0.5]
    """
    check_tensor(x, "x", min_dims=1, floating=True, finite=True)
    num_frequencies = check_positive_int(num_frequencies, "num_frequencies")
    scales = math.pi * 2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)
    arg = x[..., None, :] * scales[:, None]  # [..., K, D]
    parts = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1).flatten(-2)  # [..., K * 2D]
    return torch.cat([x, parts], dim=-1) if include_input else parts


def sh_encode(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis of directions up to ``degree`` (0..4): ``[..., (degree + 1)^2]``.

    Args:
        directions: ``[..., 3]`` float, finite, world space; normalised here (zero vectors give only ``Y0``).
        degree: highest band, 0..4.

    Returns:
        ``[..., (degree + 1)^2]`` basis values (ordering and signs: :mod:`lumigrad.shading.sh`); band 4
        (``k = 16..24``, ``m = -4..4``) with unit ``(x, y, z)``::

            2.503343 xy(x^2 - y^2), -1.770131 yz(3x^2 - y^2), 0.946175 xy(7z^2 - 1), -0.669047 yz(7z^2 - 3),
            0.105786 (35z^4 - 30z^2 + 3), -0.669047 xz(7z^2 - 3), 0.473087 (x^2 - y^2)(7z^2 - 1),
            -1.770131 xz(x^2 - 3y^2), 0.625836 (x^4 - 6x^2 y^2 + y^4)

    **Differentiability:** smooth in ``directions`` (tangent to the sphere; zero at zero vectors).

    Example: along +z only the zonal functions are non-zero; ``Y_4,0(+z) = 0.105786 * 8 = 0.846284``::

        >>> round(sh_encode(torch.tensor([0.0, 0.0, 1.0]), 4)[20].item(), 6)
        0.846284
    """
    check_tensor(directions, "directions", trailing=(3,), floating=True, finite=True)
    if isinstance(degree, bool) or not isinstance(degree, int):
        raise TypeError(f"degree must be an int; got {type(degree).__name__}")
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"degree must be in [0, {MAX_SH_DEGREE}]; got {degree}")
    low = sh_basis(directions, min(degree, 3))
    if degree < 4:
        return low
    n = directions.norm(dim=-1, keepdim=True)
    d = directions / torch.where(n > 0, n, torch.ones_like(n))
    x, y, z = d.unbind(-1)
    x2, y2, z2 = x * x, y * y, z * z
    band4 = torch.stack([
        _C4[0] * x * y * (x2 - y2),
        _C4[1] * y * z * (3 * x2 - y2),
        _C4[2] * x * y * (7 * z2 - 1),
        _C4[3] * y * z * (7 * z2 - 3),
        _C4[4] * (35 * z2 * z2 - 30 * z2 + 3),
        _C4[5] * x * z * (7 * z2 - 3),
        _C4[6] * (x2 - y2) * (7 * z2 - 1),
        _C4[7] * x * z * (x2 - 3 * y2),
        _C4[8] * (x2 * (x2 - 3 * y2) - y2 * (3 * x2 - y2)),
    ], dim=-1)
    zero = (n == 0)
    band4 = torch.where(zero, torch.zeros_like(band4), band4)
    return torch.cat([low, band4], dim=-1)


class FrequencyEncoding(nn.Module):
    """Module form of :func:`frequency_encode` (no parameters).

    Args:
        in_dim: input width ``D``.
        num_frequencies: ``K``.
        include_input: prepend the input.

    **Differentiability:** smooth in the input.
    """

    def __init__(self, in_dim: int, num_frequencies: int = 6, include_input: bool = True):
        super().__init__()
        self.in_dim = check_positive_int(in_dim, "in_dim")
        self.num_frequencies = check_positive_int(num_frequencies, "num_frequencies")
        self.include_input = bool(include_input)

    @property
    def output_dim(self) -> int:
        """``D * (2 K + include_input)``."""
        return self.in_dim * (2 * self.num_frequencies + int(self.include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x [..., D]``."""
        check_tensor(x, "x", trailing=(self.in_dim,), floating=True)
        return frequency_encode(x, self.num_frequencies, self.include_input)


class SHEncoding(nn.Module):
    """Module form of :func:`sh_encode` (no parameters).

    Args:
        degree: highest band, 0..4 (4 as instant-ngp).

    **Differentiability:** smooth in the directions.
    """

    def __init__(self, degree: int = 4):
        super().__init__()
        if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
            raise ValueError(f"degree must be an int in [0, {MAX_SH_DEGREE}]; got {degree!r}")
        self.degree = degree

    @property
    def output_dim(self) -> int:
        """``(degree + 1)^2``."""
        return (self.degree + 1) ** 2

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        """Encode ``directions [..., 3]`` into ``[..., (degree + 1)^2]``."""
        return sh_encode(directions, self.degree)
