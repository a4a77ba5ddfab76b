"""Benchmark: ``render(scene, camera)`` end to end on glTF assets, forward and forward+backward.

Scenes: Khronos' WaterBottle (four 2048^2 textures: base colour, occlusion-roughness-metallic, normal,
emissive) and BoxTextured, read with ``lumigrad.io.read_gltf``, lit by the studio environment map (16 x 32,
SH + split sum, visible behind) and one point light, plus a row with a 2-triangle area light at 16 samples
per face. Each row: median of ``--repeats`` wall-clock times of one render at ``--sizes`` (default 256 and
512) with nothing trainable (constant textures keep their mip pyramids between renders), then of render +
backward with gradients to the material's factors, the base-colour texels (decoded and mip-mapped once per
texel update, then reused with a fused backward; see ``lumigrad.texture``) and the environment texels, with
the peak RSS growth of the backward run.

No peer column: Mitsuba 3 has no glTF importer and shades by ray tracing; a like-for-like comparison belongs
with the ray tracer.

    ./dev bench scene
    ./dev bench scene --sizes 256 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raster as rb  # noqa: E402

import lumigrad as lg  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ASSETS = {"WaterBottle": DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf",
          "BoxTextured": DATA / "gltf-box-textured" / "glTF-Binary" / "BoxTextured.glb"}
STUDIO = DATA / "envmap-studio-small-03" / "studio_small_03_1k.hdr"


def make_scene(path: Path, area_light: bool) -> tuple:
    scene = lg.io.read_gltf(path)
    verts = torch.cat([m.world_verts() for m in scene.meshes.values()]).detach()
    lo, hi = verts.min(0).values, verts.max(0).values
    centre, extent = (lo + hi) / 2, float((hi - lo).norm())
    scene.add_light("sky", lg.io.read_environment(STUDIO, size=(16, 32)))
    if area_light:
        s = 0.3 * extent
        lamp = centre + torch.tensor([[-s, extent, -s], [s, extent, -s], [s, extent, s], [-s, extent, s]])
        scene.add_light("lamp", lg.AreaLight(lamp, [[0, 1, 2], [0, 2, 3]], [20.0, 20.0, 20.0], samples_per_face=16))
    else:
        scene.add_light("key", lg.PointLight(centre + extent * torch.tensor([1.0, 1.0, -1.0]), 3 * extent ** 2))
    eye = centre + extent * torch.tensor([0.3, 0.2, -1.2])
    return scene, eye, centre


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not STUDIO.exists():
        print(f"needs {DATA} (the shared assets) beside the checkout")
        return 1
    device = torch.device("cpu")
    print(rb.machine_line(rb.machine_info(device)))
    print("\n| scene | lights | size | covered px | fwd ms | fwd+bwd ms | peak MiB fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|---:|")
    cases = [("WaterBottle", False), ("WaterBottle", True), ("BoxTextured", False)]
    for name, area in cases:
        scene, eye, centre = make_scene(ASSETS[name], area)
        mesh = next(iter(scene.meshes))
        for size in args.sizes:
            cam = lg.Camera.look_at(eye, centre, width=size, height=size, fov_y=0.8)
            keys = [f"meshes.{mesh}.material.*_factor", f"meshes.{mesh}.material.base_color_texture",
                    "lights.sky.texels"]

            def forward():
                with torch.no_grad():
                    return lg.render(scene, cam)

            def backward():
                for p in params.values():
                    p.grad = None
                lg.render(scene, cam).rgb.mean().backward()

            covered = int((forward().alpha > 0).sum())
            fwd = rb.time_ms(forward, args.repeats, device)  # constant textures: mip pyramids cached
            params = scene.trainable(*keys)
            bwd = rb.time_ms(backward, args.repeats, device)
            peak = rb.peak_mib(backward, device)[0]
            for p in params.values():
                p.requires_grad_(False)
                p.grad = None
            lights = "env + area (2 faces x 16)" if area else "env + point"
            print(f"| {name} | {lights} | {size}^2 | {covered:,} | {fwd:.0f} | {bwd:.0f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
