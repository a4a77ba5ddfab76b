"""The own BVH's SIMD lanes (``kernels/bvh_native.py``: every triangle of a tiny CPU mesh tested 16 at a time in
native C++) against the tree traversal they stand in for: the same faces, the same ``t`` and barycentric bits
and the same any-hit answers on random rays and on adversarial ones (rays through shared vertices and edges of
coplanar quads, where ties decide the face; rays along edges and in a triangle's plane, where edge functions are
exactly 0; zero-area triangles; axis-aligned rays), in one block and over several, before and after a refit.
The lanes hand such rays to the tree; a kernel here counts that they do. Where the native build is unavailable
the tree answers alone, with a warning."""

from __future__ import annotations

import math

import pytest
import torch
import warp as wp

import lumigrad.kernels.bvh as bvh_module
from lumigrad.kernels.bvh import TriangleBVH
from lumigrad.kernels.bvh_native import FALLBACK, LANE_WIDTH, any_hit_lanes, closest_hit_lanes
from lumigrad.kernels.bvh_traverse import FlatBVH
from lumigrad.kernels.ray_queries import USE_LANES

from .scenes import triangle_soup
from .test_own_bvh_exact import exact_rays, meshes, quad_grid, with_degenerate


def _bvh(verts, faces, lanes: bool, monkeypatch) -> TriangleBVH:
    """An own BVH with the lanes (whatever its size) or without them."""
    with monkeypatch.context() as m:
        m.setattr(bvh_module, "LANES_MAX_FACES", 2**62 if lanes else -1)
        bvh = TriangleBVH(verts, faces, engine="own")
    assert bvh.query_handles()[2] == (USE_LANES if lanes else 1)
    return bvh


