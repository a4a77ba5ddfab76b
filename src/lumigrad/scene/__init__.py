"""Scenes: typed shapes, materials, lights, cameras and a film, rendered by :func:`lumigrad.render`."""

from .from_mesh import scene_from_mesh
from .geometry_buffers import render_geometry
from .light_types import LIGHT_TYPES, LightType, Setting, register_light_type
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .params import PARAM_KINDS, ParamInfo
from .scene import Film, Scene, SceneMesh
from .shape import Shape, ShapeTriangles
from .flatten import Triangles, flatten

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "LIGHT_TYPES", "Light", "LightType",
           "PARAM_KINDS", "ParamInfo", "PointLight", "SHLight", "Scene", "SceneMesh", "Setting", "Shape",
           "ShapeTriangles", "SpotLight", "Triangles", "flatten", "register_light_type", "render",
           "render_geometry", "scene_from_mesh"]


def __getattr__(name: str):
    # ``lumigrad.scene.render`` lives on as a name: renderers are integrators now (lumigrad.integrators),
    # which sit above the scene, so it is looked up on first use.
    if name == "render":
        from ..integrators import render

        return render
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
