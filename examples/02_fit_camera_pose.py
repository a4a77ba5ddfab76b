"""Recover a camera's pose from one rendered image of the Spot cow by gradient descent.

The camera pose is parameterised by an axis-angle rotation and a translation applied to a start pose; the
gradient of the image loss reaches them through rasterize (barycentrics), texture and antialias (silhouettes).

    python examples/02_fit_camera_pose.py --steps 150
"""

import argparse
import math

import torch

import lumigrad as lg
from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam, matrix_to_axis_angle


def render(mesh, cam):
    frags = lg.rasterize(mesh.verts, mesh.faces, cam)
    color = lg.texture(mesh.texture, lg.interpolate(mesh.uv, frags, mesh.uv_faces), mask=frags.mask)
    rgba = torch.cat([color, frags.mask[..., None].float()], -1)
    return lg.antialias(rgba, frags, mesh.verts, mesh.faces, cam)


def posed(base, rotation, translation):
    R = axis_angle_to_matrix(rotation) @ base.world_to_cam[:3, :3]
    t = base.world_to_cam[:3, 3] + translation
    return lg.Camera(K=base.K, world_to_cam=compose_world_to_cam(R, t), width=base.width, height=base.height)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)

    mesh = lg.data.load_spot()
    mesh.texture = mesh.texture[..., :3]
    base = lg.Camera.look_at(eye=[2.2, 0.6, 2.2], target=[0.0, 0.1, 0.0], fov_y=0.7, width=args.size,
                             height=args.size)
    with torch.no_grad():
        target = render(mesh, base)
    rotation = torch.tensor([0.05, -0.12, 0.06], requires_grad=True)  # about 8 degrees away
    translation = torch.tensor([0.1, -0.05, 0.15], requires_grad=True)
    opt = torch.optim.Adam([rotation, translation], lr=0.01)
    for step in range(args.steps):
        opt.zero_grad()
        loss = ((render(mesh, posed(base, rotation, translation)) - target) ** 2).mean()
        loss.backward()
        opt.step()
    angle = float(matrix_to_axis_angle(axis_angle_to_matrix(rotation.detach())).norm()) * 180 / math.pi
    print(f"after {args.steps} steps: loss {float(loss.detach()):.2e}, rotation error {angle:.3f} deg, "
          f"translation error {float(translation.detach().norm()):.4f}")
    return angle


if __name__ == "__main__":
    main()
