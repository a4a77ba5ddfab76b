"""The loss of one fit step: the weighted terms of ``[loss]``.

- Image terms compare the rendered colour with the target colour (``mask = "alpha"`` restricts them to the
  target's object mask); ``adversarial`` first steps a patch discriminator on targets vs detached renders,
  then scores the renders with it.
- ``silhouette`` compares rendered coverage with the target's alpha (IoU loss).
- ``depth`` and ``normal`` compare hard (not antialiased) :func:`lumigrad.scene.render_geometry` buffers with
  the target's (L1 on camera-frame depth, cosine on normals) over the pixels where both have geometry, as
  with a depth sensor's maps; the outline is the colour and silhouette terms' job.
- The mesh terms apply to every mesh whose vertices are optimised, on its world-space vertices.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from ..losses.geometric import depth_loss, normal_loss
from ..losses.image import l1_loss, ms_ssim_loss, mse_loss, ssim_loss
from ..losses.mesh_regularizers import edge_length_loss, laplacian_smoothing, normal_consistency
from ..losses.silhouette import silhouette_iou_loss

__all__ = ["total_loss"]


def _image_term(name: str, problem):
    if name == "mse":
        return lambda p, t, m: mse_loss(p, t, m)
    if name == "l1":
        return lambda p, t, m: l1_loss(p, t, m)
    if name == "ssim":
        return lambda p, t, m: ssim_loss(_masked(p, m), _masked(t, m))
    if name == "ms_ssim":
        return lambda p, t, m: ms_ssim_loss(_masked(p, m), _masked(t, m))
    if name == "adversarial":
        def adversarial(p, t, m):
            problem.adversary.discriminator_step(_masked(t, m), _masked(p, m))
            return problem.adversary.generator_loss(_masked(p, m))

        return adversarial
    if name == "perceptual":
        from ..losses import perceptual_loss

        return lambda p, t, m: perceptual_loss(_masked(p, m), _masked(t, m))
    raise KeyError(name)


def _masked(x: torch.Tensor, mask):
    return x if mask is None else x * mask


def total_loss(problem, images: torch.Tensor, targets: torch.Tensor, geometry: Optional[torch.Tensor] = None,
               target_geometry: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(loss, {term: value})`` for rendered ``images [N, H, W, C + 1]`` against ``targets [N, H, W, C']``,
    and rendered depth, normals and coverage ``geometry [N, H, W, 5]`` against ``target_geometry [N, H, W, 4]``
    for the depth and normal terms."""
    config = problem.config
    rgb, alpha = images[..., :3], images[..., 3]
    target_rgb = targets[..., :3]
    mask = targets[..., 3:4] if config.mask == "alpha" else None
    total = torch.zeros((), dtype=images.dtype, device=images.device)
    log: Dict[str, float] = {}
    for name, weight in config.loss.items():
        if name == "silhouette":
            value = silhouette_iou_loss(alpha, targets[..., 3])
        elif name == "depth":
            value = depth_loss(geometry[..., :1], target_geometry[..., :1], mask=geometry[..., 4:])
        elif name == "normal":
            value = normal_loss(geometry[..., 1:4], target_geometry[..., 1:], mask=geometry[..., 4:])
        elif name in ("laplacian", "normal_consistency", "edge_length"):
            value = _mesh_term(name, problem)
        else:
            value = _image_term(name, problem)(rgb, target_rgb, mask)
        total = total + weight * value
        log[f"loss/{name}"] = float(value.detach())
    return total, log


def _mesh_term(name: str, problem) -> torch.Tensor:
    scene = problem.scene
    value = torch.zeros(())
    for mesh_name in problem.fitted_meshes():
        mesh = scene.meshes[mesh_name]
        v = mesh.world_verts()
        if name == "laplacian":
            value = value + laplacian_smoothing(v, mesh.faces)
        elif name == "normal_consistency":
            value = value + normal_consistency(v, mesh.faces)
        else:
            value = value + edge_length_loss(v, mesh.faces)
    return value
