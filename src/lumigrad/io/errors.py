"""The errors the OBJ and MTL readers share.

They live here, and not in ``obj.py`` or ``mtl.py``, so that the OBJ reader can import the MTL reader and the
MTL reader can raise OBJ-compatible errors without the two modules importing each other.
"""

from __future__ import annotations

__all__ = ["MtlError", "ObjError"]


class ObjError(ValueError):
    """Raised for a malformed OBJ file; the message names the file and line."""


class MtlError(ObjError):
    """Raised for a malformed MTL file or a missing texture; the message names the file and line.

    A subclass of :class:`ObjError`, so code that reads an OBJ with its materials catches both."""
