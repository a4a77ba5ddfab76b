"""Real SH: orthonormality, exact projection, irradiance vs brute-force quadrature, equirect layout, gradcheck."""

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.shading.sh import (SH_COSINE_LOBE, equirect_directions, sh_basis, sh_eval, sh_irradiance,
                                 sh_num_coeffs, sh_project, sh_project_equirect)

DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _unit(n, seed=0):
    d = torch.randn(n, 3, generator=_gen(seed), dtype=DT)
    return d / d.norm(dim=-1, keepdim=True)


def gauss_sphere(n_theta=24, n_phi=48):
    """Product quadrature (Gauss-Legendre in cos(theta), uniform in phi), exact for polynomials of degree
    < min(2 n_theta, n_phi) on the sphere: ``(dirs [N, 3], weights [N])``."""
    t, w = np.polynomial.legendre.leggauss(n_theta)
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    ct, ph = np.meshgrid(t, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3)
    weights = np.repeat(w, n_phi) * (2 * np.pi / n_phi)
    return torch.from_numpy(dirs), torch.from_numpy(weights)


# ------------------------------------------------------------------------------------------------- basis


def test_basis_values_by_hand_and_sign_convention():
    c0, c1 = 0.28209479177387814, 0.4886025119029199
    y = sh_basis(torch.eye(3, dtype=DT), 1)  # +x, +y, +z
    expected = torch.tensor([[c0, 0, 0, -c1], [c0, -c1, 0, 0], [c0, 0, c1, 0]], dtype=DT)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-15)
    # band 2 at (x, y, z) = (1, 1, 0) / sqrt(2): xy term 1.0925 * 0.5, x^2 - y^2 term 0
    y2 = sh_basis(torch.tensor([1.0, 1.0, 0.0], dtype=DT), 2)
    assert abs(float(y2[4]) - 1.0925484305920792 * 0.5) < 1e-15 and abs(float(y2[8])) < 1e-15
    assert sh_num_coeffs(0) == 1 and sh_basis(torch.zeros(5, 3, dtype=DT), 3).shape == (5, 16)


@pytest.mark.parametrize("degree", [2, 3])
def test_orthonormal_by_exact_quadrature(degree):
    dirs, w = gauss_sphere()
    Y = sh_basis(dirs, degree)
    gram = Y.T @ (Y * w[:, None])
    torch.testing.assert_close(gram, torch.eye(sh_num_coeffs(degree), dtype=DT), rtol=0, atol=1e-12)


def test_orthonormal_by_equirect_quadrature():
    dirs, w = equirect_directions(64, 128, dtype=DT)
    Y = sh_basis(dirs.reshape(-1, 3), 3)
    gram = Y.T @ (Y * w.reshape(-1, 1))
    err = float((gram - torch.eye(16, dtype=DT)).abs().max())
    assert err < 1e-3, err


def test_basis_rotation_invariance_of_bands():
    # sum_m Y_lm(a) Y_lm(b) = (2l + 1) / (4 pi) P_l(a . b) (addition theorem) in every band
    a, b = _unit(50, 1), _unit(50, 2)
    Ya, Yb = sh_basis(a, 3), sh_basis(b, 3)
    t = (a * b).sum(-1)
    legendre = [torch.ones_like(t), t, (3 * t**2 - 1) / 2, (5 * t**3 - 3 * t) / 2]
    for l in range(4):
        s = (Ya[:, l * l:(l + 1) ** 2] * Yb[:, l * l:(l + 1) ** 2]).sum(-1)
        torch.testing.assert_close(s, (2 * l + 1) / (4 * math.pi) * legendre[l], rtol=0, atol=1e-13)


def test_zero_direction_is_finite():
    d = torch.zeros(2, 3, dtype=DT, requires_grad=True)
    y = sh_basis(d, 3)
    torch.testing.assert_close(y[:, 0], torch.full((2,), 0.28209479177387814, dtype=DT))
    assert torch.equal(y[:, 1:], torch.zeros(2, 15, dtype=DT))
    y.sum().backward()
    assert torch.isfinite(d.grad).all()


# ----------------------------------------------------------------------------------------- project / eval


