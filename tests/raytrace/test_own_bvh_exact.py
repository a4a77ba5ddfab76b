"""The own BVH's traversal against itself one triangle at a time: its culling of boxes never loses the closest
hit, bit for bit. A BVH over a single triangle runs the same float32 watertight test as the tree's leaves, so the
tree's ``t`` must equal the least ``t`` over the one-triangle BVHs exactly, its face must be one of the
triangles hit at that ``t`` (several only on ties: rays through shared edges and vertices), with that
triangle's barycentrics, and any-hit must agree with "closest hit found" on every ray. These are the properties
a change of the traversal's order (wide nodes, SIMD lanes) must keep; the meshes include shared edges and
vertices of coplanar quads (exact ties), zero-area triangles, and rays through vertices and along edges. Each test
runs on the tree alone and with the SIMD lanes of small meshes in front of it (``LANES_MAX_FACES``)."""

from __future__ import annotations

import math

import pytest
import torch

import lumigrad.kernels.bvh as bvh_module
from lumigrad.geometry.subdivide import icosphere
from lumigrad.kernels.bvh import TriangleBVH

from .scenes import rays_at, triangle_soup


@pytest.fixture(autouse=True, params=["tree", "lanes"])
def form(request, monkeypatch):
    """The own BVH's tree alone, or its SIMD lanes (every mesh here) with the tree behind them."""
    monkeypatch.setattr(bvh_module, "LANES_MAX_FACES", -1 if request.param == "tree" else 2**62)
    return request.param


def quad_grid(n: int = 4):
    """``n x n`` unit quads in the plane z = 0, two triangles each (shared diagonals and edges): ``(verts, faces)``."""
    ticks = torch.arange(n + 1, dtype=torch.float32)
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    verts = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros((n + 1) ** 2)], dim=1)
    i = torch.arange(n).repeat(n)
    j = torch.arange(n).repeat_interleave(n)
    a = j * (n + 1) + i
    quads = torch.stack([a, a + 1, a + n + 2, a + n + 1], dim=1)
    return verts, torch.cat([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])


def with_degenerate(verts, faces):
    """Add zero-area triangles over the mesh: a repeated vertex, and three vertices on a line through it."""
    extra = torch.stack([verts[faces[:, 0]].mean(0), verts[faces[:, 1]].mean(0), verts[faces[:, 2]].mean(0)])
    line = extra[:1] + torch.tensor([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.5, 0.0, 0.0]])
    V = verts.shape[0]
    new = torch.tensor([[V, V, V + 1], [V + 2, V + 3, V + 4]])
    return torch.cat([verts, extra[:2], line]), torch.cat([faces, new])


def meshes():
    soup = triangle_soup(24, seed=4, dtype=torch.float32)
    grid = quad_grid()
    ball = icosphere(1)  # 80 triangles
    return {"soup": with_degenerate(*soup), "grid": with_degenerate(*grid), "ball": ball}


def exact_rays(verts, faces):
    """Random rays at the mesh, rays from above through every vertex and edge midpoint, and rays along edges."""
    o, d = rays_at(verts.double(), faces, 600, seed=11)
    corners = verts[faces]                                                   # [F, 3, 3]
    targets = torch.cat([verts, (corners + corners.roll(1, dims=1)).reshape(-1, 3) / 2])
    g = torch.Generator().manual_seed(12)
    above = targets + torch.tensor([0.1, -0.2, 3.0]) + 0.05 * torch.randn(targets.shape, generator=g)
    along_o = corners[:, 0] - (corners[:, 1] - corners[:, 0])                 # on the line of edge 0 -> 1
    along_d = corners[:, 1] - corners[:, 0]
    return (torch.cat([o.float(), above, along_o]).contiguous(),
            torch.cat([d.float(), targets - above, along_d]).contiguous())


@pytest.mark.parametrize("name", ["soup", "grid", "ball"])
def test_the_tree_finds_the_least_t_of_its_own_triangle_test_bit_for_bit(name):
    verts, faces = meshes()[name]
    o, d = exact_rays(verts, faces)
    t_max = torch.where(torch.arange(o.shape[0]) % 3 == 0, torch.full((o.shape[0],), 2.5), torch.full((o.shape[0],), math.inf))
    tree = TriangleBVH(verts, faces, engine="own")
    face, t, bary = tree.closest_hit(o, d, t_max)
    per_face = [TriangleBVH(verts, faces[k:k + 1], engine="own").closest_hit(o, d, t_max) for k in range(faces.shape[0])]
    t_each = torch.stack([t_k for _, t_k, _ in per_face], dim=1)             # [R, F], inf where missed
    bary_each = torch.stack([b_k for _, _, b_k in per_face], dim=1)          # [R, F, 3]
    least = t_each.min(dim=1).values
    assert torch.equal(t, least)                                            # the same float32 values, inf on a miss
    hit = face >= 0
    assert torch.equal(hit, torch.isfinite(least))
    rows = hit.nonzero()[:, 0]
    assert torch.equal(t_each[rows, face[rows]], t[rows])                   # the face reported is one at the least t
    assert torch.equal(bary_each[rows, face[rows]], bary[rows])             # with its own barycentrics
    assert torch.isfinite(bary).all() and torch.isfinite(t[hit]).all()      # no NaN anywhere
    assert int((t_each[rows] == least[rows, None]).sum(dim=1).max()) >= (2 if name == "grid" else 1)
    assert torch.equal(tree.occluded(o, d, t_max), hit)                     # any-hit: "a closest hit exists"


def test_refit_keeps_the_tree_exact_after_the_vertices_move():
    verts, faces = meshes()["ball"]
    tree = TriangleBVH(verts, faces, engine="own")
    g = torch.Generator().manual_seed(13)
    moved = verts * (1 + 0.3 * torch.rand(verts.shape[0], 1, generator=g)) + 0.2
    tree.refit(moved)
    o, d = exact_rays(moved, faces)
    face, t, _ = tree.closest_hit(o, d)
    fresh = TriangleBVH(moved, faces, engine="own")
    least = torch.stack([TriangleBVH(moved, faces[k:k + 1], engine="own").closest_hit(o, d)[1]
                         for k in range(faces.shape[0])], dim=1).min(dim=1).values
    assert torch.equal(t, least) and torch.equal(t, fresh.closest_hit(o, d)[1])
    assert torch.equal(tree.occluded(o, d), face >= 0)
