"""Benchmark: the cost of rendering through lens distortion relative to the undistorted (pinhole) render.

Scene: the Spot cow (5856 triangles, 1024^2 texture) through ``benchmarks/raster.py``'s pipeline
``rasterize -> interpolate -> texture (trilinear) -> antialias`` and its framing camera. The lens camera adds
OpenCV distortion ``(k1, k2, p1, p2, k3) = (-0.2, 0.05, 0.001, -0.001, 0)`` and is rendered with
:func:`lumigrad.render_through_lens`: a pinhole cover render (``supersample`` 1) resampled per pixel.
Columns (median of ``--repeats`` after a warm-up; peak RSS growth in MiB on CPU):

* ``pinhole fwd`` / ``pinhole fwd+bwd``: the undistorted render; backward of the mean pixel w.r.t. the
  vertices and the texture;
* ``lens fwd`` / ``lens fwd+bwd fixed lens`` / ``lens fwd+bwd``: the same through the lens; the last also
  back-propagates to ``K`` and the distortion coefficients (calibration), the fixed-lens one does not (fits of
  geometry, pose or texture through a known lens, where the resampling grid comes from one fused kernel);
* ``warp fwd``: the resampling alone (undistortion kernel + bilinear reads) on a ready pinhole image;
* ``ratio``: lens over pinhole (``ratio fwd+bwd`` with the calibration backward).

No peer column: Mitsuba 3's perspective sensor has no lens-distortion model (nvdiffrast and PyTorch3D have
none either), which is why this capability exists.

    ./dev bench lens                   # 512^2 and 1024^2, 5 repeats
    ./dev bench lens --sizes 256 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raster as rb  # noqa: E402  (the raster benchmark's scene, camera, pipeline, timers)

import lumigrad as lg  # noqa: E402

COEFFS = (-0.2, 0.05, 0.001, -0.001, 0.0)


def lens_camera(cam: lg.Camera, K: torch.Tensor, coeffs: torch.Tensor) -> lg.Camera:
    return lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=cam.width, height=cam.height, distortion=coeffs)


def run(size: int, repeats: int) -> dict:
    scene = rb.make_scene("spot", quick=False)
    cam = rb.framing_camera(scene.verts, size)
    mipmaps = lg.build_mipmaps(scene.texture)
    coeffs0 = torch.tensor(COEFFS)
    lens = lens_camera(cam, cam.K, coeffs0)
    device = torch.device("cpu")

    def pinhole_fwd():
        with torch.no_grad():
            return rb.forward(scene, scene.verts, scene.texture, cam, mipmaps)

    def lens_fwd():
        with torch.no_grad():
            return lg.render_through_lens(lambda c: rb.forward(scene, scene.verts, scene.texture, c, mipmaps), lens)

    def pinhole_bwd():
        verts = scene.verts.clone().requires_grad_(True)
        tex = scene.texture.clone().requires_grad_(True)
        rb.forward(scene, verts, tex, cam).mean().backward()

    def lens_bwd():
        verts = scene.verts.clone().requires_grad_(True)
        tex = scene.texture.clone().requires_grad_(True)
        K = cam.K.clone().requires_grad_(True)
        coeffs = coeffs0.clone().requires_grad_(True)
        c = lens_camera(cam, K, coeffs)
        lg.render_through_lens(lambda p: rb.forward(scene, verts, tex, p), c).mean().backward()

    def lens_bwd_fixed():
        verts = scene.verts.clone().requires_grad_(True)
        tex = scene.texture.clone().requires_grad_(True)
        lg.render_through_lens(lambda p: rb.forward(scene, verts, tex, p), lens).mean().backward()

    cover = lg.pinhole_cover(lens)
    image = torch.rand(cover.height, cover.width, 3)

    def warp_fwd():
        with torch.no_grad():
            return lg.distort_image(image, cover, lens)

    row = {"size": f"{size}²", "cover": f"{cover.width}x{cover.height}"}
    for name, fn in [("pinhole fwd", pinhole_fwd), ("lens fwd", lens_fwd), ("warp fwd", warp_fwd),
                     ("pinhole fwd+bwd", pinhole_bwd), ("lens fwd+bwd fixed lens", lens_bwd_fixed),
                     ("lens fwd+bwd", lens_bwd)]:
        row[name] = rb.time_ms(fn, repeats, device)
    row["ratio fwd"] = row["lens fwd"] / row["pinhole fwd"]
    row["ratio fwd+bwd"] = row["lens fwd+bwd"] / row["pinhole fwd+bwd"]
    row["peak MiB pinhole fwd+bwd"] = rb.peak_mib(pinhole_bwd, device)[0]
    row["peak MiB lens fwd+bwd"] = rb.peak_mib(lens_bwd, device)[0]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [run(size, args.repeats) for size in args.sizes]
    keys = list(rows[0])
    print(rb.machine_line(rb.machine_info(torch.device("cpu"))))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.2f}" if k.startswith("ratio") else f"{v:.1f}" if isinstance(v, float) else str(v)
                 for k, v in row.items()]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
