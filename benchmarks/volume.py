"""Benchmark of volume compositing over packed samples (``lumigrad.volume.composite``): Warp kernel vs PyTorch twin.

For each number of samples per ray it composites ``--rays`` rays (contiguous stratified intervals in
``[2, 6]``, random densities and colours, float32 inputs) and measures, median of ``--repeats`` runs after
one warm-up:

* ``forward``: :func:`lumigrad.volume.composite` (input checks included), colour + opacity + depth;
* ``fwd+bwd``: the same plus ``backward`` of a random linear function of colour, opacity and depth into
  the densities and colours;
* the peak memory of one forward + backward (growth of the peak RSS on CPU, ``torch.cuda.max_memory_allocated``
  on CUDA), and per ray.

Engines: ``kernel`` is the Warp kernel with its explicit backward (float32, transmittance recomputed in the
backward, float64 accumulators); ``twin`` is :func:`lumigrad.volume.composite_ref`, the pure-PyTorch float64
reference differentiated by autograd (which stores its intermediates).

Usage::

    .venv/bin/python benchmarks/volume.py                          # 65536 rays x 64 / 128 / 256 samples
    .venv/bin/python benchmarks/volume.py --quick                  # smoke run
    .venv/bin/python benchmarks/volume.py --no-twin --device cuda --rays 1048576
"""

from __future__ import annotations

import argparse
import os
import platform

import lumigrad as lg  # before torch: lets lumigrad make OpenMP threads wait passively (lumigrad.threads)
import torch
from lumigrad.app.benchmarking import cpu_model, format_table, median, peak_memory, time_call
from lumigrad.volume import composite, composite_ref, stratified_samples

COLUMNS = [("engine", "engine"), ("samples", "samples/ray"), ("fwd_ms", "forward ms"), ("train_ms", "fwd+bwd ms"),
           ("krays", "fwd+bwd krays/s"), ("msamples", "fwd+bwd Msamples/s"), ("mem", "fwd+bwd peak MiB"),
           ("bytes_ray", "peak bytes/ray")]


def make_case(rays: int, samples: int, device: torch.device, seed: int = 0):
    gen = torch.Generator(device=device).manual_seed(seed)
    near = torch.full((rays,), 2.0, device=device)
    far = torch.full((rays,), 6.0, device=device)
    s = stratified_samples(near, far, num_samples=samples, generator=gen)
    S = s.num_samples
    sigmas = torch.nn.functional.softplus(torch.randn(S, generator=gen, device=device) * 2 - 1)
    rgbs = torch.rand(S, 3, generator=gen, device=device)
    cot = (torch.randn(rays, 3, generator=gen, device=device), torch.randn(rays, 1, generator=gen, device=device),
           torch.randn(rays, 1, generator=gen, device=device))
    return s, sigmas, rgbs, cot


def runners(engine: str, case):
    s, sigmas, rgbs, (g_rgb, g_op, g_depth) = case
    R = s.num_rays

    def forward(train: bool):
        sig = sigmas.detach().requires_grad_(train)
        col = rgbs.detach().requires_grad_(train)
        if engine == "kernel":
            out = composite(sig, col, s.t_starts, s.t_ends, s.ray_indices, R)
            rgb, opacity, depth = out.rgb, out.opacity, out.accumulated_depth
        else:
            rgb, opacity, depth, _, _ = composite_ref(sig, col, s.t_starts, s.t_ends, s.ray_indices, R)
            opacity, depth = opacity[:, None], depth[:, None]
        if train:
            loss = (rgb * g_rgb).sum() + (opacity * g_op).sum() + (depth * g_depth).sum()
            loss.backward()
        return rgb

    def fwd():
        with torch.no_grad():
            forward(False)

    return fwd, lambda: forward(True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rays", type=int, default=65536)
    ap.add_argument("--samples", default="64,128,256", help="samples per ray, comma-separated")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-twin", action="store_true", help="skip the PyTorch twin")
    ap.add_argument("--quick", action="store_true", help="4096 rays x 64 samples, 2 repeats")
    args = ap.parse_args()
    if args.quick:
        args.rays, args.samples, args.repeats = 4096, "64", 2
    device = torch.device(args.device)
    engines = ["kernel"] + ([] if args.no_twin else ["twin"])
    rows = []
    for n in [int(x) for x in args.samples.split(",")]:
        case = make_case(args.rays, n, device)
        for engine in engines:
            fwd, train = runners(engine, case)
            t_fwd = median(time_call(fwd, args.repeats, sync=device))
            t_train = median(time_call(train, args.repeats, sync=device))
            mem, exact = peak_memory(train, device)
            rows.append(dict(engine=engine, samples=n, fwd_ms=1e3 * t_fwd, train_ms=1e3 * t_train,
                             krays=args.rays / t_train / 1e3, msamples=args.rays * n / t_train / 1e6,
                             mem=mem if exact else None, bytes_ray=int(mem * 2**20 / args.rays) if exact else None))
        del case
    threads = lg.threads.info() if hasattr(lg, "threads") else {}
    print(f"{args.rays} rays, float32 inputs, device {device} ({cpu_model() if device.type == 'cpu' else ''}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"Python {platform.python_version()}; threads: {threads}")
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
