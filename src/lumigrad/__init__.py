"""lumigrad: differentiable rendering for PyTorch, on CPU and CUDA, with no compile step.

The four composable raster primitives ``rasterize -> interpolate -> texture -> antialias`` and the
``Camera`` they share are exported here; conventions are in :mod:`lumigrad.conventions`.
"""

from .threads import get_num_threads, set_num_threads  # first: OpenMP's wait policy must precede torch
from . import animation, conventions, data, io, scene, shading
from . import integrators
from . import fitting, geometry, losses, optim
from . import physics  # Newton (optional extra) is imported only when a PhysicsSystem is built
from .cameras import Camera, pinhole_cover
from .mesh import Mesh, vertex_normals
from .raster import (Fragments, antialias, build_mipmaps, depth_peel, distort_image, interpolate, rasterize,
                     render_through_lens, soft_rasterize, texture)
from .scene import (AreaLight, DirectionalLight, EnvironmentLight, Film, PointLight, Scene, SceneMesh, SHLight,
                    SpotLight, SkinnedMesh, scene_from_mesh)
from .integrators import RenderOutput, render, render_geometry, render_sequence, render_tiled, tiled_loss
from .shading import Material
from .io import preview

__version__ = "0.1.0"

__all__ = [
    "AreaLight",
    "Camera",
    "DirectionalLight",
    "EnvironmentLight",
    "Film",
    "Material",
    "PointLight",
    "SHLight",
    "Scene",
    "SceneMesh",
    "SkinnedMesh",
    "animation",
    "SpotLight",
    "render", "render_tiled", "tiled_loss",
    "render_geometry",
    "preview",
    "render_sequence",
    "RenderOutput",
    "integrators",
    "scene_from_mesh",
    "Fragments",
    "Mesh",
    "antialias",
    "build_mipmaps",
    "conventions",
    "fitting",
    "data",
    "io",
    "depth_peel",
    "distort_image",
    "interpolate",
    "pinhole_cover",
    "rasterize",
    "shading",
    "render_through_lens",
    "soft_rasterize",
    "texture",
    "vertex_normals",
    "get_num_threads", "set_num_threads", "threads",
]
