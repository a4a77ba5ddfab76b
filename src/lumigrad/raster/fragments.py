"""The ``Fragments`` record that ``rasterize`` returns and the other raster ops read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class Fragments:
    """Per-pixel visibility of one rasterized layer.

    Attributes:
        face_ids: ``[..., H, W]`` int32, index of the visible face, ``-1`` for background.
        depth: ``[..., H, W]`` camera-frame z of the visible surface (0 on background); differentiable.
        bary: ``[..., H, W, 3]`` perspective-correct barycentrics of the pixel centre in the visible face
            (0 on background); differentiable in the vertices and the camera.
        bary_derivs: ``[..., H, W, 3, 2]`` screen-space derivatives ``d bary / d(u, v)`` per pixel, or None.
        covered: ``[P]`` int64 flat indices of the covered pixels into ``face_ids.reshape(-1)``.
        zbuf: ``[..., H, W]`` float32 kernel depth (inf on background), used for depth peeling.
    """

    face_ids: torch.Tensor
    depth: torch.Tensor
    bary: torch.Tensor
    bary_derivs: Optional[torch.Tensor] = None
    covered: torch.Tensor = field(default=None, repr=False)
    zbuf: torch.Tensor = field(default=None, repr=False)

    @property
    def mask(self) -> torch.Tensor:
        """``[..., H, W]`` bool, True where a face is visible."""
        return self.face_ids >= 0

    @property
    def batch_shape(self) -> torch.Size:
        return self.face_ids.shape[:-2]

    @property
    def height(self) -> int:
        return self.face_ids.shape[-2]

    @property
    def width(self) -> int:
        return self.face_ids.shape[-1]

    def covered_faces(self) -> torch.Tensor:
        """``[P]`` int64 face index of each covered pixel, in the order of ``covered``."""
        return self.face_ids.reshape(-1)[self.covered].long()
