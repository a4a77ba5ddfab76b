"""Checks shared by the camera-format writers."""

from __future__ import annotations

import warnings

import torch

from ..cameras.camera import Camera


def exportable_K(cam: Camera, label: str, format_name: str) -> torch.Tensor:
    """Return ``cam``'s ``K`` as float64 on the CPU after checking the format can store the camera.

    Writers store one unbatched perspective camera without skew; anything else raises ``ValueError`` naming
    ``label`` (for example ``cameras['img.png']``). A thin lens, which such formats cannot hold, is written as
    its pinhole with a warning.
    """
    if tuple(cam.batch_shape) != ():
        raise ValueError(f"{label} must be a single (unbatched) Camera; got batch_shape {tuple(cam.batch_shape)}")
    if cam.projection != "perspective":
        raise ValueError(f"{label} is {cam.projection}; {format_name} cameras are perspective")
    if cam.thin_lens:
        warnings.warn(f"{label} has a thin lens (aperture_radius, focus_distance), which {format_name} cannot hold; "
                      f"written as its pinhole", stacklevel=3)
    K = cam.K.detach().cpu().double()
    if float(K[0, 1]) != 0.0:
        raise ValueError(f"{label} has skew K[0, 1] = {float(K[0, 1])}; {format_name} cameras have none")
    return K
