"""Scenes: typed shapes, materials, lights, cameras and a film, rendered by :func:`render`."""

from .from_mesh import scene_from_mesh
from .geometry_buffers import render_geometry
from .light_types import LIGHT_TYPES, LightType, Setting, register_light_type
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .params import PARAM_KINDS, ParamInfo
from .render import render
from .scene import Film, Scene, SceneMesh
from .shape import Shape, ShapeTriangles
from .flatten import Triangles, flatten

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "LIGHT_TYPES", "Light", "LightType",
           "PARAM_KINDS", "ParamInfo", "PointLight", "SHLight", "Scene", "SceneMesh", "Setting", "Shape",
           "ShapeTriangles", "SpotLight", "Triangles", "flatten", "register_light_type", "render",
           "render_geometry", "scene_from_mesh"]
