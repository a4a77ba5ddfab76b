"""Barycentric interpolation of per-vertex (or per-corner) attributes over rasterized fragments."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from .._checks import check_channels, check_face_ids, check_indices, check_tensor
from ..kernels.surface import KERNEL_DTYPES, interpolate_covered
from .fragments import Fragments

#: Whether :func:`interpolate` runs the fused kernel (``kernels/surface.py``, explicit backward) or its PyTorch
#: twin :func:`interpolate_reference` (gather, einsum, scatter). The tests compare the two.
FUSED_INTERPOLATE = True


def interpolate(
    attrs: torch.Tensor,
    frags: Fragments,
    faces: torch.Tensor,
    *,
    return_derivatives: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Interpolate vertex attributes at every pixel: ``out = sum_i bary_i * attrs[faces[face_id, i]]``.

    Args:
        attrs: ``[A, C]`` or ``[..., A, C]`` float attributes (colours, uv, normals...). Leading dims must
            match the fragments' batch dims (one attribute set per view) or be absent (shared).
        frags: output of :func:`lumigrad.rasterize`.
        faces: ``[F, 3]`` integer indices into ``attrs``; usually the faces given to ``rasterize``, or separate
            per-corner index faces such as OBJ texture-coordinate faces (same F).
        return_derivatives: also return the screen-space derivatives ``d out / d(u, v)``, which need
            ``rasterize(..., return_bary_derivs=True)``.

    Returns:
        ``[..., H, W, C]`` interpolated attributes, zero on background; with ``return_derivatives`` also
        ``[..., H, W, C, 2]`` derivatives along pixel columns (u) and rows (v).

    Raises:
        TypeError / ValueError: ``attrs`` not float ``[..., A, C]`` with ``C >= 1`` or with NaN / Inf, face
            indices outside ``[0, A)``, fragments from other faces, batch dims that do not match, mixed devices.

    **Differentiability:** linear in ``attrs`` (gradients reach every vertex seen by a pixel) and in
    ``frags.bary`` / ``frags.bary_derivs``, which carry gradients on to the vertex positions and the camera.

    Example: a face with attrs ``[[0.], [1.], [2.]]`` seen at barycentrics ``(0.2, 0.3, 0.5)`` gives
    ``0.3 * 1 + 0.5 * 2 = 1.3``.
    """
    if not isinstance(frags, Fragments):
        raise TypeError(f"frags must be lumigrad Fragments from rasterize(); got {type(frags).__name__}")
    device = frags.face_ids.device
    check_tensor(attrs, "attrs", trailing=(None, None), floating=True, device=device)
    check_channels(attrs, "attrs", "[..., A, C]")
    check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=device)
    check_indices(faces, "faces", attrs.shape[-2])
    check_face_ids(frags.face_ids, faces, num_faces=frags.num_faces)
    check_tensor(attrs, "attrs", finite=True)
    batch = frags.batch_shape
    if attrs.dim() > 2 and attrs.shape[:-2] != batch:
        raise ValueError(f"attrs has batch dims {tuple(attrs.shape[:-2])} but the fragments have {tuple(batch)}; "
                         "give [A, C] to share attributes across views or match the batch dims")
    if return_derivatives and frags.bary_derivs_covered is None:
        raise ValueError("return_derivatives=True needs fragments from rasterize(..., return_bary_derivs=True)")
    return interpolate_unchecked(attrs, frags, faces, return_derivatives=return_derivatives)


def interpolate_unchecked(attrs: torch.Tensor, frags: Fragments, faces: torch.Tensor, *,
                          return_derivatives: bool = False, fused: Optional[bool] = None
                          ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """:func:`interpolate` without its checks, for pipelines that validated ``attrs`` and ``faces`` once
    (a renderer interpolating several tables over the same fragments); same arguments and results.
    ``fused`` (default :data:`FUSED_INTERPOLATE`) picks the fused kernel or :func:`interpolate_reference`."""
    fused = FUSED_INTERPOLATE if fused is None else fused
    if not (fused and attrs.dtype in KERNEL_DTYPES and frags.bary_covered.dtype in KERNEL_DTYPES):
        return interpolate_reference(attrs, frags, faces, return_derivatives=return_derivatives)
    H, W = frags.height, frags.width
    C = attrs.shape[-1]
    per_view = attrs.shape[-2] if attrs.dim() > 2 else 0
    derivs = frags.bary_derivs_covered.to(attrs.dtype) if return_derivatives else None
    out, dout = interpolate_covered(attrs.reshape(-1, C), faces.to(torch.int32).contiguous(), frags.covered.long(),
                                    frags.face_ids.reshape(-1).to(torch.int32).contiguous(), H * W,
                                    frags.bary_covered.to(attrs.dtype), derivs, per_view)
    image = out.reshape(frags.face_ids.shape + (C,))
    if not return_derivatives:
        return image
    return image, dout.reshape(frags.face_ids.shape + (C, 2))


def interpolate_reference(attrs: torch.Tensor, frags: Fragments, faces: torch.Tensor, *,
                          return_derivatives: bool = False
                          ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """The PyTorch twin of the fused interpolation (gather the corners' rows, weight, scatter to the image);
    same arguments and results as :func:`interpolate_unchecked`."""
    H, W = frags.height, frags.width
    C = attrs.shape[-1]
    total = frags.face_ids.numel()
    covered = frags.covered
    face = frags.covered_faces()
    corner = faces.long()[face]  # [P, 3]
    if attrs.dim() > 2:
        A = attrs.shape[-2]
        corner = corner + (covered // (H * W) * A)[:, None]
    table = attrs.reshape(-1, C)
    values = table[corner.reshape(-1)].reshape(-1, 3, C)  # [P, 3, C]
    bary = frags.bary_covered
    out = torch.einsum("pk,pkc->pc", bary.to(values.dtype), values)
    image = frags.to_dense(out)
    if not return_derivatives:
        return image
    dout = torch.einsum("pkd,pkc->pcd", frags.bary_derivs_covered.to(values.dtype), values)
    return image, frags.to_dense(dout)
