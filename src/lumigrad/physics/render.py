"""Draw a simulated rigid body: a mesh posed by each frame's body transform, rasterized in one batched call."""

from __future__ import annotations

from typing import Tuple

import torch

from .._checks import check_number
from ..raster import antialias, interpolate, rasterize
from .poses import body_q_to_matrices

#: One colour per box face (+x, -x, +y, -y, +z, -z), so that a tumble shows in RGB.
BOX_FACE_COLORS = ((0.9, 0.3, 0.2), (0.2, 0.7, 0.3), (0.95, 0.85, 0.3), (0.3, 0.4, 0.9), (0.8, 0.4, 0.8),
                   (0.3, 0.8, 0.85))


def box_mesh(half_extent, dtype=torch.float32) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A box of half sizes ``half_extent`` (a number or ``(hx, hy, hz)``) centred at the origin, 4 vertices per
    face (flat normals, face colours).

    Returns:
        ``verts [24, 3]``, ``faces [12, 3]`` (counter-clockwise seen from outside), ``normals [24, 3]``,
        ``colors [24, 3]`` (:data:`BOX_FACE_COLORS`).
    """
    extents = tuple(half_extent) if isinstance(half_extent, (tuple, list)) else (half_extent,) * 3
    if len(extents) != 3:
        raise ValueError(f"half_extent must be a number or three numbers; got {half_extent!r}")
    h = [check_number(e, "half_extent", lo=0.0, lo_open=True) for e in extents]
    verts, normals, colors, faces = [], [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = [0.0, 0.0, 0.0]
            n[axis] = sign
            u, v = [0.0] * 3, [0.0] * 3
            u[(axis + 1) % 3], v[(axis + 2) % 3] = 1.0, 1.0
            if sign < 0:
                u, v = v, u  # keep u x v = n so the winding is counter-clockwise from outside
            base = len(verts)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                verts.append([h[i] * (n[i] + a * u[i] + b * v[i]) for i in range(3)])
                normals.append(n)
                colors.append(BOX_FACE_COLORS[len(faces) // 2])
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    as_t = lambda x: torch.tensor(x, dtype=dtype)  # noqa: E731
    return as_t(verts), torch.tensor(faces, dtype=torch.int64), as_t(normals), as_t(colors)


def render_posed_mesh(verts: torch.Tensor, faces: torch.Tensor, normals: torch.Tensor, colors: torch.Tensor,
                      body_q: torch.Tensor, camera, *, light_dir=(0.4, 1.0, 0.3), ambient: float = 0.35,
                      background: float = 0.1) -> torch.Tensor:
    """Render a rigid mesh at every pose of ``body_q``: Lambert-shaded vertex colours, antialiased silhouettes.

    Args:
        verts, faces, normals, colors: the mesh in its body frame (``[V, 3]``, ``[F, 3]``, ``[V, 3]``, ``[V, 3]``).
        body_q: ``[T, 7]`` Newton transforms (position, quaternion x, y, z, w), e.g. one body's frames of
            :func:`lumigrad.physics.simulate`.
        camera: a :class:`lumigrad.Camera` (one view, shared by all frames).
        light_dir: world direction towards a directional light. ambient: its floor. background: grey level.

    Returns:
        ``[T, H, W, 3]`` images.

    **Differentiability:** differentiable in ``body_q`` (and the mesh) through vertex positions, shading normals
    and the silhouette edges of :func:`lumigrad.antialias`. Edges between two visible faces are not antialiased:
    where the mesh splits vertices there (as :func:`box_mesh` does, for face colours) the colour step has no
    gradient. Central differences of the image loss agree with autograd for most poses and jump for some (a
    silhouette vertex crossing a pixel centre; docs/physics.md).
    """
    to_world = body_q_to_matrices(body_q).to(verts.dtype)  # [T, 4, 4]
    rotation, translation = to_world[:, :3, :3], to_world[:, :3, 3]
    world = torch.einsum("tij,vj->tvi", rotation, verts) + translation[:, None, :]
    world_normals = torch.einsum("tij,vj->tvi", rotation, normals)
    frags = rasterize(world, faces, camera)
    light = torch.nn.functional.normalize(torch.as_tensor(light_dir, dtype=verts.dtype), dim=0)
    lambert = (world_normals @ light).clamp_min(0.0).unsqueeze(-1)
    shaded = colors * (ambient + (1.0 - ambient) * lambert)  # [T, V, 3]
    attrs = torch.cat([shaded, torch.ones_like(shaded[..., :1])], dim=-1)
    image = interpolate(attrs, frags, faces)
    rgb, alpha = image[..., :3], image[..., 3:]
    image = rgb + (1.0 - alpha) * background
    return antialias(image, frags, world, faces, camera)