def cornell_walls():
    """The path tracer's Cornell box (``benchmarks/pathtrace.py``): 5 axis-aligned unit walls and the lamp's quad."""
    quads = [[[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]], [[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]],
             [[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], [[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]],
             [[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]],
             [[-0.25, 0.99, -0.25], [0.25, 0.99, -0.25], [0.25, 0.99, 0.25], [-0.25, 0.99, 0.25]]]
    verts = torch.tensor(quads, dtype=torch.float32).reshape(-1, 3)
    a = torch.arange(0, verts.shape[0], 4)[:, None]
    return verts, torch.cat([a + torch.tensor([0, 1, 2]), a + torch.tensor([0, 2, 3])])


def adversarial_rays(verts, faces, seed: int = 21):
    """:func:`exact_rays` plus rays in the plane of each triangle (from a point of its plane towards another),
    axis-aligned rays through vertices, and rays between two uniform points of the bounding box."""
    o, d = exact_rays(verts, faces)
    g = torch.Generator().manual_seed(seed)
    c = verts[faces]                                                          # [F, 3, 3]
    w = torch.rand(faces.shape[0], 2, 2, generator=g)
    p = c[:, :1] + w[..., :1] * (c[:, 1:2] - c[:, :1]) + w[..., 1:] * (c[:, 2:3] - c[:, :1])  # 2 points a plane
    in_plane_o, in_plane_d = 2 * p[:, 0] - p[:, 1], p[:, 1] - p[:, 0]
    axes = torch.eye(3).repeat(verts.shape[0], 1) * torch.where(torch.arange(3 * verts.shape[0]) % 2 == 0, 1.0, -1.0)[:, None]
    axis_o = verts.repeat_interleave(3, 0) - 2 * axes
    lo, hi = verts.min(0).values, verts.max(0).values
    a, b = (lo + (hi - lo) * torch.rand(2000, 3, generator=g) for _ in range(2))
    return (torch.cat([o, in_plane_o, axis_o, a]).contiguous(),
            torch.cat([d, in_plane_d, axes, b - a]).contiguous())


def shuffled_grid(n: int = 6):
    """:func:`quad_grid` with its faces in random order: on a tie the tree reports the triangle it visits first,
    which is then often not the one of least index."""
    verts, faces = quad_grid(n)
    return verts, faces[torch.randperm(faces.shape[0], generator=torch.Generator().manual_seed(8))]


def scenes():
    box = cornell_walls()
    return {"box": box, "box_degenerate": with_degenerate(*box), **meshes(), "grid_shuffled": shuffled_grid(),
            "two_blocks": with_degenerate(*triangle_soup(2 * LANE_WIDTH - 3, seed=5, dtype=torch.float32))}


def _answers(bvh: TriangleBVH, o, d, t_max):
    return (*bvh.closest_hit(o, d, t_max), bvh.occluded(o, d, t_max))


@pytest.mark.parametrize("name", list(scenes()))
def test_lanes_answer_as_the_tree_bit_for_bit(name, monkeypatch):
    verts, faces = scenes()[name]
    o, d = adversarial_rays(verts, faces)
    R = o.shape[0]
    lanes, tree = _bvh(verts, faces, True, monkeypatch), _bvh(verts, faces, False, monkeypatch)
    face_t = tree.closest_hit(o, d)[1]
    exact = torch.where(torch.isfinite(face_t), face_t, torch.full_like(face_t, 1.0))  # t_max equal to a hit's t
    for t_max in (math.inf, torch.rand(R, generator=torch.Generator().manual_seed(3)) * 3, exact):
        got, want = _answers(lanes, o, d, t_max), _answers(tree, o, d, t_max)
        for a, b, what in zip(got, want, ("face", "t", "barycentrics", "occluded")):
            assert torch.equal(a, b), f"{name}: {what} differ on {int((a != b).reshape(R, -1).any(1).sum())} rays"
    assert float((face_t < math.inf).float().mean()) > 0.15  # many rays do hit


@wp.kernel
def _count_fallbacks(own: FlatBVH, o: wp.array(dtype=wp.vec3), d: wp.array(dtype=wp.vec3),
                     out: wp.array(dtype=wp.int32)):
    i = wp.tid()
    h = closest_hit_lanes(own.lanes, own.num_faces, o[i], d[i], wp.inf)
    a = any_hit_lanes(own.lanes, own.num_faces, o[i], d[i], wp.inf)
    out[i] = wp.where(int(h[3]) == FALLBACK, 1, 0) + wp.where(a == FALLBACK, 2, 0)


def _fallbacks(bvh: TriangleBVH, o, d) -> torch.Tensor:
    out = torch.zeros(o.shape[0], dtype=torch.int32)
    wp.launch(_count_fallbacks, o.shape[0], inputs=[bvh.query_handles()[1], wp.from_torch(o, wp.vec3),
                                                    wp.from_torch(d, wp.vec3), wp.from_torch(out)], device="cpu")
    return out


def test_ties_and_zero_edge_functions_go_to_the_tree_and_little_else(monkeypatch):
    """The shuffled grid's rays through shared vertices and edges (ties) and the box's in-plane rays (edge
    functions 0; one block, tested without its box) are handed to the tree; of rays between random points of the
    box, almost none are. (The grid's in-plane rays mostly skip its flat blocks' boxes, as the tree's flat boxes.)"""
    verts, faces = shuffled_grid()
    o, d = adversarial_rays(verts, faces)
    R0 = exact_rays(verts, faces)[0].shape[0]
    ties = _fallbacks(_bvh(verts, faces, True, monkeypatch), o, d)[600:R0]  # 600 random rays, then the vertices...
    assert int(((ties & 1) > 0).sum()) > 10
    verts, faces = cornell_walls()
    box = _bvh(verts, faces, True, monkeypatch)
    o, d = adversarial_rays(verts, faces)
    R0 = exact_rays(verts, faces)[0].shape[0]
    in_plane = _fallbacks(box, o[R0:R0 + faces.shape[0]].contiguous(), d[R0:R0 + faces.shape[0]].contiguous())
    assert bool(((in_plane & 1) > 0).all())  # any-hit may instead return a clean hit of another wall
    assert int(((in_plane & 2) > 0).sum()) > 0
    assert int((_fallbacks(box, o[-2000:].contiguous(), d[-2000:].contiguous()) > 0).sum()) <= 20


@pytest.mark.parametrize("twin", [1, LANE_WIDTH], ids=["same_block", "next_block"])
def test_a_tie_of_t_goes_to_the_tree(twin, monkeypatch):
    """The same triangle at faces 0 and ``twin`` (in the same block, or in the next one) is hit at the same ``t``
    with non-zero edge functions: the lanes report the tie instead of picking a face; the answers stay the tree's."""
    soup, soup_faces = triangle_soup(twin + 1, seed=9, dtype=torch.float32)
    verts = torch.cat([soup + 5.0, torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])])
    faces = soup_faces.clone()
    faces[0] = faces[twin] = torch.tensor([0, 1, 2]) + soup.shape[0]
    g = torch.Generator().manual_seed(10)
    target = torch.cat([0.3 * torch.rand(50, 2, generator=g), torch.zeros(50, 1)], dim=1)
    o = (target + torch.tensor([0.1, 0.2, 1.0])).contiguous()
    d = (target - o).contiguous()
    bvh = _bvh(verts, faces, True, monkeypatch)
    assert bool((_fallbacks(bvh, o, d) == 1).all())  # closest: the tie; any-hit: a clean hit
    for a, b in zip(_answers(bvh, o, d, math.inf), _answers(_bvh(verts, faces, False, monkeypatch), o, d, math.inf)):
        assert torch.equal(a, b)


