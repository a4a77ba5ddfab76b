"""``DistributedStrategy``: a data-parallel :class:`~lumigrad.optim.Fit` over ``torch.distributed`` ranks.

Processes are started by ``torchrun`` (``torch.distributed.run``), which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT`` (or a rendezvous endpoint across machines).
:func:`init_distributed` joins the process group from those variables (gloo on CPU, NCCL on CUDA) with a timeout
on every collective; :class:`DistributedStrategy` implements the :class:`~lumigrad.optim.Strategy` seam with one
``torch.distributed`` call per hook:

* every rank holds every parameter and computes the loss of its shard of the step's data (:func:`shard`);
* ``reduce_gradients`` all-reduces the gradients (one flat buffer per dtype) and divides by the world size, so
  every rank steps with bit-identical gradients and the parameters stay bit-identical (gloo and NCCL give every
  rank the same reduced bits; :meth:`DistributedStrategy.check_in_sync` verifies it on demand);
* the loss, the logged values, a divergence on any rank and a stop request are combined so that every rank
  takes the same decisions, and raises together.

A user's own loop: ``strategy = init_distributed()``, shard the data with :func:`shard` and weight the shard's
loss with :func:`shard_weight`, then ``Fit(..., strategy=strategy)``.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import os
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["DistributedStrategy", "RankMismatchError", "init_distributed", "launched_by_torchrun", "shard",
           "shard_weight", "tensor_digest"]

DEFAULT_TIMEOUT_S = 600.0


class RankMismatchError(RuntimeError):
    """The ranks of a distributed fit disagree (configuration, data, parameters); raised on every rank."""


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init_distributed(backend: str = "auto", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                     device: Optional[torch.device] = None) -> "DistributedStrategy":
    """Join the process group ``torchrun`` described in the environment and return its strategy.

    Args:
        backend: ``"gloo"``, ``"nccl"`` or ``"auto"`` (NCCL when ``device`` is CUDA, else gloo).
        timeout_s: seconds any collective may wait for the other ranks before it raises (a rank that died or
            hangs stops the others instead of dead-locking them).
        device: the device the fit runs on; CUDA selects ``cuda:LOCAL_RANK``.

    Raises:
        RuntimeError: the environment has no ``RANK`` / ``WORLD_SIZE`` (not started by ``torchrun``), or
            ``torch.distributed`` is unavailable.
        ValueError: ``backend`` or ``timeout_s`` is invalid.
    """
    import torch.distributed as dist

    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl'; got {backend!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a number > 0; got {timeout_s!r}")
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing and not dist.is_initialized():
        raise RuntimeError(f"init_distributed needs the environment torchrun sets ({', '.join(missing)} missing): "
                           "start the program with `torchrun --nproc-per-node N ...`")
    cuda = device is not None and torch.device(device).type == "cuda"
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        # PyTorch's compiler stack (torch._dynamo, which every torch.optim optimiser imports) keeps a reference
        # to a process group that exists when it is first imported: that group then outlives
        # destroy_process_group, its gloo threads live on into interpreter shutdown, and one that frees a finished
        # collective's tensors there aborts the process ("terminate called without an active exception", seen
        # at teardown in about 1 of 15 two-rank runs). Imported first, it holds no group and the group's threads
        # are joined when it is destroyed.
        importlib.import_module("torch._dynamo")

        timeout = datetime.timedelta(seconds=float(timeout_s))
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        store, rank, world = next(dist.rendezvous("env://", rank, world, timeout=timeout))
        # torchrun keeps its store across restarts (--max-restarts): without a prefix per attempt, a restarted
        # rank can read the address a dead rank of the previous attempt published and fail to connect to it.
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(backend, store=dist.PrefixStore(f"lumigrad/attempt_{attempt}", store), rank=rank,
                                world_size=world, timeout=timeout)
    return DistributedStrategy()


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous share of ``indices`` (the step's views, drawn identically on every rank).

    Shares differ in length by at most one; use :func:`shard_weight` to weight each rank's mean loss.

    Raises:
        ValueError: fewer indices than ranks (a rank would have nothing to render), naming both numbers.
    """
    n = int(indices.numel())
    if n < world_size:
        raise ValueError(f"a step has {n} view(s) for {world_size} ranks: every rank needs at least one; use at "
                         f"most {n} processes or more views per step")
    return torch.tensor_split(indices, world_size)[rank]


def shard_weight(shard_size: int, total: int, world_size: int) -> float:
    """The factor on a rank's *mean* shard loss that makes the ranks' average equal the mean over all items:
    ``world_size * shard_size / total`` (1 when the shares are equal)."""
    return world_size * shard_size / total