@pytest.mark.parametrize("degree", [2, 3])
def test_project_then_eval_reproduces_band_limited_function(degree):
    K = sh_num_coeffs(degree)
    coeffs = torch.randn(K, 3, generator=_gen(3), dtype=DT)
    dirs, w = gauss_sphere()
    values = sh_eval(dirs, coeffs)
    back = sh_project(dirs, values, degree, w)
    torch.testing.assert_close(back, coeffs, rtol=0, atol=1e-12)
    probe = _unit(20, 4)
    torch.testing.assert_close(sh_eval(probe, back), sh_eval(probe, coeffs), rtol=0, atol=1e-12)
    # an equirect map sampled at pixel centres gets close too (texels are taken as constant over their pixel:
    # O(pixel^2) error, measured 1e-3 (degree 2) and 2.1e-3 (degree 3) at 64 x 128)
    d_eq, _ = equirect_directions(64, 128, dtype=DT)
    env = sh_eval(d_eq, coeffs)
    assert float((sh_project_equirect(env, degree) - coeffs).abs().max()) < 4e-3


def test_project_monte_carlo_default_weights_and_batch():
    dirs = _unit(20000, 5)
    values = torch.stack([torch.ones(20000, dtype=DT), dirs[:, 1]], -1)  # 1 and y
    c = sh_project(dirs, values[None].expand(2, -1, -1), 1)
    assert c.shape == (2, 4, 2)
    assert abs(float(c[0, 0, 0]) - math.sqrt(4 * math.pi)) < 0.05
    # y = -Y_{1,-1} / c1 -> coefficient -sqrt(4 pi / 3)
    assert abs(float(c[1, 1, 1]) + math.sqrt(4 * math.pi / 3)) < 0.05


def test_eval_broadcasts_coefficient_batches():
    coeffs = torch.randn(2, 1, 9, 3, generator=_gen(6), dtype=DT)
    dirs = _unit(5, 7)
    out = sh_eval(dirs, coeffs)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out[1], sh_eval(dirs, coeffs[1, 0]))


