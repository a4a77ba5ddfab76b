"""``lumigrad fit --set key=value``: override keys of a parsed fit config, and write the result back as text.

A key is a dotted path into the config (``fit.steps``, ``render.width``, ``optimize[0].lr``); a value is read as a
TOML value (``50``, ``0.02``, ``true``, ``"text"``, ``[1, 2, 3]``), and a value that is no TOML (a bare word such
as ``adam``) is the string itself. Keys are checked by the config loader afterwards, so a misspelt key gets its
usual "did you mean" answer. The overridden config is written back (TOML as TOML, YAML as YAML, comments lost,
the overrides listed at the top) so that the run folder's copy re-runs as it was.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, List, Sequence, Tuple, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - older Pythons
    import tomli as tomllib

from .config import ConfigError

_SEGMENT = re.compile(r"^([^.\[\]]+)((?:\[[0-9]+\])*)$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

Step = Union[str, int]  # a table key or a list index


def parse_override(item: str) -> Tuple[str, List[Step], Any]:
    """``"fit.steps=50"`` -> ``("fit.steps", ["fit", "steps"], 50)``; ConfigError naming ``--set`` if malformed."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted KEY, e.g. --set fit.steps=50")
    path: List[Step] = []
    for segment in key.split("."):
        m = _SEGMENT.match(segment.strip())
        if not m:
            raise ConfigError(f"--set {item!r}: {key!r} is not a dotted key (like fit.steps or optimize[0].lr)")
        path.append(m.group(1))
        path.extend(int(i) for i in re.findall(r"\[([0-9]+)\]", m.group(2)))
    return key, path, parse_value(text)


def parse_value(text: str) -> Any:
    """``text`` as a TOML value (number, boolean, string, array, inline table), else ``text`` as a string."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def apply_overrides(raw: Any, overrides: Sequence[str]) -> Any:
    """A copy of the parsed config ``raw`` with each ``KEY=VALUE`` of ``overrides`` set (later ones win).

    Missing tables on the way are created (the config check then names a misspelt one); stepping into a value
    that is not a table, or past the end of a list, is a ConfigError naming the ``--set``.
    """
    out = copy.deepcopy(raw) if raw is not None else {}
    if not isinstance(out, dict):
        raise ConfigError("--set needs a config whose top level is a table")
    for item in overrides:
        key, path, value = parse_override(item)
        node: Any = out
        for depth, step in enumerate(path[:-1]):
            node = _step_into(node, step, path[depth + 1], key, path[:depth])
        _assign(node, path[-1], value, key, path[:-1])
    return out


def _step_into(node: Any, step: Step, following: Step, key: str, before: List[Step]) -> Any:
    if isinstance(step, int):
        _check_index(node, step, key, before)
        return node[step]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: {_dotted(before) or 'the config'} is {_kind(node)}, not a table")
    if step not in node:
        node[step] = [] if isinstance(following, int) else {}
    return node[step]


def _assign(node: Any, step: Step, value: Any, key: str, before: List[Step]) -> None:
    if isinstance(step, int):
        _check_index(node, step, key, before)
    elif not isinstance(node, dict):
        raise ConfigError(f"--set {key}: {_dotted(before) or 'the config'} is {_kind(node)}, not a table")
    node[step] = value


def _check_index(node: Any, index: int, key: str, before: List[Step]) -> None:
    if not isinstance(node, list):
        raise ConfigError(f"--set {key}: {_dotted(before)} is {_kind(node)}, not a list")
    if index >= len(node):
        raise ConfigError(f"--set {key}: {_dotted(before)} has {len(node)} entries (indices 0 to {len(node) - 1})")


def _dotted(path: Sequence[Step]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(path))


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"the value {value!r}"


def blame(exc: ConfigError, overrides: Sequence[str]) -> ConfigError:
    """``exc`` prefixed with the ``--set`` it is about, when its message names an overridden key."""
    message = str(exc)
    for item in overrides:
        key = item.partition("=")[0].strip()
        prefixes = [key[:m.start()] for m in re.finditer(r"[.\[]", key)] + [key]
        if key and (any(f"'{p}'" in message for p in prefixes if p) or f" {key} " in message):
            return ConfigError(f"--set {item}: {message}")
    return exc


def config_text(raw: dict, path: Path, overrides: Sequence[str]) -> str:
    """The overridden config ``raw`` as the text of a ``path.suffix`` file, the overrides listed on top."""
    head = [f"# {path.name} with overrides from the command line (lumigrad fit --set ...):"]
    head += [f"#   {item}" for item in overrides]
    if path.suffix.lower() == ".toml":
        body = to_toml(raw)
        if _canonical(tomllib.loads(body)) != _canonical(raw):  # the writer must say what was read
            raise ConfigError(f"{path.name}: the overridden config cannot be written back as TOML")
    else:
        import yaml

        body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    return "\n".join(head) + "\n\n" + body


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# ----------------------------------------------------------------------------------------------- TOML writer
def to_toml(table: dict) -> str:
    """``table`` as TOML text: plain keys first, then ``[tables]`` and ``[[arrays of tables]]``."""
    lines: List[str] = []
    _write_table(table, [], lines, None)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write_table(table: dict, path: List[str], lines: List[str], header: Any) -> None:
    if header is not None:
        lines += ["", header]
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_array(v)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if k not in nested]
    for k, v in nested.items():
        dotted = ".".join(_key(p) for p in path + [k])
        if isinstance(v, dict):
            _write_table(v, path + [k], lines, f"[{dotted}]")
        else:
            for item in v:
                _write_table(item, path + [k], lines, f"[[{dotted}]]")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: Any) -> str:
    key = str(key)
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"a {type(value).__name__} value cannot be written to TOML: {value!r}")
