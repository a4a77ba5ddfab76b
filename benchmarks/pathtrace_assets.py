"""Path tracing real glTF assets (normal maps, textures) under an HDR environment: the fused kernel against the
PyTorch transport.

For each asset of ``--assets`` (paths relative to the shared data folder, ``../shared/data`` beside the project)
lit by ``--envmap`` (an ``.hdr``, downsampled by ``--env-step``), a camera framing the asset's bounding box:

* ``forward``: ``lumigrad.render(..., integrator="path", spp, max_depth)`` without a graph, on the fused Warp
  kernel (``use_fused_kernel=True``, the default) and on the PyTorch transport (``use_fused_kernel=False``),
  the two alternated call by call; the table gives the median seconds, the peak memory of one call and the mean
  pixel of each, and the largest per-pixel difference between them (the same paths to float32 rounding, except
  a branch falling the other way at a tie);
* ``base colour gradient`` (``--what gradient``): forward + backward of the mean pixel w.r.t. the first part's
  base colour factor, by the fused replay (``fused_adjoint=True``) and the PyTorch replay.

Mitsuba 3 is not run here: its glTF import and normal mapping differ from glTF's (``benchmarks/pathtrace.py`` has
the peer on the Cornell box). Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _transports import forward_by_transport  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_scene(asset: str, envmap: str, env_step: int) -> lg.Scene:
    """The asset's scene with the environment map as its only light."""
    scene = lg.io.load(str(SHARED / asset))
    env = torch.as_tensor(lg.io.load(str(SHARED / envmap))).float()[::env_step, ::env_step].contiguous()
    scene.add_light("sky", lg.EnvironmentLight(env))
    return scene


def framing_camera(scene: lg.Scene, size: int) -> lg.Camera:
    """A camera looking at the centre of the scene's bounding box from the front, slightly above."""
    verts = torch.cat([mesh.verts.detach().reshape(-1, 3) for mesh in scene.meshes.values()])
    lo, hi = verts.amin(0), verts.amax(0)
    centre, radius = (lo + hi) / 2, float((hi - lo).norm())
    eye = centre + torch.tensor([0.0, 0.1 * radius, 0.75 * radius])
    return lg.Camera.look_at(eye.tolist(), centre.tolist(), fov_y=0.8, width=size, height=size)


def _forward_rows(asset, scene, cam, settings, repeats):
    runs = forward_by_transport(scene, cam, settings, repeats)
    diff = float((runs[True]["image"] - runs[False]["image"]).abs().max())
    return [dict(asset=asset, what="forward", engine="fused kernel" if k else "PyTorch transport",
                 seconds=r["seconds"], mib=r["mib"], mean=float(r["image"].mean()), diff=diff)
            for k, r in runs.items()]


def _gradient_rows(asset, scene, cam, settings, repeats):
    material = next(iter(scene.meshes.values())).material
    factor = material.base_color_factor.detach().clone()
    rows, grads = [], {}
    for fused in (True, False):
        def step(fused=fused):
            leaf = factor.clone().requires_grad_(True)
            material.base_color_factor = leaf
            lg.render(scene, cam, **settings, fused_adjoint=fused).rgb.mean().backward()
            return leaf.grad
        grads[fused] = step()
        seconds = median(time_call(step, repeats, warmup=0))
        rows.append(dict(asset=asset, what="base colour gradient",
                         engine="fused replay" if fused else "PyTorch replay", seconds=seconds,
                         mib=peak_memory(step)[0], mean=float(grads[fused][:3].mean()), diff=None))
    material.base_color_factor = factor
    diff = float((grads[True] - grads[False]).abs().max())
    for row in rows:
        row["diff"] = diff
    return rows


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", nargs="+", default=["gltf-water-bottle/glTF/WaterBottle.gltf"])
    p.add_argument("--envmap", default="envmap-studio-small-03/studio_small_03_1k.hdr")
    p.add_argument("--env-step", type=int, default=4, help="keep every n-th texel row and column of the map")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--max-depth", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--what", nargs="+", choices=["forward", "gradient"], default=["forward"])
    args = p.parse_args(argv)
    settings = dict(integrator="path", spp=args.spp, max_depth=args.max_depth)
    rows = []
    for asset in args.assets:
        scene = load_scene(asset, args.envmap, args.env_step)
        cam = framing_camera(scene, args.size)
        if "forward" in args.what:
            rows += _forward_rows(asset, scene, cam, settings, args.repeats)
        if "gradient" in args.what:
            rows += _gradient_rows(asset, scene, cam, settings, args.repeats)
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{args.size}^2, {args.spp} spp, depth {args.max_depth}")
    print("| asset | what | engine | median s | peak MiB | mean (pixel or gradient) | max difference |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['asset']).stem} | {r['what']} | {r['engine']} | {r['seconds']:.3f} | {r['mib']:.0f} | "
              f"{r['mean']:.5f} | {r['diff']:.2e} |")
    return rows


if __name__ == "__main__":
    main()
