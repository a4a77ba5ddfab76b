"""PyTorch3D ``PerspectiveCameras`` parameters to and from lumigrad cameras (no PyTorch3D import needed).

PyTorch3D (``docs/notes/cameras.md``, ``pytorch3d/renderer/cameras.py``):

* Row vectors: ``X_view = X_world @ R + T``, in a view frame with +X left, +Y up, +Z forward;
  :func:`~lumigrad.conventions.pytorch3d_to_world_to_cam` converts ``(R, T)``.
* ``PerspectiveCameras`` projects ``x = fx * X / Z + px``, ``y = fy * Y / Z + py``.
* NDC (``in_ndc=True``): +X left, +Y up, the shorter image side spans [-1, 1] and NDC ``(+1, +1)`` is the
  top-left *corner* of a square image, so with ``s = min(H, W) / 2`` our pixel is ``u = W/2 - x_ndc s``,
  ``v = H/2 - y_ndc s`` (:func:`~lumigrad.conventions.K_to_pytorch3d_ndc`).
* Screen space (``in_ndc=False``, ``image_size = (H, W)``): ``get_ndc_camera_transform`` maps the screen
  projection to NDC by ``x_ndc = (fx X / Z - px + W/2) / s`` (its principal-point fix followed by the
  un-flipped screen-to-NDC scaling), which gives ``fx_ndc = fx / s`` and ``px_ndc = -(px - W/2) / s``, the
  relation PyTorch3D documents. Hence the screen ``focal_length`` and ``principal_point`` *are* lumigrad's
  ``fx, fy`` and ``cx, cy`` (pixels, x right, y down, pixel centres at +0.5). PyTorch3D releases before the
  half-pixel fix used ``(s - 1) / 2`` and ``(W - 1) / 2`` instead; those are not handled.

PyTorch3D cameras have no skew and no lens distortion; cameras with either are refused.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

import torch

from .._checks import check_tensor
from ..cameras.camera import Camera
from ..conventions import (K_from_pytorch3d_ndc, K_to_pytorch3d_ndc, pytorch3d_to_world_to_cam,
                           world_to_cam_to_pytorch3d)

__all__ = ["camera_from_pytorch3d", "camera_to_pytorch3d"]


def camera_to_pytorch3d(camera: Camera, in_ndc: bool = True) -> Dict[str, Union[torch.Tensor, bool]]:
    """Return the ``PerspectiveCameras`` arguments that reproduce ``camera``.

    Args:
        camera: a lumigrad ``Camera`` with any batch shape ``B``, zero skew and no (or zero) distortion.
        in_ndc: return NDC parameters (PyTorch3D's default) or screen-space (pixel) parameters.

    Returns:
        ``dict(R [*B, 3, 3], T [*B, 3], focal_length [*B, 2], principal_point [*B, 2], image_size [*B, 2],
        in_ndc)`` with ``image_size = (H, W)`` (int64). Tensors follow the camera's dtype and device and are
        differentiable in ``K`` and ``world_to_cam``. PyTorch3D wants a leading batch dim: for an unbatched
        camera pass ``{k: v[None] for tensors}``, e.g. ``PerspectiveCameras(**p)`` after adding it.

    Raises:
        ValueError: the camera has skew or non-zero distortion.

    Example:
        >>> cam = Camera(torch.tensor([[90., 0, 46], [0, 90, 27], [0, 0, 1]]), torch.eye(4), 80, 60)
        >>> p = camera_to_pytorch3d(cam)   # s = min(80, 60) / 2 = 30: f / s, -(c - (W/2, H/2)) / s
        >>> p["focal_length"], p["principal_point"]
        (tensor([3., 3.]), tensor([-0.2000,  0.1000]))
        >>> camera_to_pytorch3d(cam, in_ndc=False)["principal_point"]
        tensor([46., 27.])
    """
    if camera.projection != "perspective":
        raise ValueError(f"camera is {camera.projection}; use PyTorch3D's OrthographicCameras, which this "
                         "converter does not cover")
    K = camera.K.expand(camera.batch_shape + (3, 3))
    if bool((K[..., 0, 1] != 0).any()):
        raise ValueError("camera has skew K[..., 0, 1] != 0; PyTorch3D's PerspectiveCameras has none")
    if camera.thin_lens:
        raise ValueError("camera has a thin lens (aperture_radius, focus_distance); PyTorch3D cameras are pinholes")
    if camera.distortion is not None and bool((camera.distortion != 0).any()):
        raise ValueError(f"camera has {camera.distortion_model!r} lens distortion; PyTorch3D cameras have none "
                         "(undistort the images first)")
    W, H = camera.width, camera.height
    R, T = world_to_cam_to_pytorch3d(camera.world_to_cam.expand(camera.batch_shape + (4, 4)))
    if in_ndc:
        focal, principal = K_to_pytorch3d_ndc(K, W, H)
    else:
        focal = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1)
        principal = torch.stack([K[..., 0, 2], K[..., 1, 2]], -1)
    size = torch.tensor([H, W], dtype=torch.int64, device=K.device).expand(camera.batch_shape + (2,))
    return {"R": R, "T": T, "focal_length": focal, "principal_point": principal, "image_size": size,
            "in_ndc": bool(in_ndc)}


def camera_from_pytorch3d(R: torch.Tensor, T: torch.Tensor, focal_length, principal_point,
                          image_size: Union[Sequence[int], torch.Tensor], in_ndc: bool = True,
                          near: float = 1e-3, far: float = 1e6) -> Camera:
    """Build a lumigrad ``Camera`` from PyTorch3D ``PerspectiveCameras`` parameters.

    Args:
        R: rotations ``[*B, 3, 3]`` for row vectors (``X_view = X_world @ R + T``).
        T: translations ``[*B, 3]``.
        focal_length: a number, ``[*B]``, ``[*B, 1]`` (square pixels) or ``[*B, 2]`` ``(fx, fy)``; NDC units
            if ``in_ndc`` else pixels.
        principal_point: ``[*B, 2]`` ``(px, py)``; NDC units if ``in_ndc`` else pixels.
        image_size: ``(H, W)``, or ``[*B, 2]`` rows that must all be equal (a ``Camera`` has one size).
        in_ndc: whether ``focal_length`` and ``principal_point`` are in NDC (PyTorch3D's default) or screen
            space.
        near, far: the depth range of the returned camera.

    Returns:
        a ``Camera`` with ``K [*B, 3, 3]`` and ``world_to_cam [*B, 4, 4]`` in ``R``'s dtype and device,
        differentiable in ``R``, ``T``, ``focal_length`` and ``principal_point``.

    Example:
        >>> cam = camera_from_pytorch3d(torch.eye(3), torch.tensor([0., 0, 3]), 1.0, torch.zeros(2), (64, 64))
        >>> cam.project(torch.tensor([[1., 0, 0]]))[0]   # PyTorch3D's +X is to the left of the centre
        tensor([[21.3333, 32.0000]])
    """
    check_tensor(R, "R", trailing=(3, 3), floating=True, finite=True)
    check_tensor(T, "T", trailing=(3,), floating=True, finite=True, device=R.device)
    batch = torch.broadcast_shapes(R.shape[:-2], T.shape[:-1])
    f = torch.as_tensor(focal_length, dtype=R.dtype, device=R.device)
    if f.dim() == 0 or (f.dim() == len(batch) and tuple(f.shape) == tuple(batch) and len(batch) > 0):
        f = f[..., None]
    if f.dim() == 0 or f.shape[-1] not in (1, 2):
        raise ValueError(f"focal_length must be a number or have shape [*B], [*B, 1] or [*B, 2]; got {tuple(f.shape)}")
    f = f.expand(f.shape[:-1] + (2,))
    pp = torch.as_tensor(principal_point, dtype=R.dtype, device=R.device)
    check_tensor(pp, "principal_point", trailing=(2,), finite=True)
    H, W = _image_size(image_size)
    if in_ndc:
        K = K_from_pytorch3d_ndc(*torch.broadcast_tensors(f, pp), W, H)
    else:
        f, pp = torch.broadcast_tensors(f, pp)
        zeros, ones = torch.zeros_like(f[..., 0]), torch.ones_like(f[..., 0])
        K = torch.stack([f[..., 0], zeros, pp[..., 0], zeros, f[..., 1], pp[..., 1], zeros, zeros, ones],
                        -1).reshape(f.shape[:-1] + (3, 3))
    return Camera(K=K, world_to_cam=pytorch3d_to_world_to_cam(R, T), width=W, height=H, near=near, far=far)


def _image_size(image_size) -> Tuple[int, int]:
    size = torch.as_tensor(image_size).reshape(-1, 2) if not isinstance(image_size, torch.Tensor) \
        else image_size.detach().reshape(-1, 2)
    if size.numel() == 0 or bool((size != size[:1]).any()):
        raise ValueError(f"image_size must be (H, W) or rows of one (H, W); got {size.tolist()}")
    H, W = (int(v) for v in size[0])
    if H <= 0 or W <= 0 or bool((size[0] != size[0].round()).any()):
        raise ValueError(f"image_size must hold positive integers (H, W); got {size[0].tolist()}")
    return H, W
