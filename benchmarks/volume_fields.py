"""Benchmark: the volume fields on this machine: hash-grid encoding forward / backward and the NerfField MLP
heads in float32 vs reduced precision (bf16 autocast on CPU, fp16 on CUDA).

Rows (median of ``--repeats`` after one warm-up, float32 tables, ``--points`` random points in the box):

* ``hash fwd <impl>``: ``HashGridEncoding`` (instant-ngp settings: L = 16, F = 2, T = 2^19, N 16..2048)
  forward, with the PyTorch path and with the Warp kernels;
* ``hash fwd+bwd <impl>``: forward and backward of the feature sum (table gradient, row-sparse; no point
  gradient);
* ``mlp fwd+bwd <precision>``: the density and colour MLPs of a ``NerfField`` (64 wide) on precomputed
  encodings, forward and backward, at each precision.

The 1-minute load average is printed beside the table: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/volume_fields.py                 # about a minute on 2 busy cores
    .venv/bin/python benchmarks/volume_fields.py --points 65536 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lumigrad  # noqa: F401  (first: lumigrad sets up OpenMP before torch loads it)
import torch

from lumigrad.volume.fields import HashGridEncoding, NerfField
from lumigrad.volume.fields.encodings import sh_encode

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def _median_ms(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=262144)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    pts = torch.rand(args.points, 3, device=dev) * 2 - 1
    dirs = torch.randn(args.points, 3, device=dev)
    rows = []

    enc = HashGridEncoding(BOX).to(dev)

    def hash_fwd():
        with torch.no_grad():
            enc(pts)

    def hash_fwd_bwd():
        enc.table.grad = None
        enc(pts).sum().backward()

    for impl in ("torch", "warp"):
        enc.implementation = impl
        rows.append((f"hash fwd {impl}", _median_ms(hash_fwd, args.repeats, sync)))
        rows.append((f"hash fwd+bwd {impl}", _median_ms(hash_fwd_bwd, args.repeats, sync)))

    field = NerfField(BOX, num_levels=16, log2_table_size=12, max_resolution=64).to(dev)
    feats = torch.randn(args.points, field.encoder.output_dim, device=dev)
    sh = sh_encode(dirs, field.sh_degree)
    reduced = "bf16" if dev.type == "cpu" else "fp16"
    for precision in ("fp32", reduced):
        field.precision = precision

        def mlp_fwd_bwd():
            field.zero_grad()
            with field._autocast(dev):
                raw = field.density_net(feats)
                rgb = field.color_net(torch.cat([raw[:, 1:], sh.to(raw.dtype)], -1))
            (raw.float().sum() + rgb.float().sum()).backward()

        rows.append((f"mlp fwd+bwd {precision}", _median_ms(mlp_fwd_bwd, args.repeats, sync)))

    print(f"device {dev}, {args.points} points, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'op':<22}{'ms':>10}{'Mpoints/s':>12}")
    for name, ms in rows:
        print(f"{name:<22}{ms:>10.1f}{args.points / ms / 1e3:>12.2f}")


if __name__ == "__main__":
    main()
