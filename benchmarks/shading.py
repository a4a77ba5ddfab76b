"""Benchmark: deferred shading cost per pixel with 1, 8 and 64 point lights and with an environment map.

Scene: the Spot cow at ``--size`` (default 512^2) through ``benchmarks/raster.py``'s camera. The G-buffer
(positions, normals, albedo from the texture) is rendered once outside the timing; each row times only the
shading of the covered pixels over the whole image with a coverage mask: point lights by the PyTorch
reference (``lumigrad.shading.shade_direct`` of one sample per light) and by the fused kernel
(``shade_punctual``, all lights of a pixel in one pass; ``--spot-lights`` adds spot lights with a range,
aimed at the model, fused only), the environment by ``shade_environment``; forward and forward+backward
(gradients to the light positions and intensities, with ``--pixel-grads`` to the G-buffer's normals, base colour
and roughness too, and the spots' directions and angles, or to the SH
coefficients and the environment texels through ``prefilter_ggx``), median of ``--repeats`` runs, each timed
in wall and in process CPU time at once (all threads of the process; less sensitive to other processes than
wall time), with the peak RSS growth of the backward run. The environment row uses the studio map (64 x 128, 9 pre-filtered
roughness levels at 16 x 32, degree-2 SH).

No peer column yet: Mitsuba 3 shades by ray tracing (its ``direct`` integrator), which this deferred raster
shading does not compare with one-for-one; the shading comparison belongs with the ray tracer.

    ./dev bench shading
    ./dev bench shading --size 256 --repeats 3 --lights 1 64
    ./dev bench shading --lights 1 8 64 --paths fused --spot-lights 64 --no-env
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raster as rb  # noqa: E402

import lumigrad as lg  # noqa: E402
from lumigrad.shading import (PunctualLights, point_light, prefilter_ggx, sh_project_equirect,  # noqa: E402
                              shade_direct, shade_environment, shade_punctual)

STUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "envmap-studio-small-03" / "studio_small_03_1k.hdr"
LEVELS = [i / 8 for i in range(9)]


def gbuffer(size: int):
    scene = rb.make_scene("spot", quick=False)
    cam = rb.framing_camera(scene.verts, size)
    frags = lg.rasterize(scene.verts, scene.faces, cam)
    normals = lg.vertex_normals(scene.verts, scene.faces)
    position = lg.interpolate(scene.verts, frags, scene.faces)
    normal = lg.interpolate(normals, frags, scene.faces)
    albedo = lg.texture(scene.texture, lg.interpolate(scene.uv, frags, scene.uv_faces), mask=frags.mask)
    eye = (cam.world_to_cam[:3, :3].T @ -cam.world_to_cam[:3, 3])
    mask = frags.mask[..., None]
    material = {"base_color": albedo.detach(), "roughness": torch.full_like(albedo[..., :1], 0.5),
                "metallic": torch.zeros_like(albedo[..., :1])}
    return position.detach(), normal.detach(), eye, material, mask, int(frags.mask.sum())


def wall_and_cpu_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median process CPU milliseconds of ``fn()`` (CPU: all threads of this process, less
    sensitive than wall time to other processes on a shared machine), both read around the same ``repeats``
    runs after one untimed warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lights", type=int, nargs="+", default=[1, 8, 64], help="numbers of point lights")
    parser.add_argument("--paths", nargs="+", choices=("reference", "fused"), default=["reference", "fused"],
                        help="which point-light paths to time")
    parser.add_argument("--spot-lights", type=int, nargs="*", default=[],
                        help="numbers of spot lights with a range (fused path only), aimed at the model")
    parser.add_argument("--no-env", action="store_true", help="skip the environment-map row")
    parser.add_argument("--pixel-grads", action="store_true",
                        help="point-light rows: gradients to the G-buffer's normals, base colour and roughness too "
                             "(a fit of materials and normals with the lights)")
    args = parser.parse_args(argv)
    position, normal, eye, material, mask, covered = gbuffer(args.size)
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for count in args.lights:
        pos0 = torch.randn(count, 3, generator=gen) * 0.5 + torch.tensor([1.5, 2.0, 2.5])
        power0 = torch.rand(count, 3, generator=gen) * 10 / count + 1
        plural = "s" if count > 1 else ""
        for path in args.paths:
            def run(grad: bool, count=count, pos0=pos0, power0=power0, path=path):
                pos = pos0.clone().requires_grad_(grad)
                power = power0.clone().requires_grad_(grad)
                pixel_grad = grad and args.pixel_grads
                nrm = normal.clone().requires_grad_(pixel_grad)
                mat = {key: t.clone().requires_grad_(pixel_grad and key != "metallic") for key, t in material.items()}
                with torch.set_grad_enabled(grad):
                    if path == "fused":
                        lights = PunctualLights(pos, torch.ones(count, dtype=torch.bool), power)
                        out = shade_punctual(position, nrm, eye, mat, lights, mask=mask)
                    else:
                        lights = [point_light(position, pos[k], power[k]) for k in range(count)]
                        out = shade_direct(position, nrm, eye, mat, lights, mask=mask)
                    if grad:
                        out.mean().backward()
                return out

            rows.append((f"{count} point light{plural}, {path}", run))
    for count in args.spot_lights:
        pos0 = torch.randn(count, 3, generator=gen) * 0.5 + torch.tensor([1.5, 2.0, 2.5])
        power0 = torch.rand(count, 3, generator=gen) * 10 / count + 1
        aim0 = position[mask[..., 0]].mean(0) - pos0  # towards the model's centroid

        def run_spots(grad: bool, count=count, pos0=pos0, power0=power0, aim0=aim0):
            pos, power, aim = (t.clone().requires_grad_(grad) for t in (pos0, power0, aim0))
            inner, outer = (torch.full((count,), a, requires_grad=grad) for a in (0.3, 0.6))
            with torch.set_grad_enabled(grad):
                lights = PunctualLights(pos, torch.ones(count, dtype=torch.bool), power,
                                        range=torch.full((count,), 6.0), is_spot=torch.ones(count, dtype=torch.bool),
                                        spot_direction=aim, inner_angle=inner, outer_angle=outer)
                out = shade_punctual(position, normal, eye, material, lights, mask=mask)
                if grad:
                    out.mean().backward()
            return out

        rows.append((f"{count} spot light{'s' if count > 1 else ''} with range, fused", run_spots))
    if STUDIO.exists() and not args.no_env:
        env0 = torch.nn.functional.adaptive_avg_pool2d(lg.io.read_hdr(STUDIO).permute(2, 0, 1)[None], (64, 128))[0]
        env0 = (env0.permute(1, 2, 0) / env0.mean()).contiguous()

        def run_env(grad: bool):
            env = env0.clone().requires_grad_(grad)
            with torch.set_grad_enabled(grad):
                out = shade_environment(position, normal, eye, material, sh_coeffs=sh_project_equirect(env, 2),
                                        prefiltered=prefilter_ggx(env, LEVELS, size=(16, 32)),
                                        prefiltered_roughness=LEVELS, mask=mask)
                if grad:
                    out.mean().backward()
            return out

        rows.append(("environment map (SH + split sum)", run_env))
    from lumigrad.kernels._runtime import num_workers

    print(rb.machine_line(rb.machine_info(device)) + f", lumigrad kernel threads {num_workers()}")
    print(f"Spot at {args.size}^2, {covered:,} covered pixels; shading only (G-buffer precomputed)\n")
    print("| lighting | fwd ms | fwd ns per image pixel | fwd+bwd ms | fwd+bwd ns per image pixel | fwd CPU ms "
          "| fwd+bwd CPU ms | peak MiB fwd+bwd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    fused_bwd = {}
    for name, fn in rows:
        fwd, fwd_cpu = wall_and_cpu_ms(lambda: fn(False), args.repeats)
        bwd, bwd_cpu = wall_and_cpu_ms(lambda: fn(True), args.repeats)
        peak = rb.peak_mib(lambda: fn(True), device)[0]
        pixels = args.size * args.size
        print(f"| {name} | {fwd:.1f} | {fwd * 1e6 / pixels:.0f} | {bwd:.1f} | {bwd * 1e6 / pixels:.0f} | "
              f"{fwd_cpu:.1f} | {bwd_cpu:.1f} | {peak:.0f} |")
        if name.endswith("fused") and "point" in name:
            fused_bwd[int(name.split()[0])] = (bwd, bwd_cpu)
    if len(fused_bwd) > 1:
        one, most = min(fused_bwd), max(fused_bwd)
        print(f"\nfused fwd+bwd, {most} lights / {one} light{'s' if one > 1 else ''}: "
              f"{fused_bwd[most][0] / fused_bwd[one][0]:.2f}x wall, {fused_bwd[most][1] / fused_bwd[one][1]:.2f}x "
              "process CPU time (issue 19 target: <= 4x for 64 / 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
