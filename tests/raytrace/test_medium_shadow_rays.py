"""Shadow rays of next-event estimation from a surface vertex inside a medium: attenuated by the medium's
transmittance over the distance to the light (a point light or an area lamp inside the medium), in the primal
and in the path replay's gradient of the medium's coefficients. Analytic case: a pure absorber (``sigma_s = 0``)
in an index-matched box (a pass-through boundary), an opaque floor inside, rays straight down onto one point.
"""

from __future__ import annotations

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material
from lumigrad.raytrace.transport import PathAdjoint, sample_paths
from lumigrad.shading.medium import HomogeneousMedium

from .test_medium_transport import box

F64 = torch.float64
QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
#: the rays: straight down from above the box (top face at y = 1) onto the floor (y = -0.5) at the origin
ORIGIN, FLOOR_Y, INSIDE = (0.0, 2.0, 0.0), -0.5, 1.5  # INSIDE: the rays' length in the medium
LIGHT = (0.4, 0.3, 0.0)


def _scene(sigma_a: torch.Tensor, lamp: str) -> lg.Scene:
    scene = lg.Scene()
    v, f = box(1.0)
    medium = HomogeneousMedium(sigma_a, torch.zeros(3, dtype=F64), g=0.0)
    scene.add_mesh("tank", lg.SceneMesh(v, f, Material(base_color_factor=torch.ones(4, dtype=F64),
                                                        metallic_factor=0.0, roughness_factor=0.3, ior=1.0,
                                                        transmission_factor=1.0, interior=medium)))
    floor = torch.tensor([[-0.8, FLOOR_Y, -0.8], [-0.8, FLOOR_Y, 0.8], [0.8, FLOOR_Y, 0.8], [0.8, FLOOR_Y, -0.8]],
                         dtype=F64)
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, Material(base_color_factor=torch.tensor([0.8, 0.6, 0.4, 1.0],
                                                                                              dtype=F64),
                                                               metallic_factor=0.0, roughness_factor=1.0)))
    if lamp == "point":
        scene.add_light("lamp", lg.PointLight(torch.tensor(LIGHT, dtype=F64), intensity=torch.tensor(2.0, dtype=F64)))
    else:  # a small square lamp facing down, centred on LIGHT
        s = 0.02
        verts = torch.tensor([[-s, 0, -s], [s, 0, -s], [s, 0, s], [-s, 0, s]], dtype=F64)
        verts = verts + torch.tensor(LIGHT, dtype=F64)
        scene.add_light("lamp", lg.AreaLight(verts, QUAD, torch.full((3,), 500.0, dtype=F64)))
    return scene


def _paths(sigma, lamp, n=4096, adjoint=False, seed=5):
    """``(radiance [n, 3] of n rays down onto the floor's centre, the gradient of its mean w.r.t. sigma_a)``."""
    from lumigrad.integrators.path import _trace_scene
    sigma_a = torch.full((3,), sigma, dtype=F64, requires_grad=adjoint)
    ts = _trace_scene(_scene(sigma_a, lamp))
    o = torch.tensor(ORIGIN, dtype=F64).expand(n, 3).contiguous()
    d = torch.tensor((0.0, -1.0, 0.0), dtype=F64).expand(n, 3).contiguous()
    settings = dict(max_depth=3, rr_depth=3, seed=seed)  # the box's top, the floor (light samples), a last vertex
    with torch.no_grad():
        L = sample_paths(ts, o, d, **settings)
    if not adjoint:
        return L, None
    adj = PathAdjoint(torch.full_like(L, 1.0 / n), L, [sigma_a])
    sample_paths(ts, o, d, adjoint=adj, **settings)
    return L, adj.grads[0]


@pytest.mark.parametrize("lamp", ["point", "area"])
def test_light_samples_from_inside_a_medium_are_attenuated_over_their_length(lamp):
    """Every ray reaches the floor with the flight weight ``Tr(1.5)`` in expectation, and the light sample from
    the floor crosses ``r = |light - floor|`` of the same absorber: the mean is ``exp(-sigma (1.5 + r))`` times
    the radiance without absorption (the same paths at ``sigma = 0``, every weight 1). Without the shadow ray's
    ``Tr`` it was ``exp(-1.5 sigma)``, 2.4 times too bright here. Bound: 4 standard errors."""
    sigma = 1.0
    r = math.dist(LIGHT, (0.0, FLOOR_Y, 0.0))
    L0, _ = _paths(0.0, lamp)
    L, _ = _paths(sigma, lamp)
    ref = L0.mean(0)
    assert float(ref.min()) > 0
    expected = ref * math.exp(-sigma * (INSIDE + r))
    mean, se = L.mean(0), L.std(0) / math.sqrt(L.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-9).all(), (mean, expected, se)


