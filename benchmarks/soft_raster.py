"""Benchmark: soft rasterization (:func:`lumigrad.soft_rasterize`) forward and forward+backward.

Scenes: the Spot cow (5856 triangles) and a bumpy UV sphere of about 100k triangles
(``benchmarks/raster.py``'s ``bumpy_sphere(316, 159)``), both framed by ``raster.py``'s camera (with
``far`` set to 10 bounding radii so that ``zn`` spreads over the scene) at ``--sizes`` (default 256^2 and
512^2). Each row aggregates per-vertex colours (``attrs [V, 3]``) with the default parameters (``sigma = 1``
pixel^2, ``gamma = 1e-4``, ``tol = 1e-4``, ``faces_per_pixel = 16``).

Columns: ``cand ms``: the candidate search alone (binning + top-K, ``find_candidates``); ``cand ref ms``: the
plain scan it replaced (``find_candidates_reference``: the hard rasterizer's 16 x 16 bins, no early-out; same
ids), timed in the same run; ``fwd ms``: the whole op under
``torch.no_grad``; ``fwd+bwd ms``: the op plus ``backward`` of ``silhouette.mean() + attrs.mean()`` with the
vertex positions and colours requiring grad; median of ``--repeats`` runs after one warm-up; ``pairs``: the
(pixel, candidate) pairs; peak MiB: growth of the peak resident set size on CPU (``torch.cuda.max_memory_allocated``
on CUDA) of one fwd / fwd+bwd call. ``--backend`` picks the ``soft_rasterize`` backends timed, one row each
(``torch``: autograd over the pairs; ``kernel``: the fused float32 kernels with the explicit backward).
``--clock cpu`` times process CPU time (``time.process_time``: all threads' CPU, waiting for a core not counted)
instead of wall-clock time, for before / after comparisons on a busy machine (run with one thread,
``LUMIGRAD_NUM_THREADS=1 OMP_NUM_THREADS=1``). ``--stages`` adds a table of the kernel path's stages at that
clock: the candidate search, the fused aggregation's forward (as run before a backward, with its per-pair record
where the library keeps one), its backward alone, and the whole ``soft_rasterize`` forward + backward.

    .venv/bin/python benchmarks/soft_raster.py
    .venv/bin/python benchmarks/soft_raster.py --scenes spot --sizes 256 --repeats 3 --backend kernel
    LUMIGRAD_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soft_raster.py --scenes spot --sizes 512 \
        --backend kernel --clock cpu --stages
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raster as rb  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import time_call  # noqa: E402
from lumigrad.cameras.projection import project_points  # noqa: E402
from lumigrad.kernels.soft_raster import find_candidates, find_candidates_reference, soft_aggregate  # noqa: E402
from lumigrad.raster.rasterize import prepare_mesh  # noqa: E402

SCENES = {"spot": lambda: rb.spot_scene(), "sphere100k": lambda: rb.bumpy_sphere(316, 159, tex_size=16)}


def camera(verts: torch.Tensor, size: int) -> lg.Camera:
    cam = rb.framing_camera(verts, size)
    radius = float((verts.max(0).values - verts.min(0).values).norm()) / 2
    return lg.Camera(cam.K, cam.world_to_cam, size, size, far=10 * radius)


def candidates_only(verts, faces, cam, search=find_candidates):
    """The kernel part of soft_rasterize: projection for the kernel, binning and top-K selection."""
    mesh = prepare_mesh(verts, faces, cam)
    uv = project_points(mesh.verts_cam, mesh.K)
    z = mesh.verts_cam[..., 2]
    behind = (z < cam.near)[:, mesh.faces].any(-1).reshape(-1).to(torch.int8).contiguous()
    proj = torch.cat([uv, z[..., None]], -1).double().contiguous()
    return search(proj, mesh.faces_i32, behind, cam.width, cam.height, math.sqrt(math.log(1e4)),
                           cam.far, 16)


def cpu_ms(fn, repeats: int) -> float:
    """Median process CPU milliseconds of ``fn()`` over ``repeats`` runs after one untimed warm-up."""
    return statistics.median(time_call(fn, repeats, warmup=1, clock="cpu")) * 1e3


def stage_times(verts, faces, colours, cam, timer):
    """Milliseconds of the kernel path's stages (default parameters, as ``soft_rasterize``): candidate search,
    aggregation forward with inputs that require grad, aggregation backward alone, whole op forward + backward."""
    mesh = prepare_mesh(verts, faces, cam)
    uv = project_points(mesh.verts_cam, mesh.K).requires_grad_(True)
    z = mesh.verts_cam[..., 2].clone().requires_grad_(True)
    c = colours[None].clone().requires_grad_(True)
    ids = candidates_only(verts, faces, cam)

    def aggregate():
        return soft_aggregate(uv, z, mesh.faces_i32, ids, c, None, cam.width, cam.height, 1.0, 1e-4, 1e-3, cam.near,
                              cam.far, False)

    sil, img = aggregate()
    cotangents = [torch.full_like(sil, 1 / sil.numel()), torch.full_like(img, 1 / img.numel())]

    def backward():
        torch.autograd.grad([sil, img], [uv, z, c], cotangents, retain_graph=True)

    def whole():
        v = verts.clone().requires_grad_(True)
        cc = colours.clone().requires_grad_(True)
        out = lg.soft_rasterize(v, faces, cam, cc)
        (out.silhouette.mean() + out.attrs.mean()).backward()

    return timer(lambda: candidates_only(verts, faces, cam)), timer(aggregate), timer(backward), timer(whole)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", nargs="+", default=["torch", "kernel"], choices=["torch", "kernel", "auto"],
                        help="soft_rasterize backends to time (one row each)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall-clock time (default) or process CPU time (time.process_time)")
    parser.add_argument("--stages", action="store_true", help="add a table of the kernel path's stages")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    print(rb.machine_line(rb.machine_info(device)))
    print("soft_rasterize, default parameters (sigma 1 px^2, gamma 1e-4, tol 1e-4, K = 16), float32, per-vertex RGB\n")
    print(f"threads: {lg.get_num_threads()} (lumigrad kernels), {torch.get_num_threads()} (PyTorch); "
          f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall'}\n")

    def timer(fn):
        return cpu_ms(fn, args.repeats) if args.clock == "cpu" else rb.time_ms(fn, args.repeats, device)

    stages = []
    print("| scene | faces | size | backend | pairs | cand ms | cand ref ms | fwd ms | fwd+bwd ms | peak MiB fwd | "
          "peak MiB fwd+bwd |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.scenes:
        scene = SCENES[name]()
        verts, faces = scene.verts, scene.faces
        colours = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
        for size, backend in [(s, b) for s in args.sizes for b in args.backend]:
            cam = camera(verts, size)

            def fwd():
                with torch.no_grad():
                    return lg.soft_rasterize(verts, faces, cam, colours, backend=backend)

            def fwd_bwd():
                v = verts.clone().requires_grad_(True)
                c = colours.clone().requires_grad_(True)
                out = lg.soft_rasterize(v, faces, cam, c, backend=backend)
                (out.silhouette.mean() + out.attrs.mean()).backward()
                return out

            pairs = int((fwd().face_ids >= 0).sum())
            cand = timer(lambda: candidates_only(verts, faces, cam))
            cand_ref = timer(lambda: candidates_only(verts, faces, cam, find_candidates_reference))
            t_f = timer(fwd)
            t_b = timer(fwd_bwd)
            m_f = rb.peak_mib(fwd, device)[0]
            m_b = rb.peak_mib(fwd_bwd, device)[0]
            print(f"| {name} | {faces.shape[0]:,} | {size}^2 | {backend} | {pairs:,} | {cand:.1f} | {cand_ref:.1f} | "
                  f"{t_f:.1f} | {t_b:.1f} | {m_f:.0f} | {m_b:.0f} |", flush=True)
        if args.stages:
            stages += [(name, size, stage_times(verts, faces, colours, camera(verts, size), timer))
                       for size in args.sizes]
    if stages:
        print("\n| scene | size | candidates ms | aggregate fwd ms | aggregate bwd ms | soft_rasterize fwd+bwd ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, size, (cand, agg_f, agg_b, whole) in stages:
            print(f"| {name} | {size}^2 | {cand:.1f} | {agg_f:.1f} | {agg_b:.1f} | {whole:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
