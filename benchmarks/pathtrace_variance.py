"""Gradient variance of the path tracer per spp: a reflectance (path replay) and a translation (edge sampling).

Scene: a shaded card over a shaded floor lit by a point light and a uniform sky (interreflection, MIS between
sky and BSDF samples), 32^2. For each spp, ``--seeds`` independent renders give the gradient of a
column-weighted image sum w.r.t. the floor's albedo (red channel) and the card's x translation; the table
shows their mean and standard deviation across seeds (backward passes decorrelated from the forward, the
default), with the two sides of each edge sample traced with the same random numbers (``antithetic_edges``,
the default) and independently.

A second table (``--table shadows``) measures shadow-edge sampling (:mod:`lumigrad.raytrace.shadow_edges`):
a dark card at height 0.6 over a floor, lit by a point light off to the side so its shadow is in view,
``integrator="direct"``; the gradient of the same column-weighted sum w.r.t. the card's x translation and the
light's x position (both mostly the shadow's motion), with the default number of shadow-edge points
(``H * W * spp / 16``, at least 256) and with a fixed 4000.
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def shadow_scene(shift, light_x):
    scene = lg.Scene()
    floor = torch.tensor([[-2.0, 0, -2], [2, 0, -2], [2, 0, 2], [-2, 0, 2]])
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD, lambert(torch.tensor([0.6, 0.6, 0.6]))))
    card = torch.tensor([[-0.3, 0.6, -0.3], [0.3, 0.6, -0.3], [0.3, 0.6, 0.3], [-0.3, 0.6, 0.3]])
    pose = torch.eye(4).index_put((torch.tensor([0]), torch.tensor([3])), shift.reshape(1))
    scene.add_mesh("card", lg.SceneMesh(card, QUAD, lambert(torch.tensor([0.2, 0.2, 0.2])), double_sided=True,
                                        to_world=pose))
    light = torch.stack([light_x, torch.tensor(1.6), torch.tensor(-0.5)])
    scene.add_light("key", lg.PointLight(light, torch.tensor(3.0)))
    return scene


def shadow_table(args) -> None:
    cam = lg.Camera.look_at([0.0, 3.0, 1.5], [0.0, 0.0, 0.0], fov_y=0.8, width=args.size, height=args.size)
    weight = (torch.arange(args.size, dtype=torch.float32) + 0.5)[None, :, None]
    warm = torch.tensor(0.0, requires_grad=True)  # compile the kernels before timing
    (lg.render(shadow_scene(warm, torch.tensor(0.5)), cam, integrator="direct", spp=1).rgb * weight).sum().backward()
    print(f"shadow edges | {args.size}^2, {args.seeds} seeds per row | direct")
    print("| spp | shadow-edge points | d/d card x: mean | std | d/d light x: mean | std | s per backward |")
    print("|---|---|---|---|---|---|---|")
    for spp in args.spp:
        for count in (None, 4000):
            gc, gl, seconds = [], [], []
            for seed in range(args.seeds):
                shift = torch.tensor(0.0, requires_grad=True)
                light_x = torch.tensor(0.5, requires_grad=True)
                image = lg.render(shadow_scene(shift, light_x), cam, integrator="direct", spp=spp, seed=seed,
                                  shadow_edge_samples=count).rgb
                start = time.perf_counter()
                (image * weight).sum().backward()
                seconds.append(time.perf_counter() - start)
                gc.append(float(shift.grad))
                gl.append(float(light_x.grad))
            cells = []
            for g in (gc, gl):
                cells += [f"{statistics.fmean(g):.2f}", f"{statistics.stdev(g):.2f}"]
            label = "default" if count is None else str(count)
            print(f"| {spp} | {label} | " + " | ".join(cells) + f" | {statistics.median(seconds):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spp", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--table", choices=("edges", "shadows", "both"), default="both")
    args = p.parse_args()
    if args.table in ("shadows", "both"):
        shadow_table(args)
    if args.table == "shadows":
        return
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
