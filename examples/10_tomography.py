"""X-ray tomography: recover a 3D head phantom from few projections by gradient descent and by filtered back-projection.

A Shepp-Logan-like phantom of nested ellipsoids (:func:`lumigrad.volume.phantom.shepp_logan_3d`) is scanned by
``--views`` X-ray cameras on a circle around it (parallel beam over 180 degrees, or cone beam over 360 with
``--beam cone``). The projections are the phantom's *exact* line integrals (closed-form ellipsoid chords, so the
reconstructions are not tested on data made by their own discretisation), once noise-free and once with Poisson
photon noise for ``--i0`` photons per unattenuated pixel. Each set is reconstructed on a ``--size``^3 grid by

* filtered back-projection (FDK for cone beam) with the Ram-Lak and Shepp-Logan windows, and
* Adam on the voxel grid (``density = softplus(theta)``, non-negative) minimising the squared line-integral
  residual, with and without a total-variation prior (``--tv``),

and compared with the voxelised phantom by relative L2 error. With 30 views on a 48^3 grid (parallel beam) this
measured (2-core CPU, ~40 s per gradient reconstruction): FBP 0.32 (Shepp-Logan window) / 0.36 (Ram-Lak),
gradient descent without TV 0.32, with TV 0.20; with Poisson noise (i0 = 2000) FBP 0.36 / 0.41, gradient
descent 0.36, with TV 0.22.

    python examples/10_tomography.py --size 48 --views 30 --steps 300 --out tomography.png
"""

import argparse
import math
import time

import torch

import lumigrad as lg
from lumigrad.volume.fbp import filtered_backprojection
from lumigrad.volume.phantom import phantom_line_integrals, shepp_logan_3d, voxelize_phantom
from lumigrad.volume.tomography import circular_trajectory, intensity_to_line_integrals, reconstruct, system_matrix


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48, help="voxels per axis and detector pixels per side")
    parser.add_argument("--views", type=int, default=30)
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of the gradient reconstruction")
    parser.add_argument("--tv", type=float, default=0.01, help="weight of the total-variation prior")
    parser.add_argument("--i0", type=float, default=2000.0, help="photons per unattenuated pixel (noisy data)")
    parser.add_argument("--beam", choices=("parallel", "cone"), default="parallel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="tomography.png", help="PNG of central slices (truth, FBP, ours)")
    args = parser.parse_args(argv)

    n = args.size
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    head = shepp_logan_3d(scale=2.0)  # line integrals up to ~1.1: up to two thirds of the photons absorbed
    truth = voxelize_phantom(head, (n, n, n), box, supersample=2)
    arc = math.pi if args.beam == "parallel" else 2 * math.pi
    cams = circular_trajectory(args.views, width=n, height=n, radius=3.0, projection=args.beam, arc=arc)
    clean = phantom_line_integrals(head, cams)
    photons = torch.poisson(args.i0 * torch.exp(-clean), generator=torch.Generator().manual_seed(args.seed))
    noisy = intensity_to_line_integrals(photons, args.i0)
    A = system_matrix((n, n, n), box, cams)

    def rel(x):
        return float((x - truth).norm() / truth.norm())

    rows, slices = [], []
    for name, data in (("noise-free", clean), (f"Poisson, i0={args.i0:g}", noisy)):
        t0 = time.perf_counter()
        fbp = {w: filtered_backprojection(data, cams, box, (n, n, n), window=w) for w in ("ram-lak", "shepp-logan")}
        t_fbp = time.perf_counter() - t0
        ours = {}
        for tv in (0.0, args.tv):
            t0 = time.perf_counter()
            ours[tv] = (reconstruct(data, box, cams, (n, n, n), steps=args.steps, tv_weight=tv, system=A),
                        time.perf_counter() - t0)
        rows.append((name, rel(fbp["ram-lak"]), rel(fbp["shepp-logan"]), t_fbp, rel(ours[0.0][0]),
                     rel(ours[args.tv][0]), ours[args.tv][1]))
        slices.append([truth[n // 2], fbp["shepp-logan"][n // 2], ours[args.tv][0][n // 2]])

    beam = "parallel beam, 180 deg" if args.beam == "parallel" else "cone beam, 360 deg"
    print(f"tomography: {n}^3 grid, {args.views} views ({beam}), {args.steps} Adam steps; relative L2 error")
    print(f"  {'data':<22} {'FBP Ram-Lak':>12} {'FBP S-L':>9} {'(s)':>6} {'ours':>7} {f'ours+TV {args.tv:g}':>13} "
          f"{'(s)':>6}")
    for name, r_rl, r_sl, t_fbp, r_ours, r_tv, t_tv in rows:
        print(f"  {name:<22} {r_rl:12.4f} {r_sl:9.4f} {t_fbp:6.1f} {r_ours:7.4f} {r_tv:13.4f} {t_tv:6.1f}")

    top = 0.4 * float(truth.max())  # a soft-tissue window: the skull saturates, the brain's features show
    grid = torch.cat([torch.cat(row, 1) for row in slices], 0).clamp(0, top) / top
    lg.io.write_image(args.out, grid.repeat_interleave(4, 0).repeat_interleave(4, 1))
    print(f"wrote {args.out}: central axial slices, columns truth / FBP (Shepp-Logan) / ours + TV, rows noise-free / "
          "noisy; display window [0, 0.4 x max]")
    return rows


if __name__ == "__main__":
    main()
