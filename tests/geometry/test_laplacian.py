"""Edges and Laplacians: hand values, brute-force twins, linear precision, sphere curvature, bad meshes."""

import math

import pytest
import torch
from torch.autograd import gradcheck

from lumigrad.geometry import cotangent_laplacian, mesh_edges, uniform_laplacian
from lumigrad.geometry.laplacian import cotangent_edge_weights
from tests.conftest import uv_sphere

DT = torch.float64


def _grid(n=4, jitter=0.0, seed=0):
    """Flat ``n x n`` vertex grid in the z = 0 plane, with interior vertices jittered in-plane."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(n, dtype=DT), torch.arange(n, dtype=DT), indexing="ij")
    v = torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(-1, 3)
    interior = ((xs > 0) & (xs < n - 1) & (ys > 0) & (ys < n - 1)).reshape(-1)
    v[interior, :2] += jitter * (torch.rand(int(interior.sum()), 2, generator=g, dtype=DT) - 0.5)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]]
    return v, torch.tensor(faces), interior


def _dense_uniform_ref(faces, V):
    A = torch.zeros(V, V, dtype=DT)
    for f in faces.tolist():
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            if a != b:
                A[a, b] = A[b, a] = 1
    return torch.diag(A.sum(1)) - A


def _dense_cot_ref(verts, faces):
    V = verts.shape[0]
    W = torch.zeros(V, V, dtype=DT)
    for f in faces.tolist():
        for k in range(3):
            i, j, o = f[(k + 1) % 3], f[(k + 2) % 3], f[k]
            a, b = verts[i] - verts[o], verts[j] - verts[o]
            W[i, j] += 0.5 * float(a @ b) / float(torch.linalg.cross(a, b).norm())
            W[j, i] = W[i, j]
    return torch.diag(W.sum(1)) - W


# ------------------------------------------------------------------------------------------------ mesh_edges


def test_mesh_edges_one_triangle_and_sorted_unique():
    assert mesh_edges(torch.tensor([[0, 1, 2]])).tolist() == [[0, 1], [0, 2], [1, 2]]
    # two faces sharing an edge (2, 0), wound either way: 5 unique edges
    e = mesh_edges(torch.tensor([[0, 1, 2], [2, 3, 0]], dtype=torch.int32))
    assert e.dtype == torch.int64 and e.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]


def test_mesh_edges_bad_meshes():
    # non-manifold edge (0, 1) in three faces, a duplicate face and a face with a repeated index
    faces = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4], [0, 1, 2], [5, 5, 6]])
    e = mesh_edges(faces)
    assert e.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [1, 4], [5, 6]]
    assert mesh_edges(torch.zeros(0, 3, dtype=torch.int64)).shape == (0, 2)


def test_mesh_edges_bad_input():
    with pytest.raises(TypeError, match="faces"):
        mesh_edges(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="faces"):
        mesh_edges(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="faces holds index -1"):
        mesh_edges(torch.tensor([[0, 1, -1]]))
    with pytest.raises(TypeError, match="faces"):
        mesh_edges([[0, 1, 2]])


# ---------------------------------------------------------------------------------------- uniform Laplacian


def test_uniform_one_triangle_by_hand():
    L = uniform_laplacian(torch.tensor([[0, 1, 2]]), 3, dtype=DT)
    assert L.is_sparse and L.shape == (3, 3) and L.dtype == DT
    torch.testing.assert_close(L.to_dense(), torch.tensor([[2.0, -1, -1], [-1, 2, -1], [-1, -1, 2]], dtype=DT))


def test_uniform_matches_dense_reference_rows_sum_to_zero():
    v, f = uv_sphere(5, 7)
    faces = torch.cat([f, torch.tensor([[0, 1, 2], [3, 3, 4]])])  # duplicate face, repeated index
    V = v.shape[0] + 2  # two trailing isolated vertices
    L = uniform_laplacian(faces, V, dtype=DT).to_dense()
    torch.testing.assert_close(L, _dense_uniform_ref(faces, V), rtol=0, atol=0)
    torch.testing.assert_close(L.sum(1), torch.zeros(V, dtype=DT), rtol=0, atol=0)
    torch.testing.assert_close(L, L.T)
    assert (L[-2:] == 0).all() and (L[:, -2:] == 0).all()  # isolated vertices: zero rows and columns
    assert uniform_laplacian(f, v.shape[0]).dtype == torch.get_default_dtype()


def test_uniform_is_positive_semidefinite_with_constant_kernel():
    v, f = uv_sphere(4, 6)
    L = uniform_laplacian(f, v.shape[0], dtype=DT).to_dense()
    ev = torch.linalg.eigvalsh(L)
    assert ev.min() > -1e-12 and (ev.abs() < 1e-10).sum() == 1  # one connected component


def test_uniform_empty_faces_is_zero_matrix():
    L = uniform_laplacian(torch.zeros(0, 3, dtype=torch.int64), 4)
    assert L.shape == (4, 4) and (L.to_dense() == 0).all()


def test_uniform_bad_input():
    f = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"faces holds index 2, outside the valid range \[0, 2\)"):
        uniform_laplacian(f, 2)
    with pytest.raises(TypeError, match="num_verts"):
        uniform_laplacian(f, 3.0)
    with pytest.raises(ValueError, match="num_verts"):
        uniform_laplacian(f, -1)
    with pytest.raises(TypeError, match="faces must have an integer dtype"):
        uniform_laplacian(f.double(), 3)
    with pytest.raises(ValueError, match="faces must have shape"):
        uniform_laplacian(f[None], 3)


# -------------------------------------------------------------------------------------- cotangent Laplacian


def test_cotangent_right_triangle_by_hand():
    # right angle at vertex 0, 45 degrees at 1 and 2: w_12 = cot(90)/2 = 0, w_01 = w_02 = cot(45)/2 = 1/2
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=DT)
    L = cotangent_laplacian(v, torch.tensor([[0, 1, 2]])).to_dense()
    torch.testing.assert_close(L, torch.tensor([[1.0, -0.5, -0.5], [-0.5, 0.5, 0], [-0.5, 0, 0.5]], dtype=DT),
                               rtol=0, atol=1e-15)


def test_cotangent_matches_dense_reference_and_dense_twin():
    v, f = uv_sphere(5, 7)
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    L = cotangent_laplacian(v, f)
    assert L.is_sparse and L.dtype == DT
    ref = _dense_cot_ref(v, f)
    torch.testing.assert_close(L.to_dense(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(L.to_dense().sum(1), torch.zeros(v.shape[0], dtype=DT), rtol=0, atol=1e-12)
    edges, w = cotangent_edge_weights(v, f)
    torch.testing.assert_close(-ref[edges[:, 0], edges[:, 1]], w, rtol=1e-12, atol=1e-12)


def test_cotangent_flat_grid_interior_rows_vanish():
    # linear precision: L x = 0 at every interior vertex of any planar mesh, even with obtuse triangles
    v, f, interior = _grid(5, jitter=0.6)
    Lv = torch.sparse.mm(cotangent_laplacian(v, f), v)
    torch.testing.assert_close(Lv[interior], torch.zeros(int(interior.sum()), 3, dtype=DT), rtol=0, atol=1e-12)
    assert Lv[~interior].abs().max() > 0.1  # boundary rows do not vanish
    # the uniform Laplacian vanishes there only for the regular (unjittered) grid
    v0, f0, interior0 = _grid(5)
    Lu = torch.sparse.mm(uniform_laplacian(f0, v0.shape[0], dtype=DT), v0)
    torch.testing.assert_close(Lu[interior0], torch.zeros(int(interior0.sum()), 3, dtype=DT))


def test_cotangent_sphere_approximates_mean_curvature_normal():
    # (L x)_i ~ 2 H n_i A_i on the unit sphere: H = 1, n = x, A_i = one third of the adjacent face areas
    v, f = uv_sphere(24, 48)
    Lv = torch.sparse.mm(cotangent_laplacian(v, f), v)
    area = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).norm(dim=-1) / 2
    A = torch.zeros(v.shape[0], dtype=DT).index_add(0, f.reshape(-1), area.repeat_interleave(3) / 3)
    expect = 2 * A[:, None] * v
    lat = torch.acos(v[:, 1].clamp(-1, 1))
    band = (lat > 0.3) & (lat < math.pi - 0.3)  # away from the poles' fans
    rel = (Lv[band] - expect[band]).norm(dim=-1) / expect[band].norm(dim=-1)
    assert rel.max() < 0.01, float(rel.max())  # measured 0.0066 (median 0.0019)
    cos = torch.nn.functional.cosine_similarity(Lv, v, dim=-1)
    assert cos.min() > 0.999  # the direction is the normal everywhere, poles included


def test_cotangent_obtuse_negative_weights_and_nonnegative_clamp():
    # a flat rhombus-like pair of very obtuse triangles: the shared edge's weight is negative
    v = torch.tensor([[0.0, 0, 0], [4, 0, 0], [2, 0.3, 0], [2, -0.3, 0]], dtype=DT)
    f = torch.tensor([[0, 3, 1], [0, 1, 2]])
    L = cotangent_laplacian(v, f).to_dense()
    cot = (-(2**2) + 0.3**2) / (2 * 2 * 0.3)  # dot / |cross| at vertex 2 (and 3); w = (cot + cot) / 2
    torch.testing.assert_close(L[0, 1], torch.tensor(-cot, dtype=DT))
    assert L[0, 1] > 0  # negative weight
    Lc = cotangent_laplacian(v, f, nonnegative=True).to_dense()
    assert Lc[0, 1] == 0 and (Lc - torch.diag(torch.diag(Lc)) <= 0).all()
    torch.testing.assert_close(Lc.sum(1), torch.zeros(4, dtype=DT))


def test_cotangent_bad_meshes_are_finite():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 0.5, 1], [2, 0, 0], [0, 0, 0], [9, 9, 9]], dtype=DT)
    faces = torch.tensor([
        [0, 1, 2], [1, 0, 3], [0, 1, 4],  # non-manifold edge (0, 1); face 2 has zero area (collinear)
        [0, 5, 2],  # duplicate vertex 5 == 0: zero-area face
        [2, 2, 3],  # repeated index
        [0, 1, 2],  # duplicate face
    ])  # vertex 6 isolated
    L = cotangent_laplacian(v, faces).to_dense()
    assert torch.isfinite(L).all()
    assert (L[6] == 0).all() and (L[:, 6] == 0).all()
    assert L[5, 0] == 0  # zero-area faces add no weight
    torch.testing.assert_close(L.sum(1), torch.zeros(7, dtype=DT), rtol=0, atol=1e-12)
    # only non-degenerate faces count: (0,1,2) twice and (1,0,3)
    torch.testing.assert_close(L, _dense_cot_ref(v, faces[[0, 1, 5]]), rtol=1e-12, atol=1e-12)


def test_cotangent_gradcheck_and_finite_gradient_on_degenerate_face():
    v = torch.tensor([[0.0, 0, 0], [1, 0.1, 0], [0.2, 1, 0.1], [0.6, 0.5, 0.8]], dtype=DT, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [1, 0, 3], [1, 3, 2]])
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    assert gradcheck(lambda vv: cotangent_laplacian(vv, f).to_dense() @ x, (v,))
    vd = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]], dtype=DT, requires_grad=True)
    fd = torch.tensor([[0, 1, 2], [0, 1, 3]])  # first face collinear
    cotangent_laplacian(vd, fd).to_dense().pow(2).sum().backward()
    assert torch.isfinite(vd.grad).all()


def test_cotangent_float32_and_half():
    v, f = uv_sphere(6, 8, dtype=torch.float32)
    ref = cotangent_laplacian(v.double(), f).to_dense()
    torch.testing.assert_close(cotangent_laplacian(v, f).to_dense().double(), ref, rtol=1e-5, atol=1e-5)
    h = cotangent_laplacian(v.half(), f)
    assert h.dtype == torch.float16 and torch.isfinite(h.to_dense()).all()


def test_cotangent_bad_input():
    v = torch.zeros(3, 3, dtype=DT)
    f = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"verts must have shape \[\?, 3\]"):
        cotangent_laplacian(v[None], f)
    with pytest.raises(ValueError, match="verts contains NaN"):
        cotangent_laplacian(torch.full((3, 3), math.nan), f)
    with pytest.raises(TypeError, match="verts must have a floating dtype"):
        cotangent_laplacian(v.long(), f)
    with pytest.raises(ValueError, match="faces holds index 3"):
        cotangent_laplacian(v, f + 1)
