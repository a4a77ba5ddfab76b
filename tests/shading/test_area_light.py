"""Area lights: quadrature points, convergence to Lambert's polygon formula, shade_direct vs brute force,
one- and two-sided emission, gradcheck, zero-area faces and bad input."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.shading import shade_direct
from lumigrad.shading.area_light import area_light, area_light_samples, polygon_irradiance
from lumigrad.shading.brdf import metallic_roughness
from lumigrad.shading.lights import point_light

DT = torch.float64
Z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)


def _t(*v, grad=False):
    return torch.tensor(v, dtype=DT, requires_grad=grad)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _square(size=1.0, height=1.0):
    """A ``size``-wide square lamp (2 triangles) centred above the origin at ``z = height``, facing down (-z).

    Returns ``(verts [4, 3], faces [2, 3])``; ``verts`` in order is the polygon, counter-clockwise from below.
    """
    h = size / 2
    verts = torch.tensor([[-h, -h, height], [-h, h, height], [h, h, height], [h, -h, height]], dtype=DT)
    return verts, torch.tensor([[0, 1, 2], [0, 2, 3]])


def _irradiance(samples, normal):
    """``sum_k L_k max(n . wi_k, 0)``: what a Lambertian receiver integrates."""
    return sum(s.L * (s.wi * normal).sum(-1, keepdim=True).clamp_min(0) for s in samples)


def _rotation(axis, angle):
    k = torch.nn.functional.normalize(torch.tensor(axis, dtype=DT), dim=0)
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=DT)
    return torch.eye(3, dtype=DT) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


# ------------------------------------------------------------------------------------------- sample points


@pytest.mark.parametrize("S", [1, 4, 9, 16, 64])
def test_samples_areas_points_and_centroids(S):
    verts = torch.randn(5, 3, generator=_gen(S), dtype=DT)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    p = area_light_samples(verts, faces, samples_per_face=S)
    F = faces.shape[0]
    assert p.points.shape == (F * S, 3) and p.normals.shape == (F * S, 3) and p.areas.shape == (F * S,)
    tri = verts[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    cross = torch.linalg.cross(e1, e2, dim=-1)
    area = cross.norm(dim=-1) / 2
    # weights: face area / S, summing to the mesh area; normals: the unit front normal
    torch.testing.assert_close(p.areas, area.repeat_interleave(S) / S)
    torch.testing.assert_close(p.areas.sum(), area.sum())
    torch.testing.assert_close(p.normals, torch.nn.functional.normalize(cross, dim=-1).repeat_interleave(S, 0))
    # points lie inside their triangle: barycentrics from a least-squares solve are in (0, 1)
    A = torch.stack([e1, e2], -1).repeat_interleave(S, 0)  # [F*S, 3, 2]
    rhs = p.points - tri[:, 0].repeat_interleave(S, 0)
    uv = torch.linalg.lstsq(A, rhs[..., None]).solution[..., 0]
    torch.testing.assert_close(A @ uv[..., None], rhs[..., None], rtol=0, atol=1e-12)  # in the plane
    assert bool((uv > 0).all()) and bool((uv.sum(-1) < 1).all())
    # distinct points, and exact for linear functions: each face's mean point is its centroid
    assert torch.cdist(p.points, p.points).add(torch.eye(F * S, dtype=DT)).min() > 1e-6
    torch.testing.assert_close(p.points.reshape(F, S, 3).mean(1), tri.mean(1), rtol=0, atol=1e-14)
    a, b = torch.randn(3, generator=_gen(9), dtype=DT), 0.7
    torch.testing.assert_close((p.areas * (p.points @ a + b)).sum(), (area * (tri.mean(1) @ a + b)).sum())


def test_samples_are_stratified_over_the_sub_triangles():
    # With S = n^2 the unit right triangle splits into n^2 congruent cells of side 1/n: one point in each.
    verts = _t([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]).reshape(3, 3)
    p = area_light_samples(verts, torch.tensor([[0, 1, 2]]), samples_per_face=16)
    u, v = p.points[:, 0] * 4, p.points[:, 1] * 4
    cells = set(zip(u.floor().long().tolist(), v.floor().long().tolist(),
                    ((u - u.floor()) + (v - v.floor()) > 1).tolist()))
    assert len(cells) == 16


# -------------------------------------------------------------------------------- convergence to Lambert


def test_converges_to_polygon_irradiance():
    # errors measured: height = size: 1.9e-1, 3.3e-2, 8.0e-3, 2.0e-3 (S = 1, 4, 16, 64);
    # height = 2 size: 5.3e-2, 1.2e-2, 3.0e-3, 7.4e-4: the composite centroid rule's O(1 / S).
    radiance = _t(1.0, 0.5)
    x = _t([0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [0.6, 0.5, -0.2]).reshape(3, 3)
    normal = torch.nn.functional.normalize(_t([0.0, 0.0, 1.0], [0.2, 0.1, 1.0], [-0.4, -0.3, 1.0]).reshape(3, 3),
                                           dim=-1)
    for height, limit in ((1.0, 2.5e-3), (2.0, 1e-3)):
        verts, faces = _square(1.0, height)
        exact = polygon_irradiance(x, normal, verts, radiance)
        errors = []
        for S in (1, 4, 16, 64):
            E = _irradiance(area_light(x, verts, faces, radiance, samples_per_face=S), normal)
            errors.append(float(((E - exact).abs() / exact).max()))
        assert all(b < a / 3 for a, b in zip(errors, errors[1:])), errors
        assert errors[-1] < limit, (height, errors)


def test_far_lamp_is_a_point_light_of_intensity_radiance_area_cos():
    # A 0.2-wide lamp tilted 0.6 rad away from x, 20 away: I = L_e A cos(theta_y), E_perp = I / d^2.
    R = _rotation([1.0, 0.3, 0.0], 0.6)
    verts, faces = _square(0.2, 0.0)
    centre = _t(0.5, -1.0, 20.0)
    verts = verts @ R.T + centre
    x = _t([0.0, 0.0, 0.0], [0.3, 0.2, -0.5]).reshape(2, 3)
    radiance = _t(3.0, 1.0, 0.25)
    samples = area_light(x, verts, faces, radiance, samples_per_face=4)
    n_y = -R[:, 2]
    cos_y = ((x - centre) * n_y).sum(-1) / (x - centre).norm(dim=-1)
    point = point_light(x, centre, radiance * 0.04 * cos_y[:, None])
    total = sum(s.L for s in samples)
    torch.testing.assert_close(total, point.L, rtol=1e-4, atol=0)
    for s in samples:
        assert float((s.wi - point.wi).norm(dim=-1).max()) < 0.01


def test_polygon_irradiance_matches_the_disc_formula_for_a_fine_polygon():
    # A regular 256-gon of radius r at height h above x: E = pi L r^2 / (h^2 + r^2) (an on-axis disc).
    r, h, K = 0.7, 0.5, 256
    t = torch.arange(K, dtype=DT) * (-2 * math.pi / K)  # clockwise from above: facing down
    poly = torch.stack([r * torch.cos(t), r * torch.sin(t), torch.full_like(t, h)], -1)
    E = polygon_irradiance(torch.zeros(3, dtype=DT), Z, poly, _t(2.0))
    disc = math.pi * 2.0 * r * r / (h * h + r * r)
    assert float(E) == pytest.approx(disc, rel=2e-4)  # a 256-gon's area is 1e-4 below the disc's


# ----------------------------------------------------------------------------------- through shade_direct


def test_shade_direct_matches_a_brute_force_integral():
    # Tilted 0.8-wide lamp ~1.4 away, white rough dielectric: shade_direct(area_light) against a 160 x 160
    # midpoint rule of f L_e cos_x cos_y / d^2 over the lamp (square parametrisation, independent of the
    # triangle quadrature).
    R = _rotation([0.2, 1.0, 0.0], 0.4)
    size, centre = 0.8, _t(0.1, 0.2, 1.4)
    verts, faces = _square(size, 0.0)
    verts = verts @ R.T + centre
    position = _t([0.0, 0.0, 0.0], [0.3, -0.2, 0.05], [-0.4, 0.3, 0.1]).reshape(3, 3)
    normal = torch.nn.functional.normalize(_t([0.0, 0.0, 1.0], [0.3, 0.1, 1.0], [-0.2, 0.4, 1.0]).reshape(3, 3),
                                           dim=-1)
    cam = _t(0.5, -0.3, 2.0)
    material = {"base_color": torch.ones(3, 3, dtype=DT), "roughness": torch.ones(3, 1, dtype=DT),
                "metallic": torch.zeros(3, 1, dtype=DT)}
    radiance = _t(1.0, 2.0, 0.5)
    ours = shade_direct(position, normal, cam, material, area_light(position, verts, faces, radiance,
                                                                    samples_per_face=64))
    M = 160
    s = (torch.arange(M, dtype=DT) + 0.5) / M - 0.5
    grid = torch.stack(torch.meshgrid(s * size, s * size, indexing="ij"), -1).reshape(-1, 2)
    y = torch.cat([grid, torch.zeros(M * M, 1, dtype=DT)], -1) @ R.T + centre  # [M*M, 3]
    n_y = -R[:, 2]
    v = y[None] - position[:, None]  # [P, M*M, 3]
    d = v.norm(dim=-1, keepdim=True)
    wi = v / d
    f = metallic_roughness(normal[:, None].expand_as(wi), wi, (cam - position)[:, None].expand_as(wi),
                           material["base_color"][:, None], 1.0, 0.0)
    cos_x = (wi * normal[:, None]).sum(-1, keepdim=True).clamp_min(0)
    cos_y = -(wi * n_y).sum(-1, keepdim=True)
    assert bool((cos_y > 0).all())
    brute = (f * radiance * cos_x * cos_y / d**2).sum(1) * (size / M) ** 2
    torch.testing.assert_close(ours, brute, rtol=2e-3, atol=0)


def test_gradients_converge_to_those_of_the_exact_irradiance():
    # d E / d verts of the quadrature (S = 64) against autograd through Lambert's formula.
    verts, faces = _square(1.0, 1.5)
    verts = (verts + 0.05 * torch.randn(4, 3, generator=_gen(7), dtype=DT)).requires_grad_(True)
    x = _t([0.1, 0.0, 0.0], [0.4, -0.3, 0.2]).reshape(2, 3)
    normal = torch.nn.functional.normalize(_t([0.0, 0.1, 1.0], [0.2, 0.0, 1.0]).reshape(2, 3), dim=-1)
    radiance = _t(1.0)
    # the perturbed quad is not planar: the reference is the sum over its two triangles
    exact = sum(polygon_irradiance(x, normal, verts[f], radiance) for f in faces)
    (g_exact,) = torch.autograd.grad(exact.sum(), verts)
    E = _irradiance(area_light(x, verts, faces, radiance, samples_per_face=64), normal)
    (g,) = torch.autograd.grad(E.sum(), verts)
    torch.testing.assert_close(E, exact.detach(), rtol=3e-3, atol=0)
    assert float(torch.nn.functional.cosine_similarity(g.flatten(), g_exact.flatten(), dim=0)) > 0.9999
    assert float((g - g_exact).norm() / g_exact.norm()) < 1e-2


# ------------------------------------------------------------------------------------- one and two sided


def test_back_facing_lamp_is_dark_and_two_sided_mirrors():
    verts, faces = _square(1.0, 1.0)
    x = _t([0.1, 0.2, 0.0], [-0.3, 0.1, 0.3]).reshape(2, 3)
    normal = torch.nn.functional.normalize(_t([0.0, 0.1, 1.0], [0.2, -0.1, 1.0]).reshape(2, 3), dim=-1)
    radiance = _t(1.0, 3.0)
    front = _irradiance(area_light(x, verts, faces, radiance), normal)
    assert bool((front > 0).all())
    flipped = faces[:, [0, 2, 1]]
    for s in area_light(x, verts, flipped, radiance):
        assert torch.equal(s.L, torch.zeros_like(s.L))
    torch.testing.assert_close(_irradiance(area_light(x, verts, flipped, radiance, two_sided=True), normal), front)
    assert float(polygon_irradiance(x, normal, verts.flip(0), radiance).abs().max()) == 0.0
    # the mirror image of each point (and normal) through the lamp plane z = 1
    mirror = torch.tensor([1.0, 1.0, -1.0], dtype=DT)
    x_m, n_m = x * mirror + _t(0.0, 0.0, 2.0), normal * mirror
    for s in area_light(x_m, verts, faces, radiance):
        assert torch.equal(s.L, torch.zeros_like(s.L))
    both = _irradiance(area_light(x_m, verts, faces, radiance, two_sided=True), n_m)
    torch.testing.assert_close(both, front)
    torch.testing.assert_close(polygon_irradiance(x_m, n_m, verts, radiance, two_sided=True),
                               polygon_irradiance(x, normal, verts, radiance))


def test_per_face_radiance_and_batch_dims():
    verts, faces = _square(1.0, 1.0)
    x = torch.randn(2, 3, 4, 3, generator=_gen(3), dtype=DT) * 0.2
    per_face = _t([1.0, 0.0], [0.0, 2.0]).reshape(2, 2)
    samples = area_light(x, verts, faces, per_face, samples_per_face=4)
    assert len(samples) == 8
    for k, s in enumerate(samples):
        assert s.wi.shape == (2, 3, 4, 3) and s.L.shape == (2, 3, 4, 2) and s.distance.shape == (2, 3, 4)
        assert float(s.L[..., 1 - k // 4].abs().max()) == 0.0  # face 0 emits channel 0 only, face 1 channel 1
    one = area_light(x[1, 2, 3], verts, faces, per_face, samples_per_face=4)
    for a, b in zip(samples, one):
        torch.testing.assert_close(a.L[1, 2, 3], b.L)
        torch.testing.assert_close(a.distance[1, 2, 3], b.distance)


# ---------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("S", [1, 4])
def test_gradcheck(S):
    verts, faces = _square(1.0, 1.0)
    verts = (verts + 0.05 * torch.randn(4, 3, generator=_gen(S), dtype=DT)).requires_grad_(True)
    x = _t([0.0, 0.1, 0.0], [0.4, -0.3, 0.2], [-0.2, 0.5, -0.3]).reshape(3, 3).requires_grad_(True)
    radiance = _t(1.0, 0.5, grad=True)
    flat = lambda x, v, r, **kw: tuple(t for s in area_light(x, v, faces, r, samples_per_face=S, **kw)  # noqa: E731
                                       for t in s)
    assert gradcheck(flat, (x, verts, radiance))
    assert gradcheck(lambda x, v, r: flat(x, v, r, two_sided=True), (x, verts, radiance))
    assert gradcheck(lambda v: tuple(area_light_samples(v, faces, samples_per_face=S)), (verts,))


def test_gradcheck_polygon_irradiance():
    verts, _ = _square(1.0, 1.0)
    poly = verts.clone().requires_grad_(True)
    x = _t([0.0, 0.1, 0.0], [0.4, -0.3, 0.2]).reshape(2, 3).requires_grad_(True)
    normal = _t([0.1, 0.0, 1.0], [0.0, -0.2, 0.9]).reshape(2, 3).requires_grad_(True)
    radiance = _t(1.0, 0.5, grad=True)
    assert gradcheck(polygon_irradiance, (x, normal, poly, radiance))


def test_zero_area_faces_contribute_nothing_with_finite_gradients():
    verts, faces = _square(1.0, 1.0)
    verts = torch.cat([verts, _t(0.25, 0.25, 1.0)[None]]).requires_grad_(True)
    # a collinear triangle (exactly, in floating point) and one with a repeated vertex
    faces = torch.cat([faces, torch.tensor([[0, 4, 2], [1, 1, 3]])])
    x = _t([0.0, 0.1, 0.0], [0.3, 0.2, 0.4]).reshape(2, 3)
    radiance = _t(1.0)
    samples = area_light(x, verts, faces, radiance, samples_per_face=4)
    for s in samples[8:]:
        assert torch.equal(s.L, torch.zeros_like(s.L))
    p = area_light_samples(verts, faces, samples_per_face=4)
    assert torch.equal(p.areas[8:], torch.zeros(8, dtype=DT))
    assert torch.equal(p.normals[8:], torch.zeros(8, 3, dtype=DT))
    loss = _irradiance(samples, Z).sum() + p.normals.sum() + p.areas.sum() + p.points.sum()
    (g,) = torch.autograd.grad(loss, verts)
    assert bool(torch.isfinite(g).all())
    ref = area_light(x, verts.detach()[:4], faces[:2], radiance, samples_per_face=4)
    torch.testing.assert_close(_irradiance(samples, Z), _irradiance(ref, Z))


# ---------------------------------------------------------------------------------------------- bad input

V4, F2 = _square()
X = torch.zeros(2, 3, dtype=DT)
ONE = _t(1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: area_light(X, V4, F2, _t(1.0, -0.5)), "radiance must be non-negative"),
    (lambda: area_light(X, V4, F2, _t(1.0, float("inf"))), "radiance contains NaN or Inf"),
    (lambda: area_light(X, V4, F2, torch.ones(3, 3, dtype=DT)), r"radiance must have shape \[C\] or \[F, C\]"),
    (lambda: area_light(X, V4, F2, torch.ones(2, 2, 3, dtype=DT)), r"radiance must have shape \[C\] or \[F, C\]"),
    (lambda: area_light(X, V4, F2, torch.tensor(1.0, dtype=DT)), r"radiance must have shape \[C\] or \[F, C\]"),
    (lambda: area_light(X, V4[:, :2], F2, ONE), r"verts must have shape \[\?, 3\]"),
    (lambda: area_light(X, V4[None], F2, ONE), "verts must have shape"),
    (lambda: area_light(X, V4, torch.ones(2, 4, dtype=torch.long), ONE), "faces must have shape"),
    (lambda: area_light(X, V4, F2[:0], ONE), "faces is empty"),
    (lambda: area_light(X, V4, F2 + 2, ONE), "faces holds index 5"),
    (lambda: area_light(X, V4, -F2, ONE), "faces holds index -3"),
    (lambda: area_light(X, torch.cat([V4[:3], _t([float("nan"), 0.0, 1.0])]), F2, ONE), "verts contains NaN"),
    (lambda: area_light(X[:, :2], V4, F2, ONE), r"x must have shape \[\.\.\., 3\]"),
    (lambda: area_light(X + float("nan"), V4, F2, ONE), "x contains NaN"),
    (lambda: area_light(X, V4, F2, ONE, samples_per_face=2), "samples_per_face must be a perfect square"),
    (lambda: area_light(X, V4, F2, ONE, samples_per_face=8), "samples_per_face must be a perfect square"),
    (lambda: area_light(X, V4, F2, ONE, samples_per_face=0), "samples_per_face must be positive"),
    (lambda: area_light(X, V4, F2, ONE, min_distance=0.0), "min_distance"),
    (lambda: area_light_samples(V4, F2, samples_per_face=12), "samples_per_face must be a perfect square"),
    (lambda: area_light_samples(V4, F2[:0]), "faces is empty"),
    (lambda: polygon_irradiance(X, Z, V4, _t(-1.0)), "radiance must be non-negative"),
    (lambda: polygon_irradiance(X, Z, V4[:2], ONE), "polygon must have at least 3 vertices"),
    (lambda: polygon_irradiance(X, torch.zeros(3, dtype=DT), V4, ONE), "normal must have non-zero length"),
    (lambda: polygon_irradiance(X + _t(0.0, 0.0, 1.5), Z, V4, ONE), "polygon must lie entirely above"),
    (lambda: polygon_irradiance(X, Z, V4 * float("nan"), ONE), "polygon contains NaN"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="faces must have an integer dtype"):
        area_light(X, V4, F2.double(), ONE)
    with pytest.raises(TypeError, match="verts must have a floating dtype"):
        area_light(X, V4.long(), F2, ONE)
    with pytest.raises(TypeError, match="radiance must have a floating dtype"):
        area_light(X, V4, F2, torch.ones(3, dtype=torch.long))
    with pytest.raises(TypeError, match="samples_per_face must be an int"):
        area_light(X, V4, F2, ONE, samples_per_face=4.0)
    with pytest.raises(TypeError, match="two_sided must be a bool"):
        area_light(X, V4, F2, ONE, two_sided="yes")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        area_light([0.0, 0.0, 0.0], V4, F2, ONE)
