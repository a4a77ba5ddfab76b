"""The path tracer's gradients against central finite differences: a table-driven battery.

In the style of Mitsuba 3's ``src/integrators/tests/test_ad_integrators.py``: each :class:`Case` is a tiny scene
(16 x 16 to 24 x 24 pixels, direct light or paths of up to 4 vertices) with one scalar parameter ``theta`` (an
albedo, a roughness, an IOR, an emitter's radiance or position, an object's or the camera's pose), a
finite-difference step, sample counts and a tolerance.

**Reference.** The gradient image ``D_fd = (I(theta + h) - I(theta - h)) / 2h`` of two renders with the same
seed at ``spp_fd`` samples per pixel. For shading parameters the same random numbers make the difference
nearly noise-free (for parameters that do not move samples, albedo or radiance, it is the exact derivative of
the estimator); for parameters that move visibility (silhouettes) ``h`` is a fraction of a pixel and ``spp_fd``
high, so that the pixels' coverage changes are resolved.

**Ours.** The integrator is reverse mode (path replay): one backward pass gives, for one weight image ``W``, the
projection ``g(W) = d/dtheta sum(W * I)`` of the gradient image on ``W``, which is compared with
``f(W) = sum(W * D_fd)`` (the standard way to test a reverse-mode gradient against finite differences). The
backward pass draws its own paths (``seed_grad`` independent of the reference's seed, ``spp_grad`` per pixel;
the forward image is rendered at 1 spp and unused), so what is tested is that the gradient is unbiased, with the
Monte Carlo noise of both sides in the error. Two weights per case, two backward passes:

* ``sign``: ``W = sign(D_pilot)``, the signs of a second, independent reference (another seed, a quarter of the
  samples), so that every pixel's change counts with its own sign (no cancellation between pixels that brighten
  and pixels that darken: a moving silhouette, a highlight that spreads) and ``f`` is about ``sum |D|``; taken
  from an independent render because ``sign(D_fd)`` itself would add the magnitude of ``D_fd``'s noise to ``f``
  wherever the gradient is near 0;
* ``ones``: ``W = 1``, the plain image sum (Mitsuba's backward test), which cancels where the image only moves.

The error of a case is ``max over W of |g(W) - f(W)| / max(|f(sign)|, |f(ones)|)``: relative to the larger
projection of the reference (``sum |D|`` for a well-resolved pilot, ``|sum D|`` for gradients of one sign), so
that a projection that cancels to near 0 is measured against the gradient's size, not divided by 0.

**Tolerances** come from the spread over seeds (``python benchmarks/path_gradients.py --seeds 6`` runs every case
with reference seeds 0-5 and backward seeds 1000-1005): each threshold is about twice the largest error
measured over the seeds, written next to it. The test runs seed 0.

**Why projections, not per-pixel gradient images.** A per-pixel image from reverse mode needs one backward pass
per pixel (one-hot weights: 256 to 576 passes a case), and forward-mode AD through path replay does not exist;
the projections test the same derivative at two passes per case. For looking at, when the environment variable
``LUMIGRAD_TEST_OUTPUT`` names a folder, each case also computes our gradient of the channel sum at the
resolution of 4 x 4-pixel blocks (one backward pass per block with a one-hot block weight: 16 to 36 more passes,
only then) and writes under ``$LUMIGRAD_TEST_OUTPUT/<case>/``: ``fd.png`` (``D_fd`` per pixel and channel),
``fd_blocks.png`` (the block means of its channel sum), ``ours_blocks.png`` and ``diff_blocks.png`` (ours minus
the reference), all signed, mapped to ``0.5 + 0.5 * value / scale`` (grey is 0, brighter is positive) with
``scale`` the largest ``|D_fd|`` for ``fd.png`` and the largest reference block for the block images.

**Found by the battery**: camera rays that escape to the environment looked it up along detached directions,
so the camera's pose, intrinsics and lens got no gradient from the background they see (``lens_k1`` measured
0.65 until ``transport._escaped`` took the adjoint pass's differentiable camera rays; the pose cases' skies
vary too little across their views to have shown it). Also: silhouette gradients of smooth-shaded meshes were 20-75% off (the ball cases failed
with errors 0.26-0.41 at their first run): the interpolated normal faced away from the camera in a sliver along
the silhouette where BSDFs are 0, and edge sampling measured the radiance jump against that black rim.
``lumigrad.raytrace.transport.surface_at`` now bends such normals towards the viewer
(``tests/raytrace/test_transport_normals.py``).

Shadow edges (secondary visibility: a light or an occluder moving a shadow) have their own tests:
``tests/raytrace/test_shadow_edges.py`` (shadows at the first hit) and
``tests/raytrace/test_shadow_edge_connections.py`` (shadows seen beyond it); the light-position cases here have no
occluder, so they check the interior term of lights alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
BLOCK = 4  # pixels per side of the blocks of the saved gradient images


# ------------------------------------------------------------------------------------------------ scenes
def _lambert(rgb) -> Material:
    """A diffuse material (``ior`` 1: the glTF coat's f0 is 0, only Schlick's grazing rise is left); ``rgb`` may
    carry a gradient."""
    rgb = torch.as_tensor(rgb, dtype=F64)
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=F64)]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def _quad_y(half: float, y: float, cx: float = 0.0, cz: float = 0.0) -> torch.Tensor:
    """A square ``[4, 3]`` in the plane ``y``, centred at ``(cx, y, cz)``; with :data:`QUAD` its front is +y."""
    return torch.tensor([[cx - half, y, cz - half], [cx + half, y, cz - half], [cx + half, y, cz + half],
                         [cx - half, y, cz + half]], dtype=F64)


def _shift(x: torch.Tensor, axis: int, amount: torch.Tensor) -> torch.Tensor:
    """``x`` plus ``amount`` (0-d, may carry a gradient) along ``axis``."""
    return x + amount * torch.eye(3, dtype=F64)[axis]


def _translation(axis: int, amount: torch.Tensor) -> torch.Tensor:
    """A ``[4, 4]`` translation by ``amount`` (0-d) along ``axis``, differentiable in ``amount``."""
    offset = torch.zeros(4, 4, dtype=F64)
    offset[axis, 3] = 1.0
    return torch.eye(4, dtype=F64) + amount * offset


def cornell_box(back_albedo, lamp_radiance) -> lg.Scene:
    """A unit box open towards -z, double-sided walls (red at x = -1, green at x = 1), a square lamp under the ceiling;
    ``back_albedo`` (grey) and ``lamp_radiance`` (white) are 0-d and may carry a gradient."""
    walls = {
        "back": ([[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], back_albedo * torch.ones(3, dtype=F64)),
        "floor": ([[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]], (0.7, 0.7, 0.7)),
        "ceiling": ([[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]], (0.7, 0.7, 0.7)),
        "left": ([[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]], (0.6, 0.1, 0.1)),
        "right": ([[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]], (0.1, 0.6, 0.1)),
    }
    scene = lg.Scene()
    for name, (verts, rgb) in walls.items():
        scene.add_mesh(name, lg.SceneMesh(torch.tensor(verts, dtype=F64), torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                          _lambert(rgb), double_sided=True))
    lamp = _quad_y(0.25, 0.99).flip(0)  # facing down
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, lamp_radiance * torch.ones(3, dtype=F64)))
    return scene


def cornell_camera(size: int = 16) -> lg.Camera:
    """Into the box, a little downwards (the lamp out of frame)."""
    return lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.4], dtype=F64), torch.tensor([0.0, -0.3, 0.0], dtype=F64),
                             fov_y=0.5, width=size, height=size)


def _albedo_case(theta):
    return cornell_box(theta, torch.tensor(15.0, dtype=F64)), cornell_camera()


def _lamp_radiance_case(theta):
    """A floor and a back wall under a square lamp that the camera sees."""
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_quad_y(1.5, 0.0), QUAD, _lambert((0.7, 0.7, 0.7))))
    wall = torch.tensor([[-1.5, 0, 1.5], [-1.5, 2, 1.5], [1.5, 2, 1.5], [1.5, 0, 1.5]], dtype=F64)
    scene.add_mesh("wall", lg.SceneMesh(wall, torch.tensor([[0, 1, 2], [0, 2, 3]]), _lambert((0.2, 0.5, 0.8)),
                                        double_sided=True))
    lamp = _quad_y(0.3, 1.2).flip(0)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, theta * torch.tensor([5.0, 4.0, 3.0], dtype=F64)))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.9, -2.5], dtype=F64), torch.tensor([0.0, 0.6, 0.0], dtype=F64),
                            fov_y=0.9, width=16, height=16)
    return scene, cam


def _metal_roughness_case(theta):
    """A rough gold-like metal floor reflecting a square lamp that the camera does not see: the highlight."""
    scene = lg.Scene()
    metal = Material(base_color_factor=torch.tensor([0.9, 0.7, 0.4, 1.0], dtype=F64), metallic_factor=1.0,
                     roughness_factor=theta)
    scene.add_mesh("floor", lg.SceneMesh(_quad_y(2.0, 0.0), QUAD, metal))
    lamp = _quad_y(0.25, 1.0, cz=-0.5).flip(0)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.tensor([10.0, 10.0, 10.0], dtype=F64)))
    cam = lg.Camera.look_at(torch.tensor([0.0, 1.0, 1.5], dtype=F64), torch.tensor([0.0, 0.0, 0.5], dtype=F64),
                            fov_y=0.9, width=16, height=16)
    return scene, cam


def _checker(n: int = 8, low: float = 0.15, high: float = 1.0) -> torch.Tensor:
    """An ``[n, n, 3]`` checkerboard texture."""
    i = torch.arange(n)
    board = ((i[:, None] + i[None, :]) % 2).to(F64)
    return (low + (high - low) * board)[..., None].expand(n, n, 3).contiguous()


def _glass_ior_case(theta):
    """A rough glass ball (KHR transmission, roughness 0.5) in front of a glowing checkerboard: what the camera
    sees through the ball is refracted twice, so ``ior`` moves and blurs the board and sets the Fresnel loss."""
    scene = lg.Scene()
    v, f = lg.geometry.icosphere(3, radius=0.5, dtype=F64)
    glass = Material(base_color_factor=torch.ones(4, dtype=F64), metallic_factor=0.0, roughness_factor=0.5,
                     ior=theta, transmission_factor=1.0)
    scene.add_mesh("ball", lg.SceneMesh(v, f, glass))
    board = torch.tensor([[-1.2, -1.2, 1.0], [1.2, -1.2, 1.0], [1.2, 1.2, 1.0], [-1.2, 1.2, 1.0]], dtype=F64)
    uv = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=F64)
    glow = Material(base_color_factor=torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=F64),
                    emissive_factor=torch.ones(3, dtype=F64), emissive_texture=_checker())
    scene.add_mesh("board", lg.SceneMesh(board, torch.tensor([[0, 1, 2], [0, 2, 3]]), glow, uv=uv,
                                         double_sided=True))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.5,
                            width=16, height=16)
    return scene, cam


def _lit_floor(light: str, theta) -> lg.Scene:
    """A grey floor under a point light (``"point"``: intensity or position ``theta``) or a square lamp
    (``"area"``: moved along x by ``theta``), nothing between them."""
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_quad_y(2.0, 0.0), QUAD, _lambert((0.6, 0.6, 0.6))))
    if light == "point_intensity":
        scene.add_light("key", lg.PointLight(torch.tensor([0.3, 1.0, 0.2], dtype=F64), theta))
        box = _quad_y(0.25, 0.5).flip(0)  # an occluder: its shadow does not move with the intensity
        scene.add_mesh("blocker", lg.SceneMesh(box, QUAD, _lambert((0.8, 0.3, 0.3)), double_sided=True))
    elif light == "point_position":
        scene.add_light("key", lg.PointLight(_shift(torch.tensor([0.0, 1.0, 0.2], dtype=F64), 0, theta),
                                             torch.tensor(4.0, dtype=F64)))
    else:
        lamp = _shift(_quad_y(0.3, 1.0).flip(0), 0, theta)
        scene.add_light("lamp", lg.AreaLight(lamp, QUAD, torch.tensor([8.0, 8.0, 8.0], dtype=F64)))
    return scene


def _floor_camera() -> lg.Camera:
    """Above the floor, looking down at it from the side (lights above out of frame)."""
    return lg.Camera.look_at(torch.tensor([0.0, 1.6, -2.4], dtype=F64), torch.tensor([0.0, 0.0, -0.2], dtype=F64),
                             fov_y=0.7, width=16, height=16)


def _sky() -> torch.Tensor:
    """A smooth sky, brighter at the zenith: ``[8, 16, 3]``."""
    rows = torch.linspace(0.6, 0.15, 8, dtype=F64)[:, None, None]
    return (rows * torch.tensor([0.7, 0.8, 1.0], dtype=F64)).expand(8, 16, 3).contiguous()


def _ball_over_sky(to_world=None, world_to_cam=None) -> Tuple[lg.Scene, lg.Camera]:
    """A diffuse ball in front of a smooth sky, lit by the sky and a point light: silhouettes against the sky,
    and no shadow that the camera could see (the ball is convex and alone)."""
    scene = lg.Scene()
    v, f = lg.geometry.icosphere(3, radius=0.5, dtype=F64)
    scene.add_mesh("ball", lg.SceneMesh(v, f, _lambert((0.8, 0.5, 0.2)), to_world=to_world))
    scene.add_light("sky", lg.EnvironmentLight(_sky()))
    scene.add_light("key", lg.PointLight(torch.tensor([1.5, 2.0, -2.5], dtype=F64), torch.tensor(6.0, dtype=F64)))
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.0], dtype=F64), torch.zeros(3, dtype=F64), fov_y=0.5,
                            width=24, height=24)
    if world_to_cam is not None:
        cam = lg.Camera(cam.K, world_to_cam(cam.world_to_cam), width=24, height=24)
    return scene, cam


def _ball_through_lens(k1, to_world=None) -> Tuple[lg.Scene, lg.Camera]:
    """The ball over the sky, off-centre in a wide barrel-distorting lens (``k1``, a 0-d tensor): its silhouette is
    a curve, and moves with the ball and with the lens."""
    scene, _ = _ball_over_sky(to_world=_translation(0, torch.tensor(0.45, dtype=F64)) @ (
        torch.eye(4, dtype=F64) if to_world is None else to_world))
    k1 = torch.as_tensor(k1, dtype=F64)
    coeffs = torch.stack([k1, torch.tensor(0.03, dtype=F64), torch.tensor(0.004, dtype=F64),
                          torch.tensor(-0.003, dtype=F64), torch.tensor(0.0, dtype=F64)])
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -2.2], dtype=F64), torch.zeros(3, dtype=F64), fov_y=1.0,
                            width=24, height=24, distortion=coeffs)
    return scene, cam


def _yaw(angle: torch.Tensor) -> torch.Tensor:
    """``[4, 4]`` rotation by ``angle`` about the camera's y axis (differentiable)."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([torch.stack([c, zero, s, zero]), torch.stack([zero, one, zero, zero]),
                        torch.stack([-s, zero, c, zero]), torch.stack([zero, zero, zero, one])])


