"""One confinement rule for every reader: a file named inside another file stays inside that file's folder.

Files downloaded from the internet (an OBJ and its MTL, a glTF, a NeRF ``transforms.json``, a COLMAP project)
name other files: ``mtllib``, ``map_Kd``, image URIs, ``file_path``, image names. A hostile file can name
``/etc/passwd``, ``../../home/user/.ssh/id_rsa`` or a FIFO that blocks forever. Every reader resolves those
names through :func:`confined_path` and reads them through :func:`check_regular_file` (or
:func:`open_regular_file`, which cannot be raced into opening a FIFO):

* the name is resolved against the folder of the file that names it (the *root*), following symbolic links;
* the result must lie inside the root (or be the root); an absolute name, a ``../`` escape or a link that
  points outside is refused with :class:`ConfinementError` (a ``ValueError``) naming the referring file and
  the name, never the content of the file it points to;
* ``trusted=True`` (the readers' ``trust_paths=True``) is the explicit opt-in for files you wrote yourself:
  absolute and outside paths are then accepted, and only the regular-file rule remains;
* only regular files are read: FIFOs, sockets and devices are refused (a FIFO would block the reader).

A reader whose errors have their own type (``ObjError``, ``GltfError``) passes it as ``base=``: the refusal
is then an instance of both that type and :class:`ConfinementError`, so ``except ObjError`` and
``except ConfinementError`` both catch it.

Messages quote untrusted text only through :func:`short_text` (``repr``, cut to 80 characters: no control
characters reach a terminal, no megabyte strings reach a log). :func:`parse_json` is the one JSON entry
point for hostile files: it bounds the nesting depth before parsing (deep nesting makes ``json`` raise
``RecursionError``, or crash the interpreter when the recursion limit was raised).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Dict, Optional, Union

__all__ = ["ConfinementError", "check_regular_file", "check_relative_name", "confined_path", "keyword_text",
           "open_regular_file", "parse_json", "short_text"]

PathLike = Union[str, os.PathLike]

#: Deepest JSON nesting :func:`parse_json` accepts by default (NeRF / OpenSfM / glTF files use fewer than 10).
MAX_JSON_DEPTH = 128


class ConfinementError(ValueError):
    """A file names another file outside its own folder (or a non-regular file)."""


_COMBINED: Dict[type, type] = {}


def _error_type(base: Optional[type]) -> type:
    """``ConfinementError``, or a (cached) subclass of both ``base`` and ``ConfinementError``."""
    if base is None or issubclass(base, ConfinementError):
        return base or ConfinementError
    if not issubclass(base, Exception):
        raise TypeError(f"base must be an exception type; got {base!r}")
    if base not in _COMBINED:
        name = f"{base.__name__}Confinement"
        cls = type(name, (base, ConfinementError), {
            "__doc__": f"A {base.__name__} that is also a ConfinementError (a refused file reference).",
            "__module__": __name__})
        globals()[name] = cls  # so that it pickles like a module-level class
        _COMBINED[base] = cls
    return _COMBINED[base]


def short_text(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote untrusted input.

    Strings and bytes are cut before ``repr`` (a megabyte value costs nothing); containers are described by
    type and length rather than printed (a deeply nested list would otherwise raise ``RecursionError``).
    """
    if isinstance(value, (str, bytes)):
        text = repr(value[: limit + 1])
    elif isinstance(value, (list, tuple, dict, set)):
        text = f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001  a hostile __repr__, or RecursionError
            text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def keyword_text(token: str) -> Optional[str]:
    """``repr(token)`` when it looks like a keyword (an identifier of at most 32 characters), else None.

    Messages about a line of a text file name the file, the line and at most its keyword: a line of some
    other file (``root:x:0:0:...``) is never echoed.
    """
    return repr(token) if isinstance(token, str) and _KEYWORD.fullmatch(token) else None


def _is_absolute(name: str) -> bool:
    return Path(name).is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")


def check_relative_name(name, *, source: PathLike, what: str, trusted: bool = False,
                        base: Optional[type] = None) -> str:
    """Refuse a file name that could leave any folder it is later resolved in: absolute, ``..`` escapes, NUL.

    For readers that store names without opening them (COLMAP image names are resolved later against an
    image folder the reader does not know): a lexical check; :func:`confined_path` repeats it against the
    real folder, links included, when the file is opened.

    Returns:
        ``name`` unchanged.

    Raises:
        ConfinementError: (also a ``base``) an empty name, a NUL byte, an absolute name or one whose ``..``
            parts climb above its starting folder, unless ``trusted`` (then only empty / NUL are refused).
    """
    err = _error_type(base)
    if not isinstance(name, str) or not name or "\0" in name:
        raise err(f"{source}: {what} {short_text(name)} is not a valid file name")
    if trusted:
        return name
    if _is_absolute(name):
        raise err(f"{source}: {what} {short_text(name)} is an absolute path; only relative paths inside the "
                  "file's folder are read (pass trust_paths=True for files you trust)")
    level = 0
    for part in PurePosixPath(name.replace("\\", "/")).parts:
        level += -1 if part == ".." else 0 if part == "." else 1
        if level < 0:
            raise err(f"{source}: {what} {short_text(name)} points outside the file's folder; refused (pass "
                      "trust_paths=True for files you trust)")
    return name


