"""Recover the wall colours and the tall box's roughness of the Cornell box from one path-traced image.

The scene is the original Cornell box (Williams College's OBJ, embedded: ``lumigrad.data.load_cornell_box``):
its emissive ceiling quad becomes an area light, every surface the glTF metallic-roughness model. The target is a
path-traced render (``--target-spp`` samples per pixel, ``max_depth`` 5) with the true materials. The
unknowns start grey and smooth: the red and green walls' albedo and the tall box's roughness. What ties them
to the pixels is light transport, not only direct light: the walls bleed their colour onto the floor, the
ceiling and the boxes (interreflection), which the gradient of each step sees through path replay
backpropagation (``integrator="path"``, a fresh ``seed`` per step, the backward pass decorrelated from the
forward so the noisy images give unbiased gradients).

* Parameters: albedo through a sigmoid (it stays in (0, 1)), roughness likewise; Adam, cosine decay.
* Loss: mean squared error of the linear images.

Measured (150 steps, 48 x 48, 4 spp per step, target 128 spp; 2 CPU cores, about 0.5 s a step): the red wall
(1, 0.065, 0.05) came out (0.94, 0.087, 0.085), the green one (0.14, 0.45, 0.091) came out (0.151, 0.439,
0.099); the tall box's roughness 0.146 for 0.25: its specular coat (F0 = 0.04) barely shows at this size, so
roughness is weakly determined by the image.

    python examples/07_cornell_box_materials.py --steps 200 --size 64
"""

from __future__ import annotations

import argparse
import sys

import torch

import lumigrad as lg

WALLS = ("mesh_leftWall", "mesh_rightWall")


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 1.0, 3.9], [0.0, 1.0, 0.0], fov_y=0.68, width=size, height=size)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--spp", type=int, default=4, help="samples per pixel of each step")
    p.add_argument("--target-spp", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.08)
    args = p.parse_args(argv)
    cam = camera(args.size)
    truth = lg.data.load_cornell_box()
    truth.meshes["mesh_tallBox"].material.roughness_factor = torch.tensor(0.25)
    true_albedo = {w: truth.meshes[w].material.base_color_factor[:3].clone() for w in WALLS}
    with torch.no_grad():
        target = lg.render(truth, cam, integrator="path", spp=args.target_spp, max_depth=5, seed=1000).rgb

    scene = lg.data.load_cornell_box()
    logits = {w: torch.zeros(3, requires_grad=True) for w in WALLS}  # sigmoid(0) = 0.5: grey
    rough_logit = torch.tensor(2.0, requires_grad=True)  # sigmoid(2) = 0.88: rough
    opt = torch.optim.Adam(list(logits.values()) + [rough_logit], lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(args.steps, 1))
    for step in range(args.steps):
        for w in WALLS:
            scene.meshes[w].material.base_color_factor = torch.cat([torch.sigmoid(logits[w]), torch.ones(1)])
        scene.meshes["mesh_tallBox"].material.roughness_factor = torch.sigmoid(rough_logit)
        image = lg.render(scene, cam, integrator="path", spp=args.spp, max_depth=5, seed=step).rgb
        loss = (image - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {float(loss.detach()):.5f}", flush=True)
    result = {w: torch.sigmoid(logits[w]).detach() for w in WALLS}
    result["roughness"] = float(torch.sigmoid(rough_logit))
    for w in WALLS:
        print(f"{w}: albedo {result[w].tolist()} (true {true_albedo[w].tolist()})")
    print(f"tall box roughness {result['roughness']:.3f} (true 0.250)")
    return {"albedo": result, "true_albedo": true_albedo}


if __name__ == "__main__":
    main(sys.argv[1:])
