"""The optional dependency guard: Newton (and the warp it runs on) are imported here, lazily, and only here."""

from __future__ import annotations

INSTALL_HINT = "lumigrad.physics needs NVIDIA Newton: pip install lumigrad[physics]"


def require_newton():
    """Import and return ``(newton, warp)``.

    Returns:
        The ``newton`` and ``warp`` modules.

    Raises:
        ImportError: Newton is not installed; the message names the extra ``lumigrad[physics]``.
    """
    try:
        import newton
        import warp as wp
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(INSTALL_HINT) from error
    return newton, wp
