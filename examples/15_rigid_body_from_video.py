"""Rigid-body system identification from pixels: a slab thrown onto a floor, filmed, and its physics recovered.

A flat box (30 x 8 x 30 cm, 200 kg/m^3, six coloured faces) is thrown from 20 cm up at 1.6 m/s; it flies, lands,
bounces and slides to a stop under friction. NVIDIA Newton simulates it (``SolverSemiImplicit``, penalty
contacts, 2.5 ms steps) through :func:`lumigrad.physics.simulate`; every 10th step is rendered with the raster
ops (Lambert-shaded RGB, antialiased silhouettes) by two synchronised cameras into a 40-frame video. From that
video alone, starting from a perturbed guess (velocity off by 0.1-0.25 m/s per axis, friction x1.5, contact
damping x1.6; ``--mu-guess`` / ``--kd-guess`` change the last two), the fit estimates the following (measured
outcome in docs/physics.md: all three recovered, the restitution to well under 5 %):

* the initial linear velocity ``v0`` (3 numbers, m/s);
* the Coulomb friction coefficient ``mu``;
* the contact damping ``kd`` (N s/m per contact point). With penalty contacts there is no restitution
  parameter: the bounce is a damped spring (``ke`` fixed, known), and ``kd`` sets how much of the impact speed
  comes back. The script reports the restitution that ``kd`` produces, ``e = v_up / v_down`` of the centre of
  mass at the first bounce, measured on the simulation with the true and the recovered ``kd``.

Stages (the failure modes behind them are measured in docs/physics.md):

1. ``v0`` on the free-flight frames only, where the loss is smooth and its gradient exact: Adam from the guess,
   then L-BFGS to converge. Precision here is what makes the rest work: a ``v0`` 0.45 % off (Adam alone) is
   enough for the whole video to prefer a damping 70 % off, the contact parameters compensating for it.
2. ``mu`` and ``kd`` with ``v0`` held, by a search of the whole-video loss, no gradients (theirs are dominated
   by the time-of-impact sawtooth: a change moves later impacts by whole steps). The two are coupled (a wrong
   ``mu`` moves the best ``kd``), so a log-spaced grid over both around the guess comes first (a multi-start
   that lands in the right valley), then golden sections along log ``kd`` and log ``mu``, alternated with
   narrowing widths, each keeping its starting point unless it found a lower loss.

    python examples/15_rigid_body_from_video.py            # 64 px, 40 frames, two views
    python examples/15_rigid_body_from_video.py --size 16 --steps 1 --frames 6 --line-search 3 --grid 2  # smoke
"""

import argparse
import math
import time

import torch

import lumigrad as lg
from lumigrad.physics import simulate, thrown_body
from lumigrad.physics.render import box_mesh, render_posed_mesh

HALF = (0.15, 0.04, 0.15)  # m, half sizes of the slab (a flat box rocks little after landing)
DENSITY = 200.0            # kg / m^3 -> 1.44 kg
KE = 1.0e4                 # N/m per contact point (known)
HEIGHT = 0.2               # m, initial height of the centre
DT = 1.0 / 400.0           # s
SUBSTEPS = 10              # simulation steps per video frame (40 fps)
TRUE = {"v0": (1.6, 1.0, 0.1), "mu": 0.25, "kd": 25.0}
GUESS = {"v0": (1.85, 0.85, 0.0), "mu": 0.38, "kd": 40.0}
FLIGHT_FRAMES = 11         # frames 0..10 are airborne for the truth and the guess (first contact near frame 12)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--frames", type=int, default=40, help="video frames (40 per second)")
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps per stage")
    parser.add_argument("--line-search", type=int, default=10, help="loss evaluations of the damping search")
    parser.add_argument("--mu-guess", type=float, default=GUESS["mu"], help="starting friction")
    parser.add_argument("--kd-guess", type=float, default=GUESS["kd"], help="starting contact damping (N s/m)")
    parser.add_argument("--grid", type=int, default=7, help="grid points per axis of the (mu, kd) search")
    parser.add_argument("--checkpoint-every", type=int, default=20, help="simulation steps per checkpoint")
    return parser.parse_args()