# ------------------------------------------------------------------------------------------------ irradiance


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_uniform_equirect_map_projects_exactly(degree):
    # texels are integrated over their pixels, so a uniform sky has exactly c0 = sqrt(4 pi) L and E = pi L
    L = torch.tensor([0.5, 1.0, 2.0], dtype=DT)
    for H, W in [(16, 32), (4, 4), (3, 8)]:
        c = sh_project_equirect(L.expand(H, W, 3), degree)
        torch.testing.assert_close(c[0], L * math.sqrt(4 * math.pi), rtol=1e-13, atol=0)
        assert float(c[1:].abs().sum()) < 1e-12
        torch.testing.assert_close(sh_irradiance(_unit(10, 17), c), (math.pi * L).expand(10, 3), rtol=1e-13, atol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_irradiance_of_constant_radiance_is_pi_L(degree):
    L = torch.tensor([0.5, 1.0, 2.0], dtype=DT)
    coeffs = torch.zeros(sh_num_coeffs(degree), 3, dtype=DT)
    coeffs[0] = L * math.sqrt(4 * math.pi)
    E = sh_irradiance(_unit(30, 8), coeffs)
    torch.testing.assert_close(E, (math.pi * L).expand(30, 3), rtol=1e-14, atol=0)


def _lobe(dirs, axis, sharpness):
    return torch.exp(sharpness * ((dirs * axis).sum(-1) - 1.0))


def test_irradiance_of_narrow_lobe_vs_brute_force():
    dirs, w = gauss_sphere(64, 128)
    axis = torch.tensor([0.3, 0.8, -0.5], dtype=DT)
    axis = axis / axis.norm()
    radiance = _lobe(dirs, axis, 200.0)[:, None]  # ~ a distant light of angular radius ~ 4 degrees
    power = float((radiance[:, 0] * w).sum())
    normals = _unit(200, 9)
    cos = normals @ dirs.T  # [200, N]
    brute = (radiance[:, 0] * w * cos.clamp_min(0)).sum(-1)

    coeffs = sh_project(dirs, radiance, 2, w)
    E2 = sh_irradiance(normals, coeffs)[:, 0]
    # Exactly the truncated (order-2) clamped-cosine kernel: 1/4 + t/2 + 5/16 P2(t) (addition theorem, A_l).
    kernel = 0.25 + cos / 2 + 5 / 16 * (3 * cos**2 - 1) / 2
    torch.testing.assert_close(E2, (radiance[:, 0] * w * kernel).sum(-1), rtol=0, atol=1e-10)
    # Against the true clamped cosine: the order-2 truncation error of a near-delta light is bounded by the
    # kernel's worst error, 3/32 = 0.094 of the light's power (at n . axis = 0); on average it is far lower.
    err = (E2 - brute).abs() / power
    assert float(err.max()) < 0.1, float(err.max())
    assert float(err.mean()) < 0.04, float(err.mean())  # measured: max 0.068, mean 0.028 (200 normals)
    # Facing the light the error is small: 1/16 at n = axis for a true delta.
    facing = sh_irradiance(axis, coeffs)[0]
    assert abs(float(facing) - power) / power < 0.07
    # Band 3 changes nothing (A_3 = 0).
    E3 = sh_irradiance(normals, sh_project(dirs, radiance, 3, w))[:, 0]
    torch.testing.assert_close(E3, E2, rtol=0, atol=1e-12)
    assert SH_COSINE_LOBE[3] == 0.0


def test_irradiance_of_smooth_lighting_is_accurate():
    # for low-frequency lighting (the common case) degree 2 irradiance is within 0.2% of brute force
    # (measured 6.7e-4 relative)
    dirs, w = gauss_sphere(32, 64)
    radiance = (1.0 + 0.8 * _lobe(dirs, torch.tensor([0.0, 1.0, 0.0], dtype=DT), 2.0))[:, None]
    normals = _unit(100, 10)
    brute = (radiance[:, 0] * w * (normals @ dirs.T).clamp_min(0)).sum(-1)
    E = sh_irradiance(normals, sh_project(dirs, radiance, 2, w))[:, 0]
    assert float(((E - brute).abs() / brute).max()) < 2e-3


# ------------------------------------------------------------------------------------------- equirectangular


def test_equirect_solid_angles_and_orientation():
    H, W = 16, 32
    d, w = equirect_directions(H, W, dtype=DT)
    assert d.shape == (H, W, 3) and w.shape == (H, W)
    assert abs(float(w.sum()) - 4 * math.pi) < 1e-12
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(H, W, dtype=DT))
    assert bool((d[0, :, 1] > 0.99).all()) and bool((d[-1, :, 1] < -0.99).all())  # row 0 up (+y)
    assert bool((d[1:, 0, 1] < d[:-1, 0, 1]).all())
    # u = 0 -> -z, 1/4 -> +x, 1/2 -> +z, 3/4 -> -x (on the horizon rows, close to)
    eq = equirect_directions(2, 4, dtype=DT)[0]  # column centres at u = 1/8, 3/8, 5/8, 7/8
    s = 1 / math.sqrt(2)
    horiz = eq[0, :, [0, 2]] / eq[0, :, [0, 2]].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(horiz, torch.tensor([[s, -s], [s, s], [-s, s], [-s, -s]], dtype=DT))
    # documented inverse mapping lands on the pixel centres
    u = torch.remainder(torch.atan2(d[..., 0], -d[..., 2]) / (2 * math.pi), 1.0)
    v = torch.acos(d[..., 1]) / math.pi
    j, i = torch.meshgrid(torch.arange(W, dtype=DT), torch.arange(H, dtype=DT), indexing="xy")
    torch.testing.assert_close(u, (j + 0.5) / W)
    torch.testing.assert_close(v, (i + 0.5) / H)
    assert equirect_directions(4, 8)[0].dtype == torch.float32


