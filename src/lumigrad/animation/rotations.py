"""Rotation parameterisations for skeletons: axis-angle, the continuous 6D form, and quaternion slerp.

The maps themselves live in :mod:`lumigrad.conventions` (the one place rotations are defined); this module
re-exports them next to :func:`quaternion_slerp`, which animation sampling needs. Quaternions are
``(w, x, y, z)``.
"""

from __future__ import annotations

import torch

from ..conventions import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion,
                           matrix_to_rotation_6d, quaternion_multiply, quaternion_to_matrix,
                           rotation_6d_to_matrix)

__all__ = ["axis_angle_to_matrix", "matrix_to_axis_angle", "rotation_6d_to_matrix", "matrix_to_rotation_6d",
           "quaternion_to_matrix", "matrix_to_quaternion", "quaternion_multiply", "quaternion_slerp"]

# Below this angle between the two quaternions slerp is replaced by normalised lerp (their difference is
# below float32 resolution of sin(theta) and the slerp weights would divide 0 by 0).
_NEAR_PARALLEL = 1e-4


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t) -> torch.Tensor:
    """Spherically interpolate unit quaternions along the shortest arc.

    Args:
        q0: start rotations, ``[..., 4]`` ``(w, x, y, z)``, unit norm.
        q1: end rotations, ``[..., 4]``, broadcastable with ``q0``.
        t: interpolation parameter, a float or a tensor broadcastable with ``q0[..., 0]``; 0 gives ``q0``.

    Returns:
        ``[..., 4]`` unit quaternions. ``q1`` is negated first when ``q0 . q1 < 0`` (shortest arc); when the two
        are nearly parallel (angle below 1e-4 rad) normalised lerp is used, which agrees to second order.

    **Differentiability:** smooth in ``q0``, ``q1`` and ``t`` (the near-parallel branch avoids the 0/0 of
    ``sin(theta)``; the sign flip is piecewise constant).

    Example: slerp of the identity and a 90 degree turn about z at ``t=0.5`` is the 45 degree turn
    ``(cos(pi/8), 0, 0, sin(pi/8))``.
    """
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    # angle via atan2 of |q0 x q1|-like quantity is better conditioned than acos near 1
    sin_theta = (q1 - dot * q0).norm(dim=-1, keepdim=True)
    theta = torch.atan2(sin_theta, dot)
    near = theta < _NEAR_PARALLEL
    safe_theta = torch.where(near, torch.ones_like(theta), theta)
    safe_sin = torch.sin(safe_theta)
    w0 = torch.where(near, 1 - t, torch.sin((1 - t) * safe_theta) / safe_sin)
    w1 = torch.where(near, t, torch.sin(t * safe_theta) / safe_sin)
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
