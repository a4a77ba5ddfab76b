"""Benchmark of lumigrad's BVH ray queries (``lumigrad.kernels.bvh``), with Mitsuba 3 (Embree) side by side.

For each scene it measures, on the same random rays (median of ``--repeats`` runs after one warm-up):

* ``build``: :class:`TriangleBVH` construction, and ``refit`` after moving every vertex (same topology), for
  each engine of ``--engines``: ``own`` (lumigrad's BVH: binned SAH on the host) and ``warp`` (``wp.Mesh``: SAH
  on CPU, LBVH on CUDA); ``TriangleBVH``'s default picks one by triangle count;
* ``closest``: :meth:`TriangleBVH.closest_hit`, face ids + float32 ``t`` + barycentrics, in Mrays/s;
* ``occluded``: :meth:`TriangleBVH.occluded` (any hit; shadow rays to the ray's target point), in Mrays/s;
* ``trace``: :func:`lumigrad.raytrace.trace_closest_unchecked`, the closest hit plus the differentiable
  Möller–Trumbore replay in PyTorch (float32), in Mrays/s;
* the peak memory of a ``closest`` query and of a build (growth of the peak RSS on CPU,
  ``torch.cuda.max_memory_allocated`` on CUDA).

Mitsuba 3 (CPU ``llvm_ad_rgb`` variant, Embree; ``benchmarks/_mitsuba_peer.py``, install with ``bash
benchmarks/setup_mitsuba.sh``) gets the same triangles and rays: ``mi.load_dict`` of a scene with one mesh
(``build``: scene creation, Embree's BVH included), ``scene.ray_intersect_preliminary`` (closest: t and
triangle index, the same work as ``closest``), ``scene.ray_intersect`` (the full surface interaction) and
``scene.ray_test`` (``occluded``), each evaluated with ``dr.eval`` and ``dr.sync_thread``. ``agree`` is the
fraction of rays with the same hit / miss and, for hits, the same triangle.

Rays: origins on a sphere of 3 bounding radii around the mesh, aimed at uniform points of the ball of one
bounding radius (most hit, some pass beside), unit directions; shadow rays stop at that target point. In the
``box``, rays between two uniform points of the inside, as a path tracer's bounces and shadow rays there.

Scenes: ``box`` (the Cornell box of ``benchmarks/pathtrace.py``, lamp included: 12 triangles), ``spot`` (the
Spot cow, 5856 triangles) and ``sphere`` (the bumpy UV sphere of ``benchmarks/raster.py``, 1,046,528
triangles).

Usage::

    .venv/bin/python benchmarks/rays.py                       # all scenes, both engines, 1M rays, 5 repeats
    .venv/bin/python benchmarks/rays.py --quick --no-peer     # smoke run (small sphere, 20k rays)
    .venv/bin/python benchmarks/rays.py --device cuda --rays 4000000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mitsuba_peer as peer  # noqa: E402  (sets DRJIT_LIBLLVM_PATH; imports only numpy until used)
from pathtrace import cornell_box  # noqa: E402
from raster import QUICK_SPHERE_GRID, SPHERE_GRID, bumpy_sphere  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import cpu_model, format_table, peak_memory, time_call  # noqa: E402
from lumigrad.data import load_spot  # noqa: E402
from lumigrad.kernels import bvh as bvh_module  # noqa: E402
from lumigrad.kernels.bvh import TriangleBVH  # noqa: E402
from lumigrad.raytrace import trace_closest_unchecked  # noqa: E402

COLUMNS = [("scene", "scene"), ("tris", "triangles"), ("engine", "engine"), ("build_ms", "build ms"),
           ("refit_ms", "refit ms"), ("closest", "closest Mrays/s"), ("full", "full hit Mrays/s"),
           ("occluded", "occluded Mrays/s"), ("hit_frac", "hit %"), ("agree", "agree %"),
           ("mem_query", "query peak MiB"), ("mem_build", "build peak MiB")]


def scene_mesh(name: str, quick: bool):
    """``(verts [V, 3] float32, faces [F, 3] int64)`` of ``box``, ``spot`` or ``sphere``."""
    if name == "box":
        scene = cornell_box(torch.tensor([0.7, 0.7, 0.7]))
        parts = [(m.verts, m.faces) for m in scene.meshes.values()] + [(light.verts, light.faces)
                                                                       for light in scene.lights.values()]
        starts = torch.tensor([0] + [v.shape[0] for v, _ in parts]).cumsum(0)
        return (torch.cat([v for v, _ in parts]).float().contiguous(),
                torch.cat([f.long() + int(k) for (_, f), k in zip(parts, starts)]).contiguous())
    if name == "spot":
        m = load_spot()
        return m.verts.float().contiguous(), m.faces.long().contiguous()
    s = bumpy_sphere(*(QUICK_SPHERE_GRID if quick else SPHERE_GRID), tex_size=4)
    return s.verts.contiguous(), s.faces.contiguous()


def random_rays(verts: torch.Tensor, count: int, seed: int = 0, inside: bool = False):
    """Unit rays from a sphere of 3 bounding radii at uniform points of the bounding ball (``inside``: between
    two uniform points of 0.9 times the bounding box), and the distance to that point (the shadow rays'
    ``t_max``): ``(origins, directions, distances)`` float32."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = verts.min(0).values.double(), verts.max(0).values.double()
    centre, radius = (lo + hi) / 2, float((hi - lo).norm()) / 2
    if inside:
        o, p = (centre + 0.9 * (torch.rand(count, 3, generator=g, dtype=torch.float64) - 0.5) * (hi - lo)
                for _ in range(2))
    else:
        o = torch.randn(count, 3, generator=g, dtype=torch.float64)
        o = centre + 3 * radius * o / o.norm(dim=-1, keepdim=True)
        p = torch.randn(count, 3, generator=g, dtype=torch.float64)
        p = centre + radius * torch.rand(count, 1, generator=g, dtype=torch.float64) ** (1 / 3) * p / p.norm(
            dim=-1, keepdim=True)
    d = p - o
    dist = d.norm(dim=-1)
    return o.float().contiguous(), (d / dist[:, None]).float().contiguous(), dist.float().contiguous()


