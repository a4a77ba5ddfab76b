"""The one place where lumigrad's axes, pixels, rotations and units are defined.

lumigrad convention (see ``docs/conventions.md``):

* Camera frame: OpenCV. +x right, +y down, +z forward (the camera looks along +z).
* ``world_to_cam`` is a ``[..., 4, 4]`` matrix acting on column vectors: ``x_c = R @ x_w + t``.
* ``K`` is ``[..., 3, 3]`` in pixels: ``u = fx * x / z + s * y / z + cx``, ``v = fy * y / z + cy``.
* Pixel (row i, column j) covers ``[j, j+1] x [i, i+1]``; its centre is ``(j + 0.5, i + 0.5)``.
  Row 0 is the top of the image.
* Images are channel-last: ``[..., H, W, C]``.
* Texture coordinates: ``uv = (0, 0)`` is the top-left corner of the texture image, u to the right, v down
  (glTF's convention). Texel (i, j) has its centre at ``((j + 0.5) / W, (i + 0.5) / H)``. The OBJ reader
  flips OBJ's bottom-left v once, on load.
* Quaternions are ``(w, x, y, z)``, unit norm, rotating column vectors.
* Angles are radians in code; degrees only at the command line.
* Front faces wind counter-clockwise when seen from the camera in a right-handed world (OBJ / glTF / OpenGL).
* Units: whatever the scene uses (metres for real captures); depth is the camera-frame z, not the ray length.

Foreign conventions are converted once, here (and in ``io/``), by the functions below. Every converter is
differentiable, works on any leading batch dims, and has an inverse with a round-trip test.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "OPENGL_TO_OPENCV",
    "PYTORCH3D_TO_OPENCV",
    "pixel_centers",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "quaternion_multiply",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "compose_world_to_cam",
    "invert_rigid",
    "opengl_c2w_to_world_to_cam",
    "world_to_cam_to_opengl_c2w",
    "blender_c2w_to_world_to_cam",
    "world_to_cam_to_blender_c2w",
    "nerf_to_camera_params",
    "camera_params_to_nerf",
    "opengl_projection_from_K",
    "K_from_opengl_projection",
    "pytorch3d_to_world_to_cam",
    "world_to_cam_to_pytorch3d",
    "K_from_pytorch3d_ndc",
    "K_to_pytorch3d_ndc",
]

# Axis flips between camera frames: diag(1, -1, -1) maps OpenGL/Blender/NeRF camera coordinates
# (x right, y up, z backward) to OpenCV (x right, y down, z forward); it is its own inverse.
OPENGL_TO_OPENCV = (1.0, -1.0, -1.0)
# PyTorch3D's camera frame is x left, y up, z forward.
PYTORCH3D_TO_OPENCV = (-1.0, -1.0, 1.0)


def pixel_centers(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Return the pixel-centre coordinates ``[H, W, 2]`` as (u, v) = (column + 0.5, row + 0.5)."""
    v = torch.arange(height, device=device, dtype=dtype) + 0.5
    u = torch.arange(width, device=device, dtype=dtype) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


# --------------------------------------------------------------------------------------------- rotations
def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Convert quaternions ``(w, x, y, z)`` ``[..., 4]`` to rotation matrices ``[..., 3, 3]``.

    The quaternion is normalised first, so an unconstrained 4-vector is a valid rotation parameter.

    **Differentiability:** smooth in ``q`` away from ``q = 0``.

    Example: ``quaternion_to_matrix(torch.tensor([1., 0, 0, 0]))`` is the identity.
    """
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Convert rotation matrices ``[..., 3, 3]`` to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Uses the numerically best of the four Shepperd branches per matrix.
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                         m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                         m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                         1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                         m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4 branches, 4]
    diag = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(dim=-1, keepdim=True)
    q = torch.gather(candidates, -2, best[..., None].expand(best.shape + (4,))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the Hamilton product ``a * b`` of ``(w, x, y, z)`` quaternions (apply b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Convert rotation vectors ``[..., 3]`` (axis times angle in radians) to matrices ``[..., 3, 3]``.

    **Differentiability:** smooth everywhere, including the zero rotation (Taylor expansion near 0).
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    half = 0.5 * theta
    # q = (cos(theta/2), sin(theta/2)/theta * axis_angle), with a Taylor branch near zero.
    w = torch.where(small, 1 - theta2 / 8, torch.cos(half))
    s = torch.where(small, 0.5 - theta2 / 48, torch.sin(half) / theta)
    return quaternion_to_matrix(torch.cat([w, s * axis_angle], dim=-1))


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Convert rotation matrices ``[..., 3, 3]`` to rotation vectors ``[..., 3]`` with angle in [0, pi]."""
    q = matrix_to_quaternion(R)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    scale = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-12), 2.0 + 0 * angle)
    return xyz * scale


