"""Midpoint and Loop subdivision, icospheres."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.geometry.subdivide import icosphere, loop_subdivide, numbered_edges, subdivide_midpoint

F64 = torch.float64


def _signed_volume(v, f):
    return float((torch.linalg.cross(v[f[:, 0]], v[f[:, 1]]) * v[f[:, 2]]).sum() / 6)


def _directed_edge_counts(f):
    """Each directed edge of a closed, consistently wound manifold appears once, its reverse once."""
    d = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    uniq, counts = torch.unique(d, dim=0, return_counts=True)
    return uniq, counts


def _areas(v, f):
    return 0.5 * torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).norm(dim=-1)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_icosphere_counts_topology_radius_winding(n):
    v, f = icosphere(n, dtype=F64)
    V, F = 10 * 4 ** n + 2, 20 * 4 ** n
    assert v.shape == (V, 3) and f.shape == (F, 3) and f.dtype == torch.int64
    E = numbered_edges(f, V)[0].shape[0]
    assert V - E + F == 2
    torch.testing.assert_close(v.norm(dim=1), torch.ones(V, dtype=F64))
    uniq, counts = _directed_edge_counts(f)
    assert bool((counts == 1).all()) and uniq.shape[0] == 2 * E  # closed, manifold, consistently wound
    assert _signed_volume(v, f) > 0
    centroid = v[f].mean(1)
    normal = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert bool(((normal * centroid).sum(1) > 0).all())  # every face counter-clockwise from outside
    assert len(torch.unique(f)) == V


def test_icosphere_volume_radius_dtype():
    v, f = icosphere(4, radius=2.0, dtype=F64)
    assert abs(_signed_volume(v, f) - 4 / 3 * math.pi * 8) / (4 / 3 * math.pi * 8) < 0.01
    torch.testing.assert_close(v.norm(dim=1), torch.full((2562,), 2.0, dtype=F64))
    v32, _ = icosphere(1)
    assert v32.dtype == torch.float32
    for bad, err in ((-1, ValueError), (1.5, TypeError)):
        with pytest.raises(err, match="subdivisions"):
            icosphere(bad)
    with pytest.raises(ValueError, match="radius"):
        icosphere(1, radius=0.0)


def test_midpoint_closed_mesh():
    v, f = icosphere(1, dtype=F64)
    edges, face_edges = numbered_edges(f, v.shape[0])
    nv, nf = subdivide_midpoint(v, f)
    V, E, F = v.shape[0], edges.shape[0], f.shape[0]
    assert nv.shape == (V + E, 3) and nf.shape == (4 * F, 3)
    torch.testing.assert_close(nv[:V], v, rtol=0, atol=0)
    torch.testing.assert_close(nv[V:], 0.5 * (v[edges[:, 0]] + v[edges[:, 1]]))
    # each midpoint is used by the 2 faces on its edge: 3 corner children + 1 middle child each
    uses = torch.bincount(nf.reshape(-1), minlength=V + E)
    assert bool((uses[V:] == 6).all()) and torch.equal(uses[:V], torch.bincount(f.reshape(-1), minlength=V))
    # still closed and consistently wound (no cracks), same surface: area and volume unchanged
    uniq, counts = _directed_edge_counts(nf)
    assert bool((counts == 1).all())
    assert (V + E) - numbered_edges(nf, V + E)[0].shape[0] + 4 * F == 2
    torch.testing.assert_close(_areas(nv, nf).reshape(F, 4), _areas(v, f)[:, None].expand(F, 4) / 4)
    assert abs(_signed_volume(nv, nf) - _signed_volume(v, f)) < 1e-12
    # children keep the parent's orientation
    n_parent = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n_child = torch.linalg.cross(nv[nf[:, 1]] - nv[nf[:, 0]], nv[nf[:, 2]] - nv[nf[:, 0]]).reshape(F, 4, 3)
    assert bool(((n_child * n_parent[:, None]).sum(-1) > 0).all())


def test_midpoint_open_mesh_isolated_vertex_and_attrs():
    # a unit square of two triangles plus an isolated vertex (index 4), with per-vertex uv
    v = torch.tensor([[0., 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [5, 5, 5]], dtype=F64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    uv = v[:, :2].clone()
    nv, nf, nuv = subdivide_midpoint(v, f, attrs=uv)
    assert nv.shape == (5 + 5, 3) and nf.shape == (8, 3) and nf.dtype == torch.int32
    assert torch.equal(nv[4], v[4]) and 4 not in nf.tolist()[0]
    assert not bool((nf == 4).any())
    torch.testing.assert_close(nuv, nv[:, :2])
    assert abs(float(_areas(nv, nf.long()).sum()) - 1.0) < 1e-12
    # the shared diagonal's midpoint (0.5, 0.5, 0) exists once and is used by both halves
    centre = ((nv - torch.tensor([0.5, 0.5, 0.0], dtype=F64)).norm(dim=1) < 1e-12).nonzero().reshape(-1)
    assert centre.numel() == 1 and int((nf == centre).sum()) == 6


def test_midpoint_batched_and_differentiable():
    v, f = icosphere(0, dtype=F64)
    vb = torch.stack([v, 2 * v])
    nv, nf = subdivide_midpoint(vb, f)
    torch.testing.assert_close(nv[1], 2 * nv[0])
    x = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: subdivide_midpoint(t, f)[0], (x,))


def test_subdivide_bad_inputs():
    v, f = icosphere(0, dtype=F64)
    with pytest.raises(ValueError, match="faces"):
        subdivide_midpoint(v, torch.tensor([[0, 1, 12]]))
    with pytest.raises(ValueError, match="faces"):
        loop_subdivide(v, torch.tensor([[0, -1, 2]]))
    bad = v.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="verts"):
        subdivide_midpoint(bad, f)
    with pytest.raises(ValueError, match="attrs"):
        subdivide_midpoint(v, f, attrs=torch.zeros(11, 2, dtype=F64))
    with pytest.raises(TypeError, match="faces"):
        subdivide_midpoint(v, f.double())


def test_loop_subdivide():
    v, f = icosphere(0, dtype=F64)
    nv, nf = loop_subdivide(v, f)
    assert nv.shape == (42, 3) and torch.equal(nf, subdivide_midpoint(v, f)[1])
    r = nv.norm(dim=1)  # by symmetry: one radius for the 12 old vertices, one for the 30 edge vertices
    assert float(r[:12].max() - r[:12].min()) < 1e-12 and float(r[12:].max() - r[12:].min()) < 1e-12
    # old vertex, valence 5: (1 - 5 beta) v + beta * sum of 5 neighbours, each at cosine 1/sqrt(5) from v
    beta = (5 / 8 - (3 / 8 + 0.25 * math.cos(2 * math.pi / 5)) ** 2) / 5
    assert abs(float(r[0]) - (1 - 5 * beta + 5 * beta / math.sqrt(5))) < 1e-12
    assert float(r.max()) < 1.0  # Loop shrinks a convex polyhedron
    # weights sum to one: translation commutes, an open planar grid stays planar, boundary stays on boundary
    t = torch.tensor([0.3, -2.0, 5.0], dtype=F64)
    torch.testing.assert_close(loop_subdivide(v + t, f)[0], nv + t)
    g = torch.tensor([[0., 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0], [1, 1, 0], [2, 1, 0]], dtype=F64)
    gf = torch.tensor([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4]])
    gv, _ = loop_subdivide(g, gf)
    assert float(gv[:, 2].abs().max()) == 0.0
    assert float(gv[:, 0].min()) == 0.0 and float(gv[:, 0].max()) == 2.0 and float(gv[:, 1].max()) == 1.0
    x = g.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loop_subdivide(t, gf)[0], (x,))
