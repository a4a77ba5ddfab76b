"""``Registry``: named entries of one kind (parameter maps, loss terms, light types), registered once each.

A registry replaces a closed ``if name == ...`` chain: the code that uses an entry looks it up by name, the
code that validates a name lists ``registry.names()``, and adding an entry is one ``register`` call in the
file that defines it. Entries keep their registration order (config validation lists them in it, and
loops over them run in it).

Example:
    >>> shapes = Registry("shape")
    >>> shapes.register("disk", 1)
    1
    >>> shapes.names(), shapes["disk"]
    (('disk',), 1)
    >>> shapes["cube"]
    Traceback (most recent call last):
    ...
    KeyError: "unknown shape 'cube'; choose one of 'disk'"
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Generic, Iterator, Tuple, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")

_NAME_OK = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


class Registry(Generic[T]):
    """Entries of one kind by name.

    Args:
        what: what an entry is, for messages (``"map"``, ``"loss term"``, ``"light type"``).
    """

    def __init__(self, what: str):
        self.what = what
        self._entries: Dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is not a letter followed by letters, digits, ``_`` or ``-``, or is taken
                (pass ``replace=True`` to replace an entry on purpose).
        """
        if not isinstance(name, str) or not _NAME_OK.match(name):
            raise ValueError(f"{self.what} name must start with a letter and use only letters, digits, '_' and "
                             f"'-'; got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered; pass replace=True to replace it")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, **kw) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object as is."""
        def register(entry: T) -> T:
            return self.register(name, entry, **kw)

        return register

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (tests that register an entry of their own remove it again)."""
        entry = self[name]
        del self._entries[name]
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise KeyError(f"unknown {self.what} {name!r}; choose one of {self.choices()}") from None

    def get(self, name: str, default=None):
        return self._entries.get(name, default) if isinstance(name, str) else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Tuple[Tuple[str, T], ...]:
        return tuple(self._entries.items())

    def names(self) -> Tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def choices(self) -> str:
        """``"'a', 'b', 'c'"``: the names for an error message."""
        return ", ".join(repr(n) for n in self._entries) or "(none registered)"

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
