"""Scenes: named meshes, materials, lights, cameras and a film, rendered by :func:`render`."""

from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .render import render
from .scene import Film, Scene, SceneMesh

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "Light", "PointLight", "SHLight", "Scene",
           "SceneMesh", "SpotLight", "render"]
