"""Numbers of the glTF 2.0 / GLB container that the glTF reader and writer share (glTF 2.0 specification,
sections 4.4 "GLB file format specification" and 5.26 "sampler")."""

from __future__ import annotations

__all__ = ["BIN_CHUNK", "GLB_MAGIC", "JSON_CHUNK", "WRAP_CODES", "WRAP_MODES"]

#: ``"glTF"`` read as a little-endian uint32: the first word of a ``.glb`` file.
GLB_MAGIC = 0x46546C67
#: Chunk types of a GLB file: ``"JSON"`` and ``"BIN\0"``.
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942
#: A sampler's ``wrapS`` / ``wrapT`` code -> lumigrad's ``wrap`` mode of :func:`lumigrad.texture`.
WRAP_MODES = {10497: "repeat", 33071: "clamp", 33648: "mirror"}
#: The inverse of :data:`WRAP_MODES`.
WRAP_CODES = {mode: code for code, mode in WRAP_MODES.items()}
