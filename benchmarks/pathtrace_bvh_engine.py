"""Which BVH engine a path-traced scene should use on the CPU, by size: the own BVH with its SIMD lanes (all
triangles 16 at a time, ``lanes``), its tree alone (``own``) or Warp's ``wp.Mesh`` (``warp``).

For meshes of growing triangle counts placed in the Cornell box of ``benchmarks/pathtrace.py`` (its 12
triangles and lamp beside them), it times per engine (``TriangleBVH(engine=...)``, forced for the whole scene
through :data:`lumigrad.kernels.bvh.OWN_BVH_MAX_FACES` and :data:`~lumigrad.kernels.bvh.LANES_MAX_FACES`):

* ``build``: building the scene's BVH, ``refit``: refitting it after its vertices moved (what a fit step with
  moving vertices pays; process CPU time, median of ``--repeats``);
* ``render``: ``lumigrad.render(..., integrator="path")`` with the BVH already built and cached (the fused
  kernel: closest-hit and shadow queries of every bounce), process CPU time, median of ``--repeats``, the
  engines alternated call by call.

Meshes: ``spot`` (5,856 triangles) and bumpy UV spheres of ``--sphere-grids`` (``2 * slices * (stacks - 1)``
triangles), each scaled into the box's lower half; ``--engines`` picks the engines (the lanes only up to
``--lanes-up-to`` triangles). Run it at one thread for per-core figures::

    OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1 .venv/bin/python benchmarks/pathtrace_bvh_engine.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathtrace import camera, cornell_box  # noqa: E402
from rays import scene_mesh  # noqa: E402
from raster import bumpy_sphere  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import cpu_model, format_table, median  # noqa: E402
from lumigrad.kernels import bvh as bvh_module  # noqa: E402

COLUMNS = [("mesh", "mesh"), ("tris", "triangles (mesh + walls)"), ("engine", "engine"), ("build", "build ms"),
           ("refit", "refit ms"),
           ("render", "render s"), ("ns", "ns / path")]


def _mesh(name: str):
    if name == "spot":
        return scene_mesh("spot", quick=False)
    slices, stacks = (int(x) for x in name.split("x"))
    s = bumpy_sphere(slices, stacks, tex_size=4)
    return s.verts.float().contiguous(), s.faces.long().contiguous()


def scene_with(name: str) -> lg.Scene:
    """The Cornell box with mesh ``name`` (grey, rough) standing on its floor."""
    verts, faces = _mesh(name)
    lo, hi = verts.min(0).values, verts.max(0).values
    verts = (verts - (lo + hi) / 2) / float((hi - lo).max()) * 1.0 + torch.tensor([0.0, -0.5, 0.1])
    scene = cornell_box(torch.tensor([0.7, 0.7, 0.7]))
    material = lg.shading.Material(base_color_factor=torch.tensor([0.8, 0.8, 0.8, 1.0]), metallic_factor=0.0,
                                   roughness_factor=0.6)
    scene.add_mesh("object", lg.SceneMesh(verts, faces, material))
    return scene


#: Per engine, ``(OWN_BVH_MAX_FACES, LANES_MAX_FACES)`` forcing it for any size.
LIMITS = {"lanes": (2**62, 2**62), "own": (2**62, -1), "warp": (-1, -1)}


@contextlib.contextmanager
def _forced(engine: str):
    """``engine="auto"`` picks ``engine`` inside (a fresh BVH cache), as before afterwards."""
    saved = bvh_module.OWN_BVH_MAX_FACES, bvh_module.LANES_MAX_FACES
    bvh_module.OWN_BVH_MAX_FACES, bvh_module.LANES_MAX_FACES = LIMITS[engine]
    bvh_module.clear_bvh_cache()
    try:
        yield
    finally:
        bvh_module.OWN_BVH_MAX_FACES, bvh_module.LANES_MAX_FACES = saved
        bvh_module.clear_bvh_cache()


def _cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def measure(name: str, size: int, spp: int, depth: int, repeats: int, engines) -> list:
    scene = scene_with(name)
    cam = camera(size)
    parts = list(scene.meshes.values())
    starts = torch.tensor([0] + [m.verts.shape[0] for m in parts]).cumsum(0)
    verts = torch.cat([m.verts for m in parts]).float()
    faces = torch.cat([m.faces.long() + int(k) for m, k in zip(parts, starts)])
    settings = dict(integrator="path", spp=spp, seed=1, max_depth=depth, rr_depth=depth)
    rendered = {}
    builds, refits, renders = ({e: [] for e in engines} for _ in range(3))
    for r in range(repeats + 1):
        for engine in engines:
            with _forced(engine), torch.no_grad():
                first = _cpu_seconds(lambda: lg.render(scene, cam, **settings))  # builds the BVH, caches it
                seconds = _cpu_seconds(lambda: rendered.__setitem__(engine, lg.render(scene, cam, **settings).rgb))
                assert bvh_module.bvh_cache_info()["builds"] == 1, "the second render rebuilt the BVH"
                built = _cpu_seconds(lambda: bvh_module.TriangleBVH(verts, faces))
                bvh = bvh_module.TriangleBVH(verts, faces)
                moved = verts + 1e-3 * torch.randn_like(verts)
                refit = _cpu_seconds(lambda: bvh.refit(moved))
            if r:  # the first round compiles kernels
                builds[engine].append(built)
                refits[engine].append(refit)
                renders[engine].append(seconds)
            del first
    tris = faces.shape[0]
    rows = []
    for engine in engines:
        render_s = median(renders[engine])
        rows.append({"mesh": name, "tris": tris, "engine": engine, "build": f"{1e3 * median(builds[engine]):.1f}",
                     "refit": f"{1e3 * median(refits[engine]):.2f}",
                     "render": f"{render_s:.3f}", "ns": f"{1e9 * render_s / (size * size * spp):.0f}"})
    first = rendered[engines[0]]
    for engine in engines[1:]:
        same = torch.equal(first, rendered[engine])
        diff = float((first - rendered[engine]).abs().max())
        print(f"{name}: images of {engines[0]} and {engine} "
              f"{'identical' if same else f'differ (max |diff| {diff:.3g}: ties and rounding)'}", flush=True)
    return rows


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--meshes", nargs="+", default=["8x5", "16x9", "40x21", "spot", "320x160"],
                   help="'spot' or SLICESxSTACKS of a bumpy sphere")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--spp", type=int, default=4)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--engines", nargs="+", default=list(LIMITS), choices=list(LIMITS))
    p.add_argument("--lanes-up-to", type=int, default=300, help="most triangles (with the walls) to time the lanes on")
    args = p.parse_args(argv)
    head = (f"CPU: {cpu_model()}; threads: {lg.get_num_threads()}; {args.size}^2, {args.spp} spp, depth {args.depth}; "
            f"load average {os.getloadavg()[0]:.2f} at the start")
    print(head, flush=True)
    rows = []
    for name in args.meshes:
        tris = sum(m.faces.shape[0] for m in scene_with(name).meshes.values())
        engines = [e for e in args.engines if e != "lanes" or tris <= args.lanes_up_to]
        rows += measure(name, args.size, args.spp, args.depth, args.repeats, engines)
    print(f"{format_table(rows, COLUMNS)}\nload average {os.getloadavg()[0]:.2f} at the end")
    return rows


if __name__ == "__main__":
    main()