class DistributedStrategy:
    """The :class:`~lumigrad.optim.Strategy` of an initialised ``torch.distributed`` process group.

    Attributes:
        rank, world_size: ``dist.get_rank()``, ``dist.get_world_size()``; ``is_main``: ``rank == 0``.
    """

    def __init__(self):
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("DistributedStrategy needs an initialised process group: call init_distributed()")
        self._dist = dist
        self.rank = int(dist.get_rank())
        self.world_size = int(dist.get_world_size())
        self.is_main = self.rank == 0
        self._device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def __repr__(self) -> str:
        return f"DistributedStrategy(rank={self.rank}, world_size={self.world_size})"

    # ---------------------------------------------------------------------------------------- the seam
    def rank_seed(self, seed: int) -> int:
        return seed  # every rank draws the same views, then takes its shard: the single-process sequence

    def reduce_gradients(self, params: Sequence[torch.Tensor]) -> None:
        by_dtype: Dict[torch.dtype, List[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None and p.grad.is_sparse:
                self._reduce_sparse(p)
            else:
                by_dtype.setdefault(p.dtype, []).append(p)
        for dtype, group in by_dtype.items():
            flat = torch.cat([_dense_grad(p).reshape(-1) for p in group]).to(self._device)
            self._dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for p in group:
                n = p.numel()
                p.grad = flat[offset:offset + n].view_as(p).to(p.device).clone()
                offset += n

    def _reduce_sparse(self, p: torch.Tensor) -> None:
        """A sparse gradient (a hash-grid table for SparseAdam): summed densely, then made sparse again over the
        rows any rank touched (rows whose averaged gradient is exactly zero are left out)."""
        sparse_dim = p.grad.sparse_dim()
        dense = p.grad.to_dense().to(self._device)
        self._dist.all_reduce(dense)
        dense /= self.world_size
        p.grad = dense.to(p.device).to_sparse(sparse_dim)

    def reduce_log(self, loss: float, values: Dict[str, float]) -> Tuple[float, Dict[str, float]]:
        keys = sorted(values)
        # The key sets are compared first, in a collective of fixed size: vectors of different lengths in one
        # all_reduce abort the process inside gloo ("collective mismatch") instead of raising.
        count, digest = float(len(keys)), float(zlib.crc32("\0".join(keys).encode()))
        header = torch.tensor([count, -count, digest, -digest], dtype=torch.float64, device=self._device)
        self._dist.all_reduce(header, op=self._dist.ReduceOp.MAX)
        if header[0] != -header[1] or header[2] != -header[3]:
            raise RankMismatchError(f"rank {self.rank}: the ranks logged different values this step (this rank "
                                    f"logged {_short(', '.join(keys) or 'none', 300)})")
        vec = torch.tensor([loss] + [values[k] for k in keys], dtype=torch.float64, device=self._device)
        self._dist.all_reduce(vec)
        vec = (vec / self.world_size).cpu().tolist()
        return vec[0], dict(zip(keys, vec[1:]))

    def combine_divergence(self, message: Optional[str]) -> Optional[str]:
        if not self.any_rank(message is not None):  # the usual case: one small all-reduce, no pickling
            return None
        messages = self.all_gather_object(message)
        for rank, m in enumerate(messages):
            if m is not None:
                return m if rank == self.rank else f"rank {rank}: {m}"
        return None

    def any_rank(self, flag: bool) -> bool:
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device)
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX)
        return bool(t.item())

    def gather_object(self, obj: object) -> Optional[List[object]]:
        out = [None] * self.world_size if self.is_main else None
        self._dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self._dist.get_backend() == "nccl":
            self._dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            self._dist.barrier()

    # ---------------------------------------------------------------------------------------- extras
    def all_gather_object(self, obj: object) -> List[object]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: List[object] = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: object) -> object:
        """The main rank's ``obj`` on every rank."""
        box = [obj if self.is_main else None]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, what: str, value: str) -> None:
        """Raise :class:`RankMismatchError` on every rank unless every rank passed the same ``value`` (e.g. a
        hash of the configuration or of the data), naming the ranks that differ from rank 0."""
        values = self.all_gather_object(value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise RankMismatchError(f"the ranks disagree on {what}: rank(s) {differ} differ from rank 0 "
                                    f"({_short(values[differ[0]])} vs {_short(values[0])}); every rank must run "
                                    "the same configuration on the same data")

    def check_in_sync(self, params: Sequence[torch.Tensor], step: int) -> None:
        """Raise :class:`RankMismatchError` on every rank unless the parameters are bit-identical across ranks."""
        values = self.all_gather_object("".join(tensor_digest(p) for p in params))
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise RankMismatchError(f"after step {step} the parameters of rank(s) {differ} differ from rank 0's; "
                                    "the ranks no longer take identical steps")


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    t = t.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _dense_grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad is None:
        return torch.zeros_like(p)
    return p.grad.to_dense() if p.grad.is_sparse else p.grad


def _short(value: object, limit: int = 16) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
