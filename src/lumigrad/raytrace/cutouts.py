"""The scene's alpha for the ray tracer: which surfaces a ray passes (glTF ``alphaMode`` ``"MASK"`` and ``"BLEND"``).

:func:`cutout_tables` reads the materials into the kernels' :class:`lumigrad.kernels.cutouts.CutoutTables`
(None when every material is opaque), and :class:`VisibleBVH` is a scene's BVH whose ``closest_hit`` and
``occluded`` pass through what they cut out, so that every ray of the path tracer (camera, BSDF and shadow rays,
edge and connection rays) sees the same surfaces. How a surface is read is the raster integrator's rule
(``docs/scene.md``, transparency): alpha ``a = base_color_factor[3] * base_color_texture[..., 3]``, a masked surface
absent where ``a < alpha_cutoff``, a blended one present with probability ``clamp(a, 0, 1)`` (stochastic
transparency: in expectation the raster's compositing).

**Differentiability:** none. Visibility decisions carry no gradient: alpha gets none in the path tracer, and the
alpha contour inside a triangle is not an edge the boundary terms sample.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch

from ..kernels.bvh import TriangleBVH
from ..kernels.cutouts import CUT_BLEND, CUT_MASK, CUT_OPAQUE, CutoutTables

__all__ = ["VisibleBVH", "cutout_tables"]

_MODES = {"OPAQUE": CUT_OPAQUE, "MASK": CUT_MASK, "BLEND": CUT_BLEND}
_WRAPS = {"repeat": 0, "clamp": 1, "mirror": 2}


def cutout_tables(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                  face_part: torch.Tensor, materials: Sequence, blend: bool = True) -> Optional[CutoutTables]:
    """The :class:`CutoutTables` of a flattened scene (``verts [V, 3]``, ``faces [F, 3]``, ``uv [T, 2]``,
    ``uv_faces [F, 3]``, ``face_part [F]``, one material per part), or None when every material is opaque
    (``blend`` False: ``"BLEND"`` parts count as opaque)."""
    modes = [_MODES[m.alpha_mode] if blend or m.alpha_mode != "BLEND" else CUT_OPAQUE for m in materials]
    if not any(modes):
        return None
    dev = verts.device
    i32, f32 = torch.int32, torch.float32
    textures: List[torch.Tensor] = []
    part_texture, offsets, widths, heights, wraps = [], [], [], [], []
    at = 0
    for m, mode in zip(materials, modes):
        tex = m.base_color_texture
        if mode == CUT_OPAQUE or tex is None or tex.shape[-1] < 4:
            part_texture.append(-1)
            continue
        alpha = tex.detach()[..., 3].to(dev, f32)
        H, W = alpha.shape
        part_texture.append(len(offsets))
        offsets.append(at)
        widths.append(W)
        heights.append(H)
        wraps.append(_WRAPS[m.wrap])
        textures.append(alpha.reshape(-1, 1).expand(-1, 3))
        at += H * W
    col = lambda values, dtype: torch.tensor(values or [0], dtype=dtype, device=dev)  # noqa: E731
    has_uv = uv is not None and uv.numel() > 0
    return CutoutTables(
        verts=verts.detach().to(f32).contiguous(), faces=faces.detach().to(dev, i32).reshape(-1).contiguous(),
        face_part=face_part.detach().to(dev, i32).contiguous(), part_mode=col(modes, i32),
        part_alpha=col([float(m.base_color_factor.detach().reshape(-1)[3]) for m in materials], f32),
        part_cutoff=col([float(m.alpha_cutoff) for m in materials], f32), part_texture=col(part_texture, i32),
        uvs=uv.detach().to(dev, f32).reshape(-1, 2).contiguous() if has_uv else torch.zeros(1, 2, device=dev),
        uv_faces=(uv_faces.detach().to(dev, i32).reshape(-1).contiguous() if has_uv
                  else torch.zeros(faces.shape[0] * 3, dtype=i32, device=dev)),
        tex_offset=col(offsets, i32), tex_width=col(widths, i32), tex_height=col(heights, i32),
        tex_wrap=col(wraps, i32),
        texels=torch.cat(textures).contiguous() if textures else torch.zeros(1, 3, device=dev))


class VisibleBVH:
    """A scene's :class:`TriangleBVH` whose ray queries pass through the surfaces ``cutouts`` cuts out (None:
    the BVH's own queries); everything else is the BVH's."""

    def __init__(self, bvh: TriangleBVH, cutouts: Optional[CutoutTables]):
        self.bvh, self.cutouts = bvh, cutouts

    def closest_hit(self, origins: torch.Tensor, directions: torch.Tensor, t_max=math.inf):
        return self.bvh.closest_hit(origins, directions, t_max, cutouts=self.cutouts)

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor, t_max=math.inf) -> torch.Tensor:
        return self.bvh.occluded(origins, directions, t_max, cutouts=self.cutouts)

    def query_handles(self, cutouts: Optional[CutoutTables] = None) -> tuple:
        return self.bvh.query_handles(self.cutouts if cutouts is None else cutouts)

    def __getattr__(self, name):
        return getattr(self.bvh, name)
