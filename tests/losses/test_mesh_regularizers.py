"""Mesh regularizers: hand values, Laplacian twins, batch dims, gradcheck, bad meshes, bad input."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.geometry import cotangent_laplacian, mesh_edges, uniform_laplacian
from lumigrad.losses import edge_length_loss, laplacian_smoothing, normal_consistency
from tests.conftest import uv_sphere
from tests.geometry.test_laplacian import _grid

DT = torch.float64

REGULARIZERS = {
    "laplacian_uniform": lambda v, f: laplacian_smoothing(v, f, "uniform"),
    "laplacian_cotangent": lambda v, f: laplacian_smoothing(v, f, "cotangent"),
    "laplacian_cotangent_norm": lambda v, f: laplacian_smoothing(v, f, "cotangent", squared=False),
    "normal_consistency": normal_consistency,
    "edge_length": edge_length_loss,
    "edge_length_target": lambda v, f: edge_length_loss(v, f, 0.7),
}


def _tetra():
    v = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=DT)
    f = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    return v, f


def _bumpy(seed=0):
    v, f, _ = _grid(3)
    v = v + 0.2 * torch.randn(v.shape, generator=torch.Generator().manual_seed(seed), dtype=DT)
    return v, f


# ------------------------------------------------------------------------------------------- hand values


def test_flat_grid_values():
    v, f, _ = _grid(4, jitter=0.5)
    assert float(normal_consistency(v, f)) == pytest.approx(0.0, abs=1e-15)
    # rotate the plane: still flat
    rot = torch.linalg.matrix_exp(torch.tensor([[0, -0.3, 0.5], [0.3, 0, -0.2], [-0.5, 0.2, 0]], dtype=DT))
    assert float(normal_consistency(v @ rot.T, f)) == pytest.approx(0.0, abs=1e-14)


def test_normal_consistency_fold_tetra_and_winding_independence():
    # two triangles sharing edge (0, 1), folded by 90 degrees: one pair with 1 - cos(90) = 1
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1]], dtype=DT)
    torch.testing.assert_close(normal_consistency(v, torch.tensor([[0, 1, 2], [1, 0, 3]])), torch.tensor(1.0, dtype=DT))
    torch.testing.assert_close(normal_consistency(v, torch.tensor([[0, 1, 2], [0, 1, 3]])), torch.tensor(1.0, dtype=DT))
    # regular tetrahedron: normals meet at pi - acos(1/3), so 1 - cos = 4/3 on all 6 edges
    tv, tf = _tetra()
    torch.testing.assert_close(normal_consistency(tv, tf), torch.tensor(4 / 3, dtype=DT))
    # a duplicate face folds back fully: its pair with the original gives 2
    torch.testing.assert_close(normal_consistency(v, torch.tensor([[0, 1, 2], [0, 1, 2]])), torch.tensor(2.0, dtype=DT))


def test_normal_consistency_non_manifold_uses_every_pair():
    # three fins on the edge (0, 1) at 0, 90 and 180 degrees: pairs (0,90)=1, (90,180)=1, (0,180)=0 -> mean 2/3
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1], [0.5, -1, 0]], dtype=DT)
    f = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]])
    torch.testing.assert_close(normal_consistency(v, f), torch.tensor(2 / 3, dtype=DT))


def test_edge_length_hand_values():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=DT)
    f = torch.tensor([[0, 1, 2]])
    torch.testing.assert_close(edge_length_loss(v, f), torch.tensor(4 / 3, dtype=DT))
    torch.testing.assert_close(edge_length_loss(v, f, 1.0), torch.tensor((math.sqrt(2) - 1) ** 2 / 3, dtype=DT))
    lengths = (v[mesh_edges(f)[:, 0]] - v[mesh_edges(f)[:, 1]]).norm(dim=-1)
    torch.testing.assert_close(edge_length_loss(v, f, lengths), torch.tensor(0.0, dtype=DT))
    # an edge shared by two faces counts once
    v4 = torch.cat([v, torch.tensor([[1.0, 1, 0]], dtype=DT)])
    torch.testing.assert_close(edge_length_loss(v4, torch.tensor([[0, 1, 2], [1, 3, 2]])),
                               torch.tensor((1 + 1 + 2 + 1 + 1) / 5, dtype=DT))


def test_laplacian_smoothing_one_triangle_by_hand():
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0]], dtype=DT)
    f = torch.tensor([[0, 1, 2]])
    # r_0 = (v1 + v2) / 2 - v0 = (1, 1, 0): |r|^2 = 2; r_1 = (-2, 1, 0): 5; r_2 = (1, -2, 0): 5
    torch.testing.assert_close(laplacian_smoothing(v, f), torch.tensor(4.0, dtype=DT))
    torch.testing.assert_close(laplacian_smoothing(v, f, squared=False),
                               torch.tensor((math.sqrt(2) + 2 * math.sqrt(5)) / 3, dtype=DT))


@pytest.mark.parametrize("method", ["uniform", "cotangent"])
def test_laplacian_smoothing_matches_sparse_laplacian(method):
    v, f = uv_sphere(5, 7)
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    V = v.shape[0]
    L = (uniform_laplacian(f, V, dtype=DT) if method == "uniform" else cotangent_laplacian(v, f)).to_dense()
    r = -(L @ v) / torch.diag(L)[:, None]  # normalised rows: weighted neighbour mean minus the vertex
    torch.testing.assert_close(laplacian_smoothing(v, f, method), (r**2).sum(-1).mean())
    torch.testing.assert_close(laplacian_smoothing(v, f, method, squared=False), r.norm(dim=-1).mean())


def test_laplacian_smoothing_flat_grid_interior_is_zero():
    # planar mesh, cotangent weights: interior residuals vanish, so only boundary vertices add to the sum;
    # an extra isolated vertex adds nothing but counts in the mean
    v, f, interior = _grid(5, jitter=0.6)
    with_isolated = torch.cat([v, v.new_zeros(1, 3)])
    total = laplacian_smoothing(with_isolated, f, "cotangent") * with_isolated.shape[0]
    L = cotangent_laplacian(v, f).to_dense()
    r = -(L @ v) / torch.diag(L)[:, None]
    torch.testing.assert_close(r[interior], torch.zeros(int(interior.sum()), 3, dtype=DT), rtol=0, atol=1e-12)
    torch.testing.assert_close(total, (r[~interior] ** 2).sum())


def test_batch_dims_average():
    v, f = _bumpy()
    vb = torch.stack([v, 1.5 * v + 0.1, v.flip(0)]).reshape(3, 1, -1, 3)
    for name, fn in REGULARIZERS.items():
        ref = torch.stack([fn(vb[i, 0], f) for i in range(3)]).mean()
        torch.testing.assert_close(fn(vb, f), ref, msg=name)


# ------------------------------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_gradcheck(name):
    v, f = _bumpy(2)
    assert gradcheck(lambda vv: REGULARIZERS[name](vv, f), (v.requires_grad_(),))


def test_gradcheck_detached_weights_and_tensor_target():
    v, f = _bumpy(3)
    v.requires_grad_()
    # detached weights: the gradient of the residuals with the Laplacian held at its current value
    (g,) = torch.autograd.grad(laplacian_smoothing(v, f, "cotangent", detach_weights=True), v)
    L = cotangent_laplacian(v.detach(), f).to_dense()
    vr = v.detach().clone().requires_grad_()
    r = -(L @ vr) / torch.diag(L)[:, None]
    (g_ref,) = torch.autograd.grad((r**2).sum(-1).mean(), vr)
    torch.testing.assert_close(g, g_ref)
    (g_full,) = torch.autograd.grad(laplacian_smoothing(v, f, "cotangent"), v)
    assert (g_full - g).abs().max() > 1e-3  # the weights' own gradient is not negligible
    t = torch.linspace(0.5, 1.5, mesh_edges(f).shape[0], dtype=DT, requires_grad=True)
    assert gradcheck(lambda vv, tt: edge_length_loss(vv, f, tt), (v, t))


# ------------------------------------------------------------------------------------------------ bad meshes


def _bad_meshes():
    base = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.4, 1, 0.1], [0.5, -0.9, 0.6], [0.6, 0.2, -1.0]], dtype=DT)
    f0 = [[0, 1, 2], [1, 0, 3], [2, 1, 3]]
    yield "non_manifold", base, torch.tensor(f0 + [[0, 1, 4]])
    yield "duplicate_vertices", torch.cat([base, base[[0, 1]]]), torch.tensor(f0 + [[5, 6, 4], [0, 5, 2]])
    yield "zero_area_faces", torch.cat([base, torch.tensor([[2.0, 0, 0]], dtype=DT)]), torch.tensor(
        f0 + [[0, 1, 5], [1, 1, 4], [4, 4, 4]])
    yield "isolated_vertices", torch.cat([base, torch.tensor([[7.0, 7, 7], [0.5, 0.5, 0.5]], dtype=DT)]), \
        torch.tensor(f0)
    yield "duplicate_faces", base, torch.tensor(f0 + [[0, 1, 2], [2, 1, 0]])
    yield "all_degenerate", torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 0, 0]], dtype=DT), \
        torch.tensor([[0, 1, 2], [0, 3, 1]])
    yield "no_faces", base, torch.zeros(0, 3, dtype=torch.int64)


BAD = list(_bad_meshes())


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_meshes_give_finite_values_and_gradients(name, case):
    _, v, f = case
    v = v.clone().requires_grad_()
    loss = REGULARIZERS[name](v, f)
    assert loss.shape == () and torch.isfinite(loss)
    (g,) = torch.autograd.grad(loss, v)
    assert torch.isfinite(g).all()


def test_bad_mesh_specifics():
    by = {n: (v, f) for n, v, f in BAD}
    # isolated vertices: no residual and no gradient; they only enlarge the Laplacian mean's denominator
    v, f = by["isolated_vertices"]
    vv = v.clone().requires_grad_()
    for method in ("uniform", "cotangent"):
        lo = laplacian_smoothing(vv, f, method)
        torch.testing.assert_close(lo * 7, laplacian_smoothing(v[:5], f, method) * 5)
        (g,) = torch.autograd.grad(lo, vv)
        assert (g[5:] == 0).all()
    torch.testing.assert_close(normal_consistency(v, f), normal_consistency(v[:5], f))
    torch.testing.assert_close(edge_length_loss(v, f), edge_length_loss(v[:5], f))
    # zero-area faces: no cotangent weight, no normal-consistency contribution (but counted pairs)
    v, f = by["zero_area_faces"]
    assert float(normal_consistency(v, f[:3])) > 0
    # all-degenerate mesh: nothing defined, everything 0 except edge lengths
    v, f = by["all_degenerate"]
    assert float(normal_consistency(v, f)) == 0.0
    assert float(laplacian_smoothing(v, f, "cotangent")) == 0.0
    assert float(edge_length_loss(v, f)) > 0
    # no faces: zero losses still attached to verts
    v = by["no_faces"][0].clone().requires_grad_()
    loss = laplacian_smoothing(v, torch.zeros(0, 3, dtype=torch.int64))
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_float32_and_half():
    v, f = _bumpy(4)
    for name, fn in REGULARIZERS.items():
        ref = fn(v, f)
        got = fn(v.float(), f)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5, msg=name)
        h = fn(v.half(), f)
        assert h.dtype == torch.float16 and torch.isfinite(h)


# ------------------------------------------------------------------------------------------------- bad input


def test_bad_input():
    v, f = _tetra()
    with pytest.raises(ValueError, match="method must be one of 'uniform', 'cotangent'; got 'cot'"):
        laplacian_smoothing(v, f, "cot")
    with pytest.raises(ValueError, match="faces holds index 4"):
        normal_consistency(v, f + 1)
    with pytest.raises(TypeError, match="faces must have an integer dtype"):
        edge_length_loss(v, f.double())
    with pytest.raises(ValueError, match="verts contains NaN"):
        laplacian_smoothing(v * math.nan, f)
    with pytest.raises(ValueError, match="verts must hold at least one vertex"):
        normal_consistency(v[:0], f[:0])
    with pytest.raises(ValueError, match=r"verts must have shape \[\.\.\., \?, 3\]"):
        edge_length_loss(v[:, :2], f)
    with pytest.raises(ValueError, match="target_length must be non-negative"):
        edge_length_loss(v, f, -1.0)
    with pytest.raises(TypeError, match="target_length"):
        edge_length_loss(v, f, "1")
    with pytest.raises(ValueError, match="target_length of shape"):
        edge_length_loss(v, f, torch.ones(5, dtype=DT))


# ------------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.cuda
def test_cuda_matches_cpu():
    from lumigrad.losses import (chamfer_distance, point_mesh_distance, sample_points_on_mesh, silhouette_bce_loss,
                                 silhouette_iou_loss)

    v, f = _bumpy(5)
    dev = torch.device("cuda")
    for name, fn in REGULARIZERS.items():
        vc = v.to(dev).requires_grad_()
        out = fn(vc, f.to(dev))
        out.backward()
        assert out.device.type == "cuda" and torch.isfinite(vc.grad).all()
        torch.testing.assert_close(out.cpu(), fn(v, f), msg=name)
    pts = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    torch.testing.assert_close(chamfer_distance(pts.to(dev), v.to(dev)).cpu(), chamfer_distance(pts, v))
    torch.testing.assert_close(point_mesh_distance(pts.to(dev), v.to(dev), f.to(dev)).cpu(),
                               point_mesh_distance(pts, v, f))
    s = sample_points_on_mesh(v.to(dev), f.to(dev), 100)
    assert s.device.type == "cuda" and point_mesh_distance(s, v.to(dev), f.to(dev)).max() < 1e-9
    m = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(silhouette_iou_loss(m.to(dev), m.flip(-1).to(dev)).cpu(),
                               silhouette_iou_loss(m, m.flip(-1)))
    torch.testing.assert_close(silhouette_bce_loss(m.to(dev), m.flip(-1).to(dev)).cpu(),
                               silhouette_bce_loss(m, m.flip(-1)))
    L = cotangent_laplacian(v.to(dev), f.to(dev))
    torch.testing.assert_close(L.to_dense().cpu(), cotangent_laplacian(v, f).to_dense())
    assert uniform_laplacian(f.to(dev), v.shape[0]).device.type == "cuda"
