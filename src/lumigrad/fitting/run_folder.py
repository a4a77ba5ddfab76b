"""One fit's output folder, owned by one process at a time, with its checkpoint tied to its configuration.

What goes wrong without it: two fits started into one ``-o`` both finish and the second silently replaces
the first's results; a killed run resumed afterwards adopts the other run's checkpoint and reports wrong
numbers; ``--resume`` with a changed ``lr`` or ``--steps`` silently continues a different fit. So:

* :class:`RunFolder` takes an exclusive, non-blocking lock (``OUT/.lumigrad.lock``, ``fcntl.flock`` on POSIX,
  ``msvcrt.locking`` on Windows) for the whole fit; a second fit into the same folder stops at once with one
  line naming the holder's pid. The operating system releases the lock when the process dies (``kill -9``
  included), so no stale lock survives a crash.
* A folder that already holds a checkpoint or results needs ``--resume`` or ``--overwrite``; ``--resume``
  on a folder without a checkpoint says so.
* Every checkpoint stores the configuration's identity (:func:`config_identity`: a SHA-256 of the parsed
  configuration and each key's value); resuming with a different configuration (an ``lr``, ``--steps``)
  is refused naming the keys that differ, unless forced, which is recorded in ``OUT/run.log``.
* The configuration is copied into the folder when a fit starts and never overwritten by a resume; a forced
  resume with a different configuration keeps the original and adds ``config.resumed-N.<ext>``. The copy
  re-runs as it is from any folder (:func:`portable_config_text`): its relative paths are made absolute and
  ``[fit] steps`` is the number the fit ran (``--steps``); comments and layout are kept. The identity counts
  paths by the files they name, so the copy and the original are one configuration.
* Temporary files left by a run killed while writing a checkpoint (``checkpoint/.checkpoint.*.tmp``) are
  removed when the next fit takes the folder.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .config import ConfigError, FitConfig

__all__ = ["RankLog", "RunFolder", "config_identity", "describe_differences", "merged_log_lines",
           "portable_config_text"]

LOCK_NAME = ".lumigrad.lock"
LOG_NAME = "run.log"
RANK_LOG_PATTERN = "run.rank*.log"  # the other ranks of a distributed fit log beside run.log (rank 0's)
RESULT_NAMES = ("metrics.json", "report.html")
STALE_PATTERNS = (".checkpoint.*.tmp",)
MAX_SHOWN_KEYS = 6


class RunFolder:
    """Exclusive use of an output folder for one fit (a context manager).

    Args:
        path: the output folder; created when missing. A path that exists and is not a folder is refused.

    Raises:
        ConfigError: ``path`` is a file, cannot be created or written, or another fit holds it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: Optional[int] = None

    def __enter__(self) -> "RunFolder":
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"the output folder {self.path} is an existing file; choose a folder with -o")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot use the output folder {self.path}: {exc.strerror or exc}") from None
        if not _try_lock(fd):
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise ConfigError(f"the output folder {self.path} is in use by another lumigrad fit{who}; wait for it to "
                              "finish or choose another folder with -o")
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # the pid is only informative
            pass
        self.remove_stale_temporaries()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def has_results(self) -> bool:
        """Whether a finished fit's results (metrics.json, report.html) are in the folder."""
        return any((self.path / name).exists() for name in RESULT_NAMES)

    def remove_stale_temporaries(self) -> List[Path]:
        """Delete the temporary files a killed checkpoint write left behind; return them."""
        removed = []
        folder = self.checkpoint_dir
        if folder.is_dir():
            for pattern in STALE_PATTERNS:
                for tmp in folder.glob(pattern):
                    try:
                        tmp.unlink()
                        removed.append(tmp)
                    except OSError:
                        pass
        if removed:
            self.log(f"removed {len(removed)} stale temporary file(s) of an interrupted checkpoint write")
        return removed

    def log(self, message: str) -> None:
        """Append a time-stamped line to ``OUT/run.log``."""
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        with open(self.path / LOG_NAME, "a", encoding="utf-8") as fh:
            fh.write(line)

    def log_lines(self) -> List[str]:
        """The lines of ``OUT/run.log`` (empty when there is none)."""
        try:
            return (self.path / LOG_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def keep_config(self, config: FitConfig, *, resumed: bool) -> Path:
        """Copy the configuration into the folder: as ``config.<ext>`` for a new fit (replacing an older copy
        only when starting afresh), as ``config.resumed-N.<ext>`` for a forced resume; return the copy."""
        suffix = config.path.suffix.lower()
        target = self.path / f"config{suffix}"
        if resumed and target.exists():
            n = 1
            while (self.path / f"config.resumed-{n}{suffix}").exists():
                n += 1
            target = self.path / f"config.resumed-{n}{suffix}"
        target.write_text(portable_config_text(config), encoding="utf-8")
        return target


def config_identity(config: FitConfig, resolve_paths: bool = True) -> Dict[str, Any]:
    """The configuration's identity stored in checkpoints: ``{"sha256": ..., "keys": {dotted key: JSON}}``.

    ``keys`` flattens the parsed file (``optimize[0].lr``, ``fit.steps``, ...) with ``fit.steps`` set to the
    number of steps actually run (``--steps`` included); values are canonical JSON text, so TOML and YAML
    spellings of one value agree. Comments and formatting do not count; a relative path counts as the absolute
    path it names (the run folder's copy names the same files), or with ``resolve_paths=False`` as written:
    the ranks of a fit over several machines compare that, since each may keep the same files in another
    folder (their data is compared by content).
    """
    flat: Dict[str, str] = {}
    raw = config.raw if config.raw is not None else {}
    if resolve_paths:
        raw = _with_values(raw, {key: str(path) for key, path in _relative_paths(config)})
    _flatten(raw, "", flat)
    flat["fit.steps"] = json.dumps(config.fit.steps)
    digest = hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()
    return {"sha256": digest, "keys": flat}


Key = Tuple[Any, ...]  # a value's place in the parsed file: table keys and list indices


def portable_config_text(config) -> str:
    """The configuration's text as it re-runs from any folder and reproduces the fit: each relative path
    (``scene.file``, ``data.truth``, ``output.dir`` ...: the keys the parser read as paths) replaced by the
    absolute path it named, and ``[fit] steps`` set to the steps run (``--steps``). Comments and layout are
    kept; each edit is checked by parsing the result. Should a file's layout defeat the edit, the original text
    is kept with a comment naming the folder its paths are relative to."""
    raw = config.raw if isinstance(config.raw, dict) else None
    if raw is None:
        return config.text
    changes: Dict[Key, Any] = {key: str(path) for key, path in _relative_paths(config)}
    steps = getattr(getattr(config, "fit", None), "steps", None)
    if isinstance(steps, int) and _get(raw, ("fit", "steps")) not in (None, steps):
        changes[("fit", "steps")] = steps
    elif isinstance(steps, int) and _get(raw, ("fit", "steps")) is None and steps != _default_steps(config):
        changes[("fit", "steps")] = steps
    text, yaml_file = config.text, config.path.suffix.lower() != ".toml"
    for key, value in changes.items():
        edited = _edited(text, key, value, yaml_file)
        if edited is None:
            folder = config.path.parent.absolute()
            return f"# lumigrad: the relative paths below are relative to {folder}\n" + config.text
        text = edited
    return text


def _default_steps(config) -> Optional[int]:
    try:
        return type(config.fit)().steps
    except TypeError:
        return None


def _relative_paths(config) -> List[Tuple[Key, Path]]:
    """``(key, absolute path)`` of every string in the parsed file that the parser read as a path relative to
    the file's folder (a ``Path`` field of the parsed configuration equal to folder / that string)."""
    folder = config.path.parent
    paths = {p for p in _path_fields(config) if p != config.path}
    found: List[Tuple[Key, Path]] = []

    def walk(value: Any, key: Key) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, key + (k,))
        elif isinstance(value, list):
            for k, v in enumerate(value):
                walk(v, key + (k,))
        elif isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            if folder / Path(value).expanduser() in paths:
                found.append((key, Path(os.path.abspath(folder / value))))

    walk(config.raw, ())
    return found


