"""Benchmark: memory of a photo capture read eagerly (``read_dataset``) vs streamed (``read_dataset(lazy=True)``).

Writes ``--photos`` synthetic ``--size`` x ``--size`` RGB PNGs (smooth colour ramps plus a little noise, so
they decode like photos but write quickly) and a NeRF ``transforms.json`` into a temporary folder. Then, each
in a fresh Python process (so the peak resident set growth, ``lumigrad.app.benchmarking.peak_rss_growth``, is
its own):

* ``eager``: ``read_dataset(folder)``: every photo decoded into one ``[N, H, W, 3]`` float32 tensor;
* ``stream``: ``read_dataset(folder, lazy=True, cache_bytes=--cache-mb)``, then ``--steps`` batches of
  ``--views`` random views through ``stream.views(...)``, as a fit step would ask for them.

    python benchmarks/photo_stream.py
    python benchmarks/photo_stream.py --photos 50 --size 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

MEASURE = r"""
import json, sys, time
import torch
from lumigrad.io import read_dataset
from lumigrad.app.benchmarking import peak_rss_growth
mode, folder, cache_mb, steps, views = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def eager():
    t = time.perf_counter()
    data = read_dataset(folder)
    return {"open_s": time.perf_counter() - t, "held_mb": data.images.numel() * 4 / 2 ** 20, "step_s": 0.0}

def stream():
    t = time.perf_counter()
    data = read_dataset(folder, lazy=True, cache_bytes=cache_mb << 20)
    opened = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for _ in range(steps):
        images, camera = data.views(torch.randperm(len(data), generator=g)[:views])
    return {"open_s": opened, "held_mb": data.cached_bytes / 2 ** 20, "step_s": (time.perf_counter() - t) / steps}

out, growth, exact = peak_rss_growth(eager if mode == "eager" else stream)
print(json.dumps({**out, "peak_mb": growth / 2 ** 20, "exact": exact}))
"""


def write_capture(folder: Path, photos: int, size: int) -> None:
    sys.path.insert(0, str(SRC))
    import torch

    import lumigrad as lg

    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, size)
    cams, paths = [], []
    for k in range(photos):
        c = torch.rand(3, generator=g)
        image = torch.stack([ramp[None, :].expand(size, size) * c[0], ramp[:, None].expand(size, size) * c[1],
                             torch.full((size, size), float(c[2]))], -1)
        image = (image + 0.02 * torch.rand(size, size, 3, generator=g)).clamp(0, 1)
        paths.append(folder / f"view_{k:04d}.png")
        lg.io.write_image(paths[-1], image)
        angle = 6.2832 * k / photos
        cams.append(lg.Camera.look_at([3.0 * float(torch.cos(torch.tensor(angle))), 0.5,
                                       3.0 * float(torch.sin(torch.tensor(angle)))], [0.0, 0.0, 0.0],
                                      width=size, height=size))
    lg.io.write_nerf_transforms(folder / "transforms.json", cams, paths)


def measure(mode: str, folder: Path, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", MEASURE, mode, str(folder), str(args.cache_mb), str(args.steps),
                          str(args.views)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cache-mb", type=int, default=256, help="the stream's cache bound")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--views", type=int, default=4, help="views per step")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_capture(folder, args.photos, args.size)
        print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {args.photos} photos of {args.size}x{args.size} RGB "
              f"PNG, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
        print(f"{'mode':8} {'open s':>8} {'s / step':>9} {'held MB':>9} {'peak RSS MB':>12}")
        for mode in ("stream", "eager"):
            r = measure(mode, folder, args)
            step = f"{r['step_s']:.3f}" if mode == "stream" else "-"
            print(f"{mode:8} {r['open_s']:>8.2f} {step:>9} {r['held_mb']:>9.0f} {r['peak_mb']:>12.0f}"
                  + ("" if r["exact"] else "  (peak not reset: lower bound)"), flush=True)
        print(f"(stream: cache bound {args.cache_mb} MB, {args.steps} steps of {args.views} random views)")


if __name__ == "__main__":
    main()
