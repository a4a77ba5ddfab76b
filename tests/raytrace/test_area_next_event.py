"""Area-parameterised next-event estimation (the adjoint pass's direct light from area lights: points drawn by
solid angle, held at their barycentrics): its mean and the mean of its gradient against a converged
deterministic quadrature of the lamp, and gradchecks for a fixed choice of points."""

import torch

import lumigrad as lg
from lumigrad.integrators.path import _trace_scene
from lumigrad.kernels.bvh import bvh_for
from lumigrad.raytrace.area_next_event import (area_choice, area_light_indices, area_light_term, area_next_event,
                                                area_points)
from lumigrad.raytrace.transport import surface_at
from lumigrad.shading import Material
from lumigrad.shading.area_light import area_light_unchecked
from lumigrad.shading.transmission import bsdf_for

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
POINTS = torch.tensor([[0.0, 0.0], [0.7, -0.4], [-1.2, 0.9]], dtype=F64)  # (x, z) on the floor


def _lamp_verts():
    """A 1 x 1 lamp 1.1 above the floor, facing down, slightly uneven (its two triangles differ in area)."""
    return torch.tensor([[-0.5, 1.1, -0.5], [0.5, 1.1, -0.5], [0.6, 1.2, 0.5], [-0.5, 1.1, 0.5]], dtype=F64)


def _setup(lamp_verts, radiance, rough=0.6):
    scene = lg.Scene()
    floor = torch.tensor([[-2, 0, -2], [2, 0, -2], [2, 0, 2], [-2, 0, 2]], dtype=F64)
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(
        base_color_factor=torch.tensor([0.7, 0.5, 0.3, 1.0], dtype=F64), metallic_factor=0.0,
        roughness_factor=rough, ior=1.5)))
    light = lg.AreaLight(lamp_verts, torch.tensor([[0, 1, 2], [0, 2, 3]]), radiance)
    scene.add_light("lamp", light)
    ts = _trace_scene(scene)
    return ts, light


def _surface(ts, rows_per_point):
    """The floor's surface at :data:`POINTS`, each repeated ``rows_per_point`` times (rays straight down)."""
    xz = POINTS.repeat_interleave(rows_per_point, 0)
    o = torch.stack([xz[:, 0], torch.full_like(xz[:, 0], 0.5), xz[:, 1]], -1)
    d = torch.tensor([0.0, -1.0, 0.0], dtype=F64).expand_as(o)
    bvh = bvh_for(ts.verts.detach(), ts.faces)
    face, _, _ = bvh.closest_hit(o, d)
    si, _, ng, _ = surface_at(ts, face, o, d)
    return bvh, si, ng


def _quadrature(ts, light, si, samples_per_face=1024):
    """``[N, 3]``: the lamp's direct light by a deterministic quadrature of ``samples_per_face`` points per face
    (differentiable in the lamp's vertices; relative error about 1e-4 here, see :func:`lumigrad.area_light`)."""
    samples = area_light_unchecked(si.position, light.verts, light.faces, light.radiance,
                                   samples_per_face=samples_per_face)
    wi = torch.stack([s.wi for s in samples])  # [S, N, 3]
    L = torch.stack([s.L for s in samples])
    S, N = wi.shape[:2]
    rep = si.map(lambda t: t[None].expand(S, *t.shape).reshape(S * N, *t.shape[1:]))
    wi, L = wi.reshape(S * N, 3), L.reshape(S * N, -1)
    f = bsdf_for(rep).eval(rep, wi) * (rep.normal * wi).sum(-1, keepdim=True).clamp_min(0) * L
    return f.reshape(S, N, -1).sum(0)


def test_area_points_value_is_radiance_times_area():
    """``L_e A_k / P_k`` is ``L_e A`` whatever triangle was drawn (the lamp's two triangles differ in area); the
    points lie on their triangles."""
    verts = _lamp_verts()
    _, light = _setup(verts, torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    k, bary, prob = area_choice(light, torch.tensor([[0.1, 0.3], [0.7, 0.1], [0.999, 0.0]], dtype=F64))
    bary[2] = 0.0
    y, n, le = area_points(light, k, bary, prob)
    tri = verts[QUAD]
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1).sum()
    assert torch.allclose(le, torch.tensor([1.0, 2.0, 3.0], dtype=F64) * area, rtol=1e-12)
    assert k.tolist() == [0, 1, 1]
    assert torch.allclose(y[2], verts[0], atol=1e-15)  # barycentrics (0, 0): the triangle's first corner
    assert torch.allclose(n[:, 1], -torch.ones(3, dtype=F64), atol=0.02)  # facing down


