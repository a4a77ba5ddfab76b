"""``lumigrad.kernels.bvh``: the BVH's raw answers against the float64 brute-force twin, refit, the
per-topology cache (refit, not rebuild, when only vertices move) and the split of CPU launches; every test runs
with both engines (lumigrad's own BVH and Warp's ``wp.Mesh``) as ``engine="auto"`` picks them."""

from __future__ import annotations

import gc
import math
import threading

import pytest
import torch

from lumigrad.kernels import _runtime, bvh as bvh_module
from lumigrad.kernels.bvh import TriangleBVH, bvh_cache_info, bvh_for, clear_bvh_cache
from lumigrad.raytrace import intersect_faces, intersect_reference

from .scenes import rays_at, triangle_soup


@pytest.fixture(autouse=True, params=["own", "warp"])
def engine(request, monkeypatch):
    """Make ``engine="auto"`` (and so :func:`bvh_for`) pick one engine whatever the mesh size."""
    monkeypatch.setattr(bvh_module, "OWN_BVH_MAX_FACES", 2**62 if request.param == "own" else -1)
    return request.param


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_bvh_cache()
    yield
    clear_bvh_cache()


def assert_agrees_with_reference(verts, faces, o, d, face, t, bary, t_max=math.inf, tol=1e-4):
    """Face ids equal the reference's except at near-ties (both hits within ``tol`` in ``t``, or a hit within
    ``tol`` of a triangle edge); where equal, ``t`` and ``bary`` agree to ``tol``."""
    ref = intersect_reference(verts, faces, o, d, t_max)
    same = face == ref.face
    hit = same & ref.hit
    assert torch.allclose(t[hit].double(), ref.t[hit], atol=tol, rtol=0)
    assert torch.allclose(bary[hit].double(), ref.bary[hit], atol=tol, rtol=0)
    assert bool((t[same & ~ref.hit] == math.inf).all()) and bool((bary[same & ~ref.hit] == 0).all())
    if not bool(same.all()):
        rows = (~same).nonzero()[:, 0]
        t_k, b_k = intersect_faces(verts, faces, o[rows], d[rows], face[rows])
        edge_k = (face[rows] >= 0) & (b_k.min(-1).values.abs() < tol)  # the kernel's face, hit near an edge
        edge_r = (ref.face[rows] >= 0) & (ref.bary[rows].min(-1).values.abs() < tol)
        near_edge = edge_k | edge_r
        tie = (face[rows] >= 0) & (ref.face[rows] >= 0) & ((t_k - ref.t[rows]).abs() < tol)
        assert bool((near_edge | tie).all()), f"rays {rows[~(near_edge | tie)].tolist()} disagree"
        assert rows.numel() <= max(2, 0.005 * face.numel())
    return ref


def test_bary_convention_is_the_weight_of_corners_0_1_2():
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    bvh = TriangleBVH(verts, torch.tensor([[0, 1, 2]]))
    face, t, bary = bvh.closest_hit(torch.tensor([[0.1, 0.3, 1.0]]), torch.tensor([[0.0, 0.0, -2.0]]))
    assert face.tolist() == [0] and face.dtype == torch.int64
    assert t.dtype == torch.float32 and abs(float(t) - 0.5) < 1e-7  # in multiples of |direction| = 2
    assert torch.allclose(bary, torch.tensor([[0.6, 0.1, 0.3]]), atol=1e-6)
    assert torch.allclose(bary @ verts, torch.tensor([[0.1, 0.3, 0.0]]), atol=1e-6)


def test_closest_hit_matches_the_float64_reference_on_a_triangle_soup():
    verts, faces = triangle_soup(150, seed=3)
    o, d = rays_at(verts, faces, 1500, seed=4)
    face, t, bary = TriangleBVH(verts, faces).closest_hit(o, d)
    ref = assert_agrees_with_reference(verts, faces, o, d, face, t, bary)
    assert 0.5 < float(ref.hit.double().mean()) < 0.98  # a real mix of hits and misses


