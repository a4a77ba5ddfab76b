"""Recover a point light's position from the shadows it casts: two boxes on a floor, one path-traced image.

The target is a render (direct light, ``--target-spp`` samples per pixel) with the light at its true position;
the light starts elsewhere and Adam moves it to match the image. Where the light sits decides where the
boxes' shadows fall and how long they are, and the gradient of the image w.r.t. the light's position sees that
through shadow-edge sampling (:mod:`lumigrad.raytrace.shadow_edges`: the boundary term of the direct light's
visibility); the floor's shading (the light's inverse-square falloff) adds the interior term by path replay.
``--no-shadow-edges`` turns the boundary term off, to compare.

* Parameter: the light's position (3 numbers); Adam, cosine decay; a fresh ``seed`` per step.
* Loss: mean squared error of the linear images, at full size and 4x smaller (the coarse level lets the
  shadows pull from further away).

Measured (60 steps, 48 x 48, 4 spp per step, 4000 shadow-edge points, target 64 spp; 64 s on 2 CPU cores
shared with other work, load average 8): the position error went from 1.068 to 0.025 (world units; the boxes
are 0.3-0.5 tall). With ``--no-shadow-edges`` it went to 0.022 in the same steps: in this scene the floor's
shading (the inverse-square falloff, the interior term) alone pins the light down, and the shadows' boundary
term, correct as it is (tests/raytrace/test_shadow_edges.py), does not change the outcome; a light twice as
high (flatter shading) reached 0.21 with the term and 0.25 without in 60 steps. Example 09 is the case where
the shadow is the only cue.

    python examples/08_light_from_shadows.py --steps 60 --size 48
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import lumigrad as lg
from lumigrad.shading import Material

TRUE_LIGHT = (0.3, 1.5, 0.4)
START_LIGHT = (-0.4, 1.1, -0.3)


def box(centre, size) -> tuple:
    """A closed box (12 triangles, counter-clockwise outside): ``(verts [8, 3], faces [12, 3])``."""
    corners = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.float32) - 0.5
    faces = torch.tensor([[0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5], [0, 1, 5], [0, 5, 4], [2, 6, 7], [2, 7, 3],
                          [0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6]])
    return corners * torch.tensor(size) + torch.tensor(centre), faces


def diffuse(rgb) -> Material:
    return Material(base_color_factor=torch.tensor(list(rgb) + [1.0]), metallic_factor=0.0, roughness_factor=1.0,
                    ior=1.0)


def make_scene(light_position: torch.Tensor) -> lg.Scene:
    scene = lg.Scene()
    s = 1.5
    floor = torch.tensor([[-s, 0, -s], [s, 0, -s], [s, 0, s], [-s, 0, s]], dtype=torch.float32)
    scene.add_mesh("floor", lg.SceneMesh(floor, torch.tensor([[0, 2, 1], [0, 3, 2]]), diffuse((0.7, 0.7, 0.7))))
    scene.add_mesh("tall", lg.SceneMesh(*box((-0.4, 0.25, 0.1), (0.3, 0.5, 0.3)), diffuse((0.8, 0.3, 0.2))))
    scene.add_mesh("flat", lg.SceneMesh(*box((0.45, 0.15, -0.3), (0.4, 0.3, 0.2)), diffuse((0.2, 0.4, 0.8))))
    scene.add_light("key", lg.PointLight(light_position, torch.tensor(4.0)))
    return scene


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 2.6, 2.2], [0.0, 0.0, 0.0], fov_y=0.75, width=size, height=size)


def image_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    coarse = lambda x: F.avg_pool2d(x.permute(2, 0, 1)[None], 4)  # noqa: E731
    return (image - target).square().mean() + (coarse(image) - coarse(target)).square().mean()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--spp", type=int, default=4, help="samples per pixel of each step")
    p.add_argument("--target-spp", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.08)
    p.add_argument("--shadow-edge-samples", type=int, default=4000)
    p.add_argument("--no-shadow-edges", action="store_true", help="no boundary term of the shadows (compare)")
    p.add_argument("--out", default="lumigrad-out/08_light_from_shadows", help="folder for the images")
    args = p.parse_args(argv)
    cam = camera(args.size)
    truth = torch.tensor(TRUE_LIGHT)
    with torch.no_grad():
        target = lg.render(make_scene(truth), cam, integrator="direct", spp=args.target_spp, seed=1000).rgb
    position = torch.tensor(START_LIGHT, requires_grad=True)
    opt = torch.optim.Adam([position], lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(args.steps, 1))
    samples = 0 if args.no_shadow_edges else args.shadow_edge_samples
    errors = [float((position.detach() - truth).norm())]
    with torch.no_grad():
        start_image = lg.render(make_scene(position.detach()), cam, integrator="direct", spp=args.target_spp).rgb
    for step in range(args.steps):
        image = lg.render(make_scene(position), cam, integrator="direct", spp=args.spp, seed=step,
                          shadow_edge_samples=samples).rgb
        loss = image_loss(image, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        errors.append(float((position.detach() - truth).norm()))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {float(loss.detach()):.6f}  position error {errors[-1]:.4f}", flush=True)
    with torch.no_grad():
        final_image = lg.render(make_scene(position.detach()), cam, integrator="direct", spp=args.target_spp).rgb
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in (("target", target), ("start", start_image), ("final", final_image)):
        lg.io.write_image(out / f"{name}.png", img.clamp(0, 1) ** (1 / 2.2))
    (out / "position_error.txt").write_text("".join(f"{k} {e:.6f}\n" for k, e in enumerate(errors)))
    print(f"light position {[round(v, 4) for v in position.detach().tolist()]} (true {list(TRUE_LIGHT)}); "
          f"error {errors[0]:.4f} -> {errors[-1]:.4f}; images in {out}")
    return {"initial_error": errors[0], "final_error": errors[-1], "errors": errors}


if __name__ == "__main__":
    main(sys.argv[1:])