def test_bright_region_projects_to_peak_in_its_direction():
    H, W = 32, 64
    d, _ = equirect_directions(H, W, dtype=DT)
    for (i0, j0) in [(6, 40), (20, 10), (15, 31)]:
        env = torch.full((H, W, 3), 0.05, dtype=DT)
        env[i0:i0 + 3, j0:j0 + 3] = 50.0
        coeffs = sh_project_equirect(env, 3)
        radiance = sh_eval(d, coeffs)[..., 0]
        peak = d.reshape(-1, 3)[radiance.argmax()]
        target = d[i0 + 1, j0 + 1]
        angle = math.degrees(math.acos(min(1.0, float((peak * target).sum()))))
        assert angle < 8.0, (i0, j0, angle)
        # irradiance is also highest for normals facing the bright region
        E = sh_irradiance(d, sh_project_equirect(env, 2))[..., 0]
        peak_e = d.reshape(-1, 3)[E.argmax()]
        assert math.degrees(math.acos(min(1.0, float((peak_e * target).sum())))) < 10.0


# ------------------------------------------------------------------------------------------------- gradcheck


def test_gradcheck_sh():
    dirs = (torch.randn(4, 3, generator=_gen(11), dtype=DT) * 2).requires_grad_()
    coeffs = torch.randn(16, 2, generator=_gen(12), dtype=DT, requires_grad=True)
    coeffs9 = torch.randn(9, 2, generator=_gen(13), dtype=DT, requires_grad=True)
    values = torch.randn(4, 2, generator=_gen(14), dtype=DT, requires_grad=True)
    weights = torch.rand(4, generator=_gen(15), dtype=DT).requires_grad_()
    env = torch.rand(3, 4, 2, generator=_gen(16), dtype=DT, requires_grad=True)
    assert gradcheck(lambda d: sh_basis(d, 3), (dirs,))
    assert gradcheck(sh_eval, (dirs, coeffs))
    assert gradcheck(sh_irradiance, (dirs, coeffs9))
    assert gradcheck(sh_irradiance, (dirs, coeffs))
    assert gradcheck(lambda d, v, w: sh_project(d, v, 3, w), (dirs, values, weights))
    assert gradcheck(lambda e: sh_project_equirect(e, 2), (env,))


# ------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, err, match", [
    (lambda: sh_basis(torch.zeros(3), 4), ValueError, r"degree must be in \[0, 3\]"),
    (lambda: sh_basis(torch.zeros(3), 2.0), TypeError, "degree must be an int"),
    (lambda: sh_basis(torch.tensor([0.0, float("nan"), 1.0]), 2), ValueError, "dirs contains NaN"),
    (lambda: sh_basis(torch.zeros(4), 2), ValueError, r"dirs must have shape \[\.\.\., 3\]"),
    (lambda: sh_eval(torch.ones(3), torch.ones(5, 3)), ValueError, "coeffs must have shape"),
    (lambda: sh_eval(torch.ones(3), torch.ones(25, 3)), ValueError, "coeffs must have shape"),
    (lambda: sh_eval(torch.ones(2, 3), torch.ones(3, 9, 3)), ValueError, "coeffs"),
    (lambda: sh_irradiance(torch.ones(3), torch.full((9, 3), float("inf"))), ValueError, "coeffs contains"),
    (lambda: sh_irradiance(torch.full((3,), float("nan")), torch.ones(9, 3)), ValueError, "normals contains"),
    (lambda: sh_project(torch.ones(4, 3), torch.ones(5, 1), 2), ValueError, "values must have shape"),
    (lambda: sh_project(torch.ones(4, 3), torch.ones(4, 1), 2, torch.ones(5)), ValueError, "weights"),
    (lambda: sh_project(torch.ones(4, 3), torch.ones(4, 1), 2, torch.ones(4, dtype=torch.int64)), TypeError,
     "weights must have a floating dtype"),
    (lambda: sh_project_equirect(torch.ones(4, 8), 2), ValueError, "env must have shape"),
    (lambda: sh_project_equirect(torch.full((4, 8, 3), float("nan")), 2), ValueError, "env contains NaN"),
    (lambda: equirect_directions(0, 8), ValueError, "H must be positive"),
    (lambda: equirect_directions(4, 8.0), TypeError, "W must be an int"),
])
def test_bad_input_names_the_argument(call, err, match):
    with pytest.raises(err, match=match):
        call()
