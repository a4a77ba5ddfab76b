"""One entry point for every file format: ``load(path)`` and ``save(path, obj)`` pick the reader / writer.

Readers return lumigrad types in lumigrad's conventions (foreign conventions are converted by the format's
module, once): meshes as :class:`lumigrad.Mesh` or :class:`lumigrad.io.PlyMesh`, glTF as a
:class:`lumigrad.Scene`, Mitsuba 3 ``.xml`` scenes as a :class:`lumigrad.Scene`, images as ``[H, W, C]`` float tensors, camera datasets as their reconstruction
records. ``formats()`` lists what is registered; ``register_format`` adds a reader or writer.

Dispatch: by the lower-case suffix; a folder is a COLMAP sparse model; a ``.json`` file is a NeRF
``transforms.json`` when it has ``frames``, else an OpenSfM ``reconstruction.json`` when it is a list.

Files named inside the file that is loaded (an OBJ's ``mtllib`` and textures, glTF buffers and images, NeRF
``file_path``, a Mitsuba scene's ``filename`` and ``<include>``) are read only from inside its folder; ``load(path, trust_paths=True)`` is the opt-in for
files you trust (see :mod:`lumigrad.io._paths`).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from ._paths import parse_json

__all__ = ["formats", "load", "register_format", "save"]


@dataclass
class _Format:
    what: str
    reader: Optional[Callable[..., Any]] = None
    writer: Optional[Callable[..., None]] = None


_FORMATS: Dict[str, _Format] = {}


def register_format(suffix: str, what: str, *, reader: Optional[Callable[..., Any]] = None,
                    writer: Optional[Callable[..., None]] = None) -> None:
    """Register (or replace) the reader ``reader(path, **kw)`` and / or writer ``writer(path, obj, **kw)`` of
    files ending in ``suffix`` (e.g. ``".ply"``). A reader that follows file names written inside the file
    should take the keyword ``trust_paths`` (``load`` passes it on) and confine those names with
    :func:`lumigrad.io._paths.confined_path`."""
    if not suffix.startswith(".") or suffix != suffix.lower():
        raise ValueError(f"suffix must be lower case and start with '.'; got {suffix!r}")
    if reader is None and writer is None:
        raise ValueError("register_format needs a reader, a writer or both")
    old = _FORMATS.get(suffix)
    _FORMATS[suffix] = _Format(what, reader or (old.reader if old else None), writer or (old.writer if old else None))


def formats() -> Dict[str, str]:
    """``{suffix: "what (read, write)"}`` for every registered format."""
    out = {}
    for suffix, f in sorted(_FORMATS.items()):
        modes = ", ".join(m for m, fn in (("read", f.reader), ("write", f.writer)) if fn is not None)
        out[suffix] = f"{f.what} ({modes})"
    return out


def load(path: str | os.PathLike, *, trust_paths: bool = False, **kw) -> Any:
    """Read ``path`` with the reader its suffix (or folder layout) calls for; ``kw`` go to that reader.

    Args:
        path: the file (or COLMAP model folder).
        trust_paths: let the reader follow file names inside the file that are absolute or lead outside its
            folder (OBJ ``mtllib`` / textures, glTF URIs, NeRF ``file_path``, COLMAP image names). Leave False
            for files from elsewhere; formats that name no other file ignore it.
        kw: passed on to the reader.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: no reader handles it (the message lists the formats that are read).
        ConfinementError: (a ``ValueError``) the file names a file outside its folder, or one that is not a
            regular file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_dir():
        from .colmap import read_colmap

        return read_colmap(p, trust_paths=trust_paths, **kw)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _load_json(p, trust_paths=trust_paths, **kw)
    f = _FORMATS.get(suffix)
    if f is None or f.reader is None:
        readable = sorted(s for s, f in _FORMATS.items() if f.reader) + [".json (NeRF, OpenSfM)", "folder (COLMAP)"]
        raise ValueError(f"{p}: no reader for {suffix or 'files without a suffix'!r}; lumigrad reads "
                         f"{', '.join(readable)}")
    return f.reader(p, **_with_trust(f.reader, trust_paths), **kw)


def _with_trust(reader: Callable[..., Any], trust_paths: bool) -> Dict[str, bool]:
    """``{"trust_paths": trust_paths}`` when ``reader`` takes that keyword, else ``{}`` (the format names no
    other file, so there is nothing to trust)."""
    try:
        params = inspect.signature(reader).parameters
    except (TypeError, ValueError):
        return {}
    return {"trust_paths": trust_paths} if "trust_paths" in params else {}


def save(path: str | os.PathLike, obj: Any, **kw) -> None:
    """Write ``obj`` to ``path`` with the writer its suffix calls for; ``kw`` go to that writer.

    Raises:
        ValueError: no writer handles the suffix (the message lists the formats that are written).
    """
    p = Path(path)
    f = _FORMATS.get(p.suffix.lower())
    if f is None or f.writer is None:
        writable = sorted(s for s, f in _FORMATS.items() if f.writer)
        raise ValueError(f"{p}: no writer for {p.suffix.lower() or 'files without a suffix'!r}; lumigrad writes "
                         f"{', '.join(writable)}")
    f.writer(p, obj, **kw)


def _load_json(p: Path, trust_paths: bool = False, **kw):
    data = parse_json(p.read_bytes(), source=p)
    if isinstance(data, dict) and "frames" in data:
        from .nerf import read_nerf_transforms

        return read_nerf_transforms(p, trust_paths=trust_paths, **kw)
    if isinstance(data, list):
        from .opensfm import read_opensfm

        return read_opensfm(p, **_with_trust(read_opensfm, trust_paths), **kw)
    raise ValueError(f"{p}: JSON that is neither a NeRF transforms.json (no 'frames') nor an OpenSfM "
                     "reconstruction.json (not a list)")


