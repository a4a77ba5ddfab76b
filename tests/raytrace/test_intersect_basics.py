"""Ray queries: the BVH kernel against a float64 brute-force twin, differentiable recomputation, refits."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.kernels import bvh as bvh_module
from lumigrad.raytrace import (intersect_faces, intersect_reference, offset_ray_origin, trace_closest,
                               trace_occluded)


def _soup(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 1, 3, generator=g) * 4 - 2
    verts = (centres + 0.4 * torch.randn(n, 3, 3, generator=g)).reshape(-1, 3)
    faces = torch.arange(3 * n).reshape(n, 3)
    return verts, faces


def _rays(n=2000, seed=1):
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, -6.0])
    d = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 6.0]) + torch.randn(n, 3, generator=g) * 1.5, dim=-1)
    return o, d


def test_the_kernel_finds_the_reference_hits():
    verts, faces = _soup()
    o, d = _rays()
    hit = trace_closest(verts, faces, o, d)
    ref = intersect_reference(verts, faces, o, d)
    assert (hit.face == ref.face).float().mean() > 0.995  # float32 vs float64 near edges and ties
    same = (hit.face == ref.face) & (ref.face >= 0)
    assert same.sum() > 500
    assert torch.allclose(hit.t[same].double(), ref.t[same], rtol=1e-4)
    assert torch.allclose(hit.bary[same].double(), ref.bary[same], atol=1e-4)
    assert torch.isinf(hit.t[hit.face < 0]).all()


def test_t_max_and_occlusion_agree_with_closest_hits():
    verts, faces = _soup()
    o, d = _rays()
    hit = trace_closest(verts, faces, o, d)
    t_max = torch.where(hit.face >= 0, hit.t * 0.5, torch.full_like(hit.t, 100.0))
    blocked = trace_occluded(verts, faces, o, d, hit.t.clamp(max=100) * 1.01)
    assert torch.equal(blocked, hit.face >= 0)
    assert not trace_occluded(verts, faces, o, d, t_max)[hit.face >= 0].any()


def test_both_sides_are_hit_and_backfaces_count():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    faces = torch.tensor([[0, 1, 2]])
    o = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    hit = trace_closest(verts, faces, o, d)
    assert hit.face.tolist() == [0, 0] and torch.allclose(hit.t, torch.ones(2))
    # degenerate (zero-area) triangles are never hit
    flat = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    assert trace_closest(flat, faces, o, d).face.tolist() == [-1, -1]


def test_hits_are_recomputed_differentiably():
    verts, faces = _soup(20)
    o, d = _rays(200)
    hit = trace_closest(verts, faces, o, d)
    rows = (hit.face >= 0).nonzero()[:, 0][:8]
    face = hit.face[rows]
    v = verts.double().requires_grad_(True)
    oo = o[rows].double().requires_grad_(True)
    dd = d[rows].double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: intersect_faces(a, faces, b, c, face), (v, oo, dd))


def test_a_moved_mesh_is_refitted_not_rebuilt(monkeypatch):
    verts, faces = _soup(50)
    o, d = _rays(500)
    built = []
    original = bvh_module.TriangleBVH.__init__

    def counting(self, *args):
        built.append(1)
        original(self, *args)

    monkeypatch.setattr(bvh_module.TriangleBVH, "__init__", counting)
    trace_closest(verts, faces, o, d)
    moved = verts + torch.tensor([0.0, 0.0, 1.0])
    hit = trace_closest(moved, faces, o, d)
    ref = intersect_reference(moved, faces, o, d)
    assert len(built) == 1
    assert (hit.face == ref.face).float().mean() > 0.995
    trace_closest(moved, faces.clone(), o, d)  # another face table: another hierarchy
    assert len(built) == 2


def test_an_offset_origin_does_not_hit_its_own_surface():
    verts = torch.tensor([[-1e3, 0.0, -1e3], [1e3, 0.0, -1e3], [0.0, 0.0, 1e3]]) + torch.tensor([500.0, 7.0, 0.0])
    faces = torch.tensor([[0, 2, 1]])
    g = torch.Generator().manual_seed(0)
    p = torch.cat([torch.rand(256, 1, generator=g) * 100 + 450, torch.full((256, 1), 7.0),
                   torch.rand(256, 1, generator=g) * 100 - 50], 1)
    n = torch.tensor([0.0, 1.0, 0.0]).expand(256, 3)
    d = torch.nn.functional.normalize(torch.randn(256, 3, generator=g).abs() + torch.tensor([0.0, 0.1, 0.0]), dim=-1)
    assert not trace_occluded(verts, faces, offset_ray_origin(p, n, d), d).any()


def test_bad_rays_are_refused():
    verts, faces = _soup(5)
    o, d = _rays(4)
    with pytest.raises(ValueError, match="origins contains NaN"):
        trace_closest(verts, faces, o.clone().fill_(math.nan), d)
    with pytest.raises(ValueError, match="faces holds index"):
        trace_closest(verts, faces + 100, o, d)
    with pytest.raises(ValueError, match="same shape"):
        trace_closest(verts, faces, o, d[:2])
