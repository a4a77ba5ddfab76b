"""lumigrad: differentiable rendering for PyTorch, on CPU and CUDA, with no compile step.

The four composable raster primitives ``rasterize -> interpolate -> texture -> antialias`` and the
``Camera`` they share are exported here; conventions are in :mod:`lumigrad.conventions`.

``import lumigrad`` itself loads only :mod:`lumigrad.threads` (no torch, no warp): the first use of any other
name (``lumigrad.render``, ``from lumigrad import Camera``, ``lumigrad.io``) loads the whole library, torch and
Warp included, as an eager import would have. The ``lumigrad`` command parses its arguments and prints its
help before that, so ``lumigrad --help`` answers at once.
"""

from typing import TYPE_CHECKING

from . import threads  # first, and light: OpenMP's wait policy must be set before anything loads torch
from .threads import get_num_threads, set_num_threads

if TYPE_CHECKING:  # what the names below are, for type checkers and IDEs (at run time they load on first use)
    from . import (animation, conventions, data, fitting, geometry, integrators, io, losses, optim, physics, scene,
                   shading)
    from .cameras import Camera, pinhole_cover
    from .integrators import RenderOutput, render, render_geometry, render_sequence, render_tiled, tiled_loss
    from .mesh import Mesh, vertex_normals
    from .raster import (Fragments, antialias, build_mipmaps, depth_peel, distort_image, interpolate, rasterize,
                         render_through_lens, soft_rasterize, texture)
    from .scene import (AreaLight, DirectionalLight, EnvironmentLight, Film, PointLight, Scene, SceneMesh, SHLight,
                        SpotLight, SkinnedMesh, scene_from_mesh)
    from .shading import Material
    from .io import preview

_loading = False
_loaded = False


def _load_library() -> None:
    """Import the library behind ``lumigrad.*`` (torch, Warp, every subpackage) into this module, once."""
    global _loading
    _loading = True
    try:
        from . import animation, conventions, data, io, scene, shading
        from . import integrators
        from . import fitting, geometry, losses, optim
        from . import physics  # Newton (optional extra) is imported only when a PhysicsSystem is built
        from .cameras import Camera, pinhole_cover
        from .mesh import Mesh, vertex_normals
        from .raster import (Fragments, antialias, build_mipmaps, depth_peel, distort_image, interpolate, rasterize,
                             render_through_lens, soft_rasterize, texture)
        from .scene import (AreaLight, DirectionalLight, EnvironmentLight, Film, PointLight, Scene, SceneMesh,
                            SHLight, SpotLight, SkinnedMesh, scene_from_mesh)
        from .integrators import RenderOutput, render, render_geometry, render_sequence, render_tiled, tiled_loss
        from .shading import Material
        from .io import preview

        globals().update(locals())
    finally:
        _loading = False


def __getattr__(name: str):
    """Load the library on the first use of a name it has not yet (``lumigrad.render``, ``lumigrad.io`` ...)."""
    global _loaded
    if not (_loaded or _loading or name.startswith("__")):
        _load_library()
        _loaded = True
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module 'lumigrad' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
