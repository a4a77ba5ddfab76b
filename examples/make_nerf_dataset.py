"""Make a NeRF training set: render a real asset from ``--views`` directions into a ``transforms.json`` folder.

No licensed NeRF dataset ships with lumigrad, so this renders one with lumigrad's own rasterizer: Khronos'
WaterBottle glTF (every PBR texture) from ``../shared/data`` lit by the studio HDR environment (or, when that
folder is absent, the embedded textured Spot cow under a synthetic sky), with Reinhard tone mapping and sRGB
encoding, like photographs. Cameras sit on a sphere around the object's bounding box
(a Fibonacci spiral over the band of elevations ``--min-elevation`` .. ``--max-elevation`` degrees above the
horizontal, world +y up, all looking at the box centre), so views are spread evenly over directions.

Written into ``--out``:

* ``images/r_000.png`` ...: RGBA PNGs, 8-bit, alpha = the rasterizer's antialiased coverage, **0 where the
  object is absent** (transparent background; colour there is 0), colour with *straight* (not premultiplied)
  alpha, as NeRF's Blender scenes store it (:func:`straight_alpha`);
* ``transforms.json``: every view (:func:`lumigrad.io.write_nerf_transforms`: nerfstudio keys ``fl_x, fl_y, cx,
  cy, w, h`` plus ``camera_angle_x``, OpenGL camera-to-world ``transform_matrix``), plus two extra top-level
  keys that :func:`lumigrad.io.read_nerf_transforms` ignores: ``"holdout_every": 8`` (views ``0, 8, 16, ...``
  are held out, the convention of ``[data] holdout_every = 8``) and ``"aabb"``, the object's world-space
  bounding box ``[[x0, y0, z0], [x1, y1, z1]]``;
* ``transforms_train.json`` / ``transforms_test.json``: the same views split by that rule, in the layout of the
  original NeRF Blender scenes (each readable on its own by any NeRF loader).

    python examples/make_nerf_dataset.py --views 80 --size 200 --out waterbottle_nerf
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

import lumigrad as lg

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
BOTTLE = DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf"
STUDIO = DATA / "envmap-studio-small-03" / "studio_small_03_1k.hdr"
HOLDOUT_EVERY = 8


def load_scene(path: Path) -> lg.Scene:
    """The asset as a scene: the glTF at ``path``, or the embedded Spot cow for ``"spot"`` or when it is absent."""
    if str(path) != "spot" and path.exists():
        return lg.io.read_gltf(path)
    spot = lg.data.load_spot()
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh.from_mesh(spot, lg.shading.Material(
        base_color_texture=spot.texture, metallic_roughness_texture=torch.ones_like(spot.texture))))
    return scene


def environment(size=(32, 64)) -> torch.Tensor:
    """The studio HDR (mean 1), or a sky gradient when ``../shared/data`` is absent."""
    if STUDIO.exists():
        env = lg.io.read_environment(STUDIO, size=size).texels
        return env / env.mean()
    h, w = size
    y = torch.linspace(1, -1, h)[:, None, None]
    return (torch.tensor([0.5, 0.7, 1.0]) * (0.7 + 0.3 * y) + torch.zeros(h, w, 3)).clamp_min(0.05)


def straight_alpha(premultiplied: torch.Tensor) -> torch.Tensor:
    """Linear radiance composited over black ``[..., H, W, 4]`` -> film-encoded colour with *straight* alpha.

    The renderer's antialiased edge pixels hold ``alpha * L``; NeRF loaders composite ``rgb * alpha + bg * (1 -
    alpha)`` with straight (un-premultiplied) colour, as Blender writes it. So ``L = rgb / alpha`` where ``alpha >
    0``, then Reinhard tone mapping and sRGB encoding; colour is 0 where ``alpha = 0``.
    """
    alpha = premultiplied[..., 3:]
    radiance = torch.where(alpha > 0, premultiplied[..., :3] / alpha.clamp_min(1e-8), torch.zeros_like(alpha))
    rgb = lg.shading.form_image(radiance, tone="reinhard", encode="srgb")
    return torch.cat([torch.where(alpha > 0, rgb, torch.zeros_like(rgb)), alpha], -1)


def sphere_cameras(centre: torch.Tensor, radius: float, views: int, size: int, min_elevation: float,
                   max_elevation: float, fov_y: float) -> lg.Camera:
    """``views`` cameras at distance ``radius`` from ``centre`` on a Fibonacci spiral between two elevations
    (degrees), looking at ``centre`` with +y up: equal solid angle per view."""
    lo, hi = math.sin(math.radians(min_elevation)), math.sin(math.radians(max_elevation))
    k = torch.arange(views, dtype=torch.float64)
    height = hi - (k + 0.5) / views * (hi - lo)  # uniform in sin(elevation): uniform in area
    azimuth = k * math.pi * (3 - math.sqrt(5))  # golden angle
    ring = torch.sqrt(1 - height ** 2)
    direction = torch.stack([ring * torch.sin(azimuth), height, ring * torch.cos(azimuth)], -1)
    eye = (centre.double() + radius * direction).float()
    return lg.Camera.look_at(eye, centre.expand_as(eye), torch.tensor([0.0, 1.0, 0.0]), fov_y=fov_y, width=size,
                             height=size)


def make_dataset(out: Path, views: int, size: int, asset: Path = BOTTLE, min_elevation: float = -30.0,
                 max_elevation: float = 75.0, fov_y: float = 0.6, batch: int = 8) -> dict:
    """Render the views and write the folder; returns what was written (cameras, rendered RGBA, file names)."""
    if views < 1 or size < 1:
        raise ValueError(f"views and size must be positive; got views={views}, size={size}")
    scene = load_scene(asset)
    scene.add_light("env", lg.EnvironmentLight(environment(), prefilter_size=(16, 32), visible=False))
    scene.film = lg.Film()  # linear: the film is applied below, after un-premultiplying the edges
    verts = torch.cat([m.world_verts() for m in scene.meshes.values()]).detach()
    lo, hi = verts.min(0).values, verts.max(0).values
    centre = (lo + hi) / 2
    radius = 0.5 * float((hi - lo).norm()) / math.sin(0.5 * fov_y) * 1.05  # the bounding sphere fills the view
    cams = sphere_cameras(centre, radius, views, size, min_elevation, max_elevation, fov_y)
    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    rgba, files = [], []
    with torch.no_grad():
        for a in range(0, views, batch):
            rgba.append(lg.render(scene, cams[a:a + batch], background=0.0).rgba)
    rgba = straight_alpha(torch.cat(rgba))
    cameras = [cams[i] for i in range(views)]
    for i in range(views):
        files.append(out / "images" / f"r_{i:03d}.png")
        lg.io.write_image(files[-1], rgba[i])
    test = [i for i in range(views) if i % HOLDOUT_EVERY == 0]
    train = [i for i in range(views) if i % HOLDOUT_EVERY != 0]
    lg.io.write_nerf_transforms(out / "transforms.json", cameras, files)
    meta = json.loads((out / "transforms.json").read_text())
    meta = {"holdout_every": HOLDOUT_EVERY, "aabb": [lo.tolist(), hi.tolist()], **meta}
    (out / "transforms.json").write_text(json.dumps(meta, indent=2))
    for name, subset in (("transforms_train.json", train), ("transforms_test.json", test)):
        if subset:
            lg.io.write_nerf_transforms(out / name, [cameras[i] for i in subset], [files[i] for i in subset])
    return {"cameras": cams, "rgba": rgba, "files": files, "train": train, "test": test,
            "aabb": torch.stack([lo, hi])}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=80)
    parser.add_argument("--size", type=int, default=200, help="image width and height in pixels")
    parser.add_argument("--asset", type=Path, default=BOTTLE,
                        help="a glTF file (default: the WaterBottle), or 'spot' for the embedded Spot cow")
    parser.add_argument("--min-elevation", type=float, default=-30.0, help="degrees above the horizontal")
    parser.add_argument("--max-elevation", type=float, default=75.0, help="degrees above the horizontal")
    parser.add_argument("--out", type=Path, default=Path("nerf_data"))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = make_dataset(args.out, args.views, args.size, args.asset, args.min_elevation, args.max_elevation)
    name = args.asset.name if str(args.asset) != "spot" and args.asset.exists() else "Spot (embedded)"
    coverage = float(result["rgba"][..., 3].mean())
    print(f"rendered {name}: {args.views} views at {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s "
          f"(mean alpha {coverage:.3f}); wrote {args.out}/transforms.json ({len(result['train'])} train, "
          f"{len(result['test'])} held out: every {HOLDOUT_EVERY}th view), transforms_train.json, "
          f"transforms_test.json, images/")
    return result


if __name__ == "__main__":
    main()
