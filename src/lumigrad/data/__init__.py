"""Small assets embedded in the package (see each folder's SOURCE.md for origin and licence)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def spot_paths():
    """Return ``(obj_path, texture_path)`` of the embedded Spot cow by Keenan Crane (public domain)."""
    return DATA_DIR / "spot" / "spot_triangulated.obj", DATA_DIR / "spot" / "spot_texture.png"


def load_spot():
    """Load the embedded Spot cow as a :class:`lumigrad.Mesh` with its 1024^2 albedo texture."""
    from ..io.obj import read_mesh

    obj, tex = spot_paths()
    return read_mesh(obj, tex)


def cornell_box_path():
    """Path of the embedded Cornell box OBJ (Cardenas and McGuire, CC BY 3.0; its MTL beside it)."""
    return DATA_DIR / "cornell_box" / "CornellBox-Original.obj"


def load_cornell_box():
    """The embedded Cornell box as a :class:`lumigrad.Scene`: one mesh per material, the emissive ceiling quad
    as an :class:`~lumigrad.scene.AreaLight` named ``"lamp"`` (radiance ``Ke = (17, 12, 4)``)."""
    from ..io.registry import load
    from ..scene.from_mesh import as_scene
    from ..scene.lights import AreaLight

    scene = as_scene(load(cornell_box_path()), "cornell_box")
    lamp = scene.meshes.pop("mesh_light")
    scene.add_light("lamp", AreaLight(lamp.verts, lamp.faces, lamp.material.emissive_factor))
    return scene
