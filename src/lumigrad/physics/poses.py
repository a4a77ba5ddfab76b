"""Newton body transforms (position, quaternion x, y, z, w as Warp stores them) as lumigrad 4x4 matrices."""

from __future__ import annotations

import torch

from ..conventions import quaternion_to_matrix


def body_q_to_matrices(body_q: torch.Tensor) -> torch.Tensor:
    """Convert Newton/Warp transforms ``[..., 7]`` (px, py, pz, qx, qy, qz, qw) to object-to-world matrices.

    Args:
        body_q: ``[..., 7]`` tensor, e.g. the ``[steps + 1, bodies, 7]`` output of :func:`simulate`.

    Returns:
        ``[..., 4, 4]`` matrices (column-vector convention, last row ``0 0 0 1``), usable as a mesh ``to_world``.

    **Differentiability:** differentiable in ``body_q`` (the quaternion is normalised by
    :func:`lumigrad.conventions.quaternion_to_matrix`, which takes ``w, x, y, z``: reordered here).
    """
    if not isinstance(body_q, torch.Tensor) or body_q.shape[-1:] != (7,):
        raise ValueError(f"body_q must be a tensor [..., 7]; got {getattr(body_q, 'shape', type(body_q))}")
    position, q = body_q[..., :3], body_q[..., 3:]
    rotation = quaternion_to_matrix(torch.cat([q[..., 3:], q[..., :3]], dim=-1))
    top = torch.cat([rotation, position.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(body_q.shape[:-1] + (1, 4), dtype=body_q.dtype, device=body_q.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)
