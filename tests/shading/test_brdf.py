"""BRDFs: hand-checked values, reciprocity, energy conservation (furnace tests), gradients, robustness, bad input."""

import math

import pytest
import torch

from lumigrad.shading import (ALPHA_MIN, cook_torrance, f0_from_ior, fresnel_schlick, ggx_distribution, lambert,
                              metallic_roughness, smith_ggx_correlated_visibility)

DT = torch.float64
Z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _unit(v):
    return v / v.norm(dim=-1, keepdim=True)


def _dir(theta, phi=0.0, dtype=DT):
    """Unit vector at polar angle ``theta`` from +z and azimuth ``phi``."""
    theta, phi = torch.as_tensor(theta, dtype=dtype), torch.as_tensor(phi, dtype=dtype)
    return torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi),
                        torch.cos(theta).expand_as(torch.sin(theta) * torch.cos(phi))], -1)


def _upper(n_pts, seed, min_cos=0.05):
    """Random unit directions in the upper hemisphere (z >= min_cos)."""
    v = torch.randn(n_pts * 4, 3, generator=_gen(seed), dtype=DT)
    v = _unit(v)
    v[:, 2] = v[:, 2].abs()
    v = v[v[:, 2] > min_cos][:n_pts]
    assert v.shape[0] == n_pts
    return v


def _alpha(r):
    return max(r * r, ALPHA_MIN)


# The three BRDFs behind one signature f(n, wi, wo) -> [..., C].
def _brdfs(n_pts, seed=0):
    g = _gen(seed + 100)
    color = torch.rand(n_pts, 3, generator=g, dtype=DT)
    rough = torch.rand(n_pts, 1, generator=g, dtype=DT)
    metal = torch.rand(n_pts, 1, generator=g, dtype=DT)
    return {
        "lambert": lambda n, wi, wo: lambert(n, wi, wo, color),
        "cook_torrance": lambda n, wi, wo: cook_torrance(n, wi, wo, rough, color),
        "metallic_roughness": lambda n, wi, wo: metallic_roughness(n, wi, wo, color, rough, metal),
        "metallic_roughness_ior": lambda n, wi, wo: metallic_roughness(n, wi, wo, color, rough, metal, ior=2.4),
    }