def median_ms(times) -> float:
    return statistics.median(times) * 1e3


def bench_lumigrad(name, verts, faces, rays, repeats, device, engine) -> tuple[dict, torch.Tensor]:
    """One table row for lumigrad's ``engine`` (``TriangleBVH``'s default and ``bvh_for`` made to pick it),
    and the face ids of the closest hits (for the agreement column)."""
    saved = bvh_module.OWN_BVH_MAX_FACES
    bvh_module.OWN_BVH_MAX_FACES = 2**62 if engine == "own" else -1
    bvh_module.clear_bvh_cache()
    try:
        return _bench_lumigrad(name, verts, faces, rays, repeats, device, engine)
    finally:
        bvh_module.OWN_BVH_MAX_FACES = saved
        bvh_module.clear_bvh_cache()


def _bench_lumigrad(name, verts, faces, rays, repeats, device, engine) -> tuple[dict, torch.Tensor]:
    verts, faces = verts.to(device), faces.to(device)
    o, d, dist = (x.to(device) for x in rays)
    R = o.shape[0]
    sync = device
    build = time_call(lambda: TriangleBVH(verts, faces), max(1, repeats // 2), sync=sync)
    mem_build, _ = peak_memory(lambda: TriangleBVH(verts, faces), device)
    bvh = TriangleBVH(verts, faces)
    moved = [verts * 1.001, verts]
    k = iter(range(10 ** 9))
    refit = time_call(lambda: bvh.refit(moved[next(k) % 2]), repeats, sync=sync)
    bvh.refit(verts)
    closest = time_call(lambda: bvh.closest_hit(o, d), repeats, sync=sync)
    occluded = time_call(lambda: bvh.occluded(o, d, dist), repeats, sync=sync)
    trace = time_call(lambda: trace_closest_unchecked(verts, faces, o, d), repeats, sync=sync)
    mem_query, _ = peak_memory(lambda: bvh.closest_hit(o, d), device)
    face, _, _ = bvh.closest_hit(o, d)
    row = {"scene": name, "tris": faces.shape[0], "engine": f"lumigrad {engine} ({device.type})",
           "build_ms": median_ms(build), "refit_ms": median_ms(refit), "closest": R / statistics.median(closest) / 1e6,
           "full": R / statistics.median(trace) / 1e6, "occluded": R / statistics.median(occluded) / 1e6,
           "hit_frac": 100.0 * float((face >= 0).double().mean()), "mem_query": mem_query, "mem_build": mem_build}
    return row, face.cpu()


def bench_mitsuba(name, verts, faces, rays, repeats, face_lumigrad) -> dict:
    """The same row for Mitsuba 3 (Embree on the CPU)."""
    import numpy as np

    mi, dr = peer._load()
    v = verts.cpu().numpy().astype(np.float32)
    f = faces.cpu().numpy().astype(np.uint32)

    def make_scene():
        mesh = mi.Mesh("mesh", len(v), len(f), has_vertex_normals=False, has_vertex_texcoords=False)
        params = mi.traverse(mesh)
        params["vertex_positions"] = mi.Float(v.ravel())
        params["faces"] = mi.UInt32(f.ravel())
        params.update()
        return mi.load_dict({"type": "scene", "mesh": mesh})

    build = time_call(make_scene, max(1, repeats // 2))
    mem_build = peer.peak_rss_growth(make_scene)[1] / 2**20  # after flushing Dr.Jit's cache of freed buffers
    scene = make_scene()
    o, d, dist = (x.cpu().numpy().astype(np.float32) for x in rays)
    o_mi = mi.Point3f(*(mi.Float(np.ascontiguousarray(o[:, k])) for k in range(3)))
    d_mi = mi.Vector3f(*(mi.Float(np.ascontiguousarray(d[:, k])) for k in range(3)))
    dist_mi = mi.Float(dist)
    dr.eval(o_mi, d_mi, dist_mi)
    R = len(o)

    def closest():
        pi = scene.ray_intersect_preliminary(mi.Ray3f(o_mi, d_mi))
        dr.eval(pi.t, pi.prim_index, pi.prim_uv)
        dr.sync_thread()
        return pi

    def full():
        si = scene.ray_intersect(mi.Ray3f(o_mi, d_mi))
        dr.eval(si)
        dr.sync_thread()

    def occluded():
        blocked = scene.ray_test(mi.Ray3f(o_mi, d_mi, dist_mi))
        dr.eval(blocked)
        dr.sync_thread()

    t_closest = time_call(closest, repeats)
    t_full = time_call(full, repeats)
    t_occ = time_call(occluded, repeats)
    mem_query = peer.peak_rss_growth(closest)[1] / 2**20
    pi = closest()
    hit = np.isfinite(np.array(pi.t))
    prim = np.where(hit, np.array(pi.prim_index).astype(np.int64), -1)
    agree = float(np.mean(prim == face_lumigrad.numpy()))
    return {"scene": name, "tris": len(f), "engine": f"Mitsuba {mi.__version__} (Embree, {dr.thread_count()} thr)",
            "build_ms": median_ms(build), "refit_ms": None, "closest": R / statistics.median(t_closest) / 1e6,
            "full": R / statistics.median(t_full) / 1e6, "occluded": R / statistics.median(t_occ) / 1e6,
            "hit_frac": 100.0 * float(hit.mean()), "agree": 100.0 * agree, "mem_query": mem_query,
            "mem_build": mem_build}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/rays.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", choices=("box", "spot", "sphere"), default=["box", "spot", "sphere"])
    ap.add_argument("--engines", nargs="+", choices=("own", "warp"), default=["own", "warp"],
                    help="lumigrad's BVH engines to time (own: lumigrad's BVH, warp: wp.Mesh)")
    ap.add_argument("--rays", type=int, default=None, help="rays per query (default: 1,000,000; 20,000 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs after one warm-up (default: 5; 2 quick)")
    ap.add_argument("--device", default="cpu", help="torch device for lumigrad; Mitsuba runs on the CPU")
    ap.add_argument("--no-peer", action="store_true", help="skip Mitsuba 3")
    ap.add_argument("--quick", action="store_true", help="smoke run: a small sphere, few rays and repeats")
    args = ap.parse_args(argv)
    args.rays = args.rays or (20_000 if args.quick else 1_000_000)
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    ok, why = (False, "skipped (--no-peer)") if args.no_peer else peer.available()
    load = os.getloadavg()
    threads = lg.threads.info()
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs ({cpu_model()}), python {platform.python_version()}, "
          f"torch {torch.__version__}, lumigrad kernel threads {threads.get('kernel_threads')}, device {device}; "
          f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"mitsuba: {why}")
    print(f"{args.rays} rays per query, median of {args.repeats} runs\n", flush=True)
    rows = []
    for name in args.scenes:
        t0 = time.perf_counter()
        verts, faces = scene_mesh(name, args.quick)
        rays = random_rays(verts, args.rays, inside=name == "box")
        for engine in args.engines:
            row, face = bench_lumigrad(name, verts, faces, rays, args.repeats, device, engine)
            rows.append(row)
        if ok:
            rows.append(bench_mitsuba(name, verts, faces, rays, args.repeats, face))
        print(f"  {name}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(format_table(rows, COLUMNS))
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}. 'full hit': lumigrad trace_closest "
          "(closest + differentiable replay in PyTorch), Mitsuba ray_intersect (full SurfaceInteraction).")


if __name__ == "__main__":
    main()
