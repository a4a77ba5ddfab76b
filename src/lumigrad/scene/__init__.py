"""Scenes: typed shapes, materials, lights, cameras and a film, rendered by :func:`lumigrad.render`.

The renderer-level functions that used to live here (``render``, ``render_geometry``, the ``geometry_buffers`` and
``gradient_check`` modules) are in :mod:`lumigrad.integrators`, above the scene; their old names are attached to
this package, deprecated, by :mod:`lumigrad.integrators.deprecated`, so nothing here imports the integrators.
"""

from .from_mesh import scene_from_mesh
from .light_types import LIGHT_TYPES, LightType, Setting, register_light_type
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .params import PARAM_KINDS, ParamInfo
from .scene import Film, Scene, SceneMesh
from .shape import Shape, ShapeTriangles
from .skinned import SkinnedMesh
from .rigid_nodes import RigidNodes
from .volume_shape import VolumeShape
from .flatten import Triangles, flatten
from .deform import deformed_scene

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "LIGHT_TYPES", "Light", "LightType",
           "PARAM_KINDS", "ParamInfo", "PointLight",
           "RigidNodes", "SHLight", "Scene", "SceneMesh", "Setting", "Shape", "VolumeShape",
           "ShapeTriangles", "SkinnedMesh", "SpotLight", "Triangles", "deformed_scene", "flatten", "register_light_type",
           "scene_from_mesh"]

