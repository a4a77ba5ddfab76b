"""lumigrad's own BVH (``kernels/bvh_build.py``, ``kernels/bvh_traverse.py``) against Warp's ``wp.Mesh`` and the
float64 brute force: same hits, watertight on shared edges and vertices, the documented ``t`` conventions, a
depth the traversal stack holds, refit, and the engine choice of ``TriangleBVH``."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.geometry.subdivide import icosphere
from lumigrad.kernels import bvh as bvh_module
from lumigrad.kernels.bvh import TriangleBVH
from lumigrad.kernels.bvh_traverse import STACK_SIZE

from .scenes import rays_at, triangle_soup
from .test_bvh import assert_agrees_with_reference


def both(verts, faces):
    return TriangleBVH(verts, faces, engine="own"), TriangleBVH(verts, faces, engine="warp")


def test_engine_choice_and_bad_engine():
    verts, faces = triangle_soup(10, seed=0)
    assert TriangleBVH(verts, faces).engine == "own"  # a handful of triangles on the CPU: the own BVH
    big_v, big_f = triangle_soup(bvh_module.own_bvh_max_faces() + 1, seed=0)
    assert TriangleBVH(big_v, big_f).engine == "warp"
    with pytest.raises(ValueError, match="engine"):
        TriangleBVH(verts, faces, engine="embree")


@pytest.mark.parametrize("num_faces", [1, 7, 300])
def test_own_bvh_matches_the_reference_and_warp(num_faces):
    verts, faces = triangle_soup(num_faces, seed=num_faces)
    o, d = rays_at(verts, faces, 2000, seed=5)
    own, warp = both(verts, faces)
    face, t, bary = own.closest_hit(o, d)
    assert_agrees_with_reference(verts, faces, o, d, face, t, bary)
    face_w, t_w, _ = warp.closest_hit(o, d)
    same = face == face_w
    assert float(same.double().mean()) > 0.995
    assert torch.allclose(t[same & (face >= 0)], t_w[same & (face >= 0)], rtol=2e-6, atol=0)
    t_max = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    blocked = own.occluded(o, d, t_max)
    ref = assert_agrees_with_reference(verts, faces, o, d, *own.closest_hit(o, d, t_max), t_max=t_max)
    clear = (ref.t - t_max).abs() > 1e-4  # not a hit at the very end of the segment
    assert torch.equal(blocked[clear], ref.hit[clear])
    assert torch.equal(blocked[clear], warp.occluded(o, d, t_max)[clear])


def test_no_leaks_through_shared_edges_and_vertices_of_a_closed_mesh():
    verts, faces = icosphere(3)  # 1280 triangles, closed
    targets = torch.cat([verts, (verts[faces[:, 0]] + verts[faces[:, 1]]) / 2,  # every vertex and edge midpoint
                         (verts[faces[:, 1]] + verts[faces[:, 2]]) / 2])
    g = torch.Generator().manual_seed(2)
    for origin in [torch.zeros(3), 0.3 * torch.randn(3, generator=g), torch.tensor([0.1, -0.2, 0.05])]:
        o = origin.expand_as(targets).contiguous()
        d = targets - o
        bvh = TriangleBVH(verts, faces, engine="own")
        face, t, _ = bvh.closest_hit(o, d)
        assert int((face < 0).sum()) == 0
        assert torch.allclose(t, torch.ones_like(t), atol=1e-3)  # the sphere's chords
        assert bool(bvh.occluded(o, d, 2.0).all())
        assert not bool(bvh.occluded(o, d, 0.9).any())  # the inside of the ball is empty


def test_t_conventions_both_sides_zero_area_and_zero_direction():
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 2.0, 0.0], [3.0, 3.0, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 4]])  # face 1 is a zero-area sliver on a line
    bvh = TriangleBVH(verts, faces, engine="own")
    o = torch.tensor([[0.2, 0.2, 1.0], [0.2, 0.2, -1.0], [0.2, 0.2, 0.0], [2.5, 2.5, 1.0], [0.2, 0.2, 1.0]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    face, t, bary = bvh.closest_hit(o, d)
    assert face.tolist() == [0, 0, 0, -1, -1]  # from above, from below, starting on it (t = 0); sliver, no dir
    assert t[:3].tolist() == [1.0, 1.0, 0.0] and t[3:].tolist() == [math.inf, math.inf]
    assert torch.allclose(bary[0], torch.tensor([0.6, 0.2, 0.2]))
    at_hit = bvh.closest_hit(o[:1], d[:1], torch.tensor([1.0]))[0]  # t < t_max strictly
    beyond = bvh.closest_hit(o[:1], d[:1], torch.tensor([1.0 + 1e-6]))[0]
    assert at_hit.tolist() == [-1] and beyond.tolist() == [0]
    assert bvh.occluded(o[:1], d[:1], 1.0).tolist() == [False]
    assert bvh.occluded(o[:1], d[:1], float("inf")).tolist() == [True]
    assert bvh.occluded(o[:1], d[:1], -1.0).tolist() == [False]


def test_coincident_triangles_keep_the_tree_within_the_stack():
    """Equal centroids defeat SAH (no bin boundary separates them): median splits, depth below the stack."""
    tri = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    verts = tri.repeat(3000, 1)
    faces = torch.arange(3 * 3000).reshape(-1, 3)
    bvh = TriangleBVH(verts, faces, engine="own")
    assert bvh._tree.depth < STACK_SIZE
    face, t, _ = bvh.closest_hit(torch.tensor([[0.2, 0.2, 1.0]]), torch.tensor([[0.0, 0.0, -1.0]]))
    assert 0 <= int(face) < 3000 and float(t) == 1.0


def test_refit_matches_a_fresh_build():
    verts, faces = icosphere(2)
    own = TriangleBVH(verts, faces, engine="own")
    moved = verts * torch.tensor([1.5, 0.7, 1.0]) + torch.tensor([0.3, 0.0, -0.2])
    own.refit(moved)
    o, d = rays_at(moved, faces, 1000, seed=9)
    face, t, bary = own.closest_hit(o, d)
    fresh = TriangleBVH(moved, faces, engine="own").closest_hit(o, d)
    assert torch.equal(face, fresh[0]) and torch.equal(t, fresh[1])
    assert_agrees_with_reference(moved.double(), faces, o.double(), d.double(), face, t, bary)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_own_bvh_on_cuda_agrees_with_the_cpu_and_refits():
    verts, faces = icosphere(2)
    o, d = rays_at(verts, faces, 500, seed=3)
    cpu = TriangleBVH(verts, faces, engine="own").closest_hit(o, d)
    gpu_bvh = TriangleBVH(verts.cuda(), faces.cuda(), engine="own")
    assert TriangleBVH(verts.cuda(), faces.cuda()).engine == "warp"  # "auto" keeps Warp's on CUDA
    gpu = gpu_bvh.closest_hit(o.cuda(), d.cuda())
    assert torch.equal(gpu[0].cpu(), cpu[0]) and torch.allclose(gpu[1].cpu(), cpu[1], rtol=1e-6, atol=0)
    gpu_bvh.refit(verts.cuda() * 2)
    assert torch.equal(gpu_bvh.occluded(o.cuda(), d.cuda(), 0.5).cpu(),
                       TriangleBVH(verts * 2, faces, engine="own").occluded(o, d, 0.5))
