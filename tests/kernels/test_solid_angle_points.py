"""The Warp twin of the area light's solid-angle points (``kernels/solid_angle_points.py``) against its PyTorch
reference (``shading.emitters.area_light_solid_angle_points_unchecked``) in float64: the same triangles, the same
seen / unseen points, and points and densities as close to float64 as PyTorch's own float32 gets (spherical-
triangle sampling loses digits in float32 near a triangle's plane, in both); and the area-parameterised next event
that uses it for float32 scenes against the float64 one."""

import pytest
import torch

from lumigrad.kernels.solid_angle_points import solid_angle_points
from lumigrad.shading.emitters import area_light_solid_angle_points_unchecked as reference

F64 = torch.float64
#: a 1 x 1 lamp 1.1 above a floor, facing up (the points above it see it), not planar (its triangles tilt
#: differently)
VERTS = torch.tensor([[-0.5, 1.1, -0.5], [0.5, 1.1, -0.5], [0.6, 1.2, 0.5], [-0.5, 1.1, 0.5]], dtype=F64)
FACES = torch.tensor([[0, 2, 1], [0, 3, 2]])


def _points(k, bary):
    tri = VERTS[FACES[k]]
    bary = bary.double()
    return tri[:, 0] + bary[:, :1] * (tri[:, 1] - tri[:, 0]) + bary[:, 1:] * (tri[:, 2] - tri[:, 0])


@pytest.mark.parametrize("two_sided", [False, True])
def test_points_match_the_reference(two_sided):
    g = torch.Generator().manual_seed(0)
    P = 20000
    x = torch.rand(P, 3, generator=g, dtype=F64) * 4 - 2
    x[:, 1] = torch.rand(P, generator=g, dtype=F64) * 2.4 - 0.2  # below, beside and above the lamp
    u = torch.rand(P, 2, generator=g, dtype=F64)
    k64, b64, d64 = reference(x, VERTS, FACES, u, two_sided=two_sided)
    k32, b32, d32 = reference(x.float(), VERTS.float(), FACES, u.float(), two_sided=two_sided)
    k, b, d = solid_angle_points(x.float(), VERTS.float(), FACES, u.float(), two_sided=two_sided)
    assert k.dtype == torch.long and b.dtype == torch.float32 and d.dtype == torch.float32
    seen = d64 > 0
    assert torch.equal(d > 0, seen) and int(seen.sum()) > 1000
    assert torch.equal(k[seen], k64[seen])
    y64 = _points(k64, b64)[seen]
    err, err_torch = ((_points(k, b)[seen] - y64).norm(dim=-1), (_points(k32, b32)[seen] - y64).norm(dim=-1))
    rel, rel_torch = ((d.double() - d64) / d64)[seen].abs(), ((d32.double() - d64) / d64)[seen].abs()
    assert float(err.median()) < 1e-5 and float(rel.median()) < 1e-5  # (measured: 2.6e-6 one-sided)
    for q in (0.5, 0.9, 0.99, 0.999):
        assert float(err.quantile(q)) <= 1.5 * float(err_torch.quantile(q)) + 1e-6, q
        assert float(rel.quantile(q)) <= 1.5 * float(rel_torch.quantile(q)) + 1e-6, q
    assert torch.equal(d[~seen], torch.zeros_like(d[~seen]))


def test_empty():
    k, b, d = solid_angle_points(torch.zeros(0, 3), VERTS.float(), FACES, torch.zeros(0, 2))
    assert k.shape == (0,) and b.shape == (0, 2) and d.shape == (0,)


def test_float32_next_event_matches_float64():
    """``area_next_event`` of a float32 scene (points from the Warp twin) against the same scene in float64
    (PyTorch reference), the same random numbers: the values and the gradient w.r.t. the lamp's vertices summed
    over 3,000 shading points on a floor under the lamp."""
    import lumigrad as lg
    from lumigrad.integrators.path import _trace_scene
    from lumigrad.kernels.bvh import bvh_for
    from lumigrad.raytrace.area_next_event import area_light_indices, area_next_event
    from lumigrad.raytrace.transport import surface_at
    from lumigrad.shading import Material
    from lumigrad.shading.transmission import bsdf_for

    g = torch.Generator().manual_seed(1)
    xz = torch.rand(3000, 2, generator=g, dtype=F64) * 3 - 1.5
    u = torch.rand(3000, 2, generator=g, dtype=F64)
    out = {}
    for dtype in (torch.float32, F64):
        scene = lg.Scene()
        floor = torch.tensor([[-2, 0, -2], [2, 0, -2], [2, 0, 2], [-2, 0, 2]], dtype=dtype)
        scene.add_mesh("floor", lg.SceneMesh(floor, torch.tensor([[0, 2, 1], [0, 3, 2]]), Material(
            base_color_factor=torch.tensor([0.7, 0.5, 0.3, 1.0], dtype=dtype), metallic_factor=0.0,
            roughness_factor=0.6, ior=1.5)))
        verts = VERTS.to(dtype).requires_grad_()
        down = torch.tensor([[0, 1, 2], [0, 2, 3]])  # facing the floor
        scene.add_light("lamp", lg.AreaLight(verts, down, torch.tensor([2.0, 1.0, 0.5], dtype=dtype)))
        ts = _trace_scene(scene)
        o = torch.stack([xz[:, 0], torch.full_like(xz[:, 0], 0.5), xz[:, 1]], -1).to(dtype)
        d = torch.tensor([0.0, -1.0, 0.0], dtype=dtype).expand_as(o)
        bvh = bvh_for(ts.verts.detach(), ts.faces)
        face, _, _ = bvh.closest_hit(o, d)
        si, _, ng, _ = surface_at(ts, face, o, d)
        est = area_next_event(ts, bvh, bsdf_for(si), si, ng, u.to(dtype), area_light_indices(ts))
        out[dtype] = (est.detach().double(), torch.autograd.grad(est.sum(), verts)[0].double())
    (v32, g32), (v64, g64) = out[torch.float32], out[F64]
    assert float(v64.sum()) > 0 and float(g64.abs().max()) > 0
    assert torch.allclose(v32.sum(0), v64.sum(0), rtol=1e-4), (v32.sum(0), v64.sum(0))
    assert float((g32 - g64).norm() / g64.norm()) < 1e-4, (g32, g64)