def _path_fields(value: Any, depth: int = 0) -> List[Path]:
    if isinstance(value, Path):
        return [value]
    if depth > 4:
        return []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [p for f in dataclasses.fields(value) for p in _path_fields(getattr(value, f.name), depth + 1)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _path_fields(v, depth + 1)]
    return []


def _get(raw: Any, key: Key) -> Any:
    for k in key:
        try:
            raw = raw[k]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _with_values(raw: Any, changes: Dict[Key, Any]) -> Any:
    """A deep copy of ``raw`` with the values at ``changes``' keys replaced (tables created as needed)."""
    out = copy.deepcopy(raw)
    for key, value in changes.items():
        holder = out
        for k in key[:-1]:
            if isinstance(holder, dict):
                holder = holder.setdefault(k, {})
            else:
                holder = holder[k]
        holder[key[-1]] = value
    return out


def _parse(text: str, yaml_file: bool) -> Any:
    try:
        if yaml_file:
            import yaml

            return yaml.safe_load(text)
        import tomllib

        return tomllib.loads(text)
    except Exception:  # noqa: BLE001 - an edit that breaks the file is simply not taken
        return None


def _edited(text: str, key: Key, value: Any, yaml_file: bool) -> Optional[str]:
    """``text`` with the value at ``key`` set to ``value`` (an edit of the one line that holds it, or a new
    line in its table), checked by parsing: the result differs from ``text``'s parse at ``key`` only."""
    want = _with_values(_parse(text, yaml_file), {key: value})
    literal = json.dumps(value)  # a JSON string or number is a TOML basic string / integer and a YAML scalar
    leaf = re.escape(str(key[-1]))
    assignment = re.compile(rf"^(\s*(?:-\s+)?([\"']?){leaf}\2\s*[=:]\s*)(.*?)(\s+#.*)?$")
    lines = text.splitlines(keepends=True)
    for k, line in enumerate(lines):
        body = line.rstrip("\r\n")
        m = assignment.match(body)
        if m is None:
            continue
        trial = lines[:k] + [m.group(1) + literal + (m.group(4) or "") + line[len(body):]] + lines[k + 1:]
        if _parse("".join(trial), yaml_file) == want:
            return "".join(trial)
    if len(key) == 2 and isinstance(key[0], str):  # a key the file left out: into its table, or a new table
        header = re.compile(rf"^\s*{re.escape(key[0])}\s*:\s*(#.*)?$" if yaml_file
                            else rf"^\s*\[\s*{re.escape(key[0])}\s*\]\s*(#.*)?$")
        line = f"  {key[1]}: {literal}\n" if yaml_file else f"{key[1]} = {literal}\n"
        for k, old in enumerate(lines):
            if header.match(old.rstrip("\r\n")):
                trial = "".join(lines[:k + 1] + [line] + lines[k + 1:])
                if _parse(trial, yaml_file) == want:
                    return trial
        table = f"{key[0]}:\n" if yaml_file else f"[{key[0]}]\n"
        trial = text + ("" if text.endswith("\n") or not text else "\n") + "\n" + table + line
        if _parse(trial, yaml_file) == want:
            return trial
    return None


