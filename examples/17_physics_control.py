"""Control from pixels: find the per-step force sequence that brings a soft box to a target final image.

The FEM box of ``examples/16_soft_body_stiffness.py`` rests on a frictionless floor. A force ``F[t]`` (a
``[steps, 3]`` tensor, N) pushes it at its centre of mass during each solver step (spread over the particles in
proportion to their mass, the ``state.particle_f`` schedule of :func:`lumigrad.physics.simulate`). The target is
the last frame rendered after a known smooth push (a half-sine of peak ``--push`` N towards +x and +y). The fit
starts from no force and runs Adam on ``F`` against the image loss of the final frame (plus the same loss on
2x and 4x down-sampled images, which widens its reach) and a regulariser
``smooth * sum |F[t+1] - F[t]|^2 + effort * sum |F[t]|^2``. Reported: the final-image loss and the distance of the
body's final centre of mass from the target's.

    python examples/17_physics_control.py --frames 20 --size 64 --steps 60
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as tnf

import lumigrad as lg
from lumigrad.physics import lit_scene, simulate
from lumigrad.physics.soft_body import drop_soft_box

DT = 2.0e-3     # s per solver step
MODULUS = 2.0e4  # Pa: a firm box, so the push moves it more than it deforms it
BOX_COLOR = (0.3, 0.6, 0.8)  # blue, to tell it from example 16's box


def camera(size: int) -> lg.Camera:
    """A camera above and in front of the floor, looking down at the push, +z up."""
    return lg.Camera.look_at(torch.tensor([0.05, -0.55, 0.75]), torch.tensor([0.05, 0.05, 0.0]),
                             torch.tensor([0.0, 0.0, 1.0]), width=size, height=size, fov_y=0.7, near=0.1, far=3.0)


def push(forces: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Spread per-step centre-of-mass forces ``[steps, 3]`` over particles of mass ``[n]``: ``[steps, n, 3]``."""
    return forces[:, None, :] * (mass / mass.sum())[None, :, None]


def final_state(body, forces: torch.Tensor, mass: torch.Tensor):
    """Simulate under ``forces`` and return the final particle positions ``[n, 3]``."""
    params = {"state.particle_f": push(forces, mass), "model.tet_materials": body.tet_materials(torch.tensor(MODULUS))}
    return simulate(body.system, params, forces.shape[0], DT, checkpoint_every=50)[-1]


def draw(body, particles: torch.Tensor, cam: lg.Camera) -> torch.Tensor:
    """The box at particle positions ``[n, 3]``, rendered RGBA ``[H, W, 4]`` over black."""
    return lg.render(lit_scene(particles.float(), body.surface_faces, BOX_COLOR), cam, background=0.0).rgba


def image_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error at full, 1/2 and 1/4 resolution (RGBA, ``[H, W, 4]``)."""
    a, b = image.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]
    return sum(((tnf.avg_pool2d(a, s) - tnf.avg_pool2d(b, s)) ** 2).mean() for s in (1, 2, 4))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="length in frames of 10 solver steps (20 ms)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps")
    parser.add_argument("--push", type=float, default=8.0, help="peak of the target's push, N")
    parser.add_argument("--lr", type=float, default=0.5, help="Adam step on the forces, N")
    parser.add_argument("--smooth", type=float, default=1e-4)
    parser.add_argument("--effort", type=float, default=1e-7)
    args = parser.parse_args(argv)

    body = drop_soft_box(cells=(2, 2, 2), drop_height=0.0, tilt=0.0, youngs_modulus=MODULUS, contact_mu=0.0,
                         contact_kd=20.0)
    mass = torch.from_numpy(body.system.model.particle_mass.numpy()).double()
    steps = args.frames * 10
    cam = camera(args.size)
    t = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    true_forces = args.push * torch.sin(math.pi * t)[:, None] * torch.tensor([1.0, 0.6, 0.0], dtype=torch.float64)
    with torch.no_grad():
        true_final = final_state(body, true_forces, mass)
        target = draw(body, true_final, cam)
        start_final = final_state(body, torch.zeros_like(true_forces), mass)

    forces = torch.zeros(steps, 3, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([forces], lr=args.lr)
    start = time.perf_counter()
    for step in range(args.steps):
        optimizer.zero_grad()
        final = final_state(body, forces, mass)
        loss = image_loss(draw(body, final, cam), target)
        regulariser = args.smooth * ((forces[1:] - forces[:-1]) ** 2).sum() + args.effort * (forces ** 2).sum()
        (loss + regulariser).backward()
        optimizer.step()
        if step % 10 == 0 or step == args.steps - 1:
            distance = (final.detach().mean(0) - true_final.mean(0)).norm().item()
            print(f"step {step:3d}  image loss {loss.item():.3e}  centre-of-mass error {1000 * distance:.1f} mm")
    with torch.no_grad():
        final = final_state(body, forces, mass)
        loss = float(image_loss(draw(body, final, cam), target))
        error = float((final.mean(0) - true_final.mean(0)).norm())
        start_error = float((start_final.mean(0) - true_final.mean(0)).norm())
    seconds = time.perf_counter() - start
    print(f"final image loss {loss:.3e}; final centre of mass {1000 * error:.1f} mm from the target's "
          f"(was {1000 * start_error:.1f} mm with no force); {steps} force steps, {args.steps} iterations, "
          f"{seconds:.1f} s")
    return {"image_loss": loss, "position_error": error, "start_position_error": start_error, "seconds": seconds,
            "forces": forces.detach()}


if __name__ == "__main__":
    main()
