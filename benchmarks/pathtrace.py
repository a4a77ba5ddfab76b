"""Path tracer: time and peak memory of forward and path-replay backward, by depth.

A Cornell-like box (five diffuse walls, two red/green, a square lamp under the ceiling), 256^2 by default:

* forward: ``lumigrad.render(..., integrator="path", spp, max_depth)`` without a graph;
* reflectance gradient: the gradient of the mean pixel w.r.t. the back wall's albedo by path replay
  backpropagation, at several depths (its memory must not grow with depth: one bounce's graph at a time);
* ``--device cuda`` runs it on a GPU (``./dev gpu-check`` does).

Mitsuba 3's side of this scene is not in the script yet (docs/benchmarks.md quotes its reference times).

Prints a markdown table: median of ``--repeats`` runs after a warm-up, peak memory of one run.
"""

from __future__ import annotations

import argparse

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def cornell_box(albedo: torch.Tensor, device=None) -> lg.Scene:
    """A unit box open towards -z, the camera's side; ``albedo`` is the back wall's."""
    def lambert(rgb):
        rgb = torch.as_tensor(rgb, dtype=torch.float32, device=device)
        return lg.shading.Material(base_color_factor=torch.cat([rgb, torch.ones(1, device=device)]),
                                   metallic_factor=0.0, roughness_factor=1.0, ior=1.0)

    walls = {
        "floor": ([[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]], (0.7, 0.7, 0.7)),
        "ceiling": ([[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]], (0.7, 0.7, 0.7)),
        "back": ([[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], albedo),
        "left": ([[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]], (0.6, 0.1, 0.1)),
        "right": ([[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]], (0.1, 0.6, 0.1)),
    }
    scene = lg.Scene()
    for name, (verts, rgb) in walls.items():
        scene.add_mesh(name, lg.SceneMesh(torch.tensor(verts, dtype=torch.float32, device=device),
                                          QUAD.to(device), lambert(rgb), double_sided=True))
    lamp = torch.tensor([[-0.25, 0.99, -0.25], [0.25, 0.99, -0.25], [0.25, 0.99, 0.25], [-0.25, 0.99, 0.25]],
                        device=device)
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD.to(device), torch.tensor([15.0, 15.0, 15.0], device=device)))
    return scene


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 0.0, -3.4], [0.0, 0.0, 0.0], fov_y=0.7, width=size, height=size)


def _timed(fn, repeats: int, device: torch.device):
    """Median seconds of ``repeats`` calls after a warm-up (synchronised on CUDA), and the peak memory of one
    call in MiB (CUDA: allocator growth; CPU: peak RSS growth)."""
    seconds = median(time_call(fn, repeats, warmup=1, sync=device))
    mib, _ = peak_memory(fn, device)
    return seconds, mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 8, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    device = torch.device(args.device)
    cam = camera(args.size).to(device)
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{args.size}^2, {args.spp} spp")
    print("| renderer | what | max_depth | median s | peak MiB |")
    print("|---|---|---|---|---|")
    for depth in args.depths:
        albedo = torch.tensor([0.7, 0.7, 0.7], device=device)
        scene = cornell_box(albedo, device)

        def forward():
            with torch.no_grad():
                return lg.render(scene, cam, integrator="path", spp=args.spp, max_depth=depth, rr_depth=depth)

        s, mib = _timed(forward, args.repeats, device)
        print(f"| lumigrad | forward | {depth} | {s:.3f} | {mib:.0f} |")
        leaf = albedo.clone().requires_grad_(True)
        scene = cornell_box(leaf)

        def gradient():
            leaf.grad = None
            lg.render(scene, cam, integrator="path", spp=args.spp, max_depth=depth, rr_depth=depth).rgb.mean().backward()

        s, mib = _timed(gradient, args.repeats, device)
        print(f"| lumigrad | forward + reflectance gradient | {depth} | {s:.3f} | {mib:.0f} |")


if __name__ == "__main__":
    main()
