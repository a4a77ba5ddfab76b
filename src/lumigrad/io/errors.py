"""The errors the OBJ and MTL readers share, and the wording of the readers' "ignored features" warnings.

The errors live here, and not in ``obj.py`` or ``mtl.py``, so that the OBJ reader can import the MTL reader
and the MTL reader can raise OBJ-compatible errors without the two modules importing each other.
"""

from __future__ import annotations

__all__ = ["MtlError", "ObjError", "ignored_features"]

#: Details listed per ignored feature in a reader's warning; the rest are counted.
NOTE_DETAILS = 3


class ObjError(ValueError):
    """Raised for a malformed OBJ file; the message names the file and line."""


class MtlError(ObjError):
    """Raised for a malformed MTL file or a missing texture; the message names the file and line.

    A subclass of :class:`ObjError`, so code that reads an OBJ with its materials catches both."""


def ignored_features(notes: dict) -> list:
    """``["feature (where, where, where, ... N in all)", ...]`` for ``{feature: places}``: the parts of a
    reader's one warning about what it read but does not use (glTF, Mitsuba XML)."""
    parts = []
    for feature, where in notes.items():
        details = list(where)
        more = f", ... {len(details)} in all" if len(details) > NOTE_DETAILS else ""
        parts.append(f"{feature} ({', '.join(details[:NOTE_DETAILS])}{more})")
    return parts