def physics_params(v0, mu, kd):
    """The bridge's parameters: initial body velocity [1, 6] (linear, angular), friction and damping per shape."""
    zero = torch.zeros(3, dtype=v0.dtype)
    return {"state.body_qd": torch.cat([v0, zero]).unsqueeze(0),
            "model.shape_material_mu": mu.expand(2), "model.shape_material_kd": kd.expand(2)}


def film(system, mesh, cameras, params, frames, checkpoint_every):
    """Simulate and render ``frames`` frames from every camera: ``[views, frames, H, W, 3]`` and the body poses."""
    steps = (frames - 1) * SUBSTEPS
    body_q = simulate(system, params, steps, DT, checkpoint_every=checkpoint_every)
    poses = body_q[::SUBSTEPS, 0]
    return torch.stack([render_posed_mesh(*mesh, poses, camera) for camera in cameras]), body_q


def restitution(system, kd, v0):
    """Centre-of-mass restitution of the first bounce: upward speed after / downward speed before."""
    params = physics_params(torch.tensor(v0), torch.tensor(TRUE["mu"]), torch.tensor(float(kd)))
    with torch.no_grad():
        y = simulate(system, params, 300, DT)[:, 0, 1]
    vy = (y[1:] - y[:-1]) / DT
    low = int(torch.argmin(vy))                      # contact onset: the fastest descent
    return float(vy[low:low + 80].max() / -vy[low])  # the rebound peaks as the box leaves the floor


