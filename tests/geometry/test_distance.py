"""Chamfer, point-triangle and point-mesh distances, surface sampling: brute-force twins, regions, gradcheck."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.geometry import (chamfer_distance, closest_point_on_triangle, point_mesh_distance, points_to_mesh_loss,
                               sample_points_on_mesh)
from tests.conftest import uv_sphere

DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _chamfer_ref(x, y, squared=True):
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    if not squared:
        d = d.sqrt()
    return d.min(1).values.mean() + d.min(0).values.mean()


def _dense_triangle(a, b, c, n=300):
    """Dense barycentric sampling of a triangle (points on a regular grid of spacing 1/n, edges included)."""
    i, j = torch.meshgrid(torch.arange(n + 1, dtype=DT), torch.arange(n + 1, dtype=DT), indexing="ij")
    keep = (i + j) <= n
    u, v = i[keep] / n, j[keep] / n
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


# --------------------------------------------------------------------------------------------------- chamfer


def test_chamfer_hand_values():
    x = torch.tensor([[0.0, 0, 0]], dtype=DT)
    y = torch.tensor([[3.0, 4, 0]], dtype=DT)
    assert float(chamfer_distance(x, y)) == 50.0
    assert float(chamfer_distance(x, y, squared=False)) == 10.0


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_chamfer_matches_brute_force(squared, chunk):
    x = torch.randn(37, 3, generator=_gen(0), dtype=DT)
    y = torch.randn(23, 3, generator=_gen(1), dtype=DT) + 0.3
    got = chamfer_distance(x, y, squared=squared, chunk=chunk)
    torch.testing.assert_close(got, _chamfer_ref(x, y, squared), rtol=1e-13, atol=0)


def test_chamfer_identical_sets_is_zero_with_zero_gradient():
    x = torch.randn(20, 3, generator=_gen(2), dtype=DT, requires_grad=True)
    for squared in (True, False):
        d = chamfer_distance(x, x.detach().clone(), squared=squared)
        assert float(d.detach()) == 0.0
        (g,) = torch.autograd.grad(d, x)
        assert torch.isfinite(g).all() and (g == 0).all()


def test_chamfer_batch_dims_broadcast_and_average():
    x = torch.randn(2, 3, 10, 3, generator=_gen(3), dtype=DT)
    y = torch.randn(3, 8, 3, generator=_gen(4), dtype=DT)
    ref = torch.stack([_chamfer_ref(x[i, j], y[j]) for i in range(2) for j in range(3)]).mean()
    torch.testing.assert_close(chamfer_distance(x, y, chunk=3), ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_gradcheck(squared):
    x = torch.randn(7, 3, generator=_gen(5), dtype=DT, requires_grad=True)
    y = torch.randn(5, 3, generator=_gen(6), dtype=DT, requires_grad=True)
    assert gradcheck(lambda a, b: chamfer_distance(a, b, squared=squared, chunk=2), (x, y))


def test_chamfer_float32_and_bad_input():
    x = torch.randn(30, 3, generator=_gen(7))
    y = torch.randn(40, 3, generator=_gen(8))
    torch.testing.assert_close(chamfer_distance(x, y).double(), _chamfer_ref(x.double(), y.double()), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"y must have shape \[\.\.\., \?, 3\]"):
        chamfer_distance(x, y[:, :2])
    with pytest.raises(ValueError, match="at least one point"):
        chamfer_distance(x, y[:0])
    with pytest.raises(TypeError, match="same dtype"):
        chamfer_distance(x, y.double())
    with pytest.raises(ValueError, match="x contains NaN"):
        chamfer_distance(x * math.nan, y)
    with pytest.raises(ValueError, match="chunk must be positive"):
        chamfer_distance(x, y, chunk=0)
    with pytest.raises(ValueError, match="batch dims"):
        chamfer_distance(x.expand(2, 30, 3), y.expand(3, 40, 3))


# ------------------------------------------------------------------------------------ closest point, regions


A, B, C = (torch.tensor(p, dtype=DT) for p in ([0.0, 0, 0], [2.0, 0, 0], [0.0, 2, 0]))

REGION_CASES = [  # query point, expected closest point, region id
    ([-1.0, -1.0, 0.5], [0.0, 0, 0], 0),  # vertex a
    ([3.0, -0.5, -1.0], [2.0, 0, 0], 1),  # vertex b
    ([-0.2, 3.0, 0.0], [0.0, 2, 0], 2),  # vertex c
    ([1.0, -1.0, 2.0], [1.0, 0, 0], 3),  # edge ab
    ([-1.0, 0.7, 0.0], [0.0, 0.7, 0], 4),  # edge ac
    ([2.0, 2.0, -3.0], [1.0, 1.0, 0], 5),  # edge bc
    ([0.5, 0.4, 1.5], [0.5, 0.4, 0], 6),  # face
    ([0.5, 0.4, 0.0], [0.5, 0.4, 0], 6),  # on the face
]


@pytest.mark.parametrize("p, q, region", REGION_CASES)
def test_closest_point_known_voronoi_regions(p, q, region):
    got, rid = closest_point_on_triangle(torch.tensor(p, dtype=DT), A, B, C)
    torch.testing.assert_close(got, torch.tensor(q, dtype=DT), rtol=0, atol=1e-15)
    assert int(rid) == region


def test_closest_point_matches_dense_sampling_of_random_triangles():
    g = _gen(9)
    tri = torch.randn(6, 3, 3, generator=g, dtype=DT)
    p = 1.5 * torch.randn(6, 40, 3, generator=g, dtype=DT)
    seen = set()
    for t in range(6):
        a, b, c = tri[t]
        q, rid = closest_point_on_triangle(p[t], a, b, c)
        seen |= set(rid.tolist())
        exact = (p[t] - q).norm(dim=-1)
        dense = torch.cdist(p[t], _dense_triangle(a, b, c)).min(1).values
        edge = max(float((b - a).norm()), float((c - a).norm()), float((c - b).norm()))
        assert (exact <= dense + 1e-12).all()  # nothing on the triangle is closer
        assert (dense - exact).max() <= edge / 300  # and the dense samples come within one grid step
    assert seen == set(range(7))  # every region was exercised


def test_closest_point_degenerate_triangles_are_finite_and_exact():
    p = torch.randn(50, 3, generator=_gen(10), dtype=DT)
    a = torch.tensor([0.0, 0, 0], dtype=DT)
    for b, c in (([1.0, 0, 0], [3.0, 0, 0]),  # collinear, c outside ab
                 ([3.0, 0, 0], [1.0, 0, 0]),  # collinear, c inside ab
                 ([0.0, 0, 0], [2.0, 1, 0]),  # a == b
                 ([0.0, 0, 0], [0.0, 0, 0])):  # a == b == c
        b, c = torch.tensor(b, dtype=DT), torch.tensor(c, dtype=DT)
        q, _ = closest_point_on_triangle(p, a, b, c)
        assert torch.isfinite(q).all()
        dense = torch.cdist(p, _dense_triangle(a, b, c, 600)).min(1).values
        torch.testing.assert_close((p - q).norm(dim=-1), dense, rtol=0, atol=6e-3)


# ---------------------------------------------------------------------------------------- point-mesh distance


def _point_mesh_ref(points, verts, faces):
    best = torch.full((points.shape[0],), math.inf, dtype=DT)
    for f in faces.tolist():
        q, _ = closest_point_on_triangle(points, verts[f[0]], verts[f[1]], verts[f[2]])
        best = torch.minimum(best, (points - q).norm(dim=-1))
    return best


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_point_mesh_distance_matches_per_face_reference(chunk):
    v, f = uv_sphere(4, 6)
    pts = 1.3 * torch.randn(25, 3, generator=_gen(11), dtype=DT)
    d, q, fid = point_mesh_distance(pts, v, f, chunk=chunk, return_closest=True)
    torch.testing.assert_close(d, _point_mesh_ref(pts, v, f), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close((pts - q).norm(dim=-1), d)
    assert fid.dtype == torch.int64 and fid.shape == (25,)
    torch.testing.assert_close(point_mesh_distance(pts, v, f, squared=True), d**2)


def test_point_mesh_distance_known_values_and_dense_sampling():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=DT)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])  # unit square in z = 0
    pts = torch.tensor([[0.2, 0.2, 1.0], [0.5, 0.5, -2.0], [2.0, 0.5, 0.0], [-3.0, -4.0, 0.0], [0.7, 0.6, 0.0]],
                       dtype=DT)
    torch.testing.assert_close(point_mesh_distance(pts, v, f), torch.tensor([1.0, 2.0, 1.0, 5.0, 0.0], dtype=DT))
    g = _gen(12)
    v2 = torch.randn(6, 3, generator=g, dtype=DT)
    f2 = torch.tensor([[0, 1, 2], [2, 3, 4], [1, 4, 5]])
    p2 = 2 * torch.randn(30, 3, generator=g, dtype=DT)
    dense = torch.cdist(p2, torch.cat([_dense_triangle(*v2[t]) for t in f2])).min(1).values
    exact = point_mesh_distance(p2, v2, f2)
    assert (exact <= dense + 1e-12).all() and (dense - exact).max() < 0.02


def test_point_mesh_distance_gradcheck_and_surface_points():
    v = torch.tensor([[0.0, 0, 0], [1, 0.1, 0], [0.1, 1, 0.2], [0.9, 1.1, 0.7]], dtype=DT, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    p = torch.tensor([[0.3, 0.2, 0.9], [2.0, 0.1, -0.4], [-0.7, -0.2, 0.1], [0.6, 1.5, 1.0]], dtype=DT,
                     requires_grad=True)
    for squared in (True, False):
        assert gradcheck(lambda pp, vv: point_mesh_distance(pp, vv, f, squared=squared), (p, v))
        assert gradcheck(lambda pp, vv: points_to_mesh_loss(pp, vv, f, squared=squared), (p, v))
    on = (0.4 * v[0] + 0.3 * v[1] + 0.3 * v[2]).detach()[None].requires_grad_()  # on face 0
    d = point_mesh_distance(on, v.detach(), f)
    (g,) = torch.autograd.grad(d.sum(), on)
    assert float(d.detach()) < 1e-15 and torch.isfinite(g).all()


def test_point_mesh_distance_bad_meshes():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 0], [5, 5, 5], [0, 1, 0]], dtype=DT,
                     requires_grad=True)
    f = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 1, 1], [0, 1, 5], [1, 0, 5], [0, 1, 2]])  # degenerate, non-manifold
    p = torch.randn(20, 3, generator=_gen(13), dtype=DT)
    d = point_mesh_distance(p, v, f)
    d.sum().backward()
    assert torch.isfinite(d).all() and torch.isfinite(v.grad).all()
    torch.testing.assert_close(d, _point_mesh_ref(p, v.detach(), f))
    assert v.grad[4].abs().sum() == 0  # isolated vertex: not part of the surface


def test_point_mesh_distance_bad_input():
    v = torch.zeros(3, 3, dtype=DT)
    f = torch.tensor([[0, 1, 2]])
    p = torch.zeros(2, 3, dtype=DT)
    with pytest.raises(ValueError, match="points must have shape"):
        point_mesh_distance(p[:, :2], v, f)
    with pytest.raises(ValueError, match="at least one triangle"):
        point_mesh_distance(p, v, f[:0])
    with pytest.raises(ValueError, match="faces holds index 3"):
        point_mesh_distance(p, v, f + 1)
    with pytest.raises(TypeError, match="same dtype"):
        point_mesh_distance(p.float(), v, f)
    with pytest.raises(ValueError, match="points must hold at least one point"):
        points_to_mesh_loss(p[:0], v, f)


def _brute_force(monkeypatch):
    """Every search of :func:`point_mesh_distance` by brute force (no BVH), for the rest of the test."""
    from lumigrad.geometry import distance

    monkeypatch.setattr(distance, "BVH_MIN_PAIRS", 1 << 62)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_large_search_through_the_bvh_gives_the_brute_force_distances(dtype, monkeypatch):
    """Above BVH_MIN_PAIRS pairs the nearest face comes from Warp's BVH (float32): the distances equal the
    brute force's to float32 rounding (a tie between faces sharing the nearest edge or corner may pick the
    other face, at the same distance), closest points and gradients included."""
    from lumigrad.geometry import distance

    v, f = uv_sphere(24, 48, dtype=dtype)  # 2256 faces
    v = v * torch.tensor([1.0, 0.6, 1.3], dtype=dtype)
    pts = (1.2 * torch.randn(300, 3, generator=_gen(21), dtype=torch.float64)).to(dtype)
    assert pts.shape[0] * f.shape[0] > distance.BVH_MIN_PAIRS
    vb, vr = v.clone().requires_grad_(), v.clone().requires_grad_()
    d, q, fid = point_mesh_distance(pts, vb, f, return_closest=True)
    d.sum().backward()
    with monkeypatch.context() as m:
        _brute_force(m)
        d0, q0, fid0 = point_mesh_distance(pts, vr, f, return_closest=True)
        d0.sum().backward()
    torch.testing.assert_close(d, d0, rtol=1e-6, atol=1e-6)
    # the closest point is one of the nearest: on its face, at the brute force's distance (outside a convex mesh
    # many points are nearest to an edge or a corner that faces share; inside, faces nearly equidistant tie)
    torch.testing.assert_close((pts - q).norm(dim=-1), d0, rtol=1e-6, atol=1e-6)
    on_face, _ = closest_point_on_triangle(q, *(v[f[fid, k]] for k in range(3)))
    torch.testing.assert_close(on_face, q)
    assert fid.dtype == torch.int64 and bool((fid >= 0).all()) and bool((fid != fid0).any())
    assert torch.isfinite(vb.grad).all()
    # per vertex the gradients may split differently between tied faces; their sum is the points' own
    torch.testing.assert_close(vb.grad.sum(0), vr.grad.sum(0), rtol=1e-4, atol=1e-4)


def test_a_mesh_with_a_zero_area_triangle_is_searched_by_brute_force(monkeypatch):
    """A zero-area triangle counts as its segments, which only the brute force tests: such a mesh never takes
    the BVH, whatever its size, and gives the brute force's values bit for bit."""
    v, f = uv_sphere(24, 48)
    v = torch.cat([v, torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 4.0]], dtype=DT)])
    n = v.shape[0]
    f = torch.cat([f, torch.tensor([[n - 2, n - 1, n - 2]])])  # a segment from z = 3 to z = 4
    pts = torch.cat([torch.tensor([[0.1, 0.0, 3.5]], dtype=DT), 1.2 * torch.randn(299, 3, generator=_gen(22),
                                                                                   dtype=DT)])
    d = point_mesh_distance(pts, v, f)
    _brute_force(monkeypatch)
    assert torch.equal(d, point_mesh_distance(pts, v, f))
    assert float(d[0]) == pytest.approx(0.1, abs=1e-12)


