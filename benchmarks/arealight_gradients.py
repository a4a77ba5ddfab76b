"""Area-light gradients of the path tracer: mean, spread over backward seeds and CPU time per backward pass.

Scene (as ``tests/raytrace/test_shadow_edges.py``): a grey floor, a dark 0.6 x 0.6 card, a square lamp facing
down (the same power whatever its size), 24^2, ``integrator="direct"``, 4 spp, 4000 shadow-edge points; the loss
is a smooth per-pixel weighting of the image. ``--lamp small``: side 0.3, 1.6 above the floor, card at 0.6;
``--lamp large``: side 1.0, 1.1 above the floor, card at 0.5. For ``--seeds`` backward seeds it prints, per
parameter (card x, lamp x / y / z, the floor's red albedo), the mean gradient, its standard error and the
standard deviation of one pass, and the median process CPU time of a forward + backward pass. Run it with
``PYTHONPATH`` on two checkouts to compare them (process CPU time at one thread:
``OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1``).

``--mask outline`` restricts the loss to the pixels within 1.5 pixels of the lamp's projected square or inside it
(``rest``: the others; ``rows A B``: image rows ``A <= row < B``), to locate a residual. ``--terms`` adds the
gradient's split into its three terms, each from its own runs (the same seeds with the other two terms off:
``edge_samples=0`` / ``shadow_edge_samples=0``; the interior term alone has both off).

``--hashed-seeds`` draws the backward seeds far apart instead of ``10, 11, ...``: means over different seed sets
spread more than their standard errors say (docs/benchmarks.md, "Large-lamp height bias, second pass").

``--reference SPP`` prints instead central differences (step ``--eps``) of ``--seeds`` renders at ``SPP`` samples
per pixel, each pair with its own seed: mean, standard error and the standard deviation of one seed's difference.
The reference's own noise is not small against the gradient's residuals: moving the lamp's outline by
``eps`` sweeps a fraction of a pixel, and the jittered camera samples that strip catches vary from seed to seed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Optional, Sequence

import torch

import lumigrad as lg
from lumigrad.shading import Material

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
SIZE = 24
LAMPS = {"small": dict(half=0.15, light=(0.5, 1.6, -0.5), card=0.6),
         "large": dict(half=0.5, light=(0.3, 1.1, -0.3), card=0.5)}
NAMES = ("card x", "lamp x", "lamp y", "lamp z", "albedo r")
CAMERA = lg.Camera.look_at([0.0, 3.0, 1.5], [0.0, 0.0, 0.0], fov_y=0.8, width=SIZE, height=SIZE).to(dtype=F64)
#: ``--terms``: the integrator settings that leave one term of the gradient alone.
TERMS = {"interior": dict(edge_samples=0, shadow_edge_samples=0), "primary edges": dict(shadow_edge_samples=0),
         "shadow edges": dict(edge_samples=0)}


def _material(rgb: torch.Tensor) -> Material:
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=F64)]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def _square(half: float) -> torch.Tensor:
    return torch.tensor([[-half, 0, -half], [half, 0, -half], [half, 0, half], [-half, 0, half]], dtype=F64)


def _loss(x: torch.Tensor, lamp: dict, seed_grad: int, spp: int = 4, seed: int = 0, mask: Optional[torch.Tensor] = None,
          **settings) -> torch.Tensor:
    """``x = (card x, lamp x, y, z, albedo r)``; ``seed`` is the primal's, ``seed_grad`` the backward pass's;
    ``mask [H, W]`` weighs the pixels (default all); ``settings`` go to the integrator (edge sample counts)."""
    scene = lg.Scene()
    albedo = torch.stack([x[4], torch.tensor(0.6, dtype=F64), torch.tensor(0.6, dtype=F64)])
    scene.add_mesh("floor", lg.SceneMesh(_square(2.0), QUAD, _material(albedo)))
    card = _square(0.3) + torch.stack([x[0], torch.tensor(lamp["card"], dtype=F64), torch.zeros((), dtype=F64)])
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, _material(torch.full((3,), 0.2, dtype=F64)), double_sided=True))
    half = lamp["half"]
    scene.add_light("lamp", lg.AreaLight(_square(half) + x[1:4], torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                         torch.full((3,), 30.0 * (0.15 / half) ** 2, dtype=F64)))
    camera = CAMERA
    options = dict(shadow_edge_samples=4000)
    options.update(settings)
    image = lg.render(scene, camera, integrator="direct", spp=spp, seed=seed, seed_grad=seed_grad, **options).rgb
    r = (torch.arange(SIZE, dtype=F64) + 0.5) / SIZE
    weights = 0.5 + r[None, :, None] + 0.4 * torch.sin(3 * r)[:, None, None] * torch.tensor([1.0, 0.5, -0.5],
                                                                                              dtype=F64)
    if mask is not None:
        weights = weights * mask[..., None]
    return (image * weights).sum()


def _lamp_outline_mask(lamp: dict, camera: "lg.Camera", width: float = 1.5) -> torch.Tensor:
    """``[H, W]`` float: 1 at the pixels whose centre lies within ``width`` pixels of the lamp's projected square
    (at its place in ``lamp``) or inside it."""
    from lumigrad.cameras.projection import project_points, transform_points
    corners = project_points(transform_points(_square(lamp["half"]) + torch.tensor(lamp["light"], dtype=F64),
                                              camera.world_to_cam), camera.K)
    j, i = torch.meshgrid(torch.arange(camera.width, dtype=F64) + 0.5, torch.arange(camera.height, dtype=F64) + 0.5,
                          indexing="xy")
    centres = torch.stack([j, i], -1).reshape(-1, 2)
    distance = torch.full((centres.shape[0],), math.inf, dtype=F64)
    side = []
    for k in range(4):
        a, b = corners[k], corners[(k + 1) % 4]
        t = (((centres - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum()).clamp(0, 1)
        distance = torch.minimum(distance, (centres - (a + t[:, None] * (b - a))).norm(dim=-1))
        side.append((b[0] - a[0]) * (centres[:, 1] - a[1]) - (b[1] - a[1]) * (centres[:, 0] - a[0]))
    side = torch.stack(side, -1)
    inside = (side > 0).all(-1) | (side < 0).all(-1)
    return ((distance <= width) | inside).to(F64).reshape(camera.height, camera.width)


def _mask(name: str, rows: Sequence[int], lamp: dict) -> Optional[torch.Tensor]:
    """The pixel mask of ``--mask`` (None for all pixels)."""
    if name == "all":
        return None
    if name == "rows":
        mask = torch.zeros(SIZE, SIZE, dtype=F64)
        mask[rows[0]:rows[1]] = 1
        return mask
    outline = _lamp_outline_mask(lamp, CAMERA)
    return outline if name == "outline" else 1 - outline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lamp", choices=sorted(LAMPS), default="large")
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--reference", type=int, default=0, metavar="SPP",
                        help="central differences of SPP-spp renders instead of the gradient")
    parser.add_argument("--eps", type=float, default=0.03, help="the central differences' step")
    parser.add_argument("--mask", choices=("all", "outline", "rest", "rows"), default="all",
                        help="the pixels the loss sums (outline: within 1.5 px of the lamp's projected square)")
    parser.add_argument("--rows", type=int, nargs=2, default=(0, SIZE), metavar=("FIRST", "END"),
                        help="with --mask rows: image rows FIRST <= row < END")
    parser.add_argument("--hashed-seeds", action="store_true",
                        help="backward seeds (2654435761 s + 987654321) mod 2^40 instead of 10 + s (a fresh set)")
    parser.add_argument("--terms", action="store_true",
                        help="also print the gradient's interior, primary-edge and shadow-edge terms")
    args = parser.parse_args()
    lamp = LAMPS[args.lamp]
    mask = _mask(args.mask, args.rows, lamp)
    x0 = torch.tensor([0.0, *lamp["light"], 0.6], dtype=F64)
    if args.reference:
        args.mask_tensor = mask
        _reference(x0, lamp, args)
        return
    seeds = [(2654435761 * s + 987654321) % 2 ** 40 if args.hashed_seeds else 10 + s for s in range(args.seeds)]
    grads, times = [], []
    for s in seeds:
        x = x0.clone().requires_grad_()
        start = time.process_time()
        _loss(x, lamp, s, mask=mask).backward()
        times.append(time.process_time() - start)
        grads.append(x.grad)
    g = torch.stack(grads)
    print(f"lamp {args.lamp}, pixels {args.mask}, {args.seeds} backward seeds; CPU per forward + backward pass: "
          f"{1e3 * statistics.median(times):.0f} ms (median)")
    _table(g, "pass")
    if args.terms:
        for term, settings in TERMS.items():
            parts = []
            for s in seeds:
                x = x0.clone().requires_grad_()
                _loss(x, lamp, s, mask=mask, **settings).backward()
                parts.append(x.grad)
            print(f"\n{term} term")
            _table(torch.stack(parts) - (interior if term != "interior" else 0), "pass")
            if term == "interior":
                interior = torch.stack(parts)


def _reference(x0: torch.Tensor, lamp: dict, args) -> None:
    """Central differences ``(L(x + eps e_k) - L(x - eps e_k)) / (2 eps)``, the pair rendered with one seed."""
    diffs = torch.zeros(args.seeds, len(NAMES), dtype=F64)
    with torch.no_grad():
        for s in range(args.seeds):
            for k in range(len(NAMES)):
                step = torch.zeros(len(NAMES), dtype=F64)
                step[k] = args.eps
                plus = _loss(x0 + step, lamp, 0, spp=args.reference, seed=1000 + s, mask=args.mask_tensor)
                minus = _loss(x0 - step, lamp, 0, spp=args.reference, seed=1000 + s, mask=args.mask_tensor)
                diffs[s, k] = (plus - minus) / (2 * args.eps)
    print(f"lamp {args.lamp}, pixels {args.mask}, central differences (eps {args.eps}) of {args.reference}-spp renders, "
          f"{args.seeds} seeds")
    _table(diffs, "seed")


def _table(values: torch.Tensor, unit: str) -> None:
    """A markdown table of ``values [runs, len(NAMES)]``: mean, standard error, one run's deviation."""
    mean, std = values.mean(0), values.std(0)
    print(f"| parameter | mean | standard error | std of one {unit} |")
    print("|---|---|---|---|")
    for k, name in enumerate(NAMES):
        print(f"| {name} | {mean[k]:.3f} | {std[k] / math.sqrt(values.shape[0]):.3f} | {std[k]:.3f} |")


if __name__ == "__main__":
    main()
