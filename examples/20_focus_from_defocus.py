"""Find where a photo was focused, and how wide its aperture was, from its blur: depth of field by path tracing.

The target is a path-traced image through a thin lens (``lg.Camera(aperture_radius=, focus_distance=)``)
focused on the middle of three objects standing at depths 2.5, 4 and 5.5 on a checkered floor. The fit starts
from a lens focused far behind them with half the aperture and moves both by Adam until the render's blur
matches: which objects are sharp says where the focal plane is, how much the others blur says how wide the
aperture is (a circle of confusion of ``2 a fx |1/f - 1/z|`` pixels). The image's gradients w.r.t. the two
come from the camera rays (the floor's texture) and from the silhouettes' boundary term, drawn through the
pinhole cameras of aperture points (docs/design.md, "Thin lenses").

* Parameters: ``log(focus_distance)`` and ``log(aperture_radius)`` (positive by construction); Adam, cosine
  decay; a fresh ``seed`` per step.
* Loss: mean squared error of the linear images at full size and 2x smaller.

Measured (60 steps, 64 x 48, 16 spp per step, target 256 spp; 32 s on 2 CPU cores shared with another run):
the focus distance went from 7.0 to 3.990 (true 4.0), the aperture radius from 0.12 to 0.2434 (true 0.25). With
8 spp per step and 40 steps (15 s): 3.990 and 0.2689; the aperture's gradient is the noisier of the two (its
boundary terms of opposite aperture points nearly cancel: docs/design.md, "Thin lenses").

    python examples/20_focus_from_defocus.py --steps 60 --size 64
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import lumigrad as lg
from lumigrad.shading import Material

TRUE_FOCUS, TRUE_APERTURE = 4.0, 0.25
START_FOCUS, START_APERTURE = 7.0, 0.12


def box(centre, size) -> tuple:
    """A closed box (12 triangles, counter-clockwise outside): ``(verts [8, 3], faces [12, 3])``."""
    corners = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.float32) - 0.5
    faces = torch.tensor([[0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5], [0, 1, 5], [0, 5, 4], [2, 6, 7], [2, 7, 3],
                          [0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6]])
    return corners * torch.tensor(size) + torch.tensor(centre), faces


def checker(n: int = 16, texels: int = 128) -> torch.Tensor:
    """An ``n x n`` checkerboard texture ``[texels, texels, 3]`` (sRGB 0.15 and 0.8)."""
    cells = (torch.arange(texels) * n // texels)
    board = ((cells[:, None] + cells[None, :]) % 2).float()
    return (0.15 + 0.65 * board)[..., None].expand(texels, texels, 3).contiguous()


def make_scene() -> lg.Scene:
    scene = lg.Scene()
    s = 4.0
    floor = torch.tensor([[-s, 0, -s], [s, 0, -s], [s, 0, s], [-s, 0, s]], dtype=torch.float32)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    floor_material = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=1.0, ior=1.0,
                              base_color_texture=checker())
    scene.add_mesh("floor", lg.SceneMesh(floor, torch.tensor([[0, 2, 1], [0, 3, 2]]), floor_material, uv=uv))
    for name, centre, colour in (("near", (-0.7, 0.35, -1.5), (0.8, 0.25, 0.2)),
                                 ("middle", (0.1, 0.35, 0.0), (0.25, 0.7, 0.3)),
                                 ("far", (0.9, 0.35, 1.5), (0.2, 0.3, 0.8))):
        material = Material(base_color_factor=torch.tensor(list(colour) + [1.0]), metallic_factor=0.0,
                            roughness_factor=1.0, ior=1.0)
        scene.add_mesh(name, lg.SceneMesh(*box(centre, (0.5, 0.7, 0.5)), material))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 4.0, -2.0]), torch.tensor(25.0)))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 0.5)))
    return scene


def camera(size: int, focus: torch.Tensor, aperture: torch.Tensor) -> lg.Camera:
    """A thin lens 4 units in front of the middle box (looking down at it a little), ``size x 3/4 size``."""
    return lg.Camera.look_at([0.0, 1.2, -4.0], [0.1, 0.35, 0.0], fov_y=0.55, width=size, height=size * 3 // 4,
                             aperture_radius=aperture, focus_distance=focus)


def image_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    coarse = lambda x: F.avg_pool2d(x.permute(2, 0, 1)[None], 2)  # noqa: E731
    return (image - target).square().mean() + (coarse(image) - coarse(target)).square().mean()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--size", type=int, default=64, help="image width (height: 3/4 of it)")
    p.add_argument("--spp", type=int, default=16, help="samples per pixel of each step")
    p.add_argument("--target-spp", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.08)
    p.add_argument("--out", default="lumigrad-out/20_focus_from_defocus", help="folder for the images")
    args = p.parse_args(argv)
    scene = make_scene()
    settings = dict(integrator="direct")
    with torch.no_grad():
        truth = camera(args.size, torch.tensor(TRUE_FOCUS), torch.tensor(TRUE_APERTURE))
        target = lg.render(scene, truth, spp=args.target_spp, seed=1000, **settings).rgb
    log_focus = torch.tensor(math.log(START_FOCUS), requires_grad=True)
    log_aperture = torch.tensor(math.log(START_APERTURE), requires_grad=True)
    opt = torch.optim.Adam([log_focus, log_aperture], lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(args.steps, 1))
    history = [(START_FOCUS, START_APERTURE)]
    with torch.no_grad():
        start_image = lg.render(scene, camera(args.size, torch.tensor(START_FOCUS), torch.tensor(START_APERTURE)),
                                spp=args.target_spp, **settings).rgb
    for step in range(args.steps):
        cam = camera(args.size, log_focus.exp(), log_aperture.exp())
        loss = image_loss(lg.render(scene, cam, spp=args.spp, seed=step, **settings).rgb, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        history.append((float(log_focus.detach().exp()), float(log_aperture.detach().exp())))
        if step % 5 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {float(loss.detach()):.6f}  focus {history[-1][0]:.3f}  "
                  f"aperture {history[-1][1]:.4f}", flush=True)
    focus, aperture = history[-1]
    with torch.no_grad():
        final_image = lg.render(scene, camera(args.size, torch.tensor(focus), torch.tensor(aperture)),
                                spp=args.target_spp, **settings).rgb
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in (("target", target), ("start", start_image), ("final", final_image)):
        lg.io.write_image(out / f"{name}.png", img.clamp(0, 1) ** (1 / 2.2))
    (out / "lens.txt").write_text("step focus_distance aperture_radius\n"
                                  + "".join(f"{k} {f:.6f} {a:.6f}\n" for k, (f, a) in enumerate(history)))
    print(f"focus distance {START_FOCUS} -> {focus:.3f} (true {TRUE_FOCUS}); aperture radius {START_APERTURE} -> "
          f"{aperture:.4f} (true {TRUE_APERTURE}); images in {out}")
    return {"focus": focus, "aperture": aperture, "history": history}


if __name__ == "__main__":
    main(sys.argv[1:])
