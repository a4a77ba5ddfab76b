"""Scenes: named meshes, materials, lights, cameras and a film, rendered by :func:`lumigrad.render`."""

from .from_mesh import scene_from_mesh
from .geometry_buffers import render_geometry
from .lights import AreaLight, DirectionalLight, EnvironmentLight, Light, PointLight, SHLight, SpotLight
from .scene import Film, Scene, SceneMesh

__all__ = ["AreaLight", "DirectionalLight", "EnvironmentLight", "Film", "Light", "PointLight", "SHLight", "Scene",
           "SceneMesh", "SpotLight", "render", "render_geometry", "scene_from_mesh"]


def __getattr__(name: str):
    # ``lumigrad.scene.render`` lives on as a name: renderers are integrators now (lumigrad.integrators),
    # which sit above the scene, so it is looked up on first use.
    if name == "render":
        from ..integrators import render

        return render
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