# --------------------------------------------------------------------------------------------- hand-checked
@pytest.mark.parametrize("r", [0.0, 0.3, 0.5, 1.0])
def test_metal_at_normal_incidence_by_hand(r):
    # wi = wo = n: h = n, n.h = v.h = 1, D = 1 / (pi alpha^2), V = 0.5 / (2 alpha) * alpha... = 1/4, F = f0 = c.
    c = torch.tensor([0.9, 0.5, 0.1], dtype=DT)
    a = _alpha(r)
    want = c / (4 * math.pi * a * a)
    got = metallic_roughness(Z, Z, Z, c, r, 1.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(cook_torrance(Z, Z, Z, r, c), want, rtol=1e-12, atol=0)
    assert ggx_distribution(torch.tensor(1.0, dtype=DT), torch.tensor(a, dtype=DT)).item() == pytest.approx(
        1 / (math.pi * a * a), rel=1e-12)
    assert smith_ggx_correlated_visibility(torch.tensor(1.0, dtype=DT), torch.tensor(1.0, dtype=DT),
                                           torch.tensor(a, dtype=DT)).item() == pytest.approx(0.25, rel=1e-12)


def test_dielectric_at_normal_incidence_by_hand():
    # metallic 0, ior 1.5: Fd = 0.04, f = 0.96 c / pi + 0.04 / (4 pi alpha^2); roughness 0.5 -> alpha = 1/4.
    c = torch.tensor([0.8, 0.2], dtype=DT)
    f, fd, fs = metallic_roughness(Z, Z, Z, c, 0.5, 0.0, return_parts=True)
    torch.testing.assert_close(fd, 0.96 * c / math.pi, rtol=1e-12, atol=0)
    torch.testing.assert_close(fs, torch.full((2,), 0.04 * 4 / math.pi, dtype=DT), rtol=1e-12, atol=0)
    torch.testing.assert_close(f, fd + fs, rtol=0, atol=0)


def test_off_normal_mirror_configuration_by_hand():
    # wi, wo at 60 degrees on opposite sides: h = n, v.h = 1/2. D = 1 / (pi a^2),
    # V = 0.5 / (2 * 0.5 * sqrt(0.25 (1 - a^2) + a^2)), F = f0 + (1 - f0) / 32.
    r, f0 = 0.6, 0.3
    a = r * r
    wi, wo = _dir(math.pi / 3, 0.0), _dir(math.pi / 3, math.pi)
    want = (1 / (math.pi * a * a)) * (0.5 / math.sqrt(0.25 * (1 - a * a) + a * a)) * (f0 + (1 - f0) / 32)
    assert cook_torrance(Z, wi, wo, r, f0).item() == pytest.approx(want, rel=1e-12)


def test_small_terms_by_hand():
    assert f0_from_ior(1.5).item() == pytest.approx(0.04, rel=1e-6)
    assert f0_from_ior(torch.tensor(1.0, dtype=DT)).item() == 0.0
    assert f0_from_ior(torch.tensor(3.0, dtype=DT)).item() == pytest.approx(0.25, rel=1e-15)
    assert fresnel_schlick(torch.tensor(1.0, dtype=DT), 0.04).item() == pytest.approx(0.04, rel=1e-15)
    assert fresnel_schlick(torch.tensor(0.5, dtype=DT), 0.0).item() == pytest.approx(1 / 32, rel=1e-15)
    torch.testing.assert_close(lambert(Z, Z, Z, torch.tensor([math.pi, 2 * math.pi], dtype=DT)),
                               torch.tensor([1.0, 2.0], dtype=DT), rtol=1e-15, atol=0)


def test_shapes_broadcast_and_dtype_follows():
    H, W = 4, 5
    n = Z.float()
    wi = _unit(torch.rand(H, W, 3, generator=_gen(1)) + torch.tensor([0.0, 0.0, 0.5]))
    wo = torch.tensor([0.0, 0.3, 1.0])
    color = torch.rand(H, W, 3, generator=_gen(2))
    rough = torch.rand(H, W, 1, generator=_gen(3))
    assert lambert(n, wi, wo, color).shape == (H, W, 3)
    assert lambert(n, wi, wo, 0.5).shape == (H, W, 1)
    assert cook_torrance(n, wi, wo, rough, 0.04).shape == (H, W, 1)
    assert cook_torrance(n, wi, wo, 0.5, color).shape == (H, W, 3)
    f, fd, fs = metallic_roughness(n, wi, wo, color, rough, 0.0, return_parts=True)
    assert f.shape == fd.shape == fs.shape == (H, W, 3) and f.dtype == torch.float32
    assert metallic_roughness(n, wi, wo, torch.tensor([0.5, 0.5, 0.5]), rough, torch.zeros(H, W, 1),
                              specular_f0=torch.rand(H, W, 3, generator=_gen(4))).shape == (H, W, 3)
    assert metallic_roughness(n.double(), wi.double(), wo.double(), color.double(), 0.5, 0.5).dtype == DT


def test_unnormalised_directions_are_normalised():
    c = torch.tensor([0.7, 0.3, 0.2], dtype=DT)
    wi, wo = _dir(0.4, 0.2), _dir(0.9, 2.5)
    a = metallic_roughness(Z, wi, wo, c, 0.4, 0.3)
    b = metallic_roughness(3 * Z, 0.5 * wi, 2 * wo, c, 0.4, 0.3)
    torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_lobes_are_products_of_the_public_terms():
    # cook_torrance and metallic_roughness use a fused copy of D, V, F: check it against the public terms.
    n_pts = 64
    wi, wo = _upper(n_pts, 1), _upper(n_pts, 2)
    g = _gen(3)
    rough = torch.rand(n_pts, 1, generator=g, dtype=DT)
    f0 = torch.rand(n_pts, 3, generator=g, dtype=DT)
    metal = torch.rand(n_pts, 1, generator=g, dtype=DT)
    h = _unit(wi + wo)
    a = (rough ** 2).clamp_min(ALPHA_MIN)
    dv = ggx_distribution(h[:, 2:3], a) * smith_ggx_correlated_visibility(wo[:, 2:3], wi[:, 2:3], a)
    vh = (wo * h).sum(-1, keepdim=True)
    torch.testing.assert_close(cook_torrance(Z, wi, wo, rough, f0), dv * fresnel_schlick(vh, f0), rtol=1e-12, atol=0)
    fd = fresnel_schlick(vh, f0_from_ior(torch.tensor(1.7, dtype=DT)))
    want = (1 - metal) * ((1 - fd) * f0 / math.pi + fd * dv) + metal * dv * fresnel_schlick(vh, f0)
    torch.testing.assert_close(metallic_roughness(Z, wi, wo, f0, rough, metal, ior=1.7), want, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------- reciprocity
@pytest.mark.parametrize("name", ["lambert", "cook_torrance", "metallic_roughness", "metallic_roughness_ior"])
def test_reciprocity(name):
    n_pts = 512
    n = _unit(torch.randn(n_pts, 3, generator=_gen(7), dtype=DT))
    wi = _unit(torch.randn(n_pts, 3, generator=_gen(8), dtype=DT))  # about 1/4 of pairs are above the horizon
    wo = _unit(torch.randn(n_pts, 3, generator=_gen(9), dtype=DT))
    f = _brdfs(n_pts)[name]
    a, b = f(n, wi, wo), f(n, wo, wi)
    assert (a > 0).any(dim=-1).sum() > 60 and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------- energy
def _ggx_directional_albedo(fn, theta_o, r, n_grid=100):
    """``E(wo) = integral f(wi, wo) cos(wi) dwi`` by GGX importance sampling on a deterministic stratified grid.

    ``h`` is drawn with density ``D(h) (n.h)`` (inverting its CDF at grid midpoints); ``wi = reflect(wo, h)``
    has density ``D (n.h) / (4 v.h)``. ``fn(n, wi, wo) -> [..., C]``. Returns ``[len(theta_o), C]``.
    """
    a = _alpha(r)
    u = (torch.arange(n_grid, dtype=DT) + 0.5) / n_grid
    u1, u2 = torch.meshgrid(u, u, indexing="ij")
    cos_h = torch.sqrt((1 - u1) / (1 + (a * a - 1) * u1))
    h = _dir(torch.acos(cos_h), 2 * math.pi * u2).reshape(-1, 3)  # [S, 3]
    wo = _dir(torch.as_tensor(theta_o, dtype=DT))[:, None, :]  # [T, 1, 3]
    v_dot_h = (wo * h).sum(-1, keepdim=True)
    wi = 2 * v_dot_h * h - wo  # [T, S, 3]; below-horizon samples carry f = 0
    n_dot_h = h[..., 2:3]
    d = a * a / (math.pi * ((n_dot_h ** 2) * (a * a - 1) + 1) ** 2)  # independent copy of GGX D
    pdf = d * n_dot_h / (4 * v_dot_h.clamp_min(1e-300))
    f = fn(Z, wi, wo.expand_as(wi))
    integrand = torch.where(v_dot_h > 0, f * wi[..., 2:3].clamp_min(0) / pdf, torch.zeros((), dtype=DT))
    return integrand.mean(dim=1)


def _cosine_hemisphere_integral(fn, theta_o, n_theta=128, n_phi=128):
    """``integral f cos dwi`` on a midpoint theta/phi grid (for smooth integrands such as the diffuse lobe)."""
    th = (torch.arange(n_theta, dtype=DT) + 0.5) * (math.pi / 2) / n_theta
    ph = (torch.arange(n_phi, dtype=DT) + 0.5) * (2 * math.pi) / n_phi
    tt, pp = torch.meshgrid(th, ph, indexing="ij")
    wi = _dir(tt, pp).reshape(-1, 3)
    wo = _dir(torch.as_tensor(theta_o, dtype=DT))[:, None, :].expand(-1, wi.shape[0], 3)
    w = (torch.cos(tt) * torch.sin(tt)).reshape(-1, 1) * (math.pi / 2 / n_theta) * (2 * math.pi / n_phi)
    return (fn(Z, wi.expand_as(wo), wo) * w).sum(dim=1)


THETA_O = [0.0, 0.3, 0.6, 0.9, 1.2, 1.4, 1.5, 1.55]


def test_lambert_white_furnace_is_one():
    e = _cosine_hemisphere_integral(lambda n, wi, wo: lambert(n, wi, wo, torch.ones(1, dtype=DT)), THETA_O)
    # Midpoint rule on 128 x 128 (theta, phi) cells: the error is O(h^2) ~ 2.5e-5.
    torch.testing.assert_close(e, torch.ones_like(e), rtol=0, atol=5e-5)


@pytest.mark.parametrize("r", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_ggx_distribution_is_normalised(r):
    # integral over the hemisphere of D(h) (n.h) dw_h = 2 pi * integral_0^1 D(x) x dx, x = cos(theta_h).
    # D peaks at x = 1 with width ~alpha^2, so integrate in s = log(1 - x) (dx = -(1 - x) ds); trapezoid rule.
    s = torch.linspace(math.log(1e-18), 0.0, 20_001, dtype=DT)
    y = torch.exp(s)
    x = 1 - y
    d = ggx_distribution(x, torch.tensor(_alpha(r), dtype=DT))
    total = 2 * math.pi * torch.trapezoid(d * x * y, s)
    assert abs(total.item() - 1) < 1e-5, total.item()  # the brief asks 1e-3; the quadrature gives ~1e-6


@pytest.mark.parametrize("r", [0.05, 0.3, 0.7, 1.0])
def test_cook_torrance_energy_conservation(r):
    # f0 = 1 is the worst case: nothing is absorbed, single scattering can only lose energy.
    e = _ggx_directional_albedo(lambda n, wi, wo: cook_torrance(n, wi, wo, r, 1.0), THETA_O, r)[:, 0]
    assert torch.isfinite(e).all()
    assert (e <= 1 + 5e-3).all(), e
    assert (e > 0.2).all(), e


def test_ggx_white_furnace_loses_energy_with_roughness():
    # F = 1 at normal incidence: E = 1 - (energy lost to single scattering), which grows with roughness.
    rs = [0.1, 0.3, 0.5, 0.7, 1.0]
    e = [_ggx_directional_albedo(lambda n, wi, wo, r=r: cook_torrance(n, wi, wo, r, 1.0), [0.0], r).item()
         for r in rs]
    assert e[0] > 0.99, e
    assert all(a > b for a, b in zip(e, e[1:])), e
    # Roughness 1 (alpha = 1) has a closed form: D = 1 / pi, V = 0.5 / (n.l + 1) at n.v = 1, so
    # E = 2 pi * integral_0^1 x / (2 pi (1 + x)) dx = 1 - ln 2.
    assert e[-1] == pytest.approx(1 - math.log(2), abs=1e-3), e


def _metallic_roughness_albedo(r, metallic, theta_o):
    # White base colour: the diffuse part (smooth) on a theta/phi grid, the specular part by GGX sampling.
    one = torch.ones(1, dtype=DT)

    def part(k):
        return lambda n, wi, wo: metallic_roughness(n, wi, wo, one, r, metallic, return_parts=True)[k]

    return (_cosine_hemisphere_integral(part(1), theta_o, 64, 64) + _ggx_directional_albedo(part(2), theta_o, r))[:, 0]


@pytest.mark.parametrize("r", [0.05, 0.3, 1.0])
def test_metallic_roughness_energy_conservation(r):
    # A white metal conserves energy at every angle (it is cook_torrance with f0 = 1).
    e = _metallic_roughness_albedo(r, 1.0, [0.0, 0.9, 1.4, 1.55])
    assert torch.isfinite(e).all() and (e <= 1 + 5e-3).all(), e
    # Dielectric and half-metal: conserved up to ~35 degrees from the normal (1.006 at 52 degrees) ...
    for metallic in (0.0, 0.5):
        e = _metallic_roughness_albedo(r, metallic, [0.0, 0.3, 0.6])
        assert torch.isfinite(e).all() and (e <= 1 + 5e-3).all(), (metallic, e)


def test_gltf_dielectric_gains_energy_at_grazing_angles():
    # ... but not beyond: glTF's fresnel_mix weights the diffuse lobe by 1 - F(v.h) per light direction, which
    # is ~0.96 for most wi, while the specular lobe's F -> 1 at grazing view. The sum then exceeds 1 (about 1.8
    # for roughness 0.05 at 89 degrees). This is the spec's model, kept as is; this test records the fact so
    # that adding energy compensation later is a conscious change.
    e = _metallic_roughness_albedo(0.05, 0.0, [0.0, 1.55])
    assert e[0] <= 1 + 5e-3 and e[1] > 1.5, e


# --------------------------------------------------------------------------------------------- gradients
def _tiny_inputs():
    g = _gen(21)
    n = _unit(torch.tensor([[0.1, -0.1, 1.0], [0.0, 0.2, 0.9], [-0.2, 0.1, 1.0]], dtype=DT))
    wi = _unit(torch.tensor([[0.5, 0.2, 0.8], [-0.3, 0.4, 0.7], [0.1, -0.6, 0.6]], dtype=DT))
    wo = _unit(torch.tensor([[-0.2, 0.3, 0.9], [0.4, 0.1, 0.8], [0.3, 0.3, 0.7]], dtype=DT))
    color = 0.2 + 0.6 * torch.rand(3, 3, generator=g, dtype=DT)
    rough = 0.3 + 0.4 * torch.rand(3, 1, generator=g, dtype=DT)
    metal = 0.2 + 0.6 * torch.rand(3, 1, generator=g, dtype=DT)
    ior = 1.3 + 0.4 * torch.rand(3, 1, generator=g, dtype=DT)
    spec = 0.02 + 0.1 * torch.rand(3, 3, generator=g, dtype=DT)
    return [t.requires_grad_() for t in (n, wi, wo, color, rough, metal, ior, spec)]


def test_gradcheck_brdfs():
    n, wi, wo, color, rough, metal, ior, spec = _tiny_inputs()
    assert torch.autograd.gradcheck(lambda *a: lambert(*a), (n, wi, wo, color))
    assert torch.autograd.gradcheck(lambda *a: cook_torrance(*a), (n, wi, wo, rough, color))
    assert torch.autograd.gradcheck(lambda *a: metallic_roughness(*a[:6], ior=a[6]),
                                    (n, wi, wo, color, rough, metal, ior))
    assert torch.autograd.gradcheck(lambda *a: metallic_roughness(*a[:6], specular_f0=a[6]),
                                    (n, wi, wo, color, rough, metal, spec))
    assert torch.autograd.gradcheck(lambda *a: torch.cat(metallic_roughness(*a, return_parts=True), -1),
                                    (n, wi, wo, color, rough, metal))


def test_gradcheck_terms():
    g = _gen(5)
    cos1 = (0.2 + 0.7 * torch.rand(4, generator=g, dtype=DT)).requires_grad_()
    cos2 = (0.2 + 0.7 * torch.rand(4, generator=g, dtype=DT)).requires_grad_()
    alpha = (0.1 + 0.8 * torch.rand(4, generator=g, dtype=DT)).requires_grad_()
    f0 = (0.1 + 0.8 * torch.rand(4, generator=g, dtype=DT)).requires_grad_()
    ior = (1.1 + torch.rand(4, generator=g, dtype=DT)).requires_grad_()
    assert torch.autograd.gradcheck(ggx_distribution, (cos1, alpha))
    assert torch.autograd.gradcheck(smith_ggx_correlated_visibility, (cos1, cos2, alpha))
    assert torch.autograd.gradcheck(fresnel_schlick, (cos1, f0))
    assert torch.autograd.gradcheck(f0_from_ior, (ior,))


def test_lambert_gradient_is_one_over_pi():
    albedo = torch.tensor([0.3, 0.6], dtype=DT, requires_grad=True)
    lambert(Z, _dir(0.3), _dir(1.0), albedo).sum().backward()
    torch.testing.assert_close(albedo.grad, torch.full((2,), 1 / math.pi, dtype=DT), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------------------------- robustness
def _all_grads(dtype, n, wi, wo, rough, metal):
    n, wi, wo = (t.to(dtype).clone().requires_grad_() for t in (n, wi, wo))
    color = torch.tensor([0.9, 0.5, 0.2], dtype=dtype, requires_grad=True)
    rough = torch.as_tensor(rough, dtype=dtype).reshape(-1, 1).clone().requires_grad_()
    metal = torch.as_tensor(metal, dtype=dtype).reshape(-1, 1).clone().requires_grad_()
    ior = torch.tensor([1.5], dtype=dtype, requires_grad=True)
    outs = [metallic_roughness(n, wi, wo, color, rough, metal, ior=ior), cook_torrance(n, wi, wo, rough, color),
            lambert(n, wi, wo, color)]
    ins = (n, wi, wo, color, rough, metal, ior)
    grads = torch.autograd.grad(sum(o.sum() for o in outs), ins, allow_unused=True)
    return outs, [torch.zeros_like(x) if gr is None else gr for x, gr in zip(ins, grads)]


@pytest.mark.parametrize("dtype", [torch.float32, DT])
@pytest.mark.parametrize("r", [0.0, 1.0])
def test_extreme_roughness_and_grazing_are_finite(dtype, r):
    # Mirror configurations (the roughness-0 peak), generic ones and grazing ones (n.v -> 0).
    wi = torch.stack([Z, _dir(0.5, 0.0), _dir(1.2, 0.3), _dir(math.pi / 2 - 1e-7, 0.0), _dir(math.pi / 2 - 1e-3, 1.0),
                      _dir(math.pi / 2 - 1e-7, 0.0), _dir(0.2, 0.0)])
    wo = torch.stack([Z, _dir(0.5, math.pi), _dir(0.4, 2.0), _dir(math.pi / 2 - 1e-7, math.pi),
                      _dir(math.pi / 2 - 1e-6, 2.0), _dir(math.pi / 2 - 1e-7, 0.5), _dir(math.pi / 2 - 1e-9, 0.0)])
    n = Z.expand_as(wi)
    outs, grads = _all_grads(dtype, n, wi, wo, [r] * 7, [0.5] * 7)
    for o in outs:
        assert torch.isfinite(o).all() and (o >= 0).all()
    for gr in grads:
        assert torch.isfinite(gr).all()
    assert (outs[1][0] > 0).all()  # the mirror peak is positive, not underflowed


def test_roughness_gradient_vanishes_below_the_alpha_clamp_only():
    wi, wo = _dir(0.3, 0.0), _dir(0.35, math.pi)
    for r, zero in [(0.0, True), (0.02, True), (0.05, False), (1.0, False)]:
        rough = torch.tensor([r], dtype=DT, requires_grad=True)
        cook_torrance(Z, wi, wo, rough, 1.0).sum().backward()
        assert torch.isfinite(rough.grad).all()
        assert (rough.grad.item() == 0) == zero, (r, rough.grad)


@pytest.mark.parametrize("dtype", [torch.float32, DT])
def test_below_horizon_is_exactly_zero_with_zero_gradients(dtype):
    up, down = _dir(0.4, 0.0), _dir(2.0, 1.0)
    horizon = torch.tensor([1.0, 0.0, 0.0], dtype=DT)
    wi = torch.stack([down, up, down, horizon, up, -up])
    wo = torch.stack([up, down, down, up, horizon, up])  # the last pair makes wi + wo = 0 (no half vector)
    n = Z.expand_as(wi)
    for r in (0.0, 0.5, 1.0):
        outs, grads = _all_grads(dtype, n, wi, wo, [r] * 6, [0.3] * 6)
        for o in outs:
            assert torch.equal(o, torch.zeros_like(o))
        for gr in grads:
            assert torch.equal(gr, torch.zeros_like(gr)), gr


# --------------------------------------------------------------------------------------------- bad input
def _call(**kw):
    args = dict(n=Z, wi=_dir(0.3), wo=_dir(0.5, 2.0), base_color=torch.tensor([0.5, 0.5, 0.5], dtype=DT),
                roughness=0.5, metallic=0.5)
    args.update(kw)
    return metallic_roughness(**args)


@pytest.mark.parametrize("kw, err, match", [
    (dict(metallic=1.5), ValueError, r"metallic must be in \[0.0, 1.0\]; got max 1.5"),
    (dict(metallic=torch.tensor([[0.5], [-0.1]], dtype=DT)), ValueError, "metallic must be in"),
    (dict(roughness=-0.1), ValueError, r"roughness must be in \[0.0, 1.0\]; got min -0.1"),
    (dict(roughness=torch.tensor([1.2], dtype=DT)), ValueError, "roughness must be in"),
    (dict(roughness=torch.full((4, 3), 0.5, dtype=DT)), ValueError, r"roughness must have shape \[..., 1\]"),
    (dict(base_color=torch.tensor([1.5, 0.5], dtype=DT)), ValueError, "base_color must be in"),
    (dict(ior=0.0), ValueError, "ior must be > 0"),
    (dict(specular_f0=torch.tensor([2.0], dtype=DT)), ValueError, "specular_f0 must be in"),
    (dict(n=torch.zeros(3, dtype=DT)), ValueError, "n must have non-zero length"),
    (dict(wi=torch.zeros(2, 3, dtype=DT)), ValueError, "wi must have non-zero length"),
    (dict(n=torch.ones(4, 2, dtype=DT)), ValueError, r"n must have shape \[..., 3\]; got \(4, 2\)"),
    (dict(wo=torch.ones(4, dtype=DT)), ValueError, r"wo must have shape \[..., 3\]"),
    (dict(wo=torch.tensor([0.0, float("nan"), 1.0], dtype=DT)), ValueError, "wo contains NaN"),
    (dict(wi=torch.ones(4, 3, dtype=DT), wo=torch.ones(5, 3, dtype=DT)), ValueError, "wo has shape"),
    (dict(base_color=torch.ones(5, 3, dtype=DT), wi=torch.ones(4, 3, dtype=DT)), ValueError, "base_color has shape"),
    (dict(n=[0.0, 0.0, 1.0]), TypeError, "n must be a torch.Tensor"),
    (dict(wi=torch.tensor([0, 0, 1])), TypeError, "wi must have a floating dtype"),
    (dict(metallic="0.5"), TypeError, "metallic must be a torch.Tensor"),
    (dict(roughness=True), TypeError, "roughness must be a number"),
])
def test_bad_input(kw, err, match):
    with pytest.raises(err, match=match):
        _call(**kw)


def test_bad_input_other_functions():
    with pytest.raises(ValueError, match="roughness must be in"):
        cook_torrance(Z, Z, Z, 1.01, 0.04)
    with pytest.raises(ValueError, match="f0 must be in"):
        cook_torrance(Z, Z, Z, 0.5, -0.5)
    with pytest.raises(ValueError, match="n must have non-zero length"):
        lambert(torch.zeros(2, 3), torch.ones(2, 3), torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="albedo has shape"):
        lambert(Z, Z.expand(4, 3), Z, torch.ones(5, 3, dtype=DT))
    with pytest.raises(ValueError, match="alpha must be in"):
        ggx_distribution(torch.tensor(0.5), torch.tensor(2.0))
    with pytest.raises(ValueError, match="ior must be > 0"):
        f0_from_ior(torch.tensor([1.5, -1.0]))
    with pytest.raises(ValueError, match="f0 must be in"):
        fresnel_schlick(torch.tensor(0.5), 1.5)



def _gltf_brdf_exact(n, wi, wo, c, roughness, metallic, mpmath):
    """The glTF metallic-roughness BRDF (ior 1.5) of the float64 inputs, evaluated at ``mpmath``'s precision."""
    mpf = mpmath.mpf

    def unit(a):
        a = [mpf(float(x)) for x in a]
        s = mpmath.sqrt(sum(x * x for x in a))
        return [x / s for x in a]

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    n, l, v = unit(n), unit(wi), unit(wo)
    h = unit([x + y for x, y in zip(l, v)])
    nl, nv, nh, vh = dot(n, l), dot(n, v), dot(n, h), dot(v, h)
    a2 = max(mpf(roughness) ** 2, mpf(ALPHA_MIN)) ** 2
    dist = a2 / (mpmath.pi * ((1 - nh * nh) + nh * nh * a2) ** 2)
    vis = mpf(0.5) / (nl * mpmath.sqrt(nv * nv * (1 - a2) + a2) + nv * mpmath.sqrt(nl * nl * (1 - a2) + a2))
    m5 = (1 - vh) ** 5
    fd = mpf(0.04) + (1 - mpf(0.04)) * m5
    met = mpf(metallic)
    return [float((1 - met) * ((1 - fd) * mpf(cc) / mpmath.pi + fd * dist * vis)
                  + met * dist * vis * (mpf(cc) + (1 - mpf(cc)) * m5)) for cc in c]


def test_sharp_highlight_values_keep_their_digits():
    """Near a sharp highlight (alpha = ALPHA_MIN, the light 0 to 1e-2 radians off the mirror direction) the BRDF
    agrees with a 50-digit evaluation of the same float64 inputs to 1e-12 relative. ``1 - (n.h)^2`` formed from
    ``n.h`` was off by up to ~1e-9 there (cancellation); ``|n x (wi + wo)|^2 / |wi + wo|^2`` keeps its digits."""
    mpmath = pytest.importorskip("mpmath")
    g = _gen(7)
    c = [0.8, 0.5, 0.2]
    worst = 0.0
    with mpmath.workdps(50):
        for _ in range(3):
            n = _unit(torch.randn(3, generator=g, dtype=DT))
            v = _unit(n + 0.6 * torch.randn(3, generator=g, dtype=DT))
            mirror = 2 * (n @ v) * n - v
            side = _unit(torch.linalg.cross(mirror, torch.randn(3, generator=g, dtype=DT)))
            for angle in (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
                wi = (mirror * math.cos(angle) + side * math.sin(angle)) * 0.9  # not unit: normalised inside
                for metallic in (0.0, 1.0):
                    f = metallic_roughness(n, wi, 1.7 * v, torch.tensor(c, dtype=DT), 0.01, metallic)
                    exact = torch.tensor(_gltf_brdf_exact(n, wi, 1.7 * v, c, 0.01, metallic, mpmath), dtype=DT)
                    worst = max(worst, float(((f - exact).abs() / exact).max()))
    assert worst < 1e-12, worst


def test_float32_gbuffer_lit_by_float64_lights_promotes_as_the_dot_products_do():
    """A float32 G-buffer with a light given in float64: the result is float64 and equals the all-float64 one
    (the cross product of the GGX form needs one dtype; it promotes like the dot products around it)."""
    from lumigrad.shading import directional_light, point_light, shade_direct

    pos = torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.0]])
    nrm = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.6, 0.8]])
    cam = torch.tensor([0.0, 0.3, 2.0])
    mat = {"base_color": torch.full((2, 3), 0.5), "roughness": torch.full((2, 1), 0.3),
           "metallic": torch.tensor([[0.0], [1.0]])}
    f64 = torch.float64
    for make in (lambda p: directional_light(p, torch.tensor([0.1, 0.0, -1.0], dtype=f64), torch.ones(3, dtype=f64)),
                 lambda p: point_light(p, torch.tensor([0.5, 0.0, 2.0], dtype=f64), torch.ones(3, dtype=f64))):
        mixed = shade_direct(pos, nrm, cam, mat, [make(pos)])
        double = shade_direct(pos.double(), nrm.double(), cam.double(), {k: v.double() for k, v in mat.items()},
                              [make(pos.double())])
        assert mixed.dtype == f64 and torch.isfinite(mixed).all() and float(mixed.abs().sum()) > 0
        torch.testing.assert_close(mixed, double, rtol=1e-6, atol=1e-7)
