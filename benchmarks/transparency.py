"""Benchmark: the raster integrator with transparent materials (depth peeling) against the same scene opaque.

Scene: two concentric, double-sided icospheres (radius 1 and 0.6, subdivision 3, 1,280 faces each) in front
of an opaque wall, under one point light, at ``--size`` (default 256^2): up to five surfaces per pixel
(sphere front, inner front, inner back, sphere back, wall). Rows: every material ``"OPAQUE"`` (the path
without peeling), the spheres ``"MASK"`` (the outer one's alpha 0.3 is below the 0.5 cutoff, so it is cut
away and the inner one, at the cutoff, is kept: two or three layers), and
the spheres ``"BLEND"`` (alpha 0.3 and 0.5) with ``max_layers`` K = 1, 2, 4, 8 (K = 8 stops after the five
layers there are). Forward, and forward + backward with gradients to both spheres' ``base_color_factor``
(colour and alpha); the fastest and the median of ``--repeats`` after one warm-up (the fastest is the one to
compare on a shared machine: other processes only ever add time).

    ./dev bench transparency
    ./dev bench transparency --size 128 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lumigrad as lg


def make_scene(mode: str, requires_grad: bool) -> lg.Scene:
    scene = lg.Scene()
    verts, faces = lg.geometry.icosphere(3)
    for name, radius, rgba in (("outer", 1.0, [0.8, 0.3, 0.2, 0.3]), ("inner", 0.6, [0.2, 0.4, 0.9, 0.5])):
        factor = torch.tensor(rgba, requires_grad=requires_grad)
        material = lg.Material(base_color_factor=factor, alpha_mode=mode,
                               metallic_factor=torch.tensor(0.0), roughness_factor=torch.tensor(0.4))
        scene.add_mesh(name, lg.SceneMesh(radius * verts, faces, material, double_sided=True))
    wall = torch.tensor([[-4.0, -4.0, 2.0], [4.0, -4.0, 2.0], [4.0, 4.0, 2.0], [-4.0, 4.0, 2.0]])
    scene.add_mesh("wall", lg.SceneMesh(wall, torch.tensor([[0, 2, 1], [0, 3, 2]]), lg.Material(
        base_color_factor=torch.tensor([0.7, 0.7, 0.6, 1.0]), metallic_factor=torch.tensor(0.0)),
        double_sided=True))
    scene.add_light("key", lg.PointLight(torch.tensor([1.0, -2.0, -3.0]), 15.0))
    return scene


def time_render(mode: str, size: int, repeats: int, backward: bool, **settings) -> str:
    scene = make_scene(mode, backward)
    cam = lg.Camera.look_at(torch.tensor([0.0, 0.0, -3.0]), torch.zeros(3), fov_y=0.9, width=size, height=size)
    params = [m.material.base_color_factor for m in scene.meshes.values() if m.material.base_color_factor.requires_grad]
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        out = lg.render(scene, cam, background=0.1, **settings)
        if backward:
            torch.autograd.grad(out.rgb.sum(), params, allow_unused=True)  # opaque: the inner sphere is hidden
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return f"{1000 * min(times):.1f} / {1000 * statistics.median(times):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [("OPAQUE", "OPAQUE", {}), ("MASK (outer sphere cut away, inner kept)", "MASK", {})]
    rows += [(f"BLEND, max_layers={k}", "BLEND", {"max_layers": k}) for k in (1, 2, 4, 8)]
    print(f"| spheres | fwd ms (min / median) | fwd+bwd ms (min / median) |   ({args.size}^2, {args.repeats} repeats)")
    print("|---|---:|---:|")
    for label, mode, settings in rows:
        fwd = time_render(mode, args.size, args.repeats, False, **settings)
        both = time_render(mode, args.size, args.repeats, True, **settings)
        print(f"| {label} | {fwd} | {both} |", flush=True)


if __name__ == "__main__":
    main()
