"""Path tracer: time and peak memory of forward and path-replay backward, by depth, beside Mitsuba 3.

A Cornell-like box (five diffuse walls, two red/green, a square lamp under the ceiling), 256^2 by default:

* forward: ``lumigrad.render(..., integrator="path", spp, max_depth)`` without a graph;
* reflectance gradient: the gradient of the mean pixel w.r.t. the back wall's albedo by path replay
  backpropagation, at several depths (its memory must not grow with depth); on the fused kernel by default
  (only a material value requires a gradient: ``fused_adjoint``), ``--replay torch`` (or ``fused torch``) also
  times the PyTorch replay, one bounce's graph at a time;
* translation gradient: the gradient of the mean pixel w.r.t. the lamp's height (moving the lamp moves its
  silhouette: a visibility gradient). Lumigrad's boundary terms: primary visibility (the camera sees the lamp)
  and shadow edges at and beyond the first hit (none in this empty, convex box); the lamp's silhouette seen from
  the walls (it blocks light bounced off the ceiling) is not sampled (docs/benchmarks.md, "Visibility gradient at
  equal error": -3.5 % at depth 8);
* ``--device cuda`` runs lumigrad on a GPU (``./dev gpu-check`` does).

When Mitsuba 3 is importable (``bash benchmarks/setup_mitsuba.sh``; ``--no-mitsuba`` skips it), the same scene
(``benchmarks/_mitsuba_peer.py``'s ``scene_dict``) runs in its ``llvm_ad_rgb`` variant on the CPU: ``path``
forward, ``prb`` for the reflectance gradient and ``prb_projective`` (``--guiding``, default ``"grid"``) for the
translation gradient, at the same spp, depth and Russian roulette depth (none: ``rr_depth = max_depth``), timed after
``dr.eval`` / ``dr.sync_thread`` (its JIT compiles in the warm-up; later renders reuse the kernels).

``--what`` picks the rows (``forward``, ``reflectance``, ``translation``); ``--transport torch`` runs lumigrad's
primal passes on the PyTorch transport instead of the fused Warp kernel (``lumigrad.integrators.fused_paths``),
for a before / after comparison; ``--light-sampling`` times the forward row once per area-light sampling
strategy (``PathIntegrator(light_sampling=...)``, alternating them repeat by repeat); ``--clock cpu`` times
lumigrad's rows in process CPU time (Mitsuba's stay wall-clock).

Prints a markdown table: median of ``--repeats`` runs after a warm-up, peak memory of one run (CPU: growth of
the peak RSS; CUDA: of the allocator), then the gradients' values (one run each: Monte Carlo estimates).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call
from lumigrad.integrators.fused_paths import TRANSPORT_ENV

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def cornell_box(albedo: torch.Tensor, device=None, lamp_y=None) -> lg.Scene:
    """A unit box open towards -z, the camera's side; ``albedo`` is the back wall's; ``lamp_y`` (a 0-dim tensor,
    default 0.99) the lamp's height."""
    def lambert(rgb):  # Mitsuba's diffuse: no specular coat (KHR_materials_specular's weight 0)
        rgb = torch.as_tensor(rgb, dtype=torch.float32, device=device)
        return lg.shading.Material(base_color_factor=torch.cat([rgb, torch.ones(1, device=device)]),
                                   metallic_factor=0.0, roughness_factor=1.0, specular_factor=0.0)

    walls = {
        "floor": ([[-1, -1, -1], [-1, -1, 1], [1, -1, 1], [1, -1, -1]], (0.7, 0.7, 0.7)),
        "ceiling": ([[-1, 1, -1], [1, 1, -1], [1, 1, 1], [-1, 1, 1]], (0.7, 0.7, 0.7)),
        "back": ([[-1, -1, 1], [-1, 1, 1], [1, 1, 1], [1, -1, 1]], albedo),
        "left": ([[-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [-1, -1, 1]], (0.6, 0.1, 0.1)),
        "right": ([[1, -1, -1], [1, -1, 1], [1, 1, 1], [1, 1, -1]], (0.1, 0.6, 0.1)),
    }
    scene = lg.Scene()
    for name, (verts, rgb) in walls.items():
        scene.add_mesh(name, lg.SceneMesh(torch.tensor(verts, dtype=torch.float32, device=device),
                                          QUAD.to(device), lambert(rgb), double_sided=True))
    lamp = torch.tensor([[-0.25, 0.0, -0.25], [0.25, 0.0, -0.25], [0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
                        device=device)
    y = torch.tensor(0.99, device=device) if lamp_y is None else lamp_y
    lamp = lamp + torch.stack([torch.zeros_like(y), y, torch.zeros_like(y)])
    scene.add_light("lamp", lg.AreaLight(lamp, QUAD.to(device), torch.tensor([15.0, 15.0, 15.0], device=device)))
    return scene


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 0.0, -3.4], [0.0, 0.0, 0.0], fov_y=0.7, width=size, height=size)


def _timed(fn, repeats: int, device: torch.device, clock: str = "wall"):
    """Median seconds of ``repeats`` calls after a warm-up (synchronised on CUDA), and the peak memory of one
    call in MiB (CUDA: allocator growth; CPU: peak RSS growth)."""
    seconds = median(time_call(fn, repeats, warmup=1, sync=device, clock=clock))
    mib, _ = peak_memory(fn, device)
    return seconds, mib


def _mitsuba_rows(size: int, spp: int, depths, repeats: int, guiding: str = "grid",
                  what=("forward", "reflectance", "translation")) -> tuple:
    """Mitsuba 3's rows of the table and its gradient values, or ``([], {}, reason)`` when it is unavailable."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        return [], {}, why
    peer.use_variant()
    mi, dr = peer._load()
    name = f"Mitsuba {mi.__version__}"
    rows, grads = [], {}
    cam = camera(size)
    key_albedo, key_lamp = "back.bsdf.brdf_0.reflectance.value", "lamp.vertex_positions"

    def timed(fn):
        times = peer._timed(fn, repeats)
        _, grow, _ = peer.peak_rss_growth(fn)
        return median(times), grow / 2**20

    for depth in depths:
        settings = {"max_depth": depth, "rr_depth": depth}
        box = cornell_box(torch.tensor([0.7, 0.7, 0.7]))
        scene = mi.load_dict(peer.scene_dict(box, cam, integrator={"type": "path", **settings}))
        if "forward" in what:
            s, mib = timed(lambda: peer._sync(mi.render(scene, spp=spp, seed=0)))
            rows.append((name, "forward (`path`)", depth, s, mib))
        if "reflectance" not in what and "translation" not in what:
            continue

        scene = mi.load_dict(peer.scene_dict(box, cam, integrator={"type": "prb", **settings}))
        params = mi.traverse(scene)

        def reflectance():
            dr.enable_grad(params[key_albedo])
            params.update()
            dr.backward(dr.mean(mi.render(scene, params, spp=spp, seed=0), axis=None))
            grad = dr.grad(params[key_albedo])
            peer._sync(grad)
            dr.clear_grad(params[key_albedo])
            return np.array(grad, np.float64).ravel()

        if "reflectance" in what:
            s, mib = timed(reflectance)
            rows.append((name, "forward + reflectance gradient (`prb`)", depth, s, mib))
            grads[("reflectance", depth)] = reflectance()
        if "translation" not in what:
            continue

        # Guiding of the indirect visibility term (here: the lamp's edges seen from the lit surfaces, as Mitsuba's
        # light samples are detached). Measured at depth 2 against finite differences of Mitsuba's own `path`
        # (0.173 at 32^2, 0.178 at 256^2): "octree" (Mitsuba's default) 0.182 at 256^2 but 57 s a call there
        # (17 s to 88 s and 2 GiB even at 32^2); "grid" 0.186 at 32^2 but 0.13 at 256^2; "none" -0.05 at 32^2.
        # sample_border: the lamp's silhouette may leave the film.
        d = peer.scene_dict(box, cam, integrator={"type": "prb_projective", "guiding": guiding, **settings})
        d["sensor"]["film"]["sample_border"] = True
        scene = mi.load_dict(d)
        params = mi.traverse(scene)
        lamp = dr.unravel(mi.Point3f, params[key_lamp])

        def translation():
            t = mi.Float(0.0)
            dr.enable_grad(t)
            params[key_lamp] = dr.ravel(lamp + mi.Vector3f(0.0, t, 0.0))
            params.update()
            dr.backward(dr.mean(mi.render(scene, params, spp=spp, seed=0), axis=None))
            grad = dr.grad(t)
            peer._sync(grad)
            return float(grad[0])

        s, mib = timed(translation)
        rows.append((name, f"forward + translation gradient (`prb_projective`, {guiding} guiding)", depth, s, mib))
        grads[("translation", depth)] = translation()
    return rows, grads, why


def _forward_rows(scene, cam, settings, args, device):
    """``(median seconds, peak MiB, strategy)`` of the forward render per ``--light-sampling`` strategy, the
    strategies alternating call by call (one warm-up each) so that machine load falls on all alike."""
    calls = {}
    for strategy in args.light_sampling:
        extra = {} if strategy is None else {"light_sampling": strategy}

        def forward(extra=extra):
            with torch.no_grad():
                return lg.render(scene, cam, **settings, **extra)
        calls[strategy] = forward
    times = {k: [] for k in calls}
    for k, fn in calls.items():
        time_call(fn, 1, warmup=1, sync=device)  # warm-up
    for _ in range(args.repeats):
        for k, fn in calls.items():
            times[k] += time_call(fn, 1, warmup=0, sync=device, clock=args.clock)
    return [(median(times[k]), peak_memory(fn, device)[0], k) for k, fn in calls.items()]


def _texture_gradient(cam, settings, fused: bool, device):
    """Forward and backward of the mean pixel with the back wall's base colour a 512^2 texture (sRGB texels that
    require gradients; uv spanning the wall)."""
    texels = torch.rand(512, 512, 3, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    scene = cornell_box(torch.tensor([1.0, 1.0, 1.0], device=device), device)
    wall = scene.meshes["back"]
    wall.material.base_color_texture = texels
    wall.uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], device=device)
    wall.uv_faces = wall.faces
    lg.render(scene, cam, **settings, fused_adjoint=fused).rgb.mean().backward()
    return texels.grad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--depths", type=int, nargs="+", default=[2, 8, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-mitsuba", action="store_true", help="lumigrad's rows only")
    p.add_argument("--guiding", default="grid", choices=["grid", "octree", "none"],
                   help="prb_projective's guiding of indirect visibility (see _mitsuba_rows)")
    p.add_argument("--what", nargs="+", default=["forward", "reflectance", "translation"],
                   choices=["forward", "reflectance", "translation", "texture"],
                   help="which rows to time (texture: a 512^2 base colour texture on the back wall, its texels' "
                        "gradient; lumigrad only)")
    p.add_argument("--transport", default="fused", choices=["fused", "torch"],
                   help="lumigrad's primal passes: the fused Warp kernel where the scene allows (default) or the "
                        "PyTorch transport (LUMIGRAD_PATH_TRANSPORT=torch)")
    p.add_argument("--light-sampling", nargs="+", default=[None], choices=["solid_angle", "area", "auto"],
                   help="the forward row for each of these area-light sampling strategies (default: the "
                        "integrator's default)")
    p.add_argument("--replay", nargs="+", default=["fused"], choices=["fused", "torch"],
                   help="the reflectance row's backward pass: the fused kernel's replay (default; "
                        "PathIntegrator(fused_adjoint=True)) and/or the PyTorch replay")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="lumigrad's timings: wall or process CPU")
    args = p.parse_args()
    os.environ[TRANSPORT_ENV] = args.transport
    device = torch.device(args.device)
    cam = camera(args.size).to(device)
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{args.size}^2, {args.spp} spp | primal transport: {args.transport} | lumigrad clock: {args.clock}")
    print("| renderer | what | max_depth | median s | peak MiB |")
    print("|---|---|---|---|---|")
    grads = {}
    for depth in args.depths:
        albedo = torch.tensor([0.7, 0.7, 0.7], device=device)
        scene = cornell_box(albedo, device)
        settings = dict(integrator="path", spp=args.spp, max_depth=depth, rr_depth=depth)

        if "forward" in args.what:
            for s, mib, strategy in _forward_rows(scene, cam, settings, args, device):
                what = "forward" if strategy is None else f"forward (`light_sampling={strategy}`)"
                print(f"| lumigrad | {what} | {depth} | {s:.3f} | {mib:.0f} |")
        leaf = albedo.clone().requires_grad_(True)
        scene = cornell_box(leaf, device)

        def gradient(fused=True):
            leaf.grad = None
            lg.render(scene, cam, **settings, fused_adjoint=fused).rgb.mean().backward()
            return leaf.grad.double().cpu().numpy()

        if "reflectance" in args.what:
            for replay in args.replay:
                fused = replay == "fused"
                s, mib = _timed(lambda: gradient(fused), args.repeats, device, args.clock)
                label = "forward + reflectance gradient" + ("" if fused else " (PyTorch replay)")
                print(f"| lumigrad | {label} | {depth} | {s:.3f} | {mib:.0f} |")
                grads[("lumigrad" if fused else "lumigrad (PyTorch replay)", "reflectance", depth)] = gradient(fused)
        if "texture" in args.what:
            for replay in args.replay:
                s, mib = _timed(lambda: _texture_gradient(cam, settings, replay == "fused", device), args.repeats,
                                device, args.clock)
                label = "forward + 512^2 texture gradient" + ("" if replay == "fused" else " (PyTorch replay)")
                print(f"| lumigrad | {label} | {depth} | {s:.3f} | {mib:.0f} |")
        if "translation" not in args.what:
            continue
        lamp_y = torch.tensor(0.99, device=device, requires_grad=True)
        scene = cornell_box(albedo, device, lamp_y)

        def translation():
            lamp_y.grad = None
            lg.render(scene, cam, **settings).rgb.mean().backward()
            return float(lamp_y.grad)

        s, mib = _timed(translation, args.repeats, device, args.clock)
        print(f"| lumigrad | forward + translation gradient (edge sampling) | {depth} | {s:.3f} | "
              f"{mib:.0f} |")
        grads[("lumigrad", "translation", depth)] = translation()
    if not args.no_mitsuba:
        rows, theirs, why = _mitsuba_rows(args.size, args.spp, args.depths, args.repeats, args.guiding, args.what)
        for name, what, depth, s, mib in rows:
            print(f"| {name} (llvm_ad_rgb, CPU) | {what} | {depth} | {s:.3f} | {mib:.0f} |")
        grads.update({(rows[0][0] if rows else "Mitsuba",) + k: v for k, v in theirs.items()})
        print(f"\nMitsuba: {why}")
    print("\n| renderer | max_depth | d mean / d back albedo (R, G, B) | d mean / d lamp height |")
    print("|---|---|---|---|")
    for who in dict.fromkeys(k[0] for k in grads):
        for depth in args.depths:
            refl, trans = grads.get((who, "reflectance", depth)), grads.get((who, "translation", depth))
            refl = "-" if refl is None else ", ".join(f"{g:.4f}" for g in refl)
            print(f"| {who} | {depth} | {refl} | {'-' if trans is None else f'{trans:.4f}'} |")

if __name__ == "__main__":
    main()
