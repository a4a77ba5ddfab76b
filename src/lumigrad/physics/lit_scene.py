"""``lit_scene``: a simulated surface mesh under a sky and a sun, in the physics world (+z up, Newton's)."""

from __future__ import annotations

from typing import Sequence

import torch

from .._checks import check_mesh, check_number, check_tensor
from ..scene import DirectionalLight, Scene, SceneMesh, SHLight
from ..shading.material import Material

__all__ = ["lit_scene"]

#: Where the sun shines to in :func:`lit_scene`: down (-z), from behind the viewer's right of a camera on -y.
SUN_DIRECTION = (-0.3, 0.5, -1.0)


def lit_scene(verts: torch.Tensor, faces: torch.Tensor, color: Sequence[float] = (0.8, 0.5, 0.3), *,
              roughness: float = 0.9, sun: float = 2.0, name: str = "body") -> Scene:
    """A :class:`~lumigrad.Scene` of one matte mesh (e.g. each frame of a simulated soft body) lit for a +z-up world.

    The mesh ``name`` is a dielectric (``metallic 0``) of base colour ``color`` and ``roughness``; the lights are a
    sky, ``SHLight`` with the constant band 1 and the linear +z band 0.3 (brighter from above), and a sun,
    a :class:`~lumigrad.scene.DirectionalLight` of irradiance ``sun`` shining along :data:`SUN_DIRECTION`.

    Args:
        verts: ``[V, 3]`` world positions (float). faces: ``[F, 3]`` counter-clockwise front faces.
        color: linear RGB base colour, three numbers in [0, 1].
        roughness: in [0, 1]. sun: the sun's irradiance (>= 0). name: the mesh's name in the scene.

    **Differentiability:** the scene holds ``verts`` as they are, so a render of it is differentiable in them
    (what :func:`lumigrad.render` gives for mesh vertices).

    Example: ``lumigrad.render(lit_scene(q[i], body.surface_faces), camera).rgba`` renders frame ``i`` of a
    simulation ``q = simulate(...)`` (examples 16 and 17).
    """
    check_mesh(verts, faces, what="lit_scene")
    dtype = verts.dtype
    base = check_tensor(torch.as_tensor(color, dtype=dtype), "color", trailing=(3,), max_dims=1, finite=True)
    if bool(((base < 0) | (base > 1)).any()):
        raise ValueError(f"color must hold three numbers in [0, 1]; got {base.tolist()}")
    roughness = check_number(roughness, "roughness", lo=0.0, hi=1.0)
    sun = check_number(sun, "sun", lo=0.0)
    scene = Scene()
    material = Material(base_color_factor=torch.cat([base, base.new_ones(1)]), metallic_factor=0.0,
                        roughness_factor=roughness)
    scene.add_mesh(name, SceneMesh(verts, faces, material))
    sh = torch.zeros(9, 3, dtype=dtype)
    sh[0], sh[2] = 1.0, 0.3  # constant band; the linear band along +z
    scene.add_light("sky", SHLight(sh))
    scene.add_light("sun", DirectionalLight(torch.tensor(SUN_DIRECTION, dtype=dtype), sun))
    return scene