def _write_mesh(writer):
    """A writer that takes a :class:`lumigrad.Mesh`, a :class:`SceneMesh` / :class:`PlyMesh`-like object with
    ``verts`` and ``faces``, or a ``(verts, faces)`` pair; the OBJ writer also gets the object's ``uv`` /
    ``uv_faces`` and ``materials`` / ``material_names`` / ``face_materials`` (written as an MTL file)."""

    def write(path, obj, **kw):
        if isinstance(obj, tuple) and len(obj) == 2:
            verts, faces = obj
            return writer(path, verts, faces, **kw)
        if callable(getattr(obj, "flatten", None)) and hasattr(obj, "shapes"):  # a Scene: its meshes, world space
            return _write_scene_mesh(writer, path, obj, **kw)
        if not (hasattr(obj, "verts") and hasattr(obj, "faces")):
            raise TypeError(f"cannot write a {type(obj).__name__} as a mesh to {path}: pass a Mesh or (verts, faces)")
        extra = {}
        if writer.__name__ == "write_obj" and getattr(obj, "uv", None) is not None:
            extra = {"uv": obj.uv, "uv_faces": getattr(obj, "uv_faces", None)}
        if writer.__name__ == "write_obj" and getattr(obj, "materials", None) is not None:
            extra.update(materials=obj.materials, material_names=getattr(obj, "material_names", None),
                         face_materials=getattr(obj, "face_materials", None))
        return writer(path, obj.verts, obj.faces, **{**extra, **kw})

    return write


def _write_scene_mesh(writer, path, scene, **kw):
    """Every triangle shape of ``scene`` merged in world space (:meth:`Scene.flatten`); the OBJ writer also gets
    their texture coordinates and one material per distinct material, named after its first shape."""
    tri = scene.flatten()
    if tri.faces.shape[0] == 0:
        raise ValueError(f"cannot write {path}: the scene has no triangle shapes")
    verts = tri.verts.detach()
    if writer.__name__ != "write_obj":
        return writer(path, verts, tri.faces, **kw)
    names = []
    for k in range(len(tri.materials)):
        first = next(p.name for p in tri.parts if p.material_id == k)
        names.append("".join(c if c.isalnum() or c in "-_." else "_" for c in first))
    return writer(path, verts, tri.faces, uv=tri.uv.detach(), uv_faces=tri.uv_faces, materials=list(tri.materials),
                  material_names=names, face_materials=tri.face_material, **kw)


def _write_serialized(path, obj, **kw):
    """A mesh (``verts``, ``faces`` and what of ``normals``, per-vertex ``uv``, ``vertex_colors``, ``name`` it
    has), a ``(verts, faces)`` pair or a scene (its triangles merged in world space) as a ``.serialized`` file."""
    from .mesh_data import MeshData
    from .serialized import SerializedMesh, write_serialized_shapes

    if isinstance(obj, tuple) and len(obj) == 2:
        obj = SerializedMesh(verts=obj[0], faces=obj[1])
    elif callable(getattr(obj, "flatten", None)) and hasattr(obj, "shapes"):
        tri = obj.flatten()
        obj = SerializedMesh(verts=tri.verts.detach(), faces=tri.faces)
    elif not (hasattr(obj, "verts") and hasattr(obj, "faces")):
        raise TypeError(f"cannot write a {type(obj).__name__} as a mesh to {path}: pass a Mesh or (verts, faces)")
    elif not isinstance(obj, MeshData):  # (a Mesh, a SceneMesh: its local vertices and per-vertex normals)
        normals = getattr(obj, "normals", None)
        ok = isinstance(normals, torch.Tensor) and normals.shape == obj.verts.shape
        obj = SerializedMesh(verts=obj.verts.detach(), faces=obj.faces, normals=normals.detach() if ok else None)
    write_serialized_shapes(path, [obj], **kw)


def _register_builtin() -> None:
    from .exr import read_exr, write_exr
    from .gltf import read_gltf
    from .gltf_writer import write_gltf
    from .hdr import read_hdr, write_hdr
    from .image import read_image, write_image
    from .mitsuba_xml import read_mitsuba_xml
    from .obj import read_mesh, write_obj
    from .ply import read_ply, write_ply
    from .serialized import read_serialized

    register_format(".obj", "Wavefront OBJ mesh -> Mesh", reader=read_mesh, writer=_write_mesh(write_obj))
    register_format(".ply", "PLY mesh or point cloud -> PlyMesh", reader=read_ply, writer=_write_mesh(write_ply))
    register_format(".serialized", "Mitsuba serialized mesh -> SerializedMesh", reader=read_serialized,
                    writer=_write_serialized)
    for suffix in (".gltf", ".glb"):
        register_format(suffix, "glTF 2.0 scene -> Scene", reader=read_gltf, writer=write_gltf)
    for suffix in (".png", ".jpg", ".jpeg"):
        register_format(suffix, "8- or 16-bit image -> [H, W, C] in [0, 1]", reader=read_image, writer=write_image)
    register_format(".hdr", "Radiance RGBE HDR image -> [H, W, 3]", reader=read_hdr, writer=write_hdr)
    register_format(".exr", "OpenEXR scanline image -> [H, W, C]", reader=read_exr, writer=write_exr)
    register_format(".xml", "Mitsuba 3 scene -> Scene", reader=read_mitsuba_xml)


_register_builtin()