def test_nearest_faces_of_the_bvh():
    """``TriangleBVH.nearest_faces``: the face under each point, -1 without faces; the own engine refuses."""
    from lumigrad.kernels.bvh import TriangleBVH

    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    pts = torch.tensor([[0.2, 0.2, 1.0], [0.9, 0.8, -2.0], [5.0, 5.0, 0.0], [-3.0, -3.0, 0.5]])
    faces = TriangleBVH(v, f, engine="warp").nearest_faces(pts)
    assert faces.tolist() == [0, 1, 1, 0]
    assert TriangleBVH(v, f[:0], engine="warp").nearest_faces(pts).tolist() == [-1] * 4
    with pytest.raises(ValueError, match="'warp' engine"):
        TriangleBVH(v, f, engine="own").nearest_faces(pts)
    with pytest.raises(ValueError, match="points"):
        TriangleBVH(v, f, engine="warp").nearest_faces(pts[:, :2])


# ---------------------------------------------------------------------------------------------- sampling


def test_sample_points_lie_on_the_mesh_and_follow_area():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 1], [3, 3, 1], [9, 9, 9]], dtype=DT)
    f = torch.tensor([[0, 1, 2], [3, 4, 0], [0, 0, 1]])  # areas 0.5, sqrt(10)*3/2... and a zero-area face
    pts, fid, bary = sample_points_on_mesh(v, f, 4000, generator=_gen(14), return_barycentrics=True)
    assert pts.shape == (4000, 3) and pts.dtype == DT
    assert point_mesh_distance(pts, v, f).max() < 1e-12
    assert (bary >= 0).all() and torch.allclose(bary.sum(-1), torch.ones(4000, dtype=DT))
    area = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).norm(dim=-1) / 2
    frac = torch.bincount(fid, minlength=3).double() / 4000
    torch.testing.assert_close(frac, area / area.sum(), rtol=0, atol=0.03)
    assert int((fid == 2).sum()) == 0
    # uniform within a face: the mean barycentric is (1/3, 1/3, 1/3)
    torch.testing.assert_close(bary.mean(0), torch.full((3,), 1 / 3, dtype=DT), rtol=0, atol=0.02)
    again = sample_points_on_mesh(v, f, 4000, generator=_gen(14))
    assert torch.equal(again, pts)


def test_sample_points_gradient_is_fixed_barycentric():
    v = torch.randn(5, 3, generator=_gen(15), dtype=DT, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [1, 3, 2], [2, 3, 4]])
    assert gradcheck(lambda vv: sample_points_on_mesh(vv, f, 16, generator=_gen(16)), (v,))


def test_chamfer_between_sampled_meshes():
    v, f = uv_sphere(8, 16)
    a = sample_points_on_mesh(v, f, 800, generator=_gen(17))
    b = sample_points_on_mesh(v * 1.2, f, 800, generator=_gen(18))
    # every point of the bigger sphere is 0.2 (to within faceting) from the small one: squared ~0.04 each way
    d = chamfer_distance(a, b, squared=False)
    assert 0.3 < float(d) < 0.45


def test_sample_points_bad_input():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=DT)
    f = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="zero total area"):
        sample_points_on_mesh(v, f, 10)
    with pytest.raises(ValueError, match="num must be positive"):
        sample_points_on_mesh(v, f, 0)
    with pytest.raises(TypeError, match="num must be an int"):
        sample_points_on_mesh(v, f, 2.0)
    with pytest.raises(TypeError, match="generator"):
        sample_points_on_mesh(v, f, 2, generator=0)
