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
