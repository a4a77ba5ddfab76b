"""Nanoseconds a ray query costs on the CPU, by BVH engine, scene and kind of rays (process CPU time).

For each scene and engine (``own``: lumigrad's BVH, ``warp``: ``wp.Mesh``; ``TriangleBVH(engine=...)``) it times
:meth:`TriangleBVH.closest_hit` (``t_max`` inf) and :meth:`TriangleBVH.occluded` (``t_max`` the distance to the
ray's target: shadow rays) over the same rays, median of ``--repeats`` calls after a warm-up, in process CPU time
(``time.process_time``: other processes on a shared machine disturb it far less than the wall clock) divided by
the number of rays. Kernel threads: ``--threads`` (default 1, the cleanest comparison).

Rays, unit directions:

* ``camera``: a pinhole's rays, one per pixel of a ``sqrt(R) x sqrt(R)`` grid, from 3 bounding radii in front
  of the mesh (the box: from ``benchmarks/pathtrace.py``'s camera) to the plane through its centre (coherent);
* ``scattered``: ``benchmarks/rays.py``'s random rays: from a sphere of 3 bounding radii to uniform points of
  the bounding ball, or, in the box, between two uniform points of its inside (a path tracer's bounces and
  shadow rays there; incoherent).

Scenes: ``box`` (the Cornell box of ``benchmarks/pathtrace.py``, 12 triangles), ``spot`` (5,856) and ``sphere``
(the bumpy UV sphere of ``benchmarks/raster.py`` on a ``--sphere-grid`` grid; 320 x 160: 101,760 triangles).

Usage::

    .venv/bin/python benchmarks/bvh_query_ns.py                            # all scenes, both engines
    .venv/bin/python benchmarks/bvh_query_ns.py --scenes box --rays 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rays import random_rays, scene_mesh  # noqa: E402
from raster import bumpy_sphere  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.app.benchmarking import cpu_model, format_table, median, time_call  # noqa: E402
from lumigrad.kernels.bvh import TriangleBVH  # noqa: E402

COLUMNS = [("scene", "scene"), ("tris", "triangles"), ("rays", "rays"), ("engine", "engine"),
           ("closest", "closest ns"), ("occluded", "occluded ns"), ("hit", "hit %"), ("blocked", "blocked %")]


def mesh(name: str, sphere_grid):
    if name == "sphere":
        s = bumpy_sphere(*sphere_grid, tex_size=4)
        return s.verts.float().contiguous(), s.faces.long().contiguous()
    return scene_mesh(name, quick=False)


def camera_rays(verts: torch.Tensor, count: int, scene: str):
    """A pinhole's unit rays over a square grid of about ``count`` pixels, and the distance to their target."""
    side = max(1, int(math.isqrt(count)))
    lo, hi = verts.min(0).values.double(), verts.max(0).values.double()
    centre, radius = (lo + hi) / 2, float((hi - lo).norm()) / 2
    eye = torch.tensor([0.0, 0.0, -3.4], dtype=torch.float64) if scene == "box" else \
        centre - torch.tensor([0.0, 0.0, 3 * radius], dtype=torch.float64)
    half = float((centre[2] - eye[2]) * math.tan(0.35)) if scene == "box" else radius
    ticks = torch.linspace(-half, half, side, dtype=torch.float64)
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    target = torch.stack([centre[0] + x.reshape(-1), centre[1] + y.reshape(-1),
                          centre[2].expand(side * side)], dim=1)
    d = target - eye
    dist = d.norm(dim=-1)
    o = eye.expand_as(d)
    return o.float().contiguous(), (d / dist[:, None]).float().contiguous(), dist.float().contiguous()


def measure(bvh: TriangleBVH, o, d, dist, repeats: int) -> dict:
    closest = time_call(lambda: bvh.closest_hit(o, d), repeats, clock="cpu")
    occluded = time_call(lambda: bvh.occluded(o, d, dist), repeats, clock="cpu")
    face, _, _ = bvh.closest_hit(o, d)
    R = o.shape[0]
    return {"closest": 1e9 * median(closest) / R, "occluded": 1e9 * median(occluded) / R,
            "hit": 100.0 * float((face >= 0).float().mean()),
            "blocked": 100.0 * float(bvh.occluded(o, d, dist).float().mean())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", nargs="+", default=["box", "spot", "sphere"], choices=["box", "spot", "sphere"])
    p.add_argument("--engines", nargs="+", default=["own", "warp"], choices=["own", "warp"])
    p.add_argument("--rays", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sphere-grid", type=int, nargs=2, default=(320, 160), metavar=("SLICES", "STACKS"))
    args = p.parse_args(argv)
    lg.set_num_threads(args.threads)
    print(f"# BVH query cost, {cpu_model()}, {args.threads} kernel thread(s), load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    rows = []
    for name in args.scenes:
        verts, faces = mesh(name, args.sphere_grid)
        ray_sets = {"camera": camera_rays(verts, args.rays, name),
                    "scattered": random_rays(verts, args.rays, seed=1, inside=name == "box")}
        for engine in args.engines:
            bvh = TriangleBVH(verts, faces, engine=engine)
            for kind, (o, d, dist) in ray_sets.items():
                rows.append({"scene": name, "tris": faces.shape[0], "rays": kind, "engine": engine,
                             **measure(bvh, o, d, dist, args.repeats)})
    print(format_table(rows, COLUMNS, digits=1))
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
