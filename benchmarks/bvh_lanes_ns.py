"""Nanoseconds a ray query costs on the CPU with the own BVH's SIMD lanes (``kernels/bvh_native.py``: all triangles
16 at a time), its tree alone and Warp's ``wp.Mesh``, on tiny scenes (process CPU time, one kernel thread).

Scenes: the Cornell box of ``benchmarks/pathtrace.py`` (``box``, 12 triangles) and the box with a bumpy UV sphere
of ``SLICESxSTACKS`` standing in it (``benchmarks/pathtrace_bvh_engine.py``'s scenes, with the lamp's 2
triangles left out: ``4x3``: 26 triangles, ``8x5``: 74). The lanes are forced for every size here
(``LANES_MAX_FACES``); ``engine="auto"`` uses them up to :data:`lumigrad.kernels.bvh.LANES_MAX_FACES`.

Rays, unit directions: ``inside``: between two uniform points of the box's inside (a path tracer's bounces and
shadow rays there), ``camera``: ``benchmarks/bvh_query_ns.py``'s pinhole rays. ``closest``:
:meth:`TriangleBVH.closest_hit`, ``occluded``: :meth:`TriangleBVH.occluded` with ``t_max`` the distance to the
ray's target. The engines alternate call by call (median of ``--repeats``); the lanes' answers are checked equal
to the tree's (faces, ``t`` and barycentric bits, occlusion).

Usage::

    OMP_NUM_THREADS=1 LUMIGRAD_NUM_THREADS=1 .venv/bin/python benchmarks/bvh_lanes_ns.py --scenes box 4x3 8x5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bvh_query_ns import camera_rays  # noqa: E402
from pathtrace_bvh_engine import scene_with  # noqa: E402
from pathtrace import cornell_box  # noqa: E402
from rays import random_rays  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import cpu_model, format_table, median  # noqa: E402
from lumigrad.kernels import bvh as bvh_module  # noqa: E402

COLUMNS = [("scene", "scene"), ("tris", "triangles"), ("rays", "rays"), ("engine", "engine"),
           ("closest", "closest ns"), ("occluded", "occluded ns")]
ENGINES = ("lanes", "tree", "warp")


def scene_triangles(name: str):
    """``(verts, faces)`` of the scene's meshes (the lamp is a light, not a mesh)."""
    scene = cornell_box(torch.tensor([0.7, 0.7, 0.7])) if name == "box" else scene_with(name)
    parts = list(scene.meshes.values())
    starts = torch.tensor([0] + [m.verts.shape[0] for m in parts]).cumsum(0)
    verts = torch.cat([m.verts for m in parts]).float().contiguous()
    faces = torch.cat([m.faces.long() + int(k) for m, k in zip(parts, starts)]).contiguous()
    return verts, faces


def _own(verts, faces, lanes_max_faces: int):
    saved = bvh_module.LANES_MAX_FACES
    bvh_module.LANES_MAX_FACES = lanes_max_faces
    try:
        return bvh_module.TriangleBVH(verts, faces, engine="own")
    finally:
        bvh_module.LANES_MAX_FACES = saved


def _bvhs(verts, faces) -> dict:
    return {"lanes": _own(verts, faces, 2**62), "tree": _own(verts, faces, -1),
            "warp": bvh_module.TriangleBVH(verts, faces, engine="warp")}


def _ns(fn, rays: int) -> float:
    t0 = time.process_time()
    fn()
    return 1e9 * (time.process_time() - t0) / rays


def measure(name: str, rays: int, repeats: int) -> list:
    verts, faces = scene_triangles(name)
    bvhs = _bvhs(verts, faces)
    ray_sets = {"inside": random_rays(verts, rays, seed=1, inside=True), "camera": camera_rays(verts, rays, "box")}
    rows = []
    for kind, (o, d, dist) in ray_sets.items():
        lanes, tree = bvhs["lanes"], bvhs["tree"]
        same = all(torch.equal(a, b) for a, b in zip(lanes.closest_hit(o, d), tree.closest_hit(o, d)))
        same = same and torch.equal(lanes.occluded(o, d, dist), tree.occluded(o, d, dist))
        if not same:
            raise RuntimeError(f"{name}, {kind} rays: the lanes' answers differ from the tree's")
        times = {e: ([], []) for e in ENGINES}
        for r in range(repeats + 1):
            for engine, bvh in bvhs.items():
                closest = _ns(lambda: bvh.closest_hit(o, d), o.shape[0])
                occluded = _ns(lambda: bvh.occluded(o, d, dist), o.shape[0])
                if r:  # the first round compiles and warms up
                    times[engine][0].append(closest)
                    times[engine][1].append(occluded)
        rows += [{"scene": name, "tris": faces.shape[0], "rays": kind, "engine": e, "closest": median(c),
                  "occluded": median(a)} for e, (c, a) in times.items()]
    return rows


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["box", "4x3", "8x5"], help="'box' or SLICESxSTACKS")
    p.add_argument("--rays", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    print(f"# CPU: {cpu_model()}; {lg.get_num_threads()} kernel thread(s); load average "
          f"{os.getloadavg()[0]:.2f} at the start", flush=True)
    rows = []
    for name in args.scenes:
        rows += measure(name, args.rays, args.repeats)
    print(format_table(rows, COLUMNS, digits=1))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return rows


if __name__ == "__main__":
    main()
