"""Render the embedded Spot cow with the four raster ops and save the image and its vertex-gradient map.

    python examples/01_render_spot.py --size 256 --out spot.png
"""

import argparse

import torch

import lumigrad as lg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default="spot.png")
    args = parser.parse_args(argv)

    mesh = lg.data.load_spot()
    cam = lg.Camera.look_at(eye=[2.0, 0.5, 2.0], target=[0.0, 0.1, 0.0], fov_y=0.7, width=args.size,
                            height=args.size)
    verts = mesh.verts.clone().requires_grad_(True)
    frags = lg.rasterize(verts, mesh.faces, cam, return_bary_derivs=True)
    uv, duv = lg.interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
    color = lg.texture(mesh.texture, uv, uv_derivs=duv, mask=frags.mask)
    image = lg.antialias(color, frags, verts, mesh.faces, cam)
    image.mean().backward()
    lg.io.write_image(args.out, image)
    moving = verts.grad.norm(dim=-1)
    print(f"wrote {args.out}: {int(frags.mask.sum())} covered pixels, "
          f"{int((moving > 0).sum())} of {verts.shape[0]} vertices receive gradients")


if __name__ == "__main__":
    main()
