"""Hard rasterization and its differentiable companions: interpolate, texture, antialias; soft rasterization."""

from .antialias import antialias
from .fragments import Fragments
from .interpolate import interpolate
from .lens_warp import distort_image, distort_index_image, lens_sample_grid, render_through_lens
from .rasterize import depth_peel, rasterize
from .soft import SoftRaster, soft_rasterize
from .texture import build_mipmaps, texel_cache, texture

__all__ = ["Fragments", "antialias", "build_mipmaps", "depth_peel", "distort_image", "distort_index_image", "interpolate", "lens_sample_grid", "rasterize", "render_through_lens", "SoftRaster", "soft_rasterize", "texel_cache", "texture"]