def test_refit_moves_the_lanes_with_the_tree(monkeypatch):
    verts, faces = cornell_walls()
    lanes = _bvh(verts, faces, True, monkeypatch)
    moved = verts * 1.3 + torch.tensor([0.2, -0.1, 0.05])
    lanes.refit(moved)
    o, d = adversarial_rays(moved, faces)
    fresh = _bvh(moved, faces, False, monkeypatch)
    for a, b in zip(_answers(lanes, o, d, math.inf), _answers(fresh, o, d, math.inf)):
        assert torch.equal(a, b)


def test_auto_uses_the_lanes_up_to_their_limit():
    for F, lanes in ((bvh_module.LANES_MAX_FACES, True), (bvh_module.LANES_MAX_FACES + 1, False)):
        verts, faces = triangle_soup(F, seed=6, dtype=torch.float32)
        bvh = TriangleBVH(verts, faces)
        expected = USE_LANES if lanes else (1 if F <= bvh_module.OWN_BVH_MAX_FACES else 0)
        assert bvh.query_handles()[2] == expected


def test_without_the_native_build_the_tree_answers_with_a_warning(monkeypatch):
    """A probe that fails to build (as on a Warp whose compiler lacks clang's vector types) turns the lanes off
    for the process with a warning; the tree gives the same answers."""
    monkeypatch.setitem(bvh_module.NATIVE_LANES, "cpu", True)
    monkeypatch.setattr(bvh_module, "_lanes_probed", {})

    def broken(device):
        raise RuntimeError("error: unknown type name 'ext_vector_type'")
    monkeypatch.setattr(bvh_module, "probe_lanes", broken)
    verts, faces = cornell_walls()
    o, d = adversarial_rays(verts, faces)
    bvh = TriangleBVH(verts, faces, engine="own")
    with pytest.warns(RuntimeWarning, match="native SIMD ray queries are unavailable"):
        got = _answers(bvh, o, d, math.inf)
    assert not bvh_module.NATIVE_LANES["cpu"] and bvh.query_handles()[2] == 1
    monkeypatch.setitem(bvh_module.NATIVE_LANES, "cpu", True)
    monkeypatch.setattr(bvh_module, "_lanes_probed", {})
    monkeypatch.undo()
    want = _answers(_bvh(verts, faces, True, pytest.MonkeyPatch()), o, d, math.inf)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_the_native_code_is_compiled_in_on_this_cpu():
    """The probe reports the lanes compiled in (clang of Warp's CPU back end): otherwise every test above would
    compare the tree with itself."""
    assert bvh_module.lanes_usable("cpu")
