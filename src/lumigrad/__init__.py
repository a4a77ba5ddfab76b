"""lumigrad: differentiable rendering for PyTorch, on CPU and CUDA, with no compile step.

The four composable raster primitives ``rasterize -> interpolate -> texture -> antialias`` and the
``Camera`` they share are exported here; conventions are in :mod:`lumigrad.conventions`.
"""

from . import conventions, data, io
from .cameras import Camera
from .mesh import Mesh, vertex_normals
from .raster import Fragments, antialias, build_mipmaps, depth_peel, interpolate, rasterize, texture

__version__ = "0.1.0"

__all__ = [
    "Camera",
    "Fragments",
    "Mesh",
    "antialias",
    "build_mipmaps",
    "conventions",
    "data",
    "io",
    "depth_peel",
    "interpolate",
    "rasterize",
    "texture",
    "vertex_normals",
]
