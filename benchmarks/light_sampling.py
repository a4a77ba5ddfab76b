"""Area-light sampling strategies of the path tracer's primal: time, per-pixel variance and efficiency.

For each scene and each ``light_sampling`` setting of ``integrator="path"`` (``"solid_angle"``, ``"area"``,
``"auto"``), ``--seeds`` independent forward renders at the same spp give the per-pixel variance of one render
(the mean over pixels and channels of the sample variance across seeds) and the median process CPU time of a
render; efficiency is ``1 / (variance x time)``
(higher is better), the ratio column is against ``solid_angle``. Emitters seen by the camera are hidden
(``hide_emitters``): the lamp's own pixels' noise (how much of the pixel its edge covers) is the same whatever
the strategy and would dilute the comparison. The settings alternate seed by seed, so
machine load falls on both alike; run it at one thread (``OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1``) for
process CPU time that is the work done.

Scenes: ``cornell``: the box of ``benchmarks/pathtrace.py`` (a small lamp, 0.5 x 0.5 under the ceiling of a
2 x 2 x 2 box); ``large``: the "large lamp" of ``benchmarks/arealight_gradients.py`` (a 1 x 1 lamp 1.1 above a
floor, a card 0.5 above it, so the lamp fills much of the floor's sky); ``near``: the same lamp 0.3 above the
card (a lamp close to the surfaces it lights, where sampling by area is worst); ``small``: the "small lamp" of
``benchmarks/arealight_gradients.py`` (0.3 x 0.3, 1.6 above the floor, the card at 0.6).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.shading import Material

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathtrace import camera as cornell_camera, cornell_box  # noqa: E402

QUAD = torch.tensor([[0, 2, 1], [0, 3, 2]])
STRATEGIES = ("solid_angle", "area", "auto")


def _square(half: float, y: float = 0.0) -> torch.Tensor:
    return torch.tensor([[-half, y, -half], [half, y, -half], [half, y, half], [-half, y, half]])


def _lambert(grey: float) -> Material:
    return Material(base_color_factor=torch.tensor([grey, grey, grey, 1.0]), metallic_factor=0.0,
                    roughness_factor=1.0, ior=1.0)


def lamp_scene(lamp_height: float, size: int, half: float = 0.5, at=(0.3, -0.3), card: float = 0.5):
    """A grey floor, a dark card at height ``card``, a square lamp of side ``2 half`` facing down at
    ``lamp_height`` (the same power whatever its size; ``benchmarks/arealight_gradients.py``'s lamps: large
    ``half = 0.5`` at 1.1 over ``(0.3, -0.3)``, small ``half = 0.15`` at 1.6 over ``(0.5, -0.5)``, card at 0.6),
    and its camera."""
    scene = lg.Scene()
    scene.add_mesh("floor", lg.SceneMesh(_square(2.0), QUAD, _lambert(0.6)))
    scene.add_mesh("card", lg.SceneMesh(_square(0.3, card), QUAD, _lambert(0.2), double_sided=True))
    lamp = _square(half) + torch.tensor([at[0], lamp_height, at[1]])
    scene.add_light("lamp", lg.AreaLight(lamp, torch.tensor([[0, 1, 2], [0, 2, 3]]),
                                         torch.full((3,), 30.0 * (0.15 / half) ** 2)))
    cam = lg.Camera.look_at([0.0, 3.0, 1.5], [0.0, 0.0, 0.0], fov_y=0.8, width=size, height=size)
    return scene, cam


def scenes(size: int) -> dict:
    return {"cornell": (cornell_box(torch.tensor([0.7, 0.7, 0.7])), cornell_camera(size)),
            "large": lamp_scene(1.1, size), "near": lamp_scene(0.8, size),
            "small": lamp_scene(1.6, size, half=0.15, at=(0.5, -0.5), card=0.6)}


def measure(scene, cam, spp: int, depth: int, seeds: int) -> dict:
    """Per strategy: ``(median CPU seconds of a render, mean per-pixel variance of one render, mean image)``."""
    images = {s: [] for s in STRATEGIES}
    times = {s: [] for s in STRATEGIES}
    for seed in range(-1, seeds):  # seed -1: a warm-up (kernel compilation, BVH), not counted
        for strategy in STRATEGIES:
            t0 = time.process_time()
            with torch.no_grad():
                rgb = lg.render(scene, cam, integrator="path", spp=spp, seed=max(seed, 0), max_depth=depth,
                                light_sampling=strategy, hide_emitters=True).rgb
            if seed >= 0:
                times[strategy].append(time.process_time() - t0)
                images[strategy].append(rgb.double())
    out = {}
    for s in STRATEGIES:
        stack = torch.stack(images[s])
        out[s] = (statistics.median(times[s]), float(stack.var(0).mean()), float(stack.mean()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--spp", type=int, default=4)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--scenes", nargs="+", default=["cornell", "large", "near", "small"],
                   choices=["cornell", "large", "near", "small"])
    args = p.parse_args()
    print(f"lumigrad {lg.__version__} | {torch.get_num_threads()} threads | {args.size}^2, {args.spp} spp, "
          f"max_depth {args.depth}, {args.seeds} seeds")
    print("| scene | light_sampling | CPU s / render | variance / pixel | efficiency 1/(var s) | ratio | mean |")
    print("|---|---|---|---|---|---|---|")
    all_scenes = scenes(args.size)
    for name in args.scenes:
        scene, cam = all_scenes[name]
        res = measure(scene, cam, args.spp, args.depth, args.seeds)
        base = 1.0 / (res["solid_angle"][0] * res["solid_angle"][1])
        for s in STRATEGIES:
            t, var, mean = res[s]
            eff = 1.0 / (t * var)
            print(f"| {name} | {s} | {t:.4f} | {var:.4g} | {eff:.4g} | {eff / base:.2f} | {mean:.4f} |")


if __name__ == "__main__":
    main()
