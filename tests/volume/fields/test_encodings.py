"""Frequency and SH encodings: known values, SH(4) against associated Legendre functions and by orthonormality."""

import math

import numpy as np
import pytest
import torch

from lumigrad.shading.sh import sh_basis
from lumigrad.volume.fields import FrequencyEncoding, SHEncoding, frequency_encode, sh_encode


def test_frequency_known_values_and_layout():
    x = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    out = frequency_encode(x, 2)
    s = math.sqrt(0.5)
    want = [0.25, -0.5,  # input
            s, -1.0, s, 0.0,  # k = 0: sin(pi x), cos(pi x)
            1.0, 0.0, 0.0, -1.0]  # k = 1: sin(2 pi x), cos(2 pi x)
    torch.testing.assert_close(out[0], torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-15)
    assert frequency_encode(x, 3, include_input=False).shape == (1, 12)
    enc = FrequencyEncoding(2, 3)
    assert enc.output_dim == 14 and enc(torch.zeros(5, 2)).shape == (5, 14)
    assert torch.autograd.gradcheck(lambda t: frequency_encode(t, 3), (torch.rand(4, 3, dtype=torch.float64,
                                                                                    requires_grad=True),))


def _real_sh_reference(dirs, degree):
    """Real SH with the Condon-Shortley phase from associated Legendre functions (independent of the code)."""
    d = dirs / dirs.norm(dim=-1, keepdim=True)
    x, y, z = d.unbind(-1)
    phi = torch.atan2(y, x)
    s = (1 - z * z).clamp(min=0).sqrt()
    out = []
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            # P_l^am(z) by the standard recurrence, with (-1)^m
            pmm = torch.ones_like(z)
            for k in range(1, am + 1):
                pmm = pmm * (-(2 * k - 1)) * s
            if l == am:
                p = pmm
            else:
                p_prev, p = pmm, z * (2 * am + 1) * pmm
                for ll in range(am + 2, l + 1):
                    p_prev, p = p, ((2 * ll - 1) * z * p - (ll + am - 1) * p_prev) / (ll - am)
            K = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
            if m == 0:
                out.append(K * p)
            elif m > 0:
                out.append(math.sqrt(2) * K * p * torch.cos(am * phi))
            else:
                out.append(math.sqrt(2) * K * p * torch.sin(am * phi))
    return torch.stack(out, dim=-1)


def test_sh_degree4_matches_associated_legendre_reference():
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sh_encode(dirs, 4), _real_sh_reference(dirs, 4), rtol=0, atol=1e-12)


def test_sh_lower_degrees_are_shading_basis_and_orthonormal():
    gen = torch.Generator().manual_seed(1)
    dirs = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    for degree in range(4):
        assert torch.equal(sh_encode(dirs, degree), sh_basis(dirs, degree))
    # Gauss-Legendre in z (10 nodes) x 20 uniform phi: exact for the degree-8 products of two band-4 functions
    zs, wz = np.polynomial.legendre.leggauss(10)
    phis = (np.arange(20) + 0.5) * 2 * np.pi / 20
    Z, P = np.meshgrid(zs, phis, indexing="ij")
    r = np.sqrt(1 - Z ** 2)
    quad_dirs = torch.tensor(np.stack([r * np.cos(P), r * np.sin(P), Z], -1).reshape(-1, 3))
    w = torch.tensor(np.repeat(wz, 20) * (2 * np.pi / 20))
    Y = sh_encode(quad_dirs, 4)
    gram = (Y * w[:, None]).T @ Y
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), rtol=0, atol=1e-12)


def test_sh_known_values_zero_vector_and_module():
    y = sh_encode(torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64), 4)
    assert y[20].item() == pytest.approx(3 / (2 * math.sqrt(math.pi)))  # Y_40(+z) = sqrt(9 / (4 pi))
    assert y[16:20].abs().sum() == 0 and y[21:].abs().sum() == 0
    zero = sh_encode(torch.zeros(1, 3), 4)
    assert zero[0, 0].item() == pytest.approx(0.2820948) and zero[0, 1:].abs().sum() == 0
    enc = SHEncoding(4)
    assert enc.output_dim == 25 and enc(torch.randn(3, 7, 3)).shape == (3, 7, 25)
    d = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sh_encode(t, 4), (d,))


@pytest.mark.parametrize("call, match", [
    (lambda: sh_encode(torch.zeros(4, 3), 5), "degree"),
    (lambda: sh_encode(torch.zeros(4, 2), 2), "directions"),
    (lambda: sh_encode(torch.tensor([[float("nan"), 0.0, 1.0]]), 2), "directions"),
    (lambda: SHEncoding(-1), "degree"),
    (lambda: frequency_encode(torch.zeros(3), 0), "num_frequencies"),
    (lambda: frequency_encode(torch.tensor([float("inf")]), 2), "x"),
    (lambda: FrequencyEncoding(3, 2)(torch.zeros(4, 2)), "x"),
])
def test_bad_input_names_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
