"""Hard rasterization and its differentiable companions: interpolate, texture, antialias."""

from .antialias import antialias
from .fragments import Fragments
from .interpolate import interpolate
from .rasterize import depth_peel, rasterize
from .texture import build_mipmaps, texture

__all__ = ["Fragments", "antialias", "build_mipmaps", "depth_peel", "interpolate", "rasterize", "texture"]