@pytest.mark.parametrize("lamp", ["point", "area"])
def test_the_replay_differentiates_the_shadow_rays_transmittance(lamp):
    """d mean / d sigma_a is ``-(1.5 + r)`` times the mean, in expectation (the flight's score and the shadow
    ray's ``-r Tr``; without the latter ``-1.5`` times). Per batch of paths (its own seed), the replay's gradient
    plus ``(1.5 + r)`` times the batch's mean estimates 0: z-test of the batches, bound 4 standard errors."""
    sigma = 1.0
    r = math.dist(LIGHT, (0.0, FLOOR_Y, 0.0))
    zero, scale = [], []
    for seed in range(8):
        L, grad = _paths(sigma, lamp, n=1024, adjoint=True, seed=seed)
        zero.append(grad + (INSIDE + r) * L.mean(0))
        scale.append(grad.abs())
    zero = torch.stack(zero)
    mean, se = zero.mean(0), zero.std(0) / math.sqrt(zero.shape[0])
    # (the point light: every path that reaches the floor has weight 1 and gradient -(1.5 + r) L exactly, so
    # se ~ 0; the ray origins' offsets, 256 float32 ULPs a vertex, shorten the segments by ~3e-5: 1e-4 relative)
    assert (mean.abs() < 4 * se + 1e-4 * torch.stack(scale).mean(0)).all(), (mean, se)
    # and the statistic would see a missing shadow-ray term: r times the mean is many standard errors away
    assert (r * L.mean(0) > 8 * se).all()


def test_shadow_transmittance_never_exceeds_one():
    """A light sample's distance from a ray-plane division can come out negative when the point is nearly in the
    lamp's plane (seen at 512 spp in a lit ball: -80, and ``exp(+80 sigma_t)`` made the pixel ``inf``): its
    ``Tr`` is that of the magnitude; ``+inf`` (a light at infinity) counts 0; vacuum (-1) is 1."""
    from lumigrad.raytrace.volumetric import shadow_transmittance

    medium = HomogeneousMedium(torch.tensor([0.2, 0.3, 0.4], dtype=F64), torch.tensor([1.0, 0.8, 0.6], dtype=F64))
    which = torch.tensor([0, 0, 0, -1])
    distance = torch.tensor([[2.0], [-80.0], [math.inf], [5.0]], dtype=F64)
    tr = shadow_transmittance([medium], which, distance, 3)
    sigma_t = torch.tensor([1.2, 1.1, 1.0], dtype=F64)
    torch.testing.assert_close(tr[0], torch.exp(-2.0 * sigma_t))
    torch.testing.assert_close(tr[1], torch.exp(-80.0 * sigma_t))
    assert tr[2].tolist() == [1.0, 1.0, 1.0] and tr[3].tolist() == [1.0, 1.0, 1.0]


def test_shadow_transmittance_is_differentiable_in_the_length_and_the_medium():
    """``Tr = exp(-sigma_t t)`` of a shadow segment in one medium: gradcheck (float64) in the length (the vertex or
    the light moving) and in ``sigma_a`` / ``sigma_s``; vacuum rows stay 1, an infinite length in a bounded medium
    counts 0 (the boundary blocks such rays anyway)."""
    from lumigrad.raytrace.volumetric import shadow_transmittance

    medium = torch.tensor([0, -1, 0, 0])
    dist = torch.tensor([[0.7], [2.0], [1.3], [0.2]], dtype=torch.float64, requires_grad=True)
    sigma_a = torch.tensor([0.4, 0.9, 1.5], dtype=torch.float64, requires_grad=True)
    sigma_s = torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64, requires_grad=True)

    def tr(d, a, s):
        return shadow_transmittance([HomogeneousMedium(a, s)], medium, d, 3)

    assert torch.autograd.gradcheck(tr, (dist, sigma_a, sigma_s))
    out = tr(dist, sigma_a, sigma_s)
    assert torch.equal(out[1], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(out[0], torch.exp(-(sigma_a + sigma_s) * 0.7).detach(), rtol=1e-14, atol=0)
    far = tr(torch.tensor([[math.inf]] * 4, dtype=torch.float64), sigma_a, sigma_s)
    assert torch.equal(far, torch.ones(4, 3, dtype=torch.float64))
