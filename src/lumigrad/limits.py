"""One size budget, checked at the boundary before anything is allocated.

A camera of 10^6 x 10^6 pixels, ``faces_per_pixel=10^4``, a lens supersampling of 64, a config asking for
500 views of 8192^2, an ``environment_size`` of 10^5 or a 164 KB PNG that decodes to 13000^2 pixels would
each allocate tens of gigabytes (or hang the machine while trying). lumigrad counts the *pixel samples* an
operation is about to allocate (batch x height x width x layers / samples per pixel) and refuses the work
with one line when the count exceeds the budget::

    ValueError: camera is 1000000x1000000 pixels (1.0e+12 pixel samples), over lumigrad's budget of
    67,108,864 (2^26); raise it with lumigrad.limits.set_pixel_budget(...) or LUMIGRAD_MAX_PIXELS

The default, 2^26 = 67,108,864 (an 8192 x 8192 image), keeps the raster pipeline's per-pixel buffers within
a few GiB. Raise it for a bigger machine, process-wide with :func:`set_pixel_budget` or the environment
variable ``LUMIGRAD_MAX_PIXELS``, or for one block of code with :func:`pixel_budget_override`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Iterator, Optional

__all__ = ["BudgetError", "DEFAULT_PIXEL_BUDGET", "check_pixel_samples", "pixel_budget", "pixel_budget_override",
           "set_pixel_budget"]

DEFAULT_PIXEL_BUDGET = 2 ** 26
ENV_VAR = "LUMIGRAD_MAX_PIXELS"

_lock = threading.Lock()
_budget: Optional[int] = None  # None: read the environment (or the default) on first use


class BudgetError(ValueError):
    """An operation would allocate more pixel samples than the budget allows."""


def _check_budget_value(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive; got {value}")
    return value


def pixel_budget() -> int:
    """Return the current budget in pixel samples (``LUMIGRAD_MAX_PIXELS`` or 2^26 until set)."""
    global _budget
    if _budget is None:
        with _lock:
            if _budget is None:
                env = os.environ.get(ENV_VAR, "").strip()
                if env:
                    try:
                        value = int(float(env))
                    except ValueError:
                        raise ValueError(f"{ENV_VAR} must be a positive integer; got {env[:40]!r}") from None
                    _budget = _check_budget_value(value, ENV_VAR)
                else:
                    _budget = DEFAULT_PIXEL_BUDGET
    return _budget


def set_pixel_budget(value: int) -> int:
    """Set the process-wide budget in pixel samples and return the previous one."""
    global _budget
    value = _check_budget_value(value, "value")
    previous = pixel_budget()
    with _lock:
        _budget = value
    return previous


@contextlib.contextmanager
def pixel_budget_override(value: int) -> Iterator[int]:
    """Use ``value`` as the budget inside a ``with`` block (process-wide), restoring the old one after."""
    previous = set_pixel_budget(value)
    try:
        yield value
    finally:
        set_pixel_budget(previous)


def check_pixel_samples(count, what: str) -> int:
    """Raise :class:`BudgetError` when ``count`` pixel samples exceed the budget; return ``count`` as an int.

    Args:
        count: the number of pixel samples about to be allocated (a product of sizes; any real number, so an
            overflowing product of Python ints is still compared exactly).
        what: how the count arose, for the message, e.g. ``"camera is 4096x4096 pixels x 8 views"``.

    Raises:
        BudgetError: ``count`` exceeds :func:`pixel_budget`.
    """
    budget = pixel_budget()
    real = isinstance(count, (int, float)) and not isinstance(count, bool)
    # Python ints compare exactly at any size; only floats can be inf or nan.
    if real and (isinstance(count, int) or math.isfinite(count)) and count <= budget:
        return int(count)
    raise BudgetError(f"{what} ({_shown_count(count)} pixel samples), over lumigrad's budget of {budget:,} "
                      f"(2^{math.log2(budget):.3g}); raise it with lumigrad.limits.set_pixel_budget(...) or "
                      f"{ENV_VAR}")


def _shown_count(count) -> str:
    """``count`` in short scientific notation, also for ints too large for a float."""
    if isinstance(count, int) and not isinstance(count, bool):
        digits = str(abs(count)) if count.bit_length() < 4000 else None
        if digits is None:  # str() of a huge int is slow (and limited): use its binary size instead
            return f"about 2^{count.bit_length() - 1}"
        sign = "-" if count < 0 else ""
        return f"{sign}{digits[0]}.{digits[1:3] or '0'}e+{len(digits) - 1:02d}" if len(digits) > 6 else f"{count}"
    if isinstance(count, float):
        return f"{count:.3g}"
    return repr(count)[:40]
