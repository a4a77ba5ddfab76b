"""Check that two lumigrad versions render bit for bit the same images, buffers and gradients.

Run it once with each version importable (e.g. ``PYTHONPATH=old/src`` and ``PYTHONPATH=new/src``), saving the
results, then compare the two files::

    PYTHONPATH=/tmp/old/src python benchmarks/render_identity.py save old.pt
    PYTHONPATH=src python benchmarks/render_identity.py save new.pt
    python benchmarks/render_identity.py compare old.pt new.pt

Cases: the WaterBottle (four textures, normal map) under the studio environment and a point light, two
views, with gradients of the material factors, base-colour texels and environment texels; the same with
an area light; BoxTextured through a distorted lens (``lens_samples=2``); a double-sided icosphere seen by
an orthographic camera; Spot, textured, with gradients of its vertices; and ``render_geometry`` (depth,
normals, coverage) with and without antialiasing, batched, on a double-sided scene. With a version that has
integrators (``lumigrad.integrators``) it also saves the colour and hard geometry of one combined call
(``aovs=("depth", "normal", "mask")``, ``use_aov_antialias=False``: what a fit with depth terms renders),
compared against the older version's separate ``render`` and ``render_geometry(use_antialias=False)``.
Prints one line per tensor and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import lumigrad as lg

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BOTTLE = DATA / "gltf-water-bottle" / "glTF" / "WaterBottle.gltf"
BOX = DATA / "gltf-box-textured" / "glTF-Binary" / "BoxTextured.glb"
STUDIO = DATA / "envmap-studio-small-03" / "studio_small_03_1k.hdr"


#: Older versions have ``render_geometry`` only under its old name ``lumigrad.scene.render_geometry``.
render_geometry = getattr(lg, "render_geometry", None) or lg.scene.render_geometry


def rgba_of(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.rgba


def framing(scene, size, views=1, **kw):
    verts = torch.cat([m.world_verts() for m in scene.meshes.values()]).detach()
    lo, hi = verts.min(0).values, verts.max(0).values
    centre, extent = (lo + hi) / 2, float((hi - lo).norm())
    eyes = torch.stack([centre + extent * torch.tensor([0.3 + 0.5 * k, 0.2, -1.2]) for k in range(views)])
    return lg.Camera.look_at(eyes.squeeze(0), centre.expand_as(eyes).squeeze(0), width=size, height=size,
                             fov_y=0.8, **kw), centre, extent


def bottle(area: bool):
    scene = lg.io.read_gltf(BOTTLE)
    cam, centre, extent = framing(scene, 72, views=2)
    scene.add_light("sky", lg.EnvironmentLight.from_file(STUDIO, size=(16, 32)))
    if area:
        s = 0.3 * extent
        lamp = centre + torch.tensor([[-s, extent, -s], [s, extent, -s], [s, extent, s], [-s, extent, s]])
        scene.add_light("lamp", lg.AreaLight(lamp, [[0, 1, 2], [0, 2, 3]], [20.0, 20.0, 20.0], samples_per_face=4))
    else:
        scene.add_light("key", lg.PointLight(centre + extent * torch.tensor([1.0, 1.0, -1.0]), 3 * extent ** 2))
    return scene, cam


def with_grads(results, key, scene, render, patterns):
    params = scene.trainable(*patterns)
    out = rgba_of(render())
    weights = torch.rand(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    results[key] = out.detach()
    for name, p in params.items():
        results[f"{key}/grad/{name}"] = torch.zeros(0) if p.grad is None else p.grad.detach().clone()
        p.requires_grad_(False)
        p.grad = None


def cases() -> dict:
    torch.manual_seed(0)
    results = {}
    for area in (False, True):
        scene, cam = bottle(area)
        mesh = next(iter(scene.meshes))
        with_grads(results, f"bottle_area={area}", scene, lambda: lg.render(scene, cam),
                   [f"meshes.{mesh}.material.*_factor", f"meshes.{mesh}.material.base_color_texture",
                    "lights.sky.texels"])
    box = lg.io.read_gltf(BOX)
    box.add_light("key", lg.DirectionalLight(torch.tensor([-0.3, -1.0, 0.5]), 2.0))
    cam, _, _ = framing(box, 48, distortion=torch.tensor([-0.2, 0.05, 0.001, -0.001, 0.0]))
    with_grads(results, "box_lens", box, lambda: lg.render(box, cam, background=0.2, lens_samples=2),
               ["meshes.*.verts"])
    verts, faces = lg.geometry.icosphere(2)
    ball = lg.Scene()
    ball.add_mesh("ball", lg.SceneMesh(verts, faces, lg.shading.Material(base_color_factor=[0.8, 0.3, 0.2, 1.0],
                                                                         roughness_factor=0.4),
                                       double_sided=True))
    ball.add_light("key", lg.PointLight([2.0, 2.0, -2.0], 8.0))
    w2c = lg.Camera.look_at([0.0, 0.5, -3.0], [0.0, 0.0, 0.0]).world_to_cam
    ortho = lg.Camera.orthographic(2.5, 40, 32, w2c)
    with_grads(results, "ball_ortho", ball, lambda: lg.render(ball, ortho, background=0.0), ["meshes.ball.*"])
    spot = lg.data.load_spot()
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh(spot.verts, spot.faces, lg.shading.Material(base_color_texture=spot.texture),
                                        uv=spot.uv, uv_faces=spot.uv_faces))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0]), 8.0))
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=64, height=64)
    with_grads(results, "spot", scene, lambda: lg.render(scene, cam), ["meshes.spot.verts"])
    for name, value in render_geometry(scene, cam, use_antialias=False).items():
        results[f"spot_geometry/{name}"] = value.detach()
    if hasattr(lg, "integrators"):  # textured: the combined call rasterizes with barycentric derivatives
        with torch.no_grad():
            out = lg.render(scene, cam, aovs=("depth", "normal", "mask"), use_aov_antialias=False)
        results["combined/spot"] = out.rgba
        for name, value in out.aovs.items():
            results[f"combined/spot_geometry/{name}"] = value
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0.3, -3.0], [3.0, 0.2, 0.5]]), torch.zeros(2, 3), width=40,
                             height=36)
    for aa in (True, False):
        g = render_geometry(ball, cams, use_antialias=aa)
        for name, value in g.items():
            results[f"geometry_aa={aa}/{name}"] = value
    with torch.no_grad():
        results["ball_views"] = rgba_of(lg.render(ball, cams, background=0.0))
    if hasattr(lg, "integrators"):
        with torch.no_grad():
            out = lg.render(ball, cams, background=0.0, aovs=("depth", "normal", "mask"), use_aov_antialias=False)
        results["combined/ball_views"] = out.rgba
        for name, value in out.aovs.items():
            results[f"combined/geometry_aa=False/{name}"] = value
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save")
    s.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.command == "save":
        results = cases()
        torch.save(results, args.out)
        print(f"saved {len(results)} tensors to {args.out}")
        return 0
    old, new = torch.load(args.old), torch.load(args.new)
    bad = 0
    for key, value in new.items():
        ref_key = key[len("combined/"):] if key.startswith("combined/") else key
        if ref_key not in old:
            print(f"{key}: not in {args.old.name}")
            continue
        ref = old[ref_key]
        same = ref.shape == value.shape and ref.dtype == value.dtype and torch.equal(ref, value)
        diff = "" if same or ref.shape != value.shape else f" (max abs diff {float((ref - value).abs().max()):.3g})"
        print(f"{'identical' if same else 'DIFFERENT'}  {key}{diff}")
        bad += not same
    missing = [k for k in old if k not in new]
    for k in missing:
        print(f"{k}: missing from {args.new.name}")
    print(f"{len(new) - bad} identical, {bad} different, {len(missing)} missing")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
