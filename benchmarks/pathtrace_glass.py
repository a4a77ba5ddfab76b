"""Path tracing glass: a rough glass ball under a sky, on the fused kernel, on the PyTorch transport and in Mitsuba 3.

The scene of ``tests/integrators/test_path_vs_mitsuba.py``'s glass case: an icosphere (level 3) of
``KHR_materials_transmission`` glass (transmission 1, ior 1.5, roughness 0.3: Mitsuba's ``roughdielectric``, GGX,
alpha 0.09) lit by a smooth procedural sky (blue to white, a dark ground, a broad warm blob), seen from the front.
Rows, each the median of ``--repeats`` after a warm-up, with the peak memory of one call and the mean pixel:

* lumigrad ``forward`` on the fused Warp kernel (``use_fused_kernel=True``, the default) and on the PyTorch
  transport (``use_fused_kernel=False``), alternated call by call;
* lumigrad ``forward + IOR gradient`` (the gradient of the mean pixel w.r.t. the glass's ior: the fused primal, then
  the PyTorch replay, as for every gradient of a transmitting part's own values);
* lumigrad ``forward + sky texels' gradient`` (the light seen through the glass) on the fused replay, which
  carries the glass through, and on the PyTorch replay (``fused_adjoint=False``): the same sums;
* Mitsuba 3 ``path`` forward (``llvm_ad_rgb`` on the CPU; ``bash benchmarks/setup_mitsuba.sh``; ``--no-mitsuba``
  skips it), at the same spp and depth, timed after ``dr.eval`` / ``dr.sync_thread``.

Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call
from lumigrad.shading import Material

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _transports import forward_by_transport  # noqa: E402


def sky(H: int = 16, W: int = 32) -> torch.Tensor:
    """A smooth, asymmetric environment map ``[H, W, 3]``: a blue-to-white sky, a dark ground, a broad warm blob (a
    broad one: a small bright sun would make rough reflections too noisy to compare with Mitsuba in a few seconds;
    ``tests/integrators/test_path_vs_mitsuba.py`` lights its glass and metal balls with it)."""
    v = (torch.arange(H, dtype=torch.float64) + 0.5) / H
    u = (torch.arange(W, dtype=torch.float64) + 0.5) / W
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    upper = torch.stack([0.3 + 0.5 * vv, 0.5 + 0.4 * vv, 1.0 - 0.2 * vv], -1) * (vv < 0.5)[..., None]
    ground = torch.tensor([0.25, 0.2, 0.15], dtype=torch.float64) * (vv >= 0.5)[..., None]
    blob = torch.exp(-(((uu - 0.3) / 0.1) ** 2 + ((vv - 0.3) / 0.12) ** 2))[..., None] \
        * torch.tensor([3.0, 2.4, 1.6], dtype=torch.float64)
    return (upper + ground + blob).float()


def glass_scene(ior=1.5) -> lg.Scene:
    verts, faces = lg.geometry.icosphere(3)
    glass = Material(base_color_factor=torch.ones(4), metallic_factor=0.0, roughness_factor=0.3, ior=ior,
                     transmission_factor=1.0)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces, glass))
    scene.add_light("sky", lg.EnvironmentLight(sky()))
    return scene


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 0.4, -3.0], [0.0, 0.0, 0.0], fov_y=0.6, width=size, height=size)


def _mitsuba_row(scene, cam, settings, spp, repeats):
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        return None, why
    peer.use_variant()
    mi, _ = peer._load()
    mscene = mi.load_dict(peer.scene_dict(scene, cam, integrator={"type": "path", **settings}))
    image = peer.render_numpy(mscene, spp)  # warm-up (JIT)
    seconds = median(peer._timed(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)), repeats))
    _, grow, _ = peer.peak_rss_growth(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)))
    return dict(renderer=f"Mitsuba {mi.__version__} (llvm_ad_rgb)", what="forward (`path`, `roughdielectric`)",
                seconds=seconds, mib=grow / 2**20, mean=float(image.mean())), why


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--max-depth", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-mitsuba", action="store_true", help="lumigrad's rows only")
    args = p.parse_args(argv)
    scene, cam = glass_scene(), camera(args.size)
    settings = dict(integrator="path", spp=args.spp, max_depth=args.max_depth)
    rows = []
    for k, r in forward_by_transport(scene, cam, settings, args.repeats).items():
        rows.append(dict(renderer="lumigrad", what="forward, " + ("fused kernel" if k else "PyTorch transport"),
                         seconds=r["seconds"], mib=r["mib"], mean=float(r["image"].mean())))
    ior = torch.tensor(1.5, requires_grad=True)
    grad_scene = glass_scene(ior)

    def gradient():
        ior.grad = None
        lg.render(grad_scene, cam, **settings).rgb.mean().backward()
        return float(ior.grad)

    value = gradient()
    rows.append(dict(renderer="lumigrad", what=f"forward + IOR gradient (fused primal, PyTorch replay; d mean / d ior "
                     f"{value:.4f})", seconds=median(time_call(gradient, args.repeats, warmup=0)),
                     mib=peak_memory(gradient)[0], mean=value))
    sky_scene = glass_scene()
    sky = sky_scene.lights["sky"]
    sky.texels = sky.texels.clone().requires_grad_(True)

    def sky_gradient(fused: bool):
        sky.texels.grad = None
        lg.render(sky_scene, cam, fused_adjoint=fused, **settings).rgb.mean().backward()
        return float(sky.texels.grad.sum())

    for fused in (True, False):
        value = sky_gradient(fused)
        how = "fused replay, the glass carried through" if fused else "PyTorch replay"
        rows.append(dict(renderer="lumigrad", what=f"forward + sky texels' gradient ({how}; sum {value:.4f})",
                         seconds=median(time_call(lambda f=fused: sky_gradient(f), args.repeats, warmup=0)),
                         mib=peak_memory(lambda f=fused: sky_gradient(f))[0], mean=value))
    why = "skipped (--no-mitsuba)"
    if not args.no_mitsuba:
        row, why = _mitsuba_row(scene, cam, {"max_depth": args.max_depth}, args.spp, args.repeats)
        if row is not None:
            rows.append(row)
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{args.size}^2, {args.spp} spp, depth {args.max_depth} | Mitsuba: {why}")
    print("| renderer | what | median s | peak MiB | mean pixel (or gradient) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['renderer']} | {r['what']} | {r['seconds']:.3f} | {r['mib']:.0f} | {r['mean']:.5f} |")
    return rows


if __name__ == "__main__":
    main()
