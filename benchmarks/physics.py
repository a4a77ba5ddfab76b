"""Physics -> pixels -> gradients: time and peak memory of simulate + render + backward, with and without checkpoints.

Scene: examples/15_rigid_body_from_video.py's box thrown onto a floor (Newton SolverSemiImplicit, penalty contacts,
2.5 ms steps, 10 steps per frame), rendered at 128 x 128 (raster ops, shaded RGB), loss = mean squared error to a
target video, backward to the initial velocity, friction and contact damping.

Table 1: 60 frames (590 steps), checkpoint_every in (none, 5, 20, 60): median wall time of forward and backward,
peak RSS growth of the whole call (lumigrad.app.benchmarking.peak_rss_growth).
Table 2: simulate + backward alone (no render: its memory is O(frames) whatever the physics does) for growing step
counts, without checkpoints and with k = 20: peak RSS growth and the number of Newton states alive at once.

    PYTHONPATH=src python benchmarks/physics.py            # full tables
    PYTHONPATH=src python benchmarks/physics.py --quick    # 16 frames, 64 px, two repeats
"""

import argparse
import statistics
import time

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import peak_rss_growth
from lumigrad.physics import simulate, thrown_body
from lumigrad.physics.render import box_mesh, render_posed_mesh

DT, SUBSTEPS = 1.0 / 400.0, 10


def params(v0=(2.0, 0.3, 0.1), mu=0.25, kd=80.0):
    return {"state.body_qd": torch.tensor([list(v0) + [0.0, 0.0, 0.0]], requires_grad=True),
            "model.shape_material_mu": torch.tensor([mu, mu], requires_grad=True),
            "model.shape_material_kd": torch.tensor([kd, kd], requires_grad=True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    frames, size, repeats = (16, 64, 2) if args.quick else (60, 128, 3)
    system = thrown_body("box", half_extent=0.1, height=0.3, density=200.0, contact_stiffness=1.0e4,
                         contact_damping=80.0, friction=0.25)
    camera = lg.Camera.look_at([0.45, 0.7, 1.5], [0.45, 0.12, 0.0], width=size, height=size, fov_y=0.6)
    mesh = box_mesh(0.1)
    steps = (frames - 1) * SUBSTEPS
    with torch.no_grad():
        target = render_posed_mesh(*mesh, simulate(system, params(kd=60.0), steps, DT)[::SUBSTEPS, 0], camera)

    def run(k):
        p = params()
        t0 = time.perf_counter()
        images = render_posed_mesh(*mesh, simulate(system, p, steps, DT, checkpoint_every=k)[::SUBSTEPS, 0], camera)
        loss = (images - target).square().mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    run(None)  # compile the kernels
    print(f"simulate + render + backward: {frames} frames ({steps} steps), {size}x{size}, median of {repeats}")
    print(f"{'checkpoint_every':>16} | {'forward s':>9} | {'backward s':>10} | {'total s':>7} | {'peak RSS MB':>11}")
    for k in (None, 5, 20, 60):
        times = [run(k) for _ in range(repeats)]
        _, grown, exact = peak_rss_growth(run, k)
        fwd = statistics.median(t[0] for t in times)
        bwd = statistics.median(t[1] for t in times)
        print(f"{'none' if k is None else k:>16} | {fwd:9.2f} | {bwd:10.2f} | {fwd + bwd:7.2f} | "
              f"{grown / 2**20:10.1f}{'' if exact else '+'}")

    print("\nsimulate + backward only (loss = sum of positions), peak RSS growth in MB, states alive at once")
    print(f"{'steps':>6} | {'no checkpoints':>14} | {'states':>6} | {'k = 20':>7} | {'states':>6}")
    counts = (200, 400, 800) if args.quick else (400, 800, 1600, 3200)
    for n in counts:
        row = []
        for k in (None, 20):
            def sim_backward():
                p = params()
                simulate(system, p, n, DT, checkpoint_every=k)[:, 0, :3].sum().backward()
            sim_backward()
            _, grown, exact = peak_rss_growth(sim_backward)
            kk = n if k is None else k
            row.append((grown / 2**20, -(-n // kk) + kk + 1, exact))
        print(f"{n:>6} | {row[0][0]:13.1f}{'' if row[0][2] else '+'} | {row[0][1]:>6} | "
              f"{row[1][0]:6.1f}{'' if row[1][2] else '+'} | {row[1][1]:>6}")


if __name__ == "__main__":
    main()
