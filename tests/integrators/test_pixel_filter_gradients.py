"""The path tracer's gradients through a wide pixel filter (:mod:`lumigrad.cameras.pixel_filter`) against
central finite differences, in the style of ``test_path_gradients.py`` (whose cases and helpers it reuses).

With a filter wider than the pixel, a moving silhouette changes every pixel whose filter reaches it, each by
the filter's weight there: edge sampling must hand each edge point the filtered image adjoint
(``filter_adjoint_at``), not the adjoint of the pixel under it. The weight image here is random per pixel
(``W ~ N(0, 1)``), so that what a point hands to its neighbours matters: with the sign or ones weights of
``test_path_gradients.py`` neighbouring pixels weigh alike and a box gather would pass too. (For the box filter
itself such a weight makes the finite differences ill-posed: a pixel's coverage is piecewise linear in the
edge's position and the step moves edges across pixel borders; a smooth filter makes each pixel smooth in it.)

The error is ``|g(W) - f(W)| / sum |W D_fd|``; ``g`` is the mean of :data:`PASSES` backward passes (the noise
is mostly the interior term's, on every pixel of the ball, which the random weight does not cancel).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import lumigrad as lg

from .test_path_gradients import CASES, reference_gradient, reverse_projection

PASSES = 4


def _filtered(case_name: str, kind: str):
    base = next(c for c in CASES if c.name == case_name)

    def build(theta, b=base.build):
        scene, cam = b(theta)
        scene.film = lg.Film(pixel_filter=kind)
        return scene, cam
    return replace(base, build=build)


def measure(kind: str, case_name: str, seed: int = 0, gather=None):
    """``(g, f, error)`` of one case under pixel filter ``kind`` (``gather``: a replacement of the path tracer's
    ``filter_adjoint_at``, for mutation checks)."""
    case = _filtered(case_name, kind)
    D = reference_gradient(case, seed)
    W = torch.randn(D.shape[:2] + (1,), generator=torch.Generator().manual_seed(5), dtype=D.dtype).expand(D.shape)
    f = float((W * D).sum())
    g = sum(reverse_projection(case, W, 1000 + 10 * seed + k) for k in range(PASSES)) / PASSES
    return g, f, abs(g - f) / float((W * D).abs().sum())


# (filter, case, threshold): about twice the largest error over seeds 0-3 (measured max in the comment); the
# box gather of the edge points (each point's adjoint its own pixel's) gives the error in brackets.
FILTERED = [
    ("gaussian", "object_x", 0.01),  # measured 0.0035 (box gather: 0.089)
    ("gaussian", "camera_x", 0.05),  # measured 0.026 (box gather: 0.048, within this case's noise)
    ("mitchell", "object_x", 0.045),  # measured 0.022 (box gather: 0.090; negative lobes, signed weights)
]


@pytest.mark.parametrize("kind,case_name,threshold", FILTERED, ids=[f"{k}-{c}" for k, c, _ in FILTERED])
def test_filtered_silhouette_gradients_match_central_differences(kind, case_name, threshold):
    g, f, error = measure(kind, case_name)
    assert error < threshold, f"{kind} {case_name}: ours {g:.5g}, finite differences {f:.5g}, error {error:.4f}"


def shadow_case(seed: int = 0, kind: str = "gaussian"):
    """``(g, f, error)`` of a card's x translation over a floor under a point light (``test_shadow_edges.py``'s
    scene, seen from above: the card's silhouette and its shadow's outline both move) under pixel filter ``kind``,
    with a random per-pixel weight: mean of :data:`PASSES` backward passes against central differences of
    2048-spp renders with the same seed. The step moves the shadow by 0.13 pixels: at the 0.4 pixels of
    ``test_shadow_edges.py``'s step the differences of this pixel-scale weight err by 10 % (the secant of each
    pixel's filtered response, smooth only at the filter's 0.5-pixel scale: -26.8 against -29.3 at eps 0.01)."""
    from ..raytrace.test_shadow_edges import CAMERA, F64, SIZE, _scene

    light = torch.tensor([0.5, 1.6, -0.5], dtype=F64)
    W = torch.randn(SIZE, SIZE, 1, generator=torch.Generator().manual_seed(3), dtype=F64)

    def loss(dx, spp, **kw):
        scene = _scene(torch.stack([dx, torch.zeros_like(dx)]), light, "point")
        scene.film = lg.Film(pixel_filter=kind)
        return (lg.render(scene, CAMERA, integrator="direct", spp=spp, **kw).rgb * W).sum()

    eps = 0.01
    with torch.no_grad():
        f = float(loss(torch.tensor(eps, dtype=F64), 2048, seed=7 + seed)
                  - loss(torch.tensor(-eps, dtype=F64), 2048, seed=7 + seed)) / (2 * eps)
    grads = []
    for k in range(PASSES):
        dx = torch.tensor(0.0, dtype=F64, requires_grad=True)
        loss(dx, 4, seed_grad=100 + 10 * seed + k, shadow_edge_samples=4000).backward()
        grads.append(float(dx.grad))
    g = sum(grads) / PASSES
    return g, f, abs(g - f) / abs(f)


@pytest.mark.slow
def test_a_filtered_moving_shadow_matches_central_differences():
    """The card's silhouette and its shadow's outline under Mitsuba's gaussian filter (``shadow_case``): primary
    and shadow-edge sampling both hand their points the filtered adjoint. Measured over seeds 0-2: errors 0.003,
    0.040, 0.016; with the box gather 0.37."""
    g, f, error = shadow_case()
    assert error < 0.08, f"ours {g:.5g}, finite differences {f:.5g}, error {error:.4f}"


def _floor_scene(albedo: torch.Tensor, kind: str) -> lg.Scene:
    """A float32 floor of grey ``albedo`` (0-d) with a red card above it, under a point light (the fused kernel's
    scene: float32, no area light)."""
    quad = torch.tensor([[0, 2, 1], [0, 3, 2]])

    def square(half, y):
        return torch.tensor([[-half, y, -half], [half, y, -half], [half, y, half], [-half, y, half]])

    def lambert(rgb):
        return lg.shading.Material(base_color_factor=torch.cat([rgb, torch.ones(1)]), metallic_factor=0.0,
                                   roughness_factor=1.0, specular_factor=0.0)

    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(square(2.0, 0.0), quad, lambert(albedo * torch.ones(3))))
    scene.add_mesh("card", lg.SceneMesh(square(0.3, 0.5), quad, lambert(torch.tensor([0.8, 0.2, 0.2])),
                                        double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([0.3, 1.4, 0.2]), torch.tensor(4.0)))
    scene.film = lg.Film(pixel_filter=kind)
    return scene


@pytest.mark.parametrize("fused", [True, False], ids=["fused_adjoint", "pytorch_replay"])
def test_value_gradients_weigh_each_ray_by_its_filter_weight(fused):
    """The floor's albedo under a Mitchell filter (signed weights far from 1), direct light: the image is linear
    in it, and the backward pass with the forward's seed and spp replays the forward's rays, so the gradient of
    ``sum(W * I)`` equals the central difference to float32 rounding, on the fused adjoint and on the PyTorch
    replay alike. Without the rays' weights in the image adjoint it is 32 % off (3.04 against 4.45)."""
    cam = lg.Camera.look_at([0.0, 1.8, -2.0], [0.0, 0.0, 0.0], fov_y=0.8, width=12, height=12)
    W = torch.randn(12, 12, 3, generator=torch.Generator().manual_seed(2))
    settings = dict(integrator="direct", spp=16, seed=3, spp_grad=16, seed_grad=3, fused_adjoint=fused)

    def loss(albedo):
        return (lg.render(_floor_scene(albedo, "mitchell"), cam, **settings).rgb * W).sum()

    albedo = torch.tensor(0.5, requires_grad=True)
    loss(albedo).backward()
    with torch.no_grad():
        fd = (loss(torch.tensor(0.7)) - loss(torch.tensor(0.3))) / 0.4
    assert float(albedo.grad) == pytest.approx(float(fd), rel=2e-4), (float(albedo.grad), float(fd))
