"""``lumigrad render``: a scene file (glTF, OBJ, PLY) and a camera -> an image file."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ._scene_setup import (add_integrator_arguments, add_scene_arguments, add_time_arguments, animation_time,
                           apply_pixel_filter, integrator_options, load_scene_and_camera)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "render",
        help="render a scene file (glTF, OBJ, PLY, Mitsuba 3 XML) to an image",
        description=(
            "Render SCENE (.gltf, .glb, .obj, .ply, .xml) with lumigrad's rasterizer and deferred shading (or another "
            "registered integrator, --integrator) and write "
            "OUT: .png / .jpg (the default look: ACES tone mapping and sRGB, as lumigrad.preview), .exr (linear "
            "radiance with coverage as premultiplied alpha), .hdr (linear radiance) or .npy (linear RGBA float32). "
            "--texture IMAGE gives an OBJ / PLY mesh with texture coordinates its base colour. The camera is one of the "
            "file's cameras (--camera NAME) or, by default, one framing the whole scene from --azimuth and "
            "--elevation. A Mitsuba 3 file renders as Mitsuba would: its first sensor at its film's size and filter, "
            "its integrator (path or direct) with its max_depth, rr_depth and hide_emitters, its sampler's "
            "sample_count; options override them. Without lights in the file, a soft sky and a key light are added; "
            "--env adds an environment map (.hdr or .exr) that also lights the scene. --time T poses skinned and "
            "morphed meshes at T "
            "seconds of the file's first animation (or --animation NAME); the framing camera is fitted to the "
            "rest pose, so renders at different times share it."
        ),
    )
    add_scene_arguments(p, default_size=512)
    p.add_argument("-o", "--out", type=Path, default=Path("render.png"), help="output image (default: render.png)")
    p.add_argument("--exposure", type=float, default=0.0, help="exposure in stops (default: 0)")
    add_integrator_arguments(p, default_mc_spp=64)
    p.add_argument("--seed", type=int, default=0, help="seed of a Monte Carlo integrator's samples (default: 0)")
    add_time_arguments(p)
    p.set_defaults(run=run, file_sensor=True)


def run(args) -> int:
    import torch

    import lumigrad as lg
    from ..integrators import integrator_settings

    if not math.isfinite(args.exposure):
        raise ValueError(f"--exposure must be a finite number of stops; got {args.exposure:g}")
    scene, camera = load_scene_and_camera(args)
    when = animation_time(args, scene)
    if when is not None:
        scene = scene.at(*when)
    # linear; PNG / JPEG get the default look below
    scene.film = lg.Film(exposure=torch.tensor(args.exposure, device=camera.device),
                         pixel_filter=scene.film.pixel_filter)
    apply_pixel_filter(args, scene)
    settings = {}
    known = integrator_settings(args.integrator)
    if "background" in known:
        settings["background"] = "environment" if args.env else 0.0
    spp, more = integrator_options(args)
    settings.update(more)
    with torch.no_grad():
        out = lg.render(scene, camera, integrator=args.integrator, spp=spp, seed=args.seed, **settings)
    drawn = scene.meshes or any(isinstance(light, lg.AreaLight) for light in scene.lights.values())
    if drawn and float(out.alpha.max()) == 0.0:  # (a scene of nothing but a sky has no geometry to see)
        print(f"lumigrad render: warning: no pixel of the {camera.width} x {camera.height} image sees the scene's "
              "geometry (a camera looking away, or geometry outside its near/far range); try the framing camera "
              "(no --camera) or other --azimuth / --elevation", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    suffix = args.out.suffix.lower()
    if suffix in (".exr", ".npy"):
        # Linear RGBA with premultiplied (associated) alpha, as EXR stores it: colour is already blended over
        # black by coverage. Over an environment background every pixel is opaque.
        alpha = torch.ones_like(out.alpha) if args.env else out.alpha
        rgba = torch.cat([out.rgb, alpha], dim=-1)
        if suffix == ".npy":
            import numpy as np

            np.save(args.out, rgba.detach().cpu().float().numpy())
        else:
            lg.io.save(args.out, rgba.cpu())
    elif suffix == ".hdr":  # no alpha channel
        lg.io.save(args.out, out.rgb.cpu())
    else:  # PNG / JPEG: the default look of the colour over the background
        lg.io.preview(out.rgb.cpu(), args.out)
    print(f"wrote {args.out} ({camera.width} x {camera.height}, {len(scene.meshes)} meshes, "
          f"{len(scene.lights)} lights)")
    return 0