def confined_path(root: PathLike, name: str, *, source: PathLike, what: str, trusted: bool = False,
                  base: Optional[type] = None) -> Path:
    """Resolve ``name`` (as written in ``source``) against the folder ``root`` and refuse escapes.

    Args:
        root: the folder that confines the reference (usually ``Path(source).parent``).
        name: the path as written in the file (relative; absolute only when ``trusted``).
        source: the file that holds the reference, named in errors (``"scene.obj:12"`` names a line).
        what: what the reference is, e.g. ``"mtllib"``, ``"map_Kd texture"``, ``"frames[3].file_path"``.
        trusted: accept absolute paths and paths outside ``root`` (the caller trusts the file).
        base: the reader's own error type; the raised error is an instance of it too.

    Returns:
        The resolved path (symbolic links followed). It may not exist; callers report missing files.

    Raises:
        ConfinementError: ``name`` is empty, holds a NUL byte, cannot be resolved (a link loop), or resolves
            outside ``root`` when not trusted.
    """
    err = _error_type(base)
    if not isinstance(name, str) or not name or "\0" in name:
        raise err(f"{source}: {what} {short_text(name)} is not a valid file name")
    try:
        root_resolved = Path(root).resolve()
        if _is_absolute(name):
            if not trusted:
                raise err(f"{source}: {what} {short_text(name)} is an absolute path; only relative paths inside "
                          f"the file's folder {root_resolved} are read (pass trust_paths=True for files you trust)")
            return Path(name).resolve()
        resolved = (root_resolved / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop; a name the OS rejects
        if isinstance(exc, ConfinementError):
            raise
        raise err(f"{source}: {what} {short_text(name)} cannot be resolved ({type(exc).__name__})") from None
    if not trusted and resolved != root_resolved and root_resolved not in resolved.parents:
        raise err(f"{source}: {what} {short_text(name)} points outside the file's folder {root_resolved}; refused "
                  "(pass trust_paths=True for files you trust)")
    return resolved


def _path_text(path: Path) -> str:
    """``path`` as text for a message: as is when printable, else its ``repr`` (no terminal escapes)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_regular_file(path: PathLike, *, source: PathLike, what: str, base: Optional[type] = None) -> Path:
    """Raise unless ``path`` exists and is a regular file (not a FIFO, socket, device or folder).

    Raises:
        FileNotFoundError: nothing is there.
        ConfinementError: (also a ``base``) something other than a regular file is there, or it cannot be
            looked at.
    """
    err = _error_type(base)
    path = Path(path)
    shown = _path_text(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: {what} {shown} does not exist") from None
    except (OSError, ValueError) as exc:
        raise err(f"{source}: {what} {shown} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not stat.S_ISREG(mode):
        raise err(f"{source}: {what} {shown} is {_kind(mode)}; only regular files are read")
    return path


def open_regular_file(path: PathLike, *, source: PathLike, what: str, base: Optional[type] = None) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file, without ever blocking.

    The path is checked with ``stat`` first (a device is never opened: opening some has side effects), then
    opened with ``O_NONBLOCK`` (opening a FIFO returns at once instead of waiting for a writer) and checked
    again with ``fstat`` on the open descriptor, so a file swapped for a FIFO after the first check is still
    refused.

    Raises:
        FileNotFoundError: nothing is there.
        ConfinementError: (also a ``base``) a FIFO, socket, device or folder, or a file that cannot be opened.
    """
    err = _error_type(base)
    path = check_regular_file(path, source=source, what=what, base=base)  # devices are never even opened
    shown = _path_text(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: {what} {shown} does not exist") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
            raise err(f"{source}: {what} {shown} is a folder; only regular files are read") from None
        raise err(f"{source}: {what} {shown} cannot be opened ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise err(f"{source}: {what} {shown} is {_kind(mode)}; only regular files are read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


_JSON_SKIP = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[^"\[\]{}]++')  # strings (even unterminated) and non-brackets


def json_depth(text: str) -> int:
    """The deepest ``[`` / ``{`` nesting of JSON ``text`` (brackets inside strings ignored); linear time."""
    if text.count("[") + text.count("{") == 0:
        return 0
    import numpy as np

    brackets = _JSON_SKIP.sub("", text)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())


def parse_json(data: Union[str, bytes], *, source: PathLike, max_depth: int = MAX_JSON_DEPTH,
               base: type = ValueError):
    """Parse untrusted JSON ``data``; every failure is one ``base`` (a ``ValueError``) naming ``source``.

    Nesting deeper than ``max_depth`` is refused before parsing (``json`` recurses once per level: deep input
    raises ``RecursionError``, or overflows the C stack when ``sys.setrecursionlimit`` was raised).

    Raises:
        ``base``: not UTF-8, not JSON, or nested too deeply.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise base(f"{source}: not valid JSON (not UTF-8 text: byte {exc.start})") from None
    elif data.startswith("\ufeff"):
        data = data[1:]
    if data.count("[") + data.count("{") > max_depth:
        depth = json_depth(data)
        if depth > max_depth:
            raise base(f"{source}: not valid JSON for lumigrad: nested {depth} levels deep (at most {max_depth} "
                       "are read)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise base(f"{source}: not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise base(f"{source}: not valid JSON for lumigrad: nested too deeply") from None
    except ValueError as exc:  # an integer literal with more digits than Python converts (4300 by default)
        reason = str(exc).split(";")[0][:120]
        raise base(f"{source}: not valid JSON for lumigrad ({reason})") from None


def is_json_number(value) -> bool:
    """True for a finite JSON number (``true`` / ``false`` are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond the float range
        return False