# ------------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One configuration: ``build(theta) -> (scene, camera)``, the value ``theta`` and the step ``h`` of the
    central difference, the integrator's settings, sample counts and the tolerance on :func:`measure`'s error.

    ``edge_samples`` sets the silhouette samples of the backward pass (the integrator's default when None);
    ``slow`` marks cases that take more than a few seconds.
    """

    name: str
    parameter: str
    build: Callable[[torch.Tensor], Tuple[lg.Scene, lg.Camera]]
    theta: float
    step: float
    settings: Dict[str, object]
    spp_fd: int
    spp_grad: int
    threshold: float
    edge_samples: Optional[int] = None
    slow: bool = False


# Thresholds: about twice the largest error over six seeds (benchmarks/path_gradients.py --seeds 6, 2-core CPU),
# the measured mean / max in the comment.
CASES = [
    Case("albedo_cornell", "back wall albedo (grey), Cornell box, paths of 4", _albedo_case, 0.7, 0.01,
         dict(integrator="path", max_depth=4), spp_fd=256, spp_grad=64,
         threshold=0.015),  # measured 0.0038 / 0.0060
    Case("roughness_metal", "roughness of a metal floor under a lamp (GGX highlight)", _metal_roughness_case, 0.3,
         0.02, dict(integrator="direct"), spp_fd=512, spp_grad=256,
         threshold=0.06),  # measured 0.0165 / 0.0306
    # Noise-limited: the IOR moves the sampled refractions, so both the same-seed differences and the backward
    # pass's w / detach(w) terms are noisy (each about 6-7% standard deviation on the image sum here).
    Case("ior_glass", "IOR of a rough glass ball before a glowing checkerboard", _glass_ior_case, 1.5, 0.05,
         dict(integrator="path", max_depth=3), spp_fd=512, spp_grad=256, slow=True,
         threshold=0.35),  # measured 0.0908 / 0.1728
    Case("lamp_radiance", "area lamp radiance (scale), lamp in view, paths of 3", _lamp_radiance_case, 1.0, 0.01,
         dict(integrator="path", max_depth=3), spp_fd=128, spp_grad=256,
         threshold=0.05),  # measured 0.0122 / 0.0245
    Case("point_intensity", "point light intensity, floor and an occluder",
         lambda t: (_lit_floor("point_intensity", t), _floor_camera()), 4.0, 0.01, dict(integrator="direct"),
         spp_fd=64, spp_grad=16,
         threshold=0.025),  # measured 0.0050 / 0.0112
    Case("point_position_x", "point light position x, no occluder",
         lambda t: (_lit_floor("point_position", t), _floor_camera()), 0.3, 0.01, dict(integrator="direct"),
         spp_fd=64, spp_grad=16,
         threshold=0.015),  # measured 0.0037 / 0.0064
    Case("lamp_position_x", "area lamp position x, no occluder, lamp out of frame",
         lambda t: (_lit_floor("area", t), _floor_camera()), 0.2, 0.01, dict(integrator="direct"),
         spp_fd=256, spp_grad=128,
         threshold=0.02),  # measured 0.0073 / 0.0101
    Case("object_x", "ball translation x (silhouette, edge sampling)",
         lambda t: _ball_over_sky(to_world=_translation(0, t)), 0.1, 0.02, dict(integrator="direct"),
         spp_fd=1024, spp_grad=64, edge_samples=20000,
         threshold=0.07),  # measured 0.0188 / 0.0347 (0.26-0.41 before shading normals were bent, see module)
    Case("object_z", "ball translation z (towards the camera: grows)",
         lambda t: _ball_over_sky(to_world=_translation(2, t)), 0.0, 0.02, dict(integrator="direct"),
         spp_fd=1024, spp_grad=64, edge_samples=20000,
         threshold=0.055),  # measured 0.0188 / 0.0269
    Case("camera_x", "camera translation x (world_to_cam t)",
         lambda t: _ball_over_sky(world_to_cam=lambda w2c: _translation(0, t) @ w2c), 0.0, 0.02,
         dict(integrator="direct"), spp_fd=1024, spp_grad=64, edge_samples=20000,
         threshold=0.045),  # measured 0.0110 / 0.0210
    Case("object_x_lens", "ball translation x seen through a distorting lens (curved silhouette)",
         lambda t: _ball_through_lens(-0.25, to_world=_translation(0, t)), 0.0, 0.02, dict(integrator="direct"),
         spp_fd=1024, spp_grad=256, edge_samples=20000,
         threshold=0.25),  # measured 0.030 / 0.122 (seeds 0-5; the tail is the "ones" projection's noise)
    Case("lens_k1", "lens distortion k1 (the silhouette moves through the lens, the sky slides under it)",
         lambda t: _ball_through_lens(t), -0.25, 0.02, dict(integrator="direct"),
         spp_fd=1024, spp_grad=64, edge_samples=20000,
         threshold=0.07),  # measured 0.023 / 0.032 (seeds 0-2)
    Case("camera_yaw", "camera rotation about its y axis",
         lambda t: _ball_over_sky(world_to_cam=lambda w2c: _yaw(t) @ w2c), 0.02, 0.005,
         dict(integrator="direct"), spp_fd=1024, spp_grad=64, edge_samples=20000,
         threshold=0.09),  # measured 0.0242 / 0.0459
]


# --------------------------------------------------------------------------------------------- measuring
@dataclass
class Measurement:
    """What :func:`measure` found: the reference gradient image and, per weight, ``f(W)`` and ``g(W)``."""

    case: Case
    fd_image: torch.Tensor  # [H, W, 3]
    fd: Dict[str, float] = field(default_factory=dict)
    ours: Dict[str, float] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """``max(|f(sign)|, |f(ones)|)``, the size errors are measured against (about ``sum |D|`` where the pilot's
        signs are right, ``|sum D|`` where it does not cancel)."""
        return max(abs(v) for v in self.fd.values())

    @property
    def errors(self) -> Dict[str, float]:
        return {k: abs(self.ours[k] - self.fd[k]) / self.scale for k in self.fd}

    @property
    def error(self) -> float:
        return max(self.errors.values())


def _render(case: Case, theta: torch.Tensor, *, spp: int, seed: int, **extra) -> torch.Tensor:
    scene, cam = case.build(theta)
    return lg.render(scene, cam, spp=spp, seed=seed, **case.settings, **extra).rgb


def reference_gradient(case: Case, seed: int = 0, spp: Optional[int] = None) -> torch.Tensor:
    """``D_fd [H, W, 3]``: central differences of two renders with the same ``seed`` (``spp_fd`` samples per pixel
    unless ``spp`` is given)."""
    theta, h = torch.tensor(case.theta, dtype=F64), case.step
    with torch.no_grad():
        plus = _render(case, theta + h, spp=spp or case.spp_fd, seed=seed)
        minus = _render(case, theta - h, spp=spp or case.spp_fd, seed=seed)
    return (plus - minus) / (2 * h)


def reverse_projection(case: Case, weight: torch.Tensor, seed: int) -> float:
    """``d/dtheta sum(weight * I)`` by the integrator's backward pass (``spp_grad`` paths of ``seed_grad = seed``;
    the forward image is rendered at 1 spp and not used)."""
    theta = torch.tensor(case.theta, dtype=F64, requires_grad=True)
    image = _render(case, theta, spp=1, seed=seed + 1, spp_grad=case.spp_grad, seed_grad=seed,
                    edge_samples=case.edge_samples)
    (image * weight).sum().backward()
    return 0.0 if theta.grad is None else float(theta.grad)


def measure(case: Case, seed: int = 0) -> Measurement:
    """The reference with ``seed``, and our projections with ``seed_grad = 1000 + seed`` on ones and on the sign of
    a pilot reference (``seed + 500``, a quarter of the samples): independent of ``D_fd``, so that where ``D_fd`` is
    only noise its sign does not pick the noise's magnitude into ``f``."""
    D = reference_gradient(case, seed)
    sign = torch.sign(reference_gradient(case, seed + 500, spp=max(case.spp_fd // 4, 16)))
    m = Measurement(case, D)
    for name, weight in (("sign", sign), ("ones", torch.ones_like(D))):
        m.fd[name] = float((weight * D).sum())
        m.ours[name] = reverse_projection(case, weight, 1000 + seed)
    return m


def block_gradients(case: Case, shape, seed: int = 0) -> torch.Tensor:
    """Our gradient of the channel sum at :data:`BLOCK`-pixel blocks, ``[H / B, W / B]``: one backward pass per
    block with a one-hot block weight (the block's mean)."""
    H, W, C = shape
    out = torch.zeros(H // BLOCK, W // BLOCK, dtype=F64)
    for i in range(H // BLOCK):
        for j in range(W // BLOCK):
            weight = torch.zeros(H, W, C, dtype=F64)
            weight[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK] = 1.0 / BLOCK ** 2
            out[i, j] = reverse_projection(case, weight, 2000 + seed)
    return out


def _blocks(image: torch.Tensor) -> torch.Tensor:
    """Block means of the channel sum of ``image [H, W, C]``: ``[H / B, W / B]``."""
    H, W, C = image.shape
    return image.sum(-1).reshape(H // BLOCK, BLOCK, W // BLOCK, BLOCK).mean((1, 3))


def save_images(folder: Path, m: Measurement) -> None:
    """Write ``fd.png``, ``fd_blocks.png``, ``ours_blocks.png`` and ``diff_blocks.png`` (signed, see the module)."""
    folder.mkdir(parents=True, exist_ok=True)
    D = m.fd_image
    reference = _blocks(D)
    ours = block_gradients(m.case, D.shape)
    scales = {"fd": float(D.abs().max()) or 1.0, "blocks": float(reference.abs().max()) or 1.0}
    images = {"fd": (D, scales["fd"]), "fd_blocks": (reference, scales["blocks"]),
              "ours_blocks": (ours, scales["blocks"]), "diff_blocks": (ours - reference, scales["blocks"])}
    for name, (img, scale) in images.items():
        lg.io.write_image(folder / f"{name}.png", (0.5 + 0.5 * img / scale).clamp(0, 1).float())


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_gradient_matches_central_differences(case):
    m = measure(case)
    out = os.environ.get("LUMIGRAD_TEST_OUTPUT")
    where = ""
    if out:
        save_images(Path(out) / case.name, m)
        where = f"; images in {Path(out) / case.name}"
    detail = ", ".join(f"{k}: ours {m.ours[k]:.5g} fd {m.fd[k]:.5g} error {m.errors[k]:.4f}" for k in m.fd)
    assert m.scale > 0, f"{case.name}: the reference gradient image is 0{where}"
    assert m.error < case.threshold, f"{case.name}: {detail} (threshold {case.threshold}){where}"
