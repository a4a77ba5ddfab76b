"""Gradient variance of the path tracer per spp: a reflectance (path replay) and a translation (edge sampling).

Scene: a shaded card over a shaded floor lit by a point light and a uniform sky (interreflection, MIS between
sky and BSDF samples), 32^2. For each spp, ``--seeds`` independent renders give the gradient of a
column-weighted image sum w.r.t. the floor's albedo (red channel) and the card's x translation; the table
shows their mean and standard deviation across seeds (backward passes decorrelated from the forward, the
default), with the two sides of each edge sample traced with the same random numbers (``antithetic_edges``,
the default) and independently.
"""

from __future__ import annotations

import argparse
import statistics

import torch

import lumigrad as lg
from lumigrad.shading import Material

QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])


def lambert(rgb):
    return Material(base_color_factor=torch.cat([rgb, torch.ones(1)]), metallic_factor=0.0, roughness_factor=1.0,
                    ior=1.0)


def scene_for(albedo, shift):
    scene = lg.Scene()
    floor = torch.tensor([[-3.0, 0, -3], [3, 0, -3], [3, 0, 3], [-3, 0, 3]])
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, lambert(albedo), double_sided=True))
    card = torch.tensor([[-0.5, 0.5, -0.5], [0.5, 0.5, -0.5], [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5]])
    pose = torch.eye(4).index_put((torch.tensor([0]), torch.tensor([3])), shift.reshape(1))
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, lambert(torch.tensor([0.9, 0.8, 0.1])), double_sided=True,
                                        to_world=pose))
    scene.add_light("key", lg.PointLight(torch.tensor([0.0, 3.0, -3.0]), torch.tensor(20.0)))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((4, 8, 3), 0.3)))
    return scene


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spp", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    args = p.parse_args()
    cam = lg.Camera.look_at([0.0, 3.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=args.size, height=args.size)
    weight = (torch.arange(args.size, dtype=torch.float32) + 0.5)[None, :, None]
    print(f"lumigrad {lg.__version__} | {args.size}^2, {args.seeds} seeds per row | max_depth 4")
    print("| spp | edges | d/d albedo: mean | std | d/d translation: mean | std |")
    print("|---|---|---|---|---|---|")
    for spp in args.spp:
        for antithetic in (True, False):
            ga, gt = [], []
            for seed in range(args.seeds):
                albedo = torch.tensor([0.3, 0.5, 0.7], requires_grad=True)
                shift = torch.tensor(0.0, requires_grad=True)
                image = lg.render(scene_for(albedo, shift), cam, integrator="path", spp=spp, seed=seed, max_depth=4,
                                  antithetic_edges=antithetic).rgb
                (image * weight).sum().backward()
                ga.append(float(albedo.grad[0]))
                gt.append(float(shift.grad))
            cells = []
            for g in (ga, gt):
                cells += [f"{statistics.fmean(g):.2f}", f"{statistics.stdev(g):.2f}"]
            print(f"| {spp} | {'antithetic' if antithetic else 'independent'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
