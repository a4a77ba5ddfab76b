"""Path tracing through alpha: leaf cards (glTF ``"MASK"`` / ``"BLEND"``) over a floor, against the same cards opaque
and against Mitsuba 3's ``mask`` BSDF.

Scene: ``--leaves`` double-sided quads (default 120) scattered and tilted in a box above a grey floor, each carrying
a 64^2 RGBA leaf texture (an ellipse of alpha 1 with a notch, alpha 0 around it: about 60 % of the card cut out),
lit by a low sun (directional) and a constant sky, seen from above at an angle. Rows, each the median of
``--repeats`` after a warm-up, with the peak memory of one call and the mean pixel:

* lumigrad forward on the fused kernel with the cards ``"OPAQUE"`` (no cut-outs: the cost of the queries' table
  where it is off), ``"MASK"`` (cut out where alpha < 0.5) and ``"BLEND"`` (each card's alpha halved: present with
  probability 0.5 inside the leaf);
* lumigrad forward + the gradient of the mean pixel w.r.t. the floor's base colour with ``"MASK"`` cards (the fused
  replay);
* Mitsuba 3 ``path`` forward with the opaque cards and with the cards in a ``mask`` BSDF of the same alpha
  (``llvm_ad_rgb``; ``--no-mitsuba`` skips it). Mitsuba's shadow rays do not read a ``mask``'s opacity (its cards
  cast full square shadows), so its masked image is darker than lumigrad's; the row times the same rays.

Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, peak_memory, time_call

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])
CARD_UV = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def leaf_texture(size: int = 64) -> torch.Tensor:
    """``[size, size, 4]`` sRGB leaf: green, alpha 1 inside an ellipse with a notch at its tip, 0 elsewhere (values
    k / 255, so that Mitsuba's 8-bit bitmap holds them exactly)."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    v, u = torch.meshgrid(c, c, indexing="ij")
    inside = ((u - 0.5) / 0.42) ** 2 + ((v - 0.5) / 0.3) ** 2 < 1.0
    notch = ((u - 0.9) ** 2 + (v - 0.5) ** 2) < 0.01
    alpha = (inside & ~notch).double()
    rgb = torch.stack([0.2 + 0.2 * u, 0.5 + 0.3 * v, 0.15 + 0.0 * u], -1)
    return (torch.round(torch.cat([rgb, alpha[..., None]], -1) * 255) / 255).float()


def leaf_scene(mode: str = "MASK", leaves: int = 120, floor_albedo=None, seed: int = 1) -> lg.Scene:
    g = torch.Generator().manual_seed(seed)
    tex = leaf_texture()
    alpha = 0.5 if mode == "BLEND" else 1.0
    scene = lg.Scene()
    floor = torch.tensor([[-3.0, 0.0, -3.0], [3.0, 0.0, -3.0], [3.0, 0.0, 3.0], [-3.0, 0.0, 3.0]])
    base = torch.tensor([0.6, 0.6, 0.55]) if floor_albedo is None else floor_albedo
    scene.add_mesh("floor", lg.SceneMesh(floor, QUAD[:, [0, 2, 1]], lg.Material(
        base_color_factor=torch.cat([base, torch.ones(1)]), metallic_factor=0.0, roughness_factor=1.0,
        specular_factor=0.0)))
    card = lg.Material(base_color_factor=torch.tensor([1.0, 1.0, 1.0, alpha]), base_color_texture=tex,
                       metallic_factor=0.0, roughness_factor=1.0, specular_factor=0.0, alpha_mode=mode)
    corners = torch.tensor([[-0.25, 0.0, -0.15], [0.25, 0.0, -0.15], [0.25, 0.0, 0.15], [-0.25, 0.0, 0.15]])
    for k in range(leaves):
        a, b = (torch.rand(2, generator=g) * 2 - 1) * math.pi * torch.tensor([1.0, 0.35])
        ca, sa, cb, sb = math.cos(a), math.sin(a), math.cos(b), math.sin(b)
        yaw = torch.tensor([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])
        tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, cb, -sb], [0.0, sb, cb]])
        centre = (torch.rand(3, generator=g) * 2 - 1) * torch.tensor([1.2, 0.5, 1.2]) + torch.tensor([0.0, 0.9, 0.0])
        verts = corners @ (yaw @ tilt).T + centre
        scene.add_mesh(f"leaf{k:03d}", lg.SceneMesh(verts, QUAD, card, uv=CARD_UV, uv_faces=QUAD, double_sided=True))
    scene.add_light("sun", lg.DirectionalLight(torch.tensor([-0.5, -1.0, 0.3]), 2.5))
    scene.add_light("sky", lg.EnvironmentLight(torch.full((8, 16, 3), 0.4)))
    return scene


