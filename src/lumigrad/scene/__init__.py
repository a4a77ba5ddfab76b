"""Scenes: named meshes, materials, lights, cameras and a film, rendered by :func:`render`."""

from .from_mesh import scene_from_mesh
from .geometry_buffers import render_geometry
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .render import render
from .scene import Film, Scene, SceneMesh

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "Light", "PointLight", "SHLight", "Scene",
           "SceneMesh", "SpotLight", "render", "render_geometry", "scene_from_mesh"]