def test_t_max_as_number_and_per_ray():
    verts, faces = triangle_soup(120, seed=5)
    o, d = rays_at(verts, faces, 800, seed=6)
    bvh = TriangleBVH(verts, faces)
    t_max = torch.rand(800, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    for limit in (2.5, t_max):
        face, t, bary = bvh.closest_hit(o, d, limit)
        assert bool((t[face >= 0] < (limit if isinstance(limit, float) else limit.float()[face >= 0])).all())
        assert_agrees_with_reference(verts, faces, o, d, face, t, bary, t_max=limit)
        hit = bvh.occluded(o, d, limit)
        ref = intersect_reference(verts, faces, o, d, limit)
        assert float((hit != ref.hit).double().mean()) < 0.005
    for limit in (0.0, -1.0):
        assert bool((bvh.closest_hit(o, d, limit)[0] == -1).all()) and not bool(bvh.occluded(o, d, limit).any())


def test_misses_zero_directions_and_an_empty_mesh():
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    bvh = TriangleBVH(verts, torch.tensor([[0, 1, 2]]))
    o = torch.tensor([[0.2, 0.2, 1.0], [0.2, 0.2, 1.0], [5.0, 5.0, 1.0], [0.2, 0.2, 1.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    face, t, bary = bvh.closest_hit(o, d)  # away, zero direction, beside, parallel to the plane
    assert face.tolist() == [-1] * 4 and bool((t == math.inf).all()) and bool((bary == 0).all())
    assert bvh.occluded(o, d, math.inf).tolist() == [False] * 4
    empty = TriangleBVH(verts, torch.zeros(0, 3, dtype=torch.int64))
    assert empty.closest_hit(o, d)[0].tolist() == [-1] * 4 and not bool(empty.occluded(o, d, 1e9).any())
    face, t, bary = bvh.closest_hit(torch.zeros(0, 3), torch.zeros(0, 3))
    assert face.shape == (0,) and t.shape == (0,) and bary.shape == (0, 3)


def test_refit_moves_the_hits():
    verts, faces = triangle_soup(100, seed=7)
    o, d = rays_at(verts, faces, 600, seed=8)
    bvh = TriangleBVH(verts, faces)
    g = torch.Generator().manual_seed(9)
    moved = verts + 0.3 * torch.randn(verts.shape, generator=g, dtype=verts.dtype)  # far: boxes must grow
    bvh.refit(moved)
    assert bvh.refit_count == 1
    face, t, bary = bvh.closest_hit(o, d)
    assert_agrees_with_reference(moved, faces, o, d, face, t, bary)


def test_cache_refits_for_moved_vertices_and_rebuilds_for_new_topology():
    verts, faces = triangle_soup(80, seed=10)
    o, d = rays_at(verts, faces, 400, seed=11)
    bvh = bvh_for(verts, faces)
    assert bvh_cache_info()["builds"] == 1
    assert bvh_for(verts, faces) is bvh and bvh_for(verts.detach().clone(), faces) is bvh  # same values
    assert bvh.refit_count == 0 and bvh_cache_info()["reuses"] == 2
    moved = verts + 0.05
    assert bvh_for(moved, faces) is bvh and bvh.refit_count == 1  # a refit, not a build
    assert bvh_for(moved, faces) is bvh and bvh.refit_count == 1  # unchanged since: nothing to do
    moved.add_(0.05)  # in place: the version counter says it changed
    assert bvh_for(moved.detach(), faces) is bvh and bvh.refit_count == 2
    face, t, bary = bvh.closest_hit(o, d)
    assert_agrees_with_reference(moved, faces, o, d, face, t, bary)
    assert bvh_cache_info()["builds"] == 1

    faces2 = faces.flip(1).contiguous()  # a new faces tensor: a new topology
    second = bvh_for(moved, faces2)
    assert second is not bvh and bvh_cache_info()["builds"] == 2
    faces2[0] = faces2[1]  # edited in place: rebuilt
    assert bvh_for(moved, faces2) is not second and bvh_cache_info()["builds"] == 3
    assert bvh_for(torch.cat([moved, moved[:1]]), faces) is not bvh  # another vertex count: rebuilt


def test_cache_drops_freed_topologies_and_stays_bounded():
    verts, faces = triangle_soup(20, seed=12)
    bvh_for(verts, faces.clone())  # the faces tensor dies at once
    gc.collect()
    assert bvh_cache_info()["size"] == 0
    kept = [faces.clone() for _ in range(bvh_module.CACHE_CAPACITY + 3)]
    for f in kept:
        bvh_for(verts, f)
    assert bvh_cache_info()["size"] == bvh_module.CACHE_CAPACITY
    assert bvh_cache_info()["builds"] == len(kept) + 1


def test_bad_inputs_are_refused_before_the_kernel():
    verts, faces = triangle_soup(4)
    with pytest.raises(ValueError, match="faces holds index 12"):
        TriangleBVH(verts, torch.tensor([[0, 1, 12]]))
    with pytest.raises(ValueError, match="verts contains NaN"):
        TriangleBVH(torch.full((3, 3), math.nan), torch.tensor([[0, 1, 2]]))
    with pytest.raises(TypeError, match="faces must have an integer dtype"):
        TriangleBVH(verts, faces.float())
    bvh = TriangleBVH(verts, faces)
    with pytest.raises(ValueError, match="origins and directions must have the same shape"):
        bvh.closest_hit(torch.zeros(4, 3), torch.ones(5, 3))
    with pytest.raises(ValueError, match=r"t_max must have shape \[4\]"):
        bvh.occluded(torch.zeros(4, 3), torch.ones(4, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"verts must have shape \[12, 3\]"):
        bvh.refit(verts[:5])


def test_a_cpu_query_is_split_across_threads(monkeypatch):
    """Both threads run a part of one query (the calling thread waits a moment in its first part, so the
    helper gets one however busy the machine), and the answer is the one of a single-thread launch."""
    verts, faces = triangle_soup(200, seed=13)
    o, d = rays_at(verts, faces, 20000, seed=14)
    bvh = TriangleBVH(verts, faces)
    monkeypatch.setattr(_runtime, "num_workers", lambda: 1)
    single = bvh.closest_hit(o, d)
    seen, launch = set(), _runtime.warp_launch
    caller = threading.get_ident()

    def recording_launch(*args, **kwargs):
        seen.add(threading.get_ident())
        if threading.get_ident() == caller and len(seen) == 1:
            threading.Event().wait(0.2)
        return launch(*args, **kwargs)

    monkeypatch.setattr(_runtime, "warp_launch", recording_launch)
    monkeypatch.setattr(_runtime, "num_workers", lambda: 2)
    split = bvh.closest_hit(o, d)
    assert len(seen) == 2
    for a, b in zip(single, split):
        assert torch.equal(a, b)
