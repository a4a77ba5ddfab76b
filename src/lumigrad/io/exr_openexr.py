"""The OpenEXR bindings (``pip install 'lumigrad[exr]'``) as :func:`lumigrad.io.read_exr`'s optional backend.

:mod:`lumigrad.io.exr` reads uncompressed, RLE, ZIPS and ZIP scanline files with numpy alone. Files that need
more (PIZ, PXR24, B44, B44A, DWAA, DWAB and newer compressions; tiled images) are handed to the OpenEXR
library here, after :mod:`lumigrad.io.exr` has parsed the header, chosen the channels and checked the pixel
budget. Without the package such a file raises an ``ImportError`` that names the extra.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["read_with_openexr"]

EXTRA_HINT = "pip install 'lumigrad[exr]' (the OpenEXR package)"


def read_with_openexr(path: str | os.PathLike, channels: Sequence[str], needs: str) -> np.ndarray:
    """Read ``channels`` of the EXR file at ``path`` through the OpenEXR bindings.

    Args:
        path: the ``.exr`` file (single-part, flat: scanline or tiled).
        channels: channel names, in the order of the returned last axis.
        needs: what the numpy reader lacks for this file (``"PIZ compression"``, ``"a tiled image"``), for the
            message when the bindings are missing.

    Returns:
        The data window's pixels ``[H, W, len(channels)]``, float32 (HALF widened, UINT converted).

    Raises:
        ImportError: the OpenEXR package is not installed (the message names the extra and ``needs``).
        ValueError: the library cannot read the file, or a channel is missing.
    """
    try:
        import OpenEXR
    except ImportError as err:
        raise ImportError(f"{path}: reading {needs} needs the OpenEXR bindings: {EXTRA_HINT}; or re-save the "
                          "file as a ZIP-compressed (or uncompressed) scanline image") from err
    try:
        with OpenEXR.File(os.fspath(path), separate_channels=True) as exr:
            found = {name: channel.pixels for name, channel in exr.channels().items()}
    except (RuntimeError, OSError, ValueError) as err:  # the bindings report unreadable files these ways
        raise ValueError(f"{path}: OpenEXR could not read {needs}: {err}") from err
    missing = [name for name in channels if name not in found]
    if missing:
        raise ValueError(f"{path}: channels {missing} are missing (OpenEXR found {sorted(found)})")
    return np.stack([np.asarray(found[name], dtype=np.float32) for name in channels], axis=-1)
