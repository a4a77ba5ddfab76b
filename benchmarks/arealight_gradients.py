"""Area-light gradients of the path tracer: mean, spread over backward seeds and CPU time per backward pass.

Scene (as ``tests/raytrace/test_shadow_edges.py``): a grey floor, a dark 0.6 x 0.6 card, a square lamp facing
down (the same power whatever its size), 24^2, ``integrator="direct"``, 4 spp, 4000 shadow-edge points; the loss
is a smooth per-pixel weighting of the image. ``--lamp small``: side 0.3, 1.6 above the floor, card at 0.6;
``--lamp large``: side 1.0, 1.1 above the floor, card at 0.5. For ``--seeds`` backward seeds it prints, per
parameter (card x, lamp x / y / z, the floor's red albedo), the mean gradient, its standard error and the
standard deviation of one pass, and the median process CPU time of a forward + backward pass. Run it with
``PYTHONPATH`` on two checkouts to compare them (process CPU time at one thread:
``OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1``).

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

import torch

import lumigrad as lg
from lumigrad.shading import Material

F64 = torch.float64
QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
SIZE = 24
LAMPS = {"small": dict(half=0.15, light=(0.5, 1.6, -0.5), card=0.6),
         "large": dict(half=0.5, light=(0.3, 1.1, -0.3), card=0.5)}
NAMES = ("card x", "lamp x", "lamp y", "lamp z", "albedo r")


def _material(rgb: torch.Tensor) -> Material:
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1, dtype=F64)]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def _square(half: float) -> torch.Tensor:
    return torch.tensor([[-half, 0, -half], [half, 0, -half], [half, 0, half], [-half, 0, half]], dtype=F64)


def _loss(x: torch.Tensor, lamp: dict, seed_grad: int, spp: int = 4, seed: int = 0) -> torch.Tensor:
    """``x = (card x, lamp x, y, z, albedo r)``; ``seed`` is the primal's, ``seed_grad`` the backward pass's."""
    scene = lg.Scene()
    albedo = torch.stack([x[4], torch.tensor(0.6, dtype=F64), torch.tensor(0.6, dtype=F64)])
    scene.add_mesh("floor", lg.SceneMesh(_square(2.0), QUAD, _material(albedo)))
    card = _square(0.3) + torch.stack([x[0], torch.tensor(lamp["card"], dtype=F64), torch.zeros((), dtype=F64)])
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, _material(torch.full((3,), 0.2, dtype=F64)), double_sided=True))
    half = lamp["half"]
    scene.add_light("lamp", lg.AreaLight(_square(half) + x[1:4], torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                         torch.full((3,), 30.0 * (0.15 / half) ** 2, dtype=F64)))
    camera = lg.Camera.look_at([0.0, 3.0, 1.5], [0.0, 0.0, 0.0], fov_y=0.8, width=SIZE, height=SIZE).to(dtype=F64)
    image = lg.render(scene, camera, integrator="direct", spp=spp, seed=seed,
                     seed_grad=seed_grad, shadow_edge_samples=4000).rgb
    r = (torch.arange(SIZE, dtype=F64) + 0.5) / SIZE
    weights = 0.5 + r[None, :, None] + 0.4 * torch.sin(3 * r)[:, None, None] * torch.tensor([1.0, 0.5, -0.5],
                                                                                              dtype=F64)
    return (image * weights).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lamp", choices=sorted(LAMPS), default="large")
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--reference", type=int, default=0, metavar="SPP",
                        help="central differences of SPP-spp renders instead of the gradient")
    parser.add_argument("--eps", type=float, default=0.03, help="the central differences' step")
    args = parser.parse_args()
    lamp = LAMPS[args.lamp]
    x0 = torch.tensor([0.0, *lamp["light"], 0.6], dtype=F64)
    if args.reference:
        _reference(x0, lamp, args)
        return
    grads, times = [], []
    for s in range(args.seeds):
        x = x0.clone().requires_grad_()
        start = time.process_time()
        _loss(x, lamp, 10 + s).backward()
        times.append(time.process_time() - start)
        grads.append(x.grad)
    g = torch.stack(grads)
    print(f"lamp {args.lamp}, {args.seeds} backward seeds; CPU per forward + backward pass: "
          f"{1e3 * statistics.median(times):.0f} ms (median)")
    _table(g, "pass")


def _reference(x0: torch.Tensor, lamp: dict, args) -> None:
    """Central differences ``(L(x + eps e_k) - L(x - eps e_k)) / (2 eps)``, the pair rendered with one seed."""
    diffs = torch.zeros(args.seeds, len(NAMES), dtype=F64)
    with torch.no_grad():
        for s in range(args.seeds):
            for k in range(len(NAMES)):
                step = torch.zeros(len(NAMES), dtype=F64)
                step[k] = args.eps
                plus = _loss(x0 + step, lamp, 0, spp=args.reference, seed=1000 + s)
                minus = _loss(x0 - step, lamp, 0, spp=args.reference, seed=1000 + s)
                diffs[s, k] = (plus - minus) / (2 * args.eps)
    print(f"lamp {args.lamp}, central differences (eps {args.eps}) of {args.reference}-spp renders, "
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
