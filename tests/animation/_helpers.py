"""Small skeletons and meshes shared by the animation tests."""

import torch

from lumigrad.animation import Skeleton, forward_kinematics

D = torch.float64


def chain_skeleton(num_joints=3, dtype=D, spacing=1.0, axis=0):
    """A straight chain along ``axis`` whose inverse binds invert its rest pose."""
    t = torch.zeros(num_joints, 3, dtype=dtype)
    t[1:, axis] = spacing
    q = torch.zeros(num_joints, 4, dtype=dtype)
    q[:, 0] = 1
    sk = Skeleton([f"j{k}" for k in range(num_joints)], torch.arange(num_joints) - 1, t, q,
                  torch.ones(num_joints, 3, dtype=dtype), torch.eye(4, dtype=dtype).repeat(num_joints, 1, 1))
    sk.inverse_bind = torch.linalg.inv(forward_kinematics(sk))
    return sk


def cylinder(segments=16, rings=21, length=2.0, radius=0.2, dtype=D):
    """A cylinder along +x from 0 to ``length``: vertices [rings * segments, 3], faces, ring index per vertex."""
    a = torch.arange(segments, dtype=dtype) * (2 * torch.pi / segments)
    x = torch.linspace(0, length, rings, dtype=dtype)
    verts = torch.stack([x[:, None].expand(rings, segments), radius * torch.cos(a).expand(rings, segments),
                         radius * torch.sin(a).expand(rings, segments)], -1).reshape(-1, 3)
    faces = []
    for r in range(rings - 1):
        for s in range(segments):
            a0, a1 = r * segments + s, r * segments + (s + 1) % segments
            b0, b1 = a0 + segments, a1 + segments
            faces += [[a0, a1, b1], [a0, b1, b0]]
    # caps: fan around the centre of each end, appended as two extra vertices
    c0 = torch.tensor([[0.0, 0, 0]], dtype=dtype)
    c1 = torch.tensor([[length, 0, 0]], dtype=dtype)
    base = verts.shape[0]
    verts = torch.cat([verts, c0, c1])
    last = (rings - 1) * segments
    for s in range(segments):
        faces.append([base, (s + 1) % segments, s])
        faces.append([base + 1, last + s, last + (s + 1) % segments])
    return verts, torch.tensor(faces)


def mesh_volume(verts, faces):
    """Signed volume of a closed triangle mesh ``[..., V, 3]``."""
    a, b, c = verts[..., faces[:, 0], :], verts[..., faces[:, 1], :], verts[..., faces[:, 2], :]
    return (a * torch.linalg.cross(b, c)).sum(-1).sum(-1) / 6