def golden_section(f, lo, hi, evaluations):
    """Minimise a scalar function on ``[lo, hi]`` by golden-section search; returns the best point evaluated."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(max(evaluations - 2, 0)):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return c if fc < fd else d


def main():
    args = parse_args()
    started = time.time()
    system = thrown_body("box", half_extent=HALF, height=HEIGHT, density=DENSITY, contact_stiffness=KE,
                         contact_damping=TRUE["kd"], friction=TRUE["mu"])
    # two synchronised cameras: one in front, one above the far end (a single view sees depth only by scale)
    cameras = [lg.Camera.look_at(eye, [0.45, 0.12, 0.0], width=args.size, height=args.size, fov_y=0.6)
               for eye in ([0.45, 0.7, 1.5], [1.6, 1.3, 0.4])]
    mesh = box_mesh(HALF)
    truth = physics_params(torch.tensor(TRUE["v0"]), torch.tensor(TRUE["mu"]), torch.tensor(TRUE["kd"]))
    with torch.no_grad():
        target, _ = film(system, mesh, cameras, truth, args.frames, args.checkpoint_every)

    v0 = torch.tensor(GUESS["v0"], requires_grad=True)
    log_mu = torch.tensor(math.log(args.mu_guess), requires_grad=True)
    log_kd = torch.tensor(math.log(args.kd_guess), requires_grad=True)

    def report(stage, step, loss):
        print(f"{stage} step {step:3d}  loss {loss:.3e}  v0 {[round(x, 4) for x in v0.tolist()]}  "
              f"mu {log_mu.exp().item():.4f}  kd {log_kd.exp().item():.3f}", flush=True)

    # stage 1: free flight only, where the loss is smooth in v0 and its gradient exact: Adam from the guess, then
    # L-BFGS to converge. The precision matters: a v0 only 0.45 % off (Adam alone) moved the best kd by 70 %.
    flight = min(FLIGHT_FRAMES, args.frames)

    def flight_loss():
        images, _ = film(system, mesh, cameras, physics_params(v0, log_mu.exp(), log_kd.exp()), flight,
                         args.checkpoint_every)
        return (images - target[:, :flight]).square().mean()

    optimizer = torch.optim.Adam([v0], lr=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(args.steps, 1))
    for step in range(args.steps):
        optimizer.zero_grad()
        loss = flight_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([v0], 1.0)
        optimizer.step()
        schedule.step()
        if step % 10 == 0 or step == args.steps - 1:
            report("flight ", step, loss.item())
    polish = torch.optim.LBFGS([v0], max_iter=max(args.steps // 2, 1), line_search_fn="strong_wolfe")

    def closure():
        polish.zero_grad()
        loss = flight_loss()
        loss.backward()
        return loss

    polish.step(closure)
    report("L-BFGS ", args.steps // 2, flight_loss().item())

    def video_loss(v, mu, kd):
        images, _ = film(system, mesh, cameras, physics_params(v, mu, kd), args.frames, args.checkpoint_every)
        return (images - target).square().mean()

    def line_search(along, centre, width):
        """Golden section of ``along`` on ``centre +- width``; keeps ``centre`` unless a better point was found."""
        best = golden_section(along, centre - width, centre + width, args.line_search)
        return best if along(best) < along(centre) else centre

    # stage 2: friction and damping from the whole video, v0 held, by a search of the loss (no gradients):
    # their pixel-loss gradients are dominated by the impact-time sawtooth (a change moves the later impacts by
    # whole steps) and pointed the wrong way in our runs. mu and kd are coupled (a wrong mu moves the best kd:
    # a diagonal valley), so a log-spaced grid over (mu, kd) around the guess comes first (a multi-start that
    # lands in the valley near the truth), then golden sections along log kd and log mu, alternated with
    # narrowing widths, walk down the valley.
    with torch.no_grad():
        spread = torch.linspace(-1.0, 1.0, args.grid) if args.grid > 1 else torch.zeros(1)
        grid = [(video_loss(v0, (log_mu + 0.9 * a).exp(), (log_kd + 1.1 * b).exp()).item(), a.item(), b.item())
                for a in spread for b in spread]
        _, a, b = min(grid)
        log_mu += 0.9 * a
        log_kd += 1.1 * b
        report("grid   ", len(grid), min(grid)[0])
        for width in (0.3, 0.15, 0.08, 0.04):
            log_kd.fill_(line_search(lambda x: video_loss(v0, log_mu.exp(), torch.tensor(x).exp()).item(),
                                     log_kd.item(), width))
            log_mu.fill_(line_search(lambda x: video_loss(v0, torch.tensor(x).exp(), log_kd.exp()).item(),
                                     log_mu.item(), width))
            report("search ", args.line_search, video_loss(v0, log_mu.exp(), log_kd.exp()).item())

    true_v0 = torch.tensor(TRUE["v0"])
    v_error = float((v0.detach() - true_v0).norm() / true_v0.norm())
    mu_error = abs(log_mu.exp().item() - TRUE["mu"]) / TRUE["mu"]
    kd_error = abs(log_kd.exp().item() - TRUE["kd"]) / TRUE["kd"]
    e_true = restitution(system, TRUE["kd"], TRUE["v0"])
    e_fit = restitution(system, log_kd.exp().item(), TRUE["v0"])
    print(f"initial velocity: {v0.detach().tolist()} (true {list(TRUE['v0'])}), relative error {100 * v_error:.2f} %")
    print(f"friction mu: {log_mu.exp().item():.4f} (true {TRUE['mu']}), error {100 * mu_error:.2f} %")
    print(f"contact damping kd: {log_kd.exp().item():.3f} (true {TRUE['kd']}), error {100 * kd_error:.2f} %")
    print(f"restitution from kd: {e_fit:.4f} (true {e_true:.4f}), error {100 * abs(e_fit - e_true) / e_true:.2f} %")
    print(f"time {time.time() - started:.1f} s")
    return {"v0": v_error, "mu": mu_error, "kd": kd_error, "restitution": abs(e_fit - e_true) / e_true}


if __name__ == "__main__":
    main()
