"""Peak memory of a forward + backward raster render vs image size, mesh size, tiling and shading checkpoints.

Three tables (median of ``--repeats`` runs after one warm-up; peak memory is
:func:`lumigrad.app.benchmarking.peak_memory`: growth of the peak resident set size on CPU, of
``torch.cuda.max_memory_allocated`` on CUDA):

* ``image``: a shaded icosphere (``--image-subdiv``, 20k triangles by default) filling the view, loss = MSE
  against a constant target, gradients w.r.t. the vertices and the base colour; for each image size the
  untiled render (``lumigrad.render`` + ``backward``, up to ``--untiled-max``) and ``lumigrad.render_tiled``
  with ``--tile`` pixels per tile. ``output`` is the size of the rendered RGBA image itself (float32).
* ``mesh``: the same scene at ``--mesh-size`` pixels with icospheres of ``--mesh-subdivs`` splits
  (1280 to 5.2M triangles), untiled and tiled; ``mesh`` is the size of the vertex and face tables.
* ``fit``: one step of ``lumigrad fit`` (``Problem.loss`` + ``backward``: one drawn view of a shaded icosphere,
  MSE + L1 against synthetic targets, gradients to the vertices and the colour) at ``--fit-sizes``, with
  ``[render] tile = 0`` and ``= --tile``; ``targets`` is the size of the targets the problem holds.
* ``lights``: ``checkpoint_shading`` off / on with ``--lights`` point lights and an SH light at
  ``--lights-size`` pixels.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py                 # the tables in docs/benchmarks.md
    .venv/bin/python benchmarks/memory.py --quick                           # smoke run (seconds)
    .venv/bin/python benchmarks/memory.py --tables image --sizes 256 512 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import cpu_model, format_table, peak_memory

MiB = 2 ** 20


def ball_scene(subdivisions: int, lights: int = 1, sh: bool = False):
    """An icosphere of ``subdivisions`` splits with a differentiable base colour, lit by ``lights`` point lights
    (and an SH light); returns ``(scene, [verts, colour])``."""
    verts, faces = lg.geometry.icosphere(subdivisions)
    verts.requires_grad_(True)
    colour = torch.tensor([0.8, 0.3, 0.2, 1.0], requires_grad=True)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, lg.shading.Material(base_color_factor=colour)))
    for k in range(lights):
        angle = 2 * torch.pi * k / max(lights, 1)
        position = torch.tensor([3 * float(torch.cos(torch.tensor(angle))), 2.0, -3.0 + float(torch.sin(
            torch.tensor(angle)))])
        scene.add_light(f"light{k}", lg.PointLight(position, 10.0 / lights))
    if sh:
        scene.add_light("sky", lg.SHLight(torch.full((9, 3), 0.2)))
    return scene, [verts, colour]


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at(torch.tensor([0.0, 0.0, -2.6]), torch.zeros(3), fov_y=0.8, width=size, height=size)


def fit_step(scene, params, cam, tile, **settings):
    """One forward + backward of the MSE against a grey target: untiled (``tile=None``) or tiled."""
    pixels = cam.width * cam.height

    def step():
        for p in params:
            p.grad = None
        if tile is None:
            out = lg.render(scene, cam, **settings)
            loss = ((out.rgb - 0.5) ** 2).sum() / pixels
            loss.backward()
        else:
            lg.render_tiled(scene, cam, lambda out, _: ((out.rgb - 0.5) ** 2).sum() / pixels, tile=tile,
                            **settings)
    return step


def measure(step, repeats: int):
    """``(median MiB, median seconds, exact)`` of ``repeats`` measured runs after one warm-up."""
    step()
    peaks, times, exact = [], [], True
    for _ in range(repeats):
        clock = []

        def timed():
            t0 = time.perf_counter()
            step()
            clock.append(time.perf_counter() - t0)

        peak, ok = peak_memory(timed)
        times.append(clock[0])
        peaks.append(peak)
        exact = exact and ok
    return statistics.median(peaks), statistics.median(times), exact


def image_table(args):
    rows = []
    scene, params = ball_scene(args.image_subdiv)
    for size in args.sizes:
        cam = camera(size)
        row = {"size": f"{size}^2", "output": size * size * 4 * 4 / MiB}
        if size <= args.untiled_max:
            row["untiled"], row["untiled_s"], _ = measure(fit_step(scene, params, cam, None), args.repeats)
        row["tiled"], row["tiled_s"], _ = measure(fit_step(scene, params, cam, args.tile), args.repeats)
        rows.append(row)
        print(format_table([row], COLUMNS_IMAGE).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


def mesh_table(args):
    rows = []
    cam = camera(args.mesh_size)
    for n in args.mesh_subdivs:
        scene, params = ball_scene(n)
        faces = scene.meshes["ball"].faces
        row = {"triangles": faces.shape[0],
               "mesh": (params[0].numel() * 4 + faces.numel() * 8) / MiB}
        row["untiled"], row["untiled_s"], _ = measure(fit_step(scene, params, cam, None), args.repeats)
        row["tiled"], row["tiled_s"], _ = measure(fit_step(scene, params, cam, args.tile), args.repeats)
        rows.append(row)
        print(format_table([row], COLUMNS_MESH).splitlines()[-1], file=sys.stderr, flush=True)
        del scene, params
    return rows


def lights_table(args):
    rows = []
    cam = camera(args.lights_size)
    scene, params = ball_scene(args.image_subdiv, lights=args.lights, sh=True)
    for checkpoint in (False, True):
        row = {"checkpoint_shading": checkpoint, "lights": args.lights}
        row["peak"], row["seconds"], _ = measure(fit_step(scene, params, cam, None, checkpoint_shading=checkpoint),
                                                 args.repeats)
        rows.append(row)
    return rows


FIT_CONFIG = """
name = "memory"
[scene]
primitive = "icosphere"
subdivisions = {subdiv}
[[scene.lights]]
name = "key"
type = "point"
position = [2.0, 2.0, -2.0]
intensity = 6.0
[data]
truth = "{truth}"
views = 2
size = {size}
[data.set]
"meshes.mesh.material.base_color_factor" = [0.7, 0.3, 0.2, 1.0]
[[optimize]]
name = "albedo"
params = "meshes.*.material.base_color_factor"
lr = 0.1
[[optimize]]
name = "shape"
params = "meshes.*.verts"
lr = 0.01
[loss]
mse = 1.0
l1 = 0.1
[fit]
steps = 1
views_per_step = 1
[render]
tile = {tile}
"""


def fit_table(args):
    import tempfile
    from pathlib import Path

    from lumigrad.fitting import load_config
    from lumigrad.fitting.problem import build_problem

    rows = []
    folder = Path(tempfile.mkdtemp())
    verts, faces = lg.geometry.icosphere(args.image_subdiv)
    lg.io.save(folder / "truth.obj", (verts * 1.1, faces))
    for size in args.fit_sizes:
        row = {"size": f"{size}^2", "targets": 2 * size * size * 4 * 4 / MiB}
        for tile, key in ((0, "untiled"), (args.tile, "tiled")):
            path = folder / f"fit_{size}_{tile}.toml"
            path.write_text(FIT_CONFIG.format(subdiv=args.image_subdiv, truth=folder / "truth.obj", size=size, tile=tile))
            problem = build_problem(load_config(path))
            leaves = [leaf for group in problem.groups for leaf in problem.leaves(group)]

            def step():
                for leaf in leaves:
                    leaf.grad = None
                loss, _ = problem.loss(0)
                loss.backward()

            row[key], row[key + "_s"], _ = measure(step, args.repeats)
            del problem, leaves
        rows.append(row)
        print(format_table([row], COLUMNS_FIT).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


COLUMNS_FIT = ["size", ("targets", "targets held MiB"), ("untiled", "untiled step peak MiB"), ("untiled_s", "untiled s"),
               ("tiled", "tiled step peak MiB"), ("tiled_s", "tiled s")]
COLUMNS_IMAGE = ["size", ("output", "RGBA output MiB"), ("untiled", "untiled peak MiB"), ("untiled_s", "untiled s"),
                 ("tiled", "tiled peak MiB"), ("tiled_s", "tiled s")]
COLUMNS_MESH = ["triangles", ("mesh", "mesh tables MiB"), ("untiled", "untiled peak MiB"),
                ("untiled_s", "untiled s"), ("tiled", "tiled peak MiB"), ("tiled_s", "tiled s")]
COLUMNS_LIGHTS = ["checkpoint_shading", "lights", ("peak", "peak MiB"), ("seconds", "s")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=["image", "mesh", "fit", "lights"],
                        choices=["image", "mesh", "fit", "lights"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--untiled-max", type=int, default=2048, help="largest image size rendered untiled")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--image-subdiv", type=int, default=5, help="icosphere splits of the image table's mesh")
    parser.add_argument("--mesh-size", type=int, default=1024, help="image size of the mesh table")
    parser.add_argument("--mesh-subdivs", nargs="+", type=int, default=[3, 4, 5, 6, 7, 8])
    parser.add_argument("--fit-sizes", nargs="+", type=int, default=[512, 1024, 2048])
    parser.add_argument("--lights", type=int, default=32)
    parser.add_argument("--lights-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.untiled_max, args.tile, args.image_subdiv = [32, 64], 64, 16, 2
        args.mesh_size, args.mesh_subdivs, args.lights, args.lights_size, args.repeats = 32, [1, 2], 4, 32, 1
        args.fit_sizes = [32, 48]
    print(f"# {cpu_model()}, {torch.get_num_threads()} torch threads, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, torch {torch.__version__}, {platform.python_version()}; "
          f"load {os.getloadavg()[0]:.2f} at start; median of {args.repeats} runs", flush=True)
    if "image" in args.tables:
        print(f"\n## peak memory vs image size (icosphere {args.image_subdiv}, tile {args.tile})")
        print(format_table(image_table(args), COLUMNS_IMAGE))
    if "mesh" in args.tables:
        print(f"\n## peak memory vs mesh size ({args.mesh_size}^2 image, tile {args.tile})")
        print(format_table(mesh_table(args), COLUMNS_MESH))
    if "fit" in args.tables:
        print(f"\n## one lumigrad fit step vs image size (icosphere {args.image_subdiv}, [render] tile = {args.tile})")
        print(format_table(fit_table(args), COLUMNS_FIT))
    if "lights" in args.tables:
        print(f"\n## checkpoint_shading ({args.lights_size}^2 image, {args.lights} point lights + SH)")
        print(format_table(lights_table(args), COLUMNS_LIGHTS))
    print(f"\n# load {os.getloadavg()[0]:.2f} at end", flush=True)


if __name__ == "__main__":
    main()
