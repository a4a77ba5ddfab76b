"""CPU buffers kept between calls and reused once no tensor outside the pool shares their storage.

A fresh CPU tensor of a few MiB is often a fresh ``mmap``: writing it faults in every page (about 1.7 ms per
4 MiB on the 2-core development machine, more than the arithmetic that fills it). Ops that produce the same
large outputs and gradients every frame therefore take their buffers from here: :func:`take` hands out a *new
tensor* on a pooled flat buffer's storage, so every tensor made from it (the gradient autograd stores, views,
numpy arrays) holds the storage; the buffer is free again when its storage is held by the pool alone. Nothing
is ever overwritten while someone can still read it, so a buffer may be handed out as a result (an op's
output, ``tex.grad``). The price: up to ``MAX_BUFFERS`` buffers stay allocated between calls.

Other devices get plain ``torch.empty`` (PyTorch's CUDA caching allocator already reuses memory).
"""

from __future__ import annotations

import math
import threading
from typing import List, Sequence

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


def take(shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape``: on the CPU (``MIN_BYTES`` or more) one that shares the
    storage of a pooled buffer of exactly that many elements that nothing else uses (a new buffer, added to
    the pool, when none is free). It is not a view (``_base`` is None), so it may be a custom autograd
    Function's output and be modified in place afterwards."""
    numel = math.prod(shape)
    if torch.device(device).type != "cpu" or numel * dtype.itemsize < MIN_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    with _LOCK:
        for k, buffer in enumerate(_POOL):
            if buffer.numel() == numel and buffer.dtype == dtype and _free(buffer):
                _POOL.append(_POOL.pop(k))
                return _sharing(buffer, shape)
        buffer = torch.empty(numel, dtype=dtype)
        _POOL.append(buffer)
        del _POOL[:-MAX_BUFFERS]
        return _sharing(buffer, shape)


def _sharing(buffer: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A new tensor (its storage use counts against reuse) of ``shape`` on ``buffer``'s storage."""
    return torch.empty(0, dtype=buffer.dtype).set_(buffer.untyped_storage(), 0, tuple(shape))


def pooled() -> int:
    """How many buffers the pool keeps (free or handed out)."""
    with _LOCK:
        return len(_POOL)


def clear() -> None:
    """Drop every pooled buffer (tensors handed out keep their memory until they are dropped too)."""
    with _LOCK:
        _POOL.clear()
