"""CPU buffers kept between calls and reused once no tensor outside the pool shares their storage.

A fresh CPU tensor of a few MiB is a fresh ``mmap``: writing it faults in every page (about 1.7 ms per 4 MiB
on the 2-core development machine, more than the arithmetic that fills it). A backward that produces the same
large gradients every step therefore takes its buffers from here: :func:`take` hands out a *new view* of a
pooled flat buffer, so every tensor made from it (the gradient autograd stores, views of it, numpy arrays)
holds the storage; the buffer is free again when its storage is held by the pool alone. Nothing is ever
overwritten while someone can still read it, so a buffer may be handed out as a result (``tex.grad``).

Other devices get plain ``torch.empty`` (PyTorch's CUDA caching allocator already reuses memory).
"""

from __future__ import annotations

import threading
from typing import List

import torch

#: Buffers kept at most (free or not); the least recently taken are dropped first.
MAX_BUFFERS = 12
#: Smaller requests get ``torch.empty``: the allocator's heap reuses them without page faults.
MIN_BYTES = 1 << 20

_POOL: List[torch.Tensor] = []  # flat CPU tensors, most recently taken last
_LOCK = threading.Lock()
_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)  # None: never reuse (always fresh buffers)


def _free(buffer: torch.Tensor) -> bool:
    """Whether ``buffer``'s storage is held by the pool alone: its own tensor plus the temporary storage
    object made here to ask (a view, a stored gradient or a numpy array adds one more)."""
    return _USE_COUNT is not None and _USE_COUNT(buffer.untyped_storage()._cdata) <= 2


def take(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat, uninitialised ``[numel]`` tensor: on the CPU (``MIN_BYTES`` or more) a view of a pooled buffer
    of exactly ``numel`` elements that nothing else uses (a new one, added to the pool, when none is free)."""
    if torch.device(device).type != "cpu" or numel * dtype.itemsize < MIN_BYTES:
        return torch.empty(numel, dtype=dtype, device=device)
    with _LOCK:
        for k, buffer in enumerate(_POOL):
            if buffer.numel() == numel and buffer.dtype == dtype and _free(buffer):
                _POOL.append(_POOL.pop(k))
                return buffer.view(numel)  # a new tensor: the caller's references count against reuse
        buffer = torch.empty(numel, dtype=dtype)
        _POOL.append(buffer)
        del _POOL[:-MAX_BUFFERS]
        return buffer.view(numel)


def pooled() -> int:
    """How many buffers the pool keeps (free or handed out)."""
    with _LOCK:
        return len(_POOL)


def clear() -> None:
    """Drop every pooled buffer (tensors handed out keep their memory until they are dropped too)."""
    with _LOCK:
        _POOL.clear()