def camera(size: int) -> lg.Camera:
    return lg.Camera.look_at([0.0, 3.2, -3.2], [0.0, 0.5, 0.0], fov_y=0.8, width=size, height=size)


def _forward_row(scene, cam, settings, repeats, what):
    def run():
        with torch.no_grad():
            return lg.render(scene, cam, **settings).rgb

    image = run()
    return dict(renderer="lumigrad", what=what, seconds=median(time_call(run, repeats, warmup=0)),
                mib=peak_memory(run)[0], mean=float(image.mean()))


def _mitsuba_rows(cam, settings, leaves, spp, repeats):
    import _mitsuba_peer as peer

    ok, why = peer.available()
    if not ok:
        return [], why
    peer.use_variant()
    mi, _ = peer._load()
    scene = leaf_scene("OPAQUE", leaves)
    texels = (leaf_texture().numpy() * 255.0).round().astype("uint8")
    leaf = {"type": "twosided", "bsdf": {"type": "diffuse", "reflectance": {
        "type": "bitmap", "bitmap": mi.Bitmap(texels[..., :3].copy()), "raw": False, "filter_type": "bilinear"}}}
    opacity = {"type": "bitmap", "bitmap": mi.Bitmap(texels[..., 3:] .astype("float32") / 255.0), "raw": True,
               "filter_type": "bilinear"}
    rows = []
    for masked in (False, True):
        d = peer.scene_dict(scene, cam, integrator={"type": "path", **settings})
        for name, mesh in scene.meshes.items():
            if name.startswith("leaf"):
                bsdf = {"type": "mask", "opacity": opacity, "bsdf": leaf} if masked else leaf
                d[name] = peer.mesh_object(name, mesh.world_verts().detach(), mesh.faces, uv=CARD_UV, uv_faces=QUAD,
                                           bsdf=bsdf)
        mscene = mi.load_dict(d)
        image = peer.render_numpy(mscene, spp)  # warm-up (JIT)
        seconds = median(peer._timed(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)), repeats))
        _, grow, _ = peer.peak_rss_growth(lambda: peer._sync(mi.render(mscene, spp=spp, seed=0)))
        rows.append(dict(renderer=f"Mitsuba {mi.__version__} (llvm_ad_rgb)",
                         what="forward, cards in a `mask` (opaque to its shadow rays)" if masked else
                         "forward, cards opaque", seconds=seconds, mib=grow / 2**20, mean=float(image.mean())))
    return rows, why


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--spp", type=int, default=16)
    p.add_argument("--max-depth", type=int, default=6)
    p.add_argument("--leaves", type=int, default=120)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-mitsuba", action="store_true", help="lumigrad's rows only")
    args = p.parse_args(argv)
    cam = camera(args.size)
    settings = dict(integrator="path", spp=args.spp, max_depth=args.max_depth)
    rows = [_forward_row(leaf_scene(mode, args.leaves), cam, settings, args.repeats, f"forward, cards {mode}")
            for mode in ("OPAQUE", "MASK", "BLEND")]
    albedo = torch.tensor([0.6, 0.6, 0.55], requires_grad=True)
    grad_scene = leaf_scene("MASK", args.leaves, floor_albedo=albedo)

    def gradient():
        albedo.grad = None
        lg.render(grad_scene, cam, **settings).rgb.mean().backward()
        return float(albedo.grad.sum())

    value = gradient()
    rows.append(dict(renderer="lumigrad", what=f"forward + floor colour gradient, cards MASK (sum of d mean / d "
                     f"albedo {value:.4f})", seconds=median(time_call(gradient, args.repeats, warmup=0)),
                     mib=peak_memory(gradient)[0], mean=value))
    why = "skipped (--no-mitsuba)"
    if not args.no_mitsuba:
        more, why = _mitsuba_rows(cam, {"max_depth": args.max_depth}, args.leaves, args.spp, args.repeats)
        rows += more
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
          f"{args.size}^2, {args.spp} spp, depth {args.max_depth}, {args.leaves} cards | Mitsuba: {why}")
    print("| renderer | what | median s | peak MiB | mean pixel (or gradient) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['renderer']} | {r['what']} | {r['seconds']:.3f} | {r['mib']:.0f} | {r['mean']:.5f} |")
    return rows


if __name__ == "__main__":
    main()
