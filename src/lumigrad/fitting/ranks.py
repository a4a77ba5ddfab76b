"""A ``lumigrad fit`` over several processes (``torchrun --nproc-per-node N -m lumigrad fit CONFIG``).

Every rank reads the same configuration and builds the same problem; the main rank (0) alone owns the output
folder (lock, checkpoint checks, ``run.log``, the outputs) and tells the others what it decided; each rank
renders its shard of every step's views and the gradients are averaged (:mod:`lumigrad.optim.distributed`).
Before the first step the ranks compare a hash of the configuration and of the target images, so a rank
started with other files stops the fit on every rank with one message. A fit restarted by ``torchrun
--max-restarts`` (``TORCHELASTIC_RESTART_COUNT`` > 0) resumes from the folder's last checkpoint by itself.
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Optional

import torch

from ..optim.distributed import DistributedStrategy, init_distributed, shard, tensor_digest
from .config import ConfigError
from .problem import Problem
from .streamed_targets import StreamedTargets

__all__ = ["finish_training", "prepare_ranks", "prepare_volume_ranks", "restarted_by_torchrun", "scene_digest",
           "start_ranks", "tensor_digest"]


def start_ranks(device: torch.device, timeout_s: Optional[float]) -> DistributedStrategy:
    """Join ``torchrun``'s process group (gloo on CPU, NCCL on CUDA) with a timeout on every collective."""
    kwargs = {} if timeout_s is None else {"timeout_s": timeout_s}
    return init_distributed("auto", device=device, **kwargs)


def rank_device(device: torch.device) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA fit (one GPU per process), else ``device``."""
    if device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def restarted_by_torchrun() -> bool:
    """Whether ``torchrun`` restarted this process after a failure of some rank."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    except ValueError:
        return False


def scene_digest(problem: Problem) -> str:
    """SHA-256 over the names and values of every parameter of the scene being fitted (meshes, textures, lights,
    cameras): ranks that loaded different scene files disagree here even when their targets agree."""
    digest = hashlib.sha256()
    for name, value in sorted(problem.scene.parameters().items()):
        digest.update(name.encode())
        digest.update(tensor_digest(value).encode())
    return digest.hexdigest()


def prepare_ranks(problem: Problem, strategy: DistributedStrategy, log) -> None:
    """Shard ``problem`` over the ranks after checking that they agree and that the data can be shared.

    Raises:
        ConfigError: every step would leave some rank without a view (naming the views and the world size),
            or the config asks for what a data-parallel fit cannot do yet (the adversarial loss trains a
            discriminator per rank).
        lumigrad.optim.RankMismatchError: the ranks' target images differ (on every rank).
    """
    config = problem.config
    world = strategy.world_size
    n = len(problem.targets)  # views, or (time, view) pairs of a fit over time
    k = config.fit.views_per_step
    per_step = k if 0 < k < n else n
    if per_step < world:
        raise ConfigError(f"{config.path}: each step renders {per_step} view(s) (fit.views_per_step = {k}, "
                          f"{n} views) but the fit runs on {world} processes; every process needs at least one "
                          f"view: use at most {per_step} processes or more views per step")
    if problem.adversary is not None:
        raise ConfigError(f"{config.path}: loss.adversarial trains a discriminator alongside the fit, which a fit "
                          "over several processes does not share yet; run it in one process")
    targets = problem.targets
    strategy.check_same("the target images (sha256)",
                        targets.digest() if isinstance(targets, StreamedTargets) else tensor_digest(targets))
    strategy.check_same("the scene being fitted (sha256 of every scene parameter)", scene_digest(problem))
    problem.rank, problem.world_size = strategy.rank, world
    share = len(shard(torch.arange(per_step), strategy.rank, world))
    log(f"rank {strategy.rank} of {world} on {socket.gethostname()} (pid {os.getpid()}): {share} of {per_step} "
        f"view(s) per step, {torch.get_num_threads()} thread(s)")


def prepare_volume_ranks(trainer, strategy: DistributedStrategy, log) -> None:
    """Shard a radiance-field fit's rays over the ranks after checking that the ranks hold the same photos
    (:class:`~lumigrad.fitting.volume_fit.VolumeTrainer`)."""
    rays = trainer.config.fit.rays_per_step
    if rays < strategy.world_size:
        raise ConfigError(f"{trainer.config.path}: fit.rays_per_step = {rays} is fewer rays than the "
                          f"{strategy.world_size} processes")
    strategy.check_same("the training photos (sha256)", tensor_digest(trainer.pixels))
    trainer.rank, trainer.world_size = strategy.rank, strategy.world_size
    share = len(shard(torch.arange(rays), strategy.rank, strategy.world_size))
    log(f"rank {strategy.rank} of {strategy.world_size} on {socket.gethostname()} (pid {os.getpid()}): {share} of "
        f"{rays} rays per step, {torch.get_num_threads()} thread(s)")


def finish_training(folder, strategy: Optional[DistributedStrategy], result) -> Optional[dict]:
    """After the last step of a fit over several processes: every rank waits for the others (so the main rank
    merges complete logs into the report), a non-main rank logs its end and returns its small metrics dict; the
    main rank (and a one-process fit) gets ``None`` and writes the outputs."""
    if strategy is None:
        return None
    if not strategy.is_main:
        folder.log(f"finished: {result.steps_done} steps in {result.seconds:.1f} s")
    strategy.barrier()
    return None if strategy.is_main else {"rank": strategy.rank, "steps": result.steps_done}