def describe_differences(old: Dict[str, str], new: Dict[str, str]) -> str:
    """``"optimize[0].lr (checkpoint 0.1, now 0.2), fit.steps (checkpoint 40, now 80)"`` for the keys whose values
    differ (at most a few)."""
    keys = sorted(set(old) | set(new))
    changed = [k for k in keys if old.get(k) != new.get(k)]
    parts = [f"{k} (checkpoint {_short(old.get(k, 'absent'))}, now {_short(new.get(k, 'absent'))})"
             for k in changed[:MAX_SHOWN_KEYS]]
    if len(changed) > MAX_SHOWN_KEYS:
        parts.append(f"and {len(changed) - MAX_SHOWN_KEYS} more")
    return ", ".join(parts)


def _flatten(value: Any, prefix: str, out: Dict[str, str]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for k, v in enumerate(value):
            _flatten(v, f"{prefix}[{k}]", out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise ConfigError(f"cannot lock the output folder ({exc.strerror})") from None


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_pid(fd: int) -> Optional[int]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


class RankLog:
    """The log of a non-main rank of a distributed fit: ``OUT/run.rankN.log``, the same lines as ``run.log``.

    Only the main rank holds the :class:`RunFolder` (its lock, its checkpoint checks, ``run.log``); the others
    write their own file so no two processes append to one.
    """

    def __init__(self, path: Path, rank: int):
        self.path = Path(path)
        self.rank = int(rank)
        self.file = self.path / f"run.rank{self.rank}.log"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    def log(self, message: str) -> None:
        """Append a time-stamped line to ``OUT/run.rankN.log``."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def merged_log_lines(path: Path) -> List[str]:
    """``run.log`` and every ``run.rankN.log`` in ``path``, merged in time order, rank lines marked ``[rank N]``
    (lines of one second keep their file order, rank 0 first)."""
    files = [(0, Path(path) / LOG_NAME)] + sorted(
        (int(f.stem.split("rank")[-1]), f) for f in Path(path).glob(RANK_LOG_PATTERN)
        if f.stem.split("rank")[-1].isdigit())
    lines = []
    for rank, f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for k, line in enumerate(text):
            stamp, rest = line[:19], line[20:]
            shown = line if rank == 0 else f"{stamp} [rank {rank}] {rest}"
            lines.append((stamp, rank, k, shown))
    return [shown for *_, shown in sorted(lines)]
