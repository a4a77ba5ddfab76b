"""Scenes: named meshes, materials, lights, cameras and a film, rendered by :func:`render`."""

from .from_mesh import scene_from_mesh
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .render import render
from .scene import Film, Scene, SceneMesh

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "Light", "PointLight", "SHLight", "Scene",
           "SceneMesh", "SpotLight", "render", "scene_from_mesh"]
