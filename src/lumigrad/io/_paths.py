"""One confinement rule for every reader: a file named inside another file stays inside that file's folder.

Files downloaded from the internet (an OBJ and its MTL, a glTF, a NeRF ``transforms.json``, a COLMAP project)
name other files: ``mtllib``, ``map_Kd``, image URIs, ``file_path``, image names. A hostile file can name
``/etc/passwd``, ``../../home/user/.ssh/id_rsa`` or a FIFO that blocks forever. Every reader resolves those
names through :func:`confined_path` and reads them through :func:`check_regular_file`:

* the name is resolved against the folder of the file that names it (the *root*), following symbolic links;
* the result must lie inside the root (or be the root); an absolute name, a ``../`` escape or a link that
  points outside is refused with :class:`ConfinementError` (a ``ValueError``) naming the referring file and
  the name, never the content of the file it points to;
* ``trusted=True`` (the readers' ``trust_paths=True``) is the explicit opt-in for files you wrote yourself:
  absolute and outside paths are then accepted, and only the regular-file rule remains;
* only regular files are read: FIFOs, sockets and devices are refused (a FIFO would block the reader).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Union

__all__ = ["ConfinementError", "check_regular_file", "confined_path", "short_text"]

PathLike = Union[str, os.PathLike]


class ConfinementError(ValueError):
    """A file names another file outside its own folder (or a non-regular file)."""


def short_text(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote untrusted input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def confined_path(root: PathLike, name: str, *, source: PathLike, what: str, trusted: bool = False) -> Path:
    """Resolve ``name`` (as written in ``source``) against the folder ``root`` and refuse escapes.

    Args:
        root: the folder that confines the reference (usually ``Path(source).parent``).
        name: the path as written in the file (relative; absolute only when ``trusted``).
        source: the file that holds the reference, named in errors.
        what: what the reference is, e.g. ``"mtllib"``, ``"map_Kd texture"``, ``"frames[3].file_path"``.
        trusted: accept absolute paths and paths outside ``root`` (the caller trusts the file).

    Returns:
        The resolved path (symbolic links followed). It may not exist; callers report missing files.

    Raises:
        ConfinementError: ``name`` is empty, holds a NUL byte, or resolves outside ``root`` when not trusted.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise ConfinementError(f"{source}: {what} {short_text(name)} is not a valid file name")
    root_resolved = Path(root).resolve()
    candidate = Path(name)
    if candidate.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        if not trusted:
            raise ConfinementError(
                f"{source}: {what} {short_text(name)} is an absolute path; only paths inside "
                f"{root_resolved} are read (pass trust_paths=True for files you trust)")
        return candidate.resolve()
    try:
        resolved = (root_resolved / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ConfinementError(f"{source}: {what} {short_text(name)} cannot be resolved ({exc})") from None
    if not trusted and resolved != root_resolved and root_resolved not in resolved.parents:
        raise ConfinementError(
            f"{source}: {what} {short_text(name)} points outside {root_resolved}; refused (pass "
            "trust_paths=True for files you trust)")
    return resolved


def check_regular_file(path: PathLike, *, source: PathLike, what: str) -> Path:
    """Raise unless ``path`` exists and is a regular file (not a FIFO, socket, device or folder).

    Raises:
        FileNotFoundError: nothing is there.
        ConfinementError: something other than a regular file is there.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: {what} {path} does not exist") from None
    except OSError as exc:
        raise ConfinementError(f"{source}: {what} {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ConfinementError(f"{source}: {what} {path} is {kind}; only regular files are read")
    return path