# ------------------------------------------------------------------------------------------ rigid poses
def rotation_6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """Map the continuous 6D rotation representation ``[..., 6]`` to matrices ``[..., 3, 3]``.

    The two 3-vectors are Gram-Schmidt orthonormalised into the first two *rows*; the third is their cross
    product (Zhou et al. 2019). Smooth wherever the two vectors are not parallel: a good optimisation
    parameter for rotations with no singularity at any angle.
    """
    a, b = r6[..., :3], r6[..., 3:]
    x = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b - (x * b).sum(-1, keepdim=True) * x
    y = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=-2)


def matrix_to_rotation_6d(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotation_6d_to_matrix`: the first two rows of ``R``, ``[..., 6]``."""
    return R[..., :2, :].reshape(R.shape[:-2] + (6,))


def compose_world_to_cam(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Build ``[..., 4, 4]`` matrices from rotations ``[..., 3, 3]`` and translations ``[..., 3]``."""
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat([R.expand(batch + (3, 3)), t.expand(batch + (3,))[..., None]], dim=-1)
    bottom = torch.zeros(batch + (1, 4), dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def invert_rigid(T: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms ``[..., 4, 4]`` (rotation + translation) without a general inverse."""
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    Rt = R.transpose(-1, -2)
    return compose_world_to_cam(Rt, -(Rt @ t[..., None])[..., 0])


def _flip_camera_axes(T: torch.Tensor, flips, *, left: bool) -> torch.Tensor:
    d = torch.tensor(flips + (1.0,), dtype=T.dtype, device=T.device)
    return d[:, None] * T if left else T * d


def opengl_c2w_to_world_to_cam(c2w: torch.Tensor) -> torch.Tensor:
    """Convert OpenGL camera-to-world poses ``[..., 4, 4]`` (x right, y up, looking down -z) to our ``world_to_cam``."""
    return invert_rigid(_flip_camera_axes(c2w, OPENGL_TO_OPENCV, left=False))


def world_to_cam_to_opengl_c2w(world_to_cam: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`opengl_c2w_to_world_to_cam`."""
    return _flip_camera_axes(invert_rigid(world_to_cam), OPENGL_TO_OPENCV, left=False)


# Blender's camera object uses the OpenGL camera frame; its ``matrix_world`` is the camera-to-world pose.
blender_c2w_to_world_to_cam = opengl_c2w_to_world_to_cam
world_to_cam_to_blender_c2w = world_to_cam_to_opengl_c2w


def nerf_to_camera_params(transform_matrix: torch.Tensor, camera_angle_x: float, width: int, height: int):
    """Convert one NeRF ``transforms.json`` frame to ``(K [3, 3], world_to_cam [..., 4, 4])``.

    ``transform_matrix`` is the OpenGL-convention camera-to-world pose; ``camera_angle_x`` is the horizontal
    field of view in radians; the principal point is the image centre and pixels are square.
    """
    focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
    K = torch.tensor(
        [[focal, 0.0, 0.5 * width], [0.0, focal, 0.5 * height], [0.0, 0.0, 1.0]],
        dtype=transform_matrix.dtype, device=transform_matrix.device,
    )
    return K, opengl_c2w_to_world_to_cam(transform_matrix)


def camera_params_to_nerf(K: torch.Tensor, world_to_cam: torch.Tensor, width: int):
    """Inverse of :func:`nerf_to_camera_params`: return ``(transform_matrix, camera_angle_x)``."""
    camera_angle_x = 2 * math.atan(0.5 * width / float(K[..., 0, 0].reshape(-1)[0]))
    return world_to_cam_to_opengl_c2w(world_to_cam), camera_angle_x


def opengl_projection_from_K(K: torch.Tensor, width: int, height: int, near: float, far: float) -> torch.Tensor:
    """Build the OpenGL projection matrix ``[..., 4, 4]`` that matches intrinsics ``K`` in our pixel convention.

    The OpenGL clip space has y up and NDC in [-1, 1]; our pixel rows go down, so the y row is flipped.
    Together with :func:`world_to_cam_to_opengl_c2w` it reproduces our projection exactly.
    """
    fx, fy, cx, cy, s = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]
    zeros = torch.zeros_like(fx)
    ones = torch.ones_like(fx)
    a = -(far + near) / (far - near) * ones
    b = -2 * far * near / (far - near) * ones
    rows = [
        2 * fx / width, -2 * s / width, 1 - 2 * cx / width, zeros,
        zeros, 2 * fy / height, 2 * cy / height - 1, zeros,
        zeros, zeros, a, b,
        zeros, zeros, -ones, zeros,
    ]
    return torch.stack(rows, dim=-1).reshape(fx.shape + (4, 4))


def K_from_opengl_projection(P: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Inverse of :func:`opengl_projection_from_K` for the intrinsics (near / far are not part of K)."""
    fx = 0.5 * width * P[..., 0, 0]
    s = -0.5 * width * P[..., 0, 1]
    cx = 0.5 * width * (1 - P[..., 0, 2])
    fy = 0.5 * height * P[..., 1, 1]
    cy = 0.5 * height * (P[..., 1, 2] + 1)
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, s, cx, zeros, fy, cy, zeros, zeros, ones], -1).reshape(fx.shape + (3, 3))


def pytorch3d_to_world_to_cam(R: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Convert PyTorch3D extrinsics to our ``world_to_cam``.

    PyTorch3D uses row vectors (``X_cam = X_world @ R + T``) and a camera frame with x left, y up, z forward.
    ``R`` is ``[..., 3, 3]`` and ``T`` is ``[..., 3]``.
    """
    flip = torch.tensor(PYTORCH3D_TO_OPENCV, dtype=R.dtype, device=R.device)
    return compose_world_to_cam(flip[:, None] * R.transpose(-1, -2), flip * T)


def world_to_cam_to_pytorch3d(world_to_cam: torch.Tensor):
    """Inverse of :func:`pytorch3d_to_world_to_cam`: return ``(R, T)`` in PyTorch3D's convention."""
    flip = torch.tensor(PYTORCH3D_TO_OPENCV, dtype=world_to_cam.dtype, device=world_to_cam.device)
    R = (flip[:, None] * world_to_cam[..., :3, :3]).transpose(-1, -2)
    return R, flip * world_to_cam[..., :3, 3]


def K_to_pytorch3d_ndc(K: torch.Tensor, width: int, height: int):
    """Convert pixel intrinsics to PyTorch3D NDC ``(focal_length [..., 2], principal_point [..., 2])``.

    PyTorch3D's NDC has +x left and +y up, with the shorter image side spanning [-1, 1].
    """
    scale = min(width, height) / 2.0
    centre = torch.tensor([width / 2.0, height / 2.0], dtype=K.dtype, device=K.device)
    focal = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1) / scale
    principal = -(torch.stack([K[..., 0, 2], K[..., 1, 2]], -1) - centre) / scale
    return focal, principal


def K_from_pytorch3d_ndc(focal_length: torch.Tensor, principal_point: torch.Tensor, width: int, height: int):
    """Inverse of :func:`K_to_pytorch3d_ndc` (zero skew)."""
    scale = min(width, height) / 2.0
    centre = torch.tensor([width / 2.0, height / 2.0], dtype=focal_length.dtype, device=focal_length.device)
    f = focal_length * scale
    c = centre - principal_point * scale
    zeros, ones = torch.zeros_like(f[..., 0]), torch.ones_like(f[..., 0])
    return torch.stack([f[..., 0], zeros, c[..., 0], zeros, f[..., 1], c[..., 1], zeros, zeros, ones],
                       -1).reshape(f.shape[:-1] + (3, 3))