def test_mean_and_gradient_match_the_quadrature():
    """Over 8192 samples per point (float64), the estimate's mean and the mean of its gradient w.r.t. the lamp's
    vertices (every coordinate, a non-rigid motion included) and radiance agree with a 1024-points-per-face
    quadrature within 4 standard errors (measured from 16 batches)."""
    verts = _lamp_verts().requires_grad_()
    radiance = torch.tensor([2.0, 1.0, 0.5], dtype=F64, requires_grad=True)
    ts, light = _setup(verts, radiance)
    batches, per_batch = 16, 512
    values, grads = [], []
    for b in range(batches):
        bvh, si, ng = _surface(ts, per_batch)
        u = torch.rand(si.position.shape[0], 2, generator=torch.Generator().manual_seed(b), dtype=F64)
        est = area_next_event(ts, bvh, bsdf_for(si), si, ng, u, area_light_indices(ts))
        est = est.reshape(len(POINTS), per_batch, 3).mean(1)  # [points, 3]
        g = torch.autograd.grad(est.sum(), (verts, radiance), retain_graph=True)
        values.append(est.detach())
        grads.append(torch.cat([g[0].reshape(-1), g[1]]))
    values, grads = torch.stack(values), torch.stack(grads)
    _, si, _ = _surface(ts, 1)
    ref = _quadrature(ts, light, si)
    ref_grad = torch.autograd.grad(ref.sum(), (verts, radiance))
    ref_grad = torch.cat([ref_grad[0].reshape(-1), ref_grad[1]])
    se = values.std(0) / batches ** 0.5
    assert bool((ref > 0.004).all())
    assert bool(((values.mean(0) - ref.detach()).abs() < 4 * se + 1e-9).all()), (values.mean(0), ref, se)
    g_se = grads.std(0) / batches ** 0.5
    assert bool(((grads.mean(0) - ref_grad).abs() < 4 * g_se + 1e-9).all()), (grads.mean(0), ref_grad, g_se)
    assert float(ref_grad.abs().max()) > 10 * float(g_se.max())  # the test can tell a wrong gradient


def test_gradcheck_in_the_lamp_and_the_receiver():
    """Finite differences for fixed random numbers (float64): the lamp's points and ``L_e A_k / P_k`` in its
    vertices and radiance (for a fixed choice: triangle, barycentrics, probability), and the estimate in the
    floor's height (the shading point moves)."""
    k = torch.tensor([0, 1, 1])
    bary = torch.tensor([[0.2, 0.3], [0.5, 0.1], [0.25, 0.6]], dtype=F64)
    prob = torch.tensor([0.45, 0.55, 0.55], dtype=F64)

    def points(lamp, radiance):
        return area_points(lg.AreaLight(lamp, QUAD, radiance), k, bary, prob)

    lamp = (_lamp_verts().requires_grad_(), torch.tensor([2.0, 1.0, 0.5], dtype=F64, requires_grad=True))
    assert torch.autograd.gradcheck(points, lamp, eps=1e-6, atol=1e-8, rtol=1e-6)
    prob = torch.tensor([0.3, 0.0, 0.8], dtype=F64)  # the second point unusable (density 0): a zero term

    def estimate(lift):
        ts, light = _setup(_lamp_verts(), torch.tensor([2.0, 1.0, 0.5], dtype=F64))
        ts.verts = ts.verts + torch.stack([torch.zeros_like(lift), lift, torch.zeros_like(lift)]) * (
            torch.arange(ts.verts.shape[0]) < 4)[:, None]  # the floor's four vertices go up by ``lift``
        bvh, si, ng = _surface(ts, 1)
        return area_light_term(bvh, bsdf_for(si), si, ng, light, k, bary, prob)

    lift = torch.tensor(0.05, dtype=F64, requires_grad=True)
    assert estimate(lift)[1].abs().max() == 0 and estimate(lift).abs().min(-1).values[[0, 2]].min() > 0
    assert torch.autograd.gradcheck(estimate, (lift,), eps=1e-6, atol=1e-8, rtol=1e-6)
