"""Count where a piece of work waits for the device: host syncs on CUDA, their stand-ins on the CPU.

On CUDA every read of a device value (``.item()``, ``.tolist()``, ``bool(t)``) and every op whose output
size depends on the data (``nonzero``, boolean indexing, ``unique``, ``bincount``, ``repeat_interleave``
without ``output_size``) stops the CPU until the GPU catches up, so the syncs of a frame bound how fast
small scenes render. :func:`count_host_syncs` counts them with ``torch.cuda.set_sync_debug_mode``; on the CPU,
where nothing waits, it counts the same operations as they pass PyTorch's dispatcher, so a test without a GPU
sees the number a GPU would (copies from host memory to the GPU are not counted there).
"""

from __future__ import annotations

import collections
import contextlib
import traceback
import warnings
from typing import Callable, Counter, Iterator, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SYNCING_OPS", "count_host_syncs"]

#: ATen ops that read a value back or size their output by the data: each is a host sync on CUDA.
SYNCING_OPS = frozenset({"_local_scalar_dense", "is_nonzero", "equal", "nonzero", "nonzero_numpy", "_unique",
                         "_unique2", "unique_dim", "unique_consecutive", "masked_select", "masked_scatter",
                         "bincount", "histc"})


def count_host_syncs(fn: Callable[[], object], device: Union[str, torch.device]) -> Counter[str]:
    """Run ``fn`` once and count its host syncs on ``device`` by site (``path:line function`` of the innermost
    lumigrad frame that caused each). Returns a :class:`collections.Counter`; its total is ``sum(c.values())``.
    """
    sites: Counter[str] = collections.Counter()
    counter = _cuda_syncs if torch.device(device).type == "cuda" else _dispatched_syncs
    with counter(sites):
        fn()
    return sites


def _site() -> str:
    for frame in reversed(traceback.extract_stack()[:-1]):
        if "/lumigrad/" in frame.filename and "/app/host_syncs.py" not in frame.filename:
            return f"{frame.filename.split('/lumigrad/')[-1]}:{frame.lineno} {frame.name}"
    return "(outside lumigrad)"


@contextlib.contextmanager
def _cuda_syncs(sites: Counter[str]) -> Iterator[None]:
    torch.cuda.synchronize()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            sites[_site()] += 1
        else:
            original(message, category, filename, lineno, file, line)

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = original


class _SyncingOps(TorchDispatchMode):
    def __init__(self, sites: Counter[str]):
        super().__init__()
        self.sites = sites

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        if name in SYNCING_OPS or _sizes_by_data(name, args, kwargs):
            self.sites[_site()] += 1
        return func(*args, **kwargs)


def _sizes_by_data(name: str, args, kwargs) -> bool:
    if name == "repeat_interleave":
        return kwargs.get("output_size") is None and (len(args) < 3 or args[2] is None)
    if name in ("index", "index_put", "index_put_", "_index_put_impl_"):  # boolean-mask indexing
        indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)
    return False


@contextlib.contextmanager
def _dispatched_syncs(sites: Counter[str]) -> Iterator[None]:
    tolist = torch.Tensor.tolist  # reads every value without passing the dispatcher

    def counted_tolist(self):
        sites[_site()] += 1
        return tolist(self)

    torch.Tensor.tolist = counted_tolist
    try:
        with _SyncingOps(sites):
            yield
    finally:
        torch.Tensor.tolist = tolist
