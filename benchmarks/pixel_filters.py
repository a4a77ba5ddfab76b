"""Pixel reconstruction filters: what each costs the path tracer, beside Mitsuba 3 with the same ``rfilter``.

The Cornell box of ``benchmarks/pathtrace.py`` (256^2, 16 spp, depth 8 by default), forward, for each filter of
``--filters`` (``Film(pixel_filter=...)``; lumigrad draws each camera ray by the filter and weighs it, Mitsuba
splats each sample into the pixels within the radius): the median of ``--repeats`` after a warm-up, the filters
alternating call by call, and the peak memory of one call. Then, unless ``--no-mitsuba``, each filter's image
against Mitsuba's at ``--check-size`` (a floor of one-pixel colour cells, ``direct``, ``--check-spp`` against 16
times as many samples in Mitsuba): the relative RMSE per pixel (``sqrt(mean((a - b)^2)) / mean(b)``), and the box
filter's image against each, which is how far apart the filters' images are.

Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pathtrace  # noqa: E402

FILTERS = ("box", "tent", "gaussian", "mitchell", "lanczos")


def _checker_floor() -> lg.Scene:
    """A floor of 16 x 16 random colour cells (8 x 8 texels each) under a square lamp, seen obliquely by
    :func:`_checker_camera`: cells of about a pixel at 32^2, so the filter shapes the image."""
    gen = torch.Generator().manual_seed(5)
    cells = torch.randint(30, 256, (16, 16, 3), generator=gen).float() / 255
    texture = cells.repeat_interleave(8, 0).repeat_interleave(8, 1)
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])  # the lamp faces down; the floor (flipped) up
    material = lg.shading.Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=1.0,
                                   specular_factor=0.0, base_color_texture=texture)
    scene = lg.Scene()
    floor = torch.tensor([[-1.0, 0, 1], [-1, 0, -1], [1, 0, -1], [1, 0, 1]])
    uv = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    scene.add_mesh("floor", lg.SceneMesh(floor, quad.flip(1), material, uv=uv))
    lamp = torch.tensor([[-0.3, 1.5, -0.3], [0.3, 1.5, -0.3], [0.3, 1.5, 0.3], [-0.3, 1.5, 0.3]])
    scene.add_light("lamp", lg.AreaLight(lamp, quad, torch.tensor([10.0, 10.0, 10.0])))
    return scene


def _checker_camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 1.6, -1.6], [0.0, 0.0, 0.0], fov_y=0.75, width=size, height=size)


def _rrmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.mean(b))


def _forward_rows(filters, size, spp, depth, repeats) -> list:
    scene, cam = pathtrace.cornell_box(torch.tensor([0.7, 0.7, 0.7])), pathtrace.camera(size)
    calls = {}
    for kind in filters:
        def forward(kind=kind):
            scene.film = lg.Film(pixel_filter=kind)
            with torch.no_grad():
                return lg.render(scene, cam, integrator="path", spp=spp, max_depth=depth, rr_depth=depth)
        calls[kind] = forward
    times = {k: [] for k in calls}
    for fn in calls.values():
        time_call(fn, 1, warmup=1)
    for _ in range(repeats):
        for k, fn in calls.items():
            times[k] += time_call(fn, 1, warmup=0)
    return [dict(renderer="lumigrad", filter=k, seconds=median(times[k]), mib=peak_memory(fn)[0],
                 mean=float(fn().rgb.mean())) for k, fn in calls.items()]


def _mitsuba(filters, size, spp, depth, repeats, check_size, check_spp):
    """Mitsuba's forward rows and the image agreement rows, or ``([], [], reason)``."""
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        return [], [], why
    peer.use_variant()
    mi, _ = peer._load()
    scene, cam = pathtrace.cornell_box(torch.tensor([0.7, 0.7, 0.7])), pathtrace.camera(size)
    rows = []
    for kind in filters:
        scene.film = lg.Film(pixel_filter=kind)
        settings = {"max_depth": depth, "rr_depth": depth}
        mscene = mi.load_dict(peer.scene_dict(scene, cam, integrator={"type": "path", **settings}))
        image = peer.render_numpy(mscene, spp)  # warm-up (JIT)
        seconds = median(peer._timed(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)), repeats))
        _, grow, _ = peer.peak_rss_growth(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)))
        rows.append(dict(renderer=f"Mitsuba {mi.__version__} (llvm_ad_rgb)", filter=kind, seconds=seconds,
                         mib=grow / 2**20, mean=float(image.mean())))
    checks = []
    floor, fcam = _checker_floor(), _checker_camera(check_size)
    box = None
    for kind in ("box",) + tuple(k for k in filters if k != "box"):
        floor.film = lg.Film(pixel_filter=kind)
        ref = peer.render_numpy(mi.load_dict(peer.scene_dict(floor, fcam, integrator={"type": "direct"})),
                                16 * check_spp, 0)
        with torch.no_grad():
            ours = lg.render(floor, fcam, integrator="direct", spp=check_spp, seed=3).rgb.double().numpy()
        if kind == "box":
            box = ours
        checks.append(dict(filter=kind, rrmse=_rrmse(ours, ref), box_rrmse=_rrmse(box, ref)))
    return rows, checks, why


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--max-depth", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--filters", nargs="+", default=list(FILTERS), choices=FILTERS)
    p.add_argument("--check-size", type=int, default=32)
    p.add_argument("--check-spp", type=int, default=1024)
    p.add_argument("--no-mitsuba", action="store_true", help="lumigrad's rows only")
    args = p.parse_args(argv)
    rows = _forward_rows(args.filters, args.size, args.spp, args.max_depth, args.repeats)
    checks, why = [], "skipped (--no-mitsuba)"
    if not args.no_mitsuba:
        more, checks, why = _mitsuba(args.filters, args.size, args.spp, args.max_depth, args.repeats,
                                     args.check_size, args.check_spp)
        rows += more
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"Cornell box {args.size}^2, {args.spp} spp, depth {args.max_depth} | Mitsuba: {why}")
    print("| renderer | pixel filter | forward median s | peak MiB | mean pixel |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['renderer']} | {r['filter']} | {r['seconds']:.3f} | {r['mib']:.0f} | {r['mean']:.5f} |")
    if checks:
        print(f"\nImage agreement, checker floor {args.check_size}^2, `direct`, lumigrad {args.check_spp} spp against "
              f"Mitsuba {16 * args.check_spp} spp with the same rfilter:\n")
        print("| pixel filter | rrmse lumigrad vs Mitsuba | rrmse lumigrad's box image vs Mitsuba |")
        print("|---|---|---|")
        for c in checks:
            print(f"| {c['filter']} | {c['rrmse']:.4f} | {c['box_rrmse']:.4f} |")
    return rows + checks


if __name__ == "__main__":
    main()
