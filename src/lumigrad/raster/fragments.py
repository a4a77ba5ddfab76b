"""The ``Fragments`` record that ``rasterize`` returns and the other raster ops read.

Per-pixel surface quantities are stored compactly, one row per covered pixel (``covered``), and expanded to
dense ``[..., H, W, ...]`` images only when a dense attribute is read. The raster ops work on the compact
rows, so a pipeline never pays for scattering (and back-propagating through) background pixels.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch

_depth_shape_announced = False  # Fragments.depth's shape change is announced once per process


class Fragments:
    """Per-pixel visibility of one rasterized layer.

    Attributes:
        face_ids: ``[..., H, W]`` int32, index of the visible face, ``-1`` for background.
        covered: ``[P]`` int64 flat indices of the covered pixels into ``face_ids.reshape(-1)``, ascending.
        bary_covered: ``[P, 3]`` barycentrics of each covered pixel centre (perspective-correct; affine in the
            pixel position for an orthographic camera).
        depth_covered: ``[P]`` camera-frame z of each covered pixel.
        bary_derivs_covered: ``[P, 3, 2]`` ``d bary / d(u, v)`` per covered pixel, or None.
        zbuf: ``[..., H, W]`` float32 kernel depth (inf on background), used by depth peeling and antialias.
        num_faces: how many faces were rasterized (every id is below it), or None when unknown; lets the ops
            that take ``faces`` check the ids without reading them.

    Dense views (computed on first access, differentiable like the compact rows):
        bary ``[..., H, W, 3]``, depth ``[..., H, W, 1]``, bary_derivs ``[..., H, W, 3, 2]`` (zero on background).

    ``depth`` has a trailing channel, as every image in lumigrad (``[..., H, W, C]``), the ``depth`` buffer of
    :func:`lumigrad.render_geometry` and ``lumigrad.render(..., aovs=("depth",))``, PyTorch3D's ``zbuf``
    (``[N, H, W, faces_per_pixel]``) and nvdiffrast's ``rast[..., 2:3]``. In lumigrad 0.1.0 it was
    ``[..., H, W]``; the first read in a process warns once (``FutureWarning``) about the change: use
    ``depth[..., 0]`` for a ``[..., H, W]`` map (or ``depth_covered`` for the covered pixels' rows).
    """

    def __init__(self, face_ids: torch.Tensor, covered: torch.Tensor, bary_covered: torch.Tensor,
                 depth_covered: torch.Tensor, bary_derivs_covered: Optional[torch.Tensor] = None,
                 zbuf: Optional[torch.Tensor] = None, num_faces: Optional[int] = None):
        self.face_ids = face_ids
        self.covered = covered
        self.bary_covered = bary_covered
        self.depth_covered = depth_covered
        self.bary_derivs_covered = bary_derivs_covered
        self.zbuf = zbuf
        self.num_faces = num_faces
        self._dense = {}

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

    def to_dense(self, values: torch.Tensor) -> torch.Tensor:
        """Scatter per-covered-pixel rows ``[P, ...]`` into a zero image ``[..., H, W, ...]`` (differentiable)."""
        out = values.new_zeros((self.face_ids.numel(),) + values.shape[1:])
        return out.index_copy(0, self.covered, values).reshape(self.face_ids.shape + values.shape[1:])

    def restrict(self, keep: torch.Tensor) -> "Fragments":
        """These fragments with only the covered rows where ``keep [P]`` (bool) is True; the other pixels become
        background (``face_ids`` -1). ``zbuf`` is kept as it was; the rows keep their autograd graph."""
        rows = keep.nonzero()[:, 0]
        dropped = torch.ones(self.face_ids.numel(), dtype=torch.bool, device=keep.device)
        dropped[self.covered.index_select(0, rows)] = False
        face_ids = self.face_ids.masked_fill(dropped.reshape(self.face_ids.shape), -1)
        derivs = self.bary_derivs_covered
        return Fragments(face_ids, self.covered.index_select(0, rows), self.bary_covered.index_select(0, rows),
                         self.depth_covered.index_select(0, rows),
                         None if derivs is None else derivs.index_select(0, rows), self.zbuf, self.num_faces)

    def _lazy(self, key, values):
        if values is None:
            return None
        if key not in self._dense:
            self._dense[key] = self.to_dense(values)
        return self._dense[key]

    @property
    def bary(self) -> torch.Tensor:
        return self._lazy("bary", self.bary_covered)

    @property
    def depth(self) -> torch.Tensor:
        """``[..., H, W, 1]`` camera-frame z of the visible surface, 0 on background (see the class docstring)."""
        global _depth_shape_announced
        if not _depth_shape_announced:
            _depth_shape_announced = True
            warnings.warn("Fragments.depth is now [..., H, W, 1] (it was [..., H, W] in lumigrad 0.1.0), like "
                          "render_geometry's depth and every image; index it with depth[..., 0] for the old shape. "
                          "This warning is shown once per process and goes away in the next release.",
                          FutureWarning, stacklevel=2)
        return self._lazy("depth", self.depth_covered[:, None])

    @property
    def bary_derivs(self) -> Optional[torch.Tensor]:
        return self._lazy("bary_derivs", self.bary_derivs_covered)

    def __repr__(self) -> str:
        return (f"Fragments(batch_shape={tuple(self.batch_shape)}, height={self.height}, width={self.width}, "
                f"covered={self.covered.numel()}, derivs={self.bary_derivs_covered is not None})")
